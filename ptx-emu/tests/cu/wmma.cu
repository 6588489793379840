// Tiny GEMMs with the nvcuda::wmma API (m16n16k16): C (M x N) = alpha * A (M x K) * B (K x N) + beta * C0.
// One warp per 16 x 16 tile of C; A and B row- or column-major (template flags), fragments loaded from
// global memory or, in wmma_gemm_shared, from padded shared-memory tiles. All layout-independent, so the
// result does not depend on how a GPU (or the emulator) maps elements to fragment registers.
#include <mma.h>
#include <cuda_fp16.h>
#include <cuda_bf16.h>
using namespace nvcuda;

// lda/ldb: leading dimensions in elements; C is row-major with ldc = N (or column-major if C_COL).
template <typename T, typename Acc, bool A_COL, bool B_COL, bool C_COL>
__device__ void gemm(Acc* c, const T* a, const T* b, int M, int N, int K, float alpha, float beta) {
    using LA = typename std::conditional<A_COL, wmma::col_major, wmma::row_major>::type;
    using LB = typename std::conditional<B_COL, wmma::col_major, wmma::row_major>::type;
    int warp = threadIdx.x / 32, tiles_n = N / 16;
    int ti = warp / tiles_n, tj = warp % tiles_n;
    if (ti >= M / 16) return;
    int lda = A_COL ? M : K, ldb = B_COL ? K : N;
    wmma::fragment<wmma::matrix_a, 16, 16, 16, T, LA> fa;
    wmma::fragment<wmma::matrix_b, 16, 16, 16, T, LB> fb;
    wmma::fragment<wmma::accumulator, 16, 16, 16, Acc> acc;
    wmma::fill_fragment(acc, 0.0f);
    for (int k = 0; k < K; k += 16) {
        const T* pa = A_COL ? a + k * lda + ti * 16 : a + ti * 16 * lda + k;
        const T* pb = B_COL ? b + tj * 16 * ldb + k : b + k * ldb + tj * 16;
        wmma::load_matrix_sync(fa, pa, lda);
        wmma::load_matrix_sync(fb, pb, ldb);
        wmma::mma_sync(acc, fa, fb, acc);
    }
    Acc* pc = C_COL ? c + tj * 16 * M + ti * 16 : c + ti * 16 * N + tj * 16;
    wmma::layout_t lc = C_COL ? wmma::mem_col_major : wmma::mem_row_major;
    int ldc = C_COL ? M : N;
    if (beta != 0.0f) {
        wmma::fragment<wmma::accumulator, 16, 16, 16, Acc> c0;
        wmma::load_matrix_sync(c0, pc, ldc, lc);
        for (int i = 0; i < acc.num_elements; i++) acc.x[i] = Acc(float(alpha) * float(acc.x[i]) + beta * float(c0.x[i]));
    } else if (alpha != 1.0f) {
        for (int i = 0; i < acc.num_elements; i++) acc.x[i] = Acc(alpha * float(acc.x[i]));
    }
    wmma::store_matrix_sync(pc, acc, ldc, lc);
}

#define GEMM(name, T, Acc, AC, BC, CC)                                                                  \
    extern "C" __global__ void name(Acc* c, const T* a, const T* b, int M, int N, int K, float alpha,  \
                                    float beta) {                                                      \
        gemm<T, Acc, AC, BC, CC>(c, a, b, M, N, K, alpha, beta);                                       \
    }
GEMM(wmma_f16_rr, half, float, false, false, false)
GEMM(wmma_f16_rc, half, float, false, true, false)
GEMM(wmma_f16_cr, half, float, true, false, false)
GEMM(wmma_f16_cc, half, float, true, true, true)
GEMM(wmma_f16acc_rc, half, half, false, true, false)
GEMM(wmma_f16acc_cr, half, half, true, false, true)
GEMM(wmma_bf16_rr, __nv_bfloat16, float, false, false, false)
GEMM(wmma_bf16_cc, __nv_bfloat16, float, true, true, false)

// A (row-major) and B (column-major) staged through shared memory with a padded stride (K + 16 halves,
// 32-byte aligned rows as the PTX ISA requires), one block per 16-row strip of C.
#define KMAX 64
#define LDS (KMAX + 16)
extern "C" __global__ void wmma_gemm_shared(float* c, const half* a, const half* b, int M, int N, int K) {
    __shared__ __align__(32) half sa[16 * LDS];
    __shared__ __align__(32) half sb[48 * LDS];
    int row0 = blockIdx.x * 16;
    for (int i = threadIdx.x; i < 16 * K; i += blockDim.x) sa[(i / K) * LDS + i % K] = a[(row0 + i / K) * K + i % K];
    for (int i = threadIdx.x; i < N * K; i += blockDim.x) sb[(i / K) * LDS + i % K] = b[i];  // b: column-major, ldb = K
    __syncthreads();
    int tj = threadIdx.x / 32;
    if (tj >= N / 16) return;
    wmma::fragment<wmma::matrix_a, 16, 16, 16, half, wmma::row_major> fa;
    wmma::fragment<wmma::matrix_b, 16, 16, 16, half, wmma::col_major> fb;
    wmma::fragment<wmma::accumulator, 16, 16, 16, float> acc;
    wmma::fill_fragment(acc, 0.0f);
    for (int k = 0; k < K; k += 16) {
        wmma::load_matrix_sync(fa, sa + k, LDS);
        wmma::load_matrix_sync(fb, sb + tj * 16 * LDS + k, LDS);
        wmma::mma_sync(acc, fa, fb, acc);
    }
    wmma::store_matrix_sync(c + row0 * N + tj * 16, acc, N, wmma::mem_row_major);
}
