//! Runs every kernel once on the emulator at a LLaMA-shaped size and prints its memory-traffic metrics as
//! a Markdown table: thread-instructions, global bytes requested against the bytes the op must move,
//! 32-byte sectors per warp-level request (coalescing: 4 is ideal for 4-byte-per-lane accesses, 16 for
//! 16-byte vectors), shared-memory bank conflicts, barriers. `docs/performance.md` records the output.
//!
//! `cargo run --release --example emu_metrics`

use half::bf16;
use llama_kernels::backend::{Backend, EmuBackend};
use llama_kernels::ops::{attention, gemm, rms_norm, rope, swiglu};
use llama_kernels::reference::random_vec;
use llama_kernels::{
    AttentionConfig, AttentionShape, GemmConfig, GemmShape, Llama3Scaling, RmsNormConfig, RmsNormShape, RopeConfig,
    RopeLayout, RopeShape, Rounding, SwigluShape,
};
use ptx_emu::Metrics;

type T = bf16;

struct Row {
    op: String,
    shape: String,
    /// Bytes the op must read and write at least (each input once, each output once).
    min_bytes: u64,
}

fn main() -> Result<(), llama_kernels::Error> {
    // Checks off: this measures the kernels, and the checks do not change the metrics. The LLaMA-sized
    // launches here run longer than the default instruction budget (sized for tests), so it is raised.
    let options = ptx_emu::Options {
        checks: ptx_emu::Checks::none(),
        max_instructions: 1 << 34,
        ..Default::default()
    };
    let emu = EmuBackend::with_options(options);
    let e = std::mem::size_of::<T>() as u64;
    let mut rows: Vec<Row> = Vec::new();
    // Rows whose op may launch two kernels (split-KV attention: the split kernel, then the combine).

    // RMSNorm and the fused residual add, 16 tokens of LLaMA-3-8B (hidden 4096).
    let (tokens, hidden) = (16usize, 4096usize);
    let x = emu.upload(&random_vec::<T>(tokens * hidden, 1, 1.0))?;
    let w = emu.upload(&random_vec::<T>(hidden, 2, 1.0))?;
    let mut out = emu.alloc_poisoned::<T>(tokens * hidden)?;
    let shape = RmsNormShape { rows: tokens, hidden };
    rms_norm::rms_norm(&emu, &x, &w, &mut out, shape, RmsNormConfig::default())?;
    let n = (tokens * hidden) as u64;
    rows.push(Row {
        op: "rms_norm".into(),
        shape: format!("{tokens}x{hidden}"),
        min_bytes: e * (2 * n + hidden as u64),
    });
    let mut residual = emu.upload(&random_vec::<T>(tokens * hidden, 3, 1.0))?;
    rms_norm::fused_add_rms_norm(&emu, &x, &mut residual, &w, &mut out, shape, RmsNormConfig::default())?;
    rows.push(Row {
        op: "fused_add_rms_norm".into(),
        shape: format!("{tokens}x{hidden}"),
        min_bytes: e * (4 * n + hidden as u64),
    });

    // RoPE on q and k of 16 tokens, 32 query / 8 kv heads of 128 (LLaMA 3.1 scaling).
    let rs = RopeShape {
        tokens,
        n_heads: 32,
        n_kv_heads: 8,
        head_dim: 128,
    };
    let mut q = emu.upload(&random_vec::<T>(tokens * 32 * 128, 4, 1.0))?;
    let mut k = emu.upload(&random_vec::<T>(tokens * 8 * 128, 5, 1.0))?;
    let positions = emu.upload(&(100..100 + tokens as i32).collect::<Vec<i32>>())?;
    let cfg = RopeConfig {
        theta: 500000.0,
        rotary_dim: 128,
        layout: RopeLayout::Interleaved,
        scaling: Some(Llama3Scaling::LLAMA_3_1),
    };
    rope::rope_with_config(&emu, &mut q, Some(&mut k), &positions, rs, cfg)?;
    let qk = (tokens * 40 * 128) as u64;
    rows.push(Row {
        op: "rope".into(),
        shape: format!("{tokens} tok, 32+8 heads x128"),
        min_bytes: 2 * e * qk + 4 * 64,
    });

    // SwiGLU over the FFN hidden size of LLaMA-3-8B.
    let ffn = 14336usize;
    let gate = emu.upload(&random_vec::<T>(tokens * ffn, 6, 1.0))?;
    let up = emu.upload(&random_vec::<T>(tokens * ffn, 7, 1.0))?;
    let mut act = emu.alloc_poisoned::<T>(tokens * ffn)?;
    swiglu::swiglu(
        &emu,
        &gate,
        &up,
        &mut act,
        SwigluShape { rows: tokens, d: ffn },
        Rounding::MatchTorch,
    )?;
    rows.push(Row {
        op: "swiglu".into(),
        shape: format!("{tokens}x{ffn}"),
        min_bytes: 3 * e * (tokens * ffn) as u64,
    });

    // GEMM: the q projection of 16 tokens, y = x·Wᵀ, at a quarter of LLaMA-3-8B's width.
    let (m, nn, kk) = (16usize, 1024usize, 1024usize);
    let a = emu.upload(&random_vec::<T>(m * kk, 8, 1.0))?;
    let b = emu.upload(&random_vec::<T>(nn * kk, 9, 1.0))?;
    let mut c = emu.alloc_poisoned::<T>(m * nn)?;
    let gcfg = GemmConfig {
        trans_a: false,
        trans_b: true,
        alpha: 1.0,
        beta: 0.0,
        epilogue: llama_kernels::GemmEpilogue::Linear,
    };
    gemm::gemm(&emu, &a, &b, &mut c, GemmShape { m, n: nn, k: kk }, gcfg)?;
    rows.push(Row {
        op: "gemm".into(),
        shape: format!("{m}x{nn}x{kk}, B transposed"),
        min_bytes: e * (m * kk + nn * kk + m * nn) as u64,
    });

    // Attention: a 256-token prefill with GQA 4:1 at head_dim 128, and one decode step over 1024 keys.
    for (name, s) in [
        (
            "attention prefill",
            AttentionShape {
                batch: 1,
                q_len: 256,
                kv_len: 256,
                n_heads: 4,
                n_kv_heads: 1,
                head_dim: 128,
            },
        ),
        (
            "attention decode",
            AttentionShape {
                batch: 1,
                q_len: 1,
                kv_len: 1024,
                n_heads: 8,
                n_kv_heads: 2,
                head_dim: 128,
            },
        ),
    ] {
        let q_n = s.batch * s.q_len * s.n_heads * s.head_dim;
        let kv_n = s.batch * s.kv_len * s.n_kv_heads * s.head_dim;
        let q = emu.upload(&random_vec::<T>(q_n, 10, 1.0))?;
        let k = emu.upload(&random_vec::<T>(kv_n, 11, 1.0))?;
        let v = emu.upload(&random_vec::<T>(kv_n, 12, 1.0))?;
        let mut o = emu.alloc_poisoned::<T>(q_n)?;
        attention::attention(&emu, &q, &k, &v, &mut o, s, AttentionConfig::default())?;
        rows.push(Row {
            op: name.into(),
            shape: format!(
                "q {} kv {} heads {}/{} d {}",
                s.q_len, s.kv_len, s.n_heads, s.n_kv_heads, s.head_dim
            ),
            min_bytes: e * (2 * q_n + 2 * kv_n) as u64,
        });
    }

    // One entry per op: the launches of a split call are summed under "split + second pass".
    let mut metrics: Vec<(String, Metrics)> = Vec::new();
    let mut launches = emu.take_metrics().into_iter().peekable();
    for _ in 0..rows.len() {
        let Some((mut name, mut m)) = launches.next() else {
            break;
        };
        // A second pass (split-KV's combine, split-K's reduction) is part of its op's call.
        while let Some((second, _)) = launches.peek() {
            if !(second.starts_with("attention_combine") || second.starts_with("gemm_decode_reduce")) {
                break;
            }
            let (second, sm) = launches.next().expect("peeked");
            m.add(&sm);
            name = format!("{name} + {second}");
        }
        metrics.push((name, m));
    }
    println!("| op (bf16) | kernel | shape | thread-instr | global bytes requested / minimum | sectors per request | shared bank conflicts per request | barriers |");
    println!("|---|---|---|---:|---:|---:|---:|---:|");
    for (row, (kernel, m)) in rows.iter().zip(&metrics) {
        print_row(row, kernel, m);
    }
    Ok(())
}

fn print_row(row: &Row, kernel: &str, m: &Metrics) {
    let requested = m.global_load_bytes + m.global_store_bytes + m.global_atomic_bytes;
    let conflicts = if m.shared_requests == 0 {
        0.0
    } else {
        m.shared_bank_conflicts as f64 / m.shared_requests as f64
    };
    println!(
        "| {} | `{kernel}` | {} | {} | {:.2} | {:.2} | {:.2} | {} |",
        row.op,
        row.shape,
        m.instructions,
        requested as f64 / row.min_bytes as f64,
        m.sectors_per_request(),
        conflicts,
        m.barriers
    );
}
