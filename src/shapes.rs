//! Shapes and configurations of the ops, shared by the safe API (`ops`) and the CPU reference
//! (`reference`). All tensors are row-major and contiguous unless a field says otherwise.

/// Where a normalization or activation rounds to the storage dtype (bf16/f16; f32 is unaffected).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Default)]
pub enum Rounding {
    /// Round where Meta's and Hugging Face's PyTorch code rounds: RMSNorm rounds the normalized value
    /// to the storage dtype, then multiplies by the weight and rounds again; SwiGLU rounds silu(gate),
    /// then multiplies by `up` and rounds again. The default.
    #[default]
    MatchTorch,
    /// Compute everything in f32 and round once, at the store.
    Once,
}

/// `x: (rows, hidden)`, `weight: (hidden,)`.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct RmsNormShape {
    pub rows: usize,
    pub hidden: usize,
}

/// RMSNorm's scalars: `y = x / sqrt(mean(x^2) + eps) * weight`.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct RmsNormConfig {
    pub eps: f32,
    pub rounding: Rounding,
}

impl Default for RmsNormConfig {
    /// LLaMA's `norm_eps` of 1e-5, torch rounding order.
    fn default() -> Self {
        RmsNormConfig {
            eps: 1e-5,
            rounding: Rounding::MatchTorch,
        }
    }
}

/// How the rotary dimensions of a head are paired.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum RopeLayout {
    /// Meta's layout: pairs `(x[2i], x[2i+1])`, frequency `i`.
    Interleaved,
    /// Hugging Face / GPT-NeoX layout: pairs `(x[i], x[i + rotary_dim/2])`, frequency `i`.
    HalfSplit,
}

/// LLaMA 3.1 frequency scaling (`rope_type = "llama3"`).
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct Llama3Scaling {
    /// 8.0 for LLaMA 3.1.
    pub factor: f32,
    /// 1.0 for LLaMA 3.1.
    pub low_freq_factor: f32,
    /// 4.0 for LLaMA 3.1.
    pub high_freq_factor: f32,
    /// 8192 for LLaMA 3.1.
    pub original_max_position_embeddings: usize,
}

impl Llama3Scaling {
    /// The values LLaMA 3.1 ships with.
    pub const LLAMA_3_1: Llama3Scaling = Llama3Scaling {
        factor: 8.0,
        low_freq_factor: 1.0,
        high_freq_factor: 4.0,
        original_max_position_embeddings: 8192,
    };
}

/// RoPE's configuration.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct RopeConfig {
    /// Base of the frequencies: 10000 for LLaMA 1/2, 500000 for LLaMA 3.
    pub theta: f32,
    /// Leading dimensions of each head that rotate (`<= head_dim`, even); the rest pass through.
    pub rotary_dim: usize,
    pub layout: RopeLayout,
    pub scaling: Option<Llama3Scaling>,
}

/// `q: (tokens, n_heads, head_dim)`, `k: (tokens, n_kv_heads, head_dim)`, `positions: (tokens,)`.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct RopeShape {
    pub tokens: usize,
    pub n_heads: usize,
    pub n_kv_heads: usize,
    pub head_dim: usize,
}

/// `gate, up, out: (rows, d)`; packed input `(rows, 2d)` holds `[gate | up]` per row.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct SwigluShape {
    pub rows: usize,
    pub d: usize,
}

/// `q, o: (batch, q_len, n_heads, head_dim)`, `k, v: (batch, kv_len, n_kv_heads, head_dim)`,
/// `lse: (batch, n_heads, q_len)`. `n_heads % n_kv_heads == 0` (grouped-query attention).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct AttentionShape {
    pub batch: usize,
    pub q_len: usize,
    pub kv_len: usize,
    pub n_heads: usize,
    pub n_kv_heads: usize,
    pub head_dim: usize,
}

/// Attention's configuration. Causal masking is bottom-right aligned: query `i` of a `q_len` block sees
/// keys `0..=kv_len - q_len + i` (the KV-cache case), and a query that sees no key gives zeros and
/// LSE = -inf.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct AttentionConfig {
    pub causal: bool,
    /// Defaults to `1/sqrt(head_dim)`.
    pub softmax_scale: Option<f32>,
}

impl Default for AttentionConfig {
    fn default() -> Self {
        AttentionConfig {
            causal: true,
            softmax_scale: None,
        }
    }
}

impl AttentionConfig {
    /// The scale applied to `q·k`.
    pub fn scale(&self, head_dim: usize) -> f32 {
        self.softmax_scale.unwrap_or(1.0 / (head_dim as f32).sqrt())
    }

    /// `(scale, scale · log2 e)` in f32, the kernel's base-2 scale, once the scale is checked: finite,
    /// non-zero, and finite once multiplied by `log2 e`. The one rule of the op and the reference; `Err`
    /// says what is wrong.
    pub fn checked_scale(&self, head_dim: usize) -> Result<(f32, f32), String> {
        let scale = self.scale(head_dim);
        if !scale.is_finite() || scale == 0.0 {
            return Err(format!("softmax_scale must be finite and non-zero, got {scale}"));
        }
        let scale_log2 = scale * std::f32::consts::LOG2_E;
        if !scale_log2.is_finite() {
            return Err(format!(
                "softmax_scale {scale} overflows f32 once multiplied by log2(e)"
            ));
        }
        Ok((scale, scale_log2))
    }
}

/// `C (m, n) = alpha · op(A) (m, k) · op(B) (k, n) + beta · C`. Row-major; `A` is stored `(m, k)`, or
/// `(k, m)` when `trans_a`; `B` is stored `(k, n)`, or `(n, k)` when `trans_b` (LLaMA's `y = x·Wᵀ` with
/// `W: (out, in)` is `trans_b = true`).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct GemmShape {
    pub m: usize,
    pub n: usize,
    pub k: usize,
}

/// GEMM's scalars and transposes. With `beta == 0`, `C` is write-only (never read).
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct GemmConfig {
    pub trans_a: bool,
    pub trans_b: bool,
    pub alpha: f32,
    pub beta: f32,
}

impl Default for GemmConfig {
    fn default() -> Self {
        GemmConfig {
            trans_a: false,
            trans_b: false,
            alpha: 1.0,
            beta: 0.0,
        }
    }
}
