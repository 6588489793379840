//! Zero-size tensors on every backend: as in every framework, an op whose output is empty is a no-op
//! (validated like any other call, nothing launched), and the two zero sizes that still mean something
//! compute it: GEMM with `k == 0` gives `C = beta·C` (`alpha·0` when `beta == 0`, C never read), and
//! attention with `kv_len == 0` gives `o = 0` and `lse = -inf` for every query.
//!
//! Sizes that describe the model rather than a tensor stay errors: attention's `n_heads`, `n_kv_heads`
//! and `head_dim`, RoPE's `head_dim` and `rotary_dim`.

mod common;

use half::bf16;
use llama_kernels::backend::{Backend, EmuBackend};
use llama_kernels::ops::{attention, gemm, rms_norm, rope, swiglu};
use llama_kernels::reference::{self, random_vec};
use llama_kernels::*;

fn empty<B: Backend>(backend: &B) -> B::Buffer<bf16> {
    backend.upload::<bf16>(&[]).unwrap()
}

fn filled<B: Backend>(backend: &B, len: usize, seed: u64) -> B::Buffer<bf16> {
    backend.upload(&random_vec::<bf16>(len, seed, 1.0)).unwrap()
}

fn bits(v: &[bf16]) -> Vec<u16> {
    v.iter().map(|x| x.to_bits()).collect()
}

/// RMSNorm, plain and fused, with no rows or an empty hidden size.
fn rms_norm_zero_sizes<B: Backend>(backend: &B) {
    let cfg = RmsNormConfig::default();
    for shape in [RmsNormShape { rows: 0, hidden: 8 }, RmsNormShape { rows: 3, hidden: 0 }] {
        let w = filled(backend, shape.hidden, 1);
        let (x, mut out, mut res) = (empty(backend), empty(backend), empty(backend));
        rms_norm::rms_norm(backend, &x, &w, &mut out, shape, cfg).unwrap();
        let mut x_mut = empty(backend);
        rms_norm::rms_norm_in_place(backend, &mut x_mut, &w, shape, cfg).unwrap();
        rms_norm::fused_add_rms_norm(backend, &x, &mut res, &w, &mut out, shape, cfg).unwrap();
        rms_norm::fused_add_rms_norm_in_place(backend, &mut x_mut, &mut res, &w, shape, cfg).unwrap();
        // The lengths must still match the (empty) shape.
        let x1 = filled(backend, 1, 2);
        let e = rms_norm::rms_norm(backend, &x1, &w, &mut out, shape, cfg).unwrap_err();
        assert!(matches!(e, Error::ShapeMismatch { tensor: "x", .. }), "{e}");
    }
}
backend_tests!(rms_norm_zero, rms_norm_zero_sizes);

/// SwiGLU, split and packed, with no rows or `d == 0`.
fn swiglu_zero_sizes<B: Backend>(backend: &B) {
    for shape in [SwigluShape { rows: 0, d: 5 }, SwigluShape { rows: 4, d: 0 }] {
        let (g, u, mut out) = (empty(backend), empty(backend), empty(backend));
        swiglu::swiglu(backend, &g, &u, &mut out, shape, Rounding::MatchTorch).unwrap();
        swiglu::swiglu_packed(backend, &g, &mut out, shape, Rounding::Once).unwrap();
        let g1 = filled(backend, 1, 3);
        let e = swiglu::swiglu(backend, &g1, &u, &mut out, shape, Rounding::Once).unwrap_err();
        assert!(matches!(e, Error::ShapeMismatch { tensor: "gate", .. }), "{e}");
    }
}
backend_tests!(swiglu_zero, swiglu_zero_sizes);

/// RoPE with no tokens is a no-op; with no kv heads it rotates q alone (as with `k = None`); a zero
/// `head_dim` is still an error.
fn rope_zero_sizes<B: Backend>(backend: &B) {
    let cfg = RopeConfig {
        theta: 10000.0,
        rotary_dim: 8,
        layout: RopeLayout::HalfSplit,
        scaling: None,
    };
    let table = rope::upload_inv_freq(backend, &cfg).unwrap();
    let no_tokens = RopeShape {
        tokens: 0,
        n_heads: 2,
        n_kv_heads: 1,
        head_dim: 8,
    };
    let (mut q, mut k) = (empty(backend), empty(backend));
    let pos = backend.upload::<i32>(&[]).unwrap();
    rope::rope(backend, &mut q, Some(&mut k), &pos, &table, no_tokens, cfg).unwrap();

    let no_kv = RopeShape {
        tokens: 3,
        n_kv_heads: 0,
        ..no_tokens
    };
    let q_host = random_vec::<bf16>(3 * 2 * 8, 4, 1.0);
    let positions = [0, 5, -2];
    let mut q = backend.upload(&q_host).unwrap();
    let pos = backend.upload(&positions).unwrap();
    rope::rope(backend, &mut q, Some(&mut k), &pos, &table, no_kv, cfg).unwrap();
    let (want, _) = reference::rope(&q_host, &[], &positions, no_kv, cfg).unwrap();
    reference::Tolerance::for_elem::<bf16>()
        .check(
            &reference::to_f64_vec(&backend.download(&q).unwrap()),
            &reference::to_f64_vec(&want),
        )
        .unwrap();

    let e = rope::rope(
        backend,
        &mut k,
        None::<&mut B::Buffer<bf16>>,
        &pos,
        &table,
        RopeShape { head_dim: 0, ..no_kv },
        cfg,
    )
    .unwrap_err();
    assert!(matches!(e, Error::InvalidShape { .. }), "{e}");
}
backend_tests!(rope_zero, rope_zero_sizes);

const ATTN: AttentionShape = AttentionShape {
    batch: 2,
    q_len: 3,
    kv_len: 5,
    n_heads: 4,
    n_kv_heads: 2,
    head_dim: 8,
};

/// Attention with no batch or no query is a no-op; with no key every query gets `o = +0`, `lse = -inf`
/// (o and lse start poisoned, so every element is written); zero heads or head_dim stay errors.
fn attention_zero_sizes<B: Backend>(backend: &B) {
    let cfg = AttentionConfig::default();
    let kv = filled(backend, 2 * 5 * 2 * 8, 5);
    for shape in [AttentionShape { batch: 0, ..ATTN }, AttentionShape { q_len: 0, ..ATTN }] {
        let (q, mut o) = (empty(backend), empty(backend));
        let (k, v) = if shape.batch == 0 {
            (empty(backend), empty(backend))
        } else {
            (filled(backend, 160, 6), filled(backend, 160, 7))
        };
        attention::attention(backend, &q, &k, &v, &mut o, shape, cfg).unwrap();
    }
    let no_keys = AttentionShape { kv_len: 0, ..ATTN };
    let q = filled(backend, 2 * 3 * 4 * 8, 8);
    for causal in [true, false] {
        let cfg = AttentionConfig { causal, ..cfg };
        let mut o = backend.alloc_poisoned::<bf16>(2 * 3 * 4 * 8).unwrap();
        let mut lse = backend.alloc_poisoned::<f32>(2 * 4 * 3).unwrap();
        let (k, v) = (empty(backend), empty(backend));
        attention::attention_with_lse(backend, &q, &k, &v, &mut o, &mut lse, no_keys, cfg).unwrap();
        assert!(backend.download(&o).unwrap().iter().all(|x| x.to_bits() == 0), "o = +0");
        assert!(
            backend.download(&lse).unwrap().iter().all(|l| *l == f32::NEG_INFINITY),
            "lse = -inf"
        );
        // The same through a KV cache whose first 0 rows count.
        let mut o = backend.alloc_poisoned::<bf16>(2 * 3 * 4 * 8).unwrap();
        let cache = AttentionShape { kv_len: 0, ..ATTN };
        attention::attention_kv_cache(backend, &q, &kv, &kv, &mut o, cache, 5, cfg).unwrap();
        assert!(
            backend.download(&o).unwrap().iter().all(|x| x.to_bits() == 0),
            "kv cache: o = +0"
        );
    }
    for shape in [
        AttentionShape { n_heads: 0, ..ATTN },
        AttentionShape { n_kv_heads: 0, ..ATTN },
        AttentionShape { head_dim: 0, ..ATTN },
    ] {
        let (q, k, v, mut o) = (empty(backend), empty(backend), empty(backend), empty(backend));
        let e = attention::attention(backend, &q, &k, &v, &mut o, shape, cfg).unwrap_err();
        assert!(matches!(e, Error::InvalidShape { .. }), "{shape:?}: {e}");
    }
}
backend_tests!(attention_zero, attention_zero_sizes);

/// GEMM with `m == 0` or `n == 0` is a no-op; `k == 0` is `C = beta·C`, and with `beta == 0` C is only
/// written (it starts poisoned) with `alpha·0`: +0, or -0 for a negative alpha, as the reference says.
fn gemm_zero_sizes<B: Backend>(backend: &B) {
    let shape = GemmShape { m: 5, n: 7, k: 3 };
    for zero in [GemmShape { m: 0, ..shape }, GemmShape { n: 0, ..shape }] {
        let a = filled(backend, zero.m * zero.k, 9);
        let b = filled(backend, zero.k * zero.n, 10);
        let mut c = empty(backend);
        gemm::gemm(backend, &a, &b, &mut c, zero, GemmConfig::default()).unwrap();
    }
    let k0 = GemmShape { k: 0, ..shape };
    let c_host = random_vec::<bf16>(35, 11, 1.0);
    for (alpha, beta) in [(1.0, 0.0), (-2.0, 0.0), (1.5, -0.75), (1.0, 1.0)] {
        for (trans_a, trans_b) in [(false, false), (true, true)] {
            let cfg = GemmConfig {
                trans_a,
                trans_b,
                alpha,
                beta,
                epilogue: llama_kernels::GemmEpilogue::Linear,
            };
            let (a, b) = (empty(backend), empty(backend));
            let mut c = if beta == 0.0 {
                backend.alloc_poisoned::<bf16>(35).unwrap()
            } else {
                backend.upload(&c_host).unwrap()
            };
            gemm::gemm(backend, &a, &b, &mut c, k0, cfg).unwrap();
            let want = reference::gemm::<bf16>(&[], &[], &c_host, k0, cfg).unwrap();
            assert_eq!(bits(&backend.download(&c).unwrap()), bits(&want), "{cfg:?}");
        }
    }
}
backend_tests!(gemm_zero, gemm_zero_sizes);

/// On the emulator: the no-op calls launch nothing, and the two meaningful zero sizes launch once each.
#[test]
fn zero_sizes_launch_nothing_unless_they_compute() {
    let backend = EmuBackend::new();
    rms_norm_zero_sizes(&backend);
    swiglu_zero_sizes(&backend);
    assert!(backend.take_metrics().is_empty(), "rms_norm and swiglu: no launch");
    let launched = |backend: &EmuBackend| {
        backend
            .take_metrics()
            .into_iter()
            .map(|(name, _)| name)
            .collect::<Vec<_>>()
    };
    rope_zero_sizes(&backend);
    assert_eq!(launched(&backend), ["rope_bf16"], "rope: only the call with tokens");
    gemm_zero_sizes(&backend);
    assert_eq!(launched(&backend).len(), 8, "gemm: the eight k == 0 calls");
    attention_zero_sizes(&backend);
    assert_eq!(launched(&backend).len(), 4, "attention: the four kv_len == 0 calls");
}
