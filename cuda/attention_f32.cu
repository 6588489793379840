// f32 attention: rung v1 of the attention ladder, compiled from dev/attention/v1_cuda_cores.cu (its
// header has the math, the thread mapping and why f32 keeps v1; its figures are in
// dev/attention/README.md). Entry points attention_f32_d64, attention_f32_d128, attention_f32_d256.
#include "../dev/attention/v1_cuda_cores.cu"
