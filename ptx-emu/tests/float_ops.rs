//! Floating-point instructions: f32/f64 with every rounding mode, ftz and sat; f16/bf16 scalar and packed;
//! comparisons; the approximate functions within the ISA's stated accuracy. Expected bit patterns are
//! worked out from the IEEE 754 / PTX ISA definitions by hand.

#![allow(clippy::needless_range_loop)] // index loops mirror the math being checked

mod common;
use common::{check_table, eval, f32b, f64b};

const ONE: u64 = 0x3f80_0000;
/// 1 + 2^-23 (one ulp above 1.0f)
const ONE_UP: u64 = 0x3f80_0001;
/// 2^-24, half an ulp of 1.0f: 1 + 2^-24 is a tie
const HALF_ULP: u64 = 0x3380_0000;
/// 0x00400000: an f32 subnormal (2^-127)
const SUB: u64 = 0x0040_0000;

const CASES: &[(&str, &[u64], u64)] = &[
    // add with every rounding mode: 1 + 2^-24 is exactly between 1 and 1+2^-23
    ("add.rn.f32 %y0, %x0, %x1;", &[ONE, HALF_ULP], ONE),
    ("add.rz.f32 %y0, %x0, %x1;", &[ONE, HALF_ULP], ONE),
    ("add.rm.f32 %y0, %x0, %x1;", &[ONE, HALF_ULP], ONE),
    ("add.rp.f32 %y0, %x0, %x1;", &[ONE, HALF_ULP], ONE_UP),
    // 1 + 2^-24 + tiny: exact sum slightly above the tie
    (
        "add.rn.f32 %y0, %x0, %x1; add.rp.f32 %y1, %x0, %x2;",
        &[ONE, 0x3380_0001, 0x2000_0000],
        ONE_UP,
    ),
    // -1 - 2^-24 rounds toward -inf to -(1+2^-23)
    ("sub.rm.f32 %y0, %x0, %x1;", &[0xbf80_0000, HALF_ULP], 0xbf80_0001),
    ("sub.rz.f32 %y0, %x0, %x1;", &[0xbf80_0000, HALF_ULP], 0xbf80_0000),
    // mul: (1+2^-23)^2 = 1 + 2^-22 + 2^-46 -> rn gives 1+2^-22, rp gives 1+2^-22+2^-23
    ("mul.rn.f32 %y0, %x0, %x0;", &[ONE_UP], 0x3f80_0002),
    ("mul.rp.f32 %y0, %x0, %x0;", &[ONE_UP], 0x3f80_0003),
    ("mul.rz.f32 %y0, %x0, %x0;", &[ONE_UP], 0x3f80_0002),
    // fma is single-rounded: (1+2^-23)*(1+2^-23) - (1+2^-22) = 2^-46
    ("fma.rn.f32 %y0, %x0, %x0, %x1;", &[ONE_UP, 0xbf80_0002], 0x2880_0000),
    ("fma.rm.f32 %y0, %x0, %x1, %x2;", &[ONE, HALF_ULP, ONE], ONE),
    ("fma.rp.f32 %y0, %x0, %x1, %x2;", &[ONE, HALF_ULP, ONE], ONE_UP),
    (
        "mad.rn.f32 %y0, %x0, %x1, %x2;",
        &[0x4000_0000, 0x4040_0000, ONE],
        0x40e0_0000,
    ),
    // sat clamps to [0, 1], NaN -> 0
    ("add.sat.f32 %y0, %x0, %x1;", &[ONE, ONE], ONE),
    ("add.sat.f32 %y0, %x0, %x1;", &[0xbf80_0000, 0], 0),
    ("mul.sat.f32 %y0, %x0, %x1;", &[0x7fc0_0000, ONE], 0),
    (
        "fma.rn.sat.f32 %y0, %x0, %x1, %x2;",
        &[0x3f00_0000, 0x3f00_0000, 0],
        0x3e80_0000,
    ),
    // ftz flushes subnormal inputs and results (sign preserved)
    ("add.ftz.f32 %y0, %x0, %x1;", &[SUB, 0], 0),
    ("add.f32 %y0, %x0, %x1;", &[SUB, 0], SUB),
    ("mul.ftz.f32 %y0, %x0, %x1;", &[0x8080_0000, 0x3f00_0000], 0x8000_0000),
    ("mul.f32 %y0, %x0, %x1;", &[0x8080_0000, 0x3f00_0000], 0x8040_0000),
    // div / rcp / sqrt correctly rounded; div.rz of 1/3
    ("div.rn.f32 %y0, %x0, %x1;", &[ONE, 0x4040_0000], 0x3eaa_aaab),
    ("div.rz.f32 %y0, %x0, %x1;", &[ONE, 0x4040_0000], 0x3eaa_aaaa),
    ("div.rp.f32 %y0, %x0, %x1;", &[ONE, 0x4040_0000], 0x3eaa_aaab),
    ("rcp.rn.f32 %y0, %x0;", &[0x4040_0000], 0x3eaa_aaab),
    ("sqrt.rn.f32 %y0, %x0;", &[0x4000_0000], 0x3fb5_04f3),
    ("sqrt.rn.f32 %y0, %x0;", &[0xbf80_0000], 0x7fff_ffff),
    // sqrt / rcp with directed rounding: sqrt(2) = 1.41421356237..., RN 0x3fb504f3 (below) ; 1/3 RN 0x3eaaaaab (above)
    ("sqrt.rz.f32 %y0, %x0;", &[0x4000_0000], 0x3fb5_04f3),
    ("sqrt.rp.f32 %y0, %x0;", &[0x4000_0000], 0x3fb5_04f4),
    ("rcp.rz.f32 %y0, %x0;", &[0x4040_0000], 0x3eaa_aaaa),
    ("rcp.rm.f32 %y0, %x0;", &[0x4040_0000], 0x3eaa_aaaa),
    ("rcp.rp.f32 %y0, %x0;", &[0x4040_0000], 0x3eaa_aaab),
    ("sqrt.rm.f64 %y0, %x0;", &[0x4000_0000_0000_0000], 0x3ff6_a09e_667f_3bcc),
    ("sqrt.rp.f64 %y0, %x0;", &[0x4000_0000_0000_0000], 0x3ff6_a09e_667f_3bcd),
    ("rcp.rz.f64 %y0, %x0;", &[0x4008_0000_0000_0000], 0x3fd5_5555_5555_5555),
    ("rcp.rp.f64 %y0, %x0;", &[0x4008_0000_0000_0000], 0x3fd5_5555_5555_5556),
    // min/max: NaN operand returns the other; .NaN propagates; -0 < +0
    ("min.f32 %y0, %x0, %x1;", &[0x7fc0_0000, ONE], ONE),
    ("max.NaN.f32 %y0, %x0, %x1;", &[0x7fc0_0000, ONE], 0x7fff_ffff),
    ("min.f32 %y0, %x0, %x1;", &[0x8000_0000, 0], 0x8000_0000),
    ("max.f32 %y0, %x0, %x1;", &[0x8000_0000, 0], 0),
    ("abs.f32 %y0, %x0;", &[0xbf80_0000], ONE),
    ("neg.f32 %y0, %x0;", &[ONE], 0xbf80_0000),
    ("abs.ftz.f32 %y0, %x0;", &[0x8040_0000], 0),
    // copysign.f32 d, a, b: magnitude of b, sign of a
    ("copysign.f32 %y0, %x0, %x1;", &[0x8000_0000, 0x4000_0000], 0xc000_0000),
    // f64
    (
        "add.rn.f64 %y0, %x0, %x1;",
        &[0x3ff0_0000_0000_0000, 0x3ca0_0000_0000_0000],
        0x3ff0_0000_0000_0000,
    ),
    (
        "add.rp.f64 %y0, %x0, %x1;",
        &[0x3ff0_0000_0000_0000, 0x3ca0_0000_0000_0000],
        0x3ff0_0000_0000_0001,
    ),
    (
        "add.rz.f64 %y0, %x0, %x1;",
        &[0xbff0_0000_0000_0000, 0xbca0_0000_0000_0000],
        0xbff0_0000_0000_0000,
    ),
    (
        "add.rm.f64 %y0, %x0, %x1;",
        &[0xbff0_0000_0000_0000, 0xbca0_0000_0000_0000],
        0xbff0_0000_0000_0001,
    ),
    (
        "div.rn.f64 %y0, %x0, %x1;",
        &[0x3ff0_0000_0000_0000, 0x4008_0000_0000_0000],
        0x3fd5_5555_5555_5555,
    ),
    (
        "div.rp.f64 %y0, %x0, %x1;",
        &[0x3ff0_0000_0000_0000, 0x4008_0000_0000_0000],
        0x3fd5_5555_5555_5556,
    ),
    (
        "mul.rz.f64 %y0, %x0, %x0;",
        &[0x3ff0_0000_0000_0001],
        0x3ff0_0000_0000_0002,
    ),
    (
        "mul.rp.f64 %y0, %x0, %x0;",
        &[0x3ff0_0000_0000_0001],
        0x3ff0_0000_0000_0003,
    ),
    (
        "fma.rn.f64 %y0, %x0, %x1, %x2;",
        &[0x4000_0000_0000_0000, 0x4008_0000_0000_0000, 0x3ff0_0000_0000_0000],
        0x401c_0000_0000_0000,
    ),
    ("sqrt.rn.f64 %y0, %x0;", &[0x4010_0000_0000_0000], 0x4000_0000_0000_0000),
    // fma.f64 with directed rounding: (1+2^-52)^2 = 1 + 2^-51 + 2^-104
    (
        "fma.rn.f64 %y0, %x0, %x0, %x1;",
        &[0x3ff0_0000_0000_0001, 0],
        0x3ff0_0000_0000_0002,
    ),
    (
        "fma.rp.f64 %y0, %x0, %x0, %x1;",
        &[0x3ff0_0000_0000_0001, 0],
        0x3ff0_0000_0000_0003,
    ),
    (
        "fma.rz.f64 %y0, %x0, %x0, %x1;",
        &[0x3ff0_0000_0000_0001, 0],
        0x3ff0_0000_0000_0002,
    ),
    // ... - 1 = 2^-51 (1 + 2^-53): a tie at 53 bits -> rn even 2^-51, rp one ulp up, rm/rz 2^-51
    (
        "fma.rn.f64 %y0, %x0, %x0, %x1;",
        &[0x3ff0_0000_0000_0001, 0xbff0_0000_0000_0000],
        0x3cc0_0000_0000_0000,
    ),
    (
        "fma.rp.f64 %y0, %x0, %x0, %x1;",
        &[0x3ff0_0000_0000_0001, 0xbff0_0000_0000_0000],
        0x3cc0_0000_0000_0001,
    ),
    (
        "fma.rm.f64 %y0, %x0, %x0, %x1;",
        &[0x3ff0_0000_0000_0001, 0xbff0_0000_0000_0000],
        0x3cc0_0000_0000_0000,
    ),
    // negative result: -(1 + 2^-51 + 2^-104): rm goes away from zero, rz toward
    (
        "fma.rm.f64 %y0, %x0, %x1, %x2;",
        &[0x3ff0_0000_0000_0001, 0xbff0_0000_0000_0001, 0],
        0xbff0_0000_0000_0003,
    ),
    (
        "fma.rz.f64 %y0, %x0, %x1, %x2;",
        &[0x3ff0_0000_0000_0001, 0xbff0_0000_0000_0001, 0],
        0xbff0_0000_0000_0002,
    ),
    ("neg.f64 %y0, %x0;", &[0x4000_0000_0000_0000], 0xc000_0000_0000_0000),
    // f16 scalar: 1 + 2^-11 is a tie between 1 (0x3c00) and 1+2^-10 (0x3c01): even -> 0x3c00
    ("add.rn.f16 %y0, %x0, %x1;", &[0x3c00, 0x1000], 0x3c00),
    ("add.rn.f16 %y0, %x0, %x1;", &[0x3c01, 0x1000], 0x3c02),
    ("mul.rn.f16 %y0, %x0, %x1;", &[0x4000, 0x4200], 0x4600),
    ("fma.rn.f16 %y0, %x0, %x1, %x2;", &[0x4000, 0x4200, 0x3c00], 0x4700),
    ("max.f16 %y0, %x0, %x1;", &[0xbc00, 0x3c00], 0x3c00),
    ("min.f16 %y0, %x0, %x1;", &[0xbc00, 0x3c00], 0xbc00),
    ("neg.f16 %y0, %x0;", &[0x3c00], 0xbc00),
    ("abs.f16 %y0, %x0;", &[0xbc00], 0x3c00),
    // f16 overflow: 65504 + 32 = 65536 -> inf (rn); rz keeps max finite 0x7bff
    ("add.rn.f16 %y0, %x0, %x1;", &[0x7bff, 0x5000], 0x7c00),
    ("add.rz.f16 %y0, %x0, %x1;", &[0x7bff, 0x5000], 0x7bff),
    ("fma.rn.sat.f16 %y0, %x0, %x1, %x2;", &[0x4000, 0x4000, 0], 0x3c00),
    ("fma.rn.relu.f16 %y0, %x0, %x1, %x2;", &[0xc000, 0x4000, 0], 0),
    // f16x2: lanes independent (low half first)
    ("add.f16x2 %y0, %x0, %x1;", &[0x4000_3c00, 0x3c00_3c00], 0x4200_4000),
    ("mul.f16x2 %y0, %x0, %x1;", &[0x4000_3c00, 0x4200_4400], 0x4600_4400),
    (
        "fma.rn.f16x2 %y0, %x0, %x1, %x2;",
        &[0x4000_4000, 0x4000_4000, 0xbc00_3c00],
        0x4200_4500,
    ),
    ("abs.f16x2 %y0, %x0;", &[0xbc00_c000], 0x3c00_4000),
    ("max.f16x2 %y0, %x0, %x1;", &[0xbc00_4000, 0x3c00_3c00], 0x3c00_4000),
    // bf16: 1 + 2^-8 is a tie between 0x3f80 and 0x3f81 -> even 0x3f80; 0x3f81 + 2^-8 -> 0x3f82
    ("add.rn.bf16 %y0, %x0, %x1;", &[0x3f80, 0x3b80], 0x3f80),
    ("add.rn.bf16 %y0, %x0, %x1;", &[0x3f81, 0x3b80], 0x3f82),
    ("mul.rn.bf16 %y0, %x0, %x1;", &[0x4000, 0x4040], 0x40c0),
    ("fma.rn.bf16 %y0, %x0, %x1, %x2;", &[0x4000, 0x4040, 0x3f80], 0x40e0),
    (
        "fma.rn.bf16x2 %y0, %x0, %x1, %x2;",
        &[0x4000_3f80, 0x4040_3f80, 0x3f80_3f80],
        0x40e0_4000,
    ),
    ("add.rn.bf16x2 %y0, %x0, %x1;", &[0x4000_3f80, 0x3f80_3f80], 0x4040_4000),
    ("neg.bf16x2 %y0, %x0;", &[0x4000_3f80], 0xc000_bf80),
    // comparisons: ordered vs unordered
    (
        "setp.lt.f32 %p0, %x0, %x1; selp.u64 %y0, 1, 0, %p0;",
        &[0x7fc0_0000, ONE],
        0,
    ),
    (
        "setp.ltu.f32 %p0, %x0, %x1; selp.u64 %y0, 1, 0, %p0;",
        &[0x7fc0_0000, ONE],
        1,
    ),
    (
        "setp.ne.f32 %p0, %x0, %x1; selp.u64 %y0, 1, 0, %p0;",
        &[0x7fc0_0000, ONE],
        0,
    ),
    (
        "setp.neu.f32 %p0, %x0, %x1; selp.u64 %y0, 1, 0, %p0;",
        &[0x7fc0_0000, ONE],
        1,
    ),
    (
        "setp.nan.f32 %p0, %x0, %x1; selp.u64 %y0, 1, 0, %p0;",
        &[0x7fc0_0000, ONE],
        1,
    ),
    ("setp.num.f32 %p0, %x0, %x1; selp.u64 %y0, 1, 0, %p0;", &[0, ONE], 1),
    (
        "setp.eq.f32 %p0, %x0, %x1; selp.u64 %y0, 1, 0, %p0;",
        &[0x8000_0000, 0],
        1,
    ),
    ("setp.eq.ftz.f32 %p0, %x0, %x1; selp.u64 %y0, 1, 0, %p0;", &[SUB, 0], 1),
    (
        "setp.gt.f64 %p0, %x0, %x1; selp.u64 %y0, 1, 0, %p0;",
        &[0x4000_0000_0000_0000, 0x3ff0_0000_0000_0000],
        1,
    ),
    (
        "setp.lt.f16 %p0, %x0, %x1; selp.u64 %y0, 1, 0, %p0;",
        &[0xbc00, 0x3c00],
        1,
    ),
    (
        "setp.lt.bf16 %p0, %x0, %x1; selp.u64 %y0, 1, 0, %p0;",
        &[0x3f80, 0xbf80],
        0,
    ),
    // setp on packed pairs: p from the low halves, q from the high halves (y0 = p | 2q)
    (
        "setp.lt.f16x2 %p0|%p1, %x0, %x1; selp.u64 %y0, 1, 0, %p0; selp.u64 %t0, 2, 0, %p1; or.b64 %y0, %y0, %t0;",
        &[0x4000_3c00, 0x3c00_4000],
        1,
    ),
    (
        "setp.gt.bf16x2 %p0|%p1, %x0, %x1; selp.u64 %y0, 1, 0, %p0; selp.u64 %t0, 2, 0, %p1; or.b64 %y0, %y0, %t0;",
        &[0x4000_3f80, 0x3f80_4000],
        2,
    ),
    (
        "testp.notanumber.f32 %p0, %x0; selp.u64 %y0, 1, 0, %p0;",
        &[0x7fc0_0000],
        1,
    ),
    ("testp.subnormal.f32 %p0, %x0; selp.u64 %y0, 1, 0, %p0;", &[SUB], 1),
    ("testp.finite.f32 %p0, %x0; selp.u64 %y0, 1, 0, %p0;", &[0x7f80_0000], 0),
    (
        "selp.f32 %y0, %x0, %x1, %p0; setp.eq.s32 %p0, 0, 0; selp.f32 %y0, %x0, %x1, %p0;",
        &[ONE, 0],
        ONE,
    ),
    // float immediates
    ("add.f32 %y0, %x0, 0f3F800000;", &[ONE], 0x4000_0000),
    (
        "add.f64 %y0, %x0, 0d3FF0000000000000;",
        &[0x3ff0_0000_0000_0000],
        0x4000_0000_0000_0000,
    ),
    ("mov.f32 %y0, 0fBF800000;", &[], 0xbf80_0000),
    // approximate: exact at these points
    ("ex2.approx.f32 %y0, %x0;", &[0x4040_0000], 0x4100_0000),
    ("ex2.approx.ftz.f32 %y0, %x0;", &[0xc300_0000], 0),
    ("lg2.approx.f32 %y0, %x0;", &[0x4100_0000], 0x4040_0000),
    ("rsqrt.approx.f32 %y0, %x0;", &[0x4080_0000], 0x3f00_0000),
    ("rcp.approx.f32 %y0, %x0;", &[0x4000_0000], 0x3f00_0000),
    (
        "rcp.approx.ftz.f64 %y0, %x0;",
        &[0x4000_0000_0000_0000],
        0x3fe0_0000_0000_0000,
    ),
    ("sqrt.approx.f32 %y0, %x0;", &[0x4110_0000], 0x4040_0000),
    ("sin.approx.f32 %y0, %x0;", &[0], 0),
    ("cos.approx.f32 %y0, %x0;", &[0], ONE),
    ("tanh.approx.f32 %y0, %x0;", &[0], 0),
    ("ex2.approx.f16 %y0, %x0;", &[0x4000], 0x4400),
    ("ex2.approx.ftz.bf16x2 %y0, %x0;", &[0x4000_3f80], 0x4080_4000),
    (
        "div.approx.f32 %y0, %x0, %x1;",
        &[0x4100_0000, 0x4000_0000],
        0x4080_0000,
    ),
    ("div.full.f32 %y0, %x0, %x1;", &[0x4100_0000, 0x4000_0000], 0x4080_0000),
    // div.approx: for 2^126 < |b| < 2^128 the result is zero
    ("div.approx.f32 %y0, %x0, %x1;", &[ONE, 0x7f00_0000], 0),
];

#[test]
fn float_instructions_match_the_isa() {
    check_table(CASES);
}

/// The ISA's stated accuracy of the approximate functions, checked over a sweep of inputs.
#[test]
fn approximate_functions_within_isa_accuracy() {
    let ulp = |a: f32, b: f32| (a.to_bits() as i64 - b.to_bits() as i64).unsigned_abs();
    for i in 1..200 {
        let x = i as f32 * 0.37 - 30.0;
        // ex2.approx.f32: max 2 ulp relative error
        let got = f32::from_bits(eval("ex2.approx.f32 %y0, %x0;", &[f32b(x)])[0] as u32);
        assert!(ulp(got, (x as f64).exp2() as f32) <= 2, "ex2 {x}");
        let p = x.abs() + 0.01;
        // lg2.approx.f32: max abs error 2^-22.6 for x in [0.5, 2], else 4 ulp
        let got = f32::from_bits(eval("lg2.approx.f32 %y0, %x0;", &[f32b(p)])[0] as u32);
        let want = (p as f64).log2();
        assert!(
            (got as f64 - want).abs() <= 2f64.powf(-22.6).max(4.0 * want.abs() * 2f64.powi(-23)),
            "lg2 {p}"
        );
        // rsqrt.approx.f32: max 2 ulp; rcp.approx.f32: 1 ulp
        let got = f32::from_bits(eval("rsqrt.approx.f32 %y0, %x0;", &[f32b(p)])[0] as u32);
        assert!(ulp(got, (1.0 / (p as f64).sqrt()) as f32) <= 2, "rsqrt {p}");
        let got = f32::from_bits(eval("rcp.approx.f32 %y0, %x0;", &[f32b(x)])[0] as u32);
        assert!(ulp(got, (1.0 / x as f64) as f32) <= 1, "rcp {x}");
        // sin/cos.approx.f32: max abs error 2^-20.5 in [-pi, pi]
        let a = (x / 30.0) * std::f32::consts::PI;
        let got = f32::from_bits(eval("sin.approx.f32 %y0, %x0;", &[f32b(a)])[0] as u32);
        assert!((got as f64 - (a as f64).sin()).abs() <= 2f64.powf(-20.5), "sin {a}");
        let got = f32::from_bits(eval("cos.approx.f32 %y0, %x0;", &[f32b(a)])[0] as u32);
        assert!((got as f64 - (a as f64).cos()).abs() <= 2f64.powf(-20.5), "cos {a}");
        // tanh.approx.f32: max relative error 2^-10.987
        let got = f32::from_bits(eval("tanh.approx.f32 %y0, %x0;", &[f32b(a)])[0] as u32);
        let want = (a as f64).tanh();
        assert!(
            (got as f64 - want).abs() <= want.abs() * 2f64.powf(-10.987) + 1e-30,
            "tanh {a}"
        );
    }
    let _ = f64b(0.0);
}

/// Directed-rounding fma.f64 against exact integer arithmetic: for a, b, c whose exact a*b + c is an
/// integer multiple of 2^e that fits in i128, rm <= exact <= rp, they are equal or adjacent, rz is the one
/// toward zero, and rn is one of the two.
#[test]
fn fma_f64_directed_rounding_brackets_the_exact_value() {
    let mut s = 0x9e37_79b9_7f4a_7c15u64;
    let mut rnd = || {
        s ^= s << 13;
        s ^= s >> 7;
        s ^= s << 17;
        s
    };
    for _ in 0..300 {
        let (ma, mb) = ((rnd() >> 11) | (1 << 52), (rnd() >> 11) | (1 << 52));
        let (ea, eb) = ((rnd() % 9) as i32 - 4 - 52, (rnd() % 9) as i32 - 4 - 52);
        let shift = (rnd() % 20) as i32;
        let mc = (rnd() >> 11) | (1 << 52);
        let neg_c = rnd() % 2 == 0;
        let a = ma as f64 * 2f64.powi(ea);
        let b = mb as f64 * 2f64.powi(eb);
        let c = (if neg_c { -1.0 } else { 1.0 }) * mc as f64 * 2f64.powi(ea + eb + shift);
        let scale = 2f64.powi(-(ea + eb));
        let exact: i128 = ma as i128 * mb as i128 + (if neg_c { -1 } else { 1 }) * ((mc as i128) << shift);
        let run = |mode: &str| {
            let y = eval(
                &format!("fma.{mode}.f64 %y0, %x0, %x1, %x2;"),
                &[a.to_bits(), b.to_bits(), c.to_bits()],
            )[0];
            let r = f64::from_bits(y);
            (r * scale) as i128
        };
        let (rn, rz, rm, rp) = (run("rn"), run("rz"), run("rm"), run("rp"));
        assert!(rm <= exact && exact <= rp, "{a} {b} {c}: rm {rm} exact {exact} rp {rp}");
        assert!(rn == rm || rn == rp);
        assert_eq!(rz, if exact >= 0 { rm } else { rp });
        if rm == exact {
            assert_eq!(rp, exact);
        }
    }
}
