//! GEMM test helpers shared by tests/ops_gemm_epilogues.rs and tests/ops_gemm_decode.rs.

use llama_kernels::backend::{Backend, DeviceValue};
use llama_kernels::ops::gemm::{gemm_batched_with_tiles, Tiles};
use llama_kernels::reference::{self, check_2x_rule, check_abs_bound, to_f64_vec};
use llama_kernels::{DType, Elem, Error, GemmBatch, GemmConfig, GemmEpilogue, GemmShape, GEMM_SWIGLU_BLOCK};

/// Runs one GEMM of (a, b, c0) with `cfg`, the batch and the rung; returns C as downloaded.
#[allow(clippy::too_many_arguments)]
pub fn run<T: Elem + DeviceValue, B: Backend>(
    backend: &B,
    a: &[T],
    b: &[T],
    c0: &[T],
    shape: GemmShape,
    cfg: GemmConfig,
    batch: GemmBatch,
    tiles: Tiles,
) -> Result<Vec<T>, String> {
    let err = |e: Error| format!("{shape:?} {cfg:?} {batch:?} {tiles:?}: {e}");
    let a_d = backend.upload(a).map_err(err)?;
    let b_d = backend.upload(b).map_err(err)?;
    let reads_c = cfg.epilogue != GemmEpilogue::Linear || cfg.beta != 0.0;
    // A write-only C starts poisoned (initcheck fires on a read of it on the emulator).
    let mut c_d = if reads_c || batch.count > 1 {
        backend.upload(c0).map_err(err)?
    } else {
        backend.alloc_poisoned::<T>(c0.len()).map_err(err)?
    };
    gemm_batched_with_tiles(backend, &a_d, &b_d, &mut c_d, shape, cfg, batch, tiles).map_err(err)?;
    backend.download(&c_d).map_err(err)
}

/// The kernel's C against the f64 oracle: the reference's bound, and the 2x rule for f16/bf16.
pub fn check_oracle<T: Elem>(
    got: &[T],
    a: &[T],
    b: &[T],
    c0: &[T],
    shape: GemmShape,
    cfg: GemmConfig,
) -> Result<(), String> {
    let err = |e: Error| format!("{shape:?} {cfg:?}: {e}");
    let got = to_f64_vec(got);
    let oracle = reference::gemm_f64(a, b, c0, shape, cfg).map_err(err)?;
    let bound = reference::gemm_error_bound(a, b, c0, shape, cfg).map_err(err)?;
    check_abs_bound(T::DTYPE, &got, &oracle, &bound, 1.0, 0.0).map_err(|e| format!("{shape:?} {cfg:?}: {e}"))?;
    if T::DTYPE != DType::F32 {
        let naive = to_f64_vec(&reference::gemm_naive(a, b, c0, shape, cfg).map_err(err)?);
        check_2x_rule(T::DTYPE, &got, &naive, &oracle, 1e-6).map_err(|e| format!("{shape:?} {cfg:?} 2x rule: {e}"))?;
    }
    Ok(())
}

pub fn bits<T: Elem>(v: &[T]) -> Vec<u64> {
    v.iter().map(|x| x.to_f64().to_bits()).collect()
}

/// De-interleaves a `(m, n)` GEMM output of interleaved gate/up columns into `(m, n/2)` gate and up.
pub fn split_gate_up<T: Copy>(out: &[T], m: usize, n: usize) -> (Vec<T>, Vec<T>) {
    let s = GEMM_SWIGLU_BLOCK;
    let (mut gate, mut up) = (Vec::new(), Vec::new());
    for i in 0..m {
        for o in 0..n / 2 {
            let g = i * n + o / s * 2 * s + o % s;
            gate.push(out[g]);
            up.push(out[g + s]);
        }
    }
    (gate, up)
}
