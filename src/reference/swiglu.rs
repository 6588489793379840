//! SwiGLU, the gated activation of LLaMA's feed-forward block, and the FFN hidden size rule.
//!
//! `gate, up, out: (rows, d)`; the packed input `gate_up: (rows, 2d)` holds `[gate | up]` per row (vLLM's
//! and FlashInfer's `silu_and_mul`, gate first).
//!
//! ```text
//! silu(g) = g / (1 + exp(-g))
//! out     = silu(gate) * up
//! ```
//!
//! Rounding points of [`swiglu`] (silu and the product in f64 here, in f32 by the kernel):
//!
//! | [`Rounding`] | output | matches |
//! |---|---|---|
//! | `MatchTorch` | `round_T(round_T(silu(g)) * u)` | Meta / HF: `F.silu(self.w1(x)) * self.w3(x)` in the storage dtype |
//! | `Once` | `round_T(silu(g) * u)` | fused kernels that keep silu(g) in f32 |

use crate::dtype::Elem;
use crate::error::{Error, Result};
use crate::reference::{check_len, check_positive, product, round_t};
use crate::shapes::{Rounding, SwigluShape};

const OP: &str = "swiglu";
const OP_PACKED: &str = "swiglu_packed";
const OP_FFN: &str = "ffn_hidden_dim";

/// `silu(g) = g / (1 + exp(-g))` in f64. Finite for every finite `g` (`exp` overflowing to +inf gives -0).
pub fn silu(g: f64) -> f64 {
    g / (1.0 + (-g).exp())
}

/// One output element at the rounding points of `rounding`.
fn swiglu_elem<T: Elem>(g: T, u: T, rounding: Rounding) -> T {
    let s = silu(g.to_f64());
    match rounding {
        Rounding::MatchTorch => round_t::<T>(round_t::<T>(s).to_f64() * u.to_f64()),
        Rounding::Once => round_t::<T>(s * u.to_f64()),
    }
}

fn validate_split(gate_len: usize, up_len: usize, shape: SwigluShape) -> Result<()> {
    check_len(OP, "gate", gate_len, &[shape.rows, shape.d])?;
    check_len(OP, "up", up_len, &[shape.rows, shape.d])
}

fn validate_packed(len: usize, shape: SwigluShape) -> Result<()> {
    check_len(OP_PACKED, "gate_up", len, &[shape.rows, 2, shape.d])
}

/// SwiGLU reference on separate `gate, up: (rows, d)` -> `(rows, d)`, rounded as `rounding` says.
///
/// # Errors
/// `ShapeMismatch` for a wrong `gate`/`up` length (zero sizes give an empty output).
pub fn swiglu<T: Elem>(gate: &[T], up: &[T], shape: SwigluShape, rounding: Rounding) -> Result<Vec<T>> {
    validate_split(gate.len(), up.len(), shape)?;
    Ok(gate
        .iter()
        .zip(up)
        .map(|(&g, &u)| swiglu_elem(g, u, rounding))
        .collect())
}

/// SwiGLU reference on packed `gate_up: (rows, 2d)` (`[gate | up]` per row) -> `(rows, d)`. Equal, bit
/// for bit, to [`swiglu`] on the two halves.
///
/// # Errors
/// `ShapeMismatch` unless `gate_up.len() == rows * 2d` (zero sizes give an empty output).
pub fn swiglu_packed<T: Elem>(gate_up: &[T], shape: SwigluShape, rounding: Rounding) -> Result<Vec<T>> {
    validate_packed(gate_up.len(), shape)?;
    let mut out = Vec::with_capacity(shape.rows * shape.d);
    for row in gate_up.chunks_exact((2 * shape.d).max(1)) {
        // row: (2d,) = [gate (d,) | up (d,)]
        let (gate, up) = row.split_at(shape.d);
        out.extend(gate.iter().zip(up).map(|(&g, &u)| swiglu_elem(g, u, rounding)));
    }
    Ok(out)
}

/// SwiGLU oracle: `silu(g) * u` in f64, no rounding.
///
/// # Errors
/// As [`swiglu`].
pub fn swiglu_f64<T: Elem>(gate: &[T], up: &[T], shape: SwigluShape) -> Result<Vec<f64>> {
    validate_split(gate.len(), up.len(), shape)?;
    Ok(gate
        .iter()
        .zip(up)
        .map(|(g, u)| silu(g.to_f64()) * u.to_f64())
        .collect())
}

/// SwiGLU oracle on the packed layout: `silu(g) * u` in f64, no rounding.
///
/// # Errors
/// As [`swiglu_packed`].
pub fn swiglu_packed_f64<T: Elem>(gate_up: &[T], shape: SwigluShape) -> Result<Vec<f64>> {
    validate_packed(gate_up.len(), shape)?;
    let mut out = Vec::with_capacity(shape.rows * shape.d);
    for row in gate_up.chunks_exact((2 * shape.d).max(1)) {
        let (gate, up) = row.split_at(shape.d);
        out.extend(gate.iter().zip(up).map(|(g, u)| silu(g.to_f64()) * u.to_f64()));
    }
    Ok(out)
}

/// The FFN hidden size of LLaMA's `FeedForward` (Meta's `model.py`), in Python's arithmetic:
///
/// ```text
/// hidden = 4 * dim
/// hidden = int(2 * hidden / 3)
/// if ffn_dim_multiplier is not None: hidden = int(ffn_dim_multiplier * hidden)
/// hidden = multiple_of * ceil(hidden / multiple_of)
/// ```
///
/// LLaMA 2 7B `(4096, 256, None)` -> 11008; LLaMA 3 8B `(4096, 1024, Some(1.3))` -> 14336; LLaMA 3 70B
/// `(8192, 4096, Some(1.3))` -> 28672.
///
/// The multiplier is read as the decimal a config file holds: the f32 is printed with the shortest
/// representation that round-trips (`1.3`) and parsed as an f64, Python's float, so `1.3_f32` means the
/// Python literal `1.3`, not `1.2999999523`.
///
/// # Errors
/// `InvalidShape` if `dim` or `multiple_of` is 0; `InvalidArgument` unless the multiplier is finite and
/// > 0; `SizeOverflow` if the size does not fit a `usize`.
pub fn ffn_hidden_dim(dim: usize, multiple_of: usize, ffn_dim_multiplier: Option<f32>) -> Result<usize> {
    check_positive(OP_FFN, &[("dim", dim), ("multiple_of", multiple_of)])?;
    let four_dim = product(OP_FFN, "4 * dim", &[4, dim])?;
    // int(2 * hidden / 3): Python's true division is an f64 division; both operands are exact below 2^53.
    let mut hidden = (2.0 * four_dim as f64 / 3.0).trunc();
    if let Some(m) = ffn_dim_multiplier {
        if !(m.is_finite() && m > 0.0) {
            return Err(Error::InvalidArgument {
                op: OP_FFN,
                reason: format!("ffn_dim_multiplier must be finite and > 0, got {m}"),
            });
        }
        let m: f64 = m.to_string().parse().unwrap_or(m as f64);
        hidden = (m * hidden).trunc();
    }
    if hidden >= usize::MAX as f64 {
        return Err(Error::SizeOverflow {
            op: OP_FFN,
            what: format!("ffn hidden size {hidden} does not fit usize"),
        });
    }
    let hidden = hidden as usize;
    hidden
        .div_ceil(multiple_of)
        .checked_mul(multiple_of)
        .ok_or_else(|| Error::SizeOverflow {
            op: OP_FFN,
            what: format!("{hidden} rounded up to a multiple of {multiple_of} overflows usize"),
        })
}
