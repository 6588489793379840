//! `cvt` in every form nvcc emits (PTX ISA 9.x "cvt"): int<->int with truncation, extension and `.sat`;
//! int->float and float->float with `.rn/.rz/.rm/.rp`; float->int with `.rni/.rzi/.rmi/.rpi` (saturating,
//! NaN -> 0); float->float round-to-integer; `.ftz`, `.sat`, `.relu`; packed f16x2/bf16x2 from two f32;
//! `cvt.rna.tf32.f32`.

use super::float::{self, round_to, store, F32, TF32};
use super::int::{mask, read};
use crate::ir::{FMods, FTy, IntTy, Rnd, Ty};

/// Rounds f64 to an integer with an integer rounding mode.
fn round_int(x: f64, rnd: Rnd) -> f64 {
    match rnd {
        Rnd::Rzi | Rnd::Rz => x.trunc(),
        Rnd::Rmi | Rnd::Rm => x.floor(),
        Rnd::Rpi | Rnd::Rp => x.ceil(),
        _ => x.round_ties_even(),
    }
}

pub fn cvt(dt: Ty, st: Ty, m: FMods, a: u64) -> u64 {
    match (dt, st) {
        (Ty::I(d), Ty::I(s)) => {
            let v = read(s, a);
            if m.sat {
                let (lo, hi) = range(d);
                (v.clamp(lo, hi) as u64) & mask(d.bits)
            } else {
                (v as u64) & mask(d.bits)
            }
        }
        (Ty::F(d), Ty::I(s)) => {
            let v = read(s, a);
            let x = v as f64;
            let sticky = float::sign_of_err(v, x);
            let rnd = if m.rnd == Rnd::Approx { Rnd::Rn } else { m.rnd };
            store(d, x, sticky, FMods { rnd, ..m })
        }
        (Ty::I(d), Ty::F(s)) => {
            let x = float::load(s, a, m.ftz);
            if x.is_nan() {
                return 0;
            }
            let r = round_int(x, m.rnd);
            let (lo, hi) = range(d);
            let v = if r >= hi as f64 {
                hi
            } else if r <= lo as f64 {
                lo
            } else {
                r as i128
            };
            (v as u64) & mask(d.bits)
        }
        (Ty::F(d), Ty::F(s)) => {
            let x = float::load(s, a, m.ftz);
            if matches!(m.rnd, Rnd::Rni | Rnd::Rzi | Rnd::Rmi | Rnd::Rpi) {
                let r = if x.is_finite() {
                    round_int(x, m.rnd).copysign(x)
                } else {
                    x
                };
                return store(d, r, 0, FMods { rnd: Rnd::Rn, ..m });
            }
            let rnd = if m.rnd == Rnd::Approx { Rnd::Rn } else { m.rnd };
            store(d, x, 0, FMods { rnd, ..m })
        }
    }
}

fn range(t: IntTy) -> (i128, i128) {
    if t.signed {
        (-(1i128 << (t.bits - 1)), (1i128 << (t.bits - 1)) - 1)
    } else {
        (0, mask(t.bits) as i128)
    }
}

/// `cvt.rna.tf32.f32`: round to 10 mantissa bits, ties away; result as f32 bits.
pub fn tf32(a: u64) -> u64 {
    let x = f32::from_bits(a as u32) as f64;
    if x.is_nan() {
        return 0x7fff_ffff;
    }
    let b = round_to(TF32, x, 0, Rnd::Rna);
    // re-encode TF32 bits (8-bit exponent, 10-bit mantissa) as an f32 bit pattern
    let sign = (b >> 18) & 1;
    let exp = (b >> 10) & 0xff;
    let man = b & 0x3ff;
    (sign << 31) | (exp << 23) | (man << 13)
}

/// `cvt.rn[.relu].{f16x2,bf16x2}.f32 d, hi, lo`.
pub fn pack(dt: FTy, m: FMods, hi: u64, lo: u64) -> u64 {
    let s = if dt == FTy::F16x2 { FTy::F16 } else { FTy::BF16 };
    let conv = |v: u64| {
        let x = f32::from_bits(v as u32) as f64;
        store(
            s,
            x,
            0,
            FMods {
                rnd: if m.rnd == Rnd::Approx { Rnd::Rn } else { m.rnd },
                ..m
            },
        ) & 0xffff
    };
    conv(lo) | (conv(hi) << 16)
}

pub const _F32: float::Fmt = F32;
