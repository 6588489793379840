//! CUDA's launch limits, checked before a launch runs: grid and block dimensions, the kernel's
//! `.maxntid` / `.reqntid`, shared memory per block (static + dynamic), and the memory a launch needs
//! on top of the device's allocations. Each violation is a clear `EmuError::Usage` (or
//! `EmuError::OutOfMemory`), as `cudaLaunchKernel` would refuse the launch.

use crate::error::EmuError;
use crate::ir::{KernelInfo, Program};
use crate::LaunchConfig;

/// Largest grid: x up to 2^31 - 1 blocks, y and z up to 65535.
pub const MAX_GRID: [u32; 3] = [(1 << 31) - 1, 65535, 65535];
/// Largest block dimensions and threads per block.
pub const MAX_BLOCK: [u32; 3] = [1024, 1024, 64];
pub const MAX_BLOCK_THREADS: u64 = 1024;
/// Shared memory one block may use (static + dynamic, with the opt-in attribute) on sm_80 (A100):
/// 163 KiB.
pub const MAX_SHARED_SM80: u32 = 163 * 1024;
/// The same on sm_90 (H100): 227 KiB, the default of `Options::max_shared_bytes`.
pub const MAX_SHARED_SM90: u32 = 227 * 1024;

/// Shared memory a launch of `k` uses per block: the kernel's statics, or, with dynamic shared
/// memory, the module's dynamic base (above every kernel's statics) plus the dynamic bytes.
pub(crate) fn shared_bytes(prog: &Program, k: &KernelInfo, dyn_shared: u32) -> u64 {
    if dyn_shared > 0 {
        prog.dyn_shared_base as u64 + dyn_shared as u64
    } else {
        k.static_shared as u64
    }
}

/// Checks grid, block and shared memory of a launch against CUDA's limits and the kernel's
/// `.maxntid` / `.reqntid`; `max_shared` is the per-block shared-memory limit.
pub(crate) fn check_launch(
    prog: &Program,
    k: &KernelInfo,
    cfg: &LaunchConfig,
    max_shared: u32,
) -> Result<(), EmuError> {
    let usage = |m: String| Err(EmuError::Usage(format!("launch of kernel {}: {m}", k.name)));
    let (g, b) = (cfg.grid, cfg.block);
    if g.contains(&0) || b.contains(&0) {
        return usage(format!("grid {g:?} and block {b:?} must not have a zero dimension"));
    }
    if g.iter().zip(MAX_GRID).any(|(&x, m)| x > m) {
        return usage(format!("grid {g:?} exceeds CUDA's maximum {MAX_GRID:?}"));
    }
    if b.iter().zip(MAX_BLOCK).any(|(&x, m)| x > m) {
        return usage(format!("block {b:?} exceeds CUDA's maximum dimensions {MAX_BLOCK:?}"));
    }
    let threads = b.iter().map(|&x| x as u64).product::<u64>();
    if threads > MAX_BLOCK_THREADS {
        return usage(format!(
            "block {b:?} has {threads} threads, more than {MAX_BLOCK_THREADS}"
        ));
    }
    if let Some(m) = k.maxntid {
        let most = m.iter().map(|&x| x as u64).product::<u64>();
        if threads > most {
            return usage(format!(
                "block {b:?} has {threads} threads, more than the kernel's .maxntid {m:?} ({most})"
            ));
        }
    }
    if let Some(r) = k.reqntid {
        if r != b {
            return usage(format!("block {b:?} differs from the kernel's .reqntid {r:?}"));
        }
    }
    let shared = shared_bytes(prog, k, cfg.shared_bytes);
    if shared > max_shared as u64 {
        return usage(format!(
            "{shared} bytes of shared memory per block ({} static + {} dynamic bytes requested); \
             the device offers {max_shared} (Options::max_shared_bytes)",
            if cfg.shared_bytes > 0 {
                prog.dyn_shared_base
            } else {
                k.static_shared
            },
            cfg.shared_bytes
        ));
    }
    Ok(())
}

/// Host bytes one worker needs for a block of the launch: register files and local frames of every
/// warp, shared memory with its initcheck, racecheck and cp.async shadows.
pub(crate) fn launch_bytes(prog: &Program, k: &KernelInfo, cfg: &LaunchConfig) -> u64 {
    let threads = cfg.block.iter().map(|&x| x as u64).product::<u64>();
    let lanes = threads.div_ceil(32) * 32;
    let regs = prog.nslots.max(1) as u64 * 8 * lanes;
    let local = prog.local_bytes as u64 * lanes;
    // data + initcheck bits + racecheck cell (36 bytes) + cp.async owner (4 bytes) per shared byte
    let shared = shared_bytes(prog, k, cfg.shared_bytes) * 42;
    regs + local + shared + threads * 64
}

/// Newest PTX ISA version this emulator implements.
pub const PTX_ISA_VERSION: (u32, u32) = (9, 2);

/// Warnings about a module's `.version` and `.target`: a newer ISA than [`PTX_ISA_VERSION`] (its new
/// features are `Unsupported` errors where they appear, older ones run), or a target that is not
/// `sm_NN[a|f]` / `compute_NN`.
pub(crate) fn module_warnings(m: &crate::ast::Module) -> Vec<String> {
    let mut out = vec![];
    let (maj, min) = PTX_ISA_VERSION;
    let v = m.version.split_once('.').unwrap_or((&m.version, "0"));
    match (v.0.parse::<u32>(), v.1.parse::<u32>()) {
        (Ok(a), Ok(b)) if (a, b) > (maj, min) => out.push(format!(
            ".version {}: newer than PTX ISA {maj}.{min}, the newest ptx-emu implements (instructions it does \
             not know are Unsupported errors)",
            m.version
        )),
        (Ok(_), Ok(_)) => {}
        _ if m.version.is_empty() => out.push("no .version directive".to_string()),
        _ => out.push(format!(".version {}: not a PTX ISA version", m.version)),
    }
    let t = &m.target;
    let known = ["sm_", "compute_"].iter().any(|p| {
        t.strip_prefix(p).is_some_and(|n| {
            let n = n.trim_end_matches(['a', 'f']);
            !n.is_empty() && n.chars().all(|c| c.is_ascii_digit())
        })
    });
    if !known {
        out.push(format!(".target {t}: not an sm_NN / compute_NN target"));
    }
    out
}
