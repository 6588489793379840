// Convert: copy a (rows, d) tensor between strided layouts and, on the way, between dtypes.
//
//   out[r, j] = convert_Out(x[r, j])                             r < rows, j < d
//   x: (rows, d) at x_row_stride, dtype In; out: (rows, d) at out_row_stride, dtype Out; no overlap.
//
// Work mapping: cuda/include/rowwise.cuh (grid (rows, ceil(d / CHUNK)), 256 threads, 8 elements each;
// the 16-byte path needs x and out 16-byte aligned, with row strides in whole 16-byte words).
//
// Numerics: In == Out copies the bits (NaN payloads included). Otherwise x widens exactly to f32 and
// rounds to Out to nearest even: f32 -> f16 overflows to ±inf past 65504 (65520 and up), f32 -> bf16 keeps
// the exponent range; NaN stays NaN (quiet); f16 <-> bf16 go through f32, a single rounding since f32
// holds both exactly. The reference (src/reference/elementwise.rs, `convert`) uses the same rules.
//
// Compile-time axes (one table):
// | axis     | values         | entry points                                              |
// |----------|----------------|-----------------------------------------------------------|
// | In, Out  | f32, f16, bf16 | convert_<in>_<out> (9; convert_<t>_<t> is the strided copy) |
#include <type_traits>

#include "rowwise.cuh"

namespace lk {

template <typename Out, typename In>
__device__ __forceinline__ Out convert_elem(In v) {
    if constexpr (std::is_same<In, Out>::value) {
        return v;
    } else {
        return from_f32<Out>(to_f32(v));
    }
}

template <typename In, typename Out>
__device__ __forceinline__ void convert_kernel(const ConvertParams& p) {
    const int64_t row = blockIdx.x;
    const In* __restrict__ x = static_cast<const In*>(p.x) + row * p.x_row_stride;
    Out* __restrict__ out = static_cast<Out*>(p.out) + row * p.out_row_stride;
    rowwise_walk(
        p.d, p.vectorized != 0,
        [&](int j0) {
            Run<In> v;
            Run<Out> o;
            v.load(x + j0);
#pragma unroll
            for (int e = 0; e < RowwiseTraits::VEC; ++e) o.e[e] = convert_elem<Out>(v.e[e]);
            o.store(out + j0);
        },
        [&](int j) { out[j] = convert_elem<Out>(x[j]); });
}

}  // namespace lk

#define LK_CONVERT(in, In, out, Out)                                                              \
    extern "C" __global__ void __launch_bounds__(lk::RowwiseTraits::THREADS) convert_##in##_##out( \
        const ConvertParams p) {                                                                  \
        lk::convert_kernel<In, Out>(p);                                                           \
    }
LK_CONVERT(f32, float, f32, float)
LK_CONVERT(f32, float, f16, __half)
LK_CONVERT(f32, float, bf16, __nv_bfloat16)
LK_CONVERT(f16, __half, f32, float)
LK_CONVERT(f16, __half, f16, __half)
LK_CONVERT(f16, __half, bf16, __nv_bfloat16)
LK_CONVERT(bf16, __nv_bfloat16, f32, float)
LK_CONVERT(bf16, __nv_bfloat16, f16, __half)
LK_CONVERT(bf16, __nv_bfloat16, bf16, __nv_bfloat16)
