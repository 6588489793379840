//! `ptx-emu run FILE.ptx --kernel NAME --grid X[,Y[,Z]] --block X[,Y[,Z]] [--shared BYTES] --arg ...
//! [--model ARCH [--regs N] [--sample-blocks N]]`; `ptx-emu archs` lists the model's GPUs.
//! Exit 0: ran clean; 1: a check fired or the instruction budget ran out (reports on stderr); 2: parse,
//! unsupported, usage or out-of-memory error.

use ptx_emu::{Checks, Device, EmuError, LaunchConfig, ModelOptions, Options, ParamSlot};

const USAGE: &str = "usage: ptx-emu run FILE.ptx --kernel NAME --grid X[,Y[,Z]] --block X[,Y[,Z]] [--shared BYTES]
    --arg u32:V | i32:V | u64:V | i64:V | f32:V | f64:V      (scalars, in parameter order)
    --arg buf:in=PATH[,out=PATH]      device buffer holding the raw bytes of PATH
    --arg buf:zero=BYTES[,out=PATH]   device buffer of BYTES zero bytes
    --arg buf:poison=BYTES[,out=PATH] device buffer of BYTES that count as never written
    [--metrics PATH] [--no-check memcheck|racecheck|initcheck|synccheck|globalrace|all] [--workers N] [--seed N]
    [--max-instructions N]            warp-instructions the launch may run (default 33554432)
    [--memory-limit BYTES]            device memory (default 4294967296)
    [--approx exact|perturbed]        approximate instructions: correctly rounded (default), or
                                      perturbed within the PTX ISA's bound, seeded by --seed (default 0)
    [--model ARCH]                    predict the launch's time on ARCH (`ptx-emu archs` lists them):
                                      a summary on stdout, a \"model\" object in the --metrics JSON
    [--regs N]                        registers per thread for the model (default: ptxas -v for ARCH)
    [--sample-blocks N]               emulate N blocks (clusters of consecutive ones) and scale up
       ptx-emu archs                  the model's GPUs and where each number comes from
A kernel with one by-value struct parameter gets the --arg values packed in order with C alignment.";

enum Arg {
    Scalar(Vec<u8>),
    Buf { init: BufInit, out: Option<String> },
}

enum BufInit {
    File(String),
    Zero(usize),
    Poison(usize),
}

fn dims(s: &str) -> Result<[u32; 3], String> {
    let v: Vec<u32> = s
        .split(',')
        .map(|x| x.trim().parse::<u32>().map_err(|e| format!("bad dimension `{s}`: {e}")))
        .collect::<Result<_, _>>()?;
    if v.is_empty() || v.len() > 3 {
        return Err(format!("bad dimensions `{s}`"));
    }
    Ok([v[0], *v.get(1).unwrap_or(&1), *v.get(2).unwrap_or(&1)])
}

fn parse_arg(s: &str) -> Result<Arg, String> {
    let (kind, val) = s.split_once(':').ok_or(format!("bad --arg `{s}`"))?;
    let e = |x: &dyn std::fmt::Display| format!("bad --arg `{s}`: {x}");
    Ok(match kind {
        "u32" => Arg::Scalar(val.parse::<u32>().map_err(|x| e(&x))?.to_le_bytes().to_vec()),
        "i32" => Arg::Scalar(val.parse::<i32>().map_err(|x| e(&x))?.to_le_bytes().to_vec()),
        "u64" => Arg::Scalar(val.parse::<u64>().map_err(|x| e(&x))?.to_le_bytes().to_vec()),
        "i64" => Arg::Scalar(val.parse::<i64>().map_err(|x| e(&x))?.to_le_bytes().to_vec()),
        "f32" => Arg::Scalar(val.parse::<f32>().map_err(|x| e(&x))?.to_le_bytes().to_vec()),
        "f64" => Arg::Scalar(val.parse::<f64>().map_err(|x| e(&x))?.to_le_bytes().to_vec()),
        "buf" => {
            let mut init = None;
            let mut out = None;
            for part in val.split(',') {
                let (k, v) = part.split_once('=').ok_or(e(&"expected key=value"))?;
                match k {
                    "in" => init = Some(BufInit::File(v.to_string())),
                    "zero" => init = Some(BufInit::Zero(v.parse().map_err(|x| e(&x))?)),
                    "poison" => init = Some(BufInit::Poison(v.parse().map_err(|x| e(&x))?)),
                    "out" => out = Some(v.to_string()),
                    _ => return Err(e(&format!("unknown key `{k}`"))),
                }
            }
            Arg::Buf {
                init: init.ok_or(e(&"buf needs in=, zero= or poison="))?,
                out,
            }
        }
        _ => return Err(e(&"unknown kind")),
    })
}

/// `ptx-emu archs`: the table, then the sources.
fn archs() -> i32 {
    use ptx_emu::model::arch;
    use std::fmt::Write as _;
    let mut out = String::new();
    let _ = writeln!(
        out,
        "{:<15} {:>4} {:>4} {:>6} {:>9} {:>9} {:>8} {:>6} {:>5} {:>6}",
        "name", "cc", "SMs", "MHz", "FP32 TF", "mma TF", "DRAM GB/s", "L2 MB", "warps", "smem KB"
    );
    for a in arch::all() {
        let _ = writeln!(
            out,
            "{:<15} {:>4} {:>4} {:>6.0} {:>9.1} {:>9.1} {:>8.0} {:>6} {:>5} {:>6}",
            a.name,
            a.cc,
            a.sms,
            a.clock_mhz,
            a.fp32_flops() / 1e12,
            a.mma_flops() / 1e12,
            a.dram_bytes_s / 1e9,
            a.l2_bytes >> 20,
            a.max_warps_sm,
            a.shared_per_sm / 1024
        );
    }
    let _ = writeln!(out, "\nsources (per GPU family):");
    let mut seen = vec![];
    for a in arch::all() {
        if seen.contains(&a.sources.as_ptr()) {
            continue;
        }
        seen.push(a.sources.as_ptr());
        let _ = writeln!(out, "  sm_{} ({}):", a.cc, a.name);
        for (fields, src) in a.sources {
            let _ = writeln!(out, "    {fields}: {src}");
        }
    }
    let _ = writeln!(out, "\nsource keys:");
    for (k, title, url) in arch::SOURCES {
        let _ = writeln!(out, "  {k}: {title}. {url}");
    }
    use std::io::Write as _;
    // A closed pipe (`| head`) is not an error worth a panic.
    let _ = std::io::stdout().write_all(out.as_bytes());
    0
}

fn run(args: &[String]) -> Result<i32, (i32, String)> {
    let usage = |m: String| (2, format!("{m}\n{USAGE}"));
    if args.first().map(String::as_str) == Some("archs") {
        return Ok(archs());
    }
    if args.first().map(String::as_str) != Some("run") {
        return Err(usage("expected the `run` or `archs` command".into()));
    }
    let mut file = None;
    let mut kernel = None;
    let mut grid = None;
    let mut block = None;
    let mut shared = 0u32;
    let mut kargs = vec![];
    let mut metrics_path = None;
    let mut checks = Checks::all();
    let mut workers = 0usize;
    let mut seed = None;
    let mut approx_perturbed = false;
    let mut max_instructions = ptx_emu::DEFAULT_MAX_INSTRUCTIONS;
    let mut memory_limit = ptx_emu::DEFAULT_MEMORY_LIMIT;
    let mut model_arch = None;
    let mut regs = None;
    let mut sample_blocks = None;
    let mut i = 1;
    while i < args.len() {
        let a = args[i].as_str();
        let mut val = || {
            i += 1;
            args.get(i).cloned().ok_or_else(|| usage(format!("{a} needs a value")))
        };
        match a {
            "--kernel" => kernel = Some(val()?),
            "--grid" => grid = Some(dims(&val()?).map_err(usage)?),
            "--block" => block = Some(dims(&val()?).map_err(usage)?),
            "--shared" => shared = val()?.parse().map_err(|e| usage(format!("bad --shared: {e}")))?,
            "--arg" => kargs.push(parse_arg(&val()?).map_err(usage)?),
            "--metrics" => metrics_path = Some(val()?),
            "--seed" => seed = Some(val()?.parse().map_err(|e| usage(format!("bad --seed: {e}")))?),
            "--max-instructions" => {
                max_instructions = val()?
                    .parse()
                    .map_err(|e| usage(format!("bad --max-instructions: {e}")))?
            }
            "--memory-limit" => memory_limit = val()?.parse().map_err(|e| usage(format!("bad --memory-limit: {e}")))?,
            "--approx" => {
                approx_perturbed = match val()?.as_str() {
                    "exact" => false,
                    "perturbed" => true,
                    m => return Err(usage(format!("unknown --approx mode `{m}` (exact or perturbed)"))),
                }
            }
            "--model" => model_arch = Some(val()?),
            "--regs" => regs = Some(val()?.parse::<u32>().map_err(|e| usage(format!("bad --regs: {e}")))?),
            "--sample-blocks" => {
                let n = val()?
                    .parse::<u64>()
                    .map_err(|e| usage(format!("bad --sample-blocks: {e}")))?;
                if n == 0 {
                    return Err(usage("--sample-blocks must be at least 1".into()));
                }
                sample_blocks = Some(n)
            }
            "--workers" => workers = val()?.parse().map_err(|e| usage(format!("bad --workers: {e}")))?,
            "--no-check" => match val()?.as_str() {
                "memcheck" => checks.memcheck = false,
                "racecheck" => checks.racecheck = false,
                "initcheck" => checks.initcheck = false,
                "synccheck" => checks.synccheck = false,
                "globalrace" => checks.globalrace = false,
                "all" => checks = Checks::none(),
                c => return Err(usage(format!("unknown check `{c}`"))),
            },
            "-h" | "--help" => {
                println!("{USAGE}");
                return Ok(0);
            }
            f if !f.starts_with('-') && file.is_none() => file = Some(f.to_string()),
            f => return Err(usage(format!("unknown option `{f}`"))),
        }
        i += 1;
    }
    let file = file.ok_or_else(|| usage("missing FILE.ptx".into()))?;
    let kernel = kernel.ok_or_else(|| usage("missing --kernel".into()))?;
    let grid = grid.ok_or_else(|| usage("missing --grid".into()))?;
    let block = block.ok_or_else(|| usage("missing --block".into()))?;
    let ptx = std::fs::read_to_string(&file).map_err(|e| (2, format!("cannot read {file}: {e}")))?;
    if model_arch.is_none() && (regs.is_some() || sample_blocks.is_some()) {
        return Err(usage("--regs and --sample-blocks need --model ARCH".into()));
    }
    let model = match &model_arch {
        None => None,
        Some(name) => {
            let arch = ptx_emu::model::arch::by_name(name).ok_or_else(|| {
                usage(format!(
                    "unknown --model `{name}` (one of: {})",
                    ptx_emu::model::arch::names()
                ))
            })?;
            let regs = match regs {
                Some(r) => r,
                None => {
                    let r = ptx_emu::model::ptxas::resources(&ptx, &kernel, arch.cc).map_err(|e| {
                        (
                            2,
                            format!("--model needs registers per thread: give --regs N, or install ptxas ({e})"),
                        )
                    })?;
                    r.registers
                }
            };
            Some(ModelOptions {
                arch,
                regs_per_thread: regs,
                sample_blocks,
            })
        }
    };
    let dev = Device::new(Options {
        checks,
        worker_threads: workers,
        schedule_seed: seed,
        max_instructions,
        memory_limit,
        approx: if approx_perturbed {
            ptx_emu::Approx::Perturbed {
                seed: seed.unwrap_or(0),
            }
        } else {
            ptx_emu::Approx::Exact
        },
        ..Options::default()
    });
    let emu = |e: EmuError| (2, e.to_string());
    let module = dev.load_module(&ptx).map_err(emu)?;
    for w in module.warnings() {
        eprintln!("ptx-emu: warning: {w}");
    }
    let (params, total) = module
        .kernel_params(&kernel)
        .ok_or_else(|| (2, format!("no kernel `{kernel}` in {file}")))?;
    // Device buffers first, then the param blob.
    let mut values: Vec<Vec<u8>> = vec![];
    let mut outs: Vec<(u64, usize, String)> = vec![];
    for a in &kargs {
        match a {
            Arg::Scalar(b) => values.push(b.clone()),
            Arg::Buf { init, out } => {
                // Allocate first (a size beyond the device's memory is an error before anything is
                // read), then fill; zero and poison buffers take host memory only where written.
                let (bytes, addr) = match init {
                    BufInit::File(p) => {
                        let len = std::fs::metadata(p)
                            .map_err(|e| (2, format!("cannot read {p}: {e}")))?
                            .len();
                        let addr = dev.alloc(len as usize).map_err(emu)?;
                        let d = std::fs::read(p).map_err(|e| (2, format!("cannot read {p}: {e}")))?;
                        if d.len() as u64 != len {
                            return Err((2, format!("{p} changed size while being read")));
                        }
                        dev.write(addr, &d).map_err(emu)?;
                        (d.len(), addr)
                    }
                    BufInit::Zero(n) => (*n, dev.alloc_zeroed(*n).map_err(emu)?),
                    BufInit::Poison(n) => (*n, dev.alloc(*n).map_err(emu)?),
                };
                if let Some(o) = out {
                    outs.push((addr, bytes, o.clone()));
                }
                values.push(addr.to_le_bytes().to_vec());
            }
        }
    }
    let blob = pack_args(&kernel, &params, total, &values).map_err(usage)?;
    let cfg = LaunchConfig {
        grid,
        block,
        shared_bytes: shared,
    };
    let result = match &model {
        Some(m) => dev.launch_with_model(&module, &kernel, &cfg, &blob, m),
        None => dev.launch(&module, &kernel, &cfg, &blob),
    };
    if let Ok(Some(p)) = result.as_ref().map(|r| r.prediction.as_ref()) {
        print!("{}", p.summary());
    }
    // The metrics file is written whenever the kernel ran, also when a check fired or the budget ran out.
    let metrics = match &result {
        Ok(rep) => Some(&rep.metrics),
        Err(EmuError::Check { metrics, .. } | EmuError::Budget { metrics, .. }) => Some(&**metrics),
        Err(_) => None,
    };
    if let (Some(p), Some(m)) = (&metrics_path, metrics) {
        let mut json = m.to_json();
        if let Ok(Some(pred)) = result.as_ref().map(|r| r.prediction.as_ref()) {
            let end = json.trim_end().len() - 1;
            json.truncate(end);
            json = format!("{},\n  \"model\": {}\n}}\n", json.trim_end(), pred.to_json());
        }
        std::fs::write(p, json).map_err(|e| (2, format!("cannot write {p}: {e}")))?;
    }
    let code = match &result {
        Ok(_) => 0,
        Err(EmuError::Check { .. } | EmuError::Budget { .. }) => {
            eprintln!("{}", result.as_ref().err().map(|e| e.to_string()).unwrap_or_default());
            1
        }
        Err(e) => return Err((2, e.to_string())),
    };
    for (addr, bytes, path) in outs {
        write_back(&dev, addr, bytes, &path)?;
    }
    Ok(code)
}

/// The kernel's parameter bytes from the `--arg` values: one value per parameter, each exactly the
/// parameter's size; or, for a kernel with a single by-value struct parameter, the values packed in
/// order with C alignment, filling exactly the struct's size. Anything else names both counts.
fn pack_args(kernel: &str, params: &[ParamSlot], total: u32, values: &[Vec<u8>]) -> Result<Vec<u8>, String> {
    let mut blob = vec![0u8; total as usize];
    if values.len() == params.len() {
        for (v, (off, size, _)) in values.iter().zip(params) {
            if v.len() != *size as usize {
                return Err(format!(
                    "parameter at offset {off} of kernel `{kernel}` has {size} bytes, the --arg gives {}",
                    v.len()
                ));
            }
            blob[*off as usize..*off as usize + v.len()].copy_from_slice(v);
        }
        return Ok(blob);
    }
    if params.len() != 1 || values.is_empty() {
        return Err(format!(
            "kernel `{kernel}` has {} parameter(s) ({total} bytes), {} --arg given: one --arg per parameter \
             (or, for a single by-value struct parameter, its fields in order)",
            params.len(),
            values.len()
        ));
    }
    // One by-value struct: pack with C alignment; the packed struct must be exactly its size.
    let mut off = 0usize;
    let mut align = 1usize;
    for v in values {
        off = off.div_ceil(v.len()) * v.len();
        align = align.max(v.len());
        if off + v.len() > blob.len() {
            return Err(format!(
                "{} --arg values exceed the {total}-byte parameter struct of kernel `{kernel}`",
                values.len()
            ));
        }
        blob[off..off + v.len()].copy_from_slice(v);
        off += v.len();
    }
    let packed = off.div_ceil(align) * align;
    if packed != total as usize {
        return Err(format!(
            "{} --arg values pack into {packed} bytes, the parameter struct of kernel `{kernel}` has {total}",
            values.len()
        ));
    }
    Ok(blob)
}

/// Writes a device buffer to `path` in chunks (a large buffer never needs a second host copy at once).
fn write_back(dev: &Device, addr: u64, bytes: usize, path: &str) -> Result<(), (i32, String)> {
    use std::io::Write;
    let err = |e: std::io::Error| (2, format!("cannot write {path}: {e}"));
    let mut f = std::io::BufWriter::new(std::fs::File::create(path).map_err(err)?);
    let mut buf = vec![0u8; bytes.min(1 << 20)];
    let mut done = 0;
    while done < bytes {
        let n = (bytes - done).min(buf.len());
        dev.read(addr + done as u64, &mut buf[..n])
            .map_err(|e| (2, e.to_string()))?;
        f.write_all(&buf[..n]).map_err(err)?;
        done += n;
    }
    f.flush().map_err(err)
}

fn main() {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let code = match run(&args) {
        Ok(c) => c,
        Err((c, msg)) => {
            eprintln!("ptx-emu: {msg}");
            c
        }
    };
    std::process::exit(code);
}
