//! llama-kernels: hand-written CUDA kernels for LLaMA-family transformers, with safe Rust bindings.
//!
//! Crate organization, three layers:
//! - [`raw`]: the kernel parameter structs (generated from `cuda/include/params.h`), the compiled
//!   modules embedded by `build.rs`, and the launch seam ([`backend::Backend`]).
//! - [`ops`]: the safe API — one function per op; checks shapes, dtypes and alignment, fills the params
//!   struct, picks the launch configuration and launches on any backend (CUDA or the ptx-emu emulator).
//! - [`reference`](mod@reference): plain CPU code that documents the math and serves as the test oracle.
//!
//! One decoder-layer fragment, written once over [`backend::Backend`] and run here on the emulator (on a
//! GPU, pass a [`backend::CudaBackend`] over your own stream and cudarc slices instead):
//!
//! ```
//! use llama_kernels::backend::{Backend, EmuBackend};
//! use llama_kernels::ops::{add::add_inplace, rms_norm::rms_norm};
//! use llama_kernels::{half::bf16, reference, AddShape, RmsNormConfig, RmsNormShape};
//!
//! /// h ← h + attn_out; x ← rms_norm(h) · w
//! fn residual_then_norm<B: Backend>(
//!     backend: &B,
//!     h: &mut B::Buffer<bf16>,
//!     attn_out: &B::Buffer<bf16>,
//!     w: &B::Buffer<bf16>,
//!     x: &mut B::Buffer<bf16>,
//!     (rows, hidden): (usize, usize),
//! ) -> llama_kernels::Result<()> {
//!     add_inplace(backend, h, attn_out, AddShape::contiguous(rows, hidden))?;
//!     rms_norm(backend, h, w, x, RmsNormShape { rows, hidden }, RmsNormConfig::default())
//! }
//!
//! let backend = EmuBackend::new(); // every sanitizer-class check on
//! let (rows, hidden) = (3, 64);
//! let h0 = reference::random_vec::<bf16>(rows * hidden, 1, 1.0);
//! let a0 = reference::random_vec::<bf16>(rows * hidden, 2, 1.0);
//! let w0 = reference::random_vec::<bf16>(hidden, 3, 1.0);
//! let mut h = backend.upload(&h0)?;
//! let (a, w) = (backend.upload(&a0)?, backend.upload(&w0)?);
//! let mut x = backend.alloc_poisoned::<bf16>(rows * hidden)?;
//! residual_then_norm(&backend, &mut h, &a, &w, &mut x, (rows, hidden))?;
//!
//! // The reference rounds where the kernels round: the sum bit for bit, RMSNorm within 2 bf16 ulps.
//! let mut sum = vec![bf16::ZERO; rows * hidden];
//! reference::add(&h0, &a0, &mut sum, AddShape::contiguous(rows, hidden))?;
//! assert_eq!(backend.download(&h)?, sum);
//! let want = reference::rms_norm(&sum, &w0, RmsNormShape { rows, hidden }, RmsNormConfig::default())?;
//! let got = backend.download(&x)?;
//! reference::Tolerance::for_elem::<bf16>()
//!     .check(&reference::to_f64_vec(&got), &reference::to_f64_vec(&want))
//!     .map_err(|e| llama_kernels::Error::InvalidArgument { op: "doctest", reason: e })?;
//! # Ok::<(), llama_kernels::Error>(())
//! ```

#![warn(missing_docs)]

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

/// The `half` crate, whose `f16` and `bf16` are the element types of the ops.
pub use half;
/// The ptx-emu crate: the types [`backend::EmuBackend::with_options`] takes (`Options`, `Checks`,
/// `Approx`) and the metrics and predictions the emulator backend returns.
pub use ptx_emu;
