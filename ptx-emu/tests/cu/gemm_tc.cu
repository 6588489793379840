// Tiled tensor-core GEMM as our GEMM/attention kernels are written: C (M,N) f32 = A (M,K) bf16 row-major
// x B (K,N) bf16 row-major. Block tile 64x64, K step 32, 4 warps each computing 32x32 (2x4 mma tiles of
// 16x8); cp.async (16 B) double buffering into shared memory, ldmatrix.x4 for A, ldmatrix.x2.trans for B,
// mma.sync m16n8k16 bf16 -> f32. Preconditions: M, N multiples of 64, K a multiple of 32.
#include <cuda_bf16.h>
#include <stdint.h>
constexpr int BM = 64, BN = 64, BK = 32, PAD = 8;
__device__ __forceinline__ uint32_t smem_addr(const void* p) { return (uint32_t)__cvta_generic_to_shared(p); }
__device__ __forceinline__ void cp_async16(void* dst, const void* src) {
    asm volatile("cp.async.cg.shared.global [%0], [%1], 16;" ::"r"(smem_addr(dst)), "l"(src));
}
extern "C" __global__ void gemm_bf16_tc(float* c, const __nv_bfloat16* a, const __nv_bfloat16* b, int M, int N, int K) {
    __shared__ __align__(16) __nv_bfloat16 sa[2][BM][BK + PAD];  // (BM, BK) padded
    __shared__ __align__(16) __nv_bfloat16 sb[2][BK][BN + PAD];  // (BK, BN) padded
    const int tid = threadIdx.x, warp = tid / 32, lane = tid % 32;
    const int wm = (warp / 2) * 32, wn = (warp % 2) * 32;
    const int row0 = blockIdx.y * BM, col0 = blockIdx.x * BN;
    float acc[2][4][4] = {};
    auto load_tiles = [&](int stage, int k0) {
        // A tile: 64 rows x 32 cols = 256 chunks of 8 bf16; B tile: 32 rows x 64 cols = 256 chunks
        for (int ch = tid; ch < 256; ch += 128) {
            int r = ch / 4, cc = (ch % 4) * 8;
            cp_async16(&sa[stage][r][cc], a + (size_t)(row0 + r) * K + k0 + cc);
            int rb = ch / 8, cb = (ch % 8) * 8;
            cp_async16(&sb[stage][rb][cb], b + (size_t)(k0 + rb) * N + col0 + cb);
        }
        asm volatile("cp.async.commit_group;");
    };
    load_tiles(0, 0);
    const int ktiles = K / BK;
    for (int kt = 0; kt < ktiles; kt++) {
        const int stage = kt % 2;
        if (kt + 1 < ktiles) {
            load_tiles(stage ^ 1, (kt + 1) * BK);
            asm volatile("cp.async.wait_group 1;" ::: "memory");
        } else {
            asm volatile("cp.async.wait_group 0;" ::: "memory");
        }
        __syncthreads();
        for (int kk = 0; kk < BK; kk += 16) {
            uint32_t af[2][4], bfr[4][2];
            for (int i = 0; i < 2; i++) {
                const __nv_bfloat16* p = &sa[stage][wm + i * 16 + (lane % 16)][kk + (lane / 16) * 8];
                asm volatile("ldmatrix.sync.aligned.m8n8.x4.shared.b16 {%0,%1,%2,%3}, [%4];"
                             : "=r"(af[i][0]), "=r"(af[i][1]), "=r"(af[i][2]), "=r"(af[i][3]) : "r"(smem_addr(p)));
            }
            for (int j = 0; j < 4; j++) {
                const __nv_bfloat16* p = &sb[stage][kk + (lane % 16)][wn + j * 8];
                asm volatile("ldmatrix.sync.aligned.m8n8.x2.trans.shared.b16 {%0,%1}, [%2];"
                             : "=r"(bfr[j][0]), "=r"(bfr[j][1]) : "r"(smem_addr(p)));
            }
            for (int i = 0; i < 2; i++)
                for (int j = 0; j < 4; j++)
                    asm volatile("mma.sync.aligned.m16n8k16.row.col.f32.bf16.bf16.f32 {%0,%1,%2,%3}, {%4,%5,%6,%7}, {%8,%9}, {%0,%1,%2,%3};"
                                 : "+f"(acc[i][j][0]), "+f"(acc[i][j][1]), "+f"(acc[i][j][2]), "+f"(acc[i][j][3])
                                 : "r"(af[i][0]), "r"(af[i][1]), "r"(af[i][2]), "r"(af[i][3]), "r"(bfr[j][0]), "r"(bfr[j][1]));
        }
        __syncthreads();
    }
    const int g = lane / 4, t = lane % 4;
    for (int i = 0; i < 2; i++)
        for (int j = 0; j < 4; j++) {
            int r = row0 + wm + i * 16 + g, cc = col0 + wn + j * 8 + 2 * t;
            *reinterpret_cast<float2*>(&c[(size_t)r * N + cc]) = make_float2(acc[i][j][0], acc[i][j][1]);
            *reinterpret_cast<float2*>(&c[(size_t)(r + 8) * N + cc]) = make_float2(acc[i][j][2], acc[i][j][3]);
        }
}
