//! The speed-of-light model: one kernel per limiter (`tests/cu/model.cu`), each landing where physics
//! says on several GPUs of the table; occupancy against CUDA's rules; a sampled prediction against
//! the full emulation.

mod common;
use common::*;
use ptx_emu::model::{arch, occupancy, sample};
use ptx_emu::{Device, ModelOptions, Options, Prediction};

const ARCHS: [&str; 4] = ["a100-sxm4-80gb", "h100-sxm", "rtx-4090", "l4"];

fn opts(name: &str, regs: u32, sample_blocks: Option<u64>) -> ModelOptions {
    ModelOptions {
        arch: arch::by_name(name).unwrap(),
        regs_per_thread: regs,
        sample_blocks,
    }
}

fn run(
    dev: &Device,
    m: &ptx_emu::Module,
    kernel: &str,
    grid: u32,
    block: u32,
    p: &[u8],
    o: &ModelOptions,
) -> Prediction {
    let r = dev
        .launch_with_model(m, kernel, &cfg([grid, 1, 1], [block, 1, 1], 0), p, o)
        .unwrap_or_else(|e| panic!("{kernel}: {e}"));
    let pred = r.prediction.expect("a prediction");
    eprintln!("{kernel} {}", pred.summary());
    pred
}

/// A zeroed source and a destination of `bytes` each.
fn copy_buffers(dev: &Device, bytes: u64) -> (u64, u64) {
    (
        dev.alloc_zeroed(bytes as usize).unwrap(),
        dev.alloc(bytes as usize).unwrap(),
    )
}

fn unit(p: &Prediction, name: &str) -> f64 {
    p.units.iter().find(|u| u.0 == name).map(|u| u.1).unwrap()
}

fn with(p: &[u64], scalars: &[u32]) -> Vec<u8> {
    let mut v = params(p);
    for s in scalars {
        v.extend_from_slice(&s.to_le_bytes());
    }
    v
}

#[test]
fn pure_fma_runs_within_5_percent_of_the_fp32_peak() {
    let Some((dev, m)) = setup("model.cu") else { return };
    for name in ARCHS {
        let a = arch::by_name(name).unwrap();
        let (block, iters) = (256u32, 256u32);
        let grid = a.sms * 8;
        let out = dev.alloc((grid * block * 4) as usize).unwrap();
        let p = with(&[out], &[1.0f32.to_bits(), iters]);
        let pred = run(&dev, &m, "fma_peak", grid, block, &p, &opts(name, 32, Some(16)));
        let flops = (grid * block) as f64 * iters as f64 * 128.0 * 2.0;
        let achieved = flops / pred.seconds;
        let frac = achieved / a.fp32_flops();
        assert!(
            (0.95..=1.0).contains(&frac),
            "{name}: {frac:.3} of the FP32 peak\n{}",
            pred.summary()
        );
        // Where the FP32 pipe takes one warp-instruction per clock per scheduler (sm_89, sm_90), issue
        // binds as much as the pipe: the loop's three other instructions take FMA slots.
        assert!(
            pred.limiter == "fp32" || pred.limiter == "issue",
            "{name}: {}",
            pred.limiter
        );
        assert!(unit(&pred, "fp32") >= 0.95, "{name}");
        dev.free(out).unwrap();
    }
}

#[test]
fn a_streaming_copy_runs_within_10_percent_of_dram_bandwidth() {
    let Some((dev, m)) = setup("model.cu") else { return };
    let bytes: u64 = 256 << 20;
    let (src, dst) = copy_buffers(&dev, bytes);
    let block = 256u32;
    let grid = (bytes / (block as u64 * 64)) as u32;
    for name in ARCHS {
        let a = arch::by_name(name).unwrap();
        let pred = run(
            &dev,
            &m,
            "stream_copy",
            grid,
            block,
            &params(&[dst, src]),
            &opts(name, 24, Some(64)),
        );
        let bw = 2.0 * bytes as f64 / pred.seconds;
        let frac = bw / a.dram_bytes_s;
        assert!(
            (0.9..=1.0).contains(&frac),
            "{name}: {frac:.3} of DRAM bandwidth\n{}",
            pred.summary()
        );
        assert_eq!(pred.limiter, "dram", "{name}");
        let moved = pred.dram_bytes / (2.0 * bytes as f64);
        assert!((0.99..1.01).contains(&moved), "{name}: DRAM bytes {moved:.3}x the copy");
    }
}

#[test]
fn a_pointer_chase_is_latency_bound_at_the_dram_latency() {
    let Some((dev, m)) = setup("model.cu") else { return };
    // A chain through 64 MiB with every step on a new 128-byte line: each load misses every cache.
    let n: u32 = 16 << 20;
    let steps = 512u32;
    let stride = 4099 * 32; // in elements: 512 KiB apart, coprime to n
    let next: Vec<u32> = (0..n).map(|i| (i + stride) % n).collect();
    let (nx, out) = (upload(&dev, &bytes_u32(&next)), dev.alloc(4).unwrap());
    for name in ARCHS {
        let a = arch::by_name(name).unwrap();
        let pred = run(
            &dev,
            &m,
            "pointer_chase",
            1,
            1,
            &with(&[nx, out], &[steps]),
            &opts(name, 16, None),
        );
        assert_eq!(pred.limiter, "latency", "{name}");
        let expect = steps as f64 * a.lat.dram / a.clock_hz() + a.launch_s;
        let ratio = pred.seconds / expect;
        assert!((1.0..1.1).contains(&ratio), "{name}: {ratio:.3}x steps x DRAM latency");
    }
}

#[test]
fn bank_conflicts_make_a_kernel_shared_memory_bound() {
    let Some((dev, m)) = setup("model.cu") else { return };
    for name in ARCHS {
        let a = arch::by_name(name).unwrap();
        let (grid, block) = (a.sms * 4, 256u32);
        let out = dev.alloc((grid * block * 4) as usize).unwrap();
        let pred = run(
            &dev,
            &m,
            "bank_conflict",
            grid,
            block,
            &with(&[out], &[256]),
            &opts(name, 24, Some(8)),
        );
        assert_eq!(pred.limiter, "shared", "{name}");
        assert!(unit(&pred, "shared") > 0.9, "{name}\n{}", pred.summary());
        dev.free(out).unwrap();
    }
}

#[test]
fn a_one_block_kernel_is_launch_bound() {
    let Some((dev, m)) = setup("model.cu") else { return };
    let out = dev.alloc(4 * 32).unwrap();
    for name in ARCHS {
        let a = arch::by_name(name).unwrap();
        let pred = run(
            &dev,
            &m,
            "one_block",
            1,
            32,
            &with(&[out], &[2.0f32.to_bits()]),
            &opts(name, 8, None),
        );
        assert_eq!(pred.limiter, "launch", "{name}");
        assert!(
            pred.seconds >= a.launch_s && pred.seconds < a.launch_s + 2e-6,
            "{name}: {}",
            pred.seconds
        );
        assert_eq!(pred.waves, 1.0 / (a.sms * a.max_blocks_sm) as f64);
    }
}

#[test]
fn a_sampled_prediction_matches_the_full_emulation() {
    let Some((dev, m)) = setup("model.cu") else { return };
    let bytes: u64 = 8 << 20;
    let (src, dst) = copy_buffers(&dev, bytes);
    let grid = (bytes / (256 * 64)) as u32;
    let out = dev.alloc((grid * 256 * 4) as usize).unwrap();
    for name in ["a100-sxm4-80gb", "h200"] {
        let full = run(
            &dev,
            &m,
            "stream_copy",
            grid,
            256,
            &params(&[dst, src]),
            &opts(name, 24, None),
        );
        let part = run(
            &dev,
            &m,
            "stream_copy",
            grid,
            256,
            &params(&[dst, src]),
            &opts(name, 24, Some(32)),
        );
        assert_eq!((full.sampled_blocks, part.sampled_blocks), (grid as u64, 32));
        let r = part.seconds / full.seconds;
        assert!((0.97..1.03).contains(&r), "{name}: sampled / full = {r:.4}");
        let p = with(&[out], &[256]);
        let full = run(&dev, &m, "bank_conflict", grid, 256, &p, &opts(name, 24, None));
        let part = run(&dev, &m, "bank_conflict", grid, 256, &p, &opts(name, 24, Some(16)));
        let r = part.seconds / full.seconds;
        assert!((0.97..1.03).contains(&r), "{name}: sampled / full = {r:.4}");
    }
}

/// The wave probe's L2 hit rate is taken per load stream: x, which every block stages first, hits L2;
/// W, which each block reads alone, comes from DRAM however many x hits the probe saw. With one rate
/// for all loads (the model before), W inherited x's hits and the GEMV ran faster than DRAM allows.
#[test]
fn the_wave_probe_keeps_each_load_streams_own_l2_hit_rate() {
    let Some((dev, m)) = setup("model.cu") else { return };
    let (k, block, grid) = (4096u32, 256u32, 2048u32);
    let rows = (grid * block / 32) as u64;
    let w_bytes = rows * k as u64 * 4;
    let w = dev.alloc_zeroed(w_bytes as usize).unwrap();
    let x = dev.alloc_zeroed(4 * k as usize).unwrap();
    let y = dev.alloc(4 * rows as usize).unwrap();
    let p = with(&[y, w, x], &[k]);
    for name in ["a100-sxm4-80gb", "h100-sxm"] {
        let a = arch::by_name(name).unwrap();
        let r = dev
            .launch_with_model(
                &m,
                "gemv_shared_x",
                &cfg([grid, 1, 1], [block, 1, 1], 4 * k),
                &p,
                &opts(name, 32, Some(16)),
            )
            .unwrap_or_else(|e| panic!("{e}"));
        let pred = r.prediction.expect("a prediction");
        eprintln!("gemv_shared_x {}", pred.summary());
        let moved = pred.dram_bytes / w_bytes as f64;
        assert!((0.99..1.05).contains(&moved), "{name}: DRAM bytes {moved:.3}x W");
        let frac = w_bytes as f64 / pred.seconds / a.dram_bytes_s;
        assert!(frac <= 1.0, "{name}: W streams at {frac:.3} of DRAM bandwidth");
        assert!(frac >= 0.5, "{name}: W streams at only {frac:.3} of DRAM bandwidth");
    }
}

#[test]
fn occupancy_follows_cudas_rules() {
    let a100 = arch::by_name("a100-sxm4-80gb").unwrap();
    let o = occupancy(&a100, 256, 32, 0).unwrap();
    assert_eq!((o.blocks_per_sm, o.limit), (8, "warps"));
    let o = occupancy(&a100, 256, 128, 0).unwrap();
    assert_eq!((o.blocks_per_sm, o.limit), (2, "registers"));
    // 255 registers round up to 256 per thread: one 256-thread block needs all 64 K.
    assert_eq!(occupancy(&a100, 256, 255, 0).unwrap().blocks_per_sm, 1);
    // 48 KiB + 1 KiB reserved per block: three fit in 164 KiB.
    let o = occupancy(&a100, 128, 32, 48 * 1024).unwrap();
    assert_eq!((o.blocks_per_sm, o.limit), (3, "shared"));
    let o = occupancy(&a100, 32, 16, 0).unwrap();
    assert_eq!((o.blocks_per_sm, o.limit), (32, "blocks"));
    assert!(occupancy(&a100, 1024, 128, 0).is_err(), "128 K registers do not fit");
    assert!(occupancy(&a100, 128, 32, 200 * 1024).is_err());
    let ada = arch::by_name("rtx-4090").unwrap();
    assert_eq!(occupancy(&ada, 256, 32, 0).unwrap().blocks_per_sm, 6, "48 warps per SM");
}

#[test]
fn samples_are_clusters_of_consecutive_blocks() {
    assert_eq!(sample(100, None), None);
    assert_eq!(sample(100, Some(100)), None);
    assert_eq!(sample(100, Some(3)), Some(vec![0, 1, 2]));
    assert_eq!(sample(100, Some(8)), Some(vec![0, 1, 32, 33, 65, 66, 98, 99]));
    let s = sample(1000, Some(64)).unwrap();
    assert_eq!(s.len(), 64);
    assert_eq!(&s[..16], &(0..16).collect::<Vec<_>>()[..]);
    assert_eq!(*s.last().unwrap(), 999);
}

#[test]
fn every_arch_has_sources_and_sane_numbers() {
    let all = arch::all();
    assert_eq!(all.len(), 10);
    for a in &all {
        assert!(!a.sources.is_empty(), "{}", a.name);
        for (_, src) in a.sources {
            let known = arch::SOURCES.iter().any(|s| src.contains(s.0)) || src.starts_with("model:");
            assert!(known, "{}: source `{src}` names no key of SOURCES", a.name);
        }
        assert!(a.mma_flops() > a.fp32_flops(), "{}", a.name);
        assert!(a.lat.dram > a.lat.l2 && a.lat.l2 > a.lat.l1, "{}", a.name);
    }
}

#[test]
fn a_block_that_does_not_fit_is_a_usage_error() {
    let Some((dev, m)) = setup("model.cu") else { return };
    let out = dev.alloc(4 * 1024).unwrap();
    let o = opts("a100-sxm4-80gb", 128, None);
    let r = dev.launch_with_model(
        &m,
        "one_block",
        &cfg([1, 1, 1], [1024, 1, 1], 0),
        &with(&[out], &[0]),
        &o,
    );
    match r {
        Err(ptx_emu::EmuError::Usage(msg)) => assert!(msg.contains("does not fit"), "{msg}"),
        other => panic!("{other:?}"),
    }
    let _ = Options::default();
}

#[test]
fn ptxas_reports_are_parsed() {
    let report = "ptxas info    : 0 bytes gmem\nptxas info    : Compiling entry function 'other' for 'sm_80'\nptxas info    : Used 90 registers, 384 bytes cmem[0]\nptxas info    : Compiling entry function 'gemm' for 'sm_80'\nptxas info    : Function properties for gemm\n    8 bytes stack frame, 4 bytes spill stores, 4 bytes spill loads\nptxas info    : Used 128 registers, used 1 barriers, 16384 bytes smem, 400 bytes cmem[0]\n";
    let r = ptx_emu::model::ptxas::parse(report, "gemm").unwrap();
    assert_eq!((r.registers, r.shared, r.spill_stores), (128, 16384, 4));
    assert_eq!(ptx_emu::model::ptxas::parse(report, "other").unwrap().registers, 90);
    assert!(ptx_emu::model::ptxas::parse(report, "missing").is_none());
}

/// Each lane reads 16 bytes at `base + 16 * lane` as four scalar loads. Aligned, ptxas makes one
/// LDS.128 of them (4 conflict-free wavefronts per warp, not 4 x 4 for the 4-way conflicted scalars);
/// misaligned by 4 bytes it cannot.
const SHARED_VEC: &str = ".version 8.0
.target sm_80
.address_size 64
.visible .entry vec4(.param .u64 out, .param .u32 skew)
{
.reg .b32 %r<12>;
.reg .f32 %f<8>;
.reg .b64 %rd<4>;
.shared .align 16 .b8 buf[4096];
ld.param.u64 %rd1, [out];
ld.param.u32 %r9, [skew];
mov.u32 %r1, %tid.x;
shl.b32 %r2, %r1, 4;
add.u32 %r2, %r2, %r9;
mov.u32 %r3, buf;
add.u32 %r4, %r3, %r2;
st.shared.f32 [%r4], 0f3F800000;
st.shared.f32 [%r4+4], 0f40000000;
st.shared.f32 [%r4+8], 0f40400000;
st.shared.f32 [%r4+12], 0f40800000;
bar.sync 0;
ld.shared.f32 %f1, [%r4];
ld.shared.f32 %f2, [%r4+4];
ld.shared.f32 %f3, [%r4+8];
ld.shared.f32 %f4, [%r4+12];
add.f32 %f5, %f1, %f2;
add.f32 %f6, %f3, %f4;
add.f32 %f7, %f5, %f6;
mul.wide.u32 %rd2, %r1, 4;
add.s64 %rd3, %rd1, %rd2;
st.global.f32 [%rd3], %f7;
ret;
}
";

#[test]
fn adjacent_scalar_shared_accesses_cost_as_the_vector_access_ptxas_makes() {
    let dev = Device::new(Options::default());
    let m = dev.load_module(SHARED_VEC).unwrap();
    let out = dev.alloc(4 * 128).unwrap();
    let o = opts("a100-sxm4-80gb", 16, None);
    let launch = |skew: u32| {
        dev.launch_with_model(&m, "vec4", &cfg([1, 1, 1], [128, 1, 1], 0), &with(&[out], &[skew]), &o)
            .unwrap()
    };
    let aligned = launch(0);
    // 4 warps x (4 stores + 4 loads) x 4 wavefronts each (4-way conflicts at a 16-byte lane stride).
    assert_eq!(aligned.metrics.shared_wavefronts, 4 * 8 * 4);
    // Merged: one 16-byte store and one 16-byte load per warp, 4 wavefronts each.
    assert_eq!(aligned.prediction.unwrap().shared_wavefronts, (4 * 2 * 4) as f64);
    let skewed = launch(4);
    assert_eq!(skewed.metrics.shared_wavefronts, 4 * 8 * 4);
    assert_eq!(
        skewed.prediction.unwrap().shared_wavefronts,
        (4 * 8 * 4) as f64,
        "not 16-byte aligned: no merge"
    );
}
