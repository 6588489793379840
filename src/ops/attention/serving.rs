//! Serving attention: ragged batches ([`VarlenShape`]) over a paged KV cache ([`attention_paged`]: prefill
//! with a cached prefix, decode, or both in one batch) or over packed keys ([`attention_varlen`]: varlen
//! prefill without a cache), with per-sequence lengths from device metadata and LSE.
//!
//! | | |
//! |---|---|
//! | dtypes | as [`attention`](super::attention()): `f32` (v1), `f16`, `bf16` (v2); metadata `i32` |
//! | layouts | `q, o: (total_q, n_heads, head_dim)`, `lse: (n_heads, total_q)` f32 (FlashAttention's varlen layout); [`attention_paged`]: `k_cache, v_cache: (num_pages, page_size, n_kv_heads, head_dim)`, `block_table: (batch, max_pages_per_seq)`, `seq_lens: (batch,)`; [`attention_varlen`]: `k, v: (total_k, n_kv_heads, head_dim)` |
//! | metadata | `cu_seqlens_q: (batch + 1,)` (and `cu_seqlens_k`) non-decreasing from 0, each difference at most `max_q_len` (`max_kv_len`), the last at most `total_q` (`total_k`); `seq_lens[b] ≤ max_kv_len`; the first `ceil(seq_lens[b] / page_size)` entries of `block_table[b]` in `0..num_pages` |
//! | masking | per sequence, bottom-right aligned ([`VarlenShape`]): causal, windows and softcap as [`AttentionConfig`]; a sequence with no queries is skipped, one with no keys gives `o = 0`, `lse = -inf` |
//! | rows of no sequence | `o` and `lse` rows from `cu_seqlens_q[batch]` to `total_q` (padding) are not written |
//! | bad metadata | device data, so the host cannot check it without a copy: the kernels clamp every index they read into the tensors the host validated (nothing is read or written out of bounds), and write NaN to `o` and `lse` of a sequence whose lengths were out of range (all its rows) or of the rows whose keys lie in a page whose id is out of range (the rows of every block that read it: at least every query that would see one of its keys; a query that sees none of them is exact) ([`check_metadata`] checks host copies up front) |
//! | kernels | those of [`attention`](super::attention()), planned for the padded batch [`VarlenShape::padded`] (`max_q_len`, `max_kv_len`): decode kind when `max_q_len · n_heads / n_kv_heads ≤ 16`, split-KV from `max_kv_len`; blocks past a shorter sequence's queries exit at once, its splits past its keys see no key. Paged, each K/V row's address comes from its page (`cuda/include/attention_seq.cuh`) |
//! | numerics | per sequence exactly those of [`attention`](super::attention()) on that sequence alone with the batch's tiling ([`crate::reference::attention_serving`] gathers each sequence and runs the reference on it) |
//! | workspace | split-KV scratch from the caller, [`serving_workspace_len`] f32 (0 when the plan does not split); nothing is allocated |

use super::plan::{self, check_shape, window_field, AttentionPlan, Kind, SplitKv};
use super::{launch_combine, workspace_addr, OP};
use crate::backend::{Backend, DeviceSlice, DeviceSliceMut, DeviceValue};
use crate::dtype::{DType, Elem};
use crate::error::{Error, Result};
use crate::ops::validate;
use crate::raw::AttentionParams;
use crate::shapes::{AttentionConfig, PagedKvShape, VarlenShape};

/// The plan of a serving call: that of the padded batch [`VarlenShape::padded`].
///
/// # Errors
/// As [`attention_paged`] for the shape.
pub fn serving_plan<B: Backend>(
    backend: &B,
    shape: VarlenShape,
    dtype: DType,
    split: SplitKv,
) -> Result<AttentionPlan> {
    super::plan(backend, shape.padded(), dtype, split)
}

/// f32 elements of workspace [`attention_paged`] and [`attention_varlen`] need for `shape` with `split`
/// (0 when the plan does not split).
///
/// # Errors
/// As [`serving_plan`].
pub fn serving_workspace_len<B: Backend>(
    backend: &B,
    shape: VarlenShape,
    dtype: DType,
    split: SplitKv,
) -> Result<usize> {
    Ok(serving_plan(backend, shape, dtype, split)?.workspace_len(shape.padded()))
}

/// Checks host copies of the metadata of [`attention_paged`] (`cu_seqlens_k = None`) or
/// [`attention_varlen`] (`seq_lens`, `block_table` and `pages` unused, `total_k` given): what the
/// kernels would otherwise report as NaN, as an error naming the sequence. Optional: for debug builds
/// of an engine, or where the metadata is built on the host anyway.
///
/// # Errors
/// `InvalidArgument` naming the first sequence whose metadata is out of range; `ShapeMismatch` for a
/// wrong metadata length.
pub fn check_metadata(shape: VarlenShape, cu_seqlens_q: &[i32], keys: Keys<'_>) -> Result<()> {
    let b = shape.batch;
    validate::check_len(OP, "cu_seqlens_q", cu_seqlens_q.len(), &[b + 1])?;
    let bad = |reason: String| Err(Error::InvalidArgument { op: OP, reason });
    let packed = |name: &str, cu: &[i32], total: usize, max_len: usize| -> Result<()> {
        if cu[0] < 0 {
            return bad(format!("{name}[0] = {} is negative", cu[0]));
        }
        for s in 0..b {
            let (lo, hi) = (cu[s] as i64, cu[s + 1] as i64);
            if hi < lo || hi as u64 > total as u64 || (hi - lo) as u64 > max_len as u64 {
                return bad(format!(
                    "sequence {s}: {name} {lo}..{hi} is not a range of at most {max_len} rows within {total}"
                ));
            }
        }
        Ok(())
    };
    packed("cu_seqlens_q", cu_seqlens_q, shape.total_q, shape.max_q_len)?;
    match keys {
        Keys::Paged {
            seq_lens,
            block_table,
            pages,
        } => {
            validate::check_len(OP, "seq_lens", seq_lens.len(), &[b])?;
            validate::check_len(OP, "block_table", block_table.len(), &[b, pages.max_pages_per_seq])?;
            for (s, &n) in seq_lens.iter().enumerate() {
                if n < 0 || n as u64 > shape.max_kv_len as u64 {
                    return bad(format!(
                        "sequence {s}: seq_lens = {n} is outside 0..={}",
                        shape.max_kv_len
                    ));
                }
                let used = (n as usize).div_ceil(pages.page_size.max(1));
                if used > pages.max_pages_per_seq {
                    return bad(format!(
                        "sequence {s}: seq_lens = {n} needs {used} pages; block_table has {}",
                        pages.max_pages_per_seq
                    ));
                }
                let row = &block_table[s * pages.max_pages_per_seq..][..used];
                if let Some((j, &p)) = row
                    .iter()
                    .enumerate()
                    .find(|&(_, &p)| p < 0 || p as u64 >= pages.num_pages as u64)
                {
                    return bad(format!(
                        "sequence {s}: block_table entry {j} = {p} is not a page (0..{})",
                        pages.num_pages
                    ));
                }
            }
            Ok(())
        }
        Keys::Packed { cu_seqlens_k, total_k } => {
            validate::check_len(OP, "cu_seqlens_k", cu_seqlens_k.len(), &[b + 1])?;
            packed("cu_seqlens_k", cu_seqlens_k, total_k, shape.max_kv_len)
        }
    }
}

/// Where a serving batch's keys are, for [`check_metadata`] (host copies).
#[derive(Clone, Copy, Debug)]
pub enum Keys<'a> {
    /// A paged cache ([`attention_paged`]).
    Paged {
        /// Keys of each sequence.
        seq_lens: &'a [i32],
        /// `(batch, max_pages_per_seq)` page ids.
        block_table: &'a [i32],
        /// The cache's pages.
        pages: PagedKvShape,
    },
    /// Packed keys ([`attention_varlen`]).
    Packed {
        /// `(batch + 1,)` first key row of each sequence.
        cu_seqlens_k: &'a [i32],
        /// Rows of `k` and `v`.
        total_k: usize,
    },
}

/// `o ← attention(q, K/V of each sequence)` over a paged KV cache: sequence `b` has queries
/// `cu_seqlens_q[b]..cu_seqlens_q[b + 1]` of `q` and keys `0..seq_lens[b]` in the pages
/// `block_table[b]`, masked bottom-right aligned (a decode batch is `cu_seqlens_q = 0, 1, .., batch`;
/// prefill with a cached prefix has `seq_lens[b]` = prefix + new tokens, the new tokens appended first by
/// [`crate::ops::kv_cache::kv_append`]). Writes `o: (total_q, n_heads, head_dim)` and
/// `lse: (n_heads, total_q)`; `workspace` holds at least [`serving_workspace_len`] f32 (16-byte
/// aligned). See the module docs for the metadata's contract. Does not synchronize.
///
/// # Errors
/// As [`attention_with_workspace`](super::attention_with_workspace) for the padded shape;
/// `InvalidShape` for a zero `page_size` or `max_pages_per_seq · page_size < max_kv_len`; `ShapeMismatch`
/// for a wrong buffer or metadata length; `SizeOverflow` for `total_q` or `num_pages · page_size` over
/// `i32::MAX`; `Aliasing` when a written buffer overlaps another buffer.
#[allow(clippy::too_many_arguments)]
pub fn attention_paged<T, B>(
    backend: &B,
    q: &impl DeviceSlice<T, B>,
    (k_cache, v_cache): (&impl DeviceSlice<T, B>, &impl DeviceSlice<T, B>),
    (cu_seqlens_q, seq_lens, block_table): (
        &impl DeviceSlice<i32, B>,
        &impl DeviceSlice<i32, B>,
        &impl DeviceSlice<i32, B>,
    ),
    (o, lse): (&mut impl DeviceSliceMut<T, B>, &mut impl DeviceSliceMut<f32, B>),
    workspace: &mut impl DeviceSliceMut<f32, B>,
    shape: VarlenShape,
    pages: PagedKvShape,
    cfg: AttentionConfig,
    split: SplitKv,
) -> Result<()>
where
    T: Elem + DeviceValue,
    B: Backend,
{
    let s = shape;
    check_shape(s.padded(), s.max_kv_len)?;
    validate::check_positive(OP, "page_size", pages.page_size)?;
    if pages.max_pages_per_seq.saturating_mul(pages.page_size) < s.max_kv_len {
        return Err(Error::InvalidShape {
            op: OP,
            reason: format!(
                "max_kv_len {} is more than max_pages_per_seq {} pages of {} keys hold",
                s.max_kv_len, pages.max_pages_per_seq, pages.page_size
            ),
        });
    }
    let slots = validate::checked_product(OP, "cache slots", &[pages.num_pages, pages.page_size])?;
    validate::to_i32(OP, "num_pages · page_size", slots)?;
    let cache_dims = [pages.num_pages, pages.page_size, s.n_kv_heads, s.head_dim];
    let (k_addr, _kg) = validate::addr_of(OP, "k_cache", k_cache, backend, &cache_dims)?;
    let (v_addr, _vg) = validate::addr_of(OP, "v_cache", v_cache, backend, &cache_dims)?;
    let (sl_addr, _sg) = validate::addr_of(OP, "seq_lens", seq_lens, backend, &[s.batch])?;
    let (bt_addr, _bg) = validate::addr_of(
        OP,
        "block_table",
        block_table,
        backend,
        &[s.batch, pages.max_pages_per_seq],
    )?;
    let kv_bytes = slots * s.n_kv_heads * s.head_dim * std::mem::size_of::<T>();
    let keys = KeyTensors {
        k: ("k_cache", k_addr, kv_bytes),
        v: ("v_cache", v_addr, kv_bytes),
        total_k: slots,
        meta: KeyMeta::Paged {
            seq_lens: ("seq_lens", sl_addr, s.batch * 4),
            block_table: ("block_table", bt_addr, s.batch * pages.max_pages_per_seq * 4),
            pages,
        },
    };
    launch(backend, q, cu_seqlens_q, keys, (o, lse), workspace, s, cfg, split)
}

/// Varlen prefill: [`attention_paged`] with each sequence's keys packed like its queries, sequence `b`
/// attending rows `cu_seqlens_k[b]..cu_seqlens_k[b + 1]` of `k, v: (total_k, n_kv_heads, head_dim)`
/// (`total_k` from their length); with `cu_seqlens_k = cu_seqlens_q` and `causal`, a packed batch of
/// prompts, each causal within itself.
///
/// # Errors
/// As [`attention_paged`]; `ShapeMismatch` unless `k` and `v` are whole rows of equal length.
#[allow(clippy::too_many_arguments)]
pub fn attention_varlen<T, B>(
    backend: &B,
    q: &impl DeviceSlice<T, B>,
    (k, v): (&impl DeviceSlice<T, B>, &impl DeviceSlice<T, B>),
    (cu_seqlens_q, cu_seqlens_k): (&impl DeviceSlice<i32, B>, &impl DeviceSlice<i32, B>),
    (o, lse): (&mut impl DeviceSliceMut<T, B>, &mut impl DeviceSliceMut<f32, B>),
    workspace: &mut impl DeviceSliceMut<f32, B>,
    shape: VarlenShape,
    cfg: AttentionConfig,
    split: SplitKv,
) -> Result<()>
where
    T: Elem + DeviceValue,
    B: Backend,
{
    let s = shape;
    check_shape(s.padded(), s.max_kv_len)?;
    let row = s.n_kv_heads * s.head_dim;
    let total_k = k.len() / row;
    let (k_addr, _kg) = validate::addr_of(OP, "k", k, backend, &[total_k, s.n_kv_heads, s.head_dim])?;
    let (v_addr, _vg) = validate::addr_of(OP, "v", v, backend, &[total_k, s.n_kv_heads, s.head_dim])?;
    validate::to_i32(OP, "total_k", total_k)?;
    let (ck_addr, _cg) = validate::addr_of(OP, "cu_seqlens_k", cu_seqlens_k, backend, &[s.batch + 1])?;
    let kv_bytes = total_k * row * std::mem::size_of::<T>();
    let keys = KeyTensors {
        k: ("k", k_addr, kv_bytes),
        v: ("v", v_addr, kv_bytes),
        total_k,
        meta: KeyMeta::Packed {
            cu_seqlens_k: ("cu_seqlens_k", ck_addr, (s.batch + 1) * 4),
        },
    };
    launch(backend, q, cu_seqlens_q, keys, (o, lse), workspace, s, cfg, split)
}

/// A validated buffer: its name, address and bytes (for the overlap checks).
type Region = (&'static str, u64, usize);

/// The key side of a launch, validated: k and v, their rows, and what places each sequence's keys.
struct KeyTensors {
    k: Region,
    v: Region,
    total_k: usize,
    meta: KeyMeta,
}

/// How each sequence's keys are found.
enum KeyMeta {
    /// In pages of a cache ([`attention_paged`]).
    Paged {
        seq_lens: Region,
        block_table: Region,
        pages: PagedKvShape,
    },
    /// Packed rows ([`attention_varlen`]).
    Packed { cu_seqlens_k: Region },
}

#[allow(clippy::too_many_arguments)]
fn launch<T, B>(
    backend: &B,
    q: &impl DeviceSlice<T, B>,
    cu_seqlens_q: &impl DeviceSlice<i32, B>,
    keys: KeyTensors,
    (o, lse): (&mut impl DeviceSliceMut<T, B>, &mut impl DeviceSliceMut<f32, B>),
    workspace: &mut impl DeviceSliceMut<f32, B>,
    s: VarlenShape,
    cfg: AttentionConfig,
    split: SplitKv,
) -> Result<()>
where
    T: Elem + DeviceValue,
    B: Backend,
{
    let padded = s.padded(); // checked by the entry points (check_shape)
    let bad = |reason| Error::InvalidArgument { op: OP, reason };
    let (scale, scale_log2) = cfg.checked_scale(s.head_dim).map_err(bad)?;
    let (window_left, window_right) = cfg.checked_window().map_err(bad)?;
    let softcap = cfg.checked_softcap(s.head_dim).map_err(bad)?;
    let p: AttentionPlan = plan::plan(
        OP,
        padded,
        T::DTYPE,
        backend.sm_count(),
        backend.max_shared_bytes_per_block(),
        split,
    )?;
    let i32_of = |name, v| validate::to_i32(OP, name, v);
    let total_q = i32_of("total_q", s.total_q)?;
    let elem = std::mem::size_of::<T>();
    let q_dims = [s.total_q, s.n_heads, s.head_dim];
    let q_bytes = validate::checked_product(OP, "q bytes", &[s.total_q, s.n_heads, s.head_dim, elem])?;
    let (q_addr, _qg) = validate::addr_of(OP, "q", q, backend, &q_dims)?;
    let (cq_addr, _cg) = validate::addr_of(OP, "cu_seqlens_q", cu_seqlens_q, backend, &[s.batch + 1])?;
    let (o_addr, _og) = validate::addr_of_mut(OP, "o", o, backend, &q_dims)?;
    let (lse_addr, _lg) = validate::addr_of_mut(OP, "lse", lse, backend, &[s.n_heads, s.total_q])?;
    let need = p.workspace_len(padded);
    let (ws_addr, _wg) = workspace_addr(backend, workspace, need)?;
    if p.kind != Kind::V1 {
        // v2 moves rows in 16-byte chunks (rows are whole chunks: head_dim % 8 == 0).
        for (name, addr) in [("q", q_addr), (keys.k.0, keys.k.1), (keys.v.0, keys.v.1), ("o", o_addr)] {
            validate::check_align(OP, name, addr, 16)?;
        }
    }
    let o_region = ("o", o_addr, q_bytes);
    let lse_region = ("lse", lse_addr, s.n_heads * s.total_q * 4);
    let ws_region = ("workspace", ws_addr, if p.n_splits > 1 { need * 4 } else { 0 });
    if p.n_splits > 1 {
        validate::check_align(OP, "workspace", ws_addr, 16)?;
    }
    let mut inputs = vec![
        ("q", q_addr, q_bytes),
        ("cu_seqlens_q", cq_addr, (s.batch + 1) * 4),
        keys.k,
        keys.v,
    ];
    match keys.meta {
        KeyMeta::Paged {
            seq_lens, block_table, ..
        } => inputs.extend([seq_lens, block_table]),
        KeyMeta::Packed { cu_seqlens_k } => inputs.push(cu_seqlens_k),
    }
    let written = [o_region, lse_region, ws_region];
    for (n, w) in written.iter().enumerate() {
        for other in inputs.iter().chain(&written[n + 1..]) {
            validate::check_no_overlap(OP, *w, *other)?;
        }
    }
    let (o_partial, lse_partial) = if p.n_splits > 1 {
        let o_partial_len = p.n_splits * s.batch * s.n_heads * s.max_q_len * s.head_dim;
        (ws_addr as *mut f32, (ws_addr + o_partial_len as u64 * 4) as *mut f32)
    } else {
        (std::ptr::null_mut(), std::ptr::null_mut())
    };
    let (q_row, kv_row, hd) = (
        (s.n_heads * s.head_dim) as i64,
        (s.n_kv_heads * s.head_dim) as i64,
        s.head_dim as i64,
    );
    let unpaged = PagedKvShape {
        num_pages: 0,
        page_size: 0,
        max_pages_per_seq: 0,
    };
    let (seq_lens, block_table, cu_seqlens_k, pages) = match keys.meta {
        KeyMeta::Paged {
            seq_lens,
            block_table,
            pages,
        } => (
            seq_lens.1 as *const i32,
            block_table.1 as *const i32,
            std::ptr::null(),
            pages,
        ),
        KeyMeta::Packed { cu_seqlens_k } => (
            std::ptr::null(),
            std::ptr::null(),
            cu_seqlens_k.1 as *const i32,
            unpaged,
        ),
    };
    let params = AttentionParams {
        o: o_addr as *mut std::ffi::c_void,
        lse: lse_addr as *mut f32,
        q: q_addr as *const std::ffi::c_void,
        k: keys.k.1 as *const std::ffi::c_void,
        v: keys.v.1 as *const std::ffi::c_void,
        o_partial,
        lse_partial,
        cu_seqlens_q: cq_addr as *const i32,
        cu_seqlens_k,
        seq_lens,
        block_table,
        q_batch_stride: 0,
        q_row_stride: q_row,
        q_head_stride: hd,
        k_batch_stride: 0,
        k_row_stride: kv_row,
        k_head_stride: hd,
        v_batch_stride: 0,
        v_row_stride: kv_row,
        v_head_stride: hd,
        o_batch_stride: 0,
        o_row_stride: q_row,
        o_head_stride: hd,
        lse_batch_stride: 0,
        lse_head_stride: s.total_q as i64,
        block_table_stride: pages.max_pages_per_seq as i64,
        batch: i32_of("batch", s.batch)?,
        q_len: i32_of("max_q_len", s.max_q_len)?,
        kv_len: i32_of("max_kv_len", s.max_kv_len)?,
        n_heads: i32_of("n_heads", s.n_heads)?,
        n_kv_heads: i32_of("n_kv_heads", s.n_kv_heads)?,
        head_dim: i32_of("head_dim", s.head_dim)?,
        heads_per_kv_head: i32_of("heads_per_kv_head", s.n_heads / s.n_kv_heads)?,
        diag_offset: 0, // per sequence, from its metadata
        window_left: window_field(window_left, padded),
        window_right: window_field(window_right, padded),
        n_splits: p.n_splits as i32,
        keys_per_split: i32_of("keys_per_split", p.keys_per_split)?,
        softmax_scale: scale,
        softmax_scale_log2: scale_log2,
        softcap: softcap.unwrap_or(0.0),
        softcap_input_scale: softcap.map_or(0.0, |c| scale / c),
        softcap_output_log2: softcap.map_or(0.0, |c| c * std::f32::consts::LOG2_E),
        total_q,
        total_k: i32_of("total_k", keys.total_k)?,
        page_size: i32_of("page_size", pages.page_size)?,
        num_pages: i32_of("num_pages", pages.num_pages)?,
        page_shift: if pages.page_size.is_power_of_two() {
            pages.page_size.trailing_zeros() as i32
        } else {
            -1
        },
    };
    if s.batch == 0 || s.max_q_len == 0 || s.total_q == 0 {
        return Ok(()); // no query
    }
    backend.launch(p.kernel, p.dims, &params)?;
    if p.n_splits > 1 {
        launch_combine::<T, B>(backend, &params, &p, padded)?;
    }
    Ok(())
}
