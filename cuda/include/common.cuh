// Device vocabulary shared by the kernels: dtype conversions, vector access, warp/block reductions.
// Destination first; the scope is in the name (warp_reduce_sum, block_reduce_sum).
#pragma once

#include <cuda_bf16.h>
#include <cuda_fp16.h>
#include <stdint.h>

#include "params.h"

namespace lk {

constexpr int WARP_SIZE = 32;
constexpr unsigned FULL_MASK = 0xffffffffu;
constexpr float LOG2E = 1.4426950408889634f;  // log2(e)

// ---- storage <-> f32 (round to nearest even on the way down) ----
__device__ __forceinline__ float to_f32(float v) { return v; }
__device__ __forceinline__ float to_f32(__half v) { return __half2float(v); }
__device__ __forceinline__ float to_f32(__nv_bfloat16 v) { return __bfloat162float(v); }

template <typename T> __device__ __forceinline__ T from_f32(float v);
template <> __device__ __forceinline__ float from_f32<float>(float v) { return v; }
template <> __device__ __forceinline__ __half from_f32<__half>(float v) { return __float2half_rn(v); }
template <> __device__ __forceinline__ __nv_bfloat16 from_f32<__nv_bfloat16>(float v) { return __float2bfloat16_rn(v); }

// Rounds an f32 through the storage type T and back: the value T would store.
template <typename T> __device__ __forceinline__ float round_to(float v) { return to_f32(from_f32<T>(v)); }

// silu(g) * u stored as T: silu in f32 (full-precision expf, IEEE division), rounded to T first when
// match_torch (torch's F.silu(g) * u in T). The SwiGLU op (cuda/swiglu.cu) and the GEMM's fused SwiGLU
// epilogue (gemm_epilogue.cuh) share it, so they agree bit for bit.
template <typename T>
__device__ __forceinline__ T swiglu_elem(float g, float u, bool match_torch) {
    float s = g / (1.0f + expf(-g));  // silu(g) in f32
    if (match_torch) s = round_to<T>(s);
    return from_f32<T>(s * u);
}

// ---- reductions ----
__device__ __forceinline__ float warp_reduce_sum(float v) {
#pragma unroll
    for (int offset = WARP_SIZE / 2; offset > 0; offset /= 2) v += __shfl_xor_sync(FULL_MASK, v, offset);
    return v;
}

__device__ __forceinline__ float warp_reduce_max(float v) {
#pragma unroll
    for (int offset = WARP_SIZE / 2; offset > 0; offset /= 2) v = fmaxf(v, __shfl_xor_sync(FULL_MASK, v, offset));
    return v;
}

// Sum over the whole block; every thread gets the result. `scratch` holds one float per warp (<= 32).
// Contains two __syncthreads(): every thread of the block must call it.
__device__ __forceinline__ float block_reduce_sum(float v, float* scratch) {
    const int lane = threadIdx.x % WARP_SIZE;
    const int warp = threadIdx.x / WARP_SIZE;
    const int n_warps = (blockDim.x + WARP_SIZE - 1) / WARP_SIZE;
    v = warp_reduce_sum(v);
    if (lane == 0) scratch[warp] = v;
    __syncthreads();
    v = lane < n_warps ? scratch[lane] : 0.0f;
    v = warp_reduce_sum(v);
    __syncthreads();  // scratch may be reused right after
    return v;
}

// ---- online softmax (base 2) ----
// One step of the streaming softmax max: folds the maximum of a new block of scores (already multiplied
// by scale * LOG2E, masked scores = -inf) into the running maximum `m_running`. Returns the factor that
// rescales sums accumulated under the old maximum (exp2(m_old - m_new); 0 when m_old was -inf) and sets
// `m_sub` to what the new block subtracts before exp2: the new maximum, or 0 while every score so far is
// -inf, so that exp2(-inf - m_sub) = 0 and no (-inf) - (-inf) = NaN arises.
__device__ __forceinline__ float online_softmax_rescale(float& m_running, float m_block, float& m_sub) {
    const float m_new = fmaxf(m_running, m_block);
    m_sub = m_new == -INFINITY ? 0.0f : m_new;
    const float rescale = exp2f(m_running - m_sub);
    m_running = m_new;
    return rescale;
}

}  // namespace lk
