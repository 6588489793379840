//! globalrace: global-memory races between the blocks of one launch (compute-sanitizer has no such
//! check). Blocks of a launch are unordered, so within one launch it is a race when a block writes
//! (plainly: `st`, `cp.async` destinations are shared) a byte another block writes, reads or accesses
//! atomically. Atomics never race with each other, nor do strong accesses (`ld`/`st` with
//! `.volatile`, `.relaxed`, `.acquire`, `.release`), which count as atomic here; nor a plain read of
//! a byte other blocks only access atomically (the first read of a `atomicCAS` loop, which the CAS
//! then validates).
//!
//! Each block records what it touched in a [`BlockAccess`] (bitmaps per 4 KiB page, and the first
//! thread and PTX line per 128-byte segment). When a block ends, its record is merged into the
//! launch's [`LaunchRaces`] in block order — blocks that finish early on another worker wait in a
//! queue — so the reports do not depend on the number of workers. The launch keeps, per byte
//! touched, the first block of each kind (write, read, atomic) or "several".

use std::collections::{BTreeMap, HashMap};

use crate::error::{CheckKind, CheckReport};

const PAGE: usize = 4096;
const SEG: usize = 128;
const WORDS: usize = PAGE / 64;
const SEGS: usize = PAGE / SEG;

/// What an access is, for the race rules.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Kind {
    Write = 0,
    Read = 1,
    /// An atomic or a strong (`.volatile`/`.relaxed`/`.acquire`/`.release`) access.
    Atomic = 2,
}

const KINDS: [Kind; 3] = [Kind::Write, Kind::Read, Kind::Atomic];

/// Does an access of kind `a` by one block race with one of kind `b` by another? When one of them is
/// a plain write.
fn conflicts(a: Kind, b: Kind) -> bool {
    a == Kind::Write || b == Kind::Write
}

struct BlockPage {
    bits: [[u64; WORDS]; 3],
    /// First (line, thread) per segment and kind; line 0: none.
    first: [[(u32, u32); SEGS]; 3],
}

/// The global bytes one block touched.
#[derive(Default)]
pub(crate) struct BlockAccess {
    pages: HashMap<u64, Box<BlockPage>>,
}

impl BlockAccess {
    pub fn record(&mut self, addr: u64, len: usize, kind: Kind, line: u32, tid: u32) {
        let k = kind as usize;
        let mut a = addr;
        let end = addr.saturating_add(len as u64);
        while a < end {
            let page = a / PAGE as u64;
            let p = self.pages.entry(page).or_insert_with(|| {
                Box::new(BlockPage {
                    bits: [[0; WORDS]; 3],
                    first: [[(0, 0); SEGS]; 3],
                })
            });
            let stop = end.min((page + 1) * PAGE as u64);
            let (lo, hi) = ((a % PAGE as u64) as usize, (stop - page * PAGE as u64) as usize);
            for b in lo..hi {
                p.bits[k][b / 64] |= 1 << (b % 64);
            }
            for s in lo / SEG..=(hi - 1) / SEG {
                if p.first[k][s].0 == 0 {
                    p.first[k][s] = (line.max(1), tid);
                }
            }
            a = stop;
        }
    }
}

const NONE: u32 = u32::MAX;
const SEVERAL: u32 = u32::MAX - 1;

struct LaunchPage {
    /// Per kind: the bytes earlier blocks touched so.
    touched: [[u64; WORDS]; 3],
    /// Per kind, per byte: the first block (linear index) that touched it so, or SEVERAL; lazily.
    owner: [Option<Box<[u32; PAGE]>>; 3],
    /// Per kind and segment: the first (block, line, thread).
    first: [[(u32, u32, u32); SEGS]; 3],
}

/// A conflict found while merging: this block's kind, the other kind, the byte in the page, its
/// owner of the other kind, and the first (block, line, thread) of the other kind in that segment.
type Conflict = (Kind, Kind, usize, u32, (u32, u32, u32));

/// The launch-wide record, and the reports found so far.
pub(crate) struct LaunchRaces {
    kernel: String,
    grid: [u32; 3],
    block: [u32; 3],
    pages: HashMap<u64, Box<LaunchPage>>,
    /// Blocks finished out of order, waiting for their turn.
    queue: BTreeMap<u64, BlockAccess>,
    next: u64,
    pub reports: Vec<CheckReport>,
    /// Reports are limited to one per (this block's line, other kind) pair.
    seen: std::collections::HashSet<(u32, u32, u8)>,
}

impl LaunchRaces {
    pub fn new(kernel: &str, grid: [u32; 3], block: [u32; 3]) -> Self {
        LaunchRaces {
            kernel: kernel.to_string(),
            grid,
            block,
            pages: HashMap::new(),
            queue: BTreeMap::new(),
            next: 0,
            reports: vec![],
            seen: Default::default(),
        }
    }

    fn ctaid(&self, lin: u64) -> [u32; 3] {
        let (gx, gy) = (self.grid[0] as u64, self.grid[1] as u64);
        [(lin % gx) as u32, ((lin / gx) % gy) as u32, (lin / (gx * gy)) as u32]
    }

    fn thread(&self, tid: u32) -> [u32; 3] {
        let (bx, by) = (self.block[0], self.block[1]);
        [tid % bx, (tid / bx) % by, tid / (bx * by)]
    }

    /// Block `lin` finished: merge it (and any queued successors) in block order.
    pub fn submit(&mut self, lin: u64, access: BlockAccess) {
        self.queue.insert(lin, access);
        while let Some(a) = self.queue.remove(&self.next) {
            let lin = self.next;
            self.merge(lin, a);
            self.next += 1;
        }
    }

    /// Merges whatever is still queued (blocks after one that never finished, on a fatal stop).
    pub fn finish(&mut self) {
        let queued = std::mem::take(&mut self.queue);
        for (lin, a) in queued {
            self.merge(lin, a);
        }
    }

    fn merge(&mut self, lin: u64, access: BlockAccess) {
        let me = lin as u32;
        let mut pages: Vec<(u64, Box<BlockPage>)> = access.pages.into_iter().collect();
        pages.sort_unstable_by_key(|p| p.0);
        for (page, bp) in pages {
            let lp = self.pages.entry(page).or_insert_with(|| {
                Box::new(LaunchPage {
                    touched: [[0; WORDS]; 3],
                    owner: [None, None, None],
                    first: [[(NONE, 0, 0); SEGS]; 3],
                })
            });
            // First every conflict with what earlier blocks did, then this block's record (so
            // that a block that reads and writes the same bytes does not race with itself).
            let mut found: Vec<Conflict> = vec![];
            for kind in KINDS {
                for other in KINDS.into_iter().filter(|&o| conflicts(kind, o)) {
                    let (mine, theirs) = (&bp.bits[kind as usize], &lp.touched[other as usize]);
                    if let Some(wi) = (0..WORDS).find(|&wi| mine[wi] & theirs[wi] != 0) {
                        let b = wi * 64 + (mine[wi] & theirs[wi]).trailing_zeros() as usize;
                        let owner = lp.owner[other as usize].as_ref().map_or(SEVERAL, |o| o[b]);
                        found.push((kind, other, b, owner, lp.first[other as usize][b / SEG]));
                    }
                }
            }
            for kind in KINDS {
                let k = kind as usize;
                if bp.bits[k].iter().all(|&w| w == 0) {
                    continue;
                }
                let own = lp.owner[k].get_or_insert_with(|| Box::new([NONE; PAGE]));
                for (wi, &word) in bp.bits[k].iter().enumerate() {
                    lp.touched[k][wi] |= word;
                    let mut w = word;
                    while w != 0 {
                        let b = wi * 64 + w.trailing_zeros() as usize;
                        w &= w - 1;
                        own[b] = if own[b] == NONE { me } else { SEVERAL };
                    }
                }
                for s in 0..SEGS {
                    if lp.first[k][s].0 == NONE && bp.first[k][s].0 != 0 {
                        lp.first[k][s] = (me, bp.first[k][s].0, bp.first[k][s].1);
                    }
                }
            }
            for (kind, other, b, owner, (ob, oline, otid)) in found {
                let (line, tid) = bp.first[kind as usize][b / SEG];
                if !self.seen.insert((line, other as u32, kind as u8)) || self.reports.len() >= 100 {
                    continue;
                }
                let addr = page * PAGE as u64 + b as u64;
                let who = if owner == SEVERAL {
                    "several other blocks".to_string()
                } else {
                    let c = self.ctaid(owner as u64);
                    format!("block ({},{},{})", c[0], c[1], c[2])
                };
                let whence = if ob != NONE && (owner == SEVERAL || ob == owner) && ob != me {
                    let t = self.thread(otid);
                    let c = self.ctaid(ob as u64);
                    format!(
                        " (first there: block ({},{},{}) thread ({},{},{}) at PTX line {oline})",
                        c[0], c[1], c[2], t[0], t[1], t[2]
                    )
                } else {
                    String::new()
                };
                let verb = |k: Kind| match k {
                    Kind::Write => "writes",
                    Kind::Read => "reads",
                    Kind::Atomic => "accesses atomically",
                };
                self.reports.push(CheckReport {
                    kind: CheckKind::Globalrace,
                    kernel: self.kernel.clone(),
                    block: self.ctaid(lin),
                    thread: self.thread(tid),
                    line,
                    address: Some(addr),
                    message: format!(
                        "global-memory race between blocks: this block {} global memory at {addr:#x} that {who} {}{whence}; \
                         blocks of one launch are unordered (use atomics, or split the work into two launches)",
                        verb(kind),
                        verb(other)
                    ),
                });
            }
        }
    }
}
