// The GEMM epilogues, shared by every rung (dev/gemm/v1_cuda_cores.cu, dev/gemm/v2_mma.cu, cuda/gemm.cu,
// cuda/gemm_decode.cu). `v` is alpha * acc in f32 (acc: the f32 accumulator of one element of op(A) op(B)).
//
//   LK_GEMM_EPILOGUE_LINEAR    C = round(fma(beta, C, v))          C not read when beta == 0
//   LK_GEMM_EPILOGUE_RESIDUAL  C += v, rounded at `rounding`:      C is always read (beta must be 0)
//     MATCH_TORCH  round(round(v) + C)   torch's `x + linear(h)`: the product is a tensor of T first
//     ONCE         round(v + C)          bitwise LINEAR with beta = 1
//   LK_GEMM_EPILOGUE_SWIGLU    op(B)'s n columns hold gate and up in blocks of S = LK_GEMM_SWIGLU_BLOCK:
//     columns [2bS, 2bS + S) are the gate and [2bS + S, 2bS + 2S) the up of output columns [bS, bS + S);
//     C (m, n / 2) = silu(g) * u of g = alpha * acc_gate, u = alpha * acc_up, at `rounding`:
//     MATCH_TORCH  g and u rounded to T (a GEMM's output tensors), then the SwiGLU op's MATCH_TORCH:
//                  bitwise the same as this GEMM on gate and up followed by cuda/swiglu.cu
//     ONCE         silu(g) * u in f32 from the f32 g and u, one rounding
#pragma once

#include "common.cuh"

namespace lk {

__device__ __forceinline__ bool gemm_reads_c(const GemmParams& p) {
    return p.epilogue == LK_GEMM_EPILOGUE_RESIDUAL || (p.epilogue == LK_GEMM_EPILOGUE_LINEAR && p.beta != 0.0f);
}

// The stored value of a LINEAR or RESIDUAL element; `old` is C's element (ignored unless gemm_reads_c).
template <typename T>
__device__ __forceinline__ T gemm_finish(const GemmParams& p, float v, T old) {
    if (p.epilogue == LK_GEMM_EPILOGUE_RESIDUAL) {
        if (p.rounding == LK_ROUNDING_MATCH_TORCH) v = round_to<T>(v);
        return from_f32<T>(v + to_f32(old));
    }
    return from_f32<T>(p.beta != 0.0f ? fmaf(p.beta, to_f32(old), v) : v);
}

// The stored value of a SWIGLU element from its gate and up (alpha * acc each).
template <typename T>
__device__ __forceinline__ T gemm_swiglu(const GemmParams& p, float g, float u) {
    const bool match_torch = p.rounding == LK_ROUNDING_MATCH_TORCH;
    if (match_torch) {
        g = round_to<T>(g);
        u = round_to<T>(u);
    }
    return swiglu_elem<T>(g, u, match_torch);
}

}  // namespace lk
