//! What build.rs produced: the params mirror is fresh, the committed PTX (`ptx/`) is what nvcc makes of
//! today's sources, every kernel is in the PTX and in the fatbin for every listed arch, and ptxas reports
//! zero spill bytes for every kernel.
//!
//! Tools these tests need beyond the build (libclang for bindgen, cuobjdump) are looked up at run time;
//! when one is missing the test prints why it skips, except under `CI`, where it fails.

#[path = "support/params_bindgen.rs"]
mod params_bindgen;

use std::collections::{BTreeMap, BTreeSet};
use std::path::{Path, PathBuf};

use llama_kernels::raw::{module::NVCC_PATH, MODULE_IMAGES, PTXAS_REPORT};

const PARAMS_H: &str = concat!(env!("CARGO_MANIFEST_DIR"), "/cuda/include/params.h");
const PARAMS_LAYOUT_H: &str = concat!(env!("CARGO_MANIFEST_DIR"), "/cuda/include/params_layout.h");
const PARAMS_RS: &str = concat!(env!("CARGO_MANIFEST_DIR"), "/src/raw/params.rs");

/// Skips (prints the reason) outside CI; fails in CI.
fn skip_or_fail(test: &str, reason: &str) {
    if std::env::var_os("CI").is_some() {
        panic!("{test}: {reason} (CI is set, so this check may not be skipped)");
    }
    // Straight to stderr: libtest captures eprintln! of passing tests.
    use std::io::Write as _;
    let _ = writeln!(std::io::stderr(), "skipping {test}: {reason}");
}

/// The C side of the layout asserts: one `offsetof` static assert per field, taken from the offsets
/// bindgen computed for the Rust mirror, so both compilers check the same numbers.
fn params_layout_h(params_rs: &str) -> String {
    let mut out = String::from(
        "/* @generated from src/raw/params.rs by tests/build_artifacts.rs: do not edit.\n * Field offsets of \
         the params structs, asserted by the CUDA compiler; the Rust mirror asserts the same offsets. */\n\
         #ifndef LLAMA_KERNELS_PARAMS_LAYOUT_H\n#define LLAMA_KERNELS_PARAMS_LAYOUT_H\n\n",
    );
    let marker = "offset_of!(";
    let mut rest = params_rs;
    while let Some(pos) = rest.find(marker) {
        rest = &rest[pos + marker.len()..];
        let close = rest.find(')').expect("offset_of!(...) closes");
        let args: Vec<&str> = rest[..close].split(',').map(str::trim).collect();
        let after = &rest[close + 1..];
        let offset: usize = after
            .trim_start()
            .trim_start_matches('-')
            .trim_start()
            .split("usize")
            .next()
            .and_then(|n| n.trim().parse().ok())
            .expect("bindgen writes `offset_of!(T, f) - Nusize`");
        out.push_str(&format!(
            "LK_STATIC_ASSERT(__builtin_offsetof({0}, {1}) == {2}, \"{0}::{1} is at byte {2} in the Rust mirror\");\n",
            args[0], args[1], offset
        ));
    }
    out.push_str("#endif /* LLAMA_KERNELS_PARAMS_LAYOUT_H */\n");
    out
}

/// Compares `path` with `expected`, or rewrites it under `LLAMA_KERNELS_BLESS=1`.
fn check_or_bless(path: &str, expected: &str) {
    if std::env::var_os("LLAMA_KERNELS_BLESS").is_some() {
        std::fs::write(path, expected).unwrap();
        return;
    }
    let actual = std::fs::read_to_string(path).unwrap_or_default();
    assert!(
        actual == expected,
        "{path} is stale: regenerate with `LLAMA_KERNELS_BLESS=1 cargo test --test build_artifacts params_mirror`"
    );
}

#[test]
fn params_mirror_is_fresh_and_layout_asserted_on_both_sides() {
    // The C offset asserts follow from the committed mirror, whatever libclang says (blessing: from the
    // mirror just generated, below). A struct change leaves stale asserts that stop the kernels from
    // building, and so this test: delete that struct's lines from params_layout.h, then bless.
    let committed = std::fs::read_to_string(PARAMS_RS).unwrap();
    check_or_bless(PARAMS_LAYOUT_H, &params_layout_h(&committed));
    assert!(
        std::fs::read_to_string(PARAMS_H)
            .unwrap()
            .contains("#include \"params_layout.h\""),
        "params.h must include params_layout.h so every kernel checks the offsets"
    );

    let Some(libclang_dir) = params_bindgen::find_libclang() else {
        return skip_or_fail(
            "params_mirror_is_fresh",
            "libclang not found (set LIBCLANG_PATH or `python3 -m pip install libclang==18.1.1`)",
        );
    };
    std::env::set_var("LIBCLANG_PATH", &libclang_dir);
    let generated = params_bindgen::generate_params_rs(PARAMS_H).unwrap();
    check_or_bless(PARAMS_RS, &generated);
    check_or_bless(PARAMS_LAYOUT_H, &params_layout_h(&generated));
}

/// The committed PTX (`ptx/`, what a build without nvcc uses) is what nvcc makes of today's sources, and
/// `ptx/SOURCES` names those sources' hashes; `LLAMA_KERNELS_BLESS=1` rewrites both (and removes the PTX
/// of a kernel that is gone).
#[test]
fn committed_ptx_is_what_nvcc_makes_of_todays_sources() {
    if NVCC_PATH.is_empty() {
        return skip_or_fail(
            "committed_ptx_is_fresh",
            "this build took the committed PTX (no nvcc): there is nothing to compare it with",
        );
    }
    let dir = concat!(env!("CARGO_MANIFEST_DIR"), "/ptx");
    if std::env::var_os("LLAMA_KERNELS_BLESS").is_some() {
        std::fs::create_dir_all(dir).unwrap();
    }
    for image in MODULE_IMAGES {
        check_or_bless(&format!("{dir}/{}.ptx", image.name), image.ptx);
    }
    check_or_bless(&format!("{dir}/SOURCES"), llama_kernels::raw::module::PTX_SOURCES);
    let expected: BTreeSet<String> = MODULE_IMAGES
        .iter()
        .map(|m| format!("{}.ptx", m.name))
        .chain(["SOURCES".to_string()])
        .collect();
    for entry in std::fs::read_dir(dir).unwrap().flatten() {
        let name = entry.file_name().to_string_lossy().into_owned();
        if !expected.contains(&name) {
            if std::env::var_os("LLAMA_KERNELS_BLESS").is_some() {
                std::fs::remove_file(entry.path()).unwrap();
            } else {
                panic!("ptx/{name} is no kernel's: regenerate with `LLAMA_KERNELS_BLESS=1 cargo test --test build_artifacts committed_ptx`");
            }
        }
    }
}

/// `cuobjdump` beside the nvcc that built the kernels.
fn cuobjdump() -> Option<PathBuf> {
    let p = Path::new(NVCC_PATH).with_file_name("cuobjdump");
    p.is_file().then_some(p)
}

/// The `.entry` names of a PTX module.
fn ptx_entries(ptx: &str) -> BTreeSet<String> {
    ptx.lines()
        .filter_map(|l| l.trim().strip_prefix(".visible .entry "))
        .map(|rest| rest.split('(').next().unwrap().trim().to_string())
        .collect()
}

/// A path under the temp dir unique to this call (process id and a counter): tests run on parallel
/// threads, and two of them may extract the same module.
fn scratch_file(name: &str) -> std::path::PathBuf {
    static NEXT: std::sync::atomic::AtomicU64 = std::sync::atomic::AtomicU64::new(0);
    let n = NEXT.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
    std::env::temp_dir().join(format!("llama-kernels-{}-{n}-{name}", std::process::id()))
}

/// Entry symbols per SASS arch, and the archs of embedded PTX, from `cuobjdump -symbols`.
fn fatbin_contents(tool: &Path, fatbin: &[u8], name: &str) -> (BTreeMap<String, BTreeSet<String>>, BTreeSet<String>) {
    let path = scratch_file(&format!("{name}.fatbin"));
    std::fs::write(&path, fatbin).unwrap();
    let out = std::process::Command::new(tool)
        .arg("-symbols")
        .arg(&path)
        .output()
        .unwrap();
    let _ = std::fs::remove_file(&path);
    assert!(
        out.status.success(),
        "cuobjdump failed: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    let text = String::from_utf8_lossy(&out.stdout);
    let (mut elf, mut ptx) = (BTreeMap::<String, BTreeSet<String>>::new(), BTreeSet::new());
    let mut section_is_elf = false;
    let mut arch = String::new();
    for line in text.lines() {
        let line = line.trim();
        if line.starts_with("Fatbin elf code") {
            section_is_elf = true;
        } else if line.starts_with("Fatbin ptx code") {
            section_is_elf = false;
        } else if let Some(a) = line.strip_prefix("arch = ") {
            arch = a.to_string();
            if section_is_elf {
                elf.entry(arch.clone()).or_default();
            } else {
                ptx.insert(arch.clone());
            }
        } else if section_is_elf && line.contains("STO_ENTRY") {
            let sym = line.split_whitespace().last().unwrap().to_string();
            elf.entry(arch.clone()).or_default().insert(sym);
        }
    }
    (elf, ptx)
}

#[test]
fn every_kernel_is_in_the_ptx_and_in_the_fatbin_for_every_arch() {
    let launched = llama_kernels::ops::launched_kernels();
    for k in &launched {
        let image = llama_kernels::raw::module_image(k.module).unwrap_or_else(|| {
            panic!(
                "kernel {} names module {}, which build.rs did not compile",
                k.name, k.module
            )
        });
        assert!(
            ptx_entries(image.ptx).contains(k.name),
            "{} missing from the PTX of {}",
            k.name,
            k.module
        );
    }
    let Some(tool) = cuobjdump() else {
        return skip_or_fail(
            "every_kernel_is_in_the_fatbin",
            "cuobjdump not found beside nvcc (`python3 -m pip install nvidia-cuda-cuobjdump==13.2.86`)",
        );
    };
    for image in MODULE_IMAGES {
        let entries = ptx_entries(image.ptx);
        let (elf, ptx_archs) = fatbin_contents(&tool, image.fatbin, image.name);
        for arch in llama_kernels::raw::module::SASS_ARCHS {
            let syms = elf
                .get(*arch)
                .unwrap_or_else(|| panic!("{}: no SASS for {arch} in the fatbin", image.name));
            for e in &entries {
                assert!(
                    syms.contains(e),
                    "{}: kernel {e} missing from the {arch} SASS",
                    image.name
                );
            }
        }
        let ptx_arch = llama_kernels::raw::module::PTX_ARCH.replace("compute_", "sm_");
        assert!(
            ptx_archs.contains(&ptx_arch),
            "{}: no {ptx_arch} PTX in the fatbin ({ptx_archs:?})",
            image.name
        );
    }
}

#[test]
fn ptxas_reports_every_kernel_on_every_arch_with_zero_spills() {
    if NVCC_PATH.is_empty() {
        return skip_or_fail(
            "ptxas_reports_every_kernel",
            "this build took the committed PTX (no nvcc): no SASS, no ptxas report",
        );
    }
    for image in MODULE_IMAGES {
        for kernel in ptx_entries(image.ptx) {
            for arch in llama_kernels::raw::module::SASS_ARCHS {
                let r = llama_kernels::raw::find_kernel_resources(&kernel, arch)
                    .unwrap_or_else(|| panic!("no ptxas report for {kernel} on {arch}"));
                assert!(
                    r.registers > 0,
                    "{kernel} on {arch}: ptxas reported 0 registers: report not parsed?"
                );
                assert_eq!(
                    (r.spill_store_bytes, r.spill_load_bytes),
                    (0, 0),
                    "{kernel} on {arch} spills registers: {r:?}"
                );
            }
        }
    }
    assert!(!PTXAS_REPORT.is_empty());
    let tsv = std::fs::read_to_string(llama_kernels::raw::module::PTXAS_REPORT_PATH).unwrap();
    assert_eq!(
        tsv.lines().count(),
        PTXAS_REPORT.len() + 1,
        "the TSV and the Rust table disagree"
    );
}

/// The SASS of the tensor-core kernels shows what their headers claim, on every arch: HMMA (mma.sync
/// m16n8k16 with f32 accumulators), LDSM (ldmatrix; .MT88 is the transposed load: attention's V, GEMM
/// operands stored mn-major), for attention v2 and GEMM v3 LDGSTS (16-byte cp.async bypassing L1), for
/// GEMM v3 16-byte stores of C, for the GEMM decode path 16-byte loads of W that skip L1, for the small ops and
/// the KV append 16-byte loads and stores, and no local memory (LDL/STL: spills or stack arrays).
#[test]
fn tensor_core_kernels_show_hmma_ldsm_and_ldgsts_in_their_sass() {
    let Some(tool) = cuobjdump() else {
        return skip_or_fail(
            "tensor_core_kernels_show_hmma_ldsm_and_ldgsts_in_their_sass",
            "cuobjdump not found beside nvcc (`python3 -m pip install nvidia-cuda-cuobjdump==13.2.86`)",
        );
    };
    let attention_v2 = [
        "HMMA.16816.F32",
        "LDSM.16.M88.4",
        "LDSM.16.MT88.4",
        "LDGSTS.E.BYPASS.128",
    ];
    // GEMM v3: 16-byte cp.async, 16-byte stores of C; B by LDSM.MT88 when stored (k, n).
    let gemm_v3_kmajor = ["HMMA.16816.F32", "LDSM.16.M88.4", "LDGSTS.E.BYPASS.128", "STG.E.128"];
    let gemm_v3_nmajor = ["HMMA.16816.F32", "LDSM.16.MT88.4", "LDGSTS.E.BYPASS.128", "STG.E.128"];
    let cases: &[(&str, &str, &[&str])] = &[
        ("attention", "attention_bf16_d128", &attention_v2),
        ("attention", "attention_f16_d64", &attention_v2),
        ("attention", "attention_bf16_d256", &attention_v2),
        ("attention", "attention_decode_bf16_d128", &attention_v2),
        ("gemm", "gemm_bf16_nt_large", &gemm_v3_kmajor),
        ("gemm", "gemm_f16_nn_large", &gemm_v3_nmajor),
        ("gemm", "gemm_bf16_tt_small", &gemm_v3_nmajor),
        ("gemm_v2", "gemm_v2_bf16", &["HMMA.16816.F32.BF16", "LDSM.16.M88.4"]),
        // The decode path: W streamed by 16-byte loads that skip L1 (.NA), x staged by cp.async.
        (
            "gemm_decode",
            "gemm_decode_bf16_wide",
            &["HMMA.16816.F32.BF16", "LDG.E.NA.128.CONSTANT", "LDGSTS.E.BYPASS.128"],
        ),
        (
            "gemm_decode",
            "gemm_decode_f16_narrow",
            &["HMMA.16816.F32", "LDG.E.NA.128.CONSTANT", "LDGSTS.E.BYPASS.128"],
        ),
        // The row-wise small ops and the KV append move 16 bytes per access on their vector paths.
        ("add", "add_bf16", &["LDG.E.128", "STG.E.128"]),
        ("convert", "convert_f32_bf16", &["LDG.E.128.CONSTANT", "STG.E.128"]),
        ("embedding", "embedding_bf16", &["LDG.E.128.CONSTANT", "STG.E.128"]),
        ("kv_append", "kv_append_bf16", &["LDG.E.128", "STG.E.128"]),
    ];
    for (module, kernel, wanted) in cases {
        let image = llama_kernels::raw::module_image(module).unwrap();
        let path = scratch_file(&format!("sass-{kernel}.fatbin"));
        std::fs::write(&path, image.fatbin).unwrap();
        for arch in llama_kernels::raw::module::SASS_ARCHS {
            let out = std::process::Command::new(&tool)
                .args(["-sass", "-arch", arch, "-fun", kernel])
                .arg(&path)
                .output()
                .unwrap();
            assert!(
                out.status.success(),
                "cuobjdump failed: {}",
                String::from_utf8_lossy(&out.stderr)
            );
            let sass = String::from_utf8_lossy(&out.stdout);
            for w in *wanted {
                assert!(sass.contains(w), "{kernel} on {arch}: no {w} in its SASS");
            }
            if kernel.starts_with("gemm_decode_") {
                // UNROLL x GROUPS = 16 loads of W per k-step, issued before the mma that need them.
                let loads = sass.matches("LDG.E.NA.128.CONSTANT").count();
                assert!(
                    loads >= 16,
                    "{kernel} on {arch}: {loads} 16-byte W loads per k-step, expected 16"
                );
            }
            for banned in ["LDL", "STL"] {
                assert!(
                    !sass.split_whitespace().any(|t| t.starts_with(banned)),
                    "{kernel} on {arch}: local memory ({banned}) in its SASS"
                );
            }
        }
        let _ = std::fs::remove_file(&path);
    }
}
