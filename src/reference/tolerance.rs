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
//! ## At the edges of `T`
//! Every comparison of values rounded to `T` ([`Tolerance::check`], [`check_abs_bound`],
//! [`check_2x_rule`]) knows `T`, and
//! - adds an absolute floor of half of `T`'s subnormal spacing ([`rounding_floor`]): rounding a value near
//!   zero moves it by up to that much, so a relative bound alone fails a correctly rounded subnormal;
//! - counts an infinity as `T`'s overflow threshold `2^(emax+1)` ([`DType::overflow_threshold`]), and an
//!   expected value at or beyond it as that infinity: a one-ulp flip at the top of the range (`MAX` against
//!   `inf`) is a one-ulp error, while `+inf` against `-inf` or a small finite value still fails;
//! - matches NaN with NaN only: a NaN where a number was expected fails, and so does a number where NaN was
//!   expected.
//!
//! Equal values always pass, so `0.0` matches `-0.0`; tests that pin the sign of a zero compare bits
//! ([`check_same_class`]).
//!
//! `rtol = n · eps(T)`, where `eps(T)` is the ulp at 1.0, is at least `n` ulps anywhere in a binade. The
//! `atol`s assume data of order 1 (as [`random_vec`](crate::reference::random_vec) makes with scale 1); a
//! value that cancels to near zero carries the f32 error of its terms, not of itself. Scale `atol` with the
//! data, or for GEMM use [`check_abs_bound`] with [`gemm_abs_bound`](crate::reference::gemm_abs_bound).

use crate::dtype::{DType, Elem};

/// `|actual - expected| <= atol + rounding_floor(dtype) + rtol·|expected|`, for values rounded to `dtype`.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct Tolerance {
    /// Absolute part of the bound.
    pub atol: f64,
    /// Relative part of the bound (times `|expected|`).
    pub rtol: f64,
    /// The type the compared values were rounded to: sets the floor and where infinity starts.
    pub dtype: DType,
}

/// Half of `dtype`'s subnormal spacing: the most that rounding a value near zero to `dtype` moves it.
pub fn rounding_floor(dtype: DType) -> f64 {
    dtype.subnormal_spacing() / 2.0
}

impl Tolerance {
    /// A tolerance for values rounded to `dtype`.
    pub fn new(dtype: DType, atol: f64, rtol: f64) -> Tolerance {
        Tolerance { atol, rtol, dtype }
    }

    /// The default for comparing a kernel with the `op::<T>` reference (see the module table).
    pub fn for_dtype(dtype: DType) -> Tolerance {
        match dtype {
            DType::F32 => Tolerance::new(dtype, 1e-6, 1e-5),
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
        Tolerance::new(dtype, atol, n_ulps * eps)
    }

    /// [`Tolerance::check`] with a per-element `slack` added to each bound: what a reference that cannot
    /// pin an intermediate rounding (the attention kernel's P) says that rounding may move the element.
    pub fn check_with_slack(&self, actual: &[f64], expected: &[f64], slack: &[f64]) -> Result<(), String> {
        check_lengths("Tolerance::check_with_slack", actual, expected)?;
        check_lengths("Tolerance::check_with_slack (slack)", slack, expected)?;
        let floor = rounding_floor(self.dtype);
        let bounds: Vec<f64> = at_edges(self.dtype, expected)
            .iter()
            .zip(slack)
            .map(|(e, sl)| self.atol + floor + self.rtol * e.abs() + sl)
            .collect();
        let rule = format!(
            "atol {:e} + floor {floor:e} + rtol {:e}·|expected| + the reference's slack, {}",
            self.atol, self.rtol, self.dtype
        );
        check_elementwise(Some(self.dtype), actual, expected, &bounds, &rule)
    }

    /// Every element within this tolerance (see the module docs for infinities, NaN and the floor).
    pub fn check(&self, actual: &[f64], expected: &[f64]) -> Result<(), String> {
        check_lengths("Tolerance::check", actual, expected)?;
        let floor = rounding_floor(self.dtype);
        let bounds: Vec<f64> = at_edges(self.dtype, expected)
            .iter()
            .map(|e| self.atol + floor + self.rtol * e.abs())
            .collect();
        let rule = format!(
            "atol {:e} + floor {floor:e} + rtol {:e}·|expected|, {}",
            self.atol, self.rtol, self.dtype
        );
        check_elementwise(Some(self.dtype), actual, expected, &bounds, &rule)
    }
}

fn check_lengths(what: &str, a: &[f64], b: &[f64]) -> Result<(), String> {
    if a.len() != b.len() {
        return Err(format!("{what}: length mismatch, {} vs {}", a.len(), b.len()));
    }
    Ok(())
}

/// `values` with every magnitude at or beyond `dtype`'s overflow threshold (infinities included) set to
/// the threshold, keeping the sign: the finite stand-in for infinity that makes an overflow by one ulp
/// measurable. NaN stays NaN.
fn at_edges(dtype: DType, values: &[f64]) -> Vec<f64> {
    let threshold = dtype.overflow_threshold();
    values
        .iter()
        .map(|&v| if v.abs() >= threshold { threshold.copysign(v) } else { v })
        .collect()
}

/// True when `a` is within `bound` of `e`. Equal values pass (so `-inf == -inf` does), NaN matches NaN,
/// and NaN against a number fails.
fn within(a: f64, e: f64, bound: f64) -> bool {
    a == e || (a.is_nan() && e.is_nan()) || (a - e).abs() <= bound
}

/// `|actual[i] - expected[i]| <= atol + rtol·|expected[i]|` for every `i`, on plain f64 values (no
/// dtype: equal infinities pass, NaN matches only NaN). The error message names the element that exceeds
/// its bound the most. For values rounded to a storage type use [`Tolerance::check`].
pub fn check_close(actual: &[f64], expected: &[f64], atol: f64, rtol: f64) -> Result<(), String> {
    check_lengths("check_close", actual, expected)?;
    let bounds: Vec<f64> = expected.iter().map(|e| atol + rtol * e.abs()).collect();
    check_elementwise(
        None,
        actual,
        expected,
        &bounds,
        &format!("atol {atol:e} + rtol {rtol:e}·|expected|"),
    )
}

/// `|actual[i] - expected[i]| <= factor · bound[i] + atol + rounding_floor(dtype)` for every `i`: an
/// error bound per element, such as `γ_k · gemm_abs_bound`, for values rounded to `dtype`.
pub fn check_abs_bound(
    dtype: DType,
    actual: &[f64],
    expected: &[f64],
    bound: &[f64],
    factor: f64,
    atol: f64,
) -> Result<(), String> {
    check_lengths("check_abs_bound", actual, expected)?;
    check_lengths("check_abs_bound (bound)", actual, bound)?;
    let floor = rounding_floor(dtype);
    let bounds: Vec<f64> = bound.iter().map(|b| factor * b + atol + floor).collect();
    check_elementwise(
        Some(dtype),
        actual,
        expected,
        &bounds,
        &format!("{factor:e}·bound + {atol:e} + floor {floor:e}, {dtype}"),
    )
}

/// Finds the element with the largest `|a - e| - bound` (a NaN mismatch first) and reports it if it fails.
/// With a `dtype`, values are compared [`at_edges`] of it (the message shows them as given).
fn check_elementwise(
    dtype: Option<DType>,
    actual: &[f64],
    expected: &[f64],
    bounds: &[f64],
    rule: &str,
) -> Result<(), String> {
    let mapped = dtype.map(|dtype| (at_edges(dtype, actual), at_edges(dtype, expected)));
    let (actual_cmp, expected_cmp) = match &mapped {
        Some((a, e)) => (&a[..], &e[..]),
        None => (actual, expected),
    };
    let mut worst: Option<(usize, f64)> = None;
    let mut failures = 0usize;
    for (i, ((&a, &e), &bound)) in actual_cmp.iter().zip(expected_cmp).zip(bounds).enumerate() {
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
            (actual_cmp[i] - expected_cmp[i]).abs(),
            bounds[i],
        )),
    }
}

/// The largest `|a[i] - b[i]|` and its index (`(0, 0.0)` for empty input; equal values, equal
/// infinities and two NaNs count as 0; a NaN against a number counts as infinite).
pub fn max_abs_diff(a: &[f64], b: &[f64]) -> (usize, f64) {
    let mut best = (0, 0.0);
    for (i, (&x, &y)) in a.iter().zip(b).enumerate() {
        let d = if x == y || (x.is_nan() && y.is_nan()) {
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

/// FlashAttention's rule for values rounded to `dtype`:
/// `max|kernel - oracle| <= 2·max|naive - oracle| + atol + rounding_floor(dtype)`, where `naive` is the
/// same-precision computation (`op_naive::<T>`) and `oracle` the f64 one (`op_f64`); infinities count as
/// `dtype`'s overflow threshold. The message names the kernel's worst element and the naive computation's
/// worst error.
pub fn check_2x_rule(dtype: DType, kernel: &[f64], naive: &[f64], oracle: &[f64], atol: f64) -> Result<(), String> {
    check_lengths("check_2x_rule (kernel vs oracle)", kernel, oracle)?;
    check_lengths("check_2x_rule (naive vs oracle)", naive, oracle)?;
    let (kernel, naive, oracle) = (at_edges(dtype, kernel), at_edges(dtype, naive), at_edges(dtype, oracle));
    let (ki, kernel_err) = max_abs_diff(&kernel, &oracle);
    let (ni, naive_err) = max_abs_diff(&naive, &oracle);
    let floor = rounding_floor(dtype);
    let bound = 2.0 * naive_err + atol + floor;
    if kernel_err <= bound {
        return Ok(());
    }
    Err(format!(
        "2x rule broken ({dtype}): kernel max error {kernel_err:e} at index {ki} (kernel {:e}, oracle {:e}) > \
         2 · naive max error {naive_err:e} (at index {ni}) + atol {atol:e} + floor {floor:e} = {bound:e}",
        kernel[ki], oracle[ki]
    ))
}

/// The IEEE class of a value, with its sign: what an edge-value test pins exactly.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum FloatClass {
    /// Not a number.
    Nan,
    /// ±infinity.
    Infinite {
        /// The sign bit is set.
        negative: bool,
    },
    /// ±0.
    Zero {
        /// The sign bit is set.
        negative: bool,
    },
    /// A subnormal value.
    Subnormal {
        /// The sign bit is set.
        negative: bool,
    },
    /// A normal (finite, non-zero, not subnormal) value.
    Normal {
        /// The sign bit is set.
        negative: bool,
    },
}

impl FloatClass {
    /// The class of `v` as a value of `dtype` (subnormal below `dtype`'s smallest normal).
    pub fn of(dtype: DType, v: f64) -> FloatClass {
        let negative = v.is_sign_negative();
        let min_normal = match dtype {
            DType::F32 | DType::BF16 => 2f64.powi(-126),
            DType::F16 => 2f64.powi(-14),
        };
        if v.is_nan() {
            FloatClass::Nan
        } else if v.is_infinite() {
            FloatClass::Infinite { negative }
        } else if v == 0.0 {
            FloatClass::Zero { negative }
        } else if v.abs() < min_normal {
            FloatClass::Subnormal { negative }
        } else {
            FloatClass::Normal { negative }
        }
    }
}

/// Every element has the same [`FloatClass`] in `actual` as in `expected` (NaN, ±inf, ±0, ±subnormal,
/// ±normal), as values of `dtype`: a sign-of-zero, overflow or NaN-propagation test. Use it with a
/// [`Tolerance`] check, which compares the magnitudes.
pub fn check_same_class(dtype: DType, actual: &[f64], expected: &[f64]) -> Result<(), String> {
    check_lengths("check_same_class", actual, expected)?;
    let mismatches: Vec<usize> = (0..actual.len())
        .filter(|&i| FloatClass::of(dtype, actual[i]) != FloatClass::of(dtype, expected[i]))
        .collect();
    match mismatches.first() {
        None => Ok(()),
        Some(&i) => Err(format!(
            "{} of {} elements differ in class; first at index {i}: actual {:e} ({:?}), expected {:e} ({:?})",
            mismatches.len(),
            actual.len(),
            actual[i],
            FloatClass::of(dtype, actual[i]),
            expected[i],
            FloatClass::of(dtype, expected[i]),
        )),
    }
}
