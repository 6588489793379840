//! Fuzzes ptx-emu with mutants of the given PTX files (see `ptx_emu::fuzz`).
//!
//! `cargo run --release -p ptx-emu --example fuzz_ptx -- [--seed N] [--iterations N] [--seconds S]
//!  [--mutant-seconds S] [--mutations N] [--save-dir DIR] FILE.ptx...`
//!
//! Prints the outcome counts; exits 1 if any mutant panicked or ran over time (each written to
//! `--save-dir` as `<kind>-<seed name>-<iteration>.ptx`, with the message in a leading comment),
//! 0 otherwise, 2 on a usage error.

use ptx_emu::fuzz::{self, Config};

fn main() {
    std::process::exit(match run() {
        Ok(code) => code,
        Err(msg) => {
            eprintln!("fuzz_ptx: {msg}\nusage: fuzz_ptx [--seed N] [--iterations N] [--seconds S] [--mutant-seconds S] [--mutations N] [--save-dir DIR] FILE.ptx...");
            2
        }
    });
}

fn run() -> Result<i32, String> {
    let mut config = Config {
        iterations: u64::MAX,
        max_seconds: 60.0,
        ..Config::default()
    };
    let mut save_dir = None;
    let mut files = vec![];
    let mut args = std::env::args().skip(1);
    while let Some(a) = args.next() {
        let mut val = || args.next().ok_or(format!("{a} needs a value"));
        match a.as_str() {
            "--seed" => config.seed = val()?.parse().map_err(|e| format!("bad --seed: {e}"))?,
            "--iterations" => config.iterations = val()?.parse().map_err(|e| format!("bad --iterations: {e}"))?,
            "--seconds" => config.max_seconds = val()?.parse().map_err(|e| format!("bad --seconds: {e}"))?,
            "--mutant-seconds" => {
                config.mutant_seconds = val()?.parse().map_err(|e| format!("bad --mutant-seconds: {e}"))?
            }
            "--mutations" => config.max_mutations = val()?.parse().map_err(|e| format!("bad --mutations: {e}"))?,
            "--save-dir" => save_dir = Some(std::path::PathBuf::from(val()?)),
            f if !f.starts_with('-') => files.push(f.to_string()),
            f => return Err(format!("unknown option `{f}`")),
        }
    }
    if files.is_empty() {
        return Err("no PTX files given".into());
    }
    let texts: Vec<(String, String)> = files
        .iter()
        .map(|f| {
            let name = std::path::Path::new(f)
                .file_stem()
                .map_or_else(|| f.clone(), |s| s.to_string_lossy().into_owned());
            std::fs::read_to_string(f)
                .map(|t| (name, t))
                .map_err(|e| format!("cannot read {f}: {e}"))
        })
        .collect::<Result<_, _>>()?;
    let seeds: Vec<(&str, &str)> = texts.iter().map(|(n, t)| (n.as_str(), t.as_str())).collect();
    // Panics are caught and reported below; keep the default hook's output off the terminal.
    std::panic::set_hook(Box::new(|_| {}));
    let report = fuzz::run(&seeds, &config);
    println!("{}", report.summary());
    for f in &report.findings {
        println!(
            "{} in a mutant of {} (iteration {}): {}",
            f.kind, f.seed_name, f.iteration, f.message
        );
        if let Some(dir) = &save_dir {
            std::fs::create_dir_all(dir).map_err(|e| format!("cannot create {}: {e}", dir.display()))?;
            let path = dir.join(format!("{}-{}-{}.ptx", f.kind, f.seed_name, f.iteration));
            let text = format!(
                "// ptx-emu fuzz finding: {}: {}\n{}",
                f.kind,
                f.message.replace('\n', " "),
                f.ptx
            );
            std::fs::write(&path, text).map_err(|e| format!("cannot write {}: {e}", path.display()))?;
            println!("  saved {}", path.display());
        }
    }
    Ok(if report.findings.is_empty() { 0 } else { 1 })
}
