// Histogram with shared and global atomics; atomicCAS float max; atomicInc ring counter; atomicExch.
__device__ float atomic_max_float(float* addr, float v) {
    int* a = reinterpret_cast<int*>(addr);
    int old = *a, assumed;
    do {
        assumed = old;
        if (__int_as_float(assumed) >= v) break;
        old = atomicCAS(a, assumed, __float_as_int(v));
    } while (old != assumed);
    return __int_as_float(old);
}
extern "C" __global__ void histogram(unsigned* hist, float* maxv, unsigned* ring, unsigned* last,
                                     const unsigned* data, const float* fdata, int n) {
    __shared__ unsigned local[16];
    if (threadIdx.x < 16) local[threadIdx.x] = 0;
    __syncthreads();
    for (int i = blockIdx.x * blockDim.x + threadIdx.x; i < n; i += gridDim.x * blockDim.x) {
        atomicAdd(&local[data[i] % 16], 1u);
        atomic_max_float(maxv, fdata[i]);
        atomicInc(ring, 9u);
    }
    __syncthreads();
    if (threadIdx.x < 16) atomicAdd(&hist[threadIdx.x], local[threadIdx.x]);
    if (threadIdx.x == 0) atomicExch(last, 12345u);
}
