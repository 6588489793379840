//! Malformed and mutated PTX never panics: every input gives a module or a typed error, and a module that
//! loads runs to completion or to a report (the instruction budget ends endless loops).

mod common;
use common::HEADER;
use ptx_emu::{Device, LaunchConfig, Options};

fn sample() -> String {
    format!(
        "{HEADER}.extern .shared .align 16 .b8 dyn[];
.global .align 4 .b8 tab[8] = {{1, 2, 3, 4, 5, 6, 7, 8}};
.func (.param .b32 r) f(.param .b32 a)
{{
.reg .b32 %r<4>;
ld.param.b32 %r1, [a];
add.s32 %r2, %r1, 1;
st.param.b32 [r], %r2;
ret;
}}
.visible .entry k(.param .u64 p0, .param .u32 p1)
{{
.local .align 4 .b8 depot[16];
.reg .pred %p<4>;
.reg .b32 %r<16>;
.reg .f32 %f<8>;
.reg .b64 %rd<8>;
.shared .align 4 .b8 s[128];
ld.param.u64 %rd1, [p0];
ld.param.u32 %r1, [p1];
mov.u32 %r2, %tid.x;
setp.ge.u32 %p1, %r2, %r1;
@%p1 bra $L_end;
mov.u32 %r3, s;
shl.b32 %r4, %r2, 2;
add.s32 %r5, %r3, %r4;
st.shared.u32 [%r5], %r2;
bar.sync 0;
ld.shared.u32 %r6, [%r5];
shfl.sync.bfly.b32 %r7|%p2, %r6, 1, 31, -1;
cvt.rn.f32.u32 %f1, %r7;
fma.rn.f32 %f2, %f1, 0f3F000000, 0f3F800000;
ex2.approx.ftz.f32 %f3, %f2;
mov.b32 %r8, %f3;
{{
.param .b32 param0;
st.param.b32 [param0], %r8;
.param .b32 retval0;
call.uni (retval0), f, (param0);
ld.param.b32 %r9, [retval0];
}}
mov.u64 %rd2, depot;
st.local.u32 [%rd2+4], %r9;
ld.local.u32 %r10, [%rd2+4];
mul.wide.u32 %rd3, %r2, 4;
add.s64 %rd4, %rd1, %rd3;
atom.global.add.u32 %r11, [%rd4], %r10;
vote.sync.ballot.b32 %r12, %p2, -1;
st.global.u32 [%rd4], %r12;
$L_end:
ret;
}}
"
    )
}

fn try_run(src: &str) {
    let dev = Device::new(Options {
        max_instructions: 20_000,
        printf_stdout: false,
        ..Default::default()
    });
    let Ok(m) = dev.load_module(src) else { return };
    let Ok(buf) = dev.alloc(256) else { return };
    let _ = dev.write(buf, &[0u8; 256]);
    for name in m.kernel_names() {
        let Some((_, size)) = m.kernel_params(&name) else {
            continue;
        };
        let mut p = vec![0u8; size as usize];
        if p.len() >= 8 {
            p[..8].copy_from_slice(&buf.to_le_bytes());
        }
        if p.len() >= 12 {
            p[8..12].copy_from_slice(&32u32.to_le_bytes());
        }
        let cfg = LaunchConfig {
            grid: [2, 1, 1],
            block: [32, 1, 1],
            shared_bytes: 64,
        };
        let _ = dev.launch(&m, &name, &cfg, &p);
    }
}

#[test]
fn sample_runs_clean() {
    let dev = Device::new(Options::default());
    let m = dev.load_module(&sample()).unwrap();
    let buf = dev.alloc(128).unwrap();
    dev.write(buf, &[0u8; 128]).unwrap();
    let mut p = buf.to_le_bytes().to_vec();
    p.extend_from_slice(&32u32.to_le_bytes());
    dev.launch(
        &m,
        "k",
        &LaunchConfig {
            grid: [1, 1, 1],
            block: [32, 1, 1],
            shared_bytes: 0,
        },
        &p,
    )
    .unwrap();
}

#[test]
fn truncated_and_mutated_ptx_never_panics() {
    let src = sample();
    // every truncation point
    for cut in (0..src.len()).step_by(3) {
        try_run(&src[..cut]);
    }
    // every single line deleted, and every line duplicated
    let lines: Vec<&str> = src.lines().collect();
    for i in 0..lines.len() {
        let mut v = lines.clone();
        v.remove(i);
        try_run(&v.join("\n"));
        let mut v = lines.clone();
        v.insert(i, lines[i]);
        try_run(&v.join("\n"));
    }
    // token-level mutations from a fixed LCG
    let toks: Vec<&str> = src.split(' ').collect();
    let mut s = 12345u64;
    for _ in 0..300 {
        s = s.wrapping_mul(6364136223846793005).wrapping_add(1442695040888963407);
        let i = (s >> 33) as usize % toks.len();
        let j = (s >> 13) as usize % toks.len();
        let mut v = toks.clone();
        v.swap(i, j);
        try_run(&v.join(" "));
    }
    // garbage
    for g in [
        "",
        "{",
        "}",
        ".entry",
        ".entry k(",
        ".visible .entry k() { ret; }",
        "\u{feff}é ü",
        "0f",
        "0x",
        "[[[",
        "@",
    ] {
        try_run(g);
        try_run(&format!("{HEADER}{g}"));
    }
}
