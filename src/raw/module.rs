//! The compiled kernels embedded by `build.rs`: one [`ModuleImage`] per `cuda/*.cu`, and ptxas's
//! resource report per kernel and arch.

/// One compiled `cuda/<name>.cu`.
#[derive(Debug, Clone, Copy)]
pub struct ModuleImage {
    /// The file stem: `rms_norm` for `cuda/rms_norm.cu`.
    pub name: &'static str,
    /// PTX for `compute_80`: what the emulator runs (and what the driver JITs on an unknown arch).
    pub ptx: &'static str,
    /// SASS for every arch of [`SASS_ARCHS`] plus `compute_80` PTX: what the CUDA backend loads.
    pub fatbin: &'static [u8],
}

/// ptxas's `-v` report for one kernel on one arch.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct KernelResources {
    /// The entry point.
    pub kernel: &'static str,
    /// `sm_80`, `sm_86`, ...
    pub arch: &'static str,
    /// Registers per thread.
    pub registers: u32,
    /// Static shared memory.
    pub shared_bytes: u32,
    /// Per-thread stack frame, in bytes.
    pub stack_frame_bytes: u32,
    /// Bytes stored to local memory by spills.
    pub spill_store_bytes: u32,
    /// Bytes loaded from local memory by spills.
    pub spill_load_bytes: u32,
    /// Named barriers used.
    pub barriers: u32,
}

include!(concat!(env!("OUT_DIR"), "/kernels.rs"));

/// The path of the ptxas report written by `build.rs` (tab-separated, one row per kernel and arch).
pub const PTXAS_REPORT_PATH: &str = concat!(env!("OUT_DIR"), "/ptxas_report.tsv");

/// The nvcc that built the kernels.
pub const NVCC_PATH: &str = env!("LLAMA_KERNELS_NVCC");

/// The embedded module compiled from `cuda/<name>.cu`.
pub fn module_image(name: &str) -> Option<&'static ModuleImage> {
    MODULE_IMAGES.iter().find(|m| m.name == name)
}

/// ptxas's report for `kernel` on `arch` (`"sm_80"`).
pub fn find_kernel_resources(kernel: &str, arch: &str) -> Option<&'static KernelResources> {
    PTXAS_REPORT.iter().find(|r| r.kernel == kernel && r.arch == arch)
}
