//! The speed-of-light model: from one emulated launch (each warp's instruction and memory stream,
//! recorded by `timeline.rs`), a predicted time on a named GPU (`arch.rs`) and what limits it.
//!
//! Per wave of resident blocks it computes one time per unit, in cycles:
//! - **issue / pipes**, per scheduler: warps go to schedulers round robin; a scheduler issues one
//!   warp-instruction per clock, and a pipe of R lanes/clk/SM takes 32 x schedulers / R clocks per
//!   warp-instruction (`mma`: multiply-adds over the tensor rate);
//! - **shared**: wavefronts (bank conflicts, `ldmatrix`, `cp.async` writes included), one per clock;
//! - **l1**: global sectors requested over L1 bytes per clock;
//! - **l2**, **dram**: the sectors the cache simulation (`cache.rs`) sends there, over the GPU's
//!   bandwidth, for every block of the wave;
//! - **latency**: the longest warp timeline (dependencies, loads in flight, barriers), with each global
//!   load's latency mixed from the L1/L2/DRAM hit rates.
//!
//! The wave takes the p-norm (p = [`OVERLAP_P`]) of the schedulers' time (the busiest of issue and
//! the pipes: they share the same cycles) and the other units: the largest dominates, near-equal ones
//! add a little, as units that overlap imperfectly do. Waves add up (the last one may be partial),
//! plus the launch overhead. Sampled launches (`ModelOptions::sample_blocks`) run a few clusters of
//! consecutive blocks and scale their per-block averages to the grid.

pub mod arch;
pub mod cache;
pub mod deps;
pub mod ptxas;
pub mod timeline;

pub use arch::Arch;
use timeline::{BlockTrace, Pipe, NPIPES};

/// The exponent that combines the per-unit times of a wave (calibrated: `docs/perf-model.md`).
pub const OVERLAP_P: f64 = 6.0;

/// What the model needs beyond the launch itself.
#[derive(Clone, Debug)]
pub struct ModelOptions {
    pub arch: Arch,
    /// Registers per thread (the ptxas report for this arch).
    pub regs_per_thread: u32,
    /// Emulate at most this many blocks and scale up (None: the whole grid; 0 counts as 1).
    pub sample_blocks: Option<u64>,
}

/// Blocks per SM and what limits them.
#[derive(Clone, Debug, PartialEq)]
pub struct Occupancy {
    pub blocks_per_sm: u32,
    pub warps_per_sm: u32,
    /// Resident warps over the SM's maximum.
    pub fraction: f64,
    /// "registers", "shared", "warps" or "blocks".
    pub limit: &'static str,
    pub regs_per_thread: u32,
    pub shared_per_block: u32,
}

/// Blocks of `threads` threads using `regs` registers each and `shared` bytes of shared memory that
/// fit on one SM of `a`; an error when not even one does.
pub fn occupancy(a: &Arch, threads: u32, regs: u32, shared: u32) -> Result<Occupancy, String> {
    let warps = threads.div_ceil(32).max(1);
    if regs > a.max_regs_thread {
        return Err(format!(
            "{regs} registers per thread exceed {}'s {}",
            a.name, a.max_regs_thread
        ));
    }
    // Registers are allocated per warp in units of 256 (8 per thread).
    let regs_warp = (regs.max(1) * 32).div_ceil(256) * 256;
    let by_regs = a.regs_per_sm / (regs_warp * warps);
    let by_shared = if shared > 0 {
        if shared > a.shared_per_block {
            return Err(format!(
                "{shared} bytes of shared memory per block exceed {}'s {}",
                a.name, a.shared_per_block
            ));
        }
        a.shared_per_sm / ((shared + a.shared_reserved).div_ceil(128) * 128)
    } else {
        u32::MAX
    };
    let by_warps = a.max_warps_sm / warps;
    // On a tie the hardware's own limits are named first.
    let candidates = [
        (by_warps, "warps"),
        (a.max_blocks_sm, "blocks"),
        (by_regs, "registers"),
        (by_shared, "shared"),
    ];
    let (n, limit) = candidates.iter().min_by_key(|c| c.0).copied().unwrap_or((0, "blocks"));
    if n == 0 {
        return Err(format!(
            "a block of {threads} threads with {regs} registers per thread and {shared} bytes of shared memory does not fit on an SM of {} (limited by {limit})",
            a.name
        ));
    }
    Ok(Occupancy {
        blocks_per_sm: n,
        warps_per_sm: n * warps,
        fraction: (n * warps) as f64 / a.max_warps_sm as f64,
        limit,
        regs_per_thread: regs,
        shared_per_block: shared,
    })
}

/// Units of a prediction, in the order they are reported.
pub const UNITS: [&str; 14] = [
    "issue", "fp32", "int", "sfu", "fp64", "half", "convert", "shuffle", "tensor", "shared", "l1", "l2", "dram",
    "latency",
];

/// One launch's predicted time.
#[derive(Clone, Debug, PartialEq)]
pub struct Prediction {
    pub arch: String,
    pub seconds: f64,
    /// The unit that binds: one of [`UNITS`], "barrier" (the latency bound is mostly barrier waits) or
    /// "launch" (the launch overhead is longer than the kernel).
    pub limiter: String,
    /// Per unit: busy time over the predicted time (0..1).
    pub units: Vec<(&'static str, f64)>,
    pub occupancy: Occupancy,
    /// Waves of resident blocks (fractional: the last one may be partial).
    pub waves: f64,
    pub blocks: u64,
    pub sampled_blocks: u64,
    /// Predicted DRAM and L2 bytes for the whole launch.
    pub dram_bytes: f64,
    /// Shared-memory wavefronts for the whole launch, with the scalar accesses ptxas vectorizes merged
    /// (`timeline.rs`; the metrics count them one by one).
    pub shared_wavefronts: f64,
    pub l2_bytes: f64,
    pub launch_seconds: f64,
}

impl Prediction {
    /// The `"model"` object of the metrics JSON.
    pub fn to_json(&self) -> String {
        let units: Vec<String> = self.units.iter().map(|(k, v)| format!("\"{k}\": {v:.4}")).collect();
        let o = &self.occupancy;
        format!(
            "{{\"arch\": \"{}\", \"seconds\": {:.6e}, \"limiter\": \"{}\", \"units\": {{{}}}, \"occupancy\": {{\"blocks_per_sm\": {}, \"warps_per_sm\": {}, \"fraction\": {:.4}, \"limit\": \"{}\", \"regs_per_thread\": {}, \"shared_per_block\": {}}}, \"waves\": {:.4}, \"blocks\": {}, \"sampled_blocks\": {}, \"dram_bytes\": {:.0}, \"l2_bytes\": {:.0}, \"launch_seconds\": {:.3e}}}",
            self.arch,
            self.seconds,
            self.limiter,
            units.join(", "),
            o.blocks_per_sm,
            o.warps_per_sm,
            o.fraction,
            o.limit,
            o.regs_per_thread,
            o.shared_per_block,
            self.waves,
            self.blocks,
            self.sampled_blocks,
            self.dram_bytes,
            self.l2_bytes,
            self.launch_seconds
        )
    }

    /// A few human-readable lines.
    pub fn summary(&self) -> String {
        let o = &self.occupancy;
        let mut s = format!(
            "model {}: {:.3} us, limited by {}\n  occupancy: {} blocks/SM ({} warps, {:.0}%, limited by {}), {:.2} waves, {} of {} blocks emulated\n  DRAM {:.3} MB, L2 {:.3} MB\n  units:",
            self.arch,
            self.seconds * 1e6,
            self.limiter,
            o.blocks_per_sm,
            o.warps_per_sm,
            o.fraction * 100.0,
            o.limit,
            self.waves,
            self.sampled_blocks,
            self.blocks,
            self.dram_bytes / 1e6,
            self.l2_bytes / 1e6
        );
        for (k, v) in &self.units {
            if *v >= 0.005 {
                s.push_str(&format!(" {k} {:.0}%", v * 100.0));
            }
        }
        s.push('\n');
        s
    }
}

/// Which blocks a launch of `total` blocks emulates for `sample` (None: all): four clusters of
/// consecutive blocks (fewer when `sample` < 8), spread evenly over the grid from the first block to
/// the last. Consecutive blocks run at the same time on a GPU and share cache lines; spread clusters
/// see the grid's edges and its middle, so work that grows along the grid (causal attention) averages
/// out.
pub fn sample(total: u64, sample: Option<u64>) -> Option<Vec<u64>> {
    let n = sample?.max(1);
    if n >= total {
        return None;
    }
    let clusters = (n / 2).clamp(1, 4);
    let size = n / clusters;
    let mut v = Vec::with_capacity(n as usize);
    for c in 0..clusters {
        let start = if clusters == 1 {
            0
        } else {
            c * (total - size) / (clusters - 1)
        };
        let len = if c == clusters - 1 {
            n - size * (clusters - 1)
        } else {
            size
        };
        v.extend(start..(start + len).min(total));
    }
    v.sort_unstable();
    v.dedup();
    Some(v)
}

/// Per-block averages of the sampled traces.
struct BlockAvg {
    /// Per warp index: issue count, pipe counts, mma FMAs by type.
    issued: Vec<f64>,
    pipe: Vec<[f64; NPIPES]>,
    mma: Vec<[f64; 3]>,
    wavefronts: f64,
    l1_sectors: f64,
    l2_sectors: f64,
    dram_sectors: f64,
    latency: f64,
    bar_share: f64,
}

fn average(traces: &[BlockTrace], traffic: &cache::Traffic) -> BlockAvg {
    let n = traces.len().max(1) as f64;
    let nw = traces.iter().map(|t| t.warps.len()).max().unwrap_or(0);
    let mut a = BlockAvg {
        issued: vec![0.0; nw],
        pipe: vec![[0.0; NPIPES]; nw],
        mma: vec![[0.0; 3]; nw],
        wavefronts: 0.0,
        l1_sectors: 0.0,
        l2_sectors: traffic.l2_sectors as f64 / n,
        dram_sectors: (traffic.dram_reads + traffic.dram_writes) as f64 / n,
        latency: 0.0,
        bar_share: 0.0,
    };
    let loads = traffic.load_sectors.max(1) as f64;
    let mix = [
        traffic.l1_hits as f64 / loads,
        traffic.l2_hits as f64 / loads,
        traffic.dram_reads as f64 / loads,
    ];
    let mix = if traffic.load_sectors == 0 {
        [0.0, 1.0, 0.0]
    } else {
        mix
    };
    for t in traces {
        a.wavefronts += t.wavefronts / n;
        a.l1_sectors += t.metrics.global_sectors as f64 / n;
        let mut worst = (0.0, 0.0);
        for (i, w) in t.warps.iter().enumerate() {
            a.issued[i] += w.issued as f64 / n;
            for p in 0..NPIPES {
                a.pipe[i][p] += w.pipe[p] as f64 / n;
            }
            for k in 0..3 {
                a.mma[i][k] += w.mma_fma[k] / n;
            }
            let lat = mix[0] * w.t[0] + mix[1] * w.t[1] + mix[2] * w.t[2];
            if lat > worst.0 {
                worst = (lat, w.bar_wait);
            }
        }
        a.latency += worst.0 / n;
        a.bar_share += if worst.0 > 0.0 { worst.1 / worst.0 / n } else { 0.0 };
    }
    a
}

/// Per-unit cycles of one SM running `b` blocks at once (the unit order of [`UNITS`], without
/// l2/dram, which depend on the whole wave).
fn sm_cycles(a: &Arch, avg: &BlockAvg, b: u32) -> [f64; 14] {
    let sched = a.schedulers.max(1) as usize;
    let rate = |p: Pipe| match p {
        Pipe::Fp32 => a.fp32,
        Pipe::Int => a.int,
        Pipe::Sfu => a.sfu,
        Pipe::Fp64 => a.fp64,
        Pipe::Half => a.half,
        Pipe::Convert => a.convert,
        Pipe::Shfl => a.shfl,
        _ => 0.0,
    };
    // Per scheduler: issue and each pipe.
    let mut per = vec![[0.0f64; 14]; sched];
    let nw = avg.issued.len();
    for blk in 0..b as usize {
        for w in 0..nw {
            let s = &mut per[(blk * nw + w) % sched];
            s[0] += avg.issued[w];
            for (u, p) in [
                (1, Pipe::Fp32),
                (2, Pipe::Int),
                (3, Pipe::Sfu),
                (4, Pipe::Fp64),
                (5, Pipe::Half),
                (6, Pipe::Convert),
                (7, Pipe::Shfl),
            ] {
                s[u] += avg.pipe[w][p as usize] * 32.0 * sched as f64 / rate(p);
            }
            let m = avg.mma[w];
            s[8] += sched as f64 * (m[0] / a.mma_f32acc + m[1] / a.mma_f16acc + m[2] / a.mma_tf32);
        }
    }
    let mut c = [0.0f64; 14];
    for s in &per {
        for u in 0..9 {
            c[u] = c[u].max(s[u]);
        }
    }
    let b = b as f64;
    c[9] = b * avg.wavefronts * 128.0 / a.shared_bytes_clk;
    c[10] = b * avg.l1_sectors * 32.0 / a.l1_bytes_clk;
    c[13] = avg.latency;
    c
}

fn pnorm(v: &[f64]) -> f64 {
    let m = v.iter().cloned().fold(0.0, f64::max);
    if m <= 0.0 {
        return 0.0;
    }
    m * v
        .iter()
        .map(|x| (x / m).powf(OVERLAP_P))
        .sum::<f64>()
        .powf(1.0 / OVERLAP_P)
}

/// The wave probe of a sampled launch: how many blocks (the first wave) run, and for how many
/// warp-instructions each (an eighth of a sampled block, and the probe costs at most about twice the
/// sample).
pub fn wave_probe(
    opts: &ModelOptions,
    sample: &[BlockTrace],
    blocks: u64,
    threads: u32,
    shared: u32,
) -> Result<(u64, u64), String> {
    let occ = occupancy(&opts.arch, threads, opts.regs_per_thread, shared)?;
    let wave = (opts.arch.sms as u64 * occ.blocks_per_sm as u64).min(blocks);
    let n = sample.len().max(1) as f64;
    let mean = sample.iter().map(|t| t.metrics.warp_instructions as f64).sum::<f64>() / n;
    let budget = (mean / 8.0).min(mean * 2.0 * n / wave.max(1) as f64).max(2048.0);
    Ok((wave, budget as u64))
}

/// Traffic of the sampled blocks with the L2/DRAM split of the wave probe, per load stream: the loads
/// of each PTX load instruction that miss L1 hit L2 as often as that instruction's did while the whole
/// first wave ran together. A stream the probe never reached (it covers only the start of each block)
/// keeps the split the sample found. One rate for every stream would let a stream that blocks share
/// (a GEMV's x, staged first) lend its hits to one that each block reads alone (the weights).
fn with_probe(mut t: cache::Traffic, probe: &cache::Traffic) -> cache::Traffic {
    let (mut hits, mut dram) = (0, 0);
    for (line, split) in t.by_stream.iter_mut() {
        if let Some(&[ph, pd]) = probe.by_stream.get(line) {
            if ph + pd > 0 {
                let reached = split[0] + split[1];
                split[0] = (reached as f64 * ph as f64 / (ph + pd) as f64).round() as u64;
                split[1] = reached - split[0];
            }
        }
        hits += split[0];
        dram += split[1];
    }
    t.l2_hits = hits;
    t.dram_reads = dram;
    t
}

/// `PTX_EMU_PROFILE`: the slowest warp's timeline (L2 level) per basic block, by the PTX line that
/// starts it, largest first, on stderr.
fn print_profile(arch: &str, traces: &[BlockTrace]) {
    let Some((b, w)) = traces
        .iter()
        .flat_map(|t| t.warps.iter().map(move |w| (t.block, w)))
        .max_by(|x, y| x.1.t[1].total_cmp(&y.1.t[1]))
    else {
        return;
    };
    let mut rows = w.profile.clone();
    rows.sort_by(|x, y| y.1.total_cmp(&x.1));
    eprintln!(
        "profile {arch}: block {b}, slowest warp's timeline {:.0} cycles (barrier waits {:.0})",
        w.t[1], w.bar_wait
    );
    for (line, c) in rows.iter().take(40) {
        eprintln!(
            "  ptx line {line:>6}: {c:>10.0} cycles {:>5.1}%",
            100.0 * c / w.t[1].max(1.0)
        );
    }
}

/// Predicts a launch of `blocks` blocks of `threads` threads (`shared` bytes each) from the traces of
/// the blocks that ran, and, for a sampled launch, the traces of the wave probe ([`wave_probe`]).
pub fn predict(
    opts: &ModelOptions,
    traces: &[BlockTrace],
    probe: &[BlockTrace],
    blocks: u64,
    threads: u32,
    shared: u32,
) -> Result<Prediction, String> {
    let a = &opts.arch;
    let occ = occupancy(a, threads, opts.regs_per_thread, shared)?;
    let k = occ.blocks_per_sm;
    let per_wave = a.sms as u64 * k as u64;
    let sampled = traces.len() as u64;
    // The L1 left over next to the shared memory of the resident blocks.
    let smem = k as u64 * (shared as u64 + if shared > 0 { a.shared_reserved as u64 } else { 0 });
    let l1 = (a.l1_bytes as u64).saturating_sub(smem).max(16 * 1024);
    let mut traffic = cache::simulate(traces, k as usize, l1, a.l2_bytes);
    if !probe.is_empty() {
        traffic = with_probe(traffic, &cache::simulate(probe, k as usize, l1, a.l2_bytes));
    }
    let avg = average(traces, &traffic);
    if timeline::profiling() {
        print_profile(a.name, traces);
    }
    let full = blocks / per_wave;
    let tail = blocks % per_wave;
    let dram_clk = a.dram_bytes_s * a.dram_efficiency / a.clock_hz();
    let mut total = 0.0;
    let mut busy = [0.0f64; 14];
    let mut wave = |nblocks: u64, count: f64| {
        let b = nblocks.div_ceil(a.sms as u64) as u32;
        let mut c = sm_cycles(a, &avg, b);
        c[11] = nblocks as f64 * avg.l2_sectors * 32.0 / a.l2_bytes_clk;
        c[12] = nblocks as f64 * avg.dram_sectors * 32.0 / dram_clk;
        // Issue and the pipes share each scheduler's cycles: the busiest of them is one term.
        let sched = c[..9].iter().cloned().fold(0.0, f64::max);
        let t = pnorm(&[sched, c[9], c[10], c[11], c[12], c[13]]);
        total += t * count;
        for u in 0..14 {
            busy[u] += c[u] * count;
        }
    };
    if full > 0 {
        wave(per_wave, full as f64);
    }
    if tail > 0 {
        wave(tail, 1.0);
    }
    let kernel_s = total / a.clock_hz();
    let seconds = kernel_s + a.launch_s;
    let units: Vec<(&'static str, f64)> = UNITS
        .iter()
        .zip(busy.iter())
        .map(|(n, c)| (*n, if total > 0.0 { (c / total).min(1.0) } else { 0.0 }))
        .collect();
    let (mut limiter, _) = units
        .iter()
        .copied()
        .fold(("latency", -1.0), |m, u| if u.1 > m.1 { u } else { m });
    if limiter == "latency" && avg.bar_share > 0.5 {
        limiter = "barrier";
    }
    if a.launch_s > kernel_s {
        limiter = "launch";
    }
    Ok(Prediction {
        arch: a.name.to_string(),
        seconds,
        limiter: limiter.to_string(),
        units,
        occupancy: occ,
        waves: blocks as f64 / per_wave as f64,
        blocks,
        sampled_blocks: sampled,
        dram_bytes: avg.dram_sectors * 32.0 * blocks as f64,
        shared_wavefronts: avg.wavefronts * blocks as f64,
        l2_bytes: avg.l2_sectors * 32.0 * blocks as f64,
        launch_seconds: a.launch_s,
    })
}
