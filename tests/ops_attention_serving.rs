//! Serving attention (`attention_paged`, `attention_varlen`) on every backend against the per-sequence
//! reference, and its error paths.
//!
//! Batches are ragged: decode (one query per sequence), prefill with a cached prefix, sequences with no
//! queries or no keys, lengths that straddle the 64-key tiles and the pages; page sizes 1, 16, 256 (and
//! odd ones), pages scrambled over the cache with spare pages of random data (a wrong page gives a wrong
//! answer), block-table entries past each sequence's pages set to -1 (never read), padding rows past
//! the last sequence (never written). Outputs start as a sentinel. f16/bf16 are checked tightly against
//! the reference with the kernel's P rounding and by FlashAttention's 2x rule against the f64 oracle;
//! f32 tightly against the unrounded reference. Bad metadata must give NaN for its sequence only, and the
//! emulator's checks must find no out-of-bounds access.

mod common;

use half::{bf16, f16};
use llama_kernels::backend::{Backend, DeviceValue, EmuBackend};
use llama_kernels::ops::attention::{attention_paged, attention_varlen, check_metadata, serving_plan, Keys, SplitKv};
use llama_kernels::reference::{
    self, attention_serving, attention_serving_f64, attention_serving_naive, check_2x_rule, check_close, random_vec,
    to_f64_vec, GatheredSeq, Tolerance,
};
use llama_kernels::{AttentionConfig, DType, Elem, Error, PagedKvShape, VarlenShape};
use proptest::prelude::*;

/// A value no kernel writes: rows that must stay unwritten keep it.
const SENTINEL: f64 = -12288.0; // exact in f16 and bf16

/// One ragged batch: `(q_len, kv_len)` per sequence, page size, heads, head_dim, padding rows.
#[derive(Clone, Debug)]
struct Batch {
    seqs: Vec<(usize, usize)>,
    page_size: usize,
    heads: (usize, usize),
    head_dim: usize,
    pad_rows: usize,
    /// Keys of headroom in max_kv_len past the longest sequence.
    kv_headroom: usize,
}

/// The batch's shape, metadata and a paged cache with its pages scrambled (`seed`).
struct Paged {
    shape: VarlenShape,
    pages: PagedKvShape,
    cu_seqlens_q: Vec<i32>,
    seq_lens: Vec<i32>,
    block_table: Vec<i32>,
}

fn shuffle(n: usize, seed: u64) -> Vec<usize> {
    let mut v: Vec<usize> = (0..n).collect();
    let mut x = seed | 1;
    for i in (1..n).rev() {
        x ^= x << 13;
        x ^= x >> 7;
        x ^= x << 17;
        v.swap(i, (x % (i as u64 + 1)) as usize);
    }
    v
}

fn paged(b: &Batch, seed: u64) -> Paged {
    let ps = b.page_size;
    let total_q: usize = b.seqs.iter().map(|s| s.0).sum::<usize>() + b.pad_rows;
    let max_q_len = b.seqs.iter().map(|s| s.0).max().unwrap_or(0);
    let max_kv_len = b.seqs.iter().map(|s| s.1).max().unwrap_or(0) + b.kv_headroom;
    let max_pages_per_seq = max_kv_len.div_ceil(ps) + 1;
    let used: usize = b.seqs.iter().map(|s| s.1.div_ceil(ps)).sum();
    let num_pages = used + 3; // spare pages of random data
    let order = shuffle(num_pages, seed);
    let mut next = 0;
    let mut block_table = vec![-1i32; b.seqs.len() * max_pages_per_seq];
    let mut cu_seqlens_q = vec![0i32];
    for (s, &(q_len, kv_len)) in b.seqs.iter().enumerate() {
        for j in 0..kv_len.div_ceil(ps) {
            block_table[s * max_pages_per_seq + j] = order[next] as i32;
            next += 1;
        }
        cu_seqlens_q.push(cu_seqlens_q[s] + q_len as i32);
    }
    Paged {
        shape: VarlenShape {
            batch: b.seqs.len(),
            total_q,
            max_q_len,
            max_kv_len,
            n_heads: b.heads.0,
            n_kv_heads: b.heads.1,
            head_dim: b.head_dim,
        },
        pages: PagedKvShape {
            num_pages,
            page_size: ps,
            max_pages_per_seq,
        },
        cu_seqlens_q,
        seq_lens: b.seqs.iter().map(|s| s.1 as i32).collect(),
        block_table,
    }
}

/// Downloaded `(o, lse)` of one call.
type Outputs<T> = (Vec<T>, Vec<f32>);

/// Runs `attention_paged` on `backend`; the metadata may be edited first (`edit`) to make it bad.
fn run_paged<T: Elem + DeviceValue, B: Backend>(
    backend: &B,
    p: &Paged,
    (q, k, v): (&[T], &[T], &[T]),
    cfg: AttentionConfig,
    split: SplitKv,
) -> Result<Outputs<T>, Error> {
    let s = p.shape;
    let plan = serving_plan(backend, s, T::DTYPE, split)?;
    let (q_d, k_d, v_d) = (backend.upload(q)?, backend.upload(k)?, backend.upload(v)?);
    let cq = backend.upload(&p.cu_seqlens_q)?;
    let sl = backend.upload(&p.seq_lens)?;
    let bt = backend.upload(&p.block_table)?;
    let mut o = backend.upload(&vec![T::from_f64(SENTINEL); q.len()])?;
    let mut lse = backend.upload(&vec![SENTINEL as f32; s.n_heads * s.total_q])?;
    let mut ws = backend.alloc_poisoned::<f32>(plan.workspace_len(s.padded()).max(1))?;
    attention_paged(
        backend,
        &q_d,
        (&k_d, &v_d),
        (&cq, &sl, &bt),
        (&mut o, &mut lse),
        &mut ws,
        s,
        p.pages,
        cfg,
        split,
    )?;
    Ok((backend.download(&o)?, backend.download(&lse)?))
}

/// Checks `(o, lse)` of the rows of `seqs` against the reference, and the padding rows unwritten.
fn check_outputs<T: Elem>(
    name: &str,
    seqs: &[GatheredSeq<T>],
    s: VarlenShape,
    cfg: AttentionConfig,
    tiling: Option<reference::AttentionTiling>,
    (o, lse): &Outputs<T>,
) -> Result<(), String> {
    let err = |e: Error| format!("{name}: {e}");
    let (o_ref, lse_ref, slack) = attention_serving(seqs, s, cfg, tiling).map_err(err)?;
    let q_row = s.n_heads * s.head_dim;
    let covered = seqs.last().map_or(0, |sq| sq.q_rows.end);
    // Padding rows past the last sequence: not written.
    if o[covered * q_row..].iter().any(|x| x.to_f64() != SENTINEL) {
        return Err(format!("{name}: o rows past cu_seqlens_q[batch] were written"));
    }
    let lse_cov: Vec<usize> = (0..s.n_heads)
        .flat_map(|h| (0..covered).map(move |i| h * s.total_q + i))
        .collect();
    if (0..s.n_heads).any(|h| {
        lse[h * s.total_q + covered..(h + 1) * s.total_q]
            .iter()
            .any(|&x| x as f64 != SENTINEL)
    }) {
        return Err(format!("{name}: lse rows past cu_seqlens_q[batch] were written"));
    }
    let n = covered * q_row;
    let tol = match T::DTYPE {
        DType::F32 => Tolerance::new(DType::F32, 2e-5, 1e-4),
        _ => Tolerance::for_elem::<T>(),
    };
    tol.check_with_slack(&to_f64_vec(&o[..n]), &to_f64_vec(&o_ref[..n]), &slack[..n])
        .map_err(|e| format!("{name}: o: {e}"))?;
    let pick = |v: &[f32]| lse_cov.iter().map(|&i| v[i] as f64).collect::<Vec<_>>();
    check_close(&pick(lse), &pick(&lse_ref), 1e-4, 1e-5).map_err(|e| format!("{name}: lse: {e}"))?;
    if T::DTYPE != DType::F32 {
        let (oracle, _) = attention_serving_f64(seqs, s, cfg).map_err(err)?;
        let naive = to_f64_vec(&attention_serving_naive(seqs, s, cfg).map_err(err)?);
        check_2x_rule(T::DTYPE, &to_f64_vec(&o[..n]), &naive[..n], &oracle[..n], 1e-6)
            .map_err(|e| format!("{name}: 2x rule: {e}"))?;
    }
    Ok(())
}

fn inputs<T: Elem>(p: &Paged, seed: u64) -> (Vec<T>, Vec<T>, Vec<T>) {
    let s = p.shape;
    let cache = p.pages.num_pages * p.pages.page_size * s.n_kv_heads * s.head_dim;
    (
        random_vec::<T>(s.total_q * s.n_heads * s.head_dim, seed, 2.0),
        random_vec::<T>(cache, seed ^ 0x11, 2.0),
        random_vec::<T>(cache, seed ^ 0x22, 1.0),
    )
}

/// One paged case end to end; `Err` names it.
fn paged_case<T: Elem + DeviceValue, B: Backend>(
    backend: &B,
    batch: &Batch,
    cfg: AttentionConfig,
    split: SplitKv,
    seed: u64,
) -> Result<(), String> {
    let p = paged(batch, seed);
    let name = format!("{batch:?} {cfg:?} {split:?} {} on {}", T::DTYPE, backend.name());
    let err = |e: Error| format!("{name}: {e}");
    let (q, k, v) = inputs::<T>(&p, seed);
    let out = run_paged(backend, &p, (&q, &k, &v), cfg, split).map_err(err)?;
    let seqs = reference::gather_paged(
        &q,
        (&k, &v),
        (&p.cu_seqlens_q, &p.seq_lens, &p.block_table),
        p.shape,
        p.pages,
    )
    .map_err(err)?;
    let plan = serving_plan(backend, p.shape, T::DTYPE, split).map_err(err)?;
    let tiling = (T::DTYPE != DType::F32).then(|| plan.tiling());
    check_outputs(&name, &seqs, p.shape, cfg, tiling, &out)
}

const CAUSAL: AttentionConfig = AttentionConfig {
    causal: true,
    softmax_scale: None,
    window_left: None,
    window_right: None,
    softcap: None,
};

fn decode_batch(page_size: usize, head_dim: usize) -> Batch {
    Batch {
        // kv 0 (a sequence with nothing cached yet sees no key), 1, tile and page edges, long.
        seqs: vec![(1, 17), (1, 0), (1, 64), (1, 65), (1, 1), (1, 300)],
        page_size,
        heads: (8, 2),
        head_dim,
        pad_rows: 2,
        kv_headroom: 5,
    }
}

fn prefill_batch(page_size: usize) -> Batch {
    Batch {
        // prefix + new tokens: (new, prefix + new); an empty sequence (no queries); q_len > kv_len.
        seqs: vec![(5, 35), (0, 12), (70, 70), (33, 200), (1, 1), (9, 4)],
        page_size,
        heads: (4, 4),
        head_dim: 64,
        pad_rows: 3,
        kv_headroom: 0,
    }
}

fn paged_decode<B: Backend>(backend: &B) {
    for page_size in [1, 16, 256] {
        paged_case::<bf16, B>(backend, &decode_batch(page_size, 128), CAUSAL, SplitKv::Auto, 1).unwrap();
        paged_case::<f16, B>(backend, &decode_batch(page_size, 64), CAUSAL, SplitKv::Fixed(3), 2).unwrap();
    }
    // f32 (v1) and head_dim 256, page size 7 (pages that straddle tiles).
    paged_case::<f32, B>(backend, &decode_batch(7, 96), CAUSAL, SplitKv::Auto, 3).unwrap();
    paged_case::<bf16, B>(backend, &decode_batch(16, 256), CAUSAL, SplitKv::Auto, 4).unwrap();
}
backend_tests!(paged_decode_ragged, paged_decode);

fn paged_prefill<B: Backend>(backend: &B) {
    for page_size in [1, 16, 256] {
        paged_case::<bf16, B>(backend, &prefill_batch(page_size), CAUSAL, SplitKv::Auto, 5).unwrap();
    }
    let window = AttentionConfig {
        window_left: Some(20),
        softcap: Some(30.0),
        ..CAUSAL
    };
    paged_case::<f16, B>(backend, &prefill_batch(16), window, SplitKv::Fixed(2), 6).unwrap();
    let full = AttentionConfig {
        causal: false,
        softmax_scale: Some(0.2),
        ..CAUSAL
    };
    paged_case::<f32, B>(backend, &prefill_batch(3), full, SplitKv::Auto, 7).unwrap();
}
backend_tests!(paged_prefill_with_prefix, paged_prefill);

fn varlen<B: Backend>(backend: &B) {
    for (dtype_case, cfg) in [
        (0, CAUSAL),
        (
            1,
            AttentionConfig {
                causal: false,
                ..CAUSAL
            },
        ),
    ] {
        // Packed prompts, keys packed like the queries (cu_seqlens_k = cu_seqlens_q for causal).
        let q_lens = [17usize, 0, 64, 1, 90];
        let kv_lens = if dtype_case == 0 { q_lens } else { [3, 5, 64, 129, 0] };
        let cu = |lens: &[usize]| {
            let mut c = vec![0i32];
            for l in lens {
                c.push(c.last().unwrap() + *l as i32);
            }
            c
        };
        let (cu_q, cu_k) = (cu(&q_lens), cu(&kv_lens));
        let s = VarlenShape {
            batch: 5,
            total_q: q_lens.iter().sum::<usize>() + 1,
            max_q_len: 90,
            max_kv_len: 129,
            n_heads: 6,
            n_kv_heads: 2,
            head_dim: 64,
        };
        let total_k: usize = kv_lens.iter().sum();
        let q = random_vec::<bf16>(s.total_q * 6 * 64, 8, 2.0);
        let k = random_vec::<bf16>(total_k * 2 * 64, 9, 2.0);
        let v = random_vec::<bf16>(total_k * 2 * 64, 10, 1.0);
        let plan = serving_plan(backend, s, DType::BF16, SplitKv::Auto).unwrap();
        let (q_d, k_d, v_d) = (
            backend.upload(&q).unwrap(),
            backend.upload(&k).unwrap(),
            backend.upload(&v).unwrap(),
        );
        let (cq, ck) = (backend.upload(&cu_q).unwrap(), backend.upload(&cu_k).unwrap());
        let mut o = backend.upload(&vec![bf16::from_f64(SENTINEL); q.len()]).unwrap();
        let mut lse = backend.upload(&vec![SENTINEL as f32; 6 * s.total_q]).unwrap();
        let mut ws = backend
            .alloc_poisoned::<f32>(plan.workspace_len(s.padded()).max(1))
            .unwrap();
        attention_varlen(
            backend,
            &q_d,
            (&k_d, &v_d),
            (&cq, &ck),
            (&mut o, &mut lse),
            &mut ws,
            s,
            cfg,
            SplitKv::Auto,
        )
        .unwrap();
        let out = (backend.download(&o).unwrap(), backend.download(&lse).unwrap());
        let seqs = reference::gather_varlen(&q, (&k, &v), (&cu_q, &cu_k), s).unwrap();
        check_outputs(&format!("varlen {cfg:?}"), &seqs, s, cfg, Some(plan.tiling()), &out).unwrap();
    }
}
backend_tests!(varlen_prefill, varlen);

/// Bad metadata: NaN for that sequence's rows (o and lse), the others exact, nothing out of bounds (the
/// emulator backend runs every check and fails the launch on any finding).
fn bad_metadata<B: Backend>(backend: &B) {
    let batch = prefill_batch(16);
    let base = paged(&batch, 11);
    let (q, k, v) = inputs::<bf16>(&base, 11);
    type Edit = fn(&mut Paged);
    let edits: [(&str, usize, Edit); 5] = [
        ("page id past num_pages", 3, |p| {
            p.block_table[3 * p.pages.max_pages_per_seq + 2] = p.pages.num_pages as i32
        }),
        ("negative page id", 0, |p| p.block_table[0] = -5),
        ("seq_lens past max_kv_len", 2, |p| {
            p.seq_lens[2] = p.shape.max_kv_len as i32 + 1
        }),
        ("negative seq_lens", 4, |p| p.seq_lens[4] = -1),
        ("q rows past max_q_len", 5, |p| {
            p.cu_seqlens_q[6] = p.cu_seqlens_q[5] + p.shape.max_q_len as i32 + 1
        }),
    ];
    for split in [SplitKv::Auto, SplitKv::Fixed(3)] {
        for (what, bad_seq, edit) in edits {
            let mut p = paged(&batch, 11);
            edit(&mut p);
            let name = format!("{what} ({split:?}) on {}", backend.name());
            let (o, lse) =
                run_paged(backend, &p, (&q, &k, &v), CAUSAL, split).unwrap_or_else(|e| panic!("{name}: {e}"));
            let s = p.shape;
            let q_row = s.n_heads * s.head_dim;
            let good = &base.cu_seqlens_q;
            let rows = good[bad_seq] as usize..(p.cu_seqlens_q[bad_seq + 1] as usize).min(s.total_q);
            assert!(!rows.is_empty());
            assert!(
                o[rows.start * q_row..rows.end * q_row]
                    .iter()
                    .all(|x| x.to_f32().is_nan()),
                "{name}: o"
            );
            assert!(
                (0..s.n_heads).all(|h| rows.clone().all(|i| lse[h * s.total_q + i].is_nan())),
                "{name}: lse"
            );
            // Every other sequence as without the edit.
            let seqs =
                reference::gather_paged(&q, (&k, &v), (good, &base.seq_lens, &base.block_table), s, p.pages).unwrap();
            let others: Vec<_> = seqs
                .into_iter()
                .enumerate()
                .filter(|(b, _)| *b != bad_seq)
                .map(|(_, sq)| sq)
                .collect();
            let plan = serving_plan(backend, s, DType::BF16, split).unwrap();
            let (o_ref, _, slack) = attention_serving(&others, s, CAUSAL, Some(plan.tiling())).unwrap();
            for sq in &others {
                let r = sq.q_rows.start * q_row..sq.q_rows.end * q_row;
                Tolerance::for_elem::<bf16>()
                    .check_with_slack(&to_f64_vec(&o[r.clone()]), &to_f64_vec(&o_ref[r.clone()]), &slack[r])
                    .unwrap_or_else(|e| panic!("{name}: a good sequence: {e}"));
            }
        }
    }
}
backend_tests!(bad_metadata_gives_nan_for_its_sequence, bad_metadata);

fn seqs_strategy() -> impl Strategy<Value = Vec<(usize, usize)>> {
    let len = prop_oneof![
        Just(0usize),
        Just(1),
        2usize..40,
        prop::sample::select(vec![63usize, 64, 65, 127, 130])
    ];
    prop::collection::vec((len.clone(), len), 1..=4).prop_map(|v| {
        // Bottom-right causal with q_len > kv_len is allowed (rows without keys); keep most realistic.
        v.into_iter().map(|(q, kv)| (q.min(70), kv)).collect()
    })
}

fn random_batches<B: Backend>(backend: &B) {
    let strategy = (
        seqs_strategy(),
        prop::sample::select(vec![1usize, 3, 16, 64, 256]),
        prop::sample::select(vec![(2usize, 1usize), (4, 2), (8, 8)]),
        1usize..=16,
        any::<bool>(),
        prop::sample::select(vec![None, Some(0usize), Some(9)]),
        prop::sample::select(vec![SplitKv::Auto, SplitKv::Fixed(2)]),
        any::<u64>(),
    );
    common::run_cases(
        24,
        strategy,
        |(seqs, page_size, heads, hd8, causal, window_left, split, seed)| {
            let batch = Batch {
                seqs,
                page_size,
                heads,
                head_dim: hd8 * 8,
                pad_rows: (seed % 3) as usize,
                kv_headroom: (seed % 5) as usize,
            };
            let cfg = AttentionConfig {
                causal,
                window_left,
                ..CAUSAL
            };
            paged_case::<bf16, B>(backend, &batch, cfg, split, seed)
        },
    );
}
backend_tests!(paged_random_batches, random_batches);

fn shape() -> (VarlenShape, PagedKvShape) {
    (
        VarlenShape {
            batch: 2,
            total_q: 3,
            max_q_len: 2,
            max_kv_len: 20,
            n_heads: 4,
            n_kv_heads: 2,
            head_dim: 64,
        },
        PagedKvShape {
            num_pages: 4,
            page_size: 8,
            max_pages_per_seq: 3,
        },
    )
}

/// Calls attention_paged with buffers of the given lengths (q/o, cache, lse, block table, workspace).
fn call(s: VarlenShape, pages: PagedKvShape, lens: [usize; 5]) -> Error {
    let backend = EmuBackend::new();
    let b = |n: usize| backend.alloc_zeros::<bf16>(n).unwrap();
    let i = |n: usize| backend.alloc_zeros::<i32>(n).unwrap();
    let (q, kc, vc) = (b(lens[0]), b(lens[1]), b(lens[1]));
    let (mut o, mut lse) = (b(lens[0]), backend.alloc_zeros::<f32>(lens[2]).unwrap());
    let (cq, sl, bt) = (i(s.batch + 1), i(s.batch), i(lens[3]));
    let mut ws = backend.alloc_zeros::<f32>(lens[4]).unwrap();
    attention_paged(
        &backend,
        &q,
        (&kc, &vc),
        (&cq, &sl, &bt),
        (&mut o, &mut lse),
        &mut ws,
        s,
        pages,
        CAUSAL,
        SplitKv::Fixed(2),
    )
    .unwrap_err()
}

#[test]
fn attention_paged_rejects_bad_shapes_and_lengths() {
    let (s, pages) = shape();
    let ok = [3 * 4 * 64, 4 * 8 * 2 * 64, 4 * 3, 2 * 3, 1 << 16];
    let mismatch = |lens: [usize; 5], tensor: &str| {
        let e = call(s, pages, lens);
        assert!(
            matches!(&e, Error::ShapeMismatch { tensor: t, .. } if *t == tensor),
            "{tensor}: {e}"
        );
    };
    mismatch([ok[0] - 1, ok[1], ok[2], ok[3], ok[4]], "q");
    mismatch([ok[0], ok[1] + 64, ok[2], ok[3], ok[4]], "k_cache");
    mismatch([ok[0], ok[1], ok[2] + 1, ok[3], ok[4]], "lse");
    mismatch([ok[0], ok[1], ok[2], ok[3] - 1, ok[4]], "block_table");
    mismatch([ok[0], ok[1], ok[2], ok[3], 1], "workspace");
    let e = call(s, PagedKvShape { page_size: 0, ..pages }, ok);
    assert!(matches!(e, Error::InvalidShape { .. }), "{e}");
    let e = call(
        s,
        PagedKvShape {
            max_pages_per_seq: 2,
            ..pages
        },
        [ok[0], ok[1], ok[2], 4, ok[4]],
    );
    assert!(matches!(e, Error::InvalidShape { .. }), "20 keys in 2 pages of 8: {e}");
    let e = call(VarlenShape { head_dim: 60, ..s }, pages, ok);
    assert!(matches!(e, Error::UnsupportedHeadDim { .. }), "{e}");
    let e = call(VarlenShape { n_kv_heads: 3, ..s }, pages, ok);
    assert!(matches!(e, Error::InvalidShape { .. }), "{e}");
}

#[test]
fn attention_paged_rejects_aliased_outputs() {
    let (s, pages) = shape();
    let backend = EmuBackend::new();
    let q_n = 3 * 4 * 64;
    let q = backend.alloc_zeros::<bf16>(q_n).unwrap();
    let cache = backend.alloc_zeros::<bf16>(4 * 8 * 2 * 64).unwrap();
    let (cq, sl, bt) = (
        backend.alloc_zeros::<i32>(3).unwrap(),
        backend.alloc_zeros::<i32>(2).unwrap(),
        backend.alloc_zeros::<i32>(6).unwrap(),
    );
    let mut o = backend.alloc_zeros::<bf16>(q_n).unwrap();
    let mut lse = backend.alloc_zeros::<f32>(12).unwrap();
    let mut ws = backend.alloc_zeros::<f32>(1 << 16).unwrap();
    let run = |o: &mut llama_kernels::backend::EmuViewMut<'_, bf16>,
               lse: &mut llama_kernels::backend::EmuViewMut<'_, f32>,
               ws: &mut llama_kernels::backend::EmuViewMut<'_, f32>| {
        attention_paged(
            &backend,
            &q,
            (&cache, &cache),
            (&cq, &sl, &bt),
            (o, lse),
            ws,
            s,
            pages,
            CAUSAL,
            SplitKv::Fixed(2),
        )
    };
    // SAFETY: views the op must reject before any launch (o over q, lse over the block table, workspace
    // over o, o 2 bytes off its alignment).
    unsafe {
        let (o_addr, lse_addr, ws_addr) = (o.addr(), lse.addr(), ws.addr());
        let e = run(
            &mut o.raw_view_mut(q.addr(), q_n),
            &mut lse.raw_view_mut(lse_addr, 12),
            &mut ws.raw_view_mut(ws_addr, 1 << 16),
        )
        .unwrap_err();
        assert!(matches!(e, Error::Aliasing { a: "o", b: "q", .. }), "{e}");
        let e = run(
            &mut o.raw_view_mut(o_addr, q_n),
            &mut lse.raw_view_mut(bt.addr(), 12),
            &mut ws.raw_view_mut(ws_addr, 1 << 16),
        )
        .unwrap_err();
        assert!(
            matches!(
                e,
                Error::Aliasing {
                    a: "lse",
                    b: "block_table",
                    ..
                }
            ),
            "{e}"
        );
        let e = run(
            &mut o.raw_view_mut(o_addr, q_n),
            &mut lse.raw_view_mut(lse_addr, 12),
            &mut ws.raw_view_mut(o_addr, 1 << 16),
        )
        .unwrap_err();
        assert!(matches!(e, Error::Aliasing { .. }), "{e}");
        let e = run(
            &mut o.raw_view_mut(o_addr + 2, q_n),
            &mut lse.raw_view_mut(lse_addr, 12),
            &mut ws.raw_view_mut(ws_addr, 1 << 16),
        )
        .unwrap_err();
        assert!(matches!(e, Error::Misaligned { tensor: "o", .. }), "{e}");
    }
    let _ = (&mut o, &mut lse, &mut ws);
}

#[test]
fn check_metadata_names_the_bad_sequence() {
    let (s, pages) = shape();
    let keys = |sl: &'static [i32], bt: &'static [i32]| Keys::Paged {
        seq_lens: sl,
        block_table: bt,
        pages,
    };
    check_metadata(s, &[0, 2, 3], keys(&[20, 1], &[0, 1, 2, 3, -1, -1])).unwrap();
    for (cu, sl, bt, what) in [
        (&[0, 3, 3][..], &[20, 1][..], &[0, 1, 2, 3, -1, -1][..], "sequence 0"),
        (&[0, 2, 1], &[20, 1], &[0, 1, 2, 3, -1, -1], "sequence 1"),
        (&[0, 2, 4], &[20, 1], &[0, 1, 2, 3, -1, -1], "sequence 1"),
        (&[0, 2, 3], &[21, 1], &[0, 1, 2, 3, -1, -1], "sequence 0"),
        (
            &[0, 2, 3],
            &[20, 1],
            &[0, 1, 4, 3, -1, -1],
            "sequence 0: block_table entry 2",
        ),
        (
            &[0, 2, 3],
            &[20, 9],
            &[0, 1, 2, 3, -1, -1],
            "sequence 1: block_table entry 1",
        ),
    ] {
        let e = check_metadata(
            s,
            cu,
            Keys::Paged {
                seq_lens: sl,
                block_table: bt,
                pages,
            },
        )
        .unwrap_err();
        assert!(e.to_string().contains(what), "{what}: {e}");
    }
    let e = check_metadata(
        s,
        &[0, 2, 3],
        Keys::Packed {
            cu_seqlens_k: &[0, 30, 31],
            total_k: 40,
        },
    )
    .unwrap_err();
    assert!(e.to_string().contains("sequence 0"), "{e}");
}
