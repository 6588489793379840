//! What the row-wise small ops (`add`, `convert`, `embedding`) share: strided tensor validation, the
//! 16-byte-path rule and the launch configuration of `cuda/include/rowwise.cuh`.

use crate::backend::{Backend, DeviceSlice, DeviceSliceMut, LaunchDims};
use crate::error::{Error, Result};
use crate::ops::validate;
use crate::raw::params::{LK_ROWWISE_THREADS, LK_ROWWISE_VEC};
use crate::shapes::strided_span;

/// Elements one block covers in a row.
pub(crate) const CHUNK: usize = (LK_ROWWISE_THREADS * LK_ROWWISE_VEC) as usize;
/// CUDA's limit on `gridDim.y` (the chunks of a row).
const MAX_GRID_Y: usize = 65535;

/// A strided `(rows, d)` tensor once checked: its address, row stride and the bytes it spans.
#[derive(Clone, Copy, Debug)]
pub(crate) struct Region {
    pub addr: u64,
    pub stride: usize,
    pub bytes: usize,
}

fn span(op: &'static str, tensor: &'static str, rows: usize, d: usize, stride: usize) -> Result<usize> {
    strided_span(rows, d, stride).ok_or_else(|| Error::SizeOverflow {
        op,
        what: format!("{tensor}: {rows} rows of {d} at row stride {stride} overflow usize"),
    })
}

/// An input of `rows` rows of `d` elements at `stride`: the buffer holds exactly the span.
pub(crate) fn input<'a, T, B: Backend>(
    op: &'static str,
    tensor: &'static str,
    buf: &'a impl DeviceSlice<T, B>,
    backend: &'a B,
    (rows, d, stride): (usize, usize, usize),
) -> Result<(Region, B::Guard<'a>)> {
    let len = span(op, tensor, rows, d, stride)?;
    let (addr, guard) = validate::addr_of(op, tensor, buf, backend, &[len])?;
    let bytes = len * std::mem::size_of::<T>(); // the length of an existing buffer
    Ok((Region { addr, stride, bytes }, guard))
}

/// An output: as [`input`], and rows may not overlap (`stride ≥ d` when `rows > 1`).
pub(crate) fn output<'a, T, B: Backend>(
    op: &'static str,
    tensor: &'static str,
    buf: &'a mut impl DeviceSliceMut<T, B>,
    backend: &'a B,
    (rows, d, stride): (usize, usize, usize),
) -> Result<(Region, B::Guard<'a>)> {
    if rows > 1 && d > 0 && stride < d {
        return Err(Error::InvalidShape {
            op,
            reason: format!("{tensor}'s row stride {stride} is under its {d} elements per row: rows would overlap"),
        });
    }
    let len = span(op, tensor, rows, d, stride)?;
    let (addr, guard) = validate::addr_of_mut(op, tensor, buf, backend, &[len])?;
    let bytes = len * std::mem::size_of::<T>();
    Ok((Region { addr, stride, bytes }, guard))
}

/// `Aliasing` when `out` overlaps `x` (by the byte ranges they span: conservative for interleaved
/// strided tensors), unless `same_ok` and both are the same elements (same address and stride: in place).
pub(crate) fn check_overlap(
    op: &'static str,
    (out_name, out): (&'static str, Region),
    (x_name, x): (&'static str, Region),
    same_ok: bool,
) -> Result<()> {
    if same_ok && out.addr == x.addr && out.stride == x.stride {
        return Ok(());
    }
    validate::check_no_overlap(op, (out_name, out.addr, out.bytes), (x_name, x.addr, x.bytes))
}

/// The 16-byte path is legal when every tensor starts 16-byte aligned and, with more than one row, every
/// row stride is a whole number of 16-byte words.
pub(crate) fn vectorizable(rows: usize, tensors: &[(Region, usize)]) -> bool {
    tensors
        .iter()
        .all(|(r, elem)| r.addr % 16 == 0 && (rows == 1 || (r.stride * elem) % 16 == 0))
}

/// Grid `(rows, chunks)` of `LK_ROWWISE_THREADS`-thread blocks (at least one chunk, so a row with
/// `d == 0` still runs its block: the embedding writes its status).
pub(crate) fn launch_config(op: &'static str, rows: usize, d: usize) -> Result<LaunchDims> {
    if d > i32::MAX as usize - CHUNK {
        return Err(Error::SizeOverflow {
            op,
            what: format!("d = {d} is over the kernel's limit {}", i32::MAX as usize - CHUNK),
        });
    }
    let chunks = d.div_ceil(CHUNK).max(1);
    if chunks > MAX_GRID_Y {
        return Err(Error::SizeOverflow {
            op,
            what: format!("d = {d} needs {chunks} chunks of {CHUNK}, over the grid limit {MAX_GRID_Y}"),
        });
    }
    Ok(LaunchDims {
        grid: [validate::to_i32(op, "rows", rows)? as u32, chunks as u32, 1],
        block: [LK_ROWWISE_THREADS, 1, 1],
        shared_bytes: 0,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn launch_config_covers_rows_and_chunks() {
        let d = launch_config("t", 3, CHUNK + 1).unwrap();
        assert_eq!((d.grid, d.block), ([3, 2, 1], [LK_ROWWISE_THREADS, 1, 1]));
        assert_eq!(launch_config("t", 5, 0).unwrap().grid, [5, 1, 1]);
        assert!(matches!(
            launch_config("t", 1, i32::MAX as usize),
            Err(Error::SizeOverflow { .. })
        ));
        assert!(matches!(
            launch_config("t", 1, CHUNK * 65536),
            Err(Error::SizeOverflow { .. })
        ));
        assert!(matches!(
            launch_config("t", 1 << 31, 8),
            Err(Error::SizeOverflow { .. })
        ));
    }

    #[test]
    fn vector_path_needs_aligned_starts_and_strides() {
        let r = |addr, stride| Region { addr, stride, bytes: 0 };
        assert!(vectorizable(2, &[(r(0, 8), 2), (r(32, 4), 4)]));
        assert!(!vectorizable(2, &[(r(0, 8), 2), (r(36, 4), 4)]));
        assert!(!vectorizable(2, &[(r(0, 9), 2)]));
        assert!(vectorizable(1, &[(r(0, 9), 2)]));
        assert!(vectorizable(3, &[(r(16, 0), 2)]), "stride 0 broadcasts one aligned row");
    }
}
