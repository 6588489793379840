// Double-buffered producer/consumer pipeline synchronised by mbarriers (PTX spelled out in inline asm,
// sm_80 forms). Warp 0 produces: it copies tile t of `in` into buf[t % 2] once the consumers have
// released that buffer (empty[t % 2]), then arrives on full[t % 2]. Warps 1..NCONS consume: they wait on
// full[t % 2] with the phase parity, compute, and arrive on empty[t % 2].
//   mode 0: as above, every producer lane arrives on full (expected count 32);
//   mode 1: the producer's lanes __syncwarp() and lane 0 alone arrives (expected count 1), and one lane
//           per consumer warp waits, then __syncwarp() (ordering through the warp-level sync);
//   mode 2: planted bug: the consumers never wait on full.
// In pipeline_cp_async the producer fills the buffers with cp.async and cp.async.mbarrier.arrive.noinc.
#include <stdint.h>

#define TILE 256
#define NCONS 4
#define CTHREADS (NCONS * 32)

__device__ __forceinline__ uint32_t smem(const void* p) { return (uint32_t)__cvta_generic_to_shared(p); }
__device__ __forceinline__ void mb_init(uint64_t* b, uint32_t n) {
    asm volatile("mbarrier.init.shared.b64 [%0], %1;" ::"r"(smem(b)), "r"(n) : "memory");
}
__device__ __forceinline__ uint64_t mb_arrive(uint64_t* b) {
    uint64_t s;
    asm volatile("mbarrier.arrive.shared.b64 %0, [%1];" : "=l"(s) : "r"(smem(b)) : "memory");
    return s;
}
__device__ __forceinline__ bool mb_test_parity(uint64_t* b, uint32_t parity) {
    uint32_t ok;
    asm volatile(
        "{\n .reg .pred p;\n mbarrier.test_wait.parity.shared.b64 p, [%1], %2;\n selp.u32 %0, 1, 0, p;\n}"
        : "=r"(ok)
        : "r"(smem(b)), "r"(parity)
        : "memory");
    return ok != 0;
}
__device__ __forceinline__ void mb_wait_parity(uint64_t* b, uint32_t parity) {
    while (!mb_test_parity(b, parity)) {
    }
}

// out[t * CTHREADS + c] = sum over the consumer's elements i of tile t of 2 * in + 1.
__device__ __forceinline__ void consume(float* out, const float* tile, int t, int c) {
    float acc = 0.0f;
    for (int i = c; i < TILE; i += CTHREADS) acc += tile[i] * 2.0f + 1.0f;
    out[t * CTHREADS + c] = acc;
}

extern "C" __global__ void pipeline(float* out, const float* in, int ntiles, int mode) {
    __shared__ __align__(16) float buf[2][TILE];
    __shared__ __align__(8) uint64_t full[2], empty[2];
    int warp = threadIdx.x / 32, lane = threadIdx.x % 32;
    if (threadIdx.x == 0) {
        for (int i = 0; i < 2; i++) {
            mb_init(&full[i], mode == 1 ? 1 : 32);
            mb_init(&empty[i], CTHREADS);
        }
    }
    __syncthreads();
    if (warp == 0) {
        for (int t = 0; t < ntiles; t++) {
            int s = t & 1;
            uint32_t ph = (t >> 1) & 1;
            if (t >= 2) mb_wait_parity(&empty[s], ph ^ 1);  // the consumers released tile t - 2
            for (int i = lane; i < TILE; i += 32) buf[s][i] = in[t * TILE + i];
            if (mode == 1) {
                __syncwarp();
                if (lane == 0) mb_arrive(&full[s]);
            } else {
                mb_arrive(&full[s]);
            }
        }
    } else {
        int c = threadIdx.x - 32;
        for (int t = 0; t < ntiles; t++) {
            int s = t & 1;
            uint32_t ph = (t >> 1) & 1;
            if (mode == 0) {
                mb_wait_parity(&full[s], ph);
            } else if (mode == 1) {
                if (lane == 0) mb_wait_parity(&full[s], ph);
                __syncwarp();
            }
            consume(out, buf[s], t, c);
            mb_arrive(&empty[s]);
        }
    }
}

extern "C" __global__ void pipeline_cp_async(float* out, const float* in, int ntiles) {
    __shared__ __align__(16) float buf[2][TILE];
    __shared__ __align__(8) uint64_t full[2], empty[2];
    int warp = threadIdx.x / 32, lane = threadIdx.x % 32;
    if (threadIdx.x == 0) {
        for (int i = 0; i < 2; i++) {
            mb_init(&full[i], 32);  // one cp.async.mbarrier.arrive.noinc per producer lane
            mb_init(&empty[i], CTHREADS);
        }
    }
    __syncthreads();
    if (warp == 0) {
        for (int t = 0; t < ntiles; t++) {
            int s = t & 1;
            if (t >= 2) mb_wait_parity(&empty[s], ((t >> 1) & 1) ^ 1);
            for (int i = 4 * lane; i < TILE; i += 128)
                asm volatile("cp.async.cg.shared.global [%0], [%1], 16;" ::"r"(smem(&buf[s][i])), "l"(in + t * TILE + i)
                             : "memory");
            asm volatile("cp.async.mbarrier.arrive.noinc.shared.b64 [%0];" ::"r"(smem(&full[s])) : "memory");
        }
    } else {
        int c = threadIdx.x - 32;
        for (int t = 0; t < ntiles; t++) {
            int s = t & 1;
            mb_wait_parity(&full[s], (t >> 1) & 1);
            consume(out, buf[s], t, c);
            mb_arrive(&empty[s]);
        }
    }
}
