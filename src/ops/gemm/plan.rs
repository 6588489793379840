//! GEMM's launch plans: which rung, tile and split a call runs, its grid, and its entry points.

use crate::backend::{Kernel, LaunchDims};
use crate::dtype::DType;
use crate::error::{Error, Result};
use crate::ops::validate;
use crate::raw::params as tiles;
use crate::shapes::{GemmConfig, GemmShape};

pub(super) const OP: &str = "gemm";

/// Modules of the three rungs: v3 (f16/bf16), v2 (f16/bf16 operands not 16-byte aligned), v1 (f32),
/// and of the decode path (f16/bf16, m ≤ 16, `x·Wᵀ`).
const MODULE_V3: &str = "gemm";
const MODULE_DECODE: &str = "gemm_decode";
const MODULE_V2: &str = "gemm_v2";
const MODULE_F32: &str = "gemm_f32";

/// Every GEMM entry point: v1 (f32), v2 (f16, bf16), v3 (dtype x config x layout, `cuda/gemm.cu`'s table)
/// and the decode path's kernel and split-K reduction (f16, bf16).
pub const KERNELS: &[Kernel<'static>] = kernels![
    MODULE_F32 => "gemm_f32",
    MODULE_V2 => "gemm_v2_f16",
    MODULE_V2 => "gemm_v2_bf16",
    MODULE_V3 => "gemm_f16_nn_wide", MODULE_V3 => "gemm_f16_nt_wide",
    MODULE_V3 => "gemm_f16_tn_wide", MODULE_V3 => "gemm_f16_tt_wide",
    MODULE_V3 => "gemm_f16_nn_large", MODULE_V3 => "gemm_f16_nt_large",
    MODULE_V3 => "gemm_f16_tn_large", MODULE_V3 => "gemm_f16_tt_large",
    MODULE_V3 => "gemm_f16_nn_small", MODULE_V3 => "gemm_f16_nt_small",
    MODULE_V3 => "gemm_f16_tn_small", MODULE_V3 => "gemm_f16_tt_small",
    MODULE_V3 => "gemm_bf16_nn_wide", MODULE_V3 => "gemm_bf16_nt_wide",
    MODULE_V3 => "gemm_bf16_tn_wide", MODULE_V3 => "gemm_bf16_tt_wide",
    MODULE_V3 => "gemm_bf16_nn_large", MODULE_V3 => "gemm_bf16_nt_large",
    MODULE_V3 => "gemm_bf16_tn_large", MODULE_V3 => "gemm_bf16_tt_large",
    MODULE_V3 => "gemm_bf16_nn_small", MODULE_V3 => "gemm_bf16_nt_small",
    MODULE_V3 => "gemm_bf16_tn_small", MODULE_V3 => "gemm_bf16_tt_small",
    MODULE_DECODE => "gemm_decode_f16_wide", MODULE_DECODE => "gemm_decode_f16_narrow",
    MODULE_DECODE => "gemm_decode_bf16_wide", MODULE_DECODE => "gemm_decode_bf16_narrow",
    MODULE_DECODE => "gemm_decode_reduce_f16", MODULE_DECODE => "gemm_decode_reduce_bf16",
];

/// v1 and v2 tile C by 64x64 per block; v1 runs 256 threads (16x16, 4x4 elements each), v2 4 warps
/// (32x32 each), with static shared memory.
const BLOCK_V1_V2: usize = 64;
const THREADS_V1: u32 = 256;
const THREADS_V2: u32 = 128;
/// The kernel adds up to one tile to a row, column or k index in `int`: keep that from overflowing.
pub(super) const MAX_DIM: usize = i32::MAX as usize - 128;
/// CUDA's limit on `gridDim.y` (v1/v2's row tiles).
const MAX_GRID_Y: usize = 65535;
/// The most products of one batched launch (CUDA's limit on `gridDim.y` and `gridDim.z`).
pub const MAX_BATCH: usize = 65535;

/// The decode path's geometry (`LK_GEMM_DECODE_*` in params.h): the most rows of `op(A)`, W rows per
/// block, k per step, the most k splits, and the reduction's threads per block.
pub const DECODE_MAX_M: usize = tiles::LK_GEMM_DECODE_MAX_M as usize;
const DECODE_WARP_N: usize = tiles::LK_GEMM_DECODE_WARP_N as usize;
const DECODE_WARPS: usize = tiles::LK_GEMM_DECODE_WARPS as usize;
const DECODE_BLOCK_K: usize = tiles::LK_GEMM_DECODE_BLOCK_K as usize;
/// The most k splits of the decode path.
pub const DECODE_MAX_SPLITS: usize = tiles::LK_GEMM_DECODE_MAX_SPLITS as usize;
const DECODE_THREADS: u32 = tiles::LK_GEMM_DECODE_WARPS * 32;
const REDUCE_THREADS: u32 = tiles::LK_GEMM_DECODE_REDUCE_THREADS;

/// v3's block-tile configurations (`LK_GEMM_*` in params.h).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Config {
    /// 128x256, 2x4 warps of 64x64.
    Wide,
    /// 128x128, 2x2 warps of 64x64.
    Large,
    /// 64x64, 2x2 warps of 32x32.
    Small,
}

impl Config {
    /// Every configuration, largest first.
    pub const ALL: [Config; 3] = [Config::Wide, Config::Large, Config::Small];

    /// `(BLOCK_M, BLOCK_N)`.
    pub fn block(self) -> (usize, usize) {
        let (m, n) = match self {
            Config::Wide => (tiles::LK_GEMM_WIDE_BLOCK_M, tiles::LK_GEMM_WIDE_BLOCK_N),
            Config::Large => (tiles::LK_GEMM_LARGE_BLOCK_M, tiles::LK_GEMM_LARGE_BLOCK_N),
            Config::Small => (tiles::LK_GEMM_SMALL_BLOCK_M, tiles::LK_GEMM_SMALL_BLOCK_N),
        };
        (m as usize, n as usize)
    }

    /// `(WARPS_M, WARPS_N)`.
    pub fn warps(self) -> (usize, usize) {
        let (m, n) = match self {
            Config::Wide => (tiles::LK_GEMM_WIDE_WARPS_M, tiles::LK_GEMM_WIDE_WARPS_N),
            Config::Large => (tiles::LK_GEMM_LARGE_WARPS_M, tiles::LK_GEMM_LARGE_WARPS_N),
            Config::Small => (tiles::LK_GEMM_SMALL_WARPS_M, tiles::LK_GEMM_SMALL_WARPS_N),
        };
        (m as usize, n as usize)
    }

    /// Block tiles covering an `m x n` C.
    pub fn tiles(self, m: usize, n: usize) -> usize {
        let (bm, bn) = self.block();
        m.div_ceil(bm).saturating_mul(n.div_ceil(bn))
    }

    fn threads(self) -> u32 {
        let (wm, wn) = self.warps();
        (wm * wn * 32) as u32
    }

    /// Dynamic shared memory of one block: the cp.async ring, or the epilogue's f32 staging of one row of
    /// warps (`WARP_M x (BLOCK_N + 8)`), whichever is larger (they alias).
    pub fn shared_bytes(self) -> usize {
        let (bm, bn) = self.block();
        let ring = (tiles::LK_GEMM_STAGES * tiles::LK_GEMM_BLOCK_K) as usize * (bm + bn) * 2;
        let epilogue = bm / self.warps().0 * (bn + 8) * 4;
        ring.max(epilogue)
    }

    /// Position in [`Config::ALL`].
    fn index(self) -> usize {
        match self {
            Config::Wide => 0,
            Config::Large => 1,
            Config::Small => 2,
        }
    }

    /// The entry points' suffix: `wide`, `large`, `small`.
    pub fn name(self) -> &'static str {
        match self {
            Config::Wide => "wide",
            Config::Large => "large",
            Config::Small => "small",
        }
    }
}

/// Which rung and tile a call runs.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Plan {
    /// f32: CUDA cores.
    V1,
    /// f16/bf16 with an operand v3 cannot stage by 16-byte `cp.async`.
    V2,
    /// f16/bf16 tensor-core pipeline.
    V3(Config),
    /// f16/bf16 decode path (`cuda/gemm_decode.cu`): `m ≤ 16`, `x·Wᵀ`, W streamed once.
    Decode(Decode),
}

/// One decode-path launch: the block shape and the k split across blocks.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Decode {
    /// Wide or narrow blocks.
    pub shape: DecodeShape,
    /// How k is split across blocks.
    pub split: Split,
}

/// The decode path's block: 128 rows of W with the warps splitting them, or 32 rows with the warps
/// splitting k (reduced in shared memory in warp order).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum DecodeShape {
    /// 128 rows of W per block; the warps split them.
    Wide,
    /// 32 rows of W per block; the warps split k.
    Narrow,
}

impl DecodeShape {
    /// Rows of W per block.
    pub fn block_n(self) -> usize {
        match self {
            DecodeShape::Wide => DECODE_WARPS * DECODE_WARP_N,
            DecodeShape::Narrow => DECODE_WARP_N,
        }
    }
}

/// The decode path's k split: `count` splits of `k` elements each (the last may be shorter).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Split {
    /// Splits, at least 1.
    pub count: usize,
    /// Elements of k per split.
    pub k: usize,
}

impl Split {
    /// `count` (clamped to 1..=[`DECODE_MAX_SPLITS`]) splits of `k`, each a whole number of k-steps;
    /// fewer when `k` has fewer steps than splits.
    pub fn of(k: usize, count: usize) -> Split {
        let steps = k.div_ceil(DECODE_BLOCK_K).max(1);
        let per = steps.div_ceil(count.clamp(1, DECODE_MAX_SPLITS));
        Split {
            count: steps.div_ceil(per),
            k: per * DECODE_BLOCK_K,
        }
    }
}

/// Whether a call may run the decode path: f16/bf16 with 16-byte `cp.async`-able operands (`aligned`),
/// `1 ≤ m ≤ 16`, `A` stored `(m, k)` and `B` stored `(n, k)`.
pub fn decode_eligible(shape: GemmShape, cfg: GemmConfig, dtype: DType, aligned: bool) -> bool {
    dtype != DType::F32 && aligned && !cfg.trans_a && cfg.trans_b && (1..=DECODE_MAX_M).contains(&shape.m)
}

/// The decode path's launch for `batch` products of `shape` on `sm_count` SMs. Rule (a wave here is one
/// block per SM; 4 blocks of either shape are resident per SM):
/// - wide blocks when `ceil(n / 128)·batch ≥ 2·sm_count` (x is staged once per 128 rows of W);
/// - else narrow blocks (4x the blocks, the warps splitting k in the block, no second launch), unsplit
///   when `2·ceil(n / 32)·batch ≥ sm_count` (half the SMs streaming with 16 loads in flight per thread
///   keep HBM busier than a second launch costs);
/// - else narrow blocks with k split across blocks into `ceil(2·sm_count / blocks)` parts (at most 32,
///   at most one per 128-element k-step), reduced by a second launch in split order, so that the grid
///   covers 2 waves where k allows.
///
/// The model's figures behind the rule: docs/performance.md ("The decode path").
pub fn decode_plan(shape: GemmShape, batch: usize, sm_count: u32) -> Decode {
    let sms = sm_count as usize;
    let blocks = |s: DecodeShape| shape.n.div_ceil(s.block_n()).max(1).saturating_mul(batch.max(1));
    let unsplit = Split::of(shape.k, 1);
    if blocks(DecodeShape::Wide) >= 2 * sms {
        return Decode {
            shape: DecodeShape::Wide,
            split: unsplit,
        };
    }
    let narrow = blocks(DecodeShape::Narrow);
    let split = if 2 * narrow >= sms {
        unsplit
    } else {
        Split::of(shape.k, (2 * sms).div_ceil(narrow))
    };
    Decode {
        shape: DecodeShape::Narrow,
        split,
    }
}

/// The rung and tile for a GEMM of `shape` in `dtype` whose operands are (`aligned`) 16-byte aligned with
/// leading dimensions that are multiples of 8 elements, on a device of `sm_count` SMs.
///
/// Rule: f32 runs v1; unaligned f16/bf16 runs v2; otherwise v3 with the largest tile that still makes
/// enough blocks: 128x256 when that gives at least 2 blocks per SM (`Config::Wide.tiles(m, n) ≥ 2 ·
/// sm_count`: a whole wave and a tail that is at most a third of the work), else 128x128 when that gives
/// at least one per SM, else 64x64 (4x the blocks of 128x128, for problems too small to fill the GPU).
/// Larger tiles move fewer bytes per FLOP through L2 and shared memory; smaller ones fill more SMs. The
/// model's figure for every choice at LLaMA shapes: docs/performance.md ("GEMM v3").
pub fn plan(shape: GemmShape, dtype: DType, aligned: bool, sm_count: u32) -> Plan {
    if dtype == DType::F32 {
        return Plan::V1;
    }
    if !aligned {
        return Plan::V2;
    }
    let sms = sm_count as usize;
    Plan::V3(if Config::Wide.tiles(shape.m, shape.n) >= 2 * sms {
        Config::Wide
    } else if Config::Large.tiles(shape.m, shape.n) >= sms {
        Config::Large
    } else {
        Config::Small
    })
}

/// The plan of one call: the decode path where [`decode_eligible`] (shaped by [`decode_plan`]), else
/// [`plan`]'s rule. The model's figure for each choice at LLaMA shapes: docs/performance.md ("GEMM v3").
pub fn plan_call(shape: GemmShape, cfg: GemmConfig, batch: usize, dtype: DType, aligned: bool, sm_count: u32) -> Plan {
    if decode_eligible(shape, cfg, dtype, aligned) {
        Plan::Decode(decode_plan(shape, batch, sm_count))
    } else {
        plan(shape, dtype, aligned, sm_count)
    }
}

/// Grid and block of one GEMM launch of `batch` products. v1/v2: one block per 64x64 tile of C, column
/// tiles on `grid.x`, row tiles on `grid.y` (at most 65535), products on `grid.z`; f32 (v1): 256 threads, 8 KB of static shared memory; v2: 128
/// threads, 10 KB. v3: one block per tile on `grid.x` (rasterized in the kernel), products on `grid.y`, 128 or 256 threads,
/// [`Config::shared_bytes`] of dynamic shared memory. Decode: `(ceil(n / block_n), splits, batch)`
/// blocks of 128 threads with 33 KB of static shared memory (x's staged rows).
pub(super) fn launch_config(shape: GemmShape, plan: Plan, batch: usize) -> Result<LaunchDims> {
    let batch = batch.min(MAX_BATCH) as u32; // the op checked count ≤ MAX_BATCH
    if let Plan::Decode(d) = plan {
        return Ok(LaunchDims {
            grid: [
                validate::to_i32(OP, "decode blocks", shape.n.div_ceil(d.shape.block_n()))? as u32,
                d.split.count as u32, // ≤ DECODE_MAX_SPLITS
                batch,
            ],
            block: [DECODE_THREADS, 1, 1],
            shared_bytes: 0,
        });
    }
    if let Plan::V3(config) = plan {
        let tiles = config.tiles(shape.m, shape.n);
        return Ok(LaunchDims {
            grid: [validate::to_i32(OP, "block tiles", tiles)? as u32, batch, 1],
            block: [config.threads(), 1, 1],
            shared_bytes: config.shared_bytes() as u32,
        });
    }
    let tiles_n = shape.n.div_ceil(BLOCK_V1_V2);
    let tiles_m = shape.m.div_ceil(BLOCK_V1_V2);
    if tiles_m > MAX_GRID_Y {
        return Err(Error::SizeOverflow {
            op: OP,
            what: format!(
                "m = {} needs {tiles_m} row tiles of {BLOCK_V1_V2}, over the grid limit {MAX_GRID_Y}",
                shape.m
            ),
        });
    }
    Ok(LaunchDims {
        grid: [validate::to_i32(OP, "n tiles", tiles_n)? as u32, tiles_m as u32, batch],
        block: [if plan == Plan::V1 { THREADS_V1 } else { THREADS_V2 }, 1, 1],
        shared_bytes: 0,
    })
}

/// The entry point of `plan` for `dtype` and the transpose flags: an index into [`KERNELS`], whose v3
/// rows run dtype (f16, bf16) x config ([`Config::ALL`]) x layout (nn, nt, tn, tt). No allocation or
/// search on the launch path; `every_plan_has_its_kernel` checks each index against its name.
pub fn kernel_for(plan: Plan, dtype: DType, trans_a: bool, trans_b: bool) -> Kernel<'static> {
    const V3_FIRST: usize = 3;
    let index = match (plan, dtype) {
        (Plan::V1, _) => 0,
        (Plan::V2, DType::BF16) => 2,
        (Plan::V2, _) => 1,
        (Plan::Decode(d), dtype) => return decode_kernel_for(dtype, d.shape),
        (Plan::V3(config), dtype) => {
            let dt = usize::from(dtype == DType::BF16);
            let layout = usize::from(trans_a) * 2 + usize::from(trans_b);
            V3_FIRST + (dt * Config::ALL.len() + config.index()) * 4 + layout
        }
    };
    KERNELS[index]
}

const DECODE_FIRST: usize = 3 + 24;

/// The decode path's kernel of `shape` for `dtype`.
pub fn decode_kernel_for(dtype: DType, shape: DecodeShape) -> Kernel<'static> {
    KERNELS[DECODE_FIRST + usize::from(dtype == DType::BF16) * 2 + usize::from(shape == DecodeShape::Narrow)]
}

/// The decode path's split-K reduction for `dtype`.
pub fn reduce_kernel_for(dtype: DType) -> Kernel<'static> {
    KERNELS[DECODE_FIRST + 4 + usize::from(dtype == DType::BF16)]
}

/// Grid and block of the split-K reduction: one thread per element of the `(m, c_cols)` C of each of
/// `batch` products.
pub(super) fn reduce_launch_config(m: usize, c_cols: usize, batch: usize) -> Result<LaunchDims> {
    let blocks = (m * c_cols).div_ceil(REDUCE_THREADS as usize);
    Ok(LaunchDims {
        grid: [
            validate::to_i32(OP, "reduce blocks", blocks)? as u32,
            1,
            batch.min(MAX_BATCH) as u32,
        ],
        block: [REDUCE_THREADS, 1, 1],
        shared_bytes: 0,
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::shapes::GemmConfig;

    #[test]
    fn launch_config_covers_edges() {
        let d = launch_config(GemmShape { m: 65, n: 1, k: 3 }, Plan::V1, 1).unwrap();
        assert_eq!(d.grid, [1, 2, 1]);
        assert_eq!(d.block, [THREADS_V1, 1, 1]);
        let d = launch_config(GemmShape { m: 65, n: 130, k: 3 }, Plan::V2, 1).unwrap();
        assert_eq!((d.grid, d.block), ([3, 2, 1], [THREADS_V2, 1, 1]));
        let d = launch_config(GemmShape { m: 129, n: 130, k: 3 }, Plan::V3(Config::Large), 1).unwrap();
        assert_eq!((d.grid, d.block, d.shared_bytes), ([4, 1, 1], [128, 1, 1], 65536));
        let d = launch_config(GemmShape { m: 65, n: 1, k: 3 }, Plan::V3(Config::Small), 1).unwrap();
        assert_eq!((d.grid, d.shared_bytes), ([2, 1, 1], 32768));
        let too_tall = GemmShape {
            m: MAX_GRID_Y * BLOCK_V1_V2 + 1,
            n: 1,
            k: 1,
        };
        assert!(matches!(
            launch_config(too_tall, Plan::V2, 1),
            Err(Error::SizeOverflow { .. })
        ));
    }

    #[test]
    fn plan_follows_the_rule() {
        let s = |m, n| GemmShape { m, n, k: 64 };
        assert_eq!(plan(s(4096, 4096), DType::F32, true, 108), Plan::V1);
        assert_eq!(plan(s(4096, 4096), DType::BF16, false, 108), Plan::V2);
        // 512 wide tiles on 108 SMs; 16 x 16 = 256 large ones on 132; 8 x 8 = 64 leave SMs idle: small tiles.
        assert_eq!(plan(s(4096, 4096), DType::BF16, true, 108), Plan::V3(Config::Wide));
        assert_eq!(plan(s(2048, 2048), DType::BF16, true, 132), Plan::V3(Config::Large));
        assert_eq!(plan(s(1024, 1024), DType::F16, true, 108), Plan::V3(Config::Small));
        assert_eq!(plan(s(1024, 1024), DType::F16, true, 64), Plan::V3(Config::Large));
    }

    #[test]
    fn every_plan_has_its_kernel() {
        for dtype in [DType::F32, DType::F16, DType::BF16] {
            for p in [Plan::V1, Plan::V2].into_iter().chain(Config::ALL.map(Plan::V3)) {
                if (dtype == DType::F32) != (p == Plan::V1) {
                    continue;
                }
                for (ta, tb) in [(false, false), (false, true), (true, false), (true, true)] {
                    let k = kernel_for(p, dtype, ta, tb);
                    let dt = ["f32", "f16", "bf16"][dtype.index()];
                    let expected = match p {
                        Plan::V1 => "gemm_f32".to_string(),
                        Plan::V2 => format!("gemm_v2_{dt}"),
                        Plan::Decode(_) => unreachable!("not in this loop"),
                        Plan::V3(c) => format!(
                            "gemm_{dt}_{}{}_{}",
                            if ta { 't' } else { 'n' },
                            if tb { 't' } else { 'n' },
                            c.name()
                        ),
                    };
                    assert_eq!(k.name, expected, "{p:?} {dtype:?} {ta} {tb}");
                }
            }
        }
        for (dtype, dt) in [(DType::F16, "f16"), (DType::BF16, "bf16")] {
            for (shape, name) in [(DecodeShape::Wide, "wide"), (DecodeShape::Narrow, "narrow")] {
                let d = Decode {
                    shape,
                    split: Split { count: 1, k: 128 },
                };
                assert_eq!(
                    kernel_for(Plan::Decode(d), dtype, false, true).name,
                    format!("gemm_decode_{dt}_{name}")
                );
            }
            assert_eq!(reduce_kernel_for(dtype).name, format!("gemm_decode_reduce_{dt}"));
        }
    }

    #[test]
    fn decode_plan_follows_the_rule() {
        let s = |n, k| GemmShape { m: 1, n, k };
        let d = |shape, count, k| Decode {
            shape,
            split: Split { count, k },
        };
        // 28672 / 128 = 224 wide blocks ≥ 2 waves on 108 SMs.
        assert_eq!(decode_plan(s(28672, 4096), 1, 108), d(DecodeShape::Wide, 1, 4096));
        // 4096 / 128 = 32 < 264 on 132 SMs; 4096 / 32 = 128 narrow blocks cover half the SMs: unsplit.
        assert_eq!(decode_plan(s(4096, 4096), 1, 132), d(DecodeShape::Narrow, 1, 4096));
        // 1024 / 32 = 32 narrow blocks < 66: split by ceil(264 / 32) = 9 into 32 / 4 = 8 of 4 k-steps.
        assert_eq!(decode_plan(s(1024, 4096), 1, 132), d(DecodeShape::Narrow, 8, 512));
        // k of one step cannot split; the cap is 32.
        assert_eq!(decode_plan(s(32, 100), 1, 132), d(DecodeShape::Narrow, 1, 128));
        assert_eq!(decode_plan(s(32, 1 << 20), 1, 132).split.count, 32);
        assert_eq!(Split::of(4096, 3), Split { count: 3, k: 1408 });
        let cfg = GemmConfig {
            trans_b: true,
            ..GemmConfig::DEFAULT
        };
        assert!(decode_eligible(GemmShape { m: 16, n: 8, k: 8 }, cfg, DType::BF16, true));
        assert!(!decode_eligible(
            GemmShape { m: 17, n: 8, k: 8 },
            cfg,
            DType::BF16,
            true
        ));
        assert!(!decode_eligible(
            GemmShape { m: 1, n: 8, k: 8 },
            GemmConfig::DEFAULT,
            DType::BF16,
            true
        ));
        assert!(!decode_eligible(GemmShape { m: 1, n: 8, k: 8 }, cfg, DType::F32, true));
        assert!(!decode_eligible(GemmShape { m: 1, n: 8, k: 8 }, cfg, DType::F16, false));
    }
}
