//! A fused QKV projection's output feeds RoPE and attention with no copy (issue 11, item 2): the GEMM
//! writes `qkv: (tokens, n_heads + 2·n_kv_heads, head_dim)`, `rope_qkv` rotates its q and k heads in place,
//! and `attention_strided` reads q, k and v as three views of it. The result is bit for bit that of the
//! same kernels on separate contiguous q, k and v (split on the host), and within the reference's bound.
//! Also a KV cache laid out as `(batch, capacity, heads, head_dim)` read at its own batch stride, and the
//! strided error paths.

mod common;

use half::bf16;
use llama_kernels::backend::{Backend, EmuBackend};
use llama_kernels::ops::attention::{attention, attention_strided};
use llama_kernels::ops::gemm::gemm;
use llama_kernels::ops::rope::{rope, rope_qkv, upload_inv_freq};
use llama_kernels::reference::{self, random_vec};
use llama_kernels::*;

fn bits(v: &[bf16]) -> Vec<u16> {
    v.iter().map(|x| x.to_bits()).collect()
}

/// Splits `qkv: (batch·seq, heads, hd)` into contiguous q, k, v.
fn split(qkv: &[bf16], rows: usize, (nh, nkv, hd): (usize, usize, usize)) -> [Vec<bf16>; 3] {
    let width = (nh + 2 * nkv) * hd;
    let part = |from: usize, heads: usize| -> Vec<bf16> {
        (0..rows)
            .flat_map(|r| qkv[r * width + from * hd..][..heads * hd].to_vec())
            .collect()
    };
    [part(0, nh), part(nh, nkv), part(nh + nkv, nkv)]
}

#[test]
fn fused_qkv_feeds_rope_and_attention_without_a_copy() {
    let backend = EmuBackend::new();
    for (batch, seq, nh, nkv, hd, causal) in [
        (1usize, 37usize, 4usize, 2usize, 64usize, true),
        (2, 19, 6, 2, 128, false),
        (1, 5, 2, 2, 32, true),
    ] {
        let tokens = batch * seq;
        let width = (nh + 2 * nkv) * hd;
        let dmodel = 96;
        // qkv = x · W_qkvᵀ
        let x = random_vec::<bf16>(tokens * dmodel, 1, 1.0);
        let w = random_vec::<bf16>(width * dmodel, 2, 0.2);
        let (x_d, w_d) = (backend.upload(&x).unwrap(), backend.upload(&w).unwrap());
        let mut qkv = backend.alloc_poisoned::<bf16>(tokens * width).unwrap();
        let nt = GemmConfig {
            trans_b: true,
            ..GemmConfig::DEFAULT
        };
        gemm(
            &backend,
            &x_d,
            &w_d,
            &mut qkv,
            GemmShape {
                m: tokens,
                n: width,
                k: dmodel,
            },
            nt,
        )
        .unwrap();
        let qkv_host = backend.download(&qkv).unwrap();

        let positions: Vec<i32> = (0..batch).flat_map(|_| (0..seq as i32).map(|p| p + 3)).collect();
        let pos_d = backend.upload(&positions).unwrap();
        let rcfg = RopeConfig {
            theta: 500000.0,
            rotary_dim: hd,
            layout: RopeLayout::HalfSplit,
            scaling: Some(Llama3Scaling::LLAMA_3_1),
        };
        let inv_freq = upload_inv_freq(&backend, &rcfg).unwrap();
        let rshape = RopeShape {
            tokens,
            n_heads: nh,
            n_kv_heads: nkv,
            head_dim: hd,
        };
        let shape = AttentionShape {
            batch,
            q_len: seq,
            kv_len: seq,
            n_heads: nh,
            n_kv_heads: nkv,
            head_dim: hd,
        };
        let acfg = AttentionConfig {
            causal,
            ..AttentionConfig::default()
        };

        // Fused: RoPE in place on qkv, attention on three views of it.
        rope_qkv(&backend, &mut qkv, &pos_d, &inv_freq, rshape, rcfg).unwrap();
        let layout = AttentionLayout::fused_qkv(shape);
        let [q0, k0, v0] = AttentionLayout::fused_qkv_offsets(shape);
        let span_q = layout.q.span(batch, seq, nh, hd).unwrap();
        let span_kv = layout.k.span(batch, seq, nkv, hd).unwrap();
        let mut o_fused = backend.alloc_poisoned::<bf16>(tokens * nh * hd).unwrap();
        {
            let q = backend.slice(&qkv, q0..q0 + span_q).unwrap();
            let k = backend.slice(&qkv, k0..k0 + span_kv).unwrap();
            let v = backend.slice(&qkv, v0..v0 + span_kv).unwrap();
            attention_strided(&backend, &q, &k, &v, &mut o_fused, shape, layout, acfg).unwrap();
        }
        let rotated = backend.download(&qkv).unwrap();

        // Unfused: split on the host, RoPE on q and k, attention on contiguous tensors.
        let [q, k, v] = split(&qkv_host, tokens, (nh, nkv, hd));
        let (mut q_d, mut k_d, v_d) = (
            backend.upload(&q).unwrap(),
            backend.upload(&k).unwrap(),
            backend.upload(&v).unwrap(),
        );
        rope(&backend, &mut q_d, Some(&mut k_d), &pos_d, &inv_freq, rshape, rcfg).unwrap();
        let mut o = backend.alloc_poisoned::<bf16>(tokens * nh * hd).unwrap();
        attention(&backend, &q_d, &k_d, &v_d, &mut o, shape, acfg).unwrap();

        let (q_rot, k_rot) = (backend.download(&q_d).unwrap(), backend.download(&k_d).unwrap());
        let [fq, fk, fv] = split(&rotated, tokens, (nh, nkv, hd));
        assert_eq!(bits(&fq), bits(&q_rot), "q rotated in place");
        assert_eq!(bits(&fk), bits(&k_rot), "k rotated in place");
        assert_eq!(bits(&fv), bits(&v), "v untouched");
        let got = backend.download(&o_fused).unwrap();
        assert_eq!(bits(&got), bits(&backend.download(&o).unwrap()), "{shape:?}");

        // And the reference, on the rotated tensors.
        let tiling = llama_kernels::ops::attention::plan(
            &backend,
            shape,
            DType::BF16,
            llama_kernels::ops::attention::SplitKv::Auto,
        )
        .unwrap()
        .tiling();
        let (want, _, slack) = reference::attention_tiled(&q_rot, &k_rot, &v, shape, acfg, tiling).unwrap();
        reference::Tolerance::for_elem::<bf16>()
            .check_with_slack(&reference::to_f64_vec(&got), &reference::to_f64_vec(&want), &slack)
            .unwrap();
    }
}

/// Strided views are checked: each buffer holds exactly its span; f16/bf16 strides are whole 16-byte
/// chunks; o may not overlap an input's span; an f32 call takes any element strides (v1).
#[test]
fn strided_attention_and_fused_rope_errors() {
    let backend = EmuBackend::new();
    let shape = AttentionShape {
        batch: 1,
        q_len: 4,
        kv_len: 4,
        n_heads: 2,
        n_kv_heads: 1,
        head_dim: 16,
    };
    let layout = AttentionLayout::fused_qkv(shape);
    let qkv = backend.upload(&random_vec::<bf16>(4 * 4 * 16, 3, 1.0)).unwrap();
    let mut o = backend.alloc_poisoned::<bf16>(4 * 2 * 16).unwrap();
    let cfg = AttentionConfig::default();
    let span_q = layout.q.span(1, 4, 2, 16).unwrap();
    let e = attention_strided(&backend, &qkv, &qkv, &qkv, &mut o, shape, layout, cfg);
    assert!(matches!(e, Err(Error::ShapeMismatch { tensor: "q", .. })), "{e:?}");
    let q = backend.slice(&qkv, 0..span_q).unwrap();
    let odd = AttentionLayout {
        q: HeadStrides { row: 63, ..layout.q },
        ..layout
    };
    let q_odd = backend.slice(&qkv, 0..odd.q.span(1, 4, 2, 16).unwrap()).unwrap();
    let kv = backend
        .slice(&qkv, 32..32 + layout.k.span(1, 4, 1, 16).unwrap())
        .unwrap();
    let e = attention_strided(&backend, &q_odd, &kv, &kv, &mut o, shape, odd, cfg);
    assert!(matches!(e, Err(Error::InvalidArgument { .. })), "{e:?}");
    attention_strided(&backend, &q, &kv, &kv, &mut o, shape, layout, cfg).unwrap();
    // SAFETY: a deliberately overlapping output view, to test the check; the emulator is memory-safe.
    let mut o_alias = unsafe { qkv.raw_view_mut(qkv.addr() + 2 * 16 * 2, 4 * 2 * 16) };
    let e = attention_strided(&backend, &q, &kv, &kv, &mut o_alias, shape, layout, cfg);
    assert!(matches!(e, Err(Error::Aliasing { .. })), "{e:?}");
    // f32 (v1) takes any element strides: rows 5 elements apart beyond the fused width, bit for bit the
    // contiguous call.
    let shape32 = AttentionShape { head_dim: 8, ..shape };
    let row = 4 * 8 + 5;
    let st = HeadStrides {
        batch: 4 * row,
        row,
        head: 8,
    };
    let l32 = AttentionLayout { q: st, k: st, v: st };
    let host = random_vec::<f32>(4 * row, 4, 1.0);
    let qkv32 = backend.upload(&host).unwrap();
    let [q0, k0, v0] = AttentionLayout::fused_qkv_offsets(shape32);
    let (sq, skv) = (st.span(1, 4, 2, 8).unwrap(), st.span(1, 4, 1, 8).unwrap());
    let mut o32 = backend.alloc_poisoned::<f32>(4 * 2 * 8).unwrap();
    let (q, k, v) = (
        backend.slice(&qkv32, q0..q0 + sq).unwrap(),
        backend.slice(&qkv32, k0..k0 + skv).unwrap(),
        backend.slice(&qkv32, v0..v0 + skv).unwrap(),
    );
    attention_strided(&backend, &q, &k, &v, &mut o32, shape32, l32, cfg).unwrap();
    let part =
        |from: usize, n: usize| -> Vec<f32> { (0..4).flat_map(|r| host[r * row + from..][..n].to_vec()).collect() };
    let (qc, kc, vc) = (
        backend.upload(&part(q0, 16)).unwrap(),
        backend.upload(&part(k0, 8)).unwrap(),
        backend.upload(&part(v0, 8)).unwrap(),
    );
    let mut oc = backend.alloc_poisoned::<f32>(4 * 2 * 8).unwrap();
    attention(&backend, &qc, &kc, &vc, &mut oc, shape32, cfg).unwrap();
    let as_bits = |v: Vec<f32>| v.iter().map(|x| x.to_bits()).collect::<Vec<_>>();
    assert_eq!(
        as_bits(backend.download(&o32).unwrap()),
        as_bits(backend.download(&oc).unwrap())
    );
    // rope_qkv: the buffer must be the whole fused tensor.
    let pos = backend.upload(&[0i32, 1, 2, 3]).unwrap();
    let rcfg = RopeConfig {
        theta: 10000.0,
        rotary_dim: 16,
        layout: RopeLayout::Interleaved,
        scaling: None,
    };
    let inv = upload_inv_freq(&backend, &rcfg).unwrap();
    let mut short = backend.upload(&random_vec::<bf16>(4 * 4 * 16 - 1, 5, 1.0)).unwrap();
    let rshape = RopeShape {
        tokens: 4,
        n_heads: 2,
        n_kv_heads: 1,
        head_dim: 16,
    };
    let e = rope_qkv(&backend, &mut short, &pos, &inv, rshape, rcfg);
    assert!(matches!(e, Err(Error::ShapeMismatch { tensor: "qkv", .. })), "{e:?}");
}
