//! RoPE: rotary position embedding, in place on `q` and (optionally) `k`.
//!
//! | | |
//! |---|---|
//! | dtypes | `f32`, `f16`, `bf16` for `q`/`k` (same dtype); `positions: i32`; `inv_freq: f32` |
//! | layouts | `q: (tokens, n_heads, head_dim)`, `k: (tokens, n_kv_heads, head_dim)` (any head counts: GQA), `positions: (tokens,)`, `inv_freq: (rotary_dim / 2,)`; contiguous |
//! | pairs | [`RopeLayout::Interleaved`](crate::RopeLayout::Interleaved) `(x[2i], x[2i+1])` (Meta), [`RopeLayout::HalfSplit`](crate::RopeLayout::HalfSplit) `(x[i], x[i + rotary_dim/2])` (HF / NeoX) |
//! | partial rotary | `rotary_dim ≤ head_dim`, even; elements past `rotary_dim` are never touched |
//! | kernel | `cuda/rope.cu`: one block row per token, threads over frequencies × head groups; each thread computes one `sincosf` and rotates that pair in up to 4 heads |
//! | numerics | angle `f32(pos) · inv_freq[i]` (one f32 multiply, bit-equal to the reference), f32 `sincosf`, rotation in f32, one rounding to `T`; see [`crate::reference::rope()`] |
//! | positions | any `i32`: a negative position rotates by a negative angle, in the kernel and the reference alike (positions are device data, so there is nothing to check) |
//! | zero sizes | `tokens == 0`, or no heads at all, is a no-op (validated as usual, nothing launched) |
//! | limits | `tokens ≤ i32::MAX`, `n_heads + n_kv_heads ≤ 2^30`, `head_dim ≤ i32::MAX` |
//!
//! [`rope`] takes the frequency table as a device buffer, so a caller uploads it once per model
//! ([`upload_inv_freq`]); [`rope_with_config`] builds and uploads it on every call. The table is always
//! [`crate::reference::rope_inv_freq`] (theta, LLaMA 3.1 scaling): one source for the reference and the
//! kernel.
//!
//! The kernel's `sincosf` differs from the reference's f64 `cos`/`sin` of the same f32 angle by a few f32
//! ulps, so an f32 result differs from the reference by about `3·2^-24·(|x0| + |x1|)` (within the
//! default f32 tolerance for data of order 1), and an f16/bf16 result can round to the neighbouring value.

use crate::backend::{Backend, DeviceSlice, DeviceSliceMut, DeviceValue, Kernel, LaunchDims};
use crate::dtype::{DType, Elem};
use crate::error::{Error, Result};
use crate::ops::validate;
use crate::raw::{rope_layout_code, RopeParams};
use crate::reference;
use crate::shapes::{RopeConfig, RopeShape};

const OP: &str = "rope";

/// The RoPE entry points, one per dtype.
pub const KERNELS: &[Kernel<'static>] = &[
    Kernel {
        module: "rope",
        name: "rope_f32",
    },
    Kernel {
        module: "rope",
        name: "rope_f16",
    },
    Kernel {
        module: "rope",
        name: "rope_bf16",
    },
];

/// `RopeTraits::THREADS` of `cuda/rope.cu`: the most threads of one block.
const THREADS: usize = 256;
/// Threads along the frequencies of one block: at most this many (pairs beyond loop).
const MAX_FREQ_THREADS: usize = 128;
/// Heads one thread rotates with one sincos when there are enough tokens to fill the GPU.
const HEADS_PER_THREAD: usize = 4;
/// Fewer tokens than this: one head per thread, for more blocks (decode steps).
const MANY_TOKENS: usize = 64;
/// CUDA's limit on `gridDim.y` (the head groups).
const MAX_GRID_Y: usize = 65535;
/// `n_heads + n_kv_heads` bound: the kernel's head index plus one grid stride stays below 2^31.
const MAX_HEADS: usize = 1 << 30;

/// Grid and block of one launch (the mapping is described in `cuda/rope.cu`).
///
/// `block.x` covers the `rotary_dim / 2` frequencies in whole warps (at most 128, more frequencies loop),
/// `block.y` fills the block up to 256 threads with head groups; `grid.x` is the token (up to 2^31 - 1),
/// `grid.y` the remaining head groups. With many tokens a thread rotates up to 4 heads per sincos (which
/// costs about as much as rotating 3 pairs); with few tokens (decode) one head per thread makes more
/// blocks. `grid.y` is capped at 65535: the kernel strides over heads, so each thread then takes more.
fn launch_config(tokens: usize, heads: usize, rotary_dim: usize) -> Result<LaunchDims> {
    let half = rotary_dim / 2;
    let freq_threads = half.next_multiple_of(32).min(MAX_FREQ_THREADS);
    let heads_per_thread = if tokens >= MANY_TOKENS { HEADS_PER_THREAD } else { 1 };
    let groups = heads.div_ceil(heads_per_thread);
    let group_threads = (THREADS / freq_threads).min(groups).max(1);
    let grid_y = groups.div_ceil(group_threads).min(MAX_GRID_Y);
    Ok(LaunchDims {
        grid: [validate::to_i32(OP, "tokens", tokens)? as u32, grid_y as u32, 1],
        block: [freq_threads as u32, group_threads as u32, 1],
        shared_bytes: 0,
    })
}

fn kernel_for(dtype: DType) -> Kernel<'static> {
    KERNELS[dtype.index()]
}

/// Checks `cfg` (`rotary_dim` even and > 0, `theta` and the scaling) by building its frequency table with
/// [`reference::rope_inv_freq`], the single source of both the checks and the table, and returns it.
fn checked_inv_freq(op: &'static str, cfg: &RopeConfig) -> Result<Vec<f32>> {
    reference::rope_inv_freq(cfg.rotary_dim, cfg.theta, cfg.scaling).map_err(|e| match e {
        Error::InvalidShape { reason, .. } => Error::InvalidShape { op, reason },
        Error::InvalidArgument { reason, .. } => Error::InvalidArgument { op, reason },
        other => other,
    })
}

/// The checks of a rotation every RoPE entry point makes (here and [`crate::ops::kv_cache`]): `head_dim`
/// positive, `cfg` valid ([`checked_inv_freq`]), `rotary_dim ≤ head_dim`.
pub(crate) fn check_rotary(op: &'static str, head_dim: usize, cfg: &RopeConfig) -> Result<()> {
    validate::check_positive(op, "head_dim", head_dim)?;
    checked_inv_freq(op, cfg)?;
    if cfg.rotary_dim > head_dim {
        return Err(Error::InvalidShape {
            op,
            reason: format!("rotary_dim ({}) must be <= head_dim ({head_dim})", cfg.rotary_dim),
        });
    }
    Ok(())
}

/// The frequency table of `cfg` ([`reference::rope_inv_freq`]), uploaded for [`rope`]: `(rotary_dim / 2,)`
/// f32. Upload it once per model and pass it to every [`rope`] call.
///
/// # Errors
/// `InvalidShape` unless `rotary_dim` is even and > 0; `InvalidArgument` for a `theta` that is not finite
/// and > 0 or invalid scaling parameters; backend errors from the upload.
pub fn upload_inv_freq<B: Backend>(backend: &B, cfg: &RopeConfig) -> Result<B::Buffer<f32>> {
    backend.upload(&checked_inv_freq(OP, cfg)?)
}

/// Rotates `q` and, when given, `k` in place on `backend` (see the module docs), with the frequency
/// table `inv_freq` from [`upload_inv_freq`] (or any `(rotary_dim / 2,)` f32 table the caller made).
///
/// `q` has `tokens·n_heads·head_dim` elements; `k`, when given, `tokens·n_kv_heads·head_dim`
/// (`shape.n_kv_heads` is ignored without `k`); `positions` has `tokens` values (any `i32`; see the module
/// docs). `cfg.layout` and `cfg.rotary_dim` drive the
/// kernel; `cfg.theta` and `cfg.scaling` are checked as in [`upload_inv_freq`] so that a config is valid
/// or rejected the same way on both paths. Pass `None::<&mut B::Buffer<T>>` for no `k`.
///
/// # Errors
/// `InvalidShape` for a zero `head_dim` or a `rotary_dim` that is odd, zero or `> head_dim`; `InvalidArgument` for a bad `theta` or scaling;
/// `ShapeMismatch` for a wrong buffer length; `SizeOverflow` for sizes past the kernel's limits;
/// `Misaligned` for a pointer not aligned to its element; `Aliasing` when `q` and `k` overlap or either
/// overlaps `positions` or `inv_freq`; `ContextMismatch` for a buffer of another device; backend errors
/// from the launch.
pub fn rope<T, B, K>(
    backend: &B,
    q: &mut impl DeviceSliceMut<T, B>,
    k: Option<&mut K>,
    positions: &impl DeviceSlice<i32, B>,
    inv_freq: &impl DeviceSlice<f32, B>,
    shape: RopeShape,
    cfg: RopeConfig,
) -> Result<()>
where
    T: Elem + DeviceValue,
    B: Backend,
    K: DeviceSliceMut<T, B>,
{
    let n_kv_heads = if k.is_some() { shape.n_kv_heads } else { 0 };
    let shape = RopeShape { n_kv_heads, ..shape };
    let heads = checked_heads(shape, &cfg)?;
    let dims = launch_config(shape.tokens, heads, cfg.rotary_dim)?;
    let elem = std::mem::size_of::<T>();
    let q_stride = validate::checked_product(OP, "q token stride", &[shape.n_heads, shape.head_dim])?;
    let k_stride = validate::checked_product(OP, "k token stride", &[n_kv_heads, shape.head_dim])?;
    let q_bytes = validate::checked_product(OP, "q bytes", &[shape.tokens, q_stride, elem])?;
    let k_bytes = validate::checked_product(OP, "k bytes", &[shape.tokens, k_stride, elem])?;
    let (q_addr, _q_guard) =
        validate::addr_of_mut(OP, "q", q, backend, &[shape.tokens, shape.n_heads, shape.head_dim])?;
    let k_resolved = match k {
        Some(k) => Some(validate::addr_of_mut(
            OP,
            "k",
            k,
            backend,
            &[shape.tokens, n_kv_heads, shape.head_dim],
        )?),
        None => None,
    };
    let k_addr = k_resolved.as_ref().map_or(0, |(addr, _)| *addr);
    validate::check_no_overlap(OP, ("q", q_addr, q_bytes), ("k", k_addr, k_bytes))?;
    // The guards (k's inside k_resolved) live until the launch is enqueued.
    launch(
        backend,
        T::DTYPE,
        [("q", q_addr, q_bytes, q_stride), ("k", k_addr, k_bytes, k_stride)],
        positions,
        inv_freq,
        (shape, heads, dims),
        cfg,
    )
}

/// Rotates the q and k heads of a fused QKV projection's output in place: `qkv: (tokens, n_heads +
/// 2·n_kv_heads, head_dim)`, each token's `n_heads` q heads, then `n_kv_heads` k heads, then as many v
/// heads (never touched), as `x·W_qkvᵀ` with the three weights stacked gives it. No copy: the kernel walks
/// q and k at the fused token stride. Otherwise as [`rope`] (with `shape.n_kv_heads` the k heads).
///
/// # Errors
/// As [`rope`], with `qkv` in place of `q` and `k` (`ShapeMismatch` unless it holds
/// `tokens·(n_heads + 2·n_kv_heads)·head_dim` elements).
pub fn rope_qkv<T, B>(
    backend: &B,
    qkv: &mut impl DeviceSliceMut<T, B>,
    positions: &impl DeviceSlice<i32, B>,
    inv_freq: &impl DeviceSlice<f32, B>,
    shape: RopeShape,
    cfg: RopeConfig,
) -> Result<()>
where
    T: Elem + DeviceValue,
    B: Backend,
{
    let heads = checked_heads(shape, &cfg)?;
    let dims = launch_config(shape.tokens, heads, cfg.rotary_dim)?;
    let fused_heads = shape
        .n_kv_heads
        .checked_mul(2)
        .and_then(|kv| kv.checked_add(shape.n_heads))
        .ok_or_else(|| Error::SizeOverflow {
            op: OP,
            what: format!(
                "n_heads + 2·n_kv_heads = {} + 2·{} overflows",
                shape.n_heads, shape.n_kv_heads
            ),
        })?;
    let elem = std::mem::size_of::<T>();
    let stride = validate::checked_product(OP, "qkv token stride", &[fused_heads, shape.head_dim])?;
    let bytes = validate::checked_product(OP, "qkv bytes", &[shape.tokens, stride, elem])?;
    let (addr, _guard) = validate::addr_of_mut(OP, "qkv", qkv, backend, &[shape.tokens, fused_heads, shape.head_dim])?;
    // q and k interleave token by token in one buffer but never share an element.
    // Inside the buffer (past it only when tokens == 0, which launches nothing).
    let k_addr = addr + (shape.n_heads * shape.head_dim * elem) as u64;
    launch(
        backend,
        T::DTYPE,
        [("qkv", addr, bytes, stride), ("qkv", k_addr, bytes, stride)],
        positions,
        inv_freq,
        (shape, heads, dims),
        cfg,
    )
}

/// The checks of `cfg` and the head counts both entry points make; returns `n_heads + n_kv_heads`.
fn checked_heads(shape: RopeShape, cfg: &RopeConfig) -> Result<usize> {
    check_rotary(OP, shape.head_dim, cfg)?;
    shape
        .n_heads
        .checked_add(shape.n_kv_heads)
        .filter(|&h| h <= MAX_HEADS)
        .ok_or_else(|| Error::SizeOverflow {
            op: OP,
            what: format!(
                "n_heads + n_kv_heads = {} + {} is over the kernel's limit {MAX_HEADS}",
                shape.n_heads, shape.n_kv_heads
            ),
        })
}

/// Checks positions and the table against the rotated regions (q's and k's spans; for [`rope_qkv`] both the
/// whole qkv buffer) `[(name, addr, bytes, token stride); 2]`
/// (q, then k; k's address 0 without k) and launches.
fn launch<B: Backend>(
    backend: &B,
    dtype: DType,
    [(q_name, q_addr, q_bytes, q_stride), (k_name, k_addr, k_bytes, k_stride)]: [(&'static str, u64, usize, usize); 2],
    positions: &impl DeviceSlice<i32, B>,
    inv_freq: &impl DeviceSlice<f32, B>,
    (shape, heads, dims): (RopeShape, usize, LaunchDims),
    cfg: RopeConfig,
) -> Result<()> {
    let RopeShape {
        tokens,
        n_heads,
        n_kv_heads,
        head_dim,
    } = shape;
    let (pos_addr, _pos_guard) = validate::addr_of(OP, "positions", positions, backend, &[tokens])?;
    let (freq_addr, _freq_guard) = validate::addr_of(OP, "inv_freq", inv_freq, backend, &[cfg.rotary_dim / 2])?;
    let pos_bytes = tokens * 4; // fits: the positions buffer exists
    let freq_bytes = cfg.rotary_dim / 2 * 4;
    // The rotated tensors may not overlap an input.
    for (out, out_addr, out_bytes) in [(q_name, q_addr, q_bytes), (k_name, k_addr, k_bytes)] {
        validate::check_no_overlap(OP, (out, out_addr, out_bytes), ("positions", pos_addr, pos_bytes))?;
        validate::check_no_overlap(OP, (out, out_addr, out_bytes), ("inv_freq", freq_addr, freq_bytes))?;
    }
    let params = RopeParams {
        q: q_addr as *mut std::ffi::c_void,
        k: k_addr as *mut std::ffi::c_void,
        positions: pos_addr as *const i32,
        inv_freq: freq_addr as *const f32,
        q_token_stride: validate::to_i64(OP, "q token stride", q_stride)?,
        k_token_stride: validate::to_i64(OP, "k token stride", k_stride)?,
        tokens: validate::to_i32(OP, "tokens", tokens)?,
        n_heads: validate::to_i32(OP, "n_heads", n_heads)?,
        n_kv_heads: validate::to_i32(OP, "n_kv_heads", n_kv_heads)?,
        head_dim: validate::to_i32(OP, "head_dim", head_dim)?,
        rotary_dim: validate::to_i32(OP, "rotary_dim", cfg.rotary_dim)?,
        layout: rope_layout_code(cfg.layout),
    };
    if tokens == 0 || heads == 0 {
        return Ok(()); // nothing to rotate (validated like any other call)
    }
    backend.launch(kernel_for(dtype), dims, &params)
}

/// [`rope`] with the frequency table of `cfg` built ([`reference::rope_inv_freq`]) and uploaded on this
/// call. Convenient for one-off calls; a model should [`upload_inv_freq`] once and call [`rope`].
///
/// # Errors
/// As [`rope`].
pub fn rope_with_config<T, B, K>(
    backend: &B,
    q: &mut impl DeviceSliceMut<T, B>,
    k: Option<&mut K>,
    positions: &impl DeviceSlice<i32, B>,
    shape: RopeShape,
    cfg: RopeConfig,
) -> Result<()>
where
    T: Elem + DeviceValue,
    B: Backend,
    K: DeviceSliceMut<T, B>,
{
    let inv_freq = upload_inv_freq(backend, &cfg)?;
    rope(backend, q, k, positions, &inv_freq, shape, cfg)
}

/// A frequency table uploaded once, with the config it was made from: [`rope_with_table`] checks that a
/// call's config is that one (a table of another theta, rotary dim or scaling is an error, not a silently
/// wrong rotation), which [`rope`], taking any `f32` buffer, cannot.
pub struct RopeTable<B: Backend> {
    inv_freq: B::Buffer<f32>,
    /// The frequencies' part of the config: theta, rotary_dim and scaling (the layout is the call's).
    cfg: RopeConfig,
}

impl<B: Backend> RopeTable<B> {
    /// Builds the table of `cfg` ([`reference::rope_inv_freq`]) and uploads it.
    ///
    /// # Errors
    /// As [`upload_inv_freq`].
    pub fn upload(backend: &B, cfg: &RopeConfig) -> Result<Self> {
        Ok(RopeTable {
            inv_freq: upload_inv_freq(backend, cfg)?,
            cfg: *cfg,
        })
    }

    /// The config the table was made from.
    pub fn config(&self) -> &RopeConfig {
        &self.cfg
    }

    /// The `(rotary_dim / 2,)` f32 table on the device (for [`crate::ops::kv_cache::kv_append`]).
    pub fn inv_freq(&self) -> &B::Buffer<f32> {
        &self.inv_freq
    }

    /// `InvalidArgument` unless `cfg` makes this table: the same theta, rotary dim and scaling.
    pub fn check(&self, op: &'static str, cfg: &RopeConfig) -> Result<()> {
        let t = &self.cfg;
        if t.theta.to_bits() != cfg.theta.to_bits() || t.rotary_dim != cfg.rotary_dim || t.scaling != cfg.scaling {
            return Err(Error::InvalidArgument {
                op,
                reason: format!(
                    "the RoPE table was made for theta {}, rotary_dim {}, scaling {:?}; the call asks for theta {}, \
                     rotary_dim {}, scaling {:?}",
                    t.theta, t.rotary_dim, t.scaling, cfg.theta, cfg.rotary_dim, cfg.scaling
                ),
            });
        }
        Ok(())
    }
}

/// [`rope`] with a [`RopeTable`] uploaded once: the table is checked against `cfg` first.
///
/// # Errors
/// As [`rope`]; `InvalidArgument` when `table` was made for another theta, rotary dim or scaling.
pub fn rope_with_table<T, B, K>(
    backend: &B,
    q: &mut impl DeviceSliceMut<T, B>,
    k: Option<&mut K>,
    positions: &impl DeviceSlice<i32, B>,
    table: &RopeTable<B>,
    shape: RopeShape,
    cfg: RopeConfig,
) -> Result<()>
where
    T: Elem + DeviceValue,
    B: Backend,
    K: DeviceSliceMut<T, B>,
{
    table.check(OP, &cfg)?;
    rope(backend, q, k, positions, &table.inv_freq, shape, cfg)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn launch_config_maps_frequencies_and_head_groups() {
        // LLaMA 3 8B prefill: 64 frequencies, 32 + 8 heads, 4 heads per thread -> 10 groups.
        let d = launch_config(512, 40, 128).unwrap();
        assert_eq!(d.block, [64, 4, 1]);
        assert_eq!(d.grid, [512, 3, 1]);
        // Decode: one head per thread.
        let d = launch_config(1, 40, 128).unwrap();
        assert_eq!(d.block, [64, 4, 1]);
        assert_eq!(d.grid, [1, 10, 1]);
        // rotary_dim 2: one warp of which one lane works; big heads: 128 lanes that loop.
        assert_eq!(launch_config(3, 1, 2).unwrap().block, [32, 1, 1]);
        assert_eq!(launch_config(3, 1, 512).unwrap().block, [128, 1, 1]);
        // Every launch stays within the kernel's 256 threads and the grid.y limit.
        for (tokens, heads, rotary) in [(1, MAX_HEADS, 2), (100, 7, 64), (70, 1, 200)] {
            let d = launch_config(tokens, heads, rotary).unwrap();
            assert!(
                d.block[0] * d.block[1] <= THREADS as u32 && d.grid[1] <= MAX_GRID_Y as u32,
                "{d:?}"
            );
        }
    }
}
