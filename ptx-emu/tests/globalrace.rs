//! The globalrace check: global-memory races between the blocks of one launch, each planted race
//! next to its clean counterpart (`tests/cu/globalrace.cu`); the reports do not depend on the number
//! of worker threads; `Checks::globalrace` / `--no-check globalrace` turn it off.

mod common;
use common::*;
use ptx_emu::{CheckKind, Checks, Device, LaunchReport, Options};

fn dev_with(workers: usize, globalrace: bool) -> Device {
    Device::new(Options {
        worker_threads: workers,
        checks: Checks {
            globalrace,
            ..Checks::all()
        },
        ..Options::default()
    })
}

fn launch(
    dev: &Device,
    m: &ptx_emu::Module,
    kernel: &str,
    grid: u32,
    block: u32,
    p: &[u8],
) -> Result<LaunchReport, ptx_emu::EmuError> {
    dev.launch(m, kernel, &cfg([grid, 1, 1], [block, 1, 1], 0), p)
}

fn with_i32(ptrs: &[u64], v: i32) -> Vec<u8> {
    let mut p = params(ptrs);
    p.extend_from_slice(&v.to_le_bytes());
    p
}

fn floats(dev: &Device, n: usize, seed: u32) -> u64 {
    let v: Vec<f32> = (0..n)
        .map(|i| (((i as u32).wrapping_mul(2654435761) ^ seed) % 1000) as f32 / 100.0 - 5.0)
        .collect();
    upload(dev, &bytes_f32(&v))
}

#[test]
fn two_blocks_writing_the_same_bytes_is_a_race_disjoint_slices_are_not() {
    let Some(ptx) = compile_cu("globalrace.cu") else { return };
    let dev = dev_with(1, true);
    let m = dev.load_module(&ptx).unwrap();
    let (x, out) = (floats(&dev, 4 * 32, 1), dev.alloc(4 * 32).unwrap());
    let rs = reports(launch(&dev, &m, "same_bytes_every_block", 4, 32, &params(&[out, x])));
    assert_eq!(rs.len(), 1, "{rs:?}");
    let r = &rs[0];
    assert_eq!(r.kind, CheckKind::Globalrace);
    assert_eq!(r.block, [1, 0, 0], "the second block to write them");
    assert_eq!(r.thread, [0, 0, 0]);
    assert_eq!(r.address, Some(out));
    assert!(
        r.message.contains("this block writes") && r.message.contains("block (0,0,0) writes"),
        "{}",
        r.message
    );
    assert!(r.message.contains("thread (0,0,0) at PTX line"), "{}", r.message);

    // 2-byte elements, 33 per block: blocks share 4-byte words at their edges, never bytes.
    let n = 5 * 33;
    let x = upload(&dev, &(0..n).flat_map(|i| (i as u16).to_le_bytes()).collect::<Vec<_>>());
    let out = dev.alloc(2 * n).unwrap();
    launch(&dev, &m, "disjoint_slices", 5, 33, &params(&[out, x])).unwrap();
    let got = download(&dev, out, 2 * n);
    for i in 0..n {
        assert_eq!(u16::from_le_bytes([got[2 * i], got[2 * i + 1]]), i as u16 + 1);
    }
}

#[test]
fn reading_what_another_block_writes_is_a_race_in_place_per_block_is_not() {
    let Some(ptx) = compile_cu("globalrace.cu") else { return };
    let dev = dev_with(1, true);
    let m = dev.load_module(&ptx).unwrap();
    let n = 3 * 64;
    let x = floats(&dev, n, 2);
    let rs = reports(launch(&dev, &m, "in_place_shift", 3, 64, &with_i32(&[x], n as i32)));
    assert!(!rs.is_empty());
    let r = &rs[0];
    assert_eq!(r.kind, CheckKind::Globalrace);
    // Block 1 writes x[64], which block 0's last thread read.
    assert_eq!(r.block, [1, 0, 0]);
    assert_eq!(r.address, Some(x + 4 * 64));
    assert!(
        r.message.contains("this block writes") && r.message.contains("block (0,0,0) reads"),
        "{}",
        r.message
    );

    let x = floats(&dev, n, 3);
    let before = f32s(&download(&dev, x, 4 * n));
    launch(&dev, &m, "in_place_scale", 3, 64, &with_i32(&[x], n as i32)).unwrap();
    let after = f32s(&download(&dev, x, 4 * n));
    for i in 0..n {
        assert_eq!(after[i], 2.0 * before[i]);
    }
}

#[test]
fn split_k_needs_atomics_and_a_two_kernel_reduction_is_clean() {
    let Some(ptx) = compile_cu("globalrace.cu") else { return };
    let dev = dev_with(1, true);
    let m = dev.load_module(&ptx).unwrap();
    let (kpb, blocks) = (96, 4u32);
    let (a, b) = (floats(&dev, 96 * 4, 4), floats(&dev, 96 * 4, 5));
    let c = upload(&dev, &0f32.to_le_bytes());
    let rs = reports(launch(
        &dev,
        &m,
        "split_k_store",
        blocks,
        32,
        &with_i32(&[c, a, b], kpb),
    ));
    assert_eq!(rs.len(), 1, "{rs:?}");
    assert_eq!(rs[0].block, [1, 0, 0]);
    assert_eq!(rs[0].address, Some(c));

    dev.write(c, &0f32.to_le_bytes()).unwrap();
    launch(&dev, &m, "split_k_atomic", blocks, 32, &with_i32(&[c, a, b], kpb)).unwrap();
    let av = f32s(&download(&dev, a, 4 * 96 * 4));
    let bv = f32s(&download(&dev, b, 4 * 96 * 4));
    let want: f64 = av.iter().zip(&bv).map(|(x, y)| *x as f64 * *y as f64).sum();
    let got = f32s(&download(&dev, c, 4))[0] as f64;
    assert!((got - want).abs() <= 1e-3 * (1.0 + want.abs()), "{got} vs {want}");

    let nb = 6usize;
    let x = floats(&dev, 64 * nb, 6);
    let partial = dev.alloc(4 * nb).unwrap();
    let out = dev.alloc(4).unwrap();
    launch(&dev, &m, "partial_sums", nb as u32, 64, &params(&[partial, x])).unwrap();
    launch(&dev, &m, "sum_partials", 1, 32, &with_i32(&[out, partial], nb as i32)).unwrap();
    let xv = f32s(&download(&dev, x, 4 * 64 * nb));
    let want: f64 = xv.iter().map(|v| *v as f64).sum();
    let got = f32s(&download(&dev, out, 4))[0] as f64;
    assert!((got - want).abs() <= 1e-3 * (1.0 + want.abs()), "{got} vs {want}");
}

#[test]
fn plain_stores_race_with_atomics_strong_reads_do_not() {
    let Some(ptx) = compile_cu("globalrace.cu") else { return };
    let dev = dev_with(1, true);
    let m = dev.load_module(&ptx).unwrap();
    let counter = upload(&dev, &5u32.to_le_bytes());
    let rs = reports(launch(&dev, &m, "plain_store_vs_atomic", 3, 32, &params(&[counter])));
    assert_eq!(rs.len(), 1, "{rs:?}");
    assert!(rs[0].message.contains("accesses atomically"), "{}", rs[0].message);

    let flag = upload(&dev, &0u32.to_le_bytes());
    let seen = upload(&dev, &[0u8; 16]);
    launch(&dev, &m, "volatile_flag_reads", 4, 32, &params(&[flag, seen])).unwrap();
    // Blocks run in order here: block 0 set the flag before the others read it.
    assert_eq!(u32s(&download(&dev, seen, 16))[1..], [1, 1, 1]);
}

#[test]
fn reports_do_not_depend_on_the_worker_count_and_the_check_can_be_turned_off() {
    let Some(ptx) = compile_cu("globalrace.cu") else { return };
    let runs: Vec<Vec<ptx_emu::CheckReport>> = [1usize, 2, 5]
        .iter()
        .map(|&w| {
            let dev = dev_with(w, true);
            let m = dev.load_module(&ptx).unwrap();
            let (x, out) = (floats(&dev, 16 * 32, 7), dev.alloc(4 * 32).unwrap());
            reports(launch(&dev, &m, "same_bytes_every_block", 16, 32, &params(&[out, x])))
                .into_iter()
                .map(|mut r| {
                    r.address = r.address.map(|a| a - out);
                    r
                })
                .collect()
        })
        .collect();
    assert_eq!(runs[0], runs[1]);
    assert_eq!(runs[0], runs[2]);

    let dev = dev_with(1, false);
    let m = dev.load_module(&ptx).unwrap();
    let (x, out) = (floats(&dev, 4 * 32, 1), dev.alloc(4 * 32).unwrap());
    launch(&dev, &m, "same_bytes_every_block", 4, 32, &params(&[out, x])).unwrap();

    // The CLI: exit 1 with the report; --no-check globalrace: exit 0.
    let dir = common::scratch_dir("ptx-emu-globalrace");
    let file = dir.join("g.ptx");
    std::fs::write(&file, &ptx).unwrap();
    let cli = |extra: &[&str]| {
        std::process::Command::new(env!("CARGO_BIN_EXE_ptx-emu"))
            .arg("run")
            .arg(&file)
            .args(["--kernel", "same_bytes_every_block", "--grid", "3", "--block", "32"])
            .args(["--arg", "buf:zero=128", "--arg", "buf:zero=384"])
            .args(extra)
            .output()
            .unwrap()
    };
    let o = cli(&[]);
    assert_eq!(o.status.code(), Some(1));
    assert!(String::from_utf8_lossy(&o.stderr).contains("globalrace"));
    assert_eq!(cli(&["--no-check", "globalrace"]).status.code(), Some(0));
}
