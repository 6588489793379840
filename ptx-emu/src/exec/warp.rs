//! Warp collectives as a rendezvous: a `.sync` instruction completes only when every lane of its member
//! mask stands at that same instruction; then all inputs are gathered before any output is written.
//! Lanes of the mask that exited or wait at another collective are synccheck reports.

use super::step::{get, lanes, set};
use super::{tensor, Env, Lane, Warp};
use crate::error::CheckKind;
use crate::ir::*;

fn member_src(op: &Op) -> Option<Src> {
    match op {
        Op::Shfl { mask, .. }
        | Op::Vote { mask, .. }
        | Op::Redux { mask, .. }
        | Op::Match { mask, .. }
        | Op::WarpSync { mask } => Some(*mask),
        _ => None,
    }
}

/// Completes the collective at `pc` if every lane of its mask has arrived.
pub(crate) fn try_complete(w: &mut Warp, env: &mut Env, pc: u32) {
    let inst = &env.prog.code[pc as usize];
    loop {
        let mut waiting = 0u32;
        for l in 0..32 {
            if w.state[l] == Lane::Collective && w.pc[l] == pc {
                waiting |= 1 << l;
            }
        }
        if waiting == 0 {
            return;
        }
        let l0 = waiting.trailing_zeros() as usize;
        let msrc = member_src(&inst.op);
        let member = match msrc {
            Some(m) => get(&w.regs, m, l0) as u32,
            None => w.exists,
        };
        let mut group = 0u32;
        lanes!(waiting, |l| {
            let m = msrc.map(|m| get(&w.regs, m, l) as u32).unwrap_or(member);
            if m == member {
                group |= 1 << l;
            } else if env.checks.synccheck {
                env.report(
                    CheckKind::Synccheck,
                    w.id,
                    l,
                    inst.line,
                    None,
                    format!("lanes of a warp collective disagree on the member mask ({member:#010x} vs {m:#010x})"),
                );
            }
        });
        // Every executing lane must be in the mask it passes (not only the first one: a mask naming
        // lanes 0-15 executed by the whole warp is undefined for lanes 16-31).
        let outsiders = group & !member;
        if outsiders != 0 && env.checks.synccheck {
            let l = outsiders.trailing_zeros() as usize;
            env.report(
                CheckKind::Synccheck,
                w.id,
                l,
                inst.line,
                None,
                format!(
                    "lane {l} executes a warp collective whose member mask {member:#010x} does not include it \
                     ({} executing lanes outside the mask)",
                    outsiders.count_ones()
                ),
            );
        }
        let need = member & w.exists;
        let missing = need & !group;
        let mut absent = 0u32;
        let mut wait = false;
        lanes!(missing, |l| {
            match w.state[l] {
                Lane::Ready | Lane::Barrier => wait = true,
                Lane::Exited | Lane::None => {
                    absent |= 1 << l;
                    if env.checks.synccheck {
                        env.report(
                            CheckKind::Synccheck,
                            w.id,
                            l0,
                            inst.line,
                            None,
                            format!("warp collective with member mask {member:#010x} names lane {l}, which has exited"),
                        );
                    }
                }
                Lane::Collective => {
                    if w.pc[l] == pc {
                        // waiting here with another mask: reported above
                        absent |= 1 << l;
                    } else {
                        absent |= 1 << l;
                        if env.checks.synccheck {
                            let other = env.prog.code[w.pc[l] as usize].line;
                            env.report(
                                CheckKind::Synccheck,
                                w.id,
                                l,
                                inst.line,
                                None,
                                format!(
                                    "lanes of a warp collective disagree on the instruction: lane {l0} at PTX line {}, lane {l} at PTX line {other}",
                                    inst.line
                                ),
                            );
                        }
                    }
                }
            }
        });
        if wait {
            return;
        }
        let _ = absent;
        execute(w, env, &inst.op, group, inst.line);
        lanes!(group, |l| {
            w.state[l] = Lane::Ready;
            w.pc[l] = pc + 1;
        });
        if let Some(s) = env.warp_syncs.get_mut(w.id as usize) {
            *s = s.wrapping_add(1);
        }
        if env.checks.racecheck {
            super::mbarrier::on_warp_sync(env, w.id, group);
        }
        if waiting & !group == 0 {
            return;
        }
    }
}

fn execute(w: &mut Warp, env: &mut Env, op: &Op, group: u32, line: u32) {
    let r = &mut w.regs;
    match op {
        Op::Shfl {
            mode, d, p, a, b, c, ..
        } => {
            let mut src = [0u64; 32];
            for (l, s) in src.iter_mut().enumerate() {
                *s = get(r, *a, l);
            }
            let mut out = [(0u64, false); 32];
            lanes!(group, |l| {
                let lane = l as i32;
                let bval = (get(r, *b, l) & 31) as i32;
                let cv = get(r, *c, l);
                let cval = (cv & 31) as i32;
                let seg = ((cv >> 8) & 31) as i32;
                let max_lane = (lane & seg) | (cval & !seg);
                let min_lane = lane & seg;
                let (j, pval) = match mode {
                    ShflMode::Up => {
                        let j = lane - bval;
                        (j, j >= max_lane)
                    }
                    ShflMode::Down => {
                        let j = lane + bval;
                        (j, j <= max_lane)
                    }
                    ShflMode::Bfly => {
                        let j = lane ^ bval;
                        (j, j <= max_lane)
                    }
                    ShflMode::Idx => {
                        let j = min_lane | (bval & !seg);
                        (j, j <= max_lane)
                    }
                };
                let j = if pval { j as usize } else { l };
                out[l] = (src[j & 31] & 0xffff_ffff, pval);
            });
            lanes!(group, |l| {
                set(r, *d, l, out[l].0);
                if let Some(p) = p {
                    set(r, *p, l, out[l].1 as u64);
                }
            });
        }
        Op::Vote { mode, d, a, neg, .. } => {
            let mut ballot = 0u32;
            lanes!(group, |l| {
                if ((get(r, *a, l) & 1) != 0) != *neg {
                    ballot |= 1 << l;
                }
            });
            let v = match mode {
                VoteMode::Ballot => ballot as u64,
                VoteMode::All => (ballot == group) as u64,
                VoteMode::Any => (ballot != 0) as u64,
                VoteMode::Uni => (ballot == group || ballot == 0) as u64,
            };
            lanes!(group, |l| {
                set(r, *d, l, v);
            });
        }
        Op::Redux { op, signed, d, a, .. } => {
            let t = IntTy {
                bits: 32,
                signed: *signed,
            };
            let mut acc: Option<i128> = None;
            lanes!(group, |l| {
                let x = super::int::read(t, get(r, *a, l));
                acc = Some(match acc {
                    None => x,
                    Some(y) => match op {
                        ReduxOp::Add => x + y,
                        ReduxOp::Min => x.min(y),
                        ReduxOp::Max => x.max(y),
                        ReduxOp::And => x & y,
                        ReduxOp::Or => x | y,
                        ReduxOp::Xor => x ^ y,
                    },
                });
            });
            let v = (acc.unwrap_or(0) as u64) & 0xffff_ffff;
            lanes!(group, |l| {
                set(r, *d, l, v);
            });
        }
        Op::Match { all, bits, d, p, a, .. } => {
            let m = super::int::mask(*bits);
            let mut vals = [0u64; 32];
            lanes!(group, |l| {
                vals[l] = get(r, *a, l) & m;
            });
            let mut out = [0u64; 32];
            let first = vals[group.trailing_zeros() as usize];
            let all_eq = {
                let mut e = true;
                lanes!(group, |l| {
                    e &= vals[l] == first;
                });
                e
            };
            lanes!(group, |l| {
                let mut same = 0u32;
                lanes!(group, |k| {
                    if vals[k] == vals[l] {
                        same |= 1 << k;
                    }
                });
                out[l] = if *all {
                    if all_eq {
                        group as u64
                    } else {
                        0
                    }
                } else {
                    same as u64
                };
            });
            lanes!(group, |l| {
                set(r, *d, l, out[l]);
                if let Some(p) = p {
                    set(r, *p, l, all_eq as u64);
                }
            });
        }
        Op::WarpSync { .. } => {}
        Op::Mma { .. } => tensor::mma(w, env, op, group),
        Op::Ldmatrix { .. } | Op::Stmatrix { .. } => tensor::matrix(w, env, op, group, line),
        Op::Wmma(x) => super::wmma::exec(w, env, x, group, line),
        _ => {}
    }
}
