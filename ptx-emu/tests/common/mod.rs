//! Shared test helpers: run one instruction on chosen inputs, run hand-written PTX, compile .cu with nvcc.
#![allow(dead_code)]

use ptx_emu::{Checks, Device, EmuError, LaunchConfig, Options};

pub const HEADER: &str = ".version 9.2\n.target sm_80\n.address_size 64\n";

/// Runs `body` in a one-thread kernel. Inputs are loaded into the 64-bit registers %x0..%x7, and
/// %y0..%y3 are stored back (all `.b64`, so any instruction width can use them). `%p0..%p3` are
/// predicates, `%t0..%t3` scratch.
pub fn eval(body: &str, inputs: &[u64]) -> Vec<u64> {
    try_eval(body, inputs).unwrap_or_else(|e| panic!("{body}: {e}"))
}

/// Runs every `(instruction body, inputs, expected first output)` of a table with [`eval`] and fails
/// once, listing every case that differs.
pub fn check_table(cases: &[(&str, &[u64], u64)]) {
    let failures: Vec<String> = cases
        .iter()
        .filter_map(|(body, inputs, want)| {
            let got = eval(body, inputs)[0];
            (got != *want).then(|| format!("{body} {inputs:x?}: got {got:#x}, want {want:#x}"))
        })
        .collect();
    assert!(
        failures.is_empty(),
        "{} failures:\n{}",
        failures.len(),
        failures.join("\n")
    );
}

pub fn try_eval(body: &str, inputs: &[u64]) -> Result<Vec<u64>, EmuError> {
    let mut src = String::from(HEADER);
    src.push_str(".visible .entry t(.param .u64 p_out, .param .u64 p_in)\n{\n");
    src.push_str(".reg .b64 %x<8>;\n.reg .b64 %y<4>;\n.reg .b64 %t<4>;\n.reg .pred %p<4>;\n.reg .b64 %rd<4>;\n");
    src.push_str("ld.param.u64 %rd1, [p_out];\nld.param.u64 %rd2, [p_in];\n");
    for i in 0..8 {
        src.push_str(&format!("ld.global.u64 %x{i}, [%rd2+{}];\n", 8 * i));
    }
    src.push_str("mov.b64 %y0, 0;\nmov.b64 %y1, 0;\nmov.b64 %y2, 0;\nmov.b64 %y3, 0;\n");
    src.push_str(body);
    src.push('\n');
    for i in 0..4 {
        src.push_str(&format!("st.global.u64 [%rd1+{}], %y{i};\n", 8 * i));
    }
    src.push_str("ret;\n}\n");
    let dev = Device::new(Options::default());
    let m = dev.load_module(&src)?;
    let mut inp = [0u64; 8];
    inp[..inputs.len()].copy_from_slice(inputs);
    let bytes: Vec<u8> = inp.iter().flat_map(|v| v.to_le_bytes()).collect();
    let pin = dev.alloc(64)?;
    dev.write(pin, &bytes)?;
    let pout = dev.alloc(32)?;
    dev.write(pout, &[0; 32])?;
    let mut params = pout.to_le_bytes().to_vec();
    params.extend_from_slice(&pin.to_le_bytes());
    dev.launch(
        &m,
        "t",
        &LaunchConfig {
            grid: [1, 1, 1],
            block: [1, 1, 1],
            shared_bytes: 0,
        },
        &params,
    )?;
    let mut out = [0u8; 32];
    dev.read(pout, &mut out)?;
    Ok(out
        .chunks(8)
        .map(|c| u64::from_le_bytes(c.try_into().unwrap()))
        .collect())
}

pub fn f32b(x: f32) -> u64 {
    x.to_bits() as u64
}

pub fn f64b(x: f64) -> u64 {
    x.to_bits()
}

/// A device with every check on, or the given checks.
pub fn device(checks: Checks) -> Device {
    Device::new(Options {
        checks,
        ..Options::default()
    })
}

/// Allocates and fills a buffer.
pub fn upload(dev: &Device, data: &[u8]) -> u64 {
    let a = dev.alloc(data.len()).unwrap();
    dev.write(a, data).unwrap();
    a
}

pub fn download(dev: &Device, addr: u64, n: usize) -> Vec<u8> {
    let mut v = vec![0u8; n];
    dev.read(addr, &mut v).unwrap();
    v
}

pub fn f32s(b: &[u8]) -> Vec<f32> {
    b.chunks(4).map(|c| f32::from_le_bytes(c.try_into().unwrap())).collect()
}

pub fn u32s(b: &[u8]) -> Vec<u32> {
    b.chunks(4).map(|c| u32::from_le_bytes(c.try_into().unwrap())).collect()
}

pub fn bytes_f32(v: &[f32]) -> Vec<u8> {
    v.iter().flat_map(|x| x.to_le_bytes()).collect()
}

pub fn bytes_u32(v: &[u32]) -> Vec<u8> {
    v.iter().flat_map(|x| x.to_le_bytes()).collect()
}

/// Parameter blob of u64 pointers / scalars (8-byte aligned each).
pub fn params(vals: &[u64]) -> Vec<u8> {
    vals.iter().flat_map(|v| v.to_le_bytes()).collect()
}

pub fn cfg(grid: [u32; 3], block: [u32; 3], shared: u32) -> LaunchConfig {
    LaunchConfig {
        grid,
        block,
        shared_bytes: shared,
    }
}

/// A fresh directory under the temp dir, unique to this call (process id and a per-process counter):
/// tests run on parallel threads, so a directory shared by name would let one test read or overwrite a
/// file another is writing.
pub fn scratch_dir(tag: &str) -> std::path::PathBuf {
    static NEXT: std::sync::atomic::AtomicU64 = std::sync::atomic::AtomicU64::new(0);
    let n = NEXT.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
    let dir = std::env::temp_dir().join(format!("{tag}-{}-{n}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    dir
}

/// Compiles a .cu file from tests/cu to PTX with nvcc; None (with a printed reason) when nvcc is missing
/// and CI is not set; panics when CI is set.
pub fn compile_cu(name: &str) -> Option<String> {
    let nvcc = match ptx_emu::nvcc::find_nvcc() {
        Ok(n) => n,
        Err(e) => {
            if std::env::var_os("CI").is_some() {
                panic!("nvcc is required when CI is set: {e}");
            }
            eprintln!("SKIP {name}: nvcc not found ({e})");
            return None;
        }
    };
    let src = std::path::Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("tests/cu")
        .join(name);
    // Tests run on parallel threads of one process, and several compile the same file: each call
    // writes its own output file, so no test reads PTX another nvcc is still writing.
    let out = scratch_dir("ptx-emu-tests").join(format!("{name}.ptx"));
    let st = std::process::Command::new(&nvcc)
        .args(["-O3", "-ptx", "-arch=compute_80", "-o"])
        .arg(&out)
        .arg(&src)
        .output()
        .expect("run nvcc");
    assert!(
        st.status.success(),
        "nvcc failed on {name}: {}",
        String::from_utf8_lossy(&st.stderr)
    );
    Some(std::fs::read_to_string(out).unwrap())
}

/// The reports of a failed launch, or a panic naming what happened instead.
pub fn reports(r: Result<ptx_emu::LaunchReport, EmuError>) -> Vec<ptx_emu::CheckReport> {
    match r {
        Err(EmuError::Check { reports, .. }) => reports,
        Err(e) => panic!("expected check reports, got error {e}"),
        Ok(_) => panic!("expected check reports, the launch ran clean"),
    }
}

/// Like `eval`, for `n` threads in one block: lane i gets inputs[i] in %x0..%x3 plus its %tid.x in %x7;
/// returns each thread's %y0..%y3.
pub fn eval_threads(body: &str, inputs: &[[u64; 4]], block: u32) -> Result<Vec<[u64; 4]>, EmuError> {
    let mut src = String::from(HEADER);
    src.push_str(".visible .entry t(.param .u64 p_out, .param .u64 p_in)\n{\n");
    src.push_str(".reg .b64 %x<8>;\n.reg .b64 %y<4>;\n.reg .b64 %t<4>;\n.reg .pred %p<4>;\n.reg .b64 %rd<8>;\n.reg .b32 %r<4>;\n");
    src.push_str("ld.param.u64 %rd1, [p_out];\nld.param.u64 %rd2, [p_in];\nmov.u32 %r0, %tid.x;\n");
    src.push_str(
        "cvt.u64.u32 %x7, %r0;\nshl.b64 %rd3, %x7, 5;\nadd.s64 %rd4, %rd2, %rd3;\nadd.s64 %rd5, %rd1, %rd3;\n",
    );
    for i in 0..4 {
        src.push_str(&format!("ld.global.u64 %x{i}, [%rd4+{}];\n", 8 * i));
    }
    src.push_str("mov.b64 %y0, 0;\nmov.b64 %y1, 0;\nmov.b64 %y2, 0;\nmov.b64 %y3, 0;\n");
    src.push_str(body);
    src.push('\n');
    for i in 0..4 {
        src.push_str(&format!("st.global.u64 [%rd5+{}], %y{i};\n", 8 * i));
    }
    src.push_str("ret;\n}\n");
    let dev = Device::new(Options::default());
    let m = dev.load_module(&src)?;
    let n = block as usize;
    let mut bytes = vec![0u8; 32 * n];
    for (i, v) in inputs.iter().enumerate().take(n) {
        for (k, x) in v.iter().enumerate() {
            bytes[32 * i + 8 * k..32 * i + 8 * k + 8].copy_from_slice(&x.to_le_bytes());
        }
    }
    let pin = upload(&dev, &bytes);
    let pout = upload(&dev, &vec![0u8; 32 * n]);
    dev.launch(&m, "t", &cfg([1, 1, 1], [block, 1, 1], 0), &params(&[pout, pin]))?;
    let out = download(&dev, pout, 32 * n);
    Ok(out
        .chunks(32)
        .map(|c| {
            let mut v = [0u64; 4];
            for k in 0..4 {
                v[k] = u64::from_le_bytes(c[8 * k..8 * k + 8].try_into().unwrap());
            }
            v
        })
        .collect())
}

/// Inputs where lane i has %x0 = f(i).
pub fn lanes_x0(n: usize, f: impl Fn(usize) -> u64) -> Vec<[u64; 4]> {
    (0..n).map(|i| [f(i), 0, 0, 0]).collect()
}

// ---- helpers of the nvcc-compiled kernel tests (kernels.rs, kernels_llama.rs) ----

pub fn lcg(seed: u32, n: usize) -> Vec<u32> {
    let mut s = seed;
    (0..n)
        .map(|_| {
            s = s.wrapping_mul(1_664_525).wrapping_add(1_013_904_223);
            s >> 8
        })
        .collect()
}

pub fn rand_f32(seed: u32, n: usize) -> Vec<f32> {
    lcg(seed, n).iter().map(|&v| (v % 2000) as f32 / 1000.0 - 1.0).collect()
}

pub fn setup(name: &str) -> Option<(Device, std::sync::Arc<ptx_emu::Module>)> {
    let ptx = compile_cu(name)?;
    let dev = device(Checks::all());
    let m = dev.load_module(&ptx).unwrap_or_else(|e| panic!("{name}: {e}"));
    Some((dev, m))
}

pub fn close(a: f32, b: f64, rtol: f64, atol: f64) -> bool {
    ((a as f64) - b).abs() <= atol + rtol * b.abs()
}

pub fn bf16_round(x: f32) -> f32 {
    let b = x.to_bits();
    let r = b.wrapping_add(0x7fff + ((b >> 16) & 1));
    f32::from_bits(r & 0xffff_0000)
}

/// f32 -> f16 bits, round to nearest even (normal range only: test inputs stay within it).
pub fn f16_round_bits(x: f32) -> u16 {
    if x == 0.0 {
        return 0;
    }
    let b = x.to_bits();
    let sign = ((b >> 16) & 0x8000) as u16;
    let e = ((b >> 23) & 0xff) as i32 - 127;
    if e < -14 {
        return sign; // flush (tests avoid this range)
    }
    let man = b & 0x7f_ffff;
    let mut m = man >> 13;
    let rest = man & 0x1fff;
    let mut e16 = (e + 15) as u32;
    if rest > 0x1000 || (rest == 0x1000 && m & 1 == 1) {
        m += 1;
        if m == 0x400 {
            m = 0;
            e16 += 1;
        }
    }
    sign | ((e16 as u16) << 10) | m as u16
}

pub fn f16_val(h: u16) -> f32 {
    let e = ((h >> 10) & 0x1f) as i32;
    let m = (h & 0x3ff) as f32;
    let v = if e == 0 {
        m * 2f32.powi(-24)
    } else {
        (1.0 + m / 1024.0) * 2f32.powi(e - 15)
    };
    if h & 0x8000 != 0 {
        -v
    } else {
        v
    }
}
