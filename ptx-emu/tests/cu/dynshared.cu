// Dynamic shared memory: each block reverses its slice through extern __shared__ (size from the launch).
extern "C" __global__ void reverse_block(float* out, const float* in, int n) {
    extern __shared__ float buf[];
    int base = blockIdx.x * blockDim.x;
    int t = threadIdx.x;
    if (base + t < n) buf[t] = in[base + t];
    __syncthreads();
    int src = blockDim.x - 1 - t;
    if (base + src < n && base + t < n) out[base + t] = buf[src];
}
// Two dynamic arrays carved from one extern buffer; 2-D block.
extern "C" __global__ void transpose_tile(float* out, const float* in, int w) {
    extern __shared__ float tile[];  // (blockDim.y, blockDim.x + 1)
    int x = blockIdx.x * blockDim.x + threadIdx.x, y = blockIdx.y * blockDim.y + threadIdx.y;
    int pitch = blockDim.x + 1;
    tile[threadIdx.y * pitch + threadIdx.x] = in[y * w + x];
    __syncthreads();
    int tx = blockIdx.y * blockDim.y + threadIdx.x, ty = blockIdx.x * blockDim.x + threadIdx.y;
    out[ty * w + tx] = tile[threadIdx.x * pitch + threadIdx.y];
}
