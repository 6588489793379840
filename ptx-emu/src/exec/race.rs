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

/// Per-byte shadow: the last writer; the last reader `r`; and a summary `o` of the earlier readers
/// that were concurrent with a later one (not ordered before it): a representative thread, a second
/// distinct one if any, the latest epoch among them, and — if all are lanes of one warp — that warp
/// and its latest sync counter. A write is checked against `r` exactly and against `o` through
/// whole-block barriers and (for one warp) warp-level syncs, never against the writer itself.
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
    o_tid: u32,
    o_alt: u32,
    o_alt_line: u32,
    o_line: u32,
    o_ep: u32,
    o_ws: u32,
    /// The warp all `o` readers belong to, or `MIXED`.
    o_warp: u32,
}

const NONE: u32 = u32::MAX;
const MIXED: u32 = u32::MAX - 1;

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
            o_tid: NONE,
            o_alt: NONE,
            o_alt_line: 0,
            o_line: 0,
            o_ep: 0,
            o_ws: 0,
            o_warp: NONE,
        }
    }
}

impl Cell {
    /// Moves the last reader into the summary of earlier concurrent readers.
    fn retire_reader(&mut self) {
        let (t, ep, ws, line) = (self.r_tid, self.r_ep, self.r_ws, self.r_line);
        if self.o_tid == NONE {
            self.o_tid = t;
            self.o_line = line;
            self.o_ep = ep;
            self.o_ws = ws;
            self.o_warp = t / 32;
            return;
        }
        if t != self.o_tid && self.o_alt == NONE {
            self.o_alt = t;
            self.o_alt_line = line;
        }
        self.o_ep = self.o_ep.max(ep);
        if self.o_warp == t / 32 {
            self.o_ws = self.o_ws.max(ws);
        } else {
            self.o_warp = MIXED;
        }
    }

    /// An earlier concurrent reader other than `tid` that is not ordered before `tid` now, if any:
    /// (thread, line).
    fn unordered_summary_reader(&self, tid: u32, sync: &SyncState) -> Option<(u32, u32)> {
        if self.o_tid == NONE {
            return None;
        }
        let other = if self.o_tid != tid {
            (self.o_tid, self.o_line)
        } else if self.o_alt != NONE {
            (self.o_alt, self.o_alt_line)
        } else {
            return None; // only the writer itself read these bytes concurrently
        };
        if sync.full_epoch > self.o_ep {
            return None;
        }
        if self.o_warp == tid / 32
            && sync
                .warp_syncs
                .get(self.o_warp as usize)
                .is_some_and(|&w| w != self.o_ws)
        {
            return None;
        }
        Some(other)
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

    /// Records an access of [off, off+len) by thread `tid` at `epoch`; returns the first hazard found
    /// (the other thread named is never `tid` itself).
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
        // The bytes of one access mostly share their last writer and reader: remember the last
        // answer of `ordered` for each.
        let memo = |m: &mut Option<(u32, u32, u32, bool)>, o: u32, e: u32, w: u32| match *m {
            Some((a, b, c, r)) if (a, b, c) == (o, e, w) => r,
            _ => {
                let r = sync.ordered(o, e, w, tid);
                *m = Some((o, e, w, r));
                r
            }
        };
        let (mut mw, mut mr) = (None, None);
        for c in self.cells.get_mut(off..off + len)?.iter_mut() {
            if found.is_none() {
                if c.w_tid != NONE && !memo(&mut mw, c.w_tid, c.w_ep, c.w_ws) {
                    found = Some(Hazard {
                        kind: if write { "WAW" } else { "RAW" },
                        other: c.w_tid,
                        other_line: c.w_line,
                    });
                } else if write {
                    if c.r_tid != NONE && c.r_tid != tid && !memo(&mut mr, c.r_tid, c.r_ep, c.r_ws) {
                        found = Some(Hazard {
                            kind: "WAR",
                            other: c.r_tid,
                            other_line: c.r_line,
                        });
                    } else if let Some((other, other_line)) = c.unordered_summary_reader(tid, sync) {
                        found = Some(Hazard {
                            kind: "WAR",
                            other,
                            other_line,
                        });
                    }
                }
            }
            if write {
                *c = Cell {
                    w_tid: tid,
                    w_ep: epoch,
                    w_ws: ws,
                    w_line: line,
                    ..Cell::default()
                };
            } else {
                if c.r_tid != NONE && c.r_tid != tid && !memo(&mut mr, c.r_tid, c.r_ep, c.r_ws) {
                    c.retire_reader();
                }
                c.r_tid = tid;
                c.r_ep = epoch;
                c.r_ws = ws;
                c.r_line = line;
            }
        }
        found
    }
}
