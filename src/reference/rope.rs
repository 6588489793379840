//! Rotary position embedding (RoPE) on q and k, with both pair layouts, partial rotary and LLaMA 3.1
//! frequency scaling.
//!
//! `q: (tokens, n_heads, head_dim)`, `k: (tokens, n_kv_heads, head_dim)`, `positions: (tokens,)`; the
//! head counts may differ (grouped-query attention). For each head vector `x` of token `t` and each
//! frequency index `i < rotary_dim / 2`:
//!
//! ```text
//! inv_freq[i] = round_f32(theta^(-2i / rotary_dim))          (LLaMA 3.1 scaling applied first, see below)
//! angle       = round_f32(f32(pos[t]) * inv_freq[i])          (an f32 multiply, as Meta's torch.outer)
//! (x0, x1)    = the pair of frequency i (layout below)
//! x0'         = round_T(x0 * cos(angle) - x1 * sin(angle))    (cos, sin and the rotation in f64)
//! x1'         = round_T(x0 * sin(angle) + x1 * cos(angle))
//! ```
//!
//! | [`RopeLayout`] | pair `i` | used by |
//! |---|---|---|
//! | `Interleaved` | `(x[2i], x[2i+1])` | Meta's LLaMA code |
//! | `HalfSplit` | `(x[i], x[i + rotary_dim/2])` | Hugging Face, GPT-NeoX, vLLM `is_neox` |
//!
//! Dimensions `>= rotary_dim` pass through unchanged (bit for bit).
//!
//! The frequency table is [`rope_inv_freq`]: computed in f64, rounded once to f32, and passed to the CUDA
//! kernel as is. It can differ from torch's own table (an f32 `pow`) by an f32 ulp. The only f32
//! arithmetic of the reference is `pos * inv_freq`, because that is where torch (and the kernel) loses
//! precision at large positions; everything after it is f64 with one rounding to `T`.
//!
//! ## LLaMA 3.1 scaling (Hugging Face `_compute_llama3_parameters`)
//! ```text
//! low_freq_wavelen  = original_max_position_embeddings / low_freq_factor
//! high_freq_wavelen = original_max_position_embeddings / high_freq_factor
//! wavelen           = 2π / inv_freq
//! wavelen > low_freq_wavelen   ->  inv_freq / factor                        (low frequencies)
//! wavelen < high_freq_wavelen  ->  inv_freq                                 (high frequencies)
//! otherwise                    ->  (1 - s) * inv_freq / factor + s * inv_freq,
//!                                  s = (original / wavelen - low_freq_factor) / (high_freq_factor - low_freq_factor)
//! ```
//! all in f64, rounded once to f32.

use crate::dtype::Elem;
use crate::error::{Error, Result};
use crate::reference::{check_finite_positive, check_len, check_positive, round_t};
use crate::shapes::{Llama3Scaling, RopeConfig, RopeLayout, RopeShape};

const OP: &str = "rope";
const OP_FREQ: &str = "rope_inv_freq";

/// Checks `rotary_dim` (even, > 0), `theta` (finite, > 0) and the scaling parameters.
fn validate_freq(op: &'static str, rotary_dim: usize, theta: f32, scaling: Option<Llama3Scaling>) -> Result<()> {
    if rotary_dim == 0 || rotary_dim % 2 != 0 {
        return Err(Error::InvalidShape {
            op,
            reason: format!("rotary_dim must be even and > 0, got {rotary_dim}"),
        });
    }
    check_finite_positive(op, "theta", theta as f64)?;
    if let Some(s) = scaling {
        check_finite_positive(op, "scaling.factor", s.factor as f64)?;
        check_finite_positive(op, "scaling.low_freq_factor", s.low_freq_factor as f64)?;
        check_finite_positive(op, "scaling.high_freq_factor", s.high_freq_factor as f64)?;
        if s.high_freq_factor <= s.low_freq_factor {
            return Err(Error::InvalidArgument {
                op,
                reason: format!(
                    "scaling.high_freq_factor ({}) must be > scaling.low_freq_factor ({})",
                    s.high_freq_factor, s.low_freq_factor
                ),
            });
        }
        if s.original_max_position_embeddings == 0 {
            return Err(Error::InvalidArgument {
                op,
                reason: "scaling.original_max_position_embeddings must be > 0".to_string(),
            });
        }
    }
    Ok(())
}

/// LLaMA 3.1's rule applied to one f64 frequency (see the module docs).
fn llama3_scale(inv_freq: f64, s: Llama3Scaling) -> f64 {
    let factor = s.factor as f64;
    let low = s.low_freq_factor as f64;
    let high = s.high_freq_factor as f64;
    let original = s.original_max_position_embeddings as f64;
    let low_freq_wavelen = original / low;
    let high_freq_wavelen = original / high;
    let wavelen = 2.0 * std::f64::consts::PI / inv_freq;
    if wavelen > low_freq_wavelen {
        inv_freq / factor
    } else if wavelen < high_freq_wavelen {
        inv_freq
    } else {
        let smooth = (original / wavelen - low) / (high - low);
        (1.0 - smooth) * inv_freq / factor + smooth * inv_freq
    }
}

/// The exact frequency table in f64: `theta^(-2i/rotary_dim)` for `i < rotary_dim/2`, then the LLaMA 3.1
/// rule when `scaling` is given. No rounding.
///
/// # Errors
/// `InvalidShape` unless `rotary_dim` is even and > 0; `InvalidArgument` unless `theta` and the scaling
/// factors are finite and > 0, `high_freq_factor > low_freq_factor` and
/// `original_max_position_embeddings > 0`.
pub fn rope_inv_freq_f64(rotary_dim: usize, theta: f32, scaling: Option<Llama3Scaling>) -> Result<Vec<f64>> {
    validate_freq(OP_FREQ, rotary_dim, theta, scaling)?;
    Ok(inv_freq_table(rotary_dim, theta, scaling))
}

/// The f64 table, for arguments already validated.
fn inv_freq_table(rotary_dim: usize, theta: f32, scaling: Option<Llama3Scaling>) -> Vec<f64> {
    let theta = theta as f64;
    (0..rotary_dim / 2)
        .map(|i| {
            let inv_freq = theta.powf(-((2 * i) as f64) / rotary_dim as f64);
            match scaling {
                Some(s) => llama3_scale(inv_freq, s),
                None => inv_freq,
            }
        })
        .collect()
}

/// The frequency table the kernels receive: [`rope_inv_freq_f64`] rounded once to f32.
/// `(rotary_dim / 2,)`; entry 0 is 1.0 without scaling, and the table decreases with `i`.
///
/// # Errors
/// As [`rope_inv_freq_f64`].
pub fn rope_inv_freq(rotary_dim: usize, theta: f32, scaling: Option<Llama3Scaling>) -> Result<Vec<f32>> {
    Ok(rope_inv_freq_f64(rotary_dim, theta, scaling)?
        .into_iter()
        .map(|f| f as f32)
        .collect())
}

/// Checks the shape (`head_dim > 0`, `rotary_dim <= head_dim`) and the slice lengths. Any `i32` position
/// is valid: a negative one rotates by a negative angle, as the kernel does. Zero tokens or heads give
/// empty outputs.
fn validate(q_len: usize, k_len: usize, positions: &[i32], shape: RopeShape, cfg: &RopeConfig) -> Result<()> {
    check_positive(OP, &[("head_dim", shape.head_dim)])?;
    validate_freq(OP, cfg.rotary_dim, cfg.theta, cfg.scaling)?;
    if cfg.rotary_dim > shape.head_dim {
        return Err(Error::InvalidShape {
            op: OP,
            reason: format!(
                "rotary_dim ({}) must be <= head_dim ({})",
                cfg.rotary_dim, shape.head_dim
            ),
        });
    }
    check_len(OP, "q", q_len, &[shape.tokens, shape.n_heads, shape.head_dim])?;
    check_len(OP, "k", k_len, &[shape.tokens, shape.n_kv_heads, shape.head_dim])?;
    check_len(OP, "positions", positions.len(), &[shape.tokens])
}

/// The indices of pair `i` in a head vector.
fn pair_index(layout: RopeLayout, rotary_dim: usize, i: usize) -> (usize, usize) {
    match layout {
        RopeLayout::Interleaved => (2 * i, 2 * i + 1),
        RopeLayout::HalfSplit => (i, i + rotary_dim / 2),
    }
}

/// Rotates every head of `x: (tokens, heads, head_dim)` in f64 and maps each result with `store`.
/// `cos_sin[t][i]` is the `(cos, sin)` of token `t`, frequency `i`. Unrotated dims go through `keep`.
fn rotate<T: Elem, U>(
    x: &[T],
    heads: usize,
    shape: RopeShape,
    cfg: &RopeConfig,
    cos_sin: &[Vec<(f64, f64)>],
    store: impl Fn(f64) -> U,
    keep: impl Fn(T) -> U,
) -> Vec<U> {
    let hd = shape.head_dim;
    let mut out = Vec::with_capacity(x.len());
    // (heads == 0: x is empty and has no chunk.)
    for (t, token) in x.chunks_exact((heads * hd).max(1)).enumerate() {
        // token: (heads, head_dim)
        for head in token.chunks_exact(hd) {
            // head: (head_dim,)
            let mut rotated: Vec<Option<f64>> = vec![None; hd];
            for (i, &(c, s)) in cos_sin[t].iter().enumerate() {
                let (j0, j1) = pair_index(cfg.layout, cfg.rotary_dim, i);
                let (x0, x1) = (head[j0].to_f64(), head[j1].to_f64());
                rotated[j0] = Some(x0 * c - x1 * s);
                rotated[j1] = Some(x0 * s + x1 * c);
            }
            for (j, r) in rotated.into_iter().enumerate() {
                out.push(match r {
                    Some(v) => store(v),
                    None => keep(head[j]),
                });
            }
        }
    }
    out
}

/// RoPE reference. Returns the rotated `(q, k)` with the shapes of the inputs.
///
/// Angles are `round_f32(f32(pos) * inv_freq[i])` from the f32 table [`rope_inv_freq`]; `cos`/`sin` of
/// that f32 angle and the rotation are f64; each rotated element rounds to `T` once. Positions above
/// 2^24 are not exact in f32 (as in torch). Negative positions rotate backwards.
///
/// # Errors
/// `InvalidShape` for a zero `head_dim` or `rotary_dim` odd, zero or `> head_dim`; `ShapeMismatch` for a
/// wrong `q`, `k` or `positions` length; `InvalidArgument` for a bad `theta` or scaling.
pub fn rope<T: Elem>(
    q: &[T],
    k: &[T],
    positions: &[i32],
    shape: RopeShape,
    cfg: RopeConfig,
) -> Result<(Vec<T>, Vec<T>)> {
    validate(q.len(), k.len(), positions, shape, &cfg)?;
    let inv_freq: Vec<f32> = inv_freq_table(cfg.rotary_dim, cfg.theta, cfg.scaling)
        .into_iter()
        .map(|f| f as f32)
        .collect();
    // cos_sin: (tokens, rotary_dim / 2)
    let cos_sin: Vec<Vec<(f64, f64)>> = positions
        .iter()
        .map(|&p| {
            inv_freq
                .iter()
                .map(|&f| {
                    let angle = (p as f32 * f) as f64; // the f32 multiply
                    (angle.cos(), angle.sin())
                })
                .collect()
        })
        .collect();
    let q_out = rotate(q, shape.n_heads, shape, &cfg, &cos_sin, round_t::<T>, |v| v);
    let k_out = rotate(k, shape.n_kv_heads, shape, &cfg, &cos_sin, round_t::<T>, |v| v);
    Ok((q_out, k_out))
}

/// RoPE oracle: the exact math in f64. The frequencies are [`rope_inv_freq_f64`] (unrounded), the angle
/// is `pos * inv_freq` in f64, and nothing rounds. It differs from [`rope`] by the f32 table and the f32
/// angle (about `pos * 2^-24` radians at most), which is the precision torch and the kernels have.
///
/// # Errors
/// As [`rope`].
pub fn rope_f64<T: Elem>(
    q: &[T],
    k: &[T],
    positions: &[i32],
    shape: RopeShape,
    cfg: RopeConfig,
) -> Result<(Vec<f64>, Vec<f64>)> {
    validate(q.len(), k.len(), positions, shape, &cfg)?;
    let inv_freq = inv_freq_table(cfg.rotary_dim, cfg.theta, cfg.scaling);
    let cos_sin: Vec<Vec<(f64, f64)>> = positions
        .iter()
        .map(|&p| {
            inv_freq
                .iter()
                .map(|&f| {
                    let angle = p as f64 * f;
                    (angle.cos(), angle.sin())
                })
                .collect()
        })
        .collect();
    let keep = |v: T| v.to_f64();
    let q_out = rotate(q, shape.n_heads, shape, &cfg, &cos_sin, |v| v, keep);
    let k_out = rotate(k, shape.n_kv_heads, shape, &cfg, &cos_sin, |v| v, keep);
    Ok((q_out, k_out))
}
