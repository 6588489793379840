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

use super::arch::Latencies;
use super::deps;
use crate::ir::{Class, Inst, MmaTy, Op, WmmaOp};

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
    /// Timeline: the cycle the warp's last instruction issued (per level), cycles spent waiting at
    /// barriers (L2 level).
    pub t: T,
    pub bar_wait: f64,
    /// The current basic block: when it started, its instructions so far, its latest issue.
    block_n: f64,
    block_last: T,
    ready: Vec<T>,
    async_open: T,
    async_groups: VecDeque<T>,
    waiting_bar: bool,
}

/// One block's trace.
#[derive(Clone, Debug, Default)]
pub struct BlockTrace {
    pub block: u64,
    pub warps: Vec<WarpTrace>,
    /// Global sectors, `(sector << 2) | kind`, in the order requests ran.
    pub sectors: Vec<u64>,
    /// Global load requests (warp-level) and of those, how many went to global memory at all.
    pub metrics: crate::Metrics,
    lat: Option<Latencies>,
    bar_t: [T; 16],
    /// The current instruction touched global / shared memory (set by the request hooks).
    cur_global: bool,
    cur_shared: bool,
    cur_kind: u64,
}

impl WarpTrace {
    /// Ends the current basic block: the next one starts once this one's instructions have issued.
    fn close_block(&mut self) {
        for i in 0..LEVELS {
            self.t[i] = (self.t[i] + self.block_n).max(self.block_last[i] + 1.0);
            self.block_last[i] = self.t[i];
        }
        self.block_n = 0.0;
    }
}

impl BlockTrace {
    pub(crate) fn new(block: u64, nwarps: usize, nslots: usize, lat: Latencies) -> Self {
        BlockTrace {
            block,
            warps: (0..nwarps)
                .map(|_| WarpTrace {
                    ready: vec![[0.0; LEVELS]; nslots],
                    ..Default::default()
                })
                .collect(),
            lat: Some(lat),
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
        self.cur_kind = match &inst.op {
            Op::St { .. } | Op::Stmatrix { .. } => SECTOR_STORE,
            Op::Wmma(w) if matches!(w.as_ref(), WmmaOp::Store { .. }) => SECTOR_STORE,
            Op::CpAsync { .. } => SECTOR_LOAD_L2,
            _ => SECTOR_LOAD,
        };
    }

    /// A warp-level global request touched these distinct sectors (sorted).
    pub(crate) fn global_sectors(&mut self, sectors: &[u64]) {
        self.cur_global = true;
        self.sectors.extend(sectors.iter().map(|s| (s << 2) | self.cur_kind));
    }

    pub(crate) fn shared_request(&mut self) {
        self.cur_shared = true;
    }

    /// After the instruction ran for `active` lanes of warp `wid`.
    pub(crate) fn end(&mut self, wid: u32, inst: &Inst, active: u32) {
        let Some(lat) = self.lat else { return };
        let w = &mut self.warps[wid as usize];
        let pipe = Pipe::of(inst.class);
        w.issued += 1;
        w.pipe[pipe as usize] += 1;
        let mut fma = |k: usize, n: f64| w.mma_fma[k] += n;
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
    pub(crate) fn bar_arrive(&mut self, wid: u32, id: usize, sync: bool) {
        let w = &mut self.warps[wid as usize];
        for i in 0..LEVELS {
            self.bar_t[id][i] = self.bar_t[id][i].max(w.t[i]);
        }
        w.waiting_bar |= sync;
    }

    /// Barrier `id` completed: every warp waiting there goes on after its latest arrival.
    pub(crate) fn bar_release(&mut self, id: usize, waiting: impl Fn(usize) -> bool) {
        let Some(lat) = self.lat else { return };
        let at = std::mem::take(&mut self.bar_t[id]);
        for (i, w) in self.warps.iter_mut().enumerate() {
            if w.waiting_bar && waiting(i) {
                w.bar_wait += (at[1] - w.t[1]).max(0.0) + lat.barrier;
                for k in 0..LEVELS {
                    w.t[k] = w.t[k].max(at[k]) + lat.barrier;
                    w.block_last[k] = w.t[k];
                }
                w.waiting_bar = false;
            }
        }
    }

    /// Drops the per-register state once the block is done (the trace is kept for the model).
    pub(crate) fn finish(&mut self) {
        for w in &mut self.warps {
            w.close_block();
            w.ready = Vec::new();
        }
        self.lat = None;
    }
}
