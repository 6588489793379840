//! KV append fused with RoPE: one launch rotates the new tokens' `q` and `k` in place and writes `k` and
//! `v` into a paged (or contiguous) KV cache at a slot per token.
//!
//! | | |
//! |---|---|
//! | dtypes | `f32`, `f16`, `bf16` for q, k, v and the caches (one dtype); `slot_mapping: i64`, `positions: i32`, `inv_freq: f32`, `status: i32` |
//! | layouts | [`kv_append`]: `q: (tokens, n_heads, head_dim)`, `k, v: (tokens, n_kv_heads, head_dim)`; [`kv_append_qkv`]: one fused `qkv: (tokens, n_heads + 2·n_kv_heads, head_dim)`; caches `(num_slots, n_kv_heads, head_dim)` ([`KvAppendShape`]: a paged cache's pages are consecutive runs of `page_size` slots, in any order) |
//! | slots | token `t` goes to row `slot_mapping[t]`; a negative slot writes nothing (vLLM's padding tokens), nor does one `≥ num_slots`; `status[t]` says which: 0 written, 1 negative, 2 out of range. Slots are device data, so distinct slots per call are the caller's contract (as vLLM's); two tokens to one slot leave either's row |
//! | RoPE | as [`crate::ops::rope`]: the same table ([`crate::ops::rope::upload_inv_freq`]), layouts and partial rotary; `rotary_dim ≤ 256` |
//! | kernel | `cuda/kv_append.cu`: one 256-thread block per new token (64 tokens or more) or per (new token, kv head) (decode): sin/cos of the token's angle into shared memory, the rotations of the block's q and k heads, then its k and v heads to the slot (16-byte chunks when aligned) |
//! | numerics | bit for bit [`crate::ops::rope::rope`] on q and k (the same rotation, `cuda/include/rope_rotate.cuh`); the caches get those bits and v's unchanged |
//! | zero sizes | `tokens == 0`: a no-op |
//! | limits | `tokens ≤ i32::MAX`, `n_kv_heads ≤ 65535`; `(n_heads + n_kv_heads) · rotary_dim / 2` and `n_kv_heads · head_dim` under 2³¹ |

use crate::backend::{Backend, DeviceSlice, DeviceSliceMut, DeviceValue, Kernel, LaunchDims};
use crate::dtype::{DType, Elem};
use crate::error::{Error, Result};
use crate::ops::rope::check_rotary;
use crate::ops::validate;
use crate::raw::params::{LK_KV_APPEND_MAX_ROTARY, LK_KV_APPEND_THREADS};
use crate::raw::{rope_layout_code, KvAppendParams};
use crate::shapes::{KvAppendShape, RopeConfig};

const OP: &str = "kv_append";
/// From this many new tokens on, one block per token; below, one per (token, kv head).
const MANY_TOKENS: usize = 64;

/// The KV append entry points, one per dtype.
pub const KERNELS: &[Kernel<'static>] =
    kernels!["kv_append" => "kv_append_f32", "kv_append" => "kv_append_f16", "kv_append" => "kv_append_bf16"];

fn kernel_for(dtype: DType) -> Kernel<'static> {
    KERNELS[dtype.index()]
}

/// Rotates `q` and `k` in place and writes `k` and `v` to row `slot_mapping[t]` of the caches, with
/// `status[t]` saying whether it did (see the module docs). Does not synchronize.
///
/// # Errors
/// `InvalidShape` for a zero `head_dim`, or a `rotary_dim` that is odd, zero or `> head_dim`;
/// `UnsupportedHeadDim` for a `rotary_dim` over 256 (the kernel's limit);
/// `InvalidArgument` for a bad `theta` or scaling; `ShapeMismatch` for a wrong buffer length;
/// `SizeOverflow` past the limits; `Misaligned`; `Aliasing` when two written buffers overlap, or a written
/// buffer overlaps an input; `ContextMismatch`; backend errors.
#[allow(clippy::too_many_arguments)]
pub fn kv_append<T, B>(
    backend: &B,
    q: &mut impl DeviceSliceMut<T, B>,
    k: &mut impl DeviceSliceMut<T, B>,
    v: &impl DeviceSlice<T, B>,
    (k_cache, v_cache): (&mut impl DeviceSliceMut<T, B>, &mut impl DeviceSliceMut<T, B>),
    slot_mapping: &impl DeviceSlice<i64, B>,
    (positions, inv_freq): (&impl DeviceSlice<i32, B>, &impl DeviceSlice<f32, B>),
    status: &mut impl DeviceSliceMut<i32, B>,
    shape: KvAppendShape,
    cfg: RopeConfig,
) -> Result<()>
where
    T: Elem + DeviceValue,
    B: Backend,
{
    let KvAppendShape {
        tokens,
        n_heads,
        n_kv_heads,
        head_dim,
        ..
    } = shape;
    let dims = check(shape, &cfg)?;
    let elem = std::mem::size_of::<T>();
    let (q_addr, _qg) = validate::addr_of_mut(OP, "q", q, backend, &[tokens, n_heads, head_dim])?;
    let (k_addr, _kg) = validate::addr_of_mut(OP, "k", k, backend, &[tokens, n_kv_heads, head_dim])?;
    let (v_addr, _vg) = validate::addr_of(OP, "v", v, backend, &[tokens, n_kv_heads, head_dim])?;
    let q_bytes = tokens * n_heads * head_dim * elem; // lengths of existing buffers
    let kv_bytes = tokens * n_kv_heads * head_dim * elem;
    let tensors = Tensors {
        q: ("q", q_addr, q_bytes, n_heads * head_dim),
        k: ("k", k_addr, kv_bytes, n_kv_heads * head_dim),
        v: ("v", v_addr, kv_bytes, n_kv_heads * head_dim),
        fused: false,
    };
    launch(
        backend,
        tensors,
        (k_cache, v_cache),
        slot_mapping,
        (positions, inv_freq),
        status,
        (shape, dims),
        cfg,
    )
}

/// [`kv_append`] on a fused QKV projection's output `qkv: (tokens, n_heads + 2·n_kv_heads, head_dim)`
/// (each token's q heads, then its k heads, then its v heads): q and k rotated in place, k and v written to
/// the caches, no copy.
///
/// # Errors
/// As [`kv_append`], with `qkv` in place of `q`, `k` and `v`.
#[allow(clippy::too_many_arguments)]
pub fn kv_append_qkv<T, B>(
    backend: &B,
    qkv: &mut impl DeviceSliceMut<T, B>,
    (k_cache, v_cache): (&mut impl DeviceSliceMut<T, B>, &mut impl DeviceSliceMut<T, B>),
    slot_mapping: &impl DeviceSlice<i64, B>,
    (positions, inv_freq): (&impl DeviceSlice<i32, B>, &impl DeviceSlice<f32, B>),
    status: &mut impl DeviceSliceMut<i32, B>,
    shape: KvAppendShape,
    cfg: RopeConfig,
) -> Result<()>
where
    T: Elem + DeviceValue,
    B: Backend,
{
    let KvAppendShape {
        tokens,
        n_heads,
        n_kv_heads,
        head_dim,
        ..
    } = shape;
    let dims = check(shape, &cfg)?;
    let elem = std::mem::size_of::<T>();
    let heads = n_heads + 2 * n_kv_heads; // check() bounds both
    let (addr, _g) = validate::addr_of_mut(OP, "qkv", qkv, backend, &[tokens, heads, head_dim])?;
    let bytes = tokens * heads * head_dim * elem;
    let stride = heads * head_dim;
    // Inside the buffer (past it only when tokens == 0, which launches nothing).
    let at = |h: usize| addr + (h * head_dim * elem) as u64;
    let tensors = Tensors {
        q: ("qkv", addr, bytes, stride),
        k: ("qkv", at(n_heads), bytes, stride),
        v: ("qkv", at(n_heads + n_kv_heads), bytes, stride),
        fused: true,
    };
    launch(
        backend,
        tensors,
        (k_cache, v_cache),
        slot_mapping,
        (positions, inv_freq),
        status,
        (shape, dims),
        cfg,
    )
}

/// q, k and v as the kernel sees them: (name, address, bytes of the region they lie in, token stride).
/// `fused`: the three are one qkv buffer, whose regions interleave without sharing an element.
struct Tensors {
    q: (&'static str, u64, usize, usize),
    k: (&'static str, u64, usize, usize),
    v: (&'static str, u64, usize, usize),
    fused: bool,
}

/// The checks of the shape and `cfg` both entry points make first; the launch dimensions.
fn check(shape: KvAppendShape, cfg: &RopeConfig) -> Result<LaunchDims> {
    let KvAppendShape {
        tokens,
        n_heads,
        n_kv_heads,
        head_dim,
        ..
    } = shape;
    check_rotary(OP, head_dim, cfg)?;
    if cfg.rotary_dim > LK_KV_APPEND_MAX_ROTARY as usize {
        // The kernel's limit (its cos/sin table in shared memory), not the math's.
        return Err(Error::UnsupportedHeadDim {
            op: OP,
            head_dim: cfg.rotary_dim,
            supported: "a rotary_dim of at most 256",
        });
    }
    let limit = i32::MAX as u128;
    let rotations = (n_heads as u128 + 2 * n_kv_heads as u128) * (cfg.rotary_dim / 2) as u128;
    let row = (n_heads as u128 + 2 * n_kv_heads as u128) * head_dim as u128;
    if rotations >= limit || row >= limit {
        return Err(Error::SizeOverflow {
            op: OP,
            what: format!("{n_heads} + 2·{n_kv_heads} heads of {head_dim} are over the kernel's int limits"),
        });
    }
    // Many tokens: a block per token (its sincos once). Few (decode): a block per (token, kv head), so
    // the step spreads over more blocks; grid.y within CUDA's 65535.
    let groups = if tokens >= MANY_TOKENS { 1 } else { n_kv_heads.max(1) };
    if groups > 65535 {
        return Err(Error::SizeOverflow {
            op: OP,
            what: format!("n_kv_heads = {n_kv_heads} is over the grid limit 65535"),
        });
    }
    Ok(LaunchDims {
        grid: [validate::to_i32(OP, "tokens", tokens)? as u32, groups as u32, 1],
        block: [LK_KV_APPEND_THREADS, 1, 1],
        shared_bytes: 0,
    })
}

#[allow(clippy::too_many_arguments)]
fn launch<T: Elem + DeviceValue, B: Backend>(
    backend: &B,
    t: Tensors,
    (k_cache, v_cache): (&mut impl DeviceSliceMut<T, B>, &mut impl DeviceSliceMut<T, B>),
    slot_mapping: &impl DeviceSlice<i64, B>,
    (positions, inv_freq): (&impl DeviceSlice<i32, B>, &impl DeviceSlice<f32, B>),
    status: &mut impl DeviceSliceMut<i32, B>,
    (shape, dims): (KvAppendShape, LaunchDims),
    cfg: RopeConfig,
) -> Result<()> {
    let KvAppendShape {
        tokens,
        n_heads,
        n_kv_heads,
        head_dim,
        num_slots,
    } = shape;
    let elem = std::mem::size_of::<T>();
    let cache_dims = [num_slots, n_kv_heads, head_dim];
    let (kc_addr, _kcg) = validate::addr_of_mut(OP, "k_cache", k_cache, backend, &cache_dims)?;
    let (vc_addr, _vcg) = validate::addr_of_mut(OP, "v_cache", v_cache, backend, &cache_dims)?;
    let (slot_addr, _sg) = validate::addr_of(OP, "slot_mapping", slot_mapping, backend, &[tokens])?;
    let (pos_addr, _pg) = validate::addr_of(OP, "positions", positions, backend, &[tokens])?;
    let (freq_addr, _fg) = validate::addr_of(OP, "inv_freq", inv_freq, backend, &[cfg.rotary_dim / 2])?;
    let (status_addr, _stg) = validate::addr_of_mut(OP, "status", status, backend, &[tokens])?;
    let cache_bytes = num_slots * n_kv_heads * head_dim * elem; // lengths of existing buffers
                                                                // Everything written (q, k, the caches, status) against everything else; a fused qkv buffer is one
                                                                // region, checked once.
    let qkv = [(t.q.0, t.q.1, t.q.2), (t.k.0, t.k.1, t.k.2), (t.v.0, t.v.1, t.v.2)];
    let (qk, v): (&[_], &[_]) = if t.fused {
        (&qkv[..1], &[])
    } else {
        (&qkv[..2], &qkv[2..])
    };
    let written: Vec<_> = qk
        .iter()
        .copied()
        .chain([
            ("k_cache", kc_addr, cache_bytes),
            ("v_cache", vc_addr, cache_bytes),
            ("status", status_addr, tokens * 4),
        ])
        .collect();
    let read: Vec<_> = v
        .iter()
        .copied()
        .chain([
            ("slot_mapping", slot_addr, tokens * 8),
            ("positions", pos_addr, tokens * 4),
            ("inv_freq", freq_addr, cfg.rotary_dim / 2 * 4),
        ])
        .collect();
    for (i, w) in written.iter().enumerate() {
        for other in read.iter().chain(&written[i + 1..]) {
            validate::check_no_overlap(OP, *w, *other)?;
        }
    }
    // Blocks copy whole heads: 16-byte chunks when every head starts 16-byte aligned.
    let vectorized = [t.k.1, t.v.1, kc_addr, vc_addr].iter().all(|a| a % 16 == 0)
        && [t.k.3, t.v.3].iter().all(|s| s * elem % 16 == 0)
        && head_dim * elem % 16 == 0;
    let i32_of = |name, v| validate::to_i32(OP, name, v);
    let params = KvAppendParams {
        q: t.q.1 as *mut std::ffi::c_void,
        k: t.k.1 as *mut std::ffi::c_void,
        v: t.v.1 as *const std::ffi::c_void,
        k_cache: kc_addr as *mut std::ffi::c_void,
        v_cache: vc_addr as *mut std::ffi::c_void,
        slot_mapping: slot_addr as *const i64,
        positions: pos_addr as *const i32,
        inv_freq: freq_addr as *const f32,
        status: status_addr as *mut i32,
        q_token_stride: validate::to_i64(OP, "q token stride", t.q.3)?,
        k_token_stride: validate::to_i64(OP, "k token stride", t.k.3)?,
        v_token_stride: validate::to_i64(OP, "v token stride", t.v.3)?,
        num_slots: validate::to_i64(OP, "num_slots", num_slots)?,
        tokens: i32_of("tokens", tokens)?,
        n_heads: i32_of("n_heads", n_heads)?,
        n_kv_heads: i32_of("n_kv_heads", n_kv_heads)?,
        head_dim: i32_of("head_dim", head_dim)?,
        rotary_dim: i32_of("rotary_dim", cfg.rotary_dim)?,
        layout: rope_layout_code(cfg.layout),
        vectorized: i32::from(vectorized),
        reserved0: 0,
    };
    if tokens == 0 {
        return Ok(());
    }
    backend.launch(kernel_for(T::DTYPE), dims, &params)
}
