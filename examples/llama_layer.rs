//! One LLaMA decoder layer from llama-kernels' ops, on the best device there is: the first CUDA GPU, else
//! the ptx-emu emulator (all checks on). Every op's output is compared with the CPU reference applied to
//! the same inputs, and the layer's output with the reference layer end to end.
//!
//! ```text
//! h      = rms_norm(x, attn_norm)                      x: (tokens, dim) bf16
//! q,k,v  = h·Wqᵀ, h·Wkᵀ, h·Wvᵀ                         GQA: n_kv_heads < n_heads
//! q,k    = rope(q, k, positions = start_pos..)         LLaMA 3: theta 500000, 3.1 frequency scaling
//! attn   = attention(q, k, v)                          causal; the KV cache holds start_pos earlier tokens
//! r      = x + attn·Woᵀ ;  h2 = rms_norm(r, ffn_norm)  fused residual add + RMSNorm
//! out    = r + w2(silu(h2·W1ᵀ) * h2·W3ᵀ)               SwiGLU; the residual add is GEMM's beta = 1
//! ```
//!
//! `cargo run --example llama_layer` (add `--release` for speed on the emulator).

use half::bf16;
use llama_kernels::backend::{Backend, CudaBackend, EmuBackend};
use llama_kernels::ops::{attention, gemm, rms_norm, rope, swiglu};
use llama_kernels::reference::{self, random_vec, to_f64_vec, Tolerance};
use llama_kernels::{
    AttentionConfig, AttentionShape, Elem, GemmConfig, GemmShape, Llama3Scaling, RmsNormConfig, RmsNormShape,
    RopeConfig, RopeLayout, RopeShape, Rounding, SwigluShape,
};

/// A small LLaMA-3-shaped layer: head_dim 64, GQA 4:2, FFN hidden size from LLaMA's formula.
struct Dims {
    tokens: usize,
    start_pos: usize,
    dim: usize,
    n_heads: usize,
    n_kv_heads: usize,
    head_dim: usize,
    hidden: usize,
}

type T = bf16;

fn main() {
    let hidden = reference::ffn_hidden_dim(256, 64, None).expect("valid FFN dims");
    let d = Dims {
        tokens: 12,
        start_pos: 5,
        dim: 256,
        n_heads: 4,
        n_kv_heads: 2,
        head_dim: 64,
        hidden,
    };
    let result = match CudaBackend::open(0) {
        Ok(cuda) => {
            println!("device: {} (CUDA)", cuda.name());
            run(&cuda, &d)
        }
        Err(why) => {
            // The error's own message ends with advice to use the emulator, which is what happens here.
            let reason = match why {
                llama_kernels::Error::NoDriver { detail } => format!("no CUDA driver: {detail}"),
                llama_kernels::Error::NoDevice { detail } => format!("no CUDA device: {detail}"),
                other => other.to_string(),
            };
            println!("device: ptx-emu, the emulator, every check on (CUDA not used: {reason})");
            run(&EmuBackend::new(), &d)
        }
    };
    match result {
        Ok(()) => println!("all ops within tolerance of the reference"),
        Err(e) => {
            eprintln!("FAILED: {e}");
            std::process::exit(1);
        }
    }
}

/// Prints one op's max error against the reference and fails if it breaks the bf16 tolerance.
fn report(op: &str, got: &[T], want: &[T]) -> Result<(), String> {
    report_with_slack(op, got, want, &vec![0.0; want.len()])
}

/// [`report`] with the reference's per-element slack added to the tolerance.
fn report_with_slack(op: &str, got: &[T], want: &[T], slack: &[f64]) -> Result<(), String> {
    let (got, want) = (to_f64_vec(got), to_f64_vec(want));
    let (i, max) = reference::max_abs_diff(&got, &want);
    let verdict = Tolerance::for_elem::<T>().check_with_slack(&got, &want, slack);
    println!(
        "  {op:<28} {:>7} elements  max |kernel - reference| = {max:.3e} (at {i})  {}",
        got.len(),
        if verdict.is_ok() { "ok" } else { "FAIL" }
    );
    verdict.map_err(|e| format!("{op}: {e}"))
}

fn run<B: Backend>(backend: &B, d: &Dims) -> Result<(), String> {
    let err = |e: llama_kernels::Error| e.to_string();
    let (tokens, dim) = (d.tokens, d.dim);
    let q_dim = d.n_heads * d.head_dim;
    let kv_dim = d.n_kv_heads * d.head_dim;
    let kv_len = d.start_pos + tokens;
    println!(
        "layer: {tokens} tokens at start_pos {}, dim {dim}, {} heads / {} kv heads of {}, FFN hidden {}, bf16",
        d.start_pos, d.n_heads, d.n_kv_heads, d.head_dim, d.hidden
    );

    // Weights (LLaMA's nn.Linear layout: (out, in), applied as x·Wᵀ), scaled like a trained layer.
    let w = |rows: usize, cols: usize, seed: u64| random_vec::<T>(rows * cols, seed, 1.0 / (cols as f32).sqrt());
    let (wq, wk, wv, wo) = (w(q_dim, dim, 1), w(kv_dim, dim, 2), w(kv_dim, dim, 3), w(dim, q_dim, 4));
    let (w1, w3, w2) = (w(d.hidden, dim, 5), w(d.hidden, dim, 6), w(dim, d.hidden, 7));
    let attn_norm: Vec<T> = random_vec::<f32>(dim, 8, 0.2)
        .iter()
        .map(|v| T::from_f32(1.0 + v))
        .collect();
    let ffn_norm: Vec<T> = random_vec::<f32>(dim, 9, 0.2)
        .iter()
        .map(|v| T::from_f32(1.0 + v))
        .collect();
    let x = random_vec::<T>(tokens * dim, 10, 1.0);
    // The KV cache already holds start_pos tokens; this step appends `tokens` more.
    let k_cache_old = random_vec::<T>(d.start_pos * kv_dim, 11, 1.0);
    let v_cache_old = random_vec::<T>(d.start_pos * kv_dim, 12, 1.0);
    let positions: Vec<i32> = (d.start_pos..kv_len).map(|p| p as i32).collect();

    let up = |v: &[T]| backend.upload(v).map_err(err);
    let down = |b: &B::Buffer<T>| backend.download(b).map_err(err);
    let linear = |x: &B::Buffer<T>, w: &B::Buffer<T>, out: &mut B::Buffer<T>, m: usize, n: usize, k: usize| {
        let cfg = GemmConfig {
            trans_a: false,
            trans_b: true,
            alpha: 1.0,
            beta: 0.0,
            epilogue: llama_kernels::GemmEpilogue::Linear,
        };
        gemm::gemm(backend, x, w, out, GemmShape { m, n, k }, cfg).map_err(err)
    };
    let gemm_ref = |a: &[T], b: &[T], m: usize, n: usize, k: usize| {
        let cfg = GemmConfig {
            trans_a: false,
            trans_b: true,
            alpha: 1.0,
            beta: 0.0,
            epilogue: llama_kernels::GemmEpilogue::Linear,
        };
        reference::gemm(a, b, &vec![T::from_f32(0.0); m * n], GemmShape { m, n, k }, cfg).map_err(err)
    };

    // 1. attention RMSNorm.
    let norm_shape = RmsNormShape {
        rows: tokens,
        hidden: dim,
    };
    let norm_cfg = RmsNormConfig {
        eps: 1e-5,
        rounding: Rounding::MatchTorch,
    };
    let x_d = up(&x)?;
    let attn_norm_d = up(&attn_norm)?;
    let mut h_d = backend.alloc_poisoned::<T>(tokens * dim).map_err(err)?;
    rms_norm::rms_norm(backend, &x_d, &attn_norm_d, &mut h_d, norm_shape, norm_cfg).map_err(err)?;
    let h = down(&h_d)?;
    report(
        "rms_norm",
        &h,
        &reference::rms_norm(&x, &attn_norm, norm_shape, norm_cfg).map_err(err)?,
    )?;

    // 2. q, k, v projections; k and v go straight into the cache rows start_pos.. (a contiguous cache).
    let (wq_d, wk_d, wv_d) = (up(&wq)?, up(&wk)?, up(&wv)?);
    let mut q_d = backend.alloc_poisoned::<T>(tokens * q_dim).map_err(err)?;
    let mut k_new_d = backend.alloc_poisoned::<T>(tokens * kv_dim).map_err(err)?;
    let mut v_new_d = backend.alloc_poisoned::<T>(tokens * kv_dim).map_err(err)?;
    linear(&h_d, &wq_d, &mut q_d, tokens, q_dim, dim)?;
    linear(&h_d, &wk_d, &mut k_new_d, tokens, kv_dim, dim)?;
    linear(&h_d, &wv_d, &mut v_new_d, tokens, kv_dim, dim)?;
    let (q, k_new, v_new) = (down(&q_d)?, down(&k_new_d)?, down(&v_new_d)?);
    report("gemm (q = h·Wqᵀ)", &q, &gemm_ref(&h, &wq, tokens, q_dim, dim)?)?;
    report("gemm (k = h·Wkᵀ)", &k_new, &gemm_ref(&h, &wk, tokens, kv_dim, dim)?)?;

    // 3. RoPE on q and the new k rows, LLaMA 3.1 style.
    let rope_shape = RopeShape {
        tokens,
        n_heads: d.n_heads,
        n_kv_heads: d.n_kv_heads,
        head_dim: d.head_dim,
    };
    let rope_cfg = RopeConfig {
        theta: 500000.0,
        rotary_dim: d.head_dim,
        layout: RopeLayout::Interleaved,
        scaling: Some(Llama3Scaling::LLAMA_3_1),
    };
    let positions_d = backend.upload(&positions).map_err(err)?;
    rope::rope_with_config(
        backend,
        &mut q_d,
        Some(&mut k_new_d),
        &positions_d,
        rope_shape,
        rope_cfg,
    )
    .map_err(err)?;
    let (q_rot, k_rot) = (down(&q_d)?, down(&k_new_d)?);
    let (q_rot_ref, k_rot_ref) = reference::rope(&q, &k_new, &positions, rope_shape, rope_cfg).map_err(err)?;
    report("rope (q)", &q_rot, &q_rot_ref)?;
    report("rope (k)", &k_rot, &k_rot_ref)?;

    // 4. Attention over the cache: earlier tokens plus this step's rotated k and v.
    let k_cache: Vec<T> = k_cache_old.iter().chain(&k_rot).copied().collect();
    let v_cache: Vec<T> = v_cache_old.iter().chain(&v_new).copied().collect();
    let (k_cache_d, v_cache_d) = (up(&k_cache)?, up(&v_cache)?);
    let attn_shape = AttentionShape {
        batch: 1,
        q_len: tokens,
        kv_len,
        n_heads: d.n_heads,
        n_kv_heads: d.n_kv_heads,
        head_dim: d.head_dim,
    };
    let mut attn_d = backend.alloc_poisoned::<T>(tokens * q_dim).map_err(err)?;
    attention::attention(
        backend,
        &q_d,
        &k_cache_d,
        &v_cache_d,
        &mut attn_d,
        attn_shape,
        AttentionConfig::default(),
    )
    .map_err(err)?;
    let attn = down(&attn_d)?;
    // Attention v2 rounds P to bf16 before P·V: the tiled reference rounds it where the kernel does and
    // reports the slack of terms too close to a rounding boundary to pin.
    let tiling = attention::plan(backend, attn_shape, T::DTYPE, attention::SplitKv::Auto)
        .map_err(err)?
        .tiling();
    let (attn_ref, _, slack) = reference::attention_tiled(
        &q_rot,
        &k_cache,
        &v_cache,
        attn_shape,
        AttentionConfig::default(),
        tiling,
    )
    .map_err(err)?;
    report_with_slack("attention", &attn, &attn_ref, &slack)?;

    // 5. Output projection, then residual add + FFN RMSNorm in one kernel.
    let wo_d = up(&wo)?;
    let mut o_d = backend.alloc_poisoned::<T>(tokens * dim).map_err(err)?;
    linear(&attn_d, &wo_d, &mut o_d, tokens, dim, q_dim)?;
    let o = down(&o_d)?;
    report("gemm (o = attn·Woᵀ)", &o, &gemm_ref(&attn, &wo, tokens, dim, q_dim)?)?;
    let ffn_norm_d = up(&ffn_norm)?;
    let mut residual_d = up(&x)?;
    let mut h2_d = backend.alloc_poisoned::<T>(tokens * dim).map_err(err)?;
    rms_norm::fused_add_rms_norm(
        backend,
        &o_d,
        &mut residual_d,
        &ffn_norm_d,
        &mut h2_d,
        norm_shape,
        norm_cfg,
    )
    .map_err(err)?;
    let (h2, residual) = (down(&h2_d)?, down(&residual_d)?);
    let (h2_ref, residual_ref) = reference::fused_add_rms_norm(&o, &x, &ffn_norm, norm_shape, norm_cfg).map_err(err)?;
    report("fused_add_rms_norm (out)", &h2, &h2_ref)?;
    report("fused_add_rms_norm (residual)", &residual, &residual_ref)?;

    // 6. FFN: w2(silu(w1 h2) * w3 h2) + residual.
    let (w1_d, w3_d, w2_d) = (up(&w1)?, up(&w3)?, up(&w2)?);
    let mut gate_d = backend.alloc_poisoned::<T>(tokens * d.hidden).map_err(err)?;
    let mut up_d = backend.alloc_poisoned::<T>(tokens * d.hidden).map_err(err)?;
    linear(&h2_d, &w1_d, &mut gate_d, tokens, d.hidden, dim)?;
    linear(&h2_d, &w3_d, &mut up_d, tokens, d.hidden, dim)?;
    let (gate, upv) = (down(&gate_d)?, down(&up_d)?);
    let swiglu_shape = SwigluShape {
        rows: tokens,
        d: d.hidden,
    };
    let mut act_d = backend.alloc_poisoned::<T>(tokens * d.hidden).map_err(err)?;
    swiglu::swiglu(backend, &gate_d, &up_d, &mut act_d, swiglu_shape, Rounding::MatchTorch).map_err(err)?;
    let act = down(&act_d)?;
    report(
        "swiglu",
        &act,
        &reference::swiglu(&gate, &upv, swiglu_shape, Rounding::MatchTorch).map_err(err)?,
    )?;
    let mut out_d = up(&residual)?;
    let cfg = GemmConfig {
        trans_a: false,
        trans_b: true,
        alpha: 1.0,
        beta: 1.0,
        epilogue: llama_kernels::GemmEpilogue::Linear,
    };
    let ffn_shape = GemmShape {
        m: tokens,
        n: dim,
        k: d.hidden,
    };
    gemm::gemm(backend, &act_d, &w2_d, &mut out_d, ffn_shape, cfg).map_err(err)?;
    let out = down(&out_d)?;
    report(
        "gemm (out = act·W2ᵀ + r)",
        &out,
        &reference::gemm(&act, &w2, &residual, ffn_shape, cfg).map_err(err)?,
    )?;
    Ok(())
}
