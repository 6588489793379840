//! Integer, logic, bit-manipulation and predicate instructions. Expected values are worked out from the
//! PTX ISA definitions by hand.

#![allow(clippy::needless_range_loop)] // index loops mirror the math being checked

mod common;
use common::{check_table, eval};

const M32: u64 = 0xffff_ffff;

/// (instruction, inputs %x0.., expected %y0)
const CASES: &[(&str, &[u64], u64)] = &[
    ("add.s32 %y0, %x0, %x1;", &[5, M32], 4),
    ("add.u32 %y0, %x0, %x1;", &[M32, 2], 1),
    ("add.s64 %y0, %x0, %x1;", &[u64::MAX, 2], 1),
    ("add.sat.s32 %y0, %x0, %x1;", &[0x7fff_ffff, 1], 0x7fff_ffff),
    ("add.sat.s32 %y0, %x0, %x1;", &[0x8000_0000, M32], 0x8000_0000),
    ("sub.s32 %y0, %x0, %x1;", &[3, 5], 0xffff_fffe),
    ("sub.sat.s32 %y0, %x0, %x1;", &[0x8000_0000, 1], 0x8000_0000),
    ("sub.u16 %y0, %x0, %x1;", &[0, 1], 0xffff),
    ("mul.lo.s32 %y0, %x0, %x1;", &[0x10000, 0x10001], 0x10000),
    ("mul.hi.u32 %y0, %x0, %x1;", &[M32, M32], 0xffff_fffe),
    ("mul.hi.s32 %y0, %x0, %x1;", &[M32, 2], M32),
    ("mul.hi.u64 %y0, %x0, %x1;", &[u64::MAX, u64::MAX], u64::MAX - 1),
    ("mul.hi.s64 %y0, %x0, %x1;", &[u64::MAX, 3], u64::MAX),
    ("mul.wide.s32 %y0, %x0, %x1;", &[M32, 5], (-5i64) as u64),
    ("mul.wide.u32 %y0, %x0, %x1;", &[M32, 2], 0x1_ffff_fffe),
    ("mul.wide.u16 %y0, %x0, %x1;", &[0xffff, 0xffff], 0xfffe_0001),
    ("mul24.lo.u32 %y0, %x0, %x1;", &[0x0100_0003, 2], 6),
    ("mad.lo.s32 %y0, %x0, %x1, %x2;", &[3, 4, 5], 17),
    ("mad.hi.u32 %y0, %x0, %x1, %x2;", &[0x8000_0000, 4, 1], 3),
    (
        "mad.wide.u32 %y0, %x0, %x1, %x2;",
        &[M32, M32, 1],
        0xffff_fffe_0000_0002,
    ),
    ("mad.wide.s32 %y0, %x0, %x1, %x2;", &[M32, 3, 10], 7),
    (
        "div.s32 %y0, %x0, %x1;",
        &[(-7i32) as u32 as u64, 2],
        (-3i32) as u32 as u64,
    ),
    ("div.u32 %y0, %x0, %x1;", &[7, 2], 3),
    ("div.u32 %y0, %x0, %x1;", &[7, 0], M32),
    ("rem.s32 %y0, %x0, %x1;", &[(-7i32) as u32 as u64, 2], M32),
    ("rem.u64 %y0, %x0, %x1;", &[100, 7], 2),
    ("min.s32 %y0, %x0, %x1;", &[M32, 1], M32),
    ("min.u32 %y0, %x0, %x1;", &[M32, 1], 1),
    ("max.s32 %y0, %x0, %x1;", &[M32, 1], 1),
    ("max.u64 %y0, %x0, %x1;", &[u64::MAX, 1], u64::MAX),
    ("abs.s32 %y0, %x0;", &[(-9i32) as u32 as u64], 9),
    ("neg.s32 %y0, %x0;", &[1], M32),
    ("and.b32 %y0, %x0, %x1;", &[0xf0f0, 0xff00], 0xf000),
    ("or.b32 %y0, %x0, %x1;", &[0xf0f0, 0xff00], 0xfff0),
    ("xor.b32 %y0, %x0, %x1;", &[0xf0f0, 0xff00], 0x0ff0),
    ("not.b32 %y0, %x0;", &[0], M32),
    ("cnot.b32 %y0, %x0;", &[0], 1),
    ("cnot.b32 %y0, %x0;", &[7], 0),
    ("shl.b32 %y0, %x0, %x1;", &[1, 31], 0x8000_0000),
    ("shl.b32 %y0, %x0, %x1;", &[1, 32], 0),
    ("shr.u32 %y0, %x0, %x1;", &[0x8000_0000, 31], 1),
    ("shr.s32 %y0, %x0, %x1;", &[0x8000_0000, 31], M32),
    ("shr.s32 %y0, %x0, %x1;", &[0x8000_0000, 40], M32),
    ("shr.u32 %y0, %x0, %x1;", &[0x8000_0000, 40], 0),
    ("shr.b64 %y0, %x0, %x1;", &[1 << 63, 63], 1),
    ("popc.b32 %y0, %x0;", &[0xf0f0_0001], 9),
    ("popc.b64 %y0, %x0;", &[u64::MAX], 64),
    ("clz.b32 %y0, %x0;", &[1], 31),
    ("clz.b32 %y0, %x0;", &[0], 32),
    ("clz.b64 %y0, %x0;", &[1 << 40], 23),
    ("brev.b32 %y0, %x0;", &[1], 0x8000_0000),
    ("brev.b32 %y0, %x0;", &[0x0000_00f0], 0x0f00_0000),
    ("bfind.u32 %y0, %x0;", &[0x0001_0000], 16),
    ("bfind.u32 %y0, %x0;", &[0], M32),
    ("bfind.s32 %y0, %x0;", &[0xffff_fff0], 3),
    ("bfind.shiftamt.u32 %y0, %x0;", &[0x0001_0000], 15),
    // bfe: extract len bits at pos; signed replicates the top extracted bit
    ("bfe.u32 %y0, %x0, %x1, %x2;", &[0xabcd_1234, 8, 8], 0x12),
    ("bfe.s32 %y0, %x0, %x1, %x2;", &[0x0000_8000, 12, 4], 0xffff_fff8),
    ("bfe.s32 %y0, %x0, %x1, %x2;", &[0x0000_7000, 12, 4], 7),
    ("bfe.u32 %y0, %x0, %x1, %x2;", &[0xffff_ffff, 28, 8], 0xf),
    ("bfe.u32 %y0, %x0, %x1, %x2;", &[0xffff_ffff, 4, 0], 0),
    // bfi: insert the low len bits of a into b at pos
    ("bfi.b32 %y0, %x0, %x1, %x2, %x3;", &[0xf, 0, 4, 4], 0xf0),
    (
        "bfi.b32 %y0, %x0, %x1, %x2, %x3;",
        &[0x5, 0xffff_ffff, 30, 4],
        0x7fff_ffff,
    ),
    ("bfi.b64 %y0, %x0, %x1, %x2, %x3;", &[1, 0, 32, 1], 1 << 32),
    // prmt default mode: bytes b:a = 0x77665544_33221100, selector nibbles pick bytes, bit 3 replicates sign
    (
        "prmt.b32 %y0, %x0, %x1, %x2;",
        &[0x3322_1100, 0x7766_5544, 0x5410],
        0x5544_1100,
    ),
    (
        "prmt.b32 %y0, %x0, %x1, %x2;",
        &[0x3322_1100, 0x7766_5544, 0x0123],
        0x0011_2233,
    ),
    ("prmt.b32 %y0, %x0, %x1, %x2;", &[0x0000_0080, 0, 0x8888], M32),
    // lop3: 0xF0 = a, 0xCC = b, 0xAA = c; (a & b) ^ c = 0x6A
    (
        "lop3.b32 %y0, %x0, %x1, %x2, 0x6A;",
        &[0xff00_ff00, 0xf0f0_f0f0, 0xcccc_cccc],
        (0xff00_ff00 & 0xf0f0_f0f0) ^ 0xcccc_cccc,
    ),
    ("lop3.b32 %y0, %x0, %x1, %x2, 0xF0;", &[0x1234_5678, 1, 2], 0x1234_5678),
    ("lop3.b32 %y0, %x0, %x1, %x2, 0xFE;", &[1, 2, 4], 7),
    // shf: funnel shift of {b:a}
    ("shf.l.wrap.b32 %y0, %x0, %x1, %x2;", &[0x8000_0000, 1, 1], 3),
    ("shf.l.wrap.b32 %y0, %x0, %x1, %x2;", &[0x8000_0000, 1, 33], 3),
    (
        "shf.l.clamp.b32 %y0, %x0, %x1, %x2;",
        &[0x8000_0000, 1, 40],
        0x8000_0000,
    ),
    ("shf.r.wrap.b32 %y0, %x0, %x1, %x2;", &[0x8000_0000, 1, 4], 0x1800_0000),
    ("shf.r.clamp.b32 %y0, %x0, %x1, %x2;", &[5, 7, 32], 7),
    ("sad.u32 %y0, %x0, %x1, %x2;", &[3, 10, 1], 8),
    // prmt modes on bytes b:a = 0x77665544_33221100 (PTX ISA prmt mode table)
    (
        "prmt.b32.f4e %y0, %x0, %x1, %x2;",
        &[0x3322_1100, 0x7766_5544, 1],
        0x4433_2211,
    ),
    (
        "prmt.b32.b4e %y0, %x0, %x1, %x2;",
        &[0x3322_1100, 0x7766_5544, 0],
        0x5566_7700,
    ),
    (
        "prmt.b32.rc8 %y0, %x0, %x1, %x2;",
        &[0x3322_1100, 0x7766_5544, 2],
        0x2222_2222,
    ),
    (
        "prmt.b32.ecl %y0, %x0, %x1, %x2;",
        &[0x3322_1100, 0x7766_5544, 1],
        0x3322_1111,
    ),
    (
        "prmt.b32.ecr %y0, %x0, %x1, %x2;",
        &[0x3322_1100, 0x7766_5544, 2],
        0x2222_1100,
    ),
    (
        "prmt.b32.rc16 %y0, %x0, %x1, %x2;",
        &[0x3322_1100, 0x7766_5544, 1],
        0x3322_3322,
    ),
    // carry chains: 64-bit add/sub/mul from 32-bit halves
    ("add.cc.u32 %t0, %x0, %x1; addc.u32 %y0, %x2, %x3;", &[M32, 1, 0, 0], 1),
    ("add.cc.u32 %y0, %x0, %x1; addc.u32 %t0, %x2, %x3;", &[M32, 1, 0, 0], 0),
    (
        "add.cc.u32 %t0, %x0, %x1; addc.cc.u32 %t1, %x2, %x3; addc.u32 %y0, 0, 0;",
        &[M32, 1, M32, 0],
        1,
    ),
    ("sub.cc.u32 %t0, %x0, %x1; subc.u32 %y0, %x2, %x3;", &[0, 1, 5, 2], 2),
    (
        "mad.lo.cc.u32 %t0, %x0, %x1, %x2; madc.hi.u32 %y0, %x0, %x1, %x3;",
        &[M32, 2, 2, 0],
        2,
    ),
    ("add.cc.u64 %t0, %x0, %x1; addc.u64 %y0, 0, 0;", &[u64::MAX, 1], 1),
    // slct and dot products
    ("slct.s32.s32 %y0, %x0, %x1, %x2;", &[10, 20, M32], 20),
    ("slct.s32.s32 %y0, %x0, %x1, %x2;", &[10, 20, 0], 10),
    ("slct.f32.f32 %y0, %x0, %x1, %x2;", &[10, 20, 0x8000_0000], 10),
    ("slct.f32.f32 %y0, %x0, %x1, %x2;", &[10, 20, 0xbf80_0000], 20),
    ("dp4a.u32.u32 %y0, %x0, %x1, %x2;", &[0x0102_0304, 0x0101_0101, 10], 20),
    ("dp4a.s32.s32 %y0, %x0, %x1, %x2;", &[0xff, 2, 0], 0xffff_fffe),
    ("dp2a.lo.u32.u32 %y0, %x0, %x1, %x2;", &[0x0002_0001, 0x0403_0201, 0], 5),
    (
        "dp2a.hi.u32.u32 %y0, %x0, %x1, %x2;",
        &[0x0002_0001, 0x0403_0201, 0],
        11,
    ),
    ("bmsk.clamp.b32 %y0, %x0, %x1;", &[4, 8], 0xff0),
    // setp / selp / predicate logic
    ("setp.lt.s32 %p0, %x0, %x1; selp.u64 %y0, 1, 0, %p0;", &[M32, 0], 1),
    ("setp.lo.u32 %p0, %x0, %x1; selp.u64 %y0, 1, 0, %p0;", &[M32, 0], 0),
    ("setp.ge.u64 %p0, %x0, %x1; selp.u64 %y0, 1, 0, %p0;", &[5, 5], 1),
    ("setp.ne.b16 %p0, %x0, %x1; selp.u64 %y0, 1, 0, %p0;", &[0x1_0005, 5], 0),
    (
        "setp.lt.and.s32 %p0|%p1, %x0, %x1, %p2; selp.u64 %y0, 1, 0, %p0; selp.u64 %y1, 1, 0, %p1;",
        &[1, 2],
        0,
    ),
    (
        "setp.eq.s32 %p2, %x2, 1; setp.lt.or.s32 %p0|%p1, %x0, %x1, !%p2; selp.u64 %y0, 1, 0, %p1;",
        &[1, 2, 0],
        1,
    ),
    (
        "setp.eq.s32 %p0, %x0, 1; setp.eq.s32 %p1, %x1, 1; xor.pred %p2, %p0, %p1; selp.u64 %y0, 1, 0, %p2;",
        &[1, 1],
        0,
    ),
    (
        "setp.eq.s32 %p0, %x0, 1; not.pred %p2, %p0; selp.u64 %y0, 1, 0, %p2;",
        &[1],
        0,
    ),
    (
        "selp.b32 %y0, %x0, %x1, %p3; setp.eq.s32 %p3, 1, 1; selp.b32 %y0, %x0, %x1, %p3;",
        &[10, 20],
        10,
    ),
    // predicated execution
    (
        "setp.eq.s32 %p0, %x0, 0; @%p0 mov.b64 %y0, 11; @!%p0 mov.b64 %y0, 22;",
        &[0],
        11,
    ),
    (
        "setp.eq.s32 %p0, %x0, 0; @%p0 mov.b64 %y0, 11; @!%p0 mov.b64 %y0, 22;",
        &[1],
        22,
    ),
    // conversions between integer types
    ("cvt.u32.u64 %y0, %x0;", &[0x1_0000_0005], 5),
    ("cvt.s64.s32 %y0, %x0;", &[M32], u64::MAX),
    ("cvt.u64.u32 %y0, %x0;", &[M32], M32),
    ("cvt.s32.s8 %y0, %x0;", &[0x80], 0xffff_ff80),
    ("cvt.u16.u32 %y0, %x0;", &[0x12345], 0x2345),
    ("cvt.sat.u8.s32 %y0, %x0;", &[M32], 0),
    ("cvt.sat.s8.s32 %y0, %x0;", &[300], 127),
    ("cvt.sat.u32.s64 %y0, %x0;", &[1 << 40], M32),
    // moves and packing
    (
        "mov.b64 {%t0, %t1}, %x0; mov.b64 %y0, %t1;",
        &[0x1111_2222_3333_4444],
        0x1111_2222,
    ),
    ("mov.b32 %y0, {%x0, %x1};", &[0x1234, 0xabcd], 0xabcd_1234),
    ("mov.b64 %y0, {%x0, %x1};", &[1, 2], 0x2_0000_0001),
    ("mov.b32 {%t0, %t1}, %x0; mov.b16 %y0, %t0;", &[0xaaaa_bbbb], 0xbbbb),
    ("mov.u32 %y0, %laneid;", &[], 0),
    ("mov.u32 %y0, %ntid.x;", &[], 1),
    ("mov.u32 %y0, %lanemask_lt;", &[], 0),
    ("mov.u32 %y0, %lanemask_ge;", &[], M32),
];

#[test]
fn integer_instructions_match_the_isa() {
    check_table(CASES);
}

#[test]
fn setp_with_second_predicate_output() {
    // p = (a < b) and c; q = !(a < b) and c
    let y = eval(
        "setp.eq.s32 %p2, %x2, 1; setp.lt.and.s32 %p0|%p1, %x0, %x1, %p2; selp.u64 %y0, 1, 0, %p0; selp.u64 %y1, 1, 0, %p1;",
        &[1, 2, 1],
    );
    assert_eq!(&y[..2], &[1, 0]);
    let y = eval(
        "setp.eq.s32 %p2, %x2, 1; setp.lt.and.s32 %p0|%p1, %x0, %x1, %p2; selp.u64 %y0, 1, 0, %p0; selp.u64 %y1, 1, 0, %p1;",
        &[3, 2, 1],
    );
    assert_eq!(&y[..2], &[0, 1]);
}

#[test]
fn isspacep_and_cvta_windows() {
    // a shared-window generic address is shared and not global; a global one is global
    let y = eval(
        "cvta.shared.u64 %t0, %x0; isspacep.shared %p0, %t0; selp.u64 %y0, 1, 0, %p0; isspacep.global %p1, %t0; selp.u64 %y1, 1, 0, %p1; cvta.to.shared.u64 %y2, %t0;",
        &[64],
    );
    assert_eq!(&y[..3], &[1, 0, 64]);
    let y = eval("isspacep.global %p0, %x0; selp.u64 %y0, 1, 0, %p0;", &[0x1_0000_0000]);
    assert_eq!(y[0], 1);
}

#[test]
fn half_precision_atomics() {
    // atomically add 1.0 to both halves of an f16x2 (and bf16x2) in global memory: 0x3c00_4000 -> 0x4000_4200
    let body = "ld.param.u64 %t0, [p_out];\nst.global.u32 [%t0+16], %x0;\natom.global.add.noftz.f16x2 %y0, [%t0+16], %x1;\nld.global.u32 %y1, [%t0+16];";
    let y = eval(body, &[0x3c00_4000, 0x3c00_3c00]);
    assert_eq!((y[0], y[1] & 0xffff_ffff), (0x3c00_4000, 0x4000_4200));
    let body = "ld.param.u64 %t0, [p_out];\nst.global.u32 [%t0+16], %x0;\nred.global.add.noftz.bf16x2 [%t0+16], %x1;\nld.global.u32 %y1, [%t0+16];";
    let y = eval(body, &[0x3f80_4000, 0x3f80_3f80]);
    assert_eq!(y[1] & 0xffff_ffff, 0x4000_4040);
}
