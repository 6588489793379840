//! ptx-emu: a PTX emulator with CUDA semantics, sanitizer-class checks and memory-traffic metrics.
//!
//! Stages: `lexer` -> `parser` (AST in `ast`) -> `lower` (compact IR in `ir`) -> `exec` (warp-lockstep
//! executor with per-thread PCs; instruction semantics split by family). The public API is [`Device`].

pub mod ast;
mod device;
pub mod error;
pub mod exec;
pub mod fuzz;
pub mod ir;
pub mod lexer;
pub mod limits;
pub mod lower;
pub mod memory;
pub mod metrics;
pub mod model;
pub mod module_cache;
pub mod nvcc;
pub mod parser;

pub use device::{
    Approx, Checks, Device, LaunchConfig, LaunchReport, Module, Options, ParamSlot, DEFAULT_MAX_INSTRUCTIONS,
    DEFAULT_MEMORY_LIMIT, MAX_SHARED_SM80, MAX_SHARED_SM90,
};
pub use error::{CheckKind, CheckReport, EmuError, WarpAt};
pub use metrics::Metrics;
pub use model::{Arch, ModelOptions, Occupancy, Prediction};
