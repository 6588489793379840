//! Hardware-honest approximate math (`Options::approx`, CLI `--approx perturbed`).
//!
//! In the exact mode (the default) every `.approx` instruction returns the correctly rounded value
//! of its function. Hardware does not: it returns some value within the error bound the PTX ISA
//! states for that instruction and input range. The perturbed mode returns, for each input, a value
//! chosen deterministically from `(seed, instruction, input bits)` among the representable values
//! within that bound — a quarter of the time the lowest, a quarter the highest, otherwise any — and
//! never outside it. The same input gives the same output wherever it is computed, as on a GPU.
//!
//! Kept exact (the ISA's special values, or no stated bound): NaN, infinite and zero results and
//! inputs, inputs outside the range a bound is stated for, results whose candidates would include
//! subnormals under `.ftz`, and results where no representable value but the exact one lies within
//! the bound.

use super::float::{load, store, to_f64};
use crate::ir::{FBin, FMods, FTy, FUn, Rnd};

/// How far an approximate result may be from the exact one.
#[derive(Clone, Copy, Debug, PartialEq)]
pub enum Bound {
    /// At most this many units in the last place of the exact result (in the result's format).
    Ulp(f64),
    /// Relative error at most this value.
    Rel(f64),
    /// Absolute error at most this value.
    Abs(f64),
}

/// The PTX ISA's bound (9.1, "Floating Point Instructions" / "Half Precision Floating Point
/// Instructions") for an approximate unary instruction of type `t` at input `x`, or None where the
/// instruction is exact here or the ISA states no bound for that input.
pub fn unary_bound(op: FUn, t: FTy, m: FMods, x: f64) -> Option<Bound> {
    let approx = m.rnd == Rnd::Approx;
    let pi = std::f64::consts::PI;
    Some(match (op, t) {
        // "2 ulp from correctly rounded result across the full range of inputs"
        (FUn::Ex2, FTy::F32) => Bound::Ulp(2.0),
        (FUn::Ex2, FTy::F16) => Bound::Rel(2f64.powf(-9.9)),
        (FUn::Ex2, FTy::BF16) => Bound::Rel(2f64.powi(-7)),
        // absolute 2^-22 in (0.5, 2), relative 2^-22 for other positive finite inputs
        (FUn::Lg2, FTy::F32) if x > 0.5 && x < 2.0 => Bound::Abs(2f64.powi(-22)),
        (FUn::Lg2, FTy::F32) if x > 0.0 => Bound::Rel(2f64.powi(-22)),
        // absolute 2^-20.5 in [-2pi, 2pi], 2^-14.7 in [-100pi, 100pi], no guarantee beyond
        (FUn::Sin | FUn::Cos, FTy::F32) if x.abs() <= 2.0 * pi => Bound::Abs(2f64.powf(-20.5)),
        (FUn::Sin | FUn::Cos, FTy::F32) if x.abs() <= 100.0 * pi => Bound::Abs(2f64.powf(-14.7)),
        (FUn::Tanh, FTy::F32) => Bound::Rel(2f64.powi(-11)),
        (FUn::Tanh, FTy::F16) => Bound::Abs(2f64.powf(-10.987)),
        (FUn::Tanh, FTy::BF16) => Bound::Abs(2f64.powi(-8)),
        // relative 2^-22.9 / 2^-23 over the positive finite range
        (FUn::Rsqrt, FTy::F32) if x > 0.0 => Bound::Rel(2f64.powf(-22.9)),
        (FUn::Sqrt, FTy::F32) if approx && x > 0.0 => Bound::Rel(2f64.powi(-23)),
        // "the maximum ulp error is 1 across the full range of inputs"
        (FUn::Rcp, FTy::F32) if approx => Bound::Ulp(1.0),
        // rsqrt.approx.f64 and rcp.approx.ftz.f64: the ISA states no bound, so they stay exact
        _ => return None,
    })
}

/// The bound of `div.approx.f32` and `div.full.f32`: 2 ulp for 2^-126 <= |b| <= 2^126 (div.full's
/// "full range" bound is applied there too; beyond it both stay exact here).
pub fn div_bound(t: FTy, m: FMods, b: f64) -> Option<Bound> {
    (t == FTy::F32 && m.rnd == Rnd::Approx && (2f64.powi(-126)..=2f64.powi(126)).contains(&b.abs()))
        .then_some(Bound::Ulp(2.0))
}

fn splitmix(mut z: u64) -> u64 {
    z = z.wrapping_add(0x9e37_79b9_7f4a_7c15);
    z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
    z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
    z ^ (z >> 31)
}

/// Bits of format `t` (16, 32 or 64).
fn width(t: FTy) -> u32 {
    match t {
        FTy::F64 => 64,
        FTy::F32 => 32,
        _ => 16,
    }
}

fn mantissa_bits(t: FTy) -> i32 {
    match t {
        FTy::F64 => 52,
        FTy::F32 => 23,
        FTy::BF16 => 7,
        _ => 10,
    }
}

fn min_normal_exp(t: FTy) -> i32 {
    match t {
        FTy::F64 => -1022,
        FTy::F32 | FTy::BF16 => -126,
        _ => -14,
    }
}

/// The value of scalar bits of format `t`.
fn value(t: FTy, bits: u64) -> f64 {
    match t {
        FTy::F64 => f64::from_bits(bits),
        FTy::F32 => f32::from_bits(bits as u32) as f64,
        _ => to_f64(super::float::fmt_of(t), bits & 0xffff),
    }
}

/// Sign-magnitude bits -> an integer that orders like the values (-0 and +0 adjacent).
fn ordered(t: FTy, bits: u64) -> i128 {
    let w = width(t);
    let sign = 1u64 << (w - 1);
    let mag = (bits & (sign - 1)) as i128;
    if bits & sign != 0 {
        -mag - 1
    } else {
        mag
    }
}

fn unordered(t: FTy, o: i128) -> u64 {
    let sign = 1u64 << (width(t) - 1);
    if o < 0 {
        ((-o - 1) as u64) | sign
    } else {
        o as u64
    }
}

/// The unit in the last place at `e` in format `t` (the spacing of the binade, subnormals included).
fn ulp(t: FTy, e: f64) -> f64 {
    let exp = if e == 0.0 {
        i32::MIN
    } else {
        e.abs().log2().floor() as i32
    };
    2f64.powi(exp.max(min_normal_exp(t)) - mantissa_bits(t))
}

/// Replaces the correctly rounded result `exact_bits` (format `t`) of the function whose value is
/// `truth` (computed in f64) by a representable value within `bound` of `truth`, chosen from `key`
/// (seed, instruction and inputs hashed together).
pub fn perturb(t: FTy, m: FMods, exact_bits: u64, truth: f64, bound: Bound, key: u64) -> u64 {
    let (e, rounded) = (truth, value(t, exact_bits));
    if !(e.is_finite() && rounded.is_finite()) || e == 0.0 || rounded == 0.0 || m.sat || m.relu {
        return exact_bits;
    }
    let half_width = match bound {
        Bound::Ulp(n) => n * ulp(t, e),
        Bound::Rel(r) => r * e.abs(),
        Bound::Abs(a) => a,
    };
    // Shrink by a relative 2^-20 so that the f64 arithmetic below can never step outside the bound
    // (the f64 exact value itself is within 2^-52 of the true one).
    let half_width = half_width * (1.0 - 2f64.powi(-20));
    let (lo, hi) = (e - half_width, e + half_width);
    let up = FMods {
        rnd: Rnd::Rp,
        ftz: false,
        sat: false,
        relu: false,
        nan: false,
    };
    let lo_bits = store(t, lo, 0, up);
    let hi_bits = store(t, hi, 0, FMods { rnd: Rnd::Rm, ..up });
    let (lo_v, hi_v) = (value(t, lo_bits), value(t, hi_bits));
    if !(lo_v.is_finite() && hi_v.is_finite()) || lo_v > hi_v {
        return exact_bits;
    }
    let tiny = 2f64.powi(min_normal_exp(t));
    if m.ftz && (lo_v.abs() < tiny || hi_v.abs() < tiny || lo_v.signum() != hi_v.signum()) {
        return exact_bits;
    }
    let (a, b) = (ordered(t, lo_bits), ordered(t, hi_bits));
    let h = splitmix(key);
    let o = match h % 4 {
        0 => a,
        1 => b,
        _ => a + ((h >> 2) as i128).rem_euclid(b - a + 1),
    };
    let bits = unordered(t, o);
    // A zero of either sign stands for a result that crossed zero (an absolute bound near 0): keep
    // the exact sign of zero the instruction would give.
    if value(t, bits) == 0.0 {
        return if e.is_sign_negative() { unordered(t, -1) } else { 0 };
    }
    bits
}

fn key(seed: u64, tag: u64, t: FTy, a: u64, b: u64) -> u64 {
    splitmix(splitmix(splitmix(seed ^ tag.wrapping_mul(0x1000_0000_01b3)) ^ a) ^ b ^ ((width(t) as u64) << 56))
}

/// `un_scalar` in the perturbed mode: the exact result of a scalar unary op, perturbed if the
/// instruction is approximate and the ISA states a bound for this input.
pub fn unary(op: FUn, t: FTy, m: FMods, a: u64, exact_bits: u64, seed: u64) -> u64 {
    let x = load(t, a, m.ftz);
    if !x.is_finite() || x == 0.0 {
        return exact_bits;
    }
    let truth = match op {
        FUn::Ex2 => x.exp2(),
        FUn::Lg2 => x.log2(),
        FUn::Sin => x.sin(),
        FUn::Cos => x.cos(),
        FUn::Tanh => x.tanh(),
        FUn::Rsqrt => 1.0 / x.sqrt(),
        FUn::Rcp => 1.0 / x,
        FUn::Sqrt => x.sqrt(),
        FUn::Neg | FUn::Abs | FUn::Mov => return exact_bits,
    };
    match unary_bound(op, t, m, x) {
        Some(bound) => perturb(t, m, exact_bits, truth, bound, key(seed, op as u64, t, a, 0)),
        None => exact_bits,
    }
}

/// `bin_scalar` in the perturbed mode (only `div.approx`/`div.full` are approximate).
pub fn binary(op: FBin, t: FTy, m: FMods, a: u64, b: u64, exact_bits: u64, seed: u64) -> u64 {
    if op != FBin::Div {
        return exact_bits;
    }
    let (x, y) = (load(t, a, m.ftz), load(t, b, m.ftz));
    if !x.is_finite() || x == 0.0 || !y.is_finite() {
        return exact_bits;
    }
    match div_bound(t, m, y) {
        Some(bound) => perturb(t, m, exact_bits, x / y, bound, key(seed, 0xd1d, t, a, b)),
        None => exact_bits,
    }
}

/// Does `op` (with these modifiers) compute an approximation on hardware?
pub fn is_approx_unary(op: FUn, m: FMods) -> bool {
    match op {
        FUn::Ex2 | FUn::Lg2 | FUn::Sin | FUn::Cos | FUn::Tanh | FUn::Rsqrt => true,
        FUn::Sqrt | FUn::Rcp => m.rnd == Rnd::Approx,
        FUn::Neg | FUn::Abs | FUn::Mov => false,
    }
}
