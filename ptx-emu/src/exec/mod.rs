//! The executor: runs a kernel's grid block by block; inside a block, warps take turns in time slices;
//! inside a warp, the lanes that share the lowest PC run together (one decode, up to 32 lanes), each lane
//! keeping its own PC, so divergence and reconvergence are exact. Barriers count arriving threads;
//! a block where no thread can move is a deadlock report, never a hang.

mod builtin;
pub mod cvt;
pub mod float;
pub mod int;
mod mem;
mod pred;
mod race;
mod step;
mod tensor;
mod warp;

use std::collections::HashSet;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};

use crate::error::{CheckKind, CheckReport};
use crate::ir::{Op, Program};
use crate::memory::GlobalMem;
use crate::metrics::Metrics;
use crate::Checks;

pub(crate) use race::RaceShadow;

/// What a lane is doing.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Lane {
    Ready,
    /// Waiting at a `bar.sync` (its PC points at the barrier).
    Barrier,
    /// Waiting at a warp collective (its PC points at the instruction).
    Collective,
    Exited,
    /// No thread (partial last warp).
    None,
}

/// A pending `cp.async` copy of one lane.
#[derive(Clone, Debug)]
pub(crate) struct AsyncCopy {
    pub dst: u32,
    pub data: Vec<u8>,
    /// Bytes that came from global memory and were written by someone (for initcheck).
    pub line: u32,
}

pub(crate) struct Warp {
    pub id: u32,
    pub regs: Vec<u64>,
    pub pc: [u32; 32],
    pub state: [Lane; 32],
    pub bar_id: [u8; 32],
    pub stack: Vec<Vec<u32>>,
    pub local: Vec<u8>,
    /// Lanes that are real threads.
    pub exists: u32,
    /// Warp-level synchronisation counter (racecheck: accesses separated by a warp sync do not race).
    pub wsync: u32,
    /// Per lane: committed groups of pending async copies (oldest first) and the uncommitted group.
    pub async_groups: Vec<Vec<Vec<AsyncCopy>>>,
    pub async_open: Vec<Vec<AsyncCopy>>,
}

/// Barrier state of one id.
#[derive(Clone, Debug, Default)]
pub(crate) struct Bar {
    pub arrived: u32,
    pub expected: Option<u32>,
    /// Threads (block-linear ids) that arrived, for racecheck.
    pub members: Vec<u32>,
}

/// Everything a warp needs besides itself.
pub(crate) struct Env<'a> {
    pub prog: &'a Program,
    pub kernel: &'a str,
    pub gmem: &'a GlobalMem,
    /// Index of the allocation hit last (lookup cache).
    pub gcache: usize,
    pub params: &'a [u8],
    pub checks: Checks,
    pub grid: [u32; 3],
    pub block: [u32; 3],
    pub ctaid: [u32; 3],
    pub shared: Vec<u8>,
    pub shared_init: Vec<u64>,
    /// Bytes of shared memory with a cp.async in flight: (owner lane id in block) or u32::MAX.
    pub shared_pending: Vec<u32>,
    pub dyn_shared: u32,
    pub race: RaceShadow,
    pub epoch: u32,
    pub bars: [Bar; 16],
    /// racecheck: epoch of the last barrier the whole block took part in.
    pub full_epoch: u32,
    /// racecheck: per thread, the epochs of the partial (named, counted) barriers it took part in.
    pub bar_hist: Vec<Vec<u32>>,
    pub live: u32,
    pub reports: Vec<CheckReport>,
    pub seen: HashSet<(CheckKind, u32)>,
    pub fatal: bool,
    pub metrics: Metrics,
    pub clock: u64,
    pub warp_syncs: Vec<u32>,
    /// Warp-instructions per turn.
    pub slice: u32,
    /// Seeded schedule (None: warps in order, fixed slice).
    pub rng: Option<u64>,
    /// Warp-instructions one block may run before it is reported as hung.
    pub watchdog: u64,
    /// Device printf output: (linear block, line of text).
    pub printf: Vec<(u64, String)>,
}

/// Reports beyond this many end the launch.
const MAX_REPORTS: usize = 100;

impl Env<'_> {
    pub fn thread_of(&self, warp: u32, lane: usize) -> [u32; 3] {
        let lin = warp * 32 + lane as u32;
        let (bx, by) = (self.block[0], self.block[1]);
        [lin % bx, (lin / bx) % by, lin / (bx * by)]
    }

    /// Records a report (once per check and PTX line).
    pub fn report(
        &mut self,
        kind: CheckKind,
        warp: u32,
        lane: usize,
        line: u32,
        address: Option<u64>,
        message: String,
    ) {
        if !self.seen.insert((kind, line)) {
            return;
        }
        let thread = self.thread_of(warp, lane);
        self.reports.push(CheckReport {
            kind,
            kernel: self.kernel.to_string(),
            block: self.ctaid,
            thread,
            line,
            address,
            message,
        });
        if self.reports.len() >= MAX_REPORTS {
            self.fatal = true;
        }
    }
}

pub(crate) struct LaunchOut {
    pub metrics: Metrics,
    pub reports: Vec<CheckReport>,
    /// printf output (linear block, text), in block order.
    pub printf: Vec<(u64, String)>,
}

/// What one launch needs, shared by every worker thread.
pub(crate) struct LaunchSpec<'a> {
    pub prog: &'a Program,
    pub kernel: usize,
    pub params: &'a [u8],
    pub grid: [u32; 3],
    pub block: [u32; 3],
    pub dyn_shared: u32,
    pub checks: Checks,
    pub workers: usize,
    pub seed: Option<u64>,
    pub watchdog: u64,
}

/// Runs one launch to completion (or to the first fatal fault). Blocks are taken in order from a shared
/// counter by `workers` host threads (1: deterministic order on the calling thread).
pub(crate) fn launch(spec: &LaunchSpec, gmem: &GlobalMem) -> LaunchOut {
    let nblocks = spec.grid.iter().map(|&g| g as u64).product::<u64>();
    let next = AtomicU64::new(0);
    let stop = AtomicBool::new(false);
    let workers = spec.workers.clamp(1, 64).min(nblocks.max(1) as usize);
    let run = || worker(spec, gmem, &next, &stop);
    let outs: Vec<LaunchOut> = if workers == 1 {
        vec![run()]
    } else {
        std::thread::scope(|s| {
            let hs: Vec<_> = (0..workers).map(|_| s.spawn(run)).collect();
            hs.into_iter()
                .map(|h| h.join().unwrap_or_else(|e| std::panic::resume_unwind(e)))
                .collect()
        })
    };
    let mut metrics = Metrics::default();
    let mut reports = vec![];
    let mut printf = vec![];
    for o in outs {
        metrics.add(&o.metrics);
        reports.extend(o.reports);
        printf.extend(o.printf);
    }
    printf.sort_by_key(|p| p.0);
    // Deterministic order whatever the threads did: by block, then thread; once per (check, line).
    let lin = |b: [u32; 3]| (b[2] as u64 * spec.grid[1] as u64 + b[1] as u64) * spec.grid[0] as u64 + b[0] as u64;
    reports.sort_by_key(|r| (lin(r.block), r.thread[2], r.thread[1], r.thread[0], r.line));
    let mut seen = HashSet::new();
    reports.retain(|r| seen.insert((r.kind, r.line)));
    reports.truncate(MAX_REPORTS);
    LaunchOut {
        metrics,
        reports,
        printf,
    }
}

fn worker(spec: &LaunchSpec, gmem: &GlobalMem, next: &AtomicU64, stop: &AtomicBool) -> LaunchOut {
    let prog = spec.prog;
    let k = &prog.kernels[spec.kernel];
    let (grid, block) = (spec.grid, spec.block);
    let nthreads = block[0] * block[1] * block[2];
    // Dynamic shared memory starts at the module-wide base; without it the kernel sees only its own statics.
    let shared_size = if spec.dyn_shared > 0 {
        (prog.dyn_shared_base + spec.dyn_shared) as usize
    } else {
        k.static_shared as usize
    };
    let checks = spec.checks;
    let nwarps = nthreads.div_ceil(32);
    let mut env = Env {
        prog,
        kernel: &k.name,
        gmem,
        gcache: 0,
        params: spec.params,
        checks,
        grid,
        block,
        ctaid: [0; 3],
        shared: vec![0; shared_size],
        shared_init: vec![0; shared_size.div_ceil(64)],
        shared_pending: Vec::new(),
        dyn_shared: spec.dyn_shared,
        race: RaceShadow::new(if checks.racecheck { shared_size } else { 0 }),
        epoch: 0,
        bars: std::array::from_fn(|_| Bar::default()),
        full_epoch: 0,
        bar_hist: vec![Vec::new(); nthreads as usize],
        live: 0,
        reports: vec![],
        seen: HashSet::new(),
        fatal: false,
        metrics: Metrics::default(),
        clock: 0,
        warp_syncs: vec![0; nwarps as usize],
        slice: step::SLICE,
        rng: spec.seed.map(|s| s | 1),
        watchdog: spec.watchdog,
        printf: vec![],
    };
    let nslots = prog.nslots.max(1) as usize;
    let local = prog.local_bytes as usize;
    let mut warps: Vec<Warp> = (0..nwarps)
        .map(|id| Warp {
            id,
            regs: vec![0; nslots * 32],
            pc: [0; 32],
            state: [Lane::None; 32],
            bar_id: [0; 32],
            stack: vec![Vec::new(); 32],
            local: vec![0; local * 32],
            exists: 0,
            wsync: 0,
            async_groups: vec![Vec::new(); 32],
            async_open: vec![Vec::new(); 32],
        })
        .collect();
    let nblocks = grid.iter().map(|&g| g as u64).product::<u64>();
    loop {
        if stop.load(Ordering::Relaxed) {
            break;
        }
        let b = next.fetch_add(1, Ordering::Relaxed);
        if b >= nblocks {
            break;
        }
        let (gx, gy) = (grid[0] as u64, grid[1] as u64);
        env.ctaid = [(b % gx) as u32, ((b / gx) % gy) as u32, (b / (gx * gy)) as u32];
        // Epochs stay unique across blocks and workers' reuse of the racecheck shadow.
        env.epoch = env.epoch.wrapping_add(1);
        start_block(&mut env, &mut warps, k.entry, nthreads);
        run_block(&mut env, &mut warps);
        env.metrics.blocks += 1;
        env.metrics.threads += nthreads as u64;
        if env.fatal {
            stop.store(true, Ordering::Relaxed);
            break;
        }
    }
    LaunchOut {
        metrics: env.metrics,
        reports: env.reports,
        printf: env.printf,
    }
}

fn xorshift(s: &mut u64) -> u64 {
    *s ^= *s << 13;
    *s ^= *s >> 7;
    *s ^= *s << 17;
    *s
}

fn start_block(env: &mut Env, warps: &mut [Warp], entry: u32, nthreads: u32) {
    env.shared.fill(0);
    env.shared_init.fill(0);
    env.shared_pending.clear();
    env.epoch = env.epoch.wrapping_add(1);
    env.bars = std::array::from_fn(|_| Bar::default());
    env.full_epoch = env.epoch;
    for h in env.bar_hist.iter_mut() {
        h.clear();
    }
    env.live = nthreads;
    for w in warps.iter_mut() {
        let first = w.id * 32;
        let n = nthreads.saturating_sub(first).min(32);
        w.exists = if n == 32 { u32::MAX } else { (1u32 << n) - 1 };
        for l in 0..32 {
            w.pc[l] = entry;
            w.state[l] = if w.exists >> l & 1 == 1 {
                Lane::Ready
            } else {
                Lane::None
            };
            w.stack[l].clear();
            w.async_groups[l].clear();
            w.async_open[l].clear();
        }
        w.wsync = w.wsync.wrapping_add(1);
    }
}

fn run_block(env: &mut Env, warps: &mut [Warp]) {
    let mut order: Vec<usize> = (0..warps.len()).collect();
    let start = env.metrics.warp_instructions;
    loop {
        if env.metrics.warp_instructions - start > env.watchdog {
            let (w, l) = warps
                .iter()
                .find_map(|w| (0..32).find(|&l| w.state[l] == Lane::Ready).map(|l| (w.id, l)))
                .unwrap_or((0, 0));
            let line = warps
                .iter()
                .find(|x| x.id == w)
                .map(|x| env.prog.code[x.pc[l] as usize].line)
                .unwrap_or(0);
            env.report(
                CheckKind::Synccheck,
                w,
                l,
                line,
                None,
                format!(
                    "watchdog: the block ran more than {} warp-instructions (a spin-wait that can never end?)",
                    env.watchdog
                ),
            );
            env.fatal = true;
            return;
        }
        let mut progress = false;
        if let Some(rng) = env.rng.as_mut() {
            // Seeded schedule: a new warp order and time slice every round.
            for i in (1..order.len()).rev() {
                order.swap(i, (xorshift(rng) % (i as u64 + 1)) as usize);
            }
            env.slice = 1 + (xorshift(rng) % 64) as u32;
        }
        for &i in &order {
            progress |= step::run_warp(&mut warps[i], env);
            if env.fatal {
                return;
            }
            progress |= release_all(env, warps);
        }
        if env.live == 0 {
            return;
        }
        if !progress {
            deadlock(env, warps);
            return;
        }
    }
}

/// Completes every barrier whose expected number of threads has arrived.
fn release_all(env: &mut Env, warps: &mut [Warp]) -> bool {
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
        for w in warps.iter_mut() {
            for l in 0..32 {
                if w.state[l] == Lane::Barrier && w.bar_id[l] as usize == id {
                    match first {
                        None => first = Some((w.pc[l], w.id, l)),
                        Some((pc0, _, _)) if pc0 != w.pc[l] && mismatch.is_none() => {
                            mismatch = Some((w.id, l, pc0, w.pc[l]));
                        }
                        _ => {}
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
        let members = std::mem::take(&mut env.bars[id]).members;
        env.epoch = env.epoch.wrapping_add(1);
        env.metrics.barriers += 1;
        if env.checks.racecheck {
            if members.len() as u32 >= env.live {
                env.full_epoch = env.epoch;
            } else {
                for t in members {
                    if let Some(h) = env.bar_hist.get_mut(t as usize) {
                        h.push(env.epoch);
                    }
                }
            }
        }
    }
    any
}

fn deadlock(env: &mut Env, warps: &mut [Warp]) {
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

/// True when the instruction at `pc` is a barrier.
#[allow(dead_code)]
pub(crate) fn is_barrier(prog: &Program, pc: u32) -> bool {
    matches!(prog.code[pc as usize].op, Op::Bar { .. })
}
