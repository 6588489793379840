// The row-wise walk the small ops share (add.cu, convert.cu, embedding.cu): grid (rows, chunks), block
// LK_ROWWISE_THREADS threads; block (r, c) owns the CHUNK = THREADS * VEC elements [c * CHUNK, + CHUNK)
// of row r.
//   vectorized (the host checked every pointer and row stride is 16-byte aligned): thread t owns the VEC
//     consecutive elements at c * CHUNK + t * VEC, moved with 16-byte accesses (one for 2-byte T, two for
//     f32); a run that d cuts short goes element by element.
//   otherwise thread t owns elements c * CHUNK + s * THREADS + t, s < VEC: consecutive threads on
//     consecutive elements, so the scalar accesses coalesce.
// Each element of a row below d is visited exactly once; nothing at or past d is touched.
#pragma once
#include "common.cuh"

namespace lk {

struct RowwiseTraits {
    static constexpr int THREADS = LK_ROWWISE_THREADS;
    static constexpr int VEC = LK_ROWWISE_VEC;
    static constexpr int CHUNK = THREADS * VEC;
    static_assert(THREADS % WARP_SIZE == 0, "whole warps");
};

// VEC consecutive elements of T in registers, aligned for 16-byte accesses.
template <typename T>
struct __align__(16) Run {
    T e[RowwiseTraits::VEC];
    static constexpr int WORDS = sizeof(T) * RowwiseTraits::VEC / 16;  // 16-byte words
    static_assert(sizeof(T) * RowwiseTraits::VEC % 16 == 0, "whole 16-byte words");

    __device__ __forceinline__ void load(const T* p) {
#pragma unroll
        for (int w = 0; w < WORDS; ++w) reinterpret_cast<uint4*>(e)[w] = reinterpret_cast<const uint4*>(p)[w];
    }
    __device__ __forceinline__ void store(T* p) const {
#pragma unroll
        for (int w = 0; w < WORDS; ++w) reinterpret_cast<uint4*>(p)[w] = reinterpret_cast<const uint4*>(e)[w];
    }
};

// Calls run(j0) once with the first element of this thread's whole aligned run (vectorized), and
// one(j) for every other element this thread owns in a row of d elements.
template <typename Run, typename One>
__device__ __forceinline__ void rowwise_walk(int d, bool vectorized, Run&& run, One&& one) {
    using Tr = RowwiseTraits;
    const int chunk0 = blockIdx.y * Tr::CHUNK;  // < d; host: d <= INT32_MAX - CHUNK
    if (vectorized) {
        const int j0 = chunk0 + threadIdx.x * Tr::VEC;
        if (j0 + Tr::VEC <= d) {
            run(j0);
        } else {
            for (int j = j0; j < d; ++j) one(j);
        }
    } else {
#pragma unroll
        for (int s = 0; s < Tr::VEC; ++s) {
            const int j = chunk0 + s * Tr::THREADS + threadIdx.x;
            if (j < d) one(j);
        }
    }
}

}  // namespace lk
