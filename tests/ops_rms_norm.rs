//! RMSNorm and fused residual add + RMSNorm on every backend against the reference, and every error path.
//!
//! Kernel tests draw rows 1..6 and widths from 1 to 4099 (odd widths, widths below one vector, multiples
//! of the 16-byte vector, and widths with a vector body plus a scalar tail), both rounding orders, every
//! dtype. Outputs start poisoned. Results are compared tightly with the same-dtype reference (same rounding
//! points; the kernel's f32 reduction against the reference's f64 can move a result by one ulp of T
//! before the final rounding, two for the two-rounding MatchTorch order), and bf16/f16 additionally with
//! FlashAttention's 2x rule against the f64 oracle (tensors of 256 elements or more). One emulator test
//! pins the access path from the emulator's metrics: aligned rows use 16-byte vectors, offset views scalars.

mod common;

use half::{bf16, f16};
use llama_kernels::backend::{Backend, DeviceValue, EmuBackend};
use llama_kernels::ops::rms_norm::{fused_add_rms_norm, fused_add_rms_norm_in_place, rms_norm, rms_norm_in_place};
use llama_kernels::reference::{self, check_2x_rule, random_vec, round_t, to_f64_vec, Tolerance};
use llama_kernels::{DType, Elem, Error, RmsNormConfig, RmsNormShape, Rounding};
use proptest::prelude::*;

fn case() -> impl Strategy<Value = (RmsNormShape, RmsNormConfig, u64)> {
    let hidden = prop_oneof![
        prop::sample::select(vec![1usize, 3, 7, 8, 16, 31, 64, 257, 1000, 4096, 4099, 8192]),
        1usize..300,
        (1usize..64).prop_map(|v| v * 8),
    ];
    let rounding = prop::sample::select(vec![Rounding::MatchTorch, Rounding::Once]);
    let eps = prop::sample::select(vec![1e-5f32, 1e-6, 0.1]);
    (1usize..6, hidden, rounding, eps, any::<u64>()).prop_map(|(rows, hidden, rounding, eps, seed)| {
        (RmsNormShape { rows, hidden }, RmsNormConfig { eps, rounding }, seed)
    })
}

/// The naive same-precision RMSNorm (every product, partial sum and step rounded to T), the 2x-rule
/// baseline. `s` is the already-rounded input of the normalization.
fn naive<T: Elem>(s: &[T], weight: &[T], shape: RmsNormShape, eps: f32) -> Vec<f64> {
    let rt = |v: f64| round_t::<T>(v).to_f64();
    let mut out = Vec::with_capacity(s.len());
    for row in s.chunks(shape.hidden) {
        let sum = row.iter().fold(0.0, |acc, v| rt(acc + rt(v.to_f64() * v.to_f64())));
        let r = rt(1.0 / rt(rt(rt(sum / shape.hidden as f64) + eps as f64).sqrt()));
        out.extend(row.iter().zip(weight).map(|(v, w)| rt(rt(v.to_f64() * r) * w.to_f64())));
    }
    out
}

fn tolerance<T: Elem>() -> Tolerance {
    match T::DTYPE {
        // f32 reduction over up to 4099 terms against f64.
        DType::F32 => Tolerance::new(DType::F32, 1e-6, 2e-6),
        _ => Tolerance::for_elem::<T>(),
    }
}

/// The smallest tensor checked with the 2x rule (bf16/f16).
const MIN_2X_ELEMENTS: usize = 256;

/// Runs plain and fused RMSNorm (out of place, and in place) and checks both outputs; `offset` places
/// every tensor that many elements into its allocation (1: no row is 16-byte aligned, the scalar path).
fn run_case<T: Elem + DeviceValue>(
    backend: &EmuBackend,
    shape: RmsNormShape,
    cfg: RmsNormConfig,
    seed: u64,
    offset: usize,
) -> Result<(), String> {
    let n = shape.rows * shape.hidden;
    let x = random_vec::<T>(n, seed, 1.5);
    let res = random_vec::<T>(n, seed ^ 1, 1.5);
    let w = random_vec::<T>(shape.hidden, seed ^ 2, 1.0);
    let name = format!("{shape:?} {cfg:?} offset {offset} on {}", backend.name());
    let err = |e: Error| format!("{name}: {e}");
    let padded = |v: &[T]| -> Vec<T> {
        std::iter::repeat_n(T::from_f32(0.0), offset)
            .chain(v.iter().copied())
            .collect()
    };
    let x_d = backend.upload(&padded(&x)).map_err(err)?;
    let w_d = backend.upload(&padded(&w)).map_err(err)?;
    let mut res_d = backend.upload(&padded(&res)).map_err(err)?;
    let mut out_d = backend.alloc_poisoned::<T>(offset + n).map_err(err)?;
    let (xv, wv) = (
        x_d.slice(offset..offset + n).map_err(err)?,
        w_d.slice(offset..offset + shape.hidden).map_err(err)?,
    );
    let tol = tolerance::<T>();

    // Plain.
    rms_norm(
        backend,
        &xv,
        &wv,
        &mut out_d.slice_mut(offset..offset + n).map_err(err)?,
        shape,
        cfg,
    )
    .map_err(err)?;
    let got = to_f64_vec(&backend.download(&out_d).map_err(err)?[offset..]);
    let want = to_f64_vec(&reference::rms_norm(&x, &w, shape, cfg).map_err(err)?);
    tol.check(&got, &want).map_err(|e| format!("{name}: rms_norm: {e}"))?;
    // The 2x rule compares maximum errors, which say little for a handful of elements (7 of them can
    // all land near zero error for the naive baseline by chance); tiny tensors get the tight check only.
    let two_x = T::DTYPE != DType::F32 && n >= MIN_2X_ELEMENTS;
    if two_x {
        let oracle = reference::rms_norm_f64(&x, &w, shape, cfg).map_err(err)?;
        check_2x_rule(T::DTYPE, &got, &naive(&x, &w, shape, cfg.eps), &oracle, 1e-6)
            .map_err(|e| format!("{name}: 2x: {e}"))?;
    }

    // Fused: residual updated in place, out written.
    let mut out2_d = backend.alloc_poisoned::<T>(offset + n).map_err(err)?;
    fused_add_rms_norm(
        backend,
        &xv,
        &mut res_d.slice_mut(offset..offset + n).map_err(err)?,
        &wv,
        &mut out2_d.slice_mut(offset..offset + n).map_err(err)?,
        shape,
        cfg,
    )
    .map_err(err)?;
    let (want_out, want_res) = reference::fused_add_rms_norm(&x, &res, &w, shape, cfg).map_err(err)?;
    let got_res = backend.download(&res_d).map_err(err)?[offset..].to_vec();
    let got_out = to_f64_vec(&backend.download(&out2_d).map_err(err)?[offset..]);
    // The new residual is one rounding of an exact-in-f32 sum: bit-identical for f16/bf16 (f32: to 1 ulp).
    Tolerance::ulps(T::DTYPE, 1.0)
        .check(&to_f64_vec(&got_res), &to_f64_vec(&want_res))
        .map_err(|e| format!("{name}: fused residual: {e}"))?;
    tol.check(&got_out, &to_f64_vec(&want_out))
        .map_err(|e| format!("{name}: fused out: {e}"))?;
    if two_x {
        // Oracle: the f64 sum, unrounded; the naive baseline normalizes the same rounded residual as the
        // kernel, so the residual's own rounding counts against both alike.
        let (oracle, _) = reference::fused_add_rms_norm_f64(&x, &res, &w, shape, cfg).map_err(err)?;
        check_2x_rule(T::DTYPE, &got_out, &naive(&want_res, &w, shape, cfg.eps), &oracle, 1e-6)
            .map_err(|e| format!("{name}: fused 2x: {e}"))?;
    }
    Ok(())
}

/// The in-place forms write over `x` and give what the out-of-place forms give.
fn run_in_place<T: Elem + DeviceValue>(backend: &EmuBackend, shape: RmsNormShape, cfg: RmsNormConfig, seed: u64) {
    let n = shape.rows * shape.hidden;
    let (x, res, w) = (
        random_vec::<T>(n, seed, 1.0),
        random_vec::<T>(n, seed ^ 1, 1.0),
        random_vec::<T>(shape.hidden, 3, 1.0),
    );
    let w_d = backend.upload(&w).unwrap();
    let mut x_d = backend.upload(&x).unwrap();
    rms_norm_in_place(backend, &mut x_d, &w_d, shape, cfg).unwrap();
    let want = to_f64_vec(&reference::rms_norm(&x, &w, shape, cfg).unwrap());
    tolerance::<T>()
        .check(&to_f64_vec(&backend.download(&x_d).unwrap()), &want)
        .unwrap();

    let mut x_d = backend.upload(&x).unwrap();
    let mut res_d = backend.upload(&res).unwrap();
    fused_add_rms_norm_in_place(backend, &mut x_d, &mut res_d, &w_d, shape, cfg).unwrap();
    let (want_out, want_res) = reference::fused_add_rms_norm(&x, &res, &w, shape, cfg).unwrap();
    tolerance::<T>()
        .check(&to_f64_vec(&backend.download(&x_d).unwrap()), &to_f64_vec(&want_out))
        .unwrap();
    Tolerance::ulps(T::DTYPE, 1.0)
        .check(&to_f64_vec(&backend.download(&res_d).unwrap()), &to_f64_vec(&want_res))
        .unwrap();
}

const CASES: u32 = 64;

fn random_shapes<T: Elem + DeviceValue>(cases: u32) {
    let backend = EmuBackend::new();
    common::run_cases(cases, (case(), 0usize..2), |((shape, cfg, seed), offset)| {
        run_case::<T>(&backend, shape, cfg, seed, offset)
    });
}

#[test]
fn rms_norm_f32_emu() {
    random_shapes::<f32>(CASES);
}
#[test]
fn rms_norm_f16_emu() {
    random_shapes::<f16>(CASES);
}
#[test]
fn rms_norm_bf16_emu() {
    random_shapes::<bf16>(CASES);
}
#[test]
fn rms_norm_in_place_emu() {
    let backend = EmuBackend::new();
    let shape = RmsNormShape { rows: 3, hidden: 4099 };
    run_in_place::<bf16>(&backend, shape, RmsNormConfig::default(), 5);
    run_in_place::<f32>(
        &backend,
        RmsNormShape { rows: 2, hidden: 64 },
        RmsNormConfig::default(),
        6,
    );
}

/// The random shapes on whichever backend is present, with whole buffers (the emulator tests above also
/// cover offset views, which are backend-specific types).
fn rms_norm_random_shapes<B: Backend>(backend: &B) {
    fn one<T: Elem + DeviceValue, B: Backend>(backend: &B, shape: RmsNormShape, cfg: RmsNormConfig, seed: u64) {
        let n = shape.rows * shape.hidden;
        let (x, res, w) = (
            random_vec::<T>(n, seed, 1.5),
            random_vec::<T>(n, seed ^ 1, 1.5),
            random_vec::<T>(shape.hidden, seed ^ 2, 1.0),
        );
        let (x_d, w_d) = (backend.upload(&x).unwrap(), backend.upload(&w).unwrap());
        let mut res_d = backend.upload(&res).unwrap();
        let (mut out_d, mut out2_d) = (
            backend.alloc_poisoned::<T>(n).unwrap(),
            backend.alloc_poisoned::<T>(n).unwrap(),
        );
        rms_norm(backend, &x_d, &w_d, &mut out_d, shape, cfg).unwrap();
        fused_add_rms_norm(backend, &x_d, &mut res_d, &w_d, &mut out2_d, shape, cfg).unwrap();
        let want = reference::rms_norm(&x, &w, shape, cfg).unwrap();
        let (want2, want_res) = reference::fused_add_rms_norm(&x, &res, &w, shape, cfg).unwrap();
        let check = |got: Vec<T>, want: &[T], what: &str| {
            tolerance::<T>()
                .check(&to_f64_vec(&got), &to_f64_vec(want))
                .unwrap_or_else(|e| panic!("{shape:?} {cfg:?} {what} on {}: {e}", backend.name()))
        };
        check(backend.download(&out_d).unwrap(), &want, "rms_norm");
        check(backend.download(&out2_d).unwrap(), &want2, "fused out");
        check(backend.download(&res_d).unwrap(), &want_res, "fused residual");
    }
    common::run_cases(24, case(), |(shape, cfg, seed)| {
        one::<f32, B>(backend, shape, cfg, seed);
        one::<f16, B>(backend, shape, cfg, seed);
        one::<bf16, B>(backend, shape, cfg, seed);
        Ok(())
    });
}
backend_tests!(rms_norm_random, rms_norm_random_shapes);

/// LLaMA-3-8B width on whichever backend is present: vector path, 256 threads, both orders.
fn rms_norm_llama_width<B: Backend>(backend: &B) {
    let shape = RmsNormShape { rows: 4, hidden: 4096 };
    for rounding in [Rounding::MatchTorch, Rounding::Once] {
        let cfg = RmsNormConfig { eps: 1e-5, rounding };
        let n = shape.rows * shape.hidden;
        let (x, w) = (random_vec::<bf16>(n, 1, 2.0), random_vec::<bf16>(shape.hidden, 2, 1.0));
        let (x_d, w_d) = (backend.upload(&x).unwrap(), backend.upload(&w).unwrap());
        let mut out_d = backend.alloc_poisoned::<bf16>(n).unwrap();
        rms_norm(backend, &x_d, &w_d, &mut out_d, shape, cfg).unwrap();
        let got = to_f64_vec(&backend.download(&out_d).unwrap());
        let want = to_f64_vec(&reference::rms_norm(&x, &w, shape, cfg).unwrap());
        Tolerance::for_elem::<bf16>().check(&got, &want).unwrap();
    }
}
backend_tests!(rms_norm_llama, rms_norm_llama_width);

// ---- error paths (on the emulator: validation happens before any launch, identically on CUDA) ----

const SHAPE: RmsNormShape = RmsNormShape { rows: 2, hidden: 8 };

fn buf(backend: &EmuBackend, len: usize) -> llama_kernels::backend::EmuBuffer<f32> {
    backend.upload(&random_vec::<f32>(len, len as u64, 1.0)).unwrap()
}

fn plain(backend: &EmuBackend, shape: RmsNormShape, cfg: RmsNormConfig, lens: [usize; 3]) -> Error {
    let (x, w, mut out) = (buf(backend, lens[0]), buf(backend, lens[1]), buf(backend, lens[2]));
    rms_norm(backend, &x, &w, &mut out, shape, cfg).unwrap_err()
}

#[test]
fn rms_norm_rejects_wrong_lengths() {
    let backend = EmuBackend::new();
    let cfg = RmsNormConfig::default();
    let e = plain(&backend, SHAPE, cfg, [15, 8, 16]);
    assert!(matches!(e, Error::ShapeMismatch { tensor: "x", .. }), "{e}");
    let e = plain(&backend, SHAPE, cfg, [16, 9, 16]);
    assert!(matches!(e, Error::ShapeMismatch { tensor: "weight", .. }), "{e}");
    let e = plain(&backend, SHAPE, cfg, [16, 8, 17]);
    assert!(matches!(e, Error::ShapeMismatch { tensor: "out", .. }), "{e}");
    let (x, w, mut out, mut res) = (
        buf(&backend, 16),
        buf(&backend, 8),
        buf(&backend, 16),
        buf(&backend, 14),
    );
    let e = fused_add_rms_norm(&backend, &x, &mut res, &w, &mut out, SHAPE, cfg).unwrap_err();
    assert!(matches!(e, Error::ShapeMismatch { tensor: "residual", .. }), "{e}");
}

#[test]
fn rms_norm_rejects_bad_eps() {
    let backend = EmuBackend::new();
    for eps in [0.0f32, -1e-5, f32::NAN, f32::INFINITY] {
        let e = plain(
            &backend,
            SHAPE,
            RmsNormConfig {
                eps,
                rounding: Rounding::Once,
            },
            [16, 8, 16],
        );
        assert!(matches!(e, Error::InvalidArgument { .. }), "{eps}: {e}");
    }
}

#[test]
fn rms_norm_rejects_sizes_past_the_kernel_limits() {
    let backend = EmuBackend::new();
    let e = plain(
        &backend,
        RmsNormShape {
            rows: 1 << 31,
            hidden: 1,
        },
        RmsNormConfig::default(),
        [1, 1, 1],
    );
    assert!(matches!(e, Error::SizeOverflow { .. }), "{e}");
    let e = plain(
        &backend,
        RmsNormShape {
            rows: 1,
            // Past the limit by less than one block of vectors: the kernel's int index would overflow.
            hidden: i32::MAX as usize - 3000,
        },
        RmsNormConfig::default(),
        [1, 1, 1],
    );
    assert!(matches!(e, Error::SizeOverflow { .. }), "{e}");
    let e = plain(
        &backend,
        RmsNormShape {
            rows: usize::MAX / 2,
            hidden: 4,
        },
        RmsNormConfig::default(),
        [1, 4, 1],
    );
    assert!(matches!(e, Error::SizeOverflow { .. }), "{e}");
}

#[test]
fn rms_norm_rejects_misaligned_tensors() {
    let backend = EmuBackend::new();
    let cfg = RmsNormConfig::default();
    let (x, w, out, mut out_ok, res) = (
        buf(&backend, 16),
        buf(&backend, 8),
        buf(&backend, 17),
        buf(&backend, 16),
        buf(&backend, 17),
    );
    // SAFETY: a view the op must reject before any launch: out 1 byte into its allocation.
    let mut out_odd = unsafe { out.raw_view_mut(out.addr() + 1, 16) };
    let e = rms_norm(&backend, &x, &w, &mut out_odd, SHAPE, cfg).unwrap_err();
    assert!(matches!(e, Error::Misaligned { tensor: "out", .. }), "{e}");
    // SAFETY: as above, the residual 2 bytes into its allocation.
    let mut res_odd = unsafe { res.raw_view_mut(res.addr() + 2, 16) };
    let e = fused_add_rms_norm(&backend, &x, &mut res_odd, &w, &mut out_ok, SHAPE, cfg).unwrap_err();
    assert!(matches!(e, Error::Misaligned { tensor: "residual", .. }), "{e}");
}

#[test]
fn rms_norm_rejects_overlapping_tensors() {
    let backend = EmuBackend::new();
    let cfg = RmsNormConfig::default();
    let (x, w, res) = (buf(&backend, 16), buf(&backend, 8), buf(&backend, 16));
    // SAFETY (every raw view below): views over live allocations that the op must reject before any
    // launch, so nothing is written through them.
    let mut out_on_x = unsafe { x.raw_view_mut(x.addr() + 8, 16) };
    let e = rms_norm(&backend, &x, &w, &mut out_on_x, SHAPE, cfg).unwrap_err();
    assert!(matches!(e, Error::Aliasing { .. }), "out over x: {e}");
    // SAFETY: as above.
    let mut out_on_w = unsafe { w.raw_view_mut(w.addr(), 16) };
    let e = rms_norm(&backend, &x, &w, &mut out_on_w, SHAPE, cfg).unwrap_err();
    assert!(matches!(e, Error::Aliasing { .. }), "out over weight: {e}");
    // Fused: the residual is written too, so it may overlap none of x, weight, out.
    let mut out_d = buf(&backend, 16);
    let out_addr = out_d.addr();
    for (base, other) in [(x.addr(), "x"), (w.addr(), "weight"), (out_addr + 4, "out")] {
        // SAFETY: as above.
        let mut res_on = unsafe { res.raw_view_mut(base, 16) };
        let e = fused_add_rms_norm(&backend, &x, &mut res_on, &w, &mut out_d, SHAPE, cfg).unwrap_err();
        assert!(
            matches!(e, Error::Aliasing { a, b, .. } if [a, b].contains(&"residual") && [a, b].contains(&other)),
            "residual over {other}: {e}"
        );
    }
}

#[test]
fn rms_norm_rejects_buffers_of_another_device() {
    let backend = EmuBackend::new();
    let other = EmuBackend::new();
    let (x, mut out) = (buf(&backend, 16), buf(&backend, 16));
    let w = buf(&other, 8);
    let e = rms_norm(&backend, &x, &w, &mut out, SHAPE, RmsNormConfig::default()).unwrap_err();
    assert!(matches!(e, Error::ContextMismatch { tensor: "weight", .. }), "{e}");
}

/// The two rounding orders differ by at most one ulp of T, inside the tolerance above, so this test pins
/// the order itself: the kernel must agree bit for bit with the reference of the order it was asked for
/// on nearly every element (f32 vs f64 in `r` may flip a rare rounding), where the two orders disagree
/// on a sizeable share of elements.
fn rms_norm_follows_the_rounding_order<B: Backend>(backend: &B) {
    let shape = RmsNormShape { rows: 4, hidden: 1024 };
    let n = shape.rows * shape.hidden;
    let (x, w) = (
        random_vec::<bf16>(n, 11, 3.0),
        random_vec::<bf16>(shape.hidden, 12, 2.0),
    );
    let (x_d, w_d) = (backend.upload(&x).unwrap(), backend.upload(&w).unwrap());
    let reference_for = |rounding| reference::rms_norm(&x, &w, shape, RmsNormConfig { eps: 1e-5, rounding }).unwrap();
    let (torch, once) = (reference_for(Rounding::MatchTorch), reference_for(Rounding::Once));
    let differ = torch.iter().zip(&once).filter(|(a, b)| a != b).count();
    assert!(
        differ > n / 20,
        "the orders differ on only {differ} of {n} elements: the test would be weak"
    );
    for (rounding, want) in [(Rounding::MatchTorch, &torch), (Rounding::Once, &once)] {
        let mut out_d = backend.alloc_poisoned::<bf16>(n).unwrap();
        rms_norm(
            backend,
            &x_d,
            &w_d,
            &mut out_d,
            shape,
            RmsNormConfig { eps: 1e-5, rounding },
        )
        .unwrap();
        let got = backend.download(&out_d).unwrap();
        let mismatched = got.iter().zip(want.iter()).filter(|(a, b)| a != b).count();
        assert!(
            mismatched * 200 < n,
            "{rounding:?}: {mismatched} of {n} elements differ from the reference"
        );
    }
}
backend_tests!(rms_norm_rounding_order, rms_norm_follows_the_rounding_order);

/// Global bytes per warp-level request of the one launch since the last call: 512 when every request is
/// 32 lanes × 16 bytes (the vector path), 32 × size_of::<T>() for the scalar path.
fn bytes_per_request(backend: &EmuBackend) -> u64 {
    let metrics = backend.take_metrics();
    assert_eq!(metrics.len(), 1, "one launch expected");
    let m = &metrics[0].1;
    (m.global_load_bytes + m.global_store_bytes) / m.global_requests
}

/// Aligned tensors whose rows are whole vectors (4096 bf16 = 512 chunks, 2 per thread) take the 16-byte
/// vector path for every access, plain and fused; the same data one element into its allocations takes
/// the scalar path, and both give the reference's result.
#[test]
fn rms_norm_vector_path_when_aligned_emu() {
    let backend = EmuBackend::new();
    let shape = RmsNormShape { rows: 2, hidden: 4096 };
    let cfg = RmsNormConfig::default();
    let n = shape.rows * shape.hidden;
    let (x, res, w) = (
        random_vec::<bf16>(n, 21, 1.5),
        random_vec::<bf16>(n, 22, 1.5),
        random_vec::<bf16>(shape.hidden, 23, 1.0),
    );
    let want = to_f64_vec(&reference::rms_norm(&x, &w, shape, cfg).unwrap());
    let (want_fused, _) = reference::fused_add_rms_norm(&x, &res, &w, shape, cfg).unwrap();
    let tol = Tolerance::for_elem::<bf16>();
    for offset in [0usize, 1] {
        let pad = |v: &[bf16]| [vec![bf16::ZERO; offset], v.to_vec()].concat();
        let (x_d, w_d) = (backend.upload(&pad(&x)).unwrap(), backend.upload(&pad(&w)).unwrap());
        let mut res_d = backend.upload(&pad(&res)).unwrap();
        let mut out_d = backend.alloc_poisoned::<bf16>(offset + n).unwrap();
        let (xv, wv) = (
            x_d.slice(offset..offset + n).unwrap(),
            w_d.slice(offset..offset + shape.hidden).unwrap(),
        );
        let per_request = if offset == 0 { 512 } else { 64 };
        backend.take_metrics();

        let mut ov = out_d.slice_mut(offset..offset + n).unwrap();
        rms_norm(&backend, &xv, &wv, &mut ov, shape, cfg).unwrap();
        assert_eq!(bytes_per_request(&backend), per_request, "rms_norm, offset {offset}");
        let got = to_f64_vec(&backend.download(&out_d).unwrap()[offset..]);
        tol.check(&got, &want).unwrap();

        let mut ov = out_d.slice_mut(offset..offset + n).unwrap();
        let mut rv = res_d.slice_mut(offset..offset + n).unwrap();
        fused_add_rms_norm(&backend, &xv, &mut rv, &wv, &mut ov, shape, cfg).unwrap();
        assert_eq!(bytes_per_request(&backend), per_request, "fused, offset {offset}");
        let got = to_f64_vec(&backend.download(&out_d).unwrap()[offset..]);
        tol.check(&got, &to_f64_vec(&want_fused)).unwrap();
    }
}
