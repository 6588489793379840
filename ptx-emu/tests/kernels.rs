//! Small .cu kernels compiled with nvcc at test time (skipped with a printed reason when nvcc is missing,
//! unless CI is set), run on the emulator with every check on and compared with a CPU result.

#![allow(clippy::needless_range_loop)] // index loops mirror the math being checked

mod common;
use common::*;

#[test]
fn block_reduction_and_atomic_sum() {
    let Some((dev, m)) = setup("reduce.cu") else { return };
    let n = 3000;
    let x = rand_f32(1, n);
    let (grid, block) = (4u32, 128u32);
    let partial = dev.alloc(4 * grid as usize).unwrap();
    let total = upload(&dev, &[0u8; 4]);
    let xb = upload(&dev, &bytes_f32(&x));
    let mut p = params(&[partial, total, xb]);
    p.extend_from_slice(&(n as u32).to_le_bytes());
    let rep = dev
        .launch(&m, "reduce_sum", &cfg([grid, 1, 1], [block, 1, 1], 0), &p)
        .unwrap();
    let got = f32s(&download(&dev, partial, 4 * grid as usize));
    for b in 0..grid as usize {
        let want: f64 = (0..n)
            .filter(|i| (i / block as usize) % grid as usize == b)
            .map(|i| x[i] as f64)
            .sum();
        assert!(close(got[b], want, 1e-5, 1e-4), "block {b}: {} vs {want}", got[b]);
    }
    let tot = f32s(&download(&dev, total, 4))[0];
    let want: f64 = x.iter().map(|&v| v as f64).sum();
    assert!(close(tot, want, 1e-5, 1e-3), "{tot} vs {want}");
    assert_eq!(rep.metrics.barriers, 2 * grid as u64);
    assert!(rep.metrics.class(ptx_emu::ir::Class::Warp) > 0);

    // row_stats: float4 loads, one block per row
    let (rows, cols) = (3usize, 256usize);
    let x = rand_f32(2, rows * cols);
    let xb = upload(&dev, &bytes_f32(&x));
    let out = dev.alloc(8 * rows).unwrap();
    let mut p = params(&[out, xb]);
    p.extend_from_slice(&(cols as u32).to_le_bytes());
    let rep = dev
        .launch(&m, "row_stats", &cfg([rows as u32, 1, 1], [64, 1, 1], 0), &p)
        .unwrap();
    let got = f32s(&download(&dev, out, 8 * rows));
    for r in 0..rows {
        let row = &x[r * cols..(r + 1) * cols];
        let ss: f64 = row.iter().map(|&v| (v as f64).powi(2)).sum();
        let want = 1.0 / (ss / cols as f64 + 1e-5).sqrt();
        assert!(close(got[2 * r], want, 1e-5, 0.0), "rsqrt row {r}");
        let mx = row.iter().cloned().fold(f32::MIN, f32::max);
        assert_eq!(got[2 * r + 1], mx);
    }
    // 16-byte vector loads by consecutive lanes: 4 sectors per 8 lanes -> 16 sectors per 32-lane request
    assert!(
        rep.metrics.sectors_per_request() <= 16.0 + 1e-9,
        "{}",
        rep.metrics.sectors_per_request()
    );
}

#[test]
fn warp_shuffles_votes_and_reductions() {
    let Some((dev, m)) = setup("shuffles.cu") else { return };
    let v: Vec<u32> = lcg(3, 32).iter().map(|x| x % 100).collect();
    let inp = upload(&dev, &bytes_u32(&v));
    let out = dev.alloc(32 * 8 * 4).unwrap();
    dev.launch(&m, "warp_ops", &cfg([1, 1, 1], [32, 1, 1], 0), &params(&[out, inp]))
        .unwrap();
    let o = u32s(&download(&dev, out, 32 * 32));
    let ballot = (0..32).filter(|&i| v[i] & 1 == 1).fold(0u32, |m, i| m | 1 << i);
    let any = v.contains(&7) as u32;
    let sum: u32 = v.iter().sum();
    let max = *v.iter().max().unwrap();
    let odd_sum: u32 = (0..32).filter(|i| i % 2 == 1).map(|i| v[i]).sum();
    for l in 0..32 {
        let r = &o[l * 8..l * 8 + 8];
        assert_eq!(r[0], v[..=l].iter().sum::<u32>(), "scan lane {l}");
        assert_eq!(r[1], v[(l / 8) * 8 + 3], "width-8 broadcast lane {l}");
        assert_eq!(r[2], if l + 5 < 32 { v[l + 5] } else { v[l] }, "shfl down lane {l}");
        assert_eq!(r[3], ballot);
        assert_eq!(r[4], any | 2);
        let mm = (0..32).filter(|&j| v[j] % 4 == v[l] % 4).fold(0u32, |m, j| m | 1 << j);
        assert_eq!(r[5], mm, "match lane {l}");
        assert_eq!(r[6], sum ^ max);
        assert_eq!(r[7], if l % 2 == 1 { odd_sum } else { 0 }, "odd-lane redux lane {l}");
    }
}

#[test]
fn atomics_on_shared_and_global() {
    let Some((dev, m)) = setup("atomics.cu") else { return };
    let n = 1000;
    let data = lcg(4, n);
    let fdata = rand_f32(5, n);
    let hist = upload(&dev, &[0u8; 64]);
    let maxv = upload(&dev, &(-10.0f32).to_le_bytes());
    let ring = upload(&dev, &[0u8; 4]);
    let last = upload(&dev, &[0u8; 4]);
    let db = upload(&dev, &bytes_u32(&data));
    let fb = upload(&dev, &bytes_f32(&fdata));
    let mut p = params(&[hist, maxv, ring, last, db, fb]);
    p.extend_from_slice(&(n as u32).to_le_bytes());
    dev.launch(&m, "histogram", &cfg([3, 1, 1], [64, 1, 1], 0), &p).unwrap();
    let h = u32s(&download(&dev, hist, 64));
    for b in 0..16 {
        assert_eq!(
            h[b],
            data.iter().filter(|&&d| d % 16 == b as u32).count() as u32,
            "bin {b}"
        );
    }
    assert_eq!(
        f32s(&download(&dev, maxv, 4))[0],
        fdata.iter().cloned().fold(f32::MIN, f32::max)
    );
    // atomicInc(ring, 9) wraps to 0 after 9: n increments from 0 -> n % 10
    assert_eq!(u32s(&download(&dev, ring, 4))[0], (n % 10) as u32);
    assert_eq!(u32s(&download(&dev, last, 4))[0], 12345);
}

#[test]
fn dynamic_shared_memory() {
    let Some((dev, m)) = setup("dynshared.cu") else { return };
    let n = 200usize;
    let x: Vec<f32> = (0..n).map(|i| i as f32).collect();
    let inb = upload(&dev, &bytes_f32(&x));
    let out = upload(&dev, &vec![0u8; 4 * n]);
    let mut p = params(&[out, inb]);
    p.extend_from_slice(&(n as u32).to_le_bytes());
    dev.launch(&m, "reverse_block", &cfg([4, 1, 1], [64, 1, 1], 64 * 4), &p)
        .unwrap();
    let got = f32s(&download(&dev, out, 4 * n));
    for i in 0..192 {
        let (b, t) = (i / 64, i % 64);
        assert_eq!(got[i], (b * 64 + 63 - t) as f32, "i {i}");
    }
    // too little dynamic shared memory: memcheck reports the overrun
    let err = dev.launch(&m, "reverse_block", &cfg([4, 1, 1], [64, 1, 1], 32 * 4), &p);
    assert!(reports(err).iter().any(|r| r.message.contains("out-of-bounds shared")));

    // 2-D blocks: transpose 32x32 through a padded tile
    let w = 32usize;
    let x: Vec<f32> = (0..w * w).map(|i| i as f32).collect();
    let inb = upload(&dev, &bytes_f32(&x));
    let out = upload(&dev, &vec![0u8; 4 * w * w]);
    let mut p = params(&[out, inb]);
    p.extend_from_slice(&(w as u32).to_le_bytes());
    let rep = dev
        .launch(&m, "transpose_tile", &cfg([2, 2, 1], [16, 16, 1], 16 * 17 * 4), &p)
        .unwrap();
    let got = f32s(&download(&dev, out, 4 * w * w));
    for r in 0..w {
        for c in 0..w {
            assert_eq!(got[r * w + c], x[c * w + r]);
        }
    }
    // padded tile: column reads hit 16 distinct banks... reads by half-warps of a 16-wide tile
    assert!(rep.metrics.shared_requests > 0);
}

#[test]
fn named_barriers_with_counts() {
    let Some((dev, m)) = setup("barriers.cu") else { return };
    let x: Vec<f32> = (0..32).map(|i| i as f32).collect();
    let inb = upload(&dev, &bytes_f32(&x));
    let out = upload(&dev, &[0u8; 4 * 96]);
    dev.launch(
        &m,
        "producer_consumer",
        &cfg([1, 1, 1], [128, 1, 1], 0),
        &params(&[out, inb]),
    )
    .unwrap();
    let got = f32s(&download(&dev, out, 4 * 96));
    for l in 0..32 {
        assert_eq!(got[l], x[31 - l] * 2.0 + 1.0);
    }
    for t in 64..128 {
        assert_eq!(got[t - 32], (127 - t + 64) as f32);
    }
}

fn f16_bits(x: f32) -> u16 {
    // test-side conversion through f64 rounding: exact for the small integers used here
    let b = x.to_bits();
    let sign = ((b >> 16) & 0x8000) as u16;
    if x == 0.0 {
        return sign;
    }
    let e = ((b >> 23) & 0xff) as i32 - 127 + 15;
    let man = ((b >> 13) & 0x3ff) as u16;
    sign | ((e as u16) << 10) | man
}

#[test]
fn tiny_mma_gemm_with_ldmatrix() {
    let Some((dev, m)) = setup("mma.cu") else { return };
    // small integers and halves: exact in f16/bf16 and in f32 accumulation
    let a: Vec<f32> = (0..256).map(|i| ((i * 7) % 11) as f32 - 5.0).collect();
    let bt: Vec<f32> = (0..128).map(|i| ((i * 5) % 9) as f32 * 0.5 - 2.0).collect();
    let want: Vec<f32> = (0..16)
        .flat_map(|r| (0..8).map(move |c| (r, c)))
        .map(|(r, c)| (0..16).map(|k| a[r * 16 + k] * bt[c * 16 + k]).sum())
        .collect();
    let to_u16 = |v: &[f32], bf: bool| -> Vec<u8> {
        v.iter()
            .flat_map(|&x| {
                if bf {
                    ((x.to_bits() >> 16) as u16).to_le_bytes()
                } else {
                    f16_bits(x).to_le_bytes()
                }
            })
            .collect()
    };
    for (kernel, bf) in [("mma_f16", false), ("mma_bf16", true)] {
        let ab = upload(&dev, &to_u16(&a, bf));
        let bb = upload(&dev, &to_u16(&bt, bf));
        let c = dev.alloc(16 * 8 * 4).unwrap();
        let rep = dev
            .launch(&m, kernel, &cfg([1, 1, 1], [32, 1, 1], 0), &params(&[c, ab, bb]))
            .unwrap();
        assert_eq!(f32s(&download(&dev, c, 512)), want, "{kernel}");
        assert_eq!(rep.metrics.mma, 1);
    }
    // m16n8k8 with f16 accumulators: A 16x8, Bt 8x8
    let a8: Vec<f32> = (0..128).map(|i| ((i * 3) % 7) as f32 - 3.0).collect();
    let b8: Vec<f32> = (0..64).map(|i| ((i * 5) % 5) as f32 - 2.0).collect();
    let ab = upload(&dev, &to_u16(&a8, false));
    let bb = upload(&dev, &to_u16(&b8, false));
    let c = dev.alloc(16 * 8 * 2).unwrap();
    dev.launch(
        &m,
        "mma_k8_f16acc",
        &cfg([1, 1, 1], [32, 1, 1], 0),
        &params(&[c, ab, bb]),
    )
    .unwrap();
    let got = download(&dev, c, 256);
    for r in 0..16 {
        for col in 0..8 {
            let want: f32 = (0..8).map(|k| a8[r * 8 + k] * b8[col * 8 + k]).sum();
            let g = u16::from_le_bytes([got[2 * (r * 8 + col)], got[2 * (r * 8 + col) + 1]]);
            assert_eq!(g, f16_bits(want), "({r},{col}) want {want}");
        }
    }
}

#[test]
fn async_copy_pipeline_with_zero_fill() {
    let Some((dev, m)) = setup("mma.cu") else { return };
    let n = 100usize; // lanes with 4*t >= 100 get zero-filled tiles
    let x: Vec<f32> = (0..256).map(|i| i as f32).collect();
    let inb = upload(&dev, &bytes_f32(&x));
    let out = dev.alloc(64 * 4).unwrap();
    let mut p = params(&[out, inb]);
    p.extend_from_slice(&(n as u32).to_le_bytes());
    dev.launch(&m, "async_tile", &cfg([1, 1, 1], [64, 1, 1], 0), &p)
        .unwrap();
    let got = f32s(&download(&dev, out, 256));
    let tile = |i: usize| {
        if i < n.div_ceil(4) * 4 && (i / 4) * 4 < n {
            x[i]
        } else {
            0.0
        }
    };
    for t in 0..64 {
        let want = tile(4 * t) + tile(4 * t + 1) + tile(4 * t + 2) + tile(4 * t + 3) + tile((4 * t + 4) % 256);
        assert_eq!(got[t], want, "t {t}");
    }
}

#[test]
fn tiled_tensor_core_gemm_with_cp_async_pipeline() {
    let Some((dev, m)) = setup("gemm_tc.cu") else { return };
    let (mm, nn, kk) = (128usize, 64usize, 96usize);
    let a: Vec<f32> = rand_f32(10, mm * kk).into_iter().map(bf16_round).collect();
    let b: Vec<f32> = rand_f32(11, kk * nn).into_iter().map(bf16_round).collect();
    let tob = |v: &[f32]| -> Vec<u8> {
        v.iter()
            .flat_map(|x| ((x.to_bits() >> 16) as u16).to_le_bytes())
            .collect()
    };
    let ab = upload(&dev, &tob(&a));
    let bb = upload(&dev, &tob(&b));
    let c = dev.alloc(4 * mm * nn).unwrap();
    let mut p = params(&[c, ab, bb]);
    for v in [mm, nn, kk] {
        p.extend_from_slice(&(v as u32).to_le_bytes());
    }
    p.extend_from_slice(&[0; 4]);
    let (_, total) = m.kernel_params("gemm_bf16_tc").unwrap();
    p.truncate(total as usize);
    let rep = dev
        .launch(
            &m,
            "gemm_bf16_tc",
            &cfg([(nn / 64) as u32, (mm / 64) as u32, 1], [128, 1, 1], 0),
            &p,
        )
        .unwrap();
    let got = f32s(&download(&dev, c, 4 * mm * nn));
    for i in 0..mm {
        for j in 0..nn {
            let want: f64 = (0..kk).map(|k| a[i * kk + k] as f64 * b[k * nn + j] as f64).sum();
            assert!(
                close(got[i * nn + j], want, 1e-5, 1e-5),
                "({i},{j}) {} vs {want}",
                got[i * nn + j]
            );
        }
    }
    // 2 blocks x 4 warps x (96/16 k-steps) x 8 mma tiles
    assert_eq!(rep.metrics.mma, 2 * 4 * 6 * 8);
}

#[test]
fn blocks_on_several_worker_threads_give_the_same_results() {
    let Some(ptx) = compile_cu("atomics.cu") else { return };
    let n = 5000;
    let data = lcg(14, n);
    let fdata = rand_f32(15, n);
    let mut results = vec![];
    // 0: one worker per core (the default). A kernel with global atomics runs its blocks in order on
    // one thread whatever the count, so even the CAS retries and the float max are the same.
    for workers in [1usize, 4, 0] {
        let dev = ptx_emu::Device::new(ptx_emu::Options {
            worker_threads: workers,
            ..Default::default()
        });
        let m = dev.load_module(&ptx).unwrap();
        let hist = upload(&dev, &[0u8; 64]);
        let maxv = upload(&dev, &(-10.0f32).to_le_bytes());
        let ring = upload(&dev, &[0u8; 4]);
        let last = upload(&dev, &[0u8; 4]);
        let db = upload(&dev, &bytes_u32(&data));
        let fb = upload(&dev, &bytes_f32(&fdata));
        let mut p = params(&[hist, maxv, ring, last, db, fb]);
        p.extend_from_slice(&(n as u32).to_le_bytes());
        let rep = dev
            .launch(&m, "histogram", &cfg([16, 1, 1], [64, 1, 1], 0), &p)
            .unwrap();
        results.push((
            download(&dev, hist, 64),
            download(&dev, maxv, 4),
            download(&dev, ring, 4),
            rep.metrics.blocks,
            rep.metrics.instructions,
        ));
    }
    assert_eq!(results[0], results[1]);
    assert_eq!(results[0], results[2]);
    // Independent blocks run in parallel: the same outputs and metrics for any worker count.
    let Some(ptx) = compile_cu("reduce.cu") else { return };
    let (rows, cols) = (37usize, 256usize);
    let x = rand_f32(16, rows * cols);
    let runs: Vec<(Vec<u8>, u64, u64, u64)> = [1usize, 2, 7, 0]
        .iter()
        .map(|&workers| {
            let dev = ptx_emu::Device::new(ptx_emu::Options {
                worker_threads: workers,
                ..Default::default()
            });
            let m = dev.load_module(&ptx).unwrap();
            let xb = upload(&dev, &bytes_f32(&x));
            let out = dev.alloc(8 * rows).unwrap();
            let mut p = params(&[out, xb]);
            p.extend_from_slice(&(cols as u32).to_le_bytes());
            let rep = dev
                .launch(&m, "row_stats", &cfg([rows as u32, 1, 1], [64, 1, 1], 0), &p)
                .unwrap();
            let mt = rep.metrics;
            (
                download(&dev, out, 8 * rows),
                mt.instructions,
                mt.global_sectors,
                mt.shared_wavefronts,
            )
        })
        .collect();
    assert!(runs.windows(2).all(|w| w[0] == w[1]));
    // and the same check report whichever thread ran the faulty block
    let src = format!(
        "{HEADER}.visible .entry k(.param .u64 p)\n{{\n.reg .b32 %r<4>;\n.reg .b64 %rd<4>;\nld.param.u64 %rd1, [p];\nmov.u32 %r1, %ctaid.x;\nmul.wide.u32 %rd2, %r1, 4;\nadd.s64 %rd3, %rd1, %rd2;\nst.global.u32 [%rd3], %r1;\nret;\n}}\n"
    );
    for workers in [1usize, 3, 0] {
        let dev = ptx_emu::Device::new(ptx_emu::Options {
            worker_threads: workers,
            ..Default::default()
        });
        let m = dev.load_module(&src).unwrap();
        let out = dev.alloc(4 * 30).unwrap();
        let reps = reports(dev.launch(&m, "k", &cfg([32, 1, 1], [1, 1, 1], 0), &params(&[out])));
        assert_eq!(reps.len(), 1);
        assert_eq!(reps[0].block, [30, 0, 0]);
    }
}

#[test]
fn seeded_schedules_keep_correct_kernels_correct() {
    let Some(ptx) = compile_cu("reduce.cu") else { return };
    let n = 2000;
    let x = rand_f32(30, n);
    let mut results = vec![];
    for seed in [None, Some(1u64), Some(2), Some(12345)] {
        let dev = ptx_emu::Device::new(ptx_emu::Options {
            schedule_seed: seed,
            ..Default::default()
        });
        let m = dev.load_module(&ptx).unwrap();
        let partial = dev.alloc(4 * 2).unwrap();
        let total = upload(&dev, &[0u8; 4]);
        let xb = upload(&dev, &bytes_f32(&x));
        let mut p = params(&[partial, total, xb]);
        p.extend_from_slice(&(n as u32).to_le_bytes());
        let rep = dev
            .launch(&m, "reduce_sum", &cfg([2, 1, 1], [256, 1, 1], 0), &p)
            .unwrap();
        results.push((
            download(&dev, partial, 8),
            rep.metrics.instructions,
            rep.metrics.barriers,
        ));
    }
    assert!(results.windows(2).all(|w| w[0] == w[1]), "{results:?}");
}

#[test]
fn device_printf_and_assert() {
    let Some(ptx) = compile_cu("printf.cu") else { return };
    let dev = ptx_emu::Device::new(ptx_emu::Options {
        printf_stdout: false,
        ..Default::default()
    });
    let m = dev.load_module(&ptx).unwrap();
    let x = upload(&dev, &bytes_f32(&[1.5, -2.25, 3.0, 4.0]));
    let mut p = params(&[x]);
    p.extend_from_slice(&4u32.to_le_bytes());
    let rep = dev.launch(&m, "pf", &cfg([1, 1, 1], [4, 1, 1], 0), &p).unwrap();
    assert_eq!(
        rep.printf,
        vec![
            "thread 0 x=1.500000 n=4 str c 1.50e+00 123456789abc\n".to_string(),
            "thread 1 x=-2.250000 n=4 str c -2.25e+00 123456789abc\n".to_string(),
        ]
    );
    // n = 3: thread 3 fails assert(i < n)
    p.truncate(8);
    p.extend_from_slice(&3u32.to_le_bytes());
    let reps = reports(dev.launch(&m, "pf", &cfg([1, 1, 1], [4, 1, 1], 0), &p));
    assert_eq!(reps[0].kind, ptx_emu::CheckKind::Trap);
    assert_eq!(reps[0].thread, [3, 0, 0]);
    assert!(
        reps[0].message.contains("assertion `i < n` failed at") && reps[0].message.contains("printf.cu:7"),
        "{}",
        reps[0].message
    );
}
