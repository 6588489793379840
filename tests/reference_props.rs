//! Property tests of the CPU reference (`src/reference`): the math each op claims, checked against
//! independent formulas written here, plus every validation error path.
//!
//! proptest generates shapes and a seed; the data is made inside each test from the seed
//! (`reference::random_vec`), so shrinking stays cheap and a failure is reproduced from its printed case.

mod common;

use half::{bf16, f16};
use llama_kernels::reference::{self, attention::visible_keys, random_vec, to_f64_vec, Tolerance};
use llama_kernels::*;
use proptest::prelude::*;

const CASES: u32 = 48;

fn check(r: std::result::Result<(), String>) -> std::result::Result<(), TestCaseError> {
    r.map_err(TestCaseError::fail)
}

/// Bit-for-bit equality of two `T` slices.
fn bits_eq<T: Elem>(a: &[T], b: &[T]) -> bool {
    bytemuck::cast_slice::<T, u8>(a) == bytemuck::cast_slice::<T, u8>(b)
}

/// A value rounded through `T`, in f64.
fn rt<T: Elem>(v: f64) -> f64 {
    T::from_f32(v as f32).to_f64()
}

/// `sum_i a_i * b_i` in f64.
fn dot(a: &[f64], b: &[f64]) -> f64 {
    a.iter().zip(b).map(|(x, y)| x * y).sum()
}

// One file per op family, under tests/reference_props/ (not separate test targets).
#[path = "reference_props/attention.rs"]
mod attention;
#[path = "reference_props/gemm.rs"]
mod gemm;
#[path = "reference_props/norm_swiglu.rs"]
mod norm_swiglu;
#[path = "reference_props/rope.rs"]
mod rope;
#[path = "reference_props/validation.rs"]
mod validation;

// ------------------------------------------------------------------------------------------------
// Data generators
// ------------------------------------------------------------------------------------------------

proptest! {
    #![proptest_config(common::seed::config(CASES))]

    #[test]
    fn random_vec_is_deterministic_bounded_and_nonzero(len in 1usize..300, seed: u64, scale in 1e-3f32..10.0) {
        let a = random_vec::<bf16>(len, seed, scale);
        prop_assert!(bits_eq(&a, &random_vec::<bf16>(len, seed, scale)));
        for v in random_vec::<f32>(len, seed, scale) {
            prop_assert!(v != 0.0 && v.abs() <= scale, "{v} out of (0, {scale}]");
        }
        prop_assert!(a.iter().all(|v| v.to_f32() != 0.0 && v.to_f32().abs() <= bf16::from_f32(scale).to_f32()));
        if len >= 4 {
            prop_assert!(random_vec::<f32>(len, seed, scale) != random_vec::<f32>(len, seed ^ 1, scale));
        }
    }
}

#[test]
fn arange_is_exact_in_every_dtype_and_distinct_per_period() {
    let a32 = reference::arange_vec::<f32>(600);
    assert_eq!(to_f64_vec(&a32), to_f64_vec(&reference::arange_vec::<bf16>(600)));
    assert_eq!(to_f64_vec(&a32), to_f64_vec(&reference::arange_vec::<f16>(600)));
    let mut window: Vec<u32> = a32[..251].iter().map(|v| v.to_bits()).collect();
    window.sort_unstable();
    window.dedup();
    assert_eq!(window.len(), 251);
    assert_eq!(a32[251], a32[0]);
}

// ------------------------------------------------------------------------------------------------
// Tolerance helpers
// ------------------------------------------------------------------------------------------------

#[test]
fn check_close_reports_the_worst_element() {
    assert!(reference::check_close(&[1.0, f64::NEG_INFINITY], &[1.0 + 1e-9, f64::NEG_INFINITY], 0.0, 1e-8).is_ok());
    let err = reference::check_close(&[1.0, 2.0, 3.5, 4.1], &[1.0, 2.0, 3.0, 4.0], 0.01, 0.0).unwrap_err();
    assert!(err.contains("index 2") && err.contains("2 of 4"), "{err}");
    // NaN matches only NaN.
    assert!(reference::check_close(&[f64::NAN], &[f64::NAN], 1.0, 1.0).is_ok());
    assert!(reference::check_close(&[f64::NAN], &[1.0], 1.0, 1.0).is_err());
    assert!(reference::check_close(&[1.0], &[f64::NAN], 1.0, 1.0).is_err());
    assert!(reference::check_close(&[1.0], &[1.0, 2.0], 1.0, 1.0).is_err());
}

#[test]
fn check_2x_rule_compares_max_errors() {
    let oracle = [1.0, 2.0, 3.0];
    let naive = [1.1, 2.0, 3.0]; // max error 0.1
    assert!(reference::check_2x_rule(DType::F32, &[1.0, 2.19, 3.0], &naive, &oracle, 0.0).is_ok());
    let err = reference::check_2x_rule(DType::F32, &[1.0, 2.0, 3.25], &naive, &oracle, 0.0).unwrap_err();
    assert!(err.contains("index 2"), "{err}");
    assert!(reference::check_2x_rule(DType::F32, &[1.0, 2.0, 3.25], &naive, &oracle, 0.1).is_ok());
    assert!(reference::check_2x_rule(DType::F32, &[1.0], &naive, &oracle, 0.0).is_err());
}

#[test]
fn default_tolerances_per_dtype() {
    assert_eq!(Tolerance::for_dtype(DType::F32), Tolerance::new(DType::F32, 1e-6, 1e-5));
    assert_eq!(Tolerance::for_elem::<bf16>().rtol, 2.0 * 2f64.powi(-7));
    assert_eq!(Tolerance::for_elem::<f16>().rtol, 2.0 * 2f64.powi(-10));
    // Two bf16 ulps at 1.0 pass, three do not.
    let t = Tolerance::for_elem::<bf16>();
    assert!(t.check(&[1.0 + 2.0 * 2f64.powi(-7)], &[1.0]).is_ok());
    assert!(t.check(&[1.0 + 3.0 * 2f64.powi(-7)], &[1.0]).is_err());
}

/// Regression: a correctly rounded f16 subnormal (395·2^-24 for 2.35573e-5, as CI once failed on) is
/// within every dtype-aware bound, because each adds half of T's subnormal spacing; one spacing off is not.
#[test]
fn tolerances_have_a_subnormal_floor() {
    let expected = 2.35573e-5;
    let rounded = f16::from_f64(expected).to_f64();
    assert_eq!(rounded, 395.0 * 2f64.powi(-24));
    let tight = Tolerance::new(DType::F16, 0.0, 2f64.powi(-11));
    assert!(tight.check(&[rounded], &[expected]).is_ok());
    assert!(tight.check(&[rounded + 2f64.powi(-24)], &[expected]).is_err());
    assert!(reference::check_abs_bound(DType::F16, &[rounded], &[expected], &[0.0], 1.0, 0.0).is_ok());
    assert!(
        reference::check_abs_bound(DType::F16, &[rounded - 2f64.powi(-24)], &[expected], &[0.0], 1.0, 0.0).is_err()
    );
    assert!(reference::check_2x_rule(DType::F16, &[rounded], &[expected], &[expected], 0.0).is_ok());
    for dtype in [DType::F32, DType::F16, DType::BF16] {
        assert_eq!(reference::rounding_floor(dtype), dtype.subnormal_spacing() / 2.0);
        // The floor is half the smallest positive value of the type.
        let smallest = match dtype {
            DType::F32 => f32::from_bits(1) as f64,
            DType::F16 => f16::from_bits(1).to_f64(),
            DType::BF16 => bf16::from_bits(1).to_f64(),
        };
        assert_eq!(dtype.subnormal_spacing(), smallest);
    }
}

/// Infinity counts as T's overflow threshold: MAX against +inf is a one-ulp rounding flip and passes a
/// two-ulp tolerance; +inf against -inf, or against a value far below MAX, fails; an f64 oracle beyond the
/// threshold matches +inf.
#[test]
fn tolerances_measure_overflow_in_ulps() {
    for dtype in [DType::F16, DType::BF16] {
        let tol = Tolerance::ulps(dtype, 2.0);
        let max = dtype.max_finite();
        assert!(tol.check(&[f64::INFINITY], &[max]).is_ok());
        assert!(tol.check(&[max], &[f64::INFINITY]).is_ok());
        assert!(tol.check(&[-max], &[f64::NEG_INFINITY]).is_ok());
        assert!(tol.check(&[f64::INFINITY], &[f64::NEG_INFINITY]).is_err());
        assert!(tol.check(&[f64::INFINITY], &[max / 2.0]).is_err());
        assert!(tol.check(&[f64::INFINITY], &[dtype.overflow_threshold() * 4.0]).is_ok());
        assert!(tol.check(&[f64::NAN], &[f64::INFINITY]).is_err());
        assert!(reference::check_2x_rule(dtype, &[f64::INFINITY], &[max], &[f64::INFINITY], 0.0).is_ok());
    }
    assert_eq!(DType::F16.overflow_threshold(), 65536.0);
    // The threshold is where rounding to the type overflows.
    assert!(f16::from_f64(65520.0).is_infinite() && !f16::from_f64(65519.0).is_infinite());
    assert!(bf16::from_f64(2f64.powi(128) - 2f64.powi(119)).is_infinite());
}

/// The class check pins NaN, ±inf, ±0 and subnormals that the magnitude checks let through.
#[test]
fn class_check_pins_signed_zero_nan_inf_and_subnormals() {
    use reference::{check_same_class, FloatClass};
    assert!(Tolerance::for_dtype(DType::BF16).check(&[-0.0], &[0.0]).is_ok());
    assert!(check_same_class(DType::BF16, &[-0.0], &[0.0]).is_err());
    assert!(check_same_class(
        DType::BF16,
        &[-0.0, f64::NAN, f64::INFINITY],
        &[-0.0, f64::NAN, f64::INFINITY]
    )
    .is_ok());
    assert!(check_same_class(DType::F16, &[f64::NEG_INFINITY], &[f64::INFINITY]).is_err());
    assert_eq!(
        FloatClass::of(DType::F16, 1e-5),
        FloatClass::Subnormal { negative: false }
    );
    assert_eq!(
        FloatClass::of(DType::BF16, 1e-5),
        FloatClass::Normal { negative: false }
    );
    assert_eq!(
        FloatClass::of(DType::F32, -1e-40),
        FloatClass::Subnormal { negative: true }
    );
    let err = check_same_class(DType::F16, &[1.0, 1e-5], &[1.0, 1e-4]).unwrap_err();
    assert!(err.contains("index 1"), "{err}");
}

/// The seed variable: unset is the fixed default, a number (decimal or hex) is itself, `random` draws one;
/// anything else is an error that names the variable.
#[test]
fn test_seed_parsing() {
    use common::seed::{parse_seed, DEFAULT_SEED, SEED_VAR};
    assert_eq!(parse_seed(None), Ok(DEFAULT_SEED));
    assert_eq!(parse_seed(Some("42")), Ok(42));
    assert_eq!(parse_seed(Some("0xff")), Ok(255));
    assert!(parse_seed(Some("random")).is_ok());
    let err = parse_seed(Some("seven")).unwrap_err();
    assert!(err.contains(SEED_VAR), "{err}");
}

/// A failing property prints the minimal case, the seed and the command that replays it.
#[test]
fn failing_property_names_seed_and_command() {
    let result = std::panic::catch_unwind(|| {
        common::run_cases(64, 0u32..1000, |v| {
            if v >= 500 {
                Err(format!("{v} too big"))
            } else {
                Ok(())
            }
        })
    });
    let payload = result.unwrap_err();
    let msg = payload.downcast_ref::<String>().cloned().unwrap_or_default();
    assert!(msg.contains("500"), "shrinks to the boundary: {msg}");
    let seed = common::seed::run_seed();
    assert!(
        msg.contains(&format!("LLAMA_KERNELS_TEST_SEED={seed} cargo test -p llama-kernels --test reference_props -- failing_property_names_seed_and_command --exact")),
        "{msg}"
    );
}
