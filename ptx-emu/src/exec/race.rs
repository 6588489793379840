//! racecheck shadow state: for every shared-memory byte, the last writer and the last reader(s), each
//! tagged with the barrier epoch and its warp's sync counter. Two accesses by different threads, at least
//! one a write, are a hazard unless a barrier both threads took part in completed between them (a
//! barrier of the whole block, or a named barrier with a thread count that both joined), or, within one
//! warp, a warp-level sync happened between them.

/// What orders accesses: the epoch of the last whole-block barrier, the epochs of the partial barriers
/// each thread joined, and each warp's sync counter.
pub(crate) struct SyncState<'a> {
    pub full_epoch: u32,
    pub hist: &'a [Vec<u32>],
    pub warp_syncs: &'a [u32],
}

impl SyncState<'_> {
    /// Is an access by `other` at epoch `ep` (warp sync count `ws`) ordered before thread `tid` now?
    fn ordered(&self, other: u32, ep: u32, ws: u32, tid: u32) -> bool {
        if other == tid || self.full_epoch > ep {
            return true;
        }
        if tid / 32 == other / 32 && self.warp_syncs.get((other / 32) as usize).is_some_and(|&w| w != ws) {
            return true;
        }
        let (Some(ho), Some(ht)) = (self.hist.get(other as usize), self.hist.get(tid as usize)) else {
            return false;
        };
        // Did both join one partial barrier after `ep`? Histories are ascending: intersect the parts
        // after `ep` in one merge (linear, not quadratic, in the history length).
        let (mut a, mut b) = (
            ho[ho.partition_point(|&e| e <= ep)..].iter(),
            ht[ht.partition_point(|&e| e <= ep)..].iter(),
        );
        let (mut x, mut y) = (a.next(), b.next());
        while let (Some(&p), Some(&q)) = (x, y) {
            match p.cmp(&q) {
                std::cmp::Ordering::Less => x = a.next(),
                std::cmp::Ordering::Greater => y = b.next(),
                std::cmp::Ordering::Equal => return true,
            }
        }
        false
    }
}

#[derive(Clone, Copy)]
struct Cell {
    w_tid: u32,
    w_ep: u32,
    w_ws: u32,
    w_line: u32,
    r_tid: u32,
    r_ep: u32,
    r_ws: u32,
    r_line: u32,
    r_multi: bool,
}

const NONE: u32 = u32::MAX;

impl Default for Cell {
    fn default() -> Self {
        Cell {
            w_tid: NONE,
            w_ep: 0,
            w_ws: 0,
            w_line: 0,
            r_tid: NONE,
            r_ep: 0,
            r_ws: 0,
            r_line: 0,
            r_multi: false,
        }
    }
}

pub(crate) struct RaceShadow {
    cells: Vec<Cell>,
}

/// A hazard found: kind ("RAW", "WAR", "WAW"), the other thread's linear id and PTX line.
pub(crate) struct Hazard {
    pub kind: &'static str,
    pub other: u32,
    pub other_line: u32,
}

impl RaceShadow {
    pub fn new(bytes: usize) -> Self {
        RaceShadow {
            cells: vec![Cell::default(); bytes],
        }
    }

    /// Records an access of [off, off+len) by thread `tid`; returns the first hazard found.
    /// Records an access of [off, off+len) by thread `tid` at `epoch`; returns the first hazard found.
    #[allow(clippy::too_many_arguments)]
    pub fn access(
        &mut self,
        off: usize,
        len: usize,
        tid: u32,
        write: bool,
        epoch: u32,
        sync: &SyncState,
        line: u32,
    ) -> Option<Hazard> {
        let ws = sync.warp_syncs.get((tid / 32) as usize).copied().unwrap_or(0);
        let mut found = None;
        for c in self.cells.get_mut(off..off + len)?.iter_mut() {
            if found.is_none() {
                if c.w_tid != NONE && !sync.ordered(c.w_tid, c.w_ep, c.w_ws, tid) {
                    found = Some(Hazard {
                        kind: if write { "WAW" } else { "RAW" },
                        other: c.w_tid,
                        other_line: c.w_line,
                    });
                } else if write
                    && c.r_tid != NONE
                    && ((c.r_tid != tid && !sync.ordered(c.r_tid, c.r_ep, c.r_ws, tid))
                        || (c.r_multi && sync.full_epoch <= c.r_ep))
                {
                    found = Some(Hazard {
                        kind: "WAR",
                        other: c.r_tid,
                        other_line: c.r_line,
                    });
                }
            }
            if write {
                c.w_tid = tid;
                c.w_ep = epoch;
                c.w_ws = ws;
                c.w_line = line;
                c.r_tid = NONE;
                c.r_multi = false;
            } else if c.r_tid != NONE && c.r_tid != tid && !sync.ordered(c.r_tid, c.r_ep, c.r_ws, tid) {
                c.r_multi = true;
            } else {
                c.r_tid = tid;
                c.r_ep = epoch;
                c.r_ws = ws;
                c.r_line = line;
                c.r_multi = false;
            }
        }
        found
    }
}
