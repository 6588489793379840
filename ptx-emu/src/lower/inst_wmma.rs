//! Lowering of the warp-level matrix instructions `wmma.load`, `wmma.store` and `wmma.mma`, shape
//! m16n16k16 with f16 or bf16 multiplicands and f16/f32 accumulators (PTX ISA "Warp Level Matrix
//! Multiply-Accumulate Instructions"). Other shapes and types are `Unsupported`.

use super::inst::{un, Opc};
use super::inst_mem::{access_space, dsts, mma_ty, space_of, srcs};
use super::{FnCtx, R};
use crate::ast::Instr;
use crate::error::parse_err;
use crate::ir::*;

/// The modifiers `wmma` accepts (`lower/mods.rs`); types are checked here.
pub(crate) const MODS: &[&str] = &[
    "load",
    "store",
    "mma",
    "a",
    "b",
    "c",
    "d",
    "sync",
    "aligned",
    "row",
    "col",
    "m16n16k16",
    "global",
    "shared",
    "shared::cta",
];

/// Registers of an m16n16k16 fragment: f16 A/B 8 (`.f16x2`), bf16 A/B 4 (`.b32`), f16 C/D 4
/// (`.f16x2`), f32 C/D 8.
pub(crate) fn frag_regs(mat: WmmaMat, ty: MmaTy) -> usize {
    match (mat, ty) {
        (WmmaMat::A | WmmaMat::B, MmaTy::F16) => 8,
        (WmmaMat::A | WmmaMat::B, _) => 4,
        (WmmaMat::C, MmaTy::F16) => 4,
        (WmmaMat::C, _) => 8,
    }
}

fn layout(o: &Opc, i: &Instr) -> R<bool> {
    match (o.has("row"), o.has("col")) {
        (true, false) => Ok(false),
        (false, true) => Ok(true),
        _ => un(i),
    }
}

pub(crate) fn lower_wmma(ctx: &mut FnCtx, i: &Instr, o: &Opc, guard: Option<(Slot, bool)>) -> R<()> {
    let x = &i.operands;
    if !o.has("sync") || !o.has("aligned") || !o.has("m16n16k16") {
        return un(i);
    }
    let tys: Vec<&str> = o
        .mods
        .iter()
        .copied()
        .filter(|m| super::inst::ty(m).is_some() || *m == "tf32")
        .collect();
    let op = match o.mods.first().copied() {
        Some("load") | Some("store") => {
            let load = o.mods[0] == "load";
            let mat = match (load, o.mods.get(1).copied()) {
                (true, Some("a")) => WmmaMat::A,
                (true, Some("b")) => WmmaMat::B,
                (true, Some("c")) | (false, Some("d")) => WmmaMat::C,
                _ => return un(i),
            };
            let col = layout(o, i)?;
            let ty = match (tys.as_slice(), mat) {
                (["f16"], _) => MmaTy::F16,
                (["bf16"], WmmaMat::A | WmmaMat::B) => MmaTy::BF16,
                (["f32"], WmmaMat::C) => MmaTy::F32,
                _ => return un(i),
            };
            if !(2..=3).contains(&x.len()) {
                return parse_err(i.line, format!("`{}` takes 2 or 3 operands", i.opcode));
            }
            let space = space_of(o)?;
            let stride = if x.len() == 3 {
                Some(ctx.src(&x[2], None)?)
            } else {
                None
            };
            let want = frag_regs(mat, ty);
            if load {
                let (addr, sym) = ctx.addr(&x[1])?;
                let ds = dsts(ctx, &x[0])?;
                if ds.len() != want {
                    return parse_err(
                        i.line,
                        format!("wmma.load: the fragment has {want} registers, found {}", ds.len()),
                    );
                }
                WmmaOp::Load {
                    mat,
                    col,
                    ty,
                    ds,
                    addr,
                    stride,
                    space: access_space(space, sym),
                }
            } else {
                let (addr, sym) = ctx.addr(&x[0])?;
                let s = srcs(ctx, &x[1], None)?;
                if s.len() != want {
                    return parse_err(
                        i.line,
                        format!("wmma.store: the fragment has {want} registers, found {}", s.len()),
                    );
                }
                WmmaOp::Store {
                    col,
                    ty,
                    srcs: s,
                    addr,
                    stride,
                    space: access_space(space, sym),
                }
            }
        }
        Some("mma") => {
            // two layouts: .alayout.blayout (any of row/col each)
            let layouts = o.mods.iter().filter(|m| matches!(**m, "row" | "col")).count();
            if layouts != 2 || o.mods.len() != 6 + tys.len() {
                return un(i);
            }
            let t: Vec<MmaTy> = tys.iter().filter_map(|m| mma_ty(m)).collect();
            let (ab, dt, ct) = match t.as_slice() {
                // f16 multiplicands: .dtype.ctype
                [d @ (MmaTy::F16 | MmaTy::F32), c @ (MmaTy::F16 | MmaTy::F32)] if tys.len() == 2 => {
                    (MmaTy::F16, *d, *c)
                }
                [MmaTy::F32, MmaTy::BF16, MmaTy::BF16, MmaTy::F32] if tys.len() == 4 => {
                    (MmaTy::BF16, MmaTy::F32, MmaTy::F32)
                }
                _ => return un(i),
            };
            if x.len() != 4 {
                return parse_err(i.line, "wmma.mma takes 4 operands");
            }
            let d = dsts(ctx, &x[0])?;
            let a = srcs(ctx, &x[1], None)?;
            let b = srcs(ctx, &x[2], None)?;
            let c = srcs(ctx, &x[3], None)?;
            let (na, nd, nc) = (
                frag_regs(WmmaMat::A, ab),
                frag_regs(WmmaMat::C, dt),
                frag_regs(WmmaMat::C, ct),
            );
            if a.len() != na || b.len() != na || d.len() != nd || c.len() != nc {
                return parse_err(i.line, "wmma.mma: wrong fragment sizes");
            }
            let tmp = (0..nd / 2).map(|_| ctx.new_slot()).collect();
            WmmaOp::Mma {
                ab,
                dt,
                ct,
                d,
                a,
                b,
                c,
                tmp,
            }
        }
        _ => return un(i),
    };
    ctx.emit(Op::Wmma(Box::new(op)), guard, Class::Tensor);
    Ok(())
}
