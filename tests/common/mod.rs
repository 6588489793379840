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
                    // Straight to stderr, not eprintln!: libtest captures the print macros of passing
                    // tests, and the skip reason must show in `cargo test` output.
                    Err(e) => {
                        use std::io::Write as _;
                        let _ = writeln!(std::io::stderr(), "skipping {}::cuda: {e}", stringify!($name));
                    }
                }
            }
        }
    };
}

pub mod gemm;
pub mod seed;

/// Runs `check` on `cases` values drawn from `strategy`, from the run's seed ([`seed::config`]), with
/// shrinking; a failing case panics with the minimal input, the seed and the command that reproduces it.
pub fn run_cases<S: proptest::strategy::Strategy>(
    cases: u32,
    strategy: S,
    check: impl Fn(S::Value) -> Result<(), String>,
) {
    let mut runner = proptest::test_runner::TestRunner::new(seed::config(cases));
    if let Err(e) = runner.run(&strategy, |v| {
        check(v).map_err(proptest::test_runner::TestCaseError::fail)
    }) {
        panic!("{e}\n{}", seed::reproduce_hint());
    }
}
