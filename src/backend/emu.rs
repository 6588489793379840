//! The emulator backend: the embedded PTX of each `cuda/*.cu`, run by ptx-emu with every check on
//! (memcheck, racecheck, initcheck, synccheck, globalrace), with the same kernel names, params bytes and launch
//! dimensions as the CUDA backend. A check that fires is an `Error::Emulator` naming kernel, block,
//! thread, PTX line and address.

use std::collections::HashMap;
use std::marker::PhantomData;
use std::sync::{Arc, Mutex};

use super::{copy_regions, write_region, Backend, DeviceSlice, DeviceSliceMut, DeviceValue, Kernel, LaunchDims};
use crate::error::{Error, Result};
use crate::raw::{module_image, KernelParams};

/// Shared memory per block the emulator offers (an H100's opt-in limit).
const EMU_MAX_SHARED_BYTES: u32 = 227 * 1024;

/// The SM count [`EmuBackend::new`] reports (an H100 SXM's; `with_sm_count` changes it, `with_model`
/// takes the modelled GPU's).
pub const EMU_DEFAULT_SM_COUNT: u32 = 132;

/// The seed of [`EmuBackend::new`]'s perturbed approximate math.
pub const EMU_APPROX_SEED: u64 = 0x11a3_a000;

/// Runs the kernels on ptx-emu.
pub struct EmuBackend {
    device: Arc<ptx_emu::Device>,
    modules: Mutex<HashMap<&'static str, Arc<ptx_emu::Module>>>,
    metrics: Mutex<Vec<(String, ptx_emu::Metrics)>>,
    /// The speed-of-light model every launch runs under ([`EmuBackend::with_model`]).
    model: Option<(ptx_emu::Arch, Option<u64>)>,
    predictions: Mutex<Vec<(String, ptx_emu::Prediction)>>,
    sm_count: u32,
}

impl Default for EmuBackend {
    fn default() -> Self {
        Self::new()
    }
}

impl EmuBackend {
    /// An emulated device that behaves as hardware may: every check on, and approximate instructions
    /// (`ex2.approx` in `expf` and softmax, ...) perturbed within the PTX ISA's error bounds
    /// (`ptx_emu::Approx::Perturbed`, seed [`EMU_APPROX_SEED`]), so that nothing passes here only
    /// because the emulator computes them exactly.
    pub fn new() -> Self {
        Self::with_options(ptx_emu::Options {
            approx: ptx_emu::Approx::Perturbed { seed: EMU_APPROX_SEED },
            ..ptx_emu::Options::default()
        })
    }

    /// An emulated device with the given options (checks, worker threads).
    pub fn with_options(options: ptx_emu::Options) -> Self {
        EmuBackend {
            device: Arc::new(ptx_emu::Device::new(options)),
            modules: Mutex::new(HashMap::new()),
            metrics: Mutex::new(Vec::new()),
            model: None,
            predictions: Mutex::new(Vec::new()),
            sm_count: EMU_DEFAULT_SM_COUNT,
        }
    }

    /// The same backend reporting `sm_count` streaming multiprocessors ([`Backend::sm_count`], at
    /// least 1), so launch configurations sized for another GPU run here.
    pub fn with_sm_count(mut self, sm_count: u32) -> Self {
        self.sm_count = sm_count.max(1);
        self
    }

    /// An emulated device whose every launch also predicts its time on the GPU `arch` (a name of
    /// `ptx_emu::model::arch::all()`, e.g. `"h100-sxm"`), with the registers ptxas reported for that
    /// arch at build time (the nearest older SASS arch the crate was built for). With
    /// `sample_blocks`, launches run only that many blocks and scale up: outputs are then
    /// incomplete, so use it for predictions only. Checks are off (a sampled launch reads what the
    /// blocks not run would have written); use [`EmuBackend::new`] for correctness.
    pub fn with_model(arch: &str, sample_blocks: Option<u64>) -> Result<Self> {
        let a = ptx_emu::model::arch::by_name(arch).ok_or_else(|| Error::InvalidArgument {
            op: "EmuBackend::with_model",
            reason: format!("unknown GPU `{arch}` (one of: {})", ptx_emu::model::arch::names()),
        })?;
        let mut b = Self::with_options(ptx_emu::Options {
            checks: ptx_emu::Checks::none(),
            ..ptx_emu::Options::default()
        });
        b.sm_count = a.sms;
        b.model = Some((a, sample_blocks));
        Ok(b)
    }

    /// The predictions of every launch so far (with [`EmuBackend::with_model`]), by kernel name, and
    /// clears the list.
    pub fn take_predictions(&self) -> Vec<(String, ptx_emu::Prediction)> {
        std::mem::take(&mut *self.predictions.lock().unwrap_or_else(|e| e.into_inner()))
    }

    /// Registers per thread of `kernel` for compute capability `cc` (x10): ptxas's report for the
    /// newest SASS arch of the build that is not newer than `cc`.
    fn registers(kernel: &str, cc: u32) -> Option<u32> {
        crate::raw::PTXAS_REPORT
            .iter()
            .filter(|r| r.kernel == kernel)
            .filter_map(|r| Some((r.arch.strip_prefix("sm_")?.parse::<u32>().ok()?, r.registers)))
            .filter(|(a, _)| *a <= cc)
            .max_by_key(|(a, _)| *a)
            .map(|(_, regs)| regs)
    }

    /// The metrics of every launch so far, by kernel name, and clears the list.
    pub fn take_metrics(&self) -> Vec<(String, ptx_emu::Metrics)> {
        std::mem::take(&mut *self.metrics.lock().unwrap_or_else(|e| e.into_inner()))
    }

    fn module(&self, name: &'static str) -> Result<Arc<ptx_emu::Module>> {
        let mut modules = self.modules.lock().unwrap_or_else(|e| e.into_inner());
        if let Some(m) = modules.get(name) {
            return Ok(m.clone());
        }
        let image = module_image(name).ok_or_else(|| Error::KernelLoad {
            kernel: name.into(),
            detail: "no compiled module".into(),
        })?;
        let m = self.device.load_module(image.ptx).map_err(|e| Error::KernelLoad {
            kernel: name.into(),
            detail: e.to_string(),
        })?;
        modules.insert(name, m.clone());
        Ok(m)
    }

    /// A buffer of `len` elements from `alloc` (never written, or written zeros).
    fn new_buffer<T: DeviceValue>(
        &self,
        len: usize,
        op: &'static str,
        alloc: fn(&ptx_emu::Device, usize) -> std::result::Result<u64, ptx_emu::EmuError>,
    ) -> Result<EmuBuffer<T>> {
        let bytes = len
            .checked_mul(std::mem::size_of::<T>())
            .ok_or_else(|| Error::SizeOverflow {
                op,
                what: format!("{len} elements"),
            })?;
        // Zero-length buffers still get a distinct address (one byte that nothing may touch).
        let addr = alloc(&self.device, bytes.max(1)).map_err(Self::emu_err)?;
        Ok(EmuBuffer {
            device: self.device.clone(),
            addr,
            len,
            _elem: PhantomData,
        })
    }

    fn emu_err(e: ptx_emu::EmuError) -> Error {
        Error::Emulator { detail: e.to_string() }
    }
}

impl Backend for EmuBackend {
    type Guard<'a> = ();
    type Buffer<T: DeviceValue> = EmuBuffer<T>;
    type View<'a, T: DeviceValue> = EmuView<'a, T>;
    type ViewMut<'a, T: DeviceValue> = EmuViewMut<'a, T>;

    fn name(&self) -> String {
        "emu".into()
    }

    fn device_name(&self) -> String {
        match &self.model {
            Some((arch, _)) => format!("ptx-emu (modelling {})", arch.name),
            None => "ptx-emu".into(),
        }
    }

    fn launch<P: KernelParams>(&self, kernel: Kernel<'_>, dims: LaunchDims, params: &P) -> Result<()> {
        let module = self.module(kernel.module)?;
        let cfg = ptx_emu::LaunchConfig {
            grid: dims.grid,
            block: dims.block,
            shared_bytes: dims.shared_bytes,
        };
        let report = match &self.model {
            None => self.device.launch(&module, kernel.name, &cfg, params.as_bytes()),
            Some((arch, sample_blocks)) => {
                let regs = Self::registers(kernel.name, arch.cc).ok_or_else(|| Error::KernelLoad {
                    kernel: kernel.name.into(),
                    detail: if crate::raw::PTXAS_REPORT.is_empty() {
                        "no ptxas report: this build took the committed PTX (no nvcc), and the speed-of-light \
                         model takes each kernel's registers from nvcc's ptxas report; install nvcc (README, \
                         Prerequisites) for model predictions"
                            .to_string()
                    } else {
                        format!("no ptxas report for sm_{} or older", arch.cc)
                    },
                })?;
                let m = ptx_emu::ModelOptions {
                    arch: arch.clone(),
                    regs_per_thread: regs,
                    sample_blocks: *sample_blocks,
                };
                self.device
                    .launch_with_model(&module, kernel.name, &cfg, params.as_bytes(), &m)
            }
        }
        .map_err(Self::emu_err)?;
        if let Some(p) = &report.prediction {
            self.predictions
                .lock()
                .unwrap_or_else(|e| e.into_inner())
                .push((kernel.name.to_string(), p.clone()));
        }
        self.metrics
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .push((kernel.name.to_string(), report.metrics));
        Ok(())
    }

    fn max_shared_bytes_per_block(&self) -> u32 {
        EMU_MAX_SHARED_BYTES
    }

    fn sm_count(&self) -> u32 {
        self.sm_count
    }

    fn upload<T: DeviceValue>(&self, data: &[T]) -> Result<EmuBuffer<T>> {
        let buf = self.alloc_poisoned::<T>(data.len())?;
        self.device
            .write(buf.addr, bytemuck::cast_slice(data))
            .map_err(Self::emu_err)?;
        Ok(buf)
    }

    fn alloc_poisoned<T: DeviceValue>(&self, len: usize) -> Result<EmuBuffer<T>> {
        self.new_buffer(len, "alloc", ptx_emu::Device::alloc)
    }

    fn alloc_zeros<T: DeviceValue>(&self, len: usize) -> Result<EmuBuffer<T>> {
        self.new_buffer(len, "alloc_zeros", ptx_emu::Device::alloc_zeroed)
    }

    fn slice<'a, T: DeviceValue>(
        &'a self,
        buf: &'a EmuBuffer<T>,
        range: std::ops::Range<usize>,
    ) -> Result<EmuView<'a, T>> {
        buf.slice(range)
    }

    fn slice_mut<'a, T: DeviceValue>(
        &'a self,
        buf: &'a mut EmuBuffer<T>,
        range: std::ops::Range<usize>,
    ) -> Result<EmuViewMut<'a, T>> {
        buf.slice_mut(range)
    }

    fn copy<T: DeviceValue>(
        &self,
        src: &impl DeviceSlice<T, Self>,
        dst: &mut impl DeviceSliceMut<T, Self>,
    ) -> Result<()> {
        let ((s, ()), (d, ()), bytes) = copy_regions(self, src, dst)?;
        // The emulator copies the initcheck bits too: never-written bytes stay never written.
        self.device.copy(d, s, bytes).map_err(Self::emu_err)
    }

    fn write<T: DeviceValue>(&self, src: &[T], dst: &mut impl DeviceSliceMut<T, Self>) -> Result<()> {
        let (d, ()) = write_region(self, src, dst)?;
        if src.is_empty() {
            return Ok(());
        }
        self.device.write(d, bytemuck::cast_slice(src)).map_err(Self::emu_err)
    }

    fn download<T: DeviceValue>(&self, buf: &EmuBuffer<T>) -> Result<Vec<T>> {
        let mut out = vec![T::zeroed(); buf.len];
        self.device
            .read(buf.addr, bytemuck::cast_slice_mut(&mut out))
            .map_err(Self::emu_err)?;
        Ok(out)
    }

    fn synchronize(&self) -> Result<()> {
        Ok(())
    }
}

/// A buffer in the emulator's global memory; freed on drop.
pub struct EmuBuffer<T> {
    device: Arc<ptx_emu::Device>,
    addr: u64,
    len: usize,
    _elem: PhantomData<T>,
}

impl<T> EmuBuffer<T> {
    /// The emulated device address of element 0.
    pub fn addr(&self) -> u64 {
        self.addr
    }
}

impl<T> Drop for EmuBuffer<T> {
    fn drop(&mut self) {
        // A failed free can only mean a double free, which ownership rules out; nothing to report.
        let _ = self.device.free(self.addr);
    }
}

impl<T: DeviceValue> DeviceSlice<T, EmuBackend> for EmuBuffer<T> {
    fn len(&self) -> usize {
        self.len
    }
    fn device_addr<'a>(&'a self, backend: &'a EmuBackend) -> Result<(u64, ())> {
        if !Arc::ptr_eq(&self.device, &backend.device) {
            return Err(Error::ContextMismatch {
                op: "launch",
                tensor: "buffer",
            });
        }
        Ok((self.addr, ()))
    }
}

impl<T: DeviceValue> DeviceSliceMut<T, EmuBackend> for EmuBuffer<T> {
    fn device_addr_mut<'a>(&'a mut self, backend: &'a EmuBackend) -> Result<(u64, ())> {
        self.device_addr(backend)
    }
}

impl<T: DeviceValue> EmuBuffer<T> {
    /// Elements `range` of this buffer, read-only (like `CudaSlice::slice`): lets tests and users pass
    /// tensors that start anywhere in an allocation (unaligned to 16 bytes, inside a larger cache).
    ///
    /// # Errors
    /// `InvalidArgument` when `range` is not inside the buffer.
    pub fn slice(&self, range: std::ops::Range<usize>) -> Result<EmuView<'_, T>> {
        let addr = self.sub_addr(&range)?;
        Ok(EmuView {
            device: &self.device,
            addr,
            len: range.len(),
            _elem: PhantomData,
        })
    }

    /// Elements `range` of this buffer, writable (like `CudaSlice::slice_mut`).
    ///
    /// # Errors
    /// `InvalidArgument` when `range` is not inside the buffer.
    pub fn slice_mut(&mut self, range: std::ops::Range<usize>) -> Result<EmuViewMut<'_, T>> {
        let addr = self.sub_addr(&range)?;
        Ok(EmuViewMut {
            device: &self.device,
            addr,
            len: range.len(),
            _elem: PhantomData,
        })
    }

    fn sub_addr(&self, range: &std::ops::Range<usize>) -> Result<u64> {
        super::check_range(range, self.len)?;
        Ok(self.addr + (range.start * std::mem::size_of::<T>()) as u64)
    }

    /// A writable view of `len` elements at the byte address `addr`, which the borrow checker does not
    /// track (the emulator's counterpart of cudarc's `upgrade_device_ptr`).
    ///
    /// # Safety
    /// The caller answers for aliasing and alignment. The emulator itself stays memory-safe whatever
    /// `addr` is (memcheck reports any access outside its allocations), so this exists to test the ops'
    /// checks for misaligned and overlapping tensors.
    pub unsafe fn raw_view_mut(&self, addr: u64, len: usize) -> EmuViewMut<'_, T> {
        EmuViewMut {
            device: &self.device,
            addr,
            len,
            _elem: PhantomData,
        }
    }
}

/// A read-only window into an [`EmuBuffer`].
pub struct EmuView<'a, T> {
    device: &'a Arc<ptx_emu::Device>,
    addr: u64,
    len: usize,
    _elem: PhantomData<&'a T>,
}

/// A writable window into an [`EmuBuffer`].
pub struct EmuViewMut<'a, T> {
    device: &'a Arc<ptx_emu::Device>,
    addr: u64,
    len: usize,
    _elem: PhantomData<&'a mut T>,
}

macro_rules! emu_view_impls {
    ($ty:ident) => {
        impl<T: DeviceValue> DeviceSlice<T, EmuBackend> for $ty<'_, T> {
            fn len(&self) -> usize {
                self.len
            }
            fn device_addr<'a>(&'a self, backend: &'a EmuBackend) -> Result<(u64, ())> {
                if !Arc::ptr_eq(self.device, &backend.device) {
                    return Err(Error::ContextMismatch {
                        op: "launch",
                        tensor: "buffer",
                    });
                }
                Ok((self.addr, ()))
            }
        }
    };
}
emu_view_impls!(EmuView);
emu_view_impls!(EmuViewMut);

impl<T: DeviceValue> DeviceSliceMut<T, EmuBackend> for EmuViewMut<'_, T> {
    fn device_addr_mut<'a>(&'a mut self, backend: &'a EmuBackend) -> Result<(u64, ())> {
        self.device_addr(backend)
    }
}
