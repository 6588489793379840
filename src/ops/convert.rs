//! Convert: copy a `(rows, d)` tensor between strided layouts, and between dtypes on the way (a cast).
//!
//! | | |
//! |---|---|
//! | dtypes | any of `f32`, `f16`, `bf16` to any of them (9 kernels; the same dtype is the strided copy, [`copy_rows`]) |
//! | layouts | `x, out: (rows, d)`, each at its own row stride ([`ConvertShape`]) |
//! | kernel | `cuda/convert.cu` (`cuda/include/rowwise.cuh`): a 256-thread block per (row, 2048 elements), 8 elements per thread, 16-byte accesses when both tensors and their row strides are 16-byte aligned |
//! | numerics | the same dtype copies the bits (NaN payloads too); otherwise widen exactly to f32 and round to nearest even (f32 → f16 overflows to ±inf from 65520; NaN stays NaN); bit-identical to [`crate::reference::convert`] |
//! | aliasing | `out` may not overlap `x` (`Error::Aliasing`) |
//! | zero sizes | `rows == 0` or `d == 0`: a no-op |
//! | limits | `rows ≤ i32::MAX`; `d ≤ 65535 · 2048` |

use crate::backend::{Backend, DeviceSlice, DeviceSliceMut, DeviceValue, Kernel};
use crate::dtype::{DType, Elem};
use crate::error::Result;
use crate::ops::rowwise;
use crate::ops::validate;
use crate::raw::ConvertParams;
use crate::shapes::ConvertShape;

const OP: &str = "convert";

/// The convert entry points, indexed by `3 · in + out` ([`DType::index`]).
pub const KERNELS: &[Kernel<'static>] = kernels![
    "convert" => "convert_f32_f32", "convert" => "convert_f32_f16", "convert" => "convert_f32_bf16",
    "convert" => "convert_f16_f32", "convert" => "convert_f16_f16", "convert" => "convert_f16_bf16",
    "convert" => "convert_bf16_f32", "convert" => "convert_bf16_f16", "convert" => "convert_bf16_bf16",
];

fn kernel_for(from: DType, to: DType) -> Kernel<'static> {
    KERNELS[3 * from.index() + to.index()]
}

/// `out ← x` converted to `Out` (see the module docs).
///
/// # Errors
/// `ShapeMismatch` unless each buffer holds exactly its span ([`crate::strided_span`]); `InvalidShape`
/// for an `out` row stride under `d`; `SizeOverflow` past the limits; `Misaligned` for a pointer not
/// aligned to its element; `Aliasing` when `out` overlaps `x`; `ContextMismatch`; backend errors.
pub fn convert<In, Out, B>(
    backend: &B,
    x: &impl DeviceSlice<In, B>,
    out: &mut impl DeviceSliceMut<Out, B>,
    shape: ConvertShape,
) -> Result<()>
where
    In: Elem + DeviceValue,
    Out: Elem + DeviceValue,
    B: Backend,
{
    let ConvertShape { rows, d, .. } = shape;
    let dims = rowwise::launch_config(OP, rows, d)?;
    let (rx, _gx) = rowwise::input(OP, "x", x, backend, (rows, d, shape.x_row_stride))?;
    let (ro, _go) = rowwise::output(OP, "out", out, backend, (rows, d, shape.out_row_stride))?;
    rowwise::check_overlap(OP, ("out", ro), ("x", rx), false)?;
    if rows == 0 || d == 0 {
        return Ok(());
    }
    let vectorized = rowwise::vectorizable(
        rows,
        &[(rx, std::mem::size_of::<In>()), (ro, std::mem::size_of::<Out>())],
    );
    let params = ConvertParams {
        out: ro.addr as *mut std::ffi::c_void,
        x: rx.addr as *const std::ffi::c_void,
        out_row_stride: validate::to_i64(OP, "out row stride", ro.stride)?,
        x_row_stride: validate::to_i64(OP, "x row stride", rx.stride)?,
        rows: validate::to_i32(OP, "rows", rows)?,
        d: validate::to_i32(OP, "d", d)?,
        vectorized: i32::from(vectorized),
        reserved0: 0,
    };
    backend.launch(kernel_for(In::DTYPE, Out::DTYPE), dims, &params)
}

/// `out ← x` for strided `(rows, d)` tensors of one dtype: [`convert`] with `In == Out`, a copy of the
/// bits (for contiguous buffers [`Backend::copy`] is the plain device copy).
///
/// # Errors
/// As [`convert`].
pub fn copy_rows<T, B>(
    backend: &B,
    x: &impl DeviceSlice<T, B>,
    out: &mut impl DeviceSliceMut<T, B>,
    shape: ConvertShape,
) -> Result<()>
where
    T: Elem + DeviceValue,
    B: Backend,
{
    convert::<T, T, B>(backend, x, out, shape)
}
