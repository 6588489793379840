//! Fragment layouts of mma.sync m16n8k16 / m16n8k8 and ldmatrix / stmatrix, from the PTX ISA's figures
//! ("Matrix Fragments for mma.m16n8k16 with floating point type", "ldmatrix"), written out here
//! independently of the emulator: groupID = lane / 4, threadID_in_group = lane % 4.

#![allow(clippy::needless_range_loop)] // index loops mirror the math being checked

mod common;
use common::*;
use ptx_emu::Checks;

/// 16-bit value whose bits name (matrix, row, col).
fn tag(m: usize, r: usize, c: usize) -> u16 {
    ((m << 8) | (r << 4) | c) as u16
}

fn ldmatrix_kernel(op: &str) -> String {
    format!(
        "{HEADER}.visible .entry k(.param .u64 p_out, .param .u64 p_in)
{{
.reg .b32 %r<16>;
.reg .b64 %rd<8>;
.shared .align 16 .b8 s[512];
ld.param.u64 %rd1, [p_out];
ld.param.u64 %rd2, [p_in];
mov.u32 %r1, %laneid;
shl.b32 %r2, %r1, 4;
mov.u32 %r3, s;
add.s32 %r4, %r3, %r2;
cvt.u64.u32 %rd3, %r2;
add.s64 %rd4, %rd2, %rd3;
ld.global.v4.u32 {{%r5, %r6, %r7, %r8}}, [%rd4];
st.shared.v4.u32 [%r4], {{%r5, %r6, %r7, %r8}};
bar.warp.sync -1;
{op}
add.s64 %rd5, %rd1, %rd3;
st.global.v4.u32 [%rd5], {{%r9, %r10, %r11, %r12}};
ret;
}}
"
    )
}

#[test]
fn ldmatrix_x4_and_trans_layouts() {
    // 4 matrices of 8 rows x 8 b16, row-major; lane l supplies the address of row l % 8 of matrix l / 8.
    let mut mem = vec![0u8; 512];
    for m in 0..4 {
        for r in 0..8 {
            for c in 0..8 {
                let o = (m * 64 + r * 8 + c) * 2;
                mem[o..o + 2].copy_from_slice(&tag(m, r, c).to_le_bytes());
            }
        }
    }
    for trans in [false, true] {
        let op = format!(
            "ldmatrix.sync.aligned.m8n8.x4{}.shared.b16 {{%r9, %r10, %r11, %r12}}, [%r4];",
            if trans { ".trans" } else { "" }
        );
        let dev = device(Checks::all());
        let m = dev.load_module(&ldmatrix_kernel(&op)).unwrap();
        let inp = upload(&dev, &mem);
        let out = dev.alloc(512).unwrap();
        dev.launch(&m, "k", &cfg([1, 1, 1], [32, 1, 1], 0), &params(&[out, inp]))
            .unwrap();
        let got = u32s(&download(&dev, out, 512));
        for lane in 0..32 {
            for i in 0..4 {
                let (row, col) = (lane / 4, 2 * (lane % 4));
                let (e0, e1) = if trans {
                    (tag(i, col, row), tag(i, col + 1, row))
                } else {
                    (tag(i, row, col), tag(i, row, col + 1))
                };
                assert_eq!(
                    got[lane * 4 + i],
                    e0 as u32 | (e1 as u32) << 16,
                    "trans={trans} lane {lane} reg {i}"
                );
            }
        }
    }
}

#[test]
fn stmatrix_is_the_inverse_of_ldmatrix() {
    let mut mem = vec![0u8; 512];
    for (i, b) in mem.iter_mut().enumerate() {
        *b = (i * 7 % 251) as u8;
    }
    for trans in [false, true] {
        let t = if trans { ".trans" } else { "" };
        let op = format!(
            "ldmatrix.sync.aligned.m8n8.x4{t}.shared.b16 {{%r9, %r10, %r11, %r12}}, [%r4];\nbar.warp.sync -1;\nstmatrix.sync.aligned.m8n8.x4{t}.shared.b16 [%r4], {{%r9, %r10, %r11, %r12}};\nbar.warp.sync -1;\nld.shared.v4.u32 {{%r9, %r10, %r11, %r12}}, [%r4];"
        );
        let dev = device(Checks::all());
        let m = dev.load_module(&ldmatrix_kernel(&op)).unwrap();
        let inp = upload(&dev, &mem);
        let out = dev.alloc(512).unwrap();
        dev.launch(&m, "k", &cfg([1, 1, 1], [32, 1, 1], 0), &params(&[out, inp]))
            .unwrap();
        assert_eq!(download(&dev, out, 512), mem, "trans={trans}");
    }
}

fn f16(x: f32) -> u16 {
    // exact for the small integers used in these tests
    if x == 0.0 {
        return 0;
    }
    let b = x.to_bits();
    let e = ((b >> 23) & 0xff) as i32 - 127 + 15;
    (((b >> 16) & 0x8000) | ((e as u32) << 10) | ((b >> 13) & 0x3ff)) as u16
}

fn pack(lo: u16, hi: u16) -> u32 {
    lo as u32 | (hi as u32) << 16
}

/// Runs one mma over per-lane fragment registers: lane l reads 12 u32 from in[l*12..] as
/// a0..a3, b0..b1, c0..c3, (2 spare) and writes d0..d3 to out[l*4..].
fn run_mma(instr: &str, regs_in: &[[u32; 12]]) -> Vec<[u32; 4]> {
    let src = format!(
        "{HEADER}.visible .entry k(.param .u64 p_out, .param .u64 p_in)
{{
.reg .b32 %r<32>;
.reg .f32 %f<8>;
.reg .b64 %rd<8>;
ld.param.u64 %rd1, [p_out];
ld.param.u64 %rd2, [p_in];
mov.u32 %r0, %laneid;
mul.wide.u32 %rd3, %r0, 48;
add.s64 %rd4, %rd2, %rd3;
ld.global.v4.u32 {{%r1, %r2, %r3, %r4}}, [%rd4];
ld.global.v4.u32 {{%r5, %r6, %r7, %r8}}, [%rd4+16];
ld.global.v4.u32 {{%r9, %r10, %r11, %r12}}, [%rd4+32];
mov.b32 %r13, 0; mov.b32 %r14, 0; mov.b32 %r15, 0; mov.b32 %r16, 0;
{instr}
mul.wide.u32 %rd5, %r0, 16;
add.s64 %rd6, %rd1, %rd5;
st.global.v4.u32 [%rd6], {{%r13, %r14, %r15, %r16}};
ret;
}}
"
    );
    let dev = device(Checks::all());
    let m = dev.load_module(&src).unwrap();
    let bytes: Vec<u8> = regs_in
        .iter()
        .flat_map(|r| r.iter().flat_map(|v| v.to_le_bytes()))
        .collect();
    let inp = upload(&dev, &bytes);
    let out = dev.alloc(512).unwrap();
    dev.launch(&m, "k", &cfg([1, 1, 1], [32, 1, 1], 0), &params(&[out, inp]))
        .unwrap();
    u32s(&download(&dev, out, 512))
        .chunks(4)
        .map(|c| [c[0], c[1], c[2], c[3]])
        .collect()
}

#[test]
fn mma_m16n8k16_fragment_layout() {
    let a = |r: usize, k: usize| ((r * 3 + k * 5) % 7) as f32 - 3.0;
    let b = |k: usize, n: usize| ((k + 2 * n) % 5) as f32 - 2.0;
    let c = |r: usize, n: usize| (r * 8 + n) as f32 * 0.25;
    let mut regs = vec![[0u32; 12]; 32];
    for lane in 0..32 {
        let (g, t) = (lane / 4, lane % 4);
        // A: a0 (g, 2t..2t+1), a1 (g+8, 2t..), a2 (g, 2t+8..), a3 (g+8, 2t+8..)
        let rows = [g, g + 8, g, g + 8];
        let cols = [2 * t, 2 * t, 2 * t + 8, 2 * t + 8];
        for i in 0..4 {
            regs[lane][i] = pack(f16(a(rows[i], cols[i])), f16(a(rows[i], cols[i] + 1)));
        }
        // B: b0 (k = 2t..2t+1, n = g), b1 (k = 2t+8.., n = g)
        regs[lane][4] = pack(f16(b(2 * t, g)), f16(b(2 * t + 1, g)));
        regs[lane][5] = pack(f16(b(2 * t + 8, g)), f16(b(2 * t + 9, g)));
        // C: c0 (g, 2t), c1 (g, 2t+1), c2 (g+8, 2t), c3 (g+8, 2t+1)
        regs[lane][6] = c(g, 2 * t).to_bits();
        regs[lane][7] = c(g, 2 * t + 1).to_bits();
        regs[lane][8] = c(g + 8, 2 * t).to_bits();
        regs[lane][9] = c(g + 8, 2 * t + 1).to_bits();
    }
    let out = run_mma(
        "mma.sync.aligned.m16n8k16.row.col.f32.f16.f16.f32 {%r13, %r14, %r15, %r16}, {%r1, %r2, %r3, %r4}, {%r5, %r6}, {%r7, %r8, %r9, %r10};",
        &regs,
    );
    let d = |r: usize, n: usize| c(r, n) + (0..16).map(|k| a(r, k) * b(k, n)).sum::<f32>();
    for lane in 0..32 {
        let (g, t) = (lane / 4, lane % 4);
        let want = [d(g, 2 * t), d(g, 2 * t + 1), d(g + 8, 2 * t), d(g + 8, 2 * t + 1)];
        let got: Vec<f32> = out[lane].iter().map(|&v| f32::from_bits(v)).collect();
        assert_eq!(got, want, "lane {lane}");
    }
}

#[test]
fn mma_m16n8k8_bf16_fragment_layout() {
    let a = |r: usize, k: usize| ((r + 3 * k) % 9) as f32 - 4.0;
    let b = |k: usize, n: usize| ((2 * k + n) % 7) as f32 - 3.0;
    let bf = |x: f32| (x.to_bits() >> 16) as u16;
    let mut regs = vec![[0u32; 12]; 32];
    for lane in 0..32 {
        let (g, t) = (lane / 4, lane % 4);
        // A (m16 x k8): a0 (g, 2t..), a1 (g+8, 2t..); B (k8 x n8): b0 (k = 2t.., n = g)
        regs[lane][0] = pack(bf(a(g, 2 * t)), bf(a(g, 2 * t + 1)));
        regs[lane][1] = pack(bf(a(g + 8, 2 * t)), bf(a(g + 8, 2 * t + 1)));
        regs[lane][4] = pack(bf(b(2 * t, g)), bf(b(2 * t + 1, g)));
    }
    let out = run_mma(
        "mma.sync.aligned.m16n8k8.row.col.f32.bf16.bf16.f32 {%r13, %r14, %r15, %r16}, {%r1, %r2}, {%r5}, {%r7, %r8, %r9, %r10};",
        &regs,
    );
    let d = |r: usize, n: usize| (0..8).map(|k| a(r, k) * b(k, n)).sum::<f32>();
    for lane in 0..32 {
        let (g, t) = (lane / 4, lane % 4);
        let want = [d(g, 2 * t), d(g, 2 * t + 1), d(g + 8, 2 * t), d(g + 8, 2 * t + 1)];
        let got: Vec<f32> = out[lane].iter().map(|&v| f32::from_bits(v)).collect();
        assert_eq!(got, want, "lane {lane}");
    }
}

#[test]
fn mma_f16_accumulator_layout() {
    let a = |r: usize, k: usize| ((r + k) % 4) as f32;
    let b = |k: usize, n: usize| ((k * n) % 3) as f32;
    let mut regs = vec![[0u32; 12]; 32];
    for lane in 0..32 {
        let (g, t) = (lane / 4, lane % 4);
        let rows = [g, g + 8, g, g + 8];
        let cols = [2 * t, 2 * t, 2 * t + 8, 2 * t + 8];
        for i in 0..4 {
            regs[lane][i] = pack(f16(a(rows[i], cols[i])), f16(a(rows[i], cols[i] + 1)));
        }
        regs[lane][4] = pack(f16(b(2 * t, g)), f16(b(2 * t + 1, g)));
        regs[lane][5] = pack(f16(b(2 * t + 8, g)), f16(b(2 * t + 9, g)));
        // f16 C: c0 = (g, 2t..2t+1), c1 = (g+8, 2t..)
        regs[lane][6] = pack(f16(1.0), f16(2.0));
        regs[lane][7] = pack(f16(3.0), f16(4.0));
    }
    let out = run_mma(
        "mma.sync.aligned.m16n8k16.row.col.f16.f16.f16.f16 {%r13, %r14}, {%r1, %r2, %r3, %r4}, {%r5, %r6}, {%r7, %r8};",
        &regs,
    );
    let d = |r: usize, n: usize| (0..16).map(|k| a(r, k) * b(k, n)).sum::<f32>();
    for lane in 0..32 {
        let (g, t) = (lane / 4, lane % 4);
        assert_eq!(
            out[lane][0],
            pack(f16(d(g, 2 * t) + 1.0), f16(d(g, 2 * t + 1) + 2.0)),
            "lane {lane}"
        );
        assert_eq!(
            out[lane][1],
            pack(f16(d(g + 8, 2 * t) + 3.0), f16(d(g + 8, 2 * t + 1) + 4.0)),
            "lane {lane}"
        );
    }
}

#[test]
fn mma_tf32_fragment_layouts() {
    // tf32 values: f32 with the low 13 mantissa bits ignored; small integers and halves are exact
    let a = |r: usize, k: usize| ((r * 5 + k * 3) % 11) as f32 * 0.5 - 2.5;
    let b = |k: usize, n: usize| ((k * 7 + n) % 9) as f32 - 4.0;
    // m16n8k8: a0 (g, t), a1 (g+8, t), a2 (g, t+4), a3 (g+8, t+4); b0 (k = t, n = g), b1 (k = t+4, n = g)
    let mut regs = vec![[0u32; 12]; 32];
    for lane in 0..32 {
        let (g, t) = (lane / 4, lane % 4);
        regs[lane][0] = a(g, t).to_bits();
        regs[lane][1] = a(g + 8, t).to_bits();
        regs[lane][2] = a(g, t + 4).to_bits();
        regs[lane][3] = a(g + 8, t + 4).to_bits() | 0x1fff; // low bits are ignored
        regs[lane][4] = b(t, g).to_bits();
        regs[lane][5] = b(t + 4, g).to_bits();
    }
    let out = run_mma(
        "mma.sync.aligned.m16n8k8.row.col.f32.tf32.tf32.f32 {%r13, %r14, %r15, %r16}, {%r1, %r2, %r3, %r4}, {%r5, %r6}, {%r7, %r8, %r9, %r10};",
        &regs,
    );
    let d = |r: usize, n: usize| (0..8).map(|k| a(r, k) * b(k, n)).sum::<f32>();
    for lane in 0..32 {
        let (g, t) = (lane / 4, lane % 4);
        let want = [d(g, 2 * t), d(g, 2 * t + 1), d(g + 8, 2 * t), d(g + 8, 2 * t + 1)];
        let got: Vec<f32> = out[lane].iter().map(|&v| f32::from_bits(v)).collect();
        assert_eq!(got, want, "k8 lane {lane}");
    }
    // m16n8k4: a0 (g, t), a1 (g+8, t); b0 (k = t, n = g)
    let mut regs = vec![[0u32; 12]; 32];
    for lane in 0..32 {
        let (g, t) = (lane / 4, lane % 4);
        regs[lane][0] = a(g, t).to_bits();
        regs[lane][1] = a(g + 8, t).to_bits();
        regs[lane][4] = b(t, g).to_bits();
    }
    let out = run_mma(
        "mma.sync.aligned.m16n8k4.row.col.f32.tf32.tf32.f32 {%r13, %r14, %r15, %r16}, {%r1, %r2}, {%r5}, {%r7, %r8, %r9, %r10};",
        &regs,
    );
    let d = |r: usize, n: usize| (0..4).map(|k| a(r, k) * b(k, n)).sum::<f32>();
    for lane in 0..32 {
        let (g, t) = (lane / 4, lane % 4);
        let want = [d(g, 2 * t), d(g, 2 * t + 1), d(g + 8, 2 * t), d(g + 8, 2 * t + 1)];
        let got: Vec<f32> = out[lane].iter().map(|&v| f32::from_bits(v)).collect();
        assert_eq!(got, want, "k4 lane {lane}");
    }
}
