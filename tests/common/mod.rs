//! Test harness shared by the kernel tests: one test body, every backend.
//!
//! `backend_tests!(name, body)` makes `name::emu` (ptx-emu, all checks on) and `name::cuda` (the first
//! CUDA device; prints why it skips when there is none) from one generic `fn body<B: Backend>(&B)`.
#![allow(dead_code)]

/// Instantiates a generic test body for every backend.
#[macro_export]
macro_rules! backend_tests {
    ($name:ident, $body:path) => {
        mod $name {
            #[allow(unused_imports)]
            use super::*;

            #[test]
            fn emu() {
                let backend = llama_kernels::backend::EmuBackend::new();
                $body(&backend);
            }

            #[test]
            fn cuda() {
                match llama_kernels::backend::CudaBackend::open(0) {
                    Ok(backend) => $body(&backend),
                    Err(e) => eprintln!("skipping {}::cuda: {e}", stringify!($name)),
                }
            }
        }
    };
}
