//! `cvt` in the forms nvcc emits. Expected bit patterns from the IEEE 754 / PTX ISA definitions.

#![allow(clippy::needless_range_loop)] // index loops mirror the math being checked

mod common;
use common::check_table;

const CASES: &[(&str, &[u64], u64)] = &[
    // f32 -> f16: 1.0; 65520 is the tie between 65504 and inf: rn -> inf, rz -> 65504
    ("cvt.rn.f16.f32 %y0, %x0;", &[0x3f80_0000], 0x3c00),
    ("cvt.rn.f16.f32 %y0, %x0;", &[0x477f_f000], 0x7c00),
    ("cvt.rz.f16.f32 %y0, %x0;", &[0x477f_f000], 0x7bff),
    ("cvt.rn.f16.f32 %y0, %x0;", &[0x477f_efff], 0x7bff),
    // f16 subnormal: 2^-24 is the smallest; 2^-25 is a tie with 0 -> even (0); rp -> 1
    ("cvt.rn.f16.f32 %y0, %x0;", &[0x3380_0000], 0x0001),
    ("cvt.rn.f16.f32 %y0, %x0;", &[0x3300_0000], 0x0000),
    ("cvt.rp.f16.f32 %y0, %x0;", &[0x3300_0000], 0x0001),
    ("cvt.rm.f16.f32 %y0, %x0;", &[0xb300_0000], 0x8001),
    ("cvt.rn.f16.f32 %y0, %x0;", &[0x7fc0_0000], 0x7fff),
    ("cvt.f32.f16 %y0, %x0;", &[0x3c00], 0x3f80_0000),
    ("cvt.f32.f16 %y0, %x0;", &[0x0001], 0x3380_0000),
    ("cvt.f32.f16 %y0, %x0;", &[0xfc00], 0xff80_0000),
    // f32 -> bf16: ties to even on the 16 dropped bits
    ("cvt.rn.bf16.f32 %y0, %x0;", &[0x3f80_8000], 0x3f80),
    ("cvt.rn.bf16.f32 %y0, %x0;", &[0x3f81_8000], 0x3f82),
    ("cvt.rn.bf16.f32 %y0, %x0;", &[0x3f80_8001], 0x3f81),
    ("cvt.rz.bf16.f32 %y0, %x0;", &[0x3f80_ffff], 0x3f80),
    ("cvt.f32.bf16 %y0, %x0;", &[0x3f80], 0x3f80_0000),
    ("cvt.rn.bf16.f32 %y0, %x0;", &[0x7f7f_ffff], 0x7f80),
    // packed: d = {hi from the first source, lo from the second}
    (
        "cvt.rn.f16x2.f32 %y0, %x0, %x1;",
        &[0x4000_0000, 0x3f80_0000],
        0x4000_3c00,
    ),
    (
        "cvt.rn.bf16x2.f32 %y0, %x0, %x1;",
        &[0x4000_0000, 0x3f80_0000],
        0x4000_3f80,
    ),
    (
        "cvt.rn.relu.bf16x2.f32 %y0, %x0, %x1;",
        &[0xc000_0000, 0x3f80_0000],
        0x0000_3f80,
    ),
    // f64 <-> f32
    ("cvt.rn.f32.f64 %y0, %x0;", &[0x3ff0_0000_1000_0000], 0x3f80_0000),
    ("cvt.rp.f32.f64 %y0, %x0;", &[0x3ff0_0000_1000_0000], 0x3f80_0001),
    ("cvt.rn.f32.f64 %y0, %x0;", &[0x47f0_0000_0000_0000], 0x7f80_0000),
    ("cvt.rz.f32.f64 %y0, %x0;", &[0x47f0_0000_0000_0000], 0x7f7f_ffff),
    ("cvt.f64.f32 %y0, %x0;", &[0x3f80_0000], 0x3ff0_0000_0000_0000),
    ("cvt.ftz.f64.f32 %y0, %x0;", &[0x0040_0000], 0),
    // float -> int: rounding modes, saturation, NaN -> 0
    ("cvt.rni.s32.f32 %y0, %x0;", &[0x4020_0000], 2),
    ("cvt.rni.s32.f32 %y0, %x0;", &[0x4060_0000], 4),
    ("cvt.rzi.s32.f32 %y0, %x0;", &[0xbfc0_0000], 0xffff_ffff),
    ("cvt.rmi.s32.f32 %y0, %x0;", &[0xbfc0_0000], 0xffff_fffe),
    ("cvt.rpi.s32.f32 %y0, %x0;", &[0x3fc0_0000], 2),
    ("cvt.rzi.s32.f32 %y0, %x0;", &[0x5f00_0000], 0x7fff_ffff),
    ("cvt.rzi.s32.f32 %y0, %x0;", &[0xdf00_0000], 0x8000_0000),
    ("cvt.rzi.u32.f32 %y0, %x0;", &[0xbf80_0000], 0),
    ("cvt.rzi.s32.f32 %y0, %x0;", &[0x7fc0_0000], 0),
    ("cvt.rzi.s64.f64 %y0, %x0;", &[0xc000_0000_0000_0000], (-2i64) as u64),
    ("cvt.rni.u8.f32 %y0, %x0;", &[0x4400_0000], 255),
    ("cvt.rzi.s32.f16 %y0, %x0;", &[0x4200], 3),
    // int -> float with rounding: 2^24 + 1 is not representable in f32
    ("cvt.rn.f32.s32 %y0, %x0;", &[0x0100_0001], 0x4b80_0000),
    ("cvt.rp.f32.s32 %y0, %x0;", &[0x0100_0001], 0x4b80_0001),
    ("cvt.rn.f32.s32 %y0, %x0;", &[0xffff_ffff], 0xbf80_0000),
    ("cvt.rn.f32.u32 %y0, %x0;", &[0xffff_ffff], 0x4f80_0000),
    ("cvt.rz.f32.u32 %y0, %x0;", &[0xffff_ffff], 0x4f7f_ffff),
    ("cvt.rn.f64.s64 %y0, %x0;", &[(-3i64) as u64], 0xc008_0000_0000_0000),
    ("cvt.rn.f16.s32 %y0, %x0;", &[70000], 0x7c00),
    ("cvt.rn.f32.u64 %y0, %x0;", &[u64::MAX], 0x5f80_0000),
    // float -> float round to integer; saturation; tf32
    ("cvt.rni.f32.f32 %y0, %x0;", &[0x4020_0000], 0x4000_0000),
    ("cvt.rmi.f32.f32 %y0, %x0;", &[0xbfc0_0000], 0xc000_0000),
    ("cvt.rzi.f32.f32 %y0, %x0;", &[0xbf00_0000], 0x8000_0000),
    ("cvt.sat.f32.f32 %y0, %x0;", &[0x4000_0000], 0x3f80_0000),
    ("cvt.sat.f32.f32 %y0, %x0;", &[0x7fc0_0000], 0),
    ("cvt.rna.tf32.f32 %y0, %x0;", &[0x3f80_1000], 0x3f80_2000),
    ("cvt.rna.tf32.f32 %y0, %x0;", &[0x3f80_0fff], 0x3f80_0000),
];

#[test]
fn cvt_matches_the_isa() {
    check_table(CASES);
}
