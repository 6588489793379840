//! The seed every property test runs from, so that a run is reproducible.
//!
//! `LLAMA_KERNELS_TEST_SEED` chooses it:
//! - unset (the default, and what CI runs): [`DEFAULT_SEED`], the same cases on every run;
//! - a number (decimal, or hex with `0x`): that seed, to replay a printed failure or explore;
//! - `random`: a fresh seed, printed before the first case, to look for new failures.
//!
//! A failing case prints the seed and the one command that reproduces it. A case worth keeping is then
//! written out as an explicit regression test next to the property test, so it no longer depends on a seed.

use std::sync::OnceLock;

use proptest::test_runner::{Config, FailurePersistence, PersistedSeed, RngSeed};

/// The environment variable that chooses the seed.
pub const SEED_VAR: &str = "LLAMA_KERNELS_TEST_SEED";

/// The seed of every run that does not set [`SEED_VAR`].
pub const DEFAULT_SEED: u64 = 0x11a3_a5ee_d000_0001;

/// The seed of this run (read once per test binary).
pub fn run_seed() -> u64 {
    static SEED: OnceLock<u64> = OnceLock::new();
    *SEED.get_or_init(|| {
        let value = std::env::var(SEED_VAR).ok();
        match parse_seed(value.as_deref()) {
            Ok(seed) => {
                if value.as_deref() == Some("random") {
                    eprint_now(&format!("{SEED_VAR}=random drew seed {seed}"));
                }
                seed
            }
            Err(msg) => panic!("{msg}"),
        }
    })
}

/// `None` → [`DEFAULT_SEED`]; `"random"` → a fresh seed; a decimal or `0x` hex number → itself.
pub fn parse_seed(value: Option<&str>) -> Result<u64, String> {
    let Some(v) = value.map(str::trim) else {
        return Ok(DEFAULT_SEED);
    };
    if v == "random" {
        return Ok(rand::random());
    }
    let parsed = match v.strip_prefix("0x") {
        Some(hex) => u64::from_str_radix(hex, 16),
        None => v.parse(),
    };
    parsed.map_err(|_| format!("{SEED_VAR} must be a u64 (decimal or 0x hex) or `random`, got {v:?}"))
}

/// A proptest configuration of `cases` cases from [`run_seed`], with no persistence file (failures are
/// reported with their seed instead).
pub fn config(cases: u32) -> Config {
    Config {
        cases,
        rng_seed: RngSeed::Fixed(run_seed()),
        failure_persistence: Some(Box::new(ReportSeed)),
        ..Config::default()
    }
}

/// The current test's name, as libtest names its thread (`module::test`).
fn test_name() -> String {
    match std::thread::current().name() {
        Some(name) if name != "main" => name.to_string(),
        _ => "<test name>".to_string(),
    }
}

/// The test target this binary was built from (`ops_gemm` from `target/debug/deps/ops_gemm-<hash>`).
fn test_target() -> String {
    let exe = std::env::current_exe().ok();
    let stem = exe
        .as_deref()
        .and_then(|p| p.file_stem())
        .and_then(|s| s.to_str())
        .unwrap_or("<target>");
    match stem.rsplit_once('-') {
        Some((target, hash)) if hash.chars().all(|c| c.is_ascii_hexdigit()) => target.to_string(),
        _ => stem.to_string(),
    }
}

/// The seed of this run and the command that replays the current test from it.
pub fn reproduce_hint() -> String {
    format!(
        "seed {seed}; reproduce with: {SEED_VAR}={seed} cargo test -p llama-kernels --test {} -- {} --exact",
        test_target(),
        test_name(),
        seed = run_seed(),
    )
}

/// Writes a line to stderr at once (libtest captures the print macros; a failing test shows them, but a
/// `random` seed must be visible on passing runs too).
fn eprint_now(line: &str) {
    use std::io::Write as _;
    let _ = writeln!(std::io::stderr(), "{line}");
}

/// Proptest's failure hook: instead of persisting the failing case to a file, print the run's seed and
/// the command that reproduces it (the `proptest!` macro's panic message does not carry the seed).
#[derive(Clone, Debug, PartialEq)]
struct ReportSeed;

impl FailurePersistence for ReportSeed {
    fn load_persisted_failures2(&self, _source_file: Option<&'static str>) -> Vec<PersistedSeed> {
        Vec::new()
    }

    fn save_persisted_failure2(
        &mut self,
        _source_file: Option<&'static str>,
        _seed: PersistedSeed,
        _shrunken_value: &dyn std::fmt::Debug,
    ) {
        eprint_now(&format!("property test failed: {}", reproduce_hint()));
    }

    fn box_clone(&self) -> Box<dyn FailurePersistence> {
        Box::new(self.clone())
    }

    fn eq(&self, other: &dyn FailurePersistence) -> bool {
        other.as_any().downcast_ref::<ReportSeed>().is_some()
    }

    fn as_any(&self) -> &dyn std::any::Any {
        self
    }
}
