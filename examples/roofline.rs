//! Every kernel of the crate at LLaMA-3-8B shapes, predicted by ptx-emu's speed-of-light model on an
//! A100-SXM4-80GB, an H100 SXM and an H200 (a model, not a measurement: `docs/perf-model.md` says how
//! far to trust it). Per row: predicted time, TFLOP/s or GB/s, the share of the roofline for the op's
//! FLOPs and minimum bytes (whichever of the compute peak and DRAM bandwidth binds), the share of the
//! published figure a user would otherwise get, and the unit that limits the kernel.
//!
//! `cargo run --release --example roofline [-- --json] [--arch NAME]`
//!
//! The cases are `benches/support/llama_cases.rs`'s, the bench's. Inputs are never-written device memory
//! (the model needs no values; checks are off in model mode), and each launch emulates a sample of
//! blocks (`SAMPLE` clusters) scaled to the grid.

#[path = "../benches/support/llama_cases.rs"]
mod llama_cases;

use llama_cases::{buffers, cases, launch, Case};
use llama_kernels::backend::EmuBackend;

const SAMPLE: u64 = 8;
const ARCHS: [&str; 3] = ["a100-sxm4-80gb", "h100-sxm", "h200"];

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
        for (shape, case, (kernel, mut p)) in run_all(&emu)? {
            let (flops, bytes) = case.work();
            let op = case.op();
            let t_flops = flops / arch.mma_flops();
            let t_bytes = bytes / arch.dram_bytes_s;
            let roofline = t_flops.max(t_bytes);
            // A prediction under the roofline is a model error (the wave probe's one L2 hit rate for
            // every load: docs/performance.md, "The decode path"): the row shows the roofline, and says so.
            if p.seconds < roofline {
                p.limiter = format!(
                    "{} (model {:.1} us, under the roofline: shown at it)",
                    p.limiter,
                    p.seconds * 1e6
                );
                p.seconds = roofline;
            }
            let pct_peak = 100.0 * roofline / p.seconds;
            let tflops = flops / p.seconds / 1e12;
            let gbps = bytes / p.seconds / 1e9;
            let (anchor_name, anchor_tf) = anchor(op, t_flops >= t_bytes, arch_name);
            let pct_anchor = match anchor_tf {
                Some(tf) => 100.0 * tflops / tf,
                None => pct_peak,
            };
            if json {
                println!(
                    "{{\"op\": \"{op}\", \"kernel\": \"{kernel}\", \"shape\": \"{shape}\", \"arch\": \"{arch_name}\", \"seconds\": {:.6e}, \"tflops\": {:.3}, \"gbps\": {:.1}, \"pct_peak\": {:.2}, \"anchor\": \"{anchor_name}\", \"pct_anchor\": {:.2}, \"limiter\": \"{}\"}}",
                    p.seconds, tflops, gbps, pct_peak, pct_anchor, p.limiter
                );
            } else {
                println!(
                    "| {op} | `{kernel}` | {shape} | {arch_name} | {:.1} | {:.1} | {:.0} | {:.1}% | {:.1}% of {anchor_name} | {} |",
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

/// One case's shape and case, and the launched kernel's name and prediction.
type Row = (String, Case, (String, ptx_emu::Prediction));

/// Every case on the model's backend. An op that launches more than one kernel (split-KV attention:
/// the split kernel, then the combine) is one row: the kernels' names joined by " + ", their predicted
/// times summed, the limiter of the longest.
fn run_all(emu: &EmuBackend) -> Result<Vec<Row>, llama_kernels::Error> {
    let mut rows = Vec::new();
    for (s, c) in cases() {
        let mut bufs = buffers(emu, c, false)?;
        launch(emu, c, &mut bufs)?;
        let preds = emu.take_predictions();
        let Some(longest) = preds
            .iter()
            .max_by(|a, b| a.1.seconds.total_cmp(&b.1.seconds))
            .map(|(_, p)| p.clone())
        else {
            return Err(llama_kernels::Error::Emulator {
                detail: format!("{s}: the op launched no kernel"),
            });
        };
        let name = preds.iter().map(|(k, _)| k.as_str()).collect::<Vec<_>>().join(" + ");
        let mut p = longest;
        p.seconds = preds.iter().map(|(_, q)| q.seconds).sum();
        rows.push((s, c, (name, p)));
    }
    Ok(rows)
}
