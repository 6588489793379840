//! Precondition checks shared by the ops. Each returns the `Error` a user can act on.

use crate::backend::{Backend, DeviceSlice, DeviceSliceMut};
use crate::error::{Error, Result};

/// `len == expected`, where `expected` is the product of `dims` (checked for overflow).
pub fn check_len(op: &'static str, tensor: &'static str, len: usize, dims: &[usize]) -> Result<()> {
    let expected = checked_product(op, tensor, dims)?;
    if len != expected {
        return Err(Error::ShapeMismatch {
            op,
            tensor,
            expected,
            actual: len,
        });
    }
    Ok(())
}

/// The product of `dims`, or `SizeOverflow`.
pub fn checked_product(op: &'static str, what: &str, dims: &[usize]) -> Result<usize> {
    dims.iter()
        .try_fold(1usize, |acc, &d| acc.checked_mul(d))
        .ok_or_else(|| Error::SizeOverflow {
            op,
            what: format!("{what}: {dims:?} overflows usize"),
        })
}

/// `v > 0`, else `InvalidShape` naming the dimension.
pub fn check_positive(op: &'static str, name: &str, v: usize) -> Result<()> {
    if v == 0 {
        return Err(Error::InvalidShape {
            op,
            reason: format!("{name} must be > 0"),
        });
    }
    Ok(())
}

/// `v` as an `i32` kernel field, else `SizeOverflow`.
pub fn to_i32(op: &'static str, name: &str, v: usize) -> Result<i32> {
    i32::try_from(v).map_err(|_| Error::SizeOverflow {
        op,
        what: format!("{name} = {v} does not fit in i32"),
    })
}

/// `v` as an `i64` kernel field, else `SizeOverflow`.
pub fn to_i64(op: &'static str, name: &str, v: usize) -> Result<i64> {
    i64::try_from(v).map_err(|_| Error::SizeOverflow {
        op,
        what: format!("{name} = {v} does not fit in i64"),
    })
}

/// `addr` is a multiple of `align`, else `Misaligned`.
pub fn check_align(op: &'static str, tensor: &'static str, addr: u64, align: usize) -> Result<()> {
    if addr % align as u64 != 0 {
        return Err(Error::Misaligned {
            op,
            tensor,
            addr,
            align,
        });
    }
    Ok(())
}

/// A finite, positive scalar, else `InvalidArgument`.
pub fn check_finite_positive(op: &'static str, name: &str, v: f32) -> Result<()> {
    if !(v.is_finite() && v > 0.0) {
        return Err(Error::InvalidArgument {
            op,
            reason: format!("{name} must be finite and > 0, got {v}"),
        });
    }
    Ok(())
}

/// A finite scalar (any sign, zero allowed), else `InvalidArgument`.
pub fn check_finite(op: &'static str, name: &str, v: f32) -> Result<()> {
    if !v.is_finite() {
        return Err(Error::InvalidArgument {
            op,
            reason: format!("{name} must be finite, got {v}"),
        });
    }
    Ok(())
}

/// `Aliasing` when the output `out` (`[out_addr, out_addr + out_bytes)`) overlaps the tensor `other`.
pub fn check_no_overlap(
    op: &'static str,
    out: (&'static str, u64, usize),
    other: (&'static str, u64, usize),
) -> Result<()> {
    if overlaps(out.1, out.2, other.1, other.2) {
        return Err(Error::Aliasing {
            op,
            a: out.0,
            b: other.0,
        });
    }
    Ok(())
}

/// The byte ranges `[a, a + a_bytes)` and `[b, b + b_bytes)` overlap.
pub fn overlaps(a: u64, a_bytes: usize, b: u64, b_bytes: usize) -> bool {
    a_bytes > 0 && b_bytes > 0 && a < b + b_bytes as u64 && b < a + a_bytes as u64
}

/// Takes a buffer's device address after checking its length against `dims` and its alignment to its
/// element size: the common first step of every op for every tensor.
pub fn addr_of<'a, T, B: Backend, S: DeviceSlice<T, B> + ?Sized>(
    op: &'static str,
    tensor: &'static str,
    buf: &'a S,
    backend: &'a B,
    dims: &[usize],
) -> Result<(u64, B::Guard<'a>)> {
    check_len(op, tensor, buf.len(), dims)?;
    let (addr, guard) = buf.device_addr(backend).map_err(|e| match e {
        Error::ContextMismatch { .. } => Error::ContextMismatch { op, tensor },
        other => other,
    })?;
    check_align(op, tensor, addr, std::mem::size_of::<T>())?;
    Ok((addr, guard))
}

/// [`addr_of`] for a buffer the op writes.
pub fn addr_of_mut<'a, T, B: Backend, S: DeviceSliceMut<T, B> + ?Sized>(
    op: &'static str,
    tensor: &'static str,
    buf: &'a mut S,
    backend: &'a B,
    dims: &[usize],
) -> Result<(u64, B::Guard<'a>)> {
    check_len(op, tensor, buf.len(), dims)?;
    let (addr, guard) = buf.device_addr_mut(backend).map_err(|e| match e {
        Error::ContextMismatch { .. } => Error::ContextMismatch { op, tensor },
        other => other,
    })?;
    check_align(op, tensor, addr, std::mem::size_of::<T>())?;
    Ok((addr, guard))
}
