//! Lowering of the `mbarrier.*` instructions and `cp.async.mbarrier.arrive` (PTX ISA "Parallel
//! Synchronization and Communication Instructions: mbarrier"), for mbarrier objects in the CTA's shared
//! memory. `.shared::cluster`, `.cluster` scope and the PTX 9.3 `.layout`/`.phase_type` forms are
//! `Unsupported` (unknown modifiers).

use super::inst::{un, Opc};
use super::inst_mem::space_of;
use super::{FnCtx, R};
use crate::ast::{Instr, Operand};
use crate::error::parse_err;
use crate::ir::*;

/// The verbs of `mbarrier` (exactly one per instruction, `expect_tx` also as `arrive.expect_tx`).
const VERBS: &[&str] = &[
    "init",
    "inval",
    "arrive",
    "arrive_drop",
    "expect_tx",
    "complete_tx",
    "test_wait",
    "try_wait",
    "pending_count",
];

/// The other modifiers `mbarrier` accepts (`lower/mods.rs` takes both lists); each verb checks its
/// own below.
const QUALIFIERS: &[&str] = &[
    "parity",
    "noComplete",
    "release",
    "acquire",
    "relaxed",
    "cta",
    "shared",
    "shared::cta",
];

/// Every modifier `mbarrier` accepts: its verbs and qualifiers.
pub(crate) fn modifiers() -> impl Iterator<Item = &'static str> {
    VERBS.iter().chain(QUALIFIERS).copied()
}

/// The extra modifiers of `cp.async.mbarrier.arrive[.noinc]`.
pub(crate) const CP_ASYNC_MODS: &[&str] = &["mbarrier", "arrive", "noinc"];

/// The space of the mbarrier address: `.shared[::cta]`, or generic without a qualifier (a `.shared`
/// symbol used directly is shared either way).
fn mbar_space(ctx: &mut FnCtx, o: &Opc, addr: &Operand) -> R<(Addr, Space)> {
    let (a, sym) = ctx.addr(addr)?;
    let space = match (space_of(o)?, sym) {
        (Some(s), _) => s,
        (None, Some(s)) => s,
        (None, None) => Space::Generic,
    };
    Ok((a, space))
}

fn n_ops(i: &Instr, ok: &[usize]) -> R<()> {
    if ok.contains(&i.operands.len()) {
        Ok(())
    } else {
        parse_err(
            i.line,
            format!("`{}`: wrong number of operands ({})", i.opcode, i.operands.len()),
        )
    }
}

pub(crate) fn lower_mbarrier(ctx: &mut FnCtx, i: &Instr, o: &Opc, guard: Option<(Slot, bool)>) -> R<()> {
    let x = &i.operands;
    if !o.has("b64") {
        return un(i);
    }
    let verb = o.mods.first().copied().unwrap_or("");
    // exactly one verb, and qualifiers that belong to it
    if o.mods.iter().filter(|m| VERBS.contains(m)).count() != 1 + usize::from(verb != "expect_tx" && o.has("expect_tx"))
    {
        return un(i);
    }
    let extra = |allowed: &[&str]| {
        o.mods[1..]
            .iter()
            .any(|m| !allowed.contains(m) && !matches!(*m, "b64" | "shared" | "shared::cta"))
    };
    let op = match verb {
        "init" | "inval" => {
            if extra(&[]) {
                return un(i);
            }
            n_ops(i, if verb == "init" { &[2] } else { &[1] })?;
            let (addr, space) = mbar_space(ctx, o, &x[0])?;
            if verb == "init" {
                let count = ctx.src(&x[1], None)?;
                MbarOp::Init { addr, space, count }
            } else {
                MbarOp::Inval { addr, space }
            }
        }
        "arrive" | "arrive_drop" => {
            if extra(&["expect_tx", "noComplete", "release", "relaxed", "cta"])
                || (o.has("expect_tx") && o.has("noComplete"))
            {
                return un(i);
            }
            let (tx_form, no_complete) = (o.has("expect_tx"), o.has("noComplete"));
            n_ops(i, if tx_form || no_complete { &[3] } else { &[2, 3] })?;
            let state = match &x[0] {
                Operand::Name(n) if n == "_" => None,
                d => Some(ctx.dst(d)?),
            };
            let (addr, space) = mbar_space(ctx, o, &x[1])?;
            let third = if x.len() == 3 {
                Some(ctx.src(&x[2], None)?)
            } else {
                None
            };
            let (count, tx) = if tx_form { (None, third) } else { (third, None) };
            MbarOp::Arrive {
                state,
                addr,
                space,
                count,
                tx,
                drop: verb == "arrive_drop",
                no_complete,
            }
        }
        "expect_tx" | "complete_tx" => {
            if extra(&["relaxed", "cta"]) {
                return un(i);
            }
            n_ops(i, &[2])?;
            let (addr, space) = mbar_space(ctx, o, &x[0])?;
            let n = ctx.src(&x[1], None)?;
            MbarOp::Tx {
                addr,
                space,
                n,
                complete: verb == "complete_tx",
            }
        }
        "test_wait" | "try_wait" => {
            if extra(&["parity", "acquire", "relaxed", "cta"]) {
                return un(i);
            }
            let try_wait = verb == "try_wait";
            // try_wait takes an optional suspend-time hint (ignored: a failed wait yields the warp)
            n_ops(i, if try_wait { &[3, 4] } else { &[3] })?;
            let p = ctx.dst(&x[0])?;
            let (addr, space) = mbar_space(ctx, o, &x[1])?;
            let token = ctx.src(&x[2], None)?;
            if x.len() == 4 {
                ctx.src(&x[3], None)?;
            }
            MbarOp::Wait {
                p,
                addr,
                space,
                token,
                parity: o.has("parity"),
                try_wait,
            }
        }
        "pending_count" => {
            if o.mods.len() != 2 {
                return un(i);
            }
            n_ops(i, &[2])?;
            let d = ctx.dst(&x[0])?;
            let state = ctx.src(&x[1], None)?;
            MbarOp::PendingCount { d, state }
        }
        _ => return un(i),
    };
    ctx.emit(Op::Mbar(Box::new(op)), guard, Class::Barrier);
    Ok(())
}

/// `cp.async.mbarrier.arrive[.noinc][.shared[::cta]].b64 [addr]`.
pub(crate) fn lower_cp_async_arrive(ctx: &mut FnCtx, i: &Instr, o: &Opc, guard: Option<(Slot, bool)>) -> R<()> {
    let ok = ["async", "mbarrier", "arrive", "noinc", "shared", "shared::cta", "b64"];
    if !o.has("arrive") || !o.has("b64") || o.mods.iter().any(|m| !ok.contains(m)) {
        return un(i);
    }
    n_ops(i, &[1])?;
    let (addr, space) = mbar_space(ctx, o, &i.operands[0])?;
    let op = MbarOp::CpAsyncArrive {
        addr,
        space,
        noinc: o.has("noinc"),
    };
    ctx.emit(Op::Mbar(Box::new(op)), guard, Class::Async);
    Ok(())
}
