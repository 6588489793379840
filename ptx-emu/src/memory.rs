//! Device global memory: allocations at 256-byte aligned addresses with unmapped gaps between them,
//! each with a per-byte "written" bit for initcheck. Storage is words of relaxed atomics, so blocks can
//! run on several host threads at once; `atom`/`red` are compare-exchange loops on the containing word.

use std::sync::atomic::{AtomicU64, Ordering::Relaxed};

use crate::error::EmuError;

/// First device address handed out.
pub const GLOBAL_BASE: u64 = 0x0000_0001_0000_0000;
/// Unmapped bytes left after every allocation.
pub const GAP: u64 = 4096;

pub struct Allocation {
    pub base: u64,
    pub size: u64,
    words: Box<[AtomicU64]>,
    /// One bit per byte: 1 = written.
    init: Box<[AtomicU64]>,
}

fn byte_mask(lo: usize, hi: usize) -> u64 {
    // bytes lo..hi (exclusive) of a word
    let bits = |n: usize| if n >= 8 { u64::MAX } else { (1u64 << (8 * n)) - 1 };
    bits(hi) & !bits(lo)
}

impl Allocation {
    fn new(base: u64, size: u64) -> Result<Self, EmuError> {
        let zeroed = |n: usize| -> Result<Box<[AtomicU64]>, EmuError> {
            let mut v: Vec<AtomicU64> = Vec::new();
            v.try_reserve_exact(n)
                .map_err(|_| EmuError::Usage(format!("cannot allocate {size} bytes of device memory on the host")))?;
            v.resize_with(n, || AtomicU64::new(0));
            Ok(v.into_boxed_slice())
        };
        Ok(Allocation {
            base,
            size,
            words: zeroed((size as usize).div_ceil(8))?,
            init: zeroed((size as usize).div_ceil(64))?,
        })
    }

    /// Copies bytes [off, off + out.len()) out.
    #[inline]
    pub fn read(&self, off: usize, out: &mut [u8]) {
        let mut i = 0;
        while i < out.len() {
            let p = off + i;
            let w = self.words[p / 8].load(Relaxed).to_le_bytes();
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
            let w = &self.words[p / 8];
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
        let w = &self.words[off / 8];
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

    #[inline]
    pub fn is_init(&self, off: u64, len: u64) -> bool {
        (off..off + len).all(|i| (self.init[(i / 64) as usize].load(Relaxed) >> (i % 64)) & 1 == 1)
    }

    #[inline]
    pub fn mark_init(&self, off: u64, len: u64) {
        let mut i = off;
        while i < off + len {
            let word = i / 64;
            let lo = i % 64;
            let n = (64 - lo).min(off + len - i);
            let m = if n == 64 { u64::MAX } else { ((1u64 << n) - 1) << lo };
            let cell = &self.init[word as usize];
            if cell.load(Relaxed) & m != m {
                cell.fetch_or(m, Relaxed);
            }
            i += n;
        }
    }
}

#[derive(Default)]
pub struct GlobalMem {
    /// Sorted by base.
    pub allocs: Vec<Allocation>,
    next: u64,
}

impl GlobalMem {
    pub fn alloc(&mut self, bytes: usize) -> Result<u64, EmuError> {
        if self.next == 0 {
            self.next = GLOBAL_BASE;
        }
        let size = bytes.max(1) as u64;
        if size > (1u64 << 40) {
            return Err(EmuError::Usage(format!("allocation of {bytes} bytes is too large")));
        }
        let base = self.next;
        let a = Allocation::new(base, size)?;
        self.next = (base + size + GAP).div_ceil(256) * 256;
        self.allocs.push(a);
        Ok(base)
    }

    pub fn free(&mut self, addr: u64) -> Result<(), EmuError> {
        match self.allocs.binary_search_by_key(&addr, |a| a.base) {
            Ok(i) => {
                self.allocs.remove(i);
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
