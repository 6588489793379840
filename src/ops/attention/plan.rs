//! Which attention kernel runs, on what grid, with how many KV splits: the launch plan of one call.
//!
//! | dtype | kernel | when |
//! |---|---|---|
//! | f32 | `attention_f32_d<bucket>` (v1, CUDA cores) | always; never split |
//! | f16, bf16 | `attention_<dtype>_d<bucket>` (v2 prefill: 16 packed rows per warp, `WARPS_M` warps) | `q_len · G > 16` |
//! | f16, bf16 | `attention_decode_<dtype>_d<bucket>` (v2 decode: 16 packed rows, `WARPS_KV` warps split each key tile) | `q_len · G <= 16` |
//!
//! `G = n_heads / n_kv_heads`; the tile constants come from `params.h` (`LK_ATTENTION_*`), the one source
//! the kernels use too.
//!
//! **The split rule** (f16, bf16). The unsplit grid has `blocks = row tiles · n_kv_heads · batch`. When
//! `blocks < 2 · sm_count` and the keys span more than one tile, the keys are cut into `n_splits` ranges of
//! `keys_per_split` (a multiple of `BLOCK_N`), chosen so the grid reaches two blocks per SM:
//! `target = ceil(2 · sm_count / blocks)`, `keys_per_split = max(floor(kv_len / target / BLOCK_N) · BLOCK_N,
//! min_keys)`, `n_splits = ceil(kv_len / keys_per_split)` (at most [`MAX_SPLITS`]), where `min_keys` is
//! `8 · rows` (the block's valid packed rows) rounded up to a tile: a split's workspace traffic (its
//! partial O and LSE in f32, written and read back) stays at most a quarter of its K/V traffic, which
//! keeps prefill with few blocks from splitting into more workspace than keys. Rounding the split down to
//! whole tiles keeps every K/V byte read once and can only add blocks. Each split leaves its normalized
//! partial O and LSE in the workspace and `attention_combine_<dtype>` merges them in split order.

use super::{MAX_GRID_YZ, MAX_SEQ_LEN, OP};
use crate::backend::{Kernel, LaunchDims};
use crate::dtype::DType;
use crate::error::{Error, Result};
use crate::ops::validate;
use crate::raw::params as tiles;
use crate::reference::AttentionTiling;
use crate::shapes::AttentionShape;

const MODULE_V2: &str = "attention";
const MODULE_F32: &str = "attention_f32";

/// The most KV splits of one call (params.h; the combine kernel keeps one weight per split in shared
/// memory).
pub const MAX_SPLITS: usize = tiles::LK_ATTENTION_MAX_SPLITS as usize;
/// `head_dim` must be a multiple of this.
pub const HEAD_DIM_STEP: usize = 8;
/// The largest supported `head_dim`.
pub const MAX_HEAD_DIM: usize = 256;
/// The head-dim buckets: each has its own tile configuration.
const BUCKETS: [usize; 3] = [64, 128, 256];
/// Packed rows per warp in the v2 kernels.
const ROWS_PER_WARP: usize = tiles::LK_ATTENTION_ROWS_PER_WARP as usize;
const STAGES: usize = tiles::LK_ATTENTION_STAGES as usize;

/// A kernel of the tensor-core family and its tile configuration.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Kind {
    /// v1 on CUDA cores (f32).
    V1,
    /// v2, warps over rows.
    Prefill,
    /// v2, warps over the keys of each tile.
    Decode,
}

/// The launch plan of one attention call.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct AttentionPlan {
    /// Which kernel family runs (v1, v2 prefill, v2 split-KV decode).
    pub kind: Kind,
    /// The entry point launched.
    pub kernel: Kernel<'static>,
    /// Grid, block and dynamic shared memory of the launch.
    pub dims: LaunchDims,
    /// Head-dim bucket (64, 128 or 256).
    pub bucket: usize,
    /// Packed rows per block.
    pub block_m: usize,
    /// Keys per tile.
    pub block_n: usize,
    /// Warps that split each tile's keys (1 for v1 and prefill).
    pub warps_kv: usize,
    /// 1 = unsplit.
    pub n_splits: usize,
    /// Keys each split covers (`kv_len` when unsplit).
    pub keys_per_split: usize,
}

impl AttentionPlan {
    /// Where the kernel rounds P, for [`crate::reference::attention_tiled`].
    pub fn tiling(&self) -> AttentionTiling {
        AttentionTiling {
            block_n: self.block_n,
            warps_kv: self.warps_kv,
            keys_per_split: self.keys_per_split.max(self.block_n).div_ceil(self.block_n) * self.block_n,
        }
    }

    /// f32 elements of split-KV workspace the plan needs: partial O and LSE of every split (0 unsplit).
    pub fn workspace_len(&self, shape: AttentionShape) -> usize {
        if self.n_splits == 1 {
            return 0;
        }
        self.n_splits * shape.batch * shape.n_heads * shape.q_len * (shape.head_dim + 1)
    }

    /// The combine kernel's grid: one warp per (batch, head, query) row.
    pub fn combine_dims(&self, shape: AttentionShape) -> LaunchDims {
        let threads = tiles::LK_ATTENTION_COMBINE_THREADS;
        let rows = shape.batch * shape.n_heads * shape.q_len;
        LaunchDims {
            grid: [rows.div_ceil(threads as usize / 32) as u32, 1, 1],
            block: [threads, 1, 1],
            shared_bytes: 0,
        }
    }

    /// The combine kernel of `dtype`.
    pub fn combine_kernel(dtype: DType) -> Kernel<'static> {
        Kernel {
            module: MODULE_V2,
            name: if dtype == DType::F16 {
                "attention_combine_f16"
            } else {
                "attention_combine_bf16"
            },
        }
    }
}

/// How the op picks the KV split count.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Default)]
pub enum SplitKv {
    /// The split rule of the module docs.
    #[default]
    Auto,
    /// Exactly this many splits, `1..=MAX_SPLITS` (splits past the last key see no key). f16/bf16 only.
    Fixed(usize),
}

/// v1's tiles (f32): `AttentionTraits` in dev/attention/v1_cuda_cores.cu, frozen with the rung.
fn v1_tiles(bucket: usize) -> (usize, usize) {
    match bucket {
        64 => (32, 64),
        128 => (32, 32),
        _ => (16, 32),
    }
}

/// (WARPS_M or WARPS_KV, BLOCK_N) of a v2 kind and bucket, from params.h.
fn v2_tiles(kind: Kind, bucket: usize) -> (usize, usize) {
    let (w, n) = match (kind, bucket) {
        (Kind::Prefill, 64) => (
            tiles::LK_ATTENTION_PREFILL_D64_WARPS_M,
            tiles::LK_ATTENTION_PREFILL_D64_BLOCK_N,
        ),
        (Kind::Prefill, 128) => (
            tiles::LK_ATTENTION_PREFILL_D128_WARPS_M,
            tiles::LK_ATTENTION_PREFILL_D128_BLOCK_N,
        ),
        (Kind::Prefill, _) => (
            tiles::LK_ATTENTION_PREFILL_D256_WARPS_M,
            tiles::LK_ATTENTION_PREFILL_D256_BLOCK_N,
        ),
        (_, 64) => (
            tiles::LK_ATTENTION_DECODE_D64_WARPS_KV,
            tiles::LK_ATTENTION_DECODE_D64_BLOCK_N,
        ),
        (_, 128) => (
            tiles::LK_ATTENTION_DECODE_D128_WARPS_KV,
            tiles::LK_ATTENTION_DECODE_D128_BLOCK_N,
        ),
        (_, _) => (
            tiles::LK_ATTENTION_DECODE_D256_WARPS_KV,
            tiles::LK_ATTENTION_DECODE_D256_BLOCK_N,
        ),
    };
    (w as usize, n as usize)
}

/// The head-dim bucket of `head_dim`, or `UnsupportedHeadDim`.
pub fn bucket(op: &'static str, head_dim: usize) -> Result<usize> {
    if head_dim == 0 || head_dim % HEAD_DIM_STEP != 0 || head_dim > MAX_HEAD_DIM {
        return Err(Error::UnsupportedHeadDim {
            op,
            head_dim,
            supported: "a multiple of 8, at most 256",
        });
    }
    Ok(BUCKETS.into_iter().find(|&b| head_dim <= b).unwrap_or(MAX_HEAD_DIM))
}

/// Dynamic shared memory of one block. v1: Q in f32, K (4-byte pad per row) and V in `T`, at the runtime
/// head_dim. v2: Q (BLOCK_M rows) and STAGES x (K, V) tiles of BLOCK_N rows, all `T` at the bucket's width.
pub fn shared_bytes(kind: Kind, bucket: usize, block_m: usize, block_n: usize, head_dim: usize, dtype: DType) -> usize {
    let elem = dtype.size_bytes();
    match kind {
        Kind::V1 => block_m * head_dim * 4 + block_n * (head_dim + 4 / elem) * elem + block_n * head_dim * elem,
        _ => (block_m + 2 * STAGES * block_n) * bucket * elem,
    }
}

/// The plan of a call: kernel, grid, tiles and splits. `Err` for an unsupported head_dim, a split request
/// out of range or on f32, or a block that needs more shared memory than `max_shared`.
/// Requires `n_heads % n_kv_heads == 0` and sizes the op has checked.
pub fn plan(
    op: &'static str,
    shape: AttentionShape,
    dtype: DType,
    sm_count: u32,
    max_shared: u32,
    split: SplitKv,
) -> Result<AttentionPlan> {
    let bucket = bucket(op, shape.head_dim)?;
    let group = shape.n_heads / shape.n_kv_heads;
    let packed_rows = shape.q_len.saturating_mul(group);
    let (kind, block_m, block_n, warps, warps_kv) = if dtype == DType::F32 {
        let (m, n) = v1_tiles(bucket);
        (Kind::V1, m, n, 4, 1)
    } else if packed_rows <= ROWS_PER_WARP {
        let (w, n) = v2_tiles(Kind::Decode, bucket);
        (Kind::Decode, ROWS_PER_WARP, n, w, w)
    } else {
        let (w, n) = v2_tiles(Kind::Prefill, bucket);
        (Kind::Prefill, ROWS_PER_WARP * w, n, w, 1)
    };
    let shared = shared_bytes(kind, bucket, block_m, block_n, shape.head_dim, dtype);
    if shared > max_shared as usize {
        return Err(Error::InvalidArgument {
            op,
            reason: format!(
                "head_dim {} needs {shared} bytes of shared memory per block; this device allows {max_shared}",
                shape.head_dim
            ),
        });
    }
    let row_tiles = packed_rows.div_ceil(block_m);
    let blocks = row_tiles * shape.n_kv_heads * shape.batch;
    let (n_splits, keys_per_split) = match (kind, split) {
        (Kind::V1, SplitKv::Fixed(n)) if n != 1 => {
            return Err(Error::InvalidArgument {
                op,
                reason: format!("f32 attention (v1) does not split the keys; asked for {n} splits"),
            })
        }
        (Kind::V1, _) => (1, shape.kv_len),
        (_, SplitKv::Fixed(n)) => {
            if n == 0 || n > MAX_SPLITS {
                return Err(Error::InvalidArgument {
                    op,
                    reason: format!("{n} KV splits: expected 1..={MAX_SPLITS}"),
                });
            }
            let tiles_per_split = shape.kv_len.div_ceil(block_n).div_ceil(n).max(1);
            (
                n,
                if n == 1 {
                    shape.kv_len
                } else {
                    tiles_per_split * block_n
                },
            )
        }
        (_, SplitKv::Auto) => auto_split(
            blocks,
            packed_rows.min(block_m),
            shape.kv_len,
            block_n,
            sm_count as usize,
        ),
    };
    let kernel_name = kernel_name(kind, dtype, bucket);
    let grid_x = row_tiles
        .checked_mul(n_splits)
        .filter(|&x| x <= i32::MAX as usize)
        .ok_or_else(|| Error::SizeOverflow {
            op,
            what: format!("{row_tiles} row tiles x {n_splits} splits is over the grid limit"),
        })?;
    Ok(AttentionPlan {
        kind,
        kernel: Kernel {
            module: if kind == Kind::V1 { MODULE_F32 } else { MODULE_V2 },
            name: kernel_name,
        },
        dims: LaunchDims {
            grid: [grid_x as u32, shape.n_kv_heads as u32, shape.batch as u32],
            block: [(warps * 32) as u32, 1, 1],
            shared_bytes: shared as u32,
        },
        bucket,
        block_m,
        block_n,
        warps_kv,
        n_splits,
        keys_per_split,
    })
}

/// The split rule of the module docs: `(n_splits, keys_per_split)` for `blocks` unsplit blocks of
/// `rows` valid packed rows each.
pub fn auto_split(blocks: usize, rows: usize, kv_len: usize, block_n: usize, sm_count: usize) -> (usize, usize) {
    let want = 2 * sm_count.max(1);
    if blocks == 0 || blocks >= want || kv_len <= block_n {
        return (1, kv_len);
    }
    let target = want.div_ceil(blocks);
    // A split writes and the combine reads rows · (head_dim + 1) f32 (8 bytes per row and column); its
    // K/V are keys · head_dim · 4 bytes. Keys >= 8 · rows keeps the first at most a quarter of the second.
    let min_keys = (8 * rows).div_ceil(block_n).max(1) * block_n;
    let mut keys = (kv_len / target / block_n * block_n).max(min_keys);
    if kv_len.div_ceil(keys) > MAX_SPLITS {
        keys = kv_len.div_ceil(MAX_SPLITS).div_ceil(block_n) * block_n;
    }
    let n = kv_len.div_ceil(keys);
    if n <= 1 {
        (1, kv_len)
    } else {
        (n, keys)
    }
}

fn kernel_name(kind: Kind, dtype: DType, bucket: usize) -> &'static str {
    // Every name here is an entry point of cuda/attention.cu or cuda/attention_f32.cu (KERNELS lists them).
    match (kind, dtype, bucket) {
        (Kind::V1, _, 64) => "attention_f32_d64",
        (Kind::V1, _, 128) => "attention_f32_d128",
        (Kind::V1, _, _) => "attention_f32_d256",
        (Kind::Prefill, DType::F16, 64) => "attention_f16_d64",
        (Kind::Prefill, DType::F16, 128) => "attention_f16_d128",
        (Kind::Prefill, DType::F16, _) => "attention_f16_d256",
        (Kind::Prefill, _, 64) => "attention_bf16_d64",
        (Kind::Prefill, _, 128) => "attention_bf16_d128",
        (Kind::Prefill, _, _) => "attention_bf16_d256",
        (Kind::Decode, DType::F16, 64) => "attention_decode_f16_d64",
        (Kind::Decode, DType::F16, 128) => "attention_decode_f16_d128",
        (Kind::Decode, DType::F16, _) => "attention_decode_f16_d256",
        (Kind::Decode, _, 64) => "attention_decode_bf16_d64",
        (Kind::Decode, _, 128) => "attention_decode_bf16_d128",
        (Kind::Decode, _, _) => "attention_decode_bf16_d256",
    }
}

/// Every entry point of the attention modules the op launches.
pub const KERNELS: &[Kernel<'static>] = kernels![
    MODULE_F32 => "attention_f32_d64",
    MODULE_F32 => "attention_f32_d128",
    MODULE_F32 => "attention_f32_d256",
    MODULE_V2 => "attention_f16_d64",
    MODULE_V2 => "attention_f16_d128",
    MODULE_V2 => "attention_f16_d256",
    MODULE_V2 => "attention_bf16_d64",
    MODULE_V2 => "attention_bf16_d128",
    MODULE_V2 => "attention_bf16_d256",
    MODULE_V2 => "attention_decode_f16_d64",
    MODULE_V2 => "attention_decode_f16_d128",
    MODULE_V2 => "attention_decode_f16_d256",
    MODULE_V2 => "attention_decode_bf16_d64",
    MODULE_V2 => "attention_decode_bf16_d128",
    MODULE_V2 => "attention_decode_bf16_d256",
    MODULE_V2 => "attention_combine_f16",
    MODULE_V2 => "attention_combine_bf16",
];

/// v1's f16/bf16 instantiations, kept for the ladder's measurements (dev/attention/README.md); the op
/// never launches them.
pub const V1_LADDER_KERNELS: &[Kernel<'static>] = kernels![
    MODULE_F32 => "attention_v1_f16_d64",
    MODULE_F32 => "attention_v1_f16_d128",
    MODULE_F32 => "attention_v1_f16_d256",
    MODULE_F32 => "attention_v1_bf16_d64",
    MODULE_F32 => "attention_v1_bf16_d128",
    MODULE_F32 => "attention_v1_bf16_d256",
];

/// The shape checks every entry point makes before planning.
pub(super) fn check_shape(s: AttentionShape, kv_capacity: usize) -> Result<()> {
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
    bucket(OP, s.head_dim)?;
    // The kernel steps int row and key indices by up to one tile (64) past q_len and kv_len.
    for (name, v) in [("q_len", s.q_len), ("kv_len", kv_capacity)] {
        if v > MAX_SEQ_LEN {
            return Err(Error::SizeOverflow {
                op: OP,
                what: format!("{name} = {v} is over the kernel's limit {MAX_SEQ_LEN}"),
            });
        }
    }
    for (name, v) in [("n_kv_heads", s.n_kv_heads), ("batch", s.batch), ("n_heads", s.n_heads)] {
        if v > MAX_GRID_YZ {
            return Err(Error::SizeOverflow {
                op: OP,
                what: format!("{name} = {v} is over the grid limit {MAX_GRID_YZ}"),
            });
        }
    }
    let packed_rows = s.q_len.saturating_mul(s.n_heads / s.n_kv_heads);
    if packed_rows > MAX_SEQ_LEN {
        return Err(Error::SizeOverflow {
            op: OP,
            what: format!(
                "q_len · n_heads / n_kv_heads = {packed_rows} is over the kernel's limit {MAX_SEQ_LEN} (packed GQA rows)"
            ),
        });
    }
    if kv_capacity < s.kv_len {
        return Err(Error::InvalidShape {
            op: OP,
            reason: format!(
                "kv_len ({}) is larger than the KV cache capacity ({kv_capacity})",
                s.kv_len
            ),
        });
    }
    Ok(())
}

/// `Option<usize>` window side as the kernel's `int32` (-1 = unbounded); values past every key are
/// clamped (a window of `kv_len + q_len` or more is unbounded).
pub(super) fn window_field(side: Option<usize>, s: AttentionShape) -> i32 {
    side.map_or(-1, |w| w.min(s.kv_len + s.q_len).min(i32::MAX as usize) as i32)
}
