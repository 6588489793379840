//! RMSNorm, fused add + RMSNorm, SwiGLU and the FFN hidden size.

use super::*;

// ------------------------------------------------------------------------------------------------
// RMSNorm
// ------------------------------------------------------------------------------------------------

fn mean_sq(row: &[f64]) -> f64 {
    row.iter().map(|v| v * v).sum::<f64>() / row.len() as f64
}

proptest! {
    #![proptest_config(common::seed::config(CASES))]

    /// Unit weight: each output row has RMS sqrt(ms / (ms + eps)), which is 1 up to eps / ms.
    #[test]
    fn rms_norm_with_unit_weight_has_unit_rms(rows in 1usize..5, hidden in 1usize..300, seed: u64, eps in prop::sample::select(vec![1e-6f32, 1e-5, 1e-3])) {
        let shape = RmsNormShape { rows, hidden };
        let cfg = RmsNormConfig { eps, rounding: Rounding::MatchTorch };
        let x = random_vec::<f32>(rows * hidden, seed, 1.0);
        let w = vec![1.0f32; hidden];
        let oracle = reference::rms_norm_f64(&x, &w, shape, cfg).unwrap();
        let refr = to_f64_vec(&reference::rms_norm(&x, &w, shape, cfg).unwrap());
        for r in 0..rows {
            let ms = mean_sq(&to_f64_vec(&x[r * hidden..][..hidden]));
            let expected = (ms / (ms + eps as f64)).sqrt();
            let rms64 = mean_sq(&oracle[r * hidden..][..hidden]).sqrt();
            let rms32 = mean_sq(&refr[r * hidden..][..hidden]).sqrt();
            prop_assert!((rms64 - expected).abs() <= 1e-12, "oracle rms {rms64} vs {expected}");
            prop_assert!((rms32 - expected).abs() <= 1e-6, "f32 rms {rms32} vs {expected}");
            prop_assert!((rms64 - 1.0).abs() <= eps as f64 / ms, "rms {rms64} not ~1 (ms {ms})");
        }
    }

    /// out(c·x) ≈ out(x) for c > 0: only eps breaks the invariance, by at most eps·(1 + 1/c²) / ms.
    #[test]
    fn rms_norm_is_invariant_to_positive_scaling(rows in 1usize..4, hidden in 1usize..200, seed: u64, log2_c in -3i32..=3) {
        let shape = RmsNormShape { rows, hidden };
        let cfg = RmsNormConfig { eps: 1e-6, rounding: Rounding::Once };
        let c = 2f32.powi(log2_c); // a power of two keeps c·x exact
        let x = random_vec::<f32>(rows * hidden, seed, 1.0);
        let xc: Vec<f32> = x.iter().map(|v| v * c).collect();
        let w = random_vec::<f32>(hidden, seed ^ 7, 2.0);
        let base = to_f64_vec(&reference::rms_norm(&x, &w, shape, cfg).unwrap());
        let scaled = to_f64_vec(&reference::rms_norm(&xc, &w, shape, cfg).unwrap());
        let min_ms = (0..rows).map(|r| mean_sq(&to_f64_vec(&x[r * hidden..][..hidden]))).fold(f64::INFINITY, f64::min);
        let c2 = (c as f64).powi(2);
        check(reference::check_close(&scaled, &base, 1e-7, 3e-7 + 1e-6 * (1.0 + 1.0 / c2) / min_ms))?;
        let base64 = reference::rms_norm_f64(&x, &w, shape, cfg).unwrap();
        let scaled64 = reference::rms_norm_f64(&xc, &w, shape, cfg).unwrap();
        check(reference::check_close(&scaled64, &base64, 1e-12, 1e-12 + 1e-6 * (1.0 + 1.0 / c2) / min_ms))?;
    }

    /// The storage-dtype reference rounds exactly where its docs say, and stays within two ulps of the oracle.
    #[test]
    fn rms_norm_rounds_at_the_documented_points(rows in 1usize..4, hidden in 1usize..200, seed: u64) {
        fn body<T: Elem>(rows: usize, hidden: usize, seed: u64) -> std::result::Result<(), TestCaseError> {
            let shape = RmsNormShape { rows, hidden };
            let x = random_vec::<T>(rows * hidden, seed, 3.0);
            let w = random_vec::<T>(hidden, seed.wrapping_add(1), 2.0);
            for rounding in [Rounding::MatchTorch, Rounding::Once] {
                let cfg = RmsNormConfig { eps: 1e-5, rounding };
                let out = to_f64_vec(&reference::rms_norm(&x, &w, shape, cfg).unwrap());
                let oracle = reference::rms_norm_f64(&x, &w, shape, cfg).unwrap();
                for (idx, &o) in out.iter().enumerate() {
                    let row = &to_f64_vec(&x)[idx / hidden * hidden..][..hidden];
                    let r = 1.0 / (mean_sq(row) + 1e-5f32 as f64).sqrt();
                    let (xv, wv) = (x[idx].to_f64(), w[idx % hidden].to_f64());
                    let expected = match rounding {
                        Rounding::MatchTorch => rt::<T>(rt::<T>(xv * r) * wv),
                        Rounding::Once => rt::<T>(xv * r * wv),
                    };
                    prop_assert_eq!(o, expected, "{:?} {:?} at {}", T::DTYPE, rounding, idx);
                }
                check(Tolerance::for_elem::<T>().check(&out, &oracle))?;
            }
            Ok(())
        }
        body::<f32>(rows, hidden, seed)?;
        body::<f16>(rows, hidden, seed)?;
        body::<bf16>(rows, hidden, seed)?;
    }

    /// new_residual = round_T(x + residual); out = rms_norm of that rounded sum.
    #[test]
    fn fused_add_rms_norm_normalizes_the_rounded_sum(rows in 1usize..4, hidden in 1usize..200, seed: u64) {
        let shape = RmsNormShape { rows, hidden };
        let cfg = RmsNormConfig::default();
        let x = random_vec::<bf16>(rows * hidden, seed, 1.0);
        let res = random_vec::<bf16>(rows * hidden, seed ^ 3, 4.0);
        let w = random_vec::<bf16>(hidden, seed ^ 5, 1.5);
        let (out, new_res) = reference::fused_add_rms_norm(&x, &res, &w, shape, cfg).unwrap();
        let sum: Vec<bf16> = x.iter().zip(&res).map(|(a, b)| bf16::from_f32(a.to_f32() + b.to_f32())).collect();
        prop_assert!(bits_eq(&new_res, &sum));
        prop_assert!(bits_eq(&out, &reference::rms_norm(&sum, &w, shape, cfg).unwrap()));
        let (out64, res64) = reference::fused_add_rms_norm_f64(&x, &res, &w, shape, cfg).unwrap();
        let exact_sum: Vec<f64> = x.iter().zip(&res).map(|(a, b)| a.to_f64() + b.to_f64()).collect();
        prop_assert_eq!(&res64, &exact_sum);
        check(Tolerance::ulps(DType::BF16, 4.0).check(&to_f64_vec(&out), &out64))?;
    }
}

// ------------------------------------------------------------------------------------------------
// SwiGLU and the FFN size
// ------------------------------------------------------------------------------------------------

proptest! {
    #![proptest_config(common::seed::config(CASES))]

    /// out = silu(g)·u elementwise, with the documented rounding points; packed [gate | up] equals split.
    #[test]
    fn swiglu_is_silu_times_up_and_packed_equals_split(rows in 1usize..5, d in 1usize..200, seed: u64, scale in prop::sample::select(vec![1.0f32, 8.0, 40.0])) {
        fn body<T: Elem>(rows: usize, d: usize, seed: u64, scale: f32) -> std::result::Result<(), TestCaseError> {
            let shape = SwigluShape { rows, d };
            let g = random_vec::<T>(rows * d, seed, scale);
            let u = random_vec::<T>(rows * d, seed ^ 9, 2.0);
            let packed: Vec<T> = g.chunks(d).zip(u.chunks(d)).flat_map(|(a, b)| a.iter().chain(b).copied()).collect();
            let oracle = reference::swiglu_f64(&g, &u, shape).unwrap();
            for (i, (gi, ui)) in g.iter().zip(&u).enumerate() {
                let (gv, uv) = (gi.to_f64(), ui.to_f64());
                let expected = gv / (1.0 + (-gv).exp()) * uv;
                prop_assert!((oracle[i] - expected).abs() <= 1e-15 * expected.abs().max(1e-300));
            }
            prop_assert_eq!(&reference::swiglu_packed_f64(&packed, shape).unwrap(), &oracle);
            for rounding in [Rounding::MatchTorch, Rounding::Once] {
                let out = reference::swiglu(&g, &u, shape, rounding).unwrap();
                for (i, o) in out.iter().enumerate() {
                    let (gv, uv) = (g[i].to_f64(), u[i].to_f64());
                    let silu = gv / (1.0 + (-gv).exp());
                    let expected = match rounding {
                        Rounding::MatchTorch => rt::<T>(rt::<T>(silu) * uv),
                        Rounding::Once => rt::<T>(silu * uv),
                    };
                    prop_assert_eq!(o.to_f64(), expected);
                }
                prop_assert!(bits_eq(&out, &reference::swiglu_packed(&packed, shape, rounding).unwrap()));
                check(Tolerance::for_elem::<T>().check(&to_f64_vec(&out), &oracle))?;
            }
            Ok(())
        }
        body::<f32>(rows, d, seed, scale)?;
        body::<f16>(rows, d, seed, scale)?;
        body::<bf16>(rows, d, seed, scale)?;
    }

    #[test]
    fn ffn_hidden_dim_is_a_multiple_just_above_two_thirds_of_4dim(dim in 1usize..20_000, log2_mult in 0u32..12, mult in prop::option::of(0.5f32..2.0)) {
        let multiple_of = 1usize << log2_mult;
        let h = reference::ffn_hidden_dim(dim, multiple_of, mult).unwrap();
        let mut base = 8 * dim / 3;
        if let Some(m) = mult { base = (m as f64 * base as f64) as usize; }
        prop_assert_eq!(h % multiple_of, 0);
        // base may differ by one from the reference, which reads the multiplier as its decimal (1.3, not 1.2999999523).
        prop_assert!(h + 1 >= base && h < base + 1 + multiple_of, "{} vs base {}", h, base);
    }
}

#[test]
fn ffn_hidden_dim_of_llama_models() {
    assert_eq!(reference::ffn_hidden_dim(4096, 256, None), Ok(11008)); // LLaMA 2 7B
    assert_eq!(reference::ffn_hidden_dim(5120, 256, None), Ok(13824)); // LLaMA 2 13B
    assert_eq!(reference::ffn_hidden_dim(8192, 4096, Some(1.3)), Ok(28672)); // LLaMA 2 70B
    assert_eq!(reference::ffn_hidden_dim(4096, 1024, Some(1.3)), Ok(14336)); // LLaMA 3 8B
    assert_eq!(reference::ffn_hidden_dim(8192, 4096, Some(1.3)), Ok(28672)); // LLaMA 3 70B
    assert_eq!(reference::ffn_hidden_dim(16384, 4096, Some(1.2)), Ok(53248)); // LLaMA 3.1 405B
}
