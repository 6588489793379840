//! The CPU path of every op against candle-nn's own implementation of the same math, on random inputs
//! from fixed seeds, at shapes that are not multiples of anything: `rms_norm` against
//! `candle_nn::ops::rms_norm`, `rope` against `rope_thd` (half-split) and `rope_i` (interleaved, on the
//! transposed layout), `swiglu` against `silu(gate) * up`, `attention` against a softmax attention built
//! from candle ops (GQA by repeating the kv heads, the bottom-right causal mask and a sliding window as
//! additive masks). f32 within a few ulps of candle's f32. bf16 within two bf16 ulps: candle's bf16
//! `rms_norm` rounds the RMS itself to bf16 and then divides and multiplies in bf16, where PyTorch (and
//! llama-kernels' `MatchTorch`) rounds twice from f32, and its bf16 `silu` rounds its steps in bf16.
//! llama-kernels' single-rounding `Rounding::Once` RMSNorm is checked to one bf16 ulp of candle's f32
//! result on the same (bf16) inputs.

use candle_core::{DType, Device, Tensor, D};
use llama_kernels::reference::{random_vec, rope_inv_freq};
use llama_kernels::{AttentionConfig, RmsNormConfig, RopeConfig, RopeLayout, Rounding};
use llama_kernels_candle::{attention, rms_norm, rope, swiglu, RmsNorm};

fn tensor(len: usize, seed: u64, scale: f32, shape: &[usize]) -> Tensor {
    Tensor::from_vec(random_vec::<f32>(len, seed, scale), shape, &Device::Cpu).unwrap()
}

/// max |a - b| over max(|b|, floor), as f32 values.
fn rel_err(a: &Tensor, b: &Tensor, floor: f32) -> f32 {
    let a: Vec<f32> = a
        .to_dtype(DType::F32)
        .unwrap()
        .flatten_all()
        .unwrap()
        .to_vec1()
        .unwrap();
    let b: Vec<f32> = b
        .to_dtype(DType::F32)
        .unwrap()
        .flatten_all()
        .unwrap()
        .to_vec1()
        .unwrap();
    assert_eq!(a.len(), b.len());
    a.iter()
        .zip(&b)
        .map(|(x, y)| (x - y).abs() / y.abs().max(floor))
        .fold(0.0, f32::max)
}

#[test]
fn rms_norm_matches_candle_nn() {
    for (rows, hidden) in [(3usize, 72usize), (5, 4096), (1, 33)] {
        let x = tensor(rows * hidden, hidden as u64, 2.0, &[rows, hidden]);
        let w = (tensor(hidden, 7, 0.2, &[hidden]) + 1.0).unwrap();
        let ours = rms_norm(&x, &w, 1e-5).unwrap();
        let theirs = candle_nn::ops::rms_norm(&x, &w, 1e-5).unwrap();
        assert!(rel_err(&ours, &theirs, 1e-3) < 1e-5, "f32 {rows}x{hidden}");
        let (xb, wb) = (x.to_dtype(DType::BF16).unwrap(), w.to_dtype(DType::BF16).unwrap());
        let ours = rms_norm(&xb, &wb, 1e-5).unwrap();
        let theirs = candle_nn::ops::rms_norm(&xb, &wb, 1e-5).unwrap();
        assert_eq!(ours.dtype(), DType::BF16);
        assert!(rel_err(&ours, &theirs, 1e-2) <= 2.0f32.powi(-6), "bf16 {rows}x{hidden}");
        // The single-rounding mode through the op struct, within one ulp of the f32 result.
        let once = RmsNorm {
            cfg: RmsNormConfig {
                eps: 1e-5,
                rounding: Rounding::Once,
            },
        };
        let ours = xb.apply_op2_no_bwd(&wb, &once).unwrap();
        let f32_ref = candle_nn::ops::rms_norm(
            &xb.to_dtype(DType::F32).unwrap(),
            &wb.to_dtype(DType::F32).unwrap(),
            1e-5,
        )
        .unwrap();
        assert!(
            rel_err(&ours, &f32_ref, 1e-2) <= 2.0f32.powi(-8),
            "bf16 once {rows}x{hidden}"
        );
    }
    // Batched leading dims and a shape error.
    let x = tensor(2 * 3 * 16, 1, 1.0, &[2, 3, 16]);
    let w = tensor(16, 2, 1.0, &[16]);
    assert_eq!(rms_norm(&x, &w, 1e-6).unwrap().dims(), &[2, 3, 16]);
    assert!(rms_norm(&x, &tensor(8, 2, 1.0, &[8]), 1e-6).is_err());
    assert!(
        rms_norm(&x.transpose(0, 1).unwrap(), &w, 1e-6).is_err(),
        "non-contiguous x"
    );
}

#[test]
fn swiglu_matches_silu_times_up() {
    let (rows, d) = (7usize, 100usize);
    let g = tensor(rows * d, 3, 4.0, &[rows, d]);
    let u = tensor(rows * d, 4, 2.0, &[rows, d]);
    let ours = swiglu(&g, &u).unwrap();
    let theirs = (candle_nn::ops::silu(&g).unwrap() * &u).unwrap();
    assert!(rel_err(&ours, &theirs, 1e-3) < 1e-5);
    let (gb, ub) = (g.to_dtype(DType::BF16).unwrap(), u.to_dtype(DType::BF16).unwrap());
    let ours = swiglu(&gb, &ub).unwrap();
    let theirs = (candle_nn::ops::silu(&gb).unwrap() * &ub).unwrap();
    assert!(rel_err(&ours, &theirs, 1e-2) <= 2.0f32.powi(-6));
}

/// cos and sin `(t, d/2)` at `positions` from llama-kernels' own f32 table, the f32 angle as the kernels
/// take it: candle-nn's rope gets the same angles.
fn cos_sin(positions: &[i32], cfg: RopeConfig) -> (Tensor, Tensor) {
    let inv_freq = rope_inv_freq(cfg.rotary_dim, cfg.theta, cfg.scaling).unwrap();
    let angles: Vec<f32> = positions
        .iter()
        .flat_map(|&p| inv_freq.iter().map(move |&f| p as f32 * f))
        .collect();
    let t = Tensor::from_vec(angles, (positions.len(), inv_freq.len()), &Device::Cpu).unwrap();
    (t.cos().unwrap(), t.sin().unwrap())
}

#[test]
fn rope_matches_candle_nn_in_both_layouts() {
    let (b, t, h, d) = (2usize, 5usize, 3usize, 64usize);
    let positions: Vec<i32> = (0..t as i32).map(|p| 3 * p + 1000).collect();
    let pos = Tensor::from_vec(positions.clone(), t, &Device::Cpu).unwrap();
    let x = tensor(b * t * h * d, 9, 1.0, &[b, t, h, d]);
    for layout in [RopeLayout::HalfSplit, RopeLayout::Interleaved] {
        let cfg = RopeConfig {
            theta: 500000.0,
            rotary_dim: d,
            layout,
            scaling: None,
        };
        let (cos, sin) = cos_sin(&positions, cfg);
        let ours = rope(&x, &pos, cfg).unwrap();
        let theirs = match layout {
            RopeLayout::HalfSplit => candle_nn::rotary_emb::rope_thd(&x, &cos, &sin).unwrap(),
            RopeLayout::Interleaved => {
                let xt = x.transpose(1, 2).unwrap().contiguous().unwrap(); // (b, h, t, d)
                let r = candle_nn::rotary_emb::rope_i(&xt, &cos, &sin).unwrap();
                r.transpose(1, 2).unwrap().contiguous().unwrap()
            }
        };
        // Both use f32 cos/sin of the same f32 angle; they differ only in the f32 rotation's rounding.
        assert!(rel_err(&ours, &theirs, 1e-2) < 1e-5, "{layout:?}");
    }
    // Per-token positions (b, t) and a dtype error.
    let pos_bt = Tensor::from_vec([positions.clone(), positions].concat(), (b, t), &Device::Cpu).unwrap();
    let cfg = RopeConfig {
        theta: 10000.0,
        rotary_dim: d,
        layout: RopeLayout::HalfSplit,
        scaling: None,
    };
    let a = rope(&x, &pos_bt, cfg).unwrap();
    let c = rope(&x, &pos_bt.get(0).unwrap(), cfg).unwrap();
    assert_eq!(rel_err(&a, &c, 1.0), 0.0, "(t,) positions are shared by the batch");
    assert!(rope(&x, &pos_bt.to_dtype(DType::U32).unwrap(), cfg).is_err());
}

/// Softmax attention from candle ops: q (b, tq, h, d), k, v (b, tk, hk, d); bottom-right causal and an
/// optional left window as an additive -inf mask.
fn candle_attention(q: &Tensor, k: &Tensor, v: &Tensor, causal: bool, window_left: Option<usize>) -> Tensor {
    let (b, tq, h, d) = q.dims4().unwrap();
    let (_, tk, hk, _) = k.dims4().unwrap();
    let g = h / hk;
    let rep = |x: &Tensor| {
        // (b, tk, hk, d) -> (b, h, tk, d), each kv head repeated for its g query heads
        let x = x.transpose(1, 2).unwrap(); // (b, hk, tk, d)
        let x = x.unsqueeze(2).unwrap().expand((b, hk, g, tk, d)).unwrap();
        x.reshape((b, h, tk, d)).unwrap()
    };
    let qt = q.transpose(1, 2).unwrap().contiguous().unwrap();
    let (kt, vt) = (rep(k).contiguous().unwrap(), rep(v).contiguous().unwrap());
    let scores = (qt.matmul(&kt.t().unwrap()).unwrap() * (1.0 / (d as f64).sqrt())).unwrap();
    let mask: Vec<f32> = (0..tq)
        .flat_map(|i| {
            (0..tk).map(move |j| {
                let diag = tk as i64 - tq as i64 + i as i64;
                let j = j as i64;
                let hidden = (causal && j > diag) || window_left.is_some_and(|w| j < diag - w as i64);
                if hidden {
                    f32::NEG_INFINITY
                } else {
                    0.0
                }
            })
        })
        .collect();
    let mask = Tensor::from_vec(mask, (tq, tk), &Device::Cpu).unwrap();
    let p = candle_nn::ops::softmax_last_dim(&scores.broadcast_add(&mask).unwrap()).unwrap();
    p.matmul(&vt).unwrap().transpose(1, 2).unwrap().contiguous().unwrap()
}

#[test]
fn attention_matches_a_candle_softmax_attention() {
    for (b, tq, tk, h, hk, d, causal, window) in [
        (2usize, 5usize, 5usize, 4usize, 2usize, 64usize, true, None),
        (1, 3, 40, 6, 2, 72, true, Some(9)), // a KV cache: queries at the end
        (2, 7, 11, 2, 2, 32, false, None),
    ] {
        let q = tensor(b * tq * h * d, 1, 1.0, &[b, tq, h, d]);
        let k = tensor(b * tk * hk * d, 2, 1.0, &[b, tk, hk, d]);
        let v = tensor(b * tk * hk * d, 3, 1.0, &[b, tk, hk, d]);
        let cfg = AttentionConfig {
            causal,
            window_left: window,
            ..AttentionConfig::default()
        };
        let ours = attention(&q, &k, &v, cfg).unwrap();
        let theirs = candle_attention(&q, &k, &v, causal, window);
        assert_eq!(ours.dims(), q.dims());
        assert!(
            rel_err(&ours, &theirs, 1e-2) < 1e-4,
            "b {b} tq {tq} tk {tk} h {h}/{hk} d {d}"
        );
    }
    // Shapes that do not fit, and an unsupported head dim.
    let q = tensor(2 * 4 * 12, 1, 1.0, &[1, 2, 4, 12]);
    assert!(
        attention(&q, &q, &q, AttentionConfig::default()).is_err(),
        "head_dim 12"
    );
    let q = tensor(2 * 4 * 16, 1, 1.0, &[1, 2, 4, 16]);
    let k = tensor(2 * 3 * 16, 1, 1.0, &[1, 2, 3, 16]);
    assert!(
        attention(&q, &k, &k, AttentionConfig::default()).is_err(),
        "4 heads over 3 kv heads"
    );
    let s = q.sum_keepdim(D::Minus1).unwrap();
    assert!(attention(&s, &s, &s, AttentionConfig::default()).is_err());
}
