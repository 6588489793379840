//! Criterion benchmarks on a GPU: our GEMM against cuBLAS at LLaMA-3-8B projection shapes, and attention
//! (prefill and decode). Without a CUDA device it prints why and exits 0; the emulator's metrics
//! (instructions, coalescing, bank conflicts) are in `docs/performance.md`, from
//! `cargo run --release --example emu_metrics`.
//!
//! `cargo bench --bench vs_cublas` (results in `target/criterion/`; record them in docs/performance.md).

use std::hint::black_box;

use criterion::{BenchmarkId, Criterion, Throughput};
use cudarc::cublas::{sys::cublasOperation_t, CudaBlas, Gemm, GemmConfig as BlasConfig};
use half::bf16;
use llama_kernels::backend::{Backend, CudaBackend};
use llama_kernels::ops::{attention, gemm};
use llama_kernels::reference::random_vec;
use llama_kernels::{AttentionConfig, AttentionShape, GemmConfig, GemmShape};

/// `(m, n, k)` of `y = x·Wᵀ` in LLaMA-3-8B: q/o projection and FFN up/gate, for decode (m = 1..16) and
/// prefill (m = 512).
const GEMM_SHAPES: &[(usize, usize, usize)] = &[
    (1, 4096, 4096),
    (16, 4096, 4096),
    (512, 4096, 4096),
    (512, 14336, 4096),
    (512, 4096, 14336),
];

fn bench_gemm(c: &mut Criterion, backend: &CudaBackend) {
    let blas = CudaBlas::new(backend.stream().clone()).expect("cuBLAS handle");
    let mut group = c.benchmark_group("gemm_bf16_xwt");
    for &(m, n, k) in GEMM_SHAPES {
        let a = backend.upload(&random_vec::<bf16>(m * k, 1, 1.0)).expect("upload");
        let b = backend.upload(&random_vec::<bf16>(n * k, 2, 1.0)).expect("upload");
        let mut out = backend.alloc_poisoned::<bf16>(m * n).expect("alloc");
        group.throughput(Throughput::Elements((2 * m * n * k) as u64)); // flops
        let id = format!("{m}x{n}x{k}");
        let shape = GemmShape { m, n, k };
        let cfg = GemmConfig {
            trans_a: false,
            trans_b: true,
            alpha: 1.0,
            beta: 0.0,
        };
        group.bench_function(BenchmarkId::new("llama-kernels", &id), |bench| {
            bench.iter(|| {
                gemm::gemm(backend, &a, &b, &mut out, shape, cfg).expect("launch");
                backend.synchronize().expect("sync");
            })
        });
        // Row-major C (m, n) = A (m, k) · Bᵀ is column-major Cᵀ (n, m) = op(B) · A with B read transposed.
        let blas_cfg = BlasConfig {
            transa: cublasOperation_t::CUBLAS_OP_T,
            transb: cublasOperation_t::CUBLAS_OP_N,
            m: n as i32,
            n: m as i32,
            k: k as i32,
            alpha: bf16::ONE,
            lda: k as i32,
            ldb: k as i32,
            beta: bf16::ZERO,
            ldc: n as i32,
        };
        group.bench_function(BenchmarkId::new("cublas", &id), |bench| {
            bench.iter(|| {
                // SAFETY: the buffers hold n·k, m·k and m·n elements, matching the dimensions and leading
                // dimensions of blas_cfg; all live on the stream the handle uses.
                unsafe { blas.gemm(blas_cfg, &b, &a, &mut out) }.expect("cublas");
                backend.synchronize().expect("sync");
            })
        });
    }
    group.finish();
}

fn bench_attention(c: &mut Criterion, backend: &CudaBackend) {
    let mut group = c.benchmark_group("attention_bf16");
    let prefill = AttentionShape {
        batch: 1,
        q_len: 2048,
        kv_len: 2048,
        n_heads: 32,
        n_kv_heads: 8,
        head_dim: 128,
    };
    let decode = AttentionShape {
        batch: 16,
        q_len: 1,
        kv_len: 4096,
        ..prefill
    };
    for (name, s) in [("prefill_2k", prefill), ("decode_b16_kv4k", decode)] {
        let q_n = s.batch * s.q_len * s.n_heads * s.head_dim;
        let kv_n = s.batch * s.kv_len * s.n_kv_heads * s.head_dim;
        let q = backend.upload(&random_vec::<bf16>(q_n, 1, 1.0)).expect("upload");
        let k = backend.upload(&random_vec::<bf16>(kv_n, 2, 1.0)).expect("upload");
        let v = backend.upload(&random_vec::<bf16>(kv_n, 3, 1.0)).expect("upload");
        let mut o = backend.alloc_poisoned::<bf16>(q_n).expect("alloc");
        // Bytes of q, k, v and o: decode is bound by reading the KV cache.
        group.throughput(Throughput::Bytes((2 * (2 * q_n + 2 * kv_n)) as u64));
        group.bench_function(name, |bench| {
            bench.iter(|| {
                attention::attention(backend, &q, &k, &v, &mut o, s, AttentionConfig::default()).expect("launch");
                backend.synchronize().expect("sync");
            })
        });
    }
    group.finish();
}

fn main() {
    let backend = match CudaBackend::open(0) {
        Ok(b) => b,
        Err(why) => {
            println!("skipping the GPU benchmarks: {why}");
            return;
        }
    };
    println!("benchmarking on {}", backend.name());
    let mut c = Criterion::default().configure_from_args();
    bench_gemm(&mut c, &backend);
    bench_attention(&mut c, &backend);
    black_box(&backend);
    c.final_summary();
}
