//! Edge values on every backend, every op, every dtype: outputs that are subnormal, that overflow to
//! infinity, signed zeros, and NaN (propagated from NaN or infinite inputs). The kernel must agree with
//! the reference in value (the dtype-aware tolerance) and in IEEE class and sign (`check_same_class`):
//! a tolerance alone passes `-0` for `+0`, or a flush to zero for a subnormal.
//!
//! The data is built per dtype from three magnitudes ([`Edges`]): `tiny` makes products subnormal,
//! `big` makes products overflow, `max` is near the largest finite value. Each input sits far from a class
//! boundary, so the f32-versus-f64 difference between kernel and reference cannot move an output across one.

mod common;

use half::{bf16, f16};
use llama_kernels::backend::{Backend, DeviceValue};
use llama_kernels::ops::{attention, gemm, rms_norm, rope, swiglu};
use llama_kernels::reference::{self, check_same_class, random_vec, to_f64_vec, Tolerance};
use llama_kernels::*;

/// Magnitudes per dtype (as f32, exact in every dtype).
struct Edges {
    /// Scales a value of order 1 into the subnormal range of T.
    tiny: f32,
    /// Squared (times a factor near 1), overflows T.
    big: f32,
    /// Near T's largest finite value.
    max: f32,
}

fn edges<T: Elem>() -> Edges {
    match T::DTYPE {
        DType::F16 => Edges {
            tiny: 2f32.powi(-20),
            big: 300.0,
            max: 60000.0,
        },
        DType::BF16 | DType::F32 => Edges {
            tiny: 2f32.powi(-130),
            big: 3e19,
            max: 3e38,
        },
    }
}

/// Values in `[lo, hi)` from a seed (never zero when `lo > 0`).
fn uniform(len: usize, seed: u64, lo: f32, hi: f32) -> Vec<f32> {
    random_vec::<f32>(len, seed, 1.0)
        .into_iter()
        .map(|v| lo + (hi - lo) * (v + 1.0) / 2.0)
        .collect()
}

fn to_t<T: Elem>(v: &[f32]) -> Vec<T> {
    v.iter().map(|&x| T::from_f32(x)).collect()
}

/// Value within the default tolerance and the same IEEE class and sign, element by element.
fn check_edges<T: Elem>(what: &str, got: &[T], want: &[T]) {
    let (got, want) = (to_f64_vec(got), to_f64_vec(want));
    Tolerance::for_elem::<T>()
        .check(&got, &want)
        .and_then(|_| check_same_class(T::DTYPE, &got, &want))
        .unwrap_or_else(|e| panic!("{what} ({}): {e}", T::DTYPE));
}

fn upload<T: DeviceValue, B: Backend>(backend: &B, v: &[T]) -> B::Buffer<T> {
    backend.upload(v).unwrap()
}

// ------------------------------------------------------------------------------------------------
// RMSNorm
// ------------------------------------------------------------------------------------------------

const HIDDEN: usize = 32;

/// `weight`: 8 tiny (subnormal outputs), 8 near max with alternating sign (overflow), 16 of order 1.
/// Rows of x: random (all three output kinds), signed zeros, one NaN, one +inf (the row's other outputs
/// are `x·0`, signed zeros), and `big` values whose f32 sum of squares overflows for bf16/f32 (r = 0:
/// signed zeros, as in PyTorch).
fn rms_norm_inputs<T: Elem>() -> (Vec<T>, Vec<T>) {
    let e = edges::<T>();
    let mut w = uniform(8, 1, e.tiny * 0.5, e.tiny);
    w.extend((0..8).map(|j| if j % 2 == 0 { e.max } else { -e.max }));
    w.extend(random_vec::<f32>(16, 2, 1.5));
    let mut x = random_vec::<f32>(HIDDEN, 3, 2.0);
    x.extend((0..HIDDEN).map(|j| {
        if j % 3 == 0 {
            -0.0
        } else if j % 3 == 1 {
            0.0
        } else {
            j as f32 / 8.0
        }
    }));
    let mut nan_row = random_vec::<f32>(HIDDEN, 4, 1.0);
    nan_row[5] = f32::NAN;
    let mut inf_row = random_vec::<f32>(HIDDEN, 5, 1.0);
    inf_row[9] = f32::INFINITY;
    let big_row: Vec<f32> = random_vec::<f32>(HIDDEN, 6, 1.0)
        .iter()
        .map(|v| v.signum() * e.big)
        .collect();
    x.extend(nan_row.into_iter().chain(inf_row).chain(big_row));
    (to_t(&x), to_t(&w))
}

fn rms_norm_edge_values<B: Backend>(backend: &B) {
    fn one<T: Elem + DeviceValue, B: Backend>(backend: &B) {
        let (x, w) = rms_norm_inputs::<T>();
        let shape = RmsNormShape {
            rows: x.len() / HIDDEN,
            hidden: HIDDEN,
        };
        // residual = -0: x + (-0) is x, and -0 + -0 stays -0.
        let res = vec![T::from_f32(-0.0); x.len()];
        for rounding in [Rounding::MatchTorch, Rounding::Once] {
            let cfg = RmsNormConfig { eps: 1e-5, rounding };
            let (x_d, w_d) = (upload(backend, &x), upload(backend, &w));
            let mut out = backend.alloc_poisoned::<T>(x.len()).unwrap();
            rms_norm::rms_norm(backend, &x_d, &w_d, &mut out, shape, cfg).unwrap();
            let want = reference::rms_norm(&x, &w, shape, cfg).unwrap();
            check_edges(
                &format!("rms_norm {rounding:?}"),
                &backend.download(&out).unwrap(),
                &want,
            );

            let mut res_d = upload(backend, &res);
            rms_norm::fused_add_rms_norm(backend, &x_d, &mut res_d, &w_d, &mut out, shape, cfg).unwrap();
            let (want, want_res) = reference::fused_add_rms_norm(&x, &res, &w, shape, cfg).unwrap();
            check_edges(&format!("fused {rounding:?}"), &backend.download(&out).unwrap(), &want);
            check_edges("fused residual", &backend.download(&res_d).unwrap(), &want_res);
        }
    }
    one::<f32, B>(backend);
    one::<f16, B>(backend);
    one::<bf16, B>(backend);
}
backend_tests!(rms_norm_edges, rms_norm_edge_values);

/// Regression: bf16 x = 2e19 overflows the f32 sum of squares; the kernel gives zeros, and the
/// reference (which summed in f64) gave about 1. Both now give signed zeros, as PyTorch does.
fn rms_norm_sum_of_squares_overflow<B: Backend>(backend: &B) {
    let shape = RmsNormShape { rows: 1, hidden: 64 };
    let x: Vec<bf16> = (0..64)
        .map(|j| bf16::from_f32(if j % 2 == 0 { 2e19 } else { -2e19 }))
        .collect();
    let w = random_vec::<bf16>(64, 7, 1.0);
    let cfg = RmsNormConfig::default();
    let mut out = backend.alloc_poisoned::<bf16>(64).unwrap();
    rms_norm::rms_norm(
        backend,
        &upload(backend, &x),
        &upload(backend, &w),
        &mut out,
        shape,
        cfg,
    )
    .unwrap();
    let want = reference::rms_norm(&x, &w, shape, cfg).unwrap();
    assert!(want.iter().all(|v| v.to_f32() == 0.0), "the reference gives zeros");
    check_edges("rms_norm overflow", &backend.download(&out).unwrap(), &want);
}
backend_tests!(rms_norm_overflow, rms_norm_sum_of_squares_overflow);

// ------------------------------------------------------------------------------------------------
// SwiGLU
// ------------------------------------------------------------------------------------------------

const D: usize = 24;

/// Rows of (gate, up): random gate with tiny up (subnormal), ±big gate with big up (overflow; -big gives
/// silu = -0 and a -0 output), signed zeros in either input, and NaN / ±inf in either input.
fn swiglu_inputs<T: Elem>() -> (Vec<T>, Vec<T>) {
    let e = edges::<T>();
    let mut gate = random_vec::<f32>(D, 11, 3.0);
    let mut up = uniform(D, 12, e.tiny * 0.5, e.tiny);
    gate.extend((0..D).map(|j| if j % 2 == 0 { e.big } else { -e.big }));
    up.extend(uniform(D, 13, e.big * 0.9, e.big));
    gate.extend((0..D).map(|j| match j % 4 {
        0 => -0.0,
        1 => 0.0,
        _ => 1.5,
    }));
    up.extend((0..D).map(|j| match j % 4 {
        2 => -0.0,
        3 => 0.0,
        _ => 0.75,
    }));
    let specials = [
        (f32::NAN, 1.0),
        (1.0, f32::NAN),
        (f32::INFINITY, 2.0),
        (f32::INFINITY, -2.0),
        (f32::NEG_INFINITY, 1.0),
        (1.0, f32::INFINITY),
        (0.0, f32::INFINITY),
        (-3.0, f32::NEG_INFINITY),
    ];
    gate.extend((0..D).map(|j| specials[j % specials.len()].0));
    up.extend((0..D).map(|j| specials[j % specials.len()].1));
    (to_t(&gate), to_t(&up))
}

fn swiglu_edge_values<B: Backend>(backend: &B) {
    fn one<T: Elem + DeviceValue, B: Backend>(backend: &B) {
        let (gate, up) = swiglu_inputs::<T>();
        let shape = SwigluShape {
            rows: gate.len() / D,
            d: D,
        };
        let packed: Vec<T> = gate
            .chunks(D)
            .zip(up.chunks(D))
            .flat_map(|(g, u)| g.iter().chain(u).copied())
            .collect();
        for rounding in [Rounding::MatchTorch, Rounding::Once] {
            let want = reference::swiglu(&gate, &up, shape, rounding).unwrap();
            let mut out = backend.alloc_poisoned::<T>(gate.len()).unwrap();
            swiglu::swiglu(
                backend,
                &upload(backend, &gate),
                &upload(backend, &up),
                &mut out,
                shape,
                rounding,
            )
            .unwrap();
            check_edges(&format!("swiglu {rounding:?}"), &backend.download(&out).unwrap(), &want);
            let mut out = backend.alloc_poisoned::<T>(gate.len()).unwrap();
            swiglu::swiglu_packed(backend, &upload(backend, &packed), &mut out, shape, rounding).unwrap();
            check_edges(
                &format!("swiglu_packed {rounding:?}"),
                &backend.download(&out).unwrap(),
                &want,
            );
        }
    }
    one::<f32, B>(backend);
    one::<f16, B>(backend);
    one::<bf16, B>(backend);
}
backend_tests!(swiglu_edges, swiglu_edge_values);

// ------------------------------------------------------------------------------------------------
// RoPE
// ------------------------------------------------------------------------------------------------

const HEAD_DIM: usize = 16;
const ROTARY: usize = 8;

/// A head vector as its four rotary pairs and its eight pass-through values.
type HeadValues = ([(f32, f32); 4], [f32; 8]);

/// One head per token (q and k alike), as values per rotary pair `(x0, x1)` plus the pass-through tail.
/// Tokens: all tiny (subnormal), a pair `(m, -m)` near max at angle 7 rad (x0' overflows), signed-zero
/// pairs (and special values in the pass-through dims, kept bit for bit), a NaN and an inf in one pair
/// each, and a negative position.
fn rope_inputs<T: Elem>(layout: RopeLayout) -> (Vec<T>, Vec<i32>) {
    let e = edges::<T>();
    let mut heads: Vec<HeadValues> = Vec::new();
    let r = random_vec::<f32>(64, 21, 1.0);
    let pairs = |o: usize| {
        [
            (r[o], r[o + 1]),
            (r[o + 2], r[o + 3]),
            (r[o + 4], r[o + 5]),
            (r[o + 6], r[o + 7]),
        ]
    };
    let tail = |o: usize| -> [f32; 8] { std::array::from_fn(|i| r[o + i]) };
    let mut tiny = pairs(0);
    tiny.iter_mut().for_each(|(a, b)| (*a, *b) = (*a * e.tiny, *b * e.tiny));
    heads.push((tiny, tail(8)));
    let mut overflow = pairs(16);
    overflow[0] = (0.99 * e.max, -0.99 * e.max);
    heads.push((overflow, tail(24)));
    heads.push((
        [(-0.0, -0.0), (0.0, -0.0), (-0.0, 0.0), (r[32], r[33])],
        [
            -0.0,
            0.0,
            f32::NAN,
            f32::INFINITY,
            f32::NEG_INFINITY,
            -1.0,
            e.tiny,
            -e.tiny,
        ],
    ));
    let mut specials = pairs(40);
    specials[1].0 = f32::NAN;
    specials[2] = (f32::INFINITY, 1.0);
    heads.push((specials, tail(48)));
    heads.push((pairs(56), tail(8)));
    let positions = vec![3, 7, 7, 7, -7];
    let mut x = Vec::new();
    for (pairs, tail) in heads {
        let mut head = [0.0f32; HEAD_DIM];
        for (i, (a, b)) in pairs.into_iter().enumerate() {
            let (j0, j1) = match layout {
                RopeLayout::Interleaved => (2 * i, 2 * i + 1),
                RopeLayout::HalfSplit => (i, i + ROTARY / 2),
            };
            (head[j0], head[j1]) = (a, b);
        }
        head[ROTARY..].copy_from_slice(&tail);
        x.extend(head);
    }
    (to_t(&x), positions)
}

fn rope_edge_values<B: Backend>(backend: &B) {
    fn one<T: Elem + DeviceValue, B: Backend>(backend: &B) {
        for layout in [RopeLayout::Interleaved, RopeLayout::HalfSplit] {
            let (x, positions) = rope_inputs::<T>(layout);
            let shape = RopeShape {
                tokens: positions.len(),
                n_heads: 1,
                n_kv_heads: 1,
                head_dim: HEAD_DIM,
            };
            let cfg = RopeConfig {
                theta: 10000.0,
                rotary_dim: ROTARY,
                layout,
                scaling: None,
            };
            let (mut q, mut k) = (upload(backend, &x), upload(backend, &x));
            let pos = upload(backend, &positions);
            rope::rope_with_config(backend, &mut q, Some(&mut k), &pos, shape, cfg).unwrap();
            let (want_q, want_k) = reference::rope(&x, &x, &positions, shape, cfg).unwrap();
            check_edges(&format!("rope q {layout:?}"), &backend.download(&q).unwrap(), &want_q);
            check_edges(&format!("rope k {layout:?}"), &backend.download(&k).unwrap(), &want_k);
            // The pass-through dims keep their bits (NaN payloads and signed zeros included).
            let got = backend.download(&q).unwrap();
            for t in 0..shape.tokens {
                let tail = t * HEAD_DIM + ROTARY..(t + 1) * HEAD_DIM;
                assert_eq!(
                    bytemuck::cast_slice::<T, u8>(&got[tail.clone()]),
                    bytemuck::cast_slice::<T, u8>(&x[tail])
                );
            }
        }
    }
    one::<f32, B>(backend);
    one::<f16, B>(backend);
    one::<bf16, B>(backend);
}
backend_tests!(rope_edges, rope_edge_values);

// ------------------------------------------------------------------------------------------------
// Attention
// ------------------------------------------------------------------------------------------------

const ATTN: AttentionShape = AttentionShape {
    batch: 1,
    q_len: 6,
    kv_len: 6,
    n_heads: 2,
    n_kv_heads: 1,
    head_dim: 8,
};

/// Runs attention with LSE on `backend` and checks o and lse against the reference, class included.
fn attention_case<T: Elem + DeviceValue, B: Backend>(
    backend: &B,
    what: &str,
    q: &[T],
    k: &[T],
    v: &[T],
    cfg: AttentionConfig,
) {
    // v2 (f16/bf16) rounds P where the tiled reference does; v1 (f32) keeps it in f32.
    let (want_o, want_lse, slack) = if T::DTYPE == DType::F32 {
        let (o, lse) = reference::attention(q, k, v, ATTN, cfg).unwrap();
        (o, lse, vec![0.0; q.len()])
    } else {
        let tiling = attention::plan(backend, ATTN, T::DTYPE, attention::SplitKv::Auto)
            .unwrap()
            .tiling();
        reference::attention_tiled(q, k, v, ATTN, cfg, tiling).unwrap()
    };
    let mut o = backend.alloc_poisoned::<T>(q.len()).unwrap();
    let mut lse = backend.alloc_poisoned::<f32>(ATTN.n_heads * ATTN.q_len).unwrap();
    let (q_d, k_d, v_d) = (upload(backend, q), upload(backend, k), upload(backend, v));
    attention::attention_with_lse(backend, &q_d, &k_d, &v_d, &mut o, &mut lse, ATTN, cfg).unwrap();
    let (got, want) = (to_f64_vec(&backend.download(&o).unwrap()), to_f64_vec(&want_o));
    Tolerance::for_elem::<T>()
        .check_with_slack(&got, &want, &slack)
        .and_then(|_| check_same_class(T::DTYPE, &got, &want))
        .unwrap_or_else(|e| panic!("attention o, {what} ({}): {e}", T::DTYPE));
    let (got_lse, want_lse) = (
        backend
            .download(&lse)
            .unwrap()
            .iter()
            .map(|&l| l as f64)
            .collect::<Vec<_>>(),
        want_lse.iter().map(|&l| l as f64).collect::<Vec<_>>(),
    );
    Tolerance::new(DType::F32, 1e-4, 1e-5)
        .check(&got_lse, &want_lse)
        .and_then(|_| check_same_class(DType::F32, &got_lse, &want_lse))
        .unwrap_or_else(|e| panic!("attention lse, {what} ({}): {e}", T::DTYPE));
}

/// NaN in a key reaches every query that sees it (o and lse NaN), and only those; NaN in a query
/// reaches its row; a +inf score makes its rows NaN; a key whose score is -inf has weight 0 (query 0,
/// which sees only that key, gets o = 0 and lse = -inf); tiny values give subnormal o; -0 values give +0.
fn attention_edge_values<B: Backend>(backend: &B) {
    fn one<T: Elem + DeviceValue, B: Backend>(backend: &B) {
        let e = edges::<T>();
        let n = ATTN.q_len * ATTN.n_heads * ATTN.head_dim;
        let kv_n = ATTN.kv_len * ATTN.head_dim;
        let (q, k, v) = (
            random_vec::<f32>(n, 31, 2.0),
            random_vec::<f32>(kv_n, 32, 2.0),
            random_vec::<f32>(kv_n, 33, 1.0),
        );
        let causal = AttentionConfig::default();
        let run = |what: &str, q: &[f32], k: &[f32], v: &[f32], cfg| {
            attention_case::<T, B>(backend, what, &to_t(q), &to_t(k), &to_t(v), cfg)
        };

        let mut k_nan = k.clone();
        k_nan[2 * ATTN.head_dim + 3] = f32::NAN; // key 2
        run("NaN in key 2", &q, &k_nan, &v, causal);
        run(
            "NaN in key 2, not causal",
            &q,
            &k_nan,
            &v,
            AttentionConfig {
                causal: false,
                ..causal
            },
        );
        let mut q_nan = q.clone();
        q_nan[(4 * ATTN.n_heads + 1) * ATTN.head_dim] = f32::NAN; // query 4, head 1
        run("NaN in query 4", &q_nan, &k, &v, causal);

        let q_pos: Vec<f32> = q.iter().map(|x| x.abs()).collect();
        let mut k_inf = k.clone();
        k_inf[3 * ATTN.head_dim] = f32::INFINITY; // key 3: score +inf
        k_inf[0] = f32::NEG_INFINITY; // key 0: score -inf
        run("+inf score at key 3, -inf at key 0", &q_pos, &k_inf, &v, causal);

        let v_tiny: Vec<f32> = v.iter().map(|x| x * e.tiny).collect();
        run("subnormal v", &q, &k, &v_tiny, causal);
        run("v = -0", &q, &k, &vec![-0.0; kv_n], causal);
        if T::DTYPE == DType::F32 {
            // q·k past f32's range: the score is +inf or -inf by its sign, or NaN, as v1's f32 fma chain
            // in d order gives it. (v2, f16/bf16, sums on the tensor core: partial sums past f32's range
            // follow its accumulation order and width, exact on the emulator, so there is no one answer
            // to pin; the module docs say so.)
            let q_big: Vec<f32> = q.iter().map(|x| x.signum() * e.big).collect();
            let k_big: Vec<f32> = k.iter().map(|x| x.signum() * e.big).collect();
            run("q·k overflows f32", &q_big, &k_big, &v, causal);
        }
    }
    one::<f32, B>(backend);
    one::<f16, B>(backend);
    one::<bf16, B>(backend);
}
backend_tests!(attention_edges, attention_edge_values);

/// Regression: a huge softmax_scale is accepted, and the kernel gave NaN where the reference (scores in
/// f64) was finite. With 1e30 the scores of this data stay within f32 and both are finite; with 1e38 some
/// scaled scores pass f32's range and both give the same infinities and NaN rows.
fn attention_huge_softmax_scale<B: Backend>(backend: &B) {
    let n = ATTN.q_len * ATTN.n_heads * ATTN.head_dim;
    let kv_n = ATTN.kv_len * ATTN.head_dim;
    let (q, k, v) = (
        random_vec::<bf16>(n, 41, 2.0),
        random_vec::<bf16>(kv_n, 42, 2.0),
        random_vec::<bf16>(kv_n, 43, 1.0),
    );
    for scale in [1e30f32, -1e30, 1e-30, 1e38, -1e38] {
        let cfg = AttentionConfig {
            softmax_scale: Some(scale),
            ..AttentionConfig::default()
        };
        let (o, _) = reference::attention(&q, &k, &v, ATTN, cfg).unwrap();
        let nan_rows = o.iter().filter(|x| x.is_nan()).count();
        assert_eq!(
            nan_rows > 0,
            scale.abs() > 1e36,
            "scale {scale:e}: {nan_rows} NaN outputs"
        );
        attention_case::<bf16, B>(backend, &format!("softmax_scale {scale:e}"), &q, &k, &v, cfg);
    }
}
backend_tests!(attention_huge_scale, attention_huge_softmax_scale);

// ------------------------------------------------------------------------------------------------
// GEMM
// ------------------------------------------------------------------------------------------------

/// Rows of A (k = 3) against a big positive B: +big (+inf), -big (-inf), a NaN (NaN), signed zeros
/// (alpha·0), and an inf against B's zero column (inf·0 = NaN there, +inf elsewhere). Then tiny A and B
/// whose products are subnormal.
fn gemm_edge_values<B: Backend>(backend: &B) {
    fn one<T: Elem + DeviceValue, B: Backend>(backend: &B) {
        let e = edges::<T>();
        let (m, n, k) = (5, 5, 3);
        let mut a = vec![e.big; k];
        a.extend([-e.big; 3]);
        a.extend([1.0, f32::NAN, 2.0]);
        a.extend([-0.0, 0.0, -0.0]);
        a.extend([f32::INFINITY, 1.0, 1.0]);
        let mut b = uniform(k * n, 51, e.big * 0.9, e.big);
        (0..k).for_each(|p| b[p * n + 4] = 0.0); // column 4 of B is zero
        let c0 = random_vec::<f32>(m * n, 52, 1.0);
        let shape = GemmShape { m, n, k };
        let (a, b, c0): (Vec<T>, Vec<T>, Vec<T>) = (to_t(&a), to_t(&b), to_t(&c0));
        for (alpha, beta) in [(1.0, 0.0), (-1.0, 0.0), (1.0, 1.0)] {
            let cfg = GemmConfig {
                alpha,
                beta,
                ..GemmConfig::default()
            };
            let mut c = upload(backend, &c0);
            gemm::gemm(backend, &upload(backend, &a), &upload(backend, &b), &mut c, shape, cfg).unwrap();
            let want = reference::gemm(&a, &b, &c0, shape, cfg).unwrap();
            check_edges(&format!("gemm specials {cfg:?}"), &backend.download(&c).unwrap(), &want);
        }
        // Subnormal products: (tiny^0.5)^2 with k = 2.
        let root = e.tiny.sqrt();
        let (a, b): (Vec<T>, Vec<T>) = (
            to_t(&uniform(2 * m, 53, root * 0.5, root)),
            to_t(&uniform(2 * n, 54, root * 0.5, root)),
        );
        let shape = GemmShape { m, n, k: 2 };
        let cfg = GemmConfig::default();
        let mut c = backend.alloc_poisoned::<T>(m * n).unwrap();
        gemm::gemm(backend, &upload(backend, &a), &upload(backend, &b), &mut c, shape, cfg).unwrap();
        let want = reference::gemm(&a, &b, &c0, shape, cfg).unwrap();
        assert!(to_f64_vec(&want)
            .iter()
            .all(|w| reference::FloatClass::of(T::DTYPE, *w) == reference::FloatClass::Subnormal { negative: false }));
        check_edges("gemm subnormal", &backend.download(&c).unwrap(), &want);
    }
    one::<f32, B>(backend);
    one::<f16, B>(backend);
    one::<bf16, B>(backend);
}
backend_tests!(gemm_edges, gemm_edge_values);
