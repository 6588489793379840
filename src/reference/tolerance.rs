//! Comparisons used by every kernel test, and the default tolerance per dtype.
//!
//! Each check returns `Err(message)` naming the worst element (index, actual and expected values, the
//! bound it broke), so a failing test says where to look.
//!
//! ## Two kinds of comparison
//! - **Tight, against the `op::<T>` reference** ([`check_close`] with [`Tolerance::for_dtype`]): the
//!   reference rounds to `T` at exactly the points the kernel rounds, and computes in f64 where the kernel
//!   computes in f32. The only difference is the f32 error *before* each rounding, which can flip a
//!   rounding to the neighbouring value of `T`.
//! - **Against the f64 oracle** with FlashAttention's rule ([`check_2x_rule`]): the kernel's max error is at
//!   most twice the max error of the naive same-precision computation (`op_naive::<T>`), plus an `atol`.
//!
//! ## Default tolerances (`|actual - expected| <= atol + rtol·|expected|`, vs the `op::<T>` reference)
//!
//! | dtype | rtol | atol | why |
//! |---|---|---|---|
//! | f32 | 1e-5 | 1e-6 | DESIGN.md's 1e-5 relative; the reference is f64, so this is the kernel's own f32 error (about 80 f32 ulps, room for reductions of a few thousand terms in another order); atol for results that cancel to near 0 |
//! | f16 | 2·2^-10 | 1e-5 | two f16 ulps: f32-vs-f64 can flip the first rounding of a two-rounding op (MatchTorch RMSNorm, SwiGLU) by one ulp, and the second rounding can turn that into two |
//! | bf16 | 2·2^-7 | 1e-5 | two bf16 ulps, same reason |
//!
//! `rtol = n · eps(T)`, where `eps(T)` is the ulp at 1.0, is at least `n` ulps anywhere in a binade. The
//! `atol`s assume data of order 1 (as [`random_vec`](crate::reference::random_vec) makes with scale 1); a
//! value that cancels to near zero carries the f32 error of its terms, not of itself. Scale `atol` with the
//! data, or for GEMM use [`check_abs_bound`] with [`gemm_abs_bound`](crate::reference::gemm_abs_bound).

use crate::dtype::{DType, Elem};

/// `|actual - expected| <= atol + rtol·|expected|`.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct Tolerance {
    pub atol: f64,
    pub rtol: f64,
}

impl Tolerance {
    /// The default for comparing a kernel with the `op::<T>` reference (see the module table).
    pub fn for_dtype(dtype: DType) -> Tolerance {
        match dtype {
            DType::F32 => Tolerance { atol: 1e-6, rtol: 1e-5 },
            DType::F16 | DType::BF16 => Tolerance::ulps(dtype, 2.0),
        }
    }

    /// [`Tolerance::for_dtype`] of `T`.
    pub fn for_elem<T: Elem>() -> Tolerance {
        Tolerance::for_dtype(T::DTYPE)
    }

    /// `rtol = n_ulps · eps(dtype)` (the ulp at 1.0) and the dtype's default `atol`.
    pub fn ulps(dtype: DType, n_ulps: f64) -> Tolerance {
        let eps = match dtype {
            DType::F32 => f32::EPSILON as f64,
            DType::F16 => half::f16::EPSILON.to_f64(),
            DType::BF16 => half::bf16::EPSILON.to_f64(),
        };
        let atol = match dtype {
            DType::F32 => 1e-6,
            DType::F16 | DType::BF16 => 1e-5,
        };
        Tolerance {
            atol,
            rtol: n_ulps * eps,
        }
    }

    /// [`check_close`] with this tolerance.
    pub fn check(&self, actual: &[f64], expected: &[f64]) -> Result<(), String> {
        check_close(actual, expected, self.atol, self.rtol)
    }
}

fn check_lengths(what: &str, a: &[f64], b: &[f64]) -> Result<(), String> {
    if a.len() != b.len() {
        return Err(format!("{what}: length mismatch, {} vs {}", a.len(), b.len()));
    }
    Ok(())
}

/// True when `a` is within `bound` of `e`. Equal values pass (so `-inf == -inf` does); NaN never passes.
fn within(a: f64, e: f64, bound: f64) -> bool {
    a == e || (a - e).abs() <= bound
}

/// `|actual[i] - expected[i]| <= atol + rtol·|expected[i]|` for every `i` (equal infinities pass, NaN
/// fails). The error message names the element that exceeds its bound the most.
pub fn check_close(actual: &[f64], expected: &[f64], atol: f64, rtol: f64) -> Result<(), String> {
    let bounds: Vec<f64> = expected.iter().map(|e| atol + rtol * e.abs()).collect();
    check_lengths("check_close", actual, expected)?;
    check_elementwise(
        actual,
        expected,
        &bounds,
        &format!("atol {atol:e} + rtol {rtol:e}·|expected|"),
    )
}

/// `|actual[i] - expected[i]| <= factor · bound[i] + atol` for every `i`: an error bound per element, such
/// as `γ_k · gemm_abs_bound`.
pub fn check_abs_bound(actual: &[f64], expected: &[f64], bound: &[f64], factor: f64, atol: f64) -> Result<(), String> {
    check_lengths("check_abs_bound", actual, expected)?;
    check_lengths("check_abs_bound (bound)", actual, bound)?;
    let bounds: Vec<f64> = bound.iter().map(|b| factor * b + atol).collect();
    check_elementwise(actual, expected, &bounds, &format!("{factor:e}·bound + {atol:e}"))
}

/// Finds the element with the largest `|a - e| - bound` (a NaN first) and reports it if it fails.
fn check_elementwise(actual: &[f64], expected: &[f64], bounds: &[f64], rule: &str) -> Result<(), String> {
    let mut worst: Option<(usize, f64)> = None;
    let mut failures = 0usize;
    for (i, ((&a, &e), &bound)) in actual.iter().zip(expected).zip(bounds).enumerate() {
        if within(a, e, bound) {
            continue;
        }
        failures += 1;
        let excess = if (a - e).is_nan() {
            f64::INFINITY
        } else {
            (a - e).abs() - bound
        };
        if worst.is_none_or(|(_, w)| excess > w) {
            worst = Some((i, excess));
        }
    }
    match worst {
        None => Ok(()),
        Some((i, _)) => Err(format!(
            "{failures} of {} elements out of tolerance; worst at index {i}: actual {:e}, expected {:e}, \
             |diff| {:e} > bound {:e} ({rule})",
            actual.len(),
            actual[i],
            expected[i],
            (actual[i] - expected[i]).abs(),
            bounds[i],
        )),
    }
}

/// The largest `|a[i] - b[i]|` and its index (`(0, 0.0)` for empty input; NaN counts as infinite; equal
/// infinities count as 0).
pub fn max_abs_diff(a: &[f64], b: &[f64]) -> (usize, f64) {
    let mut best = (0, 0.0);
    for (i, (&x, &y)) in a.iter().zip(b).enumerate() {
        let d = if x == y {
            0.0
        } else if (x - y).is_nan() {
            f64::INFINITY
        } else {
            (x - y).abs()
        };
        if d > best.1 {
            best = (i, d);
        }
    }
    best
}

/// FlashAttention's rule: `max|kernel - oracle| <= 2 · max|naive - oracle| + atol`, where `naive` is the
/// same-precision computation (`op_naive::<T>`) and `oracle` the f64 one (`op_f64`). The message names the
/// kernel's worst element and the naive computation's worst error.
pub fn check_2x_rule(kernel: &[f64], naive: &[f64], oracle: &[f64], atol: f64) -> Result<(), String> {
    check_lengths("check_2x_rule (kernel vs oracle)", kernel, oracle)?;
    check_lengths("check_2x_rule (naive vs oracle)", naive, oracle)?;
    let (ki, kernel_err) = max_abs_diff(kernel, oracle);
    let (ni, naive_err) = max_abs_diff(naive, oracle);
    let bound = 2.0 * naive_err + atol;
    if kernel_err <= bound {
        return Ok(());
    }
    Err(format!(
        "2x rule broken: kernel max error {kernel_err:e} at index {ki} (kernel {:e}, oracle {:e}) > \
         2 · naive max error {naive_err:e} (at index {ni}) + atol {atol:e} = {bound:e}",
        kernel[ki], oracle[ki]
    ))
}
