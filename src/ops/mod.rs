//! The safe API: one function per op, written once over [`crate::backend::Backend`].
//!
//! Each op checks its preconditions (every violation is an [`crate::Error`], never a panic), fills its
//! params struct from `cuda/include/params.h`, picks its launch configuration in one `launch_config`
//! function next to it, and launches.

/// `kernels![module => "name", ...]`: a `&[Kernel]` of the entry points of the named modules (each op's
/// `KERNELS`). Defined before the op modules so that they all see it.
macro_rules! kernels {
    ($($module:expr => $name:literal),* $(,)?) => {
        &[$(crate::backend::Kernel { module: $module, name: $name }),*]
    };
}

pub mod add;
pub mod attention;
pub mod convert;
pub mod embedding;
pub mod gemm;
pub mod kv_cache;
pub mod rms_norm;
pub mod rope;
pub(crate) mod rowwise;
pub mod swiglu;
pub(crate) mod validate;

use crate::backend::Kernel;

/// Every kernel the safe API can launch (each op module lists its own in `KERNELS`); the build-artifact
/// tests check that each is in the PTX and in the fatbin of every arch.
pub fn launched_kernels() -> Vec<Kernel<'static>> {
    let lists: &[&[Kernel<'static>]] = &[
        add::KERNELS,
        attention::KERNELS,
        convert::KERNELS,
        embedding::KERNELS,
        gemm::KERNELS,
        kv_cache::KERNELS,
        rms_norm::KERNELS,
        rope::KERNELS,
        swiglu::KERNELS,
    ];
    lists.iter().flat_map(|l| l.iter().copied()).collect()
}
