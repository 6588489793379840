//! Floating-point semantics (PTX ISA 9.x "Floating-Point Instructions", "Half Precision"): f16, bf16,
//! f32, f64 and the packed pairs, every rounding mode, `.ftz`, `.sat`, `.relu`, `.NaN`.
//!
//! f32 round-to-nearest uses the host's IEEE arithmetic. Every other case computes in f64 together with
//! the sign of the exact error (error-free transformations), then rounds once to the target format with
//! `round_to`, so directed rounding and f16/bf16 results are correctly rounded.

use crate::ir::{FBin, FMods, FTy, FUn, Rnd};

/// A binary floating-point format.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Fmt {
    pub exp: u32,
    pub man: u32,
}

pub const F16: Fmt = Fmt { exp: 5, man: 10 };
pub const BF16: Fmt = Fmt { exp: 8, man: 7 };
pub const F32: Fmt = Fmt { exp: 8, man: 23 };
pub const TF32: Fmt = Fmt { exp: 8, man: 10 };

impl Fmt {
    fn bias(self) -> i32 {
        (1 << (self.exp - 1)) - 1
    }
    fn nan(self) -> u64 {
        // canonical NaN: all exponent and mantissa bits set, sign clear
        (1u64 << (self.exp + self.man)) - 1
    }
    fn inf(self) -> u64 {
        ((1u64 << self.exp) - 1) << self.man
    }
    fn max_finite(self) -> u64 {
        self.inf() - 1
    }
    fn sign(self) -> u64 {
        1u64 << (self.exp + self.man)
    }
}

/// Decodes `bits` of format `f` to f64 (exact).
/// 2^n, exactly (built from the exponent bits inside f64's normal range).
#[inline(always)]
pub fn exp2i(n: i32) -> f64 {
    if n > 1023 {
        f64::INFINITY
    } else if n >= -1022 {
        f64::from_bits(((n + 1023) as u64) << 52)
    } else if n >= -1074 {
        f64::from_bits(1u64 << (n + 1074)) // subnormal
    } else {
        0.0
    }
}

#[inline]
pub fn to_f64(f: Fmt, bits: u64) -> f64 {
    if f == F32 {
        return f32::from_bits(bits as u32) as f64;
    }
    if f == BF16 {
        return f32::from_bits((bits as u32 & 0xffff) << 16) as f64;
    }
    let s = (bits >> (f.exp + f.man)) & 1;
    let e = ((bits >> f.man) & ((1 << f.exp) - 1)) as i32;
    let m = bits & ((1 << f.man) - 1);
    let mag = if e == (1 << f.exp) - 1 {
        if m == 0 {
            f64::INFINITY
        } else {
            f64::NAN
        }
    } else if e == 0 {
        m as f64 * exp2i(1 - f.bias() - f.man as i32)
    } else {
        (m as f64 + (1u64 << f.man) as f64) * exp2i(e - f.bias() - f.man as i32)
    };
    if s == 1 {
        -mag
    } else {
        mag
    }
}

/// Rounds `x` to format `f` with mode `rnd`. `sticky` is the sign of (exact value - x) when x is itself
/// an approximation of the exact result (0 when x is exact). Returns the bits in format `f`.
pub fn round_to(f: Fmt, x: f64, sticky: i32, rnd: Rnd) -> u64 {
    if x.is_nan() {
        return f.nan();
    }
    if f == F32 && sticky == 0 && matches!(rnd, Rnd::Rn | Rnd::Approx) {
        // The host's f64 -> f32 conversion rounds to nearest even (overflow and subnormals included).
        return (x as f32).to_bits() as u64;
    }
    let neg = x.is_sign_negative();
    let sgn = if neg { f.sign() } else { 0 };
    if x.is_infinite() {
        return sgn | f.inf();
    }
    // sticky relative to the magnitude
    let st = if neg { -sticky } else { sticky };
    let a = x.abs();
    let rnd = match rnd {
        Rnd::Rni => Rnd::Rn,
        Rnd::Rzi => Rnd::Rz,
        Rnd::Rmi => Rnd::Rm,
        Rnd::Rpi => Rnd::Rp,
        Rnd::Approx => Rnd::Rn,
        r => r,
    };
    // toward +inf for the magnitude?
    let away = match rnd {
        Rnd::Rm => neg,
        Rnd::Rp => !neg,
        _ => false,
    };
    if a == 0.0 {
        if st > 0 && away {
            return sgn | 1;
        }
        return sgn;
    }
    let emin = 1 - f.bias();
    let e = ((a.to_bits() >> 52) & 0x7ff) as i32 - 1023;
    let qexp = e.max(emin) - f.man as i32;
    let scaled = a * exp2i(-qexp);
    // scaled < 2^(man + 1): the conversion truncates, which is floor for a positive value
    let mut n = scaled as u64;
    let frac = scaled - n as f64;
    let up = match rnd {
        Rnd::Rn => frac > 0.5 || (frac == 0.5 && (st > 0 || (st == 0 && n & 1 == 1))),
        Rnd::Rna => frac > 0.5 || (frac == 0.5 && st >= 0),
        _ => {
            if away {
                frac > 0.0 || st > 0
            } else {
                false
            }
        }
    };
    let down = !up && frac == 0.0 && st < 0 && !matches!(rnd, Rnd::Rn | Rnd::Rna) && !away;
    let mut qexp = qexp;
    if up {
        n += 1;
    } else if down {
        if n == (1u64 << f.man) && qexp > emin - f.man as i32 {
            // just below a power of two the quantum halves
            n = (2u64 << f.man) - 1;
            qexp -= 1;
        } else {
            n -= 1;
        }
    }
    // n * 2^qexp, re-normalized
    if n >= (2u64 << f.man) {
        n >>= 1;
        qexp += 1;
    }
    let emax = f.bias();
    if n >= (1u64 << f.man) {
        let be = qexp + f.man as i32; // exponent of the leading bit
        if be > emax {
            let to_inf = match rnd {
                Rnd::Rn | Rnd::Rna => true,
                Rnd::Rz => false,
                _ => away,
            };
            return sgn | if to_inf { f.inf() } else { f.max_finite() };
        }
        let biased = (be + f.bias()) as u64;
        sgn | (biased << f.man) | (n - (1u64 << f.man))
    } else {
        // subnormal (qexp == emin - man)
        sgn | n
    }
}

pub fn fmt_of(t: FTy) -> Fmt {
    match t {
        FTy::F16 | FTy::F16x2 => F16,
        FTy::BF16 | FTy::BF16x2 => BF16,
        _ => F32,
    }
}

#[inline(always)]
pub fn ftz32(x: f32) -> f32 {
    if x.is_subnormal() {
        if x.is_sign_negative() {
            -0.0
        } else {
            0.0
        }
    } else {
        x
    }
}

fn sign_of(x: f64) -> i32 {
    if x > 0.0 {
        1
    } else if x < 0.0 {
        -1
    } else {
        0
    }
}

/// a + b in f64 with the sign of the rounding error.
fn add_st(a: f64, b: f64) -> (f64, i32) {
    let s = a + b;
    if !s.is_finite() {
        return (s, 0);
    }
    let bb = s - a;
    let err = (a - (s - bb)) + (b - bb);
    (s, sign_of(err))
}

fn mul_st(a: f64, b: f64) -> (f64, i32) {
    let p = a * b;
    if !p.is_finite() {
        return (p, 0);
    }
    (p, sign_of(a.mul_add(b, -p)))
}

fn div_st(a: f64, b: f64) -> (f64, i32) {
    let q = a / b;
    if !q.is_finite() || q == 0.0 {
        return (q, 0);
    }
    let r = (-q).mul_add(b, a);
    (q, sign_of(r) * sign_of(b))
}

fn sqrt_st(a: f64) -> (f64, i32) {
    let s = a.sqrt();
    if !s.is_finite() || s == 0.0 {
        return (s, 0);
    }
    (s, sign_of((-s).mul_add(s, a)))
}

/// fma in f64 for inputs of at most 24 significant bits: the product is exact, the sum has a known error.
fn fma_st(a: f64, b: f64, c: f64) -> (f64, i32) {
    add_st(a * b, c)
}

/// fma(a, b, c) rounded to nearest and the sign of its exact error, by the ErrFma algorithm (Boldo and
/// Muller, "Exact and approximated error of the FMA", 2011): r1 + r2 + r3 = a*b + c exactly, with r3
/// negligible against r2 (valid barring overflow and underflow of the intermediate terms).
fn err_fma_sign(a: f64, b: f64, c: f64) -> (f64, i32) {
    let r1 = a.mul_add(b, c);
    if !r1.is_finite() {
        return (r1, 0);
    }
    let u1 = a * b;
    let u2 = a.mul_add(b, -u1);
    let two_sum = |x: f64, y: f64| {
        let s = x + y;
        let yy = s - x;
        (s, (x - (s - yy)) + (y - yy))
    };
    let (alpha1, alpha2) = two_sum(c, u2);
    let (beta1, beta2) = two_sum(u1, alpha1);
    let gamma = (beta1 - r1) + beta2;
    let r2 = gamma + alpha2;
    let r3 = alpha2 - (r2 - gamma);
    let st = if r2 != 0.0 { sign_of(r2) } else { sign_of(r3) };
    (r1, st)
}

/// Applies a directed rounding to an f64 result given the sign of its error.
fn nudge64(x: f64, sticky: i32, rnd: Rnd) -> f64 {
    if sticky == 0 || !x.is_finite() {
        return x;
    }
    let toward = |up: bool| -> f64 {
        if up {
            next_up(x)
        } else {
            next_down(x)
        }
    };
    match rnd {
        Rnd::Rz => {
            if (x > 0.0 && sticky < 0) || (x < 0.0 && sticky > 0) {
                toward(x < 0.0)
            } else {
                x
            }
        }
        Rnd::Rm if sticky < 0 => toward(false),
        Rnd::Rp if sticky > 0 => toward(true),
        _ => x,
    }
}

fn next_up(x: f64) -> f64 {
    if x == 0.0 {
        return f64::from_bits(1);
    }
    let b = x.to_bits();
    f64::from_bits(if x > 0.0 { b + 1 } else { b - 1 })
}

fn next_down(x: f64) -> f64 {
    -next_up(-x)
}

/// Decodes a scalar lane value of float type t (f16/bf16/f32/f64) to f64, applying ftz for f32/f16.
#[inline(always)]
pub fn load(t: FTy, bits: u64, ftz: bool) -> f64 {
    match t {
        FTy::F32 => {
            let v = f32::from_bits(bits as u32);
            (if ftz { ftz32(v) } else { v }) as f64
        }
        FTy::F64 => f64::from_bits(bits),
        _ => {
            let f = fmt_of(t);
            let v = to_f64(f, bits & 0xffff);
            if ftz && f == F16 && v != 0.0 && v.abs() < 2f64.powi(-14) {
                0.0f64.copysign(v)
            } else {
                v
            }
        }
    }
}

/// Rounds an f64 value (with error sign) to scalar type t and applies ftz/sat/relu; returns the bits.
pub fn store(t: FTy, x: f64, sticky: i32, m: FMods) -> u64 {
    let mut x = x;
    let mut sticky = sticky;
    if m.sat {
        if x.is_nan() || x <= 0.0 {
            x = 0.0;
            sticky = 0;
        } else if x >= 1.0 {
            x = 1.0;
            sticky = 0;
        }
    }
    if m.relu && (x < 0.0 || (x == 0.0 && x.is_sign_negative())) {
        x = 0.0;
        sticky = 0;
    }
    match t {
        FTy::F64 => nudge64(x, sticky, m.rnd).to_bits(),
        FTy::F32 => {
            let bits = round_to(F32, x, sticky, m.rnd);
            if m.ftz {
                ftz32(f32::from_bits(bits as u32)).to_bits() as u64
            } else {
                bits
            }
        }
        _ => {
            let f = fmt_of(t);
            let bits = round_to(f, x, sticky, m.rnd);
            if m.ftz && f == F16 && (bits & 0x7c00) == 0 {
                bits & 0x8000
            } else {
                bits
            }
        }
    }
}

fn fminmax(a: f64, b: f64, max: bool, nan: bool) -> f64 {
    if a.is_nan() || b.is_nan() {
        if nan || (a.is_nan() && b.is_nan()) {
            return f64::NAN;
        }
        return if a.is_nan() { b } else { a };
    }
    if a == b {
        // -0 < +0
        let a_neg = a.is_sign_negative();
        return if a_neg == max { b } else { a };
    }
    if (a > b) == max {
        a
    } else {
        b
    }
}

/// One scalar binary op on lane bits of type t (scalar types only).
#[inline]
pub fn bin_scalar(op: FBin, t: FTy, m: FMods, a: u64, b: u64) -> u64 {
    // Fast path: f32 round-to-nearest add/sub/mul.
    if t == FTy::F32 && m.rnd == Rnd::Rn && !m.sat {
        let (x, y) = (f32::from_bits(a as u32), f32::from_bits(b as u32));
        let (x, y) = if m.ftz { (ftz32(x), ftz32(y)) } else { (x, y) };
        let r = match op {
            FBin::Add => Some(x + y),
            FBin::Sub => Some(x - y),
            FBin::Mul => Some(x * y),
            FBin::Div => Some(x / y),
            _ => None,
        };
        if let Some(r) = r {
            let r = if m.ftz { ftz32(r) } else { r };
            return canon32(r);
        }
    }
    let x = load(t, a, m.ftz);
    let y = load(t, b, m.ftz);
    let (r, st) = match op {
        FBin::Add => add_st(x, y),
        FBin::Sub => add_st(x, -y),
        FBin::Mul => mul_st(x, y),
        FBin::Div => {
            if m.rnd == Rnd::Approx {
                // div.approx.f32: a * rcp.approx(b); for 2^126 < |b| < 2^128 the result is 0.
                if y.abs() > 2f64.powi(126) && y.is_finite() {
                    (0.0f64.copysign(x * y), 0)
                } else {
                    ((x as f32 / y as f32) as f64, 0)
                }
            } else {
                div_st(x, y)
            }
        }
        FBin::Min => (fminmax(x, y, false, m.nan), 0),
        FBin::Max => (fminmax(x, y, true, m.nan), 0),
        // copysign.type d, a, b: the magnitude of b with the sign of a
        FBin::Copysign => {
            return match t {
                FTy::F32 => (b & 0x7fff_ffff) | (a & 0x8000_0000),
                FTy::F64 => (b & !(1 << 63)) | (a & (1 << 63)),
                _ => (b & 0x7fff) | (a & 0x8000),
            }
        }
    };
    let m = if matches!(op, FBin::Min | FBin::Max) {
        FMods { rnd: Rnd::Rn, ..m }
    } else {
        m
    };
    let m = FMods {
        rnd: if m.rnd == Rnd::Approx { Rnd::Rn } else { m.rnd },
        ..m
    };
    store(t, r, st, m)
}

/// NaN results of f32 arithmetic are the canonical NaN 0x7fffffff.
#[inline(always)]
fn canon32(r: f32) -> u64 {
    if r.is_nan() {
        0x7fff_ffff
    } else {
        r.to_bits() as u64
    }
}

#[inline]
pub fn fma_scalar(t: FTy, m: FMods, a: u64, b: u64, c: u64) -> u64 {
    if t == FTy::F32 && m.rnd == Rnd::Rn && !m.sat && !m.ftz {
        let r = f32::from_bits(a as u32).mul_add(f32::from_bits(b as u32), f32::from_bits(c as u32));
        return canon32(r);
    }
    let (x, y, z) = (load(t, a, m.ftz), load(t, b, m.ftz), load(t, c, m.ftz));
    if t == FTy::F64 {
        // f64 fma: the host's correctly rounded fma, plus the sign of its exact error for directed modes.
        let (r, st) = if m.rnd == Rnd::Rn {
            (x.mul_add(y, z), 0)
        } else {
            err_fma_sign(x, y, z)
        };
        return store(t, r, st, m);
    }
    let (r, st) = fma_st(x, y, z);
    store(t, r, st, m)
}

#[inline]
pub fn un_scalar(op: FUn, t: FTy, m: FMods, a: u64) -> u64 {
    match op {
        FUn::Neg => {
            return match t {
                FTy::F32 => {
                    let v = if m.ftz {
                        ftz32(f32::from_bits(a as u32)).to_bits() as u64
                    } else {
                        a
                    };
                    (v ^ 0x8000_0000) & 0xffff_ffff
                }
                FTy::F64 => a ^ (1 << 63),
                _ => (a ^ 0x8000) & 0xffff,
            }
        }
        FUn::Abs => {
            return match t {
                FTy::F32 => {
                    let v = if m.ftz {
                        ftz32(f32::from_bits(a as u32)).to_bits() as u64
                    } else {
                        a
                    };
                    v & 0x7fff_ffff
                }
                FTy::F64 => a & !(1 << 63),
                _ => a & 0x7fff,
            }
        }
        FUn::Mov => return a,
        _ => {}
    }
    let x = load(t, a, m.ftz);
    let (r, st) = match op {
        FUn::Sqrt if m.rnd != Rnd::Approx => sqrt_st(x),
        FUn::Rcp if m.rnd != Rnd::Approx => div_st(1.0, x),
        FUn::Sqrt => (x.sqrt(), 0),
        FUn::Rcp => (1.0 / x, 0),
        FUn::Rsqrt => (1.0 / x.sqrt(), 0),
        FUn::Ex2 => (x.exp2(), 0),
        FUn::Lg2 => (x.log2(), 0),
        FUn::Sin => (x.sin(), 0),
        FUn::Cos => (x.cos(), 0),
        FUn::Tanh => (x.tanh(), 0),
        FUn::Neg | FUn::Abs | FUn::Mov => unreachable!("handled above"),
    };
    let m = FMods {
        rnd: if m.rnd == Rnd::Approx { Rnd::Rn } else { m.rnd },
        ..m
    };
    store(t, r, st, m)
}

/// Applies a scalar function to both halves of a packed f16x2/bf16x2 value.
#[inline]
pub fn packed(t: FTy, f: impl Fn(FTy, u64, u64, u64) -> u64, a: u64, b: u64, c: u64) -> u64 {
    let s = if t == FTy::F16x2 { FTy::F16 } else { FTy::BF16 };
    let lo = f(s, a & 0xffff, b & 0xffff, c & 0xffff) & 0xffff;
    let hi = f(s, (a >> 16) & 0xffff, (b >> 16) & 0xffff, (c >> 16) & 0xffff) & 0xffff;
    lo | (hi << 16)
}

pub fn is_packed(t: FTy) -> bool {
    matches!(t, FTy::F16x2 | FTy::BF16x2)
}

/// `testp` classification.
pub fn testp(t: FTy, kind: u8, a: u64) -> bool {
    let x = load(t, a, false);
    let min_normal = match t {
        FTy::F16 | FTy::F16x2 => 2f64.powi(-14),
        FTy::F64 => f64::MIN_POSITIVE,
        _ => f32::MIN_POSITIVE as f64,
    };
    match kind {
        0 => x.is_finite(),
        1 => x.is_infinite(),
        2 => !x.is_nan(),
        3 => x.is_nan(),
        4 => x.is_finite() && x.abs() >= min_normal,
        _ => x != 0.0 && x.is_finite() && x.abs() < min_normal,
    }
}

pub fn sign_of_err(exact: i128, approx: f64) -> i32 {
    // sign of (exact - approx) for integers converted to f64
    if !approx.is_finite() {
        return 0;
    }
    let a = approx as i128;
    match exact.cmp(&a) {
        std::cmp::Ordering::Greater => 1,
        std::cmp::Ordering::Less => -1,
        std::cmp::Ordering::Equal => 0,
    }
}
