//! Elementwise add: `out = a + b` (the residual connection), out of place or in place, on strided rows.
//!
//! | | |
//! |---|---|
//! | dtypes | `f32`, `f16`, `bf16` (all three tensors share the dtype) |
//! | layouts | `a, b, out: (rows, d)`, each at its own row stride ([`AddShape`]); an input's stride may be 0 (one row broadcast to all) |
//! | kernel | `cuda/add.cu` (`cuda/include/rowwise.cuh`): a 256-thread block per (row, 2048 elements), 8 elements per thread, 16-byte accesses when every pointer and row stride is 16-byte aligned |
//! | numerics | `round_T(f32(a) + f32(b))`: one f32 addition, one rounding, as PyTorch's `a + b` for f16/bf16 on CUDA; bit-identical to [`crate::reference::add`] |
//! | aliasing | `out` may be `a` or `b` exactly (same address and stride: in place, [`add_inplace`]); any other overlap of the byte ranges the tensors span is `Error::Aliasing` |
//! | zero sizes | `rows == 0` or `d == 0`: a no-op |
//! | limits | `rows ≤ i32::MAX`; `d ≤ 65535 · 2048` |

use crate::backend::{Backend, DeviceSlice, DeviceSliceMut, DeviceValue, Kernel};
use crate::dtype::{DType, Elem};
use crate::error::{Error, Result};
use crate::ops::rowwise::{self, Region};
use crate::ops::validate;
use crate::raw::AddParams;
use crate::shapes::AddShape;

const OP: &str = "add";
const OP_INPLACE: &str = "add_inplace";

/// The add entry points, one per dtype.
pub const KERNELS: &[Kernel<'static>] = kernels!["add" => "add_f32", "add" => "add_f16", "add" => "add_bf16"];

fn kernel_for(dtype: DType) -> Kernel<'static> {
    KERNELS[dtype.index()]
}

/// `out ← a + b` on `backend` (see the module docs).
///
/// # Errors
/// `ShapeMismatch` unless each buffer holds exactly its span ([`crate::strided_span`]); `InvalidShape`
/// for an `out` row stride under `d`; `SizeOverflow` past the limits; `Misaligned` for a pointer not
/// aligned to its element; `Aliasing` when `out` overlaps `a` or `b` other than being one of them;
/// `ContextMismatch`; backend errors from the launch.
pub fn add<T, B>(
    backend: &B,
    a: &impl DeviceSlice<T, B>,
    b: &impl DeviceSlice<T, B>,
    out: &mut impl DeviceSliceMut<T, B>,
    shape: AddShape,
) -> Result<()>
where
    T: Elem + DeviceValue,
    B: Backend,
{
    let AddShape { rows, d, .. } = shape;
    let dims = rowwise::launch_config(OP, rows, d)?;
    let (ra, _ga) = rowwise::input(OP, "a", a, backend, (rows, d, shape.a_row_stride))?;
    let (rb, _gb) = rowwise::input(OP, "b", b, backend, (rows, d, shape.b_row_stride))?;
    let (ro, _go) = rowwise::output(OP, "out", out, backend, (rows, d, shape.out_row_stride))?;
    rowwise::check_overlap(OP, ("out", ro), ("a", ra), true)?;
    rowwise::check_overlap(OP, ("out", ro), ("b", rb), true)?;
    launch::<T, B>(backend, dims, ro, ra, rb, rows, d)
}

/// `acc ← acc + b` on `backend`: [`add`] with `out` and `a` the same tensor, `acc`, at `out_row_stride`
/// (`a_row_stride` must equal it).
///
/// # Errors
/// As [`add`]; `InvalidArgument` when `a_row_stride != out_row_stride`; `Aliasing` when `b` overlaps
/// `acc`.
pub fn add_inplace<T, B>(
    backend: &B,
    acc: &mut impl DeviceSliceMut<T, B>,
    b: &impl DeviceSlice<T, B>,
    shape: AddShape,
) -> Result<()>
where
    T: Elem + DeviceValue,
    B: Backend,
{
    let AddShape { rows, d, .. } = shape;
    if shape.a_row_stride != shape.out_row_stride {
        return Err(Error::InvalidArgument {
            op: OP_INPLACE,
            reason: format!(
                "acc is both a and out: a_row_stride {} must equal out_row_stride {}",
                shape.a_row_stride, shape.out_row_stride
            ),
        });
    }
    let dims = rowwise::launch_config(OP_INPLACE, rows, d)?;
    let (rb, _gb) = rowwise::input(OP_INPLACE, "b", b, backend, (rows, d, shape.b_row_stride))?;
    let (ro, _go) = rowwise::output(OP_INPLACE, "acc", acc, backend, (rows, d, shape.out_row_stride))?;
    rowwise::check_overlap(OP_INPLACE, ("acc", ro), ("b", rb), false)?;
    launch::<T, B>(backend, dims, ro, ro, rb, rows, d)
}

fn launch<T: Elem, B: Backend>(
    backend: &B,
    dims: crate::backend::LaunchDims,
    out: Region,
    a: Region,
    b: Region,
    rows: usize,
    d: usize,
) -> Result<()> {
    if rows == 0 || d == 0 {
        return Ok(());
    }
    let elem = std::mem::size_of::<T>();
    let params = AddParams {
        out: out.addr as *mut std::ffi::c_void,
        a: a.addr as *const std::ffi::c_void,
        b: b.addr as *const std::ffi::c_void,
        out_row_stride: validate::to_i64(OP, "out row stride", out.stride)?,
        a_row_stride: validate::to_i64(OP, "a row stride", a.stride)?,
        b_row_stride: validate::to_i64(OP, "b row stride", b.stride)?,
        rows: validate::to_i32(OP, "rows", rows)?,
        d: validate::to_i32(OP, "d", d)?,
        vectorized: i32::from(rowwise::vectorizable(rows, &[(out, elem), (a, elem), (b, elem)])),
        reserved0: 0,
    };
    backend.launch(kernel_for(T::DTYPE), dims, &params)
}
