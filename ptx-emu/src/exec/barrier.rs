//! Barriers of a block: completing every barrier whose threads have all arrived (with synccheck's
//! divergent-barrier check and racecheck's barrier epochs), and naming every stuck thread when no
//! thread of the block can move (a deadlock report instead of a hang).

use super::step::{get, lanes, set};
use super::{Env, Lane, Warp};
use crate::error::CheckKind;
use crate::ir::{BarKind, BarRed, Inst, Op, Slot, Src};

/// `bar.red`'s destination, predicate and whether the predicate is negated.
pub(crate) type BarRedOperands = (Slot, Src, bool);

/// The `active` lanes arrive at `bar.sync` / `bar.arrive` (`bar` = kind, id, optional thread count)
/// at `pc`. Returns true when they now wait there (`bar.sync`), false when they go on (`bar.arrive`,
/// or the launch ends on an impossible thread count, which is reported instead of hanging).
pub(crate) fn arrive(
    w: &mut Warp,
    env: &mut Env,
    inst: &Inst,
    bar: (BarKind, Src, Option<Src>, Option<BarRedOperands>),
    pc: u32,
    active: u32,
) -> bool {
    let (kind, id, count, red) = bar;
    let l0 = active.trailing_zeros() as usize;
    let id = (get(&w.regs, id, l0) & 15) as usize;
    let count = count.map(|c| get(&w.regs, c, l0) as u32);
    let threads = env.block.iter().product::<u32>();
    if let Some(c) = count.filter(|&c| c == 0 || c > threads) {
        env.report(
            CheckKind::Synccheck,
            w.id,
            l0,
            inst.line,
            None,
            format!(
                "deadlock: barrier {id} can never complete properly: its thread count is {c}, the block has \
                 {threads} threads (the count must be 1..={threads}, a multiple of 32)"
            ),
        );
        env.fatal = true;
        return false;
    }
    let racecheck = env.checks.racecheck;
    let b = &mut env.bars[id];
    b.arrived = b.arrived.saturating_add(active.count_ones());
    if let Some((_, a, neg)) = red {
        lanes!(active, |l| {
            if ((get(&w.regs, a, l) & 1) != 0) != neg {
                b.red_true += 1;
            }
        });
    }
    if count.is_some() {
        b.expected = count;
    }
    if racecheck {
        lanes!(active, |l| {
            b.members.push(w.id * 32 + l as u32);
        });
    }
    if let Some(t) = env.trace.as_mut() {
        t.bar_arrive(w.id, id, kind != BarKind::Arrive, inst.line);
    }
    if kind == BarKind::Arrive {
        return false;
    }
    lanes!(active, |l| {
        w.state[l] = Lane::Barrier;
        w.bar_id[l] = id as u8;
        w.pc[l] = pc;
    });
    true
}

/// Partial-barrier epochs racecheck keeps per thread; beyond this the oldest half is forgotten (see
/// README "Status": accesses older than that many named barriers are then treated as unordered).
const MAX_BAR_HISTORY: usize = 256;

/// Completes every barrier whose expected number of threads has arrived.
pub(crate) fn release_all(env: &mut Env, warps: &mut [Warp]) -> bool {
    let mut any = false;
    for id in 0..16 {
        let (arrived, expected) = (env.bars[id].arrived, env.bars[id].expected);
        if arrived == 0 {
            continue;
        }
        let expected = expected.unwrap_or(env.live);
        if arrived < expected {
            continue;
        }
        any = true;
        // synccheck: every waiting thread must stand at the same barrier instruction
        let mut first: Option<(u32, u32, usize)> = None;
        let mut mismatch: Option<(u32, usize, u32, u32)> = None;
        let red_true = env.bars[id].red_true;
        let mut released = if env.trace.is_some() {
            vec![false; warps.len()]
        } else {
            vec![]
        };
        for (wi, w) in warps.iter_mut().enumerate() {
            for l in 0..32 {
                if w.state[l] == Lane::Barrier && w.bar_id[l] as usize == id {
                    if let Some(r) = released.get_mut(wi) {
                        *r = true;
                    }
                    match first {
                        None => first = Some((w.pc[l], w.id, l)),
                        Some((pc0, _, _)) if pc0 != w.pc[l] && mismatch.is_none() => {
                            mismatch = Some((w.id, l, pc0, w.pc[l]));
                        }
                        _ => {}
                    }
                    // bar.red: the reduction over every thread that arrived.
                    if let Op::Bar {
                        kind: BarKind::Red(op),
                        red: Some((d, _, _)),
                        ..
                    } = env.prog.code[w.pc[l] as usize].op
                    {
                        let v = match op {
                            BarRed::Popc => red_true as u64,
                            BarRed::And => (red_true == arrived) as u64,
                            BarRed::Or => (red_true > 0) as u64,
                        };
                        set(&mut w.regs, d, l, v);
                    }
                    w.state[l] = Lane::Ready;
                    w.pc[l] += 1;
                }
            }
        }
        if let (true, Some((wid, l, pc0, pc1))) = (env.checks.synccheck, mismatch) {
            let (l0, l1) = (env.prog.code[pc0 as usize].line, env.prog.code[pc1 as usize].line);
            env.report(
                CheckKind::Synccheck,
                wid,
                l,
                l1,
                None,
                format!("divergent barrier: threads wait for barrier {id} at different instructions (PTX lines {l0} and {l1}), e.g. __syncthreads() inside a branch"),
            );
        }
        if let Some(t) = env.trace.as_mut() {
            t.bar_release(id, |wi| released[wi]);
        }
        let members = std::mem::take(&mut env.bars[id]).members;
        env.epoch = env.epoch.wrapping_add(1);
        env.metrics.barriers += 1;
        if env.checks.racecheck {
            if members.len() as u32 >= env.live {
                // Everything before a whole-block barrier is ordered: older partial epochs never matter.
                env.full_epoch = env.epoch;
                env.bar_hist.iter_mut().for_each(Vec::clear);
            } else {
                for t in members {
                    if let Some(h) = env.bar_hist.get_mut(t as usize) {
                        if h.len() >= MAX_BAR_HISTORY {
                            h.drain(..MAX_BAR_HISTORY / 2);
                        }
                        h.push(env.epoch);
                    }
                }
            }
        }
    }
    any
}

pub(crate) fn deadlock(env: &mut Env, warps: &mut [Warp]) {
    // Name what every stuck thread waits for, once.
    for w in warps.iter() {
        for l in 0..32 {
            let pc = w.pc[l] as usize;
            match w.state[l] {
                Lane::Barrier => {
                    let id = w.bar_id[l] as usize;
                    let b = &env.bars[id];
                    let exp = b.expected.unwrap_or(env.live);
                    let line = env.prog.code[pc].line;
                    env.report(
                        CheckKind::Synccheck,
                        w.id,
                        l,
                        line,
                        None,
                        format!(
                            "deadlock: barrier {id} can never complete ({} of {exp} threads arrived; the others exited or wait elsewhere)",
                            b.arrived
                        ),
                    );
                }
                Lane::Collective => {
                    let line = env.prog.code[pc].line;
                    env.report(
                        CheckKind::Synccheck,
                        w.id,
                        l,
                        line,
                        None,
                        "deadlock: a warp collective waits for lanes of its mask that never arrive".into(),
                    );
                }
                _ => {}
            }
        }
    }
    if env.reports.is_empty() {
        env.report(
            CheckKind::Synccheck,
            0,
            0,
            0,
            None,
            "deadlock: no thread can make progress".into(),
        );
    }
    env.fatal = true;
}
