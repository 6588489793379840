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
use llama_kernels::ops::attention::{
    self as ops_attention, attention, attention_kv_cache, attention_with_lse, attention_with_workspace, SplitKv,
    MAX_SPLITS,
};
use llama_kernels::reference::{self, check_2x_rule, check_close, random_vec, to_f64_vec, Tolerance};
use llama_kernels::{AttentionConfig, AttentionShape, DType, Elem, Error};
use proptest::prelude::*;

fn seq_len() -> impl Strategy<Value = usize> {
    prop_oneof![
        Just(1usize),
        2usize..20,
        prop::sample::select(vec![31usize, 32, 33, 63, 64, 65, 70, 127, 129])
    ]
}

/// A window side: unbounded, 0, small, or about a tile.
fn window_side() -> impl Strategy<Value = Option<usize>> {
    prop_oneof![
        3 => Just(None),
        1 => Just(Some(0usize)),
        1 => (1usize..8).prop_map(Some),
        1 => prop::sample::select(vec![31usize, 63, 64, 65]).prop_map(Some),
    ]
}

fn cfg_strategy() -> impl Strategy<Value = AttentionConfig> {
    (
        any::<bool>(),
        prop::sample::select(vec![None, Some(0.3f32)]),
        window_side(),
        window_side(),
        prop::sample::select(vec![None, None, Some(5.0f32), Some(30.0)]),
    )
        .prop_map(|(causal, softmax_scale, window_left, right, softcap)| AttentionConfig {
            causal,
            softmax_scale,
            window_left,
            window_right: if causal { None } else { right },
            softcap,
        })
}

fn case(max_head_dim: usize) -> impl Strategy<Value = (AttentionShape, AttentionConfig, u64)> {
    let heads = prop::sample::select(vec![(1usize, 1usize), (2, 1), (4, 2), (3, 3), (6, 2), (8, 1)]);
    (
        1usize..=2,
        seq_len(),
        seq_len(),
        heads,
        1..=max_head_dim / 8,
        cfg_strategy(),
        any::<u64>(),
    )
        .prop_map(|(batch, q_len, kv_len, (n_heads, n_kv_heads), hd8, cfg, seed)| {
            let shape = AttentionShape {
                batch,
                q_len,
                kv_len,
                n_heads,
                n_kv_heads,
                head_dim: hd8 * 8,
            };
            (shape, cfg, seed)
        })
}

/// Runs attention (with LSE) on `backend` and checks O and LSE; `Err` names the case.
fn run_case<T: Elem + DeviceValue, B: Backend>(
    backend: &B,
    shape: AttentionShape,
    cfg: AttentionConfig,
    seed: u64,
) -> Result<(), String> {
    run_case_split::<T, B>(backend, shape, cfg, seed, SplitKv::Auto).map(|_| ())
}

/// [`run_case`] through `attention_with_workspace` with `split`; returns (o, lse) as downloaded.
fn run_case_split<T: Elem + DeviceValue, B: Backend>(
    backend: &B,
    shape: AttentionShape,
    cfg: AttentionConfig,
    seed: u64,
    split: SplitKv,
) -> Result<(Vec<T>, Vec<f32>), String> {
    let s = shape;
    let q_n = s.batch * s.q_len * s.n_heads * s.head_dim;
    let kv_n = s.batch * s.kv_len * s.n_kv_heads * s.head_dim;
    // Scale 2 gives peaked softmax rows (scores of order ±10), which exercises the online rescaling.
    let q = random_vec::<T>(q_n, seed, 2.0);
    let k = random_vec::<T>(kv_n, seed ^ 0x11, 2.0);
    let v = random_vec::<T>(kv_n, seed ^ 0x22, 1.0);
    let name = format!("{shape:?} {cfg:?} {split:?} on {}", backend.name());
    let err = |e: Error| format!("{name}: {e}");
    let plan = ops_attention::plan(backend, shape, T::DTYPE, split).map_err(err)?;
    let (q_d, k_d, v_d) = (
        backend.upload(&q).map_err(err)?,
        backend.upload(&k).map_err(err)?,
        backend.upload(&v).map_err(err)?,
    );
    let mut o_d = backend.alloc_poisoned::<T>(q_n).map_err(err)?;
    let mut lse_d = backend
        .alloc_poisoned::<f32>(s.batch * s.n_heads * s.q_len)
        .map_err(err)?;
    let mut ws = backend
        .alloc_poisoned::<f32>(plan.workspace_len(shape).max(1))
        .map_err(err)?;
    attention_with_workspace(
        backend, &q_d, &k_d, &v_d, &mut o_d, &mut lse_d, &mut ws, shape, s.kv_len, cfg, split,
    )
    .map_err(err)?;
    let o_t = backend.download(&o_d).map_err(err)?;
    let lse_f = backend.download(&lse_d).map_err(err)?;
    let o = to_f64_vec(&o_t);
    let lse: Vec<f64> = lse_f.iter().map(|&x| x as f64).collect();

    // v2 (f16/bf16) against the reference that rounds P where the kernel does; v1 (f32) keeps P in f32.
    let (o_ref, lse_ref, slack) = if T::DTYPE == DType::F32 {
        let (o, lse) = reference::attention(&q, &k, &v, shape, cfg).map_err(err)?;
        (o, lse, vec![0.0; q_n])
    } else {
        reference::attention_tiled(&q, &k, &v, shape, cfg, plan.tiling()).map_err(err)?
    };
    let lse_ref: Vec<f64> = lse_ref.iter().map(|&x| x as f64).collect();
    // f32: the kernel's own f32 error over head_dim-long dots and kv_len-long sums, relative to values
    // of order 1: a few hundred ulps of slack at most.
    let tol = match T::DTYPE {
        DType::F32 => Tolerance::new(DType::F32, 2e-5, 1e-4),
        _ => Tolerance::for_elem::<T>(),
    };
    tol.check_with_slack(&o, &to_f64_vec(&o_ref), &slack)
        .map_err(|e| format!("{name}: o: {e}"))?;
    check_close(&lse, &lse_ref, 1e-4, 1e-5).map_err(|e| format!("{name}: lse: {e}"))?;
    if T::DTYPE != DType::F32 {
        let (oracle, _) = reference::attention_f64(&q, &k, &v, shape, cfg).map_err(err)?;
        let naive = to_f64_vec(&reference::attention_naive(&q, &k, &v, shape, cfg).map_err(err)?);
        check_2x_rule(T::DTYPE, &o, &naive, &oracle, 1e-6).map_err(|e| format!("{name}: 2x rule: {e}"))?;
    }
    Ok((o_t, lse_f))
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
        let tiling = ops_attention::plan(backend, shape, DType::BF16, SplitKv::Auto)
            .unwrap()
            .tiling();
        let (want, _, slack) = reference::attention_tiled(
            &q,
            &compact(&k_cache),
            &compact(&v_cache),
            shape,
            AttentionConfig::default(),
            tiling,
        )
        .unwrap();
        Tolerance::for_elem::<bf16>()
            .check_with_slack(&got, &to_f64_vec(&want), &slack)
            .unwrap();
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

/// The head dims of the issue, in both kinds (prefill: 70 queries x GQA 2; decode: 1 query x GQA 4).
fn attention_head_dims<B: Backend>(backend: &B) {
    for head_dim in [8, 64, 72, 120, 128, 256] {
        for (q_len, n_heads) in [(70, 4), (1, 8)] {
            let shape = AttentionShape {
                batch: 1,
                q_len,
                kv_len: 90,
                n_heads,
                n_kv_heads: 2,
                head_dim,
            };
            run_case::<bf16, B>(backend, shape, AttentionConfig::default(), head_dim as u64).unwrap();
            run_case::<f16, B>(backend, shape, AttentionConfig::default(), head_dim as u64 + 1).unwrap();
        }
    }
}

/// Windows that leave rows without a key: a causal window of 2 with more queries than keys, and a
/// non-causal window of width 1 at the diagonal (queries whose diagonal key is before key 0 see nothing);
/// plus soft-capping with a window that crosses tile edges.
fn attention_windows_and_softcap<B: Backend>(backend: &B) {
    let shape = AttentionShape {
        batch: 1,
        q_len: 70,
        kv_len: 5,
        n_heads: 2,
        n_kv_heads: 1,
        head_dim: 64,
    };
    let causal_window = AttentionConfig {
        window_left: Some(2),
        ..AttentionConfig::default()
    };
    let diagonal_only = AttentionConfig {
        causal: false,
        window_left: Some(0),
        window_right: Some(0),
        ..AttentionConfig::default()
    };
    for cfg in [causal_window, diagonal_only] {
        run_case::<bf16, B>(backend, shape, cfg, 61).unwrap();
        run_case::<f32, B>(backend, shape, cfg, 62).unwrap();
    }
    let long = AttentionShape {
        q_len: 100,
        kv_len: 200,
        ..shape
    };
    let capped = AttentionConfig {
        window_left: Some(70),
        softcap: Some(10.0),
        ..AttentionConfig::default()
    };
    run_case::<f16, B>(backend, long, capped, 63).unwrap();
    run_case::<f32, B>(backend, long, capped, 64).unwrap();
}

/// Split-KV at decode (kv 300 = 5 tiles of 64, GQA 4, d128): every split count from 1 to 7, and
/// MAX_SPLITS (6, 7 and MAX_SPLITS have splits past the last key, which see none) against the tiled reference and the 2x rule; reruns
/// are bitwise equal; each split count agrees with the unsplit kernel within the 2x rule.
fn attention_split_kv<B: Backend>(backend: &B) {
    let shape = AttentionShape {
        batch: 2,
        q_len: 1,
        kv_len: 300,
        n_heads: 8,
        n_kv_heads: 2,
        head_dim: 128,
    };
    let cfg = AttentionConfig::default();
    let seed = 71;
    let (unsplit, _) = run_case_split::<bf16, B>(backend, shape, cfg, seed, SplitKv::Fixed(1)).unwrap();
    let q = random_vec::<bf16>(shape.batch * shape.n_heads * shape.head_dim, seed, 2.0);
    let kv_n = shape.batch * shape.kv_len * shape.n_kv_heads * shape.head_dim;
    let (k, v) = (
        random_vec::<bf16>(kv_n, seed ^ 0x11, 2.0),
        random_vec::<bf16>(kv_n, seed ^ 0x22, 1.0),
    );
    let naive = to_f64_vec(&reference::attention_naive(&q, &k, &v, shape, cfg).unwrap());
    for n in (1..=7).chain([MAX_SPLITS]) {
        let plan = ops_attention::plan(backend, shape, DType::BF16, SplitKv::Fixed(n)).unwrap();
        assert_eq!(plan.n_splits, n);
        let (o1, l1) = run_case_split::<bf16, B>(backend, shape, cfg, seed, SplitKv::Fixed(n)).unwrap();
        let (o2, l2) = run_case_split::<bf16, B>(backend, shape, cfg, seed, SplitKv::Fixed(n)).unwrap();
        assert_eq!(
            bytemuck::cast_slice::<bf16, u16>(&o1),
            bytemuck::cast_slice::<bf16, u16>(&o2),
            "{n} splits"
        );
        assert_eq!(
            bytemuck::cast_slice::<f32, u32>(&l1),
            bytemuck::cast_slice::<f32, u32>(&l2),
            "{n} splits"
        );
        check_2x_rule(DType::BF16, &to_f64_vec(&o1), &naive, &to_f64_vec(&unsplit), 1e-6)
            .unwrap_or_else(|e| panic!("{n} splits vs unsplit: {e}"));
    }
    // The automatic rule splits this shape (4 blocks unsplit) and still passes.
    let auto = ops_attention::plan(backend, shape, DType::BF16, SplitKv::Auto).unwrap();
    assert!(auto.n_splits > 1, "{auto:?}");
    run_case_split::<bf16, B>(backend, shape, cfg, seed, SplitKv::Auto).unwrap();
}

backend_tests!(attention_head_dim_list, attention_head_dims);
backend_tests!(attention_windows, attention_windows_and_softcap);
backend_tests!(attention_split, attention_split_kv);
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
            softmax_scale: Some(scale),
            ..AttentionConfig::default()
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
