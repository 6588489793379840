//! Issue 9's measurements of attention v2 (bf16), for docs/performance.md.
//!
//! `cargo run --release --example attention_v2 [-- --model | --metrics]` (both by default)
//!
//! - `--metrics`: full emulation (checks off; the metrics do not depend on them) of
//!   1. prefill q 1024, kv 1024, causal, GQA 4:1 (4 heads over 1 kv head), d128: the share of the
//!      floating-point work mma.sync carries, extra shared-memory wavefronts, and the K/V bytes requested
//!      against the minimum a block of 64 packed rows needs (the keys its rows see, once for its G heads);
//!   2. decode q 1 at kv 8192, GQA 32/8, d128, batch 1 and 16, on an emulated 132-SM GPU (H100 SXM):
//!      blocks of the split kernel, and its K/V bytes against the K/V size.
//! - `--model`: ptx-emu's speed-of-light model (8 sampled block clusters and the wave probe) on an
//!   A100-SXM4-80GB and an H100 SXM at prefill seq 4096 causal GQA 32/8 d128 and the two decode shapes,
//!   against FlashAttention-2's published figure for the shape and the HBM roofline.

use half::bf16;
use llama_kernels::backend::{Backend, EmuBackend};
use llama_kernels::ops::attention::{self, SplitKv};
use llama_kernels::reference::random_vec;
use llama_kernels::{AttentionConfig, AttentionShape, DType, Result};
use ptx_emu::ir::Class;
use ptx_emu::Metrics;

/// FLOPs of one m16n8k16 mma.
const MMA_FLOPS: f64 = 2.0 * 16.0 * 8.0 * 16.0;
const E: usize = 2; // bytes per bf16

fn shape(batch: usize, q_len: usize, kv_len: usize, n_heads: usize, n_kv_heads: usize) -> AttentionShape {
    AttentionShape {
        batch,
        q_len,
        kv_len,
        n_heads,
        n_kv_heads,
        head_dim: 128,
    }
}

/// Runs attention on `emu` (never-written inputs for the model, random ones for the metrics).
fn run(emu: &EmuBackend, s: AttentionShape, random: bool) -> Result<()> {
    let q_n = s.batch * s.q_len * s.n_heads * s.head_dim;
    let kv_n = s.batch * s.kv_len * s.n_kv_heads * s.head_dim;
    let input = |n: usize, seed: u64| {
        if random {
            emu.upload(&random_vec::<bf16>(n, seed, 1.0))
        } else {
            emu.alloc_poisoned::<bf16>(n)
        }
    };
    let (q, k, v) = (input(q_n, 1)?, input(kv_n, 2)?, input(kv_n, 3)?);
    let mut o = emu.alloc_poisoned::<bf16>(q_n)?;
    attention::attention(emu, &q, &k, &v, &mut o, s, AttentionConfig::default())
}

/// The causal attention FLOPs of `s` (4·b·h·q·kv·d, halved for the square prefill).
fn flops(s: AttentionShape) -> f64 {
    let full = 4.0 * (s.batch * s.n_heads * s.q_len * s.kv_len * s.head_dim) as f64;
    if s.q_len == s.kv_len {
        full / 2.0
    } else {
        full
    }
}

fn metrics() -> Result<()> {
    let options = ptx_emu::Options {
        checks: ptx_emu::Checks::none(),
        max_instructions: 1 << 36,
        ..Default::default()
    };

    // 1. Prefill, q 1024, GQA 4:1.
    let s = shape(1, 1024, 1024, 4, 1);
    let emu = EmuBackend::with_options(options.clone()).with_sm_count(132);
    let plan = attention::plan(&emu, s, DType::BF16, SplitKv::Auto)?;
    run(&emu, s, true)?;
    let launches = emu.take_metrics();
    let mut m = Metrics::default();
    for (_, l) in &launches {
        m.add(l);
    }
    let mma_flops = m.mma as f64 * MMA_FLOPS;
    // Every fp32 thread-instruction counted as 2 FLOPs (an FMA), an upper bound on the scalar work.
    let scalar_flops = 2.0 * m.class(Class::Fp32) as f64;
    let q_bytes = (s.q_len * s.n_heads * s.head_dim * E) as u64;
    let kv_loaded = m.global_load_bytes - q_bytes;
    // The keys each block's rows see: block r holds queries 16 r .. 16 r + 15 (64 packed rows / G = 4).
    let queries_per_block = plan.block_m / (s.n_heads / s.n_kv_heads);
    let blocks = s.q_len.div_ceil(queries_per_block);
    let keys_seen: usize = (0..blocks).map(|r| ((r + 1) * queries_per_block).min(s.kv_len)).sum();
    let kv_min = (keys_seen * s.head_dim * E * 2) as u64;
    println!("| measurement | shape | value |");
    println!("|---|---|---:|");
    let name = format!(
        "prefill q {} kv {} causal GQA {}:{} d{} (`{}`, {} launches)",
        s.q_len,
        s.kv_len,
        s.n_heads,
        s.n_kv_heads,
        s.head_dim,
        plan.kernel.name,
        launches.len()
    );
    // fp32 thread-instructions are 1 FLOP (mul, add, max) or 2 (fma): the share lies between the two.
    println!(
        "| mma.sync share of floating-point work: every fp32 thread-instr as 1 FLOP / as 2 (an FMA) | {name} | {:.2}% / {:.2}% |",
        100.0 * mma_flops / (mma_flops + scalar_flops / 2.0),
        100.0 * mma_flops / (mma_flops + scalar_flops)
    );
    println!(
        "| mma FLOPs / the op's causal FLOPs (tile waste on the diagonal) | {name} | {:.3} |",
        mma_flops / flops(s)
    );
    println!(
        "| extra shared wavefronts (bank conflicts), whole kernel | {name} | {} of {} |",
        m.shared_bank_conflicts, m.shared_wavefronts
    );
    println!(
        "| K/V bytes requested / the keys each block's rows see | {name} | {:.3} ({kv_loaded} / {kv_min}) |",
        kv_loaded as f64 / kv_min as f64
    );

    // 2. Decode at kv 8192, GQA 32/8, on 132 SMs.
    for batch in [1, 16] {
        let s = shape(batch, 1, 8192, 32, 8);
        let emu = EmuBackend::with_options(options.clone()).with_sm_count(132);
        let plan = attention::plan(&emu, s, DType::BF16, SplitKv::Auto)?;
        run(&emu, s, true)?;
        let launches = emu.take_metrics();
        let (split_name, split) = &launches[0];
        let q_bytes = (batch * s.n_heads * s.head_dim * E) as u64;
        let kv_loaded = split.global_load_bytes - q_bytes;
        let kv_min = (batch * s.kv_len * s.n_kv_heads * s.head_dim * E * 2) as u64;
        let name = format!("decode b{batch} kv {} GQA 32/8 d128 (`{split_name}`)", s.kv_len);
        println!(
            "| blocks of the split kernel (2 x SMs = 264) | {name} | {} ({} splits of {} keys) |",
            split.blocks, plan.n_splits, plan.keys_per_split
        );
        println!(
            "| K/V bytes requested / K and V once | {name} | {:.3} ({kv_loaded} / {kv_min}) |",
            kv_loaded as f64 / kv_min as f64
        );
        println!(
            "| extra shared wavefronts (bank conflicts), whole kernel | {name} | {} of {} |",
            split.shared_bank_conflicts, split.shared_wavefronts
        );
    }
    Ok(())
}

fn model() -> Result<()> {
    println!("| arch | shape | kernels | predicted us | TFLOP/s | GB/s | goal | share of goal | limiter |");
    println!("|---|---|---|---:|---:|---:|---|---:|---|");
    for arch_name in ["a100-sxm4-80gb", "h100-sxm"] {
        let arch = ptx_emu::model::arch::by_name(arch_name).expect("a known arch");
        // FlashAttention-2, forward, causal, hdim 128, seqlen 4096 (docs/published-figures.md): A100
        // 159.41 TFLOP/s with 8 kv heads (liangan1/GPU_travel, row 1h); H100 SXM5 319 (FA3 paper
        // Fig. 5(d), row 2d).
        let fa2 = if arch_name.starts_with("a100") { 159.41 } else { 319.0 };
        let emu = EmuBackend::with_model(arch_name, Some(8))?;
        for (label, s) in [
            ("prefill seq 4096 causal GQA 32/8 d128", shape(1, 4096, 4096, 32, 8)),
            ("decode b1 kv 8192 GQA 32/8 d128", shape(1, 1, 8192, 32, 8)),
            ("decode b16 kv 8192 GQA 32/8 d128", shape(16, 1, 8192, 32, 8)),
        ] {
            run(&emu, s, false)?;
            let preds = emu.take_predictions();
            if std::env::var_os("ATTENTION_V2_DETAIL").is_some() {
                for (k, p) in &preds {
                    eprintln!("{arch_name} {label} {k}: {:.1} us, {} blocks, {:.2} waves, occupancy {:?}, limiter {}, units {:?}, launch {:.1} us", p.seconds * 1e6, p.blocks, p.waves, p.occupancy, p.limiter, p.units, p.launch_seconds * 1e6);
                }
            }
            let seconds: f64 = preds.iter().map(|(_, p)| p.seconds).sum();
            let names: Vec<&str> = preds.iter().map(|(k, _)| k.as_str()).collect();
            let limiter = preds
                .iter()
                .max_by(|a, b| a.1.seconds.total_cmp(&b.1.seconds))
                .map_or("-", |(_, p)| p.limiter.as_str());
            let tflops = flops(s) / seconds / 1e12;
            let bytes = (E
                * (2 * s.batch * s.q_len * s.n_heads * s.head_dim + 2 * s.batch * s.kv_len * s.n_kv_heads * s.head_dim))
                as f64;
            let gbps = bytes / seconds / 1e9;
            let (goal, share) = if s.q_len > 1 {
                (format!("FA2 {fa2} TF"), 100.0 * tflops / fa2)
            } else {
                (
                    format!("HBM {:.0} GB/s", arch.dram_bytes_s / 1e9),
                    100.0 * bytes / arch.dram_bytes_s / seconds,
                )
            };
            println!(
                "| {arch_name} | {label} | `{}` | {:.1} | {tflops:.1} | {gbps:.0} | {goal} | {share:.1}% | {limiter} |",
                names.join(" + "),
                seconds * 1e6
            );
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
