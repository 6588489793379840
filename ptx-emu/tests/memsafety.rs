//! Addresses that wrap: a negative or huge offset in every state space and addressing form (shared,
//! param, local, global, generic; scalar, vector, atomic, cp.async, ldmatrix) is a memcheck report
//! naming the PTX line, never a panic (`off + len` must not wrap in the bounds checks).

mod common;
use common::{device, params, upload, HEADER};
use ptx_emu::{CheckKind, Checks, EmuError, LaunchConfig};

/// Runs `body` in a kernel of one block of 32 threads (%rd1 = a 256-byte global buffer, written;
/// `s` = 256 bytes of shared memory, `depot` = 16 bytes of local memory) and returns the reports.
fn reports_of(body: &str) -> (String, Vec<ptx_emu::CheckReport>) {
    let src = format!(
        "{HEADER}.visible .entry k(.param .u64 k_param_0)
{{
.local .align 8 .b8 depot[16];
.shared .align 16 .b8 s[256];
.reg .pred %p<4>;
.reg .b16 %h<4>;
.reg .b32 %r<16>;
.reg .b64 %rd<16>;
ld.param.u64 %rd1, [k_param_0];
mov.u32 %r1, %tid.x;
mov.u32 %r2, s;
mov.u64 %rd2, -4;
mov.u64 %rd7, -16;
mov.u64 %rd3, depot;
mov.u64 %rd4, s;
{body}
ret;
}}
"
    );
    let dev = device(Checks::all());
    let m = dev.load_module(&src).unwrap_or_else(|e| panic!("{e}\n{src}"));
    let buf = upload(&dev, &[0u8; 256]);
    let cfg = LaunchConfig {
        grid: [1, 1, 1],
        block: [32, 1, 1],
        shared_bytes: 0,
    };
    match dev.launch(&m, "k", &cfg, &params(&[buf])) {
        Err(EmuError::Check { reports, .. }) => (src, reports),
        other => panic!("expected a memcheck report for\n{body}\ngot {other:?}"),
    }
}

/// The faulting instruction is the body's line that ends in `// bad`.
fn expect_memcheck(body: &str) {
    let (src, reports) = reports_of(body);
    let line = src
        .lines()
        .position(|l| l.ends_with("// bad"))
        .expect("a `// bad` line") as u32
        + 1;
    let r = &reports[0];
    assert_eq!(r.kind, CheckKind::Memcheck, "{body}: {r}");
    assert_eq!(r.line, line, "{body}: {r}");
    assert_eq!(r.kernel, "k");
    assert!(r.message.contains("out-of-bounds"), "{body}: {r}");
}

#[test]
fn negative_shared_offset_is_a_memcheck_report() {
    // s[tid - 1] for tid 0, through a register holding -4 and through a symbol offset
    expect_memcheck("ld.shared.u32 %r3, [%rd2]; // bad");
    expect_memcheck("st.shared.u32 [%rd2], %r1; // bad");
    expect_memcheck("ld.shared.u32 %r3, [s+-4]; // bad");
    expect_memcheck("add.s32 %r4, %r2, -4;\nst.shared.u32 [%r4], %r1; // bad");
    expect_memcheck("ld.shared.v4.u32 {%r3, %r4, %r5, %r6}, [%rd2+-12]; // bad");
    expect_memcheck("atom.shared.add.u32 %r3, [%rd2], 1; // bad");
    expect_memcheck("ld.shared.u32 %r3, [%rd2+-2147483648]; // bad");
}

#[test]
fn negative_param_offset_is_a_memcheck_report() {
    expect_memcheck("ld.param.u64 %rd5, [k_param_0+-8]; // bad");
    expect_memcheck("ld.param.u32 %r3, [%rd2]; // bad");
    expect_memcheck("ld.param.v2.u32 {%r3, %r4}, [k_param_0+-8]; // bad");
}

#[test]
fn negative_local_offset_is_a_memcheck_report() {
    expect_memcheck("ld.local.u32 %r3, [depot+-4]; // bad");
    expect_memcheck("st.local.u32 [%rd2], %r1; // bad");
    expect_memcheck("add.s64 %rd5, %rd3, -8;\nst.local.v2.u32 [%rd5], {%r1, %r1}; // bad");
}

#[test]
fn wrapping_global_and_generic_addresses_are_memcheck_reports() {
    expect_memcheck("ld.global.u32 %r3, [%rd2]; // bad");
    expect_memcheck("st.global.v4.u32 [%rd7], {%r1, %r1, %r1, %r1}; // bad");
    expect_memcheck("atom.global.add.u32 %r3, [%rd2], 1; // bad");
    expect_memcheck("red.global.add.u32 [%rd2], 1; // bad");
    expect_memcheck("ld.u32 %r3, [%rd2]; // bad");
    expect_memcheck("atom.cas.b32 %r3, [%rd2], 1, 2; // bad");
    // a generic address just below the shared window, and a shared address that wraps to the top
    expect_memcheck("cvta.shared.u64 %rd5, %rd4;\nld.u32 %r3, [%rd5+-4]; // bad");
    expect_memcheck(
        "cvta.shared.u64 %rd5, %rd4;\nadd.s64 %rd6, %rd5, 4294967288;\nld.v2.u32 {%r3, %r4}, [%rd6]; // bad",
    );
    expect_memcheck("ld.global.u8 %h1, [%rd1+-1]; // bad");
}

#[test]
fn wrapping_async_copy_and_ldmatrix_addresses_are_memcheck_reports() {
    expect_memcheck("cp.async.ca.shared.global [%rd2], [%rd1], 4; // bad");
    expect_memcheck("cp.async.cg.shared.global [%rd4], [%rd7], 16; // bad");
    expect_memcheck("cp.async.cg.shared.global [%rd4+-16], [%rd1], 16, 8; // bad");
    expect_memcheck(
        "cvt.u64.u32 %rd5, %r2;\nadd.s64 %rd6, %rd5, -16;\nldmatrix.sync.aligned.m8n8.x1.shared.b16 {%r3}, [%rd6]; // bad",
    );
    expect_memcheck(
        "cvt.u64.u32 %rd5, %r2;\nadd.s64 %rd6, %rd5, -16;\nstmatrix.sync.aligned.m8n8.x1.shared.b16 [%rd6], {%r1}; // bad",
    );
}

#[test]
fn call_site_param_smaller_than_the_callee_parameter_stays_in_the_frame() {
    // The callee takes 32 bytes; the caller passes a 1-byte .param at the end of the local frame.
    let src = format!(
        "{HEADER}.func (.param .b32 r) f(.param .align 4 .b8 a[32])
{{
.reg .b32 %r<4>;
ld.param.b32 %r1, [a];
st.param.b32 [r], %r1;
ret;
}}
.visible .entry k()
{{
.reg .b32 %r<4>;
{{
.param .b32 retval0;
.param .b8 param0[1];
st.param.b8 [param0], 7;
call.uni (retval0), f, (param0);
ld.param.b32 %r2, [retval0];
}}
ret;
}}
"
    );
    let dev = device(Checks::all());
    let m = dev.load_module(&src).unwrap();
    let cfg = LaunchConfig {
        grid: [1, 1, 1],
        block: [32, 1, 1],
        shared_bytes: 0,
    };
    dev.launch(&m, "k", &cfg, &[]).unwrap();
}
