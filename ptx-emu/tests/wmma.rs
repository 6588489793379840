//! `wmma.load` / `wmma.store` / `wmma.mma` m16n16k16: nvcc-compiled `nvcuda::wmma` GEMMs (tests/cu/wmma.cu)
//! against a CPU reference for every layout combination, and hand-written PTX for strides, spaces, the
//! documented fragment layout, alignment (memcheck) and divergence (synccheck). Expected values come from
//! the PTX ISA: D = A * B + C with products summed exactly and rounded once per `mma` (so small-integer
//! inputs give exact results), row/col memory layouts with a stride in elements.

#![allow(clippy::needless_range_loop)] // index loops mirror the math being checked

mod common;
use common::*;
use ptx_emu::{CheckKind, Checks};

const M: usize = 32;
const N: usize = 48;
const K: usize = 64;

fn h16(v: &[f32], bf: bool) -> Vec<u8> {
    v.iter()
        .flat_map(|&x| {
            if bf {
                ((x.to_bits() >> 16) as u16).to_le_bytes()
            } else {
                f16_round_bits(x).to_le_bytes()
            }
        })
        .collect()
}

/// Lays out an r x c matrix (f(i, j)) row- or column-major.
fn layout(r: usize, c: usize, col: bool, f: impl Fn(usize, usize) -> f32) -> Vec<f32> {
    let mut v = vec![0.0; r * c];
    for i in 0..r {
        for j in 0..c {
            v[if col { j * r + i } else { i * c + j }] = f(i, j);
        }
    }
    v
}

fn gemm_params(c: u64, a: u64, b: u64, alpha: f32, beta: f32) -> Vec<u8> {
    let mut p = params(&[c, a, b]);
    for v in [M as u32, N as u32, K as u32] {
        p.extend_from_slice(&v.to_le_bytes());
    }
    p.extend_from_slice(&alpha.to_le_bytes());
    p.extend_from_slice(&beta.to_le_bytes());
    p
}

#[test]
fn wmma_gemm_every_layout_is_exact_on_small_integers() {
    let Some((dev, m)) = setup("wmma.cu") else { return };
    let fa = |i: usize, k: usize| ((i * 5 + k * 3) % 7) as f32 - 3.0;
    let fb = |k: usize, j: usize| ((k * 3 + j * 5 + k * j) % 7) as f32 - 3.0;
    let fc = |i: usize, j: usize| ((i + 2 * j) % 9) as f32 * 2.0 - 8.0;
    // (kernel, A col, B col, C col, bf16, f16 accumulator)
    let cases = [
        ("wmma_f16_rr", false, false, false, false, false),
        ("wmma_f16_rc", false, true, false, false, false),
        ("wmma_f16_cr", true, false, false, false, false),
        ("wmma_f16_cc", true, true, true, false, false),
        ("wmma_f16acc_rc", false, true, false, false, true),
        ("wmma_f16acc_cr", true, false, true, false, true),
        ("wmma_bf16_rr", false, false, false, true, false),
        ("wmma_bf16_cc", true, true, false, true, false),
    ];
    for (kernel, ac, bc, cc, bf, hacc) in cases {
        for (alpha, beta) in [(1.0f32, 0.0f32), (2.0, 0.5)] {
            let a = upload(&dev, &h16(&layout(M, K, ac, fa), bf));
            let b = upload(&dev, &h16(&layout(K, N, bc, fb), bf));
            let c0 = layout(M, N, cc, fc);
            let c = upload(&dev, &if hacc { h16(&c0, false) } else { bytes_f32(&c0) });
            let rep = dev
                .launch(
                    &m,
                    kernel,
                    &cfg([1, 1, 1], [((M / 16) * (N / 16) * 32) as u32, 1, 1], 0),
                    &gemm_params(c, a, b, alpha, beta),
                )
                .unwrap_or_else(|e| panic!("{kernel}: {e}"));
            let es = if hacc { 2 } else { 4 };
            let raw = download(&dev, c, M * N * es);
            let got: Vec<f32> = if hacc {
                raw.chunks(2)
                    .map(|h| f16_val(u16::from_le_bytes([h[0], h[1]])))
                    .collect()
            } else {
                f32s(&raw)
            };
            for i in 0..M {
                for j in 0..N {
                    let dot: f32 = (0..K).map(|k| fa(i, k) * fb(k, j)).sum();
                    let want = alpha * dot + beta * fc(i, j);
                    let at = if cc { j * M + i } else { i * N + j };
                    assert_eq!(got[at], want, "{kernel} alpha={alpha} ({i},{j})");
                }
            }
            // 24 tiles x K/16 wmma.mma, each two m16n8k16
            assert_eq!(rep.metrics.mma, 2 * 24 / 4 * (K / 16) as u64, "{kernel}");
            assert!(rep.metrics.global_load_bytes > 0 && rep.metrics.global_store_bytes as usize == M * N * es);
        }
    }
}

#[test]
fn wmma_gemm_random_inputs_match_a_f64_reference() {
    let Some((dev, m)) = setup("wmma.cu") else { return };
    let ra = rand_f32(11, M * K);
    let rb = rand_f32(12, K * N);
    // inputs rounded to f16 as the device sees them
    let qa: Vec<f32> = ra.iter().map(|&x| f16_val(f16_round_bits(x))).collect();
    let qb: Vec<f32> = rb.iter().map(|&x| f16_val(f16_round_bits(x))).collect();
    let a = upload(&dev, &h16(&qa, false));
    let b = upload(&dev, &h16(&qb, false)); // row-major K x N
    let c = dev.alloc(M * N * 4).unwrap();
    dev.launch(
        &m,
        "wmma_f16_rr",
        &cfg([1, 1, 1], [192, 1, 1], 0),
        &gemm_params(c, a, b, 1.0, 0.0),
    )
    .unwrap();
    let got = f32s(&download(&dev, c, M * N * 4));
    for i in 0..M {
        for j in 0..N {
            let want: f64 = (0..K).map(|k| qa[i * K + k] as f64 * qb[k * N + j] as f64).sum();
            // four roundings to f32 (one per k16 step): a few ulp of the running sums
            assert!(
                close(got[i * N + j], want, 2e-6, 2e-6),
                "({i},{j}) {} vs {want}",
                got[i * N + j]
            );
        }
    }
}

#[test]
fn wmma_gemm_from_padded_shared_memory() {
    let Some((dev, m)) = setup("wmma.cu") else { return };
    let fa = |i: usize, k: usize| ((i * 3 + k) % 5) as f32 - 2.0;
    let fb = |k: usize, j: usize| ((k + j * 3 + k * j) % 7) as f32 - 3.0;
    let a = upload(&dev, &h16(&layout(M, K, false, fa), false));
    let b = upload(&dev, &h16(&layout(K, N, true, fb), false));
    let c = dev.alloc(M * N * 4).unwrap();
    let mut p = params(&[c, a, b]);
    for v in [M as u32, N as u32, K as u32] {
        p.extend_from_slice(&v.to_le_bytes());
    }
    let rep = dev
        .launch(&m, "wmma_gemm_shared", &cfg([(M / 16) as u32, 1, 1], [96, 1, 1], 0), &p)
        .unwrap();
    let got = f32s(&download(&dev, c, M * N * 4));
    for i in 0..M {
        for j in 0..N {
            assert_eq!(
                got[i * N + j],
                (0..K).map(|k| fa(i, k) * fb(k, j)).sum::<f32>(),
                "({i},{j})"
            );
        }
    }
    // fragments read from shared memory: A 2 blocks x 3 warps x 4 k-steps x 512 bytes, B the same
    let frag_bytes = 2 * 3 * 4 * 512 * 2;
    assert!(
        rep.metrics.shared_load_bytes >= frag_bytes,
        "{}",
        rep.metrics.shared_load_bytes
    );
    assert!(rep.metrics.shared_requests > 0);
}

// ---- hand-written PTX ----

const LOAD_HEADER: &str = ".visible .entry k(.param .u64 p_out, .param .u64 p_in, .param .u32 p_n)\n{\n.reg .pred %p<4>;\n.reg .b32 %r<64>;\n.reg .f32 %f<16>;\n.reg .b64 %rd<16>;\n.shared .align 32 .b8 s[4096];\nld.param.u64 %rd1, [p_out];\nld.param.u64 %rd2, [p_in];\nld.param.u32 %r40, [p_n];\nmov.u32 %r41, %laneid;\n";

/// Copies p_n bytes (a multiple of 4) from p_in to shared `s` (all lanes), then a warp sync.
const TO_SHARED: &str = "mov.u32 %r42, s;\nshl.b32 %r43, %r41, 2;\n$L_copy:\nsetp.ge.u32 %p1, %r43, %r40;\n@%p1 bra $L_copied;\ncvt.u64.u32 %rd3, %r43;\nadd.s64 %rd4, %rd2, %rd3;\nld.global.u32 %r44, [%rd4];\nadd.s32 %r45, %r42, %r43;\nst.shared.u32 [%r45], %r44;\nadd.s32 %r43, %r43, 128;\nbra.uni $L_copy;\n$L_copied:\nbar.warp.sync -1;\n";

fn ptx(body: &str) -> String {
    format!("{HEADER}{LOAD_HEADER}{body}\nret;\n}}\n")
}

fn regs(prefix: &str, n: usize) -> String {
    (1..=n).map(|i| format!("{prefix}{i}")).collect::<Vec<_>>().join(", ")
}

/// `wmma.load.c` with layout/stride/space, then `wmma.store.d` with another layout and stride: the store
/// must put every element (i, j) where its own layout says.
#[test]
fn wmma_load_store_round_trips_with_strides_layouts_and_spaces() {
    let dev = device(Checks::all());
    for (ty, es) in [("f32", 4usize), ("f16", 2)] {
        let frag = if ty == "f32" { regs("%f", 8) } else { regs("%r", 4) };
        for (lcol, s1) in [(false, 16usize), (true, 24), (false, 40), (true, 64)] {
            for (scol, s2) in [(true, 16usize), (false, 32), (true, 48)] {
                for space in ["global", "shared", "generic"] {
                    let src_bytes = 16 * s1 * es;
                    let (copy, addr, sp) = match space {
                        "global" => ("", "%rd2", ".global"),
                        "shared" => (TO_SHARED, "%r42", ".shared"),
                        _ => (TO_SHARED, "%rd5", ""),
                    };
                    let cvta = if space == "generic" {
                        "cvta.shared.u64 %rd5, s;\n"
                    } else {
                        ""
                    };
                    let (l1, l2) = (if lcol { "col" } else { "row" }, if scol { "col" } else { "row" });
                    let body = format!(
                        "{copy}{cvta}wmma.load.c.sync.aligned.{l1}.m16n16k16{sp}.{ty} {{{frag}}}, [{addr}], {s1};\nwmma.store.d.sync.aligned.{l2}.m16n16k16.global.{ty} [%rd1], {{{frag}}}, {s2};"
                    );
                    let m = dev.load_module(&ptx(&body)).unwrap_or_else(|e| panic!("{e}\n{body}"));
                    // element (i, j) stored at its offset under (lcol, s1); value tags (i, j)
                    let tag = |i: usize, j: usize| (i * 16 + j + 1) as u32;
                    let mut inp = vec![0u8; src_bytes];
                    for i in 0..16 {
                        for j in 0..16 {
                            let o = es * if lcol { j * s1 + i } else { i * s1 + j };
                            let v = if es == 4 {
                                (tag(i, j) as f32).to_bits()
                            } else {
                                f16_round_bits(tag(i, j) as f32) as u32
                            };
                            inp[o..o + es].copy_from_slice(&v.to_le_bytes()[..es]);
                        }
                    }
                    let pin = upload(&dev, &inp);
                    let out_bytes = 16 * s2 * es;
                    let pout = upload(&dev, &vec![0u8; out_bytes]);
                    let mut p = params(&[pout, pin]);
                    p.extend_from_slice(&(src_bytes as u32).to_le_bytes());
                    dev.launch(&m, "k", &cfg([1, 1, 1], [32, 1, 1], 0), &p)
                        .unwrap_or_else(|e| panic!("{ty} {space} {l1}/{s1} -> {l2}/{s2}: {e}"));
                    let out = download(&dev, pout, out_bytes);
                    for i in 0..16 {
                        for j in 0..16 {
                            let o = es * if scol { j * s2 + i } else { i * s2 + j };
                            let mut b = [0u8; 4];
                            b[..es].copy_from_slice(&out[o..o + es]);
                            let v = u32::from_le_bytes(b);
                            let got = if es == 4 { f32::from_bits(v) } else { f16_val(v as u16) };
                            assert_eq!(got, tag(i, j) as f32, "{ty} {space} {l1}/{s1} -> {l2}/{s2} ({i},{j})");
                        }
                    }
                }
            }
        }
    }
}

/// A x I and I x B through wmma.mma reproduce A and B for every layout and stride: the A and B loads
/// put each element where the mma expects it.
#[test]
fn wmma_a_and_b_loads_with_strides_through_identity_products() {
    let dev = device(Checks::all());
    for bf in [false, true] {
        let (t, na) = if bf { ("bf16", 4) } else { ("f16", 8) };
        let mma = if bf { "f32.bf16.bf16.f32" } else { "f32.f32" };
        for (col, s) in [(false, 16usize), (true, 16), (false, 32), (true, 48)] {
            for which in ["a", "b"] {
                let l = if col { "col" } else { "row" };
                // the matrix under test from p_in (stride s), the identity from shared (stride 16, row)
                let (la, lb) = if which == "a" { (l, "row") } else { ("row", l) };
                let (pa, pb, sa, sb) = if which == "a" {
                    ("%rd2", "%r42", s, 16)
                } else {
                    ("%r42", "%rd2", 16, s)
                };
                let (spa, spb) = if which == "a" {
                    (".global", ".shared")
                } else {
                    (".shared", ".global")
                };
                let one = if bf { "0x3f80" } else { "0x3c00" };
                let (ra, rb) = (
                    regs("%r", na),
                    (20..20 + na).map(|i| format!("%r{i}")).collect::<Vec<_>>().join(", "),
                );
                let fd = regs("%f", 8);
                // lane 0 writes the identity (row-major, 32-byte rows) to shared `s`
                let body = format!(
                    ".reg .b16 %rs<2>;\nmov.u32 %r42, s;\nsetp.ne.u32 %p3, %r41, 0;\n@%p3 bra $L_init_done;\n\
                     mov.u32 %r55, 0;\n$L_z:\nadd.s32 %r56, %r42, %r55;\nst.shared.u32 [%r56], 0;\nadd.s32 %r55, %r55, 4;\n\
                     setp.lt.u32 %p2, %r55, 512;\n@%p2 bra $L_z;\n\
                     mov.u32 %r50, 0;\nmov.b16 %rs1, {one};\n$L_id:\nmul.lo.u32 %r53, %r50, 34;\nadd.s32 %r54, %r42, %r53;\n\
                     st.shared.b16 [%r54], %rs1;\nadd.s32 %r50, %r50, 1;\nsetp.lt.u32 %p1, %r50, 16;\n@%p1 bra $L_id;\n\
                     $L_init_done:\nbar.warp.sync -1;\n\
                     wmma.load.a.sync.aligned.{la}.m16n16k16{spa}.{t} {{{ra}}}, [{pa}], {sa};\n\
                     wmma.load.b.sync.aligned.{lb}.m16n16k16{spb}.{t} {{{rb}}}, [{pb}], {sb};\n\
                     mov.f32 %f9, 0f00000000;\n\
                     wmma.mma.sync.aligned.{la}.{lb}.m16n16k16.{mma} {{{fd}}}, {{{ra}}}, {{{rb}}}, {{%f9, %f9, %f9, %f9, %f9, %f9, %f9, %f9}};\n\
                     wmma.store.d.sync.aligned.row.m16n16k16.global.f32 [%rd1], {{{fd}}}, 16;"
                );
                let m = dev.load_module(&ptx(&body)).unwrap_or_else(|e| panic!("{e}\n{body}"));
                let f = |i: usize, j: usize| (i as f32 - j as f32) * 0.5 + ((i * j) % 3) as f32;
                let mut inp = vec![0u8; 16 * s * 2];
                for i in 0..16 {
                    for j in 0..16 {
                        let o = 2 * if col { j * s + i } else { i * s + j };
                        let v = if bf {
                            (f(i, j).to_bits() >> 16) as u16
                        } else {
                            f16_round_bits(f(i, j))
                        };
                        inp[o..o + 2].copy_from_slice(&v.to_le_bytes());
                    }
                }
                let pin = upload(&dev, &inp);
                let pout = dev.alloc(1024).unwrap();
                let mut p = params(&[pout, pin]);
                p.extend_from_slice(&0u32.to_le_bytes());
                dev.launch(&m, "k", &cfg([1, 1, 1], [32, 1, 1], 0), &p)
                    .unwrap_or_else(|e| panic!("{t} {which} {l}/{s}: {e}"));
                let got = f32s(&download(&dev, pout, 1024));
                for i in 0..16 {
                    for j in 0..16 {
                        assert_eq!(got[i * 16 + j], f(i, j), "{t} {which} {l}/{s} ({i},{j})");
                    }
                }
            }
        }
    }
}

/// The fragment layout README.md documents (the `mma.m16n8k16` layouts, f16 A/B registers 4-7 repeating
/// 0-3): lane l's registers after loading a matrix whose elements are tagged with (row, col).
#[test]
fn wmma_fragment_layout_is_the_documented_one() {
    let dev = device(Checks::all());
    let tag = |r: usize, c: usize| (r * 16 + c) as u16;
    let mut inp = vec![0u8; 512];
    for r in 0..16 {
        for c in 0..16 {
            inp[2 * (r * 16 + c)..2 * (r * 16 + c) + 2].copy_from_slice(&tag(r, c).to_le_bytes());
        }
    }
    let pin = upload(&dev, &inp);
    for (mat, n) in [("a", 8usize), ("b", 8), ("c", 4)] {
        let stores: String = (1..=n)
            .map(|i| format!("st.global.u32 [%rd6+{}], %r{i};\n", 4 * (i - 1)))
            .collect();
        let body = format!(
            "wmma.load.{mat}.sync.aligned.row.m16n16k16.global.f16 {{{}}}, [%rd2];\nmul.wide.u32 %rd5, %r41, 32;\nadd.s64 %rd6, %rd1, %rd5;\n{stores}",
            regs("%r", n)
        );
        let m = dev.load_module(&ptx(&body)).unwrap();
        let pout = dev.alloc(32 * 32).unwrap();
        let mut p = params(&[pout, pin]);
        p.extend_from_slice(&0u32.to_le_bytes());
        dev.launch(&m, "k", &cfg([1, 1, 1], [32, 1, 1], 0), &p).unwrap();
        let out = u32s(&download(&dev, pout, 32 * 32));
        for lane in 0..32 {
            let (g, t) = (lane / 4, lane % 4);
            for reg in 0..n {
                let r = reg % 4; // f16 A/B: registers 4-7 repeat 0-3
                let (lo, hi) = match mat {
                    // A (row, k): (g + 8(r & 1), 2t + 8(r >> 1)) and the next column
                    "a" => (
                        tag(g + 8 * (r & 1), 2 * t + 8 * (r >> 1)),
                        tag(g + 8 * (r & 1), 2 * t + 1 + 8 * (r >> 1)),
                    ),
                    // B (k, n): (2t + 8(r & 1), g + 8(r >> 1)) and the next k
                    "b" => (
                        tag(2 * t + 8 * (r & 1), g + 8 * (r >> 1)),
                        tag(2 * t + 1 + 8 * (r & 1), g + 8 * (r >> 1)),
                    ),
                    // C (row, n): elements 2r, 2r+1 at (g + 8(r & 1), 2t + 8(r >> 1)) and the next column
                    _ => (
                        tag(g + 8 * (r & 1), 2 * t + 8 * (r >> 1)),
                        tag(g + 8 * (r & 1), 2 * t + 1 + 8 * (r >> 1)),
                    ),
                };
                assert_eq!(
                    out[lane * 8 + reg],
                    lo as u32 | (hi as u32) << 16,
                    "{mat} lane {lane} reg {reg}"
                );
            }
        }
    }
}

#[test]
fn wmma_misaligned_fragments_are_memcheck_reports() {
    let dev = device(Checks::all());
    let pin = upload(&dev, &[0u8; 4096]);
    let pout = upload(&dev, &[0u8; 4096]);
    // (instruction, offset of the address, stride, report): the address must be a multiple of the
    // fragment size (32 bytes for f16 A/B and f32 C/D, 16 for bf16 A/B and f16 C/D), the stride a
    // multiple of 16 bytes
    let (frag, ld16) = (Some("fragment size"), Some("multiple of 16 bytes"));
    let cases = [
        (
            "wmma.load.a.sync.aligned.row.m16n16k16.global.f16 {R8}, [%rd2+OFF], S;",
            16,
            16,
            frag,
        ),
        (
            "wmma.load.a.sync.aligned.row.m16n16k16.global.f16 {R8}, [%rd2+OFF], S;",
            0,
            20,
            ld16,
        ),
        (
            "wmma.load.a.sync.aligned.row.m16n16k16.global.f16 {R8}, [%rd2+OFF], S;",
            32,
            24,
            None,
        ),
        (
            "wmma.load.b.sync.aligned.col.m16n16k16.global.bf16 {R4}, [%rd2+OFF], S;",
            16,
            24,
            None,
        ),
        (
            "wmma.load.b.sync.aligned.col.m16n16k16.global.bf16 {R4}, [%rd2+OFF], S;",
            8,
            16,
            frag,
        ),
        (
            "wmma.load.c.sync.aligned.row.m16n16k16.global.f32 {F8}, [%rd2+OFF], S;",
            0,
            18,
            ld16,
        ),
        (
            "wmma.load.c.sync.aligned.row.m16n16k16.global.f32 {F8}, [%rd2+OFF], S;",
            32,
            20,
            None,
        ),
        (
            "wmma.load.c.sync.aligned.col.m16n16k16.global.f16 {R4}, [%rd2+OFF], S;",
            16,
            8,
            None,
        ),
        (
            "wmma.store.d.sync.aligned.row.m16n16k16.global.f32 [%rd1+OFF], {F8}, S;",
            4,
            16,
            frag,
        ),
        (
            "wmma.store.d.sync.aligned.col.m16n16k16.global.f16 [%rd1+OFF], {R4}, S;",
            48,
            40,
            None,
        ),
        (
            "wmma.store.d.sync.aligned.col.m16n16k16.global.f16 [%rd1+OFF], {R4}, S;",
            0,
            12,
            ld16,
        ),
    ];
    for (inst, off, stride, want) in cases {
        let inst = inst
            .replace("R8", &regs("%r", 8))
            .replace("R4", &regs("%r", 4))
            .replace("F8", &regs("%f", 8))
            .replace("OFF", &off.to_string())
            .replace('S', &stride.to_string());
        let body = format!("{inst} // PLANTED");
        let src = ptx(&body);
        let m = dev.load_module(&src).unwrap_or_else(|e| panic!("{e}: {inst}"));
        let mut p = params(&[pout, pin]);
        p.extend_from_slice(&0u32.to_le_bytes());
        let r = dev.launch(&m, "k", &cfg([1, 1, 1], [32, 1, 1], 0), &p);
        if let Some(why) = want {
            let reps = reports(r);
            assert_eq!(reps[0].kind, CheckKind::Memcheck, "{inst}: {reps:?}");
            assert!(reps[0].message.contains("misaligned wmma."), "{}", reps[0].message);
            assert!(reps[0].message.contains(why), "{inst}: {}", reps[0].message);
            let line = src.lines().position(|l| l.contains("PLANTED")).unwrap() as u32 + 1;
            assert_eq!(reps[0].line, line);
        } else {
            r.unwrap_or_else(|e| panic!("{inst}: {e}"));
        }
    }
}

#[test]
fn wmma_out_of_bounds_and_uninitialized_fragments_are_reported() {
    let dev = device(Checks::all());
    let small = upload(&dev, &[0u8; 256]); // half of a 16 x 16 f16 matrix
    let out = dev.alloc(4096).unwrap(); // never written
    let load = format!(
        "wmma.load.a.sync.aligned.row.m16n16k16.global.f16 {{{}}}, [%rd2];",
        regs("%r", 8)
    );
    for (body, inp, kind) in [
        (load.clone(), small, CheckKind::Memcheck),
        (load.replace("%rd2", "%rd1"), small, CheckKind::Initcheck),
    ] {
        let m = dev.load_module(&ptx(&body)).unwrap();
        let mut p = params(&[out, inp]);
        p.extend_from_slice(&0u32.to_le_bytes());
        let reps = reports(dev.launch(&m, "k", &cfg([1, 1, 1], [32, 1, 1], 0), &p));
        assert_eq!(reps[0].kind, kind, "{reps:?}");
    }
}

#[test]
fn wmma_divergence_is_a_synccheck_report() {
    let dev = device(Checks::all());
    let pin = upload(&dev, &[0u8; 2048]);
    let a = regs("%r", 8);
    let load = |addr: &str| format!("wmma.load.a.sync.aligned.row.m16n16k16.global.f16 {{{a}}}, [{addr}];");
    let cases = [
        // half of the warp at another wmma.load
        (
            format!(
                "setp.ge.u32 %p1, %r41, 16;\n@%p1 bra $L_b;\n{}\nbra.uni $L_end;\n$L_b:\n{}\n$L_end:",
                load("%rd2"),
                load("%rd2+512")
            ),
            "disagree on the instruction",
        ),
        // lane 31 has exited
        (
            format!("setp.eq.u32 %p1, %r41, 31;\n@%p1 exit;\n{}", load("%rd2")),
            "exited",
        ),
        // every lane passes its own address
        (
            format!(
                "mul.wide.u32 %rd7, %r41, 32;\nadd.s64 %rd8, %rd2, %rd7;\n{}",
                load("%rd8")
            ),
            "disagree on the address",
        ),
    ];
    for (body, want) in cases {
        let m = dev.load_module(&ptx(&body)).unwrap();
        let mut p = params(&[pin, pin]);
        p.extend_from_slice(&0u32.to_le_bytes());
        let reps = reports(dev.launch(&m, "k", &cfg([1, 1, 1], [32, 1, 1], 0), &p));
        assert!(
            reps.iter()
                .any(|r| r.kind == CheckKind::Synccheck && r.message.contains(want)),
            "{want}: {reps:?}"
        );
    }
}

#[test]
fn wmma_forms_outside_m16n16k16_f16_bf16_are_typed_unsupported_errors() {
    let dev = device(Checks::all());
    let r8 = regs("%r", 8);
    let f8 = regs("%f", 8);
    for inst in [
        format!(
            "wmma.load.a.sync.aligned.row.m8n32k16.global.f16 {{{}}}, [%rd2];",
            regs("%r", 8)
        ),
        format!(
            "wmma.load.a.sync.aligned.row.m16n16k8.global.tf32 {{{}}}, [%rd2];",
            regs("%r", 4)
        ),
        format!(
            "wmma.load.a.sync.aligned.row.m16n16k16.global.s8 {{{}}}, [%rd2];",
            regs("%r", 2)
        ),
        format!("wmma.load.c.sync.aligned.row.m16n16k16.global.s32 {{{r8}}}, [%rd2];"),
        format!("wmma.mma.sync.aligned.row.col.m16n16k16.f32.f32.satfinite {{{f8}}}, {{{r8}}}, {{{r8}}}, {{{f8}}};"),
        format!(
            "wmma.mma.sync.aligned.row.col.m16n16k16.f16.bf16.bf16.f32 {{{}}}, {{{r8}}}, {{{r8}}}, {{{f8}}};",
            regs("%r", 4)
        ),
        format!("wmma.load.a.sync.row.m16n16k16.global.f16 {{{r8}}}, [%rd2];"),
    ] {
        let src = ptx(&format!("{inst} // HERE"));
        let line = src.lines().position(|l| l.contains("HERE")).unwrap() as u32 + 1;
        // The module loads; the kernel that contains the form cannot be launched (tests/fidelity.rs).
        let m = dev.load_module(&src).unwrap();
        let want = format!("unsupported PTX at line {line}");
        assert!(
            m.warnings().iter().any(|w| w.contains(&want)),
            "{inst}: {:?}",
            m.warnings()
        );
    }
}
