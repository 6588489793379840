// Warp-level primitives: inclusive scan with shfl.up, segmented broadcast, ballot/any/all, match, redux.
#define FULL 0xffffffffu
extern "C" __global__ void warp_ops(unsigned* out, const unsigned* in) {
    int lane = threadIdx.x % 32;
    unsigned v = in[threadIdx.x];
    unsigned scan = v;
    for (int o = 1; o < 32; o *= 2) {
        unsigned t = __shfl_up_sync(FULL, scan, o);
        if (lane >= o) scan += t;
    }
    unsigned* o = out + threadIdx.x * 8;
    o[0] = scan;
    o[1] = __shfl_sync(FULL, v, 3, 8);           // lane 3 of each group of 8
    o[2] = __shfl_down_sync(FULL, v, 5);
    o[3] = __ballot_sync(FULL, v & 1);
    o[4] = __any_sync(FULL, v == 7) | (__all_sync(FULL, v < 1000) << 1);
    o[5] = __match_any_sync(FULL, v % 4);
    o[6] = __reduce_add_sync(FULL, v) ^ __reduce_max_sync(FULL, v);
    // divergent: only odd lanes take part, with their own mask
    unsigned odd = 0xaaaaaaaau;
    o[7] = (lane & 1) ? __reduce_add_sync(odd, v) : 0u;
}
