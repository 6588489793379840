// A flash-attention-style kernel as a first version would be written (no tensor cores): one block per
// (query tile of 16, head); K/V tiles of 32 keys staged through shared memory (bf16 -> f32); online
// softmax with exp2f of pre-scaled scores; warp shuffles for row max/sum; bottom-right causal mask;
// LSE output (natural log). Layouts: q/o (q_len, heads, D), k/v (kv_len, heads, D), D = 64.
#include <cuda_bf16.h>
#define FULL 0xffffffffu
constexpr int D = 64, BQ = 16, BKV = 32;
extern "C" __global__ void attn_fwd_bf16(__nv_bfloat16* o, float* lse, const __nv_bfloat16* q, const __nv_bfloat16* k,
                                         const __nv_bfloat16* v, int q_len, int kv_len, int heads, int causal,
                                         float scale_log2) {
    __shared__ float sk[BKV][D + 1];
    __shared__ float sv[BKV][D];
    __shared__ float sq[BQ][D];
    const int h = blockIdx.y, q0 = blockIdx.x * BQ;
    const int warp = threadIdx.x / 32, lane = threadIdx.x % 32;  // 4 warps, each owns 4 query rows
    for (int i = threadIdx.x; i < BQ * D; i += blockDim.x) {
        int r = i / D, c = i % D;
        sq[r][c] = q0 + r < q_len ? __bfloat162float(q[((size_t)(q0 + r) * heads + h) * D + c]) : 0.0f;
    }
    float m[4], l[4], acc[4][2];
    for (int r = 0; r < 4; r++) { m[r] = -INFINITY; l[r] = 0.0f; acc[r][0] = acc[r][1] = 0.0f; }
    const int offset = kv_len - q_len;
    for (int k0 = 0; k0 < kv_len; k0 += BKV) {
        __syncthreads();
        for (int i = threadIdx.x; i < BKV * D; i += blockDim.x) {
            int r = i / D, c = i % D;
            bool ok = k0 + r < kv_len;
            sk[r][c] = ok ? __bfloat162float(k[((size_t)(k0 + r) * heads + h) * D + c]) : 0.0f;
            sv[r][c] = ok ? __bfloat162float(v[((size_t)(k0 + r) * heads + h) * D + c]) : 0.0f;
        }
        __syncthreads();
        for (int r = 0; r < 4; r++) {
            const int qi = warp * 4 + r, qrow = q0 + qi;
            // lane j scores key k0 + j
            const int kj = k0 + lane;
            float s = 0.0f;
            for (int c = 0; c < D; c++) s += sq[qi][c] * sk[lane][c];
            s *= scale_log2;
            bool visible = kj < kv_len && qrow < q_len && (!causal || kj <= qrow + offset);
            if (!visible) s = -INFINITY;
            float mx = s;
            for (int off = 16; off > 0; off /= 2) mx = fmaxf(mx, __shfl_xor_sync(FULL, mx, off));
            float m_new = fmaxf(m[r], mx);
            float p = m_new == -INFINITY ? 0.0f : exp2f(s - m_new);
            float corr = m_new == -INFINITY ? 1.0f : exp2f(m[r] - m_new);
            float psum = p;
            for (int off = 16; off > 0; off /= 2) psum += __shfl_xor_sync(FULL, psum, off);
            l[r] = l[r] * corr + psum;
            // lane owns output columns lane and lane + 32
            float a0 = 0.0f, a1 = 0.0f;
            for (int j = 0; j < BKV; j++) {
                float pj = __shfl_sync(FULL, p, j);
                a0 += pj * sv[j][lane];
                a1 += pj * sv[j][lane + 32];
            }
            acc[r][0] = acc[r][0] * corr + a0;
            acc[r][1] = acc[r][1] * corr + a1;
            m[r] = m_new;
        }
    }
    for (int r = 0; r < 4; r++) {
        const int qrow = q0 + warp * 4 + r;
        if (qrow >= q_len) continue;
        float inv = l[r] > 0.0f ? 1.0f / l[r] : 0.0f;
        __nv_bfloat16* orow = o + ((size_t)qrow * heads + h) * D;
        orow[lane] = __float2bfloat16(acc[r][0] * inv);
        orow[lane + 32] = __float2bfloat16(acc[r][1] * inv);
        if (lane == 0) lse[(size_t)h * q_len + qrow] = l[r] > 0.0f ? (m[r] + log2f(l[r])) * 0.6931471805599453f : -INFINITY;
    }
}
