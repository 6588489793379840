//! mbarrier: phases, parity, pending counts, arrive counts, arrive_drop, expect_tx / complete_tx,
//! test_wait vs try_wait, inval and every misuse report, written as PTX; warps spinning on waits (they
//! must let the producer run, and end at the instruction budget when nobody ever arrives); the
//! nvcc-compiled double-buffered producer/consumer of tests/cu/mbarrier.cu with every check on, and the
//! same with the consumers' wait removed (racecheck). Expected values from the PTX ISA: a phase
//! completes when the pending arrival count and the tx-count reach 0; the pending count is then reset
//! to the expected count; test_wait/try_wait are true for the immediately preceding phase and false for
//! the current one; pending_count gives the pending count before the arrive that made the token.

mod common;
use common::*;
use ptx_emu::{CheckKind, Checks, Device, EmuError, Options};

const HEADER90: &str = ".version 8.0\n.target sm_90\n.address_size 64\n";

/// A kernel: `bar` (4 mbarriers) and `s` in shared memory, %r1 = tid, %r2 = &bar[0] (shared), %rd4 =
/// this thread's 16 u64 output slots.
fn kernel(body: &str) -> String {
    format!(
        "{HEADER90}.visible .entry k(.param .u64 p_out, .param .u64 p_in)\n{{\n.reg .pred %p<16>;\n.reg .b32 %r<32>;\n.reg .b64 %rd<32>;\n\
         .shared .align 8 .b64 bar[4];\n.shared .align 16 .b8 s[1024];\nld.param.u64 %rd1, [p_out];\nld.param.u64 %rd2, [p_in];\n\
         mov.u32 %r1, %tid.x;\nmov.u32 %r2, bar;\nmul.wide.u32 %rd3, %r1, 128;\nadd.s64 %rd4, %rd1, %rd3;\n{body}\nret;\n}}\n"
    )
}

fn line_of(src: &str, needle: &str) -> u32 {
    src.lines().position(|l| l.contains(needle)).expect("needle") as u32 + 1
}

fn run_on(dev: &Device, src: &str, threads: u32) -> Result<Vec<u64>, EmuError> {
    let m = dev.load_module(src).unwrap_or_else(|e| panic!("{e}\n{src}"));
    let out = upload(dev, &vec![0u8; 128 * threads as usize]);
    let inp = upload(dev, &[0u8; 64]);
    dev.launch(&m, "k", &cfg([1, 1, 1], [threads, 1, 1], 0), &params(&[out, inp]))?;
    Ok(download(dev, out, 128 * threads as usize)
        .chunks(8)
        .map(|c| u64::from_le_bytes(c.try_into().unwrap()))
        .collect())
}

fn run(src: &str, threads: u32) -> Vec<u64> {
    run_on(&device(Checks::all()), src, threads).unwrap_or_else(|e| panic!("{e}\n{src}"))
}

/// Stores predicate %pN into output slot k.
fn out_p(n: u32, k: u32) -> String {
    format!("selp.u64 %rd30, 1, 0, %p{n};\nst.global.u64 [%rd4+{}], %rd30;\n", 8 * k)
}

fn out_r(r: &str, k: u32) -> String {
    format!("cvt.u64.u32 %rd30, {r};\nst.global.u64 [%rd4+{}], %rd30;\n", 8 * k)
}

#[test]
fn phases_parity_tokens_and_pending_count() {
    let body = format!(
        "mbarrier.init.shared.b64 [bar], 2;\n\
         mbarrier.arrive.shared.b64 %rd10, [bar];\nmbarrier.pending_count.b64 %r10, %rd10;\n{}\
         mbarrier.test_wait.shared.b64 %p1, [bar], %rd10;\n{}\
         mbarrier.test_wait.parity.shared.b64 %p2, [bar], 0;\n{}\
         mbarrier.test_wait.parity.shared.b64 %p3, [bar], 1;\n{}\
         mbarrier.arrive.shared.b64 %rd11, [bar];\nmbarrier.pending_count.b64 %r11, %rd11;\n{}\
         mbarrier.test_wait.shared.b64 %p4, [bar], %rd10;\nmbarrier.test_wait.shared.b64 %p5, [bar], %rd11;\nand.pred %p4, %p4, %p5;\n{}\
         mbarrier.try_wait.parity.shared::cta.b64 %p6, [bar], 0;\nmbarrier.try_wait.parity.shared::cta.b64 %p7, [bar], 1;\n{}{}\
         mbarrier.arrive.shared.b64 %rd12, [bar];\nmbarrier.pending_count.b64 %r12, %rd12;\n\
         mbarrier.try_wait.acquire.cta.shared::cta.b64 %p8, [bar], %rd12, 1000;\nselp.u32 %r13, 100, 0, %p8;\nadd.u32 %r12, %r12, %r13;\n{}",
        out_r("%r10", 0),
        out_p(1, 1),
        out_p(2, 2),
        out_p(3, 3),
        out_r("%r11", 4),
        out_p(4, 5),
        out_p(6, 6),
        out_p(7, 7),
        out_r("%r12", 8),
    );
    let got = run(&kernel(&body), 1);
    // pending 2 before the first arrive; phase 0 incomplete: token false, parity 0 (current) false,
    // parity 1 (the phase before 0) true; pending 1 before the second arrive, which completes phase 0:
    // both tokens true; parity 0 now the previous phase (true), parity 1 the current one (false).
    assert_eq!(&got[..8], &[2, 0, 0, 1, 1, 1, 1, 0], "{got:?}");
    // phase 1: pending reset to the expected 2 (+100 if its try_wait had succeeded)
    assert_eq!(got[8], 2);
}

#[test]
fn arrive_counts_no_complete_and_arrive_drop() {
    let body = format!(
        "mbarrier.init.shared::cta.b64 [bar], 3;\n\
         mbarrier.arrive.noComplete.shared.b64 %rd10, [bar], 1;\n\
         mbarrier.arrive.release.cta.shared::cta.b64 %rd11, [bar], 2;\nmbarrier.pending_count.b64 %r10, %rd11;\n{}\
         mbarrier.test_wait.shared.b64 %p1, [bar], %rd10;\n{}\
         mbarrier.init.shared.b64 [bar+8], 2;\n\
         mbarrier.arrive_drop.shared.b64 _, [bar+8];\n\
         mbarrier.test_wait.parity.shared.b64 %p2, [bar+8], 0;\n{}\
         mbarrier.arrive.shared.b64 _, [bar+8];\n\
         mbarrier.test_wait.parity.shared.b64 %p3, [bar+8], 0;\n{}\
         mbarrier.arrive.shared.b64 %rd12, [bar+8];\nmbarrier.pending_count.b64 %r11, %rd12;\n{}\
         mbarrier.test_wait.parity.shared.b64 %p4, [bar+8], 1;\nmbarrier.test_wait.parity.shared.b64 %p5, [bar+8], 0;\n{}{}",
        out_r("%r10", 0),
        out_p(1, 1),
        out_p(2, 2),
        out_p(3, 3),
        out_r("%r11", 4),
        out_p(4, 5),
        out_p(5, 6),
    );
    let got = run(&kernel(&body), 1);
    // 3 expected: 1 (.noComplete) + 2 complete phase 0 (pending 2 before the second arrive).
    // arrive_drop on 2 expected: pending 1, expected 1 for every later phase; the arrive completes
    // phase 0; the next single arrive (pending 1 before it) completes phase 1.
    assert_eq!(&got[..7], &[2, 1, 0, 1, 1, 1, 0], "{got:?}");
}

#[test]
fn expect_tx_and_complete_tx() {
    let body = format!(
        "mbarrier.init.shared::cta.b64 [bar], 1;\n\
         mbarrier.arrive.expect_tx.shared::cta.b64 %rd10, [bar], 64;\n\
         mbarrier.test_wait.shared::cta.b64 %p1, [bar], %rd10;\n{}\
         mbarrier.complete_tx.shared::cta.b64 [bar], 32;\n\
         mbarrier.test_wait.shared::cta.b64 %p2, [bar], %rd10;\n{}\
         mbarrier.expect_tx.relaxed.cta.shared::cta.b64 [bar], 16;\n\
         mbarrier.complete_tx.relaxed.cta.shared::cta.b64 [bar], 32;\n\
         mbarrier.test_wait.shared::cta.b64 %p3, [bar], %rd10;\n{}\
         mbarrier.complete_tx.shared::cta.b64 [bar], 16;\n\
         mbarrier.test_wait.shared::cta.b64 %p4, [bar], %rd10;\n{}\
         mbarrier.expect_tx.shared::cta.b64 [bar], 8;\n\
         mbarrier.arrive.shared::cta.b64 %rd11, [bar];\n\
         mbarrier.try_wait.shared::cta.b64 %p5, [bar], %rd11;\n{}\
         mbarrier.complete_tx.shared::cta.b64 [bar], 8;\n\
         mbarrier.try_wait.shared::cta.b64 %p6, [bar], %rd11;\n{}",
        out_p(1, 0),
        out_p(2, 1),
        out_p(3, 2),
        out_p(4, 3),
        out_p(5, 4),
        out_p(6, 5),
    );
    // tx 64 outstanding after the arrive (pending 0): incomplete until 64 bytes completed in all
    // (32 + 32 - 16 expected more + 16); phase 1: expect 8 then the arrive: complete after 8 more.
    assert_eq!(&run(&kernel(&body), 1)[..6], &[0, 0, 0, 1, 0, 1]);
}

#[test]
fn inval_then_init_again() {
    let body = format!(
        "mbarrier.init.shared.b64 [bar], 1;\nmbarrier.arrive.shared.b64 _, [bar];\nmbarrier.inval.shared.b64 [bar];\n\
         st.shared.u64 [bar], 0;\nld.shared.u64 %rd10, [bar];\n\
         mbarrier.init.shared.b64 [bar], 1;\nmbarrier.test_wait.parity.shared.b64 %p1, [bar], 0;\n{}\
         mbarrier.arrive.shared.b64 _, [bar];\nmbarrier.test_wait.parity.shared.b64 %p2, [bar], 0;\n{}",
        out_p(1, 0),
        out_p(2, 1)
    );
    // after inval the 8 bytes are ordinary memory; a new init starts at phase 0 again
    assert_eq!(&run(&kernel(&body), 1)[..2], &[0, 1]);
}

#[test]
fn generic_addresses_of_mbarriers() {
    let body = format!(
        "cvta.shared.u64 %rd10, bar;\nmbarrier.init.b64 [%rd10], 1;\nmbarrier.arrive.b64 %rd11, [%rd10];\n\
         mbarrier.test_wait.b64 %p1, [%rd10], %rd11;\n{}",
        out_p(1, 0)
    );
    assert_eq!(run(&kernel(&body), 1)[0], 1);
}

/// Every misuse: (body, check, message part). The planted line is marked PLANTED.
#[test]
fn misuse_is_reported_never_a_panic() {
    let cases: &[(&str, CheckKind, &str)] = &[
        ("mbarrier.arrive.shared.b64 _, [bar]; // PLANTED", CheckKind::Synccheck, "never initialized"),
        (
            "mbarrier.init.shared.b64 [bar], 1;\nmbarrier.inval.shared.b64 [bar];\nmbarrier.arrive.shared.b64 _, [bar]; // PLANTED",
            CheckKind::Synccheck,
            "invalidated at PTX line",
        ),
        ("mbarrier.inval.shared.b64 [bar]; // PLANTED", CheckKind::Synccheck, "never initialized"),
        (
            "mbarrier.init.shared.b64 [bar], 1;\nmbarrier.arrive.shared.b64 _, [bar], 2; // PLANTED",
            CheckKind::Synccheck,
            "exceeds the pending arrival count 1",
        ),
        ("mbarrier.init.shared.b64 [bar], 0; // PLANTED", CheckKind::Synccheck, "count 0"),
        ("mbarrier.init.shared.b64 [bar], 1048576; // PLANTED", CheckKind::Synccheck, "count 1048576"),
        (
            "mbarrier.init.shared.b64 [bar], 1;\nmbarrier.arrive.shared.b64 _, [bar], 0; // PLANTED",
            CheckKind::Synccheck,
            "count 0",
        ),
        (
            "mbarrier.init.shared.b64 [bar], 1;\nmbarrier.init.shared.b64 [bar], 2; // PLANTED",
            CheckKind::Synccheck,
            "already initialized",
        ),
        (
            "mbarrier.init.shared.b64 [bar], 1;\nmbarrier.arrive.shared.b64 %rd10, [bar];\nmbarrier.arrive.shared.b64 _, [bar];\nmbarrier.test_wait.shared.b64 %p1, [bar], %rd10; // PLANTED",
            CheckKind::Synccheck,
            "token of phase 0, but the mbarrier object is in phase 2",
        ),
        (
            "mbarrier.init.shared.b64 [bar], 1;\nmbarrier.test_wait.shared.b64 %p1, [bar], 0; // PLANTED",
            CheckKind::Synccheck,
            "not a state token",
        ),
        (
            "mbarrier.init.shared.b64 [bar], 1;\nmbarrier.init.shared.b64 [bar+8], 1;\nmbarrier.arrive.shared.b64 %rd10, [bar+8];\nmbarrier.test_wait.shared.b64 %p1, [bar], %rd10; // PLANTED",
            CheckKind::Synccheck,
            "not a state token of this mbarrier",
        ),
        (
            "mbarrier.init.shared.b64 [bar], 1;\nmbarrier.test_wait.parity.shared.b64 %p1, [bar], 2; // PLANTED",
            CheckKind::Synccheck,
            "must be 0 or 1",
        ),
        (
            "mbarrier.init.shared.b64 [bar], 1;\nmbarrier.arrive.noComplete.shared.b64 _, [bar], 1; // PLANTED",
            CheckKind::Synccheck,
            "noComplete completed the phase",
        ),
        (
            "mbarrier.init.shared.b64 [bar], 1;\nmbarrier.expect_tx.shared::cta.b64 [bar], 1048576; // PLANTED",
            CheckKind::Synccheck,
            "tx-count 1048576 out of range",
        ),
        ("mbarrier.pending_count.b64 %r10, %rd2; // PLANTED", CheckKind::Synccheck, "not a state token"),
        (
            "mbarrier.init.shared.b64 [bar], 1;\nld.shared.u32 %r10, [bar+4]; // PLANTED",
            CheckKind::Memcheck,
            "plain read of 4 bytes of shared memory overlapping the mbarrier object",
        ),
        (
            "mbarrier.init.shared.b64 [bar+8], 1;\nst.shared.v2.u32 [bar+8], {%r1, %r1}; // PLANTED",
            CheckKind::Memcheck,
            "plain write of 8 bytes",
        ),
        ("mbarrier.init.shared.b64 [bar+4], 1; // PLANTED", CheckKind::Memcheck, "misaligned shared write of 8 bytes"),
        ("mbarrier.init.shared.b64 [s+1024], 1; // PLANTED", CheckKind::Memcheck, "out-of-bounds shared"),
        ("mbarrier.init.b64 [%rd2], 1; // PLANTED", CheckKind::Memcheck, "not in shared memory"),
    ];
    for (body, kind, want) in cases {
        let src = kernel(body);
        let reps = match run_on(&device(Checks::all()), &src, 1) {
            Err(EmuError::Check { reports, .. }) => reports,
            other => panic!("{body}: expected reports, got {other:?}"),
        };
        let r = reps
            .iter()
            .find(|r| r.kind == *kind && r.message.contains(want))
            .unwrap_or_else(|| panic!("{body}: want {kind:?} `{want}`, got {reps:?}"));
        assert_eq!(r.line, line_of(&src, "PLANTED"), "{body}");
    }
}

/// Thread 0 initializes `bar[0]` with `count`, then the whole block synchronises.
fn init0(count: u32) -> String {
    format!("setp.eq.u32 %p15, %r1, 0;\n@%p15 mbarrier.init.shared.b64 [bar], {count};\nbar.sync 0;\n")
}

#[test]
fn a_warp_spinning_on_try_wait_lets_the_producer_warp_run() {
    // warp 0 spins (it runs first), warp 1 writes s and arrives
    let body = format!(
        "{}setp.ge.u32 %p1, %r1, 32;\n@%p1 bra $L_produce;\n\
         $L_spin:\nmbarrier.try_wait.parity.shared::cta.b64 %p2, [bar], 0;\n@!%p2 bra $L_spin;\n\
         shl.b32 %r3, %r1, 2;\nadd.s32 %r4, %r3, s;\nld.shared.u32 %r5, [%r4];\n{}bra.uni $L_end;\n\
         $L_produce:\nsub.u32 %r6, %r1, 32;\nshl.b32 %r3, %r6, 2;\nadd.s32 %r4, %r3, s;\nadd.u32 %r7, %r6, 1000;\nst.shared.u32 [%r4], %r7;\n\
         mbarrier.arrive.shared.b64 _, [bar];\n$L_end:",
        init0(32),
        out_r("%r5", 0)
    );
    let src = kernel(&body);
    let dev = device(Checks::all());
    let m = dev.load_module(&src).unwrap();
    let out = upload(&dev, &[0u8; 128 * 64]);
    let rep = dev
        .launch(&m, "k", &cfg([1, 1, 1], [64, 1, 1], 0), &params(&[out, out]))
        .unwrap();
    let got: Vec<u64> = download(&dev, out, 128 * 32)
        .chunks(128)
        .map(|c| u64::from_le_bytes(c[..8].try_into().unwrap()))
        .collect();
    assert_eq!(got, (1000..1032).collect::<Vec<u64>>());
    // a failed wait ends the warp's turn: the spin costs a few instructions, not a time slice of 8192
    assert!(rep.metrics.warp_instructions < 200, "{}", rep.metrics.warp_instructions);
    assert_eq!(rep.metrics.barriers, 2);
}

#[test]
fn lanes_spinning_at_a_lower_pc_let_the_producing_lane_of_their_warp_run() {
    // lanes 1..31 wait at lower PCs than lane 0's producer code: without independent progress of the
    // lanes they would starve it
    let body = format!(
        "{}setp.eq.u32 %p1, %r1, 0;\n@%p1 bra $L_produce;\n\
         $L_spin:\nmbarrier.try_wait.parity.shared::cta.b64 %p2, [bar], 0;\n@!%p2 bra $L_spin;\nbra.uni $L_read;\n\
         $L_produce:\nst.shared.u32 [s], 42;\nmbarrier.arrive.shared.b64 _, [bar];\n\
         $L_read:\nld.shared.u32 %r5, [s];\n{}",
        init0(1),
        out_r("%r5", 0)
    );
    let got = run(&kernel(&body), 32);
    assert!((0..32).all(|t| got[16 * t] == 42), "{got:?}");
}

#[test]
fn warps_that_spin_forever_end_at_the_instruction_budget() {
    // nobody ever arrives: every warp spins until the budget, and names the wait's line
    let body = format!(
        "{}$L_spin:\nmbarrier.try_wait.parity.shared::cta.b64 %p2, [bar], 0; // WAIT\n@!%p2 bra $L_spin;",
        init0(1)
    );
    let src = kernel(&body);
    let dev = Device::new(Options {
        max_instructions: 100_000,
        ..Options::default()
    });
    let m = dev.load_module(&src).unwrap();
    let out = upload(&dev, &[0u8; 128 * 96]);
    match dev.launch(&m, "k", &cfg([1, 1, 1], [96, 1, 1], 0), &params(&[out, out])) {
        Err(EmuError::Budget { warps, .. }) => {
            assert_eq!(warps.len(), 3, "{warps:?}");
            for w in &warps {
                assert_eq!(w.line, line_of(&src, "WAIT"), "{w:?}");
                assert!(w.state.contains("mbarrier"), "{w:?}");
            }
        }
        other => panic!("expected a budget stop, got {other:?}"),
    }
}

#[test]
fn racecheck_orders_what_came_before_the_arrive_and_nothing_after() {
    // warp 1 writes s[0], arrives, then writes s[4]; warp 0 waits, then reads both: the read of s[4]
    // races with the write after the arrive
    let body = format!(
        "{}setp.lt.u32 %p1, %r1, 32;\n@%p1 bra $L_consume;\nsetp.ne.u32 %p3, %r1, 32;\n@%p3 bra $L_end;\n\
         st.shared.u32 [s], 1;\nmbarrier.arrive.shared.b64 _, [bar];\nst.shared.u32 [s+4], 2; // LATE\nbra.uni $L_end;\n\
         $L_consume:\nsetp.ne.u32 %p4, %r1, 0;\n@%p4 bra $L_end;\n\
         $L_spin:\nmbarrier.test_wait.parity.shared.b64 %p2, [bar], 0;\n@!%p2 bra $L_spin;\n\
         ld.shared.u32 %r5, [s]; // EARLY_READ\nld.shared.u32 %r6, [s+4]; // LATE_READ\n$L_end:",
        init0(1)
    );
    let src = kernel(&body);
    // warp 0 runs first and spins, warp 1 then does all three of its steps in its turn
    let reps = match run_on(&device(Checks::all()), &src, 64) {
        Err(EmuError::Check { reports, .. }) => reports,
        other => panic!("expected a racecheck report, got {other:?}"),
    };
    assert_eq!(reps.len(), 1, "{reps:?}");
    assert_eq!(reps[0].kind, CheckKind::Racecheck);
    assert_eq!(reps[0].line, line_of(&src, "LATE_READ"));
    assert!(
        reps[0].message.contains(&format!("PTX line {}", line_of(&src, "LATE"))),
        "{}",
        reps[0].message
    );
}

// ---- tests/cu/mbarrier.cu ----

const TILE: usize = 256;
const CTHREADS: usize = 128;

fn pipeline_want(x: &[f32], ntiles: usize) -> Vec<f32> {
    (0..ntiles * CTHREADS)
        .map(|o| {
            let (t, c) = (o / CTHREADS, o % CTHREADS);
            (c..TILE).step_by(CTHREADS).map(|i| x[t * TILE + i] * 2.0 + 1.0).sum()
        })
        .collect()
}

fn pipeline_params(out: u64, inp: u64, ntiles: usize, mode: Option<u32>) -> Vec<u8> {
    let mut p = params(&[out, inp]);
    p.extend_from_slice(&(ntiles as u32).to_le_bytes());
    if let Some(m) = mode {
        p.extend_from_slice(&m.to_le_bytes());
    }
    p
}

#[test]
fn double_buffered_producer_consumer_runs_clean_with_every_check() {
    let Some(ptx) = compile_cu("mbarrier.cu") else { return };
    let ntiles = 7; // odd: both buffers, both parities, and a last phase on one buffer only
    let x: Vec<f32> = (0..ntiles * TILE).map(|i| ((i * 37) % 101) as f32 - 50.0).collect();
    let want = pipeline_want(&x, ntiles);
    // in order, and under shuffled schedules with short random time slices
    for seed in [None, Some(1), Some(2), Some(3)] {
        let dev = Device::new(Options {
            schedule_seed: seed,
            ..Options::default()
        });
        let m = dev.load_module(&ptx).unwrap();
        let inp = upload(&dev, &bytes_f32(&x));
        for (kernel, mode) in [
            ("pipeline", Some(0)),
            ("pipeline", Some(1)),
            ("pipeline_cp_async", None),
        ] {
            let out = dev.alloc(4 * ntiles * CTHREADS).unwrap();
            let rep = dev
                .launch(
                    &m,
                    kernel,
                    &cfg([1, 1, 1], [160, 1, 1], 0),
                    &pipeline_params(out, inp, ntiles, mode),
                )
                .unwrap_or_else(|e| panic!("{kernel} mode {mode:?} seed {seed:?}: {e}"));
            assert_eq!(
                f32s(&download(&dev, out, 4 * ntiles * CTHREADS)),
                want,
                "{kernel} {mode:?} {seed:?}"
            );
            // __syncthreads + one phase of full[] and one of empty[] per tile
            assert_eq!(rep.metrics.barriers, 1 + 2 * ntiles as u64, "{kernel} {mode:?}");
        }
    }
}

#[test]
fn planted_bug_consumers_that_do_not_wait_are_a_racecheck_report() {
    let Some((dev, m)) = setup("mbarrier.cu") else { return };
    // two tiles: the producer fills both buffers without waiting, and the consumers read them unordered
    let ntiles = 2;
    let x: Vec<f32> = (0..ntiles * TILE).map(|i| i as f32).collect();
    let inp = upload(&dev, &bytes_f32(&x));
    let out = dev.alloc(4 * ntiles * CTHREADS).unwrap();
    let r = dev.launch(
        &m,
        "pipeline",
        &cfg([1, 1, 1], [160, 1, 1], 0),
        &pipeline_params(out, inp, ntiles, Some(2)),
    );
    let reps = reports(r);
    assert!(
        reps.iter()
            .any(|r| r.kind == CheckKind::Racecheck && r.message.contains("RAW hazard")),
        "{reps:?}"
    );
}

#[test]
fn fuzzed_wmma_and_mbarrier_kernels_never_panic_or_hang() {
    let mut seeds = vec![];
    for cu in ["mbarrier.cu", "wmma.cu"] {
        if let Some(ptx) = compile_cu(cu) {
            seeds.push((cu.to_string(), ptx));
        }
    }
    seeds.push(("mbarrier_ptx".into(), kernel(&format!("{}mbarrier.arrive.expect_tx.shared::cta.b64 %rd10, [bar], 64;\nmbarrier.complete_tx.shared::cta.b64 [bar], 64;\nmbarrier.try_wait.shared::cta.b64 %p1, [bar], %rd10;\nmbarrier.pending_count.b64 %r3, %rd10;\nmbarrier.arrive_drop.shared.b64 _, [bar];\nmbarrier.inval.shared.b64 [bar];", init0(2)))));
    let refs: Vec<(&str, &str)> = seeds.iter().map(|(n, t)| (n.as_str(), t.as_str())).collect();
    let config = ptx_emu::fuzz::Config {
        seed: 7,
        iterations: 400,
        max_seconds: 60.0,
        mutant_seconds: 10.0,
        max_instructions: 20_000,
        memory_limit: 16 << 20,
        max_mutations: 3,
    };
    let report = ptx_emu::fuzz::run(&refs, &config);
    for f in &report.findings {
        eprintln!("{} in a mutant of {}: {}\n{}", f.kind, f.seed_name, f.message, f.ptx);
    }
    assert!(report.findings.is_empty(), "{}", report.summary());
}

#[test]
fn cluster_forms_are_typed_unsupported_errors_and_sub_qualifiers_lex() {
    for inst in [
        "mbarrier.arrive.release.cluster.shared::cluster.b64 _, [%r2];",
        "mbarrier.arrive.release.cluster.b64 %rd10, [bar];",
        "mbarrier.try_wait.parity.acquire.cluster.shared::cta.b64 %p1, [bar], 0;",
        "mbarrier.init.shared::cluster.b64 [%r2], 1;",
        "mbarrier.arrive.acquire.cta.shared.b64 _, [bar];",
        "mbarrier.test_wait.parity.release.cta.shared.b64 %p1, [bar], 0;",
        "mbarrier.arrive.b32 %r3, [bar];",
        "cp.async.mbarrier.arrive.noinc.shared::cluster.b64 [%r2];",
    ] {
        // The module loads; the kernel that contains the form cannot be launched (tests/fidelity.rs).
        let src = kernel(&format!("{inst} // HERE"));
        let m = Device::new(Options::default()).load_module(&src).unwrap();
        let want = format!("unsupported PTX at line {}", line_of(&src, "HERE"));
        assert!(
            m.warnings().iter().any(|w| w.contains(&want)),
            "{inst}: {:?}",
            m.warnings()
        );
    }
    // `::` sub-qualifiers in any opcode
    let body = format!(
        "st.shared::cta.u32 [s], 7;\nld.shared::cta.u32 %r5, [s];\nld.global.L1::no_allocate.L2::evict_last.u32 %r6, [%rd2];\nadd.u32 %r5, %r5, %r6;\n{}",
        out_r("%r5", 0)
    );
    assert_eq!(run(&kernel(&body), 1)[0], 7);
}
