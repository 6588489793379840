// Tiny tensor-core GEMM: one warp computes C (16x8, f32) = A (16x16, f16 or bf16, row-major) * B (16x8,
// stored transposed as Bt (8x16) = "col") with ldmatrix + mma.sync m16n8k16; also m16n8k8 and f16 accumulators.
#include <cuda_fp16.h>
#include <cuda_bf16.h>
#include <stdint.h>
template <bool BF>
__device__ void gemm_16x8x16(float* c, const uint16_t* a, const uint16_t* bt) {
    __shared__ __align__(16) uint16_t sa[16 * 16];
    __shared__ __align__(16) uint16_t sb[8 * 16];
    int lane = threadIdx.x;
    for (int i = lane; i < 256; i += 32) sa[i] = a[i];
    for (int i = lane; i < 128; i += 32) sb[i] = bt[i];
    __syncwarp();
    uint32_t ra[4], rb[2];
    // A: x4, lane l gives row (l % 16), column block (l / 16) * 8
    uint32_t pa = (uint32_t)__cvta_generic_to_shared(&sa[(lane % 16) * 16 + (lane / 16) * 8]);
    asm volatile("ldmatrix.sync.aligned.m8n8.x4.shared.b16 {%0,%1,%2,%3}, [%4];"
                 : "=r"(ra[0]), "=r"(ra[1]), "=r"(ra[2]), "=r"(ra[3]) : "r"(pa));
    // B^T rows (n) x k: x2, lanes 0-7 rows for k 0-7, lanes 8-15 for k 8-15
    uint32_t pb = (uint32_t)__cvta_generic_to_shared(&sb[(lane % 8) * 16 + ((lane / 8) % 2) * 8]);
    asm volatile("ldmatrix.sync.aligned.m8n8.x2.shared.b16 {%0,%1}, [%2];" : "=r"(rb[0]), "=r"(rb[1]) : "r"(pb));
    float d[4] = {0, 0, 0, 0};
    if (BF) {
        asm volatile("mma.sync.aligned.m16n8k16.row.col.f32.bf16.bf16.f32 {%0,%1,%2,%3}, {%4,%5,%6,%7}, {%8,%9}, {%0,%1,%2,%3};"
                     : "+f"(d[0]), "+f"(d[1]), "+f"(d[2]), "+f"(d[3])
                     : "r"(ra[0]), "r"(ra[1]), "r"(ra[2]), "r"(ra[3]), "r"(rb[0]), "r"(rb[1]));
    } else {
        asm volatile("mma.sync.aligned.m16n8k16.row.col.f32.f16.f16.f32 {%0,%1,%2,%3}, {%4,%5,%6,%7}, {%8,%9}, {%0,%1,%2,%3};"
                     : "+f"(d[0]), "+f"(d[1]), "+f"(d[2]), "+f"(d[3])
                     : "r"(ra[0]), "r"(ra[1]), "r"(ra[2]), "r"(ra[3]), "r"(rb[0]), "r"(rb[1]));
    }
    int g = lane / 4, t = lane % 4;
    c[g * 8 + 2 * t] = d[0];
    c[g * 8 + 2 * t + 1] = d[1];
    c[(g + 8) * 8 + 2 * t] = d[2];
    c[(g + 8) * 8 + 2 * t + 1] = d[3];
}
extern "C" __global__ void mma_f16(float* c, const uint16_t* a, const uint16_t* bt) { gemm_16x8x16<false>(c, a, bt); }
extern "C" __global__ void mma_bf16(float* c, const uint16_t* a, const uint16_t* bt) { gemm_16x8x16<true>(c, a, bt); }
// m16n8k8 with f16 accumulators, fragments loaded by hand from global memory (PTX ISA layouts).
extern "C" __global__ void mma_k8_f16acc(uint16_t* c, const uint16_t* a, const uint16_t* bt) {
    int lane = threadIdx.x, g = lane / 4, t = lane % 4;
    uint32_t a0 = a[g * 8 + 2 * t] | (uint32_t)a[g * 8 + 2 * t + 1] << 16;
    uint32_t a1 = a[(g + 8) * 8 + 2 * t] | (uint32_t)a[(g + 8) * 8 + 2 * t + 1] << 16;
    uint32_t b0 = bt[g * 8 + 2 * t] | (uint32_t)bt[g * 8 + 2 * t + 1] << 16;
    uint32_t d0 = 0, d1 = 0;
    asm volatile("mma.sync.aligned.m16n8k8.row.col.f16.f16.f16.f16 {%0,%1}, {%2,%3}, {%4}, {%0,%1};"
                 : "+r"(d0), "+r"(d1) : "r"(a0), "r"(a1), "r"(b0));
    c[g * 8 + 2 * t] = d0 & 0xffff;
    c[g * 8 + 2 * t + 1] = d0 >> 16;
    c[(g + 8) * 8 + 2 * t] = d1 & 0xffff;
    c[(g + 8) * 8 + 2 * t + 1] = d1 >> 16;
}
// cp.async pipeline: copy a tile to shared asynchronously, wait, then use it.
extern "C" __global__ void async_tile(float* out, const float* in, int n) {
    __shared__ __align__(16) float tile[256];
    int t = threadIdx.x;
    uint32_t dst = (uint32_t)__cvta_generic_to_shared(&tile[4 * t]);
    int valid = (4 * t < n) ? 16 : 0;  // src-size 0: zero fill
    asm volatile("cp.async.cg.shared.global [%0], [%1], 16, %2;" ::"r"(dst), "l"(in + 4 * (4 * t < n ? t : 0)), "r"(valid));
    asm volatile("cp.async.commit_group;");
    asm volatile("cp.async.wait_group 0;" ::: "memory");
    __syncthreads();
    out[t] = tile[4 * t] + tile[4 * t + 1] + tile[4 * t + 2] + tile[4 * t + 3] + tile[(4 * t + 4) % 256];
}
