//! The library API: allocation layout, host copies, param-size checks, module globals, errors, metrics.

mod common;
use common::*;
use ptx_emu::{Checks, EmuError};

#[test]
fn allocations_are_aligned_nonzero_and_separated() {
    let dev = device(Checks::all());
    let a = dev.alloc(10).unwrap();
    let b = dev.alloc(1000).unwrap();
    let c = dev.alloc(0).unwrap();
    assert!(a != 0 && a % 256 == 0 && b % 256 == 0 && c % 256 == 0);
    assert!(b > a + 10 && c > b + 1000);
    dev.write(b + 100, &[1, 2, 3]).unwrap();
    let mut out = [0u8; 3];
    dev.read(b + 100, &mut out).unwrap();
    assert_eq!(out, [1, 2, 3]);
    assert!(matches!(dev.write(a + 8, &[0; 8]), Err(EmuError::BadAddress { .. })));
    dev.free(a).unwrap();
    assert!(dev.free(a).is_err());
    assert!(dev.read(a, &mut out).is_err());
}

#[test]
fn param_size_mismatch_is_a_clear_error() {
    let src = format!(
        "{HEADER}.visible .entry k(.param .align 8 .b8 k_param_0[24])\n{{\n.reg .b64 %rd<4>;\nld.param.u64 %rd1, [k_param_0+16];\nret;\n}}\n"
    );
    let dev = device(Checks::all());
    let m = dev.load_module(&src).unwrap();
    assert_eq!(m.kernel_params("k"), Some((vec![(0, 24, 8)], 24)));
    let err = dev
        .launch(&m, "k", &cfg([1, 1, 1], [1, 1, 1], 0), &[0u8; 16])
        .unwrap_err();
    assert!(
        err.to_string().contains("takes 24 bytes of parameters, got 16"),
        "{err}"
    );
    dev.launch(&m, "k", &cfg([1, 1, 1], [1, 1, 1], 0), &[0u8; 24]).unwrap();
    assert!(matches!(
        dev.launch(&m, "nope", &cfg([1, 1, 1], [1, 1, 1], 0), &[0u8; 24]),
        Err(EmuError::NoKernel(_))
    ));
    assert!(matches!(
        dev.launch(&m, "k", &cfg([1, 1, 1], [2048, 1, 1], 0), &[0u8; 24]),
        Err(EmuError::Usage(_))
    ));
}

#[test]
fn unsupported_instruction_is_a_typed_error_with_line() {
    // The module loads (other kernels may not use the instruction, tests/fidelity.rs); launching the
    // kernel that contains it is the error, with the PTX line.
    let dev = device(Checks::all());
    let launch = |src: &str| {
        let m = dev.load_module(src)?;
        assert!(m
            .warnings()
            .iter()
            .any(|w| w.contains("kernel k contains unsupported PTX")));
        dev.launch(&m, "k", &cfg([1, 1, 1], [1, 1, 1], 0), &[])
    };
    let src = format!(
        "{HEADER}.visible .entry k()\n{{\n.reg .b32 %r<4>;\nmov.u32 %r1, 1;\nbarrier.cluster.arrive;\nret;\n}}\n"
    );
    match launch(&src) {
        Err(EmuError::Unsupported { line, instruction }) => {
            assert_eq!(line, 8);
            assert!(instruction.starts_with("barrier.cluster.arrive"), "{instruction}");
        }
        other => panic!("expected Unsupported, got {other:?}"),
    }
    // a modifier that would change the semantics is not ignored
    let src = format!("{HEADER}.visible .entry k()\n{{\n.reg .b16 %h<4>;\nmin.xorsign.abs.f16 %h1, %h2, %h3;\n}}\n");
    match launch(&src) {
        Err(EmuError::Unsupported { line: 7, instruction }) => {
            assert!(instruction.contains(".xorsign"), "{instruction}")
        }
        other => panic!("expected Unsupported, got {other:?}"),
    }
    let src = format!("{HEADER}.visible .entry k()\n{{\nfrobnicate.b32 %r1;\n}}\n");
    assert!(matches!(launch(&src), Err(EmuError::Unsupported { line: 6, .. })));
    // A syntax or name error still rejects the whole module.
    let src = format!("{HEADER}.visible .entry k()\n{{\nmov.u32 %nope, 1;\n}}\n");
    assert!(matches!(dev.load_module(&src), Err(EmuError::Parse { line: 6, .. })));
}

#[test]
fn module_globals_and_const_are_initialized() {
    let src = format!(
        "{HEADER}.global .align 4 .b8 tab[8] = {{1, 2, 3, 4, 5, 6, 7, 8}};\n.const .align 4 .u32 cst[2] = {{100, 200}};\n.visible .entry k(.param .u64 p)\n{{\n.reg .b32 %r<8>;\n.reg .b64 %rd<4>;\nld.param.u64 %rd1, [p];\nmov.u64 %rd2, tab;\nld.global.u32 %r1, [%rd2+4];\nld.const.u32 %r2, [cst+4];\nadd.s32 %r3, %r1, %r2;\nst.global.u32 [%rd1], %r3;\nret;\n}}\n"
    );
    let dev = device(Checks::all());
    let m = dev.load_module(&src).unwrap();
    let out = dev.alloc(4).unwrap();
    dev.launch(&m, "k", &cfg([1, 1, 1], [1, 1, 1], 0), &params(&[out]))
        .unwrap();
    assert_eq!(u32s(&download(&dev, out, 4))[0], 0x0807_0605 + 200);
}

#[test]
fn device_function_call_and_return_values() {
    let src = format!(
        "{HEADER}.func (.param .b32 ret0) add3(.param .b32 a, .param .b32 b)\n{{\n.reg .b32 %r<4>;\nld.param.b32 %r1, [a];\nld.param.b32 %r2, [b];\nadd.s32 %r3, %r1, %r2;\nadd.s32 %r3, %r3, 3;\nst.param.b32 [ret0], %r3;\nret;\n}}\n.visible .entry k(.param .u64 p)\n{{\n.reg .b32 %r<8>;\n.reg .b64 %rd<4>;\n.reg .pred %p<2>;\nld.param.u64 %rd1, [p];\nmov.u32 %r1, %tid.x;\nsetp.lt.u32 %p1, %r1, 5;\n@%p1 bra $L_skip;\n{{\n.param .b32 param0;\nst.param.b32 [param0], %r1;\n.param .b32 param1;\nst.param.b32 [param1], 10;\n.param .b32 retval0;\ncall.uni (retval0), add3, (param0, param1);\nld.param.b32 %r2, [retval0];\n}}\nbra.uni $L_st;\n$L_skip:\nmov.u32 %r2, 0;\n$L_st:\nmul.wide.u32 %rd2, %r1, 4;\nadd.s64 %rd3, %rd1, %rd2;\nst.global.u32 [%rd3], %r2;\nret;\n}}\n"
    );
    let dev = device(Checks::all());
    let m = dev.load_module(&src).unwrap();
    let out = dev.alloc(4 * 32).unwrap();
    dev.launch(&m, "k", &cfg([1, 1, 1], [32, 1, 1], 0), &params(&[out]))
        .unwrap();
    let got = u32s(&download(&dev, out, 128));
    for (t, g) in got.iter().enumerate() {
        assert_eq!(*g, if t < 5 { 0 } else { t as u32 + 13 }, "thread {t}");
    }
}

#[test]
fn grids_and_blocks_in_three_dimensions() {
    // out[linear block][linear thread] = tid.x + 10 tid.y + 100 tid.z + 1000 (ctaid.x + 10 ctaid.y + 100 ctaid.z)
    let src = format!(
        "{HEADER}.visible .entry k(.param .u64 p)\n{{\n.reg .b32 %r<32>;\n.reg .b64 %rd<4>;\nld.param.u64 %rd1, [p];\nmov.u32 %r1, %tid.x;\nmov.u32 %r2, %tid.y;\nmov.u32 %r3, %tid.z;\nmov.u32 %r4, %ctaid.x;\nmov.u32 %r5, %ctaid.y;\nmov.u32 %r6, %ctaid.z;\nmov.u32 %r7, %ntid.x;\nmov.u32 %r8, %ntid.y;\nmov.u32 %r9, %nctaid.x;\nmov.u32 %r10, %nctaid.y;\nmad.lo.s32 %r11, %r3, %r8, %r2;\nmad.lo.s32 %r11, %r11, %r7, %r1;\nmad.lo.s32 %r12, %r6, %r10, %r5;\nmad.lo.s32 %r12, %r12, %r9, %r4;\nmul.lo.s32 %r13, %r7, %r8;\nmov.u32 %r14, %ntid.z;\nmul.lo.s32 %r13, %r13, %r14;\nmad.lo.s32 %r15, %r12, %r13, %r11;\nmad.lo.s32 %r16, %r2, 10, %r1;\nmad.lo.s32 %r16, %r3, 100, %r16;\nmad.lo.s32 %r17, %r5, 10, %r4;\nmad.lo.s32 %r17, %r6, 100, %r17;\nmad.lo.s32 %r18, %r17, 1000, %r16;\nmul.wide.u32 %rd2, %r15, 4;\nadd.s64 %rd3, %rd1, %rd2;\nst.global.u32 [%rd3], %r18;\nret;\n}}\n"
    );
    let dev = device(Checks::all());
    let m = dev.load_module(&src).unwrap();
    let (grid, block) = ([2u32, 3, 2], [4u32, 2, 3]);
    let n = 12 * 24;
    let out = dev.alloc(4 * n).unwrap();
    let rep = dev.launch(&m, "k", &cfg(grid, block, 0), &params(&[out])).unwrap();
    let got = u32s(&download(&dev, out, 4 * n));
    let mut i = 0;
    for bz in 0..2 {
        for by in 0..3 {
            for bx in 0..2 {
                for tz in 0..3 {
                    for ty in 0..2 {
                        for tx in 0..4 {
                            assert_eq!(got[i], tx + 10 * ty + 100 * tz + 1000 * (bx + 10 * by + 100 * bz));
                            i += 1;
                        }
                    }
                }
            }
        }
    }
    assert_eq!(rep.metrics.blocks, 12);
    assert_eq!(rep.metrics.threads, 12 * 24);
}

#[test]
fn metrics_coalescing_and_bank_conflicts() {
    // Each of 32 lanes loads out[stride * lane] and writes shared s[stride * lane].
    let src = |stride: u32| {
        format!(
            "{HEADER}.visible .entry k(.param .u64 p)\n{{\n.reg .b32 %r<8>;\n.reg .b64 %rd<4>;\n.shared .align 4 .b8 s[4096];\nld.param.u64 %rd1, [p];\nmov.u32 %r1, %tid.x;\nmul.lo.s32 %r2, %r1, {};\nmul.wide.u32 %rd2, %r2, 1;\nadd.s64 %rd3, %rd1, %rd2;\nld.global.u32 %r3, [%rd3];\nmov.u32 %r4, s;\nadd.s32 %r5, %r4, %r2;\nst.shared.u32 [%r5], %r3;\nret;\n}}\n",
            4 * stride
        )
    };
    let dev = device(Checks::all());
    let buf = upload(&dev, &vec![0u8; 4096]);
    let m1 = dev.load_module(&src(1)).unwrap();
    let r1 = dev
        .launch(&m1, "k", &cfg([1, 1, 1], [32, 1, 1], 0), &params(&[buf]))
        .unwrap()
        .metrics;
    assert_eq!((r1.global_requests, r1.global_sectors), (1, 4));
    assert_eq!(r1.shared_bank_conflicts, 0);
    assert_eq!(r1.global_load_bytes, 128);
    let m32 = dev.load_module(&src(32)).unwrap();
    let r32 = dev
        .launch(&m32, "k", &cfg([1, 1, 1], [32, 1, 1], 0), &params(&[buf]))
        .unwrap()
        .metrics;
    assert_eq!((r32.global_requests, r32.global_sectors), (1, 32));
    // stride 32 words: every lane hits bank 0 -> 32 wavefronts, 31 extra
    assert_eq!(r32.shared_bank_conflicts, 31);
    assert!(r32.to_json().contains("\"instructions\": "));
    assert!(r32.to_json().contains("\"wall_seconds\": "));
}

#[test]
fn recursion_is_rejected() {
    let src = format!(
        "{HEADER}.func f(.param .b32 a)\n{{\n.reg .b32 %r<2>;\nld.param.b32 %r1, [a];\n{{\n.param .b32 param0;\nst.param.b32 [param0], %r1;\ncall.uni f, (param0);\n}}\nret;\n}}\n.visible .entry k()\n{{\nret;\n}}\n"
    );
    let dev = device(Checks::all());
    match dev.load_module(&src) {
        Err(EmuError::Unsupported { line, instruction }) => {
            assert_eq!(line, 11);
            assert!(instruction.contains("recursive"), "{instruction}");
        }
        other => panic!("expected Unsupported, got {other:?}"),
    }
}

#[test]
fn device_and_module_are_send_and_sync() {
    fn assert_send_sync<T: Send + Sync>() {}
    assert_send_sync::<ptx_emu::Device>();
    assert_send_sync::<ptx_emu::Module>();
    assert_send_sync::<ptx_emu::Metrics>();
    assert_send_sync::<ptx_emu::EmuError>();
    // one device shared by threads: concurrent allocation, copies and launches
    let dev = std::sync::Arc::new(device(Checks::all()));
    let src = format!(
        "{HEADER}.visible .entry k(.param .u64 p)\n{{\n.reg .b32 %r<4>;\n.reg .b64 %rd<4>;\nld.param.u64 %rd1, [p];\nmov.u32 %r1, %tid.x;\nmul.wide.u32 %rd2, %r1, 4;\nadd.s64 %rd3, %rd1, %rd2;\nst.global.u32 [%rd3], %r1;\nret;\n}}\n"
    );
    let m = dev.load_module(&src).unwrap();
    let hs: Vec<_> = (0..4)
        .map(|_| {
            let (dev, m) = (dev.clone(), m.clone());
            std::thread::spawn(move || {
                let out = dev.alloc(128).unwrap();
                dev.launch(&m, "k", &cfg([1, 1, 1], [32, 1, 1], 0), &params(&[out]))
                    .unwrap();
                let got = u32s(&download(&dev, out, 128));
                dev.free(out).unwrap();
                got
            })
        })
        .collect();
    for h in hs {
        assert_eq!(h.join().unwrap(), (0..32).collect::<Vec<u32>>());
    }
}

#[test]
fn kernel_params_through_generic_and_register_addresses() {
    // by-value struct: read field 2 via cvta.param + generic load, and field 3 via ld.param with a register base
    let src = format!(
        "{HEADER}.visible .entry k(.param .align 8 .b8 k_param_0[24])\n{{\n.reg .b32 %r<8>;\n.reg .b64 %rd<8>;\nld.param.u64 %rd1, [k_param_0];\nmov.b64 %rd2, k_param_0;\ncvta.param.u64 %rd3, %rd2;\nld.u32 %r1, [%rd3+8];\nld.param.u32 %r2, [%rd2+12];\nadd.s32 %r3, %r1, %r2;\nst.global.u32 [%rd1], %r3;\nld.param.u32 %r4, [%rd2+16];\nst.global.u32 [%rd1+4], %r4;\nret;\n}}\n"
    );
    let dev = device(Checks::all());
    let m = dev.load_module(&src).unwrap();
    let out = dev.alloc(8).unwrap();
    let mut p = out.to_le_bytes().to_vec();
    for v in [40u32, 2, 7, 0] {
        p.extend_from_slice(&v.to_le_bytes());
    }
    dev.launch(&m, "k", &cfg([1, 1, 1], [1, 1, 1], 0), &p).unwrap();
    assert_eq!(u32s(&download(&dev, out, 8)), vec![42, 7]);
}

#[test]
fn modules_are_parsed_and_lowered_once_per_process() {
    // A text no other test loads; with a module variable, each device still gets its own copy.
    let src = format!(
        "{HEADER}// modules_are_parsed_and_lowered_once_per_process\n.global .align 4 .u32 counter = 7;\n\
         .visible .entry k(.param .u64 p)\n{{\n.reg .b32 %r<4>;\n.reg .b64 %rd<4>;\nld.param.u64 %rd1, [p];\n\
         ld.global.u32 %r1, [counter];\nadd.u32 %r2, %r1, 1;\nst.global.u32 [counter], %r2;\nst.global.u32 [%rd1], %r2;\nret;\n}}\n"
    );
    assert!(!ptx_emu::module_cache::contains(&src));
    let (d1, d2) = (device(Checks::all()), device(Checks::all()));
    let m1 = d1.load_module(&src).unwrap();
    assert!(ptx_emu::module_cache::contains(&src));
    let m2 = d2.load_module(&src).unwrap();
    let run = |d: &ptx_emu::Device, m: &ptx_emu::Module| {
        let out = d.alloc(4).unwrap();
        d.launch(m, "k", &cfg([1, 1, 1], [1, 1, 1], 0), &params(&[out]))
            .unwrap();
        u32s(&download(d, out, 4))[0]
    };
    assert_eq!(run(&d1, &m1), 8);
    assert_eq!(run(&d1, &m1), 9);
    assert_eq!(run(&d2, &m2), 8, "the other device's module variable is its own");
    // Without module variables the lowered program itself is shared; a parse error is not cached.
    let plain = format!("{HEADER}// once per process, plain\n.visible .entry k()\n{{\nret;\n}}\n");
    d1.load_module(&plain).unwrap();
    d2.load_module(&plain).unwrap();
    assert!(ptx_emu::module_cache::contains(&plain));
    let bad = format!("{HEADER}// once per process, bad\n.visible .entry k()\n{{\nmov.u32 %nope, 1;\n}}\n");
    assert!(d1.load_module(&bad).is_err());
    assert!(!ptx_emu::module_cache::contains(&bad));
}
