//! GEMM on every backend against the reference, and every error path of `ops::gemm::gemm`.
//!
//! Kernel tests: random shapes that straddle the 64x64x16 tile (1, odd sizes, 63..=65, 17), all four
//! transpose combinations, alpha/beta including `beta == 0` on a poisoned (never written) C; for v3
//! (leading dimensions multiples of 8) shapes straddling its 64x64, 128x128 and 128x256 tiles, each
//! configuration forced and the op's own choice, and k not a multiple of 32; v2 for unaligned leading
//! dimensions. Every dtype
//! is checked against the f64 oracle with the classical bound (`reference::gemm_error_bound`: f32
//! accumulation, `γ_(k+3)(f32)·Σ|a·b|` plus the underflow floor, then the final rounding), and f16/bf16
//! also with FlashAttention's 2x rule against the naive same-precision GEMM.

mod common;

use half::{bf16, f16};
use llama_kernels::backend::{Backend, EmuBackend};
use llama_kernels::ops::gemm::{gemm, gemm_with_tiles, Config, Plan, Tiles};
use llama_kernels::reference::{self, check_2x_rule, check_abs_bound, random_vec, to_f64_vec};
use llama_kernels::{Elem, Error, GemmConfig, GemmShape};
use proptest::prelude::*;

fn dim() -> impl Strategy<Value = usize> {
    prop_oneof![
        Just(1usize),
        2usize..20,
        prop::sample::select(vec![31usize, 63, 64, 65, 97])
    ]
}

fn case() -> impl Strategy<Value = (GemmShape, GemmConfig, u64)> {
    (
        dim(),
        dim(),
        dim(),
        any::<bool>(),
        any::<bool>(),
        prop::sample::select(vec![1.0f32, -0.5, 1.7]),
        prop::sample::select(vec![0.0f32, 1.0, -0.75]),
        any::<u64>(),
    )
        .prop_map(|(m, n, k, trans_a, trans_b, alpha, beta, seed)| {
            (
                GemmShape { m, n, k },
                GemmConfig {
                    trans_a,
                    trans_b,
                    alpha,
                    beta,
                    epilogue: llama_kernels::GemmEpilogue::Linear,
                },
                seed,
            )
        })
}

/// Runs one GEMM on `backend` and checks it; `Err` names the case.
fn run_case<T: Elem + llama_kernels::backend::DeviceValue, B: Backend>(
    backend: &B,
    shape: GemmShape,
    cfg: GemmConfig,
    seed: u64,
    tiles: Tiles,
) -> Result<(), String> {
    let GemmShape { m, n, k } = shape;
    let a = random_vec::<T>(m * k, seed, 1.0);
    let b = random_vec::<T>(k * n, seed ^ 0x55, 1.0);
    let c0 = random_vec::<T>(m * n, seed ^ 0xaa, 1.0);
    check_case(backend, &a, &b, &c0, shape, cfg, tiles)
}

/// Runs one GEMM of the given data on `backend` and checks it against the f64 oracle (the classical
/// bound, then the 2x rule for f16/bf16); `Err` names the case.
fn check_case<T: Elem + llama_kernels::backend::DeviceValue, B: Backend>(
    backend: &B,
    a: &[T],
    b: &[T],
    c0: &[T],
    shape: GemmShape,
    cfg: GemmConfig,
    tiles: Tiles,
) -> Result<(), String> {
    let GemmShape { m, n, .. } = shape;
    let err = |e: Error| format!("{shape:?} {cfg:?}: {e}");
    let a_d = backend.upload(a).map_err(err)?;
    let b_d = backend.upload(b).map_err(err)?;
    // beta == 0: C is write-only, so it starts poisoned (never written on the emulator: initcheck fires on a read).
    let mut c_d = if cfg.beta == 0.0 {
        backend.alloc_poisoned::<T>(m * n).map_err(err)?
    } else {
        backend.upload(c0).map_err(err)?
    };
    gemm_with_tiles(backend, &a_d, &b_d, &mut c_d, shape, cfg, tiles).map_err(err)?;
    let got = to_f64_vec(&backend.download(&c_d).map_err(err)?);

    let oracle = reference::gemm_f64(a, b, c0, shape, cfg).map_err(err)?;
    // f32 accumulation (γ_(k+3) relative, 2^-150 absolute per rounding) and the final rounding to T.
    let total = reference::gemm_error_bound(a, b, c0, shape, cfg).map_err(err)?;
    check_abs_bound(T::DTYPE, &got, &oracle, &total, 1.0, 0.0)
        .map_err(|e| format!("{shape:?} {cfg:?} {}: {e}", backend.name()))?;
    if T::DTYPE != llama_kernels::DType::F32 {
        let naive = to_f64_vec(&reference::gemm_naive(a, b, c0, shape, cfg).map_err(err)?);
        check_2x_rule(T::DTYPE, &got, &naive, &oracle, 1e-6).map_err(|e| format!("{shape:?} {cfg:?} 2x rule: {e}"))?;
    }
    Ok(())
}

fn random_shapes<T: Elem + llama_kernels::backend::DeviceValue, B: Backend>(backend: &B, cases: u32) {
    common::run_cases(cases, case(), |(shape, cfg, seed)| {
        run_case::<T, B>(backend, shape, cfg, seed, Tiles::Auto)
    });
}

/// GEMM v3's cases: every leading dimension a multiple of 8 (the op's condition for the cp.async path;
/// `m` and `n` are rounded up where they are one), shapes straddling both block tiles (64 and 128: 1, tile ± 1,
/// odd sizes where free) and k that is not a multiple of the 32-element k-tile.
fn v3_case() -> impl Strategy<Value = (GemmShape, GemmConfig, u64)> {
    let mn = || prop::sample::select(vec![1usize, 8, 63, 64, 65, 127, 128, 129, 200]);
    (
        mn(),
        mn(),
        prop::sample::select(vec![8usize, 16, 24, 40, 64, 96, 136]),
        any::<bool>(),
        any::<bool>(),
        prop::sample::select(vec![1.0f32, -0.5, 1.7]),
        prop::sample::select(vec![0.0f32, 1.0, -0.75]),
        any::<u64>(),
    )
        .prop_map(|(m, n, k, trans_a, trans_b, alpha, beta, seed)| {
            let up8 = |x: usize| x.div_ceil(8) * 8;
            let m = if trans_a { up8(m) } else { m }; // A stored (k, m): lda = m
            let n = if trans_b { n } else { up8(n) }; // B stored (k, n): ldb = n
            let cfg = GemmConfig {
                trans_a,
                trans_b,
                alpha,
                beta,
                epilogue: llama_kernels::GemmEpilogue::Linear,
            };
            (GemmShape { m, n, k }, cfg, seed)
        })
}

/// v3 cases on `backend` with `tiles`, each asserted to plan v3 (uploads are 16-byte aligned).
fn v3_shapes<T: Elem + llama_kernels::backend::DeviceValue, B: Backend>(backend: &B, cases: u32, tiles: Tiles) {
    common::run_cases(cases, v3_case(), |(shape, cfg, seed)| {
        let plan = llama_kernels::ops::gemm::plan(shape, T::DTYPE, true, backend.sm_count());
        if !matches!(plan, Plan::V3(_)) {
            return Err(format!("{shape:?} plans {plan:?}"));
        }
        run_case::<T, B>(backend, shape, cfg, seed, tiles)
    });
}
/// The op's own choice, then every configuration forced.
fn gemm_v3_bf16<B: Backend>(backend: &B) {
    v3_shapes::<bf16, B>(backend, 12, Tiles::Auto);
    for config in Config::ALL {
        v3_shapes::<bf16, B>(backend, 10, Tiles::Fixed(config));
    }
}
fn gemm_v3_f16<B: Backend>(backend: &B) {
    for config in Config::ALL {
        v3_shapes::<f16, B>(backend, 6, Tiles::Fixed(config));
    }
}

/// The rule picks each configuration where it should (an emulator of 1 SM fills with any tile).
#[test]
fn gemm_v3_plan_reaches_every_config() {
    let p = |m, n, sms| llama_kernels::ops::gemm::plan(GemmShape { m, n, k: 8 }, llama_kernels::DType::BF16, true, sms);
    assert_eq!(p(129, 257, 1), Plan::V3(Config::Wide));
    assert_eq!(p(1, 1, 1), Plan::V3(Config::Large));
    assert_eq!(p(200, 200, 132), Plan::V3(Config::Small));
    let backend = EmuBackend::new().with_sm_count(1);
    v3_shapes::<bf16, _>(&backend, 12, Tiles::Auto);
}

/// A stored (k, m) and B stored (k, n): k is no leading dimension, so any k runs v3, and the k edge falls
/// inside a k-tile's rows (13, 37: partial tiles of 32, rows past k zero-filled).
fn gemm_v3_tn_any_k<B: Backend>(backend: &B) {
    for config in Config::ALL {
        for (m, n, k) in [(64usize, 72usize, 13usize), (136, 8, 37), (8, 264, 1)] {
            let shape = GemmShape { m, n, k };
            let cfg = GemmConfig {
                trans_a: true,
                trans_b: false,
                alpha: -0.5,
                beta: 1.0,
                epilogue: llama_kernels::GemmEpilogue::Linear,
            };
            assert!(matches!(
                llama_kernels::ops::gemm::plan(shape, llama_kernels::DType::BF16, true, backend.sm_count()),
                Plan::V3(_)
            ));
            run_case::<bf16, B>(backend, shape, cfg, 5 + k as u64, Tiles::Fixed(config)).unwrap();
        }
    }
}

/// `Tiles::Fixed` where v3 does not run is an error, not a silent v2.
#[test]
fn gemm_fixed_tiles_need_the_v3_path() {
    let backend = EmuBackend::new();
    let shape = GemmShape { m: 4, n: 4, k: 5 }; // k = 5: A's rows are not 16-byte multiples
    let a = backend.upload(&[bf16::from_f32(0.5); 20]).unwrap();
    let b = backend.upload(&[bf16::from_f32(0.5); 20]).unwrap();
    let mut c = backend.alloc_poisoned::<bf16>(16).unwrap();
    let fixed = Tiles::Fixed(Config::Large);
    let e = gemm_with_tiles(&backend, &a, &b, &mut c, shape, GemmConfig::default(), fixed).unwrap_err();
    assert!(matches!(e, Error::InvalidArgument { .. }), "{e}");
    let a = backend.upload(&[0.5f32; 20]).unwrap();
    let b = backend.upload(&[0.5f32; 20]).unwrap();
    let mut c = backend.alloc_poisoned::<f32>(16).unwrap();
    let e = gemm_with_tiles(&backend, &a, &b, &mut c, shape, GemmConfig::default(), fixed).unwrap_err();
    assert!(matches!(e, Error::InvalidArgument { .. }), "{e}");
}

/// A leading dimension that is not a multiple of 8 (k = 13 with A stored (m, k)) plans v2, and v2 is right.
fn gemm_unaligned_runs_v2<B: Backend>(backend: &B) {
    for (trans_a, trans_b) in [(false, false), (false, true), (true, false), (true, true)] {
        let shape = GemmShape { m: 70, n: 9, k: 13 };
        let cfg = GemmConfig {
            trans_a,
            trans_b,
            alpha: 1.0,
            beta: 0.5,
            epilogue: llama_kernels::GemmEpilogue::Linear,
        };
        let plan = llama_kernels::ops::gemm::plan(shape, llama_kernels::DType::BF16, false, backend.sm_count());
        assert_eq!(plan, Plan::V2);
        run_case::<bf16, B>(backend, shape, cfg, 11, Tiles::Auto).unwrap();
    }
}

fn gemm_f32_random<B: Backend>(backend: &B) {
    random_shapes::<f32, B>(backend, 24);
}
fn gemm_f16_random<B: Backend>(backend: &B) {
    random_shapes::<f16, B>(backend, 16);
}
fn gemm_bf16_random<B: Backend>(backend: &B) {
    random_shapes::<bf16, B>(backend, 16);
}
/// LLaMA's projection `y = x·Wᵀ` at a size that spans several tiles in every direction.
fn gemm_bf16_llama_projection<B: Backend>(backend: &B) {
    let shape = GemmShape { m: 70, n: 130, k: 96 };
    let cfg = GemmConfig {
        trans_a: false,
        trans_b: true,
        alpha: 1.0,
        beta: 0.0,
        epilogue: llama_kernels::GemmEpilogue::Linear,
    };
    run_case::<bf16, B>(backend, shape, cfg, 7, Tiles::Auto).unwrap();
}

/// Regression (CI failed on it with a random seed): k = 1 products of order 2e-5 are f16 subnormals; a
/// correctly rounded subnormal is up to 2^-25 away, more than any relative bound allows.
fn gemm_f16_subnormal_outputs<B: Backend>(backend: &B) {
    let shape = GemmShape { m: 2, n: 11, k: 1 };
    let a: Vec<f16> = random_vec::<f32>(2, 3, 1.0)
        .iter()
        .map(|v| f16::from_f32(0.004 + 0.002 * v))
        .collect();
    let b: Vec<f16> = random_vec::<f32>(11, 4, 1.0)
        .iter()
        .map(|v| f16::from_f32(0.006 + 0.003 * v))
        .collect();
    let c0 = vec![f16::from_f32(1e-7); 22];
    for beta in [0.0, 1.0] {
        let cfg = GemmConfig {
            beta,
            ..GemmConfig::default()
        };
        let want = reference::gemm_f64(&a, &b, &c0, shape, cfg).unwrap();
        assert!(
            want.iter().all(|v| v.abs() < 2f64.powi(-14)),
            "every output is an f16 subnormal"
        );
        check_case(backend, &a, &b, &c0, shape, cfg, Tiles::Auto).unwrap();
    }
}

/// Regression (found by `fuzz_ops`): f32 products in f32's subnormal range lose up to 2^-150 each, and
/// alpha = 1e30 scales that into an error no relative bound allows; the bound's underflow floor covers it.
fn gemm_f32_subnormal_products_scaled_by_alpha<B: Backend>(backend: &B) {
    let shape = GemmShape { m: 4, n: 95, k: 1 };
    let a: Vec<f32> = random_vec::<f32>(4, 5, 1.0).iter().map(|v| v * 1e-41).collect();
    let b = random_vec::<f32>(95, 6, 1.5);
    let c0 = random_vec::<f32>(4 * 95, 7, 1.0);
    for beta in [0.0, 1.0] {
        let cfg = GemmConfig {
            alpha: 1e30,
            beta,
            ..GemmConfig::default()
        };
        check_case(backend, &a, &b, &c0, shape, cfg, Tiles::Auto).unwrap();
    }
}

backend_tests!(gemm_f32, gemm_f32_random);
backend_tests!(gemm_f32_underflow, gemm_f32_subnormal_products_scaled_by_alpha);
backend_tests!(gemm_f16_subnormal, gemm_f16_subnormal_outputs);
backend_tests!(gemm_f16, gemm_f16_random);
backend_tests!(gemm_bf16, gemm_bf16_random);
backend_tests!(gemm_bf16_projection, gemm_bf16_llama_projection);
backend_tests!(gemm_v3_bf16_shapes, gemm_v3_bf16);
backend_tests!(gemm_v3_f16_shapes, gemm_v3_f16);
backend_tests!(gemm_v2_unaligned, gemm_unaligned_runs_v2);
backend_tests!(gemm_v3_tn_k_edges, gemm_v3_tn_any_k);

// ---- error paths (on the emulator: validation happens before any launch, identically on CUDA) ----

const SHAPE: GemmShape = GemmShape { m: 3, n: 4, k: 5 };

fn buffers(backend: &EmuBackend) -> (impl Fn(usize) -> llama_kernels::backend::EmuBuffer<f32> + '_,) {
    (move |len| backend.upload(&vec![0.5f32; len]).unwrap(),)
}

#[test]
fn gemm_rejects_wrong_lengths() {
    let backend = EmuBackend::new();
    let (buf,) = buffers(&backend);
    let (a, b, mut c) = (buf(15), buf(21), buf(12));
    let e = gemm(&backend, &a, &b, &mut c, SHAPE, GemmConfig::default()).unwrap_err();
    assert!(matches!(e, Error::ShapeMismatch { tensor: "b", .. }), "{e}");
    let (a, b, mut c) = (buf(15), buf(20), buf(11));
    let e = gemm(&backend, &a, &b, &mut c, SHAPE, GemmConfig::default()).unwrap_err();
    assert!(matches!(e, Error::ShapeMismatch { tensor: "c", .. }), "{e}");
}

#[test]
fn gemm_rejects_non_finite_scalars() {
    let backend = EmuBackend::new();
    let (buf,) = buffers(&backend);
    let (a, b, mut c) = (buf(15), buf(20), buf(12));
    let cfg = GemmConfig {
        beta: f32::NAN,
        ..GemmConfig::default()
    };
    let e = gemm(&backend, &a, &b, &mut c, SHAPE, cfg).unwrap_err();
    assert!(matches!(e, Error::InvalidArgument { .. }), "{e}");
}

#[test]
fn gemm_rejects_sizes_past_the_kernel_limits() {
    let backend = EmuBackend::new();
    let (buf,) = buffers(&backend);
    let (a, b, mut c) = (buf(15), buf(20), buf(12));
    let shape = GemmShape { m: 1 << 31, n: 1, k: 1 };
    let e = gemm(&backend, &a, &b, &mut c, shape, GemmConfig::default()).unwrap_err();
    assert!(matches!(e, Error::SizeOverflow { .. }), "{e}");
    // m·k overflows usize before any length comparison.
    let shape = GemmShape {
        m: usize::MAX / 2,
        n: 1,
        k: 3,
    };
    let e = gemm(&backend, &a, &b, &mut c, shape, GemmConfig::default()).unwrap_err();
    assert!(matches!(e, Error::SizeOverflow { .. }), "{e}");
}

#[test]
fn gemm_rejects_buffers_of_another_device() {
    let backend = EmuBackend::new();
    let other = EmuBackend::new();
    let (buf,) = buffers(&backend);
    let (a, mut c) = (buf(15), buf(12));
    let b = other.upload(&[0.5f32; 20]).unwrap();
    let e = gemm(&backend, &a, &b, &mut c, SHAPE, GemmConfig::default()).unwrap_err();
    assert!(matches!(e, Error::ContextMismatch { tensor: "b", .. }), "{e}");
}

#[test]
fn gemm_rejects_misaligned_pointers() {
    let backend = EmuBackend::new();
    let (buf,) = buffers(&backend);
    let (a, b, c) = (buf(15), buf(20), buf(13));
    // SAFETY: an address 2 bytes into c's allocation; the op must reject it before any launch.
    let mut c_odd = unsafe { c.raw_view_mut(c.addr() + 2, 12) };
    let e = gemm(&backend, &a, &b, &mut c_odd, SHAPE, GemmConfig::default()).unwrap_err();
    assert!(
        matches!(
            e,
            Error::Misaligned {
                tensor: "c",
                align: 4,
                ..
            }
        ),
        "{e}"
    );
}

#[test]
fn gemm_rejects_an_output_that_overlaps_an_input() {
    let backend = EmuBackend::new();
    let (buf,) = buffers(&backend);
    let (a, b) = (buf(15), buf(20));
    // SAFETY: c deliberately overlaps a's last elements; the op must reject it before any launch.
    let mut c = unsafe { a.raw_view_mut(a.addr() + 4 * 10, 12) };
    let e = gemm(&backend, &a, &b, &mut c, SHAPE, GemmConfig::default()).unwrap_err();
    assert!(matches!(e, Error::Aliasing { .. }), "{e}");
}

/// Tensors that start inside larger allocations (offset views, as in a packed weight buffer) compute the
/// same as standalone buffers.
#[test]
fn gemm_on_offset_views_emu() {
    let backend = EmuBackend::new();
    let shape = GemmShape { m: 5, n: 7, k: 9 };
    let cfg = GemmConfig {
        trans_a: false,
        trans_b: true,
        alpha: 1.0,
        beta: 0.0,
        epilogue: llama_kernels::GemmEpilogue::Linear,
    };
    let a = random_vec::<bf16>(45, 1, 1.0);
    let b = random_vec::<bf16>(63, 2, 1.0);
    let mut packed = a.clone();
    packed.extend_from_slice(&b); // a at element 0, b at element 45 (90 bytes: only 2-byte aligned)
    let packed_d = backend.upload(&packed).unwrap();
    let mut c_d = backend.alloc_poisoned::<bf16>(3 + 35).unwrap();
    let a_v = packed_d.slice(0..45).unwrap();
    let b_v = packed_d.slice(45..108).unwrap();
    let mut c_v = c_d.slice_mut(3..38).unwrap();
    gemm(&backend, &a_v, &b_v, &mut c_v, shape, cfg).unwrap();
    let got = backend.download(&c_d).unwrap();
    let want = reference::gemm(&a, &b, &[bf16::ZERO; 35], shape, cfg).unwrap();
    let (got, want) = (to_f64_vec(&got[3..]), to_f64_vec(&want));
    llama_kernels::reference::Tolerance::for_elem::<bf16>()
        .check(&got, &want)
        .unwrap();
}

/// v1 (f32) accumulates blocked (16-element k-tiles summed apart, then added): at k = 4096 its RMS error
/// against the f64 oracle is well under that of a sequential f32 fma sum in k order (the order v1 had,
/// 7x torch's own error at this k), whose error grows like k·u instead of (16 + k/16)·u.
#[test]
fn gemm_f32_accumulates_blocked() {
    let backend = EmuBackend::new();
    let shape = GemmShape { m: 16, n: 16, k: 4096 };
    // Positive inputs: every rounding error has the same sign scale, so the growth with k shows.
    let a: Vec<f32> = random_vec::<f32>(shape.m * shape.k, 21, 1.0)
        .iter()
        .map(|v| 1.0 + v.abs())
        .collect();
    let b: Vec<f32> = random_vec::<f32>(shape.k * shape.n, 22, 1.0)
        .iter()
        .map(|v| 1.0 + v.abs())
        .collect();
    let cfg = GemmConfig::DEFAULT;
    let a_d = backend.upload(&a).unwrap();
    let b_d = backend.upload(&b).unwrap();
    let mut c_d = backend.alloc_poisoned::<f32>(shape.m * shape.n).unwrap();
    gemm(&backend, &a_d, &b_d, &mut c_d, shape, cfg).unwrap();
    let got = backend.download(&c_d).unwrap();
    let oracle = reference::gemm_f64(&a, &b, &vec![0.0; shape.m * shape.n], shape, cfg).unwrap();
    let sequential: Vec<f32> = (0..shape.m * shape.n)
        .map(|ij| {
            let (i, j) = (ij / shape.n, ij % shape.n);
            (0..shape.k).fold(0.0f32, |acc, p| a[i * shape.k + p].mul_add(b[p * shape.n + j], acc))
        })
        .collect();
    let rms = |v: &[f32]| {
        (v.iter()
            .zip(&oracle)
            .map(|(x, o)| ((*x as f64 - o) / o).powi(2))
            .sum::<f64>()
            / v.len() as f64)
            .sqrt()
    };
    let (blocked, seq) = (rms(&got), rms(&sequential));
    assert!(
        blocked < 0.5 * seq,
        "v1's relative RMS error {blocked:.3e} is not well under sequential's {seq:.3e}"
    );
}
