//! Every kernel of the crate at LLaMA-3-8B shapes, predicted by ptx-emu's speed-of-light model on an
//! A100-SXM4-80GB, an H100 SXM and an H200 (a model, not a measurement: `docs/perf-model.md` says how
//! far to trust it). Per row: predicted time, TFLOP/s or GB/s, the share of the roofline for the op's
//! FLOPs and minimum bytes (whichever of the compute peak and DRAM bandwidth binds), the share of the
//! published figure a user would otherwise get, and the unit that limits the kernel.
//!
//! `cargo run --release --example roofline [-- --json] [--arch NAME]`
//!
//! Inputs are never-written device memory (the model needs no values; checks are off in model mode),
//! and each launch emulates a sample of blocks (`SAMPLE` clusters) scaled to the grid.

use half::bf16;
use llama_kernels::backend::{Backend, EmuBackend};
use llama_kernels::ops::{attention, gemm, rms_norm, rope, swiglu};
use llama_kernels::{
    AttentionConfig, AttentionShape, GemmConfig, GemmShape, RmsNormConfig, RmsNormShape, RopeConfig, RopeLayout,
    RopeShape, Rounding, SwigluShape,
};

type T = bf16;
const E: f64 = 2.0; // bytes per bf16
const SAMPLE: u64 = 8;
const ARCHS: [&str; 3] = ["a100-sxm4-80gb", "h100-sxm", "h200"];

/// What the op must do at least.
struct Work {
    op: &'static str,
    shape: String,
    flops: f64,
    bytes: f64,
}

/// The published figure a user gets elsewhere, per arch: (name, TFLOP/s or None for "HBM roofline").
fn anchor(op: &str, flops_bound: bool, arch: &str) -> (&'static str, Option<f64>) {
    if !flops_bound {
        return ("dram roofline", None);
    }
    let a100 = arch.starts_with("a100");
    match op {
        // cuBLAS 13.0 bf16 at 4096^3 on an A100-SXM4-40GB: 244.40 TFLOP/s (gau-nernst/learn-cuda
        // 02b_matmul_sm80/README.md); cuBLAS bf16 at 4096^3 on an H100 SXM: 716 TFLOP/s
        // (pranjalssh/fast.cu README). The H200 has the H100's compute.
        "gemm" if a100 => ("cuBLAS 244.4 TF (learn-cuda)", Some(244.4)),
        "gemm" => ("cuBLAS 716 TF (fast.cu)", Some(716.0)),
        // FlashAttention-2 forward: up to 73% of the A100's 312 TF (Dao 2023, abstract); on Hopper
        // FlashAttention-3 reaches 740 TF in FP16 (Shah et al. 2024, abstract).
        "attention" if a100 => ("FA2 228 TF (Dao 2023)", Some(0.73 * 312.0)),
        "attention" => ("FA3 740 TF (Shah 2024)", Some(740.0)),
        _ => ("dram roofline", None),
    }
}

fn main() -> Result<(), llama_kernels::Error> {
    let args: Vec<String> = std::env::args().collect();
    let json = args.iter().any(|a| a == "--json");
    let only = args
        .iter()
        .position(|a| a == "--arch")
        .and_then(|i| args.get(i + 1))
        .cloned();
    if !json {
        println!(
            "| op | kernel | shape | arch | predicted us | TFLOP/s | GB/s | % of roofline | vs published | limiter |"
        );
        println!("|---|---|---|---|---:|---:|---:|---:|---:|---|");
    }
    for arch_name in ARCHS {
        if only.as_deref().is_some_and(|o| o != arch_name) {
            continue;
        }
        let arch = ptx_emu::model::arch::by_name(arch_name).expect("a known arch");
        let emu = EmuBackend::with_model(arch_name, Some(SAMPLE))?;
        for w in run_all(&emu)? {
            let (kernel, p) = w.1;
            let work = w.0;
            let peak_flops = arch.mma_flops();
            let t_flops = work.flops / peak_flops;
            let t_bytes = work.bytes / arch.dram_bytes_s;
            let roofline = t_flops.max(t_bytes);
            let pct_peak = 100.0 * roofline / p.seconds;
            let tflops = work.flops / p.seconds / 1e12;
            let gbps = work.bytes / p.seconds / 1e9;
            let (anchor_name, anchor_tf) = anchor(work.op, t_flops >= t_bytes, arch_name);
            let pct_anchor = match anchor_tf {
                Some(tf) => 100.0 * tflops / tf,
                None => pct_peak,
            };
            if json {
                println!(
                    "{{\"op\": \"{}\", \"kernel\": \"{kernel}\", \"shape\": \"{}\", \"arch\": \"{arch_name}\", \"seconds\": {:.6e}, \"tflops\": {:.3}, \"gbps\": {:.1}, \"pct_peak\": {:.2}, \"anchor\": \"{anchor_name}\", \"pct_anchor\": {:.2}, \"limiter\": \"{}\"}}",
                    work.op, work.shape, p.seconds, tflops, gbps, pct_peak, pct_anchor, p.limiter
                );
            } else {
                println!(
                    "| {} | `{kernel}` | {} | {arch_name} | {:.1} | {:.1} | {:.0} | {:.1}% | {:.1}% of {anchor_name} | {} |",
                    work.op,
                    work.shape,
                    p.seconds * 1e6,
                    tflops,
                    gbps,
                    pct_peak,
                    pct_anchor,
                    p.limiter
                );
            }
        }
    }
    Ok(())
}

type Row = (Work, (String, ptx_emu::Prediction));

fn run_all(emu: &EmuBackend) -> Result<Vec<Row>, llama_kernels::Error> {
    let mut work = vec![];
    let (hidden, ffn, heads, kv_heads, d) = (4096usize, 14336usize, 32usize, 8usize, 128usize);
    let gcfg = GemmConfig {
        trans_a: false,
        trans_b: true,
        alpha: 1.0,
        beta: 0.0,
    };
    // GEMMs y = x·Wᵀ: prefill at 4096 tokens, decode at batch 1, 8, 32.
    let gemms = [
        ("qkv", 6144usize, 4096usize),
        ("o", 4096, 4096),
        ("gate_up", 28672, 4096),
        ("down", 4096, 14336),
    ];
    for (phase, m) in [
        ("prefill", 4096usize),
        ("decode b1", 1),
        ("decode b8", 8),
        ("decode b32", 32),
    ] {
        for (name, n, k) in gemms {
            let a = emu.alloc_poisoned::<T>(m * k)?;
            let b = emu.alloc_poisoned::<T>(n * k)?;
            let mut c = emu.alloc_poisoned::<T>(m * n)?;
            gemm::gemm(emu, &a, &b, &mut c, GemmShape { m, n, k }, gcfg)?;
            work.push(Work {
                op: "gemm",
                shape: format!("{phase} {name} {m}x{n}x{k}"),
                flops: 2.0 * (m * n * k) as f64,
                bytes: E * (m * k + n * k + m * n) as f64,
            });
        }
    }
    // Attention, causal GQA 32/8, d 128: prefill of 4096 tokens; decode of one token over 8192 keys.
    for (phase, batch, q_len, kv_len) in [
        ("prefill", 1usize, 4096usize, 4096usize),
        ("decode b1", 1, 1, 8192),
        ("decode b8", 8, 1, 8192),
        ("decode b32", 32, 1, 8192),
    ] {
        let s = AttentionShape {
            batch,
            q_len,
            kv_len,
            n_heads: heads,
            n_kv_heads: kv_heads,
            head_dim: d,
        };
        let q = emu.alloc_poisoned::<T>(batch * q_len * heads * d)?;
        let k = emu.alloc_poisoned::<T>(batch * kv_len * kv_heads * d)?;
        let v = emu.alloc_poisoned::<T>(batch * kv_len * kv_heads * d)?;
        let mut o = emu.alloc_poisoned::<T>(batch * q_len * heads * d)?;
        attention::attention(emu, &q, &k, &v, &mut o, s, AttentionConfig::default())?;
        // 4·b·h·q·kv·d, halved for causal (the prefill's square; a decode query sees every key).
        let full = 4.0 * (batch * heads * q_len * kv_len * d) as f64;
        work.push(Work {
            op: "attention",
            shape: format!("{phase} q {q_len} kv {kv_len} GQA 32/8 d128"),
            flops: if q_len == kv_len { full / 2.0 } else { full },
            bytes: E * (2 * batch * q_len * heads * d + 2 * batch * kv_len * kv_heads * d) as f64,
        });
    }
    // RMSNorm, RoPE, SwiGLU at 4096 tokens and at decode batch 32.
    for (phase, tokens) in [("prefill", 4096usize), ("decode b32", 32)] {
        let x = emu.alloc_poisoned::<T>(tokens * hidden)?;
        let w = emu.alloc_poisoned::<T>(hidden)?;
        let mut out = emu.alloc_poisoned::<T>(tokens * hidden)?;
        rms_norm::rms_norm(
            emu,
            &x,
            &w,
            &mut out,
            RmsNormShape { rows: tokens, hidden },
            RmsNormConfig::default(),
        )?;
        work.push(Work {
            op: "rms_norm",
            shape: format!("{phase} {tokens}x{hidden}"),
            flops: 4.0 * (tokens * hidden) as f64,
            bytes: E * (2 * tokens * hidden + hidden) as f64,
        });
        let mut q = emu.alloc_poisoned::<T>(tokens * heads * d)?;
        let mut k = emu.alloc_poisoned::<T>(tokens * kv_heads * d)?;
        let pos = emu.upload(&(0..tokens as i32).collect::<Vec<i32>>())?;
        let cfg = RopeConfig {
            theta: 500000.0,
            rotary_dim: d,
            layout: RopeLayout::Interleaved,
            scaling: Some(llama_kernels::Llama3Scaling::LLAMA_3_1),
        };
        let rs = RopeShape {
            tokens,
            n_heads: heads,
            n_kv_heads: kv_heads,
            head_dim: d,
        };
        rope::rope_with_config(emu, &mut q, Some(&mut k), &pos, rs, cfg)?;
        let qk = (tokens * (heads + kv_heads) * d) as f64;
        work.push(Work {
            op: "rope",
            shape: format!("{phase} {tokens} tok, 32+8 heads x128"),
            flops: 3.0 * qk,
            bytes: 2.0 * E * qk + 4.0 * tokens as f64,
        });
        let gate = emu.alloc_poisoned::<T>(tokens * ffn)?;
        let up = emu.alloc_poisoned::<T>(tokens * ffn)?;
        let mut act = emu.alloc_poisoned::<T>(tokens * ffn)?;
        swiglu::swiglu(
            emu,
            &gate,
            &up,
            &mut act,
            SwigluShape { rows: tokens, d: ffn },
            Rounding::MatchTorch,
        )?;
        work.push(Work {
            op: "swiglu",
            shape: format!("{phase} {tokens}x{ffn}"),
            flops: 6.0 * (tokens * ffn) as f64,
            bytes: 3.0 * E * (tokens * ffn) as f64,
        });
    }
    let preds = emu.take_predictions();
    if preds.len() != work.len() {
        return Err(llama_kernels::Error::Emulator {
            detail: format!(
                "{} launches for {} ops (an op launched more than one kernel)",
                preds.len(),
                work.len()
            ),
        });
    }
    Ok(work.into_iter().zip(preds).collect())
}
