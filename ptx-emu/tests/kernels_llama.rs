//! LLaMA-shaped .cu kernels (RMSNorm, RoPE, SwiGLU, a flash-attention-style kernel) compiled with nvcc at
//! test time (skipped with a printed reason when nvcc is missing, unless CI is set), run on the emulator
//! with every check on and compared with a CPU result.

#![allow(clippy::needless_range_loop)] // index loops mirror the math being checked

mod common;
use common::*;

#[test]
fn llama_ops_match_cpu() {
    let Some((dev, m)) = setup("llama_ops.cu") else { return };
    // RMSNorm bf16
    let (rows, cols) = (2usize, 96usize);
    let x: Vec<f32> = rand_f32(6, rows * cols).into_iter().map(bf16_round).collect();
    let w: Vec<f32> = rand_f32(7, cols).into_iter().map(|v| bf16_round(v + 1.0)).collect();
    let tob = |v: &[f32]| -> Vec<u8> {
        v.iter()
            .flat_map(|x| ((x.to_bits() >> 16) as u16).to_le_bytes())
            .collect()
    };
    let xb = upload(&dev, &tob(&x));
    let wb = upload(&dev, &tob(&w));
    let out = dev.alloc(2 * rows * cols).unwrap();
    let mut p = params(&[out, xb, wb]);
    p.extend_from_slice(&(cols as u32).to_le_bytes());
    p.extend_from_slice(&1e-5f32.to_le_bytes());
    dev.launch(&m, "rmsnorm_bf16", &cfg([rows as u32, 1, 1], [64, 1, 1], 0), &p)
        .unwrap();
    let got = download(&dev, out, 2 * rows * cols);
    for r in 0..rows {
        let row = &x[r * cols..(r + 1) * cols];
        let ss: f64 = row.iter().map(|&v| (v as f64).powi(2)).sum();
        let inv = 1.0 / (ss / cols as f64 + 1e-5).sqrt();
        for i in 0..cols {
            let want = bf16_round(bf16_round((row[i] as f64 * inv) as f32) * w[i]);
            let g = f32::from_bits(
                (u16::from_le_bytes([got[2 * (r * cols + i)], got[2 * (r * cols + i) + 1]]) as u32) << 16,
            );
            assert!(
                (g - want).abs() <= want.abs() * 2f32.powi(-7) + 1e-6,
                "({r},{i}) {g} vs {want}"
            );
        }
    }
    // RoPE f32 with sincosf (including large angles through the slow path)
    let (tokens, hd) = (3usize, 16usize);
    let q = rand_f32(8, tokens * hd);
    let pos = [0i32, 7, 40000];
    let inv: Vec<f32> = (0..hd / 2)
        .map(|i| 10000f32.powf(-(2.0 * i as f32) / hd as f32))
        .collect();
    let qb = upload(&dev, &bytes_f32(&q));
    let pb = upload(&dev, &pos.iter().flat_map(|p| p.to_le_bytes()).collect::<Vec<_>>());
    let ib = upload(&dev, &bytes_f32(&inv));
    let mut p = params(&[qb, pb, ib]);
    p.extend_from_slice(&(tokens as u32).to_le_bytes());
    p.extend_from_slice(&(hd as u32).to_le_bytes());
    dev.launch(
        &m,
        "rope_f32",
        &cfg([tokens as u32, 1, 1], [hd as u32 / 2, 1, 1], 0),
        &p,
    )
    .unwrap();
    let got = f32s(&download(&dev, qb, 4 * tokens * hd));
    for t in 0..tokens {
        for i in 0..hd / 2 {
            let ang = (pos[t] as f32 * inv[i]) as f64;
            let (a, b) = (q[t * hd + 2 * i] as f64, q[t * hd + 2 * i + 1] as f64);
            let w0 = a * ang.cos() - b * ang.sin();
            let w1 = a * ang.sin() + b * ang.cos();
            assert!(close(got[t * hd + 2 * i], w0, 1e-5, 1e-6), "rope ({t},{i})");
            assert!(close(got[t * hd + 2 * i + 1], w1, 1e-5, 1e-6), "rope ({t},{i})");
        }
    }
    // SwiGLU f16 with expf
    let n = 200usize;
    let to_h = |v: &[f32]| -> Vec<u8> { v.iter().flat_map(|&x| f16_round_bits(x).to_le_bytes()).collect() };
    let g: Vec<f32> = rand_f32(12, n)
        .into_iter()
        .map(|v| f16_val(f16_round_bits(v * 4.0)))
        .collect();
    let u: Vec<f32> = rand_f32(13, n)
        .into_iter()
        .map(|v| f16_val(f16_round_bits(v)))
        .collect();
    let gb = upload(&dev, &to_h(&g));
    let ub = upload(&dev, &to_h(&u));
    let out = dev.alloc(2 * n).unwrap();
    let mut p = params(&[out, gb, ub]);
    p.extend_from_slice(&(n as u32).to_le_bytes());
    dev.launch(&m, "swiglu_f16", &cfg([4, 1, 1], [64, 1, 1], 0), &p)
        .unwrap();
    let got = download(&dev, out, 2 * n);
    for i in 0..n {
        let gv = g[i] as f64;
        let want = gv / (1.0 + (-gv).exp()) * u[i] as f64;
        let gotv = f16_val(u16::from_le_bytes([got[2 * i], got[2 * i + 1]]));
        assert!(
            ((gotv as f64) - want).abs() <= want.abs() * 2f64.powi(-10) + 1e-6,
            "swiglu {i}: {gotv} vs {want}"
        );
    }
    // softmax rows with exp2
    let s = rand_f32(9, 64);
    let sb = upload(&dev, &bytes_f32(&s));
    let out = dev.alloc(256).unwrap();
    let mut p = params(&[out, sb]);
    p.extend_from_slice(&(std::f32::consts::LOG2_E * 0.5).to_le_bytes());
    dev.launch(&m, "softmax_rows", &cfg([2, 1, 1], [32, 1, 1], 0), &p)
        .unwrap();
    let got = f32s(&download(&dev, out, 256));
    for r in 0..2 {
        let row = &s[r * 32..r * 32 + 32];
        let mx = row.iter().map(|&v| v as f64 * 0.5).fold(f64::MIN, f64::max);
        let den: f64 = row.iter().map(|&v| (v as f64 * 0.5 - mx).exp()).sum();
        for i in 0..32 {
            assert!(close(
                got[r * 32 + i],
                (row[i] as f64 * 0.5 - mx).exp() / den,
                1e-5,
                1e-7
            ));
        }
    }
}

#[test]
fn flash_attention_style_kernel_matches_cpu() {
    let Some((dev, m)) = setup("attention.cu") else { return };
    let (q_len, kv_len, heads, d) = (20usize, 45usize, 2usize, 64usize);
    let tob = |v: &[f32]| -> Vec<u8> {
        v.iter()
            .flat_map(|x| ((x.to_bits() >> 16) as u16).to_le_bytes())
            .collect()
    };
    let q: Vec<f32> = rand_f32(20, q_len * heads * d).into_iter().map(bf16_round).collect();
    let k: Vec<f32> = rand_f32(21, kv_len * heads * d).into_iter().map(bf16_round).collect();
    let v: Vec<f32> = rand_f32(22, kv_len * heads * d).into_iter().map(bf16_round).collect();
    let scale = 1.0 / (d as f64).sqrt();
    for causal in [0u32, 1] {
        let (qb, kb, vb) = (upload(&dev, &tob(&q)), upload(&dev, &tob(&k)), upload(&dev, &tob(&v)));
        let o = dev.alloc(2 * q_len * heads * d).unwrap();
        let lse = dev.alloc(4 * heads * q_len).unwrap();
        let mut p = params(&[o, lse, qb, kb, vb]);
        for x in [q_len as u32, kv_len as u32, heads as u32, causal] {
            p.extend_from_slice(&x.to_le_bytes());
        }
        p.extend_from_slice(&((scale * std::f64::consts::LOG2_E) as f32).to_le_bytes());
        let grid = [q_len.div_ceil(16) as u32, heads as u32, 1];
        let rep = dev.launch(&m, "attn_fwd_bf16", &cfg(grid, [128, 1, 1], 0), &p).unwrap();
        let got = download(&dev, o, 2 * q_len * heads * d);
        let got_lse = f32s(&download(&dev, lse, 4 * heads * q_len));
        let offset = kv_len as i64 - q_len as i64;
        for h in 0..heads {
            for i in 0..q_len {
                let keys: Vec<usize> = (0..kv_len)
                    .filter(|&j| causal == 0 || j as i64 <= i as i64 + offset)
                    .collect();
                let s: Vec<f64> = keys
                    .iter()
                    .map(|&j| {
                        (0..d)
                            .map(|c| q[(i * heads + h) * d + c] as f64 * k[(j * heads + h) * d + c] as f64)
                            .sum::<f64>()
                            * scale
                    })
                    .collect();
                let mx = s.iter().cloned().fold(f64::MIN, f64::max);
                let den: f64 = s.iter().map(|x| (x - mx).exp()).sum();
                assert!(
                    close(got_lse[h * q_len + i], mx + den.ln(), 1e-5, 1e-5),
                    "lse ({h},{i})"
                );
                for c in 0..d {
                    let want: f64 = keys
                        .iter()
                        .zip(&s)
                        .map(|(&j, x)| (x - mx).exp() / den * v[(j * heads + h) * d + c] as f64)
                        .sum();
                    let at = 2 * ((i * heads + h) * d + c);
                    let g = f32::from_bits((u16::from_le_bytes([got[at], got[at + 1]]) as u32) << 16);
                    assert!(
                        (g as f64 - want).abs() <= want.abs() * 2f64.powi(-7) + 1e-3,
                        "o ({h},{i},{c}) {g} vs {want}"
                    );
                }
            }
        }
        assert!(rep.metrics.barriers > 0 && rep.metrics.class(ptx_emu::ir::Class::Special) > 0);
    }
}
