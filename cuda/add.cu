// Elementwise add, the residual connection of a decoder layer: out = a + b.
//
//   out[r, j] = round_T(f32(a[r, j]) + f32(b[r, j]))            r < rows, j < d
//   a, b, out: (rows, d) at their own row strides; out may be a or b (in place: each element is read and
//   written by the same thread, reads first).
//
// Work mapping: cuda/include/rowwise.cuh (grid (rows, ceil(d / CHUNK)), 256 threads, 8 elements each).
//
// Numerics: one f32 addition of the two widened values, one rounding to T (round to nearest even) — what
// PyTorch's `a + b` does for f16/bf16 on CUDA (f32 "opmath", one rounding), and IEEE f32 addition for f32.
// The reference (src/reference/elementwise.rs) does the same, so results are bit-identical.
//
// Compile-time axes (one table):
// | axis    | values         | entry point |
// |---------|----------------|-------------|
// | dtype T | f32, f16, bf16 | add_<dtype> |
#include "rowwise.cuh"

namespace lk {

template <typename T>
__device__ __forceinline__ void add_kernel(const AddParams& p) {
    const int64_t row = blockIdx.x;
    // Not __restrict__: out may be a or b.
    const T* a = static_cast<const T*>(p.a) + row * p.a_row_stride;
    const T* b = static_cast<const T*>(p.b) + row * p.b_row_stride;
    T* out = static_cast<T*>(p.out) + row * p.out_row_stride;
    rowwise_walk(
        p.d, p.vectorized != 0,
        [&](int j0) {
            Run<T> x, y;
            x.load(a + j0);
            y.load(b + j0);
#pragma unroll
            for (int e = 0; e < RowwiseTraits::VEC; ++e) x.e[e] = from_f32<T>(to_f32(x.e[e]) + to_f32(y.e[e]));
            x.store(out + j0);
        },
        [&](int j) { out[j] = from_f32<T>(to_f32(a[j]) + to_f32(b[j])); });
}

}  // namespace lk

#define LK_ADD(dtype, T)                                                                                  \
    extern "C" __global__ void __launch_bounds__(lk::RowwiseTraits::THREADS) add_##dtype(const AddParams p) { \
        lk::add_kernel<T>(p);                                                                             \
    }
LK_ADD(f32, float)
LK_ADD(f16, __half)
LK_ADD(bf16, __nv_bfloat16)
