//! Issue 10's measurements of GEMM v3 (bf16, `y = x·Wᵀ`: A (m, k), B stored (n, k)), for
//! docs/performance.md.
//!
//! `cargo run --release --example gemm_v3 [-- --model | --metrics]` (both by default)
//!
//! - `--metrics`: full emulation (checks off; the metrics do not depend on them) of 256 x 512 x 2048 in
//!   every v3 configuration: extra shared-memory wavefronts (bank conflicts), the share of mma.sync in the
//!   warp-instructions, and the global bytes requested against A, B and C once.
//! - `--model`: ptx-emu's speed-of-light model (8 sampled block clusters and the wave probe) on an
//!   A100-SXM4-80GB and an H100 SXM at LLaMA-3-8B's projection shapes (prefill 4096 tokens; decode 1, 8
//!   and 32), every configuration, against cuBLAS's published figure and the HBM roofline. `*` marks the
//!   configuration `ops::gemm::plan` picks.

use half::bf16;
use llama_kernels::backend::{Backend, EmuBackend};
use llama_kernels::ops::gemm::{self, Config, Plan, Tiles};
use llama_kernels::{DType, GemmConfig, GemmShape, Result};
use ptx_emu::Metrics;

const E: usize = 2; // bytes per bf16
const NT: GemmConfig = GemmConfig {
    trans_a: false,
    trans_b: true,
    alpha: 1.0,
    beta: 0.0,
    epilogue: llama_kernels::GemmEpilogue::Linear,
};

/// LLaMA-3-8B's projections (n, k): fused qkv, o, fused gate/up, down.
const PROJECTIONS: [(&str, usize, usize); 4] = [
    ("qkv", 6144, 4096),
    ("o", 4096, 4096),
    ("gate_up", 28672, 4096),
    ("down", 4096, 14336),
];

fn run(emu: &EmuBackend, s: GemmShape, tiles: Tiles, random: bool) -> Result<()> {
    let input = |n: usize, seed: u64| {
        if random {
            emu.upload(&llama_kernels::reference::random_vec::<bf16>(n, seed, 1.0))
        } else {
            emu.alloc_poisoned::<bf16>(n)
        }
    };
    let (a, b) = (input(s.m * s.k, 1)?, input(s.n * s.k, 2)?);
    let mut c = emu.alloc_poisoned::<bf16>(s.m * s.n)?;
    gemm::gemm_with_tiles(emu, &a, &b, &mut c, s, NT, tiles)
}

fn metrics() -> Result<()> {
    let options = ptx_emu::Options {
        checks: ptx_emu::Checks::none(),
        max_instructions: 1 << 36,
        ..Default::default()
    };
    let s = GemmShape {
        m: 256,
        n: 512,
        k: 2048,
    };
    println!("| measurement | config | value |");
    println!("|---|---|---:|");
    for config in Config::ALL {
        let emu = EmuBackend::with_options(options.clone());
        run(&emu, s, Tiles::Fixed(config), true)?;
        let launches = emu.take_metrics();
        let mut m = Metrics::default();
        for (_, l) in &launches {
            m.add(l);
        }
        let name = format!("{config:?} (`{}`), {}x{}x{}", launches[0].0, s.m, s.n, s.k);
        println!(
            "| extra shared wavefronts (bank conflicts), whole kernel | {name} | {} of {} |",
            m.shared_bank_conflicts, m.shared_wavefronts
        );
        println!(
            "| mma.sync share of warp-instructions, whole kernel | {name} | {:.1}% ({} of {}) |",
            100.0 * m.mma as f64 / m.warp_instructions as f64,
            m.mma,
            m.warp_instructions
        );
        let min = ((s.m * s.k + s.n * s.k + s.m * s.n) * E) as f64;
        println!(
            "| global bytes requested / A, B, C once | {name} | {:.2} |",
            (m.global_load_bytes + m.global_store_bytes) as f64 / min
        );
    }
    Ok(())
}

fn model() -> Result<()> {
    println!("| arch | shape | config | kernel | predicted us | TFLOP/s | GB/s | goal | share of goal | limiter |");
    println!("|---|---|---|---|---:|---:|---:|---|---:|---|");
    for arch_name in ["a100-sxm4-80gb", "h100-sxm"] {
        let arch = ptx_emu::model::arch::by_name(arch_name).expect("a known arch");
        // cuBLAS bf16 at 4096³ (docs/performance.md): 244.4 TFLOP/s on an A100-SXM4-40GB (gau-nernst/learn-cuda
        // 02b_matmul_sm80/README.md), 716 on an H100 SXM (pranjalssh/fast.cu README).
        let cublas = if arch_name.starts_with("a100") { 244.4 } else { 716.0 };
        let emu = EmuBackend::with_model(arch_name, Some(8))?;
        for m in [4096, 1, 8, 32] {
            for (label, n, k) in PROJECTIONS {
                let s = GemmShape { m, n, k };
                let chosen = gemm::plan(s, DType::BF16, true, emu.sm_count());
                for config in Config::ALL {
                    run(&emu, s, Tiles::Fixed(config), false)?;
                    let preds = emu.take_predictions();
                    let (kernel, p) = &preds[0];
                    let tflops = 2.0 * (m * n * k) as f64 / p.seconds / 1e12;
                    let bytes = ((m * k + n * k + m * n) * E) as f64;
                    let gbps = bytes / p.seconds / 1e9;
                    let (goal, share) = if m > 32 {
                        (format!("cuBLAS {cublas} TF"), 100.0 * tflops / cublas)
                    } else {
                        (
                            format!("HBM {:.0} GB/s", arch.dram_bytes_s / 1e9),
                            100.0 * bytes / arch.dram_bytes_s / p.seconds,
                        )
                    };
                    let mark = if chosen == Plan::V3(config) { " *" } else { "" };
                    println!(
                        "| {arch_name} | {label} {m}x{n}x{k} | {config:?}{mark} | `{kernel}` | {:.1} | {tflops:.1} | {gbps:.0} | {goal} | {share:.1}% | {} |",
                        p.seconds * 1e6,
                        p.limiter
                    );
                }
            }
        }
    }
    Ok(())
}

fn main() -> Result<()> {
    let args: Vec<String> = std::env::args().collect();
    let (only_model, only_metrics) = (
        args.iter().any(|a| a == "--model"),
        args.iter().any(|a| a == "--metrics"),
    );
    if !only_model {
        metrics()?;
        println!();
    }
    if !only_metrics {
        model()?;
    }
    Ok(())
}
