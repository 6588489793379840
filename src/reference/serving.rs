//! Serving attention references ([`crate::ops::attention::attention_paged`], `attention_varlen`): each
//! sequence of a ragged batch is gathered into the contiguous batch-1 layout of
//! [`attention`](super::attention()) (its queries from the packed `q`, its keys from their pages or packed
//! rows), the batch-1 reference runs on it, and its `o` and `lse` are scattered back into the packed
//! layouts `o: (total_q, n_heads, head_dim)`, `lse: (n_heads, total_q)`. Gathering copies elements
//! unchanged, so the numerics are exactly those of the batch-1 reference: the kernels must match it
//! sequence by sequence.

use std::ops::Range;

use super::attention::{attention, attention_f64, attention_naive, attention_tiled, AttentionTiling};
use crate::dtype::Elem;
use crate::error::{Error, Result};
use crate::ops::attention::{check_metadata, Keys};
use crate::shapes::{AttentionConfig, AttentionShape, PagedKvShape, VarlenShape};

const OP: &str = "attention";

/// One sequence of a serving batch in the batch-1 layout of [`attention`](super::attention()).
#[derive(Clone, Debug, PartialEq)]
pub struct GatheredSeq<T> {
    /// Its rows of the packed `q`, `o` and `lse`.
    pub q_rows: Range<usize>,
    /// Batch 1, its own `q_len` and `kv_len`.
    pub shape: AttentionShape,
    /// `(1, q_len, n_heads, head_dim)`.
    pub q: Vec<T>,
    /// `(1, kv_len, n_kv_heads, head_dim)`.
    pub k: Vec<T>,
    /// `(1, kv_len, n_kv_heads, head_dim)`.
    pub v: Vec<T>,
}

fn seq_shape(s: VarlenShape, q_len: usize, kv_len: usize) -> AttentionShape {
    AttentionShape {
        batch: 1,
        q_len,
        kv_len,
        n_heads: s.n_heads,
        n_kv_heads: s.n_kv_heads,
        head_dim: s.head_dim,
    }
}

fn check_len(tensor: &'static str, len: usize, dims: &[usize]) -> Result<()> {
    let expected = crate::ops::validate::checked_product(OP, tensor, dims)?;
    if len != expected {
        return Err(Error::ShapeMismatch {
            op: OP,
            tensor,
            expected,
            actual: len,
        });
    }
    Ok(())
}

/// The sequences of an [`attention_paged`](crate::ops::attention::attention_paged) call, gathered.
///
/// # Errors
/// `InvalidArgument` for metadata out of range ([`check_metadata`]); `ShapeMismatch` for a wrong length.
#[allow(clippy::too_many_arguments)]
pub fn gather_paged<T: Elem>(
    q: &[T],
    (k_cache, v_cache): (&[T], &[T]),
    (cu_seqlens_q, seq_lens, block_table): (&[i32], &[i32], &[i32]),
    shape: VarlenShape,
    pages: PagedKvShape,
) -> Result<Vec<GatheredSeq<T>>> {
    let s = shape;
    if pages.page_size == 0 || s.n_heads == 0 || s.n_kv_heads == 0 || s.head_dim == 0 {
        return Err(Error::InvalidShape {
            op: OP,
            reason: "page_size, heads and head_dim must be positive".into(),
        });
    }
    let keys = Keys::Paged {
        seq_lens,
        block_table,
        pages,
    };
    check_metadata(s, cu_seqlens_q, keys)?;
    let kv_row = s.n_kv_heads * s.head_dim;
    let cache = [pages.num_pages, pages.page_size, kv_row];
    check_len("q", q.len(), &[s.total_q, s.n_heads, s.head_dim])?;
    check_len("k_cache", k_cache.len(), &cache)?;
    check_len("v_cache", v_cache.len(), &cache)?;
    Ok((0..s.batch)
        .map(|b| {
            let q_rows = cu_seqlens_q[b] as usize..cu_seqlens_q[b + 1] as usize;
            let kv_len = seq_lens[b] as usize;
            let slot = |j: usize| {
                block_table[b * pages.max_pages_per_seq + j / pages.page_size] as usize * pages.page_size
                    + j % pages.page_size
            };
            let rows = |t: &[T]| {
                (0..kv_len)
                    .flat_map(|j| t[slot(j) * kv_row..][..kv_row].iter().copied())
                    .collect()
            };
            GatheredSeq {
                shape: seq_shape(s, q_rows.len(), kv_len),
                q: q[q_rows.start * s.n_heads * s.head_dim..q_rows.end * s.n_heads * s.head_dim].to_vec(),
                k: rows(k_cache),
                v: rows(v_cache),
                q_rows,
            }
        })
        .collect())
}

/// The sequences of an [`attention_varlen`](crate::ops::attention::attention_varlen) call, gathered.
///
/// # Errors
/// As [`gather_paged`].
pub fn gather_varlen<T: Elem>(
    q: &[T],
    (k, v): (&[T], &[T]),
    (cu_seqlens_q, cu_seqlens_k): (&[i32], &[i32]),
    shape: VarlenShape,
) -> Result<Vec<GatheredSeq<T>>> {
    let s = shape;
    let kv_row = s.n_kv_heads * s.head_dim;
    if kv_row == 0 || s.n_heads == 0 {
        return Err(Error::InvalidShape {
            op: OP,
            reason: "n_kv_heads and head_dim must be positive".into(),
        });
    }
    let total_k = k.len() / kv_row;
    check_len("k", k.len(), &[total_k, kv_row])?;
    check_len("v", v.len(), &[total_k, kv_row])?;
    check_len("q", q.len(), &[s.total_q, s.n_heads, s.head_dim])?;
    check_metadata(s, cu_seqlens_q, Keys::Packed { cu_seqlens_k, total_k })?;
    Ok((0..s.batch)
        .map(|b| {
            let q_rows = cu_seqlens_q[b] as usize..cu_seqlens_q[b + 1] as usize;
            let k_rows = cu_seqlens_k[b] as usize..cu_seqlens_k[b + 1] as usize;
            let q_row = s.n_heads * s.head_dim;
            GatheredSeq {
                shape: seq_shape(s, q_rows.len(), k_rows.len()),
                q: q[q_rows.start * q_row..q_rows.end * q_row].to_vec(),
                k: k[k_rows.start * kv_row..k_rows.end * kv_row].to_vec(),
                v: v[k_rows.start * kv_row..k_rows.end * kv_row].to_vec(),
                q_rows,
            }
        })
        .collect())
}

/// Runs `f` on every sequence and scatters its `(o: (1, q_len, n_heads, head_dim), lse: (1, n_heads,
/// q_len))` into `o: (total_q, n_heads, head_dim)` and `lse: (n_heads, total_q)`. Rows of no sequence
/// (padding past `cu_seqlens_q[batch]`) stay `fill`.
///
/// # Errors
/// The first error of `f`.
pub fn scatter<T, X: Copy, Y: Copy>(
    seqs: &[GatheredSeq<T>],
    shape: VarlenShape,
    fill: (X, Y),
    mut f: impl FnMut(&GatheredSeq<T>) -> Result<(Vec<X>, Vec<Y>)>,
) -> Result<(Vec<X>, Vec<Y>)> {
    let s = shape;
    let q_row = s.n_heads * s.head_dim;
    let mut o = vec![fill.0; s.total_q * q_row];
    let mut lse = vec![fill.1; s.n_heads * s.total_q];
    for seq in seqs {
        let (o_b, lse_b) = f(seq)?;
        o[seq.q_rows.start * q_row..seq.q_rows.end * q_row].copy_from_slice(&o_b);
        let n = seq.q_rows.len();
        for h in 0..s.n_heads {
            if let Some(src) = lse_b.get(h * n..(h + 1) * n) {
                lse[h * s.total_q + seq.q_rows.start..][..n].copy_from_slice(src);
            }
        }
    }
    Ok((o, lse))
}

/// The serving reference: per sequence [`attention_tiled`] with `tiling` (the kernel's P rounding, from
/// the plan of the padded batch), or [`attention`](super::attention()) (P unrounded, v1) with `None`.
/// Returns `(o, lse, slack)` packed (see [`attention_tiled`] for the slack); rows of no sequence are 0.
///
/// # Errors
/// As [`attention_tiled`] for each sequence.
pub fn attention_serving<T: Elem>(
    seqs: &[GatheredSeq<T>],
    shape: VarlenShape,
    cfg: AttentionConfig,
    tiling: Option<AttentionTiling>,
) -> Result<(Vec<T>, Vec<f32>, Vec<f64>)> {
    let mut slack = vec![0.0; shape.total_q * shape.n_heads * shape.head_dim];
    let q_row = shape.n_heads * shape.head_dim;
    let (o, lse) = scatter(seqs, shape, (T::from_f64(0.0), 0.0f32), |sq| {
        let (o, lse, sl) = match tiling {
            Some(t) => attention_tiled(&sq.q, &sq.k, &sq.v, sq.shape, cfg, t)?,
            None => {
                let (o, lse) = attention(&sq.q, &sq.k, &sq.v, sq.shape, cfg)?;
                (o, lse, vec![0.0; sq.q.len()])
            }
        };
        slack[sq.q_rows.start * q_row..sq.q_rows.end * q_row].copy_from_slice(&sl);
        Ok((o, lse))
    })?;
    Ok((o, lse, slack))
}

/// [`attention_f64`] per sequence, packed: `(o, lse)` in f64.
///
/// # Errors
/// As [`attention_f64`].
pub fn attention_serving_f64<T: Elem>(
    seqs: &[GatheredSeq<T>],
    shape: VarlenShape,
    cfg: AttentionConfig,
) -> Result<(Vec<f64>, Vec<f64>)> {
    scatter(seqs, shape, (0.0, 0.0), |sq| {
        attention_f64(&sq.q, &sq.k, &sq.v, sq.shape, cfg)
    })
}

/// [`attention_naive`] per sequence, packed `o` (the baseline of the 2x rule).
///
/// # Errors
/// As [`attention_naive`].
pub fn attention_serving_naive<T: Elem>(
    seqs: &[GatheredSeq<T>],
    shape: VarlenShape,
    cfg: AttentionConfig,
) -> Result<Vec<T>> {
    let (o, _) = scatter(seqs, shape, (T::from_f64(0.0), 0.0f32), |sq| {
        Ok((attention_naive(&sq.q, &sq.k, &sq.v, sq.shape, cfg)?, Vec::new()))
    })?;
    Ok(o)
}
