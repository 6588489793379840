//! Integer instruction semantics as pure functions on raw register bits (PTX ISA 9.x, "Integer
//! Arithmetic", "Logic and Shift", "Bit manipulation"). Values are read at the instruction's width
//! and results are returned zero-extended to 64 bits.

use crate::ir::{IBin, ITern, IUn, IntTy};

#[inline(always)]
pub fn mask(bits: u8) -> u64 {
    if bits >= 64 {
        u64::MAX
    } else {
        (1u64 << bits) - 1
    }
}

/// The value of `v` read as type `t`, sign- or zero-extended to i128.
#[inline(always)]
pub fn read(t: IntTy, v: u64) -> i128 {
    if t.signed {
        let sh = 64 - t.bits as u32;
        (((v << sh) as i64) >> sh) as i128
    } else {
        (v & mask(t.bits)) as i128
    }
}

/// The high half of the double-width product.
#[inline(always)]
fn hi(t: IntTy, a: u64, b: u64) -> u64 {
    let m = mask(t.bits);
    if t.signed {
        ((read(t, a) * read(t, b)) >> t.bits) as u64
    } else {
        (((a & m) as u128 * (b & m) as u128) >> t.bits) as u64
    }
}

#[inline(always)]
pub fn bin(op: IBin, t: IntTy, a: u64, b: u64) -> u64 {
    let w = t.bits;
    let m = mask(w);
    match op {
        IBin::Add => a.wrapping_add(b) & m,
        IBin::Sub => a.wrapping_sub(b) & m,
        IBin::MulLo => a.wrapping_mul(b) & m,
        IBin::And => a & b & m,
        IBin::Or => (a | b) & m,
        IBin::Xor => (a ^ b) & m,
        IBin::Shl => {
            let s = b & 0xffff_ffff;
            if s >= w as u64 {
                0
            } else {
                (a << s) & m
            }
        }
        IBin::Shr => {
            let s = (b & 0xffff_ffff).min(w as u64 - 1 + if t.signed { 0 } else { 1 });
            if t.signed {
                ((read(t, a) >> s) as u64) & m
            } else if s >= w as u64 {
                0
            } else {
                ((a & m) >> s) & m
            }
        }
        IBin::AddSat | IBin::SubSat => {
            let (x, y) = (read(t, a), read(t, b));
            let r = if op == IBin::AddSat { x + y } else { x - y };
            let (lo, hi) = if t.signed {
                (-(1i128 << (w - 1)), (1i128 << (w - 1)) - 1)
            } else {
                (0, m as i128)
            };
            (r.clamp(lo, hi) as u64) & m
        }
        IBin::MulHi => hi(t, a, b) & m,
        IBin::MulWide => (read(t, a) * read(t, b)) as u64 & mask(2 * w),
        IBin::Mul24Lo | IBin::Mul24Hi => {
            let t24 = IntTy {
                bits: 24,
                signed: t.signed,
            };
            let p = read(t24, a) * read(t24, b);
            if op == IBin::Mul24Lo {
                p as u64 & m
            } else {
                (p >> 16) as u64 & m
            }
        }
        IBin::Div => {
            let (x, y) = (read(t, a), read(t, b));
            if y == 0 {
                m
            } else {
                (x / y) as u64 & m
            }
        }
        IBin::Rem => {
            let (x, y) = (read(t, a), read(t, b));
            if y == 0 {
                a & m
            } else {
                (x % y) as u64 & m
            }
        }
        IBin::Min => read(t, a).min(read(t, b)) as u64 & m,
        IBin::Max => read(t, a).max(read(t, b)) as u64 & m,
        IBin::Bmsk => {
            let pos = (a & 0xff).min(w as u64);
            let len = (b & 0xff).min(w as u64);
            let end = (pos + len).min(w as u64);
            (mask(end as u8) & !mask(pos as u8)) & m
        }
        IBin::Copysign => a & m,
    }
}

#[inline(always)]
pub fn un(op: IUn, t: IntTy, a: u64) -> u64 {
    let w = t.bits;
    let m = mask(w);
    let v = a & m;
    match op {
        IUn::Not => !a & m,
        IUn::Cnot => (v == 0) as u64,
        IUn::Neg => v.wrapping_neg() & m,
        IUn::Abs => (read(t, a).unsigned_abs() as u64) & m,
        IUn::Popc => v.count_ones() as u64,
        IUn::Clz => (v.leading_zeros() - (64 - w as u32)) as u64,
        IUn::Brev => v.reverse_bits() >> (64 - w as u32),
        IUn::Bfind | IUn::BfindShift => {
            let x = if t.signed && read(t, a) < 0 { !v & m } else { v };
            if x == 0 {
                0xffff_ffff
            } else {
                let pos = 63 - x.leading_zeros() as u64;
                if op == IUn::BfindShift {
                    w as u64 - 1 - pos
                } else {
                    pos
                }
            }
        }
    }
}

#[inline(always)]
pub fn tern(op: ITern, t: IntTy, a: u64, b: u64, c: u64) -> u64 {
    let w = t.bits;
    let m = mask(w);
    match op {
        ITern::MadLo => a.wrapping_mul(b).wrapping_add(c) & m,
        ITern::MadHi => hi(t, a, b).wrapping_add(c) & m,
        ITern::MadHiSat => {
            let r = ((read(t, a) * read(t, b)) >> w) + read(t, c);
            let (lo, hi) = (-(1i128 << (w - 1)), (1i128 << (w - 1)) - 1);
            r.clamp(lo, hi) as u64 & m
        }
        ITern::MadWide => ((read(t, a) * read(t, b)) as u64).wrapping_add(c) & mask(2 * w),
        ITern::Mad24Lo => {
            let t24 = IntTy {
                bits: 24,
                signed: t.signed,
            };
            ((read(t24, a) * read(t24, b)) as u64).wrapping_add(c) & m
        }
        ITern::Sad => ((read(t, a) - read(t, b)).unsigned_abs() as u64).wrapping_add(c) & m,
        ITern::Bfe => {
            let msb = w as u64 - 1;
            let pos = b & 0xff;
            let len = c & 0xff;
            let sbit = if t.signed && len != 0 {
                (a >> (pos + len - 1).min(msb)) & 1
            } else {
                0
            };
            let mut d = 0u64;
            for i in 0..w as u64 {
                let bit = if i < len && pos + i <= msb {
                    (a >> (pos + i)) & 1
                } else {
                    sbit
                };
                d |= bit << i;
            }
            d & m
        }
    }
}

/// `bfi`: insert the low `len` bits of a into b at `pos`.
#[inline(always)]
pub fn bfi(t: IntTy, a: u64, b: u64, pos: u64, len: u64) -> u64 {
    let msb = t.bits as u64 - 1;
    let (pos, len) = (pos & 0xff, len & 0xff);
    let mut f = b & mask(t.bits);
    let mut i = 0;
    while i < len && pos + i <= msb {
        f = (f & !(1 << (pos + i))) | (((a >> i) & 1) << (pos + i));
        i += 1;
    }
    f
}

/// `prmt.b32` default mode.
#[inline(always)]
pub fn prmt(a: u64, b: u64, c: u64) -> u64 {
    let bytes = ((b & 0xffff_ffff) << 32) | (a & 0xffff_ffff);
    let mut d = 0u64;
    for i in 0..4 {
        let sel = (c >> (4 * i)) & 0xf;
        let byte = (bytes >> (8 * (sel & 7))) & 0xff;
        let v = if sel & 8 != 0 {
            if byte & 0x80 != 0 {
                0xff
            } else {
                0
            }
        } else {
            byte
        };
        d |= v << (8 * i);
    }
    d
}

/// `shf.{l,r}.{wrap,clamp}.b32`.
#[inline(always)]
pub fn shf(a: u64, b: u64, c: u64, left: bool, wrap: bool) -> u64 {
    let n = if wrap { c & 31 } else { (c & 0xffff_ffff).min(32) };
    let both = ((b & 0xffff_ffff) << 32) | (a & 0xffff_ffff);
    if left {
        ((both << n) >> 32) & 0xffff_ffff
    } else {
        (both >> n) & 0xffff_ffff
    }
}

/// `lop3.b32`.
#[inline(always)]
pub fn lop3(a: u64, b: u64, c: u64, lut: u8) -> u64 {
    let mut d = 0u64;
    let lut = lut as u64;
    // Bitwise evaluation of the truth table: for each of the 8 minterms, OR in its bits.
    for idx in 0..8u64 {
        if (lut >> idx) & 1 == 1 {
            let ta = if idx & 4 != 0 { a } else { !a };
            let tb = if idx & 2 != 0 { b } else { !b };
            let tc = if idx & 1 != 0 { c } else { !c };
            d |= ta & tb & tc;
        }
    }
    d & 0xffff_ffff
}

/// `prmt.b32` with a mode: the selector nibbles each mode derives from c[1:0] (PTX ISA "prmt" table).
#[inline]
pub fn prmt_mode(a: u64, b: u64, c: u64, mode: u8) -> u64 {
    if mode == 0 {
        return prmt(a, b, c);
    }
    let s = (c & 3) as usize;
    // selectors of bytes d.b0..d.b3
    let sel: [u64; 4] = match mode {
        1 => [s as u64, s as u64 + 1, s as u64 + 2, s as u64 + 3],
        2 => [[0, 7, 6, 5], [1, 0, 7, 6], [2, 1, 0, 7], [3, 2, 1, 0]][s],
        3 => [s as u64; 4],
        4 => [[0, 1, 2, 3], [1, 1, 2, 3], [2, 2, 2, 3], [3, 3, 3, 3]][s],
        5 => [[0, 0, 0, 0], [0, 1, 1, 1], [0, 1, 2, 2], [0, 1, 2, 3]][s],
        _ => [[0, 1, 0, 1], [2, 3, 2, 3], [0, 1, 0, 1], [2, 3, 2, 3]][s],
    };
    let nib = sel.iter().enumerate().fold(0u64, |m, (i, v)| m | (v & 7) << (4 * i));
    prmt(a, b, nib)
}

/// Carry-chain arithmetic: returns (result, carry/borrow out).
#[inline]
pub fn carry(op: crate::ir::CarryOp, t: IntTy, a: u64, b: u64, c: u64, cin: u64) -> (u64, u64) {
    use crate::ir::CarryOp;
    let w = t.bits as u32;
    let m = mask(t.bits) as u128;
    let (a, b, c) = (a as u128 & m, b as u128 & m, c as u128 & m);
    let cin = cin as u128;
    match op {
        CarryOp::Add => {
            let s = a + b + cin;
            ((s & m) as u64, (s >> w) as u64 & 1)
        }
        CarryOp::Sub => {
            let sub = b + cin;
            let r = a.wrapping_sub(sub) & m;
            (r as u64, (a < sub) as u64)
        }
        CarryOp::MadLo | CarryOp::MadHi => {
            let p = if t.signed {
                let sx = |v: u128| (((v as u64) << (64 - w)) as i64 >> (64 - w)) as i128;
                (sx(a) * sx(b)) as u128
            } else {
                a * b
            };
            let part = if op == CarryOp::MadLo { p & m } else { (p >> w) & m };
            let s = part + c + cin;
            ((s & m) as u64, (s >> w) as u64 & 1)
        }
    }
}

/// `dp4a` / `dp2a.{lo,hi}`: 32-bit dot products with accumulate.
#[inline]
pub fn dp(a: u64, b: u64, c: u64, four: bool, hi: bool, a_signed: bool, b_signed: bool) -> u64 {
    let ext = |v: u64, bits: u32, signed: bool| -> i64 {
        let v = v & ((1 << bits) - 1);
        if signed && (v >> (bits - 1)) & 1 == 1 {
            v as i64 - (1i64 << bits)
        } else {
            v as i64
        }
    };
    let mut acc = c as u32 as i64;
    if four {
        for i in 0..4 {
            acc += ext(a >> (8 * i), 8, a_signed) * ext(b >> (8 * i), 8, b_signed);
        }
    } else {
        let k = if hi { 2 } else { 0 };
        for i in 0..2 {
            acc += ext(a >> (16 * i), 16, a_signed) * ext(b >> (8 * (k + i)), 8, b_signed);
        }
    }
    acc as u64 & 0xffff_ffff
}
