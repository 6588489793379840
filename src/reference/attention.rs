//! Scaled dot-product attention with bottom-right causal masking, grouped-query heads and the softmax
//! log-sum-exp.
//!
//! `q: (batch, q_len, n_heads, head_dim)`, `k, v: (batch, kv_len, n_kv_heads, head_dim)`;
//! outputs `o: (batch, q_len, n_heads, head_dim)` and `lse: (batch, n_heads, q_len)`. Query head `h`
//! reads kv head `h / (n_heads / n_kv_heads)`. For batch `b`, head `h`, query `i`:
//!
//! ```text
//! d          = kv_len - q_len + i                 (query i's diagonal key, bottom-right aligned)
//! visible(i) = { j < kv_len : d - window_left <= j <= d + window_right }   (None = unbounded; causal: right 0)
//! x_j        = scale * sum_d q[i, d] * k[j, d]    for j in visible(i)
//! s_j        = softcap ? softcap * tanh(x_j / softcap) : x_j
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
//! | [`attention`] | scores, softmax and `P·V` in f64 | `o` rounded to `T` once, `lse` to f32 once (v1, the f32 kernel, keeps P in f32) |
//! | [`attention_tiled`] | as [`attention`], but each `P` term rounded to `T` where the tensor-core kernel rounds it | `P`, then `o` to `T`, `lse` to f32 |
//! | [`attention_f64`] | f64 | none |
//! | [`attention_naive`] | `T` | every product, partial sum, score, softmax term and division rounded to `T` |

use crate::dtype::Elem;
use crate::error::{Error, Result};
use crate::reference::{check_len, check_positive, round_t};
use crate::shapes::{AttentionConfig, AttentionShape};

const OP: &str = "attention";

/// The checked scalars of a configuration: the scale and the soft cap.
#[derive(Clone, Copy, Debug)]
struct Checked {
    scale: f64,
    softcap: Option<f64>,
}

/// Checks the dimensions, the GQA ratio, the slice lengths, the scale, the window and the soft cap.
fn validate(q: usize, k: usize, v: usize, shape: AttentionShape, cfg: AttentionConfig) -> Result<Checked> {
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
    let bad = |reason| Error::InvalidArgument { op: OP, reason };
    let (scale, _) = cfg.checked_scale(s.head_dim).map_err(bad)?;
    cfg.checked_window().map_err(bad)?; // visible_range applies it
    let softcap = cfg.checked_softcap(s.head_dim).map_err(bad)?;
    Ok(Checked {
        scale: scale as f64,
        softcap: softcap.map(f64::from),
    })
}

/// The keys query `i` sees, `visible(i)` of the module docs (an interval, possibly empty).
pub fn visible_range(shape: AttentionShape, cfg: AttentionConfig, i: usize) -> std::ops::Range<usize> {
    let window = cfg.checked_window().unwrap_or((cfg.window_left, Some(0)));
    let diag = shape.kv_len as i128 - shape.q_len as i128 + i as i128;
    let lo = window.0.map_or(0, |l| diag - l as i128).clamp(0, shape.kv_len as i128) as usize;
    let hi = window
        .1
        .map_or(shape.kv_len as i128, |r| diag + r as i128 + 1)
        .clamp(0, shape.kv_len as i128) as usize;
    lo..hi.max(lo)
}

/// The number of keys query `i` sees without a window: `j` in `0..visible_keys`.
pub fn visible_keys(shape: AttentionShape, causal: bool, i: usize) -> usize {
    let cfg = AttentionConfig {
        causal,
        ..AttentionConfig::default()
    };
    visible_range(shape, cfg, i).end
}

/// The score `scale · q·k` (soft-capped: `softcap · tanh(scale · q·k / softcap)`), exact (f64) while the
/// kernel's f32 computation of it stays within f32's range. The kernel sums `q·k` as an f32 fma chain over
/// `d` from +0 and multiplies it by one f32: `scale·log2 e`, or with a soft cap `scale / softcap` (the
/// argument of its tanh; the cap's own factor `softcap·log2 e` is finite, the op checks it). When a
/// product, a partial sum or that product leaves f32's range, this evaluates the same chain in f32, so the
/// infinities and NaN it gives (by sign and by order of the terms) are the kernel's; a tanh argument past
/// f32's range is ±1, as the kernel's tanhf of ±inf.
fn kernel_range_score<T: Elem>(q: &[T], k: &[T], c: Checked) -> f64 {
    match c.softcap {
        None => kernel_range_dot(
            q,
            k,
            c.scale,
            c.scale as f32 * std::f32::consts::LOG2_E,
            std::f64::consts::LOG2_E,
        ),
        Some(cap) => cap * kernel_range_dot(q, k, c.scale / cap, c.scale as f32 / cap as f32, 1.0).tanh(),
    }
}

/// `factor · q·k`, exact while the kernel's f32 `q·k`, and that times `mult32`, stay within f32's range;
/// else the kernel's f32 value of `q·k · mult32`, divided by `div` (`mult32 ≈ factor · div`).
fn kernel_range_dot<T: Elem>(q: &[T], k: &[T], factor: f64, mult32: f32, div: f64) -> f64 {
    let fits = |v: f64| !(v as f32).is_infinite();
    let mut dot = 0.0f64;
    let mut in_range = true;
    for (a, b) in q.iter().zip(k) {
        let product = a.to_f64() * b.to_f64();
        dot += product;
        in_range &= fits(product) && fits(dot);
    }
    if in_range && fits(dot * mult32 as f64) {
        return factor * dot;
    }
    let dot32 = q
        .iter()
        .zip(k)
        .fold(0.0f32, |acc, (a, b)| a.to_f32().mul_add(b.to_f32(), acc));
    (dot32 * mult32) as f64 / div
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

/// Where the tensor-core kernel (v2) rounds `P`, for [`attention_tiled`]: each key belongs to one stream
/// (its split, and the warp of its tile that holds it), and a stream rounds `exp(s_j - m)` to `T` against
/// its running max `m` over the tiles it has seen so far. `ops::attention::plan` gives the kernel's.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct AttentionTiling {
    /// Keys per tile (`BLOCK_N`); tiles start at multiples of it.
    pub block_n: usize,
    /// Warps that split each tile's keys (`WARPS_KV`): warp `w` holds keys `w · block_n / warps_kv..`.
    pub warps_kv: usize,
    /// Keys per split, a multiple of `block_n` (`kv_len` or more when unsplit).
    pub keys_per_split: usize,
}

/// Exact attention in f64: `(o, lse)` with the layouts of the module docs; with `tiling`, each P term
/// rounded to `T` as the tensor-core kernel rounds it.
fn attention_exact<T: Elem>(
    q: &[T],
    k: &[T],
    v: &[T],
    s: AttentionShape,
    cfg: AttentionConfig,
    c: Checked,
    tiling: Option<AttentionTiling>,
) -> (Vec<f64>, Vec<f64>, Vec<f64>) {
    let hd = s.head_dim;
    let mut o = vec![0.0f64; s.batch * s.q_len * s.n_heads * hd]; // (batch, q_len, n_heads, head_dim)
    let mut slack = vec![0.0f64; o.len()]; // (batch, q_len, n_heads, head_dim)
    let mut lse = vec![f64::NEG_INFINITY; s.batch * s.n_heads * s.q_len]; // (batch, n_heads, q_len)
    for_each_head(q, k, v, s, |b, h, head| {
        for (i, qi) in head.q.iter().enumerate() {
            let vis = visible_range(s, cfg, i);
            if vis.is_empty() {
                continue; // o stays 0, lse stays -inf
            }
            // scores: (visible keys,), held to f32's range as the kernel's are
            let scores: Vec<f64> = head.k[vis.clone()]
                .iter()
                .map(|kj| kernel_range_score(qi, kj, c))
                .collect();
            let m = nan_max(&scores);
            if m == f64::NEG_INFINITY {
                continue; // every visible key has weight 0: as no visible key
            }
            let p: Vec<f64> = scores.iter().map(|sj| (sj - m).exp()).collect();
            let l: f64 = p.iter().sum();
            // The weight of each key in P·V: p_j, or (tiled, m finite) round_T(exp(s_j - m_stream)) ·
            // exp(m_stream - m), m_stream the running max of the key's stream when its tile came.
            let (weights, ambiguity) = match tiling {
                Some(t) if m.is_finite() => tiled_weights::<T>(&scores, vis.start, m, t),
                _ => (p.clone(), vec![0.0; p.len()]),
            };
            let row = ((b * s.q_len + i) * s.n_heads + h) * hd;
            let out = &mut o[row..][..hd];
            let out_slack = &mut slack[row..][..hd];
            for (((wj, aj), vj), sj) in weights.iter().zip(&ambiguity).zip(&head.v[vis.clone()]).zip(&scores) {
                if *sj == f64::NEG_INFINITY {
                    continue; // weight exactly 0: its v row (even inf or NaN) does not count
                }
                for ((od, sd), vd) in out.iter_mut().zip(out_slack.iter_mut()).zip(*vj) {
                    *od += wj * vd.to_f64();
                    *sd += aj * vd.to_f64().abs();
                }
            }
            out.iter_mut().for_each(|od| *od /= l);
            out_slack.iter_mut().for_each(|sd| *sd /= l);
            lse[(b * s.n_heads + h) * s.q_len + i] = m + l.ln();
        }
    });
    (o, lse, slack)
}

/// Relative distance from a rounding boundary of T within which the kernel's P (from an f32 score and
/// exp2f, about 2^-20 relative off the exact value for scores of order 10) may round the other way.
const P_AMBIGUITY: f64 = 1.0 / (1u64 << 18) as f64;

/// The P·V weights of one row under `t` (see [`attention_exact`]); `scores[n]` is key `first + n`. Also
/// returns each weight's ambiguity: how far the rounded term may move when the exact term lies within
/// [`P_AMBIGUITY`] of a rounding boundary of T (0 otherwise).
fn tiled_weights<T: Elem>(scores: &[f64], first: usize, m: f64, t: AttentionTiling) -> (Vec<f64>, Vec<f64>) {
    let warp_n = t.block_n / t.warps_kv;
    let stream = |j: usize| (j / t.keys_per_split, j % t.block_n / warp_n);
    let mut running: std::collections::HashMap<(usize, usize), f64> = Default::default();
    let mut weights = vec![0.0; scores.len()];
    let mut ambiguity = vec![0.0; scores.len()];
    // Tiles in order; within a tile, a stream's max first takes in all its keys of the tile.
    let mut n = 0;
    while n < scores.len() {
        let tile = (first + n) / t.block_n;
        let end = ((tile + 1) * t.block_n - first).min(scores.len());
        for (dn, sj) in scores[n..end].iter().enumerate() {
            let m_s = running.entry(stream(first + n + dn)).or_insert(f64::NEG_INFINITY);
            *m_s = m_s.max(*sj);
        }
        for (dn, sj) in scores[n..end].iter().enumerate() {
            let m_s = running[&stream(first + n + dn)];
            let (p, back) = ((sj - m_s).exp(), (m_s - m).exp());
            let rt = |x: f64| round_t::<T>(x).to_f64();
            weights[n + dn] = rt(p) * back;
            ambiguity[n + dn] = (rt(p * (1.0 + P_AMBIGUITY)) - rt(p * (1.0 - P_AMBIGUITY))).abs() * back;
        }
        n = end;
    }
    (weights, ambiguity)
}

/// Attention reference: scores, softmax and `P·V` in f64, `o` rounded once to `T` and `lse` once to f32.
/// Returns `(o: (batch, q_len, n_heads, head_dim), lse: (batch, n_heads, q_len))`.
///
/// # Errors
/// `InvalidShape` for a zero `n_heads`, `n_kv_heads` or `head_dim`, or `n_heads % n_kv_heads != 0`; `ShapeMismatch` for a wrong
/// `q`/`k`/`v` length; `InvalidArgument` for a `softmax_scale` that is not finite, is zero, or overflows
/// f32 times `log2 e`, a `softcap` that is not finite and positive, or `causal` with `window_right` other
/// than 0.
pub fn attention<T: Elem>(
    q: &[T],
    k: &[T],
    v: &[T],
    shape: AttentionShape,
    cfg: AttentionConfig,
) -> Result<(Vec<T>, Vec<f32>)> {
    let c = validate(q.len(), k.len(), v.len(), shape, cfg)?;
    let (o, lse, _) = attention_exact(q, k, v, shape, cfg, c, None);
    Ok((
        o.into_iter().map(round_t::<T>).collect(),
        lse.into_iter().map(|x| x as f32).collect(),
    ))
}

/// [`attention`] with each `P` term rounded to `T` where the tensor-core kernel rounds it (before the
/// `P·V` matmul, against its stream's running max; see [`AttentionTiling`]); the row sum `l` stays
/// unrounded, as the kernel's. For f32 `T` the rounding is exact and this is [`attention`]. Returns
/// `(o, lse, slack)`: `slack` (the layout of `o`) bounds how far `o` may move from terms whose exact
/// value lies so close to a rounding boundary of `T` that the kernel's f32 score may round them the other
/// way; add it to the tolerance ([`crate::reference::Tolerance::check_with_slack`]).
///
/// # Errors
/// As [`attention`]; `InvalidArgument` for a tiling with `block_n` or `warps_kv` 0, `block_n` not a
/// multiple of `warps_kv`, or `keys_per_split` not a positive multiple of `block_n`.
pub fn attention_tiled<T: Elem>(
    q: &[T],
    k: &[T],
    v: &[T],
    shape: AttentionShape,
    cfg: AttentionConfig,
    tiling: AttentionTiling,
) -> Result<(Vec<T>, Vec<f32>, Vec<f64>)> {
    let c = validate(q.len(), k.len(), v.len(), shape, cfg)?;
    let t = tiling;
    if t.block_n == 0
        || t.warps_kv == 0
        || t.block_n % t.warps_kv != 0
        || t.keys_per_split == 0
        || t.keys_per_split % t.block_n != 0
    {
        return Err(Error::InvalidArgument {
            op: OP,
            reason: format!("tiling {t:?}: block_n must be a positive multiple of warps_kv, keys_per_split of block_n"),
        });
    }
    let (o, lse, slack) = attention_exact(q, k, v, shape, cfg, c, Some(t));
    Ok((
        o.into_iter().map(round_t::<T>).collect(),
        lse.into_iter().map(|x| x as f32).collect(),
        slack,
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
    let c = validate(q.len(), k.len(), v.len(), shape, cfg)?;
    let (o, lse, _) = attention_exact(q, k, v, shape, cfg, c, None);
    Ok((o, lse))
}

/// Attention computed in the storage precision, as PyTorch's
/// `softmax(q @ k.T * scale) @ v` would without upcasting, for the baseline of FlashAttention's 2x rule.
/// Returns `o: (batch, q_len, n_heads, head_dim)`.
///
/// Every intermediate is rounded to `T` (`rt` below); sums run left to right over `d` or `j`:
///
/// ```text
/// x_j = rt(rt(sum_d rt(q_d * k_jd)) * scale)   every partial sum rounded
/// s_j = softcap ? rt(softcap * rt(tanh(rt(x_j / softcap)))) : x_j
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
    let c = validate(q.len(), k.len(), v.len(), shape, cfg)?;
    let s = shape;
    let hd = s.head_dim;
    let rt = |x: f64| round_t::<T>(x).to_f64();
    let mut o = vec![T::from_f32(0.0); s.batch * s.q_len * s.n_heads * hd]; // (batch, q_len, n_heads, head_dim)
    for_each_head(q, k, v, s, |b, h, head| {
        for (i, qi) in head.q.iter().enumerate() {
            let vis = visible_range(s, cfg, i);
            if vis.is_empty() {
                continue;
            }
            let scores: Vec<f64> = head.k[vis.clone()]
                .iter()
                .map(|kj| {
                    let dot = qi
                        .iter()
                        .zip(*kj)
                        .fold(0.0, |acc, (a, b)| rt(acc + rt(a.to_f64() * b.to_f64())));
                    let x = rt(dot * c.scale);
                    c.softcap.map_or(x, |cap| rt(cap * rt(rt(x / cap).tanh())))
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
                    .zip(&head.v[vis.clone()])
                    .zip(&scores)
                    .filter(|(_, sj)| **sj != f64::NEG_INFINITY)
                    .fold(0.0, |acc, ((pj, vj), _)| rt(acc + rt(pj * vj[d].to_f64())));
                *od = T::from_f64(acc);
            }
        }
    });
    Ok(o)
}
