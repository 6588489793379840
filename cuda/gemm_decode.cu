// GEMM, the decode path: C (m, n) = epilogue(alpha * A (m, k) * W^T) for m <= 16, W stored (n, k) —
// LLaMA's y = x * W^T at decode, where the time is the stream of W's n * k elements from HBM. f16/bf16,
// tensor cores (mma.sync m16n8k16, f32 accumulators), every epilogue of gemm_epilogue.cuh, batched.
//
//   acc[i, j] = sum_p A[i * lda + p] * W[j * ldb + p]      i < m <= 16, j < n, p < k
//   The host runs this path when A is stored (m, k) and B (n, k) (trans_a = 0, trans_b = 1), both
//   16-byte aligned with k % 8 == 0 (src/ops/gemm.rs, `plan`); other decode shapes run v3 (cuda/gemm.cu).
//
// Work mapping. Block (bx, split, z) of WARPS warps owns W rows [bx * BLOCK_N, + BLOCK_N) and the k range
// [split * split_k, + split_k) of product z, in one of two shapes (the compile-time axis WARPS_SPLIT_K):
//   wide (WARPS_SPLIT_K = false): BLOCK_N = WARPS * WARP_N = 128 rows; warp w owns rows w * 32 ..;
//   narrow (WARPS_SPLIT_K = true): BLOCK_N = WARP_N = 32 rows, every warp on all of them; warp w takes the
//     k-steps s of the block's range with s % WARPS == w, and at the end warp 0 adds the warps' f32 sums
//     in warp order through shared memory (deterministic) — 4x the blocks of wide for the same n, so
//     projections too narrow to fill the GPU fill it without a second launch.
// A warp's WARP_N = 32 rows are GROUPS = 4 n8 groups.
// Lane (g = lane / 4, q = lane % 4) streams row g of each group, 16 bytes at a time, straight from global
// memory into registers (ld.global.nc, no L1 allocation: every W byte is read once): per k-step of
// BLOCK_K = 128, UNROLL = 4 sub-steps of 32 k, lane q takes the 8 elements at k0 + 32u + 8q. That is
// UNROLL * GROUPS = 16 independent 16-byte loads in flight per thread before the first mma needs one.
// A sum over k does not care which k-slot of the mma holds which k, so a lane's 8 elements feed two
// mma.m16n8k16 k-steps: the fragment's slots (2q, 2q + 1) and (2q + 8, 2q + 9) take elements 0..3, then
// 4..7, and the A fragment takes the same elements of x. x (at most 16 rows) is staged per X_CHUNK = 1024
// k in shared memory (rows padded by 64 bytes: a quarter-warp's 16-byte reads hit distinct banks), once per
// block; rows past m are never staged or read (their fragment registers are zero).
//
// Split-K (gridDim.y = splits > 1, chosen by the host when the n blocks alone would fill fewer than two
// waves): each split writes its f32 partial sums to workspace[z][split][m][n], and gemm_decode_reduce
// adds them in split order (deterministic: no atomics) and applies alpha and the epilogue.
//
// Rounding: products and sums in f32 on the tensor cores, k in order within a lane's slots, the four
// lanes' slots and the splits added in a fixed order; the epilogue in f32 (gemm_epilogue.cuh); one
// rounding to T.
//
// Compile-time axes (one table):
// | axis    | values    | entry points                                         |
// |---------|-----------|------------------------------------------------------|
// | dtype T | f16, bf16 | gemm_decode_<dtype>_<shape>, gemm_decode_reduce_<dtype> |
// | shape   | wide (warps split n), narrow (warps split k)     | WARPS_SPLIT_K   |
#include "gemm_epilogue.cuh"
#include "mma.cuh"

namespace lk {

struct GemmDecodeTraits {
    static constexpr int WARPS = LK_GEMM_DECODE_WARPS;
    static constexpr int THREADS = WARPS * WARP_SIZE;
    static constexpr int WARP_N = LK_GEMM_DECODE_WARP_N;
    static constexpr int GROUPS = WARP_N / 8;
    static constexpr int BLOCK_N = WARPS * WARP_N;
    static constexpr int BLOCK_K = LK_GEMM_DECODE_BLOCK_K;
    static constexpr int UNROLL = BLOCK_K / 32;
    static constexpr int X_CHUNK = LK_GEMM_DECODE_X_CHUNK;
    // Elements per staged row of x: rows 64 bytes apart modulo 128, so the two rows of a quarter-warp's
    // 16-byte reads (4 chunks each) fall on disjoint bank halves.
    static constexpr int X_STRIDE = X_CHUNK + 32;
    static constexpr int MAX_M = LK_GEMM_DECODE_MAX_M;
    static_assert(MAX_M == 16, "one m16 fragment covers every row");
    static_assert(GROUPS % 2 == 0 && LK_GEMM_SWIGLU_BLOCK == 8, "SwiGLU: n8 group 2i is gate, 2i + 1 its up");
    static_assert(X_CHUNK % BLOCK_K == 0 && BLOCK_K % 32 == 0, "whole k-steps per staged chunk");
};

// 16 bytes of W, streamed: not kept in L1 (no other lane or block reads them).
__device__ __forceinline__ uint4 load_stream_16(const void* p) {
    uint4 v;
    asm volatile("ld.global.nc.L1::no_allocate.v4.u32 {%0, %1, %2, %3}, [%4];"
                 : "=r"(v.x), "=r"(v.y), "=r"(v.z), "=r"(v.w)
                 : "l"(p));
    return v;
}

template <typename T, bool WARPS_SPLIT_K>
__device__ __forceinline__ void gemm_decode_kernel(const GemmParams& p) {
    using Tr = GemmDecodeTraits;
    constexpr int BLOCK_N = WARPS_SPLIT_K ? Tr::WARP_N : Tr::BLOCK_N;
    __shared__ __align__(16) T x_s[Tr::MAX_M * Tr::X_STRIDE];
    static_assert(!WARPS_SPLIT_K || Tr::WARPS * WARP_SIZE * Tr::GROUPS * 4 * 4 <= sizeof(x_s),
                  "the warps' partial sums fit in x's staging");

    const int tid = threadIdx.x;
    const int lane = tid % WARP_SIZE;
    const int warp = tid / WARP_SIZE;
    const int g = lane / 4;
    const int q = lane % 4;
    const int64_t batch = blockIdx.z;
    const T* x = static_cast<const T*>(p.a) + batch * p.batch_stride_a;
    const T* w = static_cast<const T*>(p.b) + batch * p.batch_stride_b;
    const int n_warp = blockIdx.x * BLOCK_N + (WARPS_SPLIT_K ? 0 : warp * Tr::WARP_N);  // first W row of this warp
    const int k_begin = blockIdx.y * p.split_k;
    const int k_end = min(p.k, k_begin + p.split_k);
    const bool low_rows = g < p.m;      // x row g exists
    const bool high_rows = g + 8 < p.m;  // x row g + 8 exists

    const T* w_row[Tr::GROUPS];
    bool row_in[Tr::GROUPS];
#pragma unroll
    for (int gi = 0; gi < Tr::GROUPS; ++gi) {
        const int r = n_warp + gi * 8 + g;
        row_in[gi] = r < p.n;
        w_row[gi] = w + int64_t(row_in[gi] ? r : 0) * p.ldb;
    }
    float acc[Tr::GROUPS][4];
#pragma unroll
    for (int gi = 0; gi < Tr::GROUPS; ++gi)
#pragma unroll
        for (int e = 0; e < 4; ++e) acc[gi][e] = 0.0f;

    for (int kc = k_begin; kc < k_end; kc += Tr::X_CHUNK) {
        const int kc_end = min(k_end, kc + Tr::X_CHUNK);
        // Stage x[0, m) x [kc, kc_end) (k and the chunk bounds are multiples of 8: whole 16-byte chunks).
        __syncthreads();  // the previous chunk is consumed
        const int row_chunks = (kc_end - kc) / 8;
        for (int c = tid; c < p.m * row_chunks; c += Tr::THREADS) {
            const int r = c / row_chunks;
            const int ch = c % row_chunks;
            cp_async_16(&x_s[r * Tr::X_STRIDE + ch * 8], x + int64_t(r) * p.lda + kc + ch * 8, 16);
        }
        cp_async_commit();
        cp_async_wait<0>();
        __syncthreads();

        const int first = WARPS_SPLIT_K ? kc + warp * Tr::BLOCK_K : kc;
        constexpr int STEP = WARPS_SPLIT_K ? Tr::WARPS * Tr::BLOCK_K : Tr::BLOCK_K;
        for (int k0 = first; k0 < kc_end; k0 += STEP) {
            // Every load of the k-step first (UNROLL * GROUPS in flight), then the mma.
            uint4 wv[Tr::UNROLL][Tr::GROUPS];
#pragma unroll
            for (int u = 0; u < Tr::UNROLL; ++u) {
                const int kk = k0 + u * 32 + q * 8;
#pragma unroll
                for (int gi = 0; gi < Tr::GROUPS; ++gi)
                    wv[u][gi] = row_in[gi] && kk < kc_end ? load_stream_16(w_row[gi] + kk) : make_uint4(0, 0, 0, 0);
            }
#pragma unroll
            for (int u = 0; u < Tr::UNROLL; ++u) {
                const int kk = k0 + u * 32 + q * 8;
                const int ks = kk - kc;
                const bool k_in = kk < kc_end;
                const uint4 lo = low_rows && k_in ? *reinterpret_cast<const uint4*>(&x_s[g * Tr::X_STRIDE + ks])
                                                  : make_uint4(0, 0, 0, 0);
                const uint4 hi = high_rows && k_in
                                     ? *reinterpret_cast<const uint4*>(&x_s[(g + 8) * Tr::X_STRIDE + ks])
                                     : make_uint4(0, 0, 0, 0);
                // (row g, slots 2q..2q+1) (row g+8, same) (row g, slots 2q+8..) (row g+8, same).
                const uint32_t a_first[4] = {lo.x, hi.x, lo.y, hi.y};
                const uint32_t a_second[4] = {lo.z, hi.z, lo.w, hi.w};
#pragma unroll
                for (int gi = 0; gi < Tr::GROUPS; ++gi) {
                    mma_16816(acc[gi], a_first, wv[u][gi].x, wv[u][gi].y, T());
                    mma_16816(acc[gi], a_second, wv[u][gi].z, wv[u][gi].w, T());
                }
            }
        }
    }

    // narrow: warp 0 adds the warps' sums in warp order (shared memory reused once x is consumed).
    if constexpr (WARPS_SPLIT_K) {
        float* part = reinterpret_cast<float*>(x_s);  // (WARPS, GROUPS * 4, 32 lanes)
        __syncthreads();                               // x's last chunk is consumed
        if (warp > 0) {
#pragma unroll
            for (int gi = 0; gi < Tr::GROUPS; ++gi)
#pragma unroll
                for (int e = 0; e < 4; ++e) part[((warp * Tr::GROUPS + gi) * 4 + e) * WARP_SIZE + lane] = acc[gi][e];
        }
        __syncthreads();
        if (warp > 0) return;
        for (int w = 1; w < Tr::WARPS; ++w)
#pragma unroll
            for (int gi = 0; gi < Tr::GROUPS; ++gi)
#pragma unroll
                for (int e = 0; e < 4; ++e) acc[gi][e] += part[((w * Tr::GROUPS + gi) * 4 + e) * WARP_SIZE + lane];
    }

    // acc[gi] = (row g, cols 2q, 2q + 1) and (row g + 8, same) of W rows n_warp + gi * 8 + [0, 8):
    // each_in_c(f) calls f(gi, slot, i, j) for every acc[gi][slot] that is element (i, j) of C.
    auto each_in_c = [&](auto&& f) {
#pragma unroll
        for (int gi = 0; gi < Tr::GROUPS; ++gi)
#pragma unroll
            for (int h = 0; h < 2; ++h)
#pragma unroll
                for (int e = 0; e < 2; ++e) {
                    const int i = g + 8 * h;
                    const int j = n_warp + gi * 8 + 2 * q + e;
                    if (i < p.m && j < p.n) f(gi, 2 * h + e, i, j);
                }
    };
    if (gridDim.y > 1) {
        float* ws = static_cast<float*>(p.workspace) + (batch * gridDim.y + blockIdx.y) * int64_t(p.m) * p.n;
        each_in_c([&](int gi, int slot, int i, int j) { ws[int64_t(i) * p.n + j] = acc[gi][slot]; });
        return;
    }
    T* c = static_cast<T*>(p.c) + batch * p.batch_stride_c;
    const bool swiglu = p.epilogue == LK_GEMM_EPILOGUE_SWIGLU;
    const bool read_c = gemm_reads_c(p);
    each_in_c([&](int gi, int slot, int i, int j) {
        const float v = p.alpha * acc[gi][slot];
        if (swiglu) {
            // Group gi even holds gate columns, gi + 1 their up (n_warp is a multiple of 16).
            if (gi % 2 == 0)
                c[int64_t(i) * p.ldc + j / 16 * 8 + j % 8] = gemm_swiglu<T>(p, v, p.alpha * acc[gi | 1][slot]);
            return;
        }
        T* dst = c + int64_t(i) * p.ldc + j;
        *dst = gemm_finish<T>(p, v, read_c ? *dst : T());
    });
}

// One thread per element of C: the splits' partial sums of its column(s) in split order, then alpha
// and the epilogue. Grid (ceil(m * c_cols / REDUCE_THREADS), 1, batch).
template <typename T>
__device__ __forceinline__ void gemm_decode_reduce_kernel(const GemmParams& p) {
    const bool swiglu = p.epilogue == LK_GEMM_EPILOGUE_SWIGLU;
    const int cols = swiglu ? p.n / 2 : p.n;
    const int64_t id = int64_t(blockIdx.x) * blockDim.x + threadIdx.x;
    if (id >= int64_t(p.m) * cols) return;
    const int i = int(id / cols);
    const int o = int(id % cols);
    const int64_t batch = blockIdx.z;
    const int64_t plane = int64_t(p.m) * p.n;
    const float* ws = static_cast<const float*>(p.workspace) + batch * p.splits * plane + int64_t(i) * p.n;
    auto sum = [&](int j) {
        float s = 0.0f;
        for (int sp = 0; sp < p.splits; ++sp) s += ws[sp * plane + j];
        return s;
    };
    T* dst = static_cast<T*>(p.c) + batch * p.batch_stride_c + int64_t(i) * p.ldc + o;
    if (swiglu) {
        const int j = o / 8 * 16 + o % 8;
        *dst = gemm_swiglu<T>(p, p.alpha * sum(j), p.alpha * sum(j + 8));
    } else {
        *dst = gemm_finish<T>(p, p.alpha * sum(o), gemm_reads_c(p) ? *dst : T());
    }
}

}  // namespace lk

#define LK_GEMM_DECODE(dtype, T, shape, WARPS_SPLIT_K)                                                            \
    extern "C" __global__ void __launch_bounds__(lk::GemmDecodeTraits::THREADS) gemm_decode_##dtype##_##shape( \
        const GemmParams p) {                                                                                 \
        lk::gemm_decode_kernel<T, WARPS_SPLIT_K>(p);                                                          \
    }
LK_GEMM_DECODE(f16, __half, wide, false)
LK_GEMM_DECODE(f16, __half, narrow, true)
LK_GEMM_DECODE(bf16, __nv_bfloat16, wide, false)
LK_GEMM_DECODE(bf16, __nv_bfloat16, narrow, true)
extern "C" __global__ void __launch_bounds__(LK_GEMM_DECODE_REDUCE_THREADS) gemm_decode_reduce_f16(const GemmParams p) {
    lk::gemm_decode_reduce_kernel<__half>(p);
}
extern "C" __global__ void __launch_bounds__(LK_GEMM_DECODE_REDUCE_THREADS) gemm_decode_reduce_bf16(const GemmParams p) {
    lk::gemm_decode_reduce_kernel<__nv_bfloat16>(p);
}
