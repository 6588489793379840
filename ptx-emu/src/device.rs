//! The library API: an emulated device with global memory, modules and launches.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::Instant;

use crate::error::EmuError;
use crate::ir::Program;
pub use crate::limits::{MAX_SHARED_SM80, MAX_SHARED_SM90};
use crate::memory::GlobalMem;
pub use crate::memory::DEFAULT_MEMORY_LIMIT;
use crate::metrics::Metrics;
use crate::model::{self, ModelOptions, Prediction};
use crate::module_cache;
use crate::{exec, limits, lower};

/// Which checks run during a launch.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Checks {
    pub memcheck: bool,
    pub racecheck: bool,
    pub initcheck: bool,
    pub synccheck: bool,
    /// Global-memory races between the blocks of one launch (`exec/globalrace.rs`).
    pub globalrace: bool,
}

impl Checks {
    pub fn all() -> Self {
        Checks {
            memcheck: true,
            racecheck: true,
            initcheck: true,
            synccheck: true,
            globalrace: true,
        }
    }
    pub fn none() -> Self {
        Checks {
            memcheck: false,
            racecheck: false,
            initcheck: false,
            synccheck: false,
            globalrace: false,
        }
    }
}

impl Default for Checks {
    fn default() -> Self {
        Checks::all()
    }
}

/// Default [`Options::max_instructions`]: 2^25 = 33.5 M warp-instructions per launch. The largest
/// legitimate launches of llama-kernels' tests run about 20 M thread-instructions, i.e. at most 20 M
/// warp-instructions even if every warp-instruction ran a single lane (and ~0.6 M with full warps), so
/// the default leaves a margin of 1.6x over the worst case. A runaway loop stops after about 3 s at
/// the measured ~10 M warp-instructions/s of an ALU loop with full warps (~300 M thread-instructions/s,
/// `examples/speed.rs`), sooner with fewer lanes, later (about 15 s) in a memory- and barrier-heavy
/// loop with every check on.
pub const DEFAULT_MAX_INSTRUCTIONS: u64 = 1 << 25;

#[derive(Clone, Debug)]
pub struct Options {
    pub checks: Checks,
    /// Host threads that run blocks. 0 (the default): one per core
    /// (`std::thread::available_parallelism`); 1: every block in order on the calling thread. Results
    /// are the same for any count: blocks are independent unless they communicate, and a kernel that
    /// can (global or generic `atom`/`red`, or a strong `.volatile`/`.relaxed`/`.acquire`/`.release`
    /// `ld`/`st`) always runs its blocks in order on one thread; reports are sorted by block, and after
    /// a fatal report only the blocks up to it count, as with one thread.
    pub worker_threads: usize,
    /// Shared memory one block may use, static + dynamic (bytes); a launch asking for more is a usage
    /// error. Default [`MAX_SHARED_SM90`] = 227 KiB (sm_90's opt-in maximum); [`MAX_SHARED_SM80`] =
    /// 163 KiB models an A100.
    pub max_shared_bytes: u32,
    /// Seeded schedule: warps of a block take turns in a shuffled order with short random time slices,
    /// which exposes order-dependent bugs; the same seed gives the same schedule. None: in order.
    pub schedule_seed: Option<u64>,
    /// Warp-instructions one launch may execute (all blocks together) before it stops with
    /// [`EmuError::Budget`], which names the PTX line every unfinished warp stands at: an endless loop
    /// (a spin-wait on a flag no thread sets, a loop around `bar.sync` or memory accesses) ends there
    /// instead of hanging. Default [`DEFAULT_MAX_INSTRUCTIONS`].
    pub max_instructions: u64,
    /// Write device `printf` output to stdout after each launch (as CUDA does at synchronization).
    pub printf_stdout: bool,
    /// The device's total memory (bytes): every global allocation ([`Device::alloc`], the CLI's
    /// `buf:` arguments, module `.global`/`.const` variables) counts against it, and so does what a
    /// launch needs on top (registers, local, shared and param memory of the blocks in flight). Going
    /// beyond it is [`EmuError::OutOfMemory`], never an abort. Storage is taken lazily (a 64 KiB page
    /// the first time it is written), so the host memory used is at most ~1.125x the bytes written.
    /// Default [`DEFAULT_MEMORY_LIMIT`] (4 GiB).
    pub memory_limit: u64,
    /// Approximate instructions (`ex2.approx`, `rsqrt.approx`, `div.approx`, ...): exactly rounded
    /// results ([`Approx::Exact`], the default), or results perturbed within the PTX ISA's stated
    /// error bound, as hardware gives ([`Approx::Perturbed`]).
    pub approx: Approx,
}

/// What approximate instructions return (`Options::approx`, CLI `--approx exact|perturbed`).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub enum Approx {
    /// The correctly rounded value of the function.
    #[default]
    Exact,
    /// For each input, a value within the ISA's bound for that instruction and input range, chosen
    /// deterministically from the seed, the instruction and the input bits (never outside the
    /// bound): a kernel or test that only works with exact results fails here as it would on a GPU.
    Perturbed { seed: u64 },
}

impl Default for Options {
    fn default() -> Self {
        Options {
            checks: Checks::all(),
            worker_threads: 0,
            max_shared_bytes: MAX_SHARED_SM90,
            schedule_seed: None,
            max_instructions: DEFAULT_MAX_INSTRUCTIONS,
            printf_stdout: true,
            memory_limit: DEFAULT_MEMORY_LIMIT,
            approx: Approx::Exact,
        }
    }
}

/// Grid, block and dynamic shared memory of a launch.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct LaunchConfig {
    pub grid: [u32; 3],
    pub block: [u32; 3],
    pub shared_bytes: u32,
}

#[derive(Clone, Debug)]
pub struct LaunchReport {
    /// Counters of the blocks that ran (with a sampled model launch, only the sampled blocks).
    pub metrics: Metrics,
    /// Output of device `printf`, in block order (also written to stdout when `Options::printf_stdout`).
    pub printf: Vec<String>,
    /// The speed-of-light model's prediction ([`Device::launch_with_model`]).
    pub prediction: Option<Prediction>,
}

/// (offset, size, align) of one kernel parameter.
pub type ParamSlot = (u32, u32, u32);

/// A parsed and lowered PTX module, bound to the device that loaded it (its globals live there).
#[derive(Debug)]
pub struct Module {
    prog: Arc<Program>,
    warnings: Vec<String>,
    kernels: HashMap<String, usize>,
    device_id: usize,
}

impl Module {
    /// Names of the module's kernels (`.entry`).
    pub fn kernel_names(&self) -> Vec<String> {
        self.prog.kernels.iter().map(|k| k.name.clone()).collect()
    }

    /// Parameter layout of a kernel: (offset, size, align) of each parameter, and the total size.
    pub fn kernel_params(&self, kernel: &str) -> Option<(Vec<ParamSlot>, u32)> {
        let k = &self.prog.kernels[*self.kernels.get(kernel)?];
        Some((k.params.clone(), k.param_bytes))
    }

    /// What `load_module` noticed but accepted: a `.version` newer than the PTX ISA this emulator
    /// implements (9.2), or a `.target` it does not know. Features of either that it does not implement
    /// are still `EmuError::Unsupported` errors.
    pub fn warnings(&self) -> &[String] {
        &self.warnings
    }

    /// Number of IR instructions (all functions).
    pub fn ir_len(&self) -> usize {
        self.prog.code.len()
    }
}

/// An emulated GPU. Send + Sync; launches on one device are serialized.
pub struct Device {
    options: Options,
    mem: Mutex<GlobalMem>,
    id: usize,
}

static NEXT_DEVICE: std::sync::atomic::AtomicUsize = std::sync::atomic::AtomicUsize::new(1);

impl Device {
    pub fn new(options: Options) -> Device {
        Device {
            mem: Mutex::new(GlobalMem::new(options.memory_limit)),
            options,
            id: NEXT_DEVICE.fetch_add(1, std::sync::atomic::Ordering::Relaxed),
        }
    }

    pub fn options(&self) -> &Options {
        &self.options
    }

    fn mem(&self) -> std::sync::MutexGuard<'_, GlobalMem> {
        self.mem.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// Allocates `bytes` of global memory (256-byte aligned, never written for initcheck).
    pub fn alloc(&self, bytes: usize) -> Result<u64, EmuError> {
        self.mem().alloc(bytes)
    }

    /// Allocates `bytes` of global memory that reads as written zeros (`cudaMalloc` + `cudaMemset(0)`),
    /// without touching host memory until the device or the host writes it.
    pub fn alloc_zeroed(&self, bytes: usize) -> Result<u64, EmuError> {
        self.mem().alloc_zeroed(bytes)
    }

    /// Bytes of global memory allocated now (what counts against `Options::memory_limit`).
    pub fn memory_in_use(&self) -> u64 {
        self.mem().in_use()
    }

    /// Host bytes the device's global memory holds now (materialized pages, data and initcheck bits).
    pub fn resident_bytes(&self) -> u64 {
        self.mem().allocs.iter().map(|a| a.resident_bytes()).sum()
    }

    pub fn free(&self, addr: u64) -> Result<(), EmuError> {
        self.mem().free(addr)
    }

    /// Host -> device; marks the bytes written. `addr` may point inside an allocation.
    pub fn write(&self, addr: u64, data: &[u8]) -> Result<(), EmuError> {
        self.mem().write(addr, data)
    }

    /// Device -> device (`cuMemcpyDtoD`): `len` bytes from `src` to `dst`, with their initcheck bits
    /// (bytes never written at the source stay never written at the destination). Either range outside
    /// an allocation, or the two overlapping, is a `BadAddress` error.
    pub fn copy(&self, dst: u64, src: u64, len: usize) -> Result<(), EmuError> {
        self.mem().copy(dst, src, len)
    }

    /// Device -> host.
    pub fn read(&self, addr: u64, out: &mut [u8]) -> Result<(), EmuError> {
        self.mem().read(addr, out)
    }

    /// Parses and lowers a PTX module; allocates and initializes its `.global`/`.const` variables.
    /// Parsing and lowering happen once per module text per process ([`module_cache`]): loading the
    /// same text again, on any device, reuses them (a module with `.global`/`.const` variables is
    /// re-lowered against this device's addresses, from the cached parse).
    pub fn load_module(&self, ptx: &str) -> Result<Arc<Module>, EmuError> {
        let cached = module_cache::get(ptx)?;
        let ast = &cached.ast;
        let globals = lower::module_globals(ast)?;
        let mut addrs = HashMap::new();
        {
            let mut mem = self.mem();
            for g in globals {
                let a = match mem.alloc_zeroed(g.size as usize) {
                    Ok(a) => a,
                    Err(e) => {
                        for a in addrs.values() {
                            let _ = mem.free(*a);
                        }
                        return Err(e);
                    }
                };
                addrs.insert(g.name, a);
                if !g.init.is_empty() {
                    mem.write(a, &g.init)?;
                }
            }
        }
        let lowered = match &cached.prog {
            Some(p) => Ok(p.clone()),
            None => lower::lower(ast, &addrs).map(Arc::new),
        };
        let prog = match lowered {
            Ok(p) => p,
            Err(e) => {
                let mut mem = self.mem();
                for a in addrs.values() {
                    let _ = mem.free(*a);
                }
                return Err(e);
            }
        };
        let kernels = prog
            .kernels
            .iter()
            .enumerate()
            .map(|(i, k)| (k.name.clone(), i))
            .collect();
        let mut warnings = limits::module_warnings(ast);
        for k in &prog.kernels {
            if let Some((line, instruction)) = &k.unsupported {
                warnings.push(format!(
                    "kernel {} contains unsupported PTX at line {line} ({instruction}): launching it is an error",
                    k.name
                ));
            }
        }
        Ok(Arc::new(Module {
            warnings,
            prog,
            kernels,
            device_id: self.id,
        }))
    }

    /// Runs `kernel` with the raw parameter bytes `params` (laid out as CUDA lays them out).
    /// Any check that fired makes this an `EmuError::Check` holding every report.
    pub fn launch(
        &self,
        module: &Module,
        kernel: &str,
        cfg: &LaunchConfig,
        params: &[u8],
    ) -> Result<LaunchReport, EmuError> {
        self.launch_inner(module, kernel, cfg, params, None)
    }

    /// [`Device::launch`] with the speed-of-light model: the report's `prediction` is the launch's
    /// predicted time on `model.arch`. With `model.sample_blocks`, only a sample of the blocks runs
    /// (clusters of consecutive blocks, [`model::sample`]): output buffers are then only partly
    /// written, and the metrics count the sampled blocks. A block that does not fit on an SM of the
    /// arch (registers, shared memory, threads) is an [`EmuError::Usage`].
    pub fn launch_with_model(
        &self,
        module: &Module,
        kernel: &str,
        cfg: &LaunchConfig,
        params: &[u8],
        model: &ModelOptions,
    ) -> Result<LaunchReport, EmuError> {
        self.launch_inner(module, kernel, cfg, params, Some(model))
    }

    fn launch_inner(
        &self,
        module: &Module,
        kernel: &str,
        cfg: &LaunchConfig,
        params: &[u8],
        model: Option<&ModelOptions>,
    ) -> Result<LaunchReport, EmuError> {
        if module.device_id != self.id {
            return Err(EmuError::Usage("module was loaded on another device".into()));
        }
        let &ki = module
            .kernels
            .get(kernel)
            .ok_or_else(|| EmuError::NoKernel(kernel.to_string()))?;
        let k = &module.prog.kernels[ki];
        if let Some((line, instruction)) = &k.unsupported {
            return Err(EmuError::Unsupported {
                line: *line,
                instruction: format!("{instruction} (in kernel {kernel}, which cannot be launched)"),
            });
        }
        if params.len() != k.param_bytes as usize {
            return Err(EmuError::Usage(format!(
                "kernel {kernel} takes {} bytes of parameters, got {}",
                k.param_bytes,
                params.len()
            )));
        }
        limits::check_launch(&module.prog, k, cfg, self.options.max_shared_bytes)?;
        let nblocks = cfg.grid.iter().map(|&g| g as u64).product::<u64>();
        let threads = cfg.block.iter().product::<u32>();
        let shared = limits::shared_bytes(&module.prog, k, cfg.shared_bytes) as u32;
        if let Some(m) = model {
            model::occupancy(&m.arch, threads, m.regs_per_thread, shared).map_err(EmuError::Usage)?;
        }
        let blocks = model.and_then(|m| model::sample(nblocks, m.sample_blocks));
        let nblocks = blocks.as_ref().map_or(nblocks, |b| b.len() as u64);
        let per_block = limits::launch_bytes(&module.prog, k, cfg);
        let start = Instant::now();
        let mem = self.mem();
        let mut workers = match self.options.worker_threads {
            0 => std::thread::available_parallelism().map_or(1, |n| n.get()),
            n => n,
        }
        .clamp(1, 64) as u64;
        if k.cross_block {
            workers = 1;
        }
        // Fewer blocks in flight rather than a launch that does not fit (one must).
        let room = mem.limit().saturating_sub(mem.in_use());
        workers = workers.min(nblocks.max(1)).min((room / per_block.max(1)).max(1));
        let need = per_block.saturating_mul(workers);
        if mem.in_use().saturating_add(need) > mem.limit() {
            return Err(EmuError::OutOfMemory {
                what: format!(
                    "a launch of kernel {kernel} (registers, local, shared and param memory of {} block(s) in \
                     flight, with {} bytes of global memory allocated)",
                    workers,
                    mem.in_use()
                ),
                bytes: need,
                limit: mem.limit(),
            });
        }
        let spec = exec::LaunchSpec {
            prog: &module.prog,
            kernel: ki,
            params,
            grid: cfg.grid,
            block: cfg.block,
            dyn_shared: cfg.shared_bytes,
            checks: self.options.checks,
            workers: workers as usize,
            seed: self.options.schedule_seed,
            approx_seed: match self.options.approx {
                Approx::Exact => None,
                Approx::Perturbed { seed } => Some(seed),
            },
            budget: self.options.max_instructions,
            blocks: blocks.as_deref(),
            model: model.map(|m| model::timeline::Timing::of(&m.arch)),
            block_budget: None,
        };
        let out = exec::launch(&spec, &mem);
        let mut metrics = out.metrics;
        metrics.wall_seconds = start.elapsed().as_secs_f64();
        let printf: Vec<String> = out.printf.into_iter().map(|p| p.1).collect();
        if self.options.printf_stdout && !printf.is_empty() {
            use std::io::Write;
            let mut so = std::io::stdout().lock();
            for p in &printf {
                let _ = so.write_all(p.as_bytes());
            }
            let _ = so.flush();
        }
        if out.budget_hit {
            return Err(EmuError::Budget {
                kernel: kernel.to_string(),
                limit: self.options.max_instructions,
                warps: out.budget_stop,
                reports: out.reports,
                metrics: Box::new(metrics),
            });
        }
        if !out.reports.is_empty() {
            return Err(EmuError::Check {
                kernel: kernel.to_string(),
                reports: out.reports,
                metrics: Box::new(metrics),
            });
        }
        let total = cfg.grid.iter().map(|&g| g as u64).product::<u64>();
        let prediction = match model {
            Some(m) => {
                // A sample misses the cache lines the blocks of a wave share; a probe runs the start of
                // every block of the first wave to see them (model::wave_probe).
                let probe = match &blocks {
                    Some(_) => {
                        let (first, budget) =
                            model::wave_probe(m, &out.traces, total, threads, shared).map_err(EmuError::Usage)?;
                        let list: Vec<u64> = (0..first).collect();
                        let spec = exec::LaunchSpec {
                            blocks: Some(&list),
                            block_budget: Some(budget),
                            checks: crate::Checks::none(),
                            ..spec
                        };
                        exec::launch(&spec, &mem).traces
                    }
                    None => vec![],
                };
                Some(model::predict(m, &out.traces, &probe, total, threads, shared).map_err(EmuError::Usage)?)
            }
            None => None,
        };
        Ok(LaunchReport {
            metrics,
            printf,
            prediction,
        })
    }
}
