// Flash attention, forward, version v2: tensor cores (mma.sync m16n8k16, f32 accumulators) for f16 and
// bf16, prefill and split-KV decode, and the split-KV combine kernel. f32 runs v1 (cuda/attention_f32.cu,
// the first rung of the ladder in dev/attention/). What v2 changed and measured: dev/attention/README.md.
//
// Changed from v1: both matmuls on tensor cores; Q in registers; cp.async K/V in 2 swizzled stages; P
// rounded to T for P V; the decode kind and split-KV. Measured (`cargo run --release --example
// attention_v2`): ptx-emu, prefill q 1024 causal GQA 4:1 d128: mma.sync carries 98.8% of the floating-point
// work (97.6% counting every f32 instruction as an FMA), 0 bank conflicts, K/V 1.03x the keys each block
// sees; decode kv 8192 GQA 32/8: K/V 1.01x (b1, 344 blocks) and 1.001x (b16, 512 blocks). Model, prefill
// seq 4096 causal GQA 32/8 d128: 231 TFLOP/s on an A100-SXM4-80GB (145% of FlashAttention-2's 159; the
// model runs 20-40% fast on A100 tensor-core GEMMs, docs/perf-model.md), 401 on an H100 SXM (126% of FA2's
// 319); decode b16 kv 8192: 85% / 88% of HBM; b1: 53% / 47% (two launches). Paged decode (16-key pages,
// scattered; `cargo run --release --example roofline`) b8 / b32: A100 73% / 78%, H100 81% / 89% of HBM.
//
// Per batch b, query head h (kv head hk = h / G, G = heads_per_kv_head), query row i, visible keys j
// (j < kv_len, d - window_left <= j <= d + window_right with d = i + diag_offset; -1 = unbounded;
// causal is window_right = 0):
//   x_j   = q_i . k_j                                            (f32, tensor-core accumulation order)
//   s_j   = softcap > 0 ? tanh(x_j * softmax_scale / softcap) * softcap * LOG2E : x_j * softmax_scale * LOG2E
//   m     = max_j s_j,  l = sum_j exp2(s_j - m)                  (base 2, online over key tiles)
//   o_i   = sum_j round_T(exp2(s_j - m_run)) v_j / l             (P rounded to T for the second mma)
//   lse_i = (m + log2 l) / LOG2E                                 (-inf and o_i = 0 when no key has weight;
//                                                                 NaN in o_i and lse_i for a NaN/+inf score)
// Masked keys get s = -inf before the max, so weight exactly 0; their v rows are still multiplied (by 0),
// so an inf or NaN in the v row of a key that another row of the same 64-key tile sees reaches this row
// as NaN (FlashAttention's behaviour). Keys at or past kv_len are never read: their tile rows are
// zero-filled by cp.async.
//
// Serving batches (ops::attention::serving): with cu_seqlens_q / seq_lens / cu_seqlens_k / block_table
// set, each sequence b has its own q_len, kv_len, first rows and diag_offset (kv_len - q_len), read once
// per block by attention_seq (cuda/include/attention_seq.cuh) and clamped there; the grid is sized for the
// longest sequence and a block past its sequence's rows exits at once. Paged, load_kv takes each K/V
// row's address from its page (attention_key_row) instead of walking one pointer; a page id out of range
// reads nothing and, through one __syncthreads_or at the end, turns the sequence's outputs to NaN.
//
// Layouts (element strides from the params struct, innermost dim contiguous, 16-byte aligned rows):
//   q, o: (batch, q_len, n_heads, head_dim)   k, v: (batch, kv_len, n_kv_heads, head_dim)
//   lse: (batch, n_heads, q_len) f32;  split-KV workspace o_partial (n_splits, batch, n_heads, q_len,
//   head_dim) f32 normalized per split, lse_partial (n_splits, batch, n_heads, q_len) f32 base 2.
//
// Work mapping. GQA packing: packed row R = i * G + g is query i of head hk * G + g, so one block's rows
// share every K/V tile. Grid = (row tiles * n_splits, n_kv_heads, batch); blockIdx.x = tile * n_splits +
// split. A block of WARPS_M x WARPS_KV warps owns BLOCK_M = 16 WARPS_M packed rows and walks the key tiles
// of its split that some row sees (tiles wholly outside every row's window, e.g. above the causal
// diagonal, are skipped; only tiles that cross a window edge or kv_len are masked). Warp (wm, wk) owns
// rows 16 wm.. and keys wk * WARP_N.. of each tile. Per tile:
//   1. cp.async (16 B, .cg) of K and V tile t + 1 into the other stage while tile t is computed;
//   2. S = Q K^T: Q's A fragments sit in registers for the whole loop (ldmatrix once), K's B fragments
//      come by ldmatrix (K rows are B's n-major "col" operand);
//   3. softcap, scale, mask, online softmax on the accumulator fragments (each lane holds rows g and
//      g + 8, both reduced together as trees; row max across the lane quad by two xor-shuffles, the
//      sums per lane until the end); in buckets 64 and 128 every k-step of the bucket runs (columns past
//      head_dim are zeros), so each matmul is one branch-free block;
//   4. O += P V: the S accumulator layout of two adjacent n-tiles is the A-fragment layout of one k-step,
//      so P is rounded to T and packed in registers; V's B fragments come by ldmatrix.trans.
// Prefill: WARPS_KV = 1. Decode (q_len * G <= 16): WARPS_M = 1 and the warps split each tile's keys; at
// the end the warps' (m, l, O) are merged through shared memory in warp order.
//
// Shared memory (dynamic; sized on the host from the same constants): q_s (BLOCK_M, D) | k_s STAGES x
// (BLOCK_N, D) | v_s STAGES x (BLOCK_N, D), D = HEAD_DIM_MAX, all T. Rows are D * 2 bytes (a multiple of
// 128) and the 16-byte chunk c of row r sits at chunk c ^ (r % 8): the 8 rows of every ldmatrix phase and
// the 8 chunks of every cp.async quarter-warp cover the 32 banks once (0 conflicts).
//
// Numerics: QK^T and PV in f32 on the tensor cores; softmax in f32 with exp2f; P rounded to T once; l
// summed from the unrounded f32 P; O scaled by 1 / l in f32 and rounded to T once; LSE in f32. Split-KV:
// each split normalizes its own O and the combine re-weights by exp2(lse_s - max lse) in f32, split order.
//
// Compile-time axes (one table; head_dim is a runtime multiple of 8 inside its bucket):
// | axis         | values                  | entry point                              |
// |--------------|-------------------------|------------------------------------------|
// | dtype T      | f16, bf16               | attention_<dtype>_d<bucket>, attention_decode_<dtype>_d<bucket> |
// | head-dim max | 64, 128, 256            | (the bucket)                             |
// | kind         | prefill, decode         | tiles: LK_ATTENTION_<KIND>_D<bucket>_* in params.h |
// | combine      | f16, bf16               | attention_combine_<dtype>                |
#include "attention_seq.cuh"
#include "mma.cuh"

namespace lk {

template <int HEAD_DIM_MAX_, int WARPS_M_, int WARPS_KV_, int BLOCK_N_>
struct AttentionMmaTraits {
    // Q's A fragments live in registers for the whole key loop, except at head-dim bucket 256, where their
    // 64 registers next to O's 128 would spill: there each k-step reloads them from q_s by ldmatrix
    // (FlashAttention-2's default for every head dim).
    static constexpr bool Q_IN_REGS = HEAD_DIM_MAX_ <= 128;
    // Every k-step of the bucket runs, data or zero padding, in one branch-free block that ptxas can
    // schedule ahead. At 256 the O accumulators leave no registers for loads hoisted across steps
    // (ptxas spills), so there the steps past head_dim are skipped one branch at a time.
    static constexpr bool ALL_STEPS = HEAD_DIM_MAX_ <= 128;
    static constexpr int HEAD_DIM_MAX = HEAD_DIM_MAX_;
    static constexpr int WARPS_M = WARPS_M_;
    static constexpr int WARPS_KV = WARPS_KV_;
    static constexpr int WARPS = WARPS_M * WARPS_KV;
    static constexpr int THREADS = WARPS * WARP_SIZE;
    static constexpr int BLOCK_M = LK_ATTENTION_ROWS_PER_WARP * WARPS_M;
    static constexpr int BLOCK_N = BLOCK_N_;
    static constexpr int WARP_N = BLOCK_N / WARPS_KV;  // keys of a tile per warp
    static constexpr int STAGES = LK_ATTENTION_STAGES;
    static constexpr int K_STEPS = HEAD_DIM_MAX / 16;  // mma k-steps of Q K^T (= 16-column pairs of O)
    static constexpr int S_TILES = WARP_N / 8;         // n-tiles of S per warp
    static constexpr int P_STEPS = WARP_N / 16;        // mma k-steps of P V
    static constexpr int O_TILES = HEAD_DIM_MAX / 8;   // n-tiles of O
    static constexpr int ROW_CHUNKS = HEAD_DIM_MAX / 8;  // 16-byte chunks per shared row
    static constexpr int Q_ELEMS = BLOCK_M * HEAD_DIM_MAX;
    static constexpr int TILE_ELEMS = BLOCK_N * HEAD_DIM_MAX;
    // Merge scratch of the decode kind (aliases the K/V stages): O (WARPS_KV, BLOCK_M, D + 8) f32, the
    // 8-float pad spreading a fragment store's 8 rows over the banks, and (m, l) per warp and row.
    static constexpr int MERGE_STRIDE = HEAD_DIM_MAX + 8;
    static constexpr int MERGE_FLOATS = WARPS_KV * BLOCK_M * (MERGE_STRIDE + 2);
    // __launch_bounds__'s second argument: decode caps registers so that more blocks stay resident
    // (its grid is sized to the SMs, and latency, not issue, bounds it); prefill keeps what O needs.
    static constexpr int MIN_BLOCKS_PER_SM = WARPS_KV > 1 && HEAD_DIM_MAX <= 128 ? 3 : 1;

    static_assert(LK_ATTENTION_ROWS_PER_WARP == 16, "one m16 mma row block per warp");
    static_assert(ROW_CHUNKS >= 8, "the XOR swizzle needs rows of at least 128 bytes");
    static_assert(WARP_N % 16 == 0, "a warp's keys are whole k-steps of P V");
    static_assert(BLOCK_N % WARPS_KV == 0, "keys split evenly over the warps");
    static_assert(BLOCK_M % (THREADS / ROW_CHUNKS) == 0 && BLOCK_N % (THREADS / ROW_CHUNKS) == 0,
                  "every thread stages the same number of chunks");
    static_assert(WARPS_KV == 1 || MERGE_FLOATS * 4 <= 2 * STAGES * TILE_ELEMS * 2, "merge scratch fits in K/V");
};

using AttentionPrefillD64 = AttentionMmaTraits<64, LK_ATTENTION_PREFILL_D64_WARPS_M, 1, LK_ATTENTION_PREFILL_D64_BLOCK_N>;
using AttentionPrefillD128 = AttentionMmaTraits<128, LK_ATTENTION_PREFILL_D128_WARPS_M, 1, LK_ATTENTION_PREFILL_D128_BLOCK_N>;
using AttentionPrefillD256 = AttentionMmaTraits<256, LK_ATTENTION_PREFILL_D256_WARPS_M, 1, LK_ATTENTION_PREFILL_D256_BLOCK_N>;
using AttentionDecodeD64 = AttentionMmaTraits<64, 1, LK_ATTENTION_DECODE_D64_WARPS_KV, LK_ATTENTION_DECODE_D64_BLOCK_N>;
using AttentionDecodeD128 = AttentionMmaTraits<128, 1, LK_ATTENTION_DECODE_D128_WARPS_KV, LK_ATTENTION_DECODE_D128_BLOCK_N>;
using AttentionDecodeD256 = AttentionMmaTraits<256, 1, LK_ATTENTION_DECODE_D256_WARPS_KV, LK_ATTENTION_DECODE_D256_BLOCK_N>;

// Element offset of chunk `c` (8 elements) of row `r` in a swizzled tile with rows of D elements.
template <int D> __device__ __forceinline__ int swizzle(int r, int c) { return r * D + ((c ^ (r % 8)) * 8); }

// Where a block's results go: o/lse directly (unsplit) or the split's workspace slot.
struct AttentionOut {
    const AttentionParams& p;
    int b, hk, split;
    int64_t q_start;  // the sequence's first row in o and lse
    bool bad;         // its metadata was out of range: NaN

    // Stores O columns d, d + 1 of packed row `pr` (already normalized).
    template <typename T> __device__ __forceinline__ void pair(int pr, int d, float o0, float o1) const {
        const int G = p.heads_per_kv_head;
        const int i = pr / G;
        const int h = hk * G + pr % G;
        if (bad) o0 = o1 = __int_as_float(0x7fffffff);
        if (p.n_splits == 1) {
            T* o = static_cast<T*>(p.o) + b * p.o_batch_stride + (q_start + i) * p.o_row_stride + h * p.o_head_stride;
            *reinterpret_cast<uint32_t*>(o + d) = pack2<T>(o0, o1);
        } else {
            float* o = p.o_partial + ((int64_t(split) * p.batch + b) * p.n_heads + h) * int64_t(p.q_len) * p.head_dim +
                       int64_t(i) * p.head_dim;
            *reinterpret_cast<float2*>(o + d) = make_float2(o0, o1);
        }
    }
    // Stores the row's LSE from its base-2 running max m and sum l (l == 0: no key had weight).
    __device__ __forceinline__ void lse(int pr, float m, float l) const {
        const int G = p.heads_per_kv_head;
        const int i = pr / G;
        const int h = hk * G + pr % G;
        // l == 0 only when every score was -inf or masked; a NaN l (NaN or +inf score) stays NaN.
        const float lse2 = bad ? __int_as_float(0x7fffffff) : l == 0.0f ? -INFINITY : m + log2f(l);
        if (p.n_splits == 1) {
            if (p.lse != nullptr) p.lse[b * p.lse_batch_stride + h * p.lse_head_stride + q_start + i] = lse2 / LOG2E;
        } else {
            p.lse_partial[((int64_t(split) * p.batch + b) * p.n_heads + h) * p.q_len + i] = lse2;
        }
    }
};

template <typename T, typename Tr>
__device__ __forceinline__ void attention_mma_kernel(const AttentionParams& p) {
    constexpr int D = Tr::HEAD_DIM_MAX;
    extern __shared__ __align__(128) unsigned char attention_smem[];
    T* q_s = reinterpret_cast<T*>(attention_smem);  // (BLOCK_M, D)
    T* k_s = q_s + Tr::Q_ELEMS;                      // STAGES x (BLOCK_N, D)
    T* v_s = k_s + Tr::STAGES * Tr::TILE_ELEMS;      // STAGES x (BLOCK_N, D)

    const int tid = threadIdx.x;
    const int warp = tid / WARP_SIZE;
    const int lane = tid % WARP_SIZE;
    const int wm = warp % Tr::WARPS_M;  // row group of this warp
    const int wk = warp / Tr::WARPS_M;  // key group of this warp
    const int g = lane / 4;             // fragment row (and g + 8)
    const int t4 = lane % 4;            // fragment column pair
    const int hd = p.head_dim;
    const int hd16 = (hd + 15) / 16;    // k-steps of Q K^T that hold data; also O column pairs of 16
    const int G = p.heads_per_kv_head;
    const int split = blockIdx.x % p.n_splits;
    const int m0 = (blockIdx.x / p.n_splits) * Tr::BLOCK_M;
    const int hk = blockIdx.y;
    const int b = blockIdx.z;
    const AttentionSeq seq = attention_seq(p, b);  // this sequence's rows and keys (attention_seq.cuh)
    const int rows = seq.q_len * G;     // packed rows of this (kv head, sequence); host: < 2^31 - 64
    if (m0 >= rows) return;             // a shorter sequence of a ragged batch (the grid fits the longest)
    const int kv_len = seq.kv_len;
    const int diag_offset = seq.diag_offset;
    const bool paged = p.block_table != nullptr;
    const T* q = static_cast<const T*>(p.q) + b * p.q_batch_stride + seq.q_start * p.q_row_stride +
                 int64_t(hk) * G * p.q_head_stride;
    const T* k = static_cast<const T*>(p.k) + b * p.k_batch_stride + hk * p.k_head_stride;  // key rows, below
    const T* v = static_cast<const T*>(p.v) + b * p.v_batch_stride + hk * p.v_head_stride;
    AttentionOut out{p, b, hk, split, seq.q_start, seq.bad};

    // Keys [n_lo, n_hi) are in this split and seen by some row of the block (queries i_first..i_last).
    const int64_t i_first = m0 / G;
    const int64_t i_last = (min(m0 + Tr::BLOCK_M, rows) - 1) / G;
    int64_t n_lo = int64_t(split) * p.keys_per_split;
    int64_t n_hi = min(int64_t(kv_len), n_lo + p.keys_per_split);
    if (p.window_left >= 0) n_lo = max(n_lo, i_first + diag_offset - p.window_left);
    if (p.window_right >= 0) n_hi = min(n_hi, i_last + diag_offset + p.window_right + 1);
    const int t_lo = int(max(n_lo, int64_t(0)) / Tr::BLOCK_N);
    const int t_hi = n_hi > n_lo ? int((n_hi + Tr::BLOCK_N - 1) / Tr::BLOCK_N) : t_lo;  // tiles [t_lo, t_hi)

    // Staging map: thread tid moves chunk c = tid % ROW_CHUNKS of rows r0 + ROW_STEP * it (THREADS is a
    // multiple of ROW_CHUNKS, so c is fixed and one pointer per tensor walks the rows).
    constexpr int ROW_STEP = Tr::THREADS / Tr::ROW_CHUNKS;
    static_assert(Tr::THREADS % Tr::ROW_CHUNKS == 0, "a thread stages one chunk column");
    const int c = tid % Tr::ROW_CHUNKS;
    const int r0 = tid / Tr::ROW_CHUNKS;
    // Chunks at or past hd are zero-filled: where the main loop runs every k-step of the bucket
    // (ALL_STEPS) the zero columns add exact zeros to S and only touch O columns that are never stored.
    const bool c_data = c * 8 < hd;

    // Q tile: packed rows past `rows` and columns past hd are zero.
#pragma unroll
    for (int it = 0; it < Tr::BLOCK_M / ROW_STEP; ++it) {
        const int r = r0 + it * ROW_STEP;
        const int pr = m0 + r;
        const bool valid = c_data && pr < rows;
        const T* src = valid ? q + int64_t(pr / G) * p.q_row_stride + int64_t(pr % G) * p.q_head_stride + c * 8 : q;
        cp_async_16(q_s + swizzle<D>(r, c), src, valid ? 16 : 0);
    }
    // K and V of tile t into stage `st`; keys at or past kv_len are zero-filled and never read. Unpaged,
    // one pointer per tensor walks the rows. Paged, each row's address comes from its page id, read from
    // block_table one tile ahead (fetch_pages) so that the id's load latency hides behind a tile of math
    // instead of holding up the cp.async; an id out of range reads nothing and marks the sequence bad.
    const T* k_thread = k + (seq.k_start + r0) * p.k_row_stride + c * 8;
    const T* v_thread = v + (seq.k_start + r0) * p.v_row_stride + c * 8;
    constexpr int KV_ROWS = Tr::BLOCK_N / ROW_STEP;  // rows of a tile this thread stages
    int page_ids[KV_ROWS];                           // paged: the page of each of them, for the next load
    const int* table = paged ? p.block_table + b * p.block_table_stride : nullptr;
    auto fetch_pages = [&](int t) {
#pragma unroll
        for (int it = 0; it < KV_ROWS; ++it) {
            const int j = t * Tr::BLOCK_N + r0 + it * ROW_STEP;
            page_ids[it] = t < t_hi && j < kv_len ? table[attention_page_entry(p, j)] : -1;
        }
    };
    bool page_bad = false;
    auto load_kv = [&](int t, int st) {
        const int n0 = t * Tr::BLOCK_N;
        if (paged) {
#pragma unroll
            for (int it = 0; it < KV_ROWS; ++it) {
                const int r = r0 + it * ROW_STEP;
                const int64_t row = n0 + r < kv_len ? attention_paged_row(p, page_ids[it], n0 + r, page_bad) : -1;
                const bool valid = c_data && row >= 0;
                const int dst = st * Tr::TILE_ELEMS + swizzle<D>(r, c);
                cp_async_16(k_s + dst, valid ? k + row * p.k_row_stride + c * 8 : k, valid ? 16 : 0);
                cp_async_16(v_s + dst, valid ? v + row * p.v_row_stride + c * 8 : v, valid ? 16 : 0);
            }
            return;
        }
        const T* k_src = k_thread + int64_t(n0) * p.k_row_stride;
        const T* v_src = v_thread + int64_t(n0) * p.v_row_stride;
#pragma unroll
        for (int it = 0; it < Tr::BLOCK_N / ROW_STEP; ++it) {
            const int r = r0 + it * ROW_STEP;
            const bool valid = c_data && n0 + r < kv_len;
            const int dst = st * Tr::TILE_ELEMS + swizzle<D>(r, c);
            cp_async_16(k_s + dst, valid ? k_src : k, valid ? 16 : 0);
            cp_async_16(v_s + dst, valid ? v_src : v, valid ? 16 : 0);
            k_src += ROW_STEP * p.k_row_stride;
            v_src += ROW_STEP * p.v_row_stride;
        }
    };
    if (paged) fetch_pages(t_lo);
    if (t_lo < t_hi) load_kv(t_lo, 0);
    if (paged) fetch_pages(t_lo + 1);
    cp_async_commit();
    cp_async_wait<0>();
    __syncthreads();

    constexpr int Q_FRAGS = Tr::Q_IN_REGS ? Tr::K_STEPS : 1;
    uint32_t q_frag[Q_FRAGS][4];  // A fragments of this warp's 16 rows, every k-step of head_dim (Q_IN_REGS)
    auto load_q_frag = [&](uint32_t(&frag)[4], int ks) {
        ldmatrix_x4(frag, q_s + swizzle<D>(wm * 16 + lane % 16, ks * 2 + lane / 16));
    };
    if constexpr (Tr::Q_IN_REGS) {
#pragma unroll
        for (int ks = 0; ks < Tr::K_STEPS; ++ks)
            load_q_frag(q_frag[ks], ks);
    }

    float o_acc[Tr::O_TILES][4];  // O of rows g, g + 8; columns 8 dt + 2 t4 + {0, 1}; unnormalized
#pragma unroll
    for (int dt = 0; dt < Tr::O_TILES; ++dt)
#pragma unroll
        for (int e = 0; e < 4; ++e) o_acc[dt][e] = 0.0f;
    float m_run[2] = {-INFINITY, -INFINITY};  // running base-2 max of rows g, g + 8 (quad-uniform)
    float l_run[2] = {0.0f, 0.0f};            // this lane's share of the running row sums
    const int pr_lane[2] = {m0 + wm * 16 + g, m0 + wm * 16 + g + 8};  // packed rows of this lane

    // ldmatrix addresses in the main loop. Chunk 8 a + x of a row r with r % 8 = lane % 8 is swizzled to
    // 8 a + (x ^ (lane % 8)) (x < 8), so the lane's chunk offsets for k-step 4 a + x / 2 are the four
    // registers below plus a constant; the rows add constants too.
    int k_chunk[4], v_chunk[4];  // element offsets of the lane's chunk in k-steps 4 a + x, x < 4
#pragma unroll
    for (int x = 0; x < 4; ++x) {
        k_chunk[x] = ((2 * x + lane / 8 % 2) ^ (lane % 8)) * 8;
        v_chunk[x] = ((2 * x + lane / 16) ^ (lane % 8)) * 8;
    }
    const int k_row = (wk * Tr::WARP_N + lane / 16 * 8 + lane % 8) * D;      // + np * 16 rows
    const int v_row = (wk * Tr::WARP_N + lane / 8 % 2 * 8 + lane % 8) * D;   // + kp * 16 rows

    for (int t = t_lo; t < t_hi; ++t) {
        const int st = (t - t_lo) % Tr::STAGES;
        if (t > t_lo) {
            cp_async_wait<0>();  // tile t (issued last iteration) has landed
            __syncthreads();     // ... for every thread, and every warp is done with tile t - 1
        }
        if (t + 1 < t_hi) load_kv(t + 1, (t + 1 - t_lo) % Tr::STAGES);
        if (paged) fetch_pages(t + 2);  // consumed by the next iteration's load_kv
        cp_async_commit();
        const int n0 = t * Tr::BLOCK_N + wk * Tr::WARP_N;  // first key of this warp's part of the tile
        const T* k_t = k_s + st * Tr::TILE_ELEMS;
        const T* v_t = v_s + st * Tr::TILE_ELEMS;

        // 2. S = Q K^T (16 rows x WARP_N keys of this warp).
        float s[Tr::S_TILES][4];
#pragma unroll
        for (int nt = 0; nt < Tr::S_TILES; ++nt)
#pragma unroll
            for (int e = 0; e < 4; ++e) s[nt][e] = 0.0f;
#pragma unroll
        for (int ks = 0; ks < Tr::K_STEPS; ++ks) {
            if (!Tr::ALL_STEPS && ks >= hd16) break;
            const int qi = Tr::Q_IN_REGS ? ks : 0;
            if constexpr (!Tr::Q_IN_REGS) load_q_frag(q_frag[0], ks);
#pragma unroll
            for (int np = 0; np < Tr::S_TILES / 2; ++np) {
                uint32_t kf[4];  // b0, b1 of n-tile 2 np, then of 2 np + 1
                ldmatrix_x4(kf, k_t + k_row + np * 16 * D + ks / 4 * 64 + k_chunk[ks % 4]);
                mma_16816(s[2 * np], q_frag[qi], kf[0], kf[1], T());
                mma_16816(s[2 * np + 1], q_frag[qi], kf[2], kf[3], T());
            }
        }

        // 3. Logits in base 2, mask, online softmax; s becomes P = exp2(s - m). (Folding the scale into the
        // exp's FMA, exp2(fma(x, c, -m)), would save one multiply per score, but for a large scale the
        // FMA's exact residue c x - round(c x) at the maximum is itself large and exp2 of it is 0 or inf.)
        if (p.softcap > 0.0f) {
#pragma unroll
            for (int nt = 0; nt < Tr::S_TILES; ++nt)
#pragma unroll
                for (int e = 0; e < 4; ++e) s[nt][e] = tanhf(s[nt][e] * p.softcap_input_scale) * p.softcap_output_log2;
        } else {
#pragma unroll
            for (int nt = 0; nt < Tr::S_TILES; ++nt)
#pragma unroll
                for (int e = 0; e < 4; ++e) s[nt][e] *= p.softmax_scale_log2;
        }
        const int tile0 = t * Tr::BLOCK_N;
        const bool needs_mask = tile0 + Tr::BLOCK_N > kv_len ||
                                (p.window_left >= 0 && tile0 < i_last + diag_offset - p.window_left) ||
                                (p.window_right >= 0 && tile0 + Tr::BLOCK_N - 1 > i_first + diag_offset + p.window_right);
        if (needs_mask) {
            // Row r sees this warp's local keys jl in [lo, hi] (int32 after clamping to the tile).
#pragma unroll
            for (int r = 0; r < 2; ++r) {
                const int64_t diag = int64_t(pr_lane[r] / G) + diag_offset - n0;
                int64_t hi = int64_t(kv_len) - 1 - n0;
                if (p.window_right >= 0) hi = min(hi, diag + p.window_right);
                const int64_t lo = p.window_left >= 0 ? diag - p.window_left : 0;
                const int lo32 = int(max(int64_t(-1), min(lo, int64_t(Tr::WARP_N)))) - 2 * t4;
                const int hi32 = int(max(int64_t(-1), min(hi, int64_t(Tr::WARP_N)))) - 2 * t4;
#pragma unroll
                for (int nt = 0; nt < Tr::S_TILES; ++nt)
#pragma unroll
                    for (int e = 0; e < 2; ++e) {
                        const int jl = nt * 8 + e;  // local key minus 2 t4
                        if (jl < lo32 || jl > hi32) s[nt][2 * r + e] = -INFINITY;
                    }
            }
        }
        // Both rows together, as trees, so their reductions and exps overlap: one tile's softmax is a
        // few dependent steps rather than a chain per row (fmaxf ignores NaN whatever the order; the
        // NaN comes back through exp2 into P and l).
        float m_tile[2], m_sub[2], rescale[2];
#pragma unroll
        for (int r = 0; r < 2; ++r) {
            float mx[Tr::S_TILES];
#pragma unroll
            for (int nt = 0; nt < Tr::S_TILES; ++nt) mx[nt] = fmaxf(s[nt][2 * r], s[nt][2 * r + 1]);
#pragma unroll
            for (int w = 1; w < Tr::S_TILES; w *= 2)
#pragma unroll
                for (int nt = 0; nt + w < Tr::S_TILES; nt += 2 * w) mx[nt] = fmaxf(mx[nt], mx[nt + w]);
            m_tile[r] = mx[0];
        }
#pragma unroll
        for (int x = 1; x <= 2; x *= 2)
#pragma unroll
            for (int r = 0; r < 2; ++r) m_tile[r] = fmaxf(m_tile[r], __shfl_xor_sync(FULL_MASK, m_tile[r], x));
#pragma unroll
        for (int r = 0; r < 2; ++r) rescale[r] = online_softmax_rescale(m_run[r], m_tile[r], m_sub[r]);
        // Once the row maxima settle, most tiles leave them unchanged: skip the O rescale (x 1) then.
        if (!__all_sync(FULL_MASK, rescale[0] == 1.0f && rescale[1] == 1.0f)) {
#pragma unroll
            for (int dt = 0; dt < Tr::O_TILES; ++dt)
#pragma unroll
                for (int e = 0; e < 4; ++e) o_acc[dt][e] *= rescale[e / 2];
        }
        // Every exp first, then the sums: a sum waiting on its exp does not hold up the exps behind it.
#pragma unroll
        for (int nt = 0; nt < Tr::S_TILES; ++nt)
#pragma unroll
            for (int e = 0; e < 4; ++e) s[nt][e] = exp2f(s[nt][e] - m_sub[e / 2]);  // masked or -inf: +0
#pragma unroll
        for (int r = 0; r < 2; ++r) {
            float sum[Tr::S_TILES];
#pragma unroll
            for (int nt = 0; nt < Tr::S_TILES; ++nt) sum[nt] = s[nt][2 * r] + s[nt][2 * r + 1];
#pragma unroll
            for (int w = 1; w < Tr::S_TILES; w *= 2)
#pragma unroll
                for (int nt = 0; nt + w < Tr::S_TILES; nt += 2 * w) sum[nt] += sum[nt + w];
            l_run[r] = l_run[r] * rescale[r] + sum[0];
        }

        // 4. O += P V: n-tiles 2 kp and 2 kp + 1 of S are the A fragment of k-step kp.
#pragma unroll
        for (int kp = 0; kp < Tr::P_STEPS; ++kp) {
            const uint32_t pa[4] = {pack2<T>(s[2 * kp][0], s[2 * kp][1]), pack2<T>(s[2 * kp][2], s[2 * kp][3]),
                                    pack2<T>(s[2 * kp + 1][0], s[2 * kp + 1][1]),
                                    pack2<T>(s[2 * kp + 1][2], s[2 * kp + 1][3])};
#pragma unroll
            for (int dp = 0; dp < Tr::K_STEPS; ++dp) {
                if (!Tr::ALL_STEPS && dp >= hd16) break;
                uint32_t vf[4];  // b0, b1 of O n-tile 2 dp, then of 2 dp + 1
                ldmatrix_x4_trans(vf, v_t + v_row + kp * 16 * D + dp / 4 * 64 + v_chunk[dp % 4]);
                mma_16816(o_acc[2 * dp], pa, vf[0], vf[1], T());
                mma_16816(o_acc[2 * dp + 1], pa, vf[2], vf[3], T());
            }
        }
    }

    // Row sums across the quad.
#pragma unroll
    for (int r = 0; r < 2; ++r) {
        l_run[r] += __shfl_xor_sync(FULL_MASK, l_run[r], 1);
        l_run[r] += __shfl_xor_sync(FULL_MASK, l_run[r], 2);
    }
    if (paged) out.bad |= __syncthreads_or(page_bad) != 0;  // a page this block read is out of range: NaN

    if constexpr (Tr::WARPS_KV == 1) {
#pragma unroll
        for (int r = 0; r < 2; ++r) {
            const int pr = pr_lane[r];
            if (pr >= rows) continue;
            const float l = l_run[r];
            // A row no key gave weight (l == 0) stores exact zeros, whatever 0 * v of masked keys left in
            // its accumulator (NaN from an inf or NaN v row); a NaN l stays NaN.
            const float inv_l = l == 0.0f ? 0.0f : 1.0f / l;
#pragma unroll
            for (int dt = 0; dt < Tr::O_TILES; ++dt) {
                const int d = dt * 8 + 2 * t4;
                if (d < hd)
                    out.pair<T>(pr, d, l == 0.0f ? 0.0f : o_acc[dt][2 * r] * inv_l,
                                l == 0.0f ? 0.0f : o_acc[dt][2 * r + 1] * inv_l);
            }
            if (t4 == 0) out.lse(pr, m_run[r], l);
        }
    } else {
        // Merge the WARPS_KV warps' partial rows in warp order through shared memory (aliases K/V).
        cp_async_wait<0>();
        __syncthreads();  // every warp is done with the K/V stages
        float* o_merge = reinterpret_cast<float*>(k_s);  // (WARPS_KV, BLOCK_M, MERGE_STRIDE)
        float* ml_merge = o_merge + Tr::WARPS_KV * Tr::BLOCK_M * Tr::MERGE_STRIDE;  // (WARPS_KV, BLOCK_M, 2)
#pragma unroll
        for (int r = 0; r < 2; ++r) {
            const int row = wm * 16 + g + 8 * r;
            float* o_row = o_merge + (wk * Tr::BLOCK_M + row) * Tr::MERGE_STRIDE;
#pragma unroll
            for (int dt = 0; dt < Tr::O_TILES; ++dt) {
                if (dt / 2 >= hd16) break;
                *reinterpret_cast<float2*>(o_row + dt * 8 + 2 * t4) = make_float2(o_acc[dt][2 * r], o_acc[dt][2 * r + 1]);
            }
            if (t4 == 0) {
                ml_merge[(wk * Tr::BLOCK_M + row) * 2] = m_run[r];
                ml_merge[(wk * Tr::BLOCK_M + row) * 2 + 1] = l_run[r];
            }
        }
        __syncthreads();
        // Thread per (row, column pair): m = max over warps, each warp's sums rescaled by exp2(m_w - m).
        const int pairs = hd / 2;
        for (int idx = tid; idx < Tr::BLOCK_M * pairs; idx += Tr::THREADS) {
            const int row = idx / pairs;
            const int d = idx % pairs * 2;
            const int pr = m0 + row;
            if (pr >= rows) continue;
            float m = -INFINITY;
#pragma unroll
            for (int w = 0; w < Tr::WARPS_KV; ++w) m = fmaxf(m, ml_merge[(w * Tr::BLOCK_M + row) * 2]);
            const float m_sub = m == -INFINITY ? 0.0f : m;
            float l = 0.0f, o0 = 0.0f, o1 = 0.0f;
#pragma unroll
            for (int w = 0; w < Tr::WARPS_KV; ++w) {
                const float scale = exp2f(ml_merge[(w * Tr::BLOCK_M + row) * 2] - m_sub);
                l += ml_merge[(w * Tr::BLOCK_M + row) * 2 + 1] * scale;
                const float2 ow = *reinterpret_cast<const float2*>(o_merge + (w * Tr::BLOCK_M + row) * Tr::MERGE_STRIDE + d);
                o0 += ow.x * scale;
                o1 += ow.y * scale;
            }
            const float inv_l = l == 0.0f ? 0.0f : 1.0f / l;  // l == 0: exact zeros (see above)
            out.pair<T>(pr, d, l == 0.0f ? 0.0f : o0 * inv_l, l == 0.0f ? 0.0f : o1 * inv_l);
            if (d == 0) out.lse(pr, m, l);
        }
    }
}

// Split-KV combine: warp per (batch, head, query) row; lane owns column pairs 2 lane + 64 u. The split
// weights are computed once, lanes across the splits, and kept in shared memory, so the loop over the
// splits has no dependent global load and its partial-O loads can all be in flight at once (a serial
// lse -> weight -> O chain per split was one DRAM round trip per split).
template <typename T>
__device__ __forceinline__ void attention_combine_kernel(const AttentionCombineParams& p) {
    constexpr int WARPS = LK_ATTENTION_COMBINE_THREADS / WARP_SIZE;
    __shared__ float weight_s[WARPS][LK_ATTENTION_MAX_SPLITS];
    const int lane = threadIdx.x % WARP_SIZE;
    const int warp = threadIdx.x / WARP_SIZE;
    const int64_t row = int64_t(blockIdx.x) * WARPS + warp;  // (b * n_heads + h) * q_len + i
    const int64_t rows = int64_t(p.batch) * p.n_heads * p.q_len;
    if (row >= rows) return;
    const int i = int(row % p.q_len);
    const int h = int(row / p.q_len % p.n_heads);
    const int b = int(row / p.q_len / p.n_heads);
    // A ragged batch's sequence b has its own query count and first row (clamped as the attention kernel
    // clamps them, cuda/include/attention_seq.cuh); its rows past that count were never computed.
    int64_t q_start = 0;
    int q_len = p.q_len;
    bool bad = false;
    if (p.cu_seqlens_q != nullptr) attention_packed_rows(p.cu_seqlens_q, b, p.total_q, p.q_len, q_start, q_len, bad);
    if (i >= q_len) return;
    (void)bad;  // a bad sequence's partials are NaN already, and NaN reaches o and lse below
    // m = max over splits (fmaxf skips NaN: a NaN split's weight below is NaN and reaches o and lse).
    float m = -INFINITY;
    for (int s = lane; s < p.n_splits; s += WARP_SIZE) m = fmaxf(m, p.lse_partial[s * rows + row]);
    m = warp_reduce_max(m);
    const float m_sub = m == -INFINITY ? 0.0f : m;
    // Weights exp2(lse_s - m) (an empty split: exp2(-inf) = 0), and their sum in a fixed tree order.
    float l = 0.0f;
    for (int s = lane; s < p.n_splits; s += WARP_SIZE) {
        const float w = exp2f(p.lse_partial[s * rows + row] - m_sub);
        weight_s[warp][s] = w;
        l += w;
    }
    l = warp_reduce_sum(l);
    __syncwarp();
    // Partial O in batches of BATCH splits: all of a batch's loads issue before its first FMA (a warp
    // issues in order, so an FMA waiting on its load would hold back the next split's loads).
    constexpr int BATCH = 8;
    bool col[4];  // column pair u of this lane is inside head_dim
#pragma unroll
    for (int u = 0; u < 4; ++u) col[u] = 2 * lane + 64 * u < p.head_dim;
    float acc[8] = {0.0f, 0.0f, 0.0f, 0.0f, 0.0f, 0.0f, 0.0f, 0.0f};  // columns 2 lane + 64 u + {0, 1}
    for (int s0 = 0; s0 < p.n_splits; s0 += BATCH) {
        float2 x[BATCH][4];
#pragma unroll
        for (int j = 0; j < BATCH; ++j) {
            const bool split_ok = s0 + j < p.n_splits;
            const float* o_s = p.o_partial + (int64_t(s0 + j) * rows + row) * p.head_dim + 2 * lane;
#pragma unroll
            for (int u = 0; u < 4; ++u)
                x[j][u] = split_ok && col[u] ? *reinterpret_cast<const float2*>(o_s + 64 * u) : make_float2(0.0f, 0.0f);
        }
#pragma unroll
        for (int j = 0; j < BATCH; ++j) {
            const float w = s0 + j < p.n_splits ? weight_s[warp][s0 + j] : 0.0f;
#pragma unroll
            for (int u = 0; u < 4; ++u) {
                acc[2 * u] = fmaf(w, x[j][u].x, acc[2 * u]);
                acc[2 * u + 1] = fmaf(w, x[j][u].y, acc[2 * u + 1]);
            }
        }
    }
    const float inv_l = l == 0.0f ? 0.0f : 1.0f / l;  // every split empty: zeros (their partials are 0)
    T* o = static_cast<T*>(p.o) + b * p.o_batch_stride + (q_start + i) * p.o_row_stride + h * p.o_head_stride;
#pragma unroll
    for (int u = 0; u < 4; ++u)
        if (col[u]) *reinterpret_cast<uint32_t*>(o + 2 * lane + 64 * u) = pack2<T>(acc[2 * u] * inv_l, acc[2 * u + 1] * inv_l);
    if (p.lse != nullptr && lane == 0)
        p.lse[b * p.lse_batch_stride + h * p.lse_head_stride + q_start + i] = l == 0.0f ? -INFINITY : (m_sub + log2f(l)) / LOG2E;
}

}  // namespace lk

#define LK_ATTENTION_ENTRY(NAME, T, TRAITS) \
    extern "C" __global__ void __launch_bounds__(TRAITS::THREADS, TRAITS::MIN_BLOCKS_PER_SM) NAME(const AttentionParams p) { \
        lk::attention_mma_kernel<T, TRAITS>(p); \
    }
LK_ATTENTION_ENTRY(attention_f16_d64, __half, lk::AttentionPrefillD64)
LK_ATTENTION_ENTRY(attention_f16_d128, __half, lk::AttentionPrefillD128)
LK_ATTENTION_ENTRY(attention_f16_d256, __half, lk::AttentionPrefillD256)
LK_ATTENTION_ENTRY(attention_bf16_d64, __nv_bfloat16, lk::AttentionPrefillD64)
LK_ATTENTION_ENTRY(attention_bf16_d128, __nv_bfloat16, lk::AttentionPrefillD128)
LK_ATTENTION_ENTRY(attention_bf16_d256, __nv_bfloat16, lk::AttentionPrefillD256)
LK_ATTENTION_ENTRY(attention_decode_f16_d64, __half, lk::AttentionDecodeD64)
LK_ATTENTION_ENTRY(attention_decode_f16_d128, __half, lk::AttentionDecodeD128)
LK_ATTENTION_ENTRY(attention_decode_f16_d256, __half, lk::AttentionDecodeD256)
LK_ATTENTION_ENTRY(attention_decode_bf16_d64, __nv_bfloat16, lk::AttentionDecodeD64)
LK_ATTENTION_ENTRY(attention_decode_bf16_d128, __nv_bfloat16, lk::AttentionDecodeD128)
LK_ATTENTION_ENTRY(attention_decode_bf16_d256, __nv_bfloat16, lk::AttentionDecodeD256)
extern "C" __global__ void __launch_bounds__(LK_ATTENTION_COMBINE_THREADS) attention_combine_f16(const AttentionCombineParams p) {
    lk::attention_combine_kernel<__half>(p);
}
extern "C" __global__ void __launch_bounds__(LK_ATTENTION_COMBINE_THREADS) attention_combine_bf16(const AttentionCombineParams p) {
    lk::attention_combine_kernel<__nv_bfloat16>(p);
}
