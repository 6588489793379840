//! Embedding gather: `out[t, :] = table[ids[t], :]`, the ids checked on the device.
//!
//! | | |
//! |---|---|
//! | dtypes | `f32`, `f16`, `bf16` table and output (same dtype); `i32` ids |
//! | layouts | `table: (vocab, d)`, `out: (tokens, d)`, each at its own row stride ([`EmbeddingShape`]); `ids, status: (tokens,)` contiguous |
//! | kernel | `cuda/embedding.cu` (`cuda/include/rowwise.cuh`): a 256-thread block per (token, 2048 elements), 8 elements per thread, 16-byte accesses when table and out and their row strides are 16-byte aligned |
//! | bad ids | an id outside `[0, vocab)` is never used as an index: its row of `out` is zeros and its `status` is 1 (0 for a valid id). [`embedding`] leaves `status` on the device (no synchronization: the engine checks it when it likes); [`embedding_checked`] reads it back and returns `Error::IdOutOfRange` |
//! | numerics | a copy of the table's bits |
//! | zero sizes | `tokens == 0`: a no-op; `d == 0` still writes `status` |
//! | limits | `tokens ≤ i32::MAX`, `vocab ≤ i32::MAX`; `d ≤ 65535 · 2048` |

use crate::backend::{Backend, DeviceSlice, DeviceSliceMut, DeviceValue, Kernel};
use crate::dtype::{DType, Elem};
use crate::error::{Error, Result};
use crate::ops::rowwise;
use crate::ops::validate;
use crate::raw::EmbeddingParams;
use crate::shapes::EmbeddingShape;

const OP: &str = "embedding";

/// The embedding entry points, one per dtype.
pub const KERNELS: &[Kernel<'static>] =
    kernels!["embedding" => "embedding_f32", "embedding" => "embedding_f16", "embedding" => "embedding_bf16"];

fn kernel_for(dtype: DType) -> Kernel<'static> {
    KERNELS[dtype.index()]
}

/// `out[t] ← table[ids[t]]` and `status[t] ← 0`, or, for an id outside `[0, vocab)`, zeros and
/// `status[t] ← 1` (see the module docs). Does not synchronize.
///
/// # Errors
/// `ShapeMismatch` unless `ids` and `status` hold `tokens` elements and `table` and `out` exactly their
/// spans ([`crate::strided_span`]); `InvalidShape` for an `out` row stride under `d`; `SizeOverflow` past
/// the limits; `Misaligned`; `Aliasing` when `out` overlaps `table`, or `status` overlaps `ids` (the
/// dtypes keep `out` from sharing memory with `ids` or `status` in safe code); `ContextMismatch`;
/// backend errors.
pub fn embedding<T, B>(
    backend: &B,
    table: &impl DeviceSlice<T, B>,
    ids: &impl DeviceSlice<i32, B>,
    out: &mut impl DeviceSliceMut<T, B>,
    status: &mut impl DeviceSliceMut<i32, B>,
    shape: EmbeddingShape,
) -> Result<()>
where
    T: Elem + DeviceValue,
    B: Backend,
{
    let EmbeddingShape { tokens, d, vocab, .. } = shape;
    validate::to_i32(OP, "vocab", vocab)?;
    let dims = rowwise::launch_config(OP, tokens, d)?;
    let (rt, _gt) = rowwise::input(OP, "table", table, backend, (vocab, d, shape.table_row_stride))?;
    let (ro, _go) = rowwise::output(OP, "out", out, backend, (tokens, d, shape.out_row_stride))?;
    let (ids_addr, _gi) = validate::addr_of(OP, "ids", ids, backend, &[tokens])?;
    let (status_addr, _gs) = validate::addr_of_mut(OP, "status", status, backend, &[tokens])?;
    rowwise::check_overlap(OP, ("out", ro), ("table", rt), false)?;
    validate::check_no_overlap(OP, ("status", status_addr, 4 * tokens), ("ids", ids_addr, 4 * tokens))?;
    if tokens == 0 {
        return Ok(());
    }
    let elem = std::mem::size_of::<T>();
    let params = EmbeddingParams {
        out: ro.addr as *mut std::ffi::c_void,
        table: rt.addr as *const std::ffi::c_void,
        ids: ids_addr as *const i32,
        status: status_addr as *mut i32,
        out_row_stride: validate::to_i64(OP, "out row stride", ro.stride)?,
        table_row_stride: validate::to_i64(OP, "table row stride", rt.stride)?,
        tokens: validate::to_i32(OP, "tokens", tokens)?,
        d: validate::to_i32(OP, "d", d)?,
        vocab: vocab as i32, // checked above
        // The table's rows are picked by id, not by token: its stride counts whatever the token count.
        vectorized: i32::from(
            rowwise::vectorizable(tokens, &[(ro, elem)]) && rowwise::vectorizable(vocab, &[(rt, elem)]),
        ),
    };
    backend.launch(kernel_for(T::DTYPE), dims, &params)
}

/// [`embedding`], then reads the status back (one synchronization) and reports bad ids.
///
/// # Errors
/// As [`embedding`]; `IdOutOfRange` with the count and the first position of ids outside `[0, vocab)`
/// (`out` is written all the same: zeros in their rows).
pub fn embedding_checked<T, B>(
    backend: &B,
    table: &impl DeviceSlice<T, B>,
    ids: &impl DeviceSlice<i32, B>,
    out: &mut impl DeviceSliceMut<T, B>,
    shape: EmbeddingShape,
) -> Result<()>
where
    T: Elem + DeviceValue,
    B: Backend,
{
    let mut status = backend.alloc_poisoned::<i32>(shape.tokens)?;
    embedding(backend, table, ids, out, &mut status, shape)?;
    if shape.tokens == 0 {
        return Ok(());
    }
    let status = backend.download(&status)?;
    let bad: Vec<usize> = status
        .iter()
        .enumerate()
        .filter(|(_, s)| **s != 0)
        .map(|(t, _)| t)
        .collect();
    match bad.first() {
        None => Ok(()),
        Some(&first) => Err(Error::IdOutOfRange {
            op: OP,
            count: bad.len(),
            first,
            vocab: shape.vocab,
        }),
    }
}
