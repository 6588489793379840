//! Issue 10's measurements of GEMM v3 (bf16, `y = x·Wᵀ`: A (m, k), B stored (n, k)), for
//! docs/performance.md.
//!
//! `cargo run --release --example gemm_v3 [-- --model | --metrics | --decode]` (all by default)
//!
//! - `--metrics`: full emulation (checks off; the metrics do not depend on them) of 256 x 512 x 2048 in
//!   every v3 configuration: extra shared-memory wavefronts (bank conflicts), the share of mma.sync in the
//!   warp-instructions, and the global bytes requested against A, B and C once.
//! - `--model`: ptx-emu's speed-of-light model (8 sampled block clusters and the wave probe) on an
//!   A100-SXM4-80GB and an H100 SXM at LLaMA-3-8B's projection shapes (prefill 4096 tokens; decode 1, 8
//!   and 32), every configuration, against cuBLAS's published figure and the HBM roofline. `*` marks the
//!   configuration `ops::gemm::plan` picks.
//! - `--decode`: the decode path (`cuda/gemm_decode.cu`) at m = 1, 8, 16: the model on both GPUs with the
//!   op's own split, unsplit, and v3's 64x64 tile for comparison (the sum over the launches: the split
//!   kernel and its reduction); and full emulation of m = 16, 4096 x 4096 for the bytes requested (against
//!   W, x and C once) and the mma share.

use half::bf16;
use llama_kernels::backend::{Backend, EmuBackend};
use llama_kernels::ops::gemm::{self, Config, Decode, DecodeShape, Plan, Tiles};
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

/// The decode shapes: the projections, and LLaMA-3-8B's unfused k or v projection (8 kv heads of 128).
const DECODE_PROJECTIONS: [(&str, usize, usize); 5] = [
    PROJECTIONS[0],
    PROJECTIONS[1],
    PROJECTIONS[2],
    PROJECTIONS[3],
    ("k or v", 1024, 4096),
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

/// The decode path at LLaMA-3-8B's decode shapes: the model's time against the HBM roofline, per choice.
fn decode() -> Result<()> {
    println!("| arch | shape | path | kernels | predicted us | GB/s | share of HBM | limiter |");
    println!("|---|---|---|---|---:|---:|---:|---|");
    for arch_name in ["a100-sxm4-80gb", "h100-sxm"] {
        let arch = ptx_emu::model::arch::by_name(arch_name).expect("a known arch");
        let emu = EmuBackend::with_model(arch_name, Some(8))?;
        for m in [1usize, 8, 16] {
            for (label, n, k) in DECODE_PROJECTIONS {
                let s = GemmShape { m, n, k };
                let auto = gemm::plan_call(s, NT, 1, DType::BF16, true, emu.sm_count());
                let Plan::Decode(Decode { shape, split }) = auto else {
                    panic!("{s:?} plans {auto:?}")
                };
                let sms = emu.sm_count() as usize;
                let wide_splits = gemm::Split::of(s.k, (2 * sms).div_ceil(s.n.div_ceil(128))).count;
                let mut choices = vec![(
                    format!("{shape:?}, {} split(s) *", split.count),
                    Tiles::Decode(shape, split.count),
                )];
                for (other, count) in [
                    (DecodeShape::Wide, 1),
                    (DecodeShape::Wide, wide_splits),
                    (DecodeShape::Narrow, 1),
                    (
                        DecodeShape::Narrow,
                        gemm::Split::of(s.k, (2 * sms).div_ceil(s.n.div_ceil(32))).count,
                    ),
                ] {
                    if (other, count) != (shape, split.count)
                        && !choices.iter().any(|c| c.1 == Tiles::Decode(other, count))
                    {
                        choices.push((format!("{other:?}, {count} split(s)"), Tiles::Decode(other, count)));
                    }
                }
                choices.push(("v3 Small".to_string(), Tiles::Fixed(Config::Small)));
                for (path, tiles) in choices {
                    run(&emu, s, tiles, false)?;
                    let preds = emu.take_predictions();
                    let seconds: f64 = preds.iter().map(|(_, p)| p.seconds).sum();
                    if std::env::var_os("GEMM_V3_SUMMARY").is_some() {
                        for (k, p) in &preds {
                            eprintln!("{arch_name} {s:?} {path} {k}: {}", p.summary());
                        }
                    }
                    let kernels: Vec<&str> = preds.iter().map(|(k, _)| k.as_str()).collect();
                    let bytes = ((m * k + n * k + m * n) * E) as f64;
                    println!(
                        "| {arch_name} | {label} {m}x{n}x{k} | {path} | `{}` | {:.1} | {:.0} | {:.1}% | {} |",
                        kernels.join("` + `"),
                        seconds * 1e6,
                        bytes / seconds / 1e9,
                        100.0 * bytes / arch.dram_bytes_s / seconds,
                        preds[0].1.limiter
                    );
                }
            }
        }
    }
    // Bytes requested and the mma share, full emulation (checks off).
    let options = ptx_emu::Options {
        checks: ptx_emu::Checks::none(),
        max_instructions: 1 << 36,
        ..Default::default()
    };
    println!();
    println!("| measurement | shape | path | value |");
    println!("|---|---|---|---:|");
    for (m, decode_shape, count) in [
        (16usize, DecodeShape::Narrow, 1usize),
        (16, DecodeShape::Wide, 1),
        (16, DecodeShape::Narrow, 3),
        (1, DecodeShape::Narrow, 1),
    ] {
        let s = GemmShape { m, n: 4096, k: 4096 };
        let emu = EmuBackend::with_options(options.clone());
        run(&emu, s, Tiles::Decode(decode_shape, count), true)?;
        let launches = emu.take_metrics();
        let mut t = Metrics::default();
        for (_, l) in &launches {
            t.add(l);
        }
        let shape = format!("{m}x{}x{}", s.n, s.k);
        let path = format!("{decode_shape:?}, {count} split(s)");
        let w = (s.n * s.k * E) as f64;
        let min = w + ((s.m * s.k + s.m * s.n) * E) as f64;
        println!(
            "| global bytes requested / W, x, C once | {shape} | {path} | {:.3} |",
            (t.global_load_bytes + t.global_store_bytes) as f64 / min
        );
        // x's staging is m·k·2 bytes per block (of 128 or 32 W rows); the split partials are m·n·4 per
        // split, written once and read once. What remains is W's stream.
        let blocks = s.n.div_ceil(decode_shape.block_n()) as f64;
        let x_reads = blocks * (s.m * s.k * E) as f64;
        let partials = if count > 1 {
            2.0 * (count * s.m * s.n * 4) as f64
        } else {
            0.0
        };
        let c_writes = (s.m * s.n * E) as f64;
        let w_requested = (t.global_load_bytes + t.global_store_bytes) as f64 - x_reads - partials - c_writes;
        println!("| W bytes requested / W | {shape} | {path} | {:.3} |", w_requested / w);
        println!(
            "| mma.sync share of warp-instructions | {shape} | {path} | {:.1}% ({} of {}) |",
            100.0 * t.mma as f64 / t.warp_instructions as f64,
            t.mma,
            t.warp_instructions
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
        for m in [4096, 32] {
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
    let picked = |flag: &str| args.iter().any(|a| a == flag);
    let all = !picked("--model") && !picked("--metrics") && !picked("--decode");
    if all || picked("--metrics") {
        metrics()?;
        println!();
    }
    if all || picked("--model") {
        model()?;
        println!();
    }
    if all || picked("--decode") {
        decode()?;
    }
    Ok(())
}
