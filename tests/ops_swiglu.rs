//! SwiGLU on every backend against the reference, and every error path of `ops::swiglu`.
//!
//! Kernel tests: proptest-drawn shapes with `d` around the vector widths (1, 7, 8, 9) and the block
//! chunks of 1024 (f32) / 2048 (f16, bf16) elements (±1, 4099), one to four rows, both roundings, both
//! input forms (separate `gate`/`up`, packed `[gate | up]`), random data from a seed, outputs poisoned
//! (never written before the launch: the emulator's initcheck catches a read, and a skipped element stays
//! unwritten and fails the comparison). Compared with the same-dtype reference at the default tolerance:
//! the reference computes silu and the product in f64, the kernel in f32, which the tolerance covers (a
//! few f32 ulps for f32; for f16/bf16 MatchTorch, a flipped first rounding, 2 ulps of `T`).

mod common;

use half::{bf16, f16};
use llama_kernels::backend::{Backend, DeviceValue, EmuBackend};
use llama_kernels::ops::swiglu::{swiglu, swiglu_packed};
use llama_kernels::reference::{self, random_vec, to_f64_vec, Tolerance};
use llama_kernels::{Elem, Error, Rounding, SwigluShape};
use proptest::prelude::*;

fn d_strategy() -> impl Strategy<Value = usize> {
    prop_oneof![
        prop::sample::select(vec![1usize, 7, 8, 9, 1023, 1024, 1025, 2047, 2048, 2049, 4099]),
        1usize..300,
    ]
}

#[derive(Clone, Copy, Debug)]
struct Case {
    shape: SwigluShape,
    rounding: Rounding,
    packed: bool,
    seed: u64,
}

fn case() -> impl Strategy<Value = Case> {
    (1usize..=4, d_strategy(), any::<bool>(), any::<bool>(), any::<u64>()).prop_map(|(rows, d, once, packed, seed)| {
        Case {
            shape: SwigluShape { rows, d },
            rounding: if once { Rounding::Once } else { Rounding::MatchTorch },
            packed,
            seed,
        }
    })
}

/// Gate values over silu's interesting range (both tails, the bend near 0), up values of order 1.
fn inputs<T: Elem>(shape: SwigluShape, seed: u64) -> (Vec<T>, Vec<T>) {
    let n = shape.rows * shape.d;
    (random_vec::<T>(n, seed, 6.0), random_vec::<T>(n, seed ^ 0x5eed, 1.0))
}

/// `[gate | up]` per row.
fn pack<T: Elem>(gate: &[T], up: &[T], d: usize) -> Vec<T> {
    gate.chunks_exact(d)
        .zip(up.chunks_exact(d))
        .flat_map(|(g, u)| g.iter().chain(u).copied())
        .collect()
}

/// Runs one SwiGLU on `backend` and compares with the reference; `Err` names the case.
fn run_case<T: Elem + DeviceValue, B: Backend>(backend: &B, c: Case) -> Result<(), String> {
    let (gate, up) = inputs::<T>(c.shape, c.seed);
    let err = |e: Error| format!("{c:?}: {e}");
    let mut out_d = backend.alloc_poisoned::<T>(c.shape.rows * c.shape.d).map_err(err)?;
    let want = if c.packed {
        let gate_up = pack(&gate, &up, c.shape.d);
        let in_d = backend.upload(&gate_up).map_err(err)?;
        swiglu_packed(backend, &in_d, &mut out_d, c.shape, c.rounding).map_err(err)?;
        reference::swiglu_packed(&gate_up, c.shape, c.rounding).map_err(err)?
    } else {
        let gate_d = backend.upload(&gate).map_err(err)?;
        let up_d = backend.upload(&up).map_err(err)?;
        swiglu(backend, &gate_d, &up_d, &mut out_d, c.shape, c.rounding).map_err(err)?;
        reference::swiglu(&gate, &up, c.shape, c.rounding).map_err(err)?
    };
    let got = backend.download(&out_d).map_err(err)?;
    Tolerance::for_elem::<T>()
        .check(&to_f64_vec(&got), &to_f64_vec(&want))
        .map_err(|e| format!("{c:?} {}: {e}", backend.name()))
}

fn random_cases<T: Elem + DeviceValue, B: Backend>(backend: &B, cases: u32) {
    common::run_cases(cases, case(), |c| run_case::<T, B>(backend, c));
}

fn swiglu_f32_random<B: Backend>(backend: &B) {
    random_cases::<f32, B>(backend, 40);
}
fn swiglu_f16_random<B: Backend>(backend: &B) {
    random_cases::<f16, B>(backend, 40);
}
fn swiglu_bf16_random<B: Backend>(backend: &B) {
    random_cases::<bf16, B>(backend, 40);
}

/// LLaMA 3 8B's FFN width (14336) for a decode row and a few prefill rows, bf16, both roundings.
fn swiglu_bf16_llama3<B: Backend>(backend: &B) {
    for (rows, rounding, packed) in [(1, Rounding::MatchTorch, true), (3, Rounding::Once, false)] {
        let c = Case {
            shape: SwigluShape { rows, d: 14336 },
            rounding,
            packed,
            seed: 11,
        };
        run_case::<bf16, B>(backend, c).unwrap();
    }
}

/// silu's tails: exp(-g) overflowing to +inf must give -0 (never NaN), and large g gives g.
fn swiglu_extreme_gates<B: Backend>(backend: &B) {
    let gate: Vec<f32> = vec![
        -1000.0, -100.0, -88.0, -20.0, -1e-30, 0.0, 1e-30, 20.0, 88.0, 100.0, 1000.0,
    ];
    let up = vec![1.5f32; gate.len()];
    let shape = SwigluShape { rows: 1, d: gate.len() };
    let (gate_d, up_d) = (backend.upload(&gate).unwrap(), backend.upload(&up).unwrap());
    let mut out_d = backend.alloc_poisoned::<f32>(gate.len()).unwrap();
    swiglu(backend, &gate_d, &up_d, &mut out_d, shape, Rounding::Once).unwrap();
    let got = to_f64_vec(&backend.download(&out_d).unwrap());
    assert!(got.iter().all(|v| v.is_finite()), "{got:?}");
    let want = to_f64_vec(&reference::swiglu(&gate, &up, shape, Rounding::Once).unwrap());
    Tolerance::for_elem::<f32>().check(&got, &want).unwrap();
}

/// The rounding points, bit for bit: the 2-ulp tolerance above cannot tell MatchTorch from Once (they
/// differ by at most an ulp), so here the kernel must equal the reference of its own rounding exactly on
/// all but a few elements (f32 vs f64 silu flips the first rounding only within ~2^-24 of a tie, a
/// chance of about 2^-16 per element for bf16), while the two references differ on many.
fn rounding_points<T: Elem + DeviceValue, B: Backend>(backend: &B) {
    let shape = SwigluShape { rows: 4, d: 1031 };
    let (gate, up) = inputs::<T>(shape, 21);
    let (gate_d, up_d) = (backend.upload(&gate).unwrap(), backend.upload(&up).unwrap());
    let torch = reference::swiglu(&gate, &up, shape, Rounding::MatchTorch).unwrap();
    let once = reference::swiglu(&gate, &up, shape, Rounding::Once).unwrap();
    let differ = torch.iter().zip(&once).filter(|(a, b)| a != b).count();
    assert!(
        differ > gate.len() / 20,
        "the two roundings differ on only {differ} elements"
    );
    for (rounding, want) in [(Rounding::MatchTorch, &torch), (Rounding::Once, &once)] {
        let mut out_d = backend.alloc_poisoned::<T>(gate.len()).unwrap();
        swiglu(backend, &gate_d, &up_d, &mut out_d, shape, rounding).unwrap();
        let got = backend.download(&out_d).unwrap();
        let mismatches = got.iter().zip(want).filter(|(a, b)| a != b).count();
        assert!(
            mismatches <= 4,
            "{rounding:?}: {mismatches} of {} elements differ from the reference",
            got.len()
        );
    }
}
fn swiglu_f16_rounding_points<B: Backend>(backend: &B) {
    rounding_points::<f16, B>(backend);
}
fn swiglu_bf16_rounding_points<B: Backend>(backend: &B) {
    rounding_points::<bf16, B>(backend);
}

backend_tests!(swiglu_f32, swiglu_f32_random);
backend_tests!(swiglu_f16, swiglu_f16_random);
backend_tests!(swiglu_bf16, swiglu_bf16_random);
backend_tests!(swiglu_bf16_llama3_width, swiglu_bf16_llama3);
backend_tests!(swiglu_extremes, swiglu_extreme_gates);
backend_tests!(swiglu_f16_roundings, swiglu_f16_rounding_points);
backend_tests!(swiglu_bf16_roundings, swiglu_bf16_rounding_points);

// ---- the two memory paths (emulator: metrics tell which path ran) ----

/// Tensors at element offset 1 of their allocations (2 bytes: not 16-byte aligned) take the scalar path
/// and still compute the reference; the aligned same-shape launch takes the 16-byte vector path, which
/// issues a quarter of the scalar path's global requests (4 f32 per request instead of 1).
#[test]
fn swiglu_offset_views_take_the_scalar_path_emu() {
    let backend = EmuBackend::new();
    let shape = SwigluShape { rows: 2, d: 1024 };
    let n = shape.rows * shape.d;
    let (gate, up) = inputs::<f32>(shape, 3);
    let want = to_f64_vec(&reference::swiglu(&gate, &up, shape, Rounding::MatchTorch).unwrap());

    // Aligned: the vector path.
    let (gate_d, up_d) = (backend.upload(&gate).unwrap(), backend.upload(&up).unwrap());
    let mut out_d = backend.alloc_poisoned::<f32>(n).unwrap();
    backend.take_metrics();
    swiglu(&backend, &gate_d, &up_d, &mut out_d, shape, Rounding::MatchTorch).unwrap();
    let vector_requests = backend.take_metrics()[0].1.global_requests;
    let got = to_f64_vec(&backend.download(&out_d).unwrap());
    Tolerance::for_elem::<f32>().check(&got, &want).unwrap();

    // Offset by one element: the scalar path.
    let mut gate1 = vec![0.0f32];
    gate1.extend_from_slice(&gate);
    let mut up1 = vec![0.0f32];
    up1.extend_from_slice(&up);
    let (gate1_d, up1_d) = (backend.upload(&gate1).unwrap(), backend.upload(&up1).unwrap());
    let mut out1_d = backend.alloc_poisoned::<f32>(n + 1).unwrap();
    let (g_v, u_v) = (gate1_d.slice(1..n + 1).unwrap(), up1_d.slice(1..n + 1).unwrap());
    let mut o_v = out1_d.slice_mut(1..n + 1).unwrap();
    swiglu(&backend, &g_v, &u_v, &mut o_v, shape, Rounding::MatchTorch).unwrap();
    let scalar_requests = backend.take_metrics()[0].1.global_requests;
    let got = to_f64_vec(&backend.download(&out1_d).unwrap()[1..]);
    Tolerance::for_elem::<f32>().check(&got, &want).unwrap();

    assert_eq!(
        scalar_requests,
        4 * vector_requests,
        "vector {vector_requests}, scalar {scalar_requests}"
    );
}

/// A packed input whose `up` half starts at an odd element (d = 9, bf16) and an offset view: the scalar
/// path for the packed form, with a tail that is not a multiple of any width.
#[test]
fn swiglu_packed_offset_view_emu() {
    let backend = EmuBackend::new();
    let shape = SwigluShape { rows: 3, d: 9 };
    let (gate, up) = inputs::<bf16>(shape, 5);
    let gate_up = pack(&gate, &up, shape.d);
    let mut buf = vec![bf16::ZERO];
    buf.extend_from_slice(&gate_up);
    let buf_d = backend.upload(&buf).unwrap();
    let view = buf_d.slice(1..buf.len()).unwrap();
    let mut out_d = backend.alloc_poisoned::<bf16>(27).unwrap();
    swiglu_packed(&backend, &view, &mut out_d, shape, Rounding::MatchTorch).unwrap();
    let got = to_f64_vec(&backend.download(&out_d).unwrap());
    let want = to_f64_vec(&reference::swiglu_packed(&gate_up, shape, Rounding::MatchTorch).unwrap());
    Tolerance::for_elem::<bf16>().check(&got, &want).unwrap();
}

// ---- error paths (on the emulator: validation happens before any launch, identically on CUDA) ----

const SHAPE: SwigluShape = SwigluShape { rows: 2, d: 3 };

fn buf(backend: &EmuBackend, len: usize) -> llama_kernels::backend::EmuBuffer<f32> {
    backend.upload(&vec![0.5f32; len]).unwrap()
}

#[test]
fn swiglu_rejects_wrong_lengths() {
    let backend = EmuBackend::new();
    let (g, u, mut o) = (buf(&backend, 6), buf(&backend, 7), buf(&backend, 6));
    let e = swiglu(&backend, &g, &u, &mut o, SHAPE, Rounding::Once).unwrap_err();
    assert!(matches!(e, Error::ShapeMismatch { tensor: "up", .. }), "{e}");
    let mut o5 = buf(&backend, 5);
    let e = swiglu(&backend, &g, &g, &mut o5, SHAPE, Rounding::Once).unwrap_err();
    assert!(matches!(e, Error::ShapeMismatch { tensor: "out", .. }), "{e}");
    // The packed input needs rows · 2d = 12 elements.
    let e = swiglu_packed(&backend, &g, &mut o, SHAPE, Rounding::Once).unwrap_err();
    assert!(matches!(e, Error::ShapeMismatch { tensor: "gate_up", .. }), "{e}");
}

#[test]
fn swiglu_rejects_sizes_past_the_kernel_limits() {
    let backend = EmuBackend::new();
    let g = buf(&backend, 6);
    // rows · d overflows usize before any length comparison.
    let shape = SwigluShape {
        rows: usize::MAX / 2,
        d: 3,
    };
    let mut o = buf(&backend, 6);
    let e = swiglu(&backend, &g, &g, &mut o, shape, Rounding::Once).unwrap_err();
    assert!(matches!(e, Error::SizeOverflow { .. }), "{e}");
    // A row too wide for the grid (checked before the buffer lengths).
    let shape = SwigluShape {
        rows: 1,
        d: i32::MAX as usize,
    };
    let e = swiglu(&backend, &g, &g, &mut o, shape, Rounding::Once).unwrap_err();
    assert!(matches!(e, Error::SizeOverflow { .. }), "{e}");
    let e = swiglu_packed(&backend, &g, &mut o, shape, Rounding::Once).unwrap_err();
    assert!(matches!(e, Error::SizeOverflow { .. }), "{e}");
}

#[test]
fn swiglu_rejects_buffers_of_another_device() {
    let backend = EmuBackend::new();
    let other = EmuBackend::new();
    let (g, mut o) = (buf(&backend, 6), buf(&backend, 6));
    let u = buf(&other, 6);
    let e = swiglu(&backend, &g, &u, &mut o, SHAPE, Rounding::Once).unwrap_err();
    assert!(matches!(e, Error::ContextMismatch { tensor: "up", .. }), "{e}");
    let gu = buf(&other, 12);
    let e = swiglu_packed(&backend, &gu, &mut o, SHAPE, Rounding::Once).unwrap_err();
    assert!(matches!(e, Error::ContextMismatch { tensor: "gate_up", .. }), "{e}");
}

#[test]
fn swiglu_rejects_misaligned_pointers() {
    let backend = EmuBackend::new();
    let (g, u, o) = (buf(&backend, 6), buf(&backend, 6), buf(&backend, 7));
    // SAFETY: an address 2 bytes into o's allocation; the op must reject it before any launch.
    let mut o_odd = unsafe { o.raw_view_mut(o.addr() + 2, 6) };
    let e = swiglu(&backend, &g, &u, &mut o_odd, SHAPE, Rounding::Once).unwrap_err();
    assert!(
        matches!(
            e,
            Error::Misaligned {
                tensor: "out",
                align: 4,
                ..
            }
        ),
        "{e}"
    );
    let gu = buf(&backend, 13);
    // SAFETY: as above, for the packed input.
    let gu_odd = unsafe { gu.raw_view_mut(gu.addr() + 1, 12) };
    let mut o6 = buf(&backend, 6);
    let e = swiglu_packed(&backend, &gu_odd, &mut o6, SHAPE, Rounding::Once).unwrap_err();
    assert!(matches!(e, Error::Misaligned { tensor: "gate_up", .. }), "{e}");
}

#[test]
fn swiglu_rejects_an_output_that_overlaps_an_input() {
    let backend = EmuBackend::new();
    let (g, up_alloc) = (buf(&backend, 6), buf(&backend, 8));
    let u = up_alloc.slice(0..6).unwrap();
    // SAFETY: out deliberately overlaps up's last elements; the op must reject it before any launch.
    let mut o = unsafe { up_alloc.raw_view_mut(up_alloc.addr() + 4 * 2, 6) };
    let e = swiglu(&backend, &g, &u, &mut o, SHAPE, Rounding::Once).unwrap_err();
    assert!(matches!(e, Error::Aliasing { a: "out", b: "up", .. }), "{e}");
    // SAFETY: out is gate itself (an in-place request the op does not support).
    let mut o = unsafe { g.raw_view_mut(g.addr(), 6) };
    let e = swiglu(&backend, &g, &u, &mut o, SHAPE, Rounding::Once).unwrap_err();
    assert!(
        matches!(
            e,
            Error::Aliasing {
                a: "out",
                b: "gate",
                ..
            }
        ),
        "{e}"
    );
    let gu = buf(&backend, 12);
    // SAFETY: out inside the packed input's up half.
    let mut o = unsafe { gu.raw_view_mut(gu.addr() + 4 * 6, 6) };
    let e = swiglu_packed(&backend, &gu, &mut o, SHAPE, Rounding::Once).unwrap_err();
    assert!(
        matches!(
            e,
            Error::Aliasing {
                a: "out",
                b: "gate_up",
                ..
            }
        ),
        "{e}"
    );
}
