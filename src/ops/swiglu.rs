//! SwiGLU: `out = silu(gate) · up`, from two tensors or one packed `[gate | up]` tensor.
//!
//! | | |
//! |---|---|
//! | dtypes | `f32`, `f16`, `bf16` (inputs and output share the dtype) |
//! | layouts | [`swiglu`]: `gate, up, out: (rows, d)`; [`swiglu_packed`]: `gate_up: (rows, 2d)` holding `[gate \| up]` per row (vLLM's `silu_and_mul`), `out: (rows, d)`; contiguous, or each at its own row stride in [`swiglu_strided`] ([`SwigluStrides`]) |
//! | kernel | `cuda/swiglu.cu`: one 256-thread block per (row, chunk of 256·16 bytes); 16-byte vector accesses when every pointer and row stride is 16-byte aligned, coalesced scalar accesses otherwise |
//! | numerics | silu and the product in f32; [`Rounding::MatchTorch`] rounds `silu(gate)` to `T` before the product (torch), [`Rounding::Once`] rounds once at the store — see [`crate::reference::swiglu()`] |
//! | aliasing | `out` may not overlap an input (`Error::Aliasing`) |
//! | zero sizes | `rows == 0` or `d == 0`: a no-op |
//! | limits | `rows ≤ i32::MAX`; `d ≤ 65535 · 256 · 16 / sizeof(T)` (grid.y chunks: 67 M f32, 134 M f16/bf16) |

use crate::backend::{Backend, DeviceSlice, DeviceSliceMut, DeviceValue, Kernel, LaunchDims};
use crate::dtype::{DType, Elem};
use crate::error::{Error, Result};
use crate::ops::{rowwise, validate};
use crate::raw::{rounding_code, SwigluParams};
use crate::shapes::{Rounding, SwigluShape, SwigluStrides};

const OP: &str = "swiglu";
const OP_PACKED: &str = "swiglu_packed";

/// The SwiGLU entry points, one per dtype.
pub const KERNELS: &[Kernel<'static>] = &[
    Kernel {
        module: "swiglu",
        name: "swiglu_f32",
    },
    Kernel {
        module: "swiglu",
        name: "swiglu_f16",
    },
    Kernel {
        module: "swiglu",
        name: "swiglu_bf16",
    },
];

/// `SwigluTraits` of `cuda/swiglu.cu`.
const THREADS: u32 = 256;
const VEC_BYTES: usize = 16;
/// CUDA's limit on `gridDim.y` (the column chunks).
const MAX_GRID_Y: usize = 65535;

/// Elements one block covers in a row: 256 threads × one 16-byte vector each.
fn chunk_elems(elem_bytes: usize) -> usize {
    THREADS as usize * (VEC_BYTES / elem_bytes)
}

/// Grid and block of one launch: one row per `grid.x` (up to 2^31 - 1 rows), one chunk of 256·16 bytes
/// per `grid.y`. 256 threads keep 8 blocks per SM resident at ~30 registers, and a chunk of 16 bytes per
/// thread gives each thread one vector load per input, enough in flight for a memory-bound op; `d` is
/// split over `grid.y` so that even a single decode row spreads over `d / 2048` (bf16) blocks.
fn launch_config(op: &'static str, shape: SwigluShape, elem_bytes: usize) -> Result<LaunchDims> {
    let chunk = chunk_elems(elem_bytes);
    // The kernel adds up to one chunk to an element index in `int`.
    if shape.d > i32::MAX as usize - chunk {
        return Err(Error::SizeOverflow {
            op,
            what: format!(
                "d = {} is over the kernel's limit {}",
                shape.d,
                i32::MAX as usize - chunk
            ),
        });
    }
    let chunks = shape.d.div_ceil(chunk);
    if chunks > MAX_GRID_Y {
        return Err(Error::SizeOverflow {
            op,
            what: format!(
                "d = {} needs {chunks} chunks of {chunk}, over the grid limit {MAX_GRID_Y}",
                shape.d
            ),
        });
    }
    Ok(LaunchDims {
        grid: [validate::to_i32(op, "rows", shape.rows)? as u32, chunks as u32, 1],
        block: [THREADS, 1, 1],
        shared_bytes: 0,
    })
}

fn kernel_for(dtype: DType) -> Kernel<'static> {
    KERNELS[dtype.index()]
}

/// The 16-byte vector path is legal when every pointer is 16-byte aligned and, with more than one row,
/// every row stride is a whole number of 16-byte vectors (so every row start is aligned too).
fn vectorizable(rows: usize, addrs: &[u64], strides: &[usize], elem_bytes: usize) -> bool {
    addrs.iter().all(|a| a % VEC_BYTES as u64 == 0)
        && (rows == 1 || strides.iter().all(|s| (s * elem_bytes) % VEC_BYTES == 0))
}

/// One launch from resolved addresses: `gate`, `up` and `out` start at `gate_addr`, `up_addr` and
/// `out_addr` with the row strides `st` (elements).
fn launch<T: Elem, B: Backend>(
    backend: &B,
    op: &'static str,
    dims: LaunchDims,
    (out_addr, gate_addr, up_addr): (u64, u64, u64),
    st: SwigluStrides,
    shape: SwigluShape,
    rounding: Rounding,
) -> Result<()> {
    if shape.rows == 0 || shape.d == 0 {
        return Ok(()); // empty output (validated like any other call)
    }
    let elem = std::mem::size_of::<T>();
    let vectorized = vectorizable(
        shape.rows,
        &[out_addr, gate_addr, up_addr],
        &[st.out, st.gate, st.up],
        elem,
    );
    let params = SwigluParams {
        out: out_addr as *mut std::ffi::c_void,
        gate: gate_addr as *const std::ffi::c_void,
        up: up_addr as *const std::ffi::c_void,
        out_row_stride: validate::to_i64(op, "out row stride", st.out)?,
        gate_row_stride: validate::to_i64(op, "gate row stride", st.gate)?,
        up_row_stride: validate::to_i64(op, "up row stride", st.up)?,
        rows: validate::to_i32(op, "rows", shape.rows)?,
        d: validate::to_i32(op, "d", shape.d)?,
        rounding: rounding_code(rounding),
        vectorized: i32::from(vectorized),
    };
    backend.launch(kernel_for(T::DTYPE), dims, &params)
}

/// `out = silu(gate) · up` on `backend`, for `gate, up, out: (rows, d)` (see the module docs).
///
/// # Errors
/// `ShapeMismatch` for a wrong buffer length (zero `rows` or `d` is a no-op); `SizeOverflow`
/// for sizes past the kernel's limits; `Misaligned` for a pointer not aligned to its element;
/// `Aliasing` when `out` overlaps `gate` or `up`; `ContextMismatch` for a buffer of another device;
/// backend errors from the launch.
pub fn swiglu<T, B>(
    backend: &B,
    gate: &impl DeviceSlice<T, B>,
    up: &impl DeviceSlice<T, B>,
    out: &mut impl DeviceSliceMut<T, B>,
    shape: SwigluShape,
    rounding: Rounding,
) -> Result<()>
where
    T: Elem + DeviceValue,
    B: Backend,
{
    // Preconditions.
    let SwigluShape { rows, d } = shape;
    let elem = std::mem::size_of::<T>();
    let bytes = validate::checked_product(OP, "tensor bytes", &[rows, d, elem])?;
    let dims = launch_config(OP, shape, elem)?;
    let (gate_addr, _gate_guard) = validate::addr_of(OP, "gate", gate, backend, &[rows, d])?;
    let (up_addr, _up_guard) = validate::addr_of(OP, "up", up, backend, &[rows, d])?;
    let (out_addr, _out_guard) = validate::addr_of_mut(OP, "out", out, backend, &[rows, d])?;
    validate::check_no_overlap(OP, ("out", out_addr, bytes), ("gate", gate_addr, bytes))?;
    validate::check_no_overlap(OP, ("out", out_addr, bytes), ("up", up_addr, bytes))?;
    launch::<T, B>(
        backend,
        OP,
        dims,
        (out_addr, gate_addr, up_addr),
        SwigluStrides::contiguous(d),
        shape,
        rounding,
    )
}

/// [`swiglu`] with each tensor at its own row stride ([`SwigluStrides`]): each buffer holds exactly its
/// span (`gate` and `up` may be views of one packed or fused buffer; read-only views of one buffer
/// coexist).
///
/// # Errors
/// As [`swiglu`]; `ShapeMismatch` unless each buffer holds its span; `InvalidShape` for an `out` stride
/// under `d`; `Aliasing` when `out` overlaps the span of `gate` or `up`.
pub fn swiglu_strided<T, B>(
    backend: &B,
    gate: &impl DeviceSlice<T, B>,
    up: &impl DeviceSlice<T, B>,
    out: &mut impl DeviceSliceMut<T, B>,
    shape: SwigluShape,
    strides: SwigluStrides,
    rounding: Rounding,
) -> Result<()>
where
    T: Elem + DeviceValue,
    B: Backend,
{
    let SwigluShape { rows, d } = shape;
    let dims = launch_config(OP, shape, std::mem::size_of::<T>())?;
    let (gr, _gg) = rowwise::input(OP, "gate", gate, backend, (rows, d, strides.gate))?;
    let (ur, _ug) = rowwise::input(OP, "up", up, backend, (rows, d, strides.up))?;
    let (or, _og) = rowwise::output(OP, "out", out, backend, (rows, d, strides.out))?;
    rowwise::check_overlap(OP, ("out", or), ("gate", gr), false)?;
    rowwise::check_overlap(OP, ("out", or), ("up", ur), false)?;
    launch::<T, B>(backend, OP, dims, (or.addr, gr.addr, ur.addr), strides, shape, rounding)
}

/// `out = silu(gate) · up` on `backend`, for a packed `gate_up: (rows, 2d)` holding `[gate | up]` per
/// row and `out: (rows, d)` (see the module docs).
///
/// # Errors
/// As [`swiglu`], with `gate_up` in place of `gate` and `up`.
pub fn swiglu_packed<T, B>(
    backend: &B,
    gate_up: &impl DeviceSlice<T, B>,
    out: &mut impl DeviceSliceMut<T, B>,
    shape: SwigluShape,
    rounding: Rounding,
) -> Result<()>
where
    T: Elem + DeviceValue,
    B: Backend,
{
    // Preconditions.
    let SwigluShape { rows, d } = shape;
    let elem = std::mem::size_of::<T>();
    let out_bytes = validate::checked_product(OP_PACKED, "out bytes", &[rows, d, elem])?;
    let in_bytes = validate::checked_product(OP_PACKED, "gate_up bytes", &[rows, 2, d, elem])?;
    let dims = launch_config(OP_PACKED, shape, elem)?;
    let (in_addr, _in_guard) = validate::addr_of(OP_PACKED, "gate_up", gate_up, backend, &[rows, 2, d])?;
    let (out_addr, _out_guard) = validate::addr_of_mut(OP_PACKED, "out", out, backend, &[rows, d])?;
    validate::check_no_overlap(OP_PACKED, ("out", out_addr, out_bytes), ("gate_up", in_addr, in_bytes))?;
    // up starts d elements into each row; d * elem fits (it is below in_bytes).
    let up_addr = in_addr + (d * elem) as u64;
    let strides = SwigluStrides {
        gate: 2 * d,
        up: 2 * d,
        out: d,
    };
    launch::<T, B>(
        backend,
        OP_PACKED,
        dims,
        (out_addr, in_addr, up_addr),
        strides,
        shape,
        rounding,
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn launch_config_splits_rows_and_chunks() {
        let d = launch_config(OP, SwigluShape { rows: 3, d: 2049 }, 2).unwrap();
        assert_eq!(d.grid, [3, 2, 1]);
        assert_eq!(d.block, [THREADS, 1, 1]);
        let d = launch_config(OP, SwigluShape { rows: 1, d: 1024 }, 4).unwrap();
        assert_eq!(d.grid, [1, 1, 1]);
        let too_wide = SwigluShape {
            rows: 1,
            d: i32::MAX as usize,
        };
        assert!(matches!(
            launch_config(OP, too_wide, 4),
            Err(Error::SizeOverflow { .. })
        ));
    }

    #[test]
    fn vector_path_needs_aligned_pointers_and_strides() {
        assert!(vectorizable(2, &[0, 16, 32], &[8, 16], 2));
        assert!(!vectorizable(2, &[0, 18, 32], &[8, 16], 2));
        assert!(!vectorizable(2, &[0, 16, 32], &[7, 14], 2));
        // One row: strides never used.
        assert!(vectorizable(1, &[0, 16, 32], &[7, 14], 2));
    }
}
