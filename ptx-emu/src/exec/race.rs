//! racecheck shadow state: for every shared-memory byte, the last writer and the last reader(s), each
//! tagged with the barrier epoch and its warp's sync counter. Two accesses by different threads in the
//! same epoch, at least one a write, with no warp-level sync between them (same warp), are a hazard.

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

    fn synced(tid: u32, other: u32, other_ws: u32, warp_syncs: &[u32]) -> bool {
        // Same warp and a warp-level sync happened since: ordered.
        tid / 32 == other / 32 && warp_syncs.get((other / 32) as usize).is_some_and(|&w| w != other_ws)
    }

    /// Records an access of [off, off+len) by thread `tid`; returns the first hazard found.
    #[allow(clippy::too_many_arguments)]
    pub fn access(
        &mut self,
        off: usize,
        len: usize,
        tid: u32,
        write: bool,
        epoch: u32,
        warp_syncs: &[u32],
        line: u32,
    ) -> Option<Hazard> {
        let ws = warp_syncs.get((tid / 32) as usize).copied().unwrap_or(0);
        let mut found = None;
        for c in self.cells.get_mut(off..off + len)?.iter_mut() {
            if found.is_none() {
                if c.w_tid != NONE
                    && c.w_ep == epoch
                    && c.w_tid != tid
                    && !Self::synced(tid, c.w_tid, c.w_ws, warp_syncs)
                {
                    found = Some(Hazard {
                        kind: if write { "WAW" } else { "RAW" },
                        other: c.w_tid,
                        other_line: c.w_line,
                    });
                } else if write
                    && c.r_tid != NONE
                    && c.r_ep == epoch
                    && (c.r_tid != tid || c.r_multi)
                    && !Self::synced(tid, c.r_tid, c.r_ws, warp_syncs)
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
            } else if c.r_tid != NONE && c.r_ep == epoch && c.r_tid != tid {
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
