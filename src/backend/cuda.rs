//! The CUDA backend: cudarc with the driver loaded at run time.
//!
//! cudarc panics when `libcuda.so` is missing, so [`cuda_available`] looks for the library itself first
//! and every constructor reports `Error::NoDriver` / `Error::NoDevice` instead. Each context loads each
//! embedded fatbin once; the cache is shared by every [`CudaBackend`] of that context.

use std::collections::HashMap;
use std::sync::{Arc, Mutex, OnceLock, Weak};

use cudarc::driver::{
    CudaContext, CudaFunction, CudaModule, CudaSlice, CudaStream, CudaView, CudaViewMut, DevicePtr, DevicePtrMut,
    LaunchConfig, PushKernelArg, SyncOnDrop,
};

use super::{
    check_range, copy_regions, write_region, Backend, DeviceSlice, DeviceSliceMut, DeviceValue, Kernel, LaunchDims,
};
use crate::error::{Error, Result};
use crate::raw::{module_image, KernelParams};

/// Dynamic shared memory a kernel may use without opting in.
const DEFAULT_MAX_DYNAMIC_SHARED: u32 = 48 * 1024;

#[cfg(all(feature = "dynamic-loading", feature = "dynamic-linking"))]
compile_error!(
    "llama-kernels: the features `dynamic-loading` (a default) and `dynamic-linking` exclude each other; next to \
     candle-core's `cuda` feature use `default-features = false, features = [\"dynamic-linking\", \"cuda-13020\"]`"
);
#[cfg(not(any(feature = "dynamic-loading", feature = "dynamic-linking")))]
compile_error!("llama-kernels: enable one of the features `dynamic-loading` (the default) or `dynamic-linking`");

/// Whether the CUDA driver library can be loaded, and the first device initialised. `Err` says why not.
/// (With the `dynamic-linking` feature the library is linked into the program, so only the device is
/// checked.)
pub fn cuda_available() -> Result<()> {
    #[cfg(feature = "dynamic-loading")]
    {
        // SAFETY: only tries to dlopen the driver library by its usual names; loads nothing into cudarc's
        // state.
        let present = unsafe { cudarc::driver::sys::is_culib_present() };
        if !present {
            return Err(Error::NoDriver {
                detail: "libcuda.so could not be loaded".into(),
            });
        }
    }
    let count = cudarc::driver::result::init()
        .and_then(|_| cudarc::driver::result::device::get_count())
        .map_err(|e| Error::NoDevice {
            detail: format!("cuInit / cuDeviceGetCount failed: {e}"),
        })?;
    if count < 1 {
        return Err(Error::NoDevice {
            detail: "the driver reports 0 CUDA devices".into(),
        });
    }
    Ok(())
}

/// Modules and functions loaded into one context.
#[derive(Default)]
struct ContextKernels {
    modules: Mutex<HashMap<&'static str, Arc<CudaModule>>>,
    functions: Mutex<HashMap<String, CudaFunction>>,
}

/// One `ContextKernels` per live context, keyed by the context's address.
fn kernels_for(ctx: &Arc<CudaContext>) -> Arc<ContextKernels> {
    static CACHE: OnceLock<Mutex<HashMap<usize, Weak<ContextKernels>>>> = OnceLock::new();
    let mut map = CACHE
        .get_or_init(Default::default)
        .lock()
        .unwrap_or_else(|e| e.into_inner());
    map.retain(|_, w| w.strong_count() > 0);
    let key = Arc::as_ptr(ctx) as usize;
    if let Some(k) = map.get(&key).and_then(Weak::upgrade) {
        return k;
    }
    let k = Arc::new(ContextKernels::default());
    map.insert(key, Arc::downgrade(&k));
    k
}

/// Runs the kernels on a CUDA stream the caller owns (its context, its stream, its buffers).
pub struct CudaBackend {
    stream: Arc<CudaStream>,
    kernels: Arc<ContextKernels>,
    max_shared_optin: u32,
    sm_count: u32,
}

impl CudaBackend {
    /// Wraps a stream of the caller's context.
    pub fn new(stream: Arc<CudaStream>) -> Result<Self> {
        let kernels = kernels_for(stream.context());
        let max_shared_optin = stream
            .context()
            .attribute(cudarc::driver::sys::CUdevice_attribute::CU_DEVICE_ATTRIBUTE_MAX_SHARED_MEMORY_PER_BLOCK_OPTIN)
            .map_err(|e| Error::Driver { detail: e.to_string() })?;
        let sm_count = stream
            .context()
            .attribute(cudarc::driver::sys::CUdevice_attribute::CU_DEVICE_ATTRIBUTE_MULTIPROCESSOR_COUNT)
            .map_err(|e| Error::Driver { detail: e.to_string() })?;
        Ok(CudaBackend {
            stream,
            kernels,
            max_shared_optin: max_shared_optin.max(0) as u32,
            sm_count: sm_count.max(1) as u32,
        })
    }

    /// Opens device `ordinal` and its default stream, after checking that a driver and device exist.
    pub fn open(ordinal: usize) -> Result<Self> {
        cuda_available()?;
        let ctx = CudaContext::new(ordinal).map_err(|e| Error::NoDevice {
            detail: format!("device {ordinal}: {e}"),
        })?;
        Self::new(ctx.default_stream())
    }

    /// The stream the kernels are launched on.
    pub fn stream(&self) -> &Arc<CudaStream> {
        &self.stream
    }

    fn function(&self, kernel: Kernel<'_>) -> Result<CudaFunction> {
        let load_err = |detail: String| Error::KernelLoad {
            kernel: kernel.name.to_string(),
            detail,
        };
        if let Some(f) = self
            .kernels
            .functions
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .get(kernel.name)
        {
            return Ok(f.clone());
        }
        let module = {
            let mut modules = self.kernels.modules.lock().unwrap_or_else(|e| e.into_inner());
            match modules.get(kernel.module) {
                Some(m) => m.clone(),
                None => {
                    let image = module_image(kernel.module)
                        .ok_or_else(|| load_err(format!("no compiled module `{}`", kernel.module)))?;
                    // A build without nvcc embeds no SASS (an empty fatbin): the driver JIT-compiles the
                    // committed PTX instead (build.rs, "Without nvcc").
                    let (image_bytes, what) = if image.fatbin.is_empty() {
                        (cudarc::nvrtc::Ptx::from_src(image.ptx), "PTX")
                    } else {
                        (cudarc::nvrtc::Ptx::from_binary(image.fatbin.to_vec()), "fatbin")
                    };
                    let m = self
                        .stream
                        .context()
                        .load_module(image_bytes)
                        .map_err(|e| load_err(format!("loading the {what} of `{}`: {e}", kernel.module)))?;
                    modules.insert(kernel.module, m.clone());
                    m
                }
            }
        };
        let f = module.load_function(kernel.name).map_err(|e| load_err(e.to_string()))?;
        self.kernels
            .functions
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .insert(kernel.name.to_string(), f.clone());
        Ok(f)
    }

    fn driver_err(e: cudarc::driver::DriverError) -> Error {
        Error::Driver { detail: e.to_string() }
    }
}

impl Backend for CudaBackend {
    type Guard<'a> = SyncOnDrop<'a>;
    type Buffer<T: DeviceValue> = CudaSlice<T>;
    type View<'a, T: DeviceValue> = CudaView<'a, T>;
    type ViewMut<'a, T: DeviceValue> = CudaViewMut<'a, T>;

    fn name(&self) -> String {
        format!("cuda:{}", self.stream.context().ordinal())
    }

    fn device_name(&self) -> String {
        self.stream
            .context()
            .name()
            .unwrap_or_else(|e| format!("cuda:{} (name unavailable: {e})", self.stream.context().ordinal()))
    }

    fn launch<P: KernelParams>(&self, kernel: Kernel<'_>, dims: LaunchDims, params: &P) -> Result<()> {
        let func = self.function(kernel)?;
        if dims.shared_bytes > DEFAULT_MAX_DYNAMIC_SHARED {
            func.set_attribute(
                cudarc::driver::sys::CUfunction_attribute::CU_FUNC_ATTRIBUTE_MAX_DYNAMIC_SHARED_SIZE_BYTES,
                dims.shared_bytes as i32,
            )
            .map_err(Self::driver_err)?;
        }
        let cfg = LaunchConfig {
            grid_dim: (dims.grid[0], dims.grid[1], dims.grid[2]),
            block_dim: (dims.block[0], dims.block[1], dims.block[2]),
            shared_mem_bytes: dims.shared_bytes,
        };
        let mut builder = self.stream.launch_builder(&func);
        builder.arg(params);
        // SAFETY: `params` is the padding-free mirror of the kernel's only parameter (KernelParams), its
        // pointers were validated by the calling op against the shapes the kernel reads and writes, and
        // the callers keep the buffers' guards alive across this call.
        unsafe { builder.launch(cfg) }.map_err(Self::driver_err)?;
        Ok(())
    }

    fn max_shared_bytes_per_block(&self) -> u32 {
        self.max_shared_optin
    }

    fn sm_count(&self) -> u32 {
        self.sm_count
    }

    fn upload<T: DeviceValue>(&self, data: &[T]) -> Result<CudaSlice<T>> {
        self.stream.clone_htod(data).map_err(Self::driver_err)
    }

    fn alloc_poisoned<T: DeviceValue>(&self, len: usize) -> Result<CudaSlice<T>> {
        let bytes = len
            .checked_mul(std::mem::size_of::<T>())
            .ok_or_else(|| Error::SizeOverflow {
                op: "alloc_poisoned",
                what: format!("{len} elements"),
            })?;
        // SAFETY: the memory is unset until the memset below, which is enqueued on the same stream
        // before anything else can use the slice; every byte pattern is a valid `T` (`T: Pod`).
        let mut buf = unsafe { self.stream.alloc::<T>(len) }.map_err(Self::driver_err)?;
        if bytes > 0 {
            let (ptr, _record) = buf.device_ptr_mut(&self.stream);
            // SAFETY: `ptr` addresses the `bytes` bytes just allocated on this stream, alive for the call.
            unsafe { cudarc::driver::result::memset_d8_async(ptr, 0xFF, bytes, self.stream.cu_stream()) }
                .map_err(Self::driver_err)?;
        }
        Ok(buf)
    }

    fn alloc_zeros<T: DeviceValue>(&self, len: usize) -> Result<CudaSlice<T>> {
        self.stream.alloc_zeros(len).map_err(Self::driver_err)
    }

    fn slice<'a, T: DeviceValue>(
        &'a self,
        buf: &'a CudaSlice<T>,
        range: std::ops::Range<usize>,
    ) -> Result<CudaView<'a, T>> {
        check_range(&range, cudarc::driver::DeviceSlice::len(buf))?;
        Ok(buf.slice(range))
    }

    fn slice_mut<'a, T: DeviceValue>(
        &'a self,
        buf: &'a mut CudaSlice<T>,
        range: std::ops::Range<usize>,
    ) -> Result<CudaViewMut<'a, T>> {
        check_range(&range, cudarc::driver::DeviceSlice::len(buf))?;
        Ok(buf.slice_mut(range))
    }

    fn copy<T: DeviceValue>(
        &self,
        src: &impl DeviceSlice<T, Self>,
        dst: &mut impl DeviceSliceMut<T, Self>,
    ) -> Result<()> {
        let ((s, _src_guard), (d, _dst_guard), bytes) = copy_regions(self, src, dst)?;
        if bytes == 0 {
            return Ok(());
        }
        self.stream.context().bind_to_thread().map_err(Self::driver_err)?;
        // SAFETY: `s` and `d` address `bytes` bytes of live memory of this context (their slices' lengths,
        // checked equal above), the ranges do not overlap, and the guards record the stream's use of both.
        unsafe { cudarc::driver::result::memcpy_dtod_async(d, s, bytes, self.stream.cu_stream()) }
            .map_err(Self::driver_err)
    }

    fn write<T: DeviceValue>(&self, src: &[T], dst: &mut impl DeviceSliceMut<T, Self>) -> Result<()> {
        let (d, _dst_guard) = write_region(self, src, dst)?;
        if src.is_empty() {
            return Ok(());
        }
        self.stream.context().bind_to_thread().map_err(Self::driver_err)?;
        // SAFETY: `d` addresses `src.len()` elements of live memory of this context (checked above), and
        // `src` outlives the copy: the stream is synchronized below before `src`'s borrow ends (the copy
        // is truly asynchronous when `src` is page-locked memory).
        unsafe { cudarc::driver::result::memcpy_htod_async(d, src, self.stream.cu_stream()) }
            .map_err(Self::driver_err)?;
        self.stream.synchronize().map_err(Self::driver_err)
    }

    fn download<T: DeviceValue>(&self, buf: &CudaSlice<T>) -> Result<Vec<T>> {
        self.stream.clone_dtoh(buf).map_err(Self::driver_err)
    }

    fn synchronize(&self) -> Result<()> {
        self.stream.synchronize().map_err(Self::driver_err)
    }
}

/// Checks that a buffer belongs to the backend's context.
fn same_context(buf_ctx: &Arc<CudaContext>, backend: &CudaBackend) -> Result<()> {
    if Arc::ptr_eq(buf_ctx, backend.stream.context()) {
        Ok(())
    } else {
        Err(Error::ContextMismatch {
            op: "launch",
            tensor: "buffer",
        })
    }
}

macro_rules! cuda_slice_impls {
    ($($ty:ty),*) => {$(
        impl<T: DeviceValue> DeviceSlice<T, CudaBackend> for $ty {
            fn len(&self) -> usize {
                cudarc::driver::DeviceSlice::len(self)
            }
            fn device_addr<'a>(&'a self, backend: &'a CudaBackend) -> Result<(u64, SyncOnDrop<'a>)> {
                same_context(cudarc::driver::DeviceSlice::stream(self).context(), backend)?;
                Ok(self.device_ptr(&backend.stream))
            }
        }
    )*};
}
cuda_slice_impls!(CudaSlice<T>, CudaView<'_, T>, CudaViewMut<'_, T>);

macro_rules! cuda_slice_mut_impls {
    ($($ty:ty),*) => {$(
        impl<T: DeviceValue> DeviceSliceMut<T, CudaBackend> for $ty {
            fn device_addr_mut<'a>(&'a mut self, backend: &'a CudaBackend) -> Result<(u64, SyncOnDrop<'a>)> {
                same_context(cudarc::driver::DeviceSlice::stream(self).context(), backend)?;
                Ok(self.device_ptr_mut(&backend.stream))
            }
        }
    )*};
}
cuda_slice_mut_impls!(CudaSlice<T>, CudaViewMut<'_, T>);
