// Rotary position embedding (RoPE), in place on q and (optionally) k.
//
//   q: (tokens, n_heads, head_dim) at token stride q_token_stride, k: (tokens, n_kv_heads, head_dim) at
//   k_token_stride (NULL: q only), positions: (tokens,) int32, inv_freq: (rotary_dim / 2,) f32 from the host.
//   For every head vector x of token t and every frequency i < half = rotary_dim / 2:
//     angle   = f32(positions[t]) * inv_freq[i]         one f32 multiply (no fma), as torch.outer in f32
//     (c, s)  = sincosf(angle)                          full-range f32 sincos (Payne-Hanek for |angle| > 1e5)
//     (x0, x1) = (x[2i], x[2i+1])        LK_ROPE_INTERLEAVED (Meta)
//              = (x[i], x[i + half])     LK_ROPE_HALF_SPLIT  (HF / NeoX)
//     x0' = round_T(x0 * c - x1 * s),  x1' = round_T(x0 * s + x1 * c)      in f32 (fma), one rounding to T
//   Elements past rotary_dim are never read or written (they stay bit for bit).
//
// Work mapping: grid = (tokens, head-group blocks), block = (FREQ_THREADS, HEAD_GROUPS) with
// FREQ_THREADS * HEAD_GROUPS <= THREADS (the host picks both, see src/ops/rope.rs `launch_config`).
//   token        t  = blockIdx.x
//   frequencies  i  = threadIdx.x, + blockDim.x, ... < half      (consecutive lanes: consecutive pairs)
//   heads        h  = blockIdx.y * blockDim.y + threadIdx.y, + gridDim.y * blockDim.y, ... < n_heads +
//                     n_kv_heads; h < n_heads is q head h, else k head h - n_heads (GQA: any head counts)
// A thread computes the sincos of (t, i) once and rotates that pair in each of its heads, so the f32 sincos
// (~40 instructions) is shared by several heads. Every rotated pair belongs to exactly one thread: no two
// threads touch the same element, and there is no shared memory.
//   Interleaved pairs are adjacent: one 2-element access (8 bytes f32, 4 bytes f16/bf16) when the pair's
//   address is aligned to it (always, unless a head starts at an odd element), else two scalar accesses.
//   Half-split pairs are two scalar accesses half elements apart (each coalesced across the warp).
//
// Positions are device data the kernel cannot validate: the contract is positions >= 0 (the safe API
// documents it; the reference rejects negatives). A negative position is still well defined here — only
// arithmetic depends on it, never an address — and rotates by the negative angle.
//
// Numerics against the reference (src/reference/rope.rs): the angle is the same f32 product, bit for bit.
// The reference takes cos/sin of that f32 angle in f64 and rotates in f64; the kernel's sincosf is within
// ~2 f32 ulps of cos/sin and the rotation adds ~1 ulp, so an f32 result differs from the reference by
// about 3 * 2^-24 * (|x0| + |x1|); an f16/bf16 result may round to the neighbouring value of T.
//
// Compile-time axes (one table):
// | axis    | values         | entry point   |
// |---------|----------------|---------------|
// | dtype T | f32, f16, bf16 | rope_<dtype>  |
#include "rope_rotate.cuh"

namespace lk {

struct RopeTraits {
    static constexpr int THREADS = 256;  // upper bound of blockDim.x * blockDim.y
    static_assert(THREADS % WARP_SIZE == 0, "whole warps");
};

template <typename T>
__device__ __forceinline__ void rope_kernel(const RopeParams& p) {
    T* __restrict__ q = static_cast<T*>(p.q);  // (tokens, n_heads, head_dim)
    T* __restrict__ k = static_cast<T*>(p.k);  // (tokens, n_kv_heads, head_dim) or NULL (n_kv_heads = 0)
    const int64_t t = blockIdx.x;
    const int half = p.rotary_dim / 2;
    const bool interleaved = p.layout == LK_ROPE_INTERLEAVED;
    const int heads = p.n_heads + p.n_kv_heads;  // host: <= 2^30
    const int head0 = blockIdx.y * blockDim.y + threadIdx.y;
    const int head_step = gridDim.y * blockDim.y;
    if (head0 >= heads) return;  // no barrier or collective below: an early exit is safe
    T* __restrict__ q_tok = q + t * p.q_token_stride;  // (n_heads, head_dim) of token t
    T* __restrict__ k_tok = k ? k + t * p.k_token_stride : nullptr;  // (n_kv_heads, head_dim) of token t
    const float pos = __int2float_rn(p.positions[t]);

    for (int i = threadIdx.x; i < half; i += blockDim.x) {
        const float angle = __fmul_rn(pos, p.inv_freq[i]);  // the reference's f32 product, never contracted
        float s, c;
        sincosf(angle, &s, &c);
        const int j0 = interleaved ? 2 * i : i;  // first element of pair i in a head
        for (int h = head0; h < heads; h += head_step) {
            T* x = h < p.n_heads ? q_tok + int64_t(h) * p.head_dim : k_tok + int64_t(h - p.n_heads) * p.head_dim;
            if (interleaved) {
                rotate_adjacent(x + j0, c, s);
            } else {
                rotate_split(x + j0, half, c, s);
            }
        }
    }
}

}  // namespace lk

extern "C" __global__ void __launch_bounds__(lk::RopeTraits::THREADS) rope_f32(const RopeParams p) { lk::rope_kernel<float>(p); }
extern "C" __global__ void __launch_bounds__(lk::RopeTraits::THREADS) rope_f16(const RopeParams p) { lk::rope_kernel<__half>(p); }
extern "C" __global__ void __launch_bounds__(lk::RopeTraits::THREADS) rope_bf16(const RopeParams p) { lk::rope_kernel<__nv_bfloat16>(p); }
