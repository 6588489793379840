//! llama-kernels: hand-written CUDA kernels for LLaMA-family transformers, with safe Rust bindings.
//!
//! Crate organization, three layers:
//! - [`raw`]: the kernel parameter structs (generated from `cuda/include/params.h`), the compiled
//!   modules embedded by `build.rs`, and the launch seam ([`backend::Backend`]).
//! - [`ops`]: the safe API — one function per op; checks shapes, dtypes and alignment, fills the params
//!   struct, picks the launch configuration and launches on any backend (CUDA or the ptx-emu emulator).
//! - [`reference`]: plain CPU code that documents the math and serves as the test oracle.

pub mod dtype;
pub mod error;
pub mod reference;
pub mod shapes;

pub use dtype::{DType, Elem};
pub use error::{Error, Result};
pub use shapes::*;
pub mod backend;
pub mod ops;
pub mod raw;
