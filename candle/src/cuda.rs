//! The CUDA path: each op takes candle's device buffers as cudarc views (no copy), allocates its output
//! on candle's device, and launches llama-kernels' kernel on candle's stream (`CudaBackend::new` of that
//! stream: the kernels are loaded once per context and cached by llama-kernels).

use candle_core::backend::BackendStorage;
use candle_core::cuda_backend::cudarc::driver::{CudaSlice, CudaView};
use candle_core::cuda_backend::{CudaDType, CudaDevice};
use candle_core::{CudaStorage, DType, Layout, Result, Shape};
use llama_kernels::backend::{Backend, CudaBackend, DeviceValue};
use llama_kernels::ops;
use llama_kernels::{AttentionShape, RmsNormShape, RopeShape, SwigluShape};

use crate::{with_float, wrap, Attention, RmsNorm, Rope, Swiglu};

fn backend(dev: &CudaDevice) -> Result<CudaBackend> {
    CudaBackend::new(dev.cuda_stream()).map_err(wrap)
}

/// The contiguous elements of a CUDA tensor, as a view.
fn view<'a, T: CudaDType>(s: &'a CudaStorage, l: &Layout, name: &str) -> Result<CudaView<'a, T>> {
    let (start, end) = l
        .contiguous_offsets()
        .ok_or_else(|| candle_core::Error::Msg(format!("{name} must be contiguous (call .contiguous())")))?;
    Ok(s.as_cuda_slice::<T>()?.slice(start..end))
}

/// An output buffer of `n` elements (every element is written by the op).
fn output<T: CudaDType + DeviceValue>(dev: &CudaDevice, n: usize) -> Result<CudaSlice<T>> {
    // SAFETY: the op that follows writes all `n` elements before anything reads them.
    unsafe { dev.alloc::<T>(n) }
}

fn storage<T: CudaDType>(out: CudaSlice<T>, dev: &CudaDevice, shape: &Shape) -> (CudaStorage, Shape) {
    (CudaStorage::wrap_cuda_slice(out, dev.clone()), shape.clone())
}

pub(crate) fn rms_norm(
    op: &RmsNorm,
    xs: &CudaStorage,
    xl: &Layout,
    ws: &CudaStorage,
    wl: &Layout,
    shape: RmsNormShape,
) -> Result<(CudaStorage, Shape)> {
    let dev = &xs.device;
    let b = backend(dev)?;
    with_float!("rms_norm", xs.dtype(), T => {
        let (x, w) = (view::<T>(xs, xl, "x")?, view::<T>(ws, wl, "weight")?);
        let mut out = output::<T>(dev, shape.rows * shape.hidden)?;
        ops::rms_norm::rms_norm(&b, &x, &w, &mut out, shape, op.cfg).map_err(wrap)?;
        Ok(storage(out, dev, xl.shape()))
    })
}

pub(crate) fn swiglu(
    op: &Swiglu,
    gs: &CudaStorage,
    gl: &Layout,
    us: &CudaStorage,
    ul: &Layout,
    shape: SwigluShape,
) -> Result<(CudaStorage, Shape)> {
    let dev = &gs.device;
    let b = backend(dev)?;
    with_float!("swiglu", gs.dtype(), T => {
        let (g, u) = (view::<T>(gs, gl, "gate")?, view::<T>(us, ul, "up")?);
        let mut out = output::<T>(dev, shape.rows * shape.d)?;
        ops::swiglu::swiglu(&b, &g, &u, &mut out, shape, op.rounding).map_err(wrap)?;
        Ok(storage(out, dev, gl.shape()))
    })
}

pub(crate) fn rope(
    op: &Rope,
    xs: &CudaStorage,
    xl: &Layout,
    ps: &CudaStorage,
    pl: &Layout,
    shape: RopeShape,
    repeat: usize,
) -> Result<(CudaStorage, Shape)> {
    let dev = &xs.device;
    let b = backend(dev)?;
    let pos = view::<i32>(ps, pl, "positions")?;
    // Positions of every token: the batch's shared (t,) repeated on the device when b > 1.
    let mut all = output::<i32>(dev, shape.tokens)?;
    let t = shape.tokens / repeat;
    for r in 0..repeat {
        let mut dst = all.slice_mut(r * t..(r + 1) * t);
        b.copy(&pos, &mut dst).map_err(wrap)?;
    }
    with_float!("rope", xs.dtype(), T => {
        let x = view::<T>(xs, xl, "x")?;
        let mut out = output::<T>(dev, shape.tokens * shape.n_heads * shape.head_dim)?;
        b.copy(&x, &mut out).map_err(wrap)?;
        ops::rope::rope_with_config(&b, &mut out, None::<&mut CudaSlice<T>>, &all, shape, op.cfg).map_err(wrap)?;
        Ok(storage(out, dev, xl.shape()))
    })
}

pub(crate) fn attention(
    op: &Attention,
    (qs, ql): (&CudaStorage, &Layout),
    (ks, kl): (&CudaStorage, &Layout),
    (vs, vl): (&CudaStorage, &Layout),
    shape: AttentionShape,
) -> Result<(CudaStorage, Shape)> {
    let dev = &qs.device;
    let b = backend(dev)?;
    if qs.dtype() != ks.dtype() || qs.dtype() != vs.dtype() {
        candle_core::bail!("attention: q, k and v dtypes differ");
    }
    with_float!("attention", qs.dtype(), T => {
        let (q, k, v) = (view::<T>(qs, ql, "q")?, view::<T>(ks, kl, "k")?, view::<T>(vs, vl, "v")?);
        let mut out = output::<T>(dev, ql.shape().elem_count())?;
        ops::attention::attention(&b, &q, &k, &v, &mut out, shape, op.cfg).map_err(wrap)?;
        Ok(storage(out, dev, ql.shape()))
    })
}
