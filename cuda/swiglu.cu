// SwiGLU, the gated activation of LLaMA's feed-forward block.
//
//   silu(g)   = g / (1 + exp(-g))
//   out[r, j] = silu(gate[r, j]) * up[r, j]                     r < rows, j < d
//   gate: (rows, d) at row stride gate_row_stride, up: (rows, d) at up_row_stride, out: (rows, d) at
//   out_row_stride. The packed [gate | up] input (rows, 2d) is gate = packed, up = packed + d, both at
//   row stride 2d (the host fills the params that way; the kernel sees two tensors either way).
//
// Work mapping: grid = (rows, ceil(d / CHUNK)), block = THREADS threads; block (r, c) owns the CHUNK =
// THREADS * VEC elements [c * CHUNK, (c + 1) * CHUNK) of row r, VEC = 16 bytes / sizeof(T) (4 f32, 8 half).
//   vectorized = 1 (the host checked that every pointer and row stride is 16-byte aligned): thread t loads
//     the 16-byte vectors at elements c * CHUNK + t * VEC of gate and up, and stores one vector of out; a
//     last vector that d cuts short goes element by element (only when rows == 1 or d * sizeof(T) % 16 == 0
//     fails, see the host's rule, so a whole partial vector is never read past the row).
//   vectorized = 0: thread t handles elements c * CHUNK + s * THREADS + t, s < VEC (consecutive threads on
//     consecutive elements: coalesced scalar accesses).
// Every element of out in range is written exactly once; nothing outside [0, d) of a row is touched.
//
// Numerics (the reference's order, src/reference/swiglu.rs): g and u widen to f32; silu in f32 with the
// full-precision expf and an IEEE division (1 + exp(-g) = +inf for g < -88 gives silu = -0, as the
// reference). Then by `rounding`:
//   LK_ROUNDING_MATCH_TORCH: out = round_T(round_T(silu(g)) * u)     (torch: F.silu(w1 x) * w3 x in T)
//   LK_ROUNDING_ONCE:        out = round_T(silu(g) * u)
// The reference computes silu and the product in f64, so f32 results differ by a few f32 ulps, and for
// f16/bf16 under MatchTorch the first rounding may fall the other way (2 ulps of T at most, see
// reference/tolerance.rs).
//
// Compile-time axes (one table):
// | axis    | values         | entry point     |
// |---------|----------------|-----------------|
// | dtype T | f32, f16, bf16 | swiglu_<dtype>  |
#include "common.cuh"

namespace lk {

struct SwigluTraits {
    static constexpr int THREADS = 256;
    static constexpr int VEC_BYTES = 16;  // one 16-byte load/store per thread per tensor
    static_assert(THREADS % WARP_SIZE == 0, "whole warps");
};

// Sixteen bytes of T, loaded or stored as one access.
template <typename T>
union Vec16 {
    static constexpr int N = SwigluTraits::VEC_BYTES / sizeof(T);
    uint4 raw;
    T elem[N];
};

template <typename T>
__device__ __forceinline__ void swiglu_kernel(const SwigluParams& p) {
    constexpr int VEC = Vec16<T>::N;
    constexpr int CHUNK = SwigluTraits::THREADS * VEC;
    const int64_t row = blockIdx.x;
    const T* __restrict__ gate = static_cast<const T*>(p.gate) + row * p.gate_row_stride;  // (d,) of row
    const T* __restrict__ up = static_cast<const T*>(p.up) + row * p.up_row_stride;        // (d,) of row
    T* __restrict__ out = static_cast<T*>(p.out) + row * p.out_row_stride;                 // (d,) of row
    const bool match_torch = p.rounding == LK_ROUNDING_MATCH_TORCH;
    const int d = p.d;
    const int chunk0 = blockIdx.y * CHUNK;  // first element of this block's chunk (< d, host: d < 2^31 - CHUNK)

    if (p.vectorized) {
        const int j0 = chunk0 + threadIdx.x * VEC;  // first element of this thread's vector
        if (j0 + VEC <= d) {
            Vec16<T> g, u, o;
            g.raw = *reinterpret_cast<const uint4*>(gate + j0);
            u.raw = *reinterpret_cast<const uint4*>(up + j0);
#pragma unroll
            for (int e = 0; e < VEC; ++e) o.elem[e] = swiglu_elem<T>(to_f32(g.elem[e]), to_f32(u.elem[e]), match_torch);
            *reinterpret_cast<uint4*>(out + j0) = o.raw;
        } else {
            for (int j = j0; j < d; ++j) out[j] = swiglu_elem<T>(to_f32(gate[j]), to_f32(up[j]), match_torch);
        }
    } else {
#pragma unroll
        for (int s = 0; s < VEC; ++s) {
            const int j = chunk0 + s * SwigluTraits::THREADS + threadIdx.x;
            if (j < d) out[j] = swiglu_elem<T>(to_f32(gate[j]), to_f32(up[j]), match_torch);
        }
    }
}

}  // namespace lk

extern "C" __global__ void __launch_bounds__(lk::SwigluTraits::THREADS) swiglu_f32(const SwigluParams p) { lk::swiglu_kernel<float>(p); }
extern "C" __global__ void __launch_bounds__(lk::SwigluTraits::THREADS) swiglu_f16(const SwigluParams p) { lk::swiglu_kernel<__half>(p); }
extern "C" __global__ void __launch_bounds__(lk::SwigluTraits::THREADS) swiglu_bf16(const SwigluParams p) { lk::swiglu_kernel<__nv_bfloat16>(p); }
