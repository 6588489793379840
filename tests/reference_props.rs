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
// RMSNorm
// ------------------------------------------------------------------------------------------------

fn mean_sq(row: &[f64]) -> f64 {
    row.iter().map(|v| v * v).sum::<f64>() / row.len() as f64
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(CASES))]

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
// RoPE
// ------------------------------------------------------------------------------------------------

#[derive(Clone, Debug)]
struct RopeCase {
    shape: RopeShape,
    cfg: RopeConfig,
    positions: Vec<i32>,
    seed: u64,
}

fn rope_case() -> impl Strategy<Value = RopeCase> {
    let layout = prop_oneof![Just(RopeLayout::Interleaved), Just(RopeLayout::HalfSplit)];
    let scaling = prop_oneof![Just(None), Just(Some(Llama3Scaling::LLAMA_3_1))];
    let theta = prop::sample::select(vec![10_000.0f32, 500_000.0, 1_000.0]);
    (
        1usize..4,
        1usize..3,
        1usize..4,
        1usize..12,
        0usize..5,
        layout,
        scaling,
        theta,
        any::<u64>(),
    )
        .prop_flat_map(
            |(tokens, n_kv_heads, group, half_rd, extra, layout, scaling, theta, seed)| {
                let shape = RopeShape {
                    tokens,
                    n_heads: n_kv_heads * group,
                    n_kv_heads,
                    head_dim: 2 * half_rd + extra,
                };
                let cfg = RopeConfig {
                    theta,
                    rotary_dim: 2 * half_rd,
                    layout,
                    scaling,
                };
                prop::collection::vec(0i32..10_000, tokens).prop_map(move |positions| RopeCase {
                    shape,
                    cfg,
                    positions,
                    seed,
                })
            },
        )
}

fn rope_inputs<T: Elem>(c: &RopeCase) -> (Vec<T>, Vec<T>) {
    let s = c.shape;
    (
        random_vec::<T>(s.tokens * s.n_heads * s.head_dim, c.seed, 1.0),
        random_vec::<T>(s.tokens * s.n_kv_heads * s.head_dim, c.seed ^ 0xABCD, 1.0),
    )
}

/// The (j0, j1) dims of rotary pair `i`.
fn pair(layout: RopeLayout, rd: usize, i: usize) -> (usize, usize) {
    match layout {
        RopeLayout::Interleaved => (2 * i, 2 * i + 1),
        RopeLayout::HalfSplit => (i, i + rd / 2),
    }
}

fn dot(a: &[f64], b: &[f64]) -> f64 {
    a.iter().zip(b).map(|(x, y)| x * y).sum()
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(CASES))]

    /// A rotation keeps the length of every pair; unrotated dims are untouched.
    #[test]
    fn rope_keeps_pair_norms_and_passes_extra_dims_through(c in rope_case()) {
        let (q, k) = rope_inputs::<f32>(&c);
        let (qo, ko) = reference::rope(&q, &k, &c.positions, c.shape, c.cfg).unwrap();
        let (q64, k64) = reference::rope_f64(&q, &k, &c.positions, c.shape, c.cfg).unwrap();
        let (hd, rd) = (c.shape.head_dim, c.cfg.rotary_dim);
        for (input, out32, out64) in [(&q, &qo, &q64), (&k, &ko, &k64)] {
            for h in 0..input.len() / hd {
                let x = &input[h * hd..][..hd];
                for i in 0..rd / 2 {
                    let (j0, j1) = pair(c.cfg.layout, rd, i);
                    let n_in = (x[j0] as f64).hypot(x[j1] as f64);
                    let n64 = out64[h * hd + j0].hypot(out64[h * hd + j1]);
                    let n32 = (out32[h * hd + j0] as f64).hypot(out32[h * hd + j1] as f64);
                    prop_assert!((n64 - n_in).abs() <= 1e-14 * n_in.max(1.0));
                    prop_assert!((n32 - n_in).abs() <= 2.5e-7 * n_in, "pair {i}: {n32} vs {n_in}");
                }
                prop_assert!(bits_eq(&x[rd..], &out32[h * hd + rd..][..hd - rd]), "dims >= rotary_dim changed");
                prop_assert_eq!(to_f64_vec(&x[rd..]), out64[h * hd + rd..][..hd - rd].to_vec());
            }
        }
    }

    /// q_m · k_n depends only on m - n (checked on the exact oracle).
    #[test]
    fn rope_dot_product_depends_only_on_relative_position(
        c in rope_case(), m in 0i32..5000, n in 0i32..5000, shift in 0i32..5000,
    ) {
        let shape = RopeShape { tokens: 1, n_heads: 1, n_kv_heads: 1, ..c.shape };
        let hd = shape.head_dim;
        let q = random_vec::<f32>(hd, c.seed, 1.0);
        let k = random_vec::<f32>(hd, c.seed ^ 1, 1.0);
        let rot = |x: &[f32], pos: i32| reference::rope_f64(x, x, &[pos], shape, c.cfg).unwrap().0;
        let before = dot(&rot(&q, m), &rot(&k, n));
        let after = dot(&rot(&q, m + shift), &rot(&k, n + shift));
        prop_assert!((before - after).abs() <= 1e-9 * hd as f64, "{before} vs {after}");
    }

    /// The f32 angle and table cost at most ~2^-23·pos radians; beyond that the reference is the oracle
    /// rounded to T once.
    #[test]
    fn rope_reference_matches_oracle_up_to_the_f32_angle(c in rope_case()) {
        fn body<T: Elem>(c: &RopeCase) -> std::result::Result<(), TestCaseError> {
            let (q, k) = rope_inputs::<T>(c);
            let (qo, ko) = reference::rope(&q, &k, &c.positions, c.shape, c.cfg).unwrap();
            let (q64, k64) = reference::rope_f64(&q, &k, &c.positions, c.shape, c.cfg).unwrap();
            let hd = c.shape.head_dim;
            for (out, oracle, heads) in [(&qo, &q64, c.shape.n_heads), (&ko, &k64, c.shape.n_kv_heads)] {
                for (idx, (o, e)) in out.iter().zip(oracle.iter()).enumerate() {
                    let pos = c.positions[idx / (heads * hd)] as f64;
                    let bound = (pos + 2.0) * 2f64.powi(-22) * 2f64.sqrt() + 2.0 * T::EPSILON_HALF_ULP * e.abs();
                    prop_assert!((o.to_f64() - e).abs() <= bound, "{:?} at {}: {:?} vs {}", T::DTYPE, idx, o, e);
                }
            }
            Ok(())
        }
        body::<f32>(&c)?;
        body::<bf16>(&c)?;
    }

    /// The kernel's contract: angle = f32(pos) * table[i] in f32 (table = rope_inv_freq), cos/sin of that
    /// f32 angle, the rotation rounded to T once.
    #[test]
    fn rope_rounds_at_the_documented_points(c in rope_case()) {
        fn body<T: Elem>(c: &RopeCase) -> std::result::Result<(), TestCaseError> {
            let (hd, rd) = (c.shape.head_dim, c.cfg.rotary_dim);
            let table = reference::rope_inv_freq(rd, c.cfg.theta, c.cfg.scaling).unwrap();
            let (q, k) = rope_inputs::<T>(c);
            let (qo, ko) = reference::rope(&q, &k, &c.positions, c.shape, c.cfg).unwrap();
            for (input, out) in [(&q, &qo), (&k, &ko)] {
                let heads = input.len() / (c.shape.tokens * hd);
                for (h, x) in input.chunks(hd).enumerate() {
                    let pos = c.positions[h / heads];
                    for (i, &f) in table.iter().enumerate() {
                        let angle = (pos as f32 * f) as f64;
                        let (j0, j1) = pair(c.cfg.layout, rd, i);
                        let (x0, x1) = (x[j0].to_f64(), x[j1].to_f64());
                        prop_assert_eq!(out[h * hd + j0].to_f64(), rt::<T>(x0 * angle.cos() - x1 * angle.sin()));
                        prop_assert_eq!(out[h * hd + j1].to_f64(), rt::<T>(x0 * angle.sin() + x1 * angle.cos()));
                    }
                }
            }
            Ok(())
        }
        body::<f32>(&c)?;
        body::<bf16>(&c)?;
    }

    /// Interleaved pair i = dims (2i, 2i+1) and half-split pair i = dims (i, i + rd/2) rotate identically.
    #[test]
    fn rope_layouts_agree_under_the_pair_permutation(c in rope_case()) {
        let (hd, rd) = (c.shape.head_dim, c.cfg.rotary_dim);
        // perm[j] = the half-split dim that holds interleaved dim j.
        let perm: Vec<usize> = (0..hd).map(|j| if j < rd { if j % 2 == 0 { j / 2 } else { j / 2 + rd / 2 } } else { j }).collect();
        let to_half = |x: &[bf16]| {
            let mut y = x.to_vec();
            for (h, head) in x.chunks(hd).enumerate() {
                for j in 0..hd { y[h * hd + perm[j]] = head[j]; }
            }
            y
        };
        let (q, k) = rope_inputs::<bf16>(&c);
        let il = RopeConfig { layout: RopeLayout::Interleaved, ..c.cfg };
        let hs = RopeConfig { layout: RopeLayout::HalfSplit, ..c.cfg };
        let (qi, ki) = reference::rope(&q, &k, &c.positions, c.shape, il).unwrap();
        let (qh, kh) = reference::rope(&to_half(&q), &to_half(&k), &c.positions, c.shape, hs).unwrap();
        prop_assert!(bits_eq(&to_half(&qi), &qh));
        prop_assert!(bits_eq(&to_half(&ki), &kh));
    }

    /// Position 0 is the identity; k heads rotate exactly like q heads with the same data.
    #[test]
    fn rope_position_zero_is_identity_and_k_rotates_like_q(c in rope_case()) {
        let (q, k) = rope_inputs::<bf16>(&c);
        let zeros = vec![0; c.shape.tokens];
        let (q0, k0) = reference::rope(&q, &k, &zeros, c.shape, c.cfg).unwrap();
        prop_assert!(bits_eq(&q0, &q) && bits_eq(&k0, &k));
        let (_, ko) = reference::rope(&q, &k, &c.positions, c.shape, c.cfg).unwrap();
        let as_q = RopeShape { n_heads: c.shape.n_kv_heads, ..c.shape };
        let (ko_as_q, _) = reference::rope(&k, &k, &c.positions, as_q, c.cfg).unwrap();
        prop_assert!(bits_eq(&ko, &ko_as_q));
    }

    /// inv_freq[i] = round_f32(theta^(-2i/rd)): starts at 1, strictly decreasing.
    #[test]
    fn rope_inv_freq_is_the_power_law(half_rd in 1usize..128, theta in 2.0f32..1e6) {
        let rd = 2 * half_rd;
        let table = reference::rope_inv_freq(rd, theta, None).unwrap();
        prop_assert_eq!(table.len(), half_rd);
        prop_assert_eq!(table[0], 1.0);
        for (i, &f) in table.iter().enumerate() {
            prop_assert_eq!(f, (theta as f64).powf(-2.0 * i as f64 / rd as f64) as f32);
        }
        prop_assert!(table.windows(2).all(|w| w[1] < w[0]));
    }

    /// LLaMA 3.1 scaling: wavelengths under 8192/4 keep their frequency, those over 8192 are divided by 8,
    /// and the table still decreases.
    #[test]
    fn rope_llama3_scaling_splits_high_and_low_frequencies(half_rd in 1usize..128, theta in 1e3f32..1e6) {
        let rd = 2 * half_rd;
        let s = Llama3Scaling::LLAMA_3_1;
        let base = reference::rope_inv_freq(rd, theta, None).unwrap();
        let base64 = reference::rope_inv_freq_f64(rd, theta, None).unwrap();
        let scaled = reference::rope_inv_freq(rd, theta, Some(s)).unwrap();
        for i in 0..half_rd {
            let wavelen = 2.0 * std::f64::consts::PI / base64[i];
            if wavelen < 8192.0 / 4.0 {
                prop_assert_eq!(scaled[i], base[i], "high frequency {} changed", i);
            } else if wavelen > 8192.0 {
                prop_assert_eq!(scaled[i], base[i] / 8.0, "low frequency {} not divided by 8", i);
            } else {
                // HF's smooth interpolation between inv_freq / 8 and inv_freq, in a different evaluation order.
                let smooth = (8192.0 / wavelen - 1.0) / (4.0 - 1.0);
                let expected = base64[i] * ((1.0 - smooth) / 8.0 + smooth);
                prop_assert!((scaled[i] as f64 - expected).abs() <= 1e-7 * expected, "medium {}: {} vs {}", i, scaled[i], expected);
            }
        }
        prop_assert!(scaled.windows(2).all(|w| w[1] <= w[0]), "not monotone: {:?}", scaled);
    }
}

#[test]
fn rope_llama3_1_table_has_both_regimes() {
    let base = reference::rope_inv_freq(128, 500_000.0, None).unwrap();
    let scaled = reference::rope_inv_freq(128, 500_000.0, Some(Llama3Scaling::LLAMA_3_1)).unwrap();
    assert_eq!(scaled[0], 1.0);
    assert_eq!(scaled[63], base[63] / 8.0);
    assert!(scaled.iter().zip(&base).filter(|(s, b)| s == b).count() > 10);
    assert!(scaled.iter().zip(&base).filter(|(s, b)| **s == **b / 8.0).count() > 10);
}

// ------------------------------------------------------------------------------------------------
// SwiGLU and the FFN size
// ------------------------------------------------------------------------------------------------

proptest! {
    #![proptest_config(ProptestConfig::with_cases(CASES))]

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

// ------------------------------------------------------------------------------------------------
// Attention
// ------------------------------------------------------------------------------------------------

#[derive(Clone, Debug)]
struct AttnCase {
    shape: AttentionShape,
    cfg: AttentionConfig,
    seed: u64,
}

fn attn_case() -> impl Strategy<Value = AttnCase> {
    let scale = prop_oneof![Just(None), Just(Some(0.3f32)), Just(Some(2.0f32))];
    (
        1usize..3,
        1usize..7,
        1usize..10,
        1usize..3,
        1usize..4,
        1usize..13,
        any::<bool>(),
        scale,
        any::<u64>(),
    )
        .prop_map(
            |(batch, q_len, kv_len, n_kv_heads, group, head_dim, causal, softmax_scale, seed)| AttnCase {
                shape: AttentionShape {
                    batch,
                    q_len,
                    kv_len,
                    n_heads: n_kv_heads * group,
                    n_kv_heads,
                    head_dim,
                },
                cfg: AttentionConfig { causal, softmax_scale },
                seed,
            },
        )
}

/// (q, k, v) of the case, uniform in [-1, 1).
fn attn_inputs<T: Elem>(c: &AttnCase) -> (Vec<T>, Vec<T>, Vec<T>) {
    let s = c.shape;
    let kv = s.batch * s.kv_len * s.n_kv_heads * s.head_dim;
    (
        random_vec::<T>(s.batch * s.q_len * s.n_heads * s.head_dim, c.seed, 1.0),
        random_vec::<T>(kv, c.seed ^ 0x1111, 1.0),
        random_vec::<T>(kv, c.seed ^ 0x2222, 1.0),
    )
}

/// softmax(Q·Kᵀ·scale + mask)·V written out directly: `(o, lse)` in the reference's layouts.
fn direct_attention(q: &[f64], k: &[f64], v: &[f64], s: AttentionShape, cfg: AttentionConfig) -> (Vec<f64>, Vec<f64>) {
    let (hd, group) = (s.head_dim, s.n_heads / s.n_kv_heads);
    let scale = cfg.scale(hd) as f64;
    let mut o = vec![0.0; q.len()];
    let mut lse = vec![0.0; s.batch * s.n_heads * s.q_len];
    for b in 0..s.batch {
        for h in 0..s.n_heads {
            for i in 0..s.q_len {
                let qi = &q[((b * s.q_len + i) * s.n_heads + h) * hd..][..hd];
                let kv_at =
                    |t: &[f64], j: usize| t[((b * s.kv_len + j) * s.n_kv_heads + h / group) * hd..][..hd].to_vec();
                let masked = |j: usize| cfg.causal && j as i64 > s.kv_len as i64 - s.q_len as i64 + i as i64;
                let scores: Vec<f64> = (0..s.kv_len)
                    .map(|j| {
                        if masked(j) {
                            f64::NEG_INFINITY
                        } else {
                            scale * dot(qi, &kv_at(k, j))
                        }
                    })
                    .collect();
                let m = scores.iter().copied().fold(f64::NEG_INFINITY, f64::max);
                let denom: f64 = scores.iter().map(|x| (x - m).exp()).sum();
                lse[(b * s.n_heads + h) * s.q_len + i] = if m == f64::NEG_INFINITY { m } else { m + denom.ln() };
                for j in (0..s.kv_len).filter(|&j| !masked(j)) {
                    let p = (scores[j] - m).exp() / denom;
                    for (d, vd) in kv_at(v, j).iter().enumerate() {
                        o[((b * s.q_len + i) * s.n_heads + h) * hd + d] += p * vd;
                    }
                }
            }
        }
    }
    (o, lse)
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(CASES))]

    /// The oracle and the f32/bf16 references equal softmax(QKᵀ·scale)V and log Σ exp(scores) written
    /// out here; fully-masked rows give 0 and -inf.
    #[test]
    fn attention_equals_direct_softmax_and_lse(c in attn_case()) {
        let (q, k, v) = attn_inputs::<bf16>(&c);
        let (o_exp, lse_exp) = direct_attention(&to_f64_vec(&q), &to_f64_vec(&k), &to_f64_vec(&v), c.shape, c.cfg);
        let (o64, lse64) = reference::attention_f64(&q, &k, &v, c.shape, c.cfg).unwrap();
        check(reference::check_close(&o64, &o_exp, 1e-13, 1e-12))?;
        check(reference::check_close(&lse64, &lse_exp, 1e-13, 1e-12))?;
        let (o16, lse32) = reference::attention(&q, &k, &v, c.shape, c.cfg).unwrap();
        check(Tolerance::for_elem::<bf16>().check(&to_f64_vec(&o16), &o_exp))?;
        check(reference::check_close(&lse32.iter().map(|&x| x as f64).collect::<Vec<_>>(), &lse_exp, 1e-7, 1e-7))?;
        let q32: Vec<f32> = q.iter().map(|x| x.to_f32()).collect();
        let k32: Vec<f32> = k.iter().map(|x| x.to_f32()).collect();
        let v32: Vec<f32> = v.iter().map(|x| x.to_f32()).collect();
        let (o32, _) = reference::attention(&q32, &k32, &v32, c.shape, c.cfg).unwrap();
        check(Tolerance::for_elem::<f32>().check(&to_f64_vec(&o32), &o_exp))?;
    }

    /// Each output is a convex combination of the visible V rows: within their [min, max] per dim. The
    /// storage-dtype reference keeps this exactly (rounding is monotone and min/max are representable).
    #[test]
    fn attention_rows_are_convex_combinations_of_visible_values(c in attn_case()) {
        let (q, k, v) = attn_inputs::<f16>(&c);
        let s = c.shape;
        let (o, _) = reference::attention(&q, &k, &v, s, c.cfg).unwrap();
        let (o64, _) = reference::attention_f64(&q, &k, &v, s, c.cfg).unwrap();
        let (hd, group) = (s.head_dim, s.n_heads / s.n_kv_heads);
        for b in 0..s.batch { for h in 0..s.n_heads { for i in 0..s.q_len {
            let n_vis = visible_keys(s, c.cfg.causal, i);
            for d in 0..hd {
                let vals: Vec<f64> = (0..n_vis).map(|j| v[((b * s.kv_len + j) * s.n_kv_heads + h / group) * hd + d].to_f64()).collect();
                let (lo, hi) = vals.iter().fold((f64::INFINITY, f64::NEG_INFINITY), |(l, u), &x| (l.min(x), u.max(x)));
                let at = ((b * s.q_len + i) * s.n_heads + h) * hd + d;
                if n_vis == 0 {
                    prop_assert!(o[at].to_f64() == 0.0 && o64[at] == 0.0);
                } else {
                    prop_assert!(o[at].to_f64() >= lo && o[at].to_f64() <= hi, "{:?} not in [{lo}, {hi}]", o[at]);
                    prop_assert!(o64[at] >= lo - 1e-15 && o64[at] <= hi + 1e-15);
                }
            }
        }}}
    }

    /// Causal: rewriting keys and values at positions >= cut leaves every query that cannot see them
    /// unchanged, bit for bit (o and lse).
    #[test]
    fn attention_ignores_keys_beyond_the_causal_horizon(c in attn_case(), cut_frac in 0.0f64..1.0) {
        let s = c.shape;
        let cfg = AttentionConfig { causal: true, ..c.cfg };
        let cut = (cut_frac * s.kv_len as f64) as usize;
        let (q, k, v) = attn_inputs::<bf16>(&c);
        let (mut k2, mut v2) = (k.clone(), v.clone());
        let noise = random_vec::<bf16>(k.len(), c.seed ^ 0x3333, 4.0);
        let row = s.n_kv_heads * s.head_dim;
        for idx in 0..k.len() {
            if (idx / row) % s.kv_len >= cut { k2[idx] = noise[idx]; v2[idx] = noise[k.len() - 1 - idx]; }
        }
        let (o1, l1) = reference::attention(&q, &k, &v, s, cfg).unwrap();
        let (o2, l2) = reference::attention(&q, &k2, &v2, s, cfg).unwrap();
        let hd = s.head_dim;
        for b in 0..s.batch { for h in 0..s.n_heads { for i in 0..s.q_len {
            if visible_keys(s, true, i) <= cut {
                let at = ((b * s.q_len + i) * s.n_heads + h) * hd;
                prop_assert!(bits_eq(&o1[at..at + hd], &o2[at..at + hd]), "query {i} changed");
                let li = (b * s.n_heads + h) * s.q_len + i;
                prop_assert!(l1[li].to_bits() == l2[li].to_bits());
            }
        }}}
    }

    /// GQA equals MHA with each kv head repeated n_heads / n_kv_heads times.
    #[test]
    fn gqa_equals_mha_with_repeated_kv_heads(c in attn_case()) {
        let s = c.shape;
        let (q, k, v) = attn_inputs::<bf16>(&c);
        let group = s.n_heads / s.n_kv_heads;
        // (batch, kv_len, n_kv_heads, hd) -> (batch, kv_len, n_heads, hd), head h = kv head h / group.
        let repeat = |t: &[bf16]| -> Vec<bf16> {
            t.chunks(s.head_dim).flat_map(|head| std::iter::repeat_n(head, group).flatten().copied()).collect()
        };
        let mha = AttentionShape { n_kv_heads: s.n_heads, ..s };
        let (o1, l1) = reference::attention(&q, &k, &v, s, c.cfg).unwrap();
        let (o2, l2) = reference::attention(&q, &repeat(&k), &repeat(&v), mha, c.cfg).unwrap();
        prop_assert!(bits_eq(&o1, &o2));
        prop_assert!(bits_eq(&l1, &l2));
    }

    /// q_len > kv_len, causal: the first q_len - kv_len queries see nothing -> zeros and -inf; no NaN.
    #[test]
    fn attention_fully_masked_rows_give_zero_and_neg_inf(c in attn_case(), extra in 1usize..4) {
        let s = AttentionShape { q_len: c.shape.kv_len + extra, ..c.shape };
        let c = AttnCase { shape: s, cfg: AttentionConfig { causal: true, ..c.cfg }, ..c };
        let (q, k, v) = attn_inputs::<bf16>(&c);
        let (o, lse) = reference::attention(&q, &k, &v, s, c.cfg).unwrap();
        let (o64, lse64) = reference::attention_f64(&q, &k, &v, s, c.cfg).unwrap();
        let naive = reference::attention_naive(&q, &k, &v, s, c.cfg).unwrap();
        prop_assert!(o.iter().chain(&naive).all(|x| !x.to_f32().is_nan()) && o64.iter().all(|x| !x.is_nan()));
        for (li, (&l, &l64)) in lse.iter().zip(&lse64).enumerate() {
            let i = li % s.q_len;
            let masked = i < extra;
            prop_assert_eq!(masked, l == f32::NEG_INFINITY);
            prop_assert_eq!(masked, l64 == f64::NEG_INFINITY);
            prop_assert!(!l.is_nan());
        }
        for (at, x) in o.iter().enumerate() {
            let i = (at / (s.n_heads * s.head_dim)) % s.q_len;
            if i < extra { prop_assert!(x.to_f32() == 0.0 && naive[at].to_f32() == 0.0 && o64[at] == 0.0); }
        }
    }

    /// The storage-dtype reference (one rounding) passes FlashAttention's 2x rule against the naive
    /// computation, and the naive f32 computation is close to the oracle.
    #[test]
    fn attention_reference_passes_the_2x_rule(c in attn_case()) {
        fn body<T: Elem>(c: &AttnCase) -> std::result::Result<(), TestCaseError> {
            let (q, k, v) = attn_inputs::<T>(c);
            let (o64, _) = reference::attention_f64(&q, &k, &v, c.shape, c.cfg).unwrap();
            let (o, _) = reference::attention(&q, &k, &v, c.shape, c.cfg).unwrap();
            let naive = reference::attention_naive(&q, &k, &v, c.shape, c.cfg).unwrap();
            check(reference::check_2x_rule(&to_f64_vec(&o), &to_f64_vec(&naive), &o64, 1e-5))?;
            let (_, naive_err) = reference::max_abs_diff(&to_f64_vec(&naive), &o64);
            prop_assert!(naive_err <= 64.0 * T::EPSILON_HALF_ULP * (c.shape.head_dim + c.shape.kv_len) as f64, "naive error {naive_err}");
            Ok(())
        }
        body::<f32>(&c)?;
        body::<f16>(&c)?;
        body::<bf16>(&c)?;
    }
}

/// The naive baselines really compute in T: on a fixed larger case their error is several times that of
/// the once-rounded reference (otherwise the 2x rule would be a much tighter bound than intended).
#[test]
fn naive_baselines_carry_the_same_precision_error() {
    let s = AttentionShape {
        batch: 1,
        q_len: 16,
        kv_len: 64,
        n_heads: 2,
        n_kv_heads: 1,
        head_dim: 64,
    };
    let c = AttnCase {
        shape: s,
        cfg: AttentionConfig {
            causal: false,
            softmax_scale: None,
        },
        seed: 42,
    };
    let (q, k, v) = attn_inputs::<bf16>(&c);
    let (o64, _) = reference::attention_f64(&q, &k, &v, s, c.cfg).unwrap();
    let (o, _) = reference::attention(&q, &k, &v, s, c.cfg).unwrap();
    let naive = reference::attention_naive(&q, &k, &v, s, c.cfg).unwrap();
    let (_, ref_err) = reference::max_abs_diff(&to_f64_vec(&o), &o64);
    let (_, naive_err) = reference::max_abs_diff(&to_f64_vec(&naive), &o64);
    assert!(
        naive_err > 4.0 * ref_err,
        "attention: naive {naive_err:e} vs reference {ref_err:e}"
    );

    let shape = GemmShape { m: 8, n: 8, k: 256 };
    let cfg = GemmConfig::default();
    let (a, b, cm) = (
        random_vec::<bf16>(8 * 256, 1, 1.0),
        random_vec::<bf16>(256 * 8, 2, 1.0),
        vec![bf16::ZERO; 64],
    );
    let oracle = reference::gemm_f64(&a, &b, &cm, shape, cfg).unwrap();
    let (_, ref_err) =
        reference::max_abs_diff(&to_f64_vec(&reference::gemm(&a, &b, &cm, shape, cfg).unwrap()), &oracle);
    let (_, naive_err) = reference::max_abs_diff(
        &to_f64_vec(&reference::gemm_naive(&a, &b, &cm, shape, cfg).unwrap()),
        &oracle,
    );
    assert!(
        naive_err > 4.0 * ref_err,
        "gemm: naive {naive_err:e} vs reference {ref_err:e}"
    );
}

// ------------------------------------------------------------------------------------------------
// GEMM
// ------------------------------------------------------------------------------------------------

fn gemm_dim() -> impl Strategy<Value = usize> {
    prop_oneof![
        Just(1usize),
        2usize..12,
        prop::sample::select(vec![15usize, 16, 17, 31, 32, 33])
    ]
}

fn gemm_case() -> impl Strategy<Value = (GemmShape, GemmConfig, u64)> {
    let alpha = prop::sample::select(vec![1.0f32, 0.5, -2.0, 1.7]);
    let beta = prop::sample::select(vec![0.0f32, 1.0, -0.75]);
    (
        gemm_dim(),
        gemm_dim(),
        gemm_dim(),
        any::<bool>(),
        any::<bool>(),
        alpha,
        beta,
        any::<u64>(),
    )
        .prop_map(|(m, n, k, trans_a, trans_b, alpha, beta, seed)| {
            (
                GemmShape { m, n, k },
                GemmConfig {
                    trans_a,
                    trans_b,
                    alpha,
                    beta,
                },
                seed,
            )
        })
}

/// A stored `(rows, cols)` matrix as a row-major Vec<Vec<f64>>, transposed when `trans`.
fn matrix<T: Elem>(data: &[T], rows: usize, cols: usize, trans: bool) -> Vec<Vec<f64>> {
    let stored: Vec<Vec<f64>> = data.chunks(cols).map(to_f64_vec).collect();
    if !trans {
        return stored;
    }
    (0..cols).map(|c| (0..rows).map(|r| stored[r][c]).collect()).collect()
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(CASES))]

    /// gemm_f64 and gemm::<T> equal a triple loop over explicitly transposed matrices, for all four
    /// transpose combinations, sizes 1 and around 16/32, and alpha/beta.
    #[test]
    fn gemm_equals_a_triple_loop((shape, cfg, seed) in gemm_case()) {
        let GemmShape { m, n, k } = shape;
        let a = random_vec::<bf16>(m * k, seed, 1.0);
        let b = random_vec::<bf16>(k * n, seed ^ 1, 1.0);
        let c = random_vec::<bf16>(m * n, seed ^ 2, 1.0);
        // op(A): stored (m, k), or (k, m) read transposed; op(B): stored (k, n), or (n, k) read transposed.
        let op_a = if cfg.trans_a { matrix(&a, k, m, true) } else { matrix(&a, m, k, false) };
        let op_b = if cfg.trans_b { matrix(&b, n, k, true) } else { matrix(&b, k, n, false) };
        let mut expected = vec![0.0; m * n];
        for i in 0..m { for j in 0..n {
            let acc: f64 = (0..k).map(|p| op_a[i][p] * op_b[p][j]).sum();
            expected[i * n + j] = cfg.alpha as f64 * acc + cfg.beta as f64 * c[i * n + j].to_f64();
        }}
        let oracle = reference::gemm_f64(&a, &b, &c, shape, cfg).unwrap();
        check(reference::check_close(&oracle, &expected, 1e-12, 1e-12))?;
        let out = to_f64_vec(&reference::gemm(&a, &b, &c, shape, cfg).unwrap());
        check(Tolerance::ulps(DType::BF16, 1.0).check(&out, &expected))?;
        let bound = reference::gemm_abs_bound(&a, &b, &c, shape, cfg).unwrap();
        prop_assert!(bound.iter().zip(&oracle).all(|(bd, o)| bd >= &(o.abs() * (1.0 - 1e-12))));
    }

    /// With beta == 0 C is not read: NaN in C changes nothing.
    #[test]
    fn gemm_with_zero_beta_never_reads_c((shape, cfg, seed) in gemm_case()) {
        let cfg = GemmConfig { beta: 0.0, ..cfg };
        let a = random_vec::<f16>(shape.m * shape.k, seed, 1.0);
        let b = random_vec::<f16>(shape.k * shape.n, seed ^ 1, 1.0);
        let zeros = vec![f16::ZERO; shape.m * shape.n];
        let nans = vec![f16::NAN; shape.m * shape.n];
        let out = reference::gemm(&a, &b, &nans, shape, cfg).unwrap();
        prop_assert!(bits_eq(&out, &reference::gemm(&a, &b, &zeros, shape, cfg).unwrap()));
        prop_assert!(reference::gemm_naive(&a, &b, &nans, shape, cfg).unwrap().iter().all(|x| !x.is_nan()));
        prop_assert!(reference::gemm_f64(&a, &b, &nans, shape, cfg).unwrap().iter().all(|x| !x.is_nan()));
    }

    /// The naive same-precision GEMM obeys the classical bound γ_(k+3)·Σ|a||b|, and the once-rounded
    /// reference passes the 2x rule against it.
    #[test]
    fn gemm_naive_obeys_the_error_bound_and_reference_passes_2x_rule((shape, cfg, seed) in gemm_case()) {
        fn body<T: Elem>(shape: GemmShape, cfg: GemmConfig, seed: u64) -> std::result::Result<(), TestCaseError> {
            let a = random_vec::<T>(shape.m * shape.k, seed, 1.0);
            let b = random_vec::<T>(shape.k * shape.n, seed ^ 1, 1.0);
            let c = random_vec::<T>(shape.m * shape.n, seed ^ 2, 1.0);
            let oracle = reference::gemm_f64(&a, &b, &c, shape, cfg).unwrap();
            let naive = to_f64_vec(&reference::gemm_naive(&a, &b, &c, shape, cfg).unwrap());
            let bound = reference::gemm_abs_bound(&a, &b, &c, shape, cfg).unwrap();
            let nu = (shape.k + 3) as f64 * T::EPSILON_HALF_ULP;
            // Each rounding into T's subnormal range can lose half the smallest subnormal, whatever the bound.
            let subnormal = match T::DTYPE { DType::F16 => 2f64.powi(-24), DType::BF16 => 2f64.powi(-133), DType::F32 => 2f64.powi(-149) };
            let atol = (shape.k + 3) as f64 * subnormal / 2.0;
            check(reference::check_abs_bound(&naive, &oracle, &bound, nu / (1.0 - nu), atol))?;
            let out = to_f64_vec(&reference::gemm(&a, &b, &c, shape, cfg).unwrap());
            check(reference::check_2x_rule(&out, &naive, &oracle, 1e-5))?;
            Ok(())
        }
        body::<f32>(shape, cfg, seed)?;
        body::<f16>(shape, cfg, seed)?;
        body::<bf16>(shape, cfg, seed)?;
    }
}

// ------------------------------------------------------------------------------------------------
// Validation: every error path returns the documented variant (and never panics)
// ------------------------------------------------------------------------------------------------

fn is_shape_mismatch<T: std::fmt::Debug>(r: Result<T>, which: &str) -> bool {
    matches!(r, Err(Error::ShapeMismatch { tensor, .. }) if tensor == which)
}
fn is_invalid_shape<T>(r: Result<T>) -> bool {
    matches!(r, Err(Error::InvalidShape { .. }))
}
fn is_invalid_arg<T>(r: Result<T>) -> bool {
    matches!(r, Err(Error::InvalidArgument { .. }))
}

#[test]
fn rms_norm_validation_errors() {
    let x = vec![1.0f32; 6];
    let w = vec![1.0f32; 3];
    let shape = RmsNormShape { rows: 2, hidden: 3 };
    let cfg = RmsNormConfig::default();
    let eps = |eps| RmsNormConfig { eps, ..cfg };
    assert!(is_invalid_shape(reference::rms_norm(
        &x,
        &w,
        RmsNormShape { rows: 0, hidden: 3 },
        cfg
    )));
    assert!(is_invalid_shape(reference::rms_norm_f64(
        &x,
        &w,
        RmsNormShape { rows: 2, hidden: 0 },
        cfg
    )));
    assert!(is_shape_mismatch(reference::rms_norm(&x[..5], &w, shape, cfg), "x"));
    assert!(is_shape_mismatch(
        reference::rms_norm_f64(&x, &w[..2], shape, cfg),
        "weight"
    ));
    for bad in [0.0, -1e-5, f32::NAN, f32::INFINITY] {
        assert!(is_invalid_arg(reference::rms_norm(&x, &w, shape, eps(bad))));
        assert!(is_invalid_arg(reference::fused_add_rms_norm_f64(
            &x,
            &x,
            &w,
            shape,
            eps(bad)
        )));
    }
    assert!(is_shape_mismatch(
        reference::fused_add_rms_norm(&x, &x[..4], &w, shape, cfg),
        "residual"
    ));
    assert!(is_shape_mismatch(
        reference::fused_add_rms_norm_f64(&x, &x, &w[..1], shape, cfg),
        "weight"
    ));
    let huge = RmsNormShape {
        rows: usize::MAX,
        hidden: 2,
    };
    assert!(matches!(
        reference::rms_norm(&x, &w, huge, cfg),
        Err(Error::SizeOverflow { .. })
    ));
}

#[test]
fn rope_validation_errors() {
    let shape = RopeShape {
        tokens: 2,
        n_heads: 4,
        n_kv_heads: 2,
        head_dim: 8,
    };
    let cfg = RopeConfig {
        theta: 10_000.0,
        rotary_dim: 8,
        layout: RopeLayout::Interleaved,
        scaling: None,
    };
    let (q, k, pos) = (vec![bf16::ONE; 64], vec![bf16::ONE; 32], vec![0, 1]);
    let run = |q: &[bf16], k: &[bf16], pos: &[i32], shape, cfg| {
        let a = reference::rope(q, k, pos, shape, cfg).map(|_| ());
        let b = reference::rope_f64(q, k, pos, shape, cfg).map(|_| ());
        assert_eq!(a, b, "reference and oracle validate alike");
        a
    };
    assert!(run(&q, &k, &pos, shape, cfg).is_ok());
    for rotary_dim in [0, 3, 10] {
        assert!(
            is_invalid_shape(run(&q, &k, &pos, shape, RopeConfig { rotary_dim, ..cfg })),
            "rotary_dim {rotary_dim}"
        );
    }
    assert!(is_invalid_shape(run(
        &q,
        &k,
        &pos,
        RopeShape { tokens: 0, ..shape },
        cfg
    )));
    assert!(is_invalid_shape(run(
        &q,
        &k,
        &pos,
        RopeShape { n_kv_heads: 0, ..shape },
        cfg
    )));
    assert!(is_shape_mismatch(run(&q[1..], &k, &pos, shape, cfg), "q"));
    assert!(is_shape_mismatch(run(&q, &k[1..], &pos, shape, cfg), "k"));
    assert!(is_shape_mismatch(run(&q, &k, &pos[..1], shape, cfg), "positions"));
    assert!(is_invalid_arg(run(&q, &k, &[0, -1], shape, cfg)));
    for theta in [0.0, -1.0, f32::NAN, f32::INFINITY] {
        assert!(is_invalid_arg(run(&q, &k, &pos, shape, RopeConfig { theta, ..cfg })));
        assert!(is_invalid_arg(reference::rope_inv_freq(8, theta, None)));
    }
    let s = Llama3Scaling::LLAMA_3_1;
    for bad in [
        Llama3Scaling { factor: 0.0, ..s },
        Llama3Scaling {
            low_freq_factor: f32::NAN,
            ..s
        },
        Llama3Scaling {
            high_freq_factor: 1.0,
            ..s
        }, // == low_freq_factor: division by zero
        Llama3Scaling {
            original_max_position_embeddings: 0,
            ..s
        },
    ] {
        assert!(
            is_invalid_arg(run(
                &q,
                &k,
                &pos,
                shape,
                RopeConfig {
                    scaling: Some(bad),
                    ..cfg
                }
            )),
            "{bad:?}"
        );
        assert!(is_invalid_arg(reference::rope_inv_freq_f64(8, 500_000.0, Some(bad))));
    }
    assert!(is_invalid_shape(reference::rope_inv_freq(7, 10_000.0, None)));
    assert!(is_invalid_shape(reference::rope_inv_freq(0, 10_000.0, None)));
}

#[test]
fn swiglu_and_ffn_validation_errors() {
    let shape = SwigluShape { rows: 2, d: 3 };
    let v = vec![f16::ONE; 6];
    assert!(is_invalid_shape(reference::swiglu(
        &v,
        &v,
        SwigluShape { rows: 2, d: 0 },
        Rounding::Once
    )));
    assert!(is_invalid_shape(reference::swiglu_packed(
        &v,
        SwigluShape { rows: 0, d: 3 },
        Rounding::Once
    )));
    assert!(is_shape_mismatch(
        reference::swiglu(&v[..5], &v, shape, Rounding::MatchTorch),
        "gate"
    ));
    assert!(is_shape_mismatch(reference::swiglu_f64(&v, &v[..5], shape), "up"));
    assert!(is_shape_mismatch(
        reference::swiglu_packed(&v, shape, Rounding::MatchTorch),
        "gate_up"
    ));
    assert!(is_shape_mismatch(reference::swiglu_packed_f64(&v, shape), "gate_up"));
    assert!(is_invalid_shape(reference::ffn_hidden_dim(4096, 0, None)));
    assert!(is_invalid_shape(reference::ffn_hidden_dim(0, 256, None)));
    for m in [0.0, -1.3, f32::NAN, f32::INFINITY] {
        assert!(is_invalid_arg(reference::ffn_hidden_dim(4096, 256, Some(m))));
    }
    assert!(matches!(
        reference::ffn_hidden_dim(usize::MAX, 256, None),
        Err(Error::SizeOverflow { .. })
    ));
}

#[test]
fn attention_validation_errors() {
    let shape = AttentionShape {
        batch: 1,
        q_len: 2,
        kv_len: 3,
        n_heads: 4,
        n_kv_heads: 2,
        head_dim: 8,
    };
    let cfg = AttentionConfig::default();
    let (q, kv) = (vec![0.5f32; 64], vec![0.5f32; 48]);
    let run = |q: &[f32], k: &[f32], v: &[f32], shape, cfg| {
        let a = reference::attention(q, k, v, shape, cfg).map(|_| ());
        assert_eq!(a, reference::attention_f64(q, k, v, shape, cfg).map(|_| ()));
        assert_eq!(a, reference::attention_naive(q, k, v, shape, cfg).map(|_| ()));
        a
    };
    assert!(run(&q, &kv, &kv, shape, cfg).is_ok());
    assert!(is_invalid_shape(run(
        &q,
        &kv,
        &kv,
        AttentionShape { n_kv_heads: 3, ..shape },
        cfg
    )));
    for zero in [
        AttentionShape { batch: 0, ..shape },
        AttentionShape { q_len: 0, ..shape },
        AttentionShape { kv_len: 0, ..shape },
        AttentionShape { n_heads: 0, ..shape },
        AttentionShape { n_kv_heads: 0, ..shape },
        AttentionShape { head_dim: 0, ..shape },
    ] {
        assert!(is_invalid_shape(run(&q, &kv, &kv, zero, cfg)), "{zero:?}");
    }
    assert!(is_shape_mismatch(run(&q[1..], &kv, &kv, shape, cfg), "q"));
    assert!(is_shape_mismatch(run(&q, &kv[1..], &kv, shape, cfg), "k"));
    assert!(is_shape_mismatch(run(&q, &kv, &kv[1..], shape, cfg), "v"));
    for scale in [f32::NAN, f32::INFINITY] {
        assert!(is_invalid_arg(run(
            &q,
            &kv,
            &kv,
            shape,
            AttentionConfig {
                softmax_scale: Some(scale),
                ..cfg
            }
        )));
    }
}

#[test]
fn gemm_validation_errors() {
    let shape = GemmShape { m: 2, n: 3, k: 4 };
    let cfg = GemmConfig::default();
    let (a, b, c) = (vec![bf16::ONE; 8], vec![bf16::ONE; 12], vec![bf16::ONE; 6]);
    let run = |a: &[bf16], b: &[bf16], c: &[bf16], shape, cfg| {
        let r = reference::gemm(a, b, c, shape, cfg).map(|_| ());
        assert_eq!(r, reference::gemm_f64(a, b, c, shape, cfg).map(|_| ()));
        assert_eq!(r, reference::gemm_naive(a, b, c, shape, cfg).map(|_| ()));
        assert_eq!(r, reference::gemm_abs_bound(a, b, c, shape, cfg).map(|_| ()));
        r
    };
    assert!(run(&a, &b, &c, shape, cfg).is_ok());
    for zero in [
        GemmShape { m: 0, ..shape },
        GemmShape { n: 0, ..shape },
        GemmShape { k: 0, ..shape },
    ] {
        assert!(is_invalid_shape(run(&a, &b, &c, zero, cfg)));
    }
    assert!(is_shape_mismatch(run(&a[1..], &b, &c, shape, cfg), "a"));
    assert!(is_shape_mismatch(run(&a, &b[1..], &c, shape, cfg), "b"));
    assert!(is_shape_mismatch(run(&a, &b, &[], shape, cfg), "c"));
    assert!(is_invalid_arg(run(
        &a,
        &b,
        &c,
        shape,
        GemmConfig { alpha: f32::NAN, ..cfg }
    )));
    assert!(is_invalid_arg(run(
        &a,
        &b,
        &c,
        shape,
        GemmConfig {
            beta: f32::INFINITY,
            ..cfg
        }
    )));
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
