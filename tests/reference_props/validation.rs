//! Every validation error path of the reference returns the documented variant and never panics.

use super::*;

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
    // Zero sizes are empty outputs; the lengths still have to match them.
    assert_eq!(
        reference::rms_norm(&[], &w, RmsNormShape { rows: 0, hidden: 3 }, cfg),
        Ok(vec![])
    );
    assert_eq!(
        reference::rms_norm_f64::<f32>(&[], &[], RmsNormShape { rows: 2, hidden: 0 }, cfg),
        Ok(vec![])
    );
    assert!(is_shape_mismatch(
        reference::rms_norm(&x, &w, RmsNormShape { rows: 0, hidden: 3 }, cfg),
        "x"
    ));
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
    // Zero tokens or heads: empty outputs (lengths must match); a zero head_dim is invalid.
    assert!(run(&[], &[], &[], RopeShape { tokens: 0, ..shape }, cfg).is_ok());
    assert!(run(&q, &[], &pos, RopeShape { n_kv_heads: 0, ..shape }, cfg).is_ok());
    assert!(is_shape_mismatch(
        run(&q, &k, &pos, RopeShape { n_kv_heads: 0, ..shape }, cfg),
        "k"
    ));
    assert!(is_invalid_shape(run(
        &[],
        &[],
        &pos,
        RopeShape { head_dim: 0, ..shape },
        cfg
    )));
    assert!(is_shape_mismatch(run(&q[1..], &k, &pos, shape, cfg), "q"));
    assert!(is_shape_mismatch(run(&q, &k[1..], &pos, shape, cfg), "k"));
    assert!(is_shape_mismatch(run(&q, &k, &pos[..1], shape, cfg), "positions"));
    // Any i32 position is valid (a negative one rotates backwards).
    assert!(run(&q, &k, &[0, -1], shape, cfg).is_ok());
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
    assert_eq!(
        reference::swiglu::<f16>(&[], &[], SwigluShape { rows: 2, d: 0 }, Rounding::Once),
        Ok(vec![])
    );
    assert_eq!(
        reference::swiglu_packed::<f16>(&[], SwigluShape { rows: 0, d: 3 }, Rounding::Once),
        Ok(vec![])
    );
    assert!(is_shape_mismatch(
        reference::swiglu(&v, &v, SwigluShape { rows: 2, d: 0 }, Rounding::Once),
        "gate"
    ));
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
    // batch, q_len, kv_len may be zero (empty outputs; kv_len = 0: o = 0, lse = -inf); heads and
    // head_dim may not.
    assert!(run(&[], &[], &[], AttentionShape { batch: 0, ..shape }, cfg).is_ok());
    assert!(run(&[], &kv, &kv, AttentionShape { q_len: 0, ..shape }, cfg).is_ok());
    let (o, lse) = reference::attention(&q, &[], &[], AttentionShape { kv_len: 0, ..shape }, cfg).unwrap();
    assert!(o.iter().all(|v| v.to_bits() == 0) && lse.iter().all(|l| *l == f32::NEG_INFINITY));
    for zero in [
        AttentionShape { n_heads: 0, ..shape },
        AttentionShape { n_kv_heads: 0, ..shape },
        AttentionShape { head_dim: 0, ..shape },
    ] {
        assert!(is_invalid_shape(run(&[], &[], &[], zero, cfg)), "{zero:?}");
    }
    assert!(is_shape_mismatch(run(&q[1..], &kv, &kv, shape, cfg), "q"));
    assert!(is_shape_mismatch(run(&q, &kv[1..], &kv, shape, cfg), "k"));
    assert!(is_shape_mismatch(run(&q, &kv, &kv[1..], shape, cfg), "v"));
    for scale in [f32::NAN, f32::INFINITY, 0.0, -0.0, 3e38] {
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
    // Zero sizes: m or n gives an empty C, k gives C = beta·C (alpha·0 when beta == 0: +0, or -0 for a
    // negative alpha).
    assert!(run(&[], &b, &[], GemmShape { m: 0, ..shape }, cfg).is_ok());
    assert!(run(&a, &[], &[], GemmShape { n: 0, ..shape }, cfg).is_ok());
    let k0 = GemmShape { k: 0, ..shape };
    let beta = GemmConfig { beta: -0.5, ..cfg };
    assert_eq!(
        reference::gemm(&[], &[], &c, k0, beta).unwrap(),
        vec![bf16::from_f32(-0.5); 6]
    );
    let neg_alpha = GemmConfig { alpha: -1.0, ..cfg };
    let zeros = reference::gemm(&[], &[], &c, k0, neg_alpha).unwrap();
    assert!(
        zeros.iter().all(|z| z.to_bits() == bf16::NEG_ZERO.to_bits()),
        "{zeros:?}"
    );
    assert!(is_shape_mismatch(run(&a, &b, &c, k0, cfg), "a"));
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
