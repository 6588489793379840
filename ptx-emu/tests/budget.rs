//! The instruction budget (`Options::max_instructions`): every endless loop ends with an
//! `EmuError::Budget` that names the kernel and the PTX line every unfinished warp stands at, whatever
//! the loop does (ALU work, global loads and stores, `bar.sync`, collectives), and however the work is
//! split into blocks or host threads.

mod common;
use std::time::{Duration, Instant};

use common::{params, upload, HEADER};
use ptx_emu::{Device, EmuError, LaunchConfig, Options, WarpAt, DEFAULT_MAX_INSTRUCTIONS};

/// A kernel whose body `$L_loop: BODY; bra $L_loop;` never ends (%rd1 = a written 256-byte buffer).
fn endless(body: &str) -> String {
    format!(
        "{HEADER}.visible .entry spin(.param .u64 p)
{{
.reg .pred %p<4>;
.reg .b32 %r<8>;
.reg .b64 %rd<4>;
.shared .align 4 .b8 s[128];
ld.param.u64 %rd1, [p];
mov.u32 %r1, %tid.x;
$L_loop:
{body}
bra.uni $L_loop; // BACK
ret;
}}
"
    )
}

fn line_of(src: &str, needle: &str) -> u32 {
    src.lines().position(|l| l.contains(needle)).expect("needle") as u32 + 1
}

/// Launches `spin` and returns the budget stop's warps, failing on anything else or when it is slow.
fn budget_stop(src: &str, opts: Options, grid: [u32; 3], block: [u32; 3]) -> (u64, Vec<WarpAt>) {
    let dev = Device::new(Options {
        printf_stdout: false,
        ..opts
    });
    let m = dev.load_module(src).unwrap();
    let buf = upload(&dev, &[0u8; 256]);
    let cfg = LaunchConfig {
        grid,
        block,
        shared_bytes: 0,
    };
    let t = Instant::now();
    let r = dev.launch(&m, "spin", &cfg, &params(&[buf]));
    assert!(t.elapsed() < Duration::from_secs(20), "took {:?}", t.elapsed());
    match r {
        Err(e @ EmuError::Budget { .. }) => {
            let text = e.to_string();
            assert!(
                text.contains("instruction budget") && text.contains("kernel spin"),
                "{text}"
            );
            let EmuError::Budget { limit, warps, .. } = e else {
                unreachable!()
            };
            (limit, warps)
        }
        other => panic!("expected a budget stop, got {other:?}"),
    }
}

fn small(n: u64) -> Options {
    Options {
        max_instructions: n,
        ..Options::default()
    }
}

/// Every warp stands inside the loop (between `$L_loop` and the back branch).
fn assert_in_loop(src: &str, warps: &[WarpAt], nwarps: usize) {
    assert_eq!(warps.len(), nwarps, "{warps:?}");
    let (first, back) = (line_of(src, "$L_loop:"), line_of(src, "BACK"));
    for w in warps {
        assert!(
            w.line > first && w.line <= back,
            "{w} outside the loop {first}..={back}"
        );
        assert_eq!(w.lanes, 32, "{w}");
    }
}

#[test]
fn alu_loop_stops_at_the_budget() {
    let src = endless("add.s32 %r2, %r2, 1;\nxor.b32 %r3, %r3, %r2;");
    let (limit, warps) = budget_stop(&src, small(200_000), [1, 1, 1], [64, 1, 1]);
    assert_eq!(limit, 200_000);
    assert_in_loop(&src, &warps, 2);
    assert_eq!(warps[1].warp, 1);
}

#[test]
fn loop_around_bar_sync_stops_at_the_budget() {
    let src = endless("bar.sync 0;\nadd.s32 %r2, %r2, 1;");
    let (_, warps) = budget_stop(&src, small(200_000), [1, 1, 1], [128, 1, 1]);
    assert_in_loop(&src, &warps, 4);
}

#[test]
fn loop_of_global_and_shared_accesses_stops_at_the_budget() {
    let src = endless(
        "ld.volatile.global.u32 %r2, [%rd1];\nst.global.u32 [%rd1+4], %r2;\nmov.u32 %r4, s;\nst.shared.u32 [%r4], %r2;\nbar.sync 0;\natom.global.add.u32 %r3, [%rd1+8], 1;",
    );
    let (_, warps) = budget_stop(&src, small(200_000), [1, 1, 1], [32, 1, 1]);
    assert_in_loop(&src, &warps, 1);
}

#[test]
fn the_budget_counts_the_whole_launch_not_each_block() {
    // Every block is short, but 65535 x 65535 of them would run for days.
    let src = format!("{HEADER}.visible .entry spin(.param .u64 p)\n{{\n.reg .b32 %r<4>;\nmov.u32 %r1, %tid.x;\nadd.s32 %r2, %r1, 1;\nret;\n}}\n");
    let (_, warps) = budget_stop(&src, small(100_000), [65535, 65535, 1], [32, 1, 1]);
    assert!(warps.len() <= 1, "{warps:?}");
}

#[test]
fn budget_stop_with_several_host_threads() {
    let src = endless("add.s32 %r2, %r2, 1;");
    let opts = Options {
        worker_threads: 2,
        ..small(200_000)
    };
    let (_, warps) = budget_stop(&src, opts, [4, 1, 1], [32, 1, 1]);
    assert!(!warps.is_empty() && warps.len() <= 2, "{warps:?}");
}

#[test]
fn default_budget_ends_a_runaway_single_thread_loop_within_seconds() {
    let src = endless("add.s32 %r2, %r2, 1;\nsetp.eq.u32 %p1, %r2, 0;");
    let t = Instant::now();
    let (limit, warps) = budget_stop(&src, Options::default(), [1, 1, 1], [1, 1, 1]);
    assert_eq!(limit, DEFAULT_MAX_INSTRUCTIONS);
    assert_eq!(warps.len(), 1);
    assert!(t.elapsed() < Duration::from_secs(15), "{:?}", t.elapsed());
}

#[test]
fn a_launch_within_the_budget_is_not_stopped() {
    // 32 threads x 1000 iterations x 3 instructions: well under the budget.
    let src = format!("{HEADER}.visible .entry k()\n{{\n.reg .pred %p<2>;\n.reg .b32 %r<4>;\nmov.u32 %r1, 0;\n$L:\nadd.s32 %r1, %r1, 1;\nsetp.lt.u32 %p1, %r1, 1000;\n@%p1 bra $L;\nret;\n}}\n");
    let dev = Device::new(small(10_000));
    let m = dev.load_module(&src).unwrap();
    let cfg = LaunchConfig {
        grid: [1, 1, 1],
        block: [32, 1, 1],
        shared_bytes: 0,
    };
    let rep = dev.launch(&m, "k", &cfg, &[]).unwrap();
    assert!(rep.metrics.warp_instructions < 10_000);
}

#[test]
fn barrier_count_larger_than_the_block_is_a_synccheck_report() {
    // bar.arrive with an impossible count in a loop must neither hang nor grow without bound.
    let src = endless("bar.arrive 1, 4096; // BAD");
    let dev = Device::new(Options::default());
    let m = dev.load_module(&src).unwrap();
    let buf = upload(&dev, &[0u8; 256]);
    let cfg = LaunchConfig {
        grid: [1, 1, 1],
        block: [64, 1, 1],
        shared_bytes: 0,
    };
    let reps = common::reports(dev.launch(&m, "spin", &cfg, &params(&[buf])));
    assert_eq!(reps[0].kind, ptx_emu::CheckKind::Synccheck);
    assert_eq!(reps[0].line, line_of(&src, "BAD"));
    assert!(reps[0].message.contains("4096"), "{}", reps[0].message);
}

#[test]
fn async_copies_that_are_never_waited_for_end_the_launch() {
    let src = endless("mov.u32 %r4, s;\ncp.async.ca.shared.global [%r4], [%rd1], 4; // COPY");
    let dev = Device::new(Options::default());
    let m = dev.load_module(&src).unwrap();
    let buf = upload(&dev, &[0u8; 256]);
    let cfg = LaunchConfig {
        grid: [1, 1, 1],
        block: [32, 1, 1],
        shared_bytes: 0,
    };
    let reps = common::reports(dev.launch(&m, "spin", &cfg, &params(&[buf])));
    assert_eq!(reps[0].kind, ptx_emu::CheckKind::AsyncCopy);
    assert_eq!(reps[0].line, line_of(&src, "COPY"));
}

#[test]
fn named_barrier_loop_with_shared_accesses_stays_fast() {
    // Warps 0-1 loop on barrier 1 (64 of 96 threads: a partial barrier, which racecheck records per
    // thread) around shared stores and loads; warp 2 loops on barrier 2 alone. The per-thread barrier history
    // used to grow without bound and each racecheck lookup with it (a loop that slowed down
    // quadratically); now the loop runs into the budget at full speed.
    let src = format!(
        "{HEADER}.visible .entry spin(.param .u64 p)
{{
.reg .pred %p<4>;
.reg .b32 %r<8>;
.shared .align 4 .b8 s[512];
mov.u32 %r1, %tid.x;
setp.ge.u32 %p1, %r1, 64;
@%p1 bra $L_other;
mov.u32 %r2, s;
shl.b32 %r3, %r1, 2;
add.s32 %r4, %r2, %r3;
$L_loop:
st.shared.u32 [%r4], %r1;
bar.sync 1, 64;
ld.shared.u32 %r5, [%r2];
bar.sync 1, 64;
bra.uni $L_loop; // BACK
$L_other:
bar.sync 2, 32;
bra.uni $L_other;
}}
"
    );
    let t = Instant::now();
    let (_, warps) = budget_stop(&src, small(1_000_000), [1, 1, 1], [96, 1, 1]);
    assert_eq!(warps.len(), 3, "{warps:?}");
    assert!(t.elapsed() < Duration::from_secs(10), "{:?}", t.elapsed());
}
