//! GEMM's decode path (`cuda/gemm_decode.cu`: m ≤ 16, `y = x·Wᵀ`) on every backend: every m from 1 to 16,
//! n straddling the 128-row block, k straddling the 128-element k-step and the 1024-element staging
//! chunk; split-K bitwise deterministic across reruns and within the bound for every split count; every
//! epilogue (bit for bit its unfused composition) unsplit and split; batched. Against the f64 oracle with
//! the reference's bound and FlashAttention's 2x rule.

mod common;

use common::gemm::{bits, check_oracle, run};

use half::{bf16, f16};
use llama_kernels::backend::{Backend, DeviceValue, EmuBackend};
use llama_kernels::ops::gemm::{
    decode_plan, gemm_batched_with_tiles, gemm_batched_with_workspace, gemm_workspace_len, interleave_gate_up,
    plan_call, Config, Decode, DecodeShape, Plan, Split, Tiles,
};
use llama_kernels::ops::swiglu::swiglu;
use llama_kernels::reference::random_vec;
use llama_kernels::{DType, Elem, Error, GemmBatch, GemmConfig, GemmEpilogue, GemmShape, Rounding, SwigluShape};

const NT: GemmConfig = GemmConfig {
    trans_b: true,
    ..GemmConfig::DEFAULT
};

/// Every m from 1 to 16 with the op's own choice (asserted to be the decode path), n and k at the edges.
fn every_m<T: Elem + DeviceValue, B: Backend>(backend: &B) {
    let ns = [1usize, 127, 129, 72];
    let ks = [8usize, 136, 1032, 48];
    for m in 1..=16usize {
        let (n, k) = (ns[m % 4], ks[m / 4 % 4]);
        let shape = GemmShape { m, n, k };
        let cfg = GemmConfig {
            alpha: if m % 2 == 0 { 1.0 } else { -0.5 },
            beta: if m % 3 == 0 { 0.75 } else { 0.0 },
            ..NT
        };
        let plan = plan_call(shape, cfg, 1, T::DTYPE, true, backend.sm_count());
        assert!(matches!(plan, Plan::Decode(_)), "{shape:?} plans {plan:?}");
        let seed = 40 + m as u64;
        let a = random_vec::<T>(m * k, seed, 1.0);
        let b = random_vec::<T>(k * n, seed ^ 0x55, 1.0);
        let c0 = random_vec::<T>(m * n, seed ^ 0xaa, 1.0);
        let got = run(backend, &a, &b, &c0, shape, cfg, GemmBatch::ONE, Tiles::Auto).unwrap();
        check_oracle(&got, &a, &b, &c0, shape, cfg).unwrap_or_else(|e| panic!("{}: {e}", backend.name()));
    }
}

/// Split counts 1, 2, 3, 9 and 32 (more than the k-steps: clamped) of one problem: each rerun bit for bit
/// the same, each within the bound of the oracle; the op's own split rule on a 132-SM device splits too.
fn split_k<T: Elem + DeviceValue, B: Backend>(backend: &B) {
    let shape = GemmShape { m: 5, n: 200, k: 1160 };
    let cfg = GemmConfig { alpha: 0.5, ..NT };
    let a = random_vec::<T>(shape.m * shape.k, 7, 1.0);
    let b = random_vec::<T>(shape.k * shape.n, 8, 1.0);
    let c0 = random_vec::<T>(shape.m * shape.n, 9, 1.0);
    for decode_shape in [DecodeShape::Wide, DecodeShape::Narrow] {
        for count in [1usize, 2, 3, 9, 32] {
            let tiles = Tiles::Decode(decode_shape, count);
            let first = run(backend, &a, &b, &c0, shape, cfg, GemmBatch::ONE, tiles).unwrap();
            let again = run(backend, &a, &b, &c0, shape, cfg, GemmBatch::ONE, tiles).unwrap();
            assert_eq!(bits(&first), bits(&again), "{tiles:?}: reruns differ");
            check_oracle(&first, &a, &b, &c0, shape, cfg).unwrap_or_else(|e| panic!("{tiles:?}: {e}"));
        }
    }
    assert!(decode_plan(shape, 1, 132).split.count > 1);
}

/// Every epilogue through the decode path, unsplit and split: ResidualAdd(MatchTorch) is the plain
/// decode GEMM plus C in f32, SwiGlu(MatchTorch) the plain decode GEMM then `ops::swiglu`, both bit for
/// bit; all within the oracle's bound.
fn epilogues<T: Elem + DeviceValue, B: Backend>(backend: &B) {
    for (decode_shape, count) in [
        (DecodeShape::Wide, 1usize),
        (DecodeShape::Narrow, 1),
        (DecodeShape::Narrow, 3),
        (DecodeShape::Wide, 3),
    ] {
        let tiles = Tiles::Decode(decode_shape, count);
        let (m, d, k) = (9usize, 72usize, 520usize);
        let n = 2 * d;
        let shape = GemmShape { m, n, k };
        let a = random_vec::<T>(m * k, 11, 1.0);
        let b = interleave_gate_up(
            &random_vec::<T>(d * k, 12, 1.0),
            &random_vec::<T>(d * k, 13, 1.0),
            d,
            k,
            true,
        )
        .unwrap();
        let one = GemmBatch::ONE;
        let base = GemmConfig { alpha: 1.5, ..NT };
        let plain = run(backend, &a, &b, &vec![T::from_f32(0.0); m * n], shape, base, one, tiles).unwrap();
        // Residual: C (m, n) += v.
        let c0 = random_vec::<T>(m * n, 14, 4.0);
        for rounding in [Rounding::MatchTorch, Rounding::Once] {
            let cfg = GemmConfig {
                epilogue: GemmEpilogue::ResidualAdd(rounding),
                ..base
            };
            let got = run(backend, &a, &b, &c0, shape, cfg, one, tiles).unwrap();
            if rounding == Rounding::MatchTorch {
                let expected: Vec<T> = plain
                    .iter()
                    .zip(&c0)
                    .map(|(p, c)| T::from_f32(p.to_f32() + c.to_f32()))
                    .collect();
                assert_eq!(bits(&got), bits(&expected), "{tiles:?}: residual is not GEMM + add");
            }
            check_oracle(&got, &a, &b, &c0, shape, cfg).unwrap_or_else(|e| panic!("{tiles:?}: {e}"));
        }
        // SwiGLU: C (m, d).
        let s = llama_kernels::GEMM_SWIGLU_BLOCK;
        let (mut gate, mut up) = (Vec::new(), Vec::new());
        for i in 0..m {
            for o in 0..d {
                let g = i * n + o / s * 2 * s + o % s;
                gate.push(plain[g]);
                up.push(plain[g + s]);
            }
        }
        let c0 = random_vec::<T>(m * d, 15, 1.0);
        for rounding in [Rounding::MatchTorch, Rounding::Once] {
            let cfg = GemmConfig {
                epilogue: GemmEpilogue::SwiGlu(rounding),
                ..base
            };
            let got = run(backend, &a, &b, &c0, shape, cfg, one, tiles).unwrap();
            if rounding == Rounding::MatchTorch {
                let (g_d, u_d) = (backend.upload(&gate).unwrap(), backend.upload(&up).unwrap());
                let mut out = backend.alloc_poisoned::<T>(m * d).unwrap();
                swiglu(backend, &g_d, &u_d, &mut out, SwigluShape { rows: m, d }, rounding).unwrap();
                assert_eq!(
                    bits(&got),
                    bits(&backend.download(&out).unwrap()),
                    "{tiles:?}: not GEMM then swiglu"
                );
            }
            check_oracle(&got, &a, &b, &c0, shape, cfg).unwrap_or_else(|e| panic!("{tiles:?}: {e}"));
        }
    }
}

/// Three products (W shared by stride 0 in one case, as one weight for several inputs), split and not.
fn batched<T: Elem + DeviceValue, B: Backend>(backend: &B) {
    let shape = GemmShape { m: 3, n: 130, k: 264 };
    let (sa, sb, sc) = (shape.m * shape.k, shape.k * shape.n, shape.m * shape.n);
    for (i, batch) in [
        GemmBatch {
            count: 3,
            stride_a: sa,
            stride_b: sb,
            stride_c: sc,
        },
        GemmBatch {
            count: 3,
            stride_a: sa + 8,
            stride_b: 0,
            stride_c: sc + 5,
        },
    ]
    .into_iter()
    .enumerate()
    {
        let span = |one: usize, stride: usize| (batch.count - 1) * stride + one;
        let a = random_vec::<T>(span(sa, batch.stride_a), 20 + i as u64, 1.0);
        let b = random_vec::<T>(span(sb, batch.stride_b), 30 + i as u64, 1.0);
        let c0 = random_vec::<T>(span(sc, batch.stride_c), 40 + i as u64, 1.0);
        for tiles in [
            Tiles::Decode(DecodeShape::Wide, 1),
            Tiles::Decode(DecodeShape::Narrow, 2),
        ] {
            let cfg = GemmConfig { beta: 1.0, ..NT };
            let got = run(backend, &a, &b, &c0, shape, cfg, batch, tiles).unwrap();
            for z in 0..batch.count {
                let at = |stride: usize, one: usize| z * stride..z * stride + one;
                let cz = at(batch.stride_c, sc);
                check_oracle(
                    &got[cz.clone()],
                    &a[at(batch.stride_a, sa)],
                    &b[at(batch.stride_b, sb)],
                    &c0[cz.clone()],
                    shape,
                    cfg,
                )
                .unwrap_or_else(|e| panic!("{tiles:?} product {z}: {e}"));
                let pad = cz.end..(cz.end + batch.stride_c - sc).min(got.len());
                assert_eq!(
                    bits(&got[pad.clone()]),
                    bits(&c0[pad]),
                    "{tiles:?} product {z} wrote its padding"
                );
            }
        }
    }
}

fn every_m_bf16<B: Backend>(b: &B) {
    every_m::<bf16, B>(b)
}
fn every_m_f16<B: Backend>(b: &B) {
    every_m::<f16, B>(b)
}
fn split_k_bf16<B: Backend>(b: &B) {
    split_k::<bf16, B>(b)
}
fn split_k_f16<B: Backend>(b: &B) {
    split_k::<f16, B>(b)
}
fn epilogues_bf16<B: Backend>(b: &B) {
    epilogues::<bf16, B>(b)
}
fn epilogues_f16<B: Backend>(b: &B) {
    epilogues::<f16, B>(b)
}
fn batched_bf16<B: Backend>(b: &B) {
    batched::<bf16, B>(b)
}
backend_tests!(gemm_decode_every_m_bf16, every_m_bf16);
backend_tests!(gemm_decode_every_m_f16, every_m_f16);
backend_tests!(gemm_decode_split_k_bf16, split_k_bf16);
backend_tests!(gemm_decode_split_k_f16, split_k_f16);
backend_tests!(gemm_decode_epilogues_bf16, epilogues_bf16);
backend_tests!(gemm_decode_epilogues_f16, epilogues_f16);
backend_tests!(gemm_decode_batched_bf16, batched_bf16);

/// The op's automatic split on a device of 132 SMs (the emulator's default has few), against the oracle.
#[test]
fn gemm_decode_auto_split_on_many_sms() {
    let backend = EmuBackend::new().with_sm_count(132);
    let shape = GemmShape { m: 2, n: 256, k: 2056 };
    let plan = plan_call(shape, NT, 1, DType::BF16, true, 132);
    assert!(
        matches!(plan, Plan::Decode(Decode { shape: DecodeShape::Narrow, split: Split { count, .. } }) if count > 1),
        "{plan:?}"
    );
    let a = random_vec::<bf16>(shape.m * shape.k, 1, 1.0);
    let b = random_vec::<bf16>(shape.k * shape.n, 2, 1.0);
    let c0 = vec![bf16::from_f32(0.0); shape.m * shape.n];
    let got = run(&backend, &a, &b, &c0, shape, NT, GemmBatch::ONE, Tiles::Auto).unwrap();
    check_oracle(&got, &a, &b, &c0, shape, NT).unwrap();
}

/// Forcing the decode path where it cannot run, or with 0 or too many splits, is an error.
#[test]
fn gemm_decode_forced_where_it_cannot_run() {
    let backend = EmuBackend::new();
    let a = backend.upload(&random_vec::<bf16>(17 * 8, 1, 1.0)).unwrap();
    let b = backend.upload(&random_vec::<bf16>(8 * 8, 2, 1.0)).unwrap();
    let mut c = backend.upload(&random_vec::<bf16>(17 * 8, 3, 1.0)).unwrap();
    let go =
        |c: &mut _, shape, cfg, tiles| gemm_batched_with_tiles(&backend, &a, &b, c, shape, cfg, GemmBatch::ONE, tiles);
    let tall = GemmShape { m: 17, n: 8, k: 8 };
    assert!(matches!(
        go(&mut c, tall, NT, Tiles::Decode(DecodeShape::Wide, 1)),
        Err(Error::InvalidArgument { .. })
    ));
    let nn = GemmConfig::DEFAULT; // B stored (k, n): not the decode layout
    let mut c8 = backend.upload(&random_vec::<bf16>(16 * 8, 3, 1.0)).unwrap();
    let a16 = backend.upload(&random_vec::<bf16>(16 * 8, 1, 1.0)).unwrap();
    let s16 = GemmShape { m: 16, n: 8, k: 8 };
    let e = gemm_batched_with_tiles(
        &backend,
        &a16,
        &b,
        &mut c8,
        s16,
        nn,
        GemmBatch::ONE,
        Tiles::Decode(DecodeShape::Wide, 1),
    );
    assert!(matches!(e, Err(Error::InvalidArgument { .. })), "{e:?}");
    for bad in [0usize, 33] {
        let e = gemm_batched_with_tiles(
            &backend,
            &a16,
            &b,
            &mut c8,
            s16,
            NT,
            GemmBatch::ONE,
            Tiles::Decode(DecodeShape::Wide, bad),
        );
        assert!(matches!(e, Err(Error::InvalidArgument { .. })), "{bad}: {e:?}");
    }
    gemm_batched_with_tiles(
        &backend,
        &a16,
        &b,
        &mut c8,
        s16,
        NT,
        GemmBatch::ONE,
        Tiles::Decode(DecodeShape::Wide, 1),
    )
    .unwrap();
}

/// The caller's split-K workspace: `gemm_workspace_len` is what a split call needs (0 unsplit); with a
/// poisoned workspace of that length or longer the result is bit for bit the allocating call's, rerun
/// on the dirty workspace too; one element short is a `ShapeMismatch`; an unsplit call takes any.
#[test]
fn gemm_decode_with_the_callers_workspace() {
    let backend = EmuBackend::new().with_sm_count(132);
    let shape = GemmShape { m: 3, n: 200, k: 1160 };
    let cfg = GemmConfig { alpha: 0.5, ..NT };
    let batch = GemmBatch {
        count: 2,
        stride_a: shape.m * shape.k + 8,
        stride_b: 0,
        stride_c: shape.m * shape.n + 3,
    };
    let a = random_vec::<bf16>(batch.stride_a + shape.m * shape.k, 11, 1.0);
    let b = random_vec::<bf16>(shape.n * shape.k, 12, 1.0);
    let c0 = random_vec::<bf16>(batch.stride_c + shape.m * shape.n, 13, 1.0);
    let (a_d, b_d) = (backend.upload(&a).unwrap(), backend.upload(&b).unwrap());
    let len_of = |tiles| gemm_workspace_len(&backend, shape, cfg, batch, DType::BF16, tiles).unwrap();
    for tiles in [
        Tiles::Decode(DecodeShape::Narrow, 3),
        Tiles::Decode(DecodeShape::Wide, 2),
        Tiles::Auto,
    ] {
        let len = len_of(tiles);
        let splits = match tiles {
            Tiles::Decode(_, count) => count,
            _ => match plan_call(shape, cfg, batch.count, DType::BF16, true, 132) {
                Plan::Decode(d) => d.split.count,
                p => panic!("{p:?}"),
            },
        };
        assert!(splits > 1, "{tiles:?}");
        assert_eq!(len, 2 * splits * shape.m * shape.n, "{tiles:?}");
        let want = run(&backend, &a, &b, &c0, shape, cfg, batch, tiles).unwrap();
        let mut ws = backend.upload(&random_vec::<f32>(len + 5, 14, 1e30)).unwrap();
        for pass in 0..2 {
            let mut c = backend.upload(&c0).unwrap();
            gemm_batched_with_workspace(&backend, &a_d, &b_d, &mut c, &mut ws, shape, cfg, batch, tiles).unwrap();
            let got = backend.download(&c).unwrap();
            assert_eq!(bits(&got), bits(&want), "{tiles:?} pass {pass}");
        }
        let mut short = backend.upload(&random_vec::<f32>(len - 1, 15, 1.0)).unwrap();
        let mut c = backend.upload(&c0).unwrap();
        let e = gemm_batched_with_workspace(&backend, &a_d, &b_d, &mut c, &mut short, shape, cfg, batch, tiles);
        assert!(
            matches!(e, Err(Error::ShapeMismatch { tensor: "workspace", expected, actual, .. })
                if expected == len && actual == len - 1),
            "{tiles:?}: {e:?}"
        );
    }
    // Unsplit: no workspace needed, and a one-element one is fine.
    for tiles in [Tiles::Decode(DecodeShape::Wide, 1), Tiles::Fixed(Config::Small)] {
        assert_eq!(len_of(tiles), 0, "{tiles:?}");
        let want = run(&backend, &a, &b, &c0, shape, cfg, batch, tiles).unwrap();
        let mut ws = backend.upload(&[0.0f32]).unwrap();
        let mut c = backend.upload(&c0).unwrap();
        gemm_batched_with_workspace(&backend, &a_d, &b_d, &mut c, &mut ws, shape, cfg, batch, tiles).unwrap();
        assert_eq!(bits(&backend.download(&c).unwrap()), bits(&want), "{tiles:?}");
    }
}
