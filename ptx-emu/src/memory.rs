//! Device global memory: allocations at 256-byte aligned addresses with unmapped gaps between them,
//! each with a per-byte "written" bit for initcheck.

use crate::error::EmuError;

/// First device address handed out.
pub const GLOBAL_BASE: u64 = 0x0000_0001_0000_0000;
/// Unmapped bytes left after every allocation.
pub const GAP: u64 = 4096;

pub struct Allocation {
    pub base: u64,
    pub size: u64,
    pub data: Vec<u8>,
    /// One bit per byte: 1 = written.
    pub init: Vec<u64>,
}

impl Allocation {
    #[inline]
    pub fn is_init(&self, off: u64, len: u64) -> bool {
        (off..off + len).all(|i| (self.init[(i / 64) as usize] >> (i % 64)) & 1 == 1)
    }
    #[inline]
    pub fn mark_init(&mut self, off: u64, len: u64) {
        for i in off..off + len {
            self.init[(i / 64) as usize] |= 1 << (i % 64);
        }
    }
}

#[derive(Default)]
pub struct GlobalMem {
    /// Sorted by base.
    pub allocs: Vec<Allocation>,
    next: u64,
    last: usize,
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
        self.next = (base + size + GAP).div_ceil(256) * 256;
        self.allocs.push(Allocation {
            base,
            size,
            data: vec![0; size as usize],
            init: vec![0; (size as usize).div_ceil(64)],
        });
        Ok(base)
    }

    pub fn free(&mut self, addr: u64) -> Result<(), EmuError> {
        match self.allocs.binary_search_by_key(&addr, |a| a.base) {
            Ok(i) => {
                self.allocs.remove(i);
                self.last = 0;
                Ok(())
            }
            Err(_) => Err(EmuError::BadAddress {
                addr,
                len: 0,
                msg: "free of an address that is not an allocation".into(),
            }),
        }
    }

    /// The allocation holding [addr, addr+len), as (index, offset).
    #[inline]
    pub fn find(&mut self, addr: u64, len: u64) -> Option<(usize, u64)> {
        if let Some(a) = self.allocs.get(self.last) {
            if addr >= a.base && addr + len <= a.base + a.size {
                return Some((self.last, addr - a.base));
            }
        }
        let i = match self.allocs.binary_search_by_key(&addr, |a| a.base) {
            Ok(i) => i,
            Err(0) => return None,
            Err(i) => i - 1,
        };
        let a = &self.allocs[i];
        if addr >= a.base && addr.checked_add(len)? <= a.base + a.size {
            self.last = i;
            Some((i, addr - a.base))
        } else {
            None
        }
    }

    /// Host -> device copy; marks the bytes written.
    pub fn write(&mut self, addr: u64, data: &[u8]) -> Result<(), EmuError> {
        let len = data.len() as u64;
        let (i, off) = self.find(addr, len).ok_or_else(|| EmuError::BadAddress {
            addr,
            len: data.len(),
            msg: "write outside any allocation".into(),
        })?;
        let a = &mut self.allocs[i];
        a.data[off as usize..(off + len) as usize].copy_from_slice(data);
        a.mark_init(off, len);
        Ok(())
    }

    /// Device -> host copy.
    pub fn read(&mut self, addr: u64, out: &mut [u8]) -> Result<(), EmuError> {
        let len = out.len() as u64;
        let (i, off) = self.find(addr, len).ok_or_else(|| EmuError::BadAddress {
            addr,
            len: out.len(),
            msg: "read outside any allocation".into(),
        })?;
        out.copy_from_slice(&self.allocs[i].data[off as usize..(off + len) as usize]);
        Ok(())
    }
}
