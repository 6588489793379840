//! Compiles every `cuda/*.cu` with nvcc, on a machine without a GPU:
//! - `OUT_DIR/<name>.ptx`: PTX for `compute_80` (the emulator runs this; also the JIT fallback),
//! - `OUT_DIR/<name>.fatbin`: SASS for each arch of `LLAMA_KERNELS_CUDA_ARCHS` (default 80,86,89,90)
//!   plus `compute_80` PTX, so users on A100/A10/L4/H100 need no JIT,
//! - `OUT_DIR/ptxas_report.tsv`: ptxas's resource usage per kernel and arch (registers, spills, ...),
//! - `OUT_DIR/kernels.rs`: the embedded images and the parsed report, included by `src/raw/module.rs`.
//!
//! Never runs nvidia-smi: the arch list is fixed or comes from the environment.
//!
//! Without nvcc (or with `LLAMA_KERNELS_COMMITTED_PTX=1`, and on docs.rs) the build takes the committed
//! PTX of `ptx/` instead: the emulator runs it, and on a GPU the driver JIT-compiles it, so the crate
//! builds with Rust alone. `ptx/SOURCES` holds the hash of each kernel's sources (the `.cu` and every
//! file it includes) that its PTX was made from: a `.cu` edited since is an error naming the pip command
//! that installs nvcc. `tests/build_artifacts.rs` checks, with nvcc, that `ptx/` is what nvcc makes of
//! today's sources, and rewrites it under `LLAMA_KERNELS_BLESS=1`.
//!
//! nvcc dominates the build, and cargo runs this script once per profile and tool (clippy, test, release).
//! So every nvcc output is cached in `target/nvcc-cache/`, shared by all of them, under a key that hashes
//! the nvcc command line, `nvcc --version`, the source and every file it includes by `#include "..."`
//! (transitively). An edit recompiles only the sources that include the edited file.
//! `LLAMA_KERNELS_NVCC_CACHE=0` turns it off.

use std::path::{Path, PathBuf};
use std::process::Command;

// Where nvcc is: the same search as ptx-emu's (a build dependency, so that the packaged crate needs no
// file from outside itself).
use ptx_emu::nvcc as nvcc_finder;

const DEFAULT_ARCHS: &str = "80,86,89,90";
const PTX_ARCH: &str = "80";
const ARCH_ENV: &str = "LLAMA_KERNELS_CUDA_ARCHS";
const CACHE_ENV: &str = "LLAMA_KERNELS_NVCC_CACHE";
const COMMITTED_ENV: &str = "LLAMA_KERNELS_COMMITTED_PTX";

fn main() {
    for var in nvcc_finder::NVCC_ENV_VARS
        .iter()
        .chain(&[ARCH_ENV, CACHE_ENV, COMMITTED_ENV, "DOCS_RS", "PATH"])
    {
        println!("cargo:rerun-if-env-changed={var}");
    }
    println!("cargo:rerun-if-changed=cuda");
    println!("cargo:rerun-if-changed=dev");
    println!("cargo:rerun-if-changed=ptx");

    let out_dir = PathBuf::from(std::env::var("OUT_DIR").expect("cargo sets OUT_DIR"));
    let mut sources: Vec<PathBuf> = std::fs::read_dir("cuda")
        .unwrap_or_else(|e| fail(&format!("cannot read cuda/: {e}")))
        .filter_map(|e| e.ok().map(|e| e.path()))
        .filter(|p| p.extension().is_some_and(|x| x == "cu"))
        .collect();
    sources.sort();
    let forced = std::env::var(COMMITTED_ENV).is_ok_and(|v| v == "1") || std::env::var_os("DOCS_RS").is_some();
    let nvcc = match nvcc_finder::find_nvcc() {
        Ok(p) if !forced => p,
        Ok(_) => return committed_ptx(&out_dir, &sources, &format!("{COMMITTED_ENV}=1 or DOCS_RS is set")),
        // A named nvcc that is missing is a mistake to report, not a reason to fall back.
        Err(msg) if std::env::var_os("NVCC").is_some() => fail(&msg),
        Err(_) => return committed_ptx(&out_dir, &sources, "no nvcc found"),
    };
    println!("cargo:rustc-env=LLAMA_KERNELS_NVCC={}", nvcc.display());
    let archs = arch_list();
    let cache = NvccCache::new(&nvcc, &out_dir);

    // One job per (source, output kind); run them on NUM_JOBS threads, largest source first so the
    // longest compile does not start last.
    let mut by_size = sources.clone();
    by_size.sort_by_key(|p| std::cmp::Reverse(std::fs::metadata(p).map(|m| m.len()).unwrap_or(0)));
    let mut jobs = Vec::new();
    for src in &by_size {
        jobs.push(Job {
            src: src.clone(),
            kind: JobKind::Fatbin,
        });
        jobs.push(Job {
            src: src.clone(),
            kind: JobKind::Ptx,
        });
    }
    let workers: usize = std::env::var("NUM_JOBS")
        .ok()
        .and_then(|s| s.parse().ok())
        .unwrap_or(2)
        .max(1);
    let next = std::sync::atomic::AtomicUsize::new(0);
    let results: Vec<std::sync::Mutex<Option<Result<String, String>>>> =
        jobs.iter().map(|_| std::sync::Mutex::new(None)).collect();
    std::thread::scope(|s| {
        for _ in 0..workers.min(jobs.len()) {
            s.spawn(|| loop {
                let i = next.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
                let Some(job) = jobs.get(i) else { break };
                let r = run_job(&nvcc, &cache, job, &out_dir, &archs);
                *results[i].lock().unwrap() = Some(r);
            });
        }
    });

    let mut report = Vec::new();
    for (job, r) in jobs.iter().zip(results) {
        match r.into_inner().unwrap().expect("every job ran") {
            Ok(stderr) => {
                if job.kind == JobKind::Fatbin {
                    report.extend(parse_ptxas_report(&stderr));
                }
            }
            Err(msg) => fail(&msg),
        }
    }
    report.sort();
    write_outputs(&out_dir, &sources, &archs, &report);
}

/// The hash of `src` and every file it includes, as `ptx/SOURCES` records it.
fn source_hash(src: &Path) -> String {
    let mut h = Hasher128::default();
    for (path, bytes) in include_closure(src).unwrap_or_else(|| fail(&format!("cannot read {}", src.display()))) {
        h.write(path.to_string_lossy().as_bytes());
        h.write(&bytes);
    }
    format!("{:032x}", h.finish())
}

/// `ptx/SOURCES` as today's sources would have it: one `name hash` line per `cuda/*.cu`.
fn sources_manifest(sources: &[PathBuf]) -> String {
    sources
        .iter()
        .map(|src| format!("{} {}\n", stem(src), source_hash(src)))
        .collect()
}

/// The build without nvcc: the committed `ptx/<name>.ptx` of every kernel, after checking that none of
/// their sources changed since; no SASS (empty fatbins, so the CUDA backend JIT-compiles the PTX) and
/// no ptxas report.
fn committed_ptx(out_dir: &Path, sources: &[PathBuf], why: &str) {
    let committed = std::fs::read_to_string("ptx/SOURCES").unwrap_or_default();
    let today = sources_manifest(sources);
    if committed != today {
        let changed: Vec<String> = today
            .lines()
            .filter(|l| !committed.lines().any(|c| c == *l))
            .filter_map(|l| l.split(' ').next().map(|n| format!("cuda/{n}.cu")))
            .collect();
        fail(&format!(
            "building without nvcc ({why}) takes the committed PTX of ptx/, but {} changed since it was made \
             (ptx/SOURCES). Editing kernels needs nvcc: install it with\n    {}\nthen build once and \
             regenerate ptx/ with `LLAMA_KERNELS_BLESS=1 cargo test --test build_artifacts committed_ptx`",
            if changed.is_empty() {
                "the kernel list".to_string()
            } else {
                changed.join(", ")
            },
            nvcc_finder::NVCC_PIP_INSTALL
        ));
    }
    for src in sources {
        let name = stem(src);
        let ptx = std::fs::read(format!("ptx/{name}.ptx"))
            .unwrap_or_else(|e| fail(&format!("cannot read ptx/{name}.ptx: {e}")));
        std::fs::write(out_dir.join(format!("{name}.ptx")), ptx)
            .unwrap_or_else(|e| fail(&format!("cannot write {name}.ptx: {e}")));
        std::fs::write(out_dir.join(format!("{name}.fatbin")), b"")
            .unwrap_or_else(|e| fail(&format!("cannot write {name}.fatbin: {e}")));
    }
    println!(
        "cargo:warning=llama-kernels: {why}: built from the committed PTX (ptx/), which the CUDA driver \
         JIT-compiles on first use; nvcc would add SASS for sm_80/86/89/90"
    );
    println!("cargo:rustc-env=LLAMA_KERNELS_NVCC=");
    write_outputs(out_dir, sources, &[], &[]);
}

#[derive(Clone, Copy, PartialEq)]
enum JobKind {
    Ptx,
    Fatbin,
}

struct Job {
    src: PathBuf,
    kind: JobKind,
}

fn arch_list() -> Vec<String> {
    let raw = std::env::var(ARCH_ENV).unwrap_or_else(|_| DEFAULT_ARCHS.to_string());
    let archs: Vec<String> = raw
        .split(|c: char| c == ',' || c.is_whitespace())
        .filter(|s| !s.is_empty())
        .map(|s| s.trim_start_matches("sm_").to_string())
        .collect();
    if archs.is_empty() || archs.iter().any(|a| !a.chars().all(|c| c.is_ascii_alphanumeric())) {
        fail(&format!("{ARCH_ENV}={raw:?}: expected a list like 80,86,89,90"));
    }
    archs
}

fn stem(src: &Path) -> String {
    src.file_stem().unwrap().to_string_lossy().into_owned()
}

/// Runs nvcc for one job, or takes its output from the cache; returns its stderr (ptxas -v report) or an
/// error message.
fn run_job(nvcc: &Path, cache: &NvccCache, job: &Job, out_dir: &Path, archs: &[String]) -> Result<String, String> {
    let name = stem(&job.src);
    let (ext, mut args) = match job.kind {
        JobKind::Ptx => ("ptx", vec!["-ptx".to_string(), format!("-arch=compute_{PTX_ARCH}")]),
        JobKind::Fatbin => {
            let mut args = vec!["--fatbin".to_string(), "-Xptxas".to_string(), "-v".to_string()];
            for a in archs {
                args.push(format!("-gencode=arch=compute_{},code=sm_{a}", a.trim_end_matches('a')));
            }
            args.push(format!("-gencode=arch=compute_{PTX_ARCH},code=compute_{PTX_ARCH}"));
            ("fatbin", args)
        }
    };
    let mut all_args: Vec<String> = ["-O3", "-std=c++17", "-Icuda/include", "--expt-relaxed-constexpr"]
        .iter()
        .map(|s| s.to_string())
        .collect();
    all_args.append(&mut args);
    let output = out_dir.join(format!("{name}.{ext}"));
    let entry = cache.entry(&job.src, &all_args, &format!("{name}.{ext}"));
    if let Some(entry) = &entry {
        if let Some(stderr) = entry.fetch(&output) {
            return Ok(stderr);
        }
    }
    let out = Command::new(nvcc)
        .args(&all_args)
        .arg("-o")
        .arg(&output)
        .arg(&job.src)
        .output()
        .map_err(|e| format!("cannot run {}: {e}", nvcc.display()))?;
    let stderr = String::from_utf8_lossy(&out.stderr).into_owned();
    if !out.status.success() {
        return Err(format!("nvcc failed on {}:\n{stderr}", job.src.display()));
    }
    // Store only when the inputs are still what the key hashed: a file edited while nvcc ran would
    // otherwise file the old key under the new output.
    if let Some(entry) = &entry {
        let unchanged = cache
            .entry(&job.src, &all_args, &format!("{name}.{ext}"))
            .map(|e| e.path)
            == Some(entry.path.clone());
        if unchanged {
            entry.store(&output, &stderr);
        }
    }
    Ok(stderr)
}

/// The nvcc output cache: `target/nvcc-cache/`, or none when it is turned off or cannot be made.
struct NvccCache {
    dir: Option<PathBuf>,
    /// `nvcc --version`.
    version: Vec<u8>,
}

/// One cached output: `<dir>/<output name>.<key>` plus `<...>.stderr`.
struct CacheEntry {
    dir: PathBuf,
    output_name: String,
    path: PathBuf,
}

impl NvccCache {
    fn new(nvcc: &Path, out_dir: &Path) -> NvccCache {
        let off = std::env::var(CACHE_ENV).is_ok_and(|v| v == "0");
        // OUT_DIR is `<target>[/<triple>]/<profile>/build/<pkg>-<hash>/out`; the cache sits beside the
        // profile directories so that every profile shares it.
        let dir = out_dir.ancestors().nth(4).map(|t| t.join("nvcc-cache"));
        let dir = dir.filter(|d| !off && std::fs::create_dir_all(d).is_ok());
        match Command::new(nvcc).arg("--version").output() {
            Ok(o) if o.status.success() => NvccCache { dir, version: o.stdout },
            // Without a version there is no safe key: run without the cache.
            _ => NvccCache {
                dir: None,
                version: Vec::new(),
            },
        }
    }

    /// The entry of `src` compiled with `args`: keyed by nvcc's version, the arguments, and the path and
    /// bytes of `src` and of every file it includes by `#include "..."`, transitively. None when a file
    /// of that set cannot be read (then nvcc runs and nothing is stored).
    fn entry(&self, src: &Path, args: &[String], output_name: &str) -> Option<CacheEntry> {
        let dir = self.dir.as_ref()?;
        let mut h = Hasher128::default();
        h.write(&self.version);
        for a in args {
            h.write(a.as_bytes());
        }
        for (path, bytes) in include_closure(src)? {
            h.write(path.to_string_lossy().as_bytes());
            h.write(&bytes);
        }
        let key = h.finish();
        Some(CacheEntry {
            dir: dir.clone(),
            output_name: output_name.to_string(),
            path: dir.join(format!("{output_name}.{key:032x}")),
        })
    }
}

/// `src` and every file it includes with `#include "name"` (looked up beside the including file, then in
/// `cuda/include`, as nvcc's `-Icuda/include` does), transitively, sorted by path, with their bytes. A
/// name found nowhere is hashed as a name (nvcc then fails on it). Angle-bracket includes are the
/// toolkit's, covered by nvcc's version.
fn include_closure(src: &Path) -> Option<Vec<(PathBuf, Vec<u8>)>> {
    let mut seen: Vec<(PathBuf, Vec<u8>)> = Vec::new();
    let mut todo = vec![src.to_path_buf()];
    while let Some(path) = todo.pop() {
        if seen.iter().any(|(p, _)| *p == path) {
            continue;
        }
        let bytes = std::fs::read(&path).ok()?;
        for line in String::from_utf8_lossy(&bytes).lines() {
            let Some(rest) = line.trim_start().strip_prefix("#include") else {
                continue;
            };
            let Some(name) = rest.trim().strip_prefix('"').and_then(|r| r.split('"').next()) else {
                continue;
            };
            let beside = path.parent().unwrap_or(Path::new(".")).join(name);
            let found = [beside, Path::new("cuda/include").join(name)]
                .into_iter()
                .find(|p| p.is_file());
            match found {
                Some(p) => todo.push(p),
                None => seen.push((PathBuf::from(format!("<missing {name}>")), Vec::new())),
            }
        }
        seen.push((path, bytes));
    }
    seen.sort();
    Some(seen)
}

impl CacheEntry {
    fn stderr_path(&self) -> PathBuf {
        self.path.with_extension(format!(
            "{}.stderr",
            self.path.extension().unwrap_or_default().to_string_lossy()
        ))
    }

    /// Copies the cached output to `output`; returns the cached stderr, or None on a miss.
    fn fetch(&self, output: &Path) -> Option<String> {
        let stderr = std::fs::read_to_string(self.stderr_path()).ok()?;
        std::fs::copy(&self.path, output).ok()?;
        Some(stderr)
    }

    /// Stores `output` and its stderr; drops older entries for the same output name. Best effort: a
    /// failure leaves the cache without this entry. Writes go to a temporary name first and are renamed
    /// in place, so a concurrent build never reads half a file; the output is stored before its stderr,
    /// which marks the entry complete.
    fn store(&self, output: &Path, stderr: &str) {
        if let Ok(read) = std::fs::read_dir(&self.dir) {
            let prefix = format!("{}.", self.output_name);
            for e in read.flatten() {
                let name = e.file_name().to_string_lossy().into_owned();
                let same_output = name
                    .strip_prefix(&prefix)
                    .is_some_and(|rest| rest.len() >= 32 && rest[..32].chars().all(|c| c.is_ascii_hexdigit()));
                let own = Some(e.file_name().as_os_str()) == self.path.file_name();
                if same_output && !own {
                    let _ = std::fs::remove_file(e.path());
                }
            }
        }
        let tmp = |p: &Path| {
            p.with_file_name(format!(
                ".tmp-{}-{}",
                std::process::id(),
                p.file_name().unwrap().to_string_lossy()
            ))
        };
        let (data_tmp, err_tmp) = (tmp(&self.path), tmp(&self.stderr_path()));
        let ok = std::fs::copy(output, &data_tmp).is_ok()
            && std::fs::rename(&data_tmp, &self.path).is_ok()
            && std::fs::write(&err_tmp, stderr).is_ok()
            && std::fs::rename(&err_tmp, self.stderr_path()).is_ok();
        if !ok {
            let _ = std::fs::remove_file(&data_tmp);
            let _ = std::fs::remove_file(&err_tmp);
        }
    }
}

/// FNV-1a with a 128-bit state: stable across Rust versions (std's hasher is not promised to be), and
/// a cache key, not a defence against adversaries.
struct Hasher128(u128);

impl Default for Hasher128 {
    fn default() -> Self {
        Hasher128(0x6c62272e07bb014262b821756295c58d)
    }
}

impl Hasher128 {
    fn write(&mut self, bytes: &[u8]) {
        for &b in bytes {
            self.0 ^= b as u128;
            self.0 = self.0.wrapping_mul(0x0000000001000000000000000000013b);
        }
        // Length-delimit each write, so ("ab", "c") and ("a", "bc") differ.
        for b in (bytes.len() as u64).to_le_bytes() {
            self.0 ^= b as u128;
            self.0 = self.0.wrapping_mul(0x0000000001000000000000000000013b);
        }
    }

    fn finish(&self) -> u128 {
        self.0
    }
}

/// One row of ptxas's `-v` report.
#[derive(PartialEq, Eq, PartialOrd, Ord, Debug)]
struct Resources {
    kernel: String,
    arch: String,
    registers: u32,
    shared_bytes: u32,
    stack_frame_bytes: u32,
    spill_store_bytes: u32,
    spill_load_bytes: u32,
    barriers: u32,
}

/// Parses lines like
/// `ptxas info    : Compiling entry function 'k' for 'sm_80'`,
/// `    0 bytes stack frame, 0 bytes spill stores, 0 bytes spill loads`,
/// `ptxas info    : Used 10 registers, used 1 barriers, 512 bytes smem, 372 bytes cmem[0]`.
fn parse_ptxas_report(stderr: &str) -> Vec<Resources> {
    let mut rows = Vec::new();
    let mut current: Option<Resources> = None;
    for line in stderr.lines() {
        if let Some(rest) = line.split("Compiling entry function '").nth(1) {
            if let Some(done) = current.take() {
                rows.push(done);
            }
            let kernel = rest.split('\'').next().unwrap_or("").to_string();
            let arch = rest
                .split("for '")
                .nth(1)
                .and_then(|s| s.split('\'').next())
                .unwrap_or("")
                .to_string();
            current = Some(Resources {
                kernel,
                arch,
                registers: 0,
                shared_bytes: 0,
                stack_frame_bytes: 0,
                spill_store_bytes: 0,
                spill_load_bytes: 0,
                barriers: 0,
            });
        } else if let Some(r) = current.as_mut() {
            if line.contains("bytes stack frame") {
                r.stack_frame_bytes = number_before(line, "bytes stack frame");
                r.spill_store_bytes = number_before(line, "bytes spill stores");
                r.spill_load_bytes = number_before(line, "bytes spill loads");
            } else if line.contains("Used ") && line.contains("registers") {
                r.registers = number_before(line, "registers");
                r.barriers = number_before(line, "barriers");
                r.shared_bytes = number_before(line, "bytes smem");
            }
        }
    }
    rows.extend(current);
    rows
}

/// The integer just before `marker` in `line`, or 0 when the marker is absent.
fn number_before(line: &str, marker: &str) -> u32 {
    let Some(pos) = line.find(marker) else { return 0 };
    line[..pos]
        .split(|c: char| !c.is_ascii_digit())
        .rev()
        .find(|s| !s.is_empty())
        .and_then(|s| s.parse().ok())
        .unwrap_or(0)
}

fn write_outputs(out_dir: &Path, sources: &[PathBuf], archs: &[String], report: &[Resources]) {
    let mut tsv = String::from(
        "kernel\tarch\tregisters\tshared_bytes\tstack_frame_bytes\tspill_store_bytes\tspill_load_bytes\tbarriers\n",
    );
    for r in report {
        tsv.push_str(&format!(
            "{}\t{}\t{}\t{}\t{}\t{}\t{}\t{}\n",
            r.kernel,
            r.arch,
            r.registers,
            r.shared_bytes,
            r.stack_frame_bytes,
            r.spill_store_bytes,
            r.spill_load_bytes,
            r.barriers
        ));
    }
    write(&out_dir.join("ptxas_report.tsv"), &tsv);

    let mut rs = String::from("// @generated by build.rs\n\n");
    rs.push_str(&format!(
        "/// SASS archs in every fatbin (`{ARCH_ENV}`).\npub const SASS_ARCHS: &[&str] = &[{}];\n",
        archs
            .iter()
            .map(|a| format!("\"sm_{a}\""))
            .collect::<Vec<_>>()
            .join(", ")
    ));
    rs.push_str(&format!(
        "/// The virtual arch of the embedded PTX.\npub const PTX_ARCH: &str = \"compute_{PTX_ARCH}\";\n"
    ));
    rs.push_str("/// Every compiled `cuda/*.cu`.\npub const MODULE_IMAGES: &[ModuleImage] = &[\n");
    for src in sources {
        let name = stem(src);
        rs.push_str(&format!(
            "    ModuleImage {{ name: \"{name}\", ptx: include_str!(concat!(env!(\"OUT_DIR\"), \"/{name}.ptx\")), \
             fatbin: include_bytes!(concat!(env!(\"OUT_DIR\"), \"/{name}.fatbin\")) }},\n"
        ));
    }
    rs.push_str("];\n");
    rs.push_str("/// ptxas's resource report, one row per (kernel, SASS arch).\npub const PTXAS_REPORT: &[KernelResources] = &[\n");
    for r in report {
        rs.push_str(&format!(
            "    KernelResources {{ kernel: \"{}\", arch: \"{}\", registers: {}, shared_bytes: {}, stack_frame_bytes: {}, \
             spill_store_bytes: {}, spill_load_bytes: {}, barriers: {} }},\n",
            r.kernel, r.arch, r.registers, r.shared_bytes, r.stack_frame_bytes, r.spill_store_bytes,
            r.spill_load_bytes, r.barriers
        ));
    }
    rs.push_str("];\n");
    rs.push_str(&format!(
        "/// `ptx/SOURCES` as today's sources make it (a kernel's name and the hash of its sources).\n\
         pub const PTX_SOURCES: &str = {:?};\n",
        sources_manifest(sources)
    ));
    write(&out_dir.join("kernels.rs"), &rs);
}

fn write(path: &Path, text: &str) {
    std::fs::write(path, text).unwrap_or_else(|e| fail(&format!("cannot write {}: {e}", path.display())));
}

fn fail(msg: &str) -> ! {
    eprintln!("\nllama-kernels build error: {msg}\n");
    std::process::exit(1);
}
