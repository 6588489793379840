//! RMSNorm and the fused residual add + RMSNorm (vLLM's `fused_add_rms_norm`).
//!
//! | | |
//! |---|---|
//! | dtypes | `f32`, `f16`, `bf16` (x, residual, weight and out share the dtype) |
//! | layouts | `x, residual, out: (rows, hidden)`, `weight: (hidden,)`; contiguous, or each at its own row stride in [`rms_norm_strided`] and [`fused_add_rms_norm_strided`] ([`RmsNormStrides`]: e.g. the q or k heads of a fused QKV output for QK-norm, or every other row) |
//! | math | `out = s / sqrt(mean(s²) + eps) · weight`, `s = x` or (fused) `s = round_T(x + residual)`, which is also written to `residual` |
//! | kernel | `cuda/rms_norm.cu` v1: one block per row (32..256 threads), sum of squares in f32 with a block reduction, a second pass that normalizes from registers (rows up to 8192 bf16/f16, 4096 f32 elements; wider rows are re-read); 16-byte vector accesses with a scalar tail when every row starts 16-byte aligned |
//! | numerics | [`Rounding::MatchTorch`](crate::Rounding::MatchTorch) (default): `round_T(round_T(s·r)·w)` as Meta/HF LLaMA; [`Rounding::Once`](crate::Rounding::Once): `round_T(s·r·w)`; `r` in f32 (`sqrt.rn`, `div.rn`) |
//! | in place | [`rms_norm_in_place`] and [`fused_add_rms_norm_in_place`] write `out` over `x` |
//! | zero sizes | `rows == 0` or `hidden == 0`: a no-op |
//! | overflow | the f32 sum of squares overflowing gives `r = 0` (signed zeros), as PyTorch; see [`crate::reference::rms_norm`](mod@crate::reference::rms_norm) |
//! | limits | `rows ≤ i32::MAX`, `hidden ≤ i32::MAX - 4096` |

use crate::backend::{Backend, DeviceSlice, DeviceSliceMut, DeviceValue, Kernel, LaunchDims};
use crate::dtype::{DType, Elem};
use crate::error::{Error, Result};
use crate::ops::rowwise::{self, Region};
use crate::ops::validate;
use crate::raw::{rounding_code, RmsNormParams};
use crate::shapes::{RmsNormConfig, RmsNormShape, RmsNormStrides};

const OP: &str = "rms_norm";
const OP_FUSED: &str = "fused_add_rms_norm";

/// The RMSNorm entry points: plain and fused, one per dtype.
pub const KERNELS: &[Kernel<'static>] = &[
    Kernel {
        module: "rms_norm",
        name: "rms_norm_f32",
    },
    Kernel {
        module: "rms_norm",
        name: "rms_norm_f16",
    },
    Kernel {
        module: "rms_norm",
        name: "rms_norm_bf16",
    },
    Kernel {
        module: "rms_norm",
        name: "fused_add_rms_norm_f32",
    },
    Kernel {
        module: "rms_norm",
        name: "fused_add_rms_norm_f16",
    },
    Kernel {
        module: "rms_norm",
        name: "fused_add_rms_norm_bf16",
    },
];

/// `RMS_NORM_MAX_THREADS` of `cuda/rms_norm.cu`.
const MAX_THREADS: usize = 256;
/// The largest `hidden`: the kernel's `int` element index runs up to `MAX_THREADS · 16` past it.
const MAX_HIDDEN: usize = i32::MAX as usize - MAX_THREADS * VEC_BYTES;
const VEC_BYTES: usize = 16;

fn kernel_for(dtype: DType, fused: bool) -> Kernel<'static> {
    KERNELS[dtype.index() + if fused { 3 } else { 0 }]
}

/// Grid and block of one launch: one block per row (`grid.x`, up to 2^31 - 1 rows), and enough whole
/// warps for one chunk (16 bytes when vectorized, else one element) per thread, capped at 256 threads: a
/// 4096-wide bf16 row is 512 chunks, 2 per thread; a 64-wide row gets one warp instead of 8 idle ones.
pub(crate) fn launch_config(shape: RmsNormShape, elem_bytes: usize, vectorized: bool) -> Result<LaunchDims> {
    let per_chunk = if vectorized { VEC_BYTES / elem_bytes } else { 1 };
    let chunks = shape.hidden.div_ceil(per_chunk);
    let threads = chunks.div_ceil(32).clamp(1, MAX_THREADS / 32) * 32;
    Ok(LaunchDims {
        grid: [validate::to_i32(OP, "rows", shape.rows)? as u32, 1, 1],
        block: [threads as u32, 1, 1],
        shared_bytes: 0,
    })
}

/// Whether every row of each tensor starts 16-byte aligned: the base addresses are, and so are the row
/// strides, unless there is a single row. The kernel then uses vector accesses for the whole chunks of
/// each row and scalar ones for the rest.
pub(crate) fn can_vectorize(addrs: &[u64], strides: &[usize], rows: usize, elem_bytes: usize) -> bool {
    let stride_ok = rows == 1 || strides.iter().all(|s| (s * elem_bytes) % VEC_BYTES == 0);
    stride_ok && addrs.iter().all(|a| a % VEC_BYTES as u64 == 0)
}

fn check_shape(op: &'static str, shape: RmsNormShape, cfg: RmsNormConfig) -> Result<()> {
    validate::check_finite_positive(op, "eps", cfg.eps)?;
    validate::to_i32(op, "rows", shape.rows)?;
    // The kernel steps an `int` index by up to one block of 16-byte chunks past the last element.
    if shape.hidden > MAX_HIDDEN {
        return Err(Error::SizeOverflow {
            op,
            what: format!("hidden = {} is over the kernel's limit {}", shape.hidden, MAX_HIDDEN),
        });
    }
    Ok(())
}

/// The device addresses of one launch; `residual` only for the fused op; row strides in elements.
struct Addrs {
    x: u64,
    out: u64,
    weight: u64,
    residual: Option<u64>,
    strides: RmsNormStrides,
}

fn launch_rms<T: Elem + DeviceValue, B: Backend>(
    backend: &B,
    op: &'static str,
    a: Addrs,
    shape: RmsNormShape,
    cfg: RmsNormConfig,
) -> Result<()> {
    if shape.rows == 0 || shape.hidden == 0 {
        return Ok(()); // nothing to normalize (validated like any other call)
    }
    let elem = std::mem::size_of::<T>();
    let st = a.strides;
    let mut all = vec![a.x, a.out, a.weight];
    all.extend(a.residual);
    let mut strides = vec![st.x, st.out];
    strides.extend(a.residual.map(|_| st.residual));
    let vectorized = can_vectorize(&all, &strides, shape.rows, elem);
    let dims = launch_config(shape, elem, vectorized)?;
    let params = RmsNormParams {
        out: a.out as *mut std::ffi::c_void,
        x: a.x as *const std::ffi::c_void,
        residual: a.residual.map_or(std::ptr::null_mut(), |r| r as *mut std::ffi::c_void),
        weight: a.weight as *const std::ffi::c_void,
        x_row_stride: validate::to_i64(op, "x row stride", st.x)?,
        out_row_stride: validate::to_i64(op, "out row stride", st.out)?,
        residual_row_stride: if a.residual.is_some() {
            validate::to_i64(op, "residual row stride", st.residual)?
        } else {
            0
        },
        rows: validate::to_i32(op, "rows", shape.rows)?,
        hidden: validate::to_i32(op, "hidden", shape.hidden)?,
        eps: cfg.eps,
        rounding: rounding_code(cfg.rounding),
        vectorized: i32::from(vectorized),
        reserved0: 0,
    };
    backend.launch(kernel_for(T::DTYPE, a.residual.is_some()), dims, &params)
}

/// Byte length of a `(rows, hidden)` tensor (already checked not to overflow by the length checks).
fn bytes<T>(shape: RmsNormShape) -> usize {
    shape.rows * shape.hidden * std::mem::size_of::<T>()
}

/// `out ← rms_norm(x) · weight` (module docs for layouts and rounding).
///
/// # Errors
/// `ShapeMismatch` for a wrong buffer length; `InvalidArgument`
/// unless `eps` is finite and > 0; `SizeOverflow` past the limits; `Misaligned`; `Aliasing` when `out`
/// overlaps `x` or `weight` (use [`rms_norm_in_place`] to overwrite `x`); backend errors.
pub fn rms_norm<T: Elem + DeviceValue, B: Backend>(
    backend: &B,
    x: &impl DeviceSlice<T, B>,
    weight: &impl DeviceSlice<T, B>,
    out: &mut impl DeviceSliceMut<T, B>,
    shape: RmsNormShape,
    cfg: RmsNormConfig,
) -> Result<()> {
    check_shape(OP, shape, cfg)?;
    let dims = [shape.rows, shape.hidden];
    let (x_addr, _xg) = validate::addr_of(OP, "x", x, backend, &dims)?;
    let (w_addr, _wg) = validate::addr_of(OP, "weight", weight, backend, &[shape.hidden])?;
    let (out_addr, _og) = validate::addr_of_mut(OP, "out", out, backend, &dims)?;
    let n = bytes::<T>(shape);
    let w_bytes = shape.hidden * std::mem::size_of::<T>();
    validate::check_no_overlap(OP, ("out", out_addr, n), ("x", x_addr, n))?;
    validate::check_no_overlap(OP, ("out", out_addr, n), ("weight", w_addr, w_bytes))?;
    let addrs = Addrs {
        x: x_addr,
        out: out_addr,
        weight: w_addr,
        residual: None,
        strides: RmsNormStrides::contiguous(shape.hidden),
    };
    launch_rms::<T, B>(backend, OP, addrs, shape, cfg)
}

/// `x ← rms_norm(x) · weight`, in place.
///
/// # Errors
/// As [`rms_norm`] (`Aliasing` when `x` overlaps `weight`).
pub fn rms_norm_in_place<T: Elem + DeviceValue, B: Backend>(
    backend: &B,
    x: &mut impl DeviceSliceMut<T, B>,
    weight: &impl DeviceSlice<T, B>,
    shape: RmsNormShape,
    cfg: RmsNormConfig,
) -> Result<()> {
    check_shape(OP, shape, cfg)?;
    let (w_addr, _wg) = validate::addr_of(OP, "weight", weight, backend, &[shape.hidden])?;
    let (x_addr, _xg) = validate::addr_of_mut(OP, "x", x, backend, &[shape.rows, shape.hidden])?;
    let w_bytes = shape.hidden * std::mem::size_of::<T>();
    validate::check_no_overlap(OP, ("x", x_addr, bytes::<T>(shape)), ("weight", w_addr, w_bytes))?;
    let addrs = Addrs {
        x: x_addr,
        out: x_addr,
        weight: w_addr,
        residual: None,
        strides: RmsNormStrides::contiguous(shape.hidden),
    };
    launch_rms::<T, B>(backend, OP, addrs, shape, cfg)
}

/// `residual ← round_T(x + residual)`, then `out ← rms_norm(residual) · weight` (module docs).
///
/// # Errors
/// As [`rms_norm`], plus `ShapeMismatch` for a wrong `residual` length and `Aliasing` when `residual`
/// or `out` overlaps another tensor.
pub fn fused_add_rms_norm<T: Elem + DeviceValue, B: Backend>(
    backend: &B,
    x: &impl DeviceSlice<T, B>,
    residual: &mut impl DeviceSliceMut<T, B>,
    weight: &impl DeviceSlice<T, B>,
    out: &mut impl DeviceSliceMut<T, B>,
    shape: RmsNormShape,
    cfg: RmsNormConfig,
) -> Result<()> {
    check_shape(OP_FUSED, shape, cfg)?;
    let dims = [shape.rows, shape.hidden];
    let (x_addr, _xg) = validate::addr_of(OP_FUSED, "x", x, backend, &dims)?;
    let (w_addr, _wg) = validate::addr_of(OP_FUSED, "weight", weight, backend, &[shape.hidden])?;
    let (r_addr, _rg) = validate::addr_of_mut(OP_FUSED, "residual", residual, backend, &dims)?;
    let (out_addr, _og) = validate::addr_of_mut(OP_FUSED, "out", out, backend, &dims)?;
    let n = bytes::<T>(shape);
    let w = ("weight", w_addr, shape.hidden * std::mem::size_of::<T>());
    for written in [("out", out_addr, n), ("residual", r_addr, n)] {
        validate::check_no_overlap(OP_FUSED, written, ("x", x_addr, n))?;
        validate::check_no_overlap(OP_FUSED, written, w)?;
    }
    validate::check_no_overlap(OP_FUSED, ("out", out_addr, n), ("residual", r_addr, n))?;
    let addrs = Addrs {
        x: x_addr,
        out: out_addr,
        weight: w_addr,
        residual: Some(r_addr),
        strides: RmsNormStrides::contiguous(shape.hidden),
    };
    launch_rms::<T, B>(backend, OP_FUSED, addrs, shape, cfg)
}

/// vLLM's in-place form: `residual ← round_T(x + residual)`, then `x ← rms_norm(residual) · weight`.
///
/// # Errors
/// As [`fused_add_rms_norm`].
pub fn fused_add_rms_norm_in_place<T: Elem + DeviceValue, B: Backend>(
    backend: &B,
    x: &mut impl DeviceSliceMut<T, B>,
    residual: &mut impl DeviceSliceMut<T, B>,
    weight: &impl DeviceSlice<T, B>,
    shape: RmsNormShape,
    cfg: RmsNormConfig,
) -> Result<()> {
    check_shape(OP_FUSED, shape, cfg)?;
    let dims = [shape.rows, shape.hidden];
    let (w_addr, _wg) = validate::addr_of(OP_FUSED, "weight", weight, backend, &[shape.hidden])?;
    let (x_addr, _xg) = validate::addr_of_mut(OP_FUSED, "x", x, backend, &dims)?;
    let (r_addr, _rg) = validate::addr_of_mut(OP_FUSED, "residual", residual, backend, &dims)?;
    let n = bytes::<T>(shape);
    let w = ("weight", w_addr, shape.hidden * std::mem::size_of::<T>());
    validate::check_no_overlap(OP_FUSED, ("x", x_addr, n), w)?;
    validate::check_no_overlap(OP_FUSED, ("residual", r_addr, n), w)?;
    validate::check_no_overlap(OP_FUSED, ("residual", r_addr, n), ("x", x_addr, n))?;
    let addrs = Addrs {
        x: x_addr,
        out: x_addr,
        weight: w_addr,
        residual: Some(r_addr),
        strides: RmsNormStrides::contiguous(shape.hidden),
    };
    launch_rms::<T, B>(backend, OP_FUSED, addrs, shape, cfg)
}

/// [`rms_norm`] with each tensor at its own row stride ([`RmsNormStrides`]; `strides.residual` unused):
/// each buffer holds exactly its span. `out` may be `x` itself (the same address and stride: in place).
///
/// # Errors
/// As [`rms_norm`]; `ShapeMismatch` unless each buffer holds its span; `InvalidShape` for an `out` stride
/// under `hidden`; `Aliasing` when `out` overlaps `x` (other than exactly) or `weight`.
pub fn rms_norm_strided<T: Elem + DeviceValue, B: Backend>(
    backend: &B,
    x: &impl DeviceSlice<T, B>,
    weight: &impl DeviceSlice<T, B>,
    out: &mut impl DeviceSliceMut<T, B>,
    shape: RmsNormShape,
    strides: RmsNormStrides,
    cfg: RmsNormConfig,
) -> Result<()> {
    check_shape(OP, shape, cfg)?;
    let (rows, hidden) = (shape.rows, shape.hidden);
    let (xr, _xg) = rowwise::input(OP, "x", x, backend, (rows, hidden, strides.x))?;
    let (wr, _wg) = rowwise::input(OP, "weight", weight, backend, (1, hidden, hidden))?;
    let (or, _og) = rowwise::output(OP, "out", out, backend, (rows, hidden, strides.out))?;
    rowwise::check_overlap(OP, ("out", or), ("x", xr), true)?;
    rowwise::check_overlap(OP, ("out", or), ("weight", wr), false)?;
    let addrs = Addrs {
        x: xr.addr,
        out: or.addr,
        weight: wr.addr,
        residual: None,
        strides,
    };
    launch_rms::<T, B>(backend, OP, addrs, shape, cfg)
}

/// [`fused_add_rms_norm`] with each tensor at its own row stride ([`RmsNormStrides`]): each buffer holds
/// exactly its span. `out` may be `x` itself (vLLM's in-place form, the same address and stride).
///
/// # Errors
/// As [`fused_add_rms_norm`]; `ShapeMismatch` unless each buffer holds its span; `InvalidShape` for an
/// `out` or `residual` stride under `hidden`.
#[allow(clippy::too_many_arguments)]
pub fn fused_add_rms_norm_strided<T: Elem + DeviceValue, B: Backend>(
    backend: &B,
    x: &impl DeviceSlice<T, B>,
    residual: &mut impl DeviceSliceMut<T, B>,
    weight: &impl DeviceSlice<T, B>,
    out: &mut impl DeviceSliceMut<T, B>,
    shape: RmsNormShape,
    strides: RmsNormStrides,
    cfg: RmsNormConfig,
) -> Result<()> {
    check_shape(OP_FUSED, shape, cfg)?;
    let (rows, hidden) = (shape.rows, shape.hidden);
    let (xr, _xg) = rowwise::input(OP_FUSED, "x", x, backend, (rows, hidden, strides.x))?;
    let (wr, _wg) = rowwise::input(OP_FUSED, "weight", weight, backend, (1, hidden, hidden))?;
    let (rr, _rg) = rowwise::output(
        OP_FUSED,
        "residual",
        residual,
        backend,
        (rows, hidden, strides.residual),
    )?;
    let (or, _og) = rowwise::output(OP_FUSED, "out", out, backend, (rows, hidden, strides.out))?;
    let written: [(&'static str, Region); 2] = [("out", or), ("residual", rr)];
    for w in written {
        rowwise::check_overlap(OP_FUSED, w, ("weight", wr), false)?;
    }
    rowwise::check_overlap(OP_FUSED, ("out", or), ("x", xr), true)?;
    rowwise::check_overlap(OP_FUSED, ("residual", rr), ("x", xr), false)?;
    rowwise::check_overlap(OP_FUSED, ("out", or), ("residual", rr), false)?;
    let addrs = Addrs {
        x: xr.addr,
        out: or.addr,
        weight: wr.addr,
        residual: Some(rr.addr),
        strides,
    };
    launch_rms::<T, B>(backend, OP_FUSED, addrs, shape, cfg)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn threads_follow_the_row_width() {
        let shape = |hidden| RmsNormShape { rows: 3, hidden };
        assert_eq!(launch_config(shape(4096), 2, true).unwrap().block, [256, 1, 1]); // 512 chunks
        assert_eq!(launch_config(shape(64), 2, true).unwrap().block, [32, 1, 1]); // 8 chunks
        assert_eq!(launch_config(shape(100), 4, false).unwrap().block, [128, 1, 1]);
        assert_eq!(launch_config(shape(1), 4, false).unwrap().grid, [3, 1, 1]);
    }

    #[test]
    fn vectorizes_only_when_every_row_is_aligned() {
        assert!(can_vectorize(&[0x1000, 0x2000], &[8, 8], 2, 2)); // 16-byte rows
        assert!(!can_vectorize(&[0x1000, 0x2002], &[8, 8], 2, 2)); // one base 2 bytes off
        assert!(!can_vectorize(&[0x1000], &[9], 2, 2)); // 18-byte rows
        assert!(can_vectorize(&[0x1000], &[9], 1, 2));
        assert!(!can_vectorize(&[0x1000, 0x2000], &[8, 12], 2, 2)); // one 24-byte stride
                                                                    // one row: tail only
    }
}
