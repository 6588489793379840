//! The command-line tool: exit codes, buffers in and out, metrics JSON.

mod common;
use std::process::Command;

fn bin() -> Command {
    Command::new(env!("CARGO_BIN_EXE_ptx-emu"))
}

const SAXPY: &str = ".version 9.2
.target sm_80
.address_size 64
.visible .entry saxpy(.param .u64 y, .param .u64 x, .param .f32 a, .param .u32 n)
{
.reg .pred %p<2>;
.reg .b32 %r<8>;
.reg .f32 %f<4>;
.reg .b64 %rd<8>;
ld.param.u64 %rd1, [y];
ld.param.u64 %rd2, [x];
ld.param.f32 %f1, [a];
ld.param.u32 %r1, [n];
mov.u32 %r2, %tid.x;
mov.u32 %r3, %ctaid.x;
mov.u32 %r4, %ntid.x;
mad.lo.s32 %r5, %r3, %r4, %r2;
setp.ge.u32 %p1, %r5, %r1;
@%p1 bra $L_end;
mul.wide.u32 %rd3, %r5, 4;
add.s64 %rd4, %rd2, %rd3;
add.s64 %rd5, %rd1, %rd3;
ld.global.f32 %f2, [%rd4];
ld.global.f32 %f3, [%rd5];
fma.rn.f32 %f3, %f1, %f2, %f3;
st.global.f32 [%rd5], %f3;
$L_end:
ret;
}
";

#[test]
fn cli_runs_and_reports() {
    let dir = common::scratch_dir("ptx-emu-cli");
    let ptx = dir.join("saxpy.ptx");
    std::fs::write(&ptx, SAXPY).unwrap();
    let x: Vec<u8> = (0..64).flat_map(|i| (i as f32).to_le_bytes()).collect();
    std::fs::write(dir.join("x.bin"), &x).unwrap();
    let (yout, metrics) = (dir.join("y.bin"), dir.join("m.json"));
    let st = bin()
        .arg("run")
        .arg(&ptx)
        .args(["--kernel", "saxpy", "--grid", "2", "--block", "32,1,1"])
        .args(["--arg", &format!("buf:zero=256,out={}", yout.display())])
        .args(["--arg", &format!("buf:in={}", dir.join("x.bin").display())])
        .args(["--arg", "f32:2.5", "--arg", "u32:64"])
        .args(["--metrics", metrics.to_str().unwrap()])
        .output()
        .unwrap();
    assert_eq!(st.status.code(), Some(0), "{}", String::from_utf8_lossy(&st.stderr));
    let y: Vec<f32> = std::fs::read(&yout)
        .unwrap()
        .chunks(4)
        .map(|c| f32::from_le_bytes(c.try_into().unwrap()))
        .collect();
    assert_eq!(y, (0..64).map(|i| 2.5 * i as f32).collect::<Vec<_>>());
    let json = std::fs::read_to_string(&metrics).unwrap();
    assert!(
        json.contains("\"instructions\":") && json.contains("\"wall_seconds\":"),
        "{json}"
    );

    // y poisoned: initcheck fires -> exit 1 with the report on stderr
    let st = bin()
        .arg("run")
        .arg(&ptx)
        .args(["--kernel", "saxpy", "--grid", "2", "--block", "32"])
        .args([
            "--arg",
            "buf:poison=256",
            "--arg",
            "buf:zero=256",
            "--arg",
            "f32:1",
            "--arg",
            "u32:64",
        ])
        .output()
        .unwrap();
    assert_eq!(st.status.code(), Some(1));
    assert!(String::from_utf8_lossy(&st.stderr).contains("initcheck"));
    // ... unless initcheck is off
    let st = bin()
        .arg("run")
        .arg(&ptx)
        .args([
            "--kernel",
            "saxpy",
            "--grid",
            "2",
            "--block",
            "32",
            "--no-check",
            "initcheck",
        ])
        .args([
            "--arg",
            "buf:poison=256",
            "--arg",
            "buf:zero=256",
            "--arg",
            "f32:1",
            "--arg",
            "u32:64",
        ])
        .output()
        .unwrap();
    assert_eq!(st.status.code(), Some(0));
    // n too large for the buffers: memcheck -> exit 1
    let st = bin()
        .arg("run")
        .arg(&ptx)
        .args(["--kernel", "saxpy", "--grid", "2", "--block", "32"])
        .args([
            "--arg",
            "buf:zero=128",
            "--arg",
            "buf:zero=256",
            "--arg",
            "f32:1",
            "--arg",
            "u32:64",
        ])
        .output()
        .unwrap();
    assert_eq!(st.status.code(), Some(1));
    assert!(String::from_utf8_lossy(&st.stderr).contains("memcheck"));
    // usage error and parse error -> exit 2
    let st = bin().args(["run", "--kernel", "x"]).output().unwrap();
    assert_eq!(st.status.code(), Some(2));
    std::fs::write(
        dir.join("bad.ptx"),
        ".version 9.2\n.target sm_80\n.address_size 64\n.visible .entry k() { foo.bar %r1; }\n",
    )
    .unwrap();
    let st = bin()
        .arg("run")
        .arg(dir.join("bad.ptx"))
        .args(["--kernel", "k", "--grid", "1", "--block", "1"])
        .output()
        .unwrap();
    assert_eq!(st.status.code(), Some(2));
    assert!(String::from_utf8_lossy(&st.stderr).contains("line 4"));
}

/// Writes `ptx` to a fresh file and runs `ptx-emu run FILE ARGS...`; returns (exit code, stderr).
fn run_cli(name: &str, ptx: &str, args: &[&str]) -> (Option<i32>, String) {
    let dir = common::scratch_dir("ptx-emu-cli");
    let file = dir.join(format!("{name}.ptx"));
    std::fs::write(&file, ptx).unwrap();
    let out = bin().arg("run").arg(&file).args(args).output().unwrap();
    (out.status.code(), String::from_utf8_lossy(&out.stderr).into_owned())
}

const SPIN: &str = ".version 9.2
.target sm_80
.address_size 64
.visible .entry spin(.param .u64 p)
{
.reg .b32 %r<4>;
$L_loop:
bar.sync 0;
add.s32 %r1, %r1, 1;
bra.uni $L_loop;
}
";

#[test]
fn cli_instruction_budget_is_exit_1_naming_the_line() {
    let t = std::time::Instant::now();
    let args = [
        "--kernel",
        "spin",
        "--grid",
        "2",
        "--block",
        "64",
        "--arg",
        "buf:zero=64",
    ];
    let (code, err) = run_cli("spin", SPIN, &[&args[..], &["--max-instructions", "100000"]].concat());
    assert_eq!(code, Some(1), "{err}");
    assert!(
        err.contains("instruction budget") && err.contains("kernel spin"),
        "{err}"
    );
    assert!(
        err.contains("block (0,0,0) warp 1") && err.contains("PTX line"),
        "{err}"
    );
    assert!(err.contains("more than 100000"), "{err}");
    // the default budget also ends it, within seconds
    let (code, err) = run_cli("spin", SPIN, &args);
    assert_eq!(code, Some(1), "{err}");
    assert!(t.elapsed() < std::time::Duration::from_secs(60), "{:?}", t.elapsed());
    let (code, err) = run_cli("spin", SPIN, &[&args[..], &["--max-instructions", "x"]].concat());
    assert_eq!(code, Some(2), "{err}");
}

#[test]
fn cli_huge_buffers_are_an_error_not_an_abort() {
    let args = ["--kernel", "saxpy", "--grid", "1", "--block", "32"];
    for buf in ["buf:zero=100000000000", "buf:poison=100000000000"] {
        let (code, err) = run_cli(
            "saxpy_big",
            SAXPY,
            &[
                &args[..],
                &[
                    "--arg",
                    buf,
                    "--arg",
                    "buf:zero=256",
                    "--arg",
                    "f32:1",
                    "--arg",
                    "u32:8",
                ],
            ]
            .concat(),
        );
        assert_eq!(code, Some(2), "{err}");
        assert!(err.contains("out of device memory"), "{err}");
    }
    // a buffer within a lower --memory-limit works, a larger one is refused
    let ok = [
        &args[..],
        &[
            "--arg",
            "buf:zero=256",
            "--arg",
            "buf:zero=256",
            "--arg",
            "f32:1",
            "--arg",
            "u32:8",
        ],
    ]
    .concat();
    let (code, err) = run_cli("saxpy_big", SAXPY, &[&ok[..], &["--memory-limit", "65536"]].concat());
    assert_eq!(code, Some(0), "{err}");
    let (code, err) = run_cli("saxpy_big", SAXPY, &[&ok[..], &["--memory-limit", "300"]].concat());
    assert_eq!(code, Some(2), "{err}");
    // a 1 GiB poisoned output buffer does not cost 1.125 GiB up front (the launch is immediate)
    let t = std::time::Instant::now();
    let (code, err) = run_cli(
        "saxpy_big",
        SAXPY,
        &[
            &args[..],
            &[
                "--arg",
                "buf:poison=1073741824",
                "--arg",
                "buf:zero=256",
                "--arg",
                "f32:1",
                "--arg",
                "u32:0",
            ],
        ]
        .concat(),
    );
    assert_eq!(code, Some(0), "{err}");
    assert!(t.elapsed() < std::time::Duration::from_secs(5), "{:?}", t.elapsed());
}

#[test]
fn cli_launch_limits_are_usage_errors() {
    let bufs = [
        "--arg",
        "buf:zero=256",
        "--arg",
        "buf:zero=256",
        "--arg",
        "f32:1",
        "--arg",
        "u32:8",
    ];
    for (grid, block, shared, what) in [
        ("2147483648", "32", "0", "grid"),
        ("1,65536", "32", "0", "grid"),
        ("0", "32", "0", "zero dimension"),
        ("1", "1025", "0", "[1024, 1024, 64]"),
        ("1", "1,1,65", "0", "block"),
        ("1", "32", "300000", "shared memory"),
    ] {
        let args = [
            "--kernel", "saxpy", "--grid", grid, "--block", block, "--shared", shared,
        ];
        let (code, err) = run_cli("saxpy_limits", SAXPY, &[&args[..], &bufs[..]].concat());
        assert_eq!(code, Some(2), "{grid} {block} {shared}: {err}");
        assert!(err.contains(what), "{what}: {err}");
    }
}

const STRUCT_ARG: &str = ".version 9.2
.target sm_80
.address_size 64
.visible .entry st(.param .align 8 .b8 st_param_0[16])
{
.reg .b32 %r<4>;
.reg .b64 %rd<4>;
ld.param.u64 %rd1, [st_param_0];
ld.param.u32 %r1, [st_param_0+8];
st.global.u32 [%rd1], %r1;
ret;
}
";

#[test]
fn cli_arguments_must_match_the_parameters() {
    let run = |args: &[&str]| {
        let base = ["--kernel", "saxpy", "--grid", "1", "--block", "32"];
        run_cli("saxpy_args", SAXPY, &[&base[..], args].concat())
    };
    // too few: the missing parameter is not zero-filled
    let (code, err) = run(&["--arg", "buf:zero=256", "--arg", "buf:zero=256", "--arg", "f32:1"]);
    assert_eq!(code, Some(2), "{err}");
    assert!(err.contains("4 parameter(s)") && err.contains("3 --arg"), "{err}");
    let (code, err) = run(&[]);
    assert_eq!(code, Some(2), "{err}");
    assert!(err.contains("0 --arg"), "{err}");
    // too many
    let (code, err) = run(&[
        "--arg",
        "buf:zero=256",
        "--arg",
        "buf:zero=256",
        "--arg",
        "f32:1",
        "--arg",
        "u32:8",
        "--arg",
        "u32:1",
    ]);
    assert_eq!(code, Some(2), "{err}");
    assert!(err.contains("5 --arg"), "{err}");
    // a scalar of the wrong size
    let (code, err) = run(&[
        "--arg",
        "buf:zero=256",
        "--arg",
        "buf:zero=256",
        "--arg",
        "f64:1",
        "--arg",
        "u32:8",
    ]);
    assert_eq!(code, Some(2), "{err}");
    assert!(err.contains("has 4 bytes, the --arg gives 8"), "{err}");

    // a single by-value struct { u64 p; u32 n; } (16 bytes): the fields pack with C alignment
    let srun = |args: &[&str]| {
        let base = ["--kernel", "st", "--grid", "1", "--block", "1"];
        run_cli("struct_args", STRUCT_ARG, &[&base[..], args].concat())
    };
    let (code, err) = srun(&["--arg", "buf:zero=16", "--arg", "u32:5"]);
    assert_eq!(code, Some(0), "{err}");
    let (code, err) = srun(&["--arg", "buf:zero=16"]);
    assert_eq!(code, Some(2), "{err}");
    assert!(err.contains("has 16 bytes, the --arg gives 8"), "{err}");
    let (code, err) = srun(&["--arg", "u32:1", "--arg", "u32:5"]);
    assert_eq!(code, Some(2), "{err}");
    assert!(err.contains("pack into 8 bytes") && err.contains("has 16"), "{err}");
    let (code, err) = srun(&[
        "--arg",
        "buf:zero=16",
        "--arg",
        "u32:5",
        "--arg",
        "u32:6",
        "--arg",
        "u32:7",
    ]);
    assert_eq!(code, Some(2), "{err}");
    assert!(err.contains("exceed the 16-byte parameter struct"), "{err}");
    let (code, err) = srun(&[]);
    assert_eq!(code, Some(2), "{err}");
}

#[test]
fn cli_warns_about_a_newer_ptx_version() {
    let args = [
        "--kernel",
        "st",
        "--grid",
        "1",
        "--block",
        "1",
        "--arg",
        "buf:zero=16",
        "--arg",
        "u32:5",
    ];
    let newer = STRUCT_ARG.replace(".version 9.2", ".version 9.9");
    let (code, err) = run_cli("struct_newer", &newer, &args);
    assert_eq!(code, Some(0), "{err}");
    assert!(err.contains("warning: .version 9.9: newer than PTX ISA 9.2"), "{err}");
    let (code, err) = run_cli("struct_same", STRUCT_ARG, &args);
    assert_eq!(code, Some(0), "{err}");
    assert!(!err.contains("warning"), "{err}");
    // the library exposes the same warnings; sm_90a is a known target
    let dev = ptx_emu::Device::new(ptx_emu::Options::default());
    let m = dev.load_module(&newer.replace("sm_80", "sm_90a")).unwrap();
    assert_eq!(m.warnings().len(), 1, "{:?}", m.warnings());
    let m = dev.load_module(&STRUCT_ARG.replace("sm_80", "gfx90a")).unwrap();
    assert!(m.warnings()[0].contains(".target gfx90a"), "{:?}", m.warnings());
    assert!(dev.load_module(STRUCT_ARG).unwrap().warnings().is_empty());
}

/// `--model`: a summary on stdout, a "model" object in the metrics JSON; ptxas gives the registers
/// when `--regs` is absent; without ptxas, `--regs` is required (exit 2 saying so).
#[test]
fn cli_model_predicts_and_needs_registers() {
    let dir = common::scratch_dir("ptx-emu-cli-model");
    let ptx = dir.join("saxpy.ptx");
    std::fs::write(&ptx, SAXPY).unwrap();
    let metrics = dir.join("m.json");
    let launch = |extra: &[&str], nvcc: Option<&str>| {
        let mut c = bin();
        c.arg("run")
            .arg(&ptx)
            .args(["--kernel", "saxpy", "--grid", "64", "--block", "256"])
            .args([
                "--arg",
                "buf:zero=65536",
                "--arg",
                "buf:zero=65536",
                "--arg",
                "f32:2",
                "--arg",
                "u32:16384",
            ])
            .args(["--metrics", metrics.to_str().unwrap()])
            .args(extra);
        if let Some(n) = nvcc {
            c.env("NVCC", n);
        }
        c.output().unwrap()
    };
    let out = launch(&["--model", "h100-sxm", "--regs", "16", "--sample-blocks", "8"], None);
    assert_eq!(out.status.code(), Some(0), "{}", String::from_utf8_lossy(&out.stderr));
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(
        stdout.contains("model h100-sxm:") && stdout.contains("8 of 64 blocks emulated"),
        "{stdout}"
    );
    let json = std::fs::read_to_string(&metrics).unwrap();
    for key in [
        "\"model\": {\"arch\": \"h100-sxm\"",
        "\"seconds\":",
        "\"limiter\": \"launch\"",
        "\"units\": {",
        "\"occupancy\": {",
        "\"waves\":",
    ] {
        assert!(json.contains(key), "{key} missing from {json}");
    }
    assert_eq!(json.matches('{').count(), json.matches('}').count(), "{json}");
    // No ptxas (NVCC names nothing): --regs is required.
    let out = launch(&["--model", "a100-sxm4-80gb"], Some("/nonexistent/nvcc"));
    assert_eq!(out.status.code(), Some(2));
    assert!(
        String::from_utf8_lossy(&out.stderr).contains("give --regs N"),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let out = launch(&["--model", "b200", "--regs", "16"], None);
    assert_eq!(out.status.code(), Some(2));
    assert!(String::from_utf8_lossy(&out.stderr).contains("unknown --model `b200`"));
    let out = launch(&["--regs", "16"], None);
    assert_eq!(out.status.code(), Some(2), "--regs without --model");
    let out = launch(&["--model", "h100-sxm", "--regs", "16", "--sample-blocks", "0"], None);
    assert_eq!(out.status.code(), Some(2));
    assert!(String::from_utf8_lossy(&out.stderr).contains("at least 1"));
    // With ptxas at hand, the registers come from it.
    if ptx_emu::model::ptxas::find_ptxas().is_ok() {
        let out = launch(&["--model", "a100-sxm4-80gb"], None);
        assert_eq!(out.status.code(), Some(0), "{}", String::from_utf8_lossy(&out.stderr));
        let json = std::fs::read_to_string(&metrics).unwrap();
        assert!(json.contains("\"regs_per_thread\": "), "{json}");
    }
    let archs = bin().arg("archs").output().unwrap();
    assert_eq!(archs.status.code(), Some(0));
    let text = String::from_utf8_lossy(&archs.stdout);
    for name in [
        "a100-sxm4-40gb",
        "a100-sxm4-80gb",
        "a100-pcie-80gb",
        "h100-sxm",
        "h100-pcie",
        "h200",
        "l4",
        "rtx-a6000",
        "rtx-4090",
        "rtx-5090",
    ] {
        assert!(text.contains(name), "{name}");
    }
    assert!(text.contains("NV-AMP-WP:"), "sources listed");
}
