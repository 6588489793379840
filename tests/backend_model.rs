//! What a backend reports about its device (the SM count), and the emulator backend's
//! speed-of-light mode (`EmuBackend::with_model`): every launch predicted, unknown GPUs refused.

mod common;

use half::bf16;
use llama_kernels::backend::{Backend, EmuBackend, EMU_DEFAULT_SM_COUNT};
use llama_kernels::ops::{rms_norm, swiglu};
use llama_kernels::reference::random_vec;
use llama_kernels::{Error, RmsNormConfig, RmsNormShape, Rounding, SwigluShape};

fn sm_count_is_a_device_count<B: Backend>(b: &B) {
    let n = b.sm_count();
    assert!((1..=1024).contains(&n), "{}: {n} SMs", b.name());
}
backend_tests!(sm_count, sm_count_is_a_device_count);

#[test]
fn the_emulator_reports_a_configurable_sm_count() {
    assert_eq!(EmuBackend::new().sm_count(), EMU_DEFAULT_SM_COUNT);
    assert_eq!(EmuBackend::new().with_sm_count(108).sm_count(), 108);
    assert_eq!(EmuBackend::new().with_sm_count(0).sm_count(), 1, "at least one SM");
    assert_eq!(EmuBackend::with_model("a100-sxm4-80gb", None).unwrap().sm_count(), 108);
    assert_eq!(EmuBackend::with_model("rtx-4090", Some(4)).unwrap().sm_count(), 128);
}

#[test]
fn model_mode_predicts_every_launch() {
    if llama_kernels::raw::PTXAS_REPORT.is_empty() {
        // A build from the committed PTX (no nvcc) has no registers for the model.
        use std::io::Write as _;
        assert!(
            std::env::var_os("CI").is_none(),
            "CI builds with nvcc: the ptxas report must be there"
        );
        let _ = writeln!(
            std::io::stderr(),
            "skipping model_mode_predicts_every_launch: no ptxas report (no nvcc)"
        );
        return;
    }
    let emu = EmuBackend::with_model("h100-sxm", Some(8)).unwrap();
    let (rows, hidden) = (64usize, 4096usize);
    let x = emu.upload(&random_vec::<bf16>(rows * hidden, 1, 1.0)).unwrap();
    let w = emu.upload(&random_vec::<bf16>(hidden, 2, 1.0)).unwrap();
    let mut out = emu.alloc_poisoned::<bf16>(rows * hidden).unwrap();
    rms_norm::rms_norm(
        &emu,
        &x,
        &w,
        &mut out,
        RmsNormShape { rows, hidden },
        RmsNormConfig::default(),
    )
    .unwrap();
    let (g, u) = (
        emu.upload(&random_vec::<bf16>(rows * hidden, 3, 1.0)).unwrap(),
        emu.upload(&random_vec::<bf16>(rows * hidden, 4, 1.0)).unwrap(),
    );
    swiglu::swiglu(
        &emu,
        &g,
        &u,
        &mut out,
        SwigluShape { rows, d: hidden },
        Rounding::MatchTorch,
    )
    .unwrap();
    let preds = emu.take_predictions();
    let names: Vec<&str> = preds.iter().map(|p| p.0.as_str()).collect();
    assert_eq!(names, ["rms_norm_bf16", "swiglu_bf16"]);
    assert_eq!(preds[0].1.blocks, 64, "RMSNorm: one block per row");
    for (name, p) in &preds {
        assert_eq!(p.arch, "h100-sxm");
        assert!(p.seconds > 0.0 && p.seconds.is_finite(), "{name}: {}", p.seconds);
        // At most 8 blocks (and the wave probe) emulated, the grid predicted.
        assert!(
            p.blocks > 8 && p.sampled_blocks == 8,
            "{name}: {} of {}",
            p.sampled_blocks,
            p.blocks
        );
        assert!(
            p.occupancy.regs_per_thread > 0,
            "{name}: registers from the build's ptxas report"
        );
    }
    assert!(emu.take_predictions().is_empty(), "taken");
    assert!(
        EmuBackend::new().take_predictions().is_empty(),
        "no model, no predictions"
    );
}

#[test]
fn model_mode_refuses_an_unknown_gpu() {
    match EmuBackend::with_model("b200", None) {
        Err(Error::InvalidArgument { reason, .. }) => assert!(reason.contains("unknown GPU `b200`"), "{reason}"),
        Err(e) => panic!("{e}"),
        Ok(_) => panic!("b200 accepted"),
    }
}
