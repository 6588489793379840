//! Compiles every `cuda/*.cu` with nvcc, on a machine without a GPU:
//! - `OUT_DIR/<name>.ptx`: PTX for `compute_80` (the emulator runs this; also the JIT fallback),
//! - `OUT_DIR/<name>.fatbin`: SASS for each arch of `LLAMA_KERNELS_CUDA_ARCHS` (default 80,86,89,90)
//!   plus `compute_80` PTX, so users on A100/A10/L4/H100 need no JIT,
//! - `OUT_DIR/ptxas_report.tsv`: ptxas's resource usage per kernel and arch (registers, spills, ...),
//! - `OUT_DIR/kernels.rs`: the embedded images and the parsed report, included by `src/raw/module.rs`.
//!
//! Never runs nvidia-smi: the arch list is fixed or comes from the environment.

use std::path::{Path, PathBuf};
use std::process::Command;

mod nvcc_finder {
    include!("ptx-emu/src/nvcc.rs");
}

const DEFAULT_ARCHS: &str = "80,86,89,90";
const PTX_ARCH: &str = "80";
const ARCH_ENV: &str = "LLAMA_KERNELS_CUDA_ARCHS";

fn main() {
    for var in nvcc_finder::NVCC_ENV_VARS.iter().chain(&[ARCH_ENV, "PATH"]) {
        println!("cargo:rerun-if-env-changed={var}");
    }
    println!("cargo:rerun-if-changed=cuda");
    println!("cargo:rerun-if-changed=dev");
    println!("cargo:rerun-if-changed=ptx-emu/src/nvcc.rs");

    let nvcc = match nvcc_finder::find_nvcc() {
        Ok(p) => p,
        Err(msg) => fail(&msg),
    };
    println!("cargo:rustc-env=LLAMA_KERNELS_NVCC={}", nvcc.display());
    let out_dir = PathBuf::from(std::env::var("OUT_DIR").expect("cargo sets OUT_DIR"));
    let archs = arch_list();

    let mut sources: Vec<PathBuf> = std::fs::read_dir("cuda")
        .unwrap_or_else(|e| fail(&format!("cannot read cuda/: {e}")))
        .filter_map(|e| e.ok().map(|e| e.path()))
        .filter(|p| p.extension().is_some_and(|x| x == "cu"))
        .collect();
    sources.sort();

    // One job per (source, output kind); run them on NUM_JOBS threads.
    let mut jobs = Vec::new();
    for src in &sources {
        jobs.push(Job {
            src: src.clone(),
            kind: JobKind::Ptx,
        });
        jobs.push(Job {
            src: src.clone(),
            kind: JobKind::Fatbin,
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
                let r = run_job(&nvcc, job, &out_dir, &archs);
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

/// Runs nvcc for one job; returns its stderr (ptxas -v report) or an error message.
fn run_job(nvcc: &Path, job: &Job, out_dir: &Path, archs: &[String]) -> Result<String, String> {
    let name = stem(&job.src);
    let mut cmd = Command::new(nvcc);
    cmd.args(["-O3", "-std=c++17", "-Icuda/include", "--expt-relaxed-constexpr"]);
    match job.kind {
        JobKind::Ptx => {
            cmd.args(["-ptx", &format!("-arch=compute_{PTX_ARCH}")]);
            cmd.arg("-o").arg(out_dir.join(format!("{name}.ptx")));
        }
        JobKind::Fatbin => {
            cmd.args(["--fatbin", "-Xptxas", "-v"]);
            for a in archs {
                cmd.arg(format!("-gencode=arch=compute_{},code=sm_{a}", a.trim_end_matches('a')));
            }
            cmd.arg(format!("-gencode=arch=compute_{PTX_ARCH},code=compute_{PTX_ARCH}"));
            cmd.arg("-o").arg(out_dir.join(format!("{name}.fatbin")));
        }
    }
    cmd.arg(&job.src);
    let out = cmd
        .output()
        .map_err(|e| format!("cannot run {}: {e}", nvcc.display()))?;
    let stderr = String::from_utf8_lossy(&out.stderr).into_owned();
    if !out.status.success() {
        return Err(format!("nvcc failed on {}:\n{stderr}", job.src.display()));
    }
    Ok(stderr)
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
    write(&out_dir.join("kernels.rs"), &rs);
}

fn write(path: &Path, text: &str) {
    std::fs::write(path, text).unwrap_or_else(|e| fail(&format!("cannot write {}: {e}", path.display())));
}

fn fail(msg: &str) -> ! {
    eprintln!("\nllama-kernels build error: {msg}\n");
    std::process::exit(1);
}
