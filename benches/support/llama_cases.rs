//! The LLaMA-3-8B cases that `benches/vs_cublas.rs` measures and `examples/roofline.rs` predicts: one
//! list, so the bench's figures and the model's predictions are of the same launches.
//!
//! Shapes: GEMMs `y = x·Wᵀ` (qkv 4096→6144, o 4096→4096, gate/up 4096→28672, down 14336→4096) at
//! 4096 tokens and at decode batch 1, 8, 32; causal GQA 32/8 attention at head_dim 128, a 4096-token
//! prefill and one query over 8192 keys at batch 1, 8, 32; RMSNorm, RoPE (LLaMA 3.1 scaling) and
//! SwiGLU at 4096 tokens and at 32; the residual add, the KV append (RoPE fused, into a paged cache of
//! 16-slot pages) and the embedding gather (LLaMA 3's 128256-row table) at 4096 tokens and at 32; serving
//! decode (`attention_paged`) over 8192 keys per sequence in 16-slot pages scattered over the cache, at
//! batch 8 and 32.

use half::bf16;
use llama_kernels::backend::Backend;
use llama_kernels::ops::attention::SplitKv;
use llama_kernels::ops::{add, attention, embedding, gemm, kv_cache, rms_norm, rope, swiglu};
use llama_kernels::reference::random_vec;
use llama_kernels::{
    AddShape, AttentionConfig, AttentionShape, EmbeddingShape, GemmConfig, GemmShape, KvAppendShape, Llama3Scaling,
    PagedKvShape, RmsNormConfig, RmsNormShape, RopeConfig, RopeLayout, RopeShape, Rounding, SwigluShape, VarlenShape,
};

pub type T = bf16;
/// Bytes per element.
const E: f64 = 2.0;
const HIDDEN: usize = 4096;
const FFN: usize = 14336;
const HEADS: usize = 32;
const KV_HEADS: usize = 8;
const D: usize = 128;
const VOCAB: usize = 128256;
/// The KV append's cache: this many slots past the new tokens (a prefix already cached).
const CACHED: usize = 1024;

/// Keys per page of the paged caches.
const PAGE: usize = 16;

/// Slots of the KV append's cache for `t` new tokens: whole pages of 16.
fn kv_slots(t: usize) -> usize {
    (CACHED + t).div_ceil(16) * 16
}

#[derive(Clone, Copy, Debug)]
pub enum Case {
    /// m, n, k
    Gemm(usize, usize, usize),
    /// batch, q_len, kv_len
    Attention(usize, usize, usize),
    /// batch, kv_len: one query per sequence over a paged cache (`attention_paged`)
    PagedDecode(usize, usize),
    /// tokens
    RmsNorm(usize),
    Rope(usize),
    Swiglu(usize),
    /// tokens: the residual add `h += x` over the hidden size
    Add(usize),
    /// new tokens: RoPE on q and k, k and v into the cache
    KvAppend(usize),
    /// tokens
    Embedding(usize),
}

impl Case {
    /// The op's module name.
    pub fn op(self) -> &'static str {
        match self {
            Case::Gemm(..) => "gemm",
            Case::Attention(..) | Case::PagedDecode(..) => "attention",
            Case::RmsNorm(_) => "rms_norm",
            Case::Rope(_) => "rope",
            Case::Swiglu(_) => "swiglu",
            Case::Add(_) => "add",
            Case::KvAppend(_) => "kv_append",
            Case::Embedding(_) => "embedding",
        }
    }

    /// FLOPs and minimum bytes (each input read once, each output written once). Attention:
    /// 4·b·h·q·kv·d, halved for the causal prefill's square (a decode query sees every key).
    pub fn work(self) -> (f64, f64) {
        match self {
            Case::Gemm(m, n, k) => (2.0 * (m * n * k) as f64, E * (m * k + n * k + m * n) as f64),
            Case::Attention(b, q, kv) => {
                let full = 4.0 * (b * HEADS * q * kv * D) as f64;
                let flops = if q == kv { full / 2.0 } else { full };
                (flops, E * (2 * b * q * HEADS * D + 2 * b * kv * KV_HEADS * D) as f64)
            }
            Case::PagedDecode(b, kv) => {
                // As a decode query; the block table and lengths are under 0.2% of the bytes.
                let (flops, bytes) = Case::Attention(b, 1, kv).work();
                (flops, bytes + 4.0 * (b * kv.div_ceil(PAGE) + 2 * b + 1) as f64)
            }
            Case::RmsNorm(t) => (4.0 * (t * HIDDEN) as f64, E * (2 * t * HIDDEN + HIDDEN) as f64),
            Case::Rope(t) => {
                let qk = (t * (HEADS + KV_HEADS) * D) as f64;
                (3.0 * qk, 2.0 * E * qk + 4.0 * t as f64)
            }
            Case::Swiglu(t) => (6.0 * (t * FFN) as f64, 3.0 * E * (t * FFN) as f64),
            Case::Add(t) => ((t * HIDDEN) as f64, 3.0 * E * (t * HIDDEN) as f64),
            // q and k read and written, v read, k and v written to the cache; positions and slots.
            Case::KvAppend(t) => {
                let (q, kv) = ((t * HEADS * D) as f64, (t * KV_HEADS * D) as f64);
                (
                    3.0 * (q + kv),
                    E * (2.0 * q + 2.0 * kv + kv + 2.0 * kv) + 12.0 * t as f64,
                )
            }
            // The rows read once, written once; the ids.
            Case::Embedding(t) => (0.0, 2.0 * E * (t * HIDDEN) as f64 + 4.0 * t as f64),
        }
    }
}

/// Every case, with its shape (which begins with `prefill` or `decode`), in a fixed order.
pub fn cases() -> Vec<(String, Case)> {
    let mut v = vec![];
    let gemms = [
        ("qkv", 6144usize, 4096usize),
        ("o", 4096, 4096),
        ("gate_up", 28672, 4096),
        ("down", 4096, 14336),
    ];
    for (phase, m) in [
        ("prefill", 4096usize),
        ("decode b1", 1),
        ("decode b8", 8),
        ("decode b32", 32),
    ] {
        for (name, n, k) in gemms {
            v.push((format!("{phase} {name} {m}x{n}x{k}"), Case::Gemm(m, n, k)));
        }
    }
    for (phase, batch, q_len, kv_len) in [
        ("prefill", 1usize, 4096usize, 4096usize),
        ("decode b1", 1, 1, 8192),
        ("decode b8", 8, 1, 8192),
        ("decode b32", 32, 1, 8192),
    ] {
        v.push((
            format!("{phase} q {q_len} kv {kv_len} GQA 32/8 d128"),
            Case::Attention(batch, q_len, kv_len),
        ));
    }
    for batch in [8usize, 32] {
        v.push((
            format!("decode b{batch} q 1 kv 8192 GQA 32/8 d128, paged (16-slot pages, scattered)"),
            Case::PagedDecode(batch, 8192),
        ));
    }
    for (phase, t) in [("prefill", 4096usize), ("decode b32", 32)] {
        v.push((format!("{phase} {t}x{HIDDEN}"), Case::RmsNorm(t)));
        v.push((format!("{phase} {t} tok, 32+8 heads x128"), Case::Rope(t)));
        v.push((format!("{phase} {t}x{FFN}"), Case::Swiglu(t)));
        v.push((format!("{phase} {t}x{HIDDEN} residual"), Case::Add(t)));
        v.push((
            format!("{phase} {t} tok, 32+8 heads x128, 16-slot pages"),
            Case::KvAppend(t),
        ));
        v.push((format!("{phase} {t} ids, {VOCAB}x{HIDDEN}"), Case::Embedding(t)));
    }
    v
}

/// A case's buffers on one backend: inputs random from fixed seeds (`random`) or never written (for
/// the model, which needs no values), outputs poisoned; RoPE's positions.
pub struct Bufs<B: Backend> {
    pub x: Vec<B::Buffer<T>>,
    /// Paged decode: cu_seqlens_q, seq_lens, block_table; then lse and the split-KV workspace.
    meta: Vec<B::Buffer<i32>>,
    f32s: Vec<B::Buffer<f32>>,
    pos: Option<B::Buffer<i32>>,
    slots: Option<B::Buffer<i64>>,
    status: Option<B::Buffer<i32>>,
}

pub fn buffers<B: Backend>(b: &B, c: Case, random: bool) -> llama_kernels::Result<Bufs<B>> {
    let sizes: Vec<usize> = match c {
        Case::Gemm(m, n, k) => vec![m * k, n * k, m * n],
        Case::Attention(bt, q, kv) => {
            vec![
                bt * q * HEADS * D,
                bt * kv * KV_HEADS * D,
                bt * kv * KV_HEADS * D,
                bt * q * HEADS * D,
            ]
        }
        Case::PagedDecode(bt, kv) => {
            let cache = bt * kv * KV_HEADS * D;
            vec![bt * HEADS * D, cache, cache, bt * HEADS * D]
        }
        Case::RmsNorm(t) => vec![t * HIDDEN, HIDDEN, t * HIDDEN],
        Case::Rope(t) => vec![t * HEADS * D, t * KV_HEADS * D],
        Case::Swiglu(t) => vec![t * FFN, t * FFN, t * FFN],
        Case::Add(t) => vec![t * HIDDEN, t * HIDDEN],
        Case::KvAppend(t) => {
            let cache = kv_slots(t) * KV_HEADS * D;
            vec![t * HEADS * D, t * KV_HEADS * D, t * KV_HEADS * D, cache, cache]
        }
        Case::Embedding(t) => vec![VOCAB * HIDDEN, t * HIDDEN],
    };
    let mut x = vec![];
    for (i, n) in sizes.iter().enumerate() {
        x.push(if random {
            b.upload(&random_vec::<T>(*n, 1 + i as u64, 1.0))?
        } else {
            b.alloc_poisoned::<T>(*n)?
        });
    }
    let pos = match c {
        Case::Rope(t) | Case::KvAppend(t) => {
            Some(b.upload(&(0..t as i32).map(|p| p + CACHED as i32).collect::<Vec<i32>>())?)
        }
        // Token ids spread over the vocabulary.
        Case::Embedding(t) => Some(b.upload(&(0..t).map(|i| (i * 7919 % VOCAB) as i32).collect::<Vec<i32>>())?),
        _ => None,
    };
    // The new tokens' slots: after the cached prefix, pages of 16 taken in reverse order.
    let slots = match c {
        Case::KvAppend(t) => {
            let pages = kv_slots(t) / 16;
            let slot = |pos: usize| ((pages - 1 - pos / 16) * 16 + pos % 16) as i64;
            Some(b.upload(&(CACHED..CACHED + t).map(slot).collect::<Vec<i64>>())?)
        }
        _ => None,
    };
    let status = match c {
        Case::KvAppend(t) | Case::Embedding(t) => Some(b.alloc_poisoned::<i32>(t)?),
        _ => None,
    };
    let (mut meta, mut f32s) = (vec![], vec![]);
    if let Case::PagedDecode(bt, kv) = c {
        // Every sequence full; its pages spread over the cache (page j of sequence s is page
        // (j * bt + s) reversed), as an engine's allocator leaves them after some churn.
        let per_seq = kv.div_ceil(PAGE);
        let pages = bt * per_seq;
        meta.push(b.upload(&(0..=bt as i32).collect::<Vec<i32>>())?);
        meta.push(b.upload(&vec![kv as i32; bt])?);
        let table: Vec<i32> = (0..bt * per_seq)
            .map(|i| (pages - 1 - ((i % per_seq) * bt + i / per_seq)) as i32)
            .collect();
        meta.push(b.upload(&table)?);
        let shape = paged_shape(bt, kv);
        let ws = attention::serving_workspace_len(b, shape, llama_kernels::DType::BF16, SplitKv::Auto)?;
        f32s.push(b.alloc_poisoned::<f32>(bt * HEADS)?);
        f32s.push(b.alloc_poisoned::<f32>(ws.max(1))?);
    }
    Ok(Bufs {
        x,
        meta,
        f32s,
        pos,
        slots,
        status,
    })
}

fn paged_shape(batch: usize, kv: usize) -> VarlenShape {
    VarlenShape {
        batch,
        total_q: batch,
        max_q_len: 1,
        max_kv_len: kv,
        n_heads: HEADS,
        n_kv_heads: KV_HEADS,
        head_dim: D,
    }
}

/// Runs the case's op once (one kernel launch).
pub fn launch<B: Backend>(b: &B, c: Case, bufs: &mut Bufs<B>) -> llama_kernels::Result<()> {
    let x = &mut bufs.x;
    match c {
        Case::Gemm(m, n, k) => {
            let cfg = GemmConfig {
                trans_a: false,
                trans_b: true,
                alpha: 1.0,
                beta: 0.0,
                epilogue: llama_kernels::GemmEpilogue::Linear,
            };
            let (ab, out) = x.split_at_mut(2);
            gemm::gemm(b, &ab[0], &ab[1], &mut out[0], GemmShape { m, n, k }, cfg)
        }
        Case::Attention(batch, q_len, kv_len) => {
            let s = AttentionShape {
                batch,
                q_len,
                kv_len,
                n_heads: HEADS,
                n_kv_heads: KV_HEADS,
                head_dim: D,
            };
            let (qkv, o) = x.split_at_mut(3);
            attention::attention(b, &qkv[0], &qkv[1], &qkv[2], &mut o[0], s, AttentionConfig::default())
        }
        Case::PagedDecode(batch, kv) => {
            let (qkv, o) = x.split_at_mut(3);
            let (lse, ws) = bufs.f32s.split_at_mut(1);
            let pages = PagedKvShape {
                num_pages: batch * kv.div_ceil(PAGE),
                page_size: PAGE,
                max_pages_per_seq: kv.div_ceil(PAGE),
            };
            attention::attention_paged(
                b,
                &qkv[0],
                (&qkv[1], &qkv[2]),
                (&bufs.meta[0], &bufs.meta[1], &bufs.meta[2]),
                (&mut o[0], &mut lse[0]),
                &mut ws[0],
                paged_shape(batch, kv),
                pages,
                AttentionConfig::default(),
                SplitKv::Auto,
            )
        }
        Case::RmsNorm(t) => {
            let (xw, out) = x.split_at_mut(2);
            let shape = RmsNormShape {
                rows: t,
                hidden: HIDDEN,
            };
            rms_norm::rms_norm(b, &xw[0], &xw[1], &mut out[0], shape, RmsNormConfig::default())
        }
        Case::Rope(t) => {
            let cfg = RopeConfig {
                theta: 500000.0,
                rotary_dim: D,
                layout: RopeLayout::Interleaved,
                scaling: Some(Llama3Scaling::LLAMA_3_1),
            };
            let rs = RopeShape {
                tokens: t,
                n_heads: HEADS,
                n_kv_heads: KV_HEADS,
                head_dim: D,
            };
            let (q, k) = x.split_at_mut(1);
            let pos = bufs.pos.as_ref().ok_or_else(|| llama_kernels::Error::InvalidArgument {
                op: "rope",
                reason: "no positions buffer".into(),
            })?;
            rope::rope_with_config(b, &mut q[0], Some(&mut k[0]), pos, rs, cfg)
        }
        Case::Swiglu(t) => {
            let (gu, out) = x.split_at_mut(2);
            swiglu::swiglu(
                b,
                &gu[0],
                &gu[1],
                &mut out[0],
                SwigluShape { rows: t, d: FFN },
                Rounding::MatchTorch,
            )
        }
        Case::Add(t) => {
            let (h, xs) = x.split_at_mut(1);
            add::add_inplace(b, &mut h[0], &xs[0], AddShape::contiguous(t, HIDDEN))
        }
        Case::KvAppend(t) => {
            let missing = |what: &str| llama_kernels::Error::InvalidArgument {
                op: "kv_append",
                reason: format!("no {what} buffer"),
            };
            let cfg = RopeConfig {
                theta: 500000.0,
                rotary_dim: D,
                layout: RopeLayout::HalfSplit,
                scaling: Some(Llama3Scaling::LLAMA_3_1),
            };
            let inv_freq = rope::upload_inv_freq(b, &cfg)?;
            let shape = KvAppendShape {
                tokens: t,
                n_heads: HEADS,
                n_kv_heads: KV_HEADS,
                head_dim: D,
                num_slots: kv_slots(t),
            };
            let (qkv, caches) = x.split_at_mut(3);
            let (q, kv) = qkv.split_at_mut(1);
            let (k, v) = kv.split_at_mut(1);
            let (kc, vc) = caches.split_at_mut(1);
            let pos = bufs.pos.as_ref().ok_or_else(|| missing("positions"))?;
            let slots = bufs.slots.as_ref().ok_or_else(|| missing("slot"))?;
            let status = bufs.status.as_mut().ok_or_else(|| missing("status"))?;
            kv_cache::kv_append(
                b,
                &mut q[0],
                &mut k[0],
                &v[0],
                (&mut kc[0], &mut vc[0]),
                slots,
                (pos, &inv_freq),
                status,
                shape,
                cfg,
            )
        }
        Case::Embedding(t) => {
            let (table, out) = x.split_at_mut(1);
            let missing = |what: &str| llama_kernels::Error::InvalidArgument {
                op: "embedding",
                reason: format!("no {what} buffer"),
            };
            let ids = bufs.pos.as_ref().ok_or_else(|| missing("ids"))?;
            let status = bufs.status.as_mut().ok_or_else(|| missing("status"))?;
            embedding::embedding(
                b,
                &table[0],
                ids,
                &mut out[0],
                status,
                EmbeddingShape::contiguous(t, HIDDEN, VOCAB),
            )
        }
    }
}
