//! CPU reference for every op: plain, obviously-correct code that documents the math and serves as the
//! test oracle for the CUDA kernels and the emulator.
//!
//! Each op comes in up to three flavours:
//!
//! | flavour | precision | used for |
//! |---|---|---|
//! | `op::<T>` | f64 arithmetic on the (already rounded) `T` inputs, rounded to `T` exactly where the kernel rounds | the tight comparison with a kernel ([`tolerance::Tolerance`]) |
//! | `op_f64` | pure f64, no intermediate rounding | the oracle: "how far from the true answer" |
//! | `op_naive::<T>` (attention, GEMM) | every intermediate rounded to `T` | the baseline of FlashAttention's 2x rule ([`tolerance::check_2x_rule`]) |
//!
//! | op | file | reference | oracle | naive |
//! |---|---|---|---|---|
//! | RMSNorm, fused add + RMSNorm | [`rms_norm`](mod@rms_norm) | [`rms_norm()`], [`fused_add_rms_norm`] | [`rms_norm_f64`], [`fused_add_rms_norm_f64`] | |
//! | RoPE (both layouts, partial rotary, LLaMA 3.1 scaling) | [`rope`](mod@rope) | [`rope()`], [`rope_inv_freq`] | [`rope_f64`], [`rope_inv_freq_f64`] | |
//! | SwiGLU (split or packed `[gate \| up]`) | [`swiglu`](mod@swiglu) | [`swiglu()`], [`swiglu_packed`] | [`swiglu_f64`], [`swiglu_packed_f64`] | |
//! | attention (causal bottom-right, GQA, LSE) | [`attention`](mod@attention) | [`attention()`] | [`attention_f64`] | [`attention_naive`] |
//! | serving attention (ragged batches, paged or packed keys) | [`serving`](mod@serving) | [`attention_serving`] on [`gather_paged`] / [`gather_varlen`] | [`attention_serving_f64`] | [`attention_serving_naive`] |
//! | GEMM (`alpha·op(A)·op(B) + beta·C`) | [`gemm`](mod@gemm) | [`gemm()`] | [`gemm_f64`] | [`gemm_naive`] |
//! | KV append fused with RoPE (paged or contiguous cache, slot per token) | [`kv_cache`](mod@kv_cache) | [`kv_append()`] (RoPE as [`rope()`], the rows copied) | | |
//! | add, convert (copy and cast), embedding gather, on strided rows | [`elementwise`](mod@elementwise) | [`add()`], [`convert()`], [`embedding()`] (exact: the kernels match bit for bit) | | |
//!
//! ## Rounding to `T`
//! "round_T(v)" in the docs means `T::from_f32(v as f32)`: the f64 value is first rounded to f32 and then
//! to `T` (round to nearest even both times). A kernel holds the value in an f32 register and converts it
//! at the store, so this is the kernel's rounding too, double rounding included; for `T = f32` it is a
//! single rounding.
//!
//! ## Validation
//! Every function checks its inputs and returns [`Error`] instead of panicking: a zero
//! dimension is [`Error::InvalidShape`], a slice whose length does not match the
//! shape is [`Error::ShapeMismatch`], a scalar out of range (eps, theta, a NaN
//! scale) is [`Error::InvalidArgument`], and a shape whose element count
//! overflows `usize` is [`Error::SizeOverflow`].
//!
//! ## Test data
//! [`random_vec`] (seeded uniform) and [`arange_vec`] (an indexing-bug-revealing ramp) make the inputs of
//! every test, so a failing case is reproduced from its shape and seed alone.

pub mod attention;
pub mod elementwise;
pub mod gemm;
pub mod kv_cache;
pub mod rms_norm;
pub mod rope;
pub mod serving;
pub mod swiglu;
pub mod tolerance;

pub use attention::{attention, attention_f64, attention_naive, attention_tiled, AttentionTiling};
pub use elementwise::{add, convert, convert_elem, embedding};
pub use gemm::{gemm, gemm_abs_bound, gemm_batched, gemm_error_bound, gemm_f64, gemm_naive};
pub use kv_cache::kv_append;
pub use rms_norm::{fused_add_rms_norm, fused_add_rms_norm_f64, rms_norm, rms_norm_f64};
pub use rope::{rope, rope_f64, rope_inv_freq, rope_inv_freq_f64};
pub use serving::{
    attention_serving, attention_serving_f64, attention_serving_naive, gather_paged, gather_varlen, GatheredSeq,
};
pub use swiglu::{ffn_hidden_dim, silu, swiglu, swiglu_f64, swiglu_packed, swiglu_packed_f64};
pub use tolerance::{
    check_2x_rule, check_abs_bound, check_close, check_same_class, max_abs_diff, rounding_floor, FloatClass, Tolerance,
};

use crate::dtype::Elem;
use crate::error::{Error, Result};

/// round_T(v): f64 -> f32 -> `T`, the rounding a kernel does when it stores an f32 register as `T`.
pub fn round_t<T: Elem>(v: f64) -> T {
    T::from_f32(v as f32)
}

/// Widens a slice of `T` to f64 (exact for every `T`).
pub fn to_f64_vec<T: Elem>(v: &[T]) -> Vec<f64> {
    v.iter().map(|x| x.to_f64()).collect()
}

/// The next value of a splitmix64 stream (Steele, Lea and Flood, 2014): small, fast, and good enough to
/// make test data.
fn splitmix64(state: &mut u64) -> u64 {
    *state = state.wrapping_add(0x9E37_79B9_7F4A_7C15);
    let mut z = *state;
    z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
    z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
    z ^ (z >> 31)
}

/// `len` values uniform in `[-scale, scale)`, rounded to `T`, from a splitmix64 stream seeded with `seed`.
///
/// Deterministic: the same `(len, seed, scale)` gives the same values on every machine. A draw that
/// rounds to zero in `T` is replaced by `±scale/2`, so for any `scale` that is a normal number of `T` no
/// value is zero (and the vector is never all zero), which keeps norms and softmax rows well defined.
/// `scale` is used as `|scale|`.
pub fn random_vec<T: Elem>(len: usize, seed: u64, scale: f32) -> Vec<T> {
    let scale = scale.abs();
    let mut state = seed;
    (0..len)
        .map(|_| {
            let bits = splitmix64(&mut state);
            // 24 random bits -> u in [0, 1), exact in f32.
            let u = (bits >> 40) as f32 / (1u32 << 24) as f32;
            let v = T::from_f32((2.0 * u - 1.0) * scale);
            if v.to_f32() == 0.0 {
                let sign = if bits & 1 == 0 { 1.0 } else { -1.0 };
                T::from_f32(sign * scale * 0.5)
            } else {
                v
            }
        })
        .collect()
}

/// The ramp `v[i] = ((i mod 251) - 125) / 64`: exact in f32, f16 and bf16, distinct across any 251
/// consecutive indices and with a prime period, so it never lines up with power-of-two strides or tile
/// sizes. A transposed, shifted or skipped index shows up as a wrong value, not as a coincidence.
/// Values lie in `[-125/64, 125/64]` (about ±1.95); index 125 of each period is 0.
pub fn arange_vec<T: Elem>(len: usize) -> Vec<T> {
    (0..len)
        .map(|i| T::from_f32(((i % 251) as f32 - 125.0) / 64.0))
        .collect()
}

// ---- validation helpers shared by the reference ops ----

/// The product of `dims`, or `SizeOverflow`.
pub(crate) fn product(op: &'static str, what: &str, dims: &[usize]) -> Result<usize> {
    dims.iter()
        .try_fold(1usize, |acc, &d| acc.checked_mul(d))
        .ok_or_else(|| Error::SizeOverflow {
            op,
            what: format!("{what}: {dims:?} overflows usize"),
        })
}

/// `len == product(dims)`, else `ShapeMismatch` (or `SizeOverflow`).
pub(crate) fn check_len(op: &'static str, tensor: &'static str, len: usize, dims: &[usize]) -> Result<()> {
    let expected = product(op, tensor, dims)?;
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

/// Every `(name, value)` is `> 0`, else `InvalidShape` naming the first that is zero.
pub(crate) fn check_positive(op: &'static str, dims: &[(&str, usize)]) -> Result<()> {
    match dims.iter().find(|(_, v)| *v == 0) {
        Some((name, _)) => Err(Error::InvalidShape {
            op,
            reason: format!("{name} must be > 0"),
        }),
        None => Ok(()),
    }
}

/// `v` is finite and `> 0`, else `InvalidArgument`.
pub(crate) fn check_finite_positive(op: &'static str, name: &str, v: f64) -> Result<()> {
    if !(v.is_finite() && v > 0.0) {
        return Err(Error::InvalidArgument {
            op,
            reason: format!("{name} must be finite and > 0, got {v}"),
        });
    }
    Ok(())
}

/// `v` is finite, else `InvalidArgument`.
pub(crate) fn check_finite(op: &'static str, name: &str, v: f64) -> Result<()> {
    if !v.is_finite() {
        return Err(Error::InvalidArgument {
            op,
            reason: format!("{name} must be finite, got {v}"),
        });
    }
    Ok(())
}
