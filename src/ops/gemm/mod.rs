//! GEMM: `C = alpha · op(A) · op(B) + beta · C`, row-major, f32 accumulation, `C` rounded once; or a
//! fused epilogue; one product or a batch.
//!
//! | | |
//! |---|---|
//! | dtypes | `f32`, `f16`, `bf16` (A, B and C share the dtype) |
//! | layouts | `A: (m, k)`, or `(k, m)` when `trans_a`; `B: (k, n)`, or `(n, k)` when `trans_b`; `C: (m, n)`; contiguous, or at leading dimensions `lda, ldb, ldc` with [`gemm_strided`] ([`GemmLd`]) |
//! | kernel | f16/bf16, v3 (`cuda/gemm.cu`): tensor cores (`mma.sync.m16n8k16`, `ldmatrix`), a 4-stage 16-byte `cp.async` ring into XOR-swizzled shared memory, 128x256, 128x128 or 64x64 block tiles ([`Config`], chosen by [`plan`]), grouped rasterization, 16-byte stores of C. Operands v3 cannot stage (a base, leading dimension or batch stride of `a` or `b` not 16-byte aligned): v2 (`dev/gemm/v2_mma.cu`, 64x64x32, one stage). f32: v1 (`dev/gemm/v1_cuda_cores.cu`, CUDA cores, 64x64 block tile, k-step 16, 4x4 register tile per thread) |
//! | decode path | f16/bf16 with `1 ≤ m ≤ 16`, `A` stored `(m, k)`, `B` stored `(n, k)` (LLaMA's `x·Wᵀ` at decode), 16-byte aligned: `cuda/gemm_decode.cu` streams W once with 16 16-byte loads in flight per thread, in 128- or 32-row blocks and, for small `n`, k split across blocks and reduced by a second kernel in split order ([`decode_plan`]'s rule); the split's f32 partial sums (`batch·splits·m·n`, [`gemm_workspace_len`]) are allocated per call, or passed in with [`gemm_batched_with_workspace`] |
//! | epilogues | [`GemmEpilogue`]: `Linear` (`alpha·acc + beta·C`), `ResidualAdd` (`C += alpha·acc` in place), `SwiGlu` (`C (m, n/2) = silu(g)·u` of interleaved gate/up columns, see [`interleave_gate_up`]); every rung runs all three (`cuda/include/gemm_epilogue.cuh`) |
//! | batched | [`gemm_batched`]: up to [`MAX_BATCH`] products at element strides of A, B and C (0 shares an operand), one launch |
//! | numerics | products and sums in f32 (v1: fma in k order within each 16-element k-tile, the tiles' sums added in k order; v2, v3, decode: tensor-core f32 accumulation, k-tiles in k order), the epilogue in f32, one rounding to `T` (`Rounding::MatchTorch` epilogues round where PyTorch's unfused code does: see [`GemmEpilogue`]) |
//! | `beta == 0` | with `Linear`, `C` is write-only: never read, so it may be uninitialised (`SwiGlu` never reads `C`; `ResidualAdd` always does) |
//! | zero sizes | `m == 0`, `n == 0` or a batch of 0: a no-op; `k == 0`: `C = beta·C` (`alpha·0` with `beta == 0`) |
//! | limits | v1, v2: `m ≤ 65535·64` (grid rows); v3: at most 2³¹ - 1 block tiles; `m, n, k ≤ i32::MAX - 128`; batch ≤ 65535 |

use crate::backend::{Backend, DeviceSlice, DeviceSliceMut, DeviceValue};
use crate::dtype::Elem;
use crate::error::{Error, Result};
use crate::ops::validate;
use crate::raw::GemmParams;
use crate::shapes::{GemmBatch, GemmConfig, GemmEpilogue, GemmLd, GemmShape, Rounding, GEMM_SWIGLU_BLOCK};

mod plan;

pub use plan::{
    decode_eligible, decode_kernel_for, decode_plan, kernel_for, plan, plan_call, reduce_kernel_for, Config, Decode,
    DecodeShape, Plan, Split, DECODE_MAX_M, DECODE_MAX_SPLITS, KERNELS, MAX_BATCH,
};
use plan::{launch_config, reduce_launch_config, MAX_DIM};

const OP: &str = "gemm";

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
    /// This v3 configuration (for benchmarks and tests); f16/bf16 with aligned operands only. Also for
    /// shapes that [`plan_call`] sends down the decode path.
    Fixed(Config),
    /// The decode path with this block shape and this many k splits across blocks ([`Split::of`]: at
    /// most [`DECODE_MAX_SPLITS`], at most one per 128-element k-step; 1 is unsplit), for benchmarks and
    /// tests; only where [`decode_eligible`].
    Decode(DecodeShape, usize),
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

/// [`gemm_batched`] with the v3 tile chosen by the caller. Allocates the split-K workspace when the
/// plan splits; [`gemm_batched_with_workspace`] does not.
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
    run(
        backend,
        a,
        b,
        c,
        None::<&mut B::Buffer<f32>>,
        shape,
        cfg,
        batch,
        tiles,
        None,
    )
}

/// f32 elements of split-K workspace a call of this shape, config, batch and tiles needs in `dtype` on
/// `backend` (0 when it does not split), for [`gemm_batched_with_workspace`]: `batch·splits·m·n`. The
/// figure assumes 16-byte aligned operands, the only ones the decode path (the one that splits) takes;
/// a call that runs another path needs none.
///
/// # Errors
/// `SizeOverflow` when the workspace's length overflows `usize`; `InvalidArgument` for a `Tiles` the
/// shape cannot run (as [`gemm_batched_with_tiles`]).
pub fn gemm_workspace_len<B: Backend>(
    backend: &B,
    shape: GemmShape,
    cfg: GemmConfig,
    batch: GemmBatch,
    dtype: crate::dtype::DType,
    tiles: Tiles,
) -> Result<usize> {
    match choose(shape, cfg, batch.count, dtype, true, backend.sm_count(), tiles)? {
        Plan::Decode(d) if d.split.count > 1 && shape.m > 0 && shape.n > 0 => {
            validate::checked_product(OP, "split-K workspace", &[batch.count, d.split.count, shape.m, shape.n])
        }
        _ => Ok(0),
    }
}

/// [`gemm_batched_with_tiles`] with the caller's split-K workspace (f32, at least
/// [`gemm_workspace_len`] elements, not overlapping `a`, `b` or `c`): no allocation on the call, as an
/// engine's decode step wants. Its contents on entry do not matter; on return they are the split's
/// partial sums.
///
/// # Errors
/// As [`gemm_batched_with_tiles`]; `ShapeMismatch` when `workspace` is shorter than the call needs;
/// `Aliasing` when it overlaps `a`, `b` or `c`.
#[allow(clippy::too_many_arguments)]
pub fn gemm_batched_with_workspace<T, B>(
    backend: &B,
    a: &impl DeviceSlice<T, B>,
    b: &impl DeviceSlice<T, B>,
    c: &mut impl DeviceSliceMut<T, B>,
    workspace: &mut impl DeviceSliceMut<f32, B>,
    shape: GemmShape,
    cfg: GemmConfig,
    batch: GemmBatch,
    tiles: Tiles,
) -> Result<()>
where
    T: Elem + DeviceValue,
    B: Backend,
{
    run(backend, a, b, c, Some(workspace), shape, cfg, batch, tiles, None)
}

/// [`gemm`] with `A`, `B` and `C` at leading dimensions `ld` ([`GemmLd`]): each buffer holds exactly
/// its span (`(rows - 1)·ld + columns` of the matrix as stored), so an operand may be a view of a column
/// block of a wider matrix (a fused QKV projection's q columns; its output written into a wider buffer).
/// The tensor-core kernels need every leading dimension a multiple of 8 elements and 16-byte aligned
/// bases (else v2, which stages elementwise, runs).
///
/// # Errors
/// As [`gemm`]; `InvalidShape` for a leading dimension under its matrix's columns; `ShapeMismatch`
/// unless each buffer holds its span; `Aliasing` when `c`'s span overlaps `a`'s or `b`'s.
pub fn gemm_strided<T, B>(
    backend: &B,
    a: &impl DeviceSlice<T, B>,
    b: &impl DeviceSlice<T, B>,
    c: &mut impl DeviceSliceMut<T, B>,
    shape: GemmShape,
    ld: GemmLd,
    cfg: GemmConfig,
) -> Result<()>
where
    T: Elem + DeviceValue,
    B: Backend,
{
    run(
        backend,
        a,
        b,
        c,
        None::<&mut B::Buffer<f32>>,
        shape,
        cfg,
        GemmBatch::ONE,
        Tiles::Auto,
        Some(ld),
    )
}

/// The plan a call runs: [`plan_call`]'s rule for `Tiles::Auto`, else the forced tile or decode shape
/// where the call can run it.
fn choose(
    shape: GemmShape,
    cfg: GemmConfig,
    count: usize,
    dtype: crate::dtype::DType,
    aligned: bool,
    sms: u32,
    tiles: Tiles,
) -> Result<Plan> {
    let refuse = |tiles: Tiles| Error::InvalidArgument {
        op: OP,
        reason: format!(
            "{tiles:?} needs f16/bf16 operands with 16-byte rows (and, for the decode path, m ≤ {DECODE_MAX_M}, \
             A stored (m, k) and B stored (n, k)); this call runs {:?}",
            plan_call(shape, cfg, count, dtype, aligned, sms)
        ),
    };
    match tiles {
        Tiles::Auto => Ok(plan_call(shape, cfg, count, dtype, aligned, sms)),
        Tiles::Fixed(config) => match plan(shape, dtype, aligned, sms) {
            Plan::V3(_) => Ok(Plan::V3(config)),
            _ => Err(refuse(tiles)),
        },
        Tiles::Decode(decode_shape, splits) if decode_eligible(shape, cfg, dtype, aligned) => {
            if !(1..=DECODE_MAX_SPLITS).contains(&splits) {
                return Err(Error::InvalidArgument {
                    op: OP,
                    reason: format!("{splits} decode splits: expected 1..={DECODE_MAX_SPLITS}"),
                });
            }
            Ok(Plan::Decode(Decode {
                shape: decode_shape,
                split: Split::of(shape.k, splits),
            }))
        }
        Tiles::Decode(..) => Err(refuse(tiles)),
    }
}

/// Validates, plans and launches; allocates the split-K workspace when the plan splits and the caller
/// passed none.
#[allow(clippy::too_many_arguments)]
fn run<T, B, W>(
    backend: &B,
    a: &impl DeviceSlice<T, B>,
    b: &impl DeviceSlice<T, B>,
    c: &mut impl DeviceSliceMut<T, B>,
    caller_workspace: Option<&mut W>,
    shape: GemmShape,
    cfg: GemmConfig,
    batch: GemmBatch,
    tiles: Tiles,
    ld: Option<GemmLd>,
) -> Result<()>
where
    T: Elem + DeviceValue,
    B: Backend,
    W: DeviceSliceMut<f32, B>,
{
    // Preconditions.
    let GemmShape { m, n, k } = shape;
    validate::check_finite(OP, "alpha", cfg.alpha)?;
    validate::check_finite(OP, "beta", cfg.beta)?;
    cfg.check_epilogue(OP, shape)?;
    let swiglu = matches!(cfg.epilogue, GemmEpilogue::SwiGlu(_));
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
    // Leading dimensions: the columns as stored, or the caller's (at least those).
    let ld = ld.unwrap_or(GemmLd {
        lda: a_dims[1],
        ldb: b_dims[1],
        ldc: c_cols,
    });
    for (name, v, cols, rows) in [
        ("lda", ld.lda, a_dims[1], a_dims[0]),
        ("ldb", ld.ldb, b_dims[1], b_dims[0]),
        ("ldc", ld.ldc, c_cols, m),
    ] {
        if v < cols && rows > 1 {
            return Err(Error::InvalidShape {
                op: OP,
                reason: format!("{name} = {v} is under the {cols} columns of its matrix as stored"),
            });
        }
    }
    // Elements of each buffer: (count - 1)·stride + one matrix (0 for an empty batch); a matrix of `rows`
    // rows at leading dimension `ld` spans (rows - 1)·ld + cols.
    let span = |what: &str, (rows, cols, ld): (usize, usize, usize), stride: usize| -> Result<usize> {
        let one = crate::shapes::strided_span(rows, cols, ld).ok_or_else(|| Error::SizeOverflow {
            op: OP,
            what: format!("{what}: {rows} rows at leading dimension {ld} overflow usize"),
        })?;
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
    let a_len = span("a", (a_dims[0], a_dims[1], ld.lda), batch.stride_a)?;
    let b_len = span("b", (b_dims[0], b_dims[1], ld.ldb), batch.stride_b)?;
    let c_len = span("c", (m, c_cols, ld.ldc), batch.stride_c)?;
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
    let aligned = chunked(a_addr, ld.lda, batch.stride_a) && chunked(b_addr, ld.ldb, batch.stride_b);
    let plan = choose(shape, cfg, batch.count, T::DTYPE, aligned, backend.sm_count(), tiles)?;
    let dims = launch_config(shape, plan, batch.count)?;
    // Split-K's f32 partial sums: (batch, splits, m, n), every element written by the split kernel.
    let split = match plan {
        Plan::Decode(d) => d.split,
        _ => Split { count: 1, k },
    };
    let mut allocated = None;
    let ws_addr = if split.count > 1 {
        let need = validate::checked_product(OP, "split-K workspace", &[batch.count, split.count, m, n])?;
        let ws_bytes = need * 4; // a buffer of `need` f32 exists, or is checked to below
        let (addr, guard) = match caller_workspace {
            Some(ws) => {
                if ws.len() < need {
                    return Err(Error::ShapeMismatch {
                        op: OP,
                        tensor: "workspace",
                        expected: need,
                        actual: ws.len(),
                    });
                }
                let len = ws.len();
                validate::addr_of_mut(OP, "workspace", ws, backend, &[len])?
            }
            None => {
                let ws = allocated.insert(backend.alloc_poisoned::<f32>(need)?);
                validate::addr_of_mut(OP, "workspace", ws, backend, &[need])?
            }
        };
        for (name, addr_x, len_x) in [("a", a_addr, a_len), ("b", b_addr, b_len), ("c", c_addr, c_len)] {
            validate::check_no_overlap(OP, ("workspace", addr, ws_bytes), (name, addr_x, bytes(len_x)))?;
        }
        Some((addr, guard))
    } else {
        None
    };

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
        workspace: ws_addr
            .as_ref()
            .map_or(std::ptr::null_mut(), |(addr, _)| *addr as *mut std::ffi::c_void),
        lda: validate::to_i64(OP, "lda", ld.lda)?,
        ldb: validate::to_i64(OP, "ldb", ld.ldb)?,
        ldc: validate::to_i64(OP, "ldc", ld.ldc)?,
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
        splits: split.count as i32, // ≤ DECODE_MAX_SPLITS
        split_k: validate::to_i32(OP, "split k", split.k)?,
    };
    backend.launch(kernel_for(plan, T::DTYPE, cfg.trans_a, cfg.trans_b), dims, &params)?;
    if split.count > 1 {
        let dims = reduce_launch_config(m, c_cols, batch.count)?;
        backend.launch(reduce_kernel_for(T::DTYPE), dims, &params)?;
    }
    Ok(())
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
