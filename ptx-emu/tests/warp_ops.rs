//! Warp collectives as rendezvous: shfl (up/down/bfly/idx with clamp and segment mask), vote, redux,
//! match, bar.warp.sync, activemask; divergence and reconvergence.

#![allow(clippy::needless_range_loop)] // index loops mirror the math being checked

mod common;
use common::{eval_threads, lanes_x0};

fn y0(body: &str, inputs: &[[u64; 4]], n: u32) -> Vec<u64> {
    eval_threads(body, inputs, n)
        .unwrap_or_else(|e| panic!("{body}: {e}"))
        .iter()
        .map(|v| v[0])
        .collect()
}

#[test]
fn shfl_modes_follow_the_isa_pseudocode() {
    let inp = lanes_x0(32, |i| 100 + i as u64);
    // bfly 1: partner lane ^ 1
    let got = y0("shfl.sync.bfly.b32 %y0, %x0, 1, 31, -1;", &inp, 32);
    assert_eq!(got, (0..32).map(|i| 100 + (i ^ 1) as u64).collect::<Vec<_>>());
    // down 3 with clamp 31: lanes > 28 keep their own value, p false
    let out = eval_threads(
        "shfl.sync.down.b32 %y0|%p0, %x0, 3, 31, -1; selp.u64 %y1, 1, 0, %p0;",
        &inp,
        32,
    )
    .unwrap();
    for (i, v) in out.iter().enumerate() {
        let (want, p) = if i + 3 <= 31 {
            (100 + i as u64 + 3, 1)
        } else {
            (100 + i as u64, 0)
        };
        assert_eq!((v[0], v[1]), (want, p), "lane {i}");
    }
    // up 2 with c = 0: lanes 0, 1 keep their own value
    let got = y0("shfl.sync.up.b32 %y0, %x0, 2, 0, -1;", &inp, 32);
    assert_eq!(
        got,
        (0..32)
            .map(|i| 100 + if i >= 2 { i - 2 } else { i } as u64)
            .collect::<Vec<_>>()
    );
    // idx 5 with width 16 (c = 0x101f): segments of 16 lanes, each reads lane 5 of its segment
    let got = y0("shfl.sync.idx.b32 %y0, %x0, 5, 4127, -1;", &inp, 32);
    assert_eq!(
        got,
        (0..32).map(|i| 100 + if i < 16 { 5 } else { 21 }).collect::<Vec<_>>()
    );
    // down 1 in segments of 8 (c = 0x1807): lane 7 of each segment keeps its value
    let got = y0("shfl.sync.down.b32 %y0, %x0, 1, 6151, -1;", &inp, 32);
    assert_eq!(
        got,
        (0..32)
            .map(|i| 100 + if i % 8 == 7 { i } else { i + 1 } as u64)
            .collect::<Vec<_>>()
    );
    // per-lane source index from a register
    let inp2: Vec<[u64; 4]> = (0..32).map(|i| [i as u64 * 10, (31 - i) as u64, 0, 0]).collect();
    let got = y0("shfl.sync.idx.b32 %y0, %x0, %x1, 31, -1;", &inp2, 32);
    assert_eq!(got, (0..32).map(|i| (31 - i) as u64 * 10).collect::<Vec<_>>());
}

#[test]
fn shfl_reads_all_inputs_before_writing() {
    // Destination register is the source register: a lane-by-lane implementation would read updated values.
    let inp = lanes_x0(32, |i| i as u64);
    let got = y0("shfl.sync.down.b32 %x0, %x0, 1, 31, -1; mov.b64 %y0, %x0;", &inp, 32);
    assert_eq!(
        got,
        (0..32)
            .map(|i| if i < 31 { i + 1 } else { 31 } as u64)
            .collect::<Vec<_>>()
    );
}

#[test]
fn butterfly_reduction_sums_the_warp() {
    let inp = lanes_x0(32, |i| i as u64 + 1);
    let body = "mov.b64 %t0, %x0;
shfl.sync.bfly.b32 %t1, %t0, 16, 31, -1; add.s32 %t0, %t0, %t1;
shfl.sync.bfly.b32 %t1, %t0, 8, 31, -1; add.s32 %t0, %t0, %t1;
shfl.sync.bfly.b32 %t1, %t0, 4, 31, -1; add.s32 %t0, %t0, %t1;
shfl.sync.bfly.b32 %t1, %t0, 2, 31, -1; add.s32 %t0, %t0, %t1;
shfl.sync.bfly.b32 %t1, %t0, 1, 31, -1; add.s32 %t0, %t0, %t1;
mov.b64 %y0, %t0;";
    assert_eq!(y0(body, &inp, 32), vec![528; 32]);
}

#[test]
fn vote_redux_match_activemask() {
    let inp = lanes_x0(32, |i| (i % 3) as u64);
    let ballot = (0..32).filter(|i| i % 3 == 0).fold(0u64, |m, i| m | 1 << i);
    let got = y0("setp.eq.s32 %p0, %x0, 0; vote.sync.ballot.b32 %y0, %p0, -1;", &inp, 32);
    assert_eq!(got, vec![ballot; 32]);
    let got = y0("setp.eq.s32 %p0, %x0, 0; vote.sync.ballot.b32 %y0, !%p0, -1;", &inp, 32);
    assert_eq!(got, vec![!ballot & 0xffff_ffff; 32]);
    let got = y0(
        "setp.lt.s32 %p0, %x0, 3; vote.sync.all.pred %p1, %p0, -1; selp.u64 %y0, 1, 0, %p1;",
        &inp,
        32,
    );
    assert_eq!(got, vec![1; 32]);
    let got = y0(
        "setp.eq.s32 %p0, %x0, 7; vote.sync.any.pred %p1, %p0, -1; selp.u64 %y0, 1, 0, %p1;",
        &inp,
        32,
    );
    assert_eq!(got, vec![0; 32]);
    let got = y0(
        "setp.eq.s32 %p0, %x0, 0; vote.sync.uni.pred %p1, %p0, -1; selp.u64 %y0, 1, 0, %p1;",
        &inp,
        32,
    );
    assert_eq!(got, vec![0; 32]);
    // redux over 32 lanes of i % 3: sum = 11*0 + 11*1 + 10*2 = 31
    assert_eq!(y0("redux.sync.add.u32 %y0, %x0, -1;", &inp, 32), vec![31; 32]);
    assert_eq!(y0("redux.sync.max.u32 %y0, %x0, -1;", &inp, 32), vec![2; 32]);
    assert_eq!(y0("redux.sync.or.b32 %y0, %x0, -1;", &inp, 32), vec![3; 32]);
    let neg = lanes_x0(32, |i| (i as i32 - 5) as u32 as u64);
    assert_eq!(
        y0("redux.sync.min.s32 %y0, %x0, -1;", &neg, 32),
        vec![(-5i32) as u32 as u64; 32]
    );
    // match.any: lanes with equal values
    let got = y0("match.any.sync.b32 %y0, %x0, -1;", &inp, 32);
    for (i, g) in got.iter().enumerate() {
        let want = (0..32).filter(|j| j % 3 == i % 3).fold(0u64, |m, j| m | 1 << j);
        assert_eq!(*g, want, "lane {i}");
    }
    let same = lanes_x0(32, |_| 9);
    let out = eval_threads(
        "match.all.sync.b32 %y0|%p0, %x0, -1; selp.u64 %y1, 1, 0, %p0;",
        &same,
        32,
    )
    .unwrap();
    assert!(out.iter().all(|v| v[0] == 0xffff_ffff && v[1] == 1));
    // activemask inside a branch taken by even lanes only
    let inp = lanes_x0(32, |i| i as u64);
    let body =
        "and.b64 %t0, %x0, 1; setp.ne.s64 %p0, %t0, 0; @%p0 bra $L_odd; activemask.b32 %y0; $L_odd: bar.warp.sync -1;";
    let got = y0(body, &inp, 32);
    for (i, g) in got.iter().enumerate() {
        assert_eq!(*g, if i % 2 == 0 { 0x5555_5555 } else { 0 }, "lane {i}");
    }
}

#[test]
fn divergent_branches_reconverge_for_a_collective() {
    // Lanes take different paths, then all meet at a full-mask shfl.
    let inp = lanes_x0(32, |i| i as u64);
    let body = "setp.lt.u64 %p0, %x0, 16; @%p0 bra $L_a; add.s64 %t0, %x0, 1000; bra.uni $L_join; $L_a: add.s64 %t0, %x0, 2000; $L_join: shfl.sync.bfly.b32 %y0, %t0, 16, 31, -1;";
    let got = y0(body, &inp, 32);
    for (i, g) in got.iter().enumerate() {
        let partner = i ^ 16;
        let want = if partner < 16 { 2000 + partner } else { 1000 + partner } as u64;
        assert_eq!(*g, want, "lane {i}");
    }
}

#[test]
fn partial_warp_and_multi_warp_blocks() {
    // 40 threads: warp 1 has 8 lanes; a shfl with mask 0xff in warp 1 works.
    let inp = lanes_x0(40, |i| i as u64);
    let body = "setp.lt.u64 %p0, %x7, 32; @%p0 bra $L_w0; shfl.sync.idx.b32 %y0, %x0, 3, 31, 255; bra.uni $L_end; $L_w0: shfl.sync.idx.b32 %y0, %x0, 3, 31, -1; $L_end: mov.b64 %y1, %x7;";
    let got = y0(body, &inp, 40);
    for (i, g) in got.iter().enumerate() {
        assert_eq!(*g, if i < 32 { 3 } else { 35 }, "thread {i}");
    }
}

#[test]
fn barrier_reductions_cover_every_thread_of_the_block() {
    // 64 threads (two warps): bar.red gives each thread the reduction over both warps' predicates.
    let run = |pred_of: &dyn Fn(usize) -> bool, neg: bool| {
        let inp = lanes_x0(64, |i| pred_of(i) as u64);
        let c = if neg { "!%p0" } else { "%p0" };
        let body = format!(
            "setp.ne.u64 %p0, %x0, 0;
             bar.red.popc.u32 %r1, 0, {c};
             barrier.cta.red.and.pred %p1, 0, {c};
             bar.red.or.pred %p2, 0, 64, {c};
             cvt.u64.u32 %y0, %r1; selp.u64 %y1, 1, 0, %p1; selp.u64 %y2, 1, 0, %p2;"
        );
        let out = eval_threads(&body, &inp, 64).unwrap_or_else(|e| panic!("{body}: {e}"));
        let trues = (0..64).filter(|&i| pred_of(i) != neg).count() as u64;
        for v in &out {
            assert_eq!([v[0], v[1], v[2]], [trues, (trues == 64) as u64, (trues > 0) as u64]);
        }
    };
    run(&|i| i == 40, false); // one thread of the second warp: or is true for the first warp too
    run(&|i| i == 40, true);
    run(&|_| true, false);
    run(&|_| false, false);
    run(&|i| i % 3 == 0, false);
}
