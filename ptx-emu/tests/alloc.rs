//! Device memory is capped (`Options::memory_limit`) and taken lazily: an allocation or a declaration
//! of absurd size is a clear error (`EmuError::OutOfMemory` or `Unsupported`), never an abort, and a
//! large never-written buffer costs no host memory.

mod common;
use common::{params, HEADER};
use ptx_emu::{Checks, Device, EmuError, LaunchConfig, Options, DEFAULT_MEMORY_LIMIT};

fn dev_with_limit(limit: u64) -> Device {
    Device::new(Options {
        memory_limit: limit,
        printf_stdout: false,
        ..Options::default()
    })
}

fn one_block(threads: u32) -> LaunchConfig {
    LaunchConfig {
        grid: [1, 1, 1],
        block: [threads, 1, 1],
        shared_bytes: 0,
    }
}

#[test]
fn allocation_beyond_the_limit_is_out_of_memory() {
    let dev = Device::new(Options::default());
    assert_eq!(dev.options().memory_limit, DEFAULT_MEMORY_LIMIT);
    match dev.alloc(100_000_000_000) {
        Err(EmuError::OutOfMemory { bytes, limit, .. }) => {
            assert_eq!(bytes, 100_000_000_000);
            assert_eq!(limit, DEFAULT_MEMORY_LIMIT);
        }
        other => panic!("expected OutOfMemory, got {other:?}"),
    }
    assert!(matches!(dev.alloc(usize::MAX), Err(EmuError::OutOfMemory { .. })));
    assert!(matches!(
        dev.alloc_zeroed(usize::MAX),
        Err(EmuError::OutOfMemory { .. })
    ));
    // the limit counts live allocations
    let dev = dev_with_limit(1 << 20);
    let a = dev.alloc(600 << 10).unwrap();
    let err = dev.alloc(600 << 10).unwrap_err();
    assert!(err.to_string().contains("out of device memory"), "{err}");
    assert_eq!(dev.memory_in_use(), 600 << 10);
    dev.free(a).unwrap();
    dev.alloc(600 << 10).unwrap();
}

#[test]
fn large_unwritten_buffers_take_no_host_memory() {
    let dev = Device::new(Options::default());
    let a = dev.alloc(3 << 30).unwrap();
    let z = dev.alloc_zeroed(512 << 20).unwrap();
    assert_eq!(dev.resident_bytes(), 0);
    dev.write(a + (1 << 30), &[1, 2, 3, 4]).unwrap();
    let page = dev.resident_bytes();
    assert!(page > 0 && page <= 80 << 10, "{page}");
    let mut b = [9u8; 8];
    dev.read(z + 12345, &mut b).unwrap();
    assert_eq!(b, [0; 8]);
    dev.read(a + (1 << 30) - 2, &mut b).unwrap();
    assert_eq!(b, [0, 0, 1, 2, 3, 4, 0, 0]);
    assert_eq!(dev.resident_bytes(), page);
}

/// Loads `src` and launches `k` with one pointer parameter (if it takes one), 32 threads.
fn load(dev: &Device, src: &str) -> Result<(), EmuError> {
    let m = dev.load_module(src)?;
    let (_, size) = m.kernel_params("k").expect("kernel k");
    let buf = dev.alloc(64)?;
    let p = if size == 8 {
        params(&[buf])
    } else {
        vec![0u8; size as usize]
    };
    dev.launch(&m, "k", &one_block(32), &p).map(|_| ())
}

#[test]
fn zeroed_memory_counts_as_written() {
    // initcheck: reading an alloc_zeroed buffer is clean, reading an alloc buffer is not.
    let src = format!(
        "{HEADER}.visible .entry k(.param .u64 p)\n{{\n.reg .b32 %r<2>;\n.reg .b64 %rd<2>;\nld.param.u64 %rd1, [p];\nld.global.u32 %r1, [%rd1+40000];\nret;\n}}\n"
    );
    let dev = common::device(Checks::all());
    let m = dev.load_module(&src).unwrap();
    let z = dev.alloc_zeroed(1 << 20).unwrap();
    dev.launch(&m, "k", &one_block(32), &params(&[z])).unwrap();
    let a = dev.alloc(1 << 20).unwrap();
    let reps = common::reports(dev.launch(&m, "k", &one_block(32), &params(&[a])));
    assert_eq!(reps[0].kind, ptx_emu::CheckKind::Initcheck);
}

/// `Device::copy` moves the bytes and their initcheck bits: a copy of never-written bytes is never
/// written at the destination (a kernel reading it is reported), written ones are; ranges outside an
/// allocation, and overlapping ones, are errors.
#[test]
fn device_to_device_copies_carry_the_initcheck_bits() {
    let src = format!(
        "{HEADER}.visible .entry k(.param .u64 p)\n{{\n.reg .b32 %r<2>;\n.reg .b64 %rd<2>;\nld.param.u64 %rd1, [p];\nld.global.u32 %r1, [%rd1+4];\nret;\n}}\n"
    );
    let dev = common::device(Checks::all());
    let m = dev.load_module(&src).unwrap();
    let (from, to) = (dev.alloc(4096).unwrap(), dev.alloc(4096).unwrap());
    dev.write(from, &[1, 2, 3, 4, 5, 6, 7, 8]).unwrap();
    dev.write(to, &[9; 64]).unwrap();
    // Bytes 0..8 written at the source, 8..16 not: the destination's 4..8 are written, 8..12 no longer.
    dev.copy(to, from, 16).unwrap();
    let mut got = [0u8; 16];
    dev.read(to, &mut got).unwrap();
    assert_eq!(got[..8], [1, 2, 3, 4, 5, 6, 7, 8]);
    dev.launch(&m, "k", &one_block(1), &params(&[to])).unwrap();
    let reps = common::reports(dev.launch(&m, "k", &one_block(1), &params(&[to + 4])));
    assert_eq!(reps[0].kind, ptx_emu::CheckKind::Initcheck, "{reps:?}");
    // Past the end, and overlapping.
    for (dst, s, len) in [(to, from + 4090, 16), (to + 4090, from, 16), (from + 8, from, 16)] {
        assert!(
            matches!(dev.copy(dst, s, len), Err(EmuError::BadAddress { .. })),
            "{dst:#x} {s:#x}"
        );
    }
    dev.copy(to, from, 0).unwrap();
}

fn expect_unsupported(src: &str, what: &str) {
    let dev = Device::new(Options::default());
    match dev.load_module(src) {
        Err(e @ EmuError::Unsupported { .. }) => assert!(e.to_string().contains(what), "{e}"),
        other => panic!("expected Unsupported ({what}), got {:?}", other.map(|_| ())),
    }
}

#[test]
fn absurd_declarations_are_errors() {
    // a 4 GiB kernel parameter
    expect_unsupported(
        &format!("{HEADER}.visible .entry k(.param .align 8 .b8 p[4294967296])\n{{\nret;\n}}\n"),
        "32764",
    );
    expect_unsupported(
        &format!("{HEADER}.visible .entry k(.param .u64 a, .param .align 8 .b8 p[40000])\n{{\nret;\n}}\n"),
        "32764",
    );
    // a 4 GiB device-function parameter, local array, shared array
    expect_unsupported(
        &format!("{HEADER}.func f(.param .b8 p[4294967296])\n{{\nret;\n}}\n.visible .entry k()\n{{\nret;\n}}\n"),
        "local memory",
    );
    expect_unsupported(
        &format!("{HEADER}.visible .entry k()\n{{\n.local .align 8 .b8 d[4294967296];\nret;\n}}\n"),
        "local memory",
    );
    expect_unsupported(
        &format!("{HEADER}.visible .entry k()\n{{\n.local .b8 a[400000];\n.local .b8 b[400000];\nret;\n}}\n"),
        "local memory",
    );
    expect_unsupported(
        &format!("{HEADER}.shared .align 4 .b8 s[4294967296];\n.visible .entry k()\n{{\nret;\n}}\n"),
        ".shared",
    );
    expect_unsupported(
        &format!("{HEADER}.visible .entry k()\n{{\n.shared .align 4 .b8 s[4294967296];\nret;\n}}\n"),
        ".shared",
    );
    expect_unsupported(
        &format!("{HEADER}.global .align 4 .b8 g[1099511627776];\n.visible .entry k()\n{{\nret;\n}}\n"),
        "1 GiB",
    );
    // a bad alignment is a parse error
    let dev = Device::new(Options::default());
    let e = dev
        .load_module(&format!(
            "{HEADER}.shared .align 3 .b8 s[4];\n.visible .entry k()\n{{\nret;\n}}\n"
        ))
        .unwrap_err();
    assert!(matches!(e, EmuError::Parse { .. }), "{e}");
}

#[test]
fn module_globals_and_launches_count_against_the_limit() {
    let dev = dev_with_limit(64 << 20);
    // a 512 MiB .global does not fit 64 MiB: OutOfMemory at load, and nothing stays allocated
    let src = format!("{HEADER}.global .align 4 .b8 g[536870912];\n.visible .entry k()\n{{\nret;\n}}\n");
    assert!(matches!(dev.load_module(&src), Err(EmuError::OutOfMemory { .. })));
    assert_eq!(dev.memory_in_use(), 0);
    // a module whose lowering fails frees its globals again
    let bad = format!("{HEADER}.global .align 4 .b8 g[1024];\n.visible .entry k()\n{{\nbra $nowhere;\n}}\n");
    assert!(dev.load_module(&bad).is_err());
    assert_eq!(dev.memory_in_use(), 0);
    // a 32 MiB .global fits, lazily: it reads as zeros and costs no host memory until written
    let src = format!(
        "{HEADER}.global .align 4 .u32 g[8388608] = {{7}};\n.visible .entry k(.param .u64 p)\n{{\n.reg .b32 %r<2>;\n.reg .b64 %rd<4>;\nld.param.u64 %rd1, [p];\nld.global.u32 %r1, [g+4000000];\nst.global.u32 [%rd1], %r1;\nret;\n}}\n"
    );
    load(&dev, &src).unwrap();
    assert!(dev.resident_bytes() < 1 << 20, "{}", dev.resident_bytes());
    // 512 KiB of local memory per thread x 1024 threads is 512 MiB for one block: beyond 64 MiB
    let src = format!(
        "{HEADER}.visible .entry k(.param .u64 p)\n{{\n.local .align 8 .b8 d[524000];\n.reg .b64 %rd<2>;\nmov.u64 %rd1, d;\nst.local.u32 [%rd1], 1;\nret;\n}}\n"
    );
    let m = dev.load_module(&src).unwrap();
    let cfg = LaunchConfig {
        grid: [1, 1, 1],
        block: [1024, 1, 1],
        shared_bytes: 0,
    };
    match dev.launch(&m, "k", &cfg, &params(&[0])) {
        Err(e @ EmuError::OutOfMemory { .. }) => assert!(e.to_string().contains("kernel k"), "{e}"),
        other => panic!("expected OutOfMemory, got {other:?}"),
    }
    // 32 threads of it fit
    dev.launch(&m, "k", &one_block(32), &params(&[0])).unwrap();
}
