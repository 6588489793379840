//! Property tests of the CPU reference (`src/reference`): the math each op claims, checked against
//! independent formulas written here, plus every validation error path.
//!
//! proptest generates shapes and a seed; the data is made inside each test from the seed
//! (`reference::random_vec`), so shrinking stays cheap and a failure is reproduced from its printed case.

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
    #![proptest_config(ProptestConfig::with_cases(CASES))]

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
    assert!(reference::check_close(&[f64::NAN], &[f64::NAN], 1.0, 1.0).is_err());
    assert!(reference::check_close(&[1.0], &[1.0, 2.0], 1.0, 1.0).is_err());
}

#[test]
fn check_2x_rule_compares_max_errors() {
    let oracle = [1.0, 2.0, 3.0];
    let naive = [1.1, 2.0, 3.0]; // max error 0.1
    assert!(reference::check_2x_rule(&[1.0, 2.19, 3.0], &naive, &oracle, 0.0).is_ok());
    let err = reference::check_2x_rule(&[1.0, 2.0, 3.25], &naive, &oracle, 0.0).unwrap_err();
    assert!(err.contains("index 2"), "{err}");
    assert!(reference::check_2x_rule(&[1.0, 2.0, 3.25], &naive, &oracle, 0.1).is_ok());
    assert!(reference::check_2x_rule(&[1.0], &naive, &oracle, 0.0).is_err());
}

#[test]
fn default_tolerances_per_dtype() {
    assert_eq!(Tolerance::for_dtype(DType::F32), Tolerance { atol: 1e-6, rtol: 1e-5 });
    assert_eq!(Tolerance::for_elem::<bf16>().rtol, 2.0 * 2f64.powi(-7));
    assert_eq!(Tolerance::for_elem::<f16>().rtol, 2.0 * 2f64.powi(-10));
    // Two bf16 ulps at 1.0 pass, three do not.
    let t = Tolerance::for_elem::<bf16>();
    assert!(t.check(&[1.0 + 2.0 * 2f64.powi(-7)], &[1.0]).is_ok());
    assert!(t.check(&[1.0 + 3.0 * 2f64.powi(-7)], &[1.0]).is_err());
}
