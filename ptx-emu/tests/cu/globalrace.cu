// Cross-block global-memory patterns for the globalrace check: each planted race has a clean
// counterpart. Launched with several blocks; tests/globalrace.rs says what each must report.

// Race: every block writes the same bytes (out[threadIdx.x]).
extern "C" __global__ void same_bytes_every_block(float *out, const float *x) {
    out[threadIdx.x] = x[blockIdx.x * blockDim.x + threadIdx.x];
}

// Clean: each block writes its own slice; 2-byte elements, so adjacent blocks share 4-byte words at
// odd block sizes but never bytes.
extern "C" __global__ void disjoint_slices(unsigned short *out, const unsigned short *x) {
    int i = blockIdx.x * blockDim.x + threadIdx.x;
    out[i] = x[i] + 1;
}

// Race: an in-place shift x[i] = x[i + 1]: the last thread of block b reads what block b + 1 writes.
extern "C" __global__ void in_place_shift(float *x, int n) {
    int i = blockIdx.x * blockDim.x + threadIdx.x;
    float v = i + 1 < n ? x[i + 1] : 0.0f;
    __syncthreads();
    if (i < n) x[i] = v;
}

// Clean: in place within each block (every block reads and writes only its own elements).
extern "C" __global__ void in_place_scale(float *x, int n) {
    int i = blockIdx.x * blockDim.x + threadIdx.x;
    if (i < n) x[i] = 2.0f * x[i];
}

// One warp's dot product over block b's K slice, summed by lane 0 (the other lanes return 0).
__device__ float split_k_partial(const float *a, const float *b, int k_per_block) {
    __shared__ float part[32];
    int k0 = blockIdx.x * k_per_block;
    float s = 0.0f;
    for (int k = threadIdx.x; k < k_per_block; k += 32) s += a[k0 + k] * b[k0 + k];
    part[threadIdx.x] = s;
    __syncwarp();
    float t = 0.0f;
    if (threadIdx.x == 0)
        for (int j = 0; j < 32; ++j) t += part[j];
    return t;
}

// Split-K, racy: each block stores its partial into the same output element.
extern "C" __global__ void split_k_store(float *c, const float *a, const float *b, int k_per_block) {
    float t = split_k_partial(a, b, k_per_block);
    if (threadIdx.x == 0) *c = t;
}

// Split-K, clean: the same with atomicAdd.
extern "C" __global__ void split_k_atomic(float *c, const float *a, const float *b, int k_per_block) {
    float t = split_k_partial(a, b, k_per_block);
    if (threadIdx.x == 0) atomicAdd(c, t);
}

// Clean two-kernel reduction: partials per block, then one block sums them in a second launch.
extern "C" __global__ void partial_sums(float *partial, const float *x) {
    __shared__ float s[64];
    s[threadIdx.x] = x[blockIdx.x * 64 + threadIdx.x];
    __syncthreads();
    for (int h = 32; h > 0; h >>= 1) {
        if (threadIdx.x < h) s[threadIdx.x] += s[threadIdx.x + h];
        __syncthreads();
    }
    if (threadIdx.x == 0) partial[blockIdx.x] = s[0];
}

extern "C" __global__ void sum_partials(float *out, const float *partial, int n) {
    if (threadIdx.x == 0) {
        float t = 0.0f;
        for (int i = 0; i < n; ++i) t += partial[i];
        *out = t;
    }
}

// Race: block 0 resets a counter with a plain store while the other blocks add to it atomically.
extern "C" __global__ void plain_store_vs_atomic(unsigned *counter) {
    if (threadIdx.x == 0) {
        if (blockIdx.x == 0) *counter = 0;
        else atomicAdd(counter, 1u);
    }
}

// Clean: a flag set atomically by block 0 and read with volatile (strong) loads by the others.
extern "C" __global__ void volatile_flag_reads(unsigned *flag, unsigned *seen) {
    if (threadIdx.x == 0) {
        if (blockIdx.x == 0) atomicExch(flag, 1u);
        else seen[blockIdx.x] = *(volatile unsigned *)flag;
    }
}
