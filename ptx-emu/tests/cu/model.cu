// One kernel per limiter of the speed-of-light model (tests/model.rs): each is written so that a
// single unit binds on every GPU of the table.

// FP32 pipe: 8 independent FMA chains per thread, `iters` rounds of 128 FMAs; the loop counter,
// compare and branch are 3 instructions of 131.
extern "C" __global__ void fma_peak(float *out, float x, int iters) {
    float a0 = threadIdx.x, a1 = a0 + 1, a2 = a0 + 2, a3 = a0 + 3, a4 = a0 + 4, a5 = a0 + 5, a6 = a0 + 6,
          a7 = a0 + 7;
    for (int i = 0; i < iters; i++) {
#pragma unroll
        for (int j = 0; j < 16; j++) {
            a0 = fmaf(a0, x, 0.5f);
            a1 = fmaf(a1, x, 0.5f);
            a2 = fmaf(a2, x, 0.5f);
            a3 = fmaf(a3, x, 0.5f);
            a4 = fmaf(a4, x, 0.5f);
            a5 = fmaf(a5, x, 0.5f);
            a6 = fmaf(a6, x, 0.5f);
            a7 = fmaf(a7, x, 0.5f);
        }
    }
    out[blockIdx.x * blockDim.x + threadIdx.x] = a0 + a1 + a2 + a3 + a4 + a5 + a6 + a7;
}

// DRAM: each thread copies 4 float4 (64 bytes), all loads before the stores.
extern "C" __global__ void stream_copy(float4 *__restrict__ dst, const float4 *__restrict__ src) {
    size_t base = (size_t)blockIdx.x * blockDim.x * 4 + threadIdx.x;
    float4 v[4];
#pragma unroll
    for (int k = 0; k < 4; k++) v[k] = src[base + k * blockDim.x];
#pragma unroll
    for (int k = 0; k < 4; k++) dst[base + k * blockDim.x] = v[k];
}

// Latency: one thread follows a chain of indices, each load depending on the last.
extern "C" __global__ void pointer_chase(const unsigned *__restrict__ next, unsigned *out, int steps) {
    unsigned p = 0;
    for (int i = 0; i < steps; i++) p = next[p];
    out[0] = p;
}

// Shared memory: every lane of a warp hits the same bank (stride 32 words): 32-way conflicts on
// each access.
extern "C" __global__ void bank_conflict(float *out, int iters) {
    __shared__ float s[32 * 256];
    int t = threadIdx.x;
    for (int i = t; i < 32 * 256; i += blockDim.x) s[i] = i;
    __syncthreads();
    float acc = 0;
    int lane = t & 31, warp = t >> 5;
    for (int i = 0; i < iters; i++) {
        acc += s[(lane * 32 + warp + i) & (32 * 256 - 1)];
    }
    out[blockIdx.x * blockDim.x + t] = acc;
}

// Launch: one block of one warp writes one value each.
extern "C" __global__ void one_block(float *out, float x) {
    out[threadIdx.x] = x * threadIdx.x;
}

// Two load streams with different L2 reuse: every block first stages the same x (k floats) into
// shared memory, then each warp streams its own row of W (k floats) and writes y[row] = W[row]·x. x is
// read by every block (L2 hits after the first block), W exactly once (DRAM). The staging fills the
// start of each block, where the wave probe looks.
extern "C" __global__ void gemv_shared_x(float *y, const float4 *__restrict__ w, const float *__restrict__ x,
                                         int k) {
    extern __shared__ float xs[];
    for (int i = threadIdx.x; i < k; i += blockDim.x) xs[i] = x[i];
    __syncthreads();
    int lane = threadIdx.x & 31;
    size_t row = (size_t)blockIdx.x * (blockDim.x >> 5) + (threadIdx.x >> 5);
    const float4 *wr = w + row * (k / 4);
    float acc = 0.0f;
    for (int i = lane; i < k / 4; i += 32) {
        float4 v = wr[i];
        acc += v.x * xs[4 * i] + v.y * xs[4 * i + 1] + v.z * xs[4 * i + 2] + v.w * xs[4 * i + 3];
    }
#pragma unroll
    for (int o = 16; o > 0; o >>= 1) acc += __shfl_xor_sync(0xffffffffu, acc, o);
    if (lane == 0) y[row] = acc;
}
