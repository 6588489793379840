//! CUDA's launch limits: grid <= (2^31-1, 65535, 65535) with no zero dimension, block <= 1024 threads
//! and (1024, 1024, 64), the kernel's `.maxntid` / `.reqntid`, and shared memory (static + dynamic)
//! within `Options::max_shared_bytes`. Each violation is a usage error naming the limit.

mod common;
use common::HEADER;
use ptx_emu::{Device, EmuError, LaunchConfig, Options, MAX_SHARED_SM80, MAX_SHARED_SM90};

fn module(dev: &Device, directives: &str, shared: &str) -> std::sync::Arc<ptx_emu::Module> {
    let src = format!(
        "{HEADER}.extern .shared .align 16 .b8 dyn[];\n.visible .entry k() {directives}\n{{\n{shared}\nret;\n}}\n"
    );
    dev.load_module(&src).unwrap()
}

fn launch(dev: &Device, m: &ptx_emu::Module, grid: [u32; 3], block: [u32; 3], shared: u32) -> Result<(), String> {
    let cfg = LaunchConfig {
        grid,
        block,
        shared_bytes: shared,
    };
    match dev.launch(m, "k", &cfg, &[]) {
        Ok(_) => Ok(()),
        Err(e @ EmuError::Usage(_)) => Err(e.to_string()),
        Err(e) => panic!("expected a usage error or success, got {e}"),
    }
}

fn expect_usage(r: Result<(), String>, what: &str) {
    match r {
        Err(e) => assert!(e.contains(what) && e.contains("kernel k"), "{e} (want {what})"),
        Ok(()) => panic!("expected a usage error about {what}"),
    }
}

#[test]
fn grid_limits() {
    let dev = Device::new(Options::default());
    let m = module(&dev, "", "");
    expect_usage(launch(&dev, &m, [0, 1, 1], [32, 1, 1], 0), "zero dimension");
    expect_usage(launch(&dev, &m, [1, 0, 1], [32, 1, 1], 0), "zero dimension");
    expect_usage(launch(&dev, &m, [1 << 31, 1, 1], [32, 1, 1], 0), "2147483647");
    expect_usage(launch(&dev, &m, [1, 65536, 1], [32, 1, 1], 0), "65535");
    expect_usage(launch(&dev, &m, [1, 1, 65536], [32, 1, 1], 0), "65535");
    launch(&dev, &m, [1, 65535, 1], [1, 1, 1], 0).unwrap_or_else(|e| panic!("{e}"));
}

#[test]
fn block_limits() {
    let dev = Device::new(Options::default());
    let m = module(&dev, "", "");
    expect_usage(launch(&dev, &m, [1, 1, 1], [0, 1, 1], 0), "zero dimension");
    expect_usage(launch(&dev, &m, [1, 1, 1], [1025, 1, 1], 0), "1024");
    expect_usage(launch(&dev, &m, [1, 1, 1], [1, 1, 65], 0), "[1024, 1024, 64]");
    expect_usage(launch(&dev, &m, [1, 1, 1], [1, 2048, 1], 0), "[1024, 1024, 64]");
    expect_usage(launch(&dev, &m, [1, 1, 1], [64, 32, 1], 0), "2048 threads");
    launch(&dev, &m, [1, 1, 1], [1024, 1, 1], 0).unwrap();
    launch(&dev, &m, [1, 1, 1], [16, 1, 64], 0).unwrap();
}

#[test]
fn maxntid_and_reqntid_limit_the_block() {
    let dev = Device::new(Options::default());
    let m = module(&dev, ".maxntid 128, 1, 1", "");
    launch(&dev, &m, [1, 1, 1], [128, 1, 1], 0).unwrap();
    launch(&dev, &m, [1, 1, 1], [16, 8, 1], 0).unwrap();
    expect_usage(launch(&dev, &m, [1, 1, 1], [129, 1, 1], 0), ".maxntid");
    let m = module(&dev, ".maxntid 16, 4", "");
    expect_usage(launch(&dev, &m, [1, 1, 1], [128, 1, 1], 0), ".maxntid [16, 4, 1] (64)");
    let m = module(&dev, ".reqntid 32, 2, 1", "");
    launch(&dev, &m, [2, 1, 1], [32, 2, 1], 0).unwrap();
    expect_usage(launch(&dev, &m, [1, 1, 1], [64, 1, 1], 0), ".reqntid [32, 2, 1]");
    expect_usage(launch(&dev, &m, [1, 1, 1], [32, 1, 1], 0), ".reqntid");
    // a malformed directive is a parse error
    let bad = format!("{HEADER}.visible .entry k() .maxntid 0\n{{\nret;\n}}\n");
    assert!(matches!(dev.load_module(&bad), Err(EmuError::Parse { .. })));
}

#[test]
fn shared_memory_limit_is_static_plus_dynamic() {
    let dev = Device::new(Options::default());
    assert_eq!(dev.options().max_shared_bytes, MAX_SHARED_SM90);
    assert_eq!(MAX_SHARED_SM90, 232448);
    // 16 KiB static: 16 KiB + 211 KiB dynamic fits sm_90's 227 KiB, one more byte does not
    let m = module(&dev, "", ".shared .align 16 .b8 s[16384];");
    launch(&dev, &m, [1, 1, 1], [32, 1, 1], MAX_SHARED_SM90 - 16384).unwrap();
    expect_usage(
        launch(&dev, &m, [1, 1, 1], [32, 1, 1], MAX_SHARED_SM90 - 16384 + 1),
        "16384 static + 216065 dynamic",
    );
    // sm_80's limit, chosen through Options
    let a100 = Device::new(Options {
        max_shared_bytes: MAX_SHARED_SM80,
        ..Options::default()
    });
    let m = module(&a100, "", ".shared .align 16 .b8 s[16384];");
    launch(&a100, &m, [1, 1, 1], [32, 1, 1], MAX_SHARED_SM80 - 16384).unwrap();
    expect_usage(launch(&a100, &m, [1, 1, 1], [32, 1, 1], MAX_SHARED_SM80), "166912");
    // static shared alone beyond the limit
    let m = module(&a100, "", ".shared .align 16 .b8 s[200000];");
    expect_usage(launch(&a100, &m, [1, 1, 1], [32, 1, 1], 0), "200000 static + 0 dynamic");
}
