// RMSNorm and fused residual-add + RMSNorm, version v1 (memory-bound, one block per row).
//
// For each row of x: (rows, hidden) and weight: (hidden,):
//   plain:  s = x
//   fused:  s = round_T(x + residual); residual <- s          (residual != NULL; HF's residual stream in T)
//   r       = 1 / sqrt(sum_j s_j^2 / hidden + eps)           (f32: fma partial sums, block tree reduction)
//   out_j   = round_T(round_T(s_j * r) * w_j)                 rounding = MATCH_TORCH (Meta / HF LLaMA)
//   out_j   = round_T(s_j * r * w_j)                          rounding = ONCE
// r uses sqrt.rn and div.rn (not rsqrt.approx): one per row, and it keeps f32 results within a few ulps.
//
// Work mapping: grid = (rows), one block per row; blockDim.x = min(256, 32 * ceil(chunks / 32)) threads
// (chosen by the host, src/ops/rms_norm.rs), where a chunk is 16 bytes (VEC = 4 f32 or 8 f16/bf16
// elements) when `vectorized`, else one element. Thread t handles chunks t, t + blockDim.x, ... in both
// passes:
//   pass 1: load s (fused: x + residual, rounded to T and stored back to residual), sum of squares;
//   block_reduce_sum -> r (every thread);
//   pass 2: multiply, round, store out. s comes from registers when the row's vector chunks fit in
//           RMS_NORM_CACHED_CHUNKS per thread (one global read of the row), else it is reloaded (fused:
//           the residual this same thread just wrote, so no other thread's write is read).
// `vectorized` (set by the host when every row of x, out, residual and the weight start 16-byte aligned)
// selects ld/st.global.v4 for the hidden / VEC whole chunks, then a scalar tail for the last hidden % VEC
// elements (thread t takes tail element t). Otherwise every access is scalar and coalesced.
// out may be x itself (in place): each element is read by the thread that writes it, before it writes.
//
// Compile-time axes:
// | axis       | values          | entry point (plain / fused)                 |
// |------------|-----------------|---------------------------------------------|
// | dtype T    | f32, f16, bf16  | rms_norm_<dtype> / fused_add_rms_norm_<dtype> |
// | vectorized | runtime flag    | (both paths in each entry)                  |
#include "common.cuh"

namespace lk {

constexpr int RMS_NORM_MAX_THREADS = 256;
constexpr int RMS_NORM_CACHED_CHUNKS = 4;  // 16-byte chunks per thread kept in registers between the passes

// 16 bytes of T, loaded and stored as one vector access.
template <typename T> struct alignas(16) Pack16 {
    static constexpr int N = 16 / int(sizeof(T));
    T e[N];
};

// The value of s at one position: x, or round_T(x + residual) written back to residual (fused).
template <typename T, bool FUSED>
__device__ __forceinline__ T load_sum(const T* x, T* residual, int64_t j) {
    if (!FUSED) return x[j];
    const T s = from_f32<T>(to_f32(x[j]) + to_f32(residual[j]));
    residual[j] = s;
    return s;
}

template <typename T>
__device__ __forceinline__ T normalize(T s, T w, float r, bool match_torch) {
    const float y = match_torch ? round_to<T>(to_f32(s) * r) * to_f32(w) : to_f32(s) * r * to_f32(w);
    return from_f32<T>(y);
}

// One 16-byte chunk of s at element j (fused: x + residual rounded to T, written back to residual).
template <typename T, bool FUSED>
__device__ __forceinline__ Pack16<T> load_sum_pack(const T* x, T* residual, int j) {
    using Pack = Pack16<T>;
    Pack s = *reinterpret_cast<const Pack*>(x + j);
    if (FUSED) {
        const Pack res = *reinterpret_cast<const Pack*>(residual + j);
#pragma unroll
        for (int i = 0; i < Pack::N; ++i) s.e[i] = from_f32<T>(to_f32(s.e[i]) + to_f32(res.e[i]));
        *reinterpret_cast<Pack*>(residual + j) = s;
    }
    return s;
}

template <typename T>
__device__ __forceinline__ float add_squares(float sum_sq, const Pack16<T>& s) {
#pragma unroll
    for (int i = 0; i < Pack16<T>::N; ++i) sum_sq = fmaf(to_f32(s.e[i]), to_f32(s.e[i]), sum_sq);
    return sum_sq;
}

// out[j..j+N) = normalize(s, w[j..j+N)) as one 16-byte store.
template <typename T>
__device__ __forceinline__ void store_normalized(T* out, const T* w, int j, const Pack16<T>& s, float r, bool match_torch) {
    using Pack = Pack16<T>;
    const Pack wv = *reinterpret_cast<const Pack*>(w + j);
    Pack y;
#pragma unroll
    for (int i = 0; i < Pack::N; ++i) y.e[i] = normalize(s.e[i], wv.e[i], r, match_torch);
    *reinterpret_cast<Pack*>(out + j) = y;
}

template <typename T, bool FUSED>
__device__ __forceinline__ void rms_norm_kernel(const RmsNormParams& p) {
    using Pack = Pack16<T>;
    constexpr int VEC = Pack::N;
    const int64_t row = blockIdx.x;
    const T* x = static_cast<const T*>(p.x) + row * p.x_row_stride;  // (hidden,); may be out itself (no __restrict__)
    T* residual = FUSED ? static_cast<T*>(p.residual) + row * p.residual_row_stride : nullptr;  // (hidden,)
    T* out = static_cast<T*>(p.out) + row * p.out_row_stride;                            // (hidden,)
    const T* __restrict__ w = static_cast<const T*>(p.weight);                           // (hidden,)
    const int hidden = p.hidden;
    const bool match_torch = p.rounding == LK_ROUNDING_MATCH_TORCH;
    // Vector chunks cover [0, vec_end); the scalar loop covers [vec_end, hidden).
    const int vec_end = p.vectorized ? hidden / VEC * VEC : 0;
    const int step = blockDim.x * VEC;  // elements one sweep of the block covers
    // The row's vector chunks stay in registers between the passes when each thread has at most
    // RMS_NORM_CACHED_CHUNKS of them (bf16/f16 rows up to 8192, f32 up to 4096 at 256 threads): the row
    // is then read from global memory once.
    const bool cached = vec_end <= RMS_NORM_CACHED_CHUNKS * step;
    Pack cache[RMS_NORM_CACHED_CHUNKS];

    // Pass 1: sum of squares of s (fused: form s and write it to residual).
    float sum_sq = 0.0f;
    if (cached) {
#pragma unroll
        for (int c = 0; c < RMS_NORM_CACHED_CHUNKS; ++c) {
            const int j = threadIdx.x * VEC + c * step;
            if (j < vec_end) {
                cache[c] = load_sum_pack<T, FUSED>(x, residual, j);
                sum_sq = add_squares(sum_sq, cache[c]);
            }
        }
    } else {
        for (int j = threadIdx.x * VEC; j < vec_end; j += step) sum_sq = add_squares(sum_sq, load_sum_pack<T, FUSED>(x, residual, j));
    }
    for (int j = vec_end + threadIdx.x; j < hidden; j += blockDim.x) {
        const float s = to_f32(load_sum<T, FUSED>(x, residual, j));
        sum_sq = fmaf(s, s, sum_sq);
    }
    __shared__ float scratch[RMS_NORM_MAX_THREADS / WARP_SIZE];
    sum_sq = block_reduce_sum(sum_sq, scratch);
    const float r = 1.0f / sqrtf(sum_sq / float(hidden) + p.eps);

    // Pass 2: out = s * r * w with the rounding points of p.rounding (s from registers, or reloaded: the
    // fused op reloads the residual this same thread wrote).
    const T* src = FUSED ? residual : x;
    if (cached) {
#pragma unroll
        for (int c = 0; c < RMS_NORM_CACHED_CHUNKS; ++c) {
            const int j = threadIdx.x * VEC + c * step;
            if (j < vec_end) store_normalized(out, w, j, cache[c], r, match_torch);
        }
    } else {
        for (int j = threadIdx.x * VEC; j < vec_end; j += step)
            store_normalized(out, w, j, *reinterpret_cast<const Pack*>(src + j), r, match_torch);
    }
    for (int j = vec_end + threadIdx.x; j < hidden; j += blockDim.x) out[j] = normalize(src[j], w[j], r, match_torch);
}

}  // namespace lk

#define LK_RMS_NORM_ENTRIES(DT, T)                                                                             \
    extern "C" __global__ void __launch_bounds__(lk::RMS_NORM_MAX_THREADS) rms_norm_##DT(const RmsNormParams p) { \
        lk::rms_norm_kernel<T, false>(p);                                                                      \
    }                                                                                                          \
    extern "C" __global__ void __launch_bounds__(lk::RMS_NORM_MAX_THREADS)                                     \
        fused_add_rms_norm_##DT(const RmsNormParams p) {                                                       \
        lk::rms_norm_kernel<T, true>(p);                                                                       \
    }
LK_RMS_NORM_ENTRIES(f32, float)
LK_RMS_NORM_ENTRIES(f16, __half)
LK_RMS_NORM_ENTRIES(bf16, __nv_bfloat16)
