//! Each check proven by a kernel with the bug planted: the launch must fail with a report that names
//! the kernel, block, thread, PTX line and address; the fixed kernel must run clean.

#![allow(clippy::needless_range_loop)] // index loops mirror the math being checked

mod common;
use common::*;
use ptx_emu::{CheckKind, Checks};

/// A kernel `k(.param .u64 p0, .param .u64 p1)` with the given body; shared decl optional.
fn kernel(decls: &str, body: &str) -> String {
    format!(
        "{HEADER}.visible .entry k(.param .u64 p0, .param .u64 p1)\n{{\n.reg .pred %p<8>;\n.reg .b32 %r<16>;\n.reg .b64 %rd<16>;\n.reg .f32 %f<8>;\n{decls}\nld.param.u64 %rd1, [p0];\nld.param.u64 %rd2, [p1];\nmov.u32 %r1, %tid.x;\n{body}\nret;\n}}\n"
    )
}

/// Line number (1-based) of the first line of `src` containing `needle`.
fn line_of(src: &str, needle: &str) -> u32 {
    src.lines().position(|l| l.contains(needle)).expect("needle") as u32 + 1
}

fn launch(
    src: &str,
    checks: Checks,
    block: u32,
    bufs: (u64, u64),
    dev: &ptx_emu::Device,
) -> Result<ptx_emu::LaunchReport, ptx_emu::EmuError> {
    let _ = checks;
    let m = dev.load_module(src).unwrap();
    dev.launch(&m, "k", &cfg([1, 1, 1], [block, 1, 1], 0), &params(&[bufs.0, bufs.1]))
}

#[test]
fn memcheck_out_of_bounds_global_store() {
    // out has 32 floats; thread i writes out[i + 1]: thread 31 writes one past the end.
    let src = kernel(
        "",
        "add.s32 %r2, %r1, 1;\nmul.wide.u32 %rd3, %r2, 4;\nadd.s64 %rd4, %rd1, %rd3;\nst.global.u32 [%rd4], %r1; // PLANTED",
    );
    let dev = device(Checks::all());
    let out = upload(&dev, &[0u8; 128]);
    let reps = reports(launch(&src, Checks::all(), 32, (out, out), &dev));
    assert_eq!(reps.len(), 1, "{reps:?}");
    let r = &reps[0];
    assert_eq!(r.kind, CheckKind::Memcheck);
    assert_eq!(r.kernel, "k");
    assert_eq!(r.block, [0, 0, 0]);
    assert_eq!(r.thread, [31, 0, 0]);
    assert_eq!(r.line, line_of(&src, "PLANTED"));
    assert_eq!(r.address, Some(out + 128));
    assert!(r.message.contains("out-of-bounds global write"), "{}", r.message);
    assert!(
        r.message.contains("0 bytes after the end of the 128-byte allocation"),
        "{}",
        r.message
    );
    // Fixed: thread i writes out[i].
    let fixed = src.replace("add.s32 %r2, %r1, 1;", "add.s32 %r2, %r1, 0;");
    launch(&fixed, Checks::all(), 32, (out, out), &dev).unwrap();
    // With memcheck off the launch does not report (the bad store is dropped).
    let dev2 = device(Checks {
        memcheck: false,
        ..Checks::all()
    });
    let out2 = upload(&dev2, &[0u8; 128]);
    launch(&src, Checks::all(), 32, (out2, out2), &dev2).unwrap();
}

#[test]
fn memcheck_misaligned_and_shared_and_local() {
    let dev = device(Checks::all());
    let buf = upload(&dev, &[0u8; 256]);
    let src = kernel("", "ld.global.u32 %r2, [%rd1+2]; // PLANTED");
    let reps = reports(launch(&src, Checks::all(), 1, (buf, buf), &dev));
    assert_eq!(reps[0].kind, CheckKind::Memcheck);
    assert!(reps[0].message.contains("misaligned"), "{}", reps[0].message);
    assert_eq!(reps[0].address, Some(buf + 2));
    assert_eq!(reps[0].line, line_of(&src, "PLANTED"));

    let src = kernel(
        ".shared .align 4 .b8 s[64];",
        "mov.u32 %r2, s;\nst.shared.u32 [%r2+64], %r1; // PLANTED",
    );
    let reps = reports(launch(&src, Checks::all(), 1, (buf, buf), &dev));
    assert_eq!(reps[0].kind, CheckKind::Memcheck);
    assert!(
        reps[0].message.contains("out-of-bounds shared write"),
        "{}",
        reps[0].message
    );
    assert_eq!(reps[0].line, line_of(&src, "PLANTED"));

    let src = kernel(
        ".local .align 4 .b8 depot[16];",
        "mov.u64 %rd3, depot;\nst.local.u32 [%rd3+12], %r1;\nld.local.u32 %r2, [%rd3+16]; // PLANTED",
    );
    let reps = reports(launch(&src, Checks::all(), 1, (buf, buf), &dev));
    assert!(
        reps[0].message.contains("out-of-bounds local read"),
        "{}",
        reps[0].message
    );

    // generic addressing: cvta.shared then a generic store past the end
    let src = kernel(
        ".shared .align 4 .b8 s[64];",
        "mov.u64 %rd3, s;\ncvta.shared.u64 %rd4, %rd3;\nst.u32 [%rd4+60], %r1;\nst.u32 [%rd4+64], %r1; // PLANTED",
    );
    let reps = reports(launch(&src, Checks::all(), 1, (buf, buf), &dev));
    assert_eq!(reps.len(), 1);
    assert_eq!(reps[0].line, line_of(&src, "PLANTED"));
    assert_eq!(reps[0].address, Some(ptx_emu::ir::SHARED_WINDOW + 64));
}

#[test]
fn memcheck_gap_between_allocations() {
    let dev = device(Checks::all());
    let a = upload(&dev, &[0u8; 100]);
    let b = upload(&dev, &[0u8; 100]);
    assert_eq!(a % 256, 0);
    assert_eq!(b % 256, 0);
    assert!(b >= a + 100 + 256, "allocations need an unmapped gap");
    // Reading a[100] (just past a) is out of bounds even though b follows.
    let src = kernel("", "ld.global.u8 %r2, [%rd1+100]; // PLANTED");
    let reps = reports(launch(&src, Checks::all(), 1, (a, b), &dev));
    assert_eq!(reps[0].address, Some(a + 100));
}

#[test]
fn racecheck_shared_hazards_without_barrier() {
    let dev = device(Checks::all());
    let buf = upload(&dev, &[0u8; 256]);
    // Thread 0 writes s[0]; thread 32 (another warp) reads it; no barrier between: RAW.
    let body = "mov.u32 %r2, s;\nsetp.ne.u32 %p1, %r1, 0;\n@%p1 bra $L_read;\nst.shared.u32 [%r2], %r1; // WRITE\n$L_read:\nBARRIER\nsetp.ne.u32 %p2, %r1, 32;\n@%p2 bra $L_end;\nld.shared.u32 %r3, [%r2]; // READ\n$L_end:";
    let racy = kernel(".shared .align 4 .b8 s[64];", &body.replace("BARRIER", ""));
    let reps = reports(launch(&racy, Checks::all(), 64, (buf, buf), &dev));
    let r = reps
        .iter()
        .find(|r| r.kind == CheckKind::Racecheck)
        .expect("racecheck report");
    assert_eq!(r.thread, [32, 0, 0]);
    assert_eq!(r.line, line_of(&racy, "READ"));
    assert_eq!(r.address, Some(0));
    assert!(r.message.contains("RAW"), "{}", r.message);
    assert!(
        r.message.contains(&format!("line {}", line_of(&racy, "WRITE"))),
        "{}",
        r.message
    );
    // With the barrier: clean.
    let fixed = kernel(".shared .align 4 .b8 s[64];", &body.replace("BARRIER", "bar.sync 0;"));
    launch(&fixed, Checks::all(), 64, (buf, buf), &dev).unwrap();

    // WAR: thread 1 reads s[0] (written before the barrier by thread 0), then thread 0 overwrites it.
    let war = kernel(
        ".shared .align 4 .b8 s[64];",
        "mov.u32 %r2, s;\nsetp.ne.u32 %p1, %r1, 0;\n@%p1 bra $L_a;\nst.shared.u32 [%r2], %r1;\n$L_a:\nbar.sync 0;\nsetp.ne.u32 %p2, %r1, 1;\n@%p2 bra $L_b;\nld.shared.u32 %r3, [%r2];\n$L_b:\nsetp.ne.u32 %p3, %r1, 0;\n@%p3 bra $L_c;\nst.shared.u32 [%r2], %r1; // OVERWRITE\n$L_c:",
    );
    let reps = reports(launch(&war, Checks::all(), 64, (buf, buf), &dev));
    let r = reps
        .iter()
        .find(|r| r.kind == CheckKind::Racecheck)
        .expect("racecheck report");
    assert!(r.message.contains("WAR"), "{}", r.message);
    assert_eq!(r.line, line_of(&war, "OVERWRITE"));
    // racecheck off: clean
    let dev2 = device(Checks {
        racecheck: false,
        ..Checks::all()
    });
    let buf2 = upload(&dev2, &[0u8; 256]);
    launch(&racy, Checks::all(), 64, (buf2, buf2), &dev2).unwrap();
}

#[test]
fn initcheck_unwritten_global_and_shared() {
    let dev = device(Checks::all());
    let poison = dev.alloc(64).unwrap(); // never written
    let ok = upload(&dev, &[0u8; 64]);
    let src = kernel(
        "",
        "ld.global.u32 %r2, [%rd2+8]; // PLANTED\nst.global.u32 [%rd1], %r2;",
    );
    let reps = reports(launch(&src, Checks::all(), 1, (ok, poison), &dev));
    assert_eq!(reps[0].kind, CheckKind::Initcheck);
    assert_eq!(reps[0].address, Some(poison + 8));
    assert_eq!(reps[0].line, line_of(&src, "PLANTED"));
    // A partial host write makes those bytes defined.
    dev.write(poison + 8, &[1, 2, 3, 4]).unwrap();
    launch(&src, Checks::all(), 1, (ok, poison), &dev).unwrap();

    let src = kernel(
        ".shared .align 4 .b8 s[64];",
        "mov.u32 %r2, s;\nst.shared.u32 [%r2], %r1;\nld.shared.u32 %r3, [%r2+4]; // PLANTED",
    );
    let reps = reports(launch(&src, Checks::all(), 1, (ok, ok), &dev));
    assert_eq!(reps[0].kind, CheckKind::Initcheck);
    assert_eq!(reps[0].line, line_of(&src, "PLANTED"));
}

#[test]
fn synccheck_divergent_barrier() {
    let dev = device(Checks::all());
    let buf = upload(&dev, &[0u8; 64]);
    // if (tid < 16) __syncthreads(); __syncthreads();
    let src = kernel(
        "",
        "setp.ge.u32 %p1, %r1, 16;\n@%p1 bra $L_skip;\nbar.sync 0; // INSIDE\n$L_skip:\nbar.sync 0; // OUTSIDE",
    );
    let reps = reports(launch(&src, Checks::all(), 64, (buf, buf), &dev));
    let r = reps.iter().find(|r| r.kind == CheckKind::Synccheck).expect("synccheck");
    assert!(r.message.contains("divergent barrier"), "{}", r.message);
    assert!(
        r.message.contains(&line_of(&src, "INSIDE").to_string()),
        "{}",
        r.message
    );
    assert!(
        r.message.contains(&line_of(&src, "OUTSIDE").to_string()),
        "{}",
        r.message
    );
}

#[test]
fn synccheck_deadlock_is_reported_not_hung() {
    let dev = device(Checks::all());
    let buf = upload(&dev, &[0u8; 64]);
    // A named barrier expecting 64 threads in a block of 32: can never complete.
    let src = kernel("", "bar.sync 1, 64; // PLANTED");
    let reps = reports(launch(&src, Checks::all(), 32, (buf, buf), &dev));
    assert_eq!(reps[0].kind, CheckKind::Synccheck);
    assert!(reps[0].message.contains("deadlock"), "{}", reps[0].message);
    assert_eq!(reps[0].line, line_of(&src, "PLANTED"));
    // Half a warp at a full-mask shfl, the other half at a barrier: neither can complete.
    let src = kernel(
        "",
        "setp.ge.u32 %p1, %r1, 16;\n@%p1 bra $L_bar;\nshfl.sync.bfly.b32 %r2, %r1, 1, 31, -1;\n$L_bar:\nbar.sync 0;",
    );
    let reps = reports(launch(&src, Checks::all(), 32, (buf, buf), &dev));
    assert!(reps.iter().any(|r| r.message.contains("deadlock")), "{reps:?}");
    // Barriers with counts that are met: bar.arrive by warp 1, bar.sync by warp 0, 64 threads.
    let ok = kernel(
        "",
        "setp.ge.u32 %p1, %r1, 32;\n@%p1 bra $L_producer;\nbar.sync 1, 64;\nbra.uni $L_end;\n$L_producer:\nbar.arrive 1, 64;\n$L_end:",
    );
    launch(&ok, Checks::all(), 64, (buf, buf), &dev).unwrap();
}

#[test]
fn synccheck_collective_lanes_disagree() {
    let dev = device(Checks::all());
    let buf = upload(&dev, &[0u8; 64]);
    // Lane 31 exits, the others shuffle with a full mask that names it.
    let src = kernel(
        "",
        "setp.eq.u32 %p1, %r1, 31;\n@%p1 bra $L_out;\nshfl.sync.bfly.b32 %r2, %r1, 1, 31, -1; // PLANTED\n$L_out:",
    );
    let src = src.replace("$L_out:\nret;", "ret;\n$L_out:\nexit;");
    let reps = reports(launch(&src, Checks::all(), 32, (buf, buf), &dev));
    assert!(
        reps.iter()
            .any(|r| r.kind == CheckKind::Synccheck && r.message.contains("exited")),
        "{reps:?}"
    );
    // Lanes at two different full-mask collectives.
    let src = kernel(
        "",
        "setp.ge.u32 %p1, %r1, 16;\n@%p1 bra $L_b;\nshfl.sync.bfly.b32 %r2, %r1, 1, 31, -1;\nbra.uni $L_end;\n$L_b:\nshfl.sync.bfly.b32 %r3, %r1, 2, 31, -1;\n$L_end:",
    );
    let reps = reports(launch(&src, Checks::all(), 32, (buf, buf), &dev));
    assert!(
        reps.iter().any(|r| r.message.contains("disagree on the instruction")),
        "{reps:?}"
    );
    // Lanes disagree on the mask.
    let src = kernel(
        "",
        "setp.ge.u32 %p1, %r1, 16;\nselp.b32 %r4, -1, 65535, %p1;\nshfl.sync.bfly.b32 %r2, %r1, 1, 31, %r4;",
    );
    let reps = reports(launch(&src, Checks::all(), 32, (buf, buf), &dev));
    assert!(
        reps.iter().any(|r| r.message.contains("disagree on the member mask")),
        "{reps:?}"
    );
}

#[test]
fn async_copy_read_before_wait() {
    let dev = device(Checks::all());
    let src_buf = upload(&dev, &[7u8; 512]);
    let body = "mov.u32 %r2, s;\nshl.b32 %r3, %r1, 4;\nadd.s32 %r4, %r2, %r3;\nmul.wide.u32 %rd3, %r3, 1;\nadd.s64 %rd4, %rd2, %rd3;\ncp.async.cg.shared.global [%r4], [%rd4], 16;\ncp.async.commit_group;\nWAIT\nld.shared.u32 %r5, [%r4]; // READ\nst.global.u32 [%rd1], %r5;";
    let bad = kernel(".shared .align 16 .b8 s[512];", &body.replace("WAIT", ""));
    let out = upload(&dev, &[0u8; 64]);
    let reps = reports(launch(&bad, Checks::all(), 32, (out, src_buf), &dev));
    let r = reps
        .iter()
        .find(|r| r.kind == CheckKind::AsyncCopy)
        .expect("cp.async report");
    assert_eq!(r.line, line_of(&bad, "READ"));
    let good = kernel(
        ".shared .align 16 .b8 s[512];",
        &body.replace("WAIT", "cp.async.wait_group 0;"),
    );
    launch(&good, Checks::all(), 32, (out, src_buf), &dev).unwrap();
    assert_eq!(u32s(&download(&dev, out, 4))[0], 0x0707_0707);
}

#[test]
fn trap_is_reported() {
    let dev = device(Checks::all());
    let buf = upload(&dev, &[0u8; 64]);
    let src = kernel("", "setp.eq.u32 %p1, %r1, 3;\n@%p1 trap; // PLANTED");
    let reps = reports(launch(&src, Checks::all(), 32, (buf, buf), &dev));
    assert_eq!(reps[0].kind, CheckKind::Trap);
    assert_eq!(reps[0].thread, [3, 0, 0]);
}

#[test]
fn spin_wait_that_never_ends_hits_the_instruction_budget() {
    let dev = ptx_emu::Device::new(ptx_emu::Options {
        max_instructions: 100_000,
        ..Default::default()
    });
    let buf = upload(&dev, &[0u8; 64]);
    // while (flag == 0) {}: nothing ever sets the flag
    let src = kernel(
        "",
        "$L_spin:\nld.volatile.global.u32 %r2, [%rd1]; // SPIN\nsetp.eq.u32 %p1, %r2, 0;\n@%p1 bra $L_spin;",
    );
    match launch(&src, Checks::all(), 32, (buf, buf), &dev) {
        Err(ptx_emu::EmuError::Budget { limit, warps, .. }) => {
            assert_eq!(limit, 100_000);
            assert_eq!(warps.len(), 1);
            let spin = line_of(&src, "SPIN");
            assert!((spin..spin + 3).contains(&warps[0].line), "{:?}", warps[0]);
        }
        other => panic!("expected a budget stop, got {other:?}"),
    }
}

#[test]
fn racecheck_named_barriers_order_only_their_participants() {
    let dev = device(Checks::all());
    let buf = upload(&dev, &[0u8; 64]);
    // warps 0-1 synchronise on barrier 1 (64 threads); warp 2 is not a participant.
    // thread 32 writes s[4] before the barrier, thread 0 reads it after: ordered.
    // thread 64 (warp 2) writes s[0] at any time, thread 0 reads it after the barrier: a race.
    let body = "mov.u32 %r2, s;
setp.eq.u32 %p1, %r1, 64;
@%p1 st.shared.u32 [%r2], %r1; // W2
setp.ge.u32 %p2, %r1, 64;
@%p2 bra $L_end;
setp.eq.u32 %p3, %r1, 32;
@%p3 st.shared.u32 [%r2+4], %r1;
bar.sync 1, 64;
setp.ne.u32 %p4, %r1, 0;
@%p4 bra $L_end;
ld.shared.u32 %r3, [%r2+4];
READ
$L_end:";
    let ordered = kernel(".shared .align 4 .b8 s[64];", &body.replace("READ", ""));
    launch(&ordered, Checks::all(), 96, (buf, buf), &dev).unwrap();
    let racy = kernel(
        ".shared .align 4 .b8 s[64];",
        &body.replace("READ", "ld.shared.u32 %r4, [%r2]; // R0"),
    );
    let reps = reports(launch(&racy, Checks::all(), 96, (buf, buf), &dev));
    let r = reps
        .iter()
        .find(|r| r.kind == CheckKind::Racecheck)
        .expect("racecheck report");
    assert!(r.message.contains("RAW"), "{}", r.message);
    assert_eq!(r.line, line_of(&racy, "R0"));
    assert!(
        r.message.contains(&format!("line {}", line_of(&racy, "W2"))),
        "{}",
        r.message
    );
}
