//! GEMM: `C = alpha · op(A) · op(B) + beta · C`, row-major, f32 accumulation, `C` rounded once; or a
//! fused epilogue; one product or a batch.
//!
//! | | |
//! |---|---|
//! | dtypes | `f32`, `f16`, `bf16` (A, B and C share the dtype) |
//! | layouts | `A: (m, k)`, or `(k, m)` when `trans_a`; `B: (k, n)`, or `(n, k)` when `trans_b`; `C: (m, n)`; contiguous |
//! | kernel | f16/bf16, v3 (`cuda/gemm.cu`): tensor cores (`mma.sync.m16n8k16`, `ldmatrix`), a 4-stage 16-byte `cp.async` ring into XOR-swizzled shared memory, 128x256, 128x128 or 64x64 block tiles ([`Config`], chosen by [`plan`]), grouped rasterization, 16-byte stores of C. Operands v3 cannot stage (a base, leading dimension or batch stride of `a` or `b` not 16-byte aligned): v2 (`dev/gemm/v2_mma.cu`, 64x64x32, one stage). f32: v1 (`dev/gemm/v1_cuda_cores.cu`, CUDA cores, 64x64 block tile, k-step 16, 4x4 register tile per thread) |
//! | epilogues | [`GemmEpilogue`]: `Linear` (`alpha·acc + beta·C`), `ResidualAdd` (`C += alpha·acc` in place), `SwiGlu` (`C (m, n/2) = silu(g)·u` of interleaved gate/up columns, see [`interleave_gate_up`]); every rung runs all three (`cuda/include/gemm_epilogue.cuh`) |
//! | batched | [`gemm_batched`]: up to [`MAX_BATCH`] products at element strides of A, B and C (0 shares an operand), one launch |
//! | numerics | products and sums in f32 (v1: fma in k order; v2, v3: tensor-core f32 accumulation, k-tiles in k order), the epilogue in f32, one rounding to `T` (`Rounding::MatchTorch` epilogues round where PyTorch's unfused code does: see [`GemmEpilogue`]) |
//! | `beta == 0` | with `Linear`, `C` is write-only: never read, so it may be uninitialised (`SwiGlu` never reads `C`; `ResidualAdd` always does) |
//! | zero sizes | `m == 0`, `n == 0` or a batch of 0: a no-op; `k == 0`: `C = beta·C` (`alpha·0` with `beta == 0`) |
//! | limits | v1, v2: `m ≤ 65535·64` (grid rows); v3: at most 2³¹ - 1 block tiles; `m, n, k ≤ i32::MAX - 128`; batch ≤ 65535 |

use crate::backend::{Backend, DeviceSlice, DeviceSliceMut, DeviceValue, Kernel, LaunchDims};
use crate::dtype::{DType, Elem};
use crate::error::{Error, Result};
use crate::ops::validate;
use crate::raw::params as tiles;
use crate::raw::GemmParams;
use crate::shapes::{GemmBatch, GemmConfig, GemmEpilogue, GemmShape, Rounding, GEMM_SWIGLU_BLOCK};

const OP: &str = "gemm";

/// Modules of the three rungs: v3 (f16/bf16), v2 (f16/bf16 operands not 16-byte aligned), v1 (f32).
const MODULE_V3: &str = "gemm";
const MODULE_V2: &str = "gemm_v2";
const MODULE_F32: &str = "gemm_f32";

/// Every GEMM entry point: v1 (f32), v2 (f16, bf16) and v3 (dtype x layout x config, `cuda/gemm.cu`'s table).
pub const KERNELS: &[Kernel<'static>] = kernels![
    MODULE_F32 => "gemm_f32",
    MODULE_V2 => "gemm_v2_f16",
    MODULE_V2 => "gemm_v2_bf16",
    MODULE_V3 => "gemm_f16_nn_wide", MODULE_V3 => "gemm_f16_nt_wide",
    MODULE_V3 => "gemm_f16_tn_wide", MODULE_V3 => "gemm_f16_tt_wide",
    MODULE_V3 => "gemm_f16_nn_large", MODULE_V3 => "gemm_f16_nt_large",
    MODULE_V3 => "gemm_f16_tn_large", MODULE_V3 => "gemm_f16_tt_large",
    MODULE_V3 => "gemm_f16_nn_small", MODULE_V3 => "gemm_f16_nt_small",
    MODULE_V3 => "gemm_f16_tn_small", MODULE_V3 => "gemm_f16_tt_small",
    MODULE_V3 => "gemm_bf16_nn_wide", MODULE_V3 => "gemm_bf16_nt_wide",
    MODULE_V3 => "gemm_bf16_tn_wide", MODULE_V3 => "gemm_bf16_tt_wide",
    MODULE_V3 => "gemm_bf16_nn_large", MODULE_V3 => "gemm_bf16_nt_large",
    MODULE_V3 => "gemm_bf16_tn_large", MODULE_V3 => "gemm_bf16_tt_large",
    MODULE_V3 => "gemm_bf16_nn_small", MODULE_V3 => "gemm_bf16_nt_small",
    MODULE_V3 => "gemm_bf16_tn_small", MODULE_V3 => "gemm_bf16_tt_small",
];

/// v1 and v2 tile C by 64x64 per block; v1 runs 256 threads (16x16, 4x4 elements each), v2 4 warps
/// (32x32 each), with static shared memory.
const BLOCK_V1_V2: usize = 64;
const THREADS_V1: u32 = 256;
const THREADS_V2: u32 = 128;
/// The kernel adds up to one tile to a row, column or k index in `int`: keep that from overflowing.
const MAX_DIM: usize = i32::MAX as usize - 128;
/// CUDA's limit on `gridDim.y` (v1/v2's row tiles).
const MAX_GRID_Y: usize = 65535;

/// v3's block-tile configurations (`LK_GEMM_*` in params.h).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Config {
    /// 128x256, 2x4 warps of 64x64.
    Wide,
    /// 128x128, 2x2 warps of 64x64.
    Large,
    /// 64x64, 2x2 warps of 32x32.
    Small,
}

impl Config {
    /// Every configuration, largest first.
    pub const ALL: [Config; 3] = [Config::Wide, Config::Large, Config::Small];

    /// `(BLOCK_M, BLOCK_N)`.
    pub fn block(self) -> (usize, usize) {
        let (m, n) = match self {
            Config::Wide => (tiles::LK_GEMM_WIDE_BLOCK_M, tiles::LK_GEMM_WIDE_BLOCK_N),
            Config::Large => (tiles::LK_GEMM_LARGE_BLOCK_M, tiles::LK_GEMM_LARGE_BLOCK_N),
            Config::Small => (tiles::LK_GEMM_SMALL_BLOCK_M, tiles::LK_GEMM_SMALL_BLOCK_N),
        };
        (m as usize, n as usize)
    }

    /// `(WARPS_M, WARPS_N)`.
    pub fn warps(self) -> (usize, usize) {
        let (m, n) = match self {
            Config::Wide => (tiles::LK_GEMM_WIDE_WARPS_M, tiles::LK_GEMM_WIDE_WARPS_N),
            Config::Large => (tiles::LK_GEMM_LARGE_WARPS_M, tiles::LK_GEMM_LARGE_WARPS_N),
            Config::Small => (tiles::LK_GEMM_SMALL_WARPS_M, tiles::LK_GEMM_SMALL_WARPS_N),
        };
        (m as usize, n as usize)
    }

    /// Block tiles covering an `m x n` C.
    pub fn tiles(self, m: usize, n: usize) -> usize {
        let (bm, bn) = self.block();
        m.div_ceil(bm).saturating_mul(n.div_ceil(bn))
    }

    fn threads(self) -> u32 {
        let (wm, wn) = self.warps();
        (wm * wn * 32) as u32
    }

    /// Dynamic shared memory of one block: the cp.async ring, or the epilogue's f32 staging of one row of
    /// warps (`WARP_M x (BLOCK_N + 8)`), whichever is larger (they alias).
    pub fn shared_bytes(self) -> usize {
        let (bm, bn) = self.block();
        let ring = (tiles::LK_GEMM_STAGES * tiles::LK_GEMM_BLOCK_K) as usize * (bm + bn) * 2;
        let epilogue = bm / self.warps().0 * (bn + 8) * 4;
        ring.max(epilogue)
    }

    /// Position in [`Config::ALL`].
    fn index(self) -> usize {
        match self {
            Config::Wide => 0,
            Config::Large => 1,
            Config::Small => 2,
        }
    }

    /// The entry points' suffix: `wide`, `large`, `small`.
    pub fn name(self) -> &'static str {
        match self {
            Config::Wide => "wide",
            Config::Large => "large",
            Config::Small => "small",
        }
    }
}

/// Which rung and tile a call runs.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Plan {
    /// f32: CUDA cores.
    V1,
    /// f16/bf16 with an operand v3 cannot stage by 16-byte `cp.async`.
    V2,
    /// f16/bf16 tensor-core pipeline.
    V3(Config),
}

/// The rung and tile for a GEMM of `shape` in `dtype` whose operands are (`aligned`) 16-byte aligned with
/// leading dimensions that are multiples of 8 elements, on a device of `sm_count` SMs.
///
/// Rule: f32 runs v1; unaligned f16/bf16 runs v2; otherwise v3 with the largest tile that still makes
/// enough blocks: 128x256 when that gives at least 2 blocks per SM (`Config::Wide.tiles(m, n) ≥ 2 ·
/// sm_count`: a whole wave and a tail that is at most a third of the work), else 128x128 when that gives
/// at least one per SM, else 64x64 (4x the blocks of 128x128, for problems too small to fill the GPU).
/// Larger tiles move fewer bytes per FLOP through L2 and shared memory; smaller ones fill more SMs. The
/// model's figure for every choice at LLaMA shapes: docs/performance.md ("GEMM v3").
pub fn plan(shape: GemmShape, dtype: DType, aligned: bool, sm_count: u32) -> Plan {
    if dtype == DType::F32 {
        return Plan::V1;
    }
    if !aligned {
        return Plan::V2;
    }
    let sms = sm_count as usize;
    Plan::V3(if Config::Wide.tiles(shape.m, shape.n) >= 2 * sms {
        Config::Wide
    } else if Config::Large.tiles(shape.m, shape.n) >= sms {
        Config::Large
    } else {
        Config::Small
    })
}

/// Grid and block of one GEMM launch of `batch` products. v1/v2: one block per 64x64 tile of C, column
/// tiles on `grid.x`, row tiles on `grid.y` (at most 65535), products on `grid.z`; f32 (v1): 256 threads, 8 KB of static shared memory; v2: 128
/// threads, 10 KB. v3: one block per tile on `grid.x` (rasterized in the kernel), products on `grid.y`, 128 or 256 threads,
/// [`Config::shared_bytes`] of dynamic shared memory.
fn launch_config(shape: GemmShape, plan: Plan, batch: usize) -> Result<LaunchDims> {
    let batch = batch.min(MAX_BATCH) as u32; // the op checked count ≤ MAX_BATCH
    if let Plan::V3(config) = plan {
        let tiles = config.tiles(shape.m, shape.n);
        return Ok(LaunchDims {
            grid: [validate::to_i32(OP, "block tiles", tiles)? as u32, batch, 1],
            block: [config.threads(), 1, 1],
            shared_bytes: config.shared_bytes() as u32,
        });
    }
    let tiles_n = shape.n.div_ceil(BLOCK_V1_V2);
    let tiles_m = shape.m.div_ceil(BLOCK_V1_V2);
    if tiles_m > MAX_GRID_Y {
        return Err(Error::SizeOverflow {
            op: OP,
            what: format!(
                "m = {} needs {tiles_m} row tiles of {BLOCK_V1_V2}, over the grid limit {MAX_GRID_Y}",
                shape.m
            ),
        });
    }
    Ok(LaunchDims {
        grid: [validate::to_i32(OP, "n tiles", tiles_n)? as u32, tiles_m as u32, batch],
        block: [if plan == Plan::V1 { THREADS_V1 } else { THREADS_V2 }, 1, 1],
        shared_bytes: 0,
    })
}

/// The entry point of `plan` for `dtype` and the transpose flags: an index into [`KERNELS`], whose v3
/// rows run dtype (f16, bf16) x config ([`Config::ALL`]) x layout (nn, nt, tn, tt). No allocation or
/// search on the launch path; `every_plan_has_its_kernel` checks each index against its name.
pub fn kernel_for(plan: Plan, dtype: DType, trans_a: bool, trans_b: bool) -> Kernel<'static> {
    const V3_FIRST: usize = 3;
    let index = match (plan, dtype) {
        (Plan::V1, _) => 0,
        (Plan::V2, DType::BF16) => 2,
        (Plan::V2, _) => 1,
        (Plan::V3(config), dtype) => {
            let dt = usize::from(dtype == DType::BF16);
            let layout = usize::from(trans_a) * 2 + usize::from(trans_b);
            V3_FIRST + (dt * Config::ALL.len() + config.index()) * 4 + layout
        }
    };
    KERNELS[index]
}

/// `c ← alpha · op(a) · op(b) + beta · c` on `backend`, or another epilogue (`cfg.epilogue`; see the
/// module docs for layouts and numerics).
///
/// `a` has `m·k` elements, `b` `k·n`, `c` `m·n` (`m·n/2` for SwiGLU), all contiguous and row-major as
/// stored (`trans_a`: `a` is stored `(k, m)`; `trans_b`: `b` is stored `(n, k)`, LLaMA's `y = x·Wᵀ`).
/// With the linear epilogue and `beta == 0`, `c` is not read.
///
/// # Errors
/// `ShapeMismatch` for a wrong buffer length (zero `m` or `n` is a no-op; `k == 0` gives `c = beta·c`);
/// `InvalidArgument` for a non-finite `alpha` or `beta`, or `beta != 0` with an epilogue other than
/// Linear; `InvalidShape` for SwiGLU with `n` not a multiple of `2·GEMM_SWIGLU_BLOCK`; `SizeOverflow`
/// for sizes past the kernel's limits (module docs); `Misaligned` for a pointer not aligned to its
/// element; `Aliasing` when `c` overlaps `a` or `b`; backend errors from the launch.
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
    gemm_batched_with_tiles(backend, a, b, c, shape, cfg, GemmBatch::ONE, Tiles::Auto)
}

/// `batch.count` GEMMs of one shape and config in one launch (see [`GemmBatch`]): product `z` reads
/// `a[z·stride_a..]`, `b[z·stride_b..]` and writes `c[z·stride_c..]`.
///
/// # Errors
/// As [`gemm`]; `ShapeMismatch` unless each buffer has `(count - 1)·stride + ` its matrix's elements;
/// `InvalidArgument` for `stride_c` under `C`'s elements with `count > 1`; `SizeOverflow` for `count`
/// over 65535. `count == 0` is a no-op.
pub fn gemm_batched<T, B>(
    backend: &B,
    a: &impl DeviceSlice<T, B>,
    b: &impl DeviceSlice<T, B>,
    c: &mut impl DeviceSliceMut<T, B>,
    shape: GemmShape,
    cfg: GemmConfig,
    batch: GemmBatch,
) -> Result<()>
where
    T: Elem + DeviceValue,
    B: Backend,
{
    gemm_batched_with_tiles(backend, a, b, c, shape, cfg, batch, Tiles::Auto)
}

/// Which v3 block tile a call runs.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Default)]
pub enum Tiles {
    /// [`plan`]'s rule.
    #[default]
    Auto,
    /// This configuration (for benchmarks and tests); f16/bf16 with aligned operands only.
    Fixed(Config),
}

/// [`gemm`] with the v3 tile chosen by the caller.
///
/// # Errors
/// As [`gemm`]; `InvalidArgument` for `Tiles::Fixed` on f32 or on operands that run v2 (a base or
/// leading dimension of `a` or `b` not 16-byte aligned).
pub fn gemm_with_tiles<T, B>(
    backend: &B,
    a: &impl DeviceSlice<T, B>,
    b: &impl DeviceSlice<T, B>,
    c: &mut impl DeviceSliceMut<T, B>,
    shape: GemmShape,
    cfg: GemmConfig,
    tiles: Tiles,
) -> Result<()>
where
    T: Elem + DeviceValue,
    B: Backend,
{
    gemm_batched_with_tiles(backend, a, b, c, shape, cfg, GemmBatch::ONE, tiles)
}

/// The most products of one batched launch (CUDA's limit on `gridDim.y` and `gridDim.z`).
pub const MAX_BATCH: usize = 65535;

/// [`gemm_batched`] with the v3 tile chosen by the caller: the general entry point.
///
/// # Errors
/// As [`gemm_batched`] and [`gemm_with_tiles`].
#[allow(clippy::too_many_arguments)]
pub fn gemm_batched_with_tiles<T, B>(
    backend: &B,
    a: &impl DeviceSlice<T, B>,
    b: &impl DeviceSlice<T, B>,
    c: &mut impl DeviceSliceMut<T, B>,
    shape: GemmShape,
    cfg: GemmConfig,
    batch: GemmBatch,
    tiles: Tiles,
) -> Result<()>
where
    T: Elem + DeviceValue,
    B: Backend,
{
    // Preconditions.
    let GemmShape { m, n, k } = shape;
    validate::check_finite(OP, "alpha", cfg.alpha)?;
    validate::check_finite(OP, "beta", cfg.beta)?;
    if cfg.epilogue != GemmEpilogue::Linear && cfg.beta != 0.0 {
        return Err(Error::InvalidArgument {
            op: OP,
            reason: format!(
                "beta = {} with the {:?} epilogue (only Linear scales C)",
                cfg.beta, cfg.epilogue
            ),
        });
    }
    let swiglu = matches!(cfg.epilogue, GemmEpilogue::SwiGlu(_));
    if swiglu && n % (2 * GEMM_SWIGLU_BLOCK) != 0 {
        return Err(Error::InvalidShape {
            op: OP,
            reason: format!(
                "SwiGLU needs n (gate and up columns) to be a multiple of {}, got {n}",
                2 * GEMM_SWIGLU_BLOCK
            ),
        });
    }
    for (name, v) in [("m", m), ("n", n), ("k", k)] {
        if v > MAX_DIM {
            return Err(Error::SizeOverflow {
                op: OP,
                what: format!("{name} = {v} is over the kernel's limit {MAX_DIM}"),
            });
        }
    }
    if batch.count > MAX_BATCH {
        return Err(Error::SizeOverflow {
            op: OP,
            what: format!("batch count {} is over the grid limit {MAX_BATCH}", batch.count),
        });
    }
    let c_cols = if swiglu { n / 2 } else { n };
    let a_dims = if cfg.trans_a { [k, m] } else { [m, k] }; // as stored
    let b_dims = if cfg.trans_b { [n, k] } else { [k, n] }; // as stored
    let elem = std::mem::size_of::<T>();
    // Elements of each buffer: (count - 1)·stride + one matrix (0 for an empty batch).
    let span = |what: &str, rows: usize, cols: usize, stride: usize| -> Result<usize> {
        let one = validate::checked_product(OP, what, &[rows, cols])?;
        match batch.count {
            0 => Ok(0),
            count => validate::checked_product(OP, what, &[count - 1, stride])?
                .checked_add(one)
                .ok_or_else(|| Error::SizeOverflow {
                    op: OP,
                    what: format!("{what}: the batch's span overflows usize"),
                }),
        }
    };
    let a_len = span("a", a_dims[0], a_dims[1], batch.stride_a)?;
    let b_len = span("b", b_dims[0], b_dims[1], batch.stride_b)?;
    let c_len = span("c", m, c_cols, batch.stride_c)?;
    if batch.count > 1 && batch.stride_c < m * c_cols {
        return Err(Error::InvalidArgument {
            op: OP,
            reason: format!(
                "stride_c = {} is under C's {} elements: products would overlap",
                batch.stride_c,
                m * c_cols
            ),
        });
    }
    let (a_addr, _a_guard) = validate::addr_of(OP, "a", a, backend, &[a_len])?;
    let (b_addr, _b_guard) = validate::addr_of(OP, "b", b, backend, &[b_len])?;
    let (c_addr, _c_guard) = validate::addr_of_mut(OP, "c", c, backend, &[c_len])?;
    let bytes = |len: usize| len * elem; // lengths of existing buffers: no overflow
    validate::check_no_overlap(OP, ("c", c_addr, bytes(c_len)), ("a", a_addr, bytes(a_len)))?;
    validate::check_no_overlap(OP, ("c", c_addr, bytes(c_len)), ("b", b_addr, bytes(b_len)))?;
    if m == 0 || n == 0 || batch.count == 0 {
        return Ok(()); // C is empty. (k == 0 still launches: C = beta·C.)
    }
    // v3 stages both operands in 16-byte chunks: bases 16-byte aligned, rows and batch strides a
    // multiple of 8 elements.
    let chunked = |addr: u64, ld: usize, stride: usize| addr % 16 == 0 && ld % 8 == 0 && stride % 8 == 0;
    let aligned = chunked(a_addr, a_dims[1], batch.stride_a) && chunked(b_addr, b_dims[1], batch.stride_b);
    let plan = match (tiles, plan(shape, T::DTYPE, aligned, backend.sm_count())) {
        (Tiles::Auto, p) => p,
        (Tiles::Fixed(config), Plan::V3(_)) => Plan::V3(config),
        (Tiles::Fixed(config), p) => {
            return Err(Error::InvalidArgument {
                op: OP,
                reason: format!("tiles {config:?} need f16/bf16 operands with 16-byte rows; this call runs {p:?}"),
            })
        }
    };
    let dims = launch_config(shape, plan, batch.count)?;

    let (epilogue, rounding) = match cfg.epilogue {
        GemmEpilogue::Linear => (
            crate::raw::params::lk_gemm_epilogue_LK_GEMM_EPILOGUE_LINEAR,
            Rounding::Once,
        ),
        GemmEpilogue::ResidualAdd(r) => (crate::raw::params::lk_gemm_epilogue_LK_GEMM_EPILOGUE_RESIDUAL, r),
        GemmEpilogue::SwiGlu(r) => (crate::raw::params::lk_gemm_epilogue_LK_GEMM_EPILOGUE_SWIGLU, r),
    };
    let params = GemmParams {
        c: c_addr as *mut std::ffi::c_void,
        a: a_addr as *const std::ffi::c_void,
        b: b_addr as *const std::ffi::c_void,
        lda: validate::to_i64(OP, "lda", a_dims[1])?,
        ldb: validate::to_i64(OP, "ldb", b_dims[1])?,
        ldc: validate::to_i64(OP, "ldc", c_cols)?,
        batch_stride_a: validate::to_i64(OP, "stride_a", batch.stride_a)?,
        batch_stride_b: validate::to_i64(OP, "stride_b", batch.stride_b)?,
        batch_stride_c: validate::to_i64(OP, "stride_c", batch.stride_c)?,
        m: validate::to_i32(OP, "m", m)?,
        n: validate::to_i32(OP, "n", n)?,
        k: validate::to_i32(OP, "k", k)?,
        trans_a: i32::from(cfg.trans_a),
        trans_b: i32::from(cfg.trans_b),
        alpha: cfg.alpha,
        beta: cfg.beta,
        batch: batch.count as i32, // ≤ MAX_BATCH
        epilogue: epilogue as i32,
        rounding: rounding_code(rounding),
    };
    backend.launch(kernel_for(plan, T::DTYPE, cfg.trans_a, cfg.trans_b), dims, &params)
}

fn rounding_code(r: Rounding) -> i32 {
    (match r {
        Rounding::MatchTorch => crate::raw::params::lk_rounding_LK_ROUNDING_MATCH_TORCH,
        Rounding::Once => crate::raw::params::lk_rounding_LK_ROUNDING_ONCE,
    }) as i32
}

/// Gate and up weights interleaved for [`GemmEpilogue::SwiGlu`]: `gate` and `up` are the two
/// projections as `op(B)` would hold them, each `d` columns of `k`: stored `(d, k)` when `trans_b`
/// (PyTorch's `nn.Linear` weight, LLaMA's `w1`/`w3`), else `(k, d)`. Returns `B` with `n = 2d`
/// columns, gate and up alternating in blocks of [`GEMM_SWIGLU_BLOCK`], stored the same way. A host
/// function, for loading weights once.
///
/// # Errors
/// `ShapeMismatch` unless `gate` and `up` have `d·k` elements; `InvalidShape` unless `d` is a multiple
/// of `GEMM_SWIGLU_BLOCK`.
pub fn interleave_gate_up<T: Copy>(gate: &[T], up: &[T], d: usize, k: usize, trans_b: bool) -> Result<Vec<T>> {
    validate::check_len(OP, "gate", gate.len(), &[d, k])?;
    validate::check_len(OP, "up", up.len(), &[d, k])?;
    let s = GEMM_SWIGLU_BLOCK;
    if d % s != 0 {
        return Err(Error::InvalidShape {
            op: OP,
            reason: format!("the gate/up width d = {d} is not a multiple of the SwiGLU block {s}"),
        });
    }
    let mut out = Vec::with_capacity(2 * d * k);
    if trans_b {
        // Rows of B are columns of op(B): blocks of s rows, gate then up.
        for blk in 0..d / s {
            let rows = blk * s * k..(blk + 1) * s * k;
            out.extend_from_slice(&gate[rows.clone()]);
            out.extend_from_slice(&up[rows]);
        }
    } else {
        for p in 0..k {
            for blk in 0..d / s {
                let cols = p * d + blk * s..p * d + (blk + 1) * s;
                out.extend_from_slice(&gate[cols.clone()]);
                out.extend_from_slice(&up[cols]);
            }
        }
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn launch_config_covers_edges() {
        let d = launch_config(GemmShape { m: 65, n: 1, k: 3 }, Plan::V1, 1).unwrap();
        assert_eq!(d.grid, [1, 2, 1]);
        assert_eq!(d.block, [THREADS_V1, 1, 1]);
        let d = launch_config(GemmShape { m: 65, n: 130, k: 3 }, Plan::V2, 1).unwrap();
        assert_eq!((d.grid, d.block), ([3, 2, 1], [THREADS_V2, 1, 1]));
        let d = launch_config(GemmShape { m: 129, n: 130, k: 3 }, Plan::V3(Config::Large), 1).unwrap();
        assert_eq!((d.grid, d.block, d.shared_bytes), ([4, 1, 1], [128, 1, 1], 65536));
        let d = launch_config(GemmShape { m: 65, n: 1, k: 3 }, Plan::V3(Config::Small), 1).unwrap();
        assert_eq!((d.grid, d.shared_bytes), ([2, 1, 1], 32768));
        let too_tall = GemmShape {
            m: MAX_GRID_Y * BLOCK_V1_V2 + 1,
            n: 1,
            k: 1,
        };
        assert!(matches!(
            launch_config(too_tall, Plan::V2, 1),
            Err(Error::SizeOverflow { .. })
        ));
    }

    #[test]
    fn plan_follows_the_rule() {
        let s = |m, n| GemmShape { m, n, k: 64 };
        assert_eq!(plan(s(4096, 4096), DType::F32, true, 108), Plan::V1);
        assert_eq!(plan(s(4096, 4096), DType::BF16, false, 108), Plan::V2);
        // 512 wide tiles on 108 SMs; 16 x 16 = 256 large ones on 132; 8 x 8 = 64 leave SMs idle: small tiles.
        assert_eq!(plan(s(4096, 4096), DType::BF16, true, 108), Plan::V3(Config::Wide));
        assert_eq!(plan(s(2048, 2048), DType::BF16, true, 132), Plan::V3(Config::Large));
        assert_eq!(plan(s(1024, 1024), DType::F16, true, 108), Plan::V3(Config::Small));
        assert_eq!(plan(s(1024, 1024), DType::F16, true, 64), Plan::V3(Config::Large));
    }

    #[test]
    fn every_plan_has_its_kernel() {
        for dtype in [DType::F32, DType::F16, DType::BF16] {
            for p in [Plan::V1, Plan::V2].into_iter().chain(Config::ALL.map(Plan::V3)) {
                if (dtype == DType::F32) != (p == Plan::V1) {
                    continue;
                }
                for (ta, tb) in [(false, false), (false, true), (true, false), (true, true)] {
                    let k = kernel_for(p, dtype, ta, tb);
                    let dt = ["f32", "f16", "bf16"][dtype.index()];
                    let expected = match p {
                        Plan::V1 => "gemm_f32".to_string(),
                        Plan::V2 => format!("gemm_v2_{dt}"),
                        Plan::V3(c) => format!(
                            "gemm_{dt}_{}{}_{}",
                            if ta { 't' } else { 'n' },
                            if tb { 't' } else { 'n' },
                            c.name()
                        ),
                    };
                    assert_eq!(k.name, expected, "{p:?} {dtype:?} {ta} {tb}");
                }
            }
        }
    }
}
