//! Lowering of comparisons, selection, conversions and carry chains: `testp`, `setp`, `set`, `selp`,
//! `cvt`, `add.cc`/`addc`/`sub.cc`/`subc`/`mad.cc`/`madc`.

use super::inst::{class_of_f, f_ty, ops_n, ty, un, une, Opc};
use super::{FnCtx, R};
use crate::ast::{Instr, Operand};
use crate::ir::*;

pub(crate) fn lower_cmp_cvt(ctx: &mut FnCtx, i: &Instr, o: &Opc, guard: Option<(Slot, bool)>) -> R<()> {
    let x = &i.operands;
    macro_rules! src {
        ($k:expr, $f:expr) => {
            ctx.src(&x[$k], $f)?
        };
    }
    match o.base {
        "testp" => {
            ops_n(i, 2)?;
            let Some(Ty::F(t)) = o.ty() else { return un(i) };
            let kind = match o.mods.first().copied() {
                Some("finite") => 0,
                Some("infinite") => 1,
                Some("number") => 2,
                Some("notanumber") => 3,
                Some("normal") => 4,
                Some("subnormal") => 5,
                _ => return un(i),
            };
            let a = src!(1, Some(t));
            let d = ctx.dst(&x[0])?;
            ctx.emit(Op::Testp { t, kind, d, a }, guard, class_of_f(t));
        }
        "setp" | "set" => {
            let cmp = o.mods.first().and_then(|c| cmp_op(c)).ok_or_else(|| une(i))?;
            let bop = o.mods.get(1).and_then(|b| match *b {
                "and" => Some(BoolOp::And),
                "or" => Some(BoolOp::Or),
                "xor" => Some(BoolOp::Xor),
                _ => None,
            });
            let tys = o.tys();
            let t = *tys.last().ok_or_else(|| une(i))?;
            if matches!(t, Ty::F(FTy::F16x2 | FTy::BF16x2)) && o.base == "set" {
                return un(i);
            }
            let fty = if let Ty::F(f) = t { Some(f) } else { None };
            let need = if bop.is_some() { 4 } else { 3 };
            ops_n(i, need)?;
            let a = src!(1, fty);
            let b = src!(2, fty);
            let comb = match bop {
                Some(bop) => {
                    let (neg, p) = match &x[3] {
                        Operand::Not(p) => (true, Operand::Name(p.clone())),
                        p => (false, p.clone()),
                    };
                    Some((bop, ctx.src(&p, None)?, neg))
                }
                None => None,
            };
            if o.base == "set" {
                if comb.is_some() || tys.len() != 2 {
                    return un(i);
                }
                let float_out = matches!(tys[0], Ty::F(FTy::F32));
                let d = ctx.dst(&x[0])?;
                ctx.emit(
                    Op::Set {
                        cmp,
                        t,
                        float_out,
                        d,
                        a,
                        b,
                    },
                    guard,
                    Class::Int,
                );
            } else {
                let (d, d2) = match &x[0] {
                    Operand::Pair(p, q) => (ctx.reg(p)?, Some(ctx.reg(q)?)),
                    d => (ctx.dst(d)?, None),
                };
                let class = fty.map(class_of_f).unwrap_or(Class::Int);
                ctx.emit(
                    Op::Setp {
                        cmp,
                        t,
                        ftz: o.has("ftz"),
                        d,
                        d2,
                        a,
                        b,
                        comb,
                    },
                    guard,
                    class,
                );
            }
        }
        "selp" => {
            ops_n(i, 4)?;
            let t = o.ty().ok_or_else(|| une(i))?;
            let fty = if let Ty::F(f) = t { Some(f) } else { None };
            let (a, b, p) = (src!(1, fty), src!(2, fty), src!(3, None));
            let d = ctx.dst(&x[0])?;
            ctx.emit(Op::Selp { d, a, b, p }, guard, Class::Int);
        }
        "cvt" => {
            let tys: Vec<&str> = o
                .mods
                .iter()
                .copied()
                .filter(|m| ty(m).is_some() || *m == "tf32")
                .collect();
            if tys.len() != 2 {
                return un(i);
            }
            let m = o.fmods();
            if tys[1] == "f32" && (tys[0] == "f16x2" || tys[0] == "bf16x2") {
                ops_n(i, 3)?;
                let dt = f_ty(tys[0]).expect("checked");
                let (hi, lo) = (src!(1, Some(FTy::F32)), src!(2, Some(FTy::F32)));
                let d = ctx.dst(&x[0])?;
                ctx.emit(Op::CvtPack { dt, m, d, hi, lo }, guard, Class::Convert);
                return Ok(());
            }
            ops_n(i, 2)?;
            if tys[0] == "tf32" {
                if tys[1] != "f32" || m.rnd != Rnd::Rna {
                    return un(i);
                }
                let a = src!(1, Some(FTy::F32));
                let d = ctx.dst(&x[0])?;
                // tf32: f32 with the low 13 mantissa bits cleared after rounding (nearest, ties away).
                ctx.emit(
                    Op::Cvt {
                        dt: Ty::I(IntTy {
                            bits: 19,
                            signed: false,
                        }),
                        st: Ty::F(FTy::F32),
                        m,
                        d,
                        a,
                    },
                    guard,
                    Class::Convert,
                );
                return Ok(());
            }
            let (Some(dt), Some(st)) = (ty(tys[0]), ty(tys[1])) else {
                return un(i);
            };
            if matches!(dt, Ty::F(FTy::F16x2 | FTy::BF16x2)) || matches!(st, Ty::F(FTy::F16x2 | FTy::BF16x2)) {
                return un(i);
            }
            let a = src!(1, if let Ty::F(f) = st { Some(f) } else { None });
            let d = ctx.dst(&x[0])?;
            ctx.emit(Op::Cvt { dt, st, m, d, a }, guard, Class::Convert);
        }
        _ => return un(i),
    }
    Ok(())
}

/// `add.cc`, `addc[.cc]`, `sub.cc`, `subc[.cc]`, `mad[c].{lo,hi}[.cc]` on 32/64-bit integers.
pub(crate) fn lower_carry(ctx: &mut FnCtx, i: &Instr, o: &Opc, t: IntTy, guard: Option<(Slot, bool)>) -> R<()> {
    if t.bits < 32 || o.has("sat") {
        return un(i);
    }
    let (op, n) = match o.base {
        "add" | "addc" => (CarryOp::Add, 3),
        "sub" | "subc" => (CarryOp::Sub, 3),
        "mad" | "madc" if o.has("hi") => (CarryOp::MadHi, 4),
        "mad" | "madc" if o.has("lo") => (CarryOp::MadLo, 4),
        _ => return un(i),
    };
    ops_n(i, n)?;
    let cin = matches!(o.base, "addc" | "subc" | "madc");
    let cout = o.has("cc");
    let cc = match ctx.cc {
        Some(s) => s,
        None => {
            let s = ctx.new_slot();
            ctx.cc = Some(s);
            s
        }
    };
    let x = &i.operands;
    let a = ctx.src(&x[1], None)?;
    let b = ctx.src(&x[2], None)?;
    let c = if n == 4 { ctx.src(&x[3], None)? } else { Src::I(0) };
    let d = ctx.dst(&x[0])?;
    ctx.emit(
        Op::Carry {
            op,
            cin,
            cout,
            t,
            d,
            a,
            b,
            c,
            cc,
        },
        guard,
        Class::Int,
    );
    Ok(())
}

fn cmp_op(s: &str) -> Option<Cmp> {
    Some(match s {
        "eq" => Cmp::Eq,
        "ne" => Cmp::Ne,
        "lt" => Cmp::Lt,
        "le" => Cmp::Le,
        "gt" => Cmp::Gt,
        "ge" => Cmp::Ge,
        "lo" => Cmp::Lo,
        "ls" => Cmp::Ls,
        "hi" => Cmp::Hi,
        "hs" => Cmp::Hs,
        "equ" => Cmp::Equ,
        "neu" => Cmp::Neu,
        "ltu" => Cmp::Ltu,
        "leu" => Cmp::Leu,
        "gtu" => Cmp::Gtu,
        "geu" => Cmp::Geu,
        "num" => Cmp::Num,
        "nan" => Cmp::Nan,
        _ => return None,
    })
}
