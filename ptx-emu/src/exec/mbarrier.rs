//! mbarrier objects (PTX ISA "Parallel Synchronization and Communication Instructions: mbarrier").
//!
//! The state of each mbarrier lives in a side table of the block keyed by its shared-memory offset, not
//! in the 8 bytes of shared memory: current phase (a counter; its parity is what `.parity` waits test),
//! pending and expected arrival counts, tx-count. A phase completes when the pending count and the
//! tx-count are both 0: the phase advances and the pending count is reset to the expected count.
//!
//! - State tokens (the `state` result of `mbarrier.arrive`) are `1 << 63 | tag << 52 | pending << 32 |
//!   phase`: the phase the arrive-on took part in, the pending count before it, and 11 bits of the
//!   object's offset (`tag`, to catch a token of another mbarrier).
//! - `test_wait` / `try_wait` are true for the phase before the current one, false for the current one.
//!   A false result ends the lane's turn: it is not picked again until its warp's next time slice, so a
//!   spin loop lets the other warps (and the other lanes of its own warp) run. `try_wait` never
//!   suspends longer than that (its time-limit hint is ignored).
//! - `cp.async.mbarrier.arrive` completes every earlier `cp.async` of the thread at once (they land in
//!   shared memory as if waited for), then performs its arrive-on (`.noinc`: pending - 1; without it
//!   the +1 / -1 cancel out).
//! - racecheck: every arrive-on is a new epoch that the arriving thread records; a thread whose wait on
//!   a phase succeeds records the epochs of every arrive-on of that phase, so its later accesses are
//!   ordered after what the arriving threads did before they arrived (and nothing they did after);
//!   warp-level syncs carry this across the lanes of a warp (`mbarrier/race.rs`).
//!
//! Misuse is a synccheck report, never a panic: an operation on an uninitialized or invalidated
//! object, `init` of a valid one, counts out of range (init 0 or above 2^20 - 1, arrive count 0,
//! more arrivals than pending, tx-count beyond +-(2^20 - 1)), `.noComplete` that completes the
//! phase, a wait with a token of another phase than the current or the previous one (or not a token of
//! this mbarrier), a parity other than 0/1. Plain loads and stores of an initialized mbarrier's bytes
//! are memcheck reports (the access itself goes to the raw bytes, which the mbarrier does not use).

use std::collections::BTreeMap;

mod race;

pub(crate) use race::on_warp_sync;
use race::{record_acquire, record_arrival};

use super::mem::{lane_addr, locate, set_bits, write_bytes, Loc};
use super::step::{get, lanes, set, Flow};
use super::{Env, Warp};
use crate::error::CheckKind;
use crate::ir::*;

/// Largest expected / pending arrival count and tx-count magnitude.
const MAX_COUNT: u32 = (1 << 20) - 1;
const TOKEN: u64 = 1 << 63;

#[derive(Clone, Debug, Default)]
struct MBar {
    valid: bool,
    phase: u32,
    pending: u32,
    expected: u32,
    tx: i64,
    init_line: u32,
    inval_line: u32,
    /// racecheck epochs of the arrive-on operations of the current phase, and of the previous one.
    arrivals: Vec<u32>,
    prev_arrivals: Vec<u32>,
}

impl MBar {
    /// Completes the phase if nothing is pending; true if it did.
    fn try_complete(&mut self) -> bool {
        if self.pending != 0 || self.tx != 0 {
            return false;
        }
        self.phase = self.phase.wrapping_add(1);
        self.pending = self.expected;
        self.prev_arrivals = std::mem::take(&mut self.arrivals);
        self.prev_arrivals.sort_unstable();
        self.prev_arrivals.dedup();
        true
    }

    fn add_tx(&mut self, n: i64, msgs: &mut Vec<String>) {
        self.tx += n;
        if self.tx.abs() > MAX_COUNT as i64 {
            msgs.push(format!(
                "tx-count {} out of range (the PTX ISA allows -{MAX_COUNT}..={MAX_COUNT})",
                self.tx
            ));
        }
    }
}

/// The mbarrier objects of one block.
#[derive(Debug, Default)]
pub(crate) struct Table {
    objs: BTreeMap<u32, MBar>,
    valid: usize,
    /// racecheck, per warp: epoch and lanes of its last warp-level sync; arrival epochs its lanes
    /// acquired from mbarrier waits (and which lanes) that its next warp-level sync passes on.
    warp_sync: Vec<(u32, u32)>,
    warp_acq: Vec<(Vec<u32>, u32)>,
}

impl Table {
    pub fn clear(&mut self) {
        self.objs.clear();
        self.valid = 0;
        self.warp_sync.clear();
        self.warp_acq.clear();
    }

    /// Whether any mbarrier is initialized (plain shared accesses are checked against them then).
    #[inline]
    pub fn any_valid(&self) -> bool {
        self.valid > 0
    }
}

fn token(key: u32, phase: u32, pending: u32) -> u64 {
    TOKEN | ((key as u64 / 8) & 0x7ff) << 52 | ((pending & MAX_COUNT) as u64) << 32 | phase as u64
}

fn is_token_of(tok: u64, key: u32) -> bool {
    tok & TOKEN != 0 && (tok >> 52) & 0x7ff == (key as u64 / 8) & 0x7ff
}

fn report(w: &Warp, env: &mut Env, l: usize, line: u32, key: Option<u32>, msg: String) {
    if env.checks.synccheck {
        env.report(CheckKind::Synccheck, w.id, l, line, key.map(|k| k as u64), msg);
    }
}

/// A plain (non-mbarrier) shared access of [off, off + len) that overlaps an initialized mbarrier.
pub(crate) fn plain_access(w: &Warp, env: &mut Env, l: usize, off: usize, len: usize, write: bool, line: u32) {
    let lo = off.saturating_sub(7) as u32;
    let hi = (off + len) as u32;
    let hit = env
        .mbar
        .objs
        .range(lo..hi)
        .find(|(k, b)| b.valid && **k as usize + 8 > off)
        .map(|(k, b)| (*k, b.init_line));
    if let Some((k, init)) = hit {
        env.report(
            CheckKind::Memcheck,
            w.id,
            l,
            line,
            Some(off as u64),
            format!(
                "plain {} of {len} bytes of shared memory overlapping the mbarrier object at {k:#x} (initialized at PTX line {init}): only mbarrier instructions may access it until mbarrier.inval",
                if write { "write" } else { "read" }
            ),
        );
    }
}

/// The shared offset of lane `l`'s mbarrier object (memcheck: bounds, 8-byte alignment, shared).
fn object(w: &Warp, env: &mut Env, l: usize, addr: &Addr, space: Space, line: u32) -> Option<u32> {
    let a = lane_addr(&w.regs, addr, l);
    match locate(w, env, l, space, a, 8, true, line)? {
        Loc::Shared(off) => Some(off as u32),
        _ => {
            if env.checks.memcheck {
                env.report(
                    CheckKind::Memcheck,
                    w.id,
                    l,
                    line,
                    Some(a),
                    format!("mbarrier object at {a:#x} is not in shared memory"),
                );
            }
            None
        }
    }
}

/// The valid mbarrier at `key`, or a report naming why there is none.
fn valid<'a>(w: &Warp, env: &'a mut Env, l: usize, line: u32, key: u32, what: &str) -> Option<&'a mut MBar> {
    let why = match env.mbar.objs.get(&key) {
        Some(b) if b.valid => None,
        Some(b) => Some(format!(
            "{what} on an mbarrier object invalidated at PTX line {} (mbarrier.init it again first)",
            b.inval_line
        )),
        None => Some(format!(
            "{what} on an mbarrier object that mbarrier.init never initialized"
        )),
    };
    if let Some(m) = why {
        report(w, env, l, line, Some(key), m);
        return None;
    }
    env.mbar.objs.get_mut(&key)
}

/// One arrive-on of `n` by lane `l` (after an expect-tx of `tx`); returns the state token.
#[allow(clippy::too_many_arguments)]
fn arrive(
    w: &Warp,
    env: &mut Env,
    l: usize,
    line: u32,
    key: u32,
    n: u32,
    tx: Option<u32>,
    drop: bool,
    no_complete: bool,
    what: &str,
) -> u64 {
    let mut msgs = vec![];
    let arrived = n != 0 && n <= MAX_COUNT;
    if arrived && env.mbar.objs.get(&key).is_some_and(|b| b.valid) {
        record_arrival(env, w.id, l, key);
    }
    let Some(b) = valid(w, env, l, line, key, what) else {
        return 0;
    };
    if let Some(t) = tx {
        b.add_tx(t as i64, &mut msgs);
    }
    let tok = token(key, b.phase, b.pending);
    let mut completed = false;
    if !arrived {
        msgs.push(format!("{what} with count {n} (the PTX ISA allows 1..={MAX_COUNT})"));
    } else {
        if drop {
            if n > b.expected {
                msgs.push(format!(
                    "{what} drops {n} from an expected arrival count of {}",
                    b.expected
                ));
            }
            b.expected = b.expected.saturating_sub(n);
        }
        if n > b.pending {
            msgs.push(format!(
                "{what} of {n} exceeds the pending arrival count {} of phase {} (more arrivals than mbarrier.init expects)",
                b.pending, b.phase
            ));
        }
        b.pending = b.pending.saturating_sub(n);
        completed = b.try_complete();
        if completed && no_complete {
            msgs.push(format!(
                "{what}.noComplete completed the phase (undefined behaviour in the PTX ISA)"
            ));
        }
    }
    for m in msgs {
        report(w, env, l, line, Some(key), m);
    }
    if completed {
        env.metrics.barriers += 1;
    }
    tok
}

/// Lands every pending `cp.async` of lane `l` (oldest first), as `cp.async.wait_all` would.
fn land_all(w: &mut Warp, env: &mut Env, l: usize) {
    let mut copies = vec![];
    for g in w.async_groups[l].iter_mut() {
        copies.append(g);
    }
    copies.append(&mut w.async_open[l]);
    for c in copies {
        let off = c.dst as usize;
        for p in &mut env.shared_pending[off..off + c.data.len()] {
            *p = u32::MAX;
        }
        write_bytes(w, env, l, &Loc::Shared(off), &c.data, c.line);
        set_bits(&mut env.shared_init, off, c.data.len());
    }
}

pub(crate) fn exec(w: &mut Warp, env: &mut Env, inst: &Inst, op: &MbarOp, pc: u32, mask: u32, active: u32) -> Flow {
    let line = inst.line;
    let mut failed = 0u32;
    lanes!(active, |l| {
        match op {
            MbarOp::Init { addr, space, count } => {
                let Some(key) = object(w, env, l, addr, *space, line) else {
                    continue;
                };
                let n = get(&w.regs, *count, l) as u32;
                if n == 0 || n > MAX_COUNT {
                    report(
                        w,
                        env,
                        l,
                        line,
                        Some(key),
                        format!("mbarrier.init with count {n} (the PTX ISA allows 1..={MAX_COUNT})"),
                    );
                    continue;
                }
                let old = env.mbar.objs.get(&key).filter(|b| b.valid).map(|b| b.init_line);
                if let Some(at) = old {
                    report(w, env, l, line, Some(key), format!("mbarrier.init of an mbarrier object that is already initialized (at PTX line {at}; mbarrier.inval it first)"));
                } else {
                    env.mbar.valid += 1;
                }
                env.mbar.objs.insert(
                    key,
                    MBar {
                        valid: true,
                        pending: n,
                        expected: n,
                        init_line: line,
                        ..MBar::default()
                    },
                );
            }
            MbarOp::Inval { addr, space } => {
                let Some(key) = object(w, env, l, addr, *space, line) else {
                    continue;
                };
                if valid(w, env, l, line, key, "mbarrier.inval").is_some() {
                    if let Some(b) = env.mbar.objs.get_mut(&key) {
                        b.valid = false;
                        b.inval_line = line;
                    }
                    env.mbar.valid -= 1;
                }
            }
            MbarOp::Arrive {
                state,
                addr,
                space,
                count,
                tx,
                drop,
                no_complete,
            } => {
                let Some(key) = object(w, env, l, addr, *space, line) else {
                    continue;
                };
                let n = count.map(|c| get(&w.regs, c, l) as u32).unwrap_or(1);
                let t = tx.map(|t| get(&w.regs, t, l) as u32);
                let what = if *drop {
                    "mbarrier.arrive_drop"
                } else {
                    "mbarrier.arrive"
                };
                let tok = arrive(w, env, l, line, key, n, t, *drop, *no_complete, what);
                if let Some(d) = state {
                    set(&mut w.regs, *d, l, tok);
                }
            }
            MbarOp::Tx {
                addr,
                space,
                n,
                complete,
            } => {
                let Some(key) = object(w, env, l, addr, *space, line) else {
                    continue;
                };
                let v = get(&w.regs, *n, l) as u32;
                let what = if *complete {
                    "mbarrier.complete_tx"
                } else {
                    "mbarrier.expect_tx"
                };
                let mut msgs = vec![];
                let mut done = false;
                if let Some(b) = valid(w, env, l, line, key, what) {
                    b.add_tx(if *complete { -(v as i64) } else { v as i64 }, &mut msgs);
                    done = *complete && b.try_complete();
                }
                for m in msgs {
                    report(w, env, l, line, Some(key), m);
                }
                if done {
                    env.metrics.barriers += 1;
                }
            }
            MbarOp::Wait {
                p,
                addr,
                space,
                token: tsrc,
                parity,
                try_wait,
            } => {
                let what = if *try_wait {
                    "mbarrier.try_wait"
                } else {
                    "mbarrier.test_wait"
                };
                let Some(key) = object(w, env, l, addr, *space, line) else {
                    continue;
                };
                let v = get(&w.regs, *tsrc, l);
                let mut msg = None;
                // Undefined cases answer true (after the report): the program goes on instead of hanging.
                let ok = match valid(w, env, l, line, key, what) {
                    None => true,
                    Some(b) if *parity => {
                        // parity of the current phase: incomplete; of the previous one: complete
                        if v & 0xffff_ffff > 1 {
                            msg = Some(format!(
                                "{what}.parity with phaseParity {} (must be 0 or 1)",
                                v & 0xffff_ffff
                            ));
                        }
                        (v & 1) as u32 != b.phase & 1
                    }
                    Some(_) if !is_token_of(v, key) => {
                        msg = Some(format!("{what} with {v:#x}, which is not a state token of this mbarrier object (mbarrier.arrive returns one)"));
                        true
                    }
                    Some(b) => {
                        let ph = v as u32;
                        if ph == b.phase {
                            false
                        } else {
                            if ph.wrapping_add(1) != b.phase {
                                msg = Some(format!("{what} with a state token of phase {ph}, but the mbarrier object is in phase {} (only the current or the immediately preceding phase may be tested)", b.phase));
                            }
                            true
                        }
                    }
                };
                if let Some(m) = msg {
                    report(w, env, l, line, Some(key), m);
                }
                if ok {
                    record_acquire(env, w.id, l, key);
                } else {
                    failed |= 1 << l;
                }
                set(&mut w.regs, *p, l, ok as u64);
            }
            MbarOp::PendingCount { d, state } => {
                let v = get(&w.regs, *state, l);
                if v & TOKEN == 0 {
                    report(w, env, l, line, None, format!("mbarrier.pending_count of {v:#x}, which is not a state token (mbarrier.arrive returns one)"));
                }
                set(&mut w.regs, *d, l, (v >> 32) & MAX_COUNT as u64);
            }
            MbarOp::CpAsyncArrive { addr, space, noinc } => {
                let Some(key) = object(w, env, l, addr, *space, line) else {
                    continue;
                };
                land_all(w, env, l);
                if !*noinc {
                    let mut over = None;
                    if let Some(b) = valid(w, env, l, line, key, "cp.async.mbarrier.arrive") {
                        if b.pending >= MAX_COUNT {
                            over = Some(b.pending);
                        }
                        b.pending += 1;
                    } else {
                        continue;
                    }
                    if let Some(p) = over {
                        report(
                            w,
                            env,
                            l,
                            line,
                            Some(key),
                            format!("cp.async.mbarrier.arrive raises the pending arrival count {p} beyond {MAX_COUNT}"),
                        );
                    }
                }
                arrive(w, env, l, line, key, 1, None, false, false, "cp.async.mbarrier.arrive");
            }
        }
        if env.fatal {
            return Flow::Stop;
        }
    });
    if failed == 0 {
        return Flow::Next;
    }
    // A failed wait ends these lanes' turn (see the module comment); the others go on.
    w.parked |= failed;
    lanes!(mask, |l| {
        w.pc[l] = pc + 1;
    });
    Flow::Stop
}
