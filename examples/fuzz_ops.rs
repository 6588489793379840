//! Bounded fuzzing of the public ops, as an adversarial user would call them, on the emulator with every
//! check on.
//!
//! Each case is one call of one op with a drawn dtype, shape (zeros, ones, tile edges, sizes past the
//! kernels' limits), buffer lengths (sometimes off by one), offset views, scalars (NaN, inf, zero,
//! negative, huge) and data (ordinary values with NaN, ±inf, ±0, subnormals and, for the elementwise ops,
//! values near the top of the range). A case fails when:
//! - the op panics;
//! - the kernel trips an emulator check (out of bounds, uninitialized read, race, ...);
//! - the op returns `Ok` where the reference rejects the input, or rejects an input the reference accepts
//!   with an error other than a device-only one (alignment, aliasing, kernel size limits, head dims);
//! - both accept and the results disagree beyond the op's tolerance (NaN only matches NaN).
//!
//! The corpus ([`corpus`]) replays the reproducers the fuzzing campaign of issue 6 found first. Then the
//! cases are drawn from `--seed`: the same seed and `--iterations` give the same cases, so a CI run is
//! deterministic; `--seconds` is a safety cap that stops early (and says so) without failing.
//!
//! `cargo run --example fuzz_ops -- [--seed N] [--iterations N] [--seconds S]` (exit 1 on a failure,
//! printing the case; 2 on bad flags).

use std::panic::{catch_unwind, AssertUnwindSafe};
use std::time::{Duration, Instant};

use half::{bf16, f16};
use llama_kernels::backend::{Backend, DeviceValue, EmuBackend};
use llama_kernels::ops::{add, attention, convert, embedding, gemm, kv_cache, rms_norm, rope, swiglu};
use llama_kernels::reference::{self, Tolerance};
use llama_kernels::*;

#[path = "fuzz_ops/cases.rs"]
mod cases;
#[path = "fuzz_ops/paged.rs"]
mod paged;
use cases::{Case, Data, Op, Rng};

/// What one case came to.
#[derive(Debug, PartialEq, Eq, Hash, Clone, Copy, PartialOrd, Ord)]
enum Outcome {
    /// Both the op and the reference rejected the input.
    BothRejected,
    /// The op rejected, for a device-only reason the reference does not check.
    DeviceRejected,
    /// Both ran and agree.
    Agreed,
}

fn main() {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let flag = |name: &str, default: u64| -> u64 {
        match args.iter().position(|a| a == name) {
            None => default,
            Some(i) => args.get(i + 1).and_then(|v| v.parse().ok()).unwrap_or_else(|| {
                eprintln!("{name} needs a number");
                std::process::exit(2)
            }),
        }
    };
    if let Some(unknown) = args
        .iter()
        .step_by(2)
        .find(|a| !matches!(a.as_str(), "--seed" | "--iterations" | "--seconds"))
    {
        eprintln!("unknown flag {unknown}; usage: fuzz_ops [--seed N] [--iterations N] [--seconds S]");
        std::process::exit(2);
    }
    let seed = flag("--seed", 0x6f75_7a7a);
    let iterations = flag("--iterations", 500);
    let cap = Duration::from_secs(flag("--seconds", 60));

    let backend = EmuBackend::new();
    let start = Instant::now();
    let mut counts = std::collections::BTreeMap::new();
    let mut ran = 0u64;
    let mut rng = Rng::new(seed);
    let drawn = (0..iterations).map(|_| Case::draw(&mut rng));
    for (i, case) in corpus().into_iter().chain(drawn).enumerate() {
        if start.elapsed() > cap {
            println!(
                "fuzz_ops: time cap of {cap:?} reached after {ran} cases (of {})",
                corpus().len() as u64 + iterations
            );
            break;
        }
        match catch_unwind(AssertUnwindSafe(|| run_case(&backend, &case))) {
            Ok(Ok(outcome)) => *counts.entry(outcome).or_insert(0u64) += 1,
            Ok(Err(msg)) => fail(i, &case, &msg),
            Err(panic) => {
                let msg = panic
                    .downcast_ref::<String>()
                    .cloned()
                    .or_else(|| panic.downcast_ref::<&str>().map(|s| s.to_string()));
                fail(i, &case, &format!("panic: {}", msg.unwrap_or_default()))
            }
        }
        ran += 1;
    }
    println!(
        "fuzz_ops: {ran} cases ({} corpus, seed {seed}) in {:.1} s, no failure: {counts:?}",
        corpus().len(),
        start.elapsed().as_secs_f64()
    );
}

fn fail(i: usize, case: &Case, msg: &str) -> ! {
    eprintln!("fuzz_ops: case {i} failed: {msg}\ncase: {case:#?}");
    std::process::exit(1);
}

/// The reproducers of issue 6 and later, each replayed first on every run.
fn corpus() -> Vec<Case> {
    let base = |op: Op| Case::plain(op, DType::BF16);
    vec![
        // RMSNorm: the f32 sum of squares overflows (x = ±2e19): zeros, as the reference now says.
        Case {
            dims: vec![2, 64],
            x: Data::Constant(2e19),
            ..base(Op::RmsNorm)
        },
        Case {
            dims: vec![2, 64],
            x: Data::Constant(-2e19),
            ..base(Op::FusedAddRmsNorm)
        },
        // Attention: NaN in q and k must reach lse; a huge softmax scale.
        Case {
            dims: vec![1, 4, 4, 2, 1, 8],
            x: Data::WithNan,
            ..base(Op::Attention)
        },
        Case {
            dims: vec![1, 4, 4, 2, 1, 8],
            scalar: Some(1e30),
            ..base(Op::Attention)
        },
        Case {
            dims: vec![1, 4, 4, 2, 1, 8],
            scalar: Some(1e38),
            ..base(Op::Attention)
        },
        // RoPE: negative positions.
        Case {
            dims: vec![3, 2, 1, 16],
            positions: vec![-1, -7, i32::MIN],
            ..base(Op::Rope)
        },
        // Zero sizes are no-ops (k = 0 GEMM computes beta·C).
        Case {
            dims: vec![0, 8],
            ..base(Op::RmsNorm)
        },
        Case {
            dims: vec![0, 2, 1, 16],
            ..base(Op::Rope)
        },
        Case {
            dims: vec![3, 0],
            ..base(Op::Swiglu)
        },
        Case {
            dims: vec![2, 3, 0],
            scalar: Some(0.5),
            ..base(Op::Gemm)
        },
        Case {
            dims: vec![1, 3, 0, 2, 1, 8],
            ..base(Op::Attention)
        },
        // The CI failure of issue 6: f16 GEMM with k = 1 and subnormal outputs.
        Case {
            dims: vec![2, 11, 1],
            x: Data::Scaled(0.005),
            ..Case::plain(Op::Gemm, DType::F16)
        },
        // A soft cap with a huge scale (5 heads: softcap = |scale| = 1e38): the reference modelled the f32
        // range of scale·log2 e·q·k, which the soft-capped kernel never computes (it takes tanh of
        // q·k·scale/softcap), and saturated every score; found when the draws changed (issue 11's ops).
        Case {
            dims: vec![2, 3, 1, 5, 1, 256],
            scalar: Some(1e38),
            seed: 3802469981856634684,
            rounding: Rounding::Once,
            ..base(Op::Attention)
        },
        // The small ops of issue 11: bad ids, and a cast of huge values to f16.
        Case {
            dims: vec![9, 24, 5],
            flag: false,
            x: Data::Specials,
            ..base(Op::Embedding)
        },
        Case {
            dims: vec![3, 33],
            x: Data::Scaled(3e38),
            seed: 1,
            ..Case::plain(Op::Convert, DType::F32)
        },
    ]
}

fn run_case(backend: &EmuBackend, case: &Case) -> std::result::Result<Outcome, String> {
    match case.dtype {
        DType::F32 => run_typed::<f32>(backend, case),
        DType::F16 => run_typed::<f16>(backend, case),
        DType::BF16 => run_typed::<bf16>(backend, case),
    }
}

/// Compares the op's result with the reference's (see the module docs for the rules).
fn judge<T>(
    op: OpResult<Vec<f64>>,
    reference: OpResult<Vec<f64>>,
    check: impl Fn(&[f64], &[f64]) -> std::result::Result<(), String>,
) -> std::result::Result<Outcome, String> {
    match (op, reference) {
        (Ok(got), Ok(want)) => check(&got, &want)
            .map(|_| Outcome::Agreed)
            .map_err(|e| format!("result differs from the reference: {e}")),
        (Err(_), Err(_)) => Ok(Outcome::BothRejected),
        (Ok(_), Err(e)) => Err(format!("the op accepted what the reference rejects: {e}")),
        (Err(e), Ok(_)) => match e {
            Error::Misaligned { .. }
            | Error::Aliasing { .. }
            | Error::SizeOverflow { .. }
            | Error::UnsupportedHeadDim { .. } => Ok(Outcome::DeviceRejected),
            Error::Emulator { detail } => Err(format!("emulator report: {detail}")),
            other => Err(format!("the op rejected what the reference accepts: {other}")),
        },
    }
    .map_err(|e| format!("{e} ({})", std::any::type_name::<T>()))
}

/// `|x0| + |x1|` of the pair each element of `x` (heads of `head_dim`) rotates in, 0 past `rotary_dim`.
fn pair_sizes<T: Elem>(x: &[T], head_dim: usize, cfg: RopeConfig) -> Vec<f64> {
    x.chunks(head_dim.max(1))
        .flat_map(|head| {
            (0..head.len()).map(move |j| match partner(j, cfg) {
                Some(p) if p < head.len() => head[j].to_f64().abs() + head[p].to_f64().abs(),
                _ => 0.0,
            })
        })
        .collect()
}

/// RoPE's documented bound (src/ops/rope.rs): the f32 sincos and rotation are within about
/// 3·2^-24·(|x0| + |x1|) of the reference before the rounding to T; elements nothing rotated (size 0)
/// are held to two ulps of T.
fn rope_tol<T: Elem>(pair_size: Vec<f64>) -> impl Fn(&[f64], &[f64]) -> std::result::Result<(), String> {
    move |got: &[f64], want: &[f64]| {
        let total: Vec<f64> = pair_size
            .iter()
            .chain(std::iter::repeat(&0.0))
            .zip(want)
            .map(|(size, w)| 4.0 * 2f64.powi(-24) * size + 2.0 * (2.0 * T::EPSILON_HALF_ULP) * w.abs())
            .collect();
        reference::check_abs_bound(T::DTYPE, got, want, &total, 1.0, Tolerance::for_elem::<T>().atol)
    }
}

/// The element a rotary dimension `j` is paired with, or `None` past `rotary_dim`.
fn partner(j: usize, cfg: RopeConfig) -> Option<usize> {
    let half = cfg.rotary_dim / 2;
    match cfg.layout {
        _ if j >= cfg.rotary_dim => None,
        RopeLayout::Interleaved => Some(j ^ 1),
        RopeLayout::HalfSplit => Some(if j < half { j + half } else { j - half }),
    }
}

/// The element count of `dims`, saturating (a shape past usize is rejected, not computed).
fn n_of(dims: &[usize]) -> usize {
    dims.iter().fold(1usize, |acc, &d| acc.saturating_mul(d))
}

type OpResult<V> = std::result::Result<V, Error>;

fn run_typed<T: Elem + DeviceValue>(backend: &EmuBackend, case: &Case) -> std::result::Result<Outcome, String> {
    let tol = |got: &[f64], want: &[f64]| Tolerance::for_elem::<T>().check(got, want);
    let f64s = |v: Vec<T>| reference::to_f64_vec(&v);
    let d = |i: usize| case.dims.get(i).copied().unwrap_or(1);
    match case.op {
        Op::RmsNorm | Op::FusedAddRmsNorm => {
            let shape = RmsNormShape {
                rows: d(0),
                hidden: d(1),
            };
            let cfg = RmsNormConfig {
                eps: case.scalar.unwrap_or(1e-5),
                rounding: case.rounding,
            };
            let (x, w, res) = (
                case.data::<T>(0, n_of(&[shape.rows, shape.hidden])),
                case.data::<T>(1, shape.hidden),
                case.data::<T>(2, n_of(&[shape.rows, shape.hidden])),
            );
            let (xb, wb) = (case.upload(backend, &x)?, case.upload(backend, &w)?);
            let mut out = backend
                .alloc_poisoned::<T>(case.out_len(n_of(&[shape.rows, shape.hidden])))
                .map_err(|e| e.to_string())?;
            if case.op == Op::RmsNorm {
                let got = rms_norm::rms_norm(backend, &xb.view(), &wb.view(), &mut out, shape, cfg)
                    .and_then(|_| backend.download(&out))
                    .map(f64s);
                judge::<T>(got, reference::rms_norm(&x, &w, shape, cfg).map(f64s), tol)
            } else {
                let mut rb = case.upload(backend, &res)?;
                let got = rms_norm::fused_add_rms_norm(
                    backend,
                    &xb.view(),
                    &mut rb.view_mut(),
                    &wb.view(),
                    &mut out,
                    shape,
                    cfg,
                )
                .and_then(|_| Ok((backend.download(&out)?, backend.download(&rb.buf)?)));
                let got = got.map(|(o, r)| [f64s(o), f64s(r[rb.offset..].to_vec())].concat());
                let want =
                    reference::fused_add_rms_norm(&x, &res, &w, shape, cfg).map(|(o, r)| [f64s(o), f64s(r)].concat());
                judge::<T>(got, want, tol)
            }
        }
        Op::Swiglu | Op::SwigluPacked => {
            let shape = SwigluShape { rows: d(0), d: d(1) };
            let n = n_of(&[shape.rows, shape.d]);
            let mut out = backend
                .alloc_poisoned::<T>(case.out_len(n))
                .map_err(|e| e.to_string())?;
            if case.op == Op::Swiglu {
                let (g, u) = (case.data::<T>(0, n), case.data::<T>(1, n));
                let (gb, ub) = (case.upload(backend, &g)?, case.upload(backend, &u)?);
                let got = swiglu::swiglu(backend, &gb.view(), &ub.view(), &mut out, shape, case.rounding)
                    .and_then(|_| backend.download(&out))
                    .map(f64s);
                judge::<T>(got, reference::swiglu(&g, &u, shape, case.rounding).map(f64s), tol)
            } else {
                let gu = case.data::<T>(0, n_of(&[2, n]));
                let gub = case.upload(backend, &gu)?;
                let got = swiglu::swiglu_packed(backend, &gub.view(), &mut out, shape, case.rounding)
                    .and_then(|_| backend.download(&out))
                    .map(f64s);
                judge::<T>(got, reference::swiglu_packed(&gu, shape, case.rounding).map(f64s), tol)
            }
        }
        Op::Rope => {
            let shape = RopeShape {
                tokens: d(0),
                n_heads: d(1),
                n_kv_heads: d(2),
                head_dim: d(3),
            };
            let cfg = case.rope_config(shape.head_dim);
            let q = case.data::<T>(0, n_of(&[shape.tokens, shape.n_heads, shape.head_dim]));
            let k = case.data::<T>(1, n_of(&[shape.tokens, shape.n_kv_heads, shape.head_dim]));
            let positions = case.positions(shape.tokens);
            let (mut qb, mut kb) = (case.upload(backend, &q)?, case.upload(backend, &k)?);
            let pb = backend.upload(&positions).map_err(|e| e.to_string())?;
            let got = rope::rope_with_config(backend, &mut qb.view_mut(), Some(&mut kb.view_mut()), &pb, shape, cfg)
                .and_then(|_| {
                    Ok([
                        f64s(backend.download(&qb.buf)?[qb.offset..].to_vec()),
                        f64s(backend.download(&kb.buf)?[kb.offset..].to_vec()),
                    ]
                    .concat())
                });
            let want = reference::rope(&q, &k, &positions, shape, cfg).map(|(q, k)| [f64s(q), f64s(k)].concat());
            let pair_size = [pair_sizes(&q, shape.head_dim, cfg), pair_sizes(&k, shape.head_dim, cfg)].concat();
            judge::<T>(got, want, rope_tol::<T>(pair_size))
        }
        Op::Attention => {
            let shape = AttentionShape {
                batch: d(0),
                q_len: d(1),
                kv_len: d(2),
                n_heads: d(3),
                n_kv_heads: d(4),
                head_dim: d(5),
            };
            // Windows and soft caps ride on the case's other draws (a bad cap is an error case).
            let cfg = AttentionConfig {
                causal: case.flag,
                softmax_scale: case.scalar,
                window_left: (d(0) % 3 == 1).then_some(d(2) / 2),
                window_right: (!case.flag && d(1) % 3 == 1).then_some(d(1) / 2),
                softcap: (d(3) % 4 == 1).then(|| case.scalar.map_or(20.0, f32::abs)),
            };
            let q_n = n_of(&[shape.batch, shape.q_len, shape.n_heads, shape.head_dim]);
            let kv_n = n_of(&[shape.batch, shape.kv_len, shape.n_kv_heads, shape.head_dim]);
            let (q, k, v) = (case.data::<T>(0, q_n), case.data::<T>(1, kv_n), case.data::<T>(2, kv_n));
            let (qb, kb, vb) = (
                case.upload(backend, &q)?,
                case.upload(backend, &k)?,
                case.upload(backend, &v)?,
            );
            let mut o = backend
                .alloc_poisoned::<T>(case.out_len(q_n))
                .map_err(|e| e.to_string())?;
            let mut lse = backend
                .alloc_poisoned::<f32>(case.out_len(n_of(&[shape.batch, shape.n_heads, shape.q_len])))
                .map_err(|e| e.to_string())?;
            let got = attention::attention_with_lse(
                backend,
                &qb.view(),
                &kb.view(),
                &vb.view(),
                &mut o,
                &mut lse,
                shape,
                cfg,
            )
            .and_then(|_| {
                Ok([
                    f64s(backend.download(&o)?),
                    backend.download(&lse)?.iter().map(|&l| l as f64).collect(),
                ]
                .concat())
            });
            // f16/bf16 run v2, which rounds P where reference::attention_tiled does (with its slack);
            // a shape the op cannot plan falls back to the plain reference for the verdict on rejection.
            let tiling = attention::plan(backend, shape, T::DTYPE, attention::SplitKv::Auto)
                .ok()
                .filter(|_| T::DTYPE != DType::F32)
                .map(|p| p.tiling());
            let lse64 = |lse: Vec<f32>| lse.iter().map(|&l| l as f64).collect::<Vec<f64>>();
            let (want, slack) = match tiling {
                Some(t) => match reference::attention_tiled(&q, &k, &v, shape, cfg, t) {
                    Ok((o, lse, slack)) => (Ok([f64s(o), lse64(lse)].concat()), slack),
                    Err(e) => (Err(e), Vec::new()),
                },
                None => (
                    reference::attention(&q, &k, &v, shape, cfg).map(|(o, lse)| [f64s(o), lse64(lse)].concat()),
                    Vec::new(),
                ),
            };
            let o_len = q_n;
            // v2 multiplies a masked key's v row by 0 (FlashAttention's behaviour, in the op's docs): with
            // an inf or NaN in v, a row may be NaN where the reference skips the key. Only that is allowed.
            let v_special = T::DTYPE != DType::F32 && v.iter().any(|x| !x.to_f64().is_finite());
            // At a huge scale O is ill-conditioned: the softmax is a hard argmax, and two keys whose q·k
            // differ by less than the f32 rounding of the kernel's sum (tensor core or fma chain; the
            // reference sums exactly) may swap. Then O is held to its class (finite where the reference
            // is) and LSE to its value.
            let argmax_only = cfg.softmax_scale.is_some_and(|s| s.abs() > 1e3);
            // LSE is a smooth maximum of the scores (1-Lipschitz in each), so it moves by at most the
            // largest score's error: the kernel's f32 sum of q·k is within d·2⁻²⁴·Σ|q_e·k_e| of the exact
            // one (any order), times the scale (a soft cap's tanh only shrinks it). At a huge scale that,
            // not the relative 1e-5, bounds LSE when q·k cancels.
            let lse_slack = lse_slack(&q, &k, shape, cfg);
            let attn_tol = move |got: &[f64], want: &[f64]| {
                let got: Vec<f64> = got
                    .iter()
                    .zip(want)
                    .enumerate()
                    .map(|(i, (&g, &w))| {
                        let masked_nan = v_special && g.is_nan();
                        let argmax_swap = argmax_only && g.is_finite() && w.is_finite();
                        if i < o_len && (masked_nan || argmax_swap) {
                            w
                        } else {
                            g
                        }
                    })
                    .collect();
                let o_tol = match T::DTYPE {
                    DType::F32 => Tolerance::new(DType::F32, 2e-5, 1e-4),
                    _ => Tolerance::for_elem::<T>(),
                };
                let n = o_len.min(got.len()).min(want.len());
                let mut sl = slack.clone();
                sl.resize(n, 0.0);
                o_tol.check_with_slack(&got[..n], &want[..n], &sl[..n])?;
                let (got_lse, want_lse) = (&got[o_len.min(got.len())..], &want[o_len.min(want.len())..]);
                let mut sl = lse_slack.clone();
                sl.resize(want_lse.len(), 0.0);
                Tolerance::new(DType::F32, 1e-4, 1e-5).check_with_slack(got_lse, want_lse, &sl)
            };
            judge::<T>(got, want, attn_tol)
        }
        Op::Gemm => {
            let shape = GemmShape {
                m: d(0),
                n: d(1),
                k: d(2),
            };
            // Every epilogue, from the dimensions (the other fields are taken); beta only for Linear.
            let epilogue = match (shape.m ^ shape.n ^ shape.k) % 4 {
                1 => llama_kernels::GemmEpilogue::ResidualAdd(case.rounding),
                2 => llama_kernels::GemmEpilogue::SwiGlu(case.rounding),
                _ => llama_kernels::GemmEpilogue::Linear,
            };
            let linear = epilogue == llama_kernels::GemmEpilogue::Linear;
            let cfg = GemmConfig {
                trans_a: case.flag,
                trans_b: case.rounding == Rounding::Once,
                alpha: case.scalar.unwrap_or(1.0),
                beta: if linear { case.scalar2 } else { 0.0 },
                epilogue,
            };
            let c_cols = reference::gemm::c_cols(shape, cfg);
            let (a, b, c) = (
                case.data::<T>(0, n_of(&[shape.m, shape.k])),
                case.data::<T>(1, n_of(&[shape.k, shape.n])),
                case.data::<T>(2, n_of(&[shape.m, c_cols])),
            );
            let (ab, bb) = (case.upload(backend, &a)?, case.upload(backend, &b)?);
            let mut cb = case.upload(backend, &c)?;
            let got = gemm::gemm(backend, &ab.view(), &bb.view(), &mut cb.view_mut(), shape, cfg)
                .and_then(|_| backend.download(&cb.buf))
                .map(|v| f64s(v[cb.offset..].to_vec()));
            // The f64 oracle, except where the reference that rounds where the kernel rounds (MatchTorch
            // epilogues round alpha·acc to T before adding C) overflows or meets inf - inf: there its
            // class is the answer (torch gives that NaN or inf too).
            let rounded = reference::gemm(&a, &b, &c, shape, cfg).map(f64s);
            let want = reference::gemm_f64(&a, &b, &c, shape, cfg).map(|w| match &rounded {
                Ok(r) if r.len() == w.len() => w
                    .iter()
                    .zip(r)
                    .map(|(&x, &y)| if y.is_finite() { x } else { y })
                    .collect(),
                _ => w,
            });
            let bound = reference::gemm_error_bound(&a, &b, &c, shape, cfg).unwrap_or_default();
            let gemm_tol =
                move |got: &[f64], want: &[f64]| reference::check_abs_bound(T::DTYPE, got, want, &bound, 1.0, 0.0);
            judge::<T>(got, want, gemm_tol)
        }
        Op::Add => {
            let shape = AddShape::contiguous(d(0), d(1));
            let n = n_of(&[shape.rows, shape.d]);
            let (a, b) = (case.data::<T>(0, n), case.data::<T>(1, n));
            let bb = case.upload(backend, &b)?;
            let mut ab = case.upload(backend, &a)?;
            let got = if case.flag {
                let mut out = backend
                    .alloc_poisoned::<T>(case.out_len(n))
                    .map_err(|e| e.to_string())?;
                add::add(backend, &ab.view(), &bb.view(), &mut out, shape)
                    .and_then(|_| backend.download(&out))
                    .map(f64s)
            } else {
                add::add_inplace(backend, &mut ab.view_mut(), &bb.view(), shape)
                    .and_then(|_| backend.download(&ab.buf))
                    .map(|v| f64s(v[ab.offset..].to_vec()))
            };
            let mut want = vec![T::from_f32(0.0); case.out_len(n)];
            let want = reference::add(&a, &b, &mut want, shape).map(|_| f64s(want));
            judge::<T>(got, want, exact)
        }
        Op::Convert => match case.seed % 3 {
            0 => convert_to::<T, f32>(backend, case),
            1 => convert_to::<T, f16>(backend, case),
            _ => convert_to::<T, bf16>(backend, case),
        },
        Op::KvAppend => kv_append_case::<T>(backend, case),
        Op::AttentionPaged => paged::case::<T>(backend, case),
        Op::Embedding => {
            let shape = EmbeddingShape::contiguous(d(0), d(1), d(2));
            let table = case.data::<T>(0, n_of(&[shape.vocab, shape.d]));
            let ids = case.ids(shape.tokens, shape.vocab);
            let tb = case.upload(backend, &table)?;
            let ib = backend.upload(&ids).map_err(|e| format!("upload: {e}"))?;
            let n = n_of(&[shape.tokens, shape.d]);
            let mut out = backend
                .alloc_poisoned::<T>(case.out_len(n))
                .map_err(|e| e.to_string())?;
            let mut status = backend.alloc_poisoned::<i32>(ids.len()).map_err(|e| e.to_string())?;
            let got = embedding::embedding(backend, &tb.view(), &ib, &mut out, &mut status, shape)
                .and_then(|_| Ok((backend.download(&out)?, backend.download(&status)?)))
                .map(|(o, s)| [f64s(o), s.iter().map(|&v| v as f64).collect()].concat());
            let mut want = vec![T::from_f32(0.0); case.out_len(n)];
            let want = reference::embedding(&table, &ids, &mut want, shape)
                .map(|s| [f64s(want), s.iter().map(|&v| v as f64).collect()].concat());
            judge::<T>(got, want, exact)
        }
    }
}

/// Per LSE element `(batch, n_heads, q_len)`: `|scale| · d · 2⁻²⁴ · max_j Σ_e |q_e · k_je|` over the row's
/// kv head's keys (all of them: an upper bound of the visible ones). Empty for a shape past the buffers
/// (or with over 2²⁰ rows: such a case is rejected before any work).
fn lse_slack<T: Elem>(q: &[T], k: &[T], shape: AttentionShape, cfg: AttentionConfig) -> Vec<f64> {
    let AttentionShape {
        batch,
        q_len,
        kv_len,
        n_heads,
        n_kv_heads,
        head_dim: d,
    } = shape;
    let rows = n_of(&[batch, n_heads, q_len]);
    if rows > 1 << 20
        || n_kv_heads == 0
        || n_heads % n_kv_heads != 0
        || q.len() != n_of(&[rows, d])
        || k.len() != n_of(&[batch, kv_len, n_kv_heads, d])
    {
        return Vec::new();
    }
    let scale = cfg.softmax_scale.map_or(1.0 / (d as f64).sqrt(), |s| (s as f64).abs());
    let gamma = d as f64 * f64::powi(2.0, -24);
    let mut slack = vec![0.0; rows];
    for b in 0..batch {
        for h in 0..n_heads {
            let kh = h / (n_heads / n_kv_heads);
            for i in 0..q_len {
                let qi = &q[((b * q_len + i) * n_heads + h) * d..][..d];
                let worst = (0..kv_len)
                    .map(|j| {
                        let kj = &k[((b * kv_len + j) * n_kv_heads + kh) * d..][..d];
                        qi.iter()
                            .zip(kj)
                            .map(|(x, y)| (x.to_f64() * y.to_f64()).abs())
                            .sum::<f64>()
                    })
                    .fold(0.0, f64::max);
                // An inf or NaN term makes the row's class the verdict, not a bound.
                slack[(b * n_heads + h) * q_len + i] = if worst.is_finite() { scale * gamma * worst } else { 0.0 };
            }
        }
    }
    slack
}

/// `kv_append`: q and k rotated as the RoPE reference (RoPE's bound), the k cache's written rows too; the
/// rest of the caches and the statuses within two ulps (they are copies).
fn kv_append_case<T: Elem + DeviceValue>(backend: &EmuBackend, case: &Case) -> std::result::Result<Outcome, String> {
    let d = |i: usize| case.dims.get(i).copied().unwrap_or(1);
    let shape = KvAppendShape {
        tokens: d(0),
        n_heads: d(1),
        n_kv_heads: d(2),
        head_dim: d(3),
        num_slots: d(4),
    };
    let cfg = case.rope_config(shape.head_dim);
    let q = case.data::<T>(0, n_of(&[shape.tokens, shape.n_heads, shape.head_dim]));
    let k = case.data::<T>(1, n_of(&[shape.tokens, shape.n_kv_heads, shape.head_dim]));
    let v = case.data::<T>(2, n_of(&[shape.tokens, shape.n_kv_heads, shape.head_dim]));
    let cache_n = n_of(&[shape.num_slots, shape.n_kv_heads, shape.head_dim]);
    let (kc0, vc0) = (case.data::<T>(3, cache_n), case.data::<T>(4, cache_n));
    let slots = case.slots(shape.tokens, shape.num_slots);
    let positions = case.positions(shape.tokens);
    let got = (|| -> OpResult<Vec<f64>> {
        let inv_freq = match rope::upload_inv_freq(backend, &cfg) {
            Ok(t) => t,
            Err(_) => backend.upload(&vec![0.0f32; (cfg.rotary_dim / 2).min(1 << 16)])?,
        };
        let (mut qb, mut kb, vb) = (
            case.upload(backend, &q).map_err(|e| Error::Emulator { detail: e })?,
            backend.upload(&k)?,
            backend.upload(&v)?,
        );
        let (mut kc, mut vc) = (backend.upload(&kc0)?, backend.upload(&vc0)?);
        let (sb, pb) = (backend.upload(&slots)?, backend.upload(&positions)?);
        let mut status = backend.alloc_poisoned::<i32>(slots.len())?;
        kv_cache::kv_append(
            backend,
            &mut qb.view_mut(),
            &mut kb,
            &vb,
            (&mut kc, &mut vc),
            &sb,
            (&pb, &inv_freq),
            &mut status,
            shape,
            cfg,
        )?;
        let f = |v: Vec<T>| reference::to_f64_vec(&v);
        Ok([
            f(backend.download(&qb.buf)?[qb.offset..].to_vec()),
            f(backend.download(&kb)?),
            f(backend.download(&kc)?),
            f(backend.download(&vc)?),
            backend.download(&status)?.iter().map(|&s| s as f64).collect(),
        ]
        .concat())
    })();
    let (mut kcr, mut vcr) = (kc0.clone(), vc0.clone());
    let want =
        reference::kv_append(&q, &k, &v, (&mut kcr, &mut vcr), &slots, &positions, shape, cfg).map(|(qr, kr, st)| {
            let f = |v: &[T]| reference::to_f64_vec(v);
            [f(&qr), f(&kr), f(&kcr), f(&vcr), st.iter().map(|&s| s as f64).collect()].concat()
        });
    let hd = shape.head_dim;
    let (q_pairs, k_pairs) = (pair_sizes(&q, hd, cfg), pair_sizes(&k, hd, cfg));
    let row = shape.n_kv_heads * hd;
    let mut kc_pairs = vec![0.0; kc0.len()];
    for (t, &slot) in slots.iter().enumerate() {
        let fits = |i: usize, len: usize| {
            i.checked_add(1)
                .and_then(|n| n.checked_mul(row))
                .is_some_and(|end| end <= len)
        };
        if let Some(s) = usize::try_from(slot)
            .ok()
            .filter(|&s| fits(s, kc_pairs.len()) && fits(t, k_pairs.len()))
        {
            kc_pairs[s * row..][..row].copy_from_slice(&k_pairs[t * row..][..row]);
        }
    }
    judge::<T>(got, want, rope_tol::<T>([q_pairs, k_pairs, kc_pairs].concat()))
}

/// Bit for bit, every NaN as one value (the GPU's canonical NaN is not the CPU's).
fn exact(got: &[f64], want: &[f64]) -> std::result::Result<(), String> {
    if got.len() != want.len() {
        return Err(format!("{} values, the reference {}", got.len(), want.len()));
    }
    match got
        .iter()
        .zip(want)
        .position(|(g, w)| !(g.to_bits() == w.to_bits() || (g.is_nan() && w.is_nan())))
    {
        None => Ok(()),
        Some(i) => Err(format!("element {i}: {} against {}", got[i], want[i])),
    }
}

/// `convert` from `In` (the case's dtype) to `Out`.
fn convert_to<In: Elem + DeviceValue, Out: Elem + DeviceValue>(
    backend: &EmuBackend,
    case: &Case,
) -> std::result::Result<Outcome, String> {
    let shape = ConvertShape::contiguous(
        case.dims.first().copied().unwrap_or(1),
        case.dims.get(1).copied().unwrap_or(1),
    );
    let n = n_of(&[shape.rows, shape.d]);
    let x = case.data::<In>(0, n);
    let xb = case.upload(backend, &x)?;
    let mut out = backend
        .alloc_poisoned::<Out>(case.out_len(n))
        .map_err(|e| e.to_string())?;
    let got = convert::convert(backend, &xb.view(), &mut out, shape)
        .and_then(|_| backend.download(&out))
        .map(|v| reference::to_f64_vec(&v));
    let mut want = vec![Out::from_f32(0.0); case.out_len(n)];
    let want = reference::convert(&x, &mut want, shape).map(|_| reference::to_f64_vec(&want));
    judge::<In>(got, want, exact)
}
