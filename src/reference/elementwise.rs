//! The row-wise small ops: elementwise add, convert (copy and cast) and the embedding gather, on
//! strided `(rows, d)` tensors laid out as the ops take them ([`AddShape`], [`ConvertShape`],
//! [`EmbeddingShape`]: each buffer holds exactly its span, [`crate::strided_span`]). Each writes into
//! `out` and leaves the elements between its rows as they were, so a test compares whole buffers.
//!
//! | op | per element | matches |
//! |---|---|---|
//! | [`add`] | `round_T(f32(a) + f32(b))` | PyTorch's `a + b` (f32 opmath for f16/bf16, one rounding); the kernel bit for bit |
//! | [`convert`] | the same dtype: the bits; else `round_Out(f32(x))`, nearest even | `x.to(dtype)`; the kernel bit for bit |
//! | [`embedding`] | `table[ids[t]]`, or zeros and status 1 for an id outside `[0, vocab)` | `F.embedding` on valid ids; the kernel bit for bit |

use crate::dtype::Elem;
use crate::error::{Error, Result};
use crate::shapes::{strided_span, AddShape, ConvertShape, EmbeddingShape};

/// `len` is exactly the span of `rows` rows of `d` at `stride`; for an output, `stride ≥ d` too.
fn check_strided(
    op: &'static str,
    tensor: &'static str,
    len: usize,
    (rows, d, stride): (usize, usize, usize),
    output: bool,
) -> Result<()> {
    if output && rows > 1 && d > 0 && stride < d {
        return Err(Error::InvalidShape {
            op,
            reason: format!("{tensor}'s row stride {stride} is under its {d} elements per row"),
        });
    }
    let span = strided_span(rows, d, stride).ok_or_else(|| Error::SizeOverflow {
        op,
        what: format!("{tensor}: {rows} rows of {d} at row stride {stride}"),
    })?;
    if len != span {
        return Err(Error::ShapeMismatch {
            op,
            tensor,
            expected: span,
            actual: len,
        });
    }
    Ok(())
}

/// Calls `f(r, j)` for every element of a `(rows, d)` tensor, row by row.
fn each(rows: usize, d: usize, mut f: impl FnMut(usize, usize)) {
    for r in 0..rows {
        for j in 0..d {
            f(r, j);
        }
    }
}

/// `out ← a + b` (see the module docs).
///
/// # Errors
/// `ShapeMismatch` unless each buffer holds exactly its span; `InvalidShape` for an `out` row stride under
/// `d` (more than one row); `SizeOverflow`.
pub fn add<T: Elem>(a: &[T], b: &[T], out: &mut [T], shape: AddShape) -> Result<()> {
    const OP: &str = "add";
    let AddShape { rows, d, .. } = shape;
    check_strided(OP, "a", a.len(), (rows, d, shape.a_row_stride), false)?;
    check_strided(OP, "b", b.len(), (rows, d, shape.b_row_stride), false)?;
    check_strided(OP, "out", out.len(), (rows, d, shape.out_row_stride), true)?;
    each(rows, d, |r, j| {
        let (x, y) = (a[r * shape.a_row_stride + j], b[r * shape.b_row_stride + j]);
        out[r * shape.out_row_stride + j] = T::from_f32(x.to_f32() + y.to_f32());
    });
    Ok(())
}

/// One element of [`convert`]: the bits for the same dtype, else f32 then round to nearest even.
pub fn convert_elem<In: Elem, Out: Elem>(x: In) -> Out {
    if In::DTYPE == Out::DTYPE {
        bytemuck::cast(x) // same dtype, same size
    } else {
        Out::from_f32(x.to_f32())
    }
}

/// `out ← x` converted to `Out` (see the module docs).
///
/// # Errors
/// As [`add`], for `x` and `out`.
pub fn convert<In: Elem, Out: Elem>(x: &[In], out: &mut [Out], shape: ConvertShape) -> Result<()> {
    const OP: &str = "convert";
    let ConvertShape { rows, d, .. } = shape;
    check_strided(OP, "x", x.len(), (rows, d, shape.x_row_stride), false)?;
    check_strided(OP, "out", out.len(), (rows, d, shape.out_row_stride), true)?;
    each(rows, d, |r, j| {
        out[r * shape.out_row_stride + j] = convert_elem(x[r * shape.x_row_stride + j]);
    });
    Ok(())
}

/// `out[t] ← table[ids[t]]`, or zeros for an id outside `[0, vocab)`; returns the status per token (0
/// valid, 1 out of range).
///
/// # Errors
/// `ShapeMismatch` unless `ids` holds `tokens` ids and `table`, `out` exactly their spans;
/// `InvalidShape` for an `out` row stride under `d`; `SizeOverflow`.
pub fn embedding<T: Elem>(table: &[T], ids: &[i32], out: &mut [T], shape: EmbeddingShape) -> Result<Vec<i32>> {
    const OP: &str = "embedding";
    let EmbeddingShape { tokens, d, vocab, .. } = shape;
    check_strided(OP, "table", table.len(), (vocab, d, shape.table_row_stride), false)?;
    check_strided(OP, "out", out.len(), (tokens, d, shape.out_row_stride), true)?;
    crate::reference::check_len(OP, "ids", ids.len(), &[tokens])?;
    let mut status = vec![0i32; tokens];
    for (t, &id) in ids.iter().enumerate() {
        let row = usize::try_from(id).ok().filter(|&i| i < vocab);
        status[t] = i32::from(row.is_none());
        for j in 0..d {
            out[t * shape.out_row_stride + j] = match row {
                Some(i) => table[i * shape.table_row_stride + j],
                None => T::from_f32(0.0),
            };
        }
    }
    Ok(status)
}
