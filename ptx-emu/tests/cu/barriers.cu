// Named barriers with thread counts: warp 0 produces into shared memory and arrives; warp 1 waits
// (bar.sync 1, 64) and consumes; warps 2-3 synchronise among themselves on barrier 2.
extern "C" __global__ void producer_consumer(float* out, const float* in) {
    __shared__ float stage[32];
    __shared__ float other[64];
    int warp = threadIdx.x / 32, lane = threadIdx.x % 32;
    if (warp == 0) {
        stage[lane] = in[lane] * 2.0f;
        asm volatile("bar.arrive 1, 64;" ::: "memory");
    } else if (warp == 1) {
        asm volatile("bar.sync 1, 64;" ::: "memory");
        out[lane] = stage[31 - lane] + 1.0f;
    } else {
        other[threadIdx.x - 64] = (float)threadIdx.x;
        asm volatile("bar.sync 2, 64;" ::: "memory");
        out[threadIdx.x - 32] = other[127 - threadIdx.x];
    }
}
