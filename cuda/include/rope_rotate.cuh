// The rotation of RoPE, shared by cuda/rope.cu and cuda/kv_append.cu (so both round bit for bit alike):
// (x0, x1) <- (x0 c - x1 s, x0 s + x1 c) in f32 with fma, one rounding to T per element.
#pragma once
#include "common.cuh"

namespace lk {

// Two adjacent T as one access: 8 bytes for f32, 4 bytes for f16/bf16.
template <typename T> struct PairBits;
template <> struct PairBits<float> { using type = uint2; };
template <> struct PairBits<__half> { using type = uint32_t; };
template <> struct PairBits<__nv_bfloat16> { using type = uint32_t; };

template <typename T>
union Pair {
    typename PairBits<T>::type raw;
    T elem[2];
};
static_assert(sizeof(Pair<float>) == 2 * sizeof(float) && sizeof(Pair<__half>) == 2 * sizeof(__half),
              "a pair is exactly two elements");

// (x0, x1) <- (x0 c - x1 s, x0 s + x1 c) in f32.
__device__ __forceinline__ void rotate(float& x0, float& x1, float c, float s) {
    const float r0 = fmaf(x0, c, -(x1 * s));
    const float r1 = fmaf(x0, s, x1 * c);
    x0 = r0;
    x1 = r1;
}

// Rotates the adjacent pair (x[0], x[1]) in place.
template <typename T>
__device__ __forceinline__ void rotate_adjacent(T* x, float c, float s) {
    if (reinterpret_cast<uintptr_t>(x) % sizeof(Pair<T>) == 0) {
        Pair<T> v;
        v.raw = *reinterpret_cast<const typename PairBits<T>::type*>(x);
        float x0 = to_f32(v.elem[0]), x1 = to_f32(v.elem[1]);
        rotate(x0, x1, c, s);
        v.elem[0] = from_f32<T>(x0);
        v.elem[1] = from_f32<T>(x1);
        *reinterpret_cast<typename PairBits<T>::type*>(x) = v.raw;
    } else {
        float x0 = to_f32(x[0]), x1 = to_f32(x[1]);
        rotate(x0, x1, c, s);
        x[0] = from_f32<T>(x0);
        x[1] = from_f32<T>(x1);
    }
}

// Rotates the pair (x[0], x[half]) in place.
template <typename T>
__device__ __forceinline__ void rotate_split(T* x, int half, float c, float s) {
    float x0 = to_f32(x[0]), x1 = to_f32(x[half]);
    rotate(x0, x1, c, s);
    x[0] = from_f32<T>(x0);
    x[half] = from_f32<T>(x1);
}

}  // namespace lk
