//! Lowering of one instruction: decodes the dotted opcode into an `ir::Op`. Arithmetic, logic,
//! comparison and conversion live here; memory, control and warp-level instructions in `inst_mem.rs`.

use super::{FnCtx, R};
use crate::ast::{Instr, Operand};
use crate::error::{parse_err, unsupported};
use crate::ir::*;

pub(crate) fn int_ty(s: &str) -> Option<IntTy> {
    Some(match s {
        "b8" | "u8" => IntTy { bits: 8, signed: false },
        "s8" => IntTy { bits: 8, signed: true },
        "b16" | "u16" => IntTy {
            bits: 16,
            signed: false,
        },
        "s16" => IntTy { bits: 16, signed: true },
        "b32" | "u32" => IntTy {
            bits: 32,
            signed: false,
        },
        "s32" => IntTy { bits: 32, signed: true },
        "b64" | "u64" => IntTy {
            bits: 64,
            signed: false,
        },
        "s64" => IntTy { bits: 64, signed: true },
        "pred" => IntTy { bits: 1, signed: false },
        _ => return None,
    })
}

pub(crate) fn f_ty(s: &str) -> Option<FTy> {
    Some(match s {
        "f16" => FTy::F16,
        "bf16" => FTy::BF16,
        "f32" => FTy::F32,
        "f64" => FTy::F64,
        "f16x2" => FTy::F16x2,
        "bf16x2" => FTy::BF16x2,
        _ => return None,
    })
}

pub(crate) fn ty(s: &str) -> Option<Ty> {
    int_ty(s).map(Ty::I).or_else(|| f_ty(s).map(Ty::F))
}

/// The decoded opcode: base name and modifiers.
pub(crate) struct Opc<'a> {
    pub base: &'a str,
    pub mods: Vec<&'a str>,
}

impl<'a> Opc<'a> {
    pub fn new(s: &'a str) -> Self {
        let mut it = s.split('.');
        let base = it.next().unwrap_or("");
        Opc {
            base,
            mods: it.collect(),
        }
    }
    pub fn has(&self, m: &str) -> bool {
        self.mods.contains(&m)
    }
    /// The last type modifier.
    pub fn ty(&self) -> Option<Ty> {
        self.mods.iter().rev().find_map(|m| ty(m))
    }
    /// All type modifiers in order.
    pub fn tys(&self) -> Vec<Ty> {
        self.mods.iter().filter_map(|m| ty(m)).collect()
    }
    pub fn fmods(&self) -> FMods {
        let mut rnd = Rnd::Approx;
        for m in &self.mods {
            rnd = match *m {
                "rn" => Rnd::Rn,
                "rz" => Rnd::Rz,
                "rm" => Rnd::Rm,
                "rp" => Rnd::Rp,
                "rna" => Rnd::Rna,
                "rni" => Rnd::Rni,
                "rzi" => Rnd::Rzi,
                "rmi" => Rnd::Rmi,
                "rpi" => Rnd::Rpi,
                _ => continue,
            };
        }
        FMods {
            rnd,
            ftz: self.has("ftz"),
            sat: self.has("sat"),
            relu: self.has("relu"),
            nan: self.has("NaN"),
        }
    }
}

pub(crate) fn un<T>(i: &Instr) -> R<T> {
    unsupported(i.line, i.opcode.clone())
}

pub(crate) fn une(i: &Instr) -> crate::error::EmuError {
    crate::error::EmuError::Unsupported {
        line: i.line,
        instruction: i.opcode.clone(),
    }
}

pub(crate) fn ops_n(i: &Instr, n: usize) -> R<()> {
    if i.operands.len() != n {
        return parse_err(
            i.line,
            format!("`{}` takes {n} operands, found {}", i.opcode, i.operands.len()),
        );
    }
    Ok(())
}

pub(crate) fn class_of_f(t: FTy) -> Class {
    match t {
        FTy::F32 => Class::Fp32,
        FTy::F64 => Class::Fp64,
        _ => Class::Half,
    }
}

pub(crate) fn lower_inst(ctx: &mut FnCtx, i: &Instr) -> R<()> {
    let guard = match &i.guard {
        Some((neg, p)) => Some((ctx.reg(p)?, *neg)),
        None => None,
    };
    let o = Opc::new(&i.opcode);
    if let Some(m) = super::mods::unknown_modifier(o.base, &o.mods) {
        return unsupported(i.line, format!("{} (modifier .{m})", i.opcode));
    }
    let x = &i.operands;
    macro_rules! src {
        ($k:expr, $f:expr) => {
            ctx.src(&x[$k], $f)?
        };
    }
    match o.base {
        "mov" => {
            ops_n(i, 2)?;
            let t = o.ty().ok_or_else(|| une(i))?;
            let bits = t.bits() as u8;
            match (&x[0], &x[1]) {
                (Operand::Vec(v), _) | (_, Operand::Vec(v)) if v.is_empty() || v.len() > 8 => {
                    return parse_err(i.line, "mov with an empty or oversized vector");
                }
                (Operand::Vec(ds), a) => {
                    let a = ctx.src(a, None)?;
                    let each = bits / ds.len() as u8;
                    let ds = ds
                        .iter()
                        .map(|d| match d {
                            Operand::Name(n) if n == "_" => Ok(None),
                            d => ctx.dst(d).map(Some),
                        })
                        .collect::<R<Vec<_>>>()?;
                    ctx.emit(Op::Unpack { ds, a, each }, guard, Class::Move);
                }
                (d, Operand::Vec(parts)) => {
                    let d = ctx.dst(d)?;
                    let each = bits / parts.len() as u8;
                    let parts = parts.iter().map(|p| ctx.src(p, None)).collect::<R<Vec<_>>>()?;
                    ctx.emit(Op::Pack { d, parts, each }, guard, Class::Move);
                }
                (d, Operand::Name(n)) if super::special_reg(n).is_some() => {
                    let d = ctx.dst(d)?;
                    let r = super::special_reg(n).expect("checked");
                    ctx.emit(Op::SReg { d, r }, guard, Class::Move);
                }
                (d, a) => {
                    let f = if let Ty::F(f) = t { Some(f) } else { None };
                    let a = ctx.src(a, f)?;
                    let d = ctx.dst(d)?;
                    ctx.emit(Op::Mov { d, a, bits }, guard, Class::Move);
                }
            }
        }
        "add" | "sub" | "mul" | "div" | "rem" | "min" | "max" | "and" | "or" | "xor" | "shl" | "shr" | "mul24"
        | "copysign" | "bmsk" => {
            let t = o.ty().ok_or_else(|| une(i))?;
            if o.has("cc") {
                let Ty::I(it) = t else { return un(i) };
                return super::inst_cmp::lower_carry(ctx, i, &o, it, guard);
            }
            ops_n(i, 3)?;
            match t {
                Ty::I(t) => {
                    let op = match (o.base, o.has("hi"), o.has("wide"), o.has("sat")) {
                        ("add", _, _, false) => IBin::Add,
                        ("add", _, _, true) => IBin::AddSat,
                        ("sub", _, _, false) => IBin::Sub,
                        ("sub", _, _, true) => IBin::SubSat,
                        ("mul", true, _, _) => IBin::MulHi,
                        ("mul", _, true, _) => IBin::MulWide,
                        ("mul", ..) => IBin::MulLo,
                        ("mul24", true, ..) => IBin::Mul24Hi,
                        ("mul24", ..) => IBin::Mul24Lo,
                        ("div", ..) => IBin::Div,
                        ("rem", ..) => IBin::Rem,
                        ("min", ..) => IBin::Min,
                        ("max", ..) => IBin::Max,
                        ("and", ..) => IBin::And,
                        ("or", ..) => IBin::Or,
                        ("xor", ..) => IBin::Xor,
                        ("shl", ..) => IBin::Shl,
                        ("shr", ..) => IBin::Shr,
                        ("bmsk", ..) => IBin::Bmsk,
                        _ => return un(i),
                    };
                    if o.has("relu") {
                        return un(i);
                    }
                    let a = src!(1, None);
                    let b = src!(2, None);
                    let d = ctx.dst(&x[0])?;
                    ctx.emit(Op::IBin { op, t, d, a, b }, guard, Class::Int);
                }
                Ty::F(ft) => {
                    let op = match o.base {
                        "add" => FBin::Add,
                        "sub" => FBin::Sub,
                        "mul" => FBin::Mul,
                        "div" => FBin::Div,
                        "min" => FBin::Min,
                        "max" => FBin::Max,
                        "copysign" => FBin::Copysign,
                        _ => return un(i),
                    };
                    let mut m = o.fmods();
                    if m.rnd == Rnd::Approx && !(op == FBin::Div && (o.has("approx") || o.has("full"))) {
                        m.rnd = Rnd::Rn;
                    }
                    if op == FBin::Div && m.rnd == Rnd::Approx && ft != FTy::F32 {
                        return un(i);
                    }
                    if op == FBin::Div && !matches!(ft, FTy::F32 | FTy::F64) {
                        return un(i);
                    }
                    let a = src!(1, Some(ft));
                    let b = src!(2, Some(ft));
                    let d = ctx.dst(&x[0])?;
                    ctx.emit(Op::FBin { op, t: ft, m, d, a, b }, guard, class_of_f(ft));
                }
            }
        }
        "not" | "cnot" | "popc" | "clz" | "brev" | "bfind" | "neg" | "abs" | "sqrt" | "rsqrt" | "rcp" | "ex2"
        | "lg2" | "sin" | "cos" | "tanh" => {
            ops_n(i, 2)?;
            let t = o.ty().ok_or_else(|| une(i))?;
            match t {
                Ty::I(t) => {
                    let op = match o.base {
                        "not" => IUn::Not,
                        "cnot" => IUn::Cnot,
                        "popc" => IUn::Popc,
                        "clz" => IUn::Clz,
                        "brev" => IUn::Brev,
                        "bfind" if o.has("shiftamt") => IUn::BfindShift,
                        "bfind" => IUn::Bfind,
                        "neg" => IUn::Neg,
                        "abs" => IUn::Abs,
                        _ => return un(i),
                    };
                    let a = src!(1, None);
                    let d = ctx.dst(&x[0])?;
                    ctx.emit(Op::IUn { op, t, d, a }, guard, Class::Int);
                }
                Ty::F(ft) => {
                    let op = match o.base {
                        "neg" => FUn::Neg,
                        "abs" => FUn::Abs,
                        "sqrt" => FUn::Sqrt,
                        "rsqrt" => FUn::Rsqrt,
                        "rcp" => FUn::Rcp,
                        "ex2" => FUn::Ex2,
                        "lg2" => FUn::Lg2,
                        "sin" => FUn::Sin,
                        "cos" => FUn::Cos,
                        "tanh" => FUn::Tanh,
                        _ => return un(i),
                    };
                    let m = o.fmods();
                    let approx_only = matches!(op, FUn::Ex2 | FUn::Lg2 | FUn::Sin | FUn::Cos | FUn::Tanh | FUn::Rsqrt);
                    if approx_only && !o.has("approx") {
                        return un(i);
                    }
                    if matches!(op, FUn::Sqrt | FUn::Rcp) && !matches!(ft, FTy::F32 | FTy::F64) {
                        return un(i);
                    }
                    if matches!(op, FUn::Sqrt | FUn::Rcp)
                        && !matches!(m.rnd, Rnd::Approx | Rnd::Rn | Rnd::Rz | Rnd::Rm | Rnd::Rp)
                    {
                        return un(i);
                    }
                    if matches!(op, FUn::Lg2 | FUn::Sin | FUn::Cos) && ft != FTy::F32 {
                        return un(i);
                    }
                    let a = src!(1, Some(ft));
                    let d = ctx.dst(&x[0])?;
                    let class = if matches!(op, FUn::Neg | FUn::Abs) {
                        class_of_f(ft)
                    } else {
                        Class::Special
                    };
                    ctx.emit(Op::FUn { op, t: ft, m, d, a }, guard, class);
                }
            }
        }
        "fma" | "mad" => {
            ops_n(i, 4)?;
            let t = o.ty().ok_or_else(|| une(i))?;
            match t {
                Ty::I(t) => {
                    let op = match (o.has("hi"), o.has("wide"), o.has("sat")) {
                        (true, _, true) => ITern::MadHiSat,
                        (true, ..) => ITern::MadHi,
                        (_, true, _) => ITern::MadWide,
                        _ => ITern::MadLo,
                    };
                    if o.has("cc") {
                        return super::inst_cmp::lower_carry(ctx, i, &o, t, guard);
                    }
                    let (a, b, c) = (src!(1, None), src!(2, None), src!(3, None));
                    let d = ctx.dst(&x[0])?;
                    ctx.emit(Op::ITern { op, t, d, a, b, c }, guard, Class::Int);
                }
                Ty::F(ft) => {
                    let mut m = o.fmods();
                    if m.rnd == Rnd::Approx {
                        m.rnd = Rnd::Rn;
                    }
                    let (a, b, c) = (src!(1, Some(ft)), src!(2, Some(ft)), src!(3, Some(ft)));
                    let d = ctx.dst(&x[0])?;
                    ctx.emit(Op::Fma { t: ft, m, d, a, b, c }, guard, class_of_f(ft));
                }
            }
        }
        "mad24" | "sad" | "bfe" => {
            ops_n(i, 4)?;
            let Some(Ty::I(t)) = o.ty() else { return un(i) };
            let op = match o.base {
                "mad24" if o.has("hi") => return un(i),
                "mad24" => ITern::Mad24Lo,
                "sad" => ITern::Sad,
                _ => ITern::Bfe,
            };
            let (a, b, c) = (src!(1, None), src!(2, None), src!(3, None));
            let d = ctx.dst(&x[0])?;
            ctx.emit(Op::ITern { op, t, d, a, b, c }, guard, Class::Int);
        }
        "bfi" => {
            ops_n(i, 5)?;
            let Some(Ty::I(t)) = o.ty() else { return un(i) };
            let (a, b, c, e) = (src!(1, None), src!(2, None), src!(3, None), src!(4, None));
            let d = ctx.dst(&x[0])?;
            ctx.emit(Op::Bfi { t, d, a, b, c, e }, guard, Class::Int);
        }
        "lop3" => {
            ops_n(i, 5)?;
            if o.mods != ["b32"] {
                return un(i);
            }
            let Operand::Imm(lut) = x[4] else {
                return parse_err(i.line, "lop3 needs an immediate LUT");
            };
            let (a, b, c) = (src!(1, None), src!(2, None), src!(3, None));
            let d = ctx.dst(&x[0])?;
            ctx.emit(
                Op::Lop3 {
                    d,
                    a,
                    b,
                    c,
                    lut: lut as u8,
                },
                guard,
                Class::Int,
            );
        }
        "prmt" => {
            ops_n(i, 4)?;
            let mode = match o.mods.as_slice() {
                ["b32"] => 0,
                ["b32", m] => match *m {
                    "f4e" => 1,
                    "b4e" => 2,
                    "rc8" => 3,
                    "ecl" => 4,
                    "ecr" => 5,
                    "rc16" => 6,
                    _ => return un(i),
                },
                _ => return un(i),
            };
            let (a, b, c) = (src!(1, None), src!(2, None), src!(3, None));
            let d = ctx.dst(&x[0])?;
            ctx.emit(Op::Prmt { d, a, b, c, mode }, guard, Class::Int);
        }
        "addc" | "subc" | "madc" => {
            let Some(Ty::I(t)) = o.ty() else { return un(i) };
            super::inst_cmp::lower_carry(ctx, i, &o, t, guard)?;
        }
        "slct" => {
            ops_n(i, 4)?;
            let tys = o.tys();
            let float = matches!(tys.last(), Some(Ty::F(FTy::F32)));
            let (a, b, c) = (src!(1, None), src!(2, None), src!(3, None));
            let d = ctx.dst(&x[0])?;
            ctx.emit(
                Op::Slct {
                    d,
                    a,
                    b,
                    c,
                    float,
                    ftz: o.has("ftz"),
                },
                guard,
                Class::Int,
            );
        }
        "dp4a" | "dp2a" => {
            ops_n(i, 4)?;
            let tys: Vec<IntTy> = o.mods.iter().filter_map(|m| int_ty(m)).collect();
            if tys.len() != 2 {
                return un(i);
            }
            let (a, b, c) = (src!(1, None), src!(2, None), src!(3, None));
            let d = ctx.dst(&x[0])?;
            let op = Op::Dp {
                d,
                a,
                b,
                c,
                four: o.base == "dp4a",
                hi: o.has("hi"),
                a_signed: tys[0].signed,
                b_signed: tys[1].signed,
            };
            ctx.emit(op, guard, Class::Int);
        }
        "shf" => {
            ops_n(i, 4)?;
            if !o.has("b32") {
                return un(i);
            }
            let left = o.has("l");
            let wrap = o.has("wrap");
            let (a, b, c) = (src!(1, None), src!(2, None), src!(3, None));
            let d = ctx.dst(&x[0])?;
            ctx.emit(Op::Shf { d, a, b, c, left, wrap }, guard, Class::Int);
        }
        "testp" | "setp" | "set" | "selp" | "cvt" => return super::inst_cmp::lower_cmp_cvt(ctx, i, &o, guard),
        _ => return super::inst_mem::lower_inst_mem(ctx, i, &o, guard),
    }
    Ok(())
}
