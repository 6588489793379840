//! Lowering of tensor-core and async-copy instructions: `mma.sync`, `ldmatrix`, `stmatrix`, `cp.async`.

use super::inst::{un, Opc};
use super::inst_mem::{access_space, dsts, mma_ty, space_of, srcs};
use super::{FnCtx, R};
use crate::ast::{Instr, Operand};
use crate::error::parse_err;
use crate::ir::*;

pub(crate) fn lower_tensor(ctx: &mut FnCtx, i: &Instr, o: &Opc, guard: Option<(Slot, bool)>) -> R<()> {
    let x = &i.operands;
    let n = x.len();
    match o.base {
        "mma" => {
            let shape = o.mods.iter().find(|m| m.starts_with('m')).copied().unwrap_or("");
            let k = match shape {
                "m16n8k16" => 16,
                "m16n8k8" => 8,
                "m16n8k4" => 4,
                _ => return un(i),
            };
            if !o.has("row") || !o.has("col") || n != 4 {
                return un(i);
            }
            let tys: Vec<MmaTy> = o.mods.iter().filter_map(|m| mma_ty(m)).collect();
            if tys.len() != 4 || tys[1] != tys[2] || tys[1] == MmaTy::F32 {
                return un(i);
            }
            let (dt, ab, ct) = (tys[0], tys[1], tys[3]);
            if matches!(ab, MmaTy::BF16 | MmaTy::TF32) && (dt != MmaTy::F32 || ct != MmaTy::F32) {
                return un(i);
            }
            // f16/bf16: k16 or k8; tf32: k8 or k4
            let tf32 = ab == MmaTy::TF32;
            if (tf32 && k == 16) || (!tf32 && k == 4) {
                return un(i);
            }
            let d = dsts(ctx, &x[0])?;
            let a = srcs(ctx, &x[1], None)?;
            let b = srcs(ctx, &x[2], None)?;
            let c = srcs(ctx, &x[3], None)?;
            let acc = if dt == MmaTy::F32 { 4 } else { 2 };
            let cacc = if ct == MmaTy::F32 { 4 } else { 2 };
            let full = if tf32 { k == 8 } else { k == 16 };
            let (na, nb) = if full { (4, 2) } else { (2, 1) };
            if d.len() != acc || c.len() != cacc || a.len() != na || b.len() != nb {
                return parse_err(i.line, "mma: wrong fragment sizes");
            }
            ctx.emit(
                Op::Mma {
                    k,
                    ab,
                    cd: dt,
                    ct,
                    d,
                    a,
                    b,
                    c,
                },
                guard,
                Class::Tensor,
            );
        }
        "ldmatrix" | "stmatrix" => {
            if !o.has("m8n8") || !o.has("b16") || n != 2 {
                return un(i);
            }
            let cnt = if o.has("x1") {
                1
            } else if o.has("x2") {
                2
            } else if o.has("x4") {
                4
            } else {
                return un(i);
            };
            let trans = o.has("trans");
            let space = space_of(o)?.unwrap_or(Space::Generic);
            if o.base == "ldmatrix" {
                let (addr, sym) = ctx.addr(&x[1])?;
                let ds = dsts(ctx, &x[0])?;
                if ds.len() != cnt as usize {
                    return parse_err(i.line, "ldmatrix: wrong destination count");
                }
                ctx.emit(
                    Op::Ldmatrix {
                        n: cnt,
                        trans,
                        ds,
                        addr,
                        space: access_space(Some(space), sym),
                    },
                    guard,
                    // LDSM/STSM issue to the shared-memory (MIO) pipe, not the tensor cores.
                    Class::Shared,
                );
            } else {
                let (addr, sym) = ctx.addr(&x[0])?;
                let s = srcs(ctx, &x[1], None)?;
                if s.len() != cnt as usize {
                    return parse_err(i.line, "stmatrix: wrong source count");
                }
                ctx.emit(
                    Op::Stmatrix {
                        n: cnt,
                        trans,
                        srcs: s,
                        addr,
                        space: access_space(Some(space), sym),
                    },
                    guard,
                    // LDSM/STSM issue to the shared-memory (MIO) pipe, not the tensor cores.
                    Class::Shared,
                );
            }
        }
        "cp" => {
            if o.has("async") && o.has("mbarrier") {
                return super::inst_mbar::lower_cp_async_arrive(ctx, i, o, guard);
            }
            if !o.has("async") || o.has("bulk") || o.mods.iter().any(|m| m.starts_with("mbarrier")) {
                return un(i);
            }
            if o.has("commit_group") {
                ctx.emit(Op::CpAsyncCommit, guard, Class::Async);
            } else if o.has("wait_group") {
                let Some(Operand::Imm(k)) = x.first() else {
                    return parse_err(i.line, "wait_group needs N");
                };
                ctx.emit(Op::CpAsyncWait { n: *k as u32 }, guard, Class::Async);
            } else if o.has("wait_all") {
                ctx.emit(Op::CpAsyncWait { n: u32::MAX }, guard, Class::Async);
            } else if o.has("ca") || o.has("cg") {
                if !(3..=4).contains(&n) {
                    return un(i);
                }
                let (dst, _) = ctx.addr(&x[0])?;
                let (src, _) = ctx.addr(&x[1])?;
                let Operand::Imm(size) = x[2] else {
                    return parse_err(i.line, "cp.async: cp-size must be 4, 8 or 16");
                };
                if !matches!(size, 4 | 8 | 16) || (o.has("cg") && size != 16) {
                    return parse_err(i.line, "cp.async: cp-size must be 4, 8 or 16 (16 for .cg)");
                }
                let (mut src_size, mut ignore) = (None, None);
                if n == 4 {
                    match &x[3] {
                        Operand::Not(p) => ignore = Some((Src::R(ctx.reg(p)?), true)),
                        Operand::Name(p) if ctx.preds.contains(&ctx.reg(p)?) => {
                            ignore = Some((Src::R(ctx.reg(p)?), false))
                        }
                        other => src_size = Some(ctx.src(other, None)?),
                    }
                }
                ctx.emit(
                    Op::CpAsync {
                        size: size as u8,
                        dst,
                        src,
                        src_size,
                        ignore,
                    },
                    guard,
                    Class::Async,
                );
            } else {
                return un(i);
            }
        }
        _ => return un(i),
    }
    Ok(())
}
