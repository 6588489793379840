//! Sector-level cache simulation for the model: each SM's L1 (global loads, 128-byte lines of four
//! 32-byte sectors, LRU, no allocation on stores) in front of one L2 the SMs share (loads and stores,
//! write-back). Blocks resident at the same time interleave their requests, so reuse between them
//! (the A and B tiles of a GEMM) shows up as L2 hits instead of DRAM traffic.

use std::collections::BTreeMap;

use super::timeline::{BlockTrace, SECTOR_LOAD, SECTOR_LOAD_L2, SECTOR_STORE};

/// A set-associative cache of 128-byte lines with a valid bit per 32-byte sector.
pub struct Cache {
    ways: usize,
    sets: usize,
    tag: Vec<u64>,
    mask: Vec<u8>,
    dirty: Vec<u8>,
    stamp: Vec<u64>,
    now: u64,
}

/// The result of one access.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Outcome {
    pub hit: bool,
    /// Dirty sectors written back by the eviction this access caused.
    pub writebacks: u32,
}

impl Cache {
    pub fn new(bytes: u64, ways: usize) -> Cache {
        let lines = (bytes / 128).max(ways as u64) as usize;
        let sets = (lines / ways).max(1);
        Cache {
            ways,
            sets,
            tag: vec![u64::MAX; sets * ways],
            mask: vec![0; sets * ways],
            dirty: vec![0; sets * ways],
            stamp: vec![0; sets * ways],
            now: 0,
        }
    }

    /// Looks up `sector`; on a miss, allocates it when `allocate`. `write` marks it dirty.
    pub fn access(&mut self, sector: u64, allocate: bool, write: bool) -> Outcome {
        self.now += 1;
        let line = sector >> 2;
        let bit = 1u8 << (sector & 3);
        // Spread consecutive lines over sets (and strided ones, a little) as hardware hashing does.
        let set = ((line ^ (line >> 13) ^ (line >> 27)) % self.sets as u64) as usize;
        let base = set * self.ways;
        let mut victim = base;
        for i in base..base + self.ways {
            if self.tag[i] == line {
                self.stamp[i] = self.now;
                let hit = self.mask[i] & bit != 0;
                if allocate || hit {
                    self.mask[i] |= bit;
                }
                if write {
                    self.dirty[i] |= bit;
                }
                return Outcome { hit, writebacks: 0 };
            }
            if self.stamp[i] < self.stamp[victim] {
                victim = i;
            }
        }
        if !allocate {
            return Outcome {
                hit: false,
                writebacks: 0,
            };
        }
        let writebacks = if self.tag[victim] != u64::MAX {
            self.dirty[victim].count_ones()
        } else {
            0
        };
        self.tag[victim] = line;
        self.mask[victim] = bit;
        self.dirty[victim] = if write { bit } else { 0 };
        self.stamp[victim] = self.now;
        Outcome { hit: false, writebacks }
    }

    /// Dirty sectors still held (written back at the end of the kernel, eventually).
    pub fn dirty_sectors(&self) -> u64 {
        self.dirty.iter().map(|d| d.count_ones() as u64).sum()
    }
}

/// Sector counts the cache simulation found, summed over the simulated blocks.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct Traffic {
    /// Load sectors requested, and where they were served.
    pub load_sectors: u64,
    pub l1_hits: u64,
    pub l2_hits: u64,
    pub dram_reads: u64,
    pub store_sectors: u64,
    /// Sectors that reached L2 (L1 misses, bypassing loads, stores).
    pub l2_sectors: u64,
    /// Sectors written to DRAM (evicted dirty sectors and those left dirty at the end).
    pub dram_writes: u64,
    /// Per load stream (the PTX line of the load, [`BlockTrace::streams`]): of its sectors that
    /// reached L2, how many hit there and how many went on to DRAM. Sums to `l2_hits` and `dram_reads`.
    pub by_stream: BTreeMap<u32, [u64; 2]>,
}

/// Requests a block issues per turn when the resident blocks of an SM interleave.
const CHUNK: usize = 32;

/// Simulates the blocks of `traces` as resident together: `per_sm` consecutive blocks share an SM's L1
/// of `l1_bytes`, every SM shares one L2 of `l2_bytes`.
pub fn simulate(traces: &[BlockTrace], per_sm: usize, l1_bytes: u64, l2_bytes: u64) -> Traffic {
    let mut t = Traffic::default();
    let per_sm = per_sm.max(1);
    let groups: Vec<&[BlockTrace]> = traces.chunks(per_sm).collect();
    let mut l1s: Vec<Cache> = groups.iter().map(|_| Cache::new(l1_bytes, 4)).collect();
    let mut l2 = Cache::new(l2_bytes, 16);
    // Per SM, per resident block: the next request.
    let mut pos: Vec<Vec<usize>> = groups.iter().map(|g| vec![0; g.len()]).collect();
    loop {
        let mut any = false;
        for (g, blocks) in groups.iter().enumerate() {
            for (b, trace) in blocks.iter().enumerate() {
                let p = &mut pos[g][b];
                let end = (*p + CHUNK).min(trace.sectors.len());
                for (i, &s) in trace.sectors[*p..end].iter().enumerate() {
                    any = true;
                    let stream = trace.streams.get(*p + i).copied().unwrap_or(0);
                    let (sector, kind) = (s >> 2, s & 3);
                    let to_l2 = match kind {
                        SECTOR_LOAD => {
                            t.load_sectors += 1;
                            if l1s[g].access(sector, true, false).hit {
                                t.l1_hits += 1;
                                false
                            } else {
                                true
                            }
                        }
                        SECTOR_LOAD_L2 => {
                            t.load_sectors += 1;
                            true
                        }
                        _ => {
                            t.store_sectors += 1;
                            // Stores write through L1 without allocating (a stale copy would be updated).
                            l1s[g].access(sector, false, false);
                            true
                        }
                    };
                    if to_l2 {
                        t.l2_sectors += 1;
                        let write = kind == SECTOR_STORE;
                        let o = l2.access(sector, true, write);
                        t.dram_writes += o.writebacks as u64;
                        if !write {
                            let e = t.by_stream.entry(stream).or_default();
                            if o.hit {
                                t.l2_hits += 1;
                                e[0] += 1;
                            } else {
                                t.dram_reads += 1;
                                e[1] += 1;
                            }
                        }
                    }
                }
                *p = end;
            }
        }
        if !any {
            break;
        }
    }
    t.dram_writes += l2.dirty_sectors();
    t
}
