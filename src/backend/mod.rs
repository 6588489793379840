//! The seam between the ops and the machines that run them.
//!
//! An op is written once over [`Backend`]: it validates its inputs, fills its params struct and calls
//! [`Backend::launch`] with a kernel name and a [`LaunchDims`]. The CUDA backend ([`CudaBackend`]) loads
//! the embedded fatbin into the stream's context and launches with cudarc; the emulator backend
//! ([`EmuBackend`]) runs the embedded PTX of the same source on ptx-emu, with the same params bytes and
//! the same launch dimensions.
//!
//! Buffers are the backend's own: `cudarc::driver::CudaSlice` / `CudaView` / `CudaViewMut` for CUDA,
//! [`EmuBuffer`] for the emulator. Ops take them through [`DeviceSlice`] and [`DeviceSliceMut`].

mod cuda;
mod emu;

pub use cuda::{cuda_available, CudaBackend};
pub use emu::{EmuBackend, EmuBuffer, EmuView, EmuViewMut, EMU_APPROX_SEED, EMU_DEFAULT_SM_COUNT};

use crate::error::Result;
use crate::raw::KernelParams;

/// Grid, block and dynamic shared memory of one launch.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct LaunchDims {
    /// Blocks per grid dimension.
    pub grid: [u32; 3],
    /// Threads per block dimension.
    pub block: [u32; 3],
    /// Dynamic shared memory per block, in bytes.
    pub shared_bytes: u32,
}

/// A kernel: the `cuda/<module>.cu` it lives in and its entry point (`rms_norm_bf16`).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Kernel<'a> {
    /// The file stem of the `.cu` (`rms_norm` for `cuda/rms_norm.cu`).
    pub module: &'static str,
    /// The `extern "C"` entry point.
    pub name: &'a str,
}

/// A value that can live in device memory on every backend: `f32`, `f16`, `bf16`, `i32`, ...
pub trait DeviceValue:
    bytemuck::Pod + cudarc::driver::DeviceRepr + cudarc::driver::ValidAsZeroBits + Send + Sync + 'static
{
}
impl<T> DeviceValue for T where
    T: bytemuck::Pod + cudarc::driver::DeviceRepr + cudarc::driver::ValidAsZeroBits + Send + Sync + 'static
{
}

/// A machine that runs our kernels.
pub trait Backend {
    /// Kept alive from taking a device address until the launch that uses it is enqueued (CUDA: records
    /// the stream's use of the buffer for cudarc's multi-stream tracking).
    type Guard<'a>
    where
        Self: 'a;
    /// This backend's owned device buffer.
    type Buffer<T: DeviceValue>: DeviceSliceMut<T, Self>;
    /// A read-only window into a [`Backend::Buffer`] ([`Backend::slice`]).
    type View<'a, T: DeviceValue>: DeviceSlice<T, Self>
    where
        Self: 'a;
    /// A writable window into a [`Backend::Buffer`] ([`Backend::slice_mut`]).
    type ViewMut<'a, T: DeviceValue>: DeviceSliceMut<T, Self>
    where
        Self: 'a;

    /// A short name for messages and test output: `cuda:0`, `emu`.
    fn name(&self) -> String;

    /// What the device is: the GPU's own name on CUDA (`NVIDIA H100 80GB HBM3`), `ptx-emu` on the
    /// emulator (with the modelled GPU under [`EmuBackend::with_model`]).
    fn device_name(&self) -> String;

    /// Launches `kernel` with its params struct passed by value.
    fn launch<P: KernelParams>(&self, kernel: Kernel<'_>, dims: LaunchDims, params: &P) -> Result<()>;

    /// The largest dynamic shared memory one block may ask for (opt-in limit on CUDA).
    fn max_shared_bytes_per_block(&self) -> u32;

    /// Streaming multiprocessors of the device: what a launch configuration that must fill the GPU
    /// (split-KV decode) sizes its grid by. CUDA: the device's attribute; the emulator: a configurable
    /// count ([`EmuBackend::with_sm_count`]).
    fn sm_count(&self) -> u32;

    /// Copies host data into a new device buffer.
    fn upload<T: DeviceValue>(&self, data: &[T]) -> Result<Self::Buffer<T>>;

    /// A new buffer of `len` elements whose contents must not be read before written: poisoned with NaN
    /// bytes (0xFF) on CUDA, marked never-written (initcheck) on the emulator.
    fn alloc_poisoned<T: DeviceValue>(&self, len: usize) -> Result<Self::Buffer<T>>;

    /// A new buffer of `len` zeros (on CUDA, a device memset: no host buffer).
    fn alloc_zeros<T: DeviceValue>(&self, len: usize) -> Result<Self::Buffer<T>>;

    /// Elements `range` of `buf`, read-only: a tensor that starts inside a larger allocation (one
    /// layer's slice of a KV cache, one head of a fused QKV output).
    ///
    /// # Errors
    /// `InvalidArgument` when `range` is not inside the buffer.
    fn slice<'a, T: DeviceValue>(
        &'a self,
        buf: &'a Self::Buffer<T>,
        range: std::ops::Range<usize>,
    ) -> Result<Self::View<'a, T>>;

    /// Elements `range` of `buf`, writable (where a new token's K and V go in a cache).
    ///
    /// # Errors
    /// `InvalidArgument` when `range` is not inside the buffer.
    fn slice_mut<'a, T: DeviceValue>(
        &'a self,
        buf: &'a mut Self::Buffer<T>,
        range: std::ops::Range<usize>,
    ) -> Result<Self::ViewMut<'a, T>>;

    /// Copies `src` into `dst` on the device, in launch order (after the work launched before it, before
    /// the work launched after it).
    ///
    /// # Errors
    /// `ShapeMismatch` unless both have the same length; `Aliasing` when they overlap;
    /// `ContextMismatch` for memory of another device; backend errors.
    fn copy<T: DeviceValue>(
        &self,
        src: &impl DeviceSlice<T, Self>,
        dst: &mut impl DeviceSliceMut<T, Self>,
    ) -> Result<()>;

    /// Copies host data into existing device memory (a buffer or a view), in launch order, and returns
    /// once the copy is done (CUDA: the stream is synchronized, so `src` may be any host memory).
    ///
    /// # Errors
    /// `ShapeMismatch` unless both have the same length; `ContextMismatch`; backend errors.
    fn write<T: DeviceValue>(&self, src: &[T], dst: &mut impl DeviceSliceMut<T, Self>) -> Result<()>;

    /// Waits for all launched work and copies a buffer back to the host.
    fn download<T: DeviceValue>(&self, buf: &Self::Buffer<T>) -> Result<Vec<T>>;

    /// Waits for all launched work.
    fn synchronize(&self) -> Result<()>;
}

/// [`Backend::copy`]'s checks, as the ops make them ([`crate::ops::validate`]): `dst` as long as `src`,
/// both of this backend's context, not overlapping. Returns both addresses with their guards, and the bytes.
#[allow(clippy::type_complexity)]
pub(crate) fn copy_regions<'a, T: DeviceValue, B: Backend>(
    backend: &'a B,
    src: &'a impl DeviceSlice<T, B>,
    dst: &'a mut impl DeviceSliceMut<T, B>,
) -> Result<((u64, B::Guard<'a>), (u64, B::Guard<'a>), usize)> {
    let len = src.len();
    let s = crate::ops::validate::addr_of("copy", "src", src, backend, &[len])?;
    let d = crate::ops::validate::addr_of_mut("copy", "dst", dst, backend, &[len])?;
    let bytes = len * std::mem::size_of::<T>(); // the length of an existing buffer
    crate::ops::validate::check_no_overlap("copy", ("dst", d.0, bytes), ("src", s.0, bytes))?;
    Ok((s, d, bytes))
}

/// [`Backend::write`]'s checks: `dst` as long as `src`, of this backend's context. Its address and guard.
pub(crate) fn write_region<'a, T: DeviceValue, B: Backend>(
    backend: &'a B,
    src: &[T],
    dst: &'a mut impl DeviceSliceMut<T, B>,
) -> Result<(u64, B::Guard<'a>)> {
    crate::ops::validate::addr_of_mut("write", "dst", dst, backend, &[src.len()])
}

/// `range` lies inside a buffer of `len` elements.
pub(crate) fn check_range(range: &std::ops::Range<usize>, len: usize) -> Result<()> {
    if range.start > range.end || range.end > len {
        return Err(crate::error::Error::InvalidArgument {
            op: "slice",
            reason: format!("range {range:?} is not inside a buffer of {len} elements"),
        });
    }
    Ok(())
}

/// Device memory an op may read.
pub trait DeviceSlice<T, B: Backend + ?Sized> {
    /// Number of elements.
    fn len(&self) -> usize;
    /// True when the slice holds no element.
    fn is_empty(&self) -> bool {
        self.len() == 0
    }
    /// The device address of element 0, and the guard to keep until the launch is enqueued.
    fn device_addr<'a>(&'a self, backend: &'a B) -> Result<(u64, B::Guard<'a>)>;
}

/// Device memory an op may write.
pub trait DeviceSliceMut<T, B: Backend + ?Sized>: DeviceSlice<T, B> {
    /// The device address of element 0, for writing, and the guard to keep until the launch is enqueued.
    fn device_addr_mut<'a>(&'a mut self, backend: &'a B) -> Result<(u64, B::Guard<'a>)>;
}
