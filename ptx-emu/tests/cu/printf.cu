// Device printf (vprintf) and assert (__assertfail), provided by the emulator.
#include <cstdio>
#include <cassert>
extern "C" __global__ void pf(const float* x, int n) {
  int i = threadIdx.x;
  if (i < 2) printf("thread %d x=%f n=%d %s %c %5.2e %llx\n", i, x[i], n, "str", 'c', (double)x[i], 0x123456789abcULL);
  assert(i < n);
}
