//! The GPU bench: every op at the LLaMA-3-8B shapes of `examples/roofline.rs`, timed with CUDA events
//! (not wall clock around a synchronize): warm-up launches, then `BENCH_REPS` (default 20) repetitions,
//! each after an L2 flush (a memset of a buffer twice the L2), the median reported. Each row prints
//! TFLOP/s and GB/s beside the GPU's peak (ptx-emu's arch table) and the speed-of-light model's
//! prediction for the same launch; GEMMs also run cuBLAS, timed the same way, and our output is checked
//! against cuBLAS's.
//!
//! Units (`benches/support/llama_cases.rs`, shared with the roofline example): GEMM 2mnk FLOPs;
//! attention 4·b·h·q·kv·d, halved for causal prefill; bytes (each input read once, each output written
//! once) for RMSNorm, RoPE, SwiGLU, and the decode GEMMs and attention.
//!
//! `cargo bench --bench vs_cublas` (`BENCH_JSON=path` also writes one JSON object per row;
//! `BENCH_NO_MODEL=1` skips the predictions). Without a CUDA device it prints why and exits 0.

#[path = "support/llama_cases.rs"]
mod llama_cases;

use cudarc::cublas::{sys::cublasOperation_t, CudaBlas, Gemm, GemmConfig as BlasConfig};
use cudarc::driver::sys::{CUdevice_attribute, CUevent_flags};
use half::bf16;
use llama_cases::{buffers, cases, launch, Case, T};
use llama_kernels::backend::{Backend, CudaBackend, EmuBackend};

/// Median seconds of `reps` runs of `f`, each after an L2 flush, timed by CUDA events.
fn time(backend: &CudaBackend, flush: &mut cudarc::driver::CudaSlice<u8>, reps: usize, mut f: impl FnMut()) -> f64 {
    let stream = backend.stream();
    for _ in 0..3 {
        f();
    }
    let mut ms = vec![];
    for _ in 0..reps {
        stream.memset_zeros(flush).expect("L2 flush");
        let start = stream
            .record_event(Some(CUevent_flags::CU_EVENT_DEFAULT))
            .expect("event");
        f();
        let end = stream
            .record_event(Some(CUevent_flags::CU_EVENT_DEFAULT))
            .expect("event");
        ms.push(start.elapsed_ms(&end).expect("elapsed") as f64);
    }
    ms.sort_by(|a, b| a.total_cmp(b));
    ms[ms.len() / 2] * 1e-3
}

/// The model's arch for a device name (`NVIDIA H100 80GB HBM3` -> h100-sxm).
fn arch_for(name: &str) -> Option<ptx_emu::Arch> {
    let n = name.to_lowercase();
    let pick = if n.contains("h200") {
        "h200"
    } else if n.contains("h100") && n.contains("pcie") {
        "h100-pcie"
    } else if n.contains("h100") {
        "h100-sxm"
    } else if n.contains("a100") && n.contains("pcie") {
        "a100-pcie-80gb"
    } else if n.contains("a100") && n.contains("80") {
        "a100-sxm4-80gb"
    } else if n.contains("a100") {
        "a100-sxm4-40gb"
    } else if n.contains("l4") {
        "l4"
    } else if n.contains("a6000") {
        "rtx-a6000"
    } else if n.contains("4090") {
        "rtx-4090"
    } else if n.contains("5090") {
        "rtx-5090"
    } else {
        return None;
    };
    ptx_emu::model::arch::by_name(pick)
}

fn main() {
    let backend = match CudaBackend::open(0) {
        Ok(b) => b,
        Err(why) => {
            println!("skipping the GPU benchmarks: {why}");
            return;
        }
    };
    let ctx = backend.stream().context().clone();
    let device = ctx.name().unwrap_or_else(|_| "unknown".into());
    let arch = arch_for(&device);
    let reps: usize = std::env::var("BENCH_REPS")
        .ok()
        .and_then(|r| r.parse().ok())
        .unwrap_or(20)
        .max(1);
    let l2 = ctx
        .attribute(CUdevice_attribute::CU_DEVICE_ATTRIBUTE_L2_CACHE_SIZE)
        .unwrap_or(64 << 20)
        .max(1 << 20) as usize;
    let mut flush = backend.stream().alloc_zeros::<u8>(2 * l2).expect("flush buffer");
    let model = match (&arch, std::env::var_os("BENCH_NO_MODEL")) {
        (Some(a), None) => EmuBackend::with_model(a.name, Some(8)).ok(),
        _ => None,
    };
    let blas = CudaBlas::new(backend.stream().clone()).expect("cuBLAS handle");
    let mut json = std::env::var("BENCH_JSON")
        .ok()
        .and_then(|p| std::fs::File::create(p).ok());
    println!(
        "device: {device}; model arch: {}; {reps} reps, median, L2 flushed ({} MiB) before each",
        arch.as_ref().map_or("none", |a| a.name),
        (2 * l2) >> 20
    );
    println!("| case | median us | TFLOP/s | GB/s | % of peak | model us | model / measured | cuBLAS us | check |");
    println!("|---|---:|---:|---:|---:|---:|---:|---:|---|");
    for (shape, c) in cases() {
        let name = format!("{} {shape}", c.op());
        let mut bufs = buffers(&backend, c, true).expect("buffers");
        let secs = time(&backend, &mut flush, reps, || {
            launch(&backend, c, &mut bufs).expect("launch")
        });
        let (flops, bytes) = c.work();
        let pct = arch.as_ref().map(|a| {
            let roof = (flops / a.mma_flops()).max(bytes / a.dram_bytes_s);
            100.0 * roof / secs
        });
        let predicted = model.as_ref().and_then(|m| {
            let mut mb = buffers(m, c, false).ok()?;
            launch(m, c, &mut mb).ok()?;
            m.take_predictions().pop().map(|p| p.1.seconds)
        });
        let (mut blas_s, mut check) = (None, String::from("-"));
        if let Case::Gemm(m, n, k) = c {
            let cfg = BlasConfig {
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
            let mut reference = backend.alloc_poisoned::<T>(m * n).expect("alloc");
            let (a, b) = (&bufs.x[0], &bufs.x[1]);
            // SAFETY: a holds m·k, b holds n·k and reference m·n elements, matching cfg's dimensions and
            // leading dimensions (row-major C = A·Bᵀ is column-major Cᵀ = op(B)·A); all on the handle's stream.
            blas_s = Some(time(&backend, &mut flush, reps, || {
                unsafe { blas.gemm(cfg, b, a, &mut reference) }.expect("cublas")
            }));
            let ours = backend.download(&bufs.x[2]).expect("download");
            let theirs = backend.download(&reference).expect("download");
            let scale = theirs
                .iter()
                .map(|v| v.to_f32().abs())
                .fold(0.0f32, f32::max)
                .max(f32::MIN_POSITIVE);
            let worst = ours
                .iter()
                .zip(&theirs)
                .map(|(a, b)| (a.to_f32() - b.to_f32()).abs())
                .fold(0.0f32, f32::max);
            // Both round the f32 accumulator to bf16 once (2^-8 relative), in different summation orders.
            check = if worst / scale <= 1.0 / 64.0 {
                format!("ok ({:.1e})", worst / scale)
            } else {
                format!("MISMATCH ({:.1e})", worst / scale)
            };
        }
        let fmt = |x: Option<f64>, f: &dyn Fn(f64) -> String| x.map_or("-".into(), f);
        println!(
            "| {name} | {:.1} | {:.2} | {:.0} | {} | {} | {} | {} | {check} |",
            secs * 1e6,
            flops / secs / 1e12,
            bytes / secs / 1e9,
            fmt(pct, &|p| format!("{p:.1}%")),
            fmt(predicted, &|p| format!("{:.1}", p * 1e6)),
            fmt(predicted, &|p| format!("{:.2}", p / secs)),
            fmt(blas_s, &|b| format!("{:.1}", b * 1e6)),
        );
        if let Some(f) = json.as_mut() {
            use std::io::Write as _;
            let opt = |x: Option<f64>| x.map_or("null".into(), |v| format!("{v:.6e}"));
            let _ = writeln!(
                f,
                "{{\"case\": \"{name}\", \"device\": \"{device}\", \"seconds\": {secs:.6e}, \"tflops\": {:.3}, \"gbps\": {:.1}, \"pct_peak\": {}, \"model_seconds\": {}, \"cublas_seconds\": {}, \"check\": \"{check}\"}}",
                flops / secs / 1e12,
                bytes / secs / 1e9,
                pct.map_or("null".into(), |p| format!("{p:.2}")),
                opt(predicted),
                opt(blas_s)
            );
        }
    }
}
