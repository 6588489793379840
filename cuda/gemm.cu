// GEMM, version v3: tensor cores (mma.sync m16n8k16, f32 accumulators) for f16 and bf16, a 4-stage
// cp.async ring, XOR-swizzled shared memory, fragments double-buffered in registers, grouped rasterization
// and an epilogue staged through shared memory with 16-byte stores. f32 runs v1 and operands that are not
// 16-byte aligned run v2 (cuda/gemm_f32.cu, cuda/gemm_v2.cu: the lower rungs of the ladder in dev/gemm/,
// whose README has each rung's figures).
//
//   C (m, n) = alpha * op(A) (m, k) * op(B) (k, n) + beta * C        row-major, f32 accumulation
//   op(A)[i, p] = A_KMAJOR ? A[i * lda + p] : A[p * lda + i]         A stored (m, k), or (k, m) (trans_a)
//   op(B)[p, j] = B_KMAJOR ? B[j * ldb + p] : B[p * ldb + j]         B stored (n, k) (trans_b), or (k, n)
//   beta == 0: C is never read. Other epilogues (residual add, fused SwiGLU): gemm_epilogue.cuh.
//   Batched: product z = blockIdx.y reads A + z * batch_stride_a, B + z * batch_stride_b and writes
//   C + z * batch_stride_c.
//
// Work mapping. One block of WARPS_M x WARPS_N warps per BLOCK_M x BLOCK_N tile of C (128 x 256, 128 x 128 or
// 64 x 64; warp tiles 64 x 64 or 32 x 32); a 1-D grid, the
// block index rasterized in groups of GROUP_M row tiles (consecutive blocks walk down a group's rows for
// one column tile, so B's column tile and the group's A rows stay in L2). Warp (wm, wn) owns the
// WARP_M x WARP_N sub-tile at (wm * WARP_M, wn * WARP_N): M_TILES x N_TILES accumulators of m16n8.
// Per k-tile of BLOCK_K = 32 (two k-steps of 16):
//   - the ring: STAGES shared stages; tile kt + STAGES - 1 is issued (16-byte cp.async, .cg, zero-filled
//     past m, n and k) into the stage tile kt - 1 used, after the barrier that opens tile kt;
//   - each k-step loads the warp's A fragments (ldmatrix.x4 per m16 tile; .trans when A is stored (k, m))
//     and B fragments (ldmatrix.x4 per pair of n8 tiles; .trans when B is stored (k, n)) for the next
//     k-step while the mma of this one run (double-buffered fragments).
// Shared tiles keep the stored contiguous axis contiguous, so cp.async copies 16-byte chunks as they
// lie in global memory and the transposes happen in ldmatrix: a k-major tile is (rows, 32) with 4 chunks
// a row, chunk c of row r at c ^ ((r / 2) % 4); an m- or n-major tile is (32, BLOCK) with BLOCK / 8
// chunks a row, chunk c at c ^ (r % 8). Both put the 8 rows of every ldmatrix phase and the 8 chunks of
// every cp.async quarter-warp on distinct bank groups (0 conflicts). Fragment addresses are computed once
// before the main loop: the swizzle terms depend only on the lane.
//
// Epilogue: the ring is drained, then in WARPS_M passes the warps of one row of warps write alpha * acc in
// f32 to shared memory (row stride BLOCK_N + 8 floats: conflict-free float2 stores) and every thread
// turns 8 consecutive columns into one 16-byte store of C (reading C first when the epilogue needs it),
// element by element at the n edge or when C is not 16-byte aligned. SWIGLU: a staged row's chunks
// alternate gate and up (LK_GEMM_SWIGLU_BLOCK = 8 columns = one chunk); a thread turns chunk pair
// (2q, 2q + 1) into chunk q of C's row, so half the chunk slots of a pass store.
//
// Rounding: products and sums in f32 on the tensor cores, k-tiles in k order; alpha * acc + beta * C in
// f32 (fma); C rounded to T once. Accumulators start at +0.
//
// Compile-time axes (one table; the host picks a row from (m, n, k, SM count), src/ops/gemm.rs):
// | axis    | values                     | entry point                                  |
// |---------|----------------------------|----------------------------------------------|
// | dtype T | f16, bf16                  | gemm_<dtype>_<layout>_<config>               |
// | layout  | nn, nt, tn, tt             | <trans_a ? t : n><trans_b ? t : n>           |
// | config  | wide, large, small         | tiles: LK_GEMM_<CONFIG>_* in params.h        |
#include "gemm_epilogue.cuh"
#include "mma.cuh"

namespace lk {

template <int BLOCK_M_, int BLOCK_N_, int WARPS_M_, int WARPS_N_>
struct GemmV3Traits {
    static constexpr int BLOCK_M = BLOCK_M_;
    static constexpr int BLOCK_N = BLOCK_N_;
    static constexpr int BLOCK_K = LK_GEMM_BLOCK_K;
    static constexpr int STAGES = LK_GEMM_STAGES;
    static constexpr int WARPS_M = WARPS_M_;
    static constexpr int WARPS_N = WARPS_N_;
    static constexpr int THREADS = WARPS_M * WARPS_N * WARP_SIZE;
    static constexpr int WARP_M = BLOCK_M / WARPS_M;
    static constexpr int WARP_N = BLOCK_N / WARPS_N;
    static constexpr int M_TILES = WARP_M / 16;
    static constexpr int N_TILES = WARP_N / 8;
    static constexpr int N_PAIRS = N_TILES / 2;
    static constexpr int K_STEPS = BLOCK_K / 16;
    static constexpr int A_ELEMS = BLOCK_M * BLOCK_K;
    static constexpr int STAGE_ELEMS = (BLOCK_M + BLOCK_N) * BLOCK_K;
    static constexpr int C_STRIDE = BLOCK_N + 8;  // floats per staged C row
    static constexpr int PIPE_BYTES = STAGES * STAGE_ELEMS * 2;
    static constexpr int EPI_BYTES = WARP_M * C_STRIDE * 4;  // one row of warps at a time
    static constexpr int SMEM_BYTES = PIPE_BYTES > EPI_BYTES ? PIPE_BYTES : EPI_BYTES;

    static_assert(BLOCK_K == 32, "k-major tiles are 4 chunks a row (the swizzle below)");
    static_assert(BLOCK_M % 64 == 0 && BLOCK_N % 64 == 0, "mn-major tiles need a multiple of 8 chunks a row");
    static_assert(WARP_M % 16 == 0 && N_TILES % 2 == 0, "whole m16 tiles and pairs of n8 tiles per warp");
    static_assert((BLOCK_M * BLOCK_K / 8) % THREADS == 0 && (BLOCK_N * BLOCK_K / 8) % THREADS == 0,
                  "every thread stages the same number of chunks");
    static_assert((WARP_M * BLOCK_N / 8) % THREADS == 0, "every thread stores the same number of C chunks");
};

// Element offset of 16-byte chunk c of row r in a swizzled tile of CHUNKS chunks per row.
template <int CHUNKS>
__device__ __forceinline__ int gemm_swizzle(int r, int c) {
    if constexpr (CHUNKS == 4) {
        return r * 32 + (c ^ ((r >> 1) & 3)) * 8;
    } else {
        static_assert(CHUNKS % 8 == 0, "8 or more chunks a row");
        return r * CHUNKS * 8 + (c ^ (r & 7)) * 8;
    }
}

// Bytes of the 16-byte chunk at element `col` of a stored row of `cols` elements that lie in range (0: none).
__device__ __forceinline__ int gemm_chunk_bytes(int col, int cols) {
    return max(0, min(16, (cols - col) * 2));
}

// One operand's tile of one stage: ROWS x BLOCK_K when K_MAJOR (stored (rows, k)), BLOCK_K x ROWS
// otherwise (stored (k, rows)). A thread stages the chunks tid + THREADS * i.
template <typename Tr, int ROWS, bool K_MAJOR>
struct GemmTileLoader {
    static constexpr int CHUNKS = K_MAJOR ? Tr::BLOCK_K / 8 : ROWS / 8;  // per shared row
    static constexpr int PER_THREAD = ROWS * Tr::BLOCK_K / 8 / Tr::THREADS;
    static constexpr int ROW_STEP = Tr::THREADS / CHUNKS;  // shared rows between a thread's chunks
    const char* src;    // the thread's first chunk of k-tile 0 (row r0, column c0 * 8 of the stored tile)
    int64_t row_bytes;  // bytes between stored rows (ld * 2)
    int dst;            // element offset of the thread's first chunk in a stage
    int r0, c0;         // the thread's first shared row and chunk
    int outer0;         // first stored row / column of the block (m0 or n0)

    __device__ GemmTileLoader(const void* base, int64_t ld, int outer0_) {
        const int tid = threadIdx.x;
        r0 = tid / CHUNKS;
        c0 = tid % CHUNKS;
        outer0 = outer0_;
        row_bytes = ld * 2;
        dst = gemm_swizzle<CHUNKS>(r0, c0);
        static_assert(Tr::THREADS % CHUNKS == 0, "a thread keeps its chunk column");
        // Stored coordinates of the first chunk: K_MAJOR (row outer0 + r0, k c0 * 8); else (k r0, outer0 + c0 * 8).
        const int64_t row = K_MAJOR ? outer0 + r0 : r0;
        const int64_t col = K_MAJOR ? c0 * 8 : outer0 + c0 * 8;
        src = static_cast<const char*>(base) + row * row_bytes + col * 2;
    }

    // Issues k-tile kt into the stage at `stage` (element offset); zero past `outer` (m or n) and `k`.
    __device__ __forceinline__ void load(const void* base, void* smem, int stage, int kt, int outer, int k) const {
        const int k0 = kt * Tr::BLOCK_K;
        const char* s = src + (K_MAJOR ? int64_t(k0) * 2 : int64_t(k0) * row_bytes);
        char* d = static_cast<char*>(smem) + (stage + dst) * 2;
#pragma unroll
        for (int i = 0; i < PER_THREAD; ++i) {
            const int r = r0 + i * ROW_STEP;
            // Rows i * ROW_STEP apart keep the swizzle's row terms (ROW_STEP is a multiple of 8): the
            // shared offset moves by whole rows.
            static_assert(ROW_STEP % 8 == 0, "the chunk's swizzled column is the same in every row it stages");
            const int bytes = K_MAJOR ? (outer0 + r < outer ? gemm_chunk_bytes(k0 + c0 * 8, k) : 0)
                                      : (k0 + r < k ? gemm_chunk_bytes(outer0 + c0 * 8, outer) : 0);
            cp_async_16(d + i * ROW_STEP * CHUNKS * 16, bytes > 0 ? s + i * ROW_STEP * row_bytes : base, bytes);
        }
    }
};

template <typename T, typename Tr, bool A_KMAJOR, bool B_KMAJOR>
__device__ __forceinline__ void gemm_v3_kernel(const GemmParams& p) {
    extern __shared__ __align__(128) unsigned char gemm_smem[];
    T* smem = reinterpret_cast<T*>(gemm_smem);

    const int tid = threadIdx.x;
    const int lane = tid % WARP_SIZE;
    const int warp = tid / WARP_SIZE;
    const int wm = warp / Tr::WARPS_N;
    const int wn = warp % Tr::WARPS_N;

    // Grouped rasterization of the 1-D grid.
    const int tiles_m = (p.m + Tr::BLOCK_M - 1) / Tr::BLOCK_M;
    const int tiles_n = (p.n + Tr::BLOCK_N - 1) / Tr::BLOCK_N;
    const int per_group = LK_GEMM_GROUP_M * tiles_n;
    const int group = blockIdx.x / per_group;
    const int first_m = group * LK_GEMM_GROUP_M;
    const int group_rows = min(tiles_m - first_m, LK_GEMM_GROUP_M);
    const int in_group = blockIdx.x % per_group;
    const int m0 = (first_m + in_group % group_rows) * Tr::BLOCK_M;
    const int n0 = (in_group / group_rows) * Tr::BLOCK_N;

    const int64_t batch = blockIdx.y;
    const T* a_base = static_cast<const T*>(p.a) + batch * p.batch_stride_a;
    const T* b_base = static_cast<const T*>(p.b) + batch * p.batch_stride_b;
    const GemmTileLoader<Tr, Tr::BLOCK_M, A_KMAJOR> a_load(a_base, p.lda, m0);
    const GemmTileLoader<Tr, Tr::BLOCK_N, B_KMAJOR> b_load(b_base, p.ldb, n0);
    const int k_tiles = (p.k + Tr::BLOCK_K - 1) / Tr::BLOCK_K;

    // Fragment offsets within a stage (elements), per k-step and m16 tile / n8 pair.
    constexpr int A_CH = A_KMAJOR ? 4 : Tr::BLOCK_M / 8;
    constexpr int B_CH = B_KMAJOR ? 4 : Tr::BLOCK_N / 8;
    int a_off[Tr::K_STEPS][Tr::M_TILES], b_off[Tr::K_STEPS][Tr::N_PAIRS];
#pragma unroll
    for (int ks = 0; ks < Tr::K_STEPS; ++ks) {
#pragma unroll
        for (int mt = 0; mt < Tr::M_TILES; ++mt) {
            const int m = wm * Tr::WARP_M + mt * 16;
            a_off[ks][mt] = A_KMAJOR ? gemm_swizzle<A_CH>(m + lane % 16, ks * 2 + lane / 16)
                                     : gemm_swizzle<A_CH>(ks * 16 + lane / 16 * 8 + lane % 8, m / 8 + lane / 8 % 2);
        }
#pragma unroll
        for (int np = 0; np < Tr::N_PAIRS; ++np) {
            const int n = wn * Tr::WARP_N + np * 16;
            b_off[ks][np] = Tr::A_ELEMS +
                            (B_KMAJOR ? gemm_swizzle<B_CH>(n + lane / 16 * 8 + lane % 8, ks * 2 + lane / 8 % 2)
                                      : gemm_swizzle<B_CH>(ks * 16 + lane / 8 % 2 * 8 + lane % 8, n / 8 + lane / 16));
        }
    }

    float acc[Tr::M_TILES][Tr::N_TILES][4];
#pragma unroll
    for (int mt = 0; mt < Tr::M_TILES; ++mt)
#pragma unroll
        for (int nt = 0; nt < Tr::N_TILES; ++nt)
#pragma unroll
            for (int e = 0; e < 4; ++e) acc[mt][nt][e] = 0.0f;

    // Prologue: tiles 0 .. STAGES - 2, one commit group each (empty past the last tile).
#pragma unroll
    for (int s = 0; s < Tr::STAGES - 1; ++s) {
        if (s < k_tiles) {
            a_load.load(a_base, smem, s * Tr::STAGE_ELEMS, s, p.m, p.k);
            b_load.load(b_base, smem + Tr::A_ELEMS, s * Tr::STAGE_ELEMS, s, p.n, p.k);
        }
        cp_async_commit();
    }

    for (int kt = 0; kt < k_tiles; ++kt) {
        cp_async_wait<Tr::STAGES - 2>();  // tile kt has landed for this thread ...
        __syncthreads();                  // ... for every thread, and tile kt - 1 is consumed
        const int next = kt + Tr::STAGES - 1;
        if (next < k_tiles) {
            const int st = (next % Tr::STAGES) * Tr::STAGE_ELEMS;
            a_load.load(a_base, smem, st, next, p.m, p.k);
            b_load.load(b_base, smem + Tr::A_ELEMS, st, next, p.n, p.k);
        }
        cp_async_commit();

        const T* stage = smem + (kt % Tr::STAGES) * Tr::STAGE_ELEMS;
        uint32_t af[2][Tr::M_TILES][4], bf[2][Tr::N_PAIRS][4];
        auto load_frags = [&](int buf, int ks) {
#pragma unroll
            for (int mt = 0; mt < Tr::M_TILES; ++mt) {
                if constexpr (A_KMAJOR)
                    ldmatrix_x4(af[buf][mt], stage + a_off[ks][mt]);
                else
                    ldmatrix_x4_trans(af[buf][mt], stage + a_off[ks][mt]);
            }
#pragma unroll
            for (int np = 0; np < Tr::N_PAIRS; ++np) {
                if constexpr (B_KMAJOR)
                    ldmatrix_x4(bf[buf][np], stage + b_off[ks][np]);
                else
                    ldmatrix_x4_trans(bf[buf][np], stage + b_off[ks][np]);
            }
        };
        load_frags(0, 0);
#pragma unroll
        for (int ks = 0; ks < Tr::K_STEPS; ++ks) {
            if (ks + 1 < Tr::K_STEPS) load_frags((ks + 1) % 2, ks + 1);
#pragma unroll
            for (int mt = 0; mt < Tr::M_TILES; ++mt)
#pragma unroll
                for (int nt = 0; nt < Tr::N_TILES; ++nt)
                    mma_16816(acc[mt][nt], af[ks % 2][mt], bf[ks % 2][nt / 2][nt % 2 * 2],
                              bf[ks % 2][nt / 2][nt % 2 * 2 + 1], T());
        }
    }

    // Epilogue, one row of warps at a time through shared memory (aliases the drained ring).
    cp_async_wait<0>();
    float* c_s = reinterpret_cast<float*>(gemm_smem);  // (WARP_M, C_STRIDE)
    T* c = static_cast<T*>(p.c) + batch * p.batch_stride_c;
    const bool read_c = gemm_reads_c(p);
    const bool swiglu = p.epilogue == LK_GEMM_EPILOGUE_SWIGLU;
    const int c_cols = swiglu ? p.n / 2 : p.n;  // the host checked n % (2 * SWIGLU_BLOCK) == 0 for SWIGLU
    const bool c_vec = reinterpret_cast<uintptr_t>(c) % 16 == 0 && p.ldc % 8 == 0;
    static_assert(LK_GEMM_SWIGLU_BLOCK == 8, "a SwiGLU block is one staged chunk");
    const int g = lane / 4;
    const int t4 = lane % 4;
    constexpr int ROW_CHUNKS = Tr::BLOCK_N / 8;
    constexpr int STORES = Tr::WARP_M * ROW_CHUNKS / Tr::THREADS;
#pragma unroll
    for (int pass = 0; pass < Tr::WARPS_M; ++pass) {
        __syncthreads();  // the ring (first pass) or the previous pass is consumed
        if (wm == pass) {
#pragma unroll
            for (int mt = 0; mt < Tr::M_TILES; ++mt)
#pragma unroll
                for (int nt = 0; nt < Tr::N_TILES; ++nt)
#pragma unroll
                    for (int h = 0; h < 2; ++h) {
                        float* dst = c_s + (mt * 16 + h * 8 + g) * Tr::C_STRIDE + wn * Tr::WARP_N + nt * 8 + 2 * t4;
                        *reinterpret_cast<float2*>(dst) =
                            make_float2(p.alpha * acc[mt][nt][2 * h], p.alpha * acc[mt][nt][2 * h + 1]);
                    }
        }
        __syncthreads();
#pragma unroll
        for (int it = 0; it < STORES; ++it) {
            const int id = tid + it * Tr::THREADS;
            const int r = id / ROW_CHUNKS;
            const int ch = id % ROW_CHUNKS;
            const int i = m0 + pass * Tr::WARP_M + r;
            // SWIGLU: slot ch < ROW_CHUNKS / 2 makes C chunk ch from staged chunks 2ch (gate) and 2ch + 1 (up).
            const int j = swiglu ? n0 / 2 + ch * 8 : n0 + ch * 8;  // first column of C
            if (i >= p.m || j >= c_cols || (swiglu && ch >= ROW_CHUNKS / 2)) continue;
            // A staged chunk as two 16-byte shared reads, in the order that keeps a quarter-warp on
            // distinct banks.
            auto staged = [&](int chunk, float (&v)[8]) {
                const float* src = c_s + r * Tr::C_STRIDE + chunk * 8;
                const bool h = (chunk >> 2) & 1;
                const float4 first = *reinterpret_cast<const float4*>(src + (h ? 4 : 0));
                const float4 second = *reinterpret_cast<const float4*>(src + (h ? 0 : 4));
                const float4 lo = h ? second : first;
                const float4 hi = h ? first : second;
                v[0] = lo.x, v[1] = lo.y, v[2] = lo.z, v[3] = lo.w;
                v[4] = hi.x, v[5] = hi.y, v[6] = hi.z, v[7] = hi.w;
            };
            T* out = c + int64_t(i) * p.ldc + j;
            const bool vec = c_vec && j + 8 <= c_cols;
            union {
                uint4 raw;
                T elem[8];
            } res, old;
            float v[8];
            if (swiglu) {
                float up[8];
                staged(2 * ch, v);
                staged(2 * ch + 1, up);
#pragma unroll
                for (int e = 0; e < 8; ++e) res.elem[e] = gemm_swiglu<T>(p, v[e], up[e]);
            } else {
                staged(ch, v);
                if (read_c && vec) {
                    old.raw = *reinterpret_cast<const uint4*>(out);
                } else {
#pragma unroll
                    for (int e = 0; e < 8; ++e) old.elem[e] = read_c && j + e < c_cols ? out[e] : T();
                }
#pragma unroll
                for (int e = 0; e < 8; ++e) res.elem[e] = gemm_finish<T>(p, v[e], old.elem[e]);
            }
            if (vec) {
                *reinterpret_cast<uint4*>(out) = res.raw;
            } else {
#pragma unroll
                for (int e = 0; e < 8; ++e)
                    if (j + e < c_cols) out[e] = res.elem[e];
            }
        }
    }
}

}  // namespace lk

using GemmWide = lk::GemmV3Traits<LK_GEMM_WIDE_BLOCK_M, LK_GEMM_WIDE_BLOCK_N, LK_GEMM_WIDE_WARPS_M, LK_GEMM_WIDE_WARPS_N>;
using GemmLarge =
    lk::GemmV3Traits<LK_GEMM_LARGE_BLOCK_M, LK_GEMM_LARGE_BLOCK_N, LK_GEMM_LARGE_WARPS_M, LK_GEMM_LARGE_WARPS_N>;
using GemmSmall =
    lk::GemmV3Traits<LK_GEMM_SMALL_BLOCK_M, LK_GEMM_SMALL_BLOCK_N, LK_GEMM_SMALL_WARPS_M, LK_GEMM_SMALL_WARPS_N>;

#define LK_GEMM_V3(dtype, T, layout, A_KMAJOR, B_KMAJOR, config, Tr)                                              \
    extern "C" __global__ void __launch_bounds__(Tr::THREADS) gemm_##dtype##_##layout##_##config(const GemmParams p) { \
        lk::gemm_v3_kernel<T, Tr, A_KMAJOR, B_KMAJOR>(p);                                                         \
    }
#define LK_GEMM_V3_LAYOUTS(dtype, T, config, Tr)            \
    LK_GEMM_V3(dtype, T, nn, true, false, config, Tr)       \
    LK_GEMM_V3(dtype, T, nt, true, true, config, Tr)        \
    LK_GEMM_V3(dtype, T, tn, false, false, config, Tr)      \
    LK_GEMM_V3(dtype, T, tt, false, true, config, Tr)
LK_GEMM_V3_LAYOUTS(f16, __half, wide, GemmWide)
LK_GEMM_V3_LAYOUTS(f16, __half, large, GemmLarge)
LK_GEMM_V3_LAYOUTS(f16, __half, small, GemmSmall)
LK_GEMM_V3_LAYOUTS(bf16, __nv_bfloat16, wide, GemmWide)
LK_GEMM_V3_LAYOUTS(bf16, __nv_bfloat16, large, GemmLarge)
LK_GEMM_V3_LAYOUTS(bf16, __nv_bfloat16, small, GemmSmall)
