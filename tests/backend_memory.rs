//! The memory half of `Backend`, on every backend: zeroed and poisoned allocation, sub-views, device to
//! device copies and host writes into existing memory, with their error paths; generic code over
//! `B: Backend` that appends rows to a cache and runs an op on views inside larger buffers. On the
//! emulator, a copy carries the initcheck state: copied never-written bytes are still reported.

mod common;

use half::bf16;
use llama_kernels::backend::{Backend, DeviceSlice, DeviceValue, EmuBackend};
use llama_kernels::ops::swiglu::swiglu;
use llama_kernels::reference::{self, random_vec};
use llama_kernels::{Error, Rounding, SwigluShape};

/// Appends `rows` (a whole buffer of rows of `width`) to `cache` at row `at`, as an engine appends a
/// step's K or V: generic code over the backend, sub-view plus copy.
fn append_rows<T: DeviceValue, B: Backend>(
    backend: &B,
    cache: &mut B::Buffer<T>,
    rows: &B::Buffer<T>,
    width: usize,
    at: usize,
) -> llama_kernels::Result<()> {
    let n = rows.len();
    let mut window = backend.slice_mut(cache, at * width..at * width + n)?;
    backend.copy(rows, &mut window)
}

fn zeros_slices_and_writes<B: Backend>(backend: &B) {
    assert!(!backend.device_name().is_empty());
    for len in [0usize, 1, 1000] {
        let z = backend.alloc_zeros::<f32>(len).unwrap();
        assert_eq!(z.len(), len);
        assert!(backend.download(&z).unwrap().iter().all(|v| v.to_bits() == 0), "{len}");
    }
    if backend.name().starts_with("cuda") {
        // CUDA's poison is NaN bytes, set on the device.
        let p = backend.alloc_poisoned::<u32>(333).unwrap();
        assert!(backend.download(&p).unwrap().iter().all(|v| *v == u32::MAX));
    }
    let host = random_vec::<f32>(100, 1, 1.0);
    let mut buf = backend.upload(&host).unwrap();
    let new = random_vec::<f32>(10, 2, 1.0);
    {
        let mut w = backend.slice_mut(&mut buf, 20..30).unwrap();
        backend.write(&new, &mut w).unwrap();
    }
    let mut want = host.clone();
    want[20..30].copy_from_slice(&new);
    assert_eq!(backend.download(&buf).unwrap(), want);
    assert_eq!(backend.slice(&buf, 25..25).unwrap().len(), 0);
    // Out of range, reversed, wrong lengths.
    for r in [20..101, 101..101] {
        assert!(
            matches!(backend.slice(&buf, r.clone()), Err(Error::InvalidArgument { .. })),
            "{r:?}"
        );
        assert!(
            matches!(
                backend.slice_mut(&mut buf, r.clone()),
                Err(Error::InvalidArgument { .. })
            ),
            "{r:?}"
        );
    }
    #[allow(clippy::reversed_empty_ranges)]
    let reversed = 30..20;
    assert!(matches!(
        backend.slice(&buf, reversed),
        Err(Error::InvalidArgument { .. })
    ));
    let e = backend.write(&new[..9], &mut buf);
    assert!(
        matches!(
            e,
            Err(Error::ShapeMismatch {
                expected: 9,
                actual: 100,
                ..
            })
        ),
        "{e:?}"
    );
    assert_eq!(backend.download(&buf).unwrap(), want, "a refused write changed nothing");
}

fn copies<B: Backend>(backend: &B) {
    // A cache of 7 rows of width 12, appended to at rows 0, 3 and 6.
    let width = 12;
    let mut cache = backend.alloc_zeros::<bf16>(7 * width).unwrap();
    let mut want = vec![bf16::ZERO; 7 * width];
    for (step, (at, n)) in [(0usize, 3usize), (3, 3), (6, 1)].into_iter().enumerate() {
        let rows = random_vec::<bf16>(n * width, 10 + step as u64, 1.0);
        let rows_d = backend.upload(&rows).unwrap();
        append_rows(backend, &mut cache, &rows_d, width, at).unwrap();
        want[at * width..(at + n) * width].copy_from_slice(&rows);
        assert_eq!(backend.download(&cache).unwrap(), want, "after step {step}");
    }
    // Past the end.
    let two = backend.upload(&random_vec::<bf16>(2 * width, 20, 1.0)).unwrap();
    assert!(matches!(
        append_rows(backend, &mut cache, &two, width, 6),
        Err(Error::InvalidArgument { .. })
    ));
    // Buffer to buffer, view to view, and wrong lengths.
    let src = backend.upload(&random_vec::<bf16>(7 * width, 21, 1.0)).unwrap();
    backend.copy(&src, &mut cache).unwrap();
    assert_eq!(backend.download(&cache).unwrap(), backend.download(&src).unwrap());
    let mut other = backend.upload(&random_vec::<bf16>(50, 22, 1.0)).unwrap();
    let before = backend.download(&other).unwrap();
    {
        let from = backend.slice(&src, 5..15).unwrap();
        let mut to = backend.slice_mut(&mut other, 40..50).unwrap();
        backend.copy(&from, &mut to).unwrap();
    }
    let mut want = before.clone();
    want[40..50].copy_from_slice(&backend.download(&src).unwrap()[5..15]);
    assert_eq!(backend.download(&other).unwrap(), want);
    let e = backend.copy(&src, &mut other);
    assert!(matches!(e, Err(Error::ShapeMismatch { .. })), "{e:?}");
    let empty = backend.alloc_zeros::<bf16>(0).unwrap();
    let mut to = backend.slice_mut(&mut other, 3..3).unwrap();
    backend.copy(&empty, &mut to).unwrap();
}

/// An op on views: SwiGLU reads gate and up from the two halves of one buffer (a fused projection's
/// output) and writes a window in the middle of a larger buffer; the rest stays as it was.
fn op_on_views<B: Backend>(backend: &B) {
    let (rows, d) = (3usize, 40usize);
    let fused = random_vec::<bf16>(2 * rows * d, 30, 2.0);
    let fused_d = backend.upload(&fused).unwrap();
    let out0 = random_vec::<bf16>(rows * d + 17, 31, 1.0);
    let mut out = backend.upload(&out0).unwrap();
    let shape = SwigluShape { rows, d };
    {
        let gate = backend.slice(&fused_d, 0..rows * d).unwrap();
        let up = backend.slice(&fused_d, rows * d..2 * rows * d).unwrap();
        let mut window = backend.slice_mut(&mut out, 9..9 + rows * d).unwrap();
        swiglu(backend, &gate, &up, &mut window, shape, Rounding::MatchTorch).unwrap();
    }
    let got = backend.download(&out).unwrap();
    let want = reference::swiglu(&fused[..rows * d], &fused[rows * d..], shape, Rounding::MatchTorch).unwrap();
    assert_eq!(&got[9..9 + rows * d], &want[..]);
    assert_eq!(&got[..9], &out0[..9]);
    assert_eq!(&got[9 + rows * d..], &out0[9 + rows * d..]);
}

backend_tests!(backend_zeros_slices_and_writes, zeros_slices_and_writes);
backend_tests!(backend_copies, copies);
backend_tests!(backend_op_on_views, op_on_views);

/// On the emulator a copy carries the initcheck state: never-written bytes copied over written ones are
/// reported when an op reads them; overlapping copies are `Aliasing`; the device name says what it is.
#[test]
fn emu_copies_carry_initcheck_and_refuse_overlap() {
    let backend = EmuBackend::new();
    assert_eq!(backend.device_name(), "ptx-emu");
    assert_eq!(
        EmuBackend::with_model("h100-sxm", None).unwrap().device_name(),
        "ptx-emu (modelling h100-sxm)"
    );
    let (rows, d) = (2usize, 16usize);
    let shape = SwigluShape { rows, d };
    let gate = backend.upload(&random_vec::<bf16>(rows * d, 40, 1.0)).unwrap();
    let mut up = backend.upload(&random_vec::<bf16>(rows * d, 41, 1.0)).unwrap();
    let mut out = backend.alloc_poisoned::<bf16>(rows * d).unwrap();
    swiglu(&backend, &gate, &up, &mut out, shape, Rounding::MatchTorch).unwrap();
    let poisoned = backend.alloc_poisoned::<bf16>(4).unwrap();
    {
        let mut w = backend.slice_mut(&mut up, 7..11).unwrap();
        backend.copy(&poisoned, &mut w).unwrap();
    }
    let e = swiglu(&backend, &gate, &up, &mut out, shape, Rounding::MatchTorch).unwrap_err();
    assert!(
        matches!(&e, Error::Emulator { detail } if detail.contains("initcheck")),
        "{e}"
    );

    let buf = backend.upload(&random_vec::<f32>(64, 42, 1.0)).unwrap();
    let from = backend.slice(&buf, 0..16).unwrap();
    // SAFETY: a deliberately overlapping view, to test the copy's check; the emulator is memory-safe.
    let mut to = unsafe { buf.raw_view_mut(buf.addr() + 4 * 8, 16) };
    let e = backend.copy(&from, &mut to);
    assert!(matches!(e, Err(Error::Aliasing { op: "copy", .. })), "{e:?}");
}
