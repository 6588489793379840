//! GEMM: `C = alpha · op(A) · op(B) + beta · C`, row-major, f32 accumulation, `C` rounded once.
//!
//! | | |
//! |---|---|
//! | dtypes | `f32`, `f16`, `bf16` (A, B and C share the dtype) |
//! | layouts | `A: (m, k)`, or `(k, m)` when `trans_a`; `B: (k, n)`, or `(n, k)` when `trans_b`; `C: (m, n)`; contiguous |
//! | kernel | `cuda/gemm.cu`. f16/bf16, v2: tensor cores (`mma.sync.m16n8k16`, `ldmatrix`), 64x64 block tile of 4 warps, k-step 32, 16-byte staging loads where aligned. f32, v1: CUDA cores, 64x64 block tile, k-step 16, 4x4 register tile per thread |
//! | numerics | products and sums in f32 (v1: fma in k order; v2: tensor-core f32 accumulation), `alpha·acc + beta·C` in f32, one rounding to `T` |
//! | `beta == 0` | `C` is write-only: never read, so it may be uninitialised |
//! | zero sizes | `m == 0` or `n == 0`: a no-op; `k == 0`: `C = beta·C` (`alpha·0` with `beta == 0`) |
//! | limits | `m ≤ 65535·64` (grid rows), `m, n, k ≤ i32::MAX - 64` |

use crate::backend::{Backend, DeviceSlice, DeviceSliceMut, DeviceValue, Kernel, LaunchDims};
use crate::dtype::{DType, Elem};
use crate::error::{Error, Result};
use crate::ops::validate;
use crate::raw::GemmParams;
use crate::shapes::{GemmConfig, GemmShape};

const OP: &str = "gemm";

/// The GEMM entry points, one per dtype.
pub const KERNELS: &[Kernel<'static>] = &[
    Kernel {
        module: "gemm",
        name: "gemm_f32",
    },
    Kernel {
        module: "gemm",
        name: "gemm_f16",
    },
    Kernel {
        module: "gemm",
        name: "gemm_bf16",
    },
];

/// `GemmTraits` (v1, f32) and `GemmMmaTraits` (v2, f16/bf16) of `cuda/gemm.cu`: both tile C by 64x64
/// per block; v1 runs 256 threads (16x16, 4x4 elements each), v2 4 warps (32x32 each).
const BLOCK_M: usize = 64;
const BLOCK_N: usize = 64;
const THREADS_V1: u32 = 256;
const THREADS_V2: u32 = 128;
/// The kernel adds up to one tile to a row, column or k index in `int`: keep that from overflowing.
const MAX_DIM: usize = i32::MAX as usize - 64;
/// CUDA's limit on `gridDim.y` (the row tiles).
const MAX_GRID_Y: usize = 65535;

/// Grid and block of one GEMM launch: one block per 64x64 tile of C, column tiles on `grid.x` (no
/// practical limit), row tiles on `grid.y` (at most 65535). f32 (v1): 256 threads, 8 KB of static shared
/// memory, 80 registers. f16/bf16 (v2): 128 threads (4 warps of 32x32), 10 KB of static shared memory,
/// ~122 registers: several blocks per SM either way.
fn launch_config(shape: GemmShape, dtype: DType) -> Result<LaunchDims> {
    let tiles_n = shape.n.div_ceil(BLOCK_N);
    let tiles_m = shape.m.div_ceil(BLOCK_M);
    if tiles_m > MAX_GRID_Y {
        return Err(Error::SizeOverflow {
            op: OP,
            what: format!(
                "m = {} needs {tiles_m} row tiles of {BLOCK_M}, over the grid limit {MAX_GRID_Y}",
                shape.m
            ),
        });
    }
    Ok(LaunchDims {
        grid: [validate::to_i32(OP, "n tiles", tiles_n)? as u32, tiles_m as u32, 1],
        block: [if dtype == DType::F32 { THREADS_V1 } else { THREADS_V2 }, 1, 1],
        shared_bytes: 0,
    })
}

fn kernel_for(dtype: DType) -> Kernel<'static> {
    KERNELS[dtype.index()]
}

/// `c ← alpha · op(a) · op(b) + beta · c` on `backend` (see the module docs for layouts and numerics).
///
/// `a` has `m·k` elements, `b` `k·n`, `c` `m·n`, all contiguous and row-major as stored (`trans_a`:
/// `a` is stored `(k, m)`; `trans_b`: `b` is stored `(n, k)`, LLaMA's `y = x·Wᵀ`). With `beta == 0`
/// `c` is not read.
///
/// # Errors
/// `ShapeMismatch` for a wrong buffer length (zero `m` or `n` is a no-op; `k == 0` gives `c = beta·c`);
/// `InvalidArgument` for a non-finite `alpha` or `beta`; `SizeOverflow` for sizes past the kernel's
/// limits (module docs); `Misaligned` for a pointer not aligned to its element; `Aliasing` when `c`
/// overlaps `a` or `b`; backend errors from the launch.
pub fn gemm<T, B>(
    backend: &B,
    a: &impl DeviceSlice<T, B>,
    b: &impl DeviceSlice<T, B>,
    c: &mut impl DeviceSliceMut<T, B>,
    shape: GemmShape,
    cfg: GemmConfig,
) -> Result<()>
where
    T: Elem + DeviceValue,
    B: Backend,
{
    // Preconditions.
    let GemmShape { m, n, k } = shape;
    validate::check_finite(OP, "alpha", cfg.alpha)?;
    validate::check_finite(OP, "beta", cfg.beta)?;
    for (name, v) in [("m", m), ("n", n), ("k", k)] {
        if v > MAX_DIM {
            return Err(Error::SizeOverflow {
                op: OP,
                what: format!("{name} = {v} is over the kernel's limit {MAX_DIM}"),
            });
        }
    }
    let a_dims = if cfg.trans_a { [k, m] } else { [m, k] }; // as stored
    let b_dims = if cfg.trans_b { [n, k] } else { [k, n] }; // as stored
    let dims = launch_config(shape, T::DTYPE)?;
    let elem = std::mem::size_of::<T>();
    let (a_addr, _a_guard) = validate::addr_of(OP, "a", a, backend, &a_dims)?;
    let (b_addr, _b_guard) = validate::addr_of(OP, "b", b, backend, &b_dims)?;
    let (c_addr, _c_guard) = validate::addr_of_mut(OP, "c", c, backend, &[m, n])?;
    let c_bytes = validate::checked_product(OP, "c bytes", &[m, n, elem])?;
    let a_bytes = validate::checked_product(OP, "a bytes", &[m, k, elem])?;
    let b_bytes = validate::checked_product(OP, "b bytes", &[k, n, elem])?;
    validate::check_no_overlap(OP, ("c", c_addr, c_bytes), ("a", a_addr, a_bytes))?;
    validate::check_no_overlap(OP, ("c", c_addr, c_bytes), ("b", b_addr, b_bytes))?;
    if m == 0 || n == 0 {
        return Ok(()); // C is empty. (k == 0 still launches: C = beta·C.)
    }

    let params = GemmParams {
        c: c_addr as *mut std::ffi::c_void,
        a: a_addr as *const std::ffi::c_void,
        b: b_addr as *const std::ffi::c_void,
        lda: validate::to_i64(OP, "lda", a_dims[1])?,
        ldb: validate::to_i64(OP, "ldb", b_dims[1])?,
        ldc: validate::to_i64(OP, "ldc", n)?,
        m: validate::to_i32(OP, "m", m)?,
        n: validate::to_i32(OP, "n", n)?,
        k: validate::to_i32(OP, "k", k)?,
        trans_a: i32::from(cfg.trans_a),
        trans_b: i32::from(cfg.trans_b),
        alpha: cfg.alpha,
        beta: cfg.beta,
        reserved0: 0,
    };
    backend.launch(kernel_for(T::DTYPE), dims, &params)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn launch_config_covers_edges() {
        let d = launch_config(GemmShape { m: 65, n: 1, k: 3 }, DType::F32).unwrap();
        assert_eq!(d.grid, [1, 2, 1]);
        assert_eq!(d.block, [THREADS_V1, 1, 1]);
        let d = launch_config(GemmShape { m: 65, n: 130, k: 3 }, DType::BF16).unwrap();
        assert_eq!((d.grid, d.block), ([3, 2, 1], [THREADS_V2, 1, 1]));
        let too_tall = GemmShape {
            m: MAX_GRID_Y * BLOCK_M + 1,
            n: 1,
            k: 1,
        };
        assert!(matches!(
            launch_config(too_tall, DType::F16),
            Err(Error::SizeOverflow { .. })
        ));
    }
}
