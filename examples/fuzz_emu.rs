//! Bounded fuzzing of ptx-emu with mutants of this crate's own PTX (every `cuda/*.cu` as nvcc compiled
//! it, `llama_kernels::raw::MODULE_IMAGES`), through `ptx_emu::fuzz` (see ptx-emu/README.md): each mutant
//! is parsed, lowered and launched with a small instruction budget and memory cap; a panic or a mutant
//! that runs over time is a finding. The same `--seed` and `--iterations` give the same mutants.
//!
//! `cargo run --example fuzz_emu -- [--seed N] [--iterations N] [--seconds S]` (exit 1 on a finding,
//! printing it; 2 on bad flags).

use ptx_emu::fuzz::{self, Config};

fn main() {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let mut config = Config {
        seed: 0x0065_6d75,
        iterations: 400,
        max_seconds: 60.0,
        ..Config::default()
    };
    let mut it = args.iter();
    while let Some(flag) = it.next() {
        let value = it.next().and_then(|v| v.parse::<u64>().ok());
        match (flag.as_str(), value) {
            ("--seed", Some(v)) => config.seed = v,
            ("--iterations", Some(v)) => config.iterations = v,
            ("--seconds", Some(v)) => config.max_seconds = v as f64,
            _ => {
                eprintln!("usage: fuzz_emu [--seed N] [--iterations N] [--seconds S]");
                std::process::exit(2);
            }
        }
    }
    let seeds: Vec<(&str, &str)> = llama_kernels::raw::MODULE_IMAGES
        .iter()
        .map(|m| (m.name, m.ptx))
        .collect();
    // Panics are caught and reported as findings; keep the default hook's output off the terminal.
    std::panic::set_hook(Box::new(|_| {}));
    let report = fuzz::run(&seeds, &config);
    println!("fuzz_emu (seed {}): {}", config.seed, report.summary());
    if report.mutants < config.iterations {
        println!(
            "fuzz_emu: time cap of {} s reached after {} mutants",
            config.max_seconds, report.mutants
        );
    }
    for f in &report.findings {
        println!(
            "{} in a mutant of {} (iteration {}): {}\n{}",
            f.kind, f.seed_name, f.iteration, f.message, f.ptx
        );
    }
    if !report.findings.is_empty() {
        std::process::exit(1);
    }
}
