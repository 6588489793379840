//! The safe API: one function per op, written once over [`crate::backend::Backend`].
//!
//! Each op checks its preconditions (every violation is an [`crate::Error`], never a panic), fills its
//! params struct from `cuda/include/params.h`, picks its launch configuration in one `launch_config`
//! function next to it, and launches.

pub(crate) mod validate;
