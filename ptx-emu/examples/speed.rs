//! Measures emulator speed: thread-instructions per second on one core, on an ALU-heavy kernel and a
//! memory-heavy kernel (global + shared + barriers), with checks off and on.
//! Run: `cargo run --release -p ptx-emu --example speed` (`WORKERS=2` runs blocks on two host threads)

use std::time::Instant;

use ptx_emu::{Checks, Device, LaunchConfig, Options};

const ALU: &str = r#"
.version 9.2
.target sm_80
.address_size 64
.visible .entry alu(.param .u64 out, .param .u32 iters)
{
    .reg .pred %p<2>;
    .reg .b32 %r<16>;
    .reg .f32 %f<4>;
    .reg .b64 %rd<4>;
    ld.param.u64 %rd1, [out];
    ld.param.u32 %r1, [iters];
    mov.u32 %r2, %tid.x;
    mov.u32 %r3, %ctaid.x;
    mov.u32 %r4, %ntid.x;
    mad.lo.s32 %r5, %r3, %r4, %r2;
    mad.lo.s32 %r6, %r5, 7, 1;
    cvt.rn.f32.u32 %f1, %r5;
    mov.u32 %r7, 0;
$L_loop:
    mad.lo.s32 %r5, %r5, 1664525, 1013904223;
    shr.u32 %r8, %r5, 3;
    xor.b32 %r6, %r6, %r8;
    fma.rn.f32 %f1, %f1, 0f3F7FBE77, 0f3F800000;
    and.b32 %r9, %r5, 255;
    add.s32 %r6, %r6, %r9;
    add.s32 %r7, %r7, 1;
    setp.lt.s32 %p1, %r7, %r1;
    @%p1 bra $L_loop;
    cvt.rzi.u32.f32 %r10, %f1;
    add.s32 %r11, %r5, %r6;
    add.s32 %r11, %r11, %r10;
    mov.u32 %r12, %tid.x;
    mad.lo.s32 %r12, %r3, %r4, %r12;
    mul.wide.u32 %rd2, %r12, 4;
    add.s64 %rd3, %rd1, %rd2;
    st.global.u32 [%rd3], %r11;
    ret;
}
"#;

const MEM: &str = r#"
.version 9.2
.target sm_80
.address_size 64
.visible .entry mem(.param .u64 out, .param .u64 in, .param .u32 iters)
{
    .reg .pred %p<2>;
    .reg .b32 %r<16>;
    .reg .f32 %f<8>;
    .reg .b64 %rd<8>;
    .shared .align 4 .b8 s[1024];
    ld.param.u64 %rd1, [out];
    ld.param.u64 %rd2, [in];
    ld.param.u32 %r1, [iters];
    mov.u32 %r2, %tid.x;
    mov.u32 %r3, %ctaid.x;
    mad.lo.s32 %r4, %r3, 256, %r2;
    mul.wide.u32 %rd3, %r4, 4;
    add.s64 %rd4, %rd2, %rd3;
    add.s64 %rd5, %rd1, %rd3;
    mov.u32 %r5, s;
    shl.b32 %r6, %r2, 2;
    add.s32 %r7, %r5, %r6;
    xor.b32 %r8, %r2, 1;
    shl.b32 %r8, %r8, 2;
    add.s32 %r9, %r5, %r8;
    mov.f32 %f1, 0f00000000;
    mov.u32 %r10, 0;
$L_loop:
    ld.global.f32 %f2, [%rd4];
    st.shared.f32 [%r7], %f2;
    bar.sync 0;
    ld.shared.f32 %f3, [%r9];
    fma.rn.f32 %f1, %f2, %f3, %f1;
    bar.sync 0;
    add.s32 %r10, %r10, 1;
    setp.lt.s32 %p1, %r10, %r1;
    @%p1 bra $L_loop;
    st.global.f32 [%rd5], %f1;
    ret;
}
"#;

fn run(name: &str, src: &str, checks: Checks, params: impl Fn(&Device) -> Vec<u8>, grid: u32) -> (u64, f64) {
    let workers = std::env::var("WORKERS").ok().and_then(|w| w.parse().ok()).unwrap_or(1);
    let dev = Device::new(Options {
        checks,
        worker_threads: workers,
        ..Options::default()
    });
    let m = dev.load_module(src).expect("module");
    let p = params(&dev);
    let cfg = LaunchConfig {
        grid: [grid, 1, 1],
        block: [256, 1, 1],
        shared_bytes: 0,
    };
    let t = Instant::now();
    let rep = dev.launch(&m, name, &cfg, &p).expect("launch");
    (rep.metrics.instructions, t.elapsed().as_secs_f64())
}

fn main() {
    let grid = 64u32;
    let alu_params = |iters: u32| {
        move |d: &Device| {
            let out = d.alloc(4 * 256 * grid as usize).unwrap();
            let mut p = out.to_le_bytes().to_vec();
            p.extend_from_slice(&iters.to_le_bytes());
            p
        }
    };
    let mem_params = |iters: u32| {
        move |d: &Device| {
            let n = 256 * grid as usize;
            let out = d.alloc(4 * n).unwrap();
            let inp = d.alloc(4 * n).unwrap();
            d.write(inp, &vec![0x3f; 4 * n]).unwrap();
            let mut p = out.to_le_bytes().to_vec();
            p.extend_from_slice(&inp.to_le_bytes());
            p.extend_from_slice(&iters.to_le_bytes());
            p
        }
    };
    println!("kernel        checks  thread-instructions  seconds  M thread-instr/s");
    for (name, src, iters) in [("alu", ALU, 1000u32), ("mem", MEM, 100u32)] {
        let mut speeds = vec![];
        for (label, checks) in [("off", Checks::none()), ("on", Checks::all())] {
            let (n, s) = if name == "alu" {
                run(name, src, checks, alu_params(iters), grid)
            } else {
                run(name, src, checks, mem_params(iters), grid)
            };
            let mips = n as f64 / s / 1e6;
            speeds.push(mips);
            println!("{name:<13} {label:<7} {n:>19}  {s:>7.3}  {mips:>16.1}");
        }
        println!("{name:<13} checks-on slowdown: {:.2}x", speeds[0] / speeds[1]);
    }
}
