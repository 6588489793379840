//! Lowering of memory, control-flow, barrier, warp-collective, tensor-core and async-copy instructions.

use super::inst::{int_ty, ty, un, une, Opc};
use super::{FnCtx, Sym, R};
use crate::ast::{type_size, Instr, Operand};
use crate::error::{parse_err, unsupported};
use crate::ir::*;

pub(crate) fn space_of(o: &Opc) -> R<Option<Space>> {
    let mut sp = None;
    for m in &o.mods {
        let s = match *m {
            "global" => Space::Global,
            "shared" | "shared::cta" => Space::Shared,
            "local" => Space::Local,
            "param" | "param::entry" | "param::func" => Space::Param,
            "const" => Space::Const,
            _ => continue,
        };
        sp = Some(s);
    }
    Ok(sp)
}

/// Destination slots of `d` or `{d0, d1, ...}`; `_` sinks get a fresh slot.
pub(crate) fn dsts(ctx: &mut FnCtx, o: &Operand) -> R<Vec<Slot>> {
    let one = |ctx: &mut FnCtx, o: &Operand| match o {
        Operand::Name(n) if n == "_" => Ok(ctx.new_slot()),
        o => ctx.dst(o),
    };
    match o {
        Operand::Vec(v) => v.iter().map(|d| one(ctx, d)).collect(),
        o => Ok(vec![one(ctx, o)?]),
    }
}

pub(crate) fn srcs(ctx: &mut FnCtx, o: &Operand, f: Option<FTy>) -> R<Vec<Src>> {
    match o {
        Operand::Vec(v) => v.iter().map(|s| ctx.src(s, f)).collect(),
        o => Ok(vec![ctx.src(o, f)?]),
    }
}

fn fty(t: Option<Ty>) -> Option<FTy> {
    match t {
        Some(Ty::F(f)) => Some(f),
        _ => None,
    }
}

/// The space of an access: the opcode's, refined by a symbol's own space (a device function's `.param`
/// lives in per-thread local memory here).
pub(crate) fn access_space(op_space: Option<Space>, sym_space: Option<Space>) -> Space {
    match (op_space, sym_space) {
        (Some(Space::Param), Some(s)) => s,
        (Some(s), _) => s,
        (None, Some(s)) => s,
        (None, None) => Space::Generic,
    }
}

fn mem_class(s: Space) -> Class {
    match s {
        Space::Global | Space::Generic => Class::Global,
        Space::Shared => Class::Shared,
        Space::Local => Class::Local,
        Space::Param | Space::Const => Class::ParamConst,
    }
}

fn pred_src(ctx: &mut FnCtx, o: &Operand) -> R<(Src, bool)> {
    match o {
        Operand::Not(p) => Ok((Src::R(ctx.reg(p)?), true)),
        o => Ok((ctx.src(o, None)?, false)),
    }
}

pub(crate) fn mma_ty(s: &str) -> Option<MmaTy> {
    Some(match s {
        "f16" => MmaTy::F16,
        "bf16" => MmaTy::BF16,
        "f32" => MmaTy::F32,
        "tf32" => MmaTy::TF32,
        _ => return None,
    })
}

pub(crate) fn lower_inst_mem(ctx: &mut FnCtx, i: &Instr, o: &Opc, guard: Option<(Slot, bool)>) -> R<()> {
    let x = &i.operands;
    let n = x.len();
    match o.base {
        "ld" | "ldu" | "st" => {
            if n != 2 {
                return parse_err(i.line, format!("`{}` takes 2 operands", i.opcode));
            }
            if o.mods.iter().any(|m| m.starts_with("shared::cluster")) {
                return un(i);
            }
            if o.has("b128") {
                // 128-bit registers are not modelled
                return un(i);
            }
            let t = o.ty().ok_or_else(|| une(i))?;
            let size = t.bits().div_ceil(8) as u8;
            let signed = matches!(t, Ty::I(IntTy { signed: true, .. }));
            let op_space = space_of(o)?;
            if o.base == "st" {
                let (addr, sym) = ctx.addr(&x[0])?;
                let space = access_space(op_space, sym);
                let srcs = srcs(ctx, &x[1], fty(Some(t)))?;
                let class = mem_class(space);
                ctx.emit(
                    Op::St {
                        space,
                        size,
                        srcs,
                        addr,
                        strong: ["volatile", "relaxed", "release"].iter().any(|m| o.has(m)),
                    },
                    guard,
                    class,
                );
            } else {
                let (addr, sym) = ctx.addr(&x[1])?;
                let space = access_space(op_space, sym);
                let ds = dsts(ctx, &x[0])?;
                let class = mem_class(space);
                ctx.emit(
                    Op::Ld {
                        space,
                        size,
                        signed,
                        ds,
                        addr,
                        strong: ["volatile", "relaxed", "acquire"].iter().any(|m| o.has(m)),
                    },
                    guard,
                    class,
                );
            }
        }
        "atom" | "red" => {
            let op = o
                .mods
                .iter()
                .find_map(|m| {
                    Some(match *m {
                        "add" => AtomOp::Add,
                        "min" => AtomOp::Min,
                        "max" => AtomOp::Max,
                        "inc" => AtomOp::Inc,
                        "dec" => AtomOp::Dec,
                        "and" => AtomOp::And,
                        "or" => AtomOp::Or,
                        "xor" => AtomOp::Xor,
                        "exch" => AtomOp::Exch,
                        "cas" => AtomOp::Cas,
                        _ => return None,
                    })
                })
                .ok_or_else(|| une(i))?;
            if o.mods
                .iter()
                .any(|m| matches!(*m, "v2" | "v4" | "v8" | "shared::cluster"))
            {
                return un(i);
            }
            let t = o.ty().ok_or_else(|| une(i))?;
            if matches!(t, Ty::F(FTy::F16 | FTy::BF16 | FTy::F16x2 | FTy::BF16x2)) && op != AtomOp::Add {
                return un(i);
            }
            let space = space_of(o)?.unwrap_or(Space::Generic);
            let (d, rest) = if o.base == "atom" {
                (Some(ctx.dst(&x[0])?), &x[1..])
            } else {
                (None, &x[..])
            };
            let need = if op == AtomOp::Cas { 3 } else { 2 };
            if rest.len() != need {
                return parse_err(i.line, format!("`{}`: wrong operand count", i.opcode));
            }
            let (addr, sym) = ctx.addr(&rest[0])?;
            let space = access_space(Some(space), sym);
            let b = ctx.src(&rest[1], fty(Some(t)))?;
            let c = if op == AtomOp::Cas {
                Some(ctx.src(&rest[2], fty(Some(t)))?)
            } else {
                None
            };
            ctx.emit(
                Op::Atom {
                    space,
                    op,
                    t,
                    d,
                    addr,
                    b,
                    c,
                },
                guard,
                Class::Atomic,
            );
        }
        "cvta" => {
            if n != 2 {
                return parse_err(i.line, "cvta takes 2 operands");
            }
            let to_space = o.has("to");
            let space = space_of(o)?.ok_or_else(|| une(i))?;
            let a = ctx.src(&x[1], None)?;
            let d = ctx.dst(&x[0])?;
            ctx.emit(Op::Cvta { to_space, space, d, a }, guard, Class::Int);
        }
        "isspacep" => {
            if n != 2 {
                return parse_err(i.line, "isspacep takes 2 operands");
            }
            let space = space_of(o)?.ok_or_else(|| une(i))?;
            if !matches!(
                space,
                Space::Global | Space::Shared | Space::Local | Space::Param | Space::Const
            ) {
                return un(i);
            }
            let a = ctx.src(&x[1], None)?;
            let d = ctx.dst(&x[0])?;
            ctx.emit(Op::Isspacep { space, d, a }, guard, Class::Int);
        }
        "bra" | "brx" => {
            if o.base == "brx" {
                return un(i);
            }
            let Some(Operand::Name(l)) = x.first() else {
                return parse_err(i.line, "bra needs a label");
            };
            let at = ctx.code.len();
            ctx.fixups.push((at, l.clone(), i.line));
            ctx.emit(Op::Bra { target: u32::MAX }, guard, Class::Control);
        }
        "call" => {
            let (rets, fname, args) = match x.as_slice() {
                [Operand::List(r), Operand::Name(f), Operand::List(a)] => (r.clone(), f.clone(), a.clone()),
                [Operand::List(r), Operand::Name(f)] => (r.clone(), f.clone(), vec![]),
                [Operand::Name(f), Operand::List(a)] => (vec![], f.clone(), a.clone()),
                [Operand::Name(f)] => (vec![], f.clone(), vec![]),
                _ => return un(i),
            };
            let frame = |ctx: &FnCtx, o: &Operand| -> R<(u32, u32)> {
                match o {
                    Operand::Name(nm) => match ctx.lookup(nm) {
                        Some(Sym::Frame(off)) => Ok((off, 0)),
                        _ => unsupported(i.line, format!("call argument `{nm}` that is not a .param")),
                    },
                    _ => unsupported(i.line, "call with a non-param argument"),
                }
            };
            if matches!(fname.as_str(), "vprintf" | "__assertfail") && !ctx.funcs.contains_key(&fname) {
                // CUDA runtime device functions, provided by the emulator
                let frames = args.iter().map(|a| frame(ctx, a).map(|f| f.0)).collect::<R<Vec<_>>>()?;
                let ret = rets.first().map(|r| frame(ctx, r).map(|f| f.0)).transpose()?;
                let want = if fname == "vprintf" { 2 } else { 5 };
                if frames.len() != want {
                    return parse_err(i.line, format!("call of `{fname}` with the wrong number of arguments"));
                }
                let kind = if fname == "vprintf" {
                    Builtin::Printf
                } else {
                    Builtin::AssertFail
                };
                ctx.emit(
                    Op::Builtin {
                        kind,
                        args: frames,
                        ret,
                    },
                    guard,
                    Class::Control,
                );
                return Ok(());
            }
            let Some((_, info)) = ctx.funcs.get(&fname) else {
                return unsupported(
                    i.line,
                    format!("call of `{fname}` (indirect call or a function without a body)"),
                );
            };
            if info.params.len() != args.len() || info.rets.len() != rets.len() {
                return parse_err(i.line, format!("call of `{fname}` with the wrong number of arguments"));
            }
            let info = info.clone();
            let args = args
                .iter()
                .zip(&info.params)
                .map(|(a, p)| frame(ctx, a).map(|(off, _)| (off, p.1)))
                .collect::<R<Vec<_>>>()?;
            let ret = rets
                .iter()
                .zip(&info.rets)
                .map(|(a, p)| frame(ctx, a).map(|(off, _)| (off, p.1)))
                .collect::<R<Vec<_>>>()?;
            let at = ctx.code.len();
            ctx.call_fixups.push((at, fname, i.line));
            ctx.emit(
                Op::Call {
                    func: u32::MAX,
                    args,
                    ret,
                },
                guard,
                Class::Control,
            );
        }
        "ret" => ctx.emit(if ctx.is_kernel { Op::Exit } else { Op::Ret }, guard, Class::Control),
        "exit" => ctx.emit(Op::Exit, guard, Class::Control),
        "trap" | "brkpt" => ctx.emit(Op::Trap, guard, Class::Control),
        "bar" | "barrier" => {
            if o.has("red") {
                // bar.red.{popc.u32, and.pred, or.pred} d, a{, b}, {!}c
                let op = if o.has("popc") && o.has("u32") {
                    BarRed::Popc
                } else if o.has("and") && o.has("pred") {
                    BarRed::And
                } else if o.has("or") && o.has("pred") {
                    BarRed::Or
                } else {
                    return un(i);
                };
                if n != 3 && n != 4 {
                    return parse_err(i.line, "bar.red takes 3 or 4 operands");
                }
                let d = ctx.dst(&x[0])?;
                let id = ctx.src(&x[1], None)?;
                let count = if n == 4 { Some(ctx.src(&x[2], None)?) } else { None };
                let (a, neg) = pred_src(ctx, &x[n - 1])?;
                let red = Some((d, a, neg));
                ctx.emit(
                    Op::Bar {
                        kind: BarKind::Red(op),
                        id,
                        count,
                        red,
                    },
                    guard,
                    Class::Barrier,
                );
                return Ok(());
            }
            if o.mods.iter().any(|m| m.starts_with("cluster")) || o.base == "bar" && o.has("warp") {
                if o.base == "bar" && o.has("warp") && o.has("sync") {
                    if n != 1 {
                        return parse_err(i.line, "bar.warp.sync takes 1 operand");
                    }
                    let mask = ctx.src(&x[0], None)?;
                    ctx.emit(Op::WarpSync { mask }, guard, Class::Warp);
                    return Ok(());
                }
                return un(i);
            }
            let kind = if o.has("arrive") {
                BarKind::Arrive
            } else if o.has("sync") || o.mods.is_empty() || o.mods == ["cta"] {
                BarKind::Sync
            } else {
                return un(i);
            };
            if n == 0 || n > 2 {
                return parse_err(i.line, "bar takes 1 or 2 operands");
            }
            let id = ctx.src(&x[0], None)?;
            let count = if n == 2 { Some(ctx.src(&x[1], None)?) } else { None };
            if kind == BarKind::Arrive && count.is_none() {
                return parse_err(i.line, "bar.arrive needs a thread count");
            }
            ctx.emit(
                Op::Bar {
                    kind,
                    id,
                    count,
                    red: None,
                },
                guard,
                Class::Barrier,
            );
        }
        "membar" | "fence" => {
            if o.mods.iter().any(|m| m.starts_with("proxy") && *m != "proxy") && !o.has("async") {
                return un(i);
            }
            ctx.emit(Op::Membar, guard, Class::Other);
        }
        "nanosleep" | "pmevent" | "prefetch" | "prefetchu" | "discard" | "applypriority" | "griddepcontrol" => {
            ctx.emit(Op::Nop, guard, Class::Other)
        }
        "shfl" => {
            if !o.has("sync") || !o.has("b32") || n != 5 {
                return un(i);
            }
            let mode = if o.has("up") {
                ShflMode::Up
            } else if o.has("down") {
                ShflMode::Down
            } else if o.has("bfly") {
                ShflMode::Bfly
            } else if o.has("idx") {
                ShflMode::Idx
            } else {
                return un(i);
            };
            let (d, p) = match &x[0] {
                Operand::Pair(d, p) => (ctx.reg(d)?, if p == "_" { None } else { Some(ctx.reg(p)?) }),
                d => (ctx.dst(d)?, None),
            };
            let a = ctx.src(&x[1], None)?;
            let b = ctx.src(&x[2], None)?;
            let c = ctx.src(&x[3], None)?;
            let mask = ctx.src(&x[4], None)?;
            ctx.emit(
                Op::Shfl {
                    mode,
                    d,
                    p,
                    a,
                    b,
                    c,
                    mask,
                },
                guard,
                Class::Warp,
            );
        }
        "vote" => {
            if !o.has("sync") || n != 3 {
                return un(i);
            }
            let mode = if o.has("all") {
                VoteMode::All
            } else if o.has("any") {
                VoteMode::Any
            } else if o.has("uni") {
                VoteMode::Uni
            } else if o.has("ballot") {
                VoteMode::Ballot
            } else {
                return un(i);
            };
            let d = ctx.dst(&x[0])?;
            let (a, neg) = pred_src(ctx, &x[1])?;
            let mask = ctx.src(&x[2], None)?;
            ctx.emit(Op::Vote { mode, d, a, neg, mask }, guard, Class::Warp);
        }
        "redux" => {
            if !o.has("sync") || n != 3 {
                return un(i);
            }
            let op = o
                .mods
                .iter()
                .find_map(|m| {
                    Some(match *m {
                        "add" => ReduxOp::Add,
                        "min" => ReduxOp::Min,
                        "max" => ReduxOp::Max,
                        "and" => ReduxOp::And,
                        "or" => ReduxOp::Or,
                        "xor" => ReduxOp::Xor,
                        _ => return None,
                    })
                })
                .ok_or_else(|| une(i))?;
            let Some(Ty::I(t)) = o.ty() else { return un(i) };
            if t.bits != 32 {
                return un(i);
            }
            let d = ctx.dst(&x[0])?;
            let a = ctx.src(&x[1], None)?;
            let mask = ctx.src(&x[2], None)?;
            ctx.emit(
                Op::Redux {
                    op,
                    signed: t.signed,
                    d,
                    a,
                    mask,
                },
                guard,
                Class::Warp,
            );
        }
        "match" => {
            if !o.has("sync") || n != 3 {
                return un(i);
            }
            let all = o.has("all");
            let bits = if o.has("b64") { 64 } else { 32 };
            let (d, p) = match &x[0] {
                Operand::Pair(d, p) => (ctx.reg(d)?, Some(ctx.reg(p)?)),
                d => (ctx.dst(d)?, None),
            };
            let a = ctx.src(&x[1], None)?;
            let mask = ctx.src(&x[2], None)?;
            ctx.emit(
                Op::Match {
                    all,
                    bits,
                    d,
                    p,
                    a,
                    mask,
                },
                guard,
                Class::Warp,
            );
        }
        "activemask" => {
            let d = ctx.dst(x.first().ok_or_else(|| une(i))?)?;
            ctx.emit(Op::Activemask { d }, guard, Class::Warp);
        }
        "mma" | "ldmatrix" | "stmatrix" | "cp" => return super::inst_tensor::lower_tensor(ctx, i, o, guard),
        "wmma" => return super::inst_wmma::lower_wmma(ctx, i, o, guard),
        "mbarrier" => return super::inst_mbar::lower_mbarrier(ctx, i, o, guard),
        _ => return un(i),
    }
    let _ = (int_ty, ty, type_size);
    Ok(())
}
