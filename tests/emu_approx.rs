//! The emulator backend the tests use (`EmuBackend::new`) perturbs approximate instructions within the
//! PTX ISA's bounds, as hardware may: the ops built on `ex2.approx` (SwiGLU's `expf`, attention's
//! softmax) give other bits than with exact approximate math — so every test of theirs passes on
//! results a GPU could give, not on exact ones — while the ops built only from correctly rounded
//! instructions (RMSNorm, RoPE, f32 GEMM) are bit-identical in both modes, as they are on hardware.

use llama_kernels::backend::{Backend, EmuBackend};
use llama_kernels::ops::{attention::attention, gemm::gemm, rms_norm::rms_norm, rope, swiglu::swiglu};
use llama_kernels::reference::random_vec;
use llama_kernels::{
    AttentionConfig, AttentionShape, GemmConfig, GemmShape, RmsNormConfig, RmsNormShape, RopeConfig, RopeLayout,
    RopeShape, Rounding, SwigluShape,
};

fn exact() -> EmuBackend {
    EmuBackend::with_options(ptx_emu::Options::default())
}

fn swiglu_out(b: &EmuBackend) -> Vec<f32> {
    let shape = SwigluShape { rows: 3, d: 517 };
    let n = shape.rows * shape.d;
    let (g, u) = (random_vec::<f32>(n, 1, 6.0), random_vec::<f32>(n, 2, 2.0));
    let (g, u) = (b.upload(&g).unwrap(), b.upload(&u).unwrap());
    let mut o = b.alloc_poisoned::<f32>(n).unwrap();
    swiglu(b, &g, &u, &mut o, shape, Rounding::MatchTorch).unwrap();
    b.download(&o).unwrap()
}

fn attention_out(b: &EmuBackend) -> Vec<f32> {
    let shape = AttentionShape {
        batch: 1,
        q_len: 9,
        kv_len: 23,
        n_heads: 2,
        n_kv_heads: 1,
        head_dim: 64,
    };
    let (nq, nk) = (9 * 2 * 64, 23 * 64);
    let q = b.upload(&random_vec::<f32>(nq, 3, 1.0)).unwrap();
    let k = b.upload(&random_vec::<f32>(nk, 4, 1.0)).unwrap();
    let v = b.upload(&random_vec::<f32>(nk, 5, 1.0)).unwrap();
    let mut o = b.alloc_poisoned::<f32>(nq).unwrap();
    attention(b, &q, &k, &v, &mut o, shape, AttentionConfig::default()).unwrap();
    b.download(&o).unwrap()
}

fn rms_norm_out(b: &EmuBackend) -> Vec<f32> {
    let shape = RmsNormShape { rows: 3, hidden: 333 };
    let x = b.upload(&random_vec::<f32>(3 * 333, 6, 3.0)).unwrap();
    let w = b.upload(&random_vec::<f32>(333, 7, 1.0)).unwrap();
    let mut o = b.alloc_poisoned::<f32>(3 * 333).unwrap();
    rms_norm(b, &x, &w, &mut o, shape, RmsNormConfig::default()).unwrap();
    b.download(&o).unwrap()
}

fn rope_out(b: &EmuBackend) -> Vec<f32> {
    let shape = RopeShape {
        tokens: 5,
        n_heads: 2,
        n_kv_heads: 1,
        head_dim: 64,
    };
    let cfg = RopeConfig {
        theta: 500000.0,
        rotary_dim: 64,
        layout: RopeLayout::HalfSplit,
        scaling: None,
    };
    let mut q = b.upload(&random_vec::<f32>(5 * 2 * 64, 8, 1.0)).unwrap();
    let pos = b.upload(&[0i32, 3, 17, 500, 4099]).unwrap();
    let inv = rope::upload_inv_freq(b, &cfg).unwrap();
    rope::rope(
        b,
        &mut q,
        None::<&mut <EmuBackend as Backend>::Buffer<f32>>,
        &pos,
        &inv,
        shape,
        cfg,
    )
    .unwrap();
    b.download(&q).unwrap()
}

fn gemm_out(b: &EmuBackend) -> Vec<f32> {
    let shape = GemmShape { m: 19, n: 21, k: 37 };
    let a = b.upload(&random_vec::<f32>(19 * 37, 9, 1.0)).unwrap();
    let bm = b.upload(&random_vec::<f32>(37 * 21, 10, 1.0)).unwrap();
    let mut c = b.alloc_poisoned::<f32>(19 * 21).unwrap();
    gemm(b, &a, &bm, &mut c, shape, GemmConfig::default()).unwrap();
    b.download(&c).unwrap()
}

fn differing(a: &[f32], b: &[f32]) -> usize {
    a.iter().zip(b).filter(|(x, y)| x.to_bits() != y.to_bits()).count()
}

#[test]
fn ops_on_approximate_instructions_see_perturbed_results() {
    let (hw, ex) = (EmuBackend::new(), exact());
    let (a, b) = (swiglu_out(&hw), swiglu_out(&ex));
    assert!(
        differing(&a, &b) > a.len() / 20,
        "swiglu: {} of {} differ",
        differing(&a, &b),
        a.len()
    );
    let (a, b) = (attention_out(&hw), attention_out(&ex));
    assert!(
        differing(&a, &b) > a.len() / 20,
        "attention: {} of {} differ",
        differing(&a, &b),
        a.len()
    );
}

#[test]
fn ops_on_correctly_rounded_instructions_are_bit_identical() {
    let (hw, ex) = (EmuBackend::new(), exact());
    assert_eq!(differing(&rms_norm_out(&hw), &rms_norm_out(&ex)), 0, "rms_norm");
    assert_eq!(differing(&rope_out(&hw), &rope_out(&ex)), 0, "rope");
    assert_eq!(differing(&gemm_out(&hw), &gemm_out(&ex)), 0, "gemm f32");
}
