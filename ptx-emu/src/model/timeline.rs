//! What the model records while a block runs (only when `Options::model` is set): per warp, the
//! warp-instructions issued on each pipe, the `mma` multiply-adds by type, and a dependency-driven
//! timeline; per block, the global memory sectors in the order the warps touched them.
//!
//! The timeline is a latency bound with unlimited pipes. PTX order is not the order the hardware
//! issues in: ptxas schedules each basic block, hoisting loads and interleaving independent chains. So
//! within a basic block (a run of instructions ended by a branch, a barrier or a `cp.async` wait) an
//! instruction issues as soon as its operands are ready, and the next block starts once the block's
//! instructions have all issued, one per cycle: `floor' = max(floor + n, last issue + 1)`. A result is
//! ready `latency` cycles after issue, so loads stay in flight across blocks until a use waits for them
//! (a scoreboard); a `bar.sync` releases every waiting warp at the latest arrival plus the barrier
//! latency; `cp.async.wait_group` waits for the groups it names. Global loads are timed three ways at once (every load an L1 hit, an
//! L2 hit, a DRAM access), and the model mixes the three by the hit rates its cache simulation finds
//! afterwards, so loads in flight per warp versus latency (Little's law) come out of the timeline.

#![allow(clippy::needless_range_loop)] // the three timelines are indexed together

use std::collections::VecDeque;

use super::arch::{Arch, Latencies};
use super::deps;
use crate::exec::shared_wavefronts;
use crate::ir::{Class, Inst, MmaTy, Op, Slot, WmmaOp};

/// Open groups of adjacent shared accesses per warp (see [`BlockTrace::shared_request`]).
const OPEN_GROUPS: usize = 4;

/// Scalar shared accesses ptxas would issue as one vector access: same base register, offsets that
/// continue each other, each lane's bytes contiguous, the start aligned to the merged width.
#[derive(Clone, Debug)]
struct VecGroup {
    /// The widest vector every lane's start is aligned to (16 or 8 bytes).
    width: u64,
    base: Slot,
    store: bool,
    next_off: i64,
    lanes: Vec<(u64, u64)>,
    counted: u64,
}

/// Execution pipes (and "issue only" for moves, control and the rest).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Pipe {
    Fp32,
    Int,
    Sfu,
    Fp64,
    Half,
    Convert,
    Shfl,
    Mma,
    Lsu,
    Issue,
}

pub const NPIPES: usize = 10;

impl Pipe {
    pub const ALL: [Pipe; NPIPES] = [
        Pipe::Fp32,
        Pipe::Int,
        Pipe::Sfu,
        Pipe::Fp64,
        Pipe::Half,
        Pipe::Convert,
        Pipe::Shfl,
        Pipe::Mma,
        Pipe::Lsu,
        Pipe::Issue,
    ];
    pub fn name(self) -> &'static str {
        match self {
            Pipe::Fp32 => "fp32",
            Pipe::Int => "int",
            Pipe::Sfu => "sfu",
            Pipe::Fp64 => "fp64",
            Pipe::Half => "half",
            Pipe::Convert => "convert",
            Pipe::Shfl => "shuffle",
            Pipe::Mma => "tensor",
            Pipe::Lsu => "lsu",
            Pipe::Issue => "issue",
        }
    }
    fn of(c: Class) -> Pipe {
        match c {
            Class::Int => Pipe::Int,
            Class::Fp32 => Pipe::Fp32,
            Class::Fp64 => Pipe::Fp64,
            Class::Half => Pipe::Half,
            Class::Convert => Pipe::Convert,
            Class::Special => Pipe::Sfu,
            Class::Warp => Pipe::Shfl,
            Class::Tensor => Pipe::Mma,
            Class::Global | Class::Shared | Class::Local | Class::Atomic | Class::Async => Pipe::Lsu,
            Class::Move | Class::ParamConst | Class::Control | Class::Barrier | Class::Other => Pipe::Issue,
        }
    }
}

/// What the timeline needs of an arch: latencies, and the cycles one warp-instruction keeps its pipe
/// busy on one scheduler (a warp alone cannot issue faster than its pipes: a 16-lane FP32 pipe takes a
/// warp-instruction every 2 cycles, an A100 tensor core an `m16n8k16` every 8).
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct Timing {
    pub lat: Latencies,
    pub cost: [f64; NPIPES],
    /// Cycles per `mma` multiply-add on one scheduler: f32 accumulate, f16 accumulate, tf32.
    pub fma_cost: [f64; 3],
}

impl Timing {
    pub fn of(a: &Arch) -> Timing {
        let s = a.schedulers.max(1) as f64;
        let lanes = |rate: f64| 32.0 * s / rate;
        let mut cost = [0.0; NPIPES];
        cost[Pipe::Fp32 as usize] = lanes(a.fp32);
        cost[Pipe::Int as usize] = lanes(a.int);
        cost[Pipe::Sfu as usize] = lanes(a.sfu);
        cost[Pipe::Fp64 as usize] = lanes(a.fp64);
        cost[Pipe::Half as usize] = lanes(a.half);
        cost[Pipe::Convert as usize] = lanes(a.convert);
        cost[Pipe::Shfl as usize] = lanes(a.shfl);
        Timing {
            lat: a.lat,
            cost,
            fma_cost: [s / a.mma_f32acc, s / a.mma_f16acc, s / a.mma_tf32],
        }
    }
}

/// Memory levels a global load is timed at: L1 hit, L2 hit, DRAM.
pub const LEVELS: usize = 3;
type T = [f64; LEVELS];

/// Sector kinds in [`BlockTrace::sectors`] (low 2 bits; the sector number is the rest).
pub const SECTOR_LOAD: u64 = 0;
/// A load that bypasses L1 (`cp.async`).
pub const SECTOR_LOAD_L2: u64 = 1;
pub const SECTOR_STORE: u64 = 2;

#[derive(Clone, Debug, Default)]
pub struct WarpTrace {
    /// Warp-instructions issued, and per pipe.
    pub issued: u64,
    pub pipe: [u64; NPIPES],
    /// `mma` multiply-adds: f16/bf16 with f32 accumulate, f16 accumulate, tf32.
    pub mma_fma: [f64; 3],
    /// Timeline (per level): the cycle the warp's current basic block started, which after the last
    /// block is the warp's finish; cycles spent waiting at barriers (L2 level).
    pub t: T,
    pub bar_wait: f64,
    /// The current basic block: when it started, its instructions so far, its latest issue.
    block_n: f64,
    block_last: T,
    /// When each pipe (and the SM's shared-memory port, last) is free again for this warp.
    pipe_free: [T; NPIPES + 1],
    groups: Vec<VecGroup>,
    ready: Vec<T>,
    async_open: T,
    async_groups: VecDeque<T>,
    waiting_bar: bool,
    /// With `PTX_EMU_PROFILE` set: timeline cycles (L2 level) per basic block, keyed by the PTX line of
    /// the block's first instruction (a barrier's wait is keyed by the barrier's line).
    pub profile: Vec<(u32, f64)>,
    prof_t: f64,
    prof_first: Option<u32>,
    prof_bar: Option<u32>,
}

/// `PTX_EMU_PROFILE` is set: the model keeps a per-basic-block profile of every warp's timeline.
pub fn profiling() -> bool {
    static ON: std::sync::OnceLock<bool> = std::sync::OnceLock::new();
    *ON.get_or_init(|| std::env::var_os("PTX_EMU_PROFILE").is_some())
}

fn profile_add(profile: &mut Vec<(u32, f64)>, line: u32, cycles: f64) {
    match profile.iter_mut().find(|e| e.0 == line) {
        Some(e) => e.1 += cycles,
        None => profile.push((line, cycles)),
    }
}

/// One block's trace.
#[derive(Clone, Debug, Default)]
pub struct BlockTrace {
    pub block: u64,
    pub warps: Vec<WarpTrace>,
    /// Global sectors, `(sector << 2) | kind`, in the order requests ran.
    pub sectors: Vec<u64>,
    /// For each of `sectors`, the PTX line of the instruction that requested it: the load stream the
    /// wave probe's L2 hit rate is taken per (`model::with_probe`).
    pub streams: Vec<u32>,
    /// The block's own metrics (the launch's counters over this block alone).
    pub metrics: crate::Metrics,
    timing: Option<Timing>,
    bar_t: [T; 16],
    /// Shared-memory wavefronts of the current instruction (after merging into vector accesses).
    cur_wavefronts: u64,
    /// The current instruction's warp, and its shared-memory base register, offset and direction.
    cur_wid: usize,
    cur_shared_addr: Option<(Slot, i64, bool)>,
    /// Shared-memory wavefronts the model counts: scalar accesses ptxas vectorizes are merged.
    pub wavefronts: f64,
    /// The current instruction touched global / shared memory (set by the request hooks).
    cur_global: bool,
    cur_shared: bool,
    cur_kind: u64,
    cur_line: u32,
}

impl WarpTrace {
    /// Ends the current basic block: the next one starts once this one's instructions have issued.
    fn close_block(&mut self) {
        self.groups.clear();
        for i in 0..LEVELS {
            self.t[i] = (self.t[i] + self.block_n).max(self.block_last[i] + 1.0);
            self.block_last[i] = self.t[i];
        }
        self.block_n = 0.0;
        if let Some(line) = self.prof_first.take() {
            profile_add(&mut self.profile, line, self.t[1] - self.prof_t);
            self.prof_t = self.t[1];
        }
    }
}

impl BlockTrace {
    pub(crate) fn new(block: u64, nwarps: usize, nslots: usize, timing: Timing) -> Self {
        BlockTrace {
            block,
            warps: (0..nwarps)
                .map(|_| WarpTrace {
                    ready: vec![[0.0; LEVELS]; nslots],
                    ..Default::default()
                })
                .collect(),
            timing: Some(timing),
            ..Default::default()
        }
    }

    /// Before an instruction executes: which kind its global sectors are; a barrier or a `cp.async`
    /// wait first ends the warp's basic block.
    pub(crate) fn begin(&mut self, wid: u32, inst: &Inst) {
        if matches!(inst.op, Op::Bar { .. } | Op::CpAsyncWait { .. }) {
            if let Some(w) = self.warps.get_mut(wid as usize) {
                w.close_block();
            }
        }
        self.cur_global = false;
        self.cur_shared = false;
        self.cur_wavefronts = 0;
        self.cur_wid = wid as usize;
        self.cur_shared_addr = match &inst.op {
            Op::Ld { addr, ds, .. } if ds.len() == 1 => addr.base.map(|b| (b, addr.off, false)),
            Op::St { addr, srcs, .. } if srcs.len() == 1 => addr.base.map(|b| (b, addr.off, true)),
            _ => None,
        };
        self.cur_line = inst.line;
        self.cur_kind = match &inst.op {
            Op::St { .. } => SECTOR_STORE,
            Op::Wmma(w) if matches!(w.as_ref(), WmmaOp::Store { .. }) => SECTOR_STORE,
            Op::CpAsync { .. } => SECTOR_LOAD_L2,
            _ => SECTOR_LOAD,
        };
    }

    /// A warp-level global request touched these distinct sectors (sorted).
    pub(crate) fn global_sectors(&mut self, sectors: &[u64]) {
        self.cur_global = true;
        self.sectors.extend(sectors.iter().map(|s| (s << 2) | self.cur_kind));
        self.streams.extend(std::iter::repeat_n(self.cur_line, sectors.len()));
    }

    /// A warp-level shared request of `wavefronts` (lanes' offset and length in `addrs`). A scalar
    /// `ld`/`st` that continues an open group of the warp (same base register, the next offset, every
    /// lane's bytes right after its previous ones, at most 16 bytes, the group's start aligned to the
    /// merged width on every lane and in the instruction's offset) joins it: the group is re-costed as one vector access, as ptxas
    /// emits `LDS.64`/`LDS.128` for such runs. Groups end with the basic block.
    pub(crate) fn shared_request(&mut self, wavefronts: u64, addrs: &[(u64, u64)]) {
        self.cur_shared = true;
        let Some(w) = self.warps.get_mut(self.cur_wid) else {
            return;
        };
        let Some((base, off, store)) = self.cur_shared_addr else {
            self.cur_wavefronts += wavefronts;
            self.wavefronts += wavefronts as f64;
            return;
        };
        let joins = |g: &VecGroup| {
            g.base == base
                && g.store == store
                && g.next_off == off
                && g.lanes.len() == addrs.len()
                && g.lanes
                    .iter()
                    .zip(addrs)
                    .all(|(a, b)| b.0 == a.0 + a.1 && a.1 + b.1 <= g.width)
        };
        if let Some(i) = w.groups.iter().position(joins) {
            let g = &mut w.groups[i];
            for (a, b) in g.lanes.iter_mut().zip(addrs) {
                a.1 += b.1;
            }
            g.next_off += addrs.first().map_or(0, |a| a.1) as i64;
            let (merged, _) = shared_wavefronts(&g.lanes);
            let extra = merged.saturating_sub(g.counted);
            self.wavefronts += merged as f64 - g.counted as f64;
            self.cur_wavefronts += extra;
            g.counted = merged;
            return;
        }
        if w.groups.len() >= OPEN_GROUPS {
            w.groups.remove(0);
        }
        // The run must start at an offset of the base register that is a multiple of the width too:
        // a proxy for what ptxas can prove about the base's alignment.
        let aligned = |n: u64| off.rem_euclid(n as i64) == 0 && addrs.iter().all(|a| a.0 % n == 0 && a.1 < n);
        let width = if aligned(16) {
            16
        } else if aligned(8) {
            8
        } else {
            0
        };
        w.groups.push(VecGroup {
            width,
            base,
            store,
            next_off: off + addrs.first().map_or(0, |a| a.1) as i64,
            lanes: addrs.to_vec(),
            counted: wavefronts,
        });
        self.cur_wavefronts += wavefronts;
        self.wavefronts += wavefronts as f64;
    }

    /// After the instruction ran for `active` lanes of warp `wid`.
    pub(crate) fn end(&mut self, wid: u32, inst: &Inst, active: u32) {
        let Some(timing) = self.timing else { return };
        let lat = timing.lat;
        let w = &mut self.warps[wid as usize];
        let pipe = Pipe::of(inst.class);
        if w.prof_first.is_none() && profiling() {
            w.prof_first = Some(inst.line);
        }
        w.issued += 1;
        w.pipe[pipe as usize] += 1;
        let mut busy = timing.cost[pipe as usize];
        let mut fma = |k: usize, n: f64| {
            w.mma_fma[k] += n;
            busy = n * timing.fma_cost[k];
        };
        match &inst.op {
            Op::Mma { k, ab, cd, .. } => {
                let n = 16.0 * 8.0 * *k as f64;
                match (ab, cd) {
                    (MmaTy::TF32, _) => fma(2, n),
                    (_, MmaTy::F16) => fma(1, n),
                    _ => fma(0, n),
                }
            }
            Op::Wmma(x) => {
                if let WmmaOp::Mma { dt, .. } = x.as_ref() {
                    fma(if *dt == MmaTy::F16 { 1 } else { 0 }, 4096.0);
                }
            }
            _ => {}
        }
        let d = deps::of(inst);
        let mut start = w.t;
        for &u in d.uses() {
            if let Some(r) = w.ready.get(u as usize) {
                for i in 0..LEVELS {
                    start[i] = start[i].max(r[i]);
                }
            }
        }
        // The pipe (and the shared-memory port) must be free: a warp alone on a scheduler.
        let port = NPIPES;
        let shared_busy = self.cur_wavefronts as f64;
        for i in 0..LEVELS {
            start[i] = start[i].max(w.pipe_free[pipe as usize][i]);
            if shared_busy > 0.0 {
                start[i] = start[i].max(w.pipe_free[port][i]);
            }
        }
        for i in 0..LEVELS {
            w.pipe_free[pipe as usize][i] = start[i] + busy;
            if shared_busy > 0.0 {
                w.pipe_free[port][i] = start[i] + shared_busy;
            }
        }
        let alu = |l: f64| [l; LEVELS];
        let result: T = match pipe {
            Pipe::Sfu | Pipe::Convert => alu(lat.sfu),
            Pipe::Fp64 => alu(lat.fp64),
            Pipe::Shfl => alu(lat.shfl),
            Pipe::Mma => {
                if self.cur_shared {
                    alu(lat.shared)
                } else {
                    alu(lat.mma)
                }
            }
            Pipe::Lsu if self.cur_global => [lat.l1, lat.l2, lat.dram],
            Pipe::Lsu if self.cur_shared => alu(lat.shared),
            Pipe::Lsu => alu(lat.l1),
            _ => alu(lat.alu),
        };
        match &inst.op {
            Op::CpAsync { .. } if active != 0 => {
                for i in 0..LEVELS {
                    w.async_open[i] = w.async_open[i].max(start[i] + result[i]);
                }
            }
            Op::CpAsyncCommit => {
                let g = std::mem::take(&mut w.async_open);
                w.async_groups.push_back(g);
            }
            Op::CpAsyncWait { n } => {
                if *n == u32::MAX {
                    let g = std::mem::take(&mut w.async_open);
                    w.async_groups.push_back(g);
                }
                let keep = if *n == u32::MAX { 0 } else { *n as usize };
                while w.async_groups.len() > keep {
                    if let Some(g) = w.async_groups.pop_front() {
                        for i in 0..LEVELS {
                            start[i] = start[i].max(g[i]);
                        }
                    }
                }
            }
            _ => {}
        }
        for &x in d.defs() {
            if let Some(r) = w.ready.get_mut(x as usize) {
                for i in 0..LEVELS {
                    r[i] = start[i] + result[i];
                }
            }
        }
        w.block_n += 1.0;
        for i in 0..LEVELS {
            w.block_last[i] = w.block_last[i].max(start[i]);
        }
        if matches!(
            inst.op,
            Op::Bra { .. } | Op::Bar { .. } | Op::CpAsyncWait { .. } | Op::Exit | Op::Ret | Op::Call { .. }
        ) {
            w.close_block();
        }
    }

    /// Warp `wid` arrived at barrier `id` (`sync`: it waits there).
    pub(crate) fn bar_arrive(&mut self, wid: u32, id: usize, sync: bool, line: u32) {
        let w = &mut self.warps[wid as usize];
        if profiling() && sync {
            w.prof_bar = Some(line);
        }
        for i in 0..LEVELS {
            self.bar_t[id][i] = self.bar_t[id][i].max(w.t[i]);
        }
        w.waiting_bar |= sync;
    }

    /// Barrier `id` completed: every warp waiting there goes on after its latest arrival.
    pub(crate) fn bar_release(&mut self, id: usize, waiting: impl Fn(usize) -> bool) {
        let Some(timing) = self.timing else { return };
        let lat = timing.lat;
        let at = std::mem::take(&mut self.bar_t[id]);
        for (i, w) in self.warps.iter_mut().enumerate() {
            if w.waiting_bar && waiting(i) {
                w.bar_wait += (at[1] - w.t[1]).max(0.0) + lat.barrier;
                for k in 0..LEVELS {
                    w.t[k] = w.t[k].max(at[k]) + lat.barrier;
                    w.block_last[k] = w.t[k];
                }
                w.waiting_bar = false;
                if let Some(line) = w.prof_bar.take() {
                    profile_add(&mut w.profile, line, w.t[1] - w.prof_t);
                    w.prof_t = w.t[1];
                }
            }
        }
    }

    /// Drops the per-register state once the block is done (the trace is kept for the model).
    pub(crate) fn finish(&mut self) {
        for w in &mut self.warps {
            w.close_block();
            w.ready = Vec::new();
        }
        self.timing = None;
    }
}
