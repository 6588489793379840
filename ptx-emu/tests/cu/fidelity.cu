// Regression kernels for ptx-emu fidelity defects found on public kernels (issue 7, items 1-7).
// Each kernel is shaped like the case that exposed the defect; tests/fidelity.rs says what each must do.

// 1. A shuffle whose mask names lanes 0-15, executed by all 32 lanes: undefined for lanes 16-31, so
//    synccheck must report it.
extern "C" __global__ void partial_mask_shfl(float *out, const float *x) {
    float v = x[threadIdx.x];
    v = __shfl_sync(0x0000ffffu, v, 0);
    out[threadIdx.x] = v;
}

// 1b. The correct form: only lanes 0-15 execute the shuffle with the 0-15 mask.
extern "C" __global__ void half_warp_shfl(float *out, const float *x) {
    float v = x[threadIdx.x];
    if (threadIdx.x < 16) v = __shfl_sync(0x0000ffffu, v, 0);
    out[threadIdx.x] = v;
}

// 2. Every lane reads s[0]; a shuffle orders the warp; then lane 0 writes s[0]. Race free.
extern "C" __global__ void read_shfl_then_write(float *out, const float *x) {
    __shared__ float s[32];
    if (threadIdx.x == 0) s[0] = x[0];
    __syncthreads();
    float v = s[0];
    v += __shfl_sync(0xffffffffu, v, (threadIdx.x + 1) & 31);
    if (threadIdx.x == 0) s[0] = v;
    __syncthreads();
    out[threadIdx.x] = v + s[0];
}

// 2b. The same without the ordering shuffle: lane 0's write races with the other lanes' reads (WAR);
//     the report must name a thread other than the writer.
extern "C" __global__ void read_then_write_race(float *out, const float *x) {
    __shared__ float s[32];
    if (threadIdx.x == 0) s[0] = x[0];
    __syncthreads();
    float v = s[0];
    if (threadIdx.x == 0) s[0] = v + 1.0f;
    __syncthreads();
    out[threadIdx.x] = v + s[0];
}

// 2c. A RAW hazard between warps: thread 40 reads what thread 0 wrote without a barrier.
//     (volatile keeps nvcc from turning the one conditional read into a read by every thread).
extern "C" __global__ void cross_warp_raw(float *out, const float *x) {
    __shared__ float s[64];
    volatile float *vs = s;
    vs[threadIdx.x] = x[threadIdx.x];
    __syncthreads();
    if (threadIdx.x == 0) vs[1] = 7.0f;
    float v = 0.0f;
    if (threadIdx.x == 40) v = vs[1];
    __syncthreads();
    out[threadIdx.x] = v;
}

// 3. Cache-hint qualifiers with `::`, as nvcc emits them for prefetching copies and eviction hints.
extern "C" __global__ void cache_hints(float *out, const float *x) {
    __shared__ __align__(16) float s[128];
    unsigned dst = (unsigned)__cvta_generic_to_shared(&s[4 * threadIdx.x]);
    asm volatile("cp.async.cg.shared.global.L2::128B [%0], [%1], 16;\n" ::"r"(dst), "l"(x + 4 * threadIdx.x));
    asm volatile("cp.async.commit_group;\n" ::);
    asm volatile("cp.async.wait_group 0;\n" ::);
    __syncthreads();
    float a, b;
    asm volatile("ld.global.L1::evict_last.f32 %0, [%1];\n" : "=f"(a) : "l"(x + threadIdx.x));
    asm volatile("ld.global.L2::128B.f32 %0, [%1];\n" : "=f"(b) : "l"(x + 32 + threadIdx.x));
    out[threadIdx.x] = s[4 * threadIdx.x] + s[4 * threadIdx.x + 3] + a + b;
}

// 4. warpSize (compiles to the predefined identifier WARP_SZ).
extern "C" __global__ void warp_size(unsigned *out) {
    out[threadIdx.x] = warpSize * 1000u + threadIdx.x % warpSize;
}

// 6. A check fires (an out-of-bounds store by the last thread) in a kernel that also does real work:
//    --metrics must still be written.
extern "C" __global__ void oob_after_work(float *out, const float *x, int n) {
    float v = x[threadIdx.x % n] * 2.0f;
    out[threadIdx.x] = v;  // launched with one thread more than `out` holds
}

// 7. Shared traffic of cp.async (stores into shared) and ldmatrix (shared requests, bank conflicts).
//    One warp copies 32 rows of 16 bytes (512 bytes) with cp.async, then ldmatrix.x4 reads them back.
//    `pad` = 0: rows 16 bytes apart (conflict free: 8 rows of 16 bytes fill the 32 banks exactly);
//    `pad` = 1: rows 128 bytes apart (every row of a phase in the same 4 banks: 8-way conflicts).
extern "C" __global__ void cp_async_ldmatrix(unsigned *out, const unsigned *x, int pad) {
    __shared__ __align__(128) unsigned s[32 * 32];
    int lane = threadIdx.x;
    int row_words = pad ? 32 : 4;
    unsigned dst = (unsigned)__cvta_generic_to_shared(&s[lane * row_words]);
    asm volatile("cp.async.cg.shared.global [%0], [%1], 16;\n" ::"r"(dst), "l"(x + 4 * lane));
    asm volatile("cp.async.commit_group;\n" ::);
    asm volatile("cp.async.wait_all;\n" ::);
    __syncwarp();
    unsigned r0, r1, r2, r3;
    asm volatile("ldmatrix.sync.aligned.m8n8.x4.shared.b16 {%0,%1,%2,%3}, [%4];\n"
                 : "=r"(r0), "=r"(r1), "=r"(r2), "=r"(r3)
                 : "r"(dst));
    out[4 * lane + 0] = r0;
    out[4 * lane + 1] = r1;
    out[4 * lane + 2] = r2;
    out[4 * lane + 3] = r3;
}

// 5. One unsupported instruction (a video instruction) in one kernel and in a device function must
//    not reject the module: the other kernels load and run; launching these two is the error.
extern "C" __global__ void uses_video_instruction(int *out, const int *x) {
    int d;
    asm volatile("vadd.s32.s32.s32.sat %0, %1, %2, %3;\n" : "=r"(d) : "r"(x[0]), "r"(x[1]), "r"(x[2]));
    out[threadIdx.x] = d;
}

__device__ __noinline__ int video_helper(int a, int b) {
    int d;
    asm volatile("vabsdiff.s32.s32.s32 %0, %1, %2, %3;\n" : "=r"(d) : "r"(a), "r"(b), "r"(0));
    return d;
}

extern "C" __global__ void calls_video_helper(int *out, const int *x) {
    out[threadIdx.x] = video_helper(x[0], x[1]);
}

extern "C" __global__ void plain_copy(int *out, const int *x) { out[threadIdx.x] = x[threadIdx.x] + 1; }
