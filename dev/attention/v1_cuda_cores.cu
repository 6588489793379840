// Flash attention, forward, version v1 (CUDA cores, online softmax): rung 1 of the attention ladder
// (dev/attention/README.md has its figures), and still the f32 kernel: cuda/attention_f32.cu compiles
// this file. v2 (cuda/attention.cu) runs f16 and bf16 on tensor cores; f32 stays here because mma.sync
// has no f32 inputs (tf32 would round q, k, v and P to 10-bit mantissas, which an f32 caller does not
// expect), so f32 attention is the accuracy path, not the speed path.
//
// Measured (bf16 instantiation `attention_v1_bf16_d128`, at commit 4f32d7a when it was the bf16 kernel):
// ptx-emu, q 256 kv 256 GQA 4:1 d128: 183.8 M thread-instructions, global bytes 4.10x the minimum, 0 bank
// conflicts; decode q 1 kv 1024 GQA 8/2: 24.8 M, 1.00x. Speed-of-light model, prefill seq 4096 causal GQA
// 32/8 d128: 22.3 ms (6.2 TFLOP/s, 3.9% of FlashAttention-2's 159 TFLOP/s) on an A100-SXM4-80GB, 14.2 ms
// (9.7 TFLOP/s, 3.0% of FA2's 319) on an H100 SXM, issue-bound; decode b1 kv 8192: 0.1% of HBM (8 blocks).
//
// Per batch b, query head h (kv head hk = h / heads_per_kv_head), query row i:
//   s_j   = (q_i . k_j) * softmax_scale * LOG2E               (base-2 scores; with softcap > 0:
//           tanh((q_i . k_j) * softmax_scale / softcap) * softcap * LOG2E; j visible iff j < kv_len and
//           d - window_left <= j <= d + window_right, d = i + diag_offset, -1 = unbounded, causal = right 0)
//   m     = max_j s_j,   l = sum_j exp2(s_j - m)
//   o_i   = sum_j exp2(s_j - m) v_j / l
//   lse_i = (m + log2(l)) / LOG2E                             (natural log; -inf and o_i = 0 when no key
//                                                            is visible or every score is -inf; NaN in
//                                                            both o_i and lse_i for a NaN or +inf score)
// computed in one pass over the keys with the online softmax: the score matrix is never materialized.
//
// Serving batches: per-sequence lengths, rows and pages come from attention_seq.cuh, as in v2
// (cuda/attention.cu has the scheme); a key's row is attention_key_row's, and a bad sequence writes NaN.
//
// Layouts (element strides from the params struct, innermost dim contiguous):
//   q, o: (batch, q_len, n_heads, head_dim)   k, v: (batch, kv_len, n_kv_heads, head_dim)
//   lse:  (batch, n_heads, q_len) f32, contiguous, optional (NULL = not written)
//
// Work mapping: the G = heads_per_kv_head query heads that share a kv head are packed into rows: packed
// row R = i * G + g is query i of query head hk * G + g (FlashInfer's GQA packing). One block of WARPS warps
// per (BLOCK_M packed rows, kv head, batch): grid = (ceil(q_len * G / BLOCK_M), n_kv_heads, batch), so each
// K/V tile is read once for all G heads (decode with G = 4 fills 4 rows of a block instead of 1). Warp w
// owns ROWS_PER_WARP consecutive packed rows. The block stages its Q
// tile once (f32) and then walks the keys [n_begin, n_end) in tiles of BLOCK_N, staging K and V (storage
// type) in shared memory; the range is what some row of the block sees, so causal tiles above the
// diagonal (or outside every row's window) are skipped. Per key tile, each warp:
//   1. S = Q K^T: lane owns keys lane + 32 t (t < KEYS_PER_LANE), all ROWS_PER_WARP rows of them;
//      q reads are warp broadcasts, k reads hit distinct banks (odd row stride in 4-byte words).
//   2. online softmax per row in f32: warp max, rescale of the running sum and O accumulator;
//      the row sum l is kept per lane and reduced once at the end.
//   3. O += P V: lane owns head dims lane + 32 u (u < DIMS_PER_LANE); p_j comes from lane j by shuffle.
// Packed rows >= q_len * G are computed on zero q and never stored; a warp with none in range skips the math.
//
// Shared memory (dynamic, sized by the host for the runtime head_dim; launch_config in
// src/ops/attention.rs mirrors this):
//   q_s: (BLOCK_M, head_dim) f32 | k_s: (BLOCK_N, head_dim + K_PAD) T | v_s: (BLOCK_N, head_dim) T
//
// Numerics: S from T inputs in f32 (fma), softmax in f32 with exp2, P kept in f32, O accumulated in f32
// and rounded to T once at the store; lse in f32.
//
// Compile-time axes (one table; head_dim itself is a runtime value inside its bucket, a multiple of 8):
// | axis          | values                         | entry point                    |
// |---------------|--------------------------------|--------------------------------|
// | dtype T       | f32, f16, bf16                 | attention_<dtype>_d<bucket>    |
// | head-dim max  | 64, 128, 256 (head_dim <= max) | (the bucket)                   |
// | tile config   | AttentionTraits per bucket     | (fixed by the bucket)          |
#include "attention_seq.cuh"

namespace lk {

// Tile configuration of one head-dim bucket.
template <int HEAD_DIM_MAX_, int ROWS_PER_WARP_, int KEYS_PER_LANE_>
struct AttentionTraits {
    static constexpr int HEAD_DIM_MAX = HEAD_DIM_MAX_;    // largest head_dim of the bucket
    static constexpr int HEAD_DIM_STEP = 8;               // head_dim is a multiple of this
    static constexpr int WARPS = 4;
    static constexpr int THREADS = WARPS * WARP_SIZE;
    static constexpr int ROWS_PER_WARP = ROWS_PER_WARP_;  // query rows per warp
    static constexpr int BLOCK_M = WARPS * ROWS_PER_WARP; // query rows per block
    static constexpr int KEYS_PER_LANE = KEYS_PER_LANE_;  // keys of a tile per lane in S = Q K^T
    static constexpr int BLOCK_N = WARP_SIZE * KEYS_PER_LANE;  // keys per shared-memory tile
    static constexpr int DIMS_PER_LANE = HEAD_DIM_MAX / WARP_SIZE;  // O accumulator columns per lane
    // __launch_bounds__'s second argument. Stating it (rather than leaving ptxas to guess an occupancy
    // target) matters: without it ptxas 13.2 caps the d256 kernels near 72 registers on sm_86/sm_89 and
    // spills; with 1 it allocates what the O accumulator needs (about 128) and spills nothing.
    static constexpr int MIN_BLOCKS_PER_SM = 1;

    static_assert(HEAD_DIM_MAX % WARP_SIZE == 0, "a lane owns whole columns of O");
    static_assert(HEAD_DIM_MAX % HEAD_DIM_STEP == 0 && HEAD_DIM_STEP % 2 == 0, "S loop reads pairs of dims");
    static_assert(ROWS_PER_WARP * DIMS_PER_LANE <= 64, "O accumulator must stay in registers");
};

using AttentionD64 = AttentionTraits<64, 8, 2>;   // BLOCK_M 32, BLOCK_N 64
using AttentionD128 = AttentionTraits<128, 8, 1>; // BLOCK_M 32, BLOCK_N 32
using AttentionD256 = AttentionTraits<256, 4, 1>; // BLOCK_M 16, BLOCK_N 32

// Padding (elements) after each K row in shared memory: 4 bytes, so the row stride in 4-byte words is
// odd (head_dim is a multiple of 8) and lanes reading one column of 32 rows hit 32 distinct banks.
template <typename T> constexpr int attention_k_pad() { return 4 / int(sizeof(T)); }

// Two consecutive elements from shared memory as f32; `p` is 4-byte aligned.
__device__ __forceinline__ float2 load_pair_f32(const float* p) { return make_float2(p[0], p[1]); }
__device__ __forceinline__ float2 load_pair_f32(const __half* p) {
    return __half22float2(*reinterpret_cast<const __half2*>(p));
}
__device__ __forceinline__ float2 load_pair_f32(const __nv_bfloat16* p) {
    return __bfloat1622float2(*reinterpret_cast<const __nv_bfloat162*>(p));
}

// The kernel body; the extern "C" __global__ entry points at the bottom instantiate it per dtype and
// head-dim bucket with __launch_bounds__(Tr::THREADS).
template <typename T, typename Tr>
__device__ __forceinline__ void attention_kernel(const AttentionParams& p) {
    constexpr int R = Tr::ROWS_PER_WARP;
    constexpr int KPL = Tr::KEYS_PER_LANE;
    constexpr int DPL = Tr::DIMS_PER_LANE;
    const int hd = p.head_dim;
    const int k_stride = hd + attention_k_pad<T>();

    extern __shared__ __align__(16) unsigned char attention_smem[];
    float* q_s = reinterpret_cast<float*>(attention_smem);  // (BLOCK_M, hd)
    T* k_s = reinterpret_cast<T*>(q_s + Tr::BLOCK_M * hd);  // (BLOCK_N, k_stride)
    T* v_s = k_s + Tr::BLOCK_N * k_stride;                  // (BLOCK_N, hd)

    const int warp = threadIdx.x / WARP_SIZE;
    const int lane = threadIdx.x % WARP_SIZE;
    // Packed rows: row R of kv head hk is query i = R / G of query head hk * G + R % G (G = heads per kv
    // head), so the G query heads that share K and V are one block's rows and read each K/V tile once.
    const int G = p.heads_per_kv_head;
    const int m0 = blockIdx.x * Tr::BLOCK_M;  // first packed row of the block
    const int hk = blockIdx.y;
    const int b = blockIdx.z;
    const AttentionSeq seq = attention_seq(p, b);  // this sequence's rows and keys (attention_seq.cuh)
    const int rows = seq.q_len * G;           // packed rows of this (kv head, sequence); host: < 2^31 - 64
    if (m0 >= rows) return;                   // a shorter sequence of a ragged batch (the grid fits the longest)
    const int kv_len = seq.kv_len;
    const int diag_offset = seq.diag_offset;
    const T* q = static_cast<const T*>(p.q) + b * p.q_batch_stride + seq.q_start * p.q_row_stride +
                 int64_t(hk) * G * p.q_head_stride;
    const T* k = static_cast<const T*>(p.k) + b * p.k_batch_stride + hk * p.k_head_stride;  // key rows: attention_key_row
    const T* v = static_cast<const T*>(p.v) + b * p.v_batch_stride + hk * p.v_head_stride;
    T* o = static_cast<T*>(p.o) + b * p.o_batch_stride + seq.q_start * p.o_row_stride + int64_t(hk) * G * p.o_head_stride;
    bool bad = seq.bad;  // metadata out of range (a page id: found while staging keys): outputs NaN
    // q and o above point at the group's first query head; packed row R is at (R / G) * row + (R % G) * head.

    // Stage the Q tile as f32; packed rows past the end are zero.
    for (int r = warp; r < Tr::BLOCK_M; r += Tr::WARPS) {
        const int pr = m0 + r;
        const T* q_row = q + int64_t(pr / G) * p.q_row_stride + int64_t(pr % G) * p.q_head_stride;
        for (int d = lane; d < hd; d += WARP_SIZE) q_s[r * hd + d] = pr < rows ? to_f32(q_row[d]) : 0.0f;
    }

    // Keys [n_begin, n_end) are visible to some row of the block (queries i_first..i_last): the last query
    // sees j <= i_last + offset + window_right, the first j >= i_first + offset - window_left. n_begin is
    // rounded down to a tile.
    const int64_t i_first = m0 / G;
    const int64_t i_last = (min(m0 + Tr::BLOCK_M, rows) - 1) / G;
    int64_t n_hi = kv_len;
    int64_t n_lo = 0;
    if (p.window_right >= 0) n_hi = min(n_hi, i_last + diag_offset + p.window_right + 1);
    if (p.window_left >= 0) n_lo = max(n_lo, i_first + diag_offset - p.window_left);
    const int n_end = int(max(int64_t(0), n_hi));
    const int n_begin = n_lo < n_hi ? int(n_lo / Tr::BLOCK_N * Tr::BLOCK_N) : n_end;

    const int row0 = m0 + warp * R;  // first packed row of this warp
    const bool warp_active = row0 < rows;
    const float* q_w = q_s + warp * R * hd;  // (R, hd): this warp's rows

    float m_run[R];       // running max of the base-2 scores of each row (same in every lane)
    float l_part[R];      // this lane's share of the running row sum
    float acc[R][DPL];    // O rows, columns lane + 32 u, unnormalized
#pragma unroll
    for (int r = 0; r < R; ++r) {
        m_run[r] = -INFINITY;
        l_part[r] = 0.0f;
#pragma unroll
        for (int u = 0; u < DPL; ++u) acc[r][u] = 0.0f;
    }

    for (int n0 = n_begin; n0 < n_end; n0 += Tr::BLOCK_N) {
        const int n_valid = min(Tr::BLOCK_N, n_end - n0);  // keys of this tile
        __syncthreads();  // the previous tile is consumed (first tile: Q is staged)
        for (int r = warp; r < n_valid; r += Tr::WARPS) {
            const int64_t row = attention_key_row(p, b, seq, n0 + r, bad);  // -1: page out of range
            const T* k_row = k + max(row, int64_t(0)) * p.k_row_stride;  // (hd,)
            const T* v_row = v + max(row, int64_t(0)) * p.v_row_stride;  // (hd,)
            for (int d = lane; d < hd; d += WARP_SIZE) {
                k_s[r * k_stride + d] = row >= 0 ? k_row[d] : from_f32<T>(0.0f);
                v_s[r * hd + d] = row >= 0 ? v_row[d] : from_f32<T>(0.0f);
            }
        }
        __syncthreads();
        if (!warp_active) continue;

        // 1. S = Q K^T for keys n0 + lane + 32 t. A lane past n_valid reads the last valid key (its score
        // is masked below), so every shared read is of staged data.
        float s[R][KPL];  // (rows, keys of this lane)
        const T* k_lane[KPL];
#pragma unroll
        for (int t = 0; t < KPL; ++t) k_lane[t] = k_s + min(lane + t * WARP_SIZE, n_valid - 1) * k_stride;
#pragma unroll
        for (int r = 0; r < R; ++r)
#pragma unroll
            for (int t = 0; t < KPL; ++t) s[r][t] = 0.0f;
        for (int d0 = 0; d0 < hd; d0 += Tr::HEAD_DIM_STEP) {
#pragma unroll
            for (int d = d0; d < d0 + Tr::HEAD_DIM_STEP; d += 2) {
                float2 kv[KPL];
#pragma unroll
                for (int t = 0; t < KPL; ++t) kv[t] = load_pair_f32(k_lane[t] + d);
#pragma unroll
                for (int r = 0; r < R; ++r) {
                    const float2 qv = *reinterpret_cast<const float2*>(q_w + r * hd + d);
#pragma unroll
                    for (int t = 0; t < KPL; ++t) s[r][t] = fmaf(qv.y, kv[t].y, fmaf(qv.x, kv[t].x, s[r][t]));
                }
            }
        }

        // 2. Mask, scale to base 2, online softmax per row; s becomes p = exp2(s - m).
#pragma unroll
        for (int r = 0; r < R; ++r) {
            const int64_t diag = int64_t((row0 + r) / G) + diag_offset;
            const int64_t first_visible = p.window_left >= 0 ? diag - p.window_left : 0;
            const int64_t last_visible = p.window_right >= 0 ? diag + p.window_right : int64_t(kv_len) - 1;
            float m_tile = -INFINITY;
#pragma unroll
            for (int t = 0; t < KPL; ++t) {
                const int jl = lane + t * WARP_SIZE;
                const bool visible = jl < n_valid && n0 + jl >= first_visible && n0 + jl <= last_visible;
                const float logit = p.softcap > 0.0f ? tanhf(s[r][t] * p.softcap_input_scale) * p.softcap_output_log2
                                                     : s[r][t] * p.softmax_scale_log2;
                s[r][t] = visible ? logit : -INFINITY;
                m_tile = fmaxf(m_tile, s[r][t]);
            }
            m_tile = warp_reduce_max(m_tile);
            float m_sub;
            const float rescale = online_softmax_rescale(m_run[r], m_tile, m_sub);
            l_part[r] *= rescale;
#pragma unroll
            for (int u = 0; u < DPL; ++u) acc[r][u] *= rescale;
#pragma unroll
            for (int t = 0; t < KPL; ++t) {
                // A masked key or a score of -inf has weight exactly 0, marked -0 (exp2f never gives -0).
                s[r][t] = s[r][t] == -INFINITY ? -0.0f : exp2f(s[r][t] - m_sub);
                l_part[r] += s[r][t];
            }
        }

        // 3. O += P V: key jl's probabilities come from lane jl % 32, slot jl / 32. A key of weight -0 (not
        // visible to the row, or of score -inf) is skipped, not multiplied: an inf or NaN in its V row
        // must not reach the row (0 * inf is NaN).
#pragma unroll
        for (int t = 0; t < KPL; ++t) {
            for (int src = 0; src < WARP_SIZE; ++src) {
                const int jl = src + t * WARP_SIZE;
                if (jl >= n_valid) break;  // uniform across the warp
                float pj[R];
#pragma unroll
                for (int r = 0; r < R; ++r) pj[r] = __shfl_sync(FULL_MASK, s[r][t], src);
                const T* v_row = v_s + jl * hd;
#pragma unroll
                for (int u = 0; u < DPL; ++u) {
                    const int d = lane + u * WARP_SIZE;
                    if (d < hd) {
                        const float vd = to_f32(v_row[d]);
#pragma unroll
                        for (int r = 0; r < R; ++r)
                            if (__float_as_uint(pj[r]) != 0x80000000u) acc[r][u] = fmaf(pj[r], vd, acc[r][u]);
                    }
                }
            }
        }
    }

    if (p.block_table != nullptr) bad = __syncthreads_or(bad) != 0;  // a page out of range: all NaN
    if (!warp_active) return;
    // Normalize, round once, store; lse in natural log. A row that saw no key (or only keys of score -inf)
    // has l = 0: zeros, -inf. A NaN or +inf score makes l NaN, and the NaN reaches both o and lse (a test
    // l > 0 would turn it into the "no key" marker -inf, which a split-KV merge drops).
#pragma unroll
    for (int r = 0; r < R; ++r) {
        const int pr = row0 + r;
        const float l = warp_reduce_sum(l_part[r]);
        if (pr >= rows) continue;
        const int i = pr / G;       // query
        const int g = pr % G;       // head within the group
        const float inv_l = l == 0.0f ? 0.0f : 1.0f / l;
        const float nan = __int_as_float(0x7fffffff);
        T* o_row = o + int64_t(i) * p.o_row_stride + int64_t(g) * p.o_head_stride;  // (hd,)
#pragma unroll
        for (int u = 0; u < DPL; ++u) {
            const int d = lane + u * WARP_SIZE;
            if (d < hd) o_row[d] = from_f32<T>(bad ? nan : acc[r][u] * inv_l);
        }
        if (p.lse != nullptr && lane == 0) {
            p.lse[b * p.lse_batch_stride + int64_t(hk * G + g) * p.lse_head_stride + seq.q_start + i] =
                bad ? nan : l == 0.0f ? -INFINITY : (m_run[r] + log2f(l)) / LOG2E;
        }
    }
}

}  // namespace lk

// Entry points: attention_<dtype>_d<head-dim bucket>, params by value.
#define LK_ATTENTION_ENTRY(NAME, T, TRAITS) \
    extern "C" __global__ void __launch_bounds__(TRAITS::THREADS, TRAITS::MIN_BLOCKS_PER_SM) NAME(const AttentionParams p) { lk::attention_kernel<T, TRAITS>(p); }
LK_ATTENTION_ENTRY(attention_f32_d64, float, lk::AttentionD64)
LK_ATTENTION_ENTRY(attention_f32_d128, float, lk::AttentionD128)
LK_ATTENTION_ENTRY(attention_f32_d256, float, lk::AttentionD256)
LK_ATTENTION_ENTRY(attention_v1_f16_d64, __half, lk::AttentionD64)
LK_ATTENTION_ENTRY(attention_v1_f16_d128, __half, lk::AttentionD128)
LK_ATTENTION_ENTRY(attention_v1_f16_d256, __half, lk::AttentionD256)
LK_ATTENTION_ENTRY(attention_v1_bf16_d64, __nv_bfloat16, lk::AttentionD64)
LK_ATTENTION_ENTRY(attention_v1_bf16_d128, __nv_bfloat16, lk::AttentionD128)
LK_ATTENTION_ENTRY(attention_v1_bf16_d256, __nv_bfloat16, lk::AttentionD256)
