//! A bounded fuzz run that stays in the suite: a thousand deterministic mutants of the test PTX
//! (the reproducer corpus, a feature-rich hand-written module, and the nvcc-compiled kernels of
//! `tests/cu` when nvcc is there) must give no panic and no hang.

mod common;
use std::path::PathBuf;

use ptx_emu::fuzz::{self, mutate, Config, SplitMix64};

fn seeds() -> Vec<(String, String)> {
    let dir = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("tests/corpus");
    let mut v: Vec<(String, String)> = std::fs::read_dir(&dir)
        .unwrap()
        .map(|e| e.unwrap().path())
        .filter(|p| p.extension().is_some_and(|e| e == "ptx"))
        .map(|p| {
            (
                p.file_stem().unwrap().to_string_lossy().into_owned(),
                std::fs::read_to_string(&p).unwrap(),
            )
        })
        .collect();
    v.sort();
    for cu in ["atomics.cu", "barriers.cu", "dynshared.cu", "shuffles.cu", "reduce.cu"] {
        if let Some(ptx) = common::compile_cu(cu) {
            v.push((cu.to_string(), ptx));
        }
    }
    v
}

#[test]
fn mutator_is_deterministic_and_mutates() {
    let text = std::fs::read_to_string(PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("tests/corpus/memory_loop.ptx"))
        .unwrap();
    let run = |seed| {
        let mut rng = SplitMix64(seed);
        (0..50).map(|_| mutate(&text, &mut rng, 3)).collect::<Vec<_>>()
    };
    assert_eq!(run(7), run(7));
    assert_ne!(run(7), run(8));
    assert!(run(7).iter().filter(|m| **m != text).count() > 40);
}

#[test]
fn fuzz_run_finds_no_panic_and_no_hang() {
    let seeds = seeds();
    let refs: Vec<(&str, &str)> = seeds.iter().map(|(n, t)| (n.as_str(), t.as_str())).collect();
    let config = Config {
        seed: 20240611,
        iterations: 1000,
        max_seconds: 60.0,
        mutant_seconds: 10.0,
        max_instructions: 20_000,
        memory_limit: 16 << 20,
        max_mutations: 3,
    };
    let report = fuzz::run(&refs, &config);
    eprintln!("{}", report.summary());
    assert_eq!(report.mutants, 1000, "{}", report.summary());
    for f in &report.findings {
        eprintln!(
            "{} in a mutant of {} (iteration {}): {}\n{}",
            f.kind, f.seed_name, f.iteration, f.message, f.ptx
        );
    }
    assert!(report.findings.is_empty(), "{}", report.summary());
    // the mutants exercise every path: errors, reports, budget stops and clean runs
    assert!(
        report.parse_errors > 0 && report.check_reports > 0 && report.clean_runs > 0,
        "{}",
        report.summary()
    );
}
