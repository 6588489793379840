//! Attention: the direct softmax formula, convexity, causality, GQA, masked rows, the 2x rule.

use super::*;

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
                cfg: AttentionConfig {
                    causal,
                    softmax_scale,
                    ..AttentionConfig::default()
                },
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
    #![proptest_config(common::seed::config(CASES))]

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
            check(reference::check_2x_rule(T::DTYPE, &to_f64_vec(&o), &to_f64_vec(&naive), &o64, 1e-5))?;
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
            ..AttentionConfig::default()
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
