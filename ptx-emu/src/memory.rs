//! Device global memory: allocations at 256-byte aligned addresses with unmapped gaps between them,
//! each with a per-byte "written" bit for initcheck. Storage is words of relaxed atomics, so blocks can
//! run on several host threads at once; `atom`/`red` are compare-exchange loops on the containing word.
//!
//! Storage is reserved lazily, in pages of [`PAGE_BYTES`]: a page is materialized (host memory taken)
//! the first time something writes it; until then it reads as zero bytes that count as never written
//! (or, for an allocation made with `zeroed`, as written zeros). The sum of all allocation sizes is
//! capped by the device's memory limit (`Options::memory_limit`).

use std::sync::atomic::{AtomicU64, Ordering::Relaxed};
use std::sync::OnceLock;

use crate::error::EmuError;

/// First device address handed out.
pub const GLOBAL_BASE: u64 = 0x0000_0001_0000_0000;
/// Unmapped bytes left after every allocation.
pub const GAP: u64 = 4096;
/// Bytes of one lazily materialized page of storage.
pub const PAGE_BYTES: u64 = 1 << 16;
const PAGE_WORDS: usize = (PAGE_BYTES / 8) as usize;
/// A page: PAGE_WORDS data words, then PAGE_WORDS / 8 words of initcheck bits (1 = written).
const PAGE_LEN: usize = PAGE_WORDS + PAGE_WORDS / 8;

pub struct Allocation {
    pub base: u64,
    pub size: u64,
    /// Bytes of pages that were never materialized count as written (device-side zero fill).
    zeroed: bool,
    pages: Box<[OnceLock<Box<[AtomicU64]>>]>,
}

fn byte_mask(lo: usize, hi: usize) -> u64 {
    // bytes lo..hi (exclusive) of a word
    let bits = |n: usize| if n >= 8 { u64::MAX } else { (1u64 << (8 * n)) - 1 };
    bits(hi) & !bits(lo)
}

impl Allocation {
    fn new(base: u64, size: u64, zeroed: bool) -> Result<Self, EmuError> {
        let n = size.div_ceil(PAGE_BYTES) as usize;
        let mut pages: Vec<OnceLock<Box<[AtomicU64]>>> = Vec::new();
        pages.try_reserve_exact(n).map_err(|_| EmuError::OutOfMemory {
            what: "the page table of a device allocation".into(),
            bytes: size,
            limit: size,
        })?;
        pages.resize_with(n, OnceLock::new);
        Ok(Allocation {
            base,
            size,
            zeroed,
            pages: pages.into_boxed_slice(),
        })
    }

    /// The page holding word `word`, if it was materialized.
    #[inline]
    fn page(&self, word: usize) -> Option<&[AtomicU64]> {
        self.pages.get(word / PAGE_WORDS)?.get().map(|p| &p[..])
    }

    /// The page holding word `word`, materialized on first use.
    #[inline]
    fn page_mut(&self, word: usize) -> &[AtomicU64] {
        let init = if self.zeroed { u64::MAX } else { 0 };
        self.pages[word / PAGE_WORDS].get_or_init(|| {
            (0..PAGE_LEN)
                .map(|i| AtomicU64::new(if i < PAGE_WORDS { 0 } else { init }))
                .collect()
        })
    }

    #[inline]
    fn load(&self, word: usize) -> u64 {
        self.page(word).map_or(0, |p| p[word % PAGE_WORDS].load(Relaxed))
    }

    #[inline]
    fn word(&self, word: usize) -> &AtomicU64 {
        &self.page_mut(word)[word % PAGE_WORDS]
    }

    /// The initcheck bits of byte `i` (its word of 64 bits, or the value an absent page implies).
    #[inline]
    fn init_bits(&self, i: u64) -> u64 {
        let word = (i / 8) as usize;
        match self.page(word) {
            Some(p) => p[PAGE_WORDS + (word % PAGE_WORDS) / 8].load(Relaxed),
            None if self.zeroed => u64::MAX,
            None => 0,
        }
    }

    /// Copies bytes [off, off + out.len()) out. The caller checked the range.
    #[inline]
    pub fn read(&self, off: usize, out: &mut [u8]) {
        let mut i = 0;
        while i < out.len() {
            let p = off + i;
            let w = self.load(p / 8).to_le_bytes();
            let lo = p % 8;
            let n = (8 - lo).min(out.len() - i);
            out[i..i + n].copy_from_slice(&w[lo..lo + n]);
            i += n;
        }
    }

    /// Writes bytes at `off` (each word updated atomically, so other bytes of a word are never lost).
    #[inline]
    pub fn write(&self, off: usize, data: &[u8]) {
        let mut i = 0;
        while i < data.len() {
            let p = off + i;
            let lo = p % 8;
            let n = (8 - lo).min(data.len() - i);
            let mut b = [0u8; 8];
            b[lo..lo + n].copy_from_slice(&data[i..i + n]);
            let v = u64::from_le_bytes(b);
            let w = self.word(p / 8);
            if n == 8 {
                w.store(v, Relaxed);
            } else {
                let m = byte_mask(lo, lo + n);
                let mut cur = w.load(Relaxed);
                while let Err(x) = w.compare_exchange_weak(cur, (cur & !m) | v, Relaxed, Relaxed) {
                    cur = x;
                }
            }
            i += n;
        }
    }

    /// Atomic read-modify-write of `len` (1..=8, naturally aligned) bytes at `off`; returns the old value.
    pub fn rmw(&self, off: usize, len: usize, f: impl Fn(u64) -> u64) -> u64 {
        let lo = off % 8;
        let m = byte_mask(lo, lo + len);
        let w = self.word(off / 8);
        let mut cur = w.load(Relaxed);
        loop {
            let old = (cur & m) >> (8 * lo);
            let new = ((f(old) << (8 * lo)) & m) | (cur & !m);
            match w.compare_exchange_weak(cur, new, Relaxed, Relaxed) {
                Ok(_) => return old,
                Err(x) => cur = x,
            }
        }
    }

    /// Were all bytes [off, off + len) written?
    #[inline]
    pub fn is_init(&self, off: u64, len: u64) -> bool {
        (off..off + len).all(|i| (self.init_bits(i) >> (i % 64)) & 1 == 1)
    }

    /// Calls `f(word, mask)` for each initcheck word the bytes [off, off + len) have bits in (`word` is the
    /// data word of the first such byte), with the mask of their bits.
    #[inline]
    fn init_words(off: u64, len: u64, mut f: impl FnMut(usize, u64)) {
        let mut i = off;
        while i < off + len {
            let lo = i % 64;
            let n = (64 - lo).min(off + len - i);
            f(
                (i / 8) as usize,
                if n == 64 { u64::MAX } else { ((1u64 << n) - 1) << lo },
            );
            i += n;
        }
    }

    /// Marks bytes [off, off + len) written.
    #[inline]
    pub fn mark_init(&self, off: u64, len: u64) {
        Self::init_words(off, len, |word, m| {
            let cell = &self.page_mut(word)[PAGE_WORDS + (word % PAGE_WORDS) / 8];
            if cell.load(Relaxed) & m != m {
                cell.fetch_or(m, Relaxed);
            }
        });
    }

    /// Marks bytes [off, off + len) never written.
    fn clear_init(&self, off: u64, len: u64) {
        Self::init_words(off, len, |word, m| {
            // An absent page of a plain allocation is never written already.
            if self.zeroed || self.page(word).is_some() {
                self.page_mut(word)[PAGE_WORDS + (word % PAGE_WORDS) / 8].fetch_and(!m, Relaxed);
            }
        });
    }

    /// Host memory this allocation holds now (materialized pages).
    pub fn resident_bytes(&self) -> u64 {
        self.pages.iter().filter(|p| p.get().is_some()).count() as u64 * (PAGE_LEN as u64 * 8)
    }
}

/// Default [`GlobalMem`] limit: 4 GiB of device memory.
pub const DEFAULT_MEMORY_LIMIT: u64 = 4 << 30;

pub struct GlobalMem {
    /// Sorted by base.
    pub allocs: Vec<Allocation>,
    next: u64,
    /// Sum of the sizes of live allocations.
    in_use: u64,
    /// Most bytes that may be allocated at once.
    limit: u64,
}

impl Default for GlobalMem {
    fn default() -> Self {
        GlobalMem::new(DEFAULT_MEMORY_LIMIT)
    }
}

impl GlobalMem {
    /// Empty memory that hands out at most `limit` bytes at once.
    pub fn new(limit: u64) -> Self {
        GlobalMem {
            allocs: Vec::new(),
            next: GLOBAL_BASE,
            in_use: 0,
            limit,
        }
    }

    /// Bytes allocated now (sum of the sizes of live allocations).
    pub fn in_use(&self) -> u64 {
        self.in_use
    }

    /// The device's memory limit.
    pub fn limit(&self) -> u64 {
        self.limit
    }

    /// Allocates `bytes` (never written, for initcheck). Storage is taken lazily, page by page.
    pub fn alloc(&mut self, bytes: usize) -> Result<u64, EmuError> {
        self.alloc_with(bytes, false)
    }

    /// Allocates `bytes` that read as written zeros (`cudaMalloc` + `cudaMemset(0)`), lazily.
    pub fn alloc_zeroed(&mut self, bytes: usize) -> Result<u64, EmuError> {
        self.alloc_with(bytes, true)
    }

    fn alloc_with(&mut self, bytes: usize, zeroed: bool) -> Result<u64, EmuError> {
        let size = (bytes as u64).max(1);
        let oom = || EmuError::OutOfMemory {
            what: format!(
                "an allocation of {bytes} bytes (with {} bytes already allocated)",
                self.in_use
            ),
            bytes: bytes as u64,
            limit: self.limit,
        };
        if self.in_use.checked_add(size).is_none_or(|t| t > self.limit) {
            return Err(oom());
        }
        let base = self.next;
        let next = base
            .checked_add(size)
            .and_then(|e| e.checked_add(GAP + 255))
            .map(|e| e / 256 * 256)
            .ok_or_else(oom)?;
        self.allocs.try_reserve(1).map_err(|_| oom())?;
        let a = Allocation::new(base, size, zeroed)?;
        self.next = next;
        self.in_use += size;
        self.allocs.push(a);
        Ok(base)
    }

    pub fn free(&mut self, addr: u64) -> Result<(), EmuError> {
        match self.allocs.binary_search_by_key(&addr, |a| a.base) {
            Ok(i) => {
                let a = self.allocs.remove(i);
                self.in_use -= a.size;
                Ok(())
            }
            Err(_) => Err(EmuError::BadAddress {
                addr,
                len: 0,
                msg: "free of an address that is not an allocation".into(),
            }),
        }
    }

    /// The allocation holding [addr, addr+len), as (index, offset); `cache` remembers the last hit.
    #[inline]
    pub fn find(&self, cache: &mut usize, addr: u64, len: u64) -> Option<(usize, u64)> {
        if let Some(a) = self.allocs.get(*cache) {
            if addr >= a.base && addr.checked_add(len)? <= a.base + a.size {
                return Some((*cache, addr - a.base));
            }
        }
        let i = match self.allocs.binary_search_by_key(&addr, |a| a.base) {
            Ok(i) => i,
            Err(0) => return None,
            Err(i) => i - 1,
        };
        let a = &self.allocs[i];
        if addr >= a.base && addr.checked_add(len)? <= a.base + a.size {
            *cache = i;
            Some((i, addr - a.base))
        } else {
            None
        }
    }

    /// Host -> device copy; marks the bytes written.
    pub fn write(&mut self, addr: u64, data: &[u8]) -> Result<(), EmuError> {
        let len = data.len() as u64;
        let (i, off) = self.find(&mut 0, addr, len).ok_or_else(|| EmuError::BadAddress {
            addr,
            len: data.len(),
            msg: "write outside any allocation".into(),
        })?;
        let a = &self.allocs[i];
        a.write(off as usize, data);
        a.mark_init(off, len);
        Ok(())
    }

    /// Device -> device copy (`cuMemcpyDtoD`): the bytes and their initcheck bits, so bytes never
    /// written at the source stay never written at the destination. Both ranges lie inside allocations
    /// and do not overlap.
    pub fn copy(&mut self, dst: u64, src: u64, len: usize) -> Result<(), EmuError> {
        let outside = |addr: u64, what: &str| EmuError::BadAddress {
            addr,
            len,
            msg: format!("copy {what} outside any allocation"),
        };
        let (si, soff) = self
            .find(&mut 0, src, len as u64)
            .ok_or_else(|| outside(src, "source"))?;
        let (di, doff) = self
            .find(&mut 0, dst, len as u64)
            .ok_or_else(|| outside(dst, "destination"))?;
        if len > 0 && src < dst + len as u64 && dst < src + len as u64 {
            return Err(EmuError::BadAddress {
                addr: dst,
                len,
                msg: format!("copy destination overlaps its source at {src:#x}"),
            });
        }
        let mut data = vec![0u8; len];
        self.allocs[si].read(soff as usize, &mut data);
        let (from, to) = (&self.allocs[si], &self.allocs[di]);
        to.write(doff as usize, &data);
        // The initcheck bits, run by run.
        let mut i = 0u64;
        while i < len as u64 {
            let written = from.is_init(soff + i, 1);
            let mut j = i + 1;
            while j < len as u64 && from.is_init(soff + j, 1) == written {
                j += 1;
            }
            if written {
                to.mark_init(doff + i, j - i);
            } else {
                to.clear_init(doff + i, j - i);
            }
            i = j;
        }
        Ok(())
    }

    /// Device -> host copy.
    pub fn read(&mut self, addr: u64, out: &mut [u8]) -> Result<(), EmuError> {
        let len = out.len() as u64;
        let (i, off) = self.find(&mut 0, addr, len).ok_or_else(|| EmuError::BadAddress {
            addr,
            len: out.len(),
            msg: "read outside any allocation".into(),
        })?;
        self.allocs[i].read(off as usize, out);
        Ok(())
    }
}
