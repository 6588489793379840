//! Causal flash attention, forward: `O = softmax(Q·Kᵀ·scale + mask)·V` and the log-sum-exp of each row.
//!
//! | | |
//! |---|---|
//! | dtypes | `f32`, `f16`, `bf16` for q, k, v, o (one dtype); `lse` is f32 |
//! | layouts | `q, o: (batch, q_len, n_heads, head_dim)`, `k, v: (batch, kv_len, n_kv_heads, head_dim)`, `lse: (batch, n_heads, q_len)`; contiguous |
//! | GQA | `n_heads % n_kv_heads == 0`; query head `h` reads kv head `h / (n_heads / n_kv_heads)` (MQA: `n_kv_heads = 1`) |
//! | masking | causal is bottom-right aligned: query `i` sees keys `j <= kv_len - q_len + i` (prefill with a KV cache, decode with `q_len = 1`); a query that sees no key gives `o = 0`, `lse = -inf` |
//! | head_dim | a multiple of 8, at most 256 (buckets 64, 128, 256 pick the tile config) |
//! | kernel | `cuda/attention.cu` v1: the query heads of a kv head packed as rows (GQA packing), one 128-thread block per (16 or 32 packed rows, kv head, batch); K/V tiles in shared memory; online softmax; the score matrix is never stored |
//! | numerics | `q·k` in f32 (fma), softmax in f32 with `exp2` (scale folded with `log2 e`), `P` kept in f32, `O` accumulated in f32 and rounded to `T` once; `lse` in f32 |
//! | zero sizes | `batch == 0` or `q_len == 0`: a no-op; `kv_len == 0`: `o = 0`, `lse = -inf` |
//! | NaN, inf | a NaN or `+inf` score makes its row NaN in `o` and `lse` (never the `-inf` "no key" marker); a `-inf` score is a key of weight 0; scores past f32's range are infinities (see [`crate::reference::attention`](mod@crate::reference::attention)) |
//! | limits | `batch, n_heads ≤ 65535` (grid), `kv_len` and `q_len · n_heads / n_kv_heads ≤ i32::MAX - 64`, each tensor's element count ≤ `i64::MAX` |
//!
//! A KV cache: [`attention_kv_cache`] reads a preallocated `(batch, kv_capacity, n_kv_heads, head_dim)`
//! cache of which the first `kv_len` rows of each sequence are filled (decode: `q_len = 1`, the new token
//! at position `kv_len - 1`); for `batch = 1` a prefix of the cache is also contiguous and [`attention`]
//! takes it directly.

use crate::backend::{Backend, DeviceSlice, DeviceSliceMut, DeviceValue, Kernel, LaunchDims};
use crate::dtype::{DType, Elem};
use crate::error::{Error, Result};
use crate::ops::validate;
use crate::raw::AttentionParams;
use crate::shapes::{AttentionConfig, AttentionShape};

const OP: &str = "attention";

/// The attention entry points: `attention_<dtype>_d<head-dim bucket>`.
pub const KERNELS: &[Kernel<'static>] = &[
    Kernel {
        module: "attention",
        name: "attention_f32_d64",
    },
    Kernel {
        module: "attention",
        name: "attention_f32_d128",
    },
    Kernel {
        module: "attention",
        name: "attention_f32_d256",
    },
    Kernel {
        module: "attention",
        name: "attention_f16_d64",
    },
    Kernel {
        module: "attention",
        name: "attention_f16_d128",
    },
    Kernel {
        module: "attention",
        name: "attention_f16_d256",
    },
    Kernel {
        module: "attention",
        name: "attention_bf16_d64",
    },
    Kernel {
        module: "attention",
        name: "attention_bf16_d128",
    },
    Kernel {
        module: "attention",
        name: "attention_bf16_d256",
    },
];

/// `head_dim` must be a multiple of this (the kernel's S loop steps over 8 dims).
pub const HEAD_DIM_STEP: usize = 8;
/// The largest supported `head_dim`.
pub const MAX_HEAD_DIM: usize = 256;

/// `AttentionTraits` of one head-dim bucket in `cuda/attention.cu`.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
struct Bucket {
    head_dim_max: usize,
    /// Query rows per block (`WARPS · ROWS_PER_WARP`).
    block_m: usize,
    /// Keys per shared-memory tile (`32 · KEYS_PER_LANE`).
    block_n: usize,
    /// Index of the f32 kernel of this bucket in `KERNELS` (f16 is +3, bf16 +6).
    kernel_index: usize,
}

const THREADS: u32 = 128;
const BUCKETS: [Bucket; 3] = [
    Bucket {
        head_dim_max: 64,
        block_m: 32,
        block_n: 64,
        kernel_index: 0,
    },
    Bucket {
        head_dim_max: 128,
        block_m: 32,
        block_n: 32,
        kernel_index: 1,
    },
    Bucket {
        head_dim_max: 256,
        block_m: 16,
        block_n: 32,
        kernel_index: 2,
    },
];
/// The largest `q_len` and `kv_len` (and KV cache capacity): the kernel's `int` indices run up to one
/// tile past them.
const MAX_SEQ_LEN: usize = i32::MAX as usize - 64;
/// CUDA's limit on `gridDim.y` and `gridDim.z` (heads and batch).
const MAX_GRID_YZ: usize = 65535;

fn bucket(head_dim: usize) -> Result<Bucket> {
    if head_dim % HEAD_DIM_STEP != 0 || head_dim > MAX_HEAD_DIM {
        return Err(Error::UnsupportedHeadDim {
            op: OP,
            head_dim,
            supported: "a multiple of 8, at most 256",
        });
    }
    // head_dim > 0 was checked before; the buckets cover 8..=256.
    Ok(*BUCKETS
        .iter()
        .find(|b| head_dim <= b.head_dim_max)
        .unwrap_or(&BUCKETS[2]))
}

/// Dynamic shared memory of one block, as `cuda/attention.cu` lays it out: the Q tile in f32, the K tile
/// with a 4-byte pad per row, the V tile, both in `T`.
fn shared_bytes(b: Bucket, head_dim: usize, dtype: DType) -> usize {
    let elem = dtype.size_bytes();
    let k_pad = 4 / elem;
    b.block_m * head_dim * 4 + b.block_n * (head_dim + k_pad) * elem + b.block_n * head_dim * elem
}

/// Grid, block and shared memory of one launch. The `G = n_heads / n_kv_heads` query heads of a kv head
/// are packed into `q_len · G` rows that share each K/V tile; grid `(ceil(q_len · G / BLOCK_M), n_kv_heads,
/// batch)`, 128 threads. The tile sizes come from the head-dim bucket (smaller tiles for larger heads keep
/// the O accumulator of `ROWS_PER_WARP · head_dim_max / 32` floats per lane in registers).
/// Requires `n_heads % n_kv_heads == 0` (checked before).
fn launch_config(shape: AttentionShape, dtype: DType, max_shared: u32) -> Result<(LaunchDims, usize)> {
    let b = bucket(shape.head_dim)?;
    for (name, v) in [("n_heads", shape.n_heads), ("batch", shape.batch)] {
        if v > MAX_GRID_YZ {
            return Err(Error::SizeOverflow {
                op: OP,
                what: format!("{name} = {v} is over the grid limit {MAX_GRID_YZ}"),
            });
        }
    }
    let packed_rows = shape.q_len.saturating_mul(shape.n_heads / shape.n_kv_heads);
    if packed_rows > MAX_SEQ_LEN {
        return Err(Error::SizeOverflow {
            op: OP,
            what: format!(
                "q_len · n_heads / n_kv_heads = {packed_rows} is over the kernel's limit {MAX_SEQ_LEN} (packed GQA rows)"
            ),
        });
    }
    let shared = shared_bytes(b, shape.head_dim, dtype);
    if shared > max_shared as usize {
        return Err(Error::InvalidArgument {
            op: OP,
            reason: format!(
                "head_dim {} needs {shared} bytes of shared memory per block; this device allows {max_shared}",
                shape.head_dim
            ),
        });
    }
    let dims = LaunchDims {
        grid: [
            validate::to_i32(OP, "row tiles", packed_rows.div_ceil(b.block_m))? as u32,
            shape.n_kv_heads as u32,
            shape.batch as u32,
        ],
        block: [THREADS, 1, 1],
        shared_bytes: shared as u32,
    };
    let kernel = b.kernel_index + 3 * dtype.index();
    Ok((dims, kernel))
}

/// `o ← attention(q, k, v)` (see the module docs for layouts, masking and numerics).
///
/// # Errors
/// `InvalidShape` for a zero `n_heads`, `n_kv_heads` or `head_dim`, or `n_heads % n_kv_heads != 0` (zero
/// `batch` or `q_len` is a no-op; zero `kv_len` gives `o = 0`, `lse = -inf`); `UnsupportedHeadDim` unless
/// `head_dim` is a multiple of 8 and at most 256; `ShapeMismatch` for a wrong buffer length;
/// `InvalidArgument` for a non-finite or zero `softmax_scale`; `SizeOverflow` past the limits in the
/// module docs; `Misaligned`; `Aliasing` when `o` overlaps `q`, `k` or `v`; backend errors.
pub fn attention<T, B>(
    backend: &B,
    q: &impl DeviceSlice<T, B>,
    k: &impl DeviceSlice<T, B>,
    v: &impl DeviceSlice<T, B>,
    o: &mut impl DeviceSliceMut<T, B>,
    shape: AttentionShape,
    cfg: AttentionConfig,
) -> Result<()>
where
    T: Elem + DeviceValue,
    B: Backend,
{
    launch::<T, B>(backend, q, k, v, o, None, shape, shape.kv_len, cfg)
}

/// [`attention`] that also writes `lse: (batch, n_heads, q_len)`, the natural-log log-sum-exp of each
/// row's scaled scores (`-inf` for a row that sees no key), as the backward pass and split-KV merging need.
///
/// # Errors
/// As [`attention`]; `ShapeMismatch` for a wrong `lse` length, `Aliasing` when `lse` overlaps another
/// tensor.
#[allow(clippy::too_many_arguments)]
pub fn attention_with_lse<T, B>(
    backend: &B,
    q: &impl DeviceSlice<T, B>,
    k: &impl DeviceSlice<T, B>,
    v: &impl DeviceSlice<T, B>,
    o: &mut impl DeviceSliceMut<T, B>,
    lse: &mut impl DeviceSliceMut<f32, B>,
    shape: AttentionShape,
    cfg: AttentionConfig,
) -> Result<()>
where
    T: Elem + DeviceValue,
    B: Backend,
{
    let s = shape;
    let (lse_addr, _lse_guard) = validate::addr_of_mut(OP, "lse", lse, backend, &[s.batch, s.n_heads, s.q_len])?;
    let lse_bytes = validate::checked_product(OP, "lse bytes", &[s.batch, s.n_heads, s.q_len, 4])?;
    launch::<T, B>(
        backend,
        q,
        k,
        v,
        o,
        Some((lse_addr, lse_bytes)),
        shape,
        shape.kv_len,
        cfg,
    )
}

/// [`attention`] over a batched KV cache: `k_cache, v_cache: (batch, kv_capacity, n_kv_heads, head_dim)`,
/// of which each sequence's first `shape.kv_len` rows are attended (the rest, not yet written, is never
/// read). This is the decode and chunked-prefill layout of an engine that preallocates its cache; with
/// `kv_capacity == kv_len` it is [`attention`].
///
/// # Errors
/// As [`attention`]; `InvalidShape` when `kv_len > kv_capacity`; `ShapeMismatch` unless the caches hold
/// `batch·kv_capacity·n_kv_heads·head_dim` elements.
#[allow(clippy::too_many_arguments)]
pub fn attention_kv_cache<T, B>(
    backend: &B,
    q: &impl DeviceSlice<T, B>,
    k_cache: &impl DeviceSlice<T, B>,
    v_cache: &impl DeviceSlice<T, B>,
    o: &mut impl DeviceSliceMut<T, B>,
    shape: AttentionShape,
    kv_capacity: usize,
    cfg: AttentionConfig,
) -> Result<()>
where
    T: Elem + DeviceValue,
    B: Backend,
{
    launch::<T, B>(backend, q, k_cache, v_cache, o, None, shape, kv_capacity, cfg)
}

#[allow(clippy::too_many_arguments)]
fn launch<T, B>(
    backend: &B,
    q: &impl DeviceSlice<T, B>,
    k: &impl DeviceSlice<T, B>,
    v: &impl DeviceSlice<T, B>,
    o: &mut impl DeviceSliceMut<T, B>,
    lse: Option<(u64, usize)>,
    shape: AttentionShape,
    kv_capacity: usize,
    cfg: AttentionConfig,
) -> Result<()>
where
    T: Elem + DeviceValue,
    B: Backend,
{
    let s = shape;
    // Heads and head_dim describe the model and must be > 0; batch, q_len and kv_len may be 0.
    for (name, v) in [
        ("n_heads", s.n_heads),
        ("n_kv_heads", s.n_kv_heads),
        ("head_dim", s.head_dim),
    ] {
        validate::check_positive(OP, name, v)?;
    }
    if s.n_heads % s.n_kv_heads != 0 {
        return Err(Error::InvalidShape {
            op: OP,
            reason: format!(
                "n_heads ({}) must be a multiple of n_kv_heads ({})",
                s.n_heads, s.n_kv_heads
            ),
        });
    }
    // The kernel steps int row and key indices by up to one tile (64) past q_len and kv_len.
    for (name, v) in [("q_len", s.q_len), ("kv_len", kv_capacity)] {
        if v > MAX_SEQ_LEN {
            return Err(Error::SizeOverflow {
                op: OP,
                what: format!("{name} = {v} is over the kernel's limit {MAX_SEQ_LEN}"),
            });
        }
    }
    let (scale, scale_log2) = cfg
        .checked_scale(s.head_dim)
        .map_err(|reason| Error::InvalidArgument { op: OP, reason })?;
    let (dims, kernel_index) = launch_config(s, T::DTYPE, backend.max_shared_bytes_per_block())?;
    let q_dims = [s.batch, s.q_len, s.n_heads, s.head_dim];
    if kv_capacity < s.kv_len {
        return Err(Error::InvalidShape {
            op: OP,
            reason: format!(
                "kv_len ({}) is larger than the KV cache capacity ({kv_capacity})",
                s.kv_len
            ),
        });
    }
    // k and v as stored: (batch, kv_capacity, n_kv_heads, head_dim), of which the first kv_len rows count.
    let kv_dims = [s.batch, kv_capacity, s.n_kv_heads, s.head_dim];
    let elem = std::mem::size_of::<T>();
    let q_elems = validate::checked_product(OP, "q", &q_dims)?;
    let kv_elems = validate::checked_product(OP, "k", &kv_dims)?;
    validate::to_i64(OP, "q elements", q_elems)?;
    validate::to_i64(OP, "k elements", kv_elems)?;
    let (q_addr, _q_guard) = validate::addr_of(OP, "q", q, backend, &q_dims)?;
    let (k_addr, _k_guard) = validate::addr_of(OP, "k", k, backend, &kv_dims)?;
    let (v_addr, _v_guard) = validate::addr_of(OP, "v", v, backend, &kv_dims)?;
    let (o_addr, _o_guard) = validate::addr_of_mut(OP, "o", o, backend, &q_dims)?;
    let o_region = ("o", o_addr, q_elems * elem);
    for other in [
        ("q", q_addr, q_elems * elem),
        ("k", k_addr, kv_elems * elem),
        ("v", v_addr, kv_elems * elem),
    ] {
        validate::check_no_overlap(OP, o_region, other)?;
    }
    let lse_ptr = match lse {
        Some((addr, bytes)) => {
            validate::check_align(OP, "lse", addr, 4)?;
            let lse_region = ("lse", addr, bytes);
            validate::check_no_overlap(OP, lse_region, ("o", o_addr, q_elems * elem))?;
            for other in [
                ("q", q_addr, q_elems * elem),
                ("k", k_addr, kv_elems * elem),
                ("v", v_addr, kv_elems * elem),
            ] {
                validate::check_no_overlap(OP, lse_region, other)?;
            }
            addr as *mut f32
        }
        None => std::ptr::null_mut(),
    };

    let hd = s.head_dim as i64;
    let q_row = (s.n_heads * s.head_dim) as i64;
    let kv_row = (s.n_kv_heads * s.head_dim) as i64;
    let i32_of = |name, v| validate::to_i32(OP, name, v);
    let params = AttentionParams {
        o: o_addr as *mut std::ffi::c_void,
        lse: lse_ptr,
        q: q_addr as *const std::ffi::c_void,
        k: k_addr as *const std::ffi::c_void,
        v: v_addr as *const std::ffi::c_void,
        q_batch_stride: q_row * s.q_len as i64,
        q_row_stride: q_row,
        q_head_stride: hd,
        k_batch_stride: kv_row * kv_capacity as i64,
        k_row_stride: kv_row,
        k_head_stride: hd,
        v_batch_stride: kv_row * kv_capacity as i64,
        v_row_stride: kv_row,
        v_head_stride: hd,
        o_batch_stride: q_row * s.q_len as i64,
        o_row_stride: q_row,
        o_head_stride: hd,
        batch: i32_of("batch", s.batch)?,
        q_len: i32_of("q_len", s.q_len)?,
        kv_len: i32_of("kv_len", s.kv_len)?,
        n_heads: i32_of("n_heads", s.n_heads)?,
        n_kv_heads: i32_of("n_kv_heads", s.n_kv_heads)?,
        head_dim: i32_of("head_dim", s.head_dim)?,
        heads_per_kv_head: i32_of("heads_per_kv_head", s.n_heads / s.n_kv_heads)?,
        causal: i32::from(cfg.causal),
        // Both fit in i32, so their difference fits too.
        causal_offset: s.kv_len as i32 - s.q_len as i32,
        softmax_scale: scale,
        softmax_scale_log2: scale_log2,
        reserved0: 0,
    };
    if s.batch == 0 || s.q_len == 0 {
        return Ok(()); // no query: o and lse are empty (kv_len == 0 still launches: o = 0, lse = -inf)
    }
    backend.launch(KERNELS[kernel_index], dims, &params)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn shape(head_dim: usize) -> AttentionShape {
        AttentionShape {
            batch: 2,
            q_len: 33,
            kv_len: 40,
            n_heads: 4,
            n_kv_heads: 2,
            head_dim,
        }
    }

    #[test]
    fn buckets_and_kernels() {
        let (d, idx) = launch_config(shape(64), DType::F32, 48 * 1024).unwrap();
        assert_eq!((d.grid, idx), ([3, 2, 2], 0)); // 33 queries x 2 heads per kv head = 66 packed rows
        let (_, idx) = launch_config(shape(72), DType::BF16, 227 * 1024).unwrap();
        assert_eq!(KERNELS[idx].name, "attention_bf16_d128");
        let (d, idx) = launch_config(shape(256), DType::F16, 227 * 1024).unwrap();
        assert_eq!((KERNELS[idx].name, d.grid[0]), ("attention_f16_d256", 5));
        assert!(matches!(bucket(12), Err(Error::UnsupportedHeadDim { .. })));
        assert!(matches!(bucket(264), Err(Error::UnsupportedHeadDim { .. })));
    }

    #[test]
    fn shared_memory_matches_the_kernel_layout() {
        // d128 bf16: Q 32·128·4 + K 32·(128+2)·2 + V 32·128·2.
        assert_eq!(shared_bytes(BUCKETS[1], 128, DType::BF16), 16384 + 8320 + 8192);
        // d256 f32 needs the opt-in limit (over 48 KiB): rejected where the device allows less.
        let e = launch_config(shape(256), DType::F32, 48 * 1024).unwrap_err();
        assert!(matches!(e, Error::InvalidArgument { .. }), "{e}");
    }
}
