// Embedding gather, the first op of a decoder: out[t, :] = table[ids[t], :].
//
//   table: (vocab, d) at table_row_stride; ids: (tokens,) int32; out: (tokens, d) at out_row_stride.
//   An id outside [0, vocab) is never used as an index: its row of out is written with zeros and
//   status[t] = 1 (0 for a valid id), so the host can report it (src/ops/embedding.rs) and no thread
//   reads outside the table.
//
// Work mapping: cuda/include/rowwise.cuh with rows = tokens (grid (tokens, ceil(d / CHUNK)), 256
// threads, 8 elements each); thread 0 of each token's first chunk writes status[t].
//
// Numerics: a copy of the table's bits.
//
// Compile-time axes (one table):
// | axis    | values         | entry point       |
// |---------|----------------|-------------------|
// | dtype T | f32, f16, bf16 | embedding_<dtype> |
#include "rowwise.cuh"

namespace lk {

template <typename T>
__device__ __forceinline__ void embedding_kernel(const EmbeddingParams& p) {
    const int64_t t = blockIdx.x;
    const int32_t id = p.ids[t];
    const bool valid = id >= 0 && id < p.vocab;
    if (blockIdx.y == 0 && threadIdx.x == 0) p.status[t] = valid ? 0 : 1;
    const T* __restrict__ row = static_cast<const T*>(p.table) + (valid ? int64_t(id) : 0) * p.table_row_stride;
    T* __restrict__ out = static_cast<T*>(p.out) + t * p.out_row_stride;
    rowwise_walk(
        p.d, p.vectorized != 0,
        [&](int j0) {
            Run<T> v;
            if (valid) {
                v.load(row + j0);
            } else {
#pragma unroll
                for (int e = 0; e < RowwiseTraits::VEC; ++e) v.e[e] = from_f32<T>(0.0f);
            }
            v.store(out + j0);
        },
        [&](int j) { out[j] = valid ? row[j] : from_f32<T>(0.0f); });
}

}  // namespace lk

#define LK_EMBEDDING(dtype, T)                                                                 \
    extern "C" __global__ void __launch_bounds__(lk::RowwiseTraits::THREADS) embedding_##dtype( \
        const EmbeddingParams p) {                                                             \
        lk::embedding_kernel<T>(p);                                                            \
    }
LK_EMBEDDING(f32, float)
LK_EMBEDDING(f16, __half)
LK_EMBEDDING(bf16, __nv_bfloat16)
