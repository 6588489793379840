//! A bounded, deterministic fuzz harness: mutates PTX text the ways that find emulator bugs (tokens
//! replaced, inserted or deleted; integer immediates set to boundary values; types changed; lines
//! duplicated, deleted or swapped; registers swapped; array sizes and branch targets changed), then
//! parses, loads and launches each mutant under small limits (instruction budget, memory cap, tiny
//! grids, parameters pointing at small poisoned buffers) inside `catch_unwind`. A panic, or a mutant
//! that runs longer than its time limit, is a finding with the mutant's text, to be saved as a
//! reproducer. No dependencies: the PRNG is splitmix64.

use std::panic::{catch_unwind, AssertUnwindSafe};
use std::sync::mpsc;
use std::time::{Duration, Instant};

use crate::{CheckKind, Device, EmuError, LaunchConfig, Options};

/// splitmix64: a tiny, fast, well-mixed PRNG; the same seed gives the same sequence.
#[derive(Clone, Debug)]
pub struct SplitMix64(pub u64);

impl SplitMix64 {
    pub fn next_u64(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(0x9e37_79b9_7f4a_7c15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
        z ^ (z >> 31)
    }

    /// A value in `0..n` (0 when `n` is 0).
    pub fn below(&mut self, n: usize) -> usize {
        if n == 0 {
            0
        } else {
            (self.next_u64() % n as u64) as usize
        }
    }

    fn pick<'a, T>(&mut self, v: &'a [T]) -> Option<&'a T> {
        v.get(self.below(v.len()))
    }
}

/// Limits of a fuzz run and of each mutant.
#[derive(Clone, Debug)]
pub struct Config {
    /// Seed of the mutator (the run is deterministic for a seed, the seeds and the iterations).
    pub seed: u64,
    /// Mutants to generate and run.
    pub iterations: u64,
    /// Wall-time cap of the whole run: no new mutant starts after it.
    pub max_seconds: f64,
    /// A mutant (all its launches) that runs longer is an over-time finding (a hang).
    pub mutant_seconds: f64,
    /// `Options::max_instructions` of each launch.
    pub max_instructions: u64,
    /// `Options::memory_limit` of each mutant's device.
    pub memory_limit: u64,
    /// Mutations applied to each mutant: 1 to this many.
    pub max_mutations: u32,
}

impl Default for Config {
    fn default() -> Self {
        Config {
            seed: 1,
            iterations: 1000,
            max_seconds: 60.0,
            mutant_seconds: 10.0,
            max_instructions: 200_000,
            memory_limit: 64 << 20,
            max_mutations: 3,
        }
    }
}

/// What one load or launch of a mutant ended in.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum Outcome {
    Parse,
    Unsupported,
    /// A usage error (launch limits, parameter sizes, no kernel, bad address).
    Usage,
    OutOfMemory,
    /// Check reports; the kind of the first one.
    Check(CheckKind),
    /// The instruction budget stopped the launch.
    Budget,
    Clean,
}

impl Outcome {
    pub fn of<T>(r: &Result<T, EmuError>) -> Outcome {
        match r {
            Ok(_) => Outcome::Clean,
            Err(EmuError::Parse { .. }) => Outcome::Parse,
            Err(EmuError::Unsupported { .. }) => Outcome::Unsupported,
            Err(EmuError::Usage(_) | EmuError::NoKernel(_) | EmuError::BadAddress { .. }) => Outcome::Usage,
            Err(EmuError::OutOfMemory { .. }) => Outcome::OutOfMemory,
            Err(EmuError::Check { reports, .. }) => Outcome::Check(reports.first().map_or(CheckKind::Trap, |r| r.kind)),
            Err(EmuError::Budget { .. }) => Outcome::Budget,
        }
    }
}

/// A panic or an over-time mutant.
#[derive(Clone, Debug)]
pub struct Finding {
    /// "panic" or "over-time".
    pub kind: &'static str,
    /// Name of the seed the mutant came from, and its iteration.
    pub seed_name: String,
    pub iteration: u64,
    /// The panic message, or how long it ran.
    pub message: String,
    /// The mutant's PTX text (a reproducer).
    pub ptx: String,
}

/// Counts of a fuzz run: mutants that did not load by error kind, launches by outcome, and findings.
#[derive(Clone, Debug, Default)]
pub struct Report {
    pub mutants: u64,
    pub parse_errors: u64,
    pub unsupported: u64,
    pub usage_errors: u64,
    pub out_of_memory: u64,
    pub check_reports: u64,
    pub budget_stops: u64,
    pub clean_runs: u64,
    pub findings: Vec<Finding>,
    pub seconds: f64,
}

impl Report {
    fn count(&mut self, o: Outcome) {
        match o {
            Outcome::Parse => self.parse_errors += 1,
            Outcome::Unsupported => self.unsupported += 1,
            Outcome::Usage => self.usage_errors += 1,
            Outcome::OutOfMemory => self.out_of_memory += 1,
            Outcome::Check(_) => self.check_reports += 1,
            Outcome::Budget => self.budget_stops += 1,
            Outcome::Clean => self.clean_runs += 1,
        }
    }

    /// One line of counts.
    pub fn summary(&self) -> String {
        format!(
            "{} mutants in {:.1} s: {} parse, {} unsupported, {} usage, {} out-of-memory errors; launches: {} \
             with check reports, {} budget stops, {} clean; {} findings (panics / over-time)",
            self.mutants,
            self.seconds,
            self.parse_errors,
            self.unsupported,
            self.usage_errors,
            self.out_of_memory,
            self.check_reports,
            self.budget_stops,
            self.clean_runs,
            self.findings.len()
        )
    }
}

/// Parses, loads and launches every `.entry` of `ptx` under `config`'s limits: a tiny grid and
/// block, dynamic shared memory now and then, parameters pointing at small buffers (poisoned,
/// zeroed, written), and one launch in four under the speed-of-light model. Returns the outcome of the load, or of each launch. May panic (that is the bug
/// the harness looks for): call it inside `catch_unwind`.
pub fn run_mutant(ptx: &str, config: &Config, seed: u64) -> Vec<Outcome> {
    let mut rng = SplitMix64(seed);
    let dev = Device::new(Options {
        max_instructions: config.max_instructions,
        memory_limit: config.memory_limit,
        printf_stdout: false,
        schedule_seed: (rng.below(4) == 0).then(|| rng.next_u64()),
        ..Options::default()
    });
    let module = match dev.load_module(ptx) {
        Ok(m) => m,
        Err(e) => return vec![Outcome::of::<()>(&Err(e))],
    };
    let mut bufs = vec![];
    for i in 0..4 {
        let n = 4096;
        let b = match i {
            0 | 1 => dev.alloc(n),
            2 => dev.alloc_zeroed(n),
            _ => dev.alloc(n).and_then(|a| {
                let data: Vec<u8> = (0..n).map(|_| rng.next_u64() as u8).collect();
                dev.write(a, &data).map(|_| a)
            }),
        };
        match b {
            Ok(a) => bufs.push(a),
            Err(e) => return vec![Outcome::of::<()>(&Err(e))],
        }
    }
    let mut out = vec![];
    for name in module.kernel_names() {
        let Some((slots, total)) = module.kernel_params(&name) else {
            continue;
        };
        let mut params = vec![0u8; total as usize];
        for &(off, size, _) in &slots {
            let (off, size) = (off as usize, size as usize);
            for w in (off..off + size).step_by(8) {
                let v = match size {
                    1 | 2 | 4 => *rng.pick(&[1u64, 16, 32, 64, 255]).unwrap_or(&1),
                    _ => bufs[rng.below(bufs.len())] + 4 * rng.below(8) as u64,
                };
                let n = (off + size - w).min(8);
                params[w..w + n].copy_from_slice(&v.to_le_bytes()[..n]);
            }
        }
        let block = *rng
            .pick(&[[32, 1, 1], [64, 1, 1], [16, 2, 1], [1, 1, 1], [96, 1, 1]])
            .unwrap_or(&[32, 1, 1]);
        let grid = *rng.pick(&[[1, 1, 1], [2, 1, 1], [1, 2, 1]]).unwrap_or(&[1, 1, 1]);
        let cfg = LaunchConfig {
            grid,
            block,
            shared_bytes: *rng.pick(&[0, 0, 256, 4096]).unwrap_or(&0),
        };
        // One launch in four also runs the speed-of-light model (a random GPU, register count and
        // sample), so the model's trace, cache simulation and probe see mutants too.
        let r = if rng.below(4) == 0 {
            let archs = crate::model::arch::all();
            let model = crate::ModelOptions {
                arch: archs[rng.below(archs.len())].clone(),
                regs_per_thread: 1 + rng.below(255) as u32,
                sample_blocks: *rng.pick(&[None, Some(1), Some(0)]).unwrap_or(&None),
            };
            dev.launch_with_model(&module, &name, &cfg, &params, &model)
        } else {
            dev.launch(&module, &name, &cfg, &params)
        };
        out.push(Outcome::of(&r));
    }
    if out.is_empty() {
        out.push(Outcome::Clean);
    }
    out
}

const BOUNDARY: [&str; 16] = [
    "0",
    "-1",
    "-8",
    "1",
    "-4",
    "2147483647",
    "2147483648",
    "-2147483648",
    "4294967295",
    "4294967296",
    "9223372036854775807",
    "18446744073709551615",
    "65535",
    "1024",
    "1025",
    "0xFFFFFFFFFFFFFFF8",
];
const TYPES: [&str; 16] = [
    ".u32", ".s32", ".b32", ".u64", ".s64", ".b64", ".f32", ".f64", ".u8", ".s8", ".b16", ".f16", ".pred", ".v2",
    ".v4", ".b128",
];
const SIZES: [&str; 8] = [
    "0",
    "1",
    "3",
    "65536",
    "1048576",
    "4294967296",
    "1099511627776",
    "232449",
];

fn is_word(c: u8) -> bool {
    c.is_ascii_alphanumeric() || matches!(c, b'_' | b'.' | b'%' | b'$')
}

/// Byte ranges of the words of `s` (runs of name characters), with a leading `-` on numbers.
fn words(s: &str) -> Vec<(usize, usize)> {
    let b = s.as_bytes();
    let mut out = vec![];
    let mut i = 0;
    while i < b.len() {
        if is_word(b[i]) {
            let start = if i > 0 && b[i - 1] == b'-' && b[i].is_ascii_digit() {
                i - 1
            } else {
                i
            };
            while i < b.len() && is_word(b[i]) {
                i += 1;
            }
            out.push((start, i));
        } else {
            i += 1;
        }
    }
    out
}

fn replace(s: &str, (a, b): (usize, usize), with: &str) -> String {
    format!("{}{with}{}", &s[..a], &s[b..])
}

/// Applies one random mutation to `text`.
pub fn mutate_once(text: &str, rng: &mut SplitMix64) -> String {
    let ws = words(text);
    let word = |r: (usize, usize)| &text[r.0..r.1];
    let of = |pred: &dyn Fn(&str) -> bool| ws.iter().copied().filter(|&r| pred(word(r))).collect::<Vec<_>>();
    let pick_from = |rng: &mut SplitMix64, v: &[(usize, usize)]| v.get(rng.below(v.len())).copied();
    let lines: Vec<&str> = text.lines().collect();
    match rng.below(11) {
        0 => {
            // replace a word with another word of the text
            match (pick_from(rng, &ws), pick_from(rng, &ws)) {
                (Some(a), Some(b)) => replace(text, a, word(b)),
                _ => text.to_string(),
            }
        }
        1 => match (pick_from(rng, &ws), pick_from(rng, &ws)) {
            (Some(a), Some(b)) => replace(text, (a.0, a.0), &format!("{} ", word(b))),
            _ => text.to_string(),
        },
        2 => match pick_from(rng, &ws) {
            Some(a) => replace(text, a, ""),
            None => text.to_string(),
        },
        3 | 4 => {
            let ints = of(&|w| w.trim_start_matches('-').bytes().all(|c| c.is_ascii_digit()) && !w.is_empty());
            match pick_from(rng, &ints) {
                Some(a) => replace(text, a, BOUNDARY[rng.below(BOUNDARY.len())]),
                None => text.to_string(),
            }
        }
        5 => {
            let tys = of(&|w| TYPES.contains(&w));
            match pick_from(rng, &tys) {
                Some(a) => replace(text, a, TYPES[rng.below(TYPES.len())]),
                None => text.to_string(),
            }
        }
        6 => {
            // duplicate, delete or swap lines
            let mut v = lines.clone();
            if v.is_empty() {
                return text.to_string();
            }
            let (i, j) = (rng.below(v.len()), rng.below(v.len()));
            match rng.below(3) {
                0 => v.insert(i, lines[j]),
                1 => {
                    v.remove(i);
                }
                _ => v.swap(i, j),
            }
            v.join("\n")
        }
        7 => {
            let regs = of(&|w| w.starts_with('%') && w.len() > 1);
            match (pick_from(rng, &regs), pick_from(rng, &regs)) {
                (Some(a), Some(b)) => replace(text, a, word(b)),
                _ => text.to_string(),
            }
        }
        8 => {
            // an array size in a declaration: `name[N]`
            let sizes: Vec<(usize, usize)> = ws
                .iter()
                .copied()
                .filter(|&(a, b)| a > 0 && text.as_bytes()[a - 1] == b'[' && text.as_bytes().get(b) == Some(&b']'))
                .filter(|&r| word(r).bytes().all(|c| c.is_ascii_digit()))
                .collect();
            match pick_from(rng, &sizes) {
                Some(a) => replace(text, a, SIZES[rng.below(SIZES.len())]),
                None => text.to_string(),
            }
        }
        9 => {
            let labels = of(&|w| w.starts_with('$'));
            match (pick_from(rng, &labels), pick_from(rng, &labels)) {
                (Some(a), Some(b)) => replace(text, a, word(b)),
                _ => text.to_string(),
            }
        }
        _ => {
            // a memory operand's offset: [x] -> [x+-8] and friends
            let at: Vec<usize> = text.match_indices(']').map(|(i, _)| i).collect();
            match rng.pick(&at) {
                Some(&i) => {
                    let off = ["+-8", "+-4", "+-1", "+4096", "+2147483647", "+-2147483648"][rng.below(6)];
                    format!("{}{off}{}", &text[..i], &text[i..])
                }
                None => text.to_string(),
            }
        }
    }
}

/// Applies 1 to `max` random mutations.
pub fn mutate(text: &str, rng: &mut SplitMix64, max: u32) -> String {
    let n = 1 + rng.below(max.max(1) as usize);
    (0..n).fold(text.to_string(), |t, _| mutate_once(&t, rng))
}

type Job = (String, u64);
type Done = std::thread::Result<Vec<Outcome>>;

/// A thread that runs mutants, so that the caller can give up on one that hangs.
fn spawn_runner(config: &Config) -> (mpsc::Sender<Job>, mpsc::Receiver<Done>) {
    let (job_tx, job_rx) = mpsc::channel::<Job>();
    let (done_tx, done_rx) = mpsc::channel::<Done>();
    let config = config.clone();
    std::thread::spawn(move || {
        for (ptx, seed) in job_rx {
            let r = catch_unwind(AssertUnwindSafe(|| run_mutant(&ptx, &config, seed)));
            if done_tx.send(r).is_err() {
                break;
            }
        }
    });
    (job_tx, done_rx)
}

fn panic_message(e: &(dyn std::any::Any + Send)) -> String {
    e.downcast_ref::<&str>()
        .map(|s| s.to_string())
        .or_else(|| e.downcast_ref::<String>().cloned())
        .unwrap_or_else(|| "panic with a non-string payload".into())
}

/// Runs `config.iterations` mutants of the `seeds` ((name, PTX text) pairs), each on a runner thread
/// inside `catch_unwind`, and counts the outcomes. A mutant that panics, or runs longer than
/// `config.mutant_seconds` (its runner thread is then abandoned and keeps running until it ends or the
/// process exits), is a finding. Stops early after `config.max_seconds`.
pub fn run(seeds: &[(&str, &str)], config: &Config) -> Report {
    let start = Instant::now();
    let mut report = Report::default();
    let mut rng = SplitMix64(config.seed);
    if seeds.is_empty() {
        return report;
    }
    let (mut jobs, mut done) = spawn_runner(config);
    for iteration in 0..config.iterations {
        if start.elapsed().as_secs_f64() > config.max_seconds {
            break;
        }
        let (name, text) = seeds[rng.below(seeds.len())];
        let ptx = mutate(text, &mut rng, config.max_mutations);
        let seed = rng.next_u64();
        report.mutants += 1;
        let limit = Duration::from_secs_f64(config.mutant_seconds.max(0.001));
        let finding = |kind, message| Finding {
            kind,
            seed_name: name.to_string(),
            iteration,
            message,
            ptx: ptx.clone(),
        };
        if jobs.send((ptx.clone(), seed)).is_err() {
            (jobs, done) = spawn_runner(config);
            continue;
        }
        match done.recv_timeout(limit) {
            Ok(Ok(outcomes)) => outcomes.into_iter().for_each(|o| report.count(o)),
            Ok(Err(e)) => report.findings.push(finding("panic", panic_message(&*e))),
            Err(_) => {
                let f = finding("over-time", format!("still running after {:.1} s", limit.as_secs_f64()));
                report.findings.push(f);
                (jobs, done) = spawn_runner(config);
            }
        }
    }
    report.seconds = start.elapsed().as_secs_f64();
    report
}
