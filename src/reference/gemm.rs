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
//! `c` always has `m * n` elements, also when `beta == 0`. Zero sizes are valid: `m == 0` or `n == 0` gives
//! an empty `C`, and `k == 0` gives `C' = alpha·0 + beta·C` (an empty sum is 0).

use crate::dtype::Elem;
use crate::error::Result;
use crate::reference::{check_finite, check_len, round_t};
use crate::shapes::{GemmConfig, GemmShape};

const OP: &str = "gemm";

fn validate(a: usize, b: usize, c: usize, shape: GemmShape, cfg: GemmConfig) -> Result<()> {
    check_len(OP, "a", a, &[shape.m, shape.k])?;
    check_len(OP, "b", b, &[shape.k, shape.n])?;
    check_len(OP, "c", c, &[shape.m, shape.n])?;
    check_finite(OP, "alpha", cfg.alpha as f64)?;
    check_finite(OP, "beta", cfg.beta as f64)
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

/// `f(i, j, p_terms)` for every element of C, where `p_terms` yields `(op(A)[i,p], op(B)[p,j])` in order
/// `p = 0..k`. Returns the `(m, n)` results.
fn map_c<T: Elem, U>(
    a: &[T],
    b: &[T],
    shape: GemmShape,
    cfg: GemmConfig,
    mut f: impl FnMut(usize, &mut dyn Iterator<Item = (f64, f64)>) -> U,
) -> Vec<U> {
    let mut out = Vec::with_capacity(shape.m * shape.n);
    for i in 0..shape.m {
        for j in 0..shape.n {
            let mut terms =
                (0..shape.k).map(|p| (a_at(a, shape, cfg.trans_a, i, p), b_at(b, shape, cfg.trans_b, p, j)));
            out.push(f(i * shape.n + j, &mut terms));
        }
    }
    out
}

/// `alpha * acc + beta * c` in f64, not reading `c` when `beta == 0`.
fn epilogue(acc: f64, c: f64, cfg: GemmConfig) -> f64 {
    let scaled = cfg.alpha as f64 * acc;
    if cfg.beta == 0.0 {
        scaled
    } else {
        scaled + cfg.beta as f64 * c
    }
}

/// GEMM reference: `(m, n)` = `alpha · op(A) · op(B) + beta · C` accumulated in f64, rounded once to `T`.
///
/// # Errors
/// `ShapeMismatch` unless `a`, `b`, `c` have `m·k`, `k·n`,
/// `m·n` elements; `InvalidArgument` for a non-finite `alpha` or `beta`.
pub fn gemm<T: Elem>(a: &[T], b: &[T], c: &[T], shape: GemmShape, cfg: GemmConfig) -> Result<Vec<T>> {
    Ok(gemm_f64(a, b, c, shape, cfg)?.into_iter().map(round_t::<T>).collect())
}

/// GEMM oracle: the same sum in f64, nothing rounded.
///
/// # Errors
/// As [`gemm`].
pub fn gemm_f64<T: Elem>(a: &[T], b: &[T], c: &[T], shape: GemmShape, cfg: GemmConfig) -> Result<Vec<f64>> {
    validate(a.len(), b.len(), c.len(), shape, cfg)?;
    Ok(map_c(a, b, shape, cfg, |ij, terms| {
        // From +0, as the kernels' accumulators start (`Sum` would start an empty sum at -0).
        let acc = terms.fold(0.0, |acc, (x, y)| acc + x * y);
        epilogue(acc, c[ij].to_f64(), cfg)
    }))
}

/// GEMM in the storage precision, as PyTorch's `alpha * (a @ b) + beta * c` would be with every
/// intermediate in `T`: each product and each partial sum (left to right over `p`) rounded to `T`, then
/// `rt(alpha·acc)`, `rt(beta·c)` and their sum rounded (the `beta` terms only when `beta != 0`). The
/// baseline of the 2x rule; pessimistic next to cuBLAS, which accumulates in f32.
///
/// # Errors
/// As [`gemm`].
pub fn gemm_naive<T: Elem>(a: &[T], b: &[T], c: &[T], shape: GemmShape, cfg: GemmConfig) -> Result<Vec<T>> {
    validate(a.len(), b.len(), c.len(), shape, cfg)?;
    let rt = |x: f64| round_t::<T>(x).to_f64();
    Ok(map_c(a, b, shape, cfg, |ij, terms| {
        let acc = terms.fold(0.0, |acc, (x, y)| rt(acc + rt(x * y)));
        let scaled = rt(cfg.alpha as f64 * acc);
        let out = if cfg.beta == 0.0 {
            scaled
        } else {
            rt(scaled + rt(cfg.beta as f64 * c[ij].to_f64()))
        };
        round_t::<T>(out)
    }))
}

/// Per-element magnitude `|alpha|·sum_p |op(A)[i,p]·op(B)[p,j]| + |beta|·|C[i,j]|` (the `C` term only when
/// `beta != 0`), `(m, n)` in f64: the scale of the error bound in the module docs. A kernel accumulating in
/// f32 and rounding to `T` is within `rt_error + γ_(k+3)(f32) · bound` of [`gemm_f64`].
///
/// # Errors
/// As [`gemm`].
pub fn gemm_abs_bound<T: Elem>(a: &[T], b: &[T], c: &[T], shape: GemmShape, cfg: GemmConfig) -> Result<Vec<f64>> {
    validate(a.len(), b.len(), c.len(), shape, cfg)?;
    let alpha = (cfg.alpha as f64).abs();
    let beta = (cfg.beta as f64).abs();
    Ok(map_c(a, b, shape, cfg, |ij, terms| {
        let acc: f64 = terms.map(|(x, y)| (x * y).abs()).sum();
        let c_term = if cfg.beta == 0.0 {
            0.0
        } else {
            beta * c[ij].to_f64().abs()
        };
        alpha * acc + c_term
    }))
}

/// The error bound, per element, of a kernel that accumulates in f32 and rounds once to `T`, against
/// [`gemm_f64`]: `γ_(k+3)(f32) · gemm_abs_bound` for the relative rounding errors, plus
/// `(2k·|alpha| + 3) · 2^-150` for the absolute ones (each f32 product and sum that lands in f32's
/// subnormal range can lose half of 2^-149, and alpha scales those of the accumulation), plus half an
/// ulp of `T` of the result for the final rounding. Compare with
/// `check_abs_bound(T::DTYPE, kernel, oracle, bound, 1.0, 0.0)`, which adds `T`'s own subnormal floor.
///
/// # Errors
/// As [`gemm`].
pub fn gemm_error_bound<T: Elem>(a: &[T], b: &[T], c: &[T], shape: GemmShape, cfg: GemmConfig) -> Result<Vec<f64>> {
    let magnitude = gemm_abs_bound(a, b, c, shape, cfg)?;
    let oracle = gemm_f64(a, b, c, shape, cfg)?;
    let u = f32::EPSILON as f64 / 2.0;
    let n = (shape.k + 3) as f64;
    let gamma = n * u / (1.0 - n * u);
    let underflow = (2.0 * shape.k as f64 * (cfg.alpha as f64).abs() + 3.0) * 2f64.powi(-150);
    Ok(magnitude
        .iter()
        .zip(&oracle)
        .map(|(m, o)| gamma * m + underflow + o.abs() * T::EPSILON_HALF_ULP * 1.0001)
        .collect())
}
