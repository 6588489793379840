// Block reduction (warp shuffles + shared memory, two __syncthreads) and a grid-wide atomicAdd.
#define FULL 0xffffffffu
__device__ float warp_sum(float v) {
    for (int o = 16; o > 0; o /= 2) v += __shfl_xor_sync(FULL, v, o);
    return v;
}
__device__ float block_sum(float v, float* scratch) {
    int lane = threadIdx.x % 32, warp = threadIdx.x / 32, nw = (blockDim.x + 31) / 32;
    v = warp_sum(v);
    if (lane == 0) scratch[warp] = v;
    __syncthreads();
    v = lane < nw ? scratch[lane] : 0.0f;
    v = warp_sum(v);
    __syncthreads();
    return v;
}
// partial[blockIdx.x] = sum of x over the block's grid-stride slice; total += the same via atomicAdd.
extern "C" __global__ void reduce_sum(float* partial, float* total, const float* x, int n) {
    __shared__ float scratch[32];
    float acc = 0.0f;
    for (int i = blockIdx.x * blockDim.x + threadIdx.x; i < n; i += gridDim.x * blockDim.x) acc += x[i];
    float s = block_sum(acc, scratch);
    if (threadIdx.x == 0) {
        partial[blockIdx.x] = s;
        atomicAdd(total, s);
    }
}
// Row-wise max and sum of squares with float4 loads (RMSNorm-style), one block per row.
extern "C" __global__ void row_stats(float* out, const float* x, int cols) {
    __shared__ float scratch[32];
    const float4* row = reinterpret_cast<const float4*>(x + (size_t)blockIdx.x * cols);
    float ss = 0.0f, mx = -INFINITY;
    for (int i = threadIdx.x; i < cols / 4; i += blockDim.x) {
        float4 v = row[i];
        ss += v.x * v.x + v.y * v.y + v.z * v.z + v.w * v.w;
        mx = fmaxf(mx, fmaxf(fmaxf(v.x, v.y), fmaxf(v.z, v.w)));
    }
    ss = block_sum(ss, scratch);
    for (int o = 16; o > 0; o /= 2) mx = fmaxf(mx, __shfl_xor_sync(FULL, mx, o));
    if (threadIdx.x % 32 == 0) scratch[threadIdx.x / 32] = mx;
    __syncthreads();
    if (threadIdx.x == 0) {
        float m = scratch[0];
        for (int w = 1; w < blockDim.x / 32; w++) m = fmaxf(m, scratch[w]);
        out[2 * blockIdx.x] = rsqrtf(ss / cols + 1e-5f);
        out[2 * blockIdx.x + 1] = m;
    }
}
