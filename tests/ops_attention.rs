//! Attention on every backend against the reference, and every error path of `ops::attention`.
//!
//! Kernel tests draw shapes that straddle the tiles (q_len and kv_len of 1, odd, around 16/32/64), GQA
//! and MQA head counts, every head-dim bucket (8..=256 in steps of 8), causal with q_len < kv_len (KV
//! cache), q_len > kv_len (rows that see no key) and non-causal. Outputs start poisoned. f32 is checked
//! tightly against the reference (which keeps P unrounded, as the kernel does); f16/bf16 tightly against
//! the same-dtype reference and with FlashAttention's 2x rule against the f64 oracle. LSE is checked in
//! f32 (equal -inf for rows that see no key).

mod common;

use half::{bf16, f16};
use llama_kernels::backend::{Backend, DeviceValue, EmuBackend};
use llama_kernels::ops::attention::{attention, attention_kv_cache, attention_with_lse};
use llama_kernels::reference::{self, check_2x_rule, check_close, random_vec, to_f64_vec, Tolerance};
use llama_kernels::{AttentionConfig, AttentionShape, DType, Elem, Error};
use proptest::prelude::*;

fn seq_len() -> impl Strategy<Value = usize> {
    prop_oneof![
        Just(1usize),
        2usize..20,
        prop::sample::select(vec![31usize, 32, 33, 63, 65, 70])
    ]
}

fn case(max_head_dim: usize) -> impl Strategy<Value = (AttentionShape, AttentionConfig, u64)> {
    let heads = prop::sample::select(vec![(1usize, 1usize), (2, 1), (4, 2), (3, 3), (6, 2)]);
    (
        1usize..=2,
        seq_len(),
        seq_len(),
        heads,
        1..=max_head_dim / 8,
        any::<bool>(),
        prop::sample::select(vec![None, Some(0.3f32)]),
        any::<u64>(),
    )
        .prop_map(
            |(batch, q_len, kv_len, (n_heads, n_kv_heads), hd8, causal, softmax_scale, seed)| {
                let shape = AttentionShape {
                    batch,
                    q_len,
                    kv_len,
                    n_heads,
                    n_kv_heads,
                    head_dim: hd8 * 8,
                };
                (shape, AttentionConfig { causal, softmax_scale }, seed)
            },
        )
}

/// Runs attention (with LSE) on `backend` and checks O and LSE; `Err` names the case.
fn run_case<T: Elem + DeviceValue, B: Backend>(
    backend: &B,
    shape: AttentionShape,
    cfg: AttentionConfig,
    seed: u64,
) -> Result<(), String> {
    let s = shape;
    let q_n = s.batch * s.q_len * s.n_heads * s.head_dim;
    let kv_n = s.batch * s.kv_len * s.n_kv_heads * s.head_dim;
    // Scale 2 gives peaked softmax rows (scores of order ±10), which exercises the online rescaling.
    let q = random_vec::<T>(q_n, seed, 2.0);
    let k = random_vec::<T>(kv_n, seed ^ 0x11, 2.0);
    let v = random_vec::<T>(kv_n, seed ^ 0x22, 1.0);
    let name = format!("{shape:?} {cfg:?} on {}", backend.name());
    let err = |e: Error| format!("{name}: {e}");
    let (q_d, k_d, v_d) = (
        backend.upload(&q).map_err(err)?,
        backend.upload(&k).map_err(err)?,
        backend.upload(&v).map_err(err)?,
    );
    let mut o_d = backend.alloc_poisoned::<T>(q_n).map_err(err)?;
    let mut lse_d = backend
        .alloc_poisoned::<f32>(s.batch * s.n_heads * s.q_len)
        .map_err(err)?;
    attention_with_lse(backend, &q_d, &k_d, &v_d, &mut o_d, &mut lse_d, shape, cfg).map_err(err)?;
    let o = to_f64_vec(&backend.download(&o_d).map_err(err)?);
    let lse: Vec<f64> = backend
        .download(&lse_d)
        .map_err(err)?
        .iter()
        .map(|&x| x as f64)
        .collect();

    let (o_ref, lse_ref) = reference::attention(&q, &k, &v, shape, cfg).map_err(err)?;
    let lse_ref: Vec<f64> = lse_ref.iter().map(|&x| x as f64).collect();
    // f32: the kernel's own f32 error over head_dim-long dots and kv_len-long sums, relative to values
    // of order 1: a few hundred ulps of slack at most.
    let tol = match T::DTYPE {
        DType::F32 => Tolerance::new(DType::F32, 2e-5, 1e-4),
        _ => Tolerance::for_elem::<T>(),
    };
    tol.check(&o, &to_f64_vec(&o_ref))
        .map_err(|e| format!("{name}: o: {e}"))?;
    check_close(&lse, &lse_ref, 1e-4, 1e-5).map_err(|e| format!("{name}: lse: {e}"))?;
    if T::DTYPE != DType::F32 {
        let (oracle, _) = reference::attention_f64(&q, &k, &v, shape, cfg).map_err(err)?;
        let naive = to_f64_vec(&reference::attention_naive(&q, &k, &v, shape, cfg).map_err(err)?);
        check_2x_rule(T::DTYPE, &o, &naive, &oracle, 1e-6).map_err(|e| format!("{name}: 2x rule: {e}"))?;
    }
    Ok(())
}

fn random_shapes<T: Elem + DeviceValue, B: Backend>(backend: &B, cases: u32, max_head_dim: usize) {
    common::run_cases(cases, case(max_head_dim), |(shape, cfg, seed)| {
        run_case::<T, B>(backend, shape, cfg, seed)
    });
}

fn attention_f32_random<B: Backend>(backend: &B) {
    random_shapes::<f32, B>(backend, 16, 256);
}
fn attention_f16_random<B: Backend>(backend: &B) {
    random_shapes::<f16, B>(backend, 12, 128);
}
fn attention_bf16_random<B: Backend>(backend: &B) {
    random_shapes::<bf16, B>(backend, 12, 256);
}

/// The LLaMA shapes: prefill into a KV cache and single-token decode, GQA 4:1, head_dim 128, every dtype.
fn attention_llama_prefill_and_decode<B: Backend>(backend: &B) {
    let prefill = AttentionShape {
        batch: 1,
        q_len: 37,
        kv_len: 50,
        n_heads: 8,
        n_kv_heads: 2,
        head_dim: 128,
    };
    let decode = AttentionShape {
        q_len: 1,
        kv_len: 51,
        ..prefill
    };
    for shape in [prefill, decode] {
        let cfg = AttentionConfig::default();
        run_case::<bf16, B>(backend, shape, cfg, 3).unwrap();
        run_case::<f16, B>(backend, shape, cfg, 4).unwrap();
        run_case::<f32, B>(backend, shape, cfg, 5).unwrap();
    }
}

/// More queries than keys under the causal mask: the first q_len - kv_len rows see nothing, so O is 0
/// and LSE is -inf there (never NaN), and whole blocks of rows have no key tile at all.
fn attention_rows_without_keys<B: Backend>(backend: &B) {
    let shape = AttentionShape {
        batch: 1,
        q_len: 70,
        kv_len: 5,
        n_heads: 2,
        n_kv_heads: 1,
        head_dim: 64,
    };
    run_case::<bf16, B>(backend, shape, AttentionConfig::default(), 9).unwrap();
}

/// A preallocated batched KV cache (capacity 80) holding 45 valid rows per sequence, decode and a chunk of
/// prefill. The rows past kv_len are NaN: reading any of them would turn outputs into NaN.
fn attention_batched_kv_cache<B: Backend>(backend: &B) {
    let (batch, capacity, n_kv, hd) = (3usize, 80usize, 2usize, 64usize);
    for q_len in [1usize, 7] {
        let shape = AttentionShape {
            batch,
            q_len,
            kv_len: 45,
            n_heads: 4,
            n_kv_heads: n_kv,
            head_dim: hd,
        };
        let row = n_kv * hd;
        let fill = |seed: u64| -> Vec<bf16> {
            let valid = random_vec::<bf16>(batch * capacity * row, seed, 1.0);
            (0..batch * capacity * row)
                .map(|i| {
                    if (i / row) % capacity < shape.kv_len {
                        valid[i]
                    } else {
                        bf16::NAN
                    }
                })
                .collect()
        };
        let (k_cache, v_cache) = (fill(21), fill(22));
        let q = random_vec::<bf16>(batch * q_len * 4 * hd, 23, 1.0);
        let mut o_d = backend.alloc_poisoned::<bf16>(q.len()).unwrap();
        let (q_d, k_d, v_d) = (
            backend.upload(&q).unwrap(),
            backend.upload(&k_cache).unwrap(),
            backend.upload(&v_cache).unwrap(),
        );
        attention_kv_cache(
            backend,
            &q_d,
            &k_d,
            &v_d,
            &mut o_d,
            shape,
            capacity,
            AttentionConfig::default(),
        )
        .unwrap();
        let got = to_f64_vec(&backend.download(&o_d).unwrap());
        // The reference sees the compacted cache: the first kv_len rows of each sequence.
        let compact = |cache: &[bf16]| -> Vec<bf16> {
            cache
                .chunks(capacity * row)
                .flat_map(|seq| seq[..shape.kv_len * row].iter().copied())
                .collect()
        };
        let (want, _) = reference::attention(
            &q,
            &compact(&k_cache),
            &compact(&v_cache),
            shape,
            AttentionConfig::default(),
        )
        .unwrap();
        Tolerance::for_elem::<bf16>().check(&got, &to_f64_vec(&want)).unwrap();
    }
}
backend_tests!(attention_kv_cache_batched, attention_batched_kv_cache);

#[test]
fn attention_kv_cache_rejects_kv_len_past_the_capacity() {
    let backend = EmuBackend::new();
    let (q, k, v, mut o) = (
        buf(&backend, Q_N),
        buf(&backend, 24),
        buf(&backend, 24),
        buf(&backend, Q_N),
    );
    let e = attention_kv_cache(&backend, &q, &k, &v, &mut o, SHAPE, 3, AttentionConfig::default()).unwrap_err();
    assert!(matches!(e, Error::InvalidShape { .. }), "{e}");
    let e = attention_kv_cache(&backend, &q, &k, &v, &mut o, SHAPE, 5, AttentionConfig::default()).unwrap_err();
    assert!(matches!(e, Error::ShapeMismatch { tensor: "k", .. }), "{e}");
}

backend_tests!(attention_f32, attention_f32_random);
backend_tests!(attention_f16, attention_f16_random);
backend_tests!(attention_bf16, attention_bf16_random);
backend_tests!(attention_llama, attention_llama_prefill_and_decode);
backend_tests!(attention_empty_rows, attention_rows_without_keys);

// ---- error paths (on the emulator: validation happens before any launch, identically on CUDA) ----

const SHAPE: AttentionShape = AttentionShape {
    batch: 1,
    q_len: 3,
    kv_len: 4,
    n_heads: 2,
    n_kv_heads: 1,
    head_dim: 8,
};
const Q_N: usize = 48;
const KV_N: usize = 32;

fn buf(backend: &EmuBackend, len: usize) -> llama_kernels::backend::EmuBuffer<f32> {
    backend.upload(&random_vec::<f32>(len, len as u64, 1.0)).unwrap()
}

fn attend(backend: &EmuBackend, shape: AttentionShape, cfg: AttentionConfig, lens: [usize; 4]) -> Error {
    let (q, k, v, mut o) = (
        buf(backend, lens[0]),
        buf(backend, lens[1]),
        buf(backend, lens[2]),
        buf(backend, lens[3]),
    );
    attention(backend, &q, &k, &v, &mut o, shape, cfg).unwrap_err()
}

#[test]
fn attention_rejects_heads_not_divisible_by_kv_heads() {
    let backend = EmuBackend::new();
    let shape = AttentionShape {
        n_heads: 3,
        n_kv_heads: 2,
        ..SHAPE
    };
    let e = attend(&backend, shape, AttentionConfig::default(), [72, 64, 64, 72]);
    assert!(matches!(e, Error::InvalidShape { .. }), "{e}");
}

#[test]
fn attention_rejects_unsupported_head_dims() {
    let backend = EmuBackend::new();
    for head_dim in [12, 264] {
        let shape = AttentionShape { head_dim, ..SHAPE };
        let (q_n, kv_n) = (6 * head_dim, 4 * head_dim);
        let e = attend(&backend, shape, AttentionConfig::default(), [q_n, kv_n, kv_n, q_n]);
        assert!(matches!(e, Error::UnsupportedHeadDim { .. }), "{e}");
    }
}

#[test]
fn attention_rejects_wrong_lengths() {
    let backend = EmuBackend::new();
    let cfg = AttentionConfig::default();
    let e = attend(&backend, SHAPE, cfg, [Q_N - 1, KV_N, KV_N, Q_N]);
    assert!(matches!(e, Error::ShapeMismatch { tensor: "q", .. }), "{e}");
    let e = attend(&backend, SHAPE, cfg, [Q_N, KV_N, KV_N + 8, Q_N]);
    assert!(matches!(e, Error::ShapeMismatch { tensor: "v", .. }), "{e}");
    let e = attend(&backend, SHAPE, cfg, [Q_N, KV_N, KV_N, Q_N + 1]);
    assert!(matches!(e, Error::ShapeMismatch { tensor: "o", .. }), "{e}");
    let (q, k, v, mut o, mut lse) = (
        buf(&backend, Q_N),
        buf(&backend, KV_N),
        buf(&backend, KV_N),
        buf(&backend, Q_N),
        buf(&backend, 5),
    );
    let e = attention_with_lse(&backend, &q, &k, &v, &mut o, &mut lse, SHAPE, cfg).unwrap_err();
    assert!(matches!(e, Error::ShapeMismatch { tensor: "lse", .. }), "{e}");
}

#[test]
fn attention_rejects_bad_softmax_scales() {
    let backend = EmuBackend::new();
    for scale in [f32::NAN, f32::INFINITY, 0.0, f32::MAX] {
        let cfg = AttentionConfig {
            causal: true,
            softmax_scale: Some(scale),
        };
        let e = attend(&backend, SHAPE, cfg, [Q_N, KV_N, KV_N, Q_N]);
        assert!(matches!(e, Error::InvalidArgument { .. }), "{scale}: {e}");
    }
}

#[test]
fn attention_rejects_grids_past_the_limit() {
    let backend = EmuBackend::new();
    let shape = AttentionShape {
        n_heads: 70000,
        n_kv_heads: 1,
        ..SHAPE
    };
    let e = attend(&backend, shape, AttentionConfig::default(), [1, 1, 1, 1]);
    assert!(matches!(e, Error::SizeOverflow { .. }), "{e}");
    let shape = AttentionShape {
        q_len: usize::MAX / 4,
        ..SHAPE
    };
    let e = attend(&backend, shape, AttentionConfig::default(), [1, 1, 1, 1]);
    assert!(matches!(e, Error::SizeOverflow { .. }), "{e}");
    // Each query alone fits, but the packed GQA rows (q_len · n_heads / n_kv_heads) would not.
    let shape = AttentionShape {
        q_len: 1 << 30,
        n_heads: 4,
        n_kv_heads: 1,
        ..SHAPE
    };
    let e = attend(&backend, shape, AttentionConfig::default(), [1, 1, 1, 1]);
    assert!(matches!(e, Error::SizeOverflow { .. }), "{e}");
    // Within i32 but less than one tile from its end: the kernel's int indices would overflow.
    let shape = AttentionShape {
        kv_len: i32::MAX as usize - 10,
        ..SHAPE
    };
    let e = attend(&backend, shape, AttentionConfig::default(), [1, 1, 1, 1]);
    assert!(matches!(e, Error::SizeOverflow { .. }), "{e}");
}

#[test]
fn attention_rejects_misaligned_and_overlapping_outputs() {
    let backend = EmuBackend::new();
    let (q, k, v, o) = (
        buf(&backend, Q_N),
        buf(&backend, KV_N),
        buf(&backend, KV_N),
        buf(&backend, Q_N + 1),
    );
    // SAFETY: views the ops must reject before any launch: o 2 bytes into its allocation, o over q.
    let mut o_odd = unsafe { o.raw_view_mut(o.addr() + 2, Q_N) };
    let e = attention(&backend, &q, &k, &v, &mut o_odd, SHAPE, AttentionConfig::default()).unwrap_err();
    assert!(matches!(e, Error::Misaligned { tensor: "o", .. }), "{e}");
    // SAFETY: as above.
    let mut o_on_q = unsafe { q.raw_view_mut(q.addr(), Q_N) };
    let e = attention(&backend, &q, &k, &v, &mut o_on_q, SHAPE, AttentionConfig::default()).unwrap_err();
    assert!(matches!(e, Error::Aliasing { .. }), "{e}");
    let mut o_ok = buf(&backend, Q_N);
    // SAFETY: as above (lse over k).
    let mut lse_on_k = unsafe { k.raw_view_mut(k.addr(), 6) };
    let e = attention_with_lse(
        &backend,
        &q,
        &k,
        &v,
        &mut o_ok,
        &mut lse_on_k,
        SHAPE,
        AttentionConfig::default(),
    )
    .unwrap_err();
    assert!(matches!(e, Error::Aliasing { .. }), "{e}");
}

#[test]
fn attention_rejects_buffers_of_another_device() {
    let backend = EmuBackend::new();
    let other = EmuBackend::new();
    let (q, v, mut o) = (buf(&backend, Q_N), buf(&backend, KV_N), buf(&backend, Q_N));
    let k = buf(&other, KV_N);
    let e = attention(&backend, &q, &k, &v, &mut o, SHAPE, AttentionConfig::default()).unwrap_err();
    assert!(matches!(e, Error::ContextMismatch { tensor: "k", .. }), "{e}");
}
