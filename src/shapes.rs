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
    /// Rows (tokens).
    pub rows: usize,
    /// Elements per row (the model dimension).
    pub hidden: usize,
}

/// RMSNorm's scalars: `y = x / sqrt(mean(x^2) + eps) * weight`.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct RmsNormConfig {
    /// Added to `mean(x²)` before the reciprocal square root.
    pub eps: f32,
    /// Where the result rounds to the storage dtype.
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

/// Row strides, in elements, of RMSNorm's row tensors ([`crate::ops::rms_norm::rms_norm_strided`],
/// [`crate::ops::rms_norm::fused_add_rms_norm_strided`]): row `r` of a tensor starts `r · stride` elements
/// after its first, and its buffer holds exactly the span ([`strided_span`]). A written tensor's stride is
/// at least `hidden` (its rows may not overlap); `x` may also be read at stride 0 (one row, broadcast).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct RmsNormStrides {
    /// Between rows of `x`.
    pub x: usize,
    /// Between rows of `residual` (fused op only).
    pub residual: usize,
    /// Between rows of `out`.
    pub out: usize,
}

impl RmsNormStrides {
    /// Contiguous rows of `hidden` elements.
    pub const fn contiguous(hidden: usize) -> Self {
        RmsNormStrides {
            x: hidden,
            residual: hidden,
            out: hidden,
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
    /// How the rotary dimensions pair up.
    pub layout: RopeLayout,
    /// LLaMA 3.1 frequency scaling, if any.
    pub scaling: Option<Llama3Scaling>,
}

/// `q: (tokens, n_heads, head_dim)`, `k: (tokens, n_kv_heads, head_dim)`, `positions: (tokens,)`.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct RopeShape {
    /// Tokens (rows of q and k).
    pub tokens: usize,
    /// Heads of q.
    pub n_heads: usize,
    /// Heads of k (GQA: fewer than q's).
    pub n_kv_heads: usize,
    /// Elements per head.
    pub head_dim: usize,
}

/// `gate, up, out: (rows, d)`; packed input `(rows, 2d)` holds `[gate | up]` per row.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct SwigluShape {
    /// Rows (tokens).
    pub rows: usize,
    /// The FFN hidden size: elements per row of `gate`, `up` and `out`.
    pub d: usize,
}

/// Row strides, in elements, of SwiGLU's tensors ([`crate::ops::swiglu::swiglu_strided`]), as
/// [`RmsNormStrides`]: `gate` and `up` may be two views of one packed `[gate | up]` buffer (strides `2d`,
/// `up` starting `d` elements in) or of a wider fused projection.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct SwigluStrides {
    /// Between rows of `gate`.
    pub gate: usize,
    /// Between rows of `up`.
    pub up: usize,
    /// Between rows of `out`.
    pub out: usize,
}

impl SwigluStrides {
    /// Contiguous rows of `d` elements.
    pub const fn contiguous(d: usize) -> Self {
        SwigluStrides { gate: d, up: d, out: d }
    }
}

/// `q, o: (batch, q_len, n_heads, head_dim)`, `k, v: (batch, kv_len, n_kv_heads, head_dim)`,
/// `lse: (batch, n_heads, q_len)`. `n_heads % n_kv_heads == 0` (grouped-query attention).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct AttentionShape {
    /// Sequences.
    pub batch: usize,
    /// Query tokens per sequence.
    pub q_len: usize,
    /// Key/value tokens per sequence (the KV cache's filled length).
    pub kv_len: usize,
    /// Query heads.
    pub n_heads: usize,
    /// Key/value heads (`n_heads` is a multiple: GQA, MQA).
    pub n_kv_heads: usize,
    /// Elements per head.
    pub head_dim: usize,
}

/// A ragged batch for serving attention ([`crate::ops::attention::attention_paged`],
/// [`crate::ops::attention::attention_varlen`]): `batch` sequences of different lengths, their queries
/// packed into `q, o: (total_q, n_heads, head_dim)` (sequence `b`'s are rows `cu_seqlens_q[b]..
/// cu_seqlens_q[b + 1]`) and `lse: (n_heads, total_q)`. Each sequence is masked on its own, bottom-right
/// aligned: query `i` of a sequence with `q_len_b` queries and `kv_len_b` keys has diagonal key
/// `kv_len_b - q_len_b + i` (prefill with a cached prefix, or decode). `max_q_len` and `max_kv_len` bound
/// every sequence's counts and size the launch (a sequence past them is an error, reported as NaN).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct VarlenShape {
    /// Sequences.
    pub batch: usize,
    /// Rows of `q` and `o` (query tokens of every sequence, packed).
    pub total_q: usize,
    /// The most queries any sequence has.
    pub max_q_len: usize,
    /// The most keys any sequence has (its cached prefix and its new tokens).
    pub max_kv_len: usize,
    /// Query heads.
    pub n_heads: usize,
    /// Key/value heads (`n_heads` is a multiple).
    pub n_kv_heads: usize,
    /// Elements per head.
    pub head_dim: usize,
}

impl VarlenShape {
    /// The padded batch the launch is planned for: every sequence at `max_q_len` queries and
    /// `max_kv_len` keys (its kernel, tiles and KV splits; [`crate::ops::attention::plan()`]).
    pub fn padded(&self) -> AttentionShape {
        AttentionShape {
            batch: self.batch,
            q_len: self.max_q_len,
            kv_len: self.max_kv_len,
            n_heads: self.n_heads,
            n_kv_heads: self.n_kv_heads,
            head_dim: self.head_dim,
        }
    }
}

/// A paged KV cache: `k_cache, v_cache: (num_pages, page_size, n_kv_heads, head_dim)` (the caches
/// [`crate::ops::kv_cache::kv_append`] writes, with `num_slots = num_pages · page_size`), and a
/// `block_table: (batch, max_pages_per_seq)` of i32 page ids: key `j` of sequence `b` is slot
/// `block_table[b][j / page_size] · page_size + j % page_size`. Pages may be in any order and shared
/// between sequences; entries past a sequence's last page are never read. A contiguous
/// `(batch, capacity, ...)` cache is `num_pages = batch`, `page_size = capacity`, `block_table[b] = [b]`.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct PagedKvShape {
    /// Pages of each cache.
    pub num_pages: usize,
    /// Keys per page (any size ≥ 1; engines use 16, FlashAttention-2 needs 256).
    pub page_size: usize,
    /// Entries per sequence of `block_table` (`max_pages_per_seq · page_size ≥ max_kv_len`).
    pub max_pages_per_seq: usize,
}

/// Attention's configuration. Masks are bottom-right aligned: query `i` of a `q_len` block has diagonal
/// key `d = kv_len - q_len + i` (the KV-cache case) and sees the keys `j < kv_len` with
/// `d - window_left <= j <= d + window_right` (a `None` side is unbounded; `causal` is `window_right = 0`,
/// FlashAttention's `window_size`). A query that sees no key gives zeros and LSE = -inf.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct AttentionConfig {
    /// Bottom-right causal mask (`window_right = 0`).
    pub causal: bool,
    /// Defaults to `1/sqrt(head_dim)`.
    pub softmax_scale: Option<f32>,
    /// Keys before the diagonal a query sees (`None`: all). Sliding-window attention (Mistral, Gemma 2).
    pub window_left: Option<usize>,
    /// Keys after the diagonal a query sees (`None`: all). Must be `None` or `Some(0)` when `causal`.
    pub window_right: Option<usize>,
    /// Logit soft-capping (Gemma 2, FlashAttention's `softcap`): the score `x = scale · q·k` becomes
    /// `softcap · tanh(x / softcap)`. `None`: off; otherwise finite and `> 0`.
    pub softcap: Option<f32>,
}

impl Default for AttentionConfig {
    fn default() -> Self {
        AttentionConfig {
            causal: true,
            softmax_scale: None,
            window_left: None,
            window_right: None,
            softcap: None,
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

    /// The window `(left, right)` the mask uses (`None` = unbounded), with `causal` folded in as
    /// `right = 0`, once checked: `Err` when `causal` comes with a `window_right` other than 0.
    pub fn checked_window(&self) -> Result<(Option<usize>, Option<usize>), String> {
        if self.causal {
            if let Some(r) = self.window_right.filter(|&r| r != 0) {
                return Err(format!(
                    "window_right = {r} contradicts causal (which is window_right = 0)"
                ));
            }
            return Ok((self.window_left, Some(0)));
        }
        Ok((self.window_left, self.window_right))
    }

    /// The soft cap once checked: `None` (off), or a finite `softcap > 0` for which `scale / softcap`
    /// and `softcap · log2 e` are finite and non-zero in f32 (the kernel's two factors).
    pub fn checked_softcap(&self, head_dim: usize) -> Result<Option<f32>, String> {
        let Some(cap) = self.softcap else { return Ok(None) };
        if !cap.is_finite() || cap <= 0.0 {
            return Err(format!("softcap must be finite and > 0, got {cap}"));
        }
        let (scale, _) = self.checked_scale(head_dim)?;
        let (input, output) = (scale / cap, cap * std::f32::consts::LOG2_E);
        if !input.is_finite() || input == 0.0 || !output.is_finite() {
            return Err(format!(
                "softcap {cap} with softmax_scale {scale} leaves f32's range (scale / softcap = {input}, softcap · log2 e = {output})"
            ));
        }
        Ok(Some(cap))
    }

    /// Whether query `i` of `shape` sees key `j` (see the type's docs), for a checked window.
    pub fn sees(window: (Option<usize>, Option<usize>), shape: AttentionShape, i: usize, j: usize) -> bool {
        let diag = shape.kv_len as i64 - shape.q_len as i64 + i as i64;
        let j = j as i64;
        j < shape.kv_len as i64
            && window.0.is_none_or(|l| j >= diag - l.min(i64::MAX as usize / 4) as i64)
            && window.1.is_none_or(|r| j <= diag + r.min(i64::MAX as usize / 4) as i64)
    }
}

/// `C (m, n) = alpha · op(A) (m, k) · op(B) (k, n) + beta · C`. Row-major; `A` is stored `(m, k)`, or
/// `(k, m)` when `trans_a`; `B` is stored `(k, n)`, or `(n, k)` when `trans_b` (LLaMA's `y = x·Wᵀ` with
/// `W: (out, in)` is `trans_b = true`).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct GemmShape {
    /// Rows of `op(A)` and `C`.
    pub m: usize,
    /// Columns of `op(B)` and `C` (gate and up together for SwiGLU).
    pub n: usize,
    /// The inner dimension.
    pub k: usize,
}

/// GEMM's leading dimensions ([`crate::ops::gemm::gemm_strided`]): elements between the rows of `A`, `B`
/// and `C` as stored (at least each one's columns: `A` `(m, k)` or, `trans_a`, `(k, m)`; `B` `(k, n)` or,
/// `trans_b`, `(n, k)`; `C` `(m, n)`, `(m, n/2)` for SwiGLU), so that operands can be column blocks of wider
/// matrices: a slice of a fused projection's output, or one into a wider buffer.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct GemmLd {
    /// Between rows of `A` as stored.
    pub lda: usize,
    /// Between rows of `B` as stored.
    pub ldb: usize,
    /// Between rows of `C`.
    pub ldc: usize,
}

/// GEMM's scalars, transposes and epilogue. With `beta == 0` and the linear epilogue, `C` is write-only
/// (never read).
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct GemmConfig {
    /// `A` is stored `(k, m)`.
    pub trans_a: bool,
    /// `B` is stored `(n, k)` (LLaMA's `x·Wᵀ`).
    pub trans_b: bool,
    /// Scales the product.
    pub alpha: f32,
    /// Linear epilogue only; must be 0 with the others.
    pub beta: f32,
    /// What is done with the f32 accumulator.
    pub epilogue: GemmEpilogue,
}

impl GemmConfig {
    /// `C = op(A)·op(B)`: no transposes, `alpha = 1`, `beta = 0`, the linear epilogue (a `const`
    /// [`Default`]).
    pub const DEFAULT: GemmConfig = GemmConfig {
        trans_a: false,
        trans_b: false,
        alpha: 1.0,
        beta: 0.0,
        epilogue: GemmEpilogue::Linear,
    };
}

impl Default for GemmConfig {
    fn default() -> Self {
        GemmConfig::DEFAULT
    }
}

/// What a GEMM writes from its f32 accumulator `acc = op(A)·op(B)` (`cuda/include/gemm_epilogue.cuh`).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Default)]
pub enum GemmEpilogue {
    /// `C = alpha·acc + beta·C` in f32, rounded once.
    #[default]
    Linear,
    /// `C += alpha·acc`, in place: LLaMA's residual stream after `o_proj` and `down_proj`. `C` is read
    /// and written; `beta` must be 0. [`Rounding::MatchTorch`] rounds `alpha·acc` to the storage dtype
    /// first, as `x + linear(h)` does in PyTorch; [`Rounding::Once`] rounds `alpha·acc + C` once (the same
    /// bits as `Linear` with `beta = 1`).
    ResidualAdd(Rounding),
    /// LLaMA's feed-forward gate: `op(B)`'s `n` columns hold the gate and up projections interleaved in
    /// blocks of [`GEMM_SWIGLU_BLOCK`] columns (gate block `b` at columns `2b·S..`, its up block at
    /// `(2b + 1)·S..`; `ops::gemm::interleave_gate_up` builds such weights), and `C (m, n / 2)` is
    /// `silu(g)·u` of `g = alpha·acc_gate`, `u = alpha·acc_up`. `n` must be a multiple of `2·S`; `beta`
    /// must be 0. [`Rounding::MatchTorch`] rounds `g` and `u` to the storage dtype (the two GEMM outputs
    /// PyTorch would hold), then follows the SwiGLU op: the same bits as this GEMM without the epilogue
    /// followed by `ops::swiglu`. [`Rounding::Once`] computes `silu(g)·u` in f32 and rounds once.
    SwiGlu(Rounding),
}

/// Columns per gate or up block of [`GemmEpilogue::SwiGlu`]'s interleaved weights.
pub const GEMM_SWIGLU_BLOCK: usize = crate::raw::params::LK_GEMM_SWIGLU_BLOCK as usize;

impl GemmConfig {
    /// The epilogue's preconditions for `shape`: `beta == 0` unless Linear, and for SwiGLU `n` a multiple
    /// of `2·GEMM_SWIGLU_BLOCK` (`InvalidArgument`, `InvalidShape`; `op` names the caller). Shared by the
    /// op and the reference.
    pub fn check_epilogue(&self, op: &'static str, shape: GemmShape) -> crate::Result<()> {
        if self.epilogue != GemmEpilogue::Linear && self.beta != 0.0 {
            return Err(crate::Error::InvalidArgument {
                op,
                reason: format!(
                    "beta = {} with the {:?} epilogue (only Linear scales C)",
                    self.beta, self.epilogue
                ),
            });
        }
        if matches!(self.epilogue, GemmEpilogue::SwiGlu(_)) && shape.n % (2 * GEMM_SWIGLU_BLOCK) != 0 {
            return Err(crate::Error::InvalidShape {
                op,
                reason: format!(
                    "SwiGLU needs n (gate and up columns) to be a multiple of {}, got {}",
                    2 * GEMM_SWIGLU_BLOCK,
                    shape.n
                ),
            });
        }
        Ok(())
    }
}

/// `count` GEMMs of one shape and config: product `z` reads `A + z·stride_a`, `B + z·stride_b` and writes
/// `C + z·stride_c` (strides in elements; 0 shares one `A` or `B` among all products, as LoRA adapters
/// on one input do). Each buffer holds exactly `(count - 1)·stride + ` its matrix's elements; `stride_c`
/// is at least `C`'s elements, so no two products write the same element.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct GemmBatch {
    /// Products, at most 65535.
    pub count: usize,
    /// Elements between the `A` of consecutive products (0: one `A` for all).
    pub stride_a: usize,
    /// Elements between the `B` of consecutive products (0: one `B` for all).
    pub stride_b: usize,
    /// Elements between the `C` of consecutive products.
    pub stride_c: usize,
}

impl GemmBatch {
    /// One product (what [`GemmBatch::default`] gives).
    pub const ONE: GemmBatch = GemmBatch {
        count: 1,
        stride_a: 0,
        stride_b: 0,
        stride_c: 0,
    };
}

impl Default for GemmBatch {
    fn default() -> Self {
        GemmBatch::ONE
    }
}

/// Elements a `(rows, d)` tensor spans in its buffer when row `r` starts `r · row_stride` elements after
/// row 0: `(rows - 1) · row_stride + d`, and 0 when `rows` or `d` is 0. `None` on overflow. The buffers
/// of the strided ops ([`AddShape`], [`ConvertShape`], [`EmbeddingShape`]) hold exactly this many.
pub fn strided_span(rows: usize, d: usize, row_stride: usize) -> Option<usize> {
    if rows == 0 || d == 0 {
        return Some(0);
    }
    (rows - 1).checked_mul(row_stride)?.checked_add(d)
}

/// `out = a + b` on `(rows, d)` tensors, each at its own row stride (elements between row starts;
/// [`AddShape::contiguous`] sets every stride to `d`). An input's stride may be anything, 0 included
/// (one row for all: a bias broadcast); `out`'s is at least `d` when `rows > 1`.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct AddShape {
    /// Rows.
    pub rows: usize,
    /// Elements per row.
    pub d: usize,
    /// Elements between rows of `a`.
    pub a_row_stride: usize,
    /// Elements between rows of `b` (0: one row for all).
    pub b_row_stride: usize,
    /// Elements between rows of `out`.
    pub out_row_stride: usize,
}

impl AddShape {
    /// Three contiguous `(rows, d)` tensors.
    pub const fn contiguous(rows: usize, d: usize) -> Self {
        AddShape {
            rows,
            d,
            a_row_stride: d,
            b_row_stride: d,
            out_row_stride: d,
        }
    }
}

/// A `(rows, d)` copy or cast from `x` to `out`, each at its own row stride (a column block of a fused
/// projection's output is `d` columns at the fused row stride). `x`'s stride may be anything; `out`'s is
/// at least `d` when `rows > 1`.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct ConvertShape {
    /// Rows.
    pub rows: usize,
    /// Elements per row.
    pub d: usize,
    /// Elements between rows of `x`.
    pub x_row_stride: usize,
    /// Elements between rows of `out`.
    pub out_row_stride: usize,
}

impl ConvertShape {
    /// Two contiguous `(rows, d)` tensors.
    pub const fn contiguous(rows: usize, d: usize) -> Self {
        ConvertShape {
            rows,
            d,
            x_row_stride: d,
            out_row_stride: d,
        }
    }
}

/// Embedding gather: `table: (vocab, d)` at `table_row_stride`, `ids: (tokens,)` (i32),
/// `out: (tokens, d)` at `out_row_stride` (at least `d` when `tokens > 1`).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct EmbeddingShape {
    /// Tokens (ids).
    pub tokens: usize,
    /// Elements per row of the table and of `out`.
    pub d: usize,
    /// Rows of the table: valid ids are `0..vocab`.
    pub vocab: usize,
    /// Elements between rows of the table.
    pub table_row_stride: usize,
    /// Elements between rows of `out`.
    pub out_row_stride: usize,
}

impl EmbeddingShape {
    /// A contiguous table and output.
    pub const fn contiguous(tokens: usize, d: usize, vocab: usize) -> Self {
        EmbeddingShape {
            tokens,
            d,
            vocab,
            table_row_stride: d,
            out_row_stride: d,
        }
    }
}

/// Element strides of a `(batch, rows, heads, head_dim)` tensor: between batches, between rows (tokens)
/// and between heads; a head's `head_dim` elements are contiguous.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct HeadStrides {
    /// Elements between batches.
    pub batch: usize,
    /// Elements between rows (tokens).
    pub row: usize,
    /// Elements between heads.
    pub head: usize,
}

impl HeadStrides {
    /// A contiguous `(batch, rows, heads, head_dim)` tensor. A stride past `usize` saturates, so that the
    /// span of a shape that large overflows too ([`HeadStrides::span`] is `None`).
    pub const fn contiguous(rows: usize, heads: usize, head_dim: usize) -> Self {
        HeadStrides {
            batch: rows.saturating_mul(heads).saturating_mul(head_dim),
            row: heads.saturating_mul(head_dim),
            head: head_dim,
        }
    }

    /// Elements the tensor spans from its first element: `(batch - 1)·batch_stride + (rows - 1)·row +
    /// (heads - 1)·head + head_dim`, 0 when a size is 0; `None` on overflow.
    pub fn span(&self, batch: usize, rows: usize, heads: usize, head_dim: usize) -> Option<usize> {
        if batch == 0 || rows == 0 || heads == 0 || head_dim == 0 {
            return Some(0);
        }
        (batch - 1)
            .checked_mul(self.batch)?
            .checked_add((rows - 1).checked_mul(self.row)?)?
            .checked_add((heads - 1).checked_mul(self.head)?)?
            .checked_add(head_dim)
    }
}

/// Where attention's `q`, `k` and `v` live ([`crate::ops::attention::attention_strided`]): each at its own
/// strides, so a fused QKV projection's output feeds attention with no copy.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct AttentionLayout {
    /// Strides of q.
    pub q: HeadStrides,
    /// Strides of k.
    pub k: HeadStrides,
    /// Strides of v.
    pub v: HeadStrides,
}

impl AttentionLayout {
    /// Contiguous `q: (batch, q_len, n_heads, head_dim)` and `k, v: (batch, kv_len, n_kv_heads, head_dim)`.
    pub const fn contiguous(s: AttentionShape) -> Self {
        let kv = HeadStrides::contiguous(s.kv_len, s.n_kv_heads, s.head_dim);
        AttentionLayout {
            q: HeadStrides::contiguous(s.q_len, s.n_heads, s.head_dim),
            k: kv,
            v: kv,
        }
    }

    /// The three parts of a fused QKV projection's output `(batch, seq, n_heads + 2·n_kv_heads, head_dim)`
    /// (`q_len == kv_len == seq`): q is heads `0..n_heads` of each token, k the next `n_kv_heads`, v the
    /// last. The views start at elements 0, `n_heads·head_dim` and `(n_heads + n_kv_heads)·head_dim` of the
    /// buffer ([`AttentionLayout::fused_qkv_offsets`]).
    pub const fn fused_qkv(s: AttentionShape) -> Self {
        let heads = s.n_heads.saturating_add(s.n_kv_heads.saturating_mul(2));
        let row = heads.saturating_mul(s.head_dim);
        let strides = HeadStrides {
            batch: s.q_len.saturating_mul(row),
            row,
            head: s.head_dim,
        };
        AttentionLayout {
            q: strides,
            k: strides,
            v: strides,
        }
    }

    /// Where q, k and v start in a fused QKV buffer, in elements ([`AttentionLayout::fused_qkv`]);
    /// saturating, as the strides.
    pub const fn fused_qkv_offsets(s: AttentionShape) -> [usize; 3] {
        [
            0,
            s.n_heads.saturating_mul(s.head_dim),
            s.n_heads.saturating_add(s.n_kv_heads).saturating_mul(s.head_dim),
        ]
    }
}

/// KV append ([`crate::ops::kv_cache`]): `tokens` new tokens with `q: (tokens, n_heads, head_dim)` and
/// `k, v: (tokens, n_kv_heads, head_dim)`, into caches of `num_slots` rows of `(n_kv_heads, head_dim)`: a
/// paged cache `(num_pages, page_size, n_kv_heads, head_dim)` has `num_slots = num_pages · page_size` (slot
/// `page · page_size + offset`); a contiguous `(batch, capacity, n_kv_heads, head_dim)` one has
/// `num_slots = batch · capacity` (slot `b · capacity + position`).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct KvAppendShape {
    /// New tokens.
    pub tokens: usize,
    /// Heads of q.
    pub n_heads: usize,
    /// Heads of k and v.
    pub n_kv_heads: usize,
    /// Elements per head.
    pub head_dim: usize,
    /// Rows of each cache.
    pub num_slots: usize,
}
