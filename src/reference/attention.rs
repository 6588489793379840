//! Scaled dot-product attention with bottom-right causal masking, grouped-query heads and the softmax
//! log-sum-exp.
//!
//! `q: (batch, q_len, n_heads, head_dim)`, `k, v: (batch, kv_len, n_kv_heads, head_dim)`;
//! outputs `o: (batch, q_len, n_heads, head_dim)` and `lse: (batch, n_heads, q_len)`. Query head `h`
//! reads kv head `h / (n_heads / n_kv_heads)`. For batch `b`, head `h`, query `i`:
//!
//! ```text
//! visible(i) = { j : j <= kv_len - q_len + i }   (causal, bottom-right aligned; all j when not causal)
//! s_j        = scale * sum_d q[i, d] * k[j, d]    for j in visible(i)
//! m          = max_j s_j
//! p_j        = exp(s_j - m) / l,  l = sum_j exp(s_j - m)
//! o[i, d]    = sum_j p_j * v[j, d]
//! lse        = m + ln(l)                          (natural log, of the scaled scores)
//! ```
//!
//! `scale = cfg.scale(head_dim)` (`1/sqrt(head_dim)` by default). A query with no visible key (causal and
//! `q_len > kv_len`, the first `q_len - kv_len` queries, or `kv_len == 0`) gives `o = 0` and
//! `lse = -inf`, never NaN.
//!
//! Edges, as the kernel behaves: the scores live in f32's range. The kernel computes `q·k` as an f32 fma
//! chain over `d` and then `q·k · (scale · log2 e)` in f32; where that leaves f32's range, the reference
//! evaluates the same f32 chain, so a score is `+inf`, `-inf` or NaN exactly as the kernel's (a kernel
//! that sums in another order, such as a tensor-core version, must state its own). A `-inf` score is a key
//! of weight 0 that `P·V` skips, as it skips keys the query does not see, so an inf or NaN in its `v` row
//! does not reach the output (a row whose every key has weight 0 is as a row with no visible key); a
//! `+inf` score makes its row NaN (`inf - inf`), and so does a NaN score. NaN always reaches `lse` too: `lse = -inf` means
//! only "no key had weight", so a split-KV merge can never drop a NaN. `batch == 0` or `q_len == 0`
//! gives empty outputs.
//!
//! | function | precision | rounding |
//! |---|---|---|
//! | [`attention`] | scores, softmax and `P·V` in f64 | `o` rounded to `T` once, `lse` to f32 once (the first kernel keeps P in f32) |
//! | [`attention_f64`] | f64 | none |
//! | [`attention_naive`] | `T` | every product, partial sum, score, softmax term and division rounded to `T` |

use crate::dtype::Elem;
use crate::error::{Error, Result};
use crate::reference::{check_len, check_positive, round_t};
use crate::shapes::{AttentionConfig, AttentionShape};

const OP: &str = "attention";

/// Checks the dimensions, the GQA ratio, the slice lengths and the scale; returns the scale.
fn validate(q: usize, k: usize, v: usize, shape: AttentionShape, cfg: AttentionConfig) -> Result<f64> {
    let s = shape;
    check_positive(
        OP,
        &[
            ("n_heads", s.n_heads),
            ("n_kv_heads", s.n_kv_heads),
            ("head_dim", s.head_dim),
        ],
    )?;
    if s.n_heads % s.n_kv_heads != 0 {
        return Err(Error::InvalidShape {
            op: OP,
            reason: format!(
                "n_heads ({}) must be a multiple of n_kv_heads ({})",
                s.n_heads, s.n_kv_heads
            ),
        });
    }
    check_len(OP, "q", q, &[s.batch, s.q_len, s.n_heads, s.head_dim])?;
    check_len(OP, "k", k, &[s.batch, s.kv_len, s.n_kv_heads, s.head_dim])?;
    check_len(OP, "v", v, &[s.batch, s.kv_len, s.n_kv_heads, s.head_dim])?;
    let (scale, _) = cfg
        .checked_scale(s.head_dim)
        .map_err(|reason| Error::InvalidArgument { op: OP, reason })?;
    Ok(scale as f64)
}

/// The number of keys query `i` sees: `j` in `0..visible_keys`.
pub fn visible_keys(shape: AttentionShape, causal: bool, i: usize) -> usize {
    if !causal {
        return shape.kv_len;
    }
    // j <= kv_len - q_len + i, i.e. j < kv_len + i + 1 - q_len (clamped to 0..=kv_len).
    (shape.kv_len + i + 1).saturating_sub(shape.q_len).min(shape.kv_len)
}

/// The score `scale · q·k`, exact (f64) while the kernel's f32 computation of it stays within f32's range.
/// The kernel sums `q·k` as an f32 fma chain over `d` from +0 and multiplies by `scale·log2 e` (an f32);
/// when a product, a partial sum or the scaled score leaves f32's range, this evaluates that same chain in
/// f32, so the infinities and NaN it gives (by sign and by order of the terms) are the kernel's.
fn kernel_range_score<T: Elem>(q: &[T], k: &[T], scale: f64) -> f64 {
    let fits = |v: f64| !(v as f32).is_infinite();
    let mut dot = 0.0f64;
    let mut in_range = true;
    for (a, b) in q.iter().zip(k) {
        let product = a.to_f64() * b.to_f64();
        dot += product;
        in_range &= fits(product) && fits(dot);
    }
    let scale_log2 = scale as f32 * std::f32::consts::LOG2_E;
    if in_range && fits(dot * scale_log2 as f64) {
        return scale * dot;
    }
    let dot32 = q
        .iter()
        .zip(k)
        .fold(0.0f32, |acc, (a, b)| a.to_f32().mul_add(b.to_f32(), acc));
    (dot32 * scale_log2) as f64 / std::f64::consts::LOG2_E
}

/// The largest score, or NaN when any score is NaN (`f64::max` would skip it and hide the NaN in `lse`).
fn nan_max(scores: &[f64]) -> f64 {
    scores.iter().fold(f64::NEG_INFINITY, |m, &s| {
        if m.is_nan() || s.is_nan() {
            f64::NAN
        } else {
            m.max(s)
        }
    })
}

/// One (batch, head) problem's rows, borrowed from the full tensors.
struct Head<'a, T> {
    q: Vec<&'a [T]>, // q_len rows of (head_dim,)
    k: Vec<&'a [T]>, // kv_len rows of (head_dim,)
    v: Vec<&'a [T]>, // kv_len rows of (head_dim,)
}

/// Calls `f(b, h, head)` for every batch entry and query head, with the rows of q and of the kv head it
/// reads.
fn for_each_head<'a, T>(
    q: &'a [T],
    k: &'a [T],
    v: &'a [T],
    s: AttentionShape,
    mut f: impl FnMut(usize, usize, Head<'a, T>),
) {
    let group = s.n_heads / s.n_kv_heads;
    let hd = s.head_dim;
    let q_row = |b: usize, i: usize, h: usize| ((b * s.q_len + i) * s.n_heads + h) * hd;
    let kv_row = |b: usize, j: usize, hk: usize| ((b * s.kv_len + j) * s.n_kv_heads + hk) * hd;
    for b in 0..s.batch {
        for h in 0..s.n_heads {
            let hk = h / group;
            let head = Head {
                q: (0..s.q_len).map(|i| &q[q_row(b, i, h)..][..hd]).collect(),
                k: (0..s.kv_len).map(|j| &k[kv_row(b, j, hk)..][..hd]).collect(),
                v: (0..s.kv_len).map(|j| &v[kv_row(b, j, hk)..][..hd]).collect(),
            };
            f(b, h, head);
        }
    }
}

/// Exact attention in f64: `(o, lse)` with the layouts of the module docs.
fn attention_exact<T: Elem>(
    q: &[T],
    k: &[T],
    v: &[T],
    s: AttentionShape,
    causal: bool,
    scale: f64,
) -> (Vec<f64>, Vec<f64>) {
    let hd = s.head_dim;
    let mut o = vec![0.0f64; s.batch * s.q_len * s.n_heads * hd]; // (batch, q_len, n_heads, head_dim)
    let mut lse = vec![f64::NEG_INFINITY; s.batch * s.n_heads * s.q_len]; // (batch, n_heads, q_len)
    for_each_head(q, k, v, s, |b, h, head| {
        for (i, qi) in head.q.iter().enumerate() {
            let n_vis = visible_keys(s, causal, i);
            if n_vis == 0 {
                continue; // o stays 0, lse stays -inf
            }
            // scores: (n_vis,), held to f32's range as the kernel's are
            let scores: Vec<f64> = head.k[..n_vis]
                .iter()
                .map(|kj| kernel_range_score(qi, kj, scale))
                .collect();
            let m = nan_max(&scores);
            if m == f64::NEG_INFINITY {
                continue; // every visible key has weight 0: as no visible key
            }
            let p: Vec<f64> = scores.iter().map(|sj| (sj - m).exp()).collect();
            let l: f64 = p.iter().sum();
            let out = &mut o[((b * s.q_len + i) * s.n_heads + h) * hd..][..hd];
            for ((pj, vj), sj) in p.iter().zip(&head.v[..n_vis]).zip(&scores) {
                if *sj == f64::NEG_INFINITY {
                    continue; // weight exactly 0: its v row (even inf or NaN) does not count
                }
                for (od, vd) in out.iter_mut().zip(*vj) {
                    *od += pj * vd.to_f64();
                }
            }
            out.iter_mut().for_each(|od| *od /= l);
            lse[(b * s.n_heads + h) * s.q_len + i] = m + l.ln();
        }
    });
    (o, lse)
}

/// Attention reference: scores, softmax and `P·V` in f64, `o` rounded once to `T` and `lse` once to f32.
/// Returns `(o: (batch, q_len, n_heads, head_dim), lse: (batch, n_heads, q_len))`.
///
/// # Errors
/// `InvalidShape` for a zero `n_heads`, `n_kv_heads` or `head_dim`, or `n_heads % n_kv_heads != 0`; `ShapeMismatch` for a wrong
/// `q`/`k`/`v` length; `InvalidArgument` for a `softmax_scale` that is not finite, is zero, or overflows
/// f32 times `log2 e`.
pub fn attention<T: Elem>(
    q: &[T],
    k: &[T],
    v: &[T],
    shape: AttentionShape,
    cfg: AttentionConfig,
) -> Result<(Vec<T>, Vec<f32>)> {
    let scale = validate(q.len(), k.len(), v.len(), shape, cfg)?;
    let (o, lse) = attention_exact(q, k, v, shape, cfg.causal, scale);
    Ok((
        o.into_iter().map(round_t::<T>).collect(),
        lse.into_iter().map(|x| x as f32).collect(),
    ))
}

/// Attention oracle: everything in f64, nothing rounded. Returns `(o, lse)` as [`attention`] does.
///
/// # Errors
/// As [`attention`].
pub fn attention_f64<T: Elem>(
    q: &[T],
    k: &[T],
    v: &[T],
    shape: AttentionShape,
    cfg: AttentionConfig,
) -> Result<(Vec<f64>, Vec<f64>)> {
    let scale = validate(q.len(), k.len(), v.len(), shape, cfg)?;
    Ok(attention_exact(q, k, v, shape, cfg.causal, scale))
}

/// Attention computed in the storage precision, as PyTorch's
/// `softmax(q @ k.T * scale) @ v` would without upcasting, for the baseline of FlashAttention's 2x rule.
/// Returns `o: (batch, q_len, n_heads, head_dim)`.
///
/// Every intermediate is rounded to `T` (`rt` below); sums run left to right over `d` or `j`:
///
/// ```text
/// s_j = rt(rt(sum_d rt(q_d * k_jd)) * scale)   every partial sum rounded
/// m   = max_j s_j
/// e_j = rt(exp(rt(s_j - m)))
/// l   = sum_j e_j                               every partial sum rounded
/// p_j = rt(e_j / l)
/// o_d = sum_j rt(p_j * v_jd)                    every partial sum rounded
/// ```
///
/// This is more pessimistic than torch's bf16 matmul, which accumulates in f32 on the GPU; the kernels are
/// also held to the tight [`attention`] comparison, so the looser baseline only widens the 2x rule. A
/// query with no visible key gives zeros (torch would give NaN).
///
/// # Errors
/// As [`attention`].
pub fn attention_naive<T: Elem>(
    q: &[T],
    k: &[T],
    v: &[T],
    shape: AttentionShape,
    cfg: AttentionConfig,
) -> Result<Vec<T>> {
    let scale = validate(q.len(), k.len(), v.len(), shape, cfg)?;
    let s = shape;
    let hd = s.head_dim;
    let rt = |x: f64| round_t::<T>(x).to_f64();
    let mut o = vec![T::from_f32(0.0); s.batch * s.q_len * s.n_heads * hd]; // (batch, q_len, n_heads, head_dim)
    for_each_head(q, k, v, s, |b, h, head| {
        for (i, qi) in head.q.iter().enumerate() {
            let n_vis = visible_keys(s, cfg.causal, i);
            if n_vis == 0 {
                continue;
            }
            let scores: Vec<f64> = head.k[..n_vis]
                .iter()
                .map(|kj| {
                    let dot = qi
                        .iter()
                        .zip(*kj)
                        .fold(0.0, |acc, (a, b)| rt(acc + rt(a.to_f64() * b.to_f64())));
                    rt(dot * scale)
                })
                .collect();
            let m = nan_max(&scores);
            if m == f64::NEG_INFINITY {
                continue;
            }
            let e: Vec<f64> = scores.iter().map(|sj| rt(rt(sj - m).exp())).collect();
            let l = e.iter().fold(0.0, |acc, ej| rt(acc + ej));
            let p: Vec<f64> = e.iter().map(|ej| rt(ej / l)).collect();
            let out = &mut o[((b * s.q_len + i) * s.n_heads + h) * hd..][..hd];
            for (d, od) in out.iter_mut().enumerate() {
                let acc = p
                    .iter()
                    .zip(&head.v[..n_vis])
                    .zip(&scores)
                    .filter(|(_, sj)| **sj != f64::NEG_INFINITY)
                    .fold(0.0, |acc, ((pj, vj), _)| rt(acc + rt(pj * vj[d].to_f64())));
                *od = T::from_f64(acc);
            }
        }
    });
    Ok(o)
}
