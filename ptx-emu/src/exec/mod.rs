//! The executor: runs a kernel's grid block by block; inside a block, warps take turns in time slices;
//! inside a warp, the lanes that share the lowest PC run together (one decode, up to 32 lanes), each lane
//! keeping its own PC, so divergence and reconvergence are exact. Barriers count arriving threads;
//! a block where no thread can move is a deadlock report, never a hang.

pub mod approx;
mod barrier;
mod builtin;
pub mod cvt;
pub mod float;
mod globalrace;
pub mod int;
mod mbarrier;
mod mem;
pub(crate) use mem::shared_wavefronts;
mod pred;
mod race;
mod step;
mod tensor;
mod warp;
mod wmma;

use std::collections::HashSet;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};

use crate::error::{CheckKind, CheckReport, WarpAt};
use crate::ir::Program;
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
    /// Lanes whose mbarrier wait failed during this turn: not picked again until the warp's next turn.
    pub parked: u32,
}

/// Barrier state of one id.
#[derive(Clone, Debug, Default)]
pub(crate) struct Bar {
    pub arrived: u32,
    pub expected: Option<u32>,
    /// `bar.red`: arrived threads whose predicate was true.
    pub red_true: u32,
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
    /// The block's mbarrier objects (`mbarrier.rs`).
    pub mbar: mbarrier::Table,
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
    /// `LaunchSpec::block_budget`.
    pub block_budget: Option<u64>,
    /// Perturbed approximate math (`Options::approx`): its seed.
    pub approx_seed: Option<u64>,
    /// globalrace: the global bytes this block touched (None when the check is off).
    pub global_access: Option<globalrace::BlockAccess>,
    /// The current `ld`/`st` is strong (`.volatile`/`.relaxed`/`.acquire`/`.release`).
    pub strong_access: bool,
    /// Warp-instructions the whole launch may run (`Options::max_instructions`), counted in `executed`,
    /// which every worker shares.
    pub budget: u64,
    pub executed: &'a AtomicU64,
    /// This worker's warp-instructions not yet added to `executed`.
    pub unbudgeted: u64,
    /// The budget ran out during this worker's block.
    pub budget_hit: bool,
    /// Where the unfinished warps stood when the budget ran out.
    pub budget_stop: Vec<WarpAt>,
    /// Bytes of printf output collected (capped at [`PRINTF_BUFFER`]).
    pub printf_bytes: usize,
    /// Device printf output: (linear block, line of text).
    pub printf: Vec<(u64, String)>,
    /// The speed-of-light model's record of the running block (`Options::model`), else None.
    pub trace: Option<crate::model::timeline::BlockTrace>,
}

/// Reports beyond this many end the launch.
const MAX_REPORTS: usize = 100;

/// Device printf output kept per launch (CUDA's default `cudaLimitPrintfFifoSize`); more is dropped.
pub(crate) const PRINTF_BUFFER: usize = 1 << 20;

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
    /// The instruction budget ran out: the launch stopped early.
    pub budget_hit: bool,
    /// Where the warps of the running block(s) stood when the instruction budget ran out.
    pub budget_stop: Vec<WarpAt>,
    /// The block (linear index) whose fatal report or budget stop ended this worker.
    pub fatal_block: Option<u64>,
    /// The model's per-block traces (empty without `LaunchSpec::model`), in block order.
    pub traces: Vec<crate::model::timeline::BlockTrace>,
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
    /// `Some(seed)`: approximate instructions return perturbed results (see `approx`).
    pub approx_seed: Option<u64>,
    /// Warp-instructions the whole launch may execute.
    pub budget: u64,
    /// Only these blocks (linear indices, ascending) run; None: the whole grid.
    pub blocks: Option<&'a [u64]>,
    /// Record per-block traces for the speed-of-light model with these latencies.
    pub model: Option<crate::model::timeline::Timing>,
    /// End each block quietly after this many warp-instructions (the model's wave probe: the first
    /// stretch of every block of a wave, for the blocks' shared cache footprint). Warps then take
    /// short turns so that they advance together.
    pub block_budget: Option<u64>,
}

/// Runs one launch to completion (or to the first fatal fault). Blocks are taken in order from a shared
/// counter by `workers` host threads (1: deterministic order on the calling thread).
pub(crate) fn launch(spec: &LaunchSpec, gmem: &GlobalMem) -> LaunchOut {
    let nblocks = match spec.blocks {
        Some(list) => list.len() as u64,
        None => spec.grid.iter().map(|&g| g as u64).product::<u64>(),
    };
    let next = AtomicU64::new(0);
    let stop = AtomicBool::new(false);
    let executed = AtomicU64::new(0);
    let workers = spec.workers.clamp(1, 64).min(nblocks.max(1) as usize);
    let races = std::sync::Mutex::new(globalrace::LaunchRaces::new(
        &spec.prog.kernels[spec.kernel].name,
        spec.grid,
        spec.block,
    ));
    let run = || worker(spec, gmem, &next, &stop, &executed, &races);
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
    let lin = |b: [u32; 3]| (b[2] as u64 * spec.grid[1] as u64 + b[1] as u64) * spec.grid[0] as u64 + b[0] as u64;
    let mut metrics = Metrics::default();
    let mut reports = vec![];
    let mut printf = vec![];
    let mut budget_stop = vec![];
    let mut budget_hit = false;
    let mut traces = vec![];
    let fatal_block = outs.iter().filter_map(|o| o.fatal_block).min();
    let mut races = races.into_inner().unwrap_or_else(|e| e.into_inner());
    races.finish();
    reports.append(&mut races.reports);
    for o in outs {
        budget_hit |= o.budget_hit;
        metrics.add(&o.metrics);
        reports.extend(o.reports);
        printf.extend(o.printf);
        budget_stop.extend(o.budget_stop);
        traces.extend(o.traces);
    }
    traces.sort_by_key(|t| t.block);
    budget_stop.sort_by_key(|w| (lin(w.block), w.warp));
    printf.sort_by_key(|p| p.0);
    // As with one thread, nothing after the block that ended the launch counts (other workers may
    // have run later blocks meanwhile).
    if let Some(fb) = fatal_block {
        reports.retain(|r| lin(r.block) <= fb);
        printf.retain(|p| p.0 <= fb);
        budget_stop.retain(|w| lin(w.block) <= fb);
    }
    // Deterministic order whatever the threads did: by block, then thread; once per (check, line).
    reports.sort_by_key(|r| (lin(r.block), r.thread[2], r.thread[1], r.thread[0], r.line));
    let mut seen = HashSet::new();
    reports.retain(|r| seen.insert((r.kind, r.line)));
    reports.truncate(MAX_REPORTS);
    LaunchOut {
        metrics,
        reports,
        printf,
        budget_hit,
        budget_stop,
        fatal_block,
        traces,
    }
}

fn worker(
    spec: &LaunchSpec,
    gmem: &GlobalMem,
    next: &AtomicU64,
    stop: &AtomicBool,
    executed: &AtomicU64,
    races: &std::sync::Mutex<globalrace::LaunchRaces>,
) -> LaunchOut {
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
        mbar: mbarrier::Table::default(),
        full_epoch: 0,
        bar_hist: vec![Vec::new(); nthreads as usize],
        live: 0,
        reports: vec![],
        seen: HashSet::new(),
        fatal: false,
        metrics: Metrics::default(),
        clock: 0,
        warp_syncs: vec![0; nwarps as usize],
        slice: if spec.block_budget.is_some() { 64 } else { step::SLICE },
        rng: spec.seed.map(|s| s | 1),
        block_budget: spec.block_budget,
        approx_seed: spec.approx_seed,
        global_access: checks.globalrace.then(globalrace::BlockAccess::default),
        strong_access: false,
        budget: spec.budget,
        executed,
        unbudgeted: 0,
        budget_hit: false,
        budget_stop: vec![],
        printf_bytes: 0,
        printf: vec![],
        trace: None,
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
            parked: 0,
        })
        .collect();
    let nblocks = match spec.blocks {
        Some(list) => list.len() as u64,
        None => grid.iter().map(|&g| g as u64).product::<u64>(),
    };
    let mut fatal_block = None;
    let mut traces = vec![];
    loop {
        if stop.load(Ordering::Relaxed) {
            break;
        }
        let i = next.fetch_add(1, Ordering::Relaxed);
        if i >= nblocks {
            break;
        }
        let b = spec.blocks.map_or(i, |list| list[i as usize]);
        let before = spec.model.map(|timing| {
            env.trace = Some(crate::model::timeline::BlockTrace::new(
                b,
                nwarps as usize,
                nslots,
                timing,
            ));
            env.metrics.clone()
        });
        let (gx, gy) = (grid[0] as u64, grid[1] as u64);
        env.ctaid = [(b % gx) as u32, ((b / gx) % gy) as u32, (b / (gx * gy)) as u32];
        // Epochs stay unique across blocks and workers' reuse of the racecheck shadow.
        env.epoch = env.epoch.wrapping_add(1);
        start_block(&mut env, &mut warps, k.entry, nthreads);
        run_block(&mut env, &mut warps);
        if let Some(g) = env.global_access.as_mut() {
            let access = std::mem::take(g);
            races.lock().unwrap_or_else(|e| e.into_inner()).submit(b, access);
        }
        env.metrics.blocks += 1;
        env.metrics.threads += nthreads as u64;
        if let (Some(before), Some(mut t)) = (before, env.trace.take()) {
            t.metrics = env.metrics.delta(&before);
            t.finish();
            traces.push(t);
        }
        if env.fatal {
            fatal_block = Some(b);
            stop.store(true, Ordering::Relaxed);
            break;
        }
    }
    LaunchOut {
        fatal_block,
        traces,
        metrics: env.metrics,
        reports: env.reports,
        printf: env.printf,
        budget_hit: env.budget_hit,
        budget_stop: env.budget_stop,
    }
}

fn xorshift(s: &mut u64) -> u64 {
    *s ^= *s << 13;
    *s ^= *s >> 7;
    *s ^= *s << 17;
    *s
}

fn start_block(env: &mut Env, warps: &mut [Warp], entry: u32, nthreads: u32) {
    // %clock counts this block's warp-instructions: the same whichever worker runs it after what.
    env.clock = 0;
    env.shared.fill(0);
    env.shared_init.fill(0);
    env.shared_pending.clear();
    env.epoch = env.epoch.wrapping_add(1);
    env.bars = std::array::from_fn(|_| Bar::default());
    env.mbar.clear();
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
    let first = env.metrics.warp_instructions;
    loop {
        if env
            .block_budget
            .is_some_and(|b| env.metrics.warp_instructions - first >= b)
        {
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
            let before = env.metrics.warp_instructions;
            progress |= step::run_warp(&mut warps[i], env);
            // Every executed warp-instruction counts against the launch's budget, whatever the warp
            // did (ALU, memory, barriers, collectives), checked after every turn of every warp.
            env.unbudgeted += env.metrics.warp_instructions - before;
            if over_budget(env) {
                budget_stop(env, warps);
                return;
            }
            if env.fatal {
                return;
            }
            progress |= barrier::release_all(env, warps);
        }
        if env.live == 0 {
            return;
        }
        if !progress {
            barrier::deadlock(env, warps);
            return;
        }
    }
}

/// Adds this worker's new warp-instructions to the launch's count; true when the budget is spent
/// (also when another worker spent it).
fn over_budget(env: &mut Env) -> bool {
    let n = std::mem::take(&mut env.unbudgeted);
    let total = env.executed.fetch_add(n, Ordering::Relaxed).saturating_add(n);
    total > env.budget
}

/// Ends the launch on an exhausted instruction budget, recording where every unfinished warp stands.
fn budget_stop(env: &mut Env, warps: &[Warp]) {
    env.budget_hit = true;
    for w in warps {
        let live: Vec<usize> = (0..32)
            .filter(|&l| !matches!(w.state[l], Lane::Exited | Lane::None))
            .collect();
        // The lowest PC among the lanes that can run, else among the waiting ones.
        let pick = |want: fn(Lane) -> bool| {
            live.iter()
                .filter(|&&l| want(w.state[l]))
                .min_by_key(|&&l| w.pc[l])
                .copied()
        };
        let Some(l) = pick(|s| s == Lane::Ready).or_else(|| pick(|_| true)) else {
            continue;
        };
        // A lane parked by a failed mbarrier wait stands right after the wait.
        let parked = w.parked >> l & 1 == 1 && w.pc[l] > 0;
        let state = match w.state[l] {
            Lane::Barrier => "waiting at a barrier",
            Lane::Collective => "waiting at a warp collective",
            _ if parked => "spinning on an mbarrier wait",
            _ => "running",
        };
        let pc = w.pc[l] - parked as u32;
        env.budget_stop.push(WarpAt {
            block: env.ctaid,
            warp: w.id,
            line: env.prog.code.get(pc as usize).map_or(0, |i| i.line),
            lanes: live.len() as u32,
            state: state.to_string(),
        });
    }
    env.fatal = true;
}
