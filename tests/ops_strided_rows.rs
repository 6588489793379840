//! RMSNorm, the fused add + RMSNorm and SwiGLU on strided rows (issue 11, item 2), on every backend,
//! against the reference on the same rows made contiguous: RMSNorm within 1 ulp (its f32 sum of squares
//! runs in another order on the scalar path), the fused op's new residual and SwiGLU bit for bit (SwiGLU
//! also against the contiguous kernel). Strides leave gaps between rows that must stay untouched; they are
//! whole 16-byte words (the vector path) or not (the scalar path); x may be one row read at stride 0;
//! SwiGLU's gate and up are two views of one fused projection. GEMM at leading dimensions (a column block
//! of a fused output as A, C into a wider buffer): the reference's error bound, and the contiguous call's
//! bits where the path is the same.

#[macro_use]
mod common;

use half::{bf16, f16};
use llama_kernels::backend::{Backend, DeviceValue, EmuBackend};
use llama_kernels::ops::gemm::{self, gemm_strided};
use llama_kernels::ops::rms_norm::{fused_add_rms_norm_strided, rms_norm_strided};
use llama_kernels::ops::swiglu::{self, swiglu_strided};
use llama_kernels::reference::{self, random_vec, to_f64_vec, Tolerance};
use llama_kernels::{
    strided_span, DType, Elem, Error, GemmConfig, GemmEpilogue, GemmLd, GemmShape, RmsNormConfig, RmsNormShape,
    RmsNormStrides, Rounding, SwigluShape, SwigluStrides,
};

/// A value the kernels never write: gaps between rows keep it.
fn sentinel<T: Elem>() -> T {
    T::from_f64(-12288.0)
}

fn bits<T: Elem>(v: &[T]) -> Vec<u8> {
    bytemuck::cast_slice(v).to_vec()
}

/// Within 1 ulp of `want`.
fn close<T: Elem>(name: &str, got: &[T], want: &[T]) {
    Tolerance::ulps(T::DTYPE, 1.0)
        .check(&to_f64_vec(got), &to_f64_vec(want))
        .unwrap_or_else(|e| panic!("{name}: {e}"));
}

/// `got` and `want` bit for bit; else the first difference.
fn same_bits<T: Elem>(name: &str, got: &[T], want: &[T]) {
    assert_eq!(got.len(), want.len(), "{name}: lengths");
    if let Some(i) = (0..got.len()).find(|&i| bits(&got[i..i + 1]) != bits(&want[i..i + 1])) {
        panic!("{name}: element {i}: {:?}, expected {:?}", got[i], want[i]);
    }
}

/// Rows `0..rows` of `d` elements at `stride`, made contiguous.
fn rows_of<T: Copy>(v: &[T], rows: usize, d: usize, stride: usize) -> Vec<T> {
    (0..rows).flat_map(|r| v[r * stride..][..d].iter().copied()).collect()
}

/// Every element of a strided buffer outside its rows is still the sentinel.
fn gaps_untouched<T: Elem>(v: &[T], rows: usize, d: usize, stride: usize) -> bool {
    v.iter()
        .enumerate()
        .filter(|(i, _)| !(i % stride.max(1) < d && i / stride.max(1) < rows))
        .all(|(_, x)| bits(std::slice::from_ref(x)) == bits(&[sentinel::<T>()]))
}

fn rms_cases<T: Elem + DeviceValue, B: Backend>(b: &B) {
    let cfg = RmsNormConfig::default();
    // (rows, hidden, x stride, out stride, residual stride): aligned strides, odd ones, x broadcast.
    for (rows, hidden, sx, so, sr) in [
        (5usize, 200usize, 208usize, 216usize, 224usize),
        (4, 72, 75, 73, 80),
        (3, 4104, 4104 + 8, 4104 + 24, 4104),
        (6, 40, 0, 48, 41),
        (1, 33, 33, 33, 33),
    ] {
        let name = format!(
            "{} rows {rows} hidden {hidden} strides x {sx} out {so} residual {sr}",
            T::DTYPE
        );
        let shape = RmsNormShape { rows, hidden };
        let span = |s| strided_span(rows, hidden, s).unwrap();
        let x = random_vec::<T>(span(sx), rows as u64, 2.0);
        let w = random_vec::<T>(hidden, 7, 1.0);
        let res = random_vec::<T>(span(sr), 9, 1.0);
        let strides = RmsNormStrides {
            x: sx,
            residual: sr,
            out: so,
        };
        let (x_d, w_d) = (b.upload(&x).unwrap(), b.upload(&w).unwrap());
        let xs = if sx == 0 {
            (0..rows).flat_map(|_| x[..hidden].iter().copied()).collect()
        } else {
            rows_of(&x, rows, hidden, sx)
        };

        // Against the reference on the same rows made contiguous, within 1 ulp (the f32 sum of squares
        // runs in another order on the scalar path than on the vector one: tests/ops_rms_norm.rs).
        let dense = reference::rms_norm(&xs, &w, shape, cfg).unwrap();
        let mut out = b.upload(&vec![sentinel::<T>(); span(so)]).unwrap();
        rms_norm_strided(b, &x_d, &w_d, &mut out, shape, strides, cfg).unwrap();
        let got = b.download(&out).unwrap();
        close(&format!("{name}: rms_norm"), &rows_of(&got, rows, hidden, so), &dense);
        assert!(gaps_untouched(&got, rows, hidden, so), "{name}: rms_norm wrote a gap");

        let mut out = b.upload(&vec![sentinel::<T>(); span(so)]).unwrap();
        let mut r_d = b.upload(&res).unwrap();
        fused_add_rms_norm_strided(b, &x_d, &mut r_d, &w_d, &mut out, shape, strides, cfg).unwrap();
        let (got, got_r) = (b.download(&out).unwrap(), b.download(&r_d).unwrap());
        let (want, want_r) =
            reference::fused_add_rms_norm(&xs, &rows_of(&res, rows, hidden, sr), &w, shape, cfg).unwrap();
        close(&format!("{name}: fused out"), &rows_of(&got, rows, hidden, so), &want);
        // The new residual is one rounding of x + residual: exact.
        same_bits(
            &format!("{name}: fused residual"),
            &rows_of(&got_r, rows, hidden, sr),
            &want_r,
        );
        assert!(
            gaps_untouched(&got, rows, hidden, so),
            "{name}: fused wrote a gap of out"
        );
        // The residual's gaps keep their own values.
        let untouched = (0..res.len())
            .filter(|i| !(i % sr < hidden && i / sr < rows))
            .all(|i| got_r[i] == res[i]);
        assert!(untouched, "{name}: fused wrote a gap of residual");
    }
}

fn rms_norm_all<B: Backend>(b: &B) {
    rms_cases::<f32, B>(b);
    rms_cases::<f16, B>(b);
    rms_cases::<bf16, B>(b);
}
backend_tests!(rms_norm_strided_rows, rms_norm_all);

fn swiglu_cases<T: Elem + DeviceValue, B: Backend>(b: &B) {
    // gate and up: two views of a fused (rows, 3d) projection [gate | up | other]; out at its own stride.
    for (rows, d, out_stride) in [(5usize, 64usize, 72usize), (3, 100, 101), (2, 2100, 2104), (1, 9, 9)] {
        let name = format!("{} rows {rows} d {d} out stride {out_stride}", T::DTYPE);
        let fused = random_vec::<T>(rows * 3 * d, d as u64, 3.0);
        let fused_d = b.upload(&fused).unwrap();
        let span = strided_span(rows, d, 3 * d).unwrap();
        let gate = b.slice(&fused_d, 0..span).unwrap();
        let up = b.slice(&fused_d, d..d + span).unwrap();
        let strides = SwigluStrides {
            gate: 3 * d,
            up: 3 * d,
            out: out_stride,
        };
        let out_len = strided_span(rows, d, out_stride).unwrap();
        let mut out = b.upload(&vec![sentinel::<T>(); out_len]).unwrap();
        let shape = SwigluShape { rows, d };
        swiglu_strided(b, &gate, &up, &mut out, shape, strides, Rounding::MatchTorch).unwrap();
        let got = b.download(&out).unwrap();
        let (g, u) = (rows_of(&fused, rows, d, 3 * d), rows_of(&fused[d..], rows, d, 3 * d));
        let (g_d, u_d) = (b.upload(&g).unwrap(), b.upload(&u).unwrap());
        let mut dense = b.alloc_poisoned::<T>(rows * d).unwrap();
        swiglu::swiglu(b, &g_d, &u_d, &mut dense, shape, Rounding::MatchTorch).unwrap();
        let want = b.download(&dense).unwrap();
        if T::DTYPE != DType::F32 {
            let r = reference::swiglu(&g, &u, shape, Rounding::MatchTorch).unwrap();
            same_bits(&format!("{name}: contiguous vs reference"), &want, &r);
        }
        same_bits(&name, &rows_of(&got, rows, d, out_stride), &want);
        assert!(gaps_untouched(&got, rows, d, out_stride), "{name}: wrote a gap");
    }
}

fn swiglu_all<B: Backend>(b: &B) {
    swiglu_cases::<f32, B>(b);
    swiglu_cases::<f16, B>(b);
    swiglu_cases::<bf16, B>(b);
}
backend_tests!(swiglu_strided_rows, swiglu_all);

#[test]
fn strided_rows_are_validated() {
    let b = EmuBackend::new();
    let cfg = RmsNormConfig::default();
    let shape = RmsNormShape { rows: 3, hidden: 16 };
    let x = b.alloc_zeros::<bf16>(strided_span(3, 16, 20).unwrap()).unwrap();
    let w = b.alloc_zeros::<bf16>(16).unwrap();
    let st = RmsNormStrides {
        x: 20,
        residual: 16,
        out: 16,
    };
    // Out rows that would overlap.
    let mut out = b.alloc_zeros::<bf16>(40).unwrap();
    let e = rms_norm_strided(&b, &x, &w, &mut out, shape, RmsNormStrides { out: 12, ..st }, cfg).unwrap_err();
    assert!(matches!(e, Error::InvalidShape { .. }), "{e}");
    // A buffer that is not exactly its span.
    let mut out = b.alloc_zeros::<bf16>(47).unwrap();
    let e = rms_norm_strided(&b, &x, &w, &mut out, shape, st, cfg).unwrap_err();
    assert!(matches!(e, Error::ShapeMismatch { tensor: "out", .. }), "{e}");
    // out over x at another stride.
    // SAFETY: a view the op must reject before any launch.
    let mut on_x = unsafe { x.raw_view_mut(x.addr(), 48) };
    let e = rms_norm_strided(&b, &x, &w, &mut on_x, shape, st, cfg).unwrap_err();
    assert!(matches!(e, Error::Aliasing { .. }), "{e}");
    // In place (out is x, same stride) is allowed.
    let x_in = b.upload(&random_vec::<bf16>(48, 1, 1.0)).unwrap();
    // SAFETY: out is exactly x (same address and stride): the kernel reads each row before writing it.
    let mut same = unsafe { x_in.raw_view_mut(x_in.addr(), 48) };
    let st16 = RmsNormStrides::contiguous(16);
    rms_norm_strided(&b, &x_in, &w, &mut same, shape, st16, cfg).unwrap();
    // SwiGLU: gate of the wrong span.
    let g = b.alloc_zeros::<f16>(10).unwrap();
    let mut o = b.alloc_zeros::<f16>(8).unwrap();
    let e = swiglu_strided(
        &b,
        &g,
        &g,
        &mut o,
        SwigluShape { rows: 2, d: 4 },
        SwigluStrides::contiguous(4),
        Rounding::Once,
    )
    .unwrap_err();
    assert!(matches!(e, Error::ShapeMismatch { tensor: "gate", .. }), "{e}");
    assert_eq!(DType::F16, f16::DTYPE);
}

/// GEMM on column blocks of wider matrices: `A` the q columns of a fused QKV output, `C` written into a
/// wider buffer. With leading dimensions that keep the tensor-core path, the result is the contiguous
/// call's bit for bit; with odd ones (v2 stages elementwise) it meets the reference's error bound.
fn gemm_cases<T: Elem + DeviceValue, B: Backend>(b: &B) {
    let cfg = GemmConfig {
        trans_a: false,
        trans_b: true,
        alpha: 1.0,
        beta: 0.0,
        epilogue: GemmEpilogue::Linear,
    };
    // (m, n, k, A's row in the fused buffer, C's row): decode-sized and prefill-sized m.
    for (m, n, k, lda, ldc) in [
        (4usize, 96usize, 64usize, 64 + 2 * 32, 104usize),
        (70, 80, 128, 128 + 2 * 64, 88),
        (5, 40, 24, 24 + 11, 41),
    ] {
        let name = format!("{} gemm m {m} n {n} k {k} lda {lda} ldc {ldc}", T::DTYPE);
        let fused = random_vec::<T>(m * lda, k as u64, 1.0);
        let w = random_vec::<T>(n * k, 5, 0.2);
        let fused_d = b.upload(&fused).unwrap();
        let a_view = b.slice(&fused_d, 0..strided_span(m, k, lda).unwrap()).unwrap();
        let w_d = b.upload(&w).unwrap();
        let c_len = strided_span(m, n, ldc).unwrap();
        let mut c = b.upload(&vec![sentinel::<T>(); c_len]).unwrap();
        let shape = GemmShape { m, n, k };
        let ld = GemmLd { lda, ldb: k, ldc };
        gemm_strided(b, &a_view, &w_d, &mut c, shape, ld, cfg).unwrap();
        let got = b.download(&c).unwrap();
        assert!(gaps_untouched(&got, m, n, ldc), "{name}: wrote a gap");
        let got = rows_of(&got, m, n, ldc);
        let a = rows_of(&fused, m, k, lda);
        common::gemm::check_oracle(&got, &a, &w, &vec![T::from_f64(0.0); m * n], shape, cfg)
            .unwrap_or_else(|e| panic!("{name}: {e}"));
        if T::DTYPE != DType::F32 && lda % 8 == 0 && ldc % 8 == 0 {
            let a_d = b.upload(&a).unwrap();
            let mut dense = b.alloc_poisoned::<T>(m * n).unwrap();
            gemm::gemm(b, &a_d, &w_d, &mut dense, shape, cfg).unwrap();
            same_bits(&name, &got, &b.download(&dense).unwrap());
        }
    }
    // A leading dimension under its matrix's columns.
    let x = b.alloc_zeros::<T>(64).unwrap();
    let mut y = b.alloc_zeros::<T>(64).unwrap();
    let bad = GemmLd { lda: 4, ldb: 8, ldc: 8 };
    let e = gemm_strided(b, &x, &x, &mut y, GemmShape { m: 8, n: 8, k: 8 }, bad, cfg).unwrap_err();
    assert!(matches!(e, Error::InvalidShape { .. }), "{e}");
}

fn gemm_all<B: Backend>(b: &B) {
    gemm_cases::<f32, B>(b);
    gemm_cases::<f16, B>(b);
    gemm_cases::<bf16, B>(b);
}
backend_tests!(gemm_strided_leading_dimensions, gemm_all);
