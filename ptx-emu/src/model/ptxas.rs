//! Registers and shared memory per kernel from ptxas (`ptxas -v`), for the model's occupancy. ptxas is
//! found next to nvcc (`nvcc::find_nvcc`, the way llama-kernels' build.rs finds it).

use std::path::PathBuf;

/// What ptxas reports for one kernel.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Resources {
    pub registers: u32,
    /// Static shared memory (bytes).
    pub shared: u32,
    /// Local memory spilled to (bytes of spill stores).
    pub spill_stores: u32,
}

/// The ptxas next to nvcc.
pub fn find_ptxas() -> Result<PathBuf, String> {
    let nvcc = crate::nvcc::find_nvcc()?;
    let p = nvcc.with_file_name("ptxas");
    if p.is_file() {
        Ok(p)
    } else {
        Err(format!("no ptxas next to {}", nvcc.display()))
    }
}

/// Assembles `ptx` for `sm_{cc}` and reads `kernel`'s registers and shared memory.
pub fn resources(ptx: &str, kernel: &str, cc: u32) -> Result<Resources, String> {
    let ptxas = find_ptxas()?;
    // One directory per call: callers run this on parallel threads (the model on several kernels at
    // once), and each call removes its directory when done.
    static NEXT: std::sync::atomic::AtomicU64 = std::sync::atomic::AtomicU64::new(0);
    let n = NEXT.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
    let dir = std::env::temp_dir().join(format!("ptx-emu-ptxas-{}-{n}", std::process::id()));
    std::fs::create_dir_all(&dir).map_err(|e| e.to_string())?;
    let src = dir.join(format!("{kernel}.ptx"));
    std::fs::write(&src, ptx).map_err(|e| e.to_string())?;
    let out = std::process::Command::new(&ptxas)
        .arg(format!("-arch=sm_{cc}"))
        .arg("-v")
        .arg(&src)
        .arg("-o")
        .arg(dir.join(format!("{kernel}.cubin")))
        .output()
        .map_err(|e| format!("cannot run {}: {e}", ptxas.display()))?;
    let text = String::from_utf8_lossy(&out.stderr).to_string() + &String::from_utf8_lossy(&out.stdout);
    let _ = std::fs::remove_dir_all(&dir);
    if !out.status.success() {
        return Err(format!("ptxas failed for sm_{cc}: {text}"));
    }
    parse(&text, kernel).ok_or_else(|| format!("ptxas -v printed no resource line for kernel {kernel}"))
}

/// Reads the `Used N registers, ... N bytes smem` line that follows `Compiling entry function 'K'`.
pub fn parse(report: &str, kernel: &str) -> Option<Resources> {
    let mut inside = false;
    let mut spill_stores = 0;
    for line in report.lines() {
        if line.contains("Compiling entry function") {
            inside = line.contains(&format!("'{kernel}'"));
            continue;
        }
        if !inside {
            continue;
        }
        let num_before = |s: &str, what: &str| -> Option<u32> {
            let i = s.find(what)?;
            s[..i].split_whitespace().last()?.parse().ok()
        };
        if let Some(n) = num_before(line, "bytes spill stores") {
            spill_stores = n;
        }
        if let Some(r) = num_before(line, "registers") {
            let shared = num_before(line, "bytes smem").unwrap_or(0);
            return Some(Resources {
                registers: r,
                shared,
                spill_stores,
            });
        }
    }
    None
}
