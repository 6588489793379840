//! How fast ptx-emu runs this crate's tensor-core GEMM and attention kernels at test sizes, with every
//! check off and on: thread-instructions, warp-level mma, seconds (the launch alone: module load and
//! copies excluded), and the rates. ptx-emu's README records the table.
//!
//! `cargo run --release --example emu_speed [-- --workers N] [--only SUBSTRING]` (default 1 worker
//! thread: per-core rates)

use half::bf16;
use llama_kernels::backend::{Backend, EmuBackend};
use llama_kernels::ops::{attention, gemm};
use llama_kernels::reference::random_vec;
use llama_kernels::{AttentionConfig, AttentionShape, GemmConfig, GemmShape};

fn backend(checks: ptx_emu::Checks, workers: usize) -> EmuBackend {
    EmuBackend::with_options(ptx_emu::Options {
        checks,
        worker_threads: workers,
        approx: ptx_emu::Approx::Perturbed {
            seed: llama_kernels::backend::EMU_APPROX_SEED,
        },
        ..Default::default()
    })
}

/// Runs `f` once to load the module, then `reps` times; returns (metrics of one launch, best seconds).
fn measure(emu: &EmuBackend, reps: usize, f: &dyn Fn(&EmuBackend)) -> (ptx_emu::Metrics, f64) {
    f(emu);
    emu.take_metrics();
    let mut best = f64::INFINITY;
    let mut last = None;
    for _ in 0..reps {
        f(emu);
        let ms = emu.take_metrics();
        let secs: f64 = ms.iter().map(|(_, m)| m.wall_seconds).sum();
        best = best.min(secs);
        last = ms.into_iter().next().map(|(_, m)| m);
    }
    (last.expect("one launch"), best)
}

fn gemm_case(m: usize, n: usize, k: usize) -> impl Fn(&EmuBackend) {
    move |emu: &EmuBackend| {
        let a = emu.upload(&random_vec::<bf16>(m * k, 1, 1.0)).unwrap();
        let b = emu.upload(&random_vec::<bf16>(n * k, 2, 1.0)).unwrap();
        let mut c = emu.alloc_poisoned::<bf16>(m * n).unwrap();
        let cfg = GemmConfig {
            trans_b: true,
            ..GemmConfig::default()
        };
        gemm::gemm(emu, &a, &b, &mut c, GemmShape { m, n, k }, cfg).unwrap();
    }
}

fn attention_case(shape: AttentionShape) -> impl Fn(&EmuBackend) {
    move |emu: &EmuBackend| {
        let nq = shape.batch * shape.q_len * shape.n_heads * shape.head_dim;
        let nk = shape.batch * shape.kv_len * shape.n_kv_heads * shape.head_dim;
        let q = emu.upload(&random_vec::<bf16>(nq, 3, 1.0)).unwrap();
        let k = emu.upload(&random_vec::<bf16>(nk, 4, 1.0)).unwrap();
        let v = emu.upload(&random_vec::<bf16>(nk, 5, 1.0)).unwrap();
        let mut o = emu.alloc_poisoned::<bf16>(nq).unwrap();
        let cfg = AttentionConfig {
            causal: true,
            ..AttentionConfig::default()
        };
        attention::attention(emu, &q, &k, &v, &mut o, shape, cfg).unwrap();
    }
}

/// (kernel, shape, the launch).
type Case = (&'static str, String, Box<dyn Fn(&EmuBackend)>);

fn main() {
    let args: Vec<String> = std::env::args().collect();
    let workers = args
        .iter()
        .position(|a| a == "--workers")
        .and_then(|i| args.get(i + 1))
        .map_or(1, |w| w.parse().expect("--workers N"));
    let prefill = AttentionShape {
        batch: 1,
        q_len: 37,
        kv_len: 50,
        n_heads: 8,
        n_kv_heads: 2,
        head_dim: 128,
    };
    let decode = AttentionShape {
        q_len: 1,
        kv_len: 51,
        ..prefill
    };
    let cases: Vec<Case> = vec![
        (
            "gemm bf16 (mma.sync)",
            "m=70 n=50 k=33, x·Wᵀ".into(),
            Box::new(gemm_case(70, 50, 33)),
        ),
        (
            "gemm bf16 (mma.sync)",
            "m=128 n=128 k=256, x·Wᵀ".into(),
            Box::new(gemm_case(128, 128, 256)),
        ),
        (
            "attention bf16 prefill",
            "q 37, kv 50, 8/2 heads of 128, causal".into(),
            Box::new(attention_case(prefill)),
        ),
        (
            "attention bf16 decode",
            "q 1, kv 51, 8/2 heads of 128".into(),
            Box::new(attention_case(decode)),
        ),
    ];
    println!("workers: {workers}\n");
    println!("| kernel | shape | thread-instr | warp-instr | mma | s, checks off | s, checks on | on/off | M thread-instr/s (off / on) | M mma/s (off / on) |");
    println!("|---|---|---|---|---|---|---|---|---|---|");
    let only = args
        .iter()
        .position(|a| a == "--only")
        .and_then(|i| args.get(i + 1))
        .cloned();
    for (name, shape, f) in &cases {
        if only
            .as_ref()
            .is_some_and(|o| !format!("{name} {shape}").contains(o.as_str()))
        {
            continue;
        }
        let (m, off) = measure(&backend(ptx_emu::Checks::none(), workers), 3, f.as_ref());
        let (_, on) = measure(&backend(ptx_emu::Checks::all(), workers), 3, f.as_ref());
        let rate = |x: u64, s: f64| x as f64 / s / 1e6;
        println!(
            "| {name} | {shape} | {} | {} | {} | {off:.4} | {on:.4} | {:.2}× | {:.1} / {:.1} | {:.2} / {:.2} |",
            m.instructions,
            m.warp_instructions,
            m.mma,
            on / off,
            rate(m.instructions, off),
            rate(m.instructions, on),
            rate(m.mma, off),
            rate(m.mma, on),
        );
    }
}
