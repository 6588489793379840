//! RMSNorm and fused residual-add + RMSNorm.
//!
//! For each row `x` of `x: (rows, hidden)` and `weight: (hidden,)`:
//!
//! ```text
//! r      = 1 / sqrt(mean_j(x_j^2) + eps)
//! y_j    = x_j * r * w_j
//! ```
//!
//! Rounding points of [`rms_norm`] (`r` itself is computed in f64 here, in f32 by the kernel):
//!
//! | [`Rounding`] | output | matches |
//! |---|---|---|
//! | `MatchTorch` | `round_T(round_T(x_j * r) * w_j)` | Meta / Hugging Face: `self._norm(x.float()).type_as(x) * self.weight` |
//! | `Once` | `round_T(x_j * r * w_j)` | vLLM-style kernels that multiply by the weight in f32 |
//!
//! Edges, as the kernel and PyTorch behave: the sum of squares is an f32, so when it overflows (`|x|` of
//! order 1e19 and up) it is `+inf` and `r = 0`: the row becomes signed zeros (`x_j · 0 · w_j`), and a row
//! holding an infinity becomes NaN (`inf · 0`). A NaN in a row makes that row NaN. Zero-size inputs
//! (`rows == 0` or `hidden == 0`) give an empty output.
//!
//! [`fused_add_rms_norm`] first forms the new residual in the storage dtype, as HF's
//! `hidden_states = residual + hidden_states` does, and normalizes that rounded sum:
//!
//! ```text
//! new_residual = round_T(x + residual)
//! out          = rms_norm(new_residual)
//! ```

use crate::dtype::Elem;
use crate::error::Result;
use crate::reference::{check_finite_positive, check_len, round_t};
use crate::shapes::{RmsNormConfig, RmsNormShape, Rounding};

const OP: &str = "rms_norm";
const OP_FUSED: &str = "fused_add_rms_norm";

/// Checks the shape, the lengths of `x` and `weight`, and `eps` (finite, > 0).
fn validate(op: &'static str, x_len: usize, w_len: usize, shape: RmsNormShape, eps: f32) -> Result<()> {
    check_len(op, "x", x_len, &[shape.rows, shape.hidden])?;
    check_len(op, "weight", w_len, &[shape.hidden])?;
    check_finite_positive(op, "eps", eps as f64)
}

/// `1 / sqrt(mean(row^2) + eps)` in f64, with the sum of squares held to f32's range: the kernel (like
/// PyTorch's `x.float().pow(2).mean()`) sums in f32, so a sum past `f32::MAX` is `+inf` and `r = 0`.
fn inv_rms(row: &[f64], eps: f64) -> f64 {
    let sum_sq = row.iter().map(|v| v * v).sum::<f64>();
    let sum_sq = if (sum_sq as f32).is_infinite() {
        f64::INFINITY
    } else {
        sum_sq
    };
    1.0 / (sum_sq / row.len() as f64 + eps).sqrt()
}

/// Normalizes rows already widened to f64 and rounds at the points `rounding` names.
fn rms_norm_rows<T: Elem>(x: &[f64], weight: &[T], shape: RmsNormShape, cfg: RmsNormConfig) -> Vec<T> {
    let eps = cfg.eps as f64;
    let mut out = Vec::with_capacity(x.len());
    for row in x.chunks_exact(shape.hidden.max(1)) {
        // row: (hidden,); an empty x (rows == 0 or hidden == 0) has no chunk
        let r = inv_rms(row, eps);
        for (&xj, &wj) in row.iter().zip(weight) {
            let y = match cfg.rounding {
                Rounding::MatchTorch => round_t::<T>(xj * r).to_f64() * wj.to_f64(),
                Rounding::Once => xj * r * wj.to_f64(),
            };
            out.push(round_t::<T>(y));
        }
    }
    out
}

/// RMSNorm reference: `x: (rows, hidden)`, `weight: (hidden,)` -> `(rows, hidden)`.
///
/// `r` and the products are computed in f64 from the `T` inputs; the output rounds to `T` at the points
/// of `cfg.rounding` (see the module table).
///
/// # Errors
/// `ShapeMismatch` for a wrong `x`/`weight` length,
/// `InvalidArgument` unless `eps` is finite and > 0.
pub fn rms_norm<T: Elem>(x: &[T], weight: &[T], shape: RmsNormShape, cfg: RmsNormConfig) -> Result<Vec<T>> {
    validate(OP, x.len(), weight.len(), shape, cfg.eps)?;
    let x: Vec<f64> = x.iter().map(|v| v.to_f64()).collect(); // (rows, hidden)
    Ok(rms_norm_rows(&x, weight, shape, cfg))
}

/// RMSNorm oracle: `x_j * r * w_j` in f64, no rounding. `cfg.rounding` is ignored.
///
/// # Errors
/// As [`rms_norm`].
pub fn rms_norm_f64<T: Elem>(x: &[T], weight: &[T], shape: RmsNormShape, cfg: RmsNormConfig) -> Result<Vec<f64>> {
    validate(OP, x.len(), weight.len(), shape, cfg.eps)?;
    let x: Vec<f64> = x.iter().map(|v| v.to_f64()).collect(); // (rows, hidden)
    Ok(rms_norm_rows_f64(&x, weight, shape, cfg.eps as f64))
}

fn rms_norm_rows_f64<T: Elem>(x: &[f64], weight: &[T], shape: RmsNormShape, eps: f64) -> Vec<f64> {
    let mut out = Vec::with_capacity(x.len());
    for row in x.chunks_exact(shape.hidden.max(1)) {
        let r = inv_rms(row, eps);
        out.extend(row.iter().zip(weight).map(|(&xj, &wj)| xj * r * wj.to_f64()));
    }
    out
}

/// Fused residual add + RMSNorm reference. `x, residual: (rows, hidden)`, `weight: (hidden,)`.
///
/// Returns `(out, new_residual)`, both `(rows, hidden)`: `new_residual = round_T(x + residual)` (the sum
/// of two `T` values in f64, rounded once), then `out = rms_norm(new_residual)` of that **rounded** sum
/// with the rounding points of `cfg.rounding`. This is vLLM's in-place `fused_add_rms_norm`
/// (`residual <- x + residual; x <- rms_norm(residual)`) with the outputs returned instead.
///
/// # Errors
/// As [`rms_norm`], plus `ShapeMismatch` for a wrong `residual` length.
pub fn fused_add_rms_norm<T: Elem>(
    x: &[T],
    residual: &[T],
    weight: &[T],
    shape: RmsNormShape,
    cfg: RmsNormConfig,
) -> Result<(Vec<T>, Vec<T>)> {
    validate(OP_FUSED, x.len(), weight.len(), shape, cfg.eps)?;
    check_len(OP_FUSED, "residual", residual.len(), &[shape.rows, shape.hidden])?;
    let new_residual: Vec<T> = x // (rows, hidden)
        .iter()
        .zip(residual)
        .map(|(a, b)| round_t::<T>(a.to_f64() + b.to_f64()))
        .collect();
    let sum: Vec<f64> = new_residual.iter().map(|v| v.to_f64()).collect();
    Ok((rms_norm_rows(&sum, weight, shape, cfg), new_residual))
}

/// Fused residual add + RMSNorm oracle: `new_residual = x + residual` and `out = rms_norm(new_residual)`,
/// all in f64 with no rounding. Returns `(out, new_residual)`.
///
/// # Errors
/// As [`fused_add_rms_norm`].
pub fn fused_add_rms_norm_f64<T: Elem>(
    x: &[T],
    residual: &[T],
    weight: &[T],
    shape: RmsNormShape,
    cfg: RmsNormConfig,
) -> Result<(Vec<f64>, Vec<f64>)> {
    validate(OP_FUSED, x.len(), weight.len(), shape, cfg.eps)?;
    check_len(OP_FUSED, "residual", residual.len(), &[shape.rows, shape.hidden])?;
    let sum: Vec<f64> = x.iter().zip(residual).map(|(a, b)| a.to_f64() + b.to_f64()).collect();
    Ok((rms_norm_rows_f64(&sum, weight, shape, cfg.eps as f64), sum))
}
