// KV append fused with RoPE: one launch rotates the new tokens' q and k and writes k and v into the cache.
//
//   For each new token t (positions[t], slot = slot_mapping[t]):
//     q[t, h] <- rope(q[t, h])   h < n_heads        in place, exactly as cuda/rope.cu (rope_rotate.cuh)
//     k[t, h] <- rope(k[t, h])   h < n_kv_heads     in place
//     k_cache[slot] <- k[t], v_cache[slot] <- v[t]   (n_kv_heads, head_dim) rows, when 0 <= slot < num_slots
//     status[t] = 0 (written), 1 (slot < 0: a padding token, vLLM's convention), 2 (slot >= num_slots)
//   The caches are (num_slots, n_kv_heads, head_dim): a paged cache (num_pages, page_size, ...) with slot =
//   page * page_size + offset, or a contiguous (batch, capacity, ...) one with slot = b * capacity + pos.
//   No slot is read: two tokens mapped to one slot would race, and the host cannot see device data, so the
//   contract (as vLLM's) is distinct slots per launch.
//
// Work mapping: grid = (tokens, groups), block = THREADS; block (t, hk) owns the heads h of token t, q's
// and k's, with h % groups == hk. The host takes groups = 1 for many tokens (one block per token: its
// sincos once) and groups = n_kv_heads for few (with GQA, a block per kv head and the q heads that read
// it), so a decode step still spreads over many blocks. Phase 0: threads i < rotary_dim / 2 compute
// sincosf of f32(pos) * inv_freq[i] (the same f32 product as rope.cu) into shared memory. Phase 1: the
// block's threads stride over the (head, pair) rotations of its q heads and its k heads. A barrier (global
// writes of the block are visible to it after __syncthreads). Phase 2: the threads copy its k heads and
// v heads (16-byte chunks when the host says everything is aligned) into the slot's row.
//
// Numerics: the rotation of cuda/rope.cu bit for bit (sincosf, fma, one rounding); the cache gets the
// rotated k's bits and v's bits unchanged.
//
// Compile-time axes (one table):
// | axis    | values         | entry point        |
// |---------|----------------|--------------------|
// | dtype T | f32, f16, bf16 | kv_append_<dtype>  |
#include "rope_rotate.cuh"

namespace lk {

struct KvAppendTraits {
    static constexpr int THREADS = LK_KV_APPEND_THREADS;
    static constexpr int MAX_HALF = LK_KV_APPEND_MAX_ROTARY / 2;
    static_assert(THREADS % WARP_SIZE == 0, "whole warps");
};

template <typename T>
__device__ __forceinline__ void kv_append_kernel(const KvAppendParams& p) {
    using Tr = KvAppendTraits;
    __shared__ float cos_sin[2 * Tr::MAX_HALF];  // (c, s) of frequency i at 2i, 2i + 1
    const int64_t t = blockIdx.x;
    const int tid = threadIdx.x;
    const int half = p.rotary_dim / 2;
    const float pos = __int2float_rn(p.positions[t]);
    for (int i = tid; i < half; i += Tr::THREADS) {
        const float angle = __fmul_rn(pos, p.inv_freq[i]);  // rope.cu's product, never contracted
        float s, c;
        sincosf(angle, &s, &c);
        cos_sin[2 * i] = c;
        cos_sin[2 * i + 1] = s;
    }
    __syncthreads();

    // This block's heads: those h with h % groups == hk, of q and of k (groups = gridDim.y: 1 for many
    // tokens, n_kv_heads for few; with GQA and groups = n_kv_heads, kv head hk and the q heads that read it).
    const int groups = gridDim.y;
    const int hk = blockIdx.y;
    const auto count = [&](int heads) { return hk < heads ? (heads - 1 - hk) / groups + 1 : 0; };
    const int q_heads = count(p.n_heads);
    const int kv_heads = count(p.n_kv_heads);
    T* __restrict__ q_tok = static_cast<T*>(p.q) + t * p.q_token_stride;
    T* __restrict__ k_tok = static_cast<T*>(p.k) + t * p.k_token_stride;
    const bool interleaved = p.layout == LK_ROPE_INTERLEAVED;
    const int rotations = (q_heads + kv_heads) * half;  // host: < 2^31
    for (int w = tid; w < rotations; w += Tr::THREADS) {
        const int j = w / half;  // the block's j-th head: its q heads first, then its k heads
        const int i = w % half;
        T* x = j < q_heads ? q_tok + int64_t(hk + j * groups) * p.head_dim
                           : k_tok + int64_t(hk + (j - q_heads) * groups) * p.head_dim;
        const float c = cos_sin[2 * i], s = cos_sin[2 * i + 1];
        if (interleaved) {
            rotate_adjacent(x + 2 * i, c, s);
        } else {
            rotate_split(x + i, half, c, s);
        }
    }
    __syncthreads();  // the rotated k heads are written before phase 2 reads them

    const int64_t slot = p.slot_mapping[t];
    const bool written = slot >= 0 && slot < p.num_slots;
    if (hk == 0 && tid == 0) p.status[t] = written ? 0 : (slot < 0 ? 1 : 2);
    if (!written) return;  // no barrier below
    const T* __restrict__ v_tok = static_cast<const T*>(p.v) + t * p.v_token_stride;
    T* __restrict__ k_row = static_cast<T*>(p.k_cache) + slot * p.n_kv_heads * p.head_dim;  // (n_kv_heads, hd)
    T* __restrict__ v_row = static_cast<T*>(p.v_cache) + slot * p.n_kv_heads * p.head_dim;
    if (p.vectorized) {
        // 16-byte chunks of this block's heads; the host checked head_dim % E == 0.
        constexpr int E = 16 / sizeof(T);
        const int per_head = p.head_dim / E;
        for (int w = tid; w < kv_heads * per_head; w += Tr::THREADS) {
            const int64_t c = int64_t(hk + (w / per_head) * groups) * per_head + w % per_head;  // chunk in the row
            reinterpret_cast<uint4*>(k_row)[c] = reinterpret_cast<const uint4*>(k_tok)[c];
            reinterpret_cast<uint4*>(v_row)[c] = reinterpret_cast<const uint4*>(v_tok)[c];
        }
    } else {
        for (int w = tid; w < kv_heads * p.head_dim; w += Tr::THREADS) {
            const int64_t e = int64_t(hk + (w / p.head_dim) * groups) * p.head_dim + w % p.head_dim;
            k_row[e] = k_tok[e];
            v_row[e] = v_tok[e];
        }
    }
}

}  // namespace lk

#define LK_KV_APPEND(dtype, T)                                                                     \
    extern "C" __global__ void __launch_bounds__(lk::KvAppendTraits::THREADS) kv_append_##dtype( \
        const KvAppendParams p) {                                                                  \
        lk::kv_append_kernel<T>(p);                                                                \
    }
LK_KV_APPEND(f32, float)
LK_KV_APPEND(f16, __half)
LK_KV_APPEND(bf16, __nv_bfloat16)
