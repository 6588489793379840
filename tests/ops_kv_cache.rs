//! KV append fused with RoPE on every backend: ragged new tokens of three sequences into a paged cache of
//! page size 1, 16 and 256 whose pages are out of order (and a contiguous cache; and 72 tokens, past the
//! kernel's switch from a block per (token, kv head) to a block per token), a padding token (slot
//! -1) and a slot past the cache. q and k come out bit for bit as `ops::rope` rotates them, the caches get
//! exactly those k rows and the v rows at the slots and nothing else, status says which token was
//! written; the fused-QKV entry point is bit for bit the split one; the reference agrees within RoPE's
//! tolerance; every error path.

mod common;

use half::{bf16, f16};
use llama_kernels::backend::{Backend, DeviceValue, EmuBackend};
use llama_kernels::ops::kv_cache::{kv_append, kv_append_qkv};
use llama_kernels::ops::rope::{rope, upload_inv_freq};
use llama_kernels::reference::{self, random_vec};
use llama_kernels::*;

fn bits<T: Elem>(v: &[T]) -> Vec<u64> {
    v.iter().map(|x| x.to_f64().to_bits()).collect()
}

const CFG: RopeConfig = RopeConfig {
    theta: 500000.0,
    rotary_dim: 48,
    layout: RopeLayout::HalfSplit,
    scaling: Some(Llama3Scaling::LLAMA_3_1),
};

/// Three sequences of lengths `lens` already in the cache append `new` tokens each; pages of `ps` slots,
/// allocated in a scrambled order. Returns (slot_mapping, positions, num_slots).
fn paged_slots(ps: usize, lens: [usize; 3], new: [usize; 3]) -> (Vec<i64>, Vec<i32>, usize) {
    let pages_per_seq: Vec<usize> = (0..3).map(|s| (lens[s] + new[s]).div_ceil(ps)).collect();
    let num_pages: usize = pages_per_seq.iter().sum::<usize>() + 1;
    // Page p of the pool is handed out as (p * 7 + 3) mod num_pages: out of order, no page twice.
    let mut next = 0usize;
    let mut tables = Vec::new();
    for &n in &pages_per_seq {
        tables.push(
            (0..n)
                .map(|_| {
                    let p = (next * 7 + 3) % num_pages;
                    next += 1;
                    p
                })
                .collect::<Vec<_>>(),
        );
    }
    assert!(num_pages % 7 != 0, "7 must be coprime with the page count");
    let (mut slots, mut positions) = (Vec::new(), Vec::new());
    for s in 0..3 {
        for pos in lens[s]..lens[s] + new[s] {
            slots.push((tables[s][pos / ps] * ps + pos % ps) as i64);
            positions.push(pos as i32);
        }
    }
    (slots, positions, num_pages * ps)
}

fn append_case<T: Elem + DeviceValue, B: Backend>(backend: &B) {
    let (nh, nkv, hd) = (4usize, 2usize, 64usize);
    let inv_freq = upload_inv_freq(backend, &CFG).unwrap();
    let mut layouts: Vec<(Vec<i64>, Vec<i32>, usize)> = [1usize, 16, 256]
        .iter()
        .map(|&ps| paged_slots(ps, [0, 17, 5], [9, 1, 3]))
        .collect();
    // 72 new tokens: past the kernel's 64, one block per token instead of one per (token, kv head).
    layouts.push(paged_slots(16, [0, 17, 5], [40, 20, 10]));
    // A contiguous (batch 2, capacity 40) cache: slot = b * 40 + pos.
    layouts.push((
        (0..6).map(|i| (i / 3) * 40 + 20 + i % 3).map(|s| s as i64).collect(),
        vec![20, 21, 22, 20, 21, 22],
        80,
    ));
    for (case, (mut slots, mut positions, num_slots)) in layouts.into_iter().enumerate() {
        // A padding token and one past the cache.
        slots.extend([-1, num_slots as i64 + 5]);
        positions.extend([7, 8]);
        let tokens = slots.len();
        let shape = KvAppendShape {
            tokens,
            n_heads: nh,
            n_kv_heads: nkv,
            head_dim: hd,
            num_slots,
        };
        let seed = 50 + case as u64;
        let (q, k, v) = (
            random_vec::<T>(tokens * nh * hd, seed, 1.0),
            random_vec::<T>(tokens * nkv * hd, seed ^ 1, 1.0),
            random_vec::<T>(tokens * nkv * hd, seed ^ 2, 1.0),
        );
        let kc0 = random_vec::<T>(num_slots * nkv * hd, seed ^ 3, 1.0);
        let vc0 = random_vec::<T>(num_slots * nkv * hd, seed ^ 4, 1.0);
        let (slot_d, pos_d) = (backend.upload(&slots).unwrap(), backend.upload(&positions).unwrap());
        let (mut q_d, mut k_d, v_d) = (
            backend.upload(&q).unwrap(),
            backend.upload(&k).unwrap(),
            backend.upload(&v).unwrap(),
        );
        let (mut kc, mut vc) = (backend.upload(&kc0).unwrap(), backend.upload(&vc0).unwrap());
        let mut status = backend.alloc_poisoned::<i32>(tokens).unwrap();
        kv_append(
            backend,
            &mut q_d,
            &mut k_d,
            &v_d,
            (&mut kc, &mut vc),
            &slot_d,
            (&pos_d, &inv_freq),
            &mut status,
            shape,
            CFG,
        )
        .unwrap();

        // q and k: bit for bit the RoPE op.
        let (mut q_r, mut k_r) = (backend.upload(&q).unwrap(), backend.upload(&k).unwrap());
        let rshape = RopeShape {
            tokens,
            n_heads: nh,
            n_kv_heads: nkv,
            head_dim: hd,
        };
        rope(backend, &mut q_r, Some(&mut k_r), &pos_d, &inv_freq, rshape, CFG).unwrap();
        let (q_rot, k_rot) = (backend.download(&q_r).unwrap(), backend.download(&k_r).unwrap());
        assert_eq!(bits(&backend.download(&q_d).unwrap()), bits(&q_rot), "case {case}: q");
        assert_eq!(bits(&backend.download(&k_d).unwrap()), bits(&k_rot), "case {case}: k");
        // The caches: exactly the written rows changed.
        let row = nkv * hd;
        let (mut kc_want, mut vc_want) = (kc0.clone(), vc0.clone());
        let mut status_want = Vec::new();
        for (t, &s) in slots.iter().enumerate() {
            status_want.push(if s < 0 {
                1
            } else if s as usize >= num_slots {
                2
            } else {
                0
            });
            if s >= 0 && (s as usize) < num_slots {
                let s = s as usize;
                kc_want[s * row..][..row].copy_from_slice(&k_rot[t * row..][..row]);
                vc_want[s * row..][..row].copy_from_slice(&v[t * row..][..row]);
            }
        }
        assert_eq!(
            bits(&backend.download(&kc).unwrap()),
            bits(&kc_want),
            "case {case}: k_cache"
        );
        assert_eq!(
            bits(&backend.download(&vc).unwrap()),
            bits(&vc_want),
            "case {case}: v_cache"
        );
        assert_eq!(backend.download(&status).unwrap(), status_want, "case {case}: status");

        // The reference: the same slots, RoPE within its tolerance (sincosf against f64 cos/sin).
        let (mut kc_ref, mut vc_ref) = (kc0.clone(), vc0.clone());
        let (q_ref, k_ref, st_ref) =
            reference::kv_append(&q, &k, &v, (&mut kc_ref, &mut vc_ref), &slots, &positions, shape, CFG).unwrap();
        assert_eq!(st_ref, status_want);
        assert_eq!(bits(&vc_ref), bits(&vc_want));
        let tol = reference::Tolerance::for_elem::<T>();
        for (got, want) in [(&q_rot, &q_ref), (&k_rot, &k_ref), (&kc_want, &kc_ref)] {
            tol.check(&reference::to_f64_vec(got), &reference::to_f64_vec(want))
                .unwrap();
        }

        // Fused QKV: bit for bit the split call.
        let fused: Vec<T> = (0..tokens)
            .flat_map(|t| [&q[t * nh * hd..][..nh * hd], &k[t * row..][..row], &v[t * row..][..row]].concat())
            .collect();
        let mut qkv = backend.upload(&fused).unwrap();
        let (mut kc2, mut vc2) = (backend.upload(&kc0).unwrap(), backend.upload(&vc0).unwrap());
        let mut status2 = backend.alloc_poisoned::<i32>(tokens).unwrap();
        kv_append_qkv(
            backend,
            &mut qkv,
            (&mut kc2, &mut vc2),
            &slot_d,
            (&pos_d, &inv_freq),
            &mut status2,
            shape,
            CFG,
        )
        .unwrap();
        let out = backend.download(&qkv).unwrap();
        let w = (nh + 2 * nkv) * hd;
        for t in 0..tokens {
            assert_eq!(
                bits(&out[t * w..][..nh * hd]),
                bits(&q_rot[t * nh * hd..][..nh * hd]),
                "fused q {t}"
            );
            assert_eq!(
                bits(&out[t * w + nh * hd..][..row]),
                bits(&k_rot[t * row..][..row]),
                "fused k {t}"
            );
            assert_eq!(
                bits(&out[t * w + nh * hd + row..][..row]),
                bits(&v[t * row..][..row]),
                "fused v {t}"
            );
        }
        assert_eq!(bits(&backend.download(&kc2).unwrap()), bits(&kc_want), "fused k_cache");
        assert_eq!(bits(&backend.download(&vc2).unwrap()), bits(&vc_want), "fused v_cache");
        assert_eq!(backend.download(&status2).unwrap(), status_want);
    }
}

fn append_bf16<B: Backend>(b: &B) {
    append_case::<bf16, B>(b)
}
fn append_f16<B: Backend>(b: &B) {
    append_case::<f16, B>(b)
}
fn append_f32<B: Backend>(b: &B) {
    append_case::<f32, B>(b)
}
backend_tests!(kv_append_paged_bf16, append_bf16);
backend_tests!(kv_append_paged_f16, append_f16);
backend_tests!(kv_append_paged_f32, append_f32);

#[test]
fn kv_append_errors() {
    let backend = EmuBackend::new();
    let shape = KvAppendShape {
        tokens: 2,
        n_heads: 2,
        n_kv_heads: 1,
        head_dim: 16,
        num_slots: 4,
    };
    let cfg = RopeConfig { rotary_dim: 16, ..CFG };
    let inv = upload_inv_freq(&backend, &cfg).unwrap();
    let mut q = backend.upload(&random_vec::<bf16>(64, 1, 1.0)).unwrap();
    let mut k = backend.upload(&random_vec::<bf16>(32, 2, 1.0)).unwrap();
    let v = backend.upload(&random_vec::<bf16>(32, 3, 1.0)).unwrap();
    let mut kc = backend.upload(&random_vec::<bf16>(64, 4, 1.0)).unwrap();
    let mut vc = backend.upload(&random_vec::<bf16>(64, 5, 1.0)).unwrap();
    let slots = backend.upload(&[0i64, 3]).unwrap();
    let pos = backend.upload(&[4i32, 9]).unwrap();
    let mut status = backend.alloc_poisoned::<i32>(2).unwrap();
    kv_append(
        &backend,
        &mut q,
        &mut k,
        &v,
        (&mut kc, &mut vc),
        &slots,
        (&pos, &inv),
        &mut status,
        shape,
        cfg,
    )
    .unwrap();
    let e = kv_append(
        &backend,
        &mut q,
        &mut k,
        &v,
        (&mut kc, &mut vc),
        &slots,
        (&pos, &inv),
        &mut status,
        KvAppendShape { num_slots: 5, ..shape },
        cfg,
    );
    assert!(
        matches!(e, Err(Error::ShapeMismatch { tensor: "k_cache", .. })),
        "{e:?}"
    );
    let wide = RopeConfig { rotary_dim: 258, ..CFG };
    let big = KvAppendShape { head_dim: 264, ..shape };
    let e = kv_append(
        &backend,
        &mut q,
        &mut k,
        &v,
        (&mut kc, &mut vc),
        &slots,
        (&pos, &inv),
        &mut status,
        big,
        wide,
    );
    assert!(
        matches!(e, Err(Error::UnsupportedHeadDim { head_dim: 258, .. })),
        "{e:?}"
    );
    // The two caches may not be one buffer.
    // SAFETY: deliberately aliasing views of one emulator buffer, to test the check.
    let (mut kc_view, mut vc_alias) = unsafe { (kc.raw_view_mut(kc.addr(), 64), kc.raw_view_mut(kc.addr() + 8, 64)) };
    let e = kv_append(
        &backend,
        &mut q,
        &mut k,
        &v,
        (&mut kc_view, &mut vc_alias),
        &slots,
        (&pos, &inv),
        &mut status,
        shape,
        cfg,
    );
    assert!(matches!(e, Err(Error::Aliasing { .. })), "{e:?}");
    let mut short = backend.alloc_poisoned::<i32>(1).unwrap();
    let e = kv_append(
        &backend,
        &mut q,
        &mut k,
        &v,
        (&mut kc, &mut vc),
        &slots,
        (&pos, &inv),
        &mut short,
        shape,
        cfg,
    );
    assert!(matches!(e, Err(Error::ShapeMismatch { tensor: "status", .. })), "{e:?}");
    let empty = KvAppendShape { tokens: 0, ..shape };
    let (mut e0, mut e1, e2) = (
        backend.alloc_zeros::<bf16>(0).unwrap(),
        backend.alloc_zeros::<bf16>(0).unwrap(),
        backend.alloc_zeros::<bf16>(0).unwrap(),
    );
    let (s0, p0, mut st0) = (
        backend.upload::<i64>(&[]).unwrap(),
        backend.upload::<i32>(&[]).unwrap(),
        backend.alloc_zeros::<i32>(0).unwrap(),
    );
    kv_append(
        &backend,
        &mut e0,
        &mut e1,
        &e2,
        (&mut kc, &mut vc),
        &s0,
        (&p0, &inv),
        &mut st0,
        empty,
        cfg,
    )
    .unwrap();
}
