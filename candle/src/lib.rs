//! llama-kernels' ops as candle `CustomOp`s, for candle-based engines (mistral.rs, candle-vllm, your own).
//!
//! | function | candle counterpart | inputs | output |
//! |---|---|---|---|
//! | [`rms_norm`] | `candle_nn::ops::rms_norm` | `x: (.., hidden)`, `weight: (hidden,)` | `x`'s shape |
//! | [`swiglu`] | `candle_nn::ops::silu(gate) * up` | `gate, up` of one shape | that shape |
//! | [`rope`] | `candle_nn::rotary_emb::rope_thd` (`HalfSplit`), `rope_i` (`Interleaved`, on `(b, h, t, d)`) | `x: (b, t, h, d)` or `(t, h, d)`, `positions: (t,)` or `(b, t)` i32 | `x`'s shape |
//! | [`attention`] | softmax(`q·kᵀ·scale` + mask)·`v` | `q: (b, t_q, h, d)`, `k, v: (b, t_kv, h_kv, d)` (FlashAttention's layout) | `q`'s shape |
//!
//! f32, f16 and bf16; every input contiguous (a `.contiguous()` first otherwise: the error says which).
//! On a CUDA tensor (feature `cuda`) each op launches llama-kernels' kernel on candle's own stream, on
//! candle's buffers, with no copy (RoPE, which works in place, copies `x` to its output first, on the
//! device). On a CPU tensor it runs llama-kernels' CPU reference: f64 arithmetic rounded where the
//! kernels round (`llama_kernels::reference`), so the CPU path is the kernels' specification, not a
//! fast path.
//!
//! The numerics are llama-kernels' (its README, "Numerics"): RMSNorm and SwiGLU round as PyTorch does
//! (`Rounding::MatchTorch`), RoPE takes an f32 frequency table and an f32 angle, attention accumulates in
//! f32 with a bottom-right-aligned causal mask (a query of a `t_q`-row block sees keys up to
//! `t_kv - t_q + i`).
//!
//! Building next to candle's CUDA backend: candle-core's `cuda` feature links the CUDA driver at build
//! time, and cudarc refuses that together with llama-kernels' default run-time loading, so this crate's
//! `cuda` feature switches llama-kernels to `dynamic-linking`; build it with `--no-default-features
//! --features cuda`.

#![warn(missing_docs)]

use candle_core::backend::BackendStorage;
use candle_core::{CpuStorage, CustomOp2, CustomOp3, DType, Layout, Result, Shape, Tensor, WithDType};
use llama_kernels::{reference, AttentionConfig, AttentionShape, RmsNormConfig, RmsNormShape, RopeConfig, RopeShape};
use llama_kernels::{Rounding, SwigluShape};

#[cfg(feature = "cuda")]
mod cuda;

pub use llama_kernels;

fn wrap(e: llama_kernels::Error) -> candle_core::Error {
    candle_core::Error::wrap(e)
}

/// The elements of a contiguous CPU tensor.
fn cpu_slice<'a, T: WithDType>(s: &'a CpuStorage, l: &Layout, name: &str) -> Result<&'a [T]> {
    let (start, end) = l
        .contiguous_offsets()
        .ok_or_else(|| candle_core::Error::Msg(format!("{name} must be contiguous (call .contiguous())")))?;
    Ok(&s.as_slice::<T>()?[start..end])
}

/// Runs `$body` with `$t` the Rust type of `$dtype` (f32, f16, bf16), else an error naming `$op`.
macro_rules! with_float {
    ($op:expr, $dtype:expr, $t:ident => $body:expr) => {
        match $dtype {
            DType::F32 => {
                type $t = f32;
                $body
            }
            DType::F16 => {
                type $t = half::f16;
                $body
            }
            DType::BF16 => {
                type $t = half::bf16;
                $body
            }
            other => candle_core::bail!("{}: unsupported dtype {other:?} (f32, f16 or bf16)", $op),
        }
    };
}
#[cfg(feature = "cuda")]
pub(crate) use with_float;

fn same_dtype(op: &str, a: DType, b: DType) -> Result<()> {
    if a != b {
        candle_core::bail!("{op}: dtypes differ ({a:?} and {b:?})");
    }
    Ok(())
}

/// `(rows, hidden)` of RMSNorm's `x` against its `weight`.
fn rms_shape(x: &Layout, w: &Layout) -> Result<RmsNormShape> {
    let hidden = *x
        .dims()
        .last()
        .ok_or_else(|| candle_core::Error::Msg("rms_norm: x is a scalar".into()))?;
    if w.dims() != [hidden] {
        candle_core::bail!("rms_norm: weight has shape {:?}, expected ({hidden},)", w.dims());
    }
    Ok(RmsNormShape {
        rows: x.shape().elem_count() / hidden.max(1),
        hidden,
    })
}

/// RMSNorm as a candle op: [`rms_norm`].
#[derive(Clone, Copy, Debug)]
pub struct RmsNorm {
    /// `eps` and the rounding (default `MatchTorch`).
    pub cfg: RmsNormConfig,
}

impl CustomOp2 for RmsNorm {
    fn name(&self) -> &'static str {
        "llama-kernels-rms-norm"
    }

    fn cpu_fwd(&self, xs: &CpuStorage, xl: &Layout, ws: &CpuStorage, wl: &Layout) -> Result<(CpuStorage, Shape)> {
        same_dtype("rms_norm", xs.dtype(), ws.dtype())?;
        let shape = rms_shape(xl, wl)?;
        with_float!("rms_norm", xs.dtype(), T => {
            let out = reference::rms_norm::<T>(cpu_slice(xs, xl, "x")?, cpu_slice(ws, wl, "weight")?, shape, self.cfg)
                .map_err(wrap)?;
            Ok((T::to_cpu_storage_owned(out), xl.shape().clone()))
        })
    }

    #[cfg(feature = "cuda")]
    fn cuda_fwd(
        &self,
        xs: &candle_core::CudaStorage,
        xl: &Layout,
        ws: &candle_core::CudaStorage,
        wl: &Layout,
    ) -> Result<(candle_core::CudaStorage, Shape)> {
        cuda::rms_norm(self, xs, xl, ws, wl, rms_shape(xl, wl)?)
    }
}

/// `rms_norm(x) · weight` over the last dimension, LLaMA's `RMSNorm` (eps 1e-5 in LLaMA 2/3).
///
/// # Errors
/// A non-contiguous input, mismatched shapes or dtypes, an unsupported dtype, a bad `eps`; CUDA errors.
pub fn rms_norm(x: &Tensor, weight: &Tensor, eps: f32) -> Result<Tensor> {
    let cfg = RmsNormConfig {
        eps,
        rounding: Rounding::MatchTorch,
    };
    x.apply_op2_no_bwd(weight, &RmsNorm { cfg })
}

/// SwiGLU as a candle op: [`swiglu`].
#[derive(Clone, Copy, Debug)]
pub struct Swiglu {
    /// Where it rounds (`MatchTorch`: `rt(rt(silu(g))·u)`, as `F.silu(g) * u`).
    pub rounding: Rounding,
}

fn swiglu_shape(gl: &Layout, ul: &Layout) -> Result<SwigluShape> {
    if gl.dims() != ul.dims() {
        candle_core::bail!("swiglu: gate {:?} and up {:?} differ", gl.dims(), ul.dims());
    }
    let d = gl.dims().last().copied().unwrap_or(1);
    Ok(SwigluShape {
        rows: gl.shape().elem_count() / d.max(1),
        d,
    })
}

impl CustomOp2 for Swiglu {
    fn name(&self) -> &'static str {
        "llama-kernels-swiglu"
    }

    fn cpu_fwd(&self, gs: &CpuStorage, gl: &Layout, us: &CpuStorage, ul: &Layout) -> Result<(CpuStorage, Shape)> {
        same_dtype("swiglu", gs.dtype(), us.dtype())?;
        let shape = swiglu_shape(gl, ul)?;
        with_float!("swiglu", gs.dtype(), T => {
            let out = reference::swiglu::<T>(cpu_slice(gs, gl, "gate")?, cpu_slice(us, ul, "up")?, shape, self.rounding)
                .map_err(wrap)?;
            Ok((T::to_cpu_storage_owned(out), gl.shape().clone()))
        })
    }

    #[cfg(feature = "cuda")]
    fn cuda_fwd(
        &self,
        gs: &candle_core::CudaStorage,
        gl: &Layout,
        us: &candle_core::CudaStorage,
        ul: &Layout,
    ) -> Result<(candle_core::CudaStorage, Shape)> {
        cuda::swiglu(self, gs, gl, us, ul, swiglu_shape(gl, ul)?)
    }
}

/// `silu(gate) · up`, LLaMA's FFN activation, rounded as PyTorch's `F.silu(gate) * up`.
///
/// # Errors
/// A non-contiguous input, mismatched shapes or dtypes, an unsupported dtype; CUDA errors.
pub fn swiglu(gate: &Tensor, up: &Tensor) -> Result<Tensor> {
    gate.apply_op2_no_bwd(
        up,
        &Swiglu {
            rounding: Rounding::MatchTorch,
        },
    )
}

/// RoPE as a candle op: [`rope`].
#[derive(Clone, Copy, Debug)]
pub struct Rope {
    /// Theta, rotary dims, pairing layout and LLaMA 3.1 scaling.
    pub cfg: RopeConfig,
}

/// `x: (b, t, h, d)` or `(t, h, d)` and positions of `t` or `b·t` tokens: the shape over all tokens.
fn rope_shape(xl: &Layout, pl: &Layout) -> Result<(RopeShape, usize)> {
    let (tokens, heads, d) = match *xl.dims() {
        [b, t, h, d] => (b * t, h, d),
        [t, h, d] => (t, h, d),
        ref other => candle_core::bail!("rope: x must be (b, t, h, d) or (t, h, d), got {other:?}"),
    };
    let n = pl.shape().elem_count();
    if n == 0 || tokens % n != 0 {
        candle_core::bail!("rope: {n} positions for {tokens} tokens (expected t or b·t)");
    }
    let shape = RopeShape {
        tokens,
        n_heads: heads,
        n_kv_heads: 0,
        head_dim: d,
    };
    Ok((shape, tokens / n))
}

impl CustomOp2 for Rope {
    fn name(&self) -> &'static str {
        "llama-kernels-rope"
    }

    fn cpu_fwd(&self, xs: &CpuStorage, xl: &Layout, ps: &CpuStorage, pl: &Layout) -> Result<(CpuStorage, Shape)> {
        let (shape, repeat) = rope_shape(xl, pl)?;
        let pos = cpu_slice::<i32>(ps, pl, "positions")?;
        let positions: Vec<i32> = (0..repeat).flat_map(|_| pos.iter().copied()).collect();
        with_float!("rope", xs.dtype(), T => {
            let (out, _) = reference::rope::<T>(cpu_slice(xs, xl, "x")?, &[], &positions, shape, self.cfg).map_err(wrap)?;
            Ok((T::to_cpu_storage_owned(out), xl.shape().clone()))
        })
    }

    #[cfg(feature = "cuda")]
    fn cuda_fwd(
        &self,
        xs: &candle_core::CudaStorage,
        xl: &Layout,
        ps: &candle_core::CudaStorage,
        pl: &Layout,
    ) -> Result<(candle_core::CudaStorage, Shape)> {
        let (shape, repeat) = rope_shape(xl, pl)?;
        cuda::rope(self, xs, xl, ps, pl, shape, repeat)
    }
}

/// Rotary position embedding of `x: (b, t, h, d)` or `(t, h, d)` at `positions` (i32, `(t,)` shared by
/// the batch or `(b, t)`), with llama-kernels' f32 frequency table for `cfg`.
///
/// # Errors
/// A non-contiguous input, a shape that is neither layout, positions that do not cover the tokens, a bad
/// config; CUDA errors.
pub fn rope(x: &Tensor, positions: &Tensor, cfg: RopeConfig) -> Result<Tensor> {
    if positions.dtype() != DType::I32 {
        candle_core::bail!("rope: positions must be i32, got {:?}", positions.dtype());
    }
    x.apply_op2_no_bwd(positions, &Rope { cfg })
}

/// Attention as a candle op: [`attention`].
#[derive(Clone, Copy, Debug)]
pub struct Attention {
    /// Causal / windows, scale, softcap.
    pub cfg: AttentionConfig,
}

fn attention_shape(ql: &Layout, kl: &Layout, vl: &Layout) -> Result<AttentionShape> {
    let [b, q_len, n_heads, head_dim] = *ql.dims() else {
        candle_core::bail!("attention: q must be (b, t_q, h, d), got {:?}", ql.dims())
    };
    let [kb, kv_len, n_kv_heads, kd] = *kl.dims() else {
        candle_core::bail!("attention: k must be (b, t_kv, h_kv, d), got {:?}", kl.dims())
    };
    if vl.dims() != kl.dims() || kb != b || kd != head_dim {
        candle_core::bail!(
            "attention: q {:?}, k {:?}, v {:?} do not fit together",
            ql.dims(),
            kl.dims(),
            vl.dims()
        );
    }
    // The kernels' head dims, on the CPU too: one op accepts the same shapes on every device.
    use llama_kernels::ops::attention::{HEAD_DIM_STEP, MAX_HEAD_DIM};
    if head_dim == 0 || head_dim % HEAD_DIM_STEP != 0 || head_dim > MAX_HEAD_DIM {
        candle_core::bail!(
            "attention: head_dim {head_dim} is not a multiple of {HEAD_DIM_STEP} up to {MAX_HEAD_DIM} (the kernels' limit)"
        );
    }
    Ok(AttentionShape {
        batch: b,
        q_len,
        kv_len,
        n_heads,
        n_kv_heads,
        head_dim,
    })
}

impl CustomOp3 for Attention {
    fn name(&self) -> &'static str {
        "llama-kernels-attention"
    }

    fn cpu_fwd(
        &self,
        qs: &CpuStorage,
        ql: &Layout,
        ks: &CpuStorage,
        kl: &Layout,
        vs: &CpuStorage,
        vl: &Layout,
    ) -> Result<(CpuStorage, Shape)> {
        same_dtype("attention", qs.dtype(), ks.dtype())?;
        same_dtype("attention", qs.dtype(), vs.dtype())?;
        let shape = attention_shape(ql, kl, vl)?;
        with_float!("attention", qs.dtype(), T => {
            let (o, _lse) = reference::attention::<T>(
                cpu_slice(qs, ql, "q")?,
                cpu_slice(ks, kl, "k")?,
                cpu_slice(vs, vl, "v")?,
                shape,
                self.cfg,
            )
            .map_err(wrap)?;
            Ok((T::to_cpu_storage_owned(o), ql.shape().clone()))
        })
    }

    #[cfg(feature = "cuda")]
    fn cuda_fwd(
        &self,
        qs: &candle_core::CudaStorage,
        ql: &Layout,
        ks: &candle_core::CudaStorage,
        kl: &Layout,
        vs: &candle_core::CudaStorage,
        vl: &Layout,
    ) -> Result<(candle_core::CudaStorage, Shape)> {
        cuda::attention(self, (qs, ql), (ks, kl), (vs, vl), attention_shape(ql, kl, vl)?)
    }
}

/// `softmax(q·kᵀ·scale + mask)·v` per head in FlashAttention's layout: `q: (b, t_q, h, d)`,
/// `k, v: (b, t_kv, h_kv, d)` with `h % h_kv == 0` (GQA), `d` a multiple of 8 up to 256; `cfg` as
/// llama-kernels' `AttentionConfig` (causal bottom-right, windows, softcap, scale default `1/√d`).
///
/// # Errors
/// A non-contiguous input, shapes that do not fit, an unsupported head dim or dtype; CUDA errors.
pub fn attention(q: &Tensor, k: &Tensor, v: &Tensor, cfg: AttentionConfig) -> Result<Tensor> {
    q.apply_op3_no_bwd(k, v, &Attention { cfg })
}
