//! The reproducer corpus (`tests/corpus/*.ptx`): one small module per defect the fuzz campaign found
//! (negative offsets, loops that escaped the watchdog, absurd sizes, unbounded growth). Each file's
//! first lines say the expected outcome (`// expect: KIND`) and the CLI arguments (`// cli: ...`);
//! every file runs through the library (the fuzz harness's launcher, inside `catch_unwind`) and the
//! CLI, and must end quickly with that outcome, never a panic.

use std::path::PathBuf;
use std::time::{Duration, Instant};

use ptx_emu::fuzz::{self, Config, Outcome};

fn corpus() -> Vec<(String, String)> {
    let dir = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("tests/corpus");
    let mut files: Vec<PathBuf> = std::fs::read_dir(&dir)
        .unwrap()
        .map(|e| e.unwrap().path())
        .filter(|p| p.extension().is_some_and(|e| e == "ptx"))
        .collect();
    files.sort();
    assert!(
        files.len() >= 12,
        "corpus at {} has {} files",
        dir.display(),
        files.len()
    );
    files
        .into_iter()
        .map(|p| {
            let name = p.file_name().unwrap().to_string_lossy().into_owned();
            (name, std::fs::read_to_string(&p).unwrap())
        })
        .collect()
}

fn header<'a>(text: &'a str, key: &str) -> &'a str {
    text.lines()
        .find_map(|l| l.strip_prefix(&format!("// {key}: ")))
        .unwrap_or_else(|| panic!("no `// {key}:` line"))
        .trim()
}

/// The limits the corpus runs under (the CLI gets the same ones).
fn config() -> Config {
    Config {
        max_instructions: 200_000,
        memory_limit: 64 << 20,
        ..Config::default()
    }
}

fn kind_name(o: Outcome) -> String {
    match o {
        Outcome::Parse => "parse".into(),
        Outcome::Unsupported => "unsupported".into(),
        Outcome::Usage => "usage".into(),
        Outcome::OutOfMemory => "oom".into(),
        Outcome::Check(k) => k.to_string(),
        Outcome::Budget => "budget".into(),
        Outcome::Clean => "clean".into(),
    }
}

#[test]
fn corpus_through_the_library() {
    for (name, text) in corpus() {
        let want = header(&text, "expect");
        let t = Instant::now();
        let got = std::panic::catch_unwind(|| fuzz::run_mutant(&text, &config(), 0))
            .unwrap_or_else(|_| panic!("{name}: panicked"));
        assert!(t.elapsed() < Duration::from_secs(10), "{name}: took {:?}", t.elapsed());
        let names: Vec<String> = got.into_iter().map(kind_name).collect();
        assert!(
            names.iter().any(|n| n == want),
            "{name}: expected {want}, got {names:?}"
        );
    }
}

#[test]
fn corpus_through_the_cli() {
    let dir = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("tests/corpus");
    for (name, text) in corpus() {
        let want = header(&text, "expect");
        let args: Vec<&str> = header(&text, "cli").split_whitespace().collect();
        let t = Instant::now();
        let out = std::process::Command::new(env!("CARGO_BIN_EXE_ptx-emu"))
            .arg("run")
            .arg(dir.join(&name))
            .args(&args)
            .args(["--max-instructions", "200000", "--memory-limit", "67108864"])
            .output()
            .unwrap();
        assert!(t.elapsed() < Duration::from_secs(10), "{name}: took {:?}", t.elapsed());
        let err = String::from_utf8_lossy(&out.stderr);
        let (code, needle) = match want {
            "clean" => (0, ""),
            "budget" => (1, "instruction budget"),
            "oom" => (2, "out of device memory"),
            "unsupported" => (2, "unsupported PTX"),
            "parse" => (2, "parse error"),
            "usage" => (2, "usage error"),
            check => (1, check),
        };
        assert_eq!(out.status.code(), Some(code), "{name}: {err}");
        assert!(err.contains(needle), "{name}: expected `{needle}` in {err}");
        assert!(!err.contains("panicked"), "{name}: {err}");
    }
}
