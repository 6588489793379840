// GEMM rung v2 (tensor cores, f16/bf16): 64x64x32 tiles, one stage, plain 16-byte loads. The op runs it
// only where v3 (cuda/gemm.cu) cannot: an operand whose base or leading dimension is not 16-byte aligned
// (cp.async needs 16-byte chunks), since v2 falls back to element loads at run time. cuda/gemm_v2.cu
// compiles this file; the ladder and its figures: dev/gemm/README.md.
//
//   C (m, n) = alpha * op(A) (m, k) * op(B) (k, n) + beta * C        row-major, f32 accumulation
//
// v2 work mapping (gemm_f16, gemm_bf16): one block of 4 warps (2 x 2) per 64 x 64 tile of C, k-step 32.
// Each k-step stages op(A)[m0.., k0..] as a_s[i][k] and op(B)[k0.., n0..] as b_s[j][k] (both k-contiguous,
// rows padded to 40 elements = 80 bytes so the 8 row addresses of every ldmatrix hit distinct banks), in
// the storage type, zero-filled outside (m, n, k). The global reads walk the stored contiguous axis, as 16-
// byte vectors when the base and the leading dimension allow it (8-element aligned rows, whole vector in range),
// else element by element. Warp (wm, wn) owns the 32 x 32 sub-tile at rows 32 wm, columns 32 wn: per
// 16-wide k slice it loads 2 A fragments (ldmatrix.x4: rows lane % 16, k-half lane / 16) and 4 B fragments
// (2 x ldmatrix.x4 over b_s rows, non-transposed: b_s[j][k] is B "col" for mma .row.col) and issues 2 x 4
// mma.sync.m16n8k16 with f32 accumulators (PTX ISA fragment layouts; c0,c1 at row lane/4, columns
// 2 (lane%4) + {0,1}; c2,c3 eight rows below).
//
// Rounding: the products and sums are f32 (v1: fma in k order; v2: the tensor core's f32 accumulation);
// alpha * acc + beta * C in f32; C rounded to T once.
//
#include "gemm_epilogue.cuh"
#include "mma.cuh"

namespace lk {


// A 64x64 C tile per block of 4 warps (2 x 2, each 32 x 32), k-step 32, mma.sync m16n8k16.
struct GemmMmaTraits {
    static constexpr int BLOCK_M = 64;
    static constexpr int BLOCK_N = 64;
    static constexpr int BLOCK_K = 32;
    static constexpr int WARPS_M = 2;
    static constexpr int WARPS_N = 2;
    static constexpr int THREADS = WARPS_M * WARPS_N * WARP_SIZE;
    static constexpr int WARP_M = BLOCK_M / WARPS_M;  // 32 rows of C per warp
    static constexpr int WARP_N = BLOCK_N / WARPS_N;  // 32 columns of C per warp
    static constexpr int MMA_M = 16, MMA_N = 8, MMA_K = 16;
    static constexpr int M_TILES = WARP_M / MMA_M;  // 2
    static constexpr int N_TILES = WARP_N / MMA_N;  // 4
    static constexpr int VEC = 8;                   // elements per 16-byte staging vector
    // 40 elements = 80 bytes per shared row: 16-byte aligned rows for ldmatrix, and the 8 rows one
    // ldmatrix reads start 20 words apart, which covers all 32 banks once (no conflict).
    static constexpr int SMEM_K = BLOCK_K + 8;
    static constexpr int VECS_PER_THREAD = BLOCK_M * BLOCK_K / VEC / THREADS;  // per operand and k-step

    static_assert(BLOCK_M == BLOCK_N, "one staging routine serves both operands");
    static_assert(N_TILES % 2 == 0, "B fragments are loaded two n-tiles per ldmatrix.x4");
    static_assert((BLOCK_M * BLOCK_K / VEC) % THREADS == 0, "whole staging vectors per thread");
    static_assert((SMEM_K * 2) % 16 == 0, "ldmatrix rows must be 16-byte aligned");
};

// Stages one operand's (BLOCK_M rows, BLOCK_K) slice into dst[r][k] (k contiguous), zero outside
// (rows, kdim). The stored matrix has its contiguous axis along k (`k_contiguous`: A (m, k), B^T (n, k)) or
// along the rows (A^T stored (k, m), B stored (k, n)); each thread moves VECS_PER_THREAD runs of 8 stored-
// contiguous elements: one 16-byte load when `vec_ok` and the run is in range, else 8 guarded scalar loads.
template <typename T, typename Tr>
__device__ __forceinline__ void stage_operand(T (*dst)[Tr::SMEM_K], const T* src, int64_t ld, bool k_contiguous,
                                              int r0, int k0, int rows, int kdim, bool vec_ok) {
    constexpr int VEC = Tr::VEC;
#pragma unroll
    for (int s = 0; s < Tr::VECS_PER_THREAD; ++s) {
        const int v = threadIdx.x + s * Tr::THREADS;
        // Tile coordinates of the run's first element; the run goes along k or along r.
        const int r = k_contiguous ? v / (Tr::BLOCK_K / VEC) : v % (Tr::BLOCK_M / VEC) * VEC;
        const int kk = k_contiguous ? v % (Tr::BLOCK_K / VEC) * VEC : v / (Tr::BLOCK_M / VEC);
        const int gr = r0 + r;
        const int gk = k0 + kk;
        const bool full = k_contiguous ? (gr < rows && gk + VEC <= kdim) : (gk < kdim && gr + VEC <= rows);
        alignas(16) T run[VEC];
        if (vec_ok && full) {
            const T* p = k_contiguous ? src + int64_t(gr) * ld + gk : src + int64_t(gk) * ld + gr;
            *reinterpret_cast<uint4*>(run) = *reinterpret_cast<const uint4*>(p);
        } else {
#pragma unroll
            for (int e = 0; e < VEC; ++e) {
                const bool in = k_contiguous ? (gr < rows && gk + e < kdim) : (gk < kdim && gr + e < rows);
                run[e] = in ? (k_contiguous ? src[int64_t(gr) * ld + gk + e] : src[int64_t(gk) * ld + gr + e])
                            : from_f32<T>(0.0f);
            }
        }
        if (k_contiguous) {
            *reinterpret_cast<uint4*>(&dst[r][kk]) = *reinterpret_cast<const uint4*>(run);
        } else {
#pragma unroll
            for (int e = 0; e < VEC; ++e) dst[r + e][kk] = run[e];
        }
    }
}

template <typename T, typename Tr>
__device__ __forceinline__ void gemm_mma_kernel(const GemmParams& p) {
    const int64_t batch = blockIdx.z;
    const T* __restrict__ a = static_cast<const T*>(p.a) + batch * p.batch_stride_a;  // (m, k) or (k, m) if trans_a
    const T* __restrict__ b = static_cast<const T*>(p.b) + batch * p.batch_stride_b;  // (k, n) or (n, k) if trans_b
    T* __restrict__ c = static_cast<T*>(p.c) + batch * p.batch_stride_c;              // (m, n)

    __shared__ __align__(16) T a_s[Tr::BLOCK_M][Tr::SMEM_K];  // op(A)[m0 + i, k0 + k]
    __shared__ __align__(16) T b_s[Tr::BLOCK_N][Tr::SMEM_K];  // op(B)[k0 + k, n0 + j], stored [j][k]

    const int lane = threadIdx.x % WARP_SIZE;
    const int warp = threadIdx.x / WARP_SIZE;
    const int wm = warp / Tr::WARPS_N;
    const int wn = warp % Tr::WARPS_N;
    const int m0 = blockIdx.y * Tr::BLOCK_M;
    const int n0 = blockIdx.x * Tr::BLOCK_N;
    // A's stored contiguous axis is k unless transposed; B's is k only when transposed (B stored (n, k)).
    const bool a_k_contiguous = p.trans_a == 0;
    const bool b_k_contiguous = p.trans_b != 0;
    const bool a_vec = reinterpret_cast<uintptr_t>(a) % 16 == 0 && p.lda % Tr::VEC == 0;
    const bool b_vec = reinterpret_cast<uintptr_t>(b) % 16 == 0 && p.ldb % Tr::VEC == 0;

    float acc[Tr::M_TILES][Tr::N_TILES][4];
#pragma unroll
    for (int mt = 0; mt < Tr::M_TILES; ++mt)
#pragma unroll
        for (int nt = 0; nt < Tr::N_TILES; ++nt)
#pragma unroll
            for (int e = 0; e < 4; ++e) acc[mt][nt][e] = 0.0f;

    for (int k0 = 0; k0 < p.k; k0 += Tr::BLOCK_K) {
        __syncthreads();  // the previous slice is consumed
        stage_operand<T, Tr>(a_s, a, p.lda, a_k_contiguous, m0, k0, p.m, p.k, a_vec);
        stage_operand<T, Tr>(b_s, b, p.ldb, b_k_contiguous, n0, k0, p.n, p.k, b_vec);
        __syncthreads();
#pragma unroll
        for (int ks = 0; ks < Tr::BLOCK_K; ks += Tr::MMA_K) {
            uint32_t af[Tr::M_TILES][4];
            uint32_t bf[Tr::N_TILES / 2][4];  // per pair of n-tiles: b0, b1 of the first, b0, b1 of the second
#pragma unroll
            for (int mt = 0; mt < Tr::M_TILES; ++mt)
                ldmatrix_x4(af[mt], &a_s[wm * Tr::WARP_M + mt * Tr::MMA_M + lane % 16][ks + lane / 16 * 8]);
#pragma unroll
            for (int np = 0; np < Tr::N_TILES / 2; ++np)
                ldmatrix_x4(bf[np], &b_s[wn * Tr::WARP_N + np * 16 + lane / 16 * 8 + lane % 8][ks + lane / 8 % 2 * 8]);
#pragma unroll
            for (int mt = 0; mt < Tr::M_TILES; ++mt)
#pragma unroll
                for (int nt = 0; nt < Tr::N_TILES; ++nt)
                    mma_16816(acc[mt][nt], af[mt], bf[nt / 2][nt % 2 * 2], bf[nt / 2][nt % 2 * 2 + 1], T());
        }
    }

    // Epilogue (gemm_epilogue.cuh): C read only when the epilogue needs it. SWIGLU: n8 tile 2q of a warp
    // holds gate columns and tile 2q + 1 their up columns (warp tiles start at multiples of 16).
    static_assert(Tr::MMA_N == LK_GEMM_SWIGLU_BLOCK && Tr::WARP_N % (2 * LK_GEMM_SWIGLU_BLOCK) == 0,
                  "one n8 tile per SwiGLU block");
    const bool read_c = gemm_reads_c(p);
    const bool swiglu = p.epilogue == LK_GEMM_EPILOGUE_SWIGLU;
    const int g = lane / 4;  // fragment row within the 8-row half
    const int t = lane % 4;  // fragment column pair
#pragma unroll
    for (int mt = 0; mt < Tr::M_TILES; ++mt)
#pragma unroll
        for (int half = 0; half < 2; ++half) {
            const int i = m0 + wm * Tr::WARP_M + mt * Tr::MMA_M + half * 8 + g;
            if (i >= p.m) continue;
#pragma unroll
            for (int nt = 0; nt < Tr::N_TILES; ++nt)
#pragma unroll
                for (int e = 0; e < 2; ++e) {
                    const int j = n0 + wn * Tr::WARP_N + nt * Tr::MMA_N + t * 2 + e;
                    if (j >= p.n) continue;
                    const float v = p.alpha * acc[mt][nt][half * 2 + e];
                    if (swiglu) {
                        if (nt % 2 == 0) {
                            const float up = p.alpha * acc[mt][nt | 1][half * 2 + e];
                            c[int64_t(i) * p.ldc + j / 16 * 8 + j % 8] = gemm_swiglu<T>(p, v, up);
                        }
                        continue;
                    }
                    T* dst = c + int64_t(i) * p.ldc + j;
                    *dst = gemm_finish<T>(p, v, read_c ? *dst : T());
                }
        }
}

}  // namespace lk

extern "C" __global__ void __launch_bounds__(lk::GemmMmaTraits::THREADS) gemm_v2_f16(const GemmParams p) {
    lk::gemm_mma_kernel<__half, lk::GemmMmaTraits>(p);
}
extern "C" __global__ void __launch_bounds__(lk::GemmMmaTraits::THREADS) gemm_v2_bf16(const GemmParams p) {
    lk::gemm_mma_kernel<__nv_bfloat16, lk::GemmMmaTraits>(p);
}
