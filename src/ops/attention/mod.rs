//! Flash attention, forward: `O = softmax(S)·V` with `S = scale·Q·Kᵀ` (optionally soft-capped) under a
//! causal / sliding-window mask, and the log-sum-exp of each row.
//!
//! | | |
//! |---|---|
//! | dtypes | `f32`, `f16`, `bf16` for q, k, v, o (one dtype); `lse` is f32 |
//! | layouts | `q, o: (batch, q_len, n_heads, head_dim)`, `k, v: (batch, kv_len, n_kv_heads, head_dim)`, `lse: (batch, n_heads, q_len)`; contiguous, except q, k, v in [`attention_strided`] (any batch, row and head strides, [`AttentionLayout`]); f16/bf16 q, k, v, o 16-byte aligned (and their strides whole 16-byte chunks) |
//! | GQA | `n_heads % n_kv_heads == 0`; query head `h` reads kv head `h / (n_heads / n_kv_heads)` (MQA: `n_kv_heads = 1`) |
//! | masking | bottom-right aligned: query `i` has diagonal key `d = kv_len - q_len + i` and sees `j < kv_len` with `d - window_left <= j <= d + window_right` ([`AttentionConfig`]; causal is `window_right = 0`); a query that sees no key gives `o = 0`, `lse = -inf` |
//! | softcap | `s = softcap · tanh(scale·q·k / softcap)` when set (Gemma 2) |
//! | head_dim | a multiple of 8, at most 256 (buckets 64, 128, 256 pick the tile config) |
//! | kernels | f16/bf16: `cuda/attention.cu` v2 on tensor cores, prefill or split-KV decode, chosen by [`plan()`] (rule and split rule in [`plan`](mod@plan)'s docs); f32: v1 on CUDA cores (`dev/attention/v1_cuda_cores.cu`) |
//! | numerics | v2: `q·k` and `P·V` in f32 on tensor cores, softmax in f32 with `exp2`, `P` rounded to `T` for the second matmul (the row sum from unrounded `P`), `O` rounded to `T` once; split-KV partials in f32, merged in split order. v1: everything f32, `P` unrounded. `lse` f32. The references are [`crate::reference::attention_tiled`] (v2) and [`crate::reference::attention()`] (v1) |
//! | workspace | split-KV needs [`attention_workspace_bytes`] of f32 scratch: [`attention_with_workspace`] takes it from the caller (no allocation), the other entry points allocate it per call when the plan splits |
//! | zero sizes | `batch == 0` or `q_len == 0`: a no-op; `kv_len == 0`: `o = 0`, `lse = -inf` |
//! | NaN, inf | a NaN or `+inf` score makes its row NaN in `o` and `lse` (never the `-inf` "no key" marker); a `-inf` score is a key of weight 0; v2 multiplies a masked key's `v` row by 0, so an inf/NaN `v` row of a key that another row of the same tile sees reaches this row as NaN (FlashAttention's behaviour; v1 skips such keys); keys at or past `kv_len` are never read; where `q·k` itself leaves f32's range, v1 gives the infinities or NaN of an f32 fma chain in `d` order and v2 those of the tensor core's accumulation (order and width are the hardware's; the emulator sums exactly) |
//! | limits | `batch, n_kv_heads ≤ 65535` (grid), `kv_len` and `q_len · n_heads / n_kv_heads ≤ i32::MAX - 64`, each tensor's element count ≤ `i64::MAX` |
//!
//! Serving: [`attention_paged`] (a paged KV cache, per-sequence `seq_lens`, ragged queries: prefill
//! with a cached prefix and decode in one call) and [`attention_varlen`] (packed prompts, `cu_seqlens`),
//! both with LSE and a caller's workspace; their contract is in [`serving`]'s docs.
//!
//! A KV cache: [`attention_kv_cache`] reads a preallocated `(batch, kv_capacity, n_kv_heads, head_dim)`
//! cache of which the first `kv_len` rows of each sequence are filled (decode: `q_len = 1`, the new token
//! at position `kv_len - 1`); for `batch = 1` a prefix of the cache is also contiguous and [`attention`]
//! takes it directly.

pub mod plan;
pub mod serving;

use crate::backend::{Backend, DeviceSlice, DeviceSliceMut, DeviceValue};
use crate::dtype::{DType, Elem};
use crate::error::{Error, Result};
use crate::ops::validate;
use crate::raw::{AttentionCombineParams, AttentionParams};
use crate::shapes::{AttentionConfig, AttentionLayout, AttentionShape, HeadStrides};
use plan::{check_shape, window_field};
pub use plan::{AttentionPlan, Kind, SplitKv, HEAD_DIM_STEP, KERNELS, MAX_HEAD_DIM, MAX_SPLITS};
pub use serving::{attention_paged, attention_varlen, check_metadata, serving_plan, serving_workspace_len, Keys};

const OP: &str = "attention";

/// The largest `q_len` and `kv_len` (and KV cache capacity): the kernel's `int` indices run up to one
/// tile past them.
const MAX_SEQ_LEN: usize = i32::MAX as usize - 64;
/// CUDA's limit on `gridDim.y` and `gridDim.z` (kv heads and batch).
const MAX_GRID_YZ: usize = 65535;

/// The launch plan `backend` would run for `shape` in `dtype`: kernel, grid, tiles, KV splits.
///
/// # Errors
/// As [`attention`] for the shape; `InvalidArgument` for a `split` out of range or a split on f32.
pub fn plan<B: Backend>(backend: &B, shape: AttentionShape, dtype: DType, split: SplitKv) -> Result<AttentionPlan> {
    check_shape(shape, shape.kv_len)?;
    plan::plan(
        OP,
        shape,
        dtype,
        backend.sm_count(),
        backend.max_shared_bytes_per_block(),
        split,
    )
}

/// Bytes of f32 workspace [`attention_with_workspace`] needs for `shape` on `backend` with the automatic
/// split rule (0 when the call does not split): the partial O and LSE of every split.
///
/// # Errors
/// As [`plan()`].
pub fn attention_workspace_bytes<B: Backend>(backend: &B, shape: AttentionShape, dtype: DType) -> Result<usize> {
    let p = plan(backend, shape, dtype, SplitKv::Auto)?;
    Ok(p.workspace_len(shape) * 4)
}

/// `o ← attention(q, k, v)` (see the module docs for layouts, masking and numerics). Allocates the
/// split-KV workspace when the plan splits; [`attention_with_workspace`] does not.
///
/// # Errors
/// `InvalidShape` for a zero `n_heads`, `n_kv_heads` or `head_dim`, or `n_heads % n_kv_heads != 0` (zero
/// `batch` or `q_len` is a no-op; zero `kv_len` gives `o = 0`, `lse = -inf`); `UnsupportedHeadDim` unless
/// `head_dim` is a multiple of 8 and at most 256; `ShapeMismatch` for a wrong buffer length;
/// `InvalidArgument` for a non-finite or zero `softmax_scale`, a `softcap` that is not finite and
/// positive, or `causal` with a `window_right` other than 0; `SizeOverflow` past the limits in the module
/// docs; `Misaligned`; `Aliasing` when `o` overlaps `q`, `k` or `v`; backend errors.
pub fn attention<T, B>(
    backend: &B,
    q: &impl DeviceSlice<T, B>,
    k: &impl DeviceSlice<T, B>,
    v: &impl DeviceSlice<T, B>,
    o: &mut impl DeviceSliceMut<T, B>,
    shape: AttentionShape,
    cfg: AttentionConfig,
) -> Result<()>
where
    T: Elem + DeviceValue,
    B: Backend,
{
    launch_allocating::<T, B>(backend, q, k, v, o, None, shape, cache(shape, shape.kv_len), cfg)
}

/// [`attention`] that also writes `lse: (batch, n_heads, q_len)`, the natural-log log-sum-exp of each
/// row's scores (`-inf` for a row that sees no key), as the backward pass and split-KV merging need.
///
/// # Errors
/// As [`attention`]; `ShapeMismatch` for a wrong `lse` length, `Aliasing` when `lse` overlaps another
/// tensor.
#[allow(clippy::too_many_arguments)]
pub fn attention_with_lse<T, B>(
    backend: &B,
    q: &impl DeviceSlice<T, B>,
    k: &impl DeviceSlice<T, B>,
    v: &impl DeviceSlice<T, B>,
    o: &mut impl DeviceSliceMut<T, B>,
    lse: &mut impl DeviceSliceMut<f32, B>,
    shape: AttentionShape,
    cfg: AttentionConfig,
) -> Result<()>
where
    T: Elem + DeviceValue,
    B: Backend,
{
    let s = shape;
    let (lse_addr, lse_bytes, _lse_guard) = lse_region(backend, lse, s)?;
    launch_allocating::<T, B>(
        backend,
        q,
        k,
        v,
        o,
        Some((lse_addr, lse_bytes)),
        shape,
        cache(shape, shape.kv_len),
        cfg,
    )
}

/// [`attention`] over a batched KV cache: `k_cache, v_cache: (batch, kv_capacity, n_kv_heads, head_dim)`,
/// of which each sequence's first `shape.kv_len` rows are attended (the rest, not yet written, is never
/// read). This is the decode and chunked-prefill layout of an engine that preallocates its cache; with
/// `kv_capacity == kv_len` it is [`attention`].
///
/// # Errors
/// As [`attention`]; `InvalidShape` when `kv_len > kv_capacity`; `ShapeMismatch` unless the caches hold
/// `batch·kv_capacity·n_kv_heads·head_dim` elements.
#[allow(clippy::too_many_arguments)]
pub fn attention_kv_cache<T, B>(
    backend: &B,
    q: &impl DeviceSlice<T, B>,
    k_cache: &impl DeviceSlice<T, B>,
    v_cache: &impl DeviceSlice<T, B>,
    o: &mut impl DeviceSliceMut<T, B>,
    shape: AttentionShape,
    kv_capacity: usize,
    cfg: AttentionConfig,
) -> Result<()>
where
    T: Elem + DeviceValue,
    B: Backend,
{
    launch_allocating::<T, B>(
        backend,
        q,
        k_cache,
        v_cache,
        o,
        None,
        shape,
        cache(shape, kv_capacity),
        cfg,
    )
}

/// The hot-path entry point: attention over a KV cache (as [`attention_kv_cache`]) writing `o` and `lse`,
/// with the split-KV scratch from the caller: `workspace` holds at least
/// `plan(backend, shape, T::DTYPE, split).workspace_len(shape)` f32 ([`attention_workspace_bytes`] / 4 for
/// `SplitKv::Auto`) and is 16-byte aligned; nothing is allocated. `split` picks the split count
/// ([`SplitKv::Auto`]: the rule in [`plan`](mod@plan)).
///
/// # Errors
/// As [`attention_kv_cache`] and [`attention_with_lse`]; `ShapeMismatch` for a workspace shorter than the
/// plan needs; `Misaligned`; `Aliasing` when the workspace overlaps another tensor; `InvalidArgument` for a
/// `split` out of range or a split on f32.
#[allow(clippy::too_many_arguments)]
pub fn attention_with_workspace<T, B>(
    backend: &B,
    q: &impl DeviceSlice<T, B>,
    k_cache: &impl DeviceSlice<T, B>,
    v_cache: &impl DeviceSlice<T, B>,
    o: &mut impl DeviceSliceMut<T, B>,
    lse: &mut impl DeviceSliceMut<f32, B>,
    workspace: &mut impl DeviceSliceMut<f32, B>,
    shape: AttentionShape,
    kv_capacity: usize,
    cfg: AttentionConfig,
    split: SplitKv,
) -> Result<()>
where
    T: Elem + DeviceValue,
    B: Backend,
{
    let s = shape;
    let (lse_addr, lse_bytes, _lse_guard) = lse_region(backend, lse, s)?;
    check_shape(s, kv_capacity)?;
    let p = plan::plan(
        OP,
        s,
        T::DTYPE,
        backend.sm_count(),
        backend.max_shared_bytes_per_block(),
        split,
    )?;
    let need = p.workspace_len(s);
    let (ws_addr, _ws_guard) = workspace_addr(backend, workspace, need)?;
    launch::<T, B>(
        backend,
        q,
        k_cache,
        v_cache,
        o,
        Some((lse_addr, lse_bytes)),
        (ws_addr, need),
        &p,
        s,
        cache(s, kv_capacity),
        cfg,
    )
}

/// [`attention`] with `q`, `k` and `v` each at its own strides ([`AttentionLayout`]): each buffer holds
/// exactly the elements its strides span ([`crate::HeadStrides::span`]; `k` and `v` over `kv_len` rows), so
/// the three may be views of one fused QKV projection's output ([`AttentionLayout::fused_qkv`]; read-only
/// views of one buffer coexist). `o` is contiguous.
///
/// # Errors
/// As [`attention`]; `ShapeMismatch` unless each buffer holds its span; `InvalidArgument` for f16/bf16
/// strides that are not whole 16-byte chunks (the tensor-core kernels move rows 16 bytes at a time);
/// `Aliasing` when `o` overlaps the span of `q`, `k` or `v`.
#[allow(clippy::too_many_arguments)]
pub fn attention_strided<T, B>(
    backend: &B,
    q: &impl DeviceSlice<T, B>,
    k: &impl DeviceSlice<T, B>,
    v: &impl DeviceSlice<T, B>,
    o: &mut impl DeviceSliceMut<T, B>,
    shape: AttentionShape,
    layout: AttentionLayout,
    cfg: AttentionConfig,
) -> Result<()>
where
    T: Elem + DeviceValue,
    B: Backend,
{
    launch_allocating::<T, B>(backend, q, k, v, o, None, shape, (shape.kv_len, layout), cfg)
}

/// The contiguous layout of q, o and a `(batch, kv_capacity, n_kv_heads, head_dim)` K/V cache.
fn cache(s: AttentionShape, kv_capacity: usize) -> (usize, AttentionLayout) {
    let kv = HeadStrides::contiguous(kv_capacity, s.n_kv_heads, s.head_dim);
    let layout = AttentionLayout {
        k: kv,
        v: kv,
        ..AttentionLayout::contiguous(s)
    };
    (kv_capacity, layout)
}

/// The address and byte length of `lse: (batch, n_heads, q_len)` once its length is checked, with its guard.
fn lse_region<'a, B: Backend>(
    backend: &'a B,
    lse: &'a mut impl DeviceSliceMut<f32, B>,
    s: AttentionShape,
) -> Result<(u64, usize, B::Guard<'a>)> {
    let (addr, guard) = validate::addr_of_mut(OP, "lse", lse, backend, &[s.batch, s.n_heads, s.q_len])?;
    let bytes = validate::checked_product(OP, "lse bytes", &[s.batch, s.n_heads, s.q_len, 4])?;
    Ok((addr, bytes, guard))
}

/// Plans, allocates the workspace when the plan splits, and launches.
#[allow(clippy::too_many_arguments)]
fn launch_allocating<T, B>(
    backend: &B,
    q: &impl DeviceSlice<T, B>,
    k: &impl DeviceSlice<T, B>,
    v: &impl DeviceSlice<T, B>,
    o: &mut impl DeviceSliceMut<T, B>,
    lse: Option<(u64, usize)>,
    shape: AttentionShape,
    (kv_capacity, layout): (usize, AttentionLayout),
    cfg: AttentionConfig,
) -> Result<()>
where
    T: Elem + DeviceValue,
    B: Backend,
{
    check_shape(shape, kv_capacity)?;
    let p = plan::plan(
        OP,
        shape,
        T::DTYPE,
        backend.sm_count(),
        backend.max_shared_bytes_per_block(),
        SplitKv::Auto,
    )?;
    let need = p.workspace_len(shape);
    if need == 0 || shape.batch == 0 || shape.q_len == 0 {
        return launch::<T, B>(backend, q, k, v, o, lse, (0, 0), &p, shape, (kv_capacity, layout), cfg);
    }
    let mut ws = backend.alloc_poisoned::<f32>(need)?;
    let (ws_addr, _ws_guard) = ws.device_addr_mut(backend)?;
    launch::<T, B>(
        backend,
        q,
        k,
        v,
        o,
        lse,
        (ws_addr, need),
        &p,
        shape,
        (kv_capacity, layout),
        cfg,
    )
}

#[allow(clippy::too_many_arguments)]
fn launch<T, B>(
    backend: &B,
    q: &impl DeviceSlice<T, B>,
    k: &impl DeviceSlice<T, B>,
    v: &impl DeviceSlice<T, B>,
    o: &mut impl DeviceSliceMut<T, B>,
    lse: Option<(u64, usize)>,
    workspace: (u64, usize),
    p: &AttentionPlan,
    shape: AttentionShape,
    (kv_capacity, layout): (usize, AttentionLayout),
    cfg: AttentionConfig,
) -> Result<()>
where
    T: Elem + DeviceValue,
    B: Backend,
{
    let s = shape;
    let bad = |reason| Error::InvalidArgument { op: OP, reason };
    let (scale, scale_log2) = cfg.checked_scale(s.head_dim).map_err(bad)?;
    let (window_left, window_right) = cfg.checked_window().map_err(bad)?;
    let softcap = cfg.checked_softcap(s.head_dim).map_err(bad)?;
    let q_dims = [s.batch, s.q_len, s.n_heads, s.head_dim];
    let elem = std::mem::size_of::<T>();
    let q_elems = validate::checked_product(OP, "q", &q_dims)?;
    validate::to_i64(OP, "q elements", q_elems)?;
    // q, k and v as stored, at their strides; k and v over kv_capacity rows (a cache's first kv_len count).
    let span = |name: &'static str, st: HeadStrides, rows: usize, heads: usize| -> Result<usize> {
        let n = st
            .span(s.batch, rows, heads, s.head_dim)
            .ok_or_else(|| Error::SizeOverflow {
                op: OP,
                what: format!("{name}: the span of {st:?} overflows usize"),
            })?;
        validate::to_i64(OP, name, n)?;
        Ok(n)
    };
    let q_span = span("q", layout.q, s.q_len, s.n_heads)?;
    let k_span = span("k", layout.k, kv_capacity, s.n_kv_heads)?;
    let v_span = span("v", layout.v, kv_capacity, s.n_kv_heads)?;
    let (q_addr, _q_guard) = validate::addr_of(OP, "q", q, backend, &[q_span])?;
    let (k_addr, _k_guard) = validate::addr_of(OP, "k", k, backend, &[k_span])?;
    let (v_addr, _v_guard) = validate::addr_of(OP, "v", v, backend, &[v_span])?;
    let (o_addr, _o_guard) = validate::addr_of_mut(OP, "o", o, backend, &q_dims)?;
    if p.kind != Kind::V1 {
        // v2 moves q, k, v rows in 16-byte chunks (rows are whole chunks: head_dim % 8 == 0) and stores o
        // in 4-byte pairs: every start and stride a whole number of chunks.
        for (name, addr) in [("q", q_addr), ("k", k_addr), ("v", v_addr), ("o", o_addr)] {
            validate::check_align(OP, name, addr, 16)?;
        }
        for (name, st) in [("q", layout.q), ("k", layout.k), ("v", layout.v)] {
            if [st.batch, st.row, st.head].iter().any(|x| x * elem % 16 != 0) {
                return Err(Error::InvalidArgument {
                    op: OP,
                    reason: format!(
                        "{name}'s strides {st:?} are not whole 16-byte chunks, which the tensor-core kernels need"
                    ),
                });
            }
        }
    }
    let inputs = [
        ("q", q_addr, q_span * elem),
        ("k", k_addr, k_span * elem),
        ("v", v_addr, v_span * elem),
    ];
    let o_region = ("o", o_addr, q_elems * elem);
    for other in inputs {
        validate::check_no_overlap(OP, o_region, other)?;
    }
    let lse_ptr = match lse {
        Some((addr, bytes)) => {
            validate::check_align(OP, "lse", addr, 4)?;
            let lse_region = ("lse", addr, bytes);
            for other in inputs.iter().copied().chain([o_region]) {
                validate::check_no_overlap(OP, lse_region, other)?;
            }
            addr as *mut f32
        }
        None => std::ptr::null_mut(),
    };
    let (ws_addr, ws_len) = workspace;
    let (o_partial, lse_partial) = if p.n_splits > 1 {
        validate::check_align(OP, "workspace", ws_addr, 16)?;
        let ws_region = ("workspace", ws_addr, ws_len * 4);
        let lse_region = lse.map(|(a, b)| ("lse", a, b)).unwrap_or(("lse", 0, 0));
        for other in inputs.iter().copied().chain([o_region, lse_region]) {
            validate::check_no_overlap(OP, ws_region, other)?;
        }
        let o_partial_len = p.n_splits * s.batch * s.n_heads * s.q_len * s.head_dim;
        (ws_addr as *mut f32, (ws_addr + o_partial_len as u64 * 4) as *mut f32)
    } else {
        (std::ptr::null_mut(), std::ptr::null_mut())
    };

    let hd = s.head_dim as i64;
    let q_row = (s.n_heads * s.head_dim) as i64;
    let i64_of = |name, v| validate::to_i64(OP, name, v);
    let i32_of = |name, v| validate::to_i32(OP, name, v);
    let params = AttentionParams {
        o: o_addr as *mut std::ffi::c_void,
        lse: lse_ptr,
        q: q_addr as *const std::ffi::c_void,
        k: k_addr as *const std::ffi::c_void,
        v: v_addr as *const std::ffi::c_void,
        o_partial,
        lse_partial,
        cu_seqlens_q: std::ptr::null(),
        cu_seqlens_k: std::ptr::null(),
        seq_lens: std::ptr::null(),
        block_table: std::ptr::null(),
        q_batch_stride: i64_of("q batch stride", layout.q.batch)?,
        q_row_stride: i64_of("q row stride", layout.q.row)?,
        q_head_stride: i64_of("q head stride", layout.q.head)?,
        k_batch_stride: i64_of("k batch stride", layout.k.batch)?,
        k_row_stride: i64_of("k row stride", layout.k.row)?,
        k_head_stride: i64_of("k head stride", layout.k.head)?,
        v_batch_stride: i64_of("v batch stride", layout.v.batch)?,
        v_row_stride: i64_of("v row stride", layout.v.row)?,
        v_head_stride: i64_of("v head stride", layout.v.head)?,
        o_batch_stride: q_row * s.q_len as i64,
        o_row_stride: q_row,
        o_head_stride: hd,
        lse_batch_stride: (s.n_heads * s.q_len) as i64,
        lse_head_stride: s.q_len as i64,
        block_table_stride: 0,
        batch: i32_of("batch", s.batch)?,
        q_len: i32_of("q_len", s.q_len)?,
        kv_len: i32_of("kv_len", s.kv_len)?,
        n_heads: i32_of("n_heads", s.n_heads)?,
        n_kv_heads: i32_of("n_kv_heads", s.n_kv_heads)?,
        head_dim: i32_of("head_dim", s.head_dim)?,
        heads_per_kv_head: i32_of("heads_per_kv_head", s.n_heads / s.n_kv_heads)?,
        // Both fit in i32, so their difference fits too.
        diag_offset: s.kv_len as i32 - s.q_len as i32,
        window_left: window_field(window_left, s),
        window_right: window_field(window_right, s),
        n_splits: p.n_splits as i32,
        keys_per_split: i32_of("keys_per_split", p.keys_per_split)?,
        softmax_scale: scale,
        softmax_scale_log2: scale_log2,
        softcap: softcap.unwrap_or(0.0),
        softcap_input_scale: softcap.map_or(0.0, |c| scale / c),
        softcap_output_log2: softcap.map_or(0.0, |c| c * std::f32::consts::LOG2_E),
        total_q: 0,
        total_k: 0,
        page_size: 0,
        num_pages: 0,
        page_shift: -1,
    };
    if s.batch == 0 || s.q_len == 0 {
        return Ok(()); // no query: o and lse are empty (kv_len == 0 still launches: o = 0, lse = -inf)
    }
    backend.launch(p.kernel, p.dims, &params)?;
    if p.n_splits > 1 {
        launch_combine::<T, B>(backend, &params, p, s)?;
    }
    Ok(())
}

/// The caller's split-KV workspace once checked to hold `need` f32: its address and guard.
pub(super) fn workspace_addr<'a, B: Backend>(
    backend: &'a B,
    workspace: &'a mut impl DeviceSliceMut<f32, B>,
    need: usize,
) -> Result<(u64, B::Guard<'a>)> {
    if workspace.len() < need {
        return Err(Error::ShapeMismatch {
            op: OP,
            tensor: "workspace",
            expected: need,
            actual: workspace.len(),
        });
    }
    workspace.device_addr_mut(backend).map_err(|e| match e {
        Error::ContextMismatch { .. } => Error::ContextMismatch {
            op: OP,
            tensor: "workspace",
        },
        other => other,
    })
}

/// The combine kernel after a split launch of `params` (its outputs, workspace and row layout) planned
/// for `shape`.
pub(super) fn launch_combine<T: Elem, B: Backend>(
    backend: &B,
    params: &AttentionParams,
    p: &AttentionPlan,
    shape: AttentionShape,
) -> Result<()> {
    let combine = AttentionCombineParams {
        o: params.o,
        lse: params.lse,
        o_partial: params.o_partial,
        lse_partial: params.lse_partial,
        cu_seqlens_q: params.cu_seqlens_q,
        o_batch_stride: params.o_batch_stride,
        o_row_stride: params.o_row_stride,
        o_head_stride: params.o_head_stride,
        lse_batch_stride: params.lse_batch_stride,
        lse_head_stride: params.lse_head_stride,
        batch: params.batch,
        q_len: params.q_len,
        n_heads: params.n_heads,
        head_dim: params.head_dim,
        n_splits: params.n_splits,
        total_q: params.total_q,
    };
    backend.launch(AttentionPlan::combine_kernel(T::DTYPE), p.combine_dims(shape), &combine)
}

#[cfg(test)]
mod tests {
    use super::plan::{auto_split, bucket, plan, shared_bytes};
    use super::*;

    fn shape(head_dim: usize) -> AttentionShape {
        AttentionShape {
            batch: 2,
            q_len: 33,
            kv_len: 40,
            n_heads: 4,
            n_kv_heads: 2,
            head_dim,
        }
    }

    #[test]
    fn kernels_by_dtype_kind_and_bucket() {
        let p = plan(OP, shape(64), DType::F32, 132, 48 * 1024, SplitKv::Auto).unwrap();
        assert_eq!((p.dims.grid, p.kernel.name), ([3, 2, 2], "attention_f32_d64")); // 66 packed rows / 32
        let p = plan(OP, shape(72), DType::BF16, 132, 227 * 1024, SplitKv::Auto).unwrap();
        // 66 packed rows in one 128-row tile (d128 prefill: 8 warps).
        assert_eq!(
            (p.kernel.name, p.dims.grid[0], p.block_m, p.dims.block[0]),
            ("attention_bf16_d128", 1, 128, 256)
        );
        let decode = AttentionShape { q_len: 1, ..shape(256) };
        let p = plan(OP, decode, DType::F16, 132, 227 * 1024, SplitKv::Auto).unwrap();
        assert_eq!(p.kernel.name, "attention_decode_f16_d256");
        assert!(matches!(bucket(OP, 12), Err(Error::UnsupportedHeadDim { .. })));
        assert!(matches!(bucket(OP, 264), Err(Error::UnsupportedHeadDim { .. })));
        for k in KERNELS {
            assert!(crate::raw::module_image(k.module).is_some(), "{k:?}");
        }
    }

    #[test]
    fn shared_memory_matches_the_kernel_layouts() {
        // v1 d128 bf16: Q 32·128·4 + K 32·(128+2)·2 + V 32·128·2.
        assert_eq!(
            shared_bytes(Kind::V1, 128, 32, 32, 128, DType::BF16),
            16384 + 8320 + 8192
        );
        // v2 prefill d128: Q 64 rows + 2 stages x (K, V) of 64 rows, 128 wide, 2 bytes.
        assert_eq!(
            shared_bytes(Kind::Prefill, 128, 64, 64, 72, DType::BF16),
            (64 + 256) * 256
        );
        // d256 f32 needs the opt-in limit (over 48 KiB): rejected where the device allows less.
        let e = plan(OP, shape(256), DType::F32, 132, 48 * 1024, SplitKv::Auto).unwrap_err();
        assert!(matches!(e, Error::InvalidArgument { .. }), "{e}");
    }

    #[test]
    fn the_split_rule_fills_two_waves_and_reads_each_key_once() {
        // Decode b1, 8 kv heads, kv 8192, 132 SMs: 8 blocks unsplit -> splits of 3 tiles.
        let (n, keys) = auto_split(8, 4, 8192, 64, 132);
        assert_eq!((n, keys), (43, 192));
        assert!(n * 8 >= 2 * 132, "two blocks per SM");
        // Batch 16: 128 blocks -> 4 splits.
        assert_eq!(auto_split(128, 4, 8192, 64, 132), (4, 2688));
        // Enough blocks, or one tile of keys: unsplit.
        assert_eq!(auto_split(264, 4, 8192, 64, 132), (1, 8192));
        assert_eq!(auto_split(1, 4, 64, 64, 132), (1, 64));
        // Prefill blocks of 64 rows split no finer than 512 keys.
        assert_eq!(auto_split(16, 64, 4096, 64, 132), (8, 512));
        assert_eq!(auto_split(16, 64, 256, 64, 132), (1, 256));
        // Never more than MAX_SPLITS.
        let (n, keys) = auto_split(1, 4, 1 << 24, 64, 132);
        assert!(n <= MAX_SPLITS && keys % 64 == 0 && n * keys >= 1 << 24);
        for (blocks, kv) in [(1, 65), (3, 1000), (7, 4097), (100, 100_000)] {
            let (n, keys) = auto_split(blocks, 4, kv, 64, 132);
            assert!(keys % 64 == 0 || n == 1);
            assert!(n * keys >= kv && (n - 1) * keys < kv, "{blocks} {kv}: {n} x {keys}");
        }
    }

    #[test]
    fn fixed_splits_and_their_errors() {
        let decode = AttentionShape {
            q_len: 1,
            kv_len: 300,
            ..shape(128)
        };
        let p = plan(OP, decode, DType::BF16, 132, 227 * 1024, SplitKv::Fixed(3)).unwrap();
        assert_eq!((p.n_splits, p.keys_per_split), (3, 128));
        assert_eq!(p.workspace_len(decode), 3 * 2 * 4 * (128 + 1));
        assert!(plan(OP, decode, DType::BF16, 132, 227 * 1024, SplitKv::Fixed(0)).is_err());
        assert!(plan(OP, decode, DType::BF16, 132, 227 * 1024, SplitKv::Fixed(MAX_SPLITS + 1)).is_err());
        assert!(plan(OP, decode, DType::F32, 132, 227 * 1024, SplitKv::Fixed(2)).is_err());
    }
}
