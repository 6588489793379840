//! A serving engine's inner loop on llama-kernels' public API alone: a two-layer LLaMA-shaped model, one
//! paged KV cache shared by a ragged batch, prefill then decode, with a sequence that joins mid-way
//! (its prompt's prefill and the others' decode in one batch) and one that finishes and gives its pages
//! back (another sequence then reuses them). Each step runs on the best device there is (the first CUDA
//! GPU, else ptx-emu with every check on), and a host engine built from the CPU reference runs the same
//! steps; their logits are compared at every step.
//!
//! ```text
//! one step, for the batch's new tokens (packed: sequence b's are rows cu_seqlens_q[b]..[b + 1]):
//! x      = embedding(ids)
//! layer: h = rms_norm(x);  q, k, v = h·Wqᵀ, h·Wkᵀ, h·Wvᵀ
//!        kv_append: RoPE on q and k, k and v into the paged cache at slot_mapping   (one launch)
//!        a = attention_paged(q, cache, cu_seqlens_q, seq_lens, block_table)         (causal per sequence)
//!        x += a·Woᵀ, h = rms_norm(x)                                                (fused add + RMSNorm)
//!        x += w2(silu(h·W1ᵀ) * h·W3ᵀ)                                               (W1 and W3 in one GEMM)
//! logits = rms_norm(x at each sequence's last row)·Wₒᵤₜᵀ;  next token = argmax (greedy)
//! ```
//!
//! `cargo run --release --example engine_decode`.

use half::bf16;
use llama_kernels::backend::{Backend, CudaBackend, EmuBackend};
use llama_kernels::ops::attention::{self, SplitKv};
use llama_kernels::ops::{embedding, gemm, kv_cache, rms_norm, rope, swiglu};
use llama_kernels::reference::{self, random_vec};
use llama_kernels::{
    AttentionConfig, Elem, EmbeddingShape, GemmConfig, GemmEpilogue, GemmShape, KvAppendShape, Llama3Scaling,
    PagedKvShape, RmsNormConfig, RmsNormShape, RopeConfig, RopeLayout, Rounding, SwigluShape, VarlenShape,
};

type T = bf16;
type R<X> = Result<X, String>;

/// The model and cache sizes: LLaMA-3-shaped, tiny.
const VOCAB: usize = 320;
const DIM: usize = 128;
const HEADS: usize = 4;
const KV_HEADS: usize = 2;
const HEAD_DIM: usize = 32;
const LAYERS: usize = 2;
const PAGE: usize = 16;
const NUM_PAGES: usize = 24;
const MAX_PAGES_PER_SEQ: usize = 6;

const NORM: RmsNormConfig = RmsNormConfig {
    eps: 1e-5,
    rounding: Rounding::MatchTorch,
};
const ROPE: RopeConfig = RopeConfig {
    theta: 500000.0,
    rotary_dim: HEAD_DIM,
    layout: RopeLayout::HalfSplit,
    scaling: Some(Llama3Scaling::LLAMA_3_1),
};
const LINEAR: GemmConfig = GemmConfig {
    trans_a: false,
    trans_b: true,
    alpha: 1.0,
    beta: 0.0,
    epilogue: GemmEpilogue::Linear,
};
const CAUSAL: AttentionConfig = AttentionConfig {
    causal: true,
    softmax_scale: None,
    window_left: None,
    window_right: None,
    softcap: None,
};

/// Host weights, LLaMA's layout: linear weights `(out, in)`, applied as `x·Wᵀ`.
struct Layer<W> {
    attn_norm: W,
    wq: W,
    wk: W,
    wv: W,
    wo: W,
    ffn_norm: W,
    /// `(2·hidden, DIM)`: W1's rows, then W3's, so `h·W13ᵀ` is `[gate | up]` per row.
    w13: W,
    w2: W,
}

struct Model<W> {
    embed: W,
    layers: Vec<Layer<W>>,
    norm: W,
    lm_head: W,
    hidden: usize,
}

fn host_model() -> R<Model<Vec<T>>> {
    let hidden = reference::ffn_hidden_dim(DIM, 32, None).map_err(|e| e.to_string())?;
    let w = |rows: usize, cols: usize, seed: u64| random_vec::<T>(rows * cols, seed, 1.0 / (cols as f32).sqrt());
    let norm = |seed: u64| {
        random_vec::<f32>(DIM, seed, 0.2)
            .iter()
            .map(|v| T::from_f32(1.0 + v))
            .collect()
    };
    let (q_dim, kv_dim) = (HEADS * HEAD_DIM, KV_HEADS * HEAD_DIM);
    let layers = (0..LAYERS as u64)
        .map(|l| Layer {
            attn_norm: norm(100 * l + 1),
            wq: w(q_dim, DIM, 100 * l + 2),
            wk: w(kv_dim, DIM, 100 * l + 3),
            wv: w(kv_dim, DIM, 100 * l + 4),
            wo: w(DIM, q_dim, 100 * l + 5),
            ffn_norm: norm(100 * l + 6),
            w13: w(2 * hidden, DIM, 100 * l + 7),
            w2: w(DIM, hidden, 100 * l + 8),
        })
        .collect();
    Ok(Model {
        embed: random_vec::<T>(VOCAB * DIM, 1000, 1.0),
        layers,
        norm: norm(1001),
        lm_head: w(VOCAB, DIM, 1002),
        hidden,
    })
}

/// The scheduler's view of one step: which sequences run with which new tokens, and the metadata both
/// engines derive from it (pages are allocated here, from one free list).
struct Step {
    /// New tokens, packed.
    ids: Vec<i32>,
    positions: Vec<i32>,
    slot_mapping: Vec<i64>,
    cu_seqlens_q: Vec<i32>,
    seq_lens: Vec<i32>,
    block_table: Vec<i32>,
    /// Each sequence's last row of the packed batch (its logits row).
    last_rows: Vec<i32>,
    shape: VarlenShape,
}

/// Pages and lengths of the live sequences.
struct Scheduler {
    free: Vec<i32>,
    seqs: Vec<(usize, Vec<i32>)>, // (cached tokens, pages) per sequence id
}

impl Scheduler {
    fn new() -> Self {
        // Free pages in a scrambled order, as an allocator leaves them after churn.
        let free = (0..NUM_PAGES as i32).map(|p| (p * 7 + 3) % NUM_PAGES as i32).collect();
        Scheduler { free, seqs: vec![] }
    }

    /// Plans a step: `batch` is (sequence id, its new tokens). A new id starts a sequence.
    fn plan(&mut self, batch: &[(usize, Vec<i32>)]) -> R<Step> {
        let mut s = Step {
            ids: vec![],
            positions: vec![],
            slot_mapping: vec![],
            cu_seqlens_q: vec![0],
            seq_lens: vec![],
            block_table: vec![-1; batch.len() * MAX_PAGES_PER_SEQ],
            last_rows: vec![],
            shape: VarlenShape {
                batch: batch.len(),
                total_q: 0,
                max_q_len: 0,
                max_kv_len: 0,
                n_heads: HEADS,
                n_kv_heads: KV_HEADS,
                head_dim: HEAD_DIM,
            },
        };
        for (b, (id, tokens)) in batch.iter().enumerate() {
            if *id == self.seqs.len() {
                self.seqs.push((0, vec![]));
            }
            let (len, pages) = &mut self.seqs[*id];
            for (i, &t) in tokens.iter().enumerate() {
                let pos = *len + i;
                if pos / PAGE == pages.len() {
                    pages.push(self.free.pop().ok_or("out of KV pages")?);
                }
                s.ids.push(t);
                s.positions.push(pos as i32);
                s.slot_mapping
                    .push(pages[pos / PAGE] as i64 * PAGE as i64 + (pos % PAGE) as i64);
            }
            *len += tokens.len();
            s.block_table[b * MAX_PAGES_PER_SEQ..][..pages.len()].copy_from_slice(pages);
            s.seq_lens.push(*len as i32);
            s.cu_seqlens_q.push(s.ids.len() as i32);
            s.last_rows.push(s.ids.len() as i32 - 1);
            s.shape.max_q_len = s.shape.max_q_len.max(tokens.len());
            s.shape.max_kv_len = s.shape.max_kv_len.max(*len);
        }
        s.shape.total_q = s.ids.len();
        Ok(s)
    }

    /// A finished sequence gives its pages back.
    fn finish(&mut self, id: usize) {
        let pages = std::mem::take(&mut self.seqs[id].1);
        self.free.extend(pages);
    }
}

/// The device engine: weights and the paged caches on `B`.
struct DeviceEngine<'a, B: Backend> {
    b: &'a B,
    model: Model<B::Buffer<T>>,
    /// Per layer: (k_cache, v_cache), each `(NUM_PAGES, PAGE, KV_HEADS, HEAD_DIM)`.
    caches: Vec<(B::Buffer<T>, B::Buffer<T>)>,
    inv_freq: B::Buffer<f32>,
}

fn e(x: llama_kernels::Error) -> String {
    x.to_string()
}

impl<'a, B: Backend> DeviceEngine<'a, B> {
    fn new(b: &'a B, m: &Model<Vec<T>>) -> R<Self> {
        let up = |v: &Vec<T>| b.upload(v).map_err(e);
        let layers = m
            .layers
            .iter()
            .map(|l| {
                Ok(Layer {
                    attn_norm: up(&l.attn_norm)?,
                    wq: up(&l.wq)?,
                    wk: up(&l.wk)?,
                    wv: up(&l.wv)?,
                    wo: up(&l.wo)?,
                    ffn_norm: up(&l.ffn_norm)?,
                    w13: up(&l.w13)?,
                    w2: up(&l.w2)?,
                })
            })
            .collect::<R<Vec<_>>>()?;
        let cache = NUM_PAGES * PAGE * KV_HEADS * HEAD_DIM;
        let caches = (0..LAYERS)
            .map(|_| {
                Ok((
                    b.alloc_zeros::<T>(cache).map_err(e)?,
                    b.alloc_zeros::<T>(cache).map_err(e)?,
                ))
            })
            .collect::<R<Vec<_>>>()?;
        Ok(DeviceEngine {
            b,
            model: Model {
                embed: up(&m.embed)?,
                layers,
                norm: up(&m.norm)?,
                lm_head: up(&m.lm_head)?,
                hidden: m.hidden,
            },
            caches,
            inv_freq: rope::upload_inv_freq(b, &ROPE).map_err(e)?,
        })
    }

    /// Runs one step; returns the logits `(batch, VOCAB)`.
    fn step(&mut self, s: &Step) -> R<Vec<T>> {
        let (b, n, hidden) = (self.b, s.shape.total_q, self.model.hidden);
        let alloc = |len: usize| b.alloc_poisoned::<T>(len).map_err(e);
        let up_i32 = |v: &[i32]| b.upload(v).map_err(e);
        let (ids, positions, cu_q, seq_lens, table) = (
            up_i32(&s.ids)?,
            up_i32(&s.positions)?,
            up_i32(&s.cu_seqlens_q)?,
            up_i32(&s.seq_lens)?,
            up_i32(&s.block_table)?,
        );
        let slots = b.upload(&s.slot_mapping).map_err(e)?;
        let mut status = b.alloc_poisoned::<i32>(n.max(s.shape.batch)).map_err(e)?;
        let rows = RmsNormShape { rows: n, hidden: DIM };
        let linear = |x: &B::Buffer<T>, w: &B::Buffer<T>, out: &mut B::Buffer<T>, n_out: usize, k: usize| {
            gemm::gemm(b, x, w, out, GemmShape { m: n, n: n_out, k }, LINEAR).map_err(e)
        };
        let (q_dim, kv_dim) = (HEADS * HEAD_DIM, KV_HEADS * HEAD_DIM);
        let pages = PagedKvShape {
            num_pages: NUM_PAGES,
            page_size: PAGE,
            max_pages_per_seq: MAX_PAGES_PER_SEQ,
        };
        let ws_len = attention::serving_workspace_len(b, s.shape, T::DTYPE, SplitKv::Auto).map_err(e)?;
        let mut ws = b.alloc_poisoned::<f32>(ws_len.max(1)).map_err(e)?;

        let mut x = alloc(n * DIM)?;
        let mut st = b.slice_mut(&mut status, 0..n).map_err(e)?;
        embedding::embedding(
            b,
            &self.model.embed,
            &ids,
            &mut x,
            &mut st,
            EmbeddingShape::contiguous(n, DIM, VOCAB),
        )
        .map_err(e)?;
        drop(st);
        let (mut h, mut q, mut k, mut v) = (
            alloc(n * DIM)?,
            alloc(n * q_dim)?,
            alloc(n * kv_dim)?,
            alloc(n * kv_dim)?,
        );
        let (mut a, mut o, mut gu, mut act) = (
            alloc(n * q_dim)?,
            alloc(n * DIM)?,
            alloc(n * 2 * hidden)?,
            alloc(n * hidden)?,
        );
        let mut lse = b.alloc_poisoned::<f32>(HEADS * n).map_err(e)?;
        for (l, (kc, vc)) in self.model.layers.iter().zip(self.caches.iter_mut()) {
            rms_norm::rms_norm(b, &x, &l.attn_norm, &mut h, rows, NORM).map_err(e)?;
            linear(&h, &l.wq, &mut q, q_dim, DIM)?;
            linear(&h, &l.wk, &mut k, kv_dim, DIM)?;
            linear(&h, &l.wv, &mut v, kv_dim, DIM)?;
            let shape = KvAppendShape {
                tokens: n,
                n_heads: HEADS,
                n_kv_heads: KV_HEADS,
                head_dim: HEAD_DIM,
                num_slots: NUM_PAGES * PAGE,
            };
            let mut st = b.slice_mut(&mut status, 0..n).map_err(e)?;
            kv_cache::kv_append(
                b,
                &mut q,
                &mut k,
                &v,
                (&mut *kc, &mut *vc),
                &slots,
                (&positions, &self.inv_freq),
                &mut st,
                shape,
                ROPE,
            )
            .map_err(e)?;
            drop(st);
            attention::attention_paged(
                b,
                &q,
                (&*kc, &*vc),
                (&cu_q, &seq_lens, &table),
                (&mut a, &mut lse),
                &mut ws,
                s.shape,
                pages,
                CAUSAL,
                SplitKv::Auto,
            )
            .map_err(e)?;
            linear(&a, &l.wo, &mut o, DIM, q_dim)?;
            rms_norm::fused_add_rms_norm(b, &o, &mut x, &l.ffn_norm, &mut h, rows, NORM).map_err(e)?;
            linear(&h, &l.w13, &mut gu, 2 * hidden, DIM)?;
            swiglu::swiglu_packed(
                b,
                &gu,
                &mut act,
                SwigluShape { rows: n, d: hidden },
                Rounding::MatchTorch,
            )
            .map_err(e)?;
            let residual = GemmConfig { beta: 1.0, ..LINEAR };
            gemm::gemm(
                b,
                &act,
                &l.w2,
                &mut x,
                GemmShape {
                    m: n,
                    n: DIM,
                    k: hidden,
                },
                residual,
            )
            .map_err(e)?;
        }
        // Each sequence's last row (a gather through the embedding op), the final norm, the LM head.
        let batch = s.shape.batch;
        let last = up_i32(&s.last_rows)?;
        let (mut xl, mut hl, mut logits) = (alloc(batch * DIM)?, alloc(batch * DIM)?, alloc(batch * VOCAB)?);
        let mut st = b.slice_mut(&mut status, 0..batch).map_err(e)?;
        embedding::embedding(
            b,
            &x,
            &last,
            &mut xl,
            &mut st,
            EmbeddingShape::contiguous(batch, DIM, n),
        )
        .map_err(e)?;
        drop(st);
        rms_norm::rms_norm(
            b,
            &xl,
            &self.model.norm,
            &mut hl,
            RmsNormShape {
                rows: batch,
                hidden: DIM,
            },
            NORM,
        )
        .map_err(e)?;
        gemm::gemm(
            b,
            &hl,
            &self.model.lm_head,
            &mut logits,
            GemmShape {
                m: batch,
                n: VOCAB,
                k: DIM,
            },
            LINEAR,
        )
        .map_err(e)?;
        if b.download(&status).map_err(e)?.iter().take(n).any(|&x| x != 0) {
            return Err("a KV slot or token id was out of range".into());
        }
        b.download(&logits).map_err(e)
    }
}

/// The host engine: the same step from the reference ops, on host caches of the same layout.
struct HostEngine {
    model: Model<Vec<T>>,
    caches: Vec<(Vec<T>, Vec<T>)>,
}

impl HostEngine {
    fn step<B: Backend>(&mut self, backend: &B, s: &Step) -> R<Vec<T>> {
        let (n, hidden) = (s.shape.total_q, self.model.hidden);
        let rows = RmsNormShape { rows: n, hidden: DIM };
        let zeros = |len: usize| vec![T::from_f32(0.0); len];
        let linear = |x: &[T], w: &[T], m: usize, n_out: usize, k: usize| {
            reference::gemm(x, w, &zeros(m * n_out), GemmShape { m, n: n_out, k }, LINEAR).map_err(e)
        };
        let pages = PagedKvShape {
            num_pages: NUM_PAGES,
            page_size: PAGE,
            max_pages_per_seq: MAX_PAGES_PER_SEQ,
        };
        // The kernel rounds P per its plan's tiles; the reference rounds where it does.
        let tiling = attention::serving_plan(backend, s.shape, T::DTYPE, SplitKv::Auto)
            .map_err(e)?
            .tiling();
        let mut x = zeros(n * DIM);
        reference::embedding(
            &self.model.embed,
            &s.ids,
            &mut x,
            EmbeddingShape::contiguous(n, DIM, VOCAB),
        )
        .map_err(e)?;
        for (l, (kc, vc)) in self.model.layers.iter().zip(self.caches.iter_mut()) {
            let h = reference::rms_norm(&x, &l.attn_norm, rows, NORM).map_err(e)?;
            let (q, k, v) = (
                linear(&h, &l.wq, n, HEADS * HEAD_DIM, DIM)?,
                linear(&h, &l.wk, n, KV_HEADS * HEAD_DIM, DIM)?,
                linear(&h, &l.wv, n, KV_HEADS * HEAD_DIM, DIM)?,
            );
            let shape = KvAppendShape {
                tokens: n,
                n_heads: HEADS,
                n_kv_heads: KV_HEADS,
                head_dim: HEAD_DIM,
                num_slots: NUM_PAGES * PAGE,
            };
            let (q, _, _) = reference::kv_append(
                &q,
                &k,
                &v,
                (&mut kc[..], &mut vc[..]),
                &s.slot_mapping,
                &s.positions,
                shape,
                ROPE,
            )
            .map_err(e)?;
            let meta = (&s.cu_seqlens_q[..], &s.seq_lens[..], &s.block_table[..]);
            let seqs = reference::gather_paged(&q, (&kc[..], &vc[..]), meta, s.shape, pages).map_err(e)?;
            let (a, _, _) = reference::attention_serving(&seqs, s.shape, CAUSAL, Some(tiling)).map_err(e)?;
            let o = linear(&a, &l.wo, n, DIM, HEADS * HEAD_DIM)?;
            let (h, r) = reference::fused_add_rms_norm(&o, &x, &l.ffn_norm, rows, NORM).map_err(e)?;
            let gu = linear(&h, &l.w13, n, 2 * hidden, DIM)?;
            let act =
                reference::swiglu_packed(&gu, SwigluShape { rows: n, d: hidden }, Rounding::MatchTorch).map_err(e)?;
            let residual = GemmConfig { beta: 1.0, ..LINEAR };
            x = reference::gemm(
                &act,
                &l.w2,
                &r,
                GemmShape {
                    m: n,
                    n: DIM,
                    k: hidden,
                },
                residual,
            )
            .map_err(e)?;
        }
        let batch = s.shape.batch;
        let mut xl = zeros(batch * DIM);
        reference::embedding(&x, &s.last_rows, &mut xl, EmbeddingShape::contiguous(batch, DIM, n)).map_err(e)?;
        let hl = reference::rms_norm(
            &xl,
            &self.model.norm,
            RmsNormShape {
                rows: batch,
                hidden: DIM,
            },
            NORM,
        )
        .map_err(e)?;
        linear(&hl, &self.model.lm_head, batch, VOCAB, DIM)
    }
}

/// Greedy choice per sequence.
fn argmax(logits: &[T]) -> Vec<i32> {
    logits
        .chunks(VOCAB)
        .map(|row| {
            let best = row
                .iter()
                .enumerate()
                .max_by(|a, b| a.1.to_f32().total_cmp(&b.1.to_f32()));
            best.map_or(0, |(i, _)| i as i32)
        })
        .collect()
}

/// Compares a step's logits: each sequence's row within 2% of its largest logit (two layers of bf16
/// roundings that may fall either way), and the same greedy token unless the reference's top two are
/// closer than that.
fn compare(step: usize, got: &[T], want: &[T]) -> R<()> {
    for (b, (g, w)) in got.chunks(VOCAB).zip(want.chunks(VOCAB)).enumerate() {
        let scale = w.iter().map(|x| x.to_f64().abs()).fold(0.0, f64::max);
        let diff = g
            .iter()
            .zip(w)
            .map(|(a, c)| (a.to_f64() - c.to_f64()).abs())
            .fold(0.0, f64::max);
        if diff.is_nan() || diff > 0.02 * scale {
            return Err(format!(
                "step {step}, sequence row {b}: logits differ by {diff:.3e} (largest {scale:.3e})"
            ));
        }
        let mut sorted: Vec<f64> = w.iter().map(|x| x.to_f64()).collect();
        sorted.sort_by(|a, c| c.total_cmp(a));
        let (gi, wi) = (argmax(g)[0], argmax(w)[0]);
        if gi != wi && sorted[0] - sorted[1] > 2.0 * diff {
            return Err(format!(
                "step {step}, sequence row {b}: greedy token {gi}, reference {wi}"
            ));
        }
    }
    Ok(())
}

fn run<B: Backend>(backend: &B) -> R<()> {
    let model = host_model()?;
    let mut dev = DeviceEngine::new(backend, &model)?;
    let cache = NUM_PAGES * PAGE * KV_HEADS * HEAD_DIM;
    let mut host = HostEngine {
        model,
        caches: (0..LAYERS)
            .map(|_| (vec![T::from_f32(0.0); cache], vec![T::from_f32(0.0); cache]))
            .collect(),
    };
    let mut sched = Scheduler::new();
    let prompt = |len: usize, seed: usize| {
        (0..len)
            .map(|i| ((i * 37 + seed * 101) % VOCAB) as i32)
            .collect::<Vec<_>>()
    };
    // Sequences 0..3 start together (prompts of 21, 5 and 42 tokens); sequence 3 joins at step 4 (its
    // 9-token prompt in the same batch as the others' decode); sequence 1 finishes after step 5 and its
    // page goes back to the free list, where sequence 2 takes it at step 7 (its token 48).
    let mut next: Vec<i32> = vec![];
    for step in 0..8 {
        let batch: Vec<(usize, Vec<i32>)> = match step {
            0 => vec![(0, prompt(21, 0)), (1, prompt(5, 1)), (2, prompt(42, 2))],
            4 => {
                let mut v: Vec<_> = (0..3).map(|i| (i, vec![next[i]])).collect();
                v.push((3, prompt(9, 3)));
                v
            }
            _ => {
                let live: Vec<usize> = (0..next.len()).filter(|&i| !(step > 5 && i == 1)).collect();
                live.iter().map(|&i| (i, vec![next[i]])).collect()
            }
        };
        if step == 6 {
            sched.finish(1);
        }
        let s = sched.plan(&batch)?;
        let got = dev.step(&s)?;
        let want = host.step(backend, &s)?;
        compare(step, &got, &want)?;
        let chosen = argmax(&got);
        println!(
            "step {step}: {} sequences, {} new tokens (max {} per sequence), up to {} keys; next tokens {:?}",
            s.shape.batch, s.shape.total_q, s.shape.max_q_len, s.shape.max_kv_len, chosen
        );
        // Teacher forcing on the device's choices: both engines see the same tokens next step.
        for ((id, _), t) in batch.iter().zip(chosen) {
            if *id >= next.len() {
                next.resize(*id + 1, 0);
            }
            next[*id] = t;
        }
    }
    Ok(())
}

fn main() {
    let result = match CudaBackend::open(0) {
        Ok(cuda) => {
            println!("device: {} (CUDA)", cuda.name());
            run(&cuda)
        }
        Err(why) => {
            // The error's own message ends with advice to use the emulator, which is what happens here.
            let reason = match why {
                llama_kernels::Error::NoDriver { detail } => format!("no CUDA driver: {detail}"),
                llama_kernels::Error::NoDevice { detail } => format!("no CUDA device: {detail}"),
                other => other.to_string(),
            };
            println!("device: ptx-emu, the emulator, every check on (CUDA not used: {reason})");
            run(&EmuBackend::new())
        }
    };
    match result {
        Ok(()) => println!("every step's logits match the reference engine"),
        Err(msg) => {
            eprintln!("FAILED: {msg}");
            std::process::exit(1);
        }
    }
}
