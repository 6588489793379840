//! `attention_paged` under fuzzing: a ragged batch of up to 4 sequences (query and key counts, zeros
//! included, drawn from the seed), a page size from 1 to 300, pages scattered over a cache with spare
//! pages, GQA heads and head dims as the attention case draws them, a window, wrong buffer lengths and
//! offset views. With valid metadata the op must agree with the per-sequence reference
//! (`reference::attention_serving`, the kernel's P rounding for f16/bf16). Without `flag`, one
//! sequence's metadata is corrupted (its first page id out of range, or its length): the op cannot check
//! device data, so it must still run clean under every emulator check and write NaN to that sequence's
//! rows of `o` (for the page id, to every row that would read a key of that page).

use llama_kernels::backend::{Backend, DeviceValue, EmuBackend};
use llama_kernels::ops::attention::{self, SplitKv};
use llama_kernels::reference::{self, Tolerance};
use llama_kernels::{AttentionConfig, DType, Elem, Error, PagedKvShape, VarlenShape};

use super::cases::{Case, Rng};
use super::{judge, Outcome};

/// The batch a case describes: dims = [batch, n_heads, n_kv_heads, head_dim, page_size].
struct Batch {
    shape: VarlenShape,
    pages: PagedKvShape,
    cu_seqlens_q: Vec<i32>,
    seq_lens: Vec<i32>,
    block_table: Vec<i32>,
    /// The corrupted sequence (without `flag`), and whether its first page id (not its lengths) is bad.
    bad: Option<(usize, bool)>,
}

fn batch(case: &Case) -> Batch {
    let d = |i: usize| case.dims.get(i).copied().unwrap_or(1);
    let mut rng = Rng::new(case.seed ^ 0x9a6e);
    let n = d(0).min(4);
    let ps = d(4).clamp(1, 300);
    let len = |rng: &mut Rng| rng.pick(&[0usize, 1, 1, 2, 7, 16, 17, 40, 64, 65, 100]);
    let seqs: Vec<(usize, usize)> = (0..n).map(|_| (len(&mut rng).min(40), len(&mut rng))).collect();
    let max_q_len = seqs.iter().map(|s| s.0).max().unwrap_or(0);
    let max_kv_len = seqs.iter().map(|s| s.1).max().unwrap_or(0) + rng.below(3) as usize;
    let max_pages_per_seq = max_kv_len.div_ceil(ps).max(1);
    let used: usize = seqs.iter().map(|s| s.1.div_ceil(ps)).sum();
    let num_pages = used + 2;
    let mut order: Vec<i32> = (0..num_pages as i32).collect();
    for i in (1..order.len()).rev() {
        order.swap(i, rng.below(i as u64 + 1) as usize);
    }
    let mut next = 0;
    let mut block_table = vec![-1; n * max_pages_per_seq];
    let mut cu_seqlens_q = vec![0i32];
    for (s, &(q, kv)) in seqs.iter().enumerate() {
        for j in 0..kv.div_ceil(ps) {
            block_table[s * max_pages_per_seq + j] = order[next];
            next += 1;
        }
        cu_seqlens_q.push(cu_seqlens_q[s] + q as i32);
    }
    let mut seq_lens: Vec<i32> = seqs.iter().map(|s| s.1 as i32).collect();
    let total_q = cu_seqlens_q[n] as usize + rng.below(2) as usize;
    // Corruption: a sequence with queries (so that it has rows to turn NaN) gets bad metadata.
    let bad = (!case.flag)
        .then(|| (0..n).find(|&s| seqs[s].0 > 0))
        .flatten()
        .map(|s| match rng.below(3) {
            0 if seqs[s].1 > 0 => {
                block_table[s * max_pages_per_seq] = rng.pick(&[-3, num_pages as i32, i32::MAX]);
                (s, true)
            }
            1 => {
                seq_lens[s] = rng.pick(&[-1, max_kv_len as i32 + 1, i32::MAX]);
                (s, false)
            }
            _ => {
                seq_lens[s] = -7;
                (s, false)
            }
        });
    Batch {
        shape: VarlenShape {
            batch: n,
            total_q,
            max_q_len,
            max_kv_len,
            n_heads: d(1),
            n_kv_heads: d(2),
            head_dim: d(3),
        },
        pages: PagedKvShape {
            num_pages,
            page_size: ps,
            max_pages_per_seq,
        },
        cu_seqlens_q,
        seq_lens,
        block_table,
        bad,
    }
}

type OpResult<X> = std::result::Result<X, Error>;

pub(super) fn case<T: Elem + DeviceValue>(backend: &EmuBackend, case: &Case) -> std::result::Result<Outcome, String> {
    let b = batch(case);
    let s = b.shape;
    let cfg = AttentionConfig {
        causal: true,
        softmax_scale: None,
        window_left: (case.seed % 3 == 1).then_some(5),
        window_right: None,
        softcap: None,
    };
    let q_n = s.total_q * s.n_heads * s.head_dim;
    let cache_n = b.pages.num_pages * b.pages.page_size * s.n_kv_heads * s.head_dim;
    if q_n > 1 << 20 || cache_n > 1 << 21 {
        return Ok(Outcome::BothRejected); // past the fuzzer's memory budget: not drawn on purpose
    }
    let (q, k, v) = (
        case.data::<T>(0, q_n),
        case.data::<T>(1, cache_n),
        case.data::<T>(2, cache_n),
    );
    let split = if case.seed % 2 == 0 || T::DTYPE == DType::F32 {
        SplitKv::Auto
    } else {
        SplitKv::Fixed(3)
    };
    let got = (|| -> OpResult<Vec<f64>> {
        let qb = case.upload(backend, &q).map_err(|e| Error::Emulator { detail: e })?;
        let (kb, vb) = (backend.upload(&k)?, backend.upload(&v)?);
        let (cq, sl, bt) = (
            backend.upload(&b.cu_seqlens_q)?,
            backend.upload(&b.seq_lens)?,
            backend.upload(&b.block_table)?,
        );
        let mut o = backend.alloc_zeros::<T>(case.out_len(q_n))?;
        let mut lse = backend.alloc_zeros::<f32>(case.out_len(s.n_heads * s.total_q))?;
        let ws_len = attention::serving_workspace_len(backend, s, T::DTYPE, split).unwrap_or(0);
        let mut ws = backend.alloc_poisoned::<f32>(ws_len.max(1))?;
        attention::attention_paged(
            backend,
            &qb.view(),
            (&kb, &vb),
            (&cq, &sl, &bt),
            (&mut o, &mut lse),
            &mut ws,
            s,
            b.pages,
            cfg,
            split,
        )?;
        let o = reference::to_f64_vec(&backend.download(&o)?);
        Ok([o, backend.download(&lse)?.iter().map(|&x| x as f64).collect()].concat())
    })();
    if let Some((bad, page)) = b.bad {
        // Device metadata out of range: clean under the checks, and NaN in that sequence's rows: all of
        // them for a bad length; for a bad page id, every row that would read a key of that page (the
        // first: keys 0..page_size) at least.
        return match got {
            Err(Error::Emulator { detail }) => Err(format!("emulator report: {detail}")),
            Err(_) => Ok(Outcome::DeviceRejected),
            Ok(got) => {
                let row = s.n_heads * s.head_dim;
                let lo = b.cu_seqlens_q[bad] as usize;
                let q_len = b.cu_seqlens_q[bad + 1] as usize - lo;
                let kv_len = b.seq_lens[bad] as i64; // valid when the page id is the corruption
                let reads_page = |i: usize| {
                    let diag = kv_len - q_len as i64 + i as i64;
                    let first = cfg.window_left.map_or(0, |w| (diag - w as i64).max(0));
                    !page || (diag >= 0 && first < b.pages.page_size as i64)
                };
                match (0..q_len).find(|&i| reads_page(i) && got[(lo + i) * row..][..row].iter().any(|x| !x.is_nan())) {
                    None => Ok(Outcome::Agreed),
                    Some(i) => Err(format!(
                        "sequence {bad}'s metadata is out of range but its query {i} is not NaN"
                    )),
                }
            }
        };
    }
    let meta = (&b.cu_seqlens_q[..], &b.seq_lens[..], &b.block_table[..]);
    let tiling = attention::serving_plan(backend, s, T::DTYPE, split)
        .ok()
        .filter(|_| T::DTYPE != DType::F32)
        .map(|p| p.tiling());
    let mut slack = Vec::new();
    let want = reference::gather_paged(&q, (&k, &v), meta, s, b.pages).and_then(|seqs| {
        let (o, lse, sl) = reference::attention_serving(&seqs, s, cfg, tiling)?;
        slack = sl;
        Ok([reference::to_f64_vec(&o), lse.iter().map(|&x| x as f64).collect()].concat())
    });
    let covered = b.cu_seqlens_q[s.batch] as usize * s.n_heads * s.head_dim;
    let tol = match T::DTYPE {
        DType::F32 => Tolerance::new(DType::F32, 2e-5, 1e-4),
        _ => Tolerance::for_elem::<T>(),
    };
    judge::<T>(got, want, move |got: &[f64], want: &[f64]| {
        // o's rows of the sequences (padding rows stay as allocated), then LSE per head over them.
        tol.check_with_slack(&got[..covered], &want[..covered], &slack[..covered])?;
        let (lg, lw) = (&got[q_n..], &want[q_n..]);
        let rows = covered / (s.n_heads * s.head_dim).max(1);
        let pick = |v: &[f64]| -> Vec<f64> {
            (0..s.n_heads)
                .flat_map(|h| v[h * s.total_q..][..rows].to_vec())
                .collect()
        };
        reference::check_close(&pick(lg), &pick(lw), 1e-4, 1e-5)
    })
}
