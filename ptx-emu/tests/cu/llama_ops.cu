// LLaMA-style ops in f32/f16/bf16 as our kernels write them: RMSNorm with bf16 I/O, RoPE with sincosf
// (software range reduction: integer ops and local memory), SwiGLU with expf, online softmax with ex2.
#include <cuda_fp16.h>
#include <cuda_bf16.h>
#define FULL 0xffffffffu
extern "C" __global__ void rmsnorm_bf16(__nv_bfloat16* out, const __nv_bfloat16* x, const __nv_bfloat16* w, int cols, float eps) {
    __shared__ float scratch[32];
    const __nv_bfloat16* row = x + (size_t)blockIdx.x * cols;
    float ss = 0.0f;
    for (int i = threadIdx.x; i < cols; i += blockDim.x) { float v = __bfloat162float(row[i]); ss += v * v; }
    for (int o = 16; o > 0; o /= 2) ss += __shfl_xor_sync(FULL, ss, o);
    if (threadIdx.x % 32 == 0) scratch[threadIdx.x / 32] = ss;
    __syncthreads();
    float tot = 0.0f;
    for (int k = 0; k < blockDim.x / 32; k++) tot += scratch[k];
    float r = rsqrtf(tot / cols + eps);
    for (int i = threadIdx.x; i < cols; i += blockDim.x) {
        float n = __bfloat162float(__float2bfloat16(__bfloat162float(row[i]) * r));
        out[(size_t)blockIdx.x * cols + i] = __float2bfloat16(n * __bfloat162float(w[i]));
    }
}
extern "C" __global__ void rope_f32(float* q, const int* pos, const float* inv_freq, int tokens, int head_dim) {
    int t = blockIdx.x, i = threadIdx.x;  // pair index
    if (t >= tokens || 2 * i >= head_dim) return;
    float ang = pos[t] * inv_freq[i];
    float s, c;
    sincosf(ang, &s, &c);
    float* h = q + (size_t)t * head_dim;
    float a = h[2 * i], b = h[2 * i + 1];
    h[2 * i] = a * c - b * s;
    h[2 * i + 1] = a * s + b * c;
}
extern "C" __global__ void swiglu_f16(__half* out, const __half* gate, const __half* up, int n) {
    int i = blockIdx.x * blockDim.x + threadIdx.x;
    if (i >= n) return;
    float g = __half2float(gate[i]);
    out[i] = __float2half(g / (1.0f + expf(-g)) * __half2float(up[i]));
}
// Softmax over rows of 32 with exp2f of pre-scaled scores, one warp per row (online max/sum).
extern "C" __global__ void softmax_rows(float* out, const float* s, float scale_log2) {
    int row = blockIdx.x, lane = threadIdx.x;
    float v = s[row * 32 + lane] * scale_log2;
    float m = v;
    for (int o = 16; o > 0; o /= 2) m = fmaxf(m, __shfl_xor_sync(FULL, m, o));
    float e = exp2f(v - m);
    float sum = e;
    for (int o = 16; o > 0; o /= 2) sum += __shfl_xor_sync(FULL, sum, o);
    out[row * 32 + lane] = e / sum;
}
