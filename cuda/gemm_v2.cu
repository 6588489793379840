// f16/bf16 GEMM for operands v3 cannot stage by 16-byte cp.async (a base or leading dimension not
// 16-byte aligned): rung v2 of the GEMM ladder, compiled from dev/gemm/v2_mma.cu. Entry points
// gemm_v2_f16, gemm_v2_bf16.
#include "../dev/gemm/v2_mma.cu"
