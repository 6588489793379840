//! General matrix multiply: `C = alpha · op(A) · op(B) + beta · C`.
//!
//! Row-major. `op(A): (m, k)` is `A` stored `(m, k)`, or `Aᵀ` of `A` stored `(k, m)` when `trans_a`;
//! `op(B): (k, n)` is `B` stored `(k, n)`, or `Bᵀ` of `B` stored `(n, k)` when `trans_b` (LLaMA's
//! `y = x · Wᵀ` with `W: (out, in)`). `C: (m, n)`.
//!
//! ```text
//! acc[i, j] = sum_p op(A)[i, p] * op(B)[p, j]
//! C'[i, j]  = alpha * acc[i, j] + beta * C[i, j]     (beta == 0: C is not read, so NaN in C is harmless)
//! ```
//!
//! | function | precision | rounding |
//! |---|---|---|
//! | [`gemm`] | f64 accumulation (the kernels accumulate in f32) | `C'` rounded once to `T` |
//! | [`gemm_f64`] | f64 | none |
//! | [`gemm_naive`] | `T` | every product and partial sum, `alpha·acc`, `beta·C` and their sum rounded to `T` |
//!
//! [`gemm_abs_bound`] gives `|alpha|·sum_p |op(A)[i,p]|·|op(B)[p,j]| + |beta|·|C[i,j]|` per element, the
//! scale of the classical error bound: a computation that rounds to unit roundoff `u` (products, `k - 1`
//! sums, and the alpha/beta epilogue) is within `γ_(k+3) · bound` of the exact result, with
//! `γ_n = n·u / (1 - n·u)` (Higham, *Accuracy and Stability of Numerical Algorithms*, §3.1).
//! Epilogues ([`GemmEpilogue`], `cuda/include/gemm_epilogue.cuh`), with `v = alpha·acc`:
//!
//! | epilogue | [`gemm`] (f64, rounded) | [`gemm_f64`] | [`gemm_naive`] |
//! |---|---|---|---|
//! | `ResidualAdd(MatchTorch)` | `rt(rt(v) + C)` | `v + C` | `rt(rt(v) + C)` of the naive `acc` |
//! | `ResidualAdd(Once)` | `rt(v + C)` | `v + C` | as `MatchTorch` |
//! | `SwiGlu(MatchTorch)` | SwiGLU's `MatchTorch` of `rt(g)`, `rt(u)` | `silu(g)·u` | `rt(rt(silu(g))·u)` of the naive `g`, `u` |
//! | `SwiGlu(Once)` | `rt(silu(g)·u)` | `silu(g)·u` | as `MatchTorch` |
//!
//! `g` and `u` are `v` of the gate column `(o / S)·2S + o % S` and of the up column `+ S` for output
//! column `o` (`S` = [`GEMM_SWIGLU_BLOCK`]); `C` is then `(m, n / 2)`.
//! `c` always has `m * n` elements (`m * n / 2` for SwiGLU), also when `beta == 0`. Zero sizes are valid: `m == 0` or `n == 0` gives
//! an empty `C`, and `k == 0` gives `C' = alpha·0 + beta·C` (an empty sum is 0).

use crate::dtype::Elem;
use crate::error::{Error, Result};
use crate::reference::swiglu::silu;
use crate::reference::{check_finite, check_len, round_t};
use crate::shapes::{GemmBatch, GemmConfig, GemmEpilogue, GemmShape, Rounding, GEMM_SWIGLU_BLOCK};

const OP: &str = "gemm";

/// Columns of `C`: `n`, or `n / 2` for SwiGLU.
pub fn c_cols(shape: GemmShape, cfg: GemmConfig) -> usize {
    match cfg.epilogue {
        GemmEpilogue::SwiGlu(_) => shape.n / 2,
        _ => shape.n,
    }
}

fn validate(a: usize, b: usize, c: usize, shape: GemmShape, cfg: GemmConfig) -> Result<()> {
    check_len(OP, "a", a, &[shape.m, shape.k])?;
    check_len(OP, "b", b, &[shape.k, shape.n])?;
    check_finite(OP, "alpha", cfg.alpha as f64)?;
    check_finite(OP, "beta", cfg.beta as f64)?;
    cfg.check_epilogue(OP, shape)?;
    check_len(OP, "c", c, &[shape.m, c_cols(shape, cfg)])
}

/// `op(A)[i, p]` from `A` stored `(m, k)`, or `(k, m)` when `trans_a`.
fn a_at<T: Elem>(a: &[T], shape: GemmShape, trans_a: bool, i: usize, p: usize) -> f64 {
    let idx = if trans_a { p * shape.m + i } else { i * shape.k + p };
    a[idx].to_f64()
}

/// `op(B)[p, j]` from `B` stored `(k, n)`, or `(n, k)` when `trans_b`.
fn b_at<T: Elem>(b: &[T], shape: GemmShape, trans_b: bool, p: usize, j: usize) -> f64 {
    let idx = if trans_b { j * shape.k + p } else { p * shape.n + j };
    b[idx].to_f64()
}

/// `f(p_terms)` for every element of `op(A)·op(B)`, where `p_terms` yields `(op(A)[i,p], op(B)[p,j])` in
/// order `p = 0..k`. Returns the `(m, n)` results.
fn map_acc<T: Elem, U>(
    a: &[T],
    b: &[T],
    shape: GemmShape,
    cfg: GemmConfig,
    mut f: impl FnMut(&mut dyn Iterator<Item = (f64, f64)>) -> U,
) -> Vec<U> {
    let mut out = Vec::with_capacity(shape.m * shape.n);
    for i in 0..shape.m {
        for j in 0..shape.n {
            let mut terms =
                (0..shape.k).map(|p| (a_at(a, shape, cfg.trans_a, i, p), b_at(b, shape, cfg.trans_b, p, j)));
            out.push(f(&mut terms));
        }
    }
    out
}

/// The `(m, c_cols)` output from the `(m, n)` accumulators: `linear(acc, c)` per element for Linear and
/// ResidualAdd, `swiglu(acc_gate, acc_up)` per output element for SwiGlu.
fn apply<U: Copy, V>(
    acc: &[U],
    shape: GemmShape,
    cfg: GemmConfig,
    mut linear: impl FnMut(U, usize) -> V,
    mut swiglu: impl FnMut(U, U) -> V,
) -> Vec<V> {
    match cfg.epilogue {
        GemmEpilogue::SwiGlu(_) => {
            let s = GEMM_SWIGLU_BLOCK;
            let cols = shape.n / 2;
            (0..shape.m * cols)
                .map(|ij| {
                    let (i, o) = (ij / cols, ij % cols);
                    let gate = i * shape.n + o / s * 2 * s + o % s;
                    swiglu(acc[gate], acc[gate + s])
                })
                .collect()
        }
        _ => acc.iter().enumerate().map(|(ij, &x)| linear(x, ij)).collect(),
    }
}

/// `alpha * acc + beta * c` (Linear) or `alpha * acc + c` (ResidualAdd) in f64, not reading `c` when
/// Linear has `beta == 0`.
fn epilogue_f64(acc: f64, c: f64, cfg: GemmConfig) -> f64 {
    let scaled = cfg.alpha as f64 * acc;
    match cfg.epilogue {
        GemmEpilogue::ResidualAdd(_) => scaled + c,
        _ if cfg.beta == 0.0 => scaled,
        _ => scaled + cfg.beta as f64 * c,
    }
}

/// GEMM reference: `op(A) · op(B)` accumulated in f64, then the epilogue with the rounding points of
/// the module docs' table (Linear: `alpha·acc + beta·C` rounded once to `T`).
///
/// # Errors
/// `ShapeMismatch` unless `a`, `b`, `c` have `m·k`, `k·n`, `m·n` (`m·n/2` for SwiGLU) elements;
/// `InvalidArgument` for a non-finite `alpha` or `beta`, or `beta != 0` with another epilogue than
/// Linear; `InvalidShape` for SwiGLU with `n` not a multiple of `2·GEMM_SWIGLU_BLOCK`.
pub fn gemm<T: Elem>(a: &[T], b: &[T], c: &[T], shape: GemmShape, cfg: GemmConfig) -> Result<Vec<T>> {
    validate(a.len(), b.len(), c.len(), shape, cfg)?;
    let acc = map_acc(a, b, shape, cfg, |terms| terms.fold(0.0, |acc, (x, y)| acc + x * y));
    let alpha = cfg.alpha as f64;
    let rt = |x: f64| round_t::<T>(x).to_f64();
    Ok(apply(
        &acc,
        shape,
        cfg,
        |acc, ij| match cfg.epilogue {
            GemmEpilogue::ResidualAdd(Rounding::MatchTorch) => round_t::<T>(rt(alpha * acc) + c[ij].to_f64()),
            _ => round_t::<T>(epilogue_f64(acc, c[ij].to_f64(), cfg)),
        },
        |g, u| {
            let (g, u) = (alpha * g, alpha * u);
            match cfg.epilogue {
                GemmEpilogue::SwiGlu(Rounding::MatchTorch) => round_t::<T>(rt(silu(rt(g))) * rt(u)),
                _ => round_t::<T>(silu(g) * u),
            }
        },
    ))
}

/// GEMM oracle: the same sum and epilogue in f64, nothing rounded.
///
/// # Errors
/// As [`gemm`].
pub fn gemm_f64<T: Elem>(a: &[T], b: &[T], c: &[T], shape: GemmShape, cfg: GemmConfig) -> Result<Vec<f64>> {
    validate(a.len(), b.len(), c.len(), shape, cfg)?;
    // From +0, as the kernels' accumulators start (`Sum` would start an empty sum at -0).
    let acc = map_acc(a, b, shape, cfg, |terms| terms.fold(0.0, |acc, (x, y)| acc + x * y));
    let alpha = cfg.alpha as f64;
    Ok(apply(
        &acc,
        shape,
        cfg,
        |acc, ij| epilogue_f64(acc, c[ij].to_f64(), cfg),
        |g, u| silu(alpha * g) * (alpha * u),
    ))
}

/// GEMM in the storage precision, as PyTorch's `alpha * (a @ b) + beta * c` would be with every
/// intermediate in `T`: each product and each partial sum (left to right over `p`) rounded to `T`, then
/// `rt(alpha·acc)`, `rt(beta·c)` and their sum rounded (the `beta` terms only when `beta != 0`);
/// ResidualAdd `rt(rt(alpha·acc) + C)`, SwiGlu `rt(rt(silu(g))·u)` of `g = rt(alpha·acc_gate)`,
/// `u = rt(alpha·acc_up)`. The baseline of the 2x rule; pessimistic next to cuBLAS, which accumulates in
/// f32.
///
/// # Errors
/// As [`gemm`].
pub fn gemm_naive<T: Elem>(a: &[T], b: &[T], c: &[T], shape: GemmShape, cfg: GemmConfig) -> Result<Vec<T>> {
    validate(a.len(), b.len(), c.len(), shape, cfg)?;
    let rt = |x: f64| round_t::<T>(x).to_f64();
    let acc = map_acc(a, b, shape, cfg, |terms| {
        terms.fold(0.0, |acc, (x, y)| rt(acc + rt(x * y)))
    });
    let alpha = cfg.alpha as f64;
    Ok(apply(
        &acc,
        shape,
        cfg,
        |acc, ij| {
            let scaled = rt(alpha * acc);
            round_t::<T>(match cfg.epilogue {
                GemmEpilogue::ResidualAdd(_) => scaled + c[ij].to_f64(),
                _ if cfg.beta == 0.0 => scaled,
                _ => scaled + rt(cfg.beta as f64 * c[ij].to_f64()),
            })
        },
        |g, u| round_t::<T>(rt(silu(rt(alpha * g))) * rt(alpha * u)),
    ))
}

/// Per element of `C`, in f64: for Linear and ResidualAdd the magnitude
/// `|alpha|·sum_p |op(A)[i,p]·op(B)[p,j]| + |beta'|·|C[i,j]|` (`beta' = beta`, or 1 for ResidualAdd; the
/// `C` term only when it is read), the scale of the error bound in the module docs; for SwiGlu the
/// magnitude of the gate column's accumulation, `|alpha|·sum_p |..|` (use [`gemm_error_bound`] for a
/// bound).
///
/// # Errors
/// As [`gemm`].
pub fn gemm_abs_bound<T: Elem>(a: &[T], b: &[T], c: &[T], shape: GemmShape, cfg: GemmConfig) -> Result<Vec<f64>> {
    validate(a.len(), b.len(), c.len(), shape, cfg)?;
    let alpha = (cfg.alpha as f64).abs();
    let beta = match cfg.epilogue {
        GemmEpilogue::ResidualAdd(_) => 1.0,
        _ => (cfg.beta as f64).abs(),
    };
    let mag = map_acc(a, b, shape, cfg, |terms| {
        alpha * terms.map(|(x, y)| (x * y).abs()).sum::<f64>()
    });
    Ok(apply(
        &mag,
        shape,
        cfg,
        |m, ij| {
            if beta == 0.0 {
                m
            } else {
                m + beta * c[ij].to_f64().abs()
            }
        },
        |g, _| g,
    ))
}

/// The error bound, per element, of a kernel that accumulates in f32 and applies the epilogue at the
/// kernel's rounding points, against [`gemm_f64`]. Linear and ResidualAdd: `γ_(k+3)(f32) ·
/// gemm_abs_bound` for the relative rounding errors, plus `(2k·|alpha| + 3) · 2^-150` for the absolute
/// ones (each f32 product and sum that lands in f32's subnormal range can lose half of 2^-149, and
/// alpha scales those of the accumulation), plus half an ulp of `T` of the result for the final
/// rounding (and of `alpha·acc` for ResidualAdd's MatchTorch rounding). SwiGlu: the errors `e_g`,
/// `e_u` of the two accumulations (as above, plus half an ulp of `T` each under MatchTorch) carried
/// through `silu(g)·u` (`|silu'| ≤ 1.1`), plus the f32 silu (4 f32 ulps), its MatchTorch rounding, and
/// the final rounding. Compare with `check_abs_bound(T::DTYPE, kernel, oracle, bound, 1.0, 0.0)`, which
/// adds `T`'s own subnormal floor.
///
/// # Errors
/// As [`gemm`].
pub fn gemm_error_bound<T: Elem>(a: &[T], b: &[T], c: &[T], shape: GemmShape, cfg: GemmConfig) -> Result<Vec<f64>> {
    validate(a.len(), b.len(), c.len(), shape, cfg)?;
    let u32_ = f32::EPSILON as f64 / 2.0;
    let n = (shape.k + 3) as f64;
    let gamma = n * u32_ / (1.0 - n * u32_);
    let alpha = cfg.alpha as f64;
    let underflow = (2.0 * shape.k as f64 * alpha.abs() + 3.0) * 2f64.powi(-150);
    let half = T::EPSILON_HALF_ULP * 1.0001;
    let match_torch = matches!(
        cfg.epilogue,
        GemmEpilogue::ResidualAdd(Rounding::MatchTorch) | GemmEpilogue::SwiGlu(Rounding::MatchTorch)
    );
    // (exact value of alpha·acc, its f32 accumulation error bound) per element of op(A)·op(B).
    let acc = map_acc(a, b, shape, cfg, |terms| {
        let (sum, mag) = terms.fold((0.0, 0.0), |(s, m), (x, y)| (s + x * y, m + (x * y).abs()));
        (alpha * sum, gamma * alpha.abs() * mag + underflow)
    });
    let beta = match cfg.epilogue {
        GemmEpilogue::ResidualAdd(_) => 1.0,
        _ => cfg.beta as f64,
    };
    Ok(apply(
        &acc,
        shape,
        cfg,
        |(v, e), ij| {
            let ci = if beta == 0.0 { 0.0 } else { beta * c[ij].to_f64() };
            let out = v + ci;
            // gamma covers the epilogue's own f32 rounding (the +3 of k + 3), scaled by |beta·C| too.
            let epi = gamma * ci.abs() + if match_torch { (v.abs() + e) * half } else { 0.0 };
            e + epi + (out.abs() + e + epi) * half
        },
        |(g, eg), (u, eu)| {
            let (eg, eu) = if match_torch {
                (eg + (g.abs() + eg) * half, eu + (u.abs() + eu) * half)
            } else {
                (eg, eu)
            };
            let s = silu(g);
            // silu in f32 (expf, a division): 4 f32 ulps, then its MatchTorch rounding to T.
            let es = 1.1 * eg + (s.abs() + 1.1 * eg) * (8.0 * u32_ + if match_torch { half } else { 0.0 });
            let out = s * u;
            let e_out = es * (u.abs() + eu) + s.abs() * eu + 2f64.powi(-149);
            e_out + (out.abs() + e_out) * (half + u32_)
        },
    ))
}

/// [`gemm`] for each product of `batch` (see [`GemmBatch`]): `a`, `b`, `c` hold
/// `(count - 1)·stride + ` one matrix's elements each. Returns the `count` outputs, `stride_c` apart
/// (elements between them are copied from `c`).
///
/// # Errors
/// As [`gemm`], for each product; `ShapeMismatch` for a buffer of another length; `InvalidArgument`
/// for `stride_c` under `C`'s elements with `count > 1`.
pub fn gemm_batched<T: Elem>(
    a: &[T],
    b: &[T],
    c: &[T],
    shape: GemmShape,
    cfg: GemmConfig,
    batch: GemmBatch,
) -> Result<Vec<T>> {
    let sizes = [shape.m * shape.k, shape.k * shape.n, shape.m * c_cols(shape, cfg)];
    let strides = [batch.stride_a, batch.stride_b, batch.stride_c];
    let span = |i: usize| {
        if batch.count == 0 {
            0
        } else {
            (batch.count - 1) * strides[i] + sizes[i]
        }
    };
    check_len(OP, "a", a.len(), &[span(0)])?;
    check_len(OP, "b", b.len(), &[span(1)])?;
    check_len(OP, "c", c.len(), &[span(2)])?;
    if batch.count > 1 && batch.stride_c < sizes[2] {
        return Err(Error::InvalidArgument {
            op: OP,
            reason: format!(
                "stride_c = {} is under C's {} elements: products would overlap",
                batch.stride_c, sizes[2]
            ),
        });
    }
    let mut out = c.to_vec();
    for z in 0..batch.count {
        let at = |i: usize| z * strides[i]..z * strides[i] + sizes[i];
        let one = gemm(&a[at(0)], &b[at(1)], &c[at(2)], shape, cfg)?;
        out[at(2)].copy_from_slice(&one);
    }
    Ok(out)
}
