//! Regression tests for the fidelity defects public GPU-proven kernels exposed (issue 7, items 1-7):
//! each kernel in `tests/cu/fidelity.cu` is shaped like the case that showed the defect, compiled by
//! nvcc at test time and run with every check on.

mod common;
use common::*;
use ptx_emu::{CheckKind, EmuError, LaunchReport};

fn line_of(ptx: &str, needle: &str) -> u32 {
    ptx.lines()
        .position(|l| l.contains(needle))
        .unwrap_or_else(|| panic!("`{needle}` not in the PTX")) as u32
        + 1
}

/// Launches `kernel(out, x)` on one block of `threads` threads.
fn run2(
    dev: &ptx_emu::Device,
    m: &ptx_emu::Module,
    kernel: &str,
    threads: u32,
    out: u64,
    x: u64,
) -> Result<LaunchReport, EmuError> {
    dev.launch(m, kernel, &cfg([1, 1, 1], [threads, 1, 1], 0), &params(&[out, x]))
}

fn setup_f32(dev: &ptx_emu::Device, n: usize) -> (Vec<f32>, u64, u64) {
    let x: Vec<f32> = (0..n).map(|i| i as f32 * 0.5 + 1.0).collect();
    let xb = upload(dev, &bytes_f32(&x));
    let out = dev.alloc(4 * n).unwrap();
    (x, xb, out)
}

#[test]
fn shuffle_with_a_mask_that_excludes_executing_lanes_is_reported() {
    let Some(ptx) = compile_cu("fidelity.cu") else { return };
    let dev = device(ptx_emu::Checks::default());
    let m = dev.load_module(&ptx).unwrap();
    let (x, xb, out) = setup_f32(&dev, 32);
    let rs = reports(run2(&dev, &m, "partial_mask_shfl", 32, out, xb));
    assert_eq!(rs.len(), 1, "{rs:?}");
    let r = &rs[0];
    assert_eq!(r.kind, CheckKind::Synccheck);
    assert_eq!(r.thread, [16, 0, 0], "the first lane outside the mask");
    assert!(
        r.message.contains("0x0000ffff") && r.message.contains("16 executing lanes"),
        "{}",
        r.message
    );
    let shfl = ptx
        .lines()
        .enumerate()
        .filter(|(_, l)| l.contains("shfl.sync"))
        .map(|(i, _)| i as u32 + 1);
    assert!(shfl.clone().any(|l| l == r.line), "line {} is not a shfl", r.line);

    // The correct form (only lanes 0-15 execute it) is clean and gives lane 0's value to lanes 0-15.
    run2(&dev, &m, "half_warp_shfl", 32, out, xb).unwrap();
    let got = f32s(&download(&dev, out, 128));
    for (l, g) in got.iter().enumerate() {
        assert_eq!(*g, if l < 16 { x[0] } else { x[l] }, "lane {l}");
    }
}

#[test]
fn racecheck_never_names_the_accessing_thread_and_honours_warp_syncs() {
    let Some(ptx) = compile_cu("fidelity.cu") else { return };
    let dev = device(ptx_emu::Checks::default());
    let m = dev.load_module(&ptx).unwrap();
    let (x, xb, out) = setup_f32(&dev, 64);

    // Every lane reads s[0], a shuffle orders the warp, lane 0 writes s[0]: race free.
    run2(&dev, &m, "read_shfl_then_write", 32, out, xb).unwrap();
    let got = f32s(&download(&dev, out, 128));
    let s0 = x[0] + x[0];
    for (l, g) in got.iter().enumerate() {
        assert_eq!(*g, x[0] + x[0] + s0, "lane {l}");
    }

    // Without the shuffle: a WAR hazard at lane 0's write, naming another lane of the warp.
    let rs = reports(run2(&dev, &m, "read_then_write_race", 32, out, xb));
    assert_eq!(rs.len(), 1, "{rs:?}");
    let r = &rs[0];
    assert_eq!(r.kind, CheckKind::Racecheck);
    assert!(r.message.starts_with("WAR"), "{}", r.message);
    assert_eq!(r.thread, [0, 0, 0], "the writer reports");
    assert!(
        !r.message.contains("thread (0,0,0)"),
        "names the writer itself: {}",
        r.message
    );
    assert!(r.message.contains("with thread ("), "{}", r.message);

    // RAW between warps: reported at the reader (thread 40), naming the writer (thread 0).
    let rs = reports(run2(&dev, &m, "cross_warp_raw", 64, out, xb));
    assert_eq!(rs.len(), 1, "{rs:?}");
    let r = &rs[0];
    assert_eq!(r.kind, CheckKind::Racecheck);
    assert!(r.message.starts_with("RAW"), "{}", r.message);
    assert_eq!(r.thread, [40, 0, 0]);
    assert!(r.message.contains("with thread (0,0,0)"), "{}", r.message);
    assert_eq!(r.address, Some(4), "s[1]");
}

#[test]
fn cache_hint_qualifiers_with_double_colons_parse_and_run() {
    let Some(ptx) = compile_cu("fidelity.cu") else { return };
    for q in [
        "cp.async.cg.shared.global.L2::128B",
        "ld.global.L1::evict_last.f32",
        "ld.global.L2::128B.f32",
    ] {
        assert!(ptx.contains(q), "nvcc emitted no {q}");
    }
    let dev = device(ptx_emu::Checks::default());
    let m = dev.load_module(&ptx).unwrap();
    let (x, xb, out) = setup_f32(&dev, 128);
    run2(&dev, &m, "cache_hints", 32, out, xb).unwrap();
    let got = f32s(&download(&dev, out, 128));
    for (t, g) in got.iter().enumerate() {
        assert_eq!(*g, x[4 * t] + x[4 * t + 3] + x[t] + x[32 + t], "thread {t}");
    }
}

#[test]
fn warp_sz_is_the_warp_size() {
    let Some(ptx) = compile_cu("fidelity.cu") else { return };
    assert!(ptx.contains("WARP_SZ"));
    let dev = device(ptx_emu::Checks::default());
    let m = dev.load_module(&ptx).unwrap();
    let out = dev.alloc(4 * 40).unwrap();
    dev.launch(&m, "warp_size", &cfg([1, 1, 1], [40, 1, 1], 0), &params(&[out]))
        .unwrap();
    let got = u32s(&download(&dev, out, 160));
    for (t, g) in got.iter().enumerate() {
        assert_eq!(*g, 32_000 + t as u32 % 32);
    }
}

#[test]
fn an_unsupported_instruction_rejects_only_the_kernels_that_reach_it() {
    let Some(ptx) = compile_cu("fidelity.cu") else { return };
    let dev = device(ptx_emu::Checks::default());
    let m = dev
        .load_module(&ptx)
        .expect("the module loads despite two unsupported instructions");
    let warned: Vec<&String> = m.warnings().iter().filter(|w| w.contains("unsupported")).collect();
    assert_eq!(warned.len(), 2, "{:?}", m.warnings());
    let xs = [5i32, 9, 100];
    let xb = upload(&dev, &xs.iter().flat_map(|v| v.to_le_bytes()).collect::<Vec<_>>());
    let out = dev.alloc(4 * 32).unwrap();
    for (kernel, needle) in [
        ("uses_video_instruction", "vadd.s32.s32.s32.sat"),
        ("calls_video_helper", "vabsdiff.s32.s32.s32"),
    ] {
        match run2(&dev, &m, kernel, 3, out, xb) {
            Err(EmuError::Unsupported { line, instruction }) => {
                assert_eq!(line, line_of(&ptx, needle), "{kernel}");
                assert!(instruction.contains(needle.split('.').next().unwrap()), "{instruction}");
                assert!(instruction.contains(kernel), "{instruction}");
            }
            other => panic!("{kernel}: expected Unsupported, got {other:?}"),
        }
    }
    // Every other kernel of the module runs.
    run2(&dev, &m, "plain_copy", 3, out, xb).unwrap();
    let got = download(&dev, out, 12);
    let got: Vec<i32> = got
        .chunks(4)
        .map(|c| i32::from_le_bytes(c.try_into().unwrap()))
        .collect();
    assert_eq!(got, vec![6, 10, 101]);
}

#[test]
fn metrics_come_with_check_reports_in_the_library_and_the_cli() {
    let Some(ptx) = compile_cu("fidelity.cu") else { return };
    let dev = device(ptx_emu::Checks::default());
    let m = dev.load_module(&ptx).unwrap();
    let (_, xb, _) = setup_f32(&dev, 32);
    let out = dev.alloc(4 * 32).unwrap();
    let mut p = params(&[out, xb]);
    p.extend_from_slice(&32i32.to_le_bytes());
    let r = dev.launch(&m, "oob_after_work", &cfg([1, 1, 1], [33, 1, 1], 0), &p);
    let Err(EmuError::Check { reports, metrics, .. }) = r else {
        panic!("expected a memcheck report, got {r:?}")
    };
    assert_eq!(reports.len(), 1);
    assert_eq!(reports[0].kind, CheckKind::Memcheck);
    assert_eq!(metrics.threads, 33);
    assert_eq!(metrics.global_load_bytes, 33 * 4);
    assert_eq!(metrics.global_store_bytes, 32 * 4, "the faulting store is dropped");
    assert!(metrics.instructions > 33 * 5, "{}", metrics.instructions);

    // The CLI writes --metrics too, and exits 1 for the report.
    let dir = common::scratch_dir("ptx-emu-fidelity");
    let (file, json) = (dir.join("fidelity.ptx"), dir.join("m.json"));
    std::fs::write(&file, &ptx).unwrap();
    let st = std::process::Command::new(env!("CARGO_BIN_EXE_ptx-emu"))
        .arg("run")
        .arg(&file)
        .args(["--kernel", "oob_after_work", "--grid", "1", "--block", "33"])
        .args(["--arg", "buf:zero=128", "--arg", "buf:zero=128", "--arg", "i32:32"])
        .arg("--metrics")
        .arg(&json)
        .output()
        .unwrap();
    assert_eq!(st.status.code(), Some(1), "{}", String::from_utf8_lossy(&st.stderr));
    let j = std::fs::read_to_string(&json).expect("metrics written although a check fired");
    assert!(j.contains("\"global_store_bytes\": 128"), "{j}");
    assert!(j.contains("\"threads\": 33"), "{j}");
}

#[test]
fn cp_async_and_ldmatrix_count_as_shared_traffic() {
    let Some(ptx) = compile_cu("fidelity.cu") else { return };
    let dev = device(ptx_emu::Checks::default());
    let m = dev.load_module(&ptx).unwrap();
    let x: Vec<u32> = (0..128u32).map(|i| i.wrapping_mul(0x9e37_79b9) ^ 0x55aa).collect();
    let xb = upload(&dev, &bytes_u32(&x));
    let out = dev.alloc(4 * 128).unwrap();
    for (pad, conflicts) in [(0i32, 0u64), (1, 2 * 28)] {
        let mut p = params(&[out, xb]);
        p.extend_from_slice(&pad.to_le_bytes());
        let rep = dev
            .launch(&m, "cp_async_ldmatrix", &cfg([1, 1, 1], [32, 1, 1], 0), &p)
            .unwrap();
        let got = u32s(&download(&dev, out, 512));
        for l in 0..32 {
            for i in 0..4 {
                assert_eq!(
                    got[4 * l + i],
                    x[4 * (8 * i + l / 4) + l % 4],
                    "pad {pad} lane {l} matrix {i}"
                );
            }
        }
        let mt = &rep.metrics;
        assert_eq!(mt.shared_store_bytes, 512, "cp.async lands 32 x 16 bytes in shared");
        assert_eq!(mt.shared_load_bytes, 512, "ldmatrix.x4 reads 32 rows of 16 bytes");
        assert_eq!(
            mt.shared_requests, 2,
            "one request for the cp.async, one for the ldmatrix"
        );
        // pad 0: 4 phases of 8 rows x 16 bytes each fill the 32 banks once; pad 1: the 8 rows of a phase
        // share 4 banks (8 wavefronts instead of 1), for both the copy and the ldmatrix.
        assert_eq!(mt.shared_bank_conflicts, conflicts, "pad {pad}");
        assert_eq!(mt.shared_wavefronts, 8 + conflicts, "pad {pad}");
        assert_eq!(
            mt.global_requests, 5,
            "the cp.async reads (one request) and four stores"
        );
    }
}
