// GEMM rung v1 (CUDA cores, f32): the f32 GEMM the op runs (cuda/gemm_f32.cu compiles this file).
// The ladder and its figures: dev/gemm/README.md.
//
//   C (m, n) = alpha * op(A) (m, k) * op(B) (k, n) + beta * C        row-major, f32 accumulation
//   op(A)[i, p] = trans_a ? A[p * lda + i] : A[i * lda + p]          A stored (m, k), or (k, m) if trans_a
//   op(B)[p, j] = trans_b ? B[j * ldb + p] : B[p * ldb + j]          B stored (k, n), or (n, k) if trans_b
//   beta == 0: C is never read (an uninitialised C is fine).
//
// v1 work mapping (gemm_f32): one block of 256 threads per (BLOCK_M x BLOCK_N) tile of C; grid = (ceil(n / BLOCK_N),
// ceil(m / BLOCK_M)). The k loop stages one (BLOCK_M, BLOCK_K) slice of op(A) and one (BLOCK_K, BLOCK_N)
// slice of op(B) in shared memory, both k-major and converted to f32 at the load; out-of-range elements
// (edges of m, n, k) are zero-filled, so the inner product needs no bounds checks. The global loads follow
// the stored layout (consecutive threads read consecutive addresses whatever the transpose flags).
// Thread (ty, tx) of the 16x16 thread grid owns the THREAD_M x THREAD_N register tile of C at rows
// ty + 16 * r and columns tx + 16 * c (strided, so a warp's stores of C cover 16 consecutive columns).
//
// Rounding: products and sums in f32, blocked: each k-tile's BLOCK_K = 16 products are summed by fma in k
// order into a fresh f32 partial, and the partials are added to the accumulator in k order. The error
// grows like (16 + k / 16) u rather than k u (sequential summation was 7x torch's f32 error at k = 4096);
// then the epilogue in f32 (gemm_epilogue.cuh); C rounded once.
#include "gemm_epilogue.cuh"

namespace lk {

// One tile configuration: a 64x64 C tile per block, k-step 16, 4x4 C elements per thread.
struct GemmTraits {
    static constexpr int BLOCK_M = 64;
    static constexpr int BLOCK_N = 64;
    static constexpr int BLOCK_K = 16;
    static constexpr int THREADS_M = 16;  // thread grid rows (ty)
    static constexpr int THREADS_N = 16;  // thread grid columns (tx)
    static constexpr int THREADS = THREADS_M * THREADS_N;
    static constexpr int THREAD_M = BLOCK_M / THREADS_M;  // C rows per thread
    static constexpr int THREAD_N = BLOCK_N / THREADS_N;  // C columns per thread
    // One float of padding per shared row: an odd row stride (in 4-byte words) keeps the transposing
    // stores into the k-major tiles free of bank conflicts.
    static constexpr int SMEM_PAD = 1;
    static constexpr int A_LOADS = BLOCK_M * BLOCK_K / THREADS;  // elements of A each thread stages
    static constexpr int B_LOADS = BLOCK_K * BLOCK_N / THREADS;  // elements of B each thread stages

    static_assert(BLOCK_M % THREADS_M == 0 && BLOCK_N % THREADS_N == 0, "thread tile must divide block tile");
    static_assert(THREADS % WARP_SIZE == 0, "whole warps");
    static_assert((BLOCK_M * BLOCK_K) % THREADS == 0 && (BLOCK_K * BLOCK_N) % THREADS == 0,
                  "each thread stages the same number of elements");
    static_assert(THREADS % BLOCK_K == 0 && THREADS % BLOCK_M == 0 && THREADS % BLOCK_N == 0,
                  "the staging index maps below need these divisibilities");
    static_assert((BLOCK_M + SMEM_PAD) % 2 == 1 && (BLOCK_N + SMEM_PAD) % 2 == 1, "odd shared row stride");
};

// op(X)[row, col] of a row-major matrix X stored with leading dimension ld, transposed or not, as f32;
// 0 outside (rows, cols).
template <typename T>
__device__ __forceinline__ float load_op(const T* __restrict__ x, int64_t ld, bool trans, int row, int col, int rows,
                                         int cols) {
    if (row >= rows || col >= cols) return 0.0f;
    const int64_t idx = trans ? int64_t(col) * ld + row : int64_t(row) * ld + col;
    return to_f32(x[idx]);
}

// The kernel body; the extern "C" __global__ entry points below instantiate it per dtype with
// __launch_bounds__(Tr::THREADS) (a template cannot carry an unmangled name itself).
template <typename T, typename Tr>
__device__ __forceinline__ void gemm_kernel(const GemmParams& p) {
    const int64_t batch = blockIdx.z;
    const T* __restrict__ a = static_cast<const T*>(p.a) + batch * p.batch_stride_a;  // (m, k) or (k, m) if trans_a
    const T* __restrict__ b = static_cast<const T*>(p.b) + batch * p.batch_stride_b;  // (k, n) or (n, k) if trans_b
    T* __restrict__ c = static_cast<T*>(p.c) + batch * p.batch_stride_c;              // (m, n)

    __shared__ float a_tile[Tr::BLOCK_K][Tr::BLOCK_M + Tr::SMEM_PAD];  // (BLOCK_K, BLOCK_M): op(A) slice, k-major
    __shared__ float b_tile[Tr::BLOCK_K][Tr::BLOCK_N + Tr::SMEM_PAD];  // (BLOCK_K, BLOCK_N): op(B) slice

    const int tid = threadIdx.x;
    const int tx = tid % Tr::THREADS_N;
    const int ty = tid / Tr::THREADS_N;
    const int m0 = blockIdx.y * Tr::BLOCK_M;  // first C row of this block
    const int n0 = blockIdx.x * Tr::BLOCK_N;  // first C column of this block
    const bool trans_a = p.trans_a != 0;
    const bool trans_b = p.trans_b != 0;

    float acc[Tr::THREAD_M][Tr::THREAD_N];  // C rows ty + 16 r, columns tx + 16 c
#pragma unroll
    for (int r = 0; r < Tr::THREAD_M; ++r)
#pragma unroll
        for (int cc = 0; cc < Tr::THREAD_N; ++cc) acc[r][cc] = 0.0f;

    for (int k0 = 0; k0 < p.k; k0 += Tr::BLOCK_K) {
        // Stage op(A)[m0.., k0..] into a_tile[kk][i]. Consecutive threads walk the stored contiguous axis:
        // k for A (m, k), m for A stored (k, m).
#pragma unroll
        for (int s = 0; s < Tr::A_LOADS; ++s) {
            const int e = tid + s * Tr::THREADS;
            const int i = trans_a ? e % Tr::BLOCK_M : e / Tr::BLOCK_K;
            const int kk = trans_a ? e / Tr::BLOCK_M : e % Tr::BLOCK_K;
            a_tile[kk][i] = load_op(a, p.lda, trans_a, m0 + i, k0 + kk, p.m, p.k);
        }
        // Stage op(B)[k0.., n0..] into b_tile[kk][j]: n contiguous for B (k, n), k for B stored (n, k).
#pragma unroll
        for (int s = 0; s < Tr::B_LOADS; ++s) {
            const int e = tid + s * Tr::THREADS;
            const int j = trans_b ? e / Tr::BLOCK_K : e % Tr::BLOCK_N;
            const int kk = trans_b ? e % Tr::BLOCK_K : e / Tr::BLOCK_N;
            b_tile[kk][j] = load_op(b, p.ldb, trans_b, k0 + kk, n0 + j, p.k, p.n);
        }
        __syncthreads();

        float part[Tr::THREAD_M][Tr::THREAD_N];  // this k-tile's sums
#pragma unroll
        for (int r = 0; r < Tr::THREAD_M; ++r)
#pragma unroll
            for (int cc = 0; cc < Tr::THREAD_N; ++cc) part[r][cc] = 0.0f;
#pragma unroll
        for (int kk = 0; kk < Tr::BLOCK_K; ++kk) {
            float a_frag[Tr::THREAD_M];  // op(A)[rows of this thread, k0 + kk]
            float b_frag[Tr::THREAD_N];  // op(B)[k0 + kk, columns of this thread]
#pragma unroll
            for (int r = 0; r < Tr::THREAD_M; ++r) a_frag[r] = a_tile[kk][ty + r * Tr::THREADS_M];
#pragma unroll
            for (int cc = 0; cc < Tr::THREAD_N; ++cc) b_frag[cc] = b_tile[kk][tx + cc * Tr::THREADS_N];
#pragma unroll
            for (int r = 0; r < Tr::THREAD_M; ++r)
#pragma unroll
                for (int cc = 0; cc < Tr::THREAD_N; ++cc) part[r][cc] = fmaf(a_frag[r], b_frag[cc], part[r][cc]);
        }
#pragma unroll
        for (int r = 0; r < Tr::THREAD_M; ++r)
#pragma unroll
            for (int cc = 0; cc < Tr::THREAD_N; ++cc) acc[r][cc] += part[r][cc];
        __syncthreads();  // the tiles are overwritten by the next k step
    }

    // Epilogue (gemm_epilogue.cuh): C read only when the epilogue needs it. SWIGLU: a thread's columns are
    // all gate (tx % 16 < 8) or all up, and lane tx ^ 8 holds the partner of each, so the gate thread
    // takes the up value by a shuffle (every lane shuffles, in or out of range) and stores.
    static_assert(Tr::THREADS_N % (2 * LK_GEMM_SWIGLU_BLOCK) == 0 && Tr::BLOCK_N % (2 * LK_GEMM_SWIGLU_BLOCK) == 0,
                  "gate and up of a column sit in lanes tx and tx ^ SWIGLU_BLOCK of one warp");
    const bool read_c = gemm_reads_c(p);
    const bool swiglu = p.epilogue == LK_GEMM_EPILOGUE_SWIGLU;
#pragma unroll
    for (int r = 0; r < Tr::THREAD_M; ++r) {
        const int i = m0 + ty + r * Tr::THREADS_M;
#pragma unroll
        for (int cc = 0; cc < Tr::THREAD_N; ++cc) {
            const int j = n0 + tx + cc * Tr::THREADS_N;
            const float v = p.alpha * acc[r][cc];
            if (swiglu) {
                const float up = __shfl_xor_sync(FULL_MASK, v, LK_GEMM_SWIGLU_BLOCK);
                constexpr int S = LK_GEMM_SWIGLU_BLOCK;
                if (i < p.m && j < p.n && j % (2 * S) < S)
                    c[int64_t(i) * p.ldc + j / (2 * S) * S + j % S] = gemm_swiglu<T>(p, v, up);
                continue;
            }
            if (i >= p.m || j >= p.n) continue;
            T* dst = c + int64_t(i) * p.ldc + j;
            *dst = gemm_finish<T>(p, v, read_c ? *dst : T());
        }
    }
}

}  // namespace lk

extern "C" __global__ void __launch_bounds__(lk::GemmTraits::THREADS) gemm_f32(const GemmParams p) { lk::gemm_kernel<float, lk::GemmTraits>(p); }
