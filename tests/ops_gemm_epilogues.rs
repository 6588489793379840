//! GEMM's epilogues (residual add in place, fused SwiGLU) and batched GEMM, on every rung (v1 f32, v2
//! for operands that are not 16-byte aligned, v3 in each tile config), against the f64 oracle with the
//! reference's bound and FlashAttention's 2x rule, and bit for bit against the unfused composition they
//! replace:
//! - `ResidualAdd(Once)` is `Linear` with `beta = 1`;
//! - `ResidualAdd(MatchTorch)` is the plain GEMM's output added to `C` in f32 and rounded (torch's
//!   `x + linear(h)`);
//! - `SwiGlu(MatchTorch)` is the plain GEMM on the same interleaved weights, then `ops::swiglu` on its
//!   gate and up columns.
//!
//! Batched: dense, shared (stride 0) and padded strides, where the padding of C must stay untouched.

mod common;

use common::gemm::{bits, check_oracle, run, split_gate_up};

use half::{bf16, f16};
use llama_kernels::backend::{Backend, DeviceValue, EmuBackend};
use llama_kernels::ops::gemm::{gemm_batched_with_tiles, interleave_gate_up, Config, Tiles};
use llama_kernels::ops::swiglu::swiglu;
use llama_kernels::reference::{self, random_vec};
use llama_kernels::{DType, Elem, Error, GemmBatch, GemmConfig, GemmEpilogue, GemmShape, Rounding, SwigluShape};

/// Which rung a case runs: v3 in a forced config, the op's choice, or v2 (by a leading dimension that is
/// not a multiple of 8).
#[derive(Clone, Copy, Debug)]
enum Rung {
    V3(Tiles),
    /// The op's choice: v1 for f32; for f16/bf16 k = 21, so every case with A stored (m, k) runs v2.
    Auto,
}

fn tiles(rung: Rung) -> Tiles {
    match rung {
        Rung::V3(t) => t,
        Rung::Auto => Tiles::Auto,
    }
}

/// The rungs of dtype `T` with k chosen to reach them: v3 needs k % 8 == 0 (A and B stored k-major).
fn rungs<T: Elem>() -> Vec<(Rung, usize)> {
    if T::DTYPE == DType::F32 {
        return vec![(Rung::Auto, 37)];
    }
    let mut v: Vec<(Rung, usize)> = Config::ALL.iter().map(|&c| (Rung::V3(Tiles::Fixed(c)), 40)).collect();
    v.push((Rung::Auto, 21)); // k = 21: A's rows are not 16-byte multiples, so v2
    v
}

/// `C += alpha·op(A)·op(B)` for both roundings on every rung and layout, and its two bitwise identities.
fn residual_add<T: Elem + DeviceValue, B: Backend>(backend: &B) {
    for (rung, k) in rungs::<T>() {
        for (i, (m, n, trans_a, trans_b)) in [
            (70usize, 72usize, false, true),
            (1, 264, false, false),
            (136, 8, true, false),
            (65, 24, true, true),
        ]
        .into_iter()
        .enumerate()
        {
            let (m, n) = if trans_a { (m.div_ceil(8) * 8, n) } else { (m, n) }; // A stored (k, m): lda = m
            let n = if trans_b { n } else { n.div_ceil(8) * 8 }; // B stored (k, n): ldb = n
            let shape = GemmShape { m, n, k };
            let seed = 100 + i as u64 + k as u64;
            let a = random_vec::<T>(m * k, seed, 1.0);
            let b = random_vec::<T>(k * n, seed ^ 0x55, 1.0);
            let c0 = random_vec::<T>(m * n, seed ^ 0xaa, 4.0);
            let base = GemmConfig {
                trans_a,
                trans_b,
                alpha: 0.75,
                ..GemmConfig::DEFAULT
            };
            let one = GemmBatch::ONE;
            let plain = run(backend, &a, &b, &c0, shape, base, one, tiles(rung)).unwrap();
            let beta1 = run(
                backend,
                &a,
                &b,
                &c0,
                shape,
                GemmConfig { beta: 1.0, ..base },
                one,
                tiles(rung),
            )
            .unwrap();
            for rounding in [Rounding::MatchTorch, Rounding::Once] {
                let cfg = GemmConfig {
                    epilogue: GemmEpilogue::ResidualAdd(rounding),
                    ..base
                };
                let got = run(backend, &a, &b, &c0, shape, cfg, one, tiles(rung)).unwrap();
                let expected: Vec<T> = match rounding {
                    Rounding::Once => beta1.clone(),
                    Rounding::MatchTorch => plain
                        .iter()
                        .zip(&c0)
                        .map(|(p, c)| T::from_f32(p.to_f32() + c.to_f32()))
                        .collect(),
                };
                assert_eq!(
                    bits(&got),
                    bits(&expected),
                    "{shape:?} {cfg:?} {rung:?}: not the unfused composition"
                );
                check_oracle(&got, &a, &b, &c0, shape, cfg).unwrap_or_else(|e| panic!("{rung:?} {e}"));
            }
        }
    }
}

/// The fused SwiGLU on every rung and layout, for both roundings: MatchTorch bit for bit the plain GEMM
/// then `ops::swiglu`, both against the oracle.
fn fused_swiglu<T: Elem + DeviceValue, B: Backend>(backend: &B) {
    for (rung, k) in rungs::<T>() {
        for (i, (m, d, trans_a, trans_b)) in [
            (70usize, 40usize, false, true),
            (1, 136, false, false),
            (129, 8, true, true),
            (64, 72, true, false),
        ]
        .into_iter()
        .enumerate()
        {
            let m = if trans_a { m.div_ceil(8) * 8 } else { m };
            let n = 2 * d; // multiples of 16 keep ldb a multiple of 8 either way
            let shape = GemmShape { m, n, k };
            let seed = 300 + i as u64 + k as u64;
            let a = random_vec::<T>(m * k, seed, 1.0);
            let w_gate = random_vec::<T>(d * k, seed ^ 0x11, 1.0);
            let w_up = random_vec::<T>(d * k, seed ^ 0x22, 1.0);
            let b = interleave_gate_up(&w_gate, &w_up, d, k, trans_b).unwrap();
            let base = GemmConfig {
                trans_a,
                trans_b,
                alpha: 1.25,
                ..GemmConfig::DEFAULT
            };
            let one = GemmBatch::ONE;
            let plain = run(
                backend,
                &a,
                &b,
                &vec![T::from_f32(0.0); m * n],
                shape,
                base,
                one,
                tiles(rung),
            )
            .unwrap();
            let (gate, up) = split_gate_up(&plain, m, n);
            for rounding in [Rounding::MatchTorch, Rounding::Once] {
                let cfg = GemmConfig {
                    epilogue: GemmEpilogue::SwiGlu(rounding),
                    ..base
                };
                let c0 = random_vec::<T>(m * d, seed ^ 0x33, 1.0); // never read: C is poisoned
                let got = run(backend, &a, &b, &c0, shape, cfg, one, tiles(rung)).unwrap();
                if rounding == Rounding::MatchTorch {
                    let (g_d, u_d) = (backend.upload(&gate).unwrap(), backend.upload(&up).unwrap());
                    let mut out = backend.alloc_poisoned::<T>(m * d).unwrap();
                    swiglu(backend, &g_d, &u_d, &mut out, SwigluShape { rows: m, d }, rounding).unwrap();
                    let unfused = backend.download(&out).unwrap();
                    assert_eq!(
                        bits(&got),
                        bits(&unfused),
                        "{shape:?} {cfg:?} {rung:?}: not GEMM then swiglu"
                    );
                }
                check_oracle(&got, &a, &b, &c0, shape, cfg).unwrap_or_else(|e| panic!("{rung:?} {e}"));
            }
        }
    }
}

/// Three products per launch: dense strides, a shared B (stride 0, LoRA-style) with padded A and C, and
/// the residual epilogue batched. C's padding keeps its values (nothing writes between products).
fn batched<T: Elem + DeviceValue, B: Backend>(backend: &B) {
    for (rung, k) in rungs::<T>() {
        let (m, n) = (33usize, 72usize);
        let shape = GemmShape { m, n, k };
        let (sa, sb, sc) = (m * k, k * n, m * n);
        for (i, (batch, epilogue)) in [
            (
                GemmBatch {
                    count: 3,
                    stride_a: sa,
                    stride_b: sb,
                    stride_c: sc,
                },
                GemmEpilogue::Linear,
            ),
            (
                GemmBatch {
                    count: 3,
                    stride_a: sa + 8,
                    stride_b: 0,
                    stride_c: sc + 24,
                },
                GemmEpilogue::Linear,
            ),
            (
                GemmBatch {
                    count: 2,
                    stride_a: 0,
                    stride_b: sb,
                    stride_c: sc + 8,
                },
                GemmEpilogue::ResidualAdd(Rounding::MatchTorch),
            ),
        ]
        .into_iter()
        .enumerate()
        {
            let span = |one: usize, stride: usize| (batch.count - 1) * stride + one;
            let seed = 500 + i as u64 + k as u64;
            let a = random_vec::<T>(span(sa, batch.stride_a), seed, 1.0);
            let b = random_vec::<T>(span(sb, batch.stride_b), seed ^ 0x55, 1.0);
            let c0 = random_vec::<T>(span(sc, batch.stride_c), seed ^ 0xaa, 1.0);
            let cfg = GemmConfig {
                trans_b: i == 1,
                alpha: 0.5,
                epilogue,
                ..GemmConfig::DEFAULT
            };
            let got = run(backend, &a, &b, &c0, shape, cfg, batch, tiles(rung)).unwrap();
            let expected = reference::gemm_batched(&a, &b, &c0, shape, cfg, batch).unwrap();
            for z in 0..batch.count {
                let at = |stride: usize, one: usize| z * stride..z * stride + one;
                let (az, bz, cz) = (at(batch.stride_a, sa), at(batch.stride_b, sb), at(batch.stride_c, sc));
                for (what, out) in [("kernel", &got), ("reference", &expected)] {
                    check_oracle(
                        &out[cz.clone()],
                        &a[az.clone()],
                        &b[bz.clone()],
                        &c0[cz.clone()],
                        shape,
                        cfg,
                    )
                    .unwrap_or_else(|e| panic!("{what} {rung:?} product {z}: {e}"));
                    // The padding after this product's C is untouched.
                    let pad = cz.end..(cz.end + batch.stride_c - sc).min(out.len());
                    assert_eq!(
                        bits(&out[pad.clone()]),
                        bits(&c0[pad]),
                        "{what} {rung:?} product {z} wrote its padding"
                    );
                }
            }
        }
    }
}

fn residual_f32<B: Backend>(b: &B) {
    residual_add::<f32, B>(b)
}
fn residual_f16<B: Backend>(b: &B) {
    residual_add::<f16, B>(b)
}
fn residual_bf16<B: Backend>(b: &B) {
    residual_add::<bf16, B>(b)
}
fn swiglu_f32<B: Backend>(b: &B) {
    fused_swiglu::<f32, B>(b)
}
fn swiglu_f16<B: Backend>(b: &B) {
    fused_swiglu::<f16, B>(b)
}
fn swiglu_bf16<B: Backend>(b: &B) {
    fused_swiglu::<bf16, B>(b)
}
fn batched_f32<B: Backend>(b: &B) {
    batched::<f32, B>(b)
}
fn batched_bf16<B: Backend>(b: &B) {
    batched::<bf16, B>(b)
}
backend_tests!(gemm_residual_add_f32, residual_f32);
backend_tests!(gemm_residual_add_f16, residual_f16);
backend_tests!(gemm_residual_add_bf16, residual_bf16);
backend_tests!(gemm_fused_swiglu_f32, swiglu_f32);
backend_tests!(gemm_fused_swiglu_f16, swiglu_f16);
backend_tests!(gemm_fused_swiglu_bf16, swiglu_bf16);
backend_tests!(gemm_batched_f32, batched_f32);
backend_tests!(gemm_batched_bf16, batched_bf16);

/// The reference's SwiGLU column mapping and `interleave_gate_up` agree with two separate GEMMs and the
/// SwiGLU reference, for both stored layouts of B.
#[test]
fn interleave_matches_separate_projections() {
    let (m, d, k) = (5usize, 24usize, 7usize);
    let a = random_vec::<f32>(m * k, 1, 1.0);
    let w_gate = random_vec::<f32>(d * k, 2, 1.0);
    let w_up = random_vec::<f32>(d * k, 3, 1.0);
    for trans_b in [false, true] {
        let b = interleave_gate_up(&w_gate, &w_up, d, k, trans_b).unwrap();
        let cfg = GemmConfig {
            trans_b,
            epilogue: GemmEpilogue::SwiGlu(Rounding::Once),
            ..GemmConfig::DEFAULT
        };
        let fused = reference::gemm_f64(&a, &b, &vec![0.0; m * d], GemmShape { m, n: 2 * d, k }, cfg).unwrap();
        let plain = GemmConfig {
            trans_b,
            ..GemmConfig::DEFAULT
        };
        let proj = |w: &[f32]| reference::gemm_f64(&a, w, &vec![0.0; m * d], GemmShape { m, n: d, k }, plain).unwrap();
        let (g, u) = (proj(&w_gate), proj(&w_up));
        let expected: Vec<f64> = g.iter().zip(&u).map(|(&g, &u)| reference::silu(g) * u).collect();
        assert_eq!(fused, expected, "trans_b {trans_b}");
    }
    assert!(matches!(
        interleave_gate_up(&w_gate, &w_up, d, k + 1, true),
        Err(Error::ShapeMismatch { .. })
    ));
    assert!(matches!(
        interleave_gate_up(&w_gate[..4 * k], &w_up[..4 * k], 4, k, true),
        Err(Error::InvalidShape { .. })
    ));
}

/// Every new precondition is an error, never a launch.
#[test]
fn epilogue_and_batch_errors() {
    let backend = EmuBackend::new();
    let shape = GemmShape { m: 4, n: 16, k: 8 };
    let a = backend.upload(&random_vec::<bf16>(32, 1, 1.0)).unwrap();
    let b = backend.upload(&random_vec::<bf16>(128, 2, 1.0)).unwrap();
    let mut c = backend.upload(&random_vec::<bf16>(64, 3, 1.0)).unwrap();
    let go =
        |c: &mut _, shape, cfg, batch| gemm_batched_with_tiles(&backend, &a, &b, c, shape, cfg, batch, Tiles::Auto);
    let one = GemmBatch::ONE;
    let residual = GemmConfig {
        epilogue: GemmEpilogue::ResidualAdd(Rounding::Once),
        beta: 1.0,
        ..GemmConfig::DEFAULT
    };
    assert!(matches!(
        go(&mut c, shape, residual, one),
        Err(Error::InvalidArgument { .. })
    ));
    // SwiGLU: n must be a multiple of 16, and C is (m, n / 2).
    let swiglu_cfg = GemmConfig {
        epilogue: GemmEpilogue::SwiGlu(Rounding::MatchTorch),
        ..GemmConfig::DEFAULT
    };
    let mut c_half = backend.upload(&random_vec::<bf16>(32, 4, 1.0)).unwrap();
    assert!(matches!(
        go(&mut c, shape, swiglu_cfg, one),
        Err(Error::ShapeMismatch { .. })
    ));
    let odd = GemmShape { m: 4, n: 8, k: 16 };
    let mut c_odd = backend.upload(&random_vec::<bf16>(16, 4, 1.0)).unwrap();
    assert!(matches!(
        go(&mut c_odd, odd, swiglu_cfg, one),
        Err(Error::InvalidShape { .. })
    ));
    go(&mut c_half, shape, swiglu_cfg, one).unwrap();
    // Batches: overlapping outputs, wrong spans, too many products; zero products is a no-op.
    let two = GemmBatch {
        count: 2,
        stride_a: 0,
        stride_b: 0,
        stride_c: 63,
    };
    let mut c2 = backend.upload(&random_vec::<bf16>(127, 5, 1.0)).unwrap();
    assert!(matches!(
        go(&mut c2, shape, GemmConfig::DEFAULT, two),
        Err(Error::InvalidArgument { .. })
    ));
    let two = GemmBatch { stride_c: 64, ..two };
    assert!(matches!(
        go(&mut c2, shape, GemmConfig::DEFAULT, two),
        Err(Error::ShapeMismatch { .. })
    ));
    let mut c3 = backend.upload(&random_vec::<bf16>(128, 5, 1.0)).unwrap();
    go(&mut c3, shape, GemmConfig::DEFAULT, two).unwrap();
    let many = GemmBatch { count: 65536, ..two };
    assert!(matches!(
        go(&mut c3, shape, GemmConfig::DEFAULT, many),
        Err(Error::SizeOverflow { .. })
    ));
    // Zero products: every buffer is empty, and nothing launches.
    let none = GemmBatch { count: 0, ..two };
    let empty = backend.upload::<bf16>(&[]).unwrap();
    let mut empty_c = backend.upload::<bf16>(&[]).unwrap();
    gemm_batched_with_tiles(
        &backend,
        &empty,
        &empty,
        &mut empty_c,
        shape,
        GemmConfig::DEFAULT,
        none,
        Tiles::Auto,
    )
    .unwrap();
}
