//! RoPE: pair norms, relative positions, rounding points, layouts, partial rotary, frequency tables.

use super::*;

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

proptest! {
    #![proptest_config(common::seed::config(CASES))]

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
