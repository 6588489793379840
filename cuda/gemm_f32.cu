// f32 GEMM: rung v1 of the GEMM ladder, compiled from dev/gemm/v1_cuda_cores.cu (its header has the math,
// the thread mapping and the rounding; its figures are in dev/gemm/README.md). Entry point gemm_f32.
#include "../dev/gemm/v1_cuda_cores.cu"
