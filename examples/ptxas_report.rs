//! Prints ptxas's resource report for every kernel as a Markdown table (registers per arch, spills,
//! static shared memory, stack frame): the table in the README comes from this.
//!
//! `cargo run --example ptxas_report`

use std::collections::BTreeMap;

use llama_kernels::raw::{module::SASS_ARCHS, PTXAS_REPORT};

fn main() {
    let mut kernels: BTreeMap<&str, Vec<_>> = BTreeMap::new();
    for r in PTXAS_REPORT {
        kernels.entry(r.kernel).or_default().push(r);
    }
    let mut header = String::from("| kernel |");
    let mut rule = String::from("|---|");
    for arch in SASS_ARCHS {
        header.push_str(&format!(" regs {arch} |"));
        rule.push_str("---:|");
    }
    println!("{header} spill bytes | smem bytes | stack bytes |");
    println!("{rule}---:|---:|---:|");
    for (kernel, rows) in &kernels {
        let mut line = format!("| `{kernel}` |");
        for arch in SASS_ARCHS {
            match rows.iter().find(|r| r.arch == *arch) {
                Some(r) => line.push_str(&format!(" {} |", r.registers)),
                None => line.push_str(" - |"),
            }
        }
        let spills: u32 = rows.iter().map(|r| r.spill_store_bytes + r.spill_load_bytes).sum();
        let smem = rows.iter().map(|r| r.shared_bytes).max().unwrap_or(0);
        let stack = rows.iter().map(|r| r.stack_frame_bytes).max().unwrap_or(0);
        println!("{line} {spills} | {smem} | {stack} |");
    }
}
