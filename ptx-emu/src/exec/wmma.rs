//! `wmma.load`, `wmma.store`, `wmma.mma` for m16n16k16, executed as warp collectives (every lane of
//! the warp at the same instruction, like `mma.sync`).
//!
//! The PTX ISA leaves the mapping of matrix elements to fragment registers unspecified; the emulator
//! uses the `mma.m16n8k16` fragment layouts (groupID g = lane / 4, t = lane % 4), with the 16 x 16
//! matrices B, C and D as two 16 x 8 tiles (columns 0-7, then 8-15). Each lane holds 8 distinct
//! elements e = 0..8 of each matrix:
//! - A (m x k): e = 2r + h (register r, half h) at (g + 8(r & 1), 2t + h + 8(r >> 1));
//! - B (k x n): e = 2r + h at (2t + h + 8(r & 1), g + 8(r >> 1));
//! - C / D (m x n): e at (g + 8((e & 3) >> 1), 2t + (e & 1) + 8(e >> 2)).
//!
//! 16-bit elements are packed two per register (element e in register e / 2, half e % 2); f32 C/D
//! hold element e in register e. The f16 A and B fragments have 8 registers (16 halves) for 8
//! elements: registers 4-7 repeat registers 0-3 (`wmma.load` writes both, `wmma.mma` reads 0-3).
//! So `wmma.mma` is exactly two `mma.m16n8k16` (same numerics: products summed exactly, rounded once).

use super::mem::{lane_addr, locate, read_bytes, request_metrics, resolve, write_bytes};
use super::step::{get, lanes, set};
use super::{tensor, Env, Warp};
use crate::error::CheckKind;
use crate::ir::*;

/// Distinct elements per lane of a 16 x 16 matrix.
const ELEMS: usize = 8;

/// (row, col) of element `e` of `lane`'s fragment of `mat`.
pub(crate) fn coord(mat: WmmaMat, e: usize, lane: usize) -> (usize, usize) {
    let (g, t) = (lane / 4, lane % 4);
    let (r, h) = (e / 2, e % 2);
    match mat {
        WmmaMat::A => (g + 8 * (r & 1), 2 * t + h + 8 * (r >> 1)),
        WmmaMat::B => (2 * t + h + 8 * (r & 1), g + 8 * (r >> 1)),
        WmmaMat::C => (g + 8 * ((e & 3) >> 1), 2 * t + (e & 1) + 8 * (e >> 2)),
    }
}

fn elem_bytes(ty: MmaTy) -> u64 {
    if ty == MmaTy::F32 {
        4
    } else {
        2
    }
}

/// Registers of a fragment.
fn nregs(mat: WmmaMat, ty: MmaTy) -> usize {
    match (mat, ty) {
        (WmmaMat::A | WmmaMat::B, MmaTy::F16) => 8,
        (WmmaMat::C, MmaTy::F32) => 8,
        _ => 4,
    }
}

/// The element's bits from a lane's fragment registers.
fn elem_of(regs: &[u64], ty: MmaTy, e: usize) -> u64 {
    if ty == MmaTy::F32 {
        regs[e] & 0xffff_ffff
    } else {
        (regs[e / 2] >> (16 * (e % 2))) & 0xffff
    }
}

/// Stores element `e` into a lane's fragment registers (both copies for f16 A/B).
fn put_elem(regs: &mut [u64], mat: WmmaMat, ty: MmaTy, e: usize, v: u64) {
    if ty == MmaTy::F32 {
        regs[e] = v;
        return;
    }
    let sh = 16 * (e % 2);
    let mut r = e / 2;
    loop {
        regs[r] = (regs[r] & !(0xffff << sh) & 0xffff_ffff) | (v << sh);
        if nregs(mat, ty) == 8 && r < 4 {
            r += 4;
        } else {
            break;
        }
    }
}

pub(crate) fn exec(w: &mut Warp, env: &mut Env, op: &WmmaOp, group: u32, line: u32) {
    match op {
        WmmaOp::Mma { .. } => mma(w, env, op, group),
        _ => load_store(w, env, op, group, line),
    }
}

/// `wmma.mma`: D[:, 0..8] and D[:, 8..16] as two `mma.m16n8k16` (the second into `tmp` first).
fn mma(w: &mut Warp, env: &mut Env, op: &WmmaOp, group: u32) {
    let WmmaOp::Mma {
        ab,
        dt,
        ct,
        d,
        a,
        b,
        c,
        tmp,
    } = op
    else {
        return;
    };
    let (hd, hc) = (d.len() / 2, c.len() / 2);
    let half = |d: Vec<Slot>, tile: usize| Op::Mma {
        k: 16,
        ab: *ab,
        cd: *dt,
        ct: *ct,
        d,
        a: a[..4].to_vec(),
        b: b[2 * tile..2 * tile + 2].to_vec(),
        c: c[hc * tile..hc * (tile + 1)].to_vec(),
    };
    tensor::mma(w, env, &half(tmp.clone(), 1), group);
    tensor::mma(w, env, &half(d[..hd].to_vec(), 0), group);
    lanes!(group, |l| {
        for (t, dst) in tmp.iter().zip(&d[hd..]) {
            let v = get(&w.regs, Src::R(*t), l);
            set(&mut w.regs, *dst, l, v);
        }
    });
}

fn load_store(w: &mut Warp, env: &mut Env, op: &WmmaOp, group: u32, line: u32) {
    let (load, mat, col, ty, addr, stride, space) = match op {
        WmmaOp::Load {
            mat,
            col,
            ty,
            addr,
            stride,
            space,
            ..
        } => (true, *mat, *col, *ty, addr, *stride, *space),
        WmmaOp::Store {
            col,
            ty,
            addr,
            stride,
            space,
            ..
        } => (false, WmmaMat::C, *col, *ty, addr, *stride, *space),
        WmmaOp::Mma { .. } => return,
    };
    let name = if load {
        match mat {
            WmmaMat::A => "wmma.load.a",
            WmmaMat::B => "wmma.load.b",
            WmmaMat::C => "wmma.load.c",
        }
    } else {
        "wmma.store.d"
    };
    let l0 = group.trailing_zeros() as usize;
    let base = lane_addr(&w.regs, addr, l0);
    let ld = stride.map(|s| get(&w.regs, s, l0) & 0xffff_ffff).unwrap_or(16);
    // The ISA requires the same address and stride in every thread of the warp.
    let mut differ = None;
    lanes!(group, |l| {
        let ls = stride.map(|s| get(&w.regs, s, l) & 0xffff_ffff).unwrap_or(16);
        if differ.is_none() && (lane_addr(&w.regs, addr, l) != base || ls != ld) {
            differ = Some(l);
        }
    });
    if let (Some(l), true) = (differ, env.checks.synccheck) {
        env.report(
            CheckKind::Synccheck,
            w.id,
            l,
            line,
            None,
            format!("lanes of a {name} disagree on the address or stride (they must be the same in every thread of the warp); lane {l0}'s are used"),
        );
    }
    let es = elem_bytes(ty);
    // The address must be a multiple of the fragment's size in bytes (PTX ISA, "Matrix Storage for
    // WMMA"), the stride a multiple of 16 bytes: the ISA asks the start of every row (column) to be
    // fragment-aligned, but the CUDA Programming Guide (`ldm` a multiple of 8 halves / 4 floats) and
    // NVIDIA's samples (rows skewed by 8 halves) only need 16 bytes, which is what is enforced.
    let frag = 4 * nregs(mat, ty) as u64;
    let step = ld.wrapping_mul(es);
    let what = if col { "column" } else { "row" };
    let bad = if base % frag != 0 {
        Some((
            base,
            format!("address {base:#x} is not a multiple of the {frag}-byte fragment size"),
        ))
    } else if step % 16 != 0 {
        let a = base.wrapping_add(step);
        Some((
            a,
            format!(
                "its stride of {ld} elements ({step} bytes) is not a multiple of 16 bytes: {what} 1 starts at {a:#x}"
            ),
        ))
    } else {
        None
    };
    if let Some((a, why)) = bad {
        if env.checks.memcheck {
            env.report(
                CheckKind::Memcheck,
                w.id,
                l0,
                line,
                Some(a),
                format!("misaligned {name}: {why}"),
            );
        }
        return;
    }
    let at = |e: usize, lane: usize| {
        let (r, c) = coord(mat, e, lane);
        let idx = if col {
            c as u64 * ld + r as u64
        } else {
            r as u64 * ld + c as u64
        };
        base.wrapping_add(idx.wrapping_mul(es))
    };
    let (req_space, _) = resolve(space, base);
    let nr = nregs(mat, ty);
    let mut vals = vec![[0u64; 8]; 32];
    lanes!(group, |l| {
        if load {
            let WmmaOp::Load { ds, .. } = op else { return };
            for (r, d) in ds.iter().enumerate() {
                vals[l][r] = get(&w.regs, Src::R(*d), l);
            }
        } else {
            let WmmaOp::Store { srcs, .. } = op else { return };
            for (r, s) in srcs.iter().enumerate() {
                vals[l][r] = get(&w.regs, *s, l);
            }
        }
    });
    // One warp-level request per register of distinct elements (a 16-bit pair contiguous in memory is
    // one 4-byte access, else two 2-byte accesses).
    let per_reg = if ty == MmaTy::F32 { 1 } else { 2 };
    for r in 0..ELEMS / per_reg {
        let mut reqs = [(0u64, 0u64); 64];
        let mut n = 0;
        lanes!(group, |l| {
            let es0 = r * per_reg;
            let contiguous = per_reg == 2 && at(es0 + 1, l) == at(es0, l).wrapping_add(es);
            let mut prev = false;
            for e in es0..es0 + per_reg {
                let a = at(e, l);
                if load {
                    let Some(loc) = locate(w, env, l, space, a, es, false, line) else {
                        continue;
                    };
                    let mut buf = [0u8; 4];
                    read_bytes(w, env, l, &loc, &mut buf[..es as usize], line, a);
                    put_elem(&mut vals[l], mat, ty, e, u32::from_le_bytes(buf) as u64);
                } else {
                    let Some(loc) = locate(w, env, l, space, a, es, true, line) else {
                        continue;
                    };
                    let v = elem_of(&vals[l], ty, e).to_le_bytes();
                    write_bytes(w, env, l, &loc, &v[..es as usize], line);
                }
                let (sp, off) = resolve(space, a);
                match (sp, load) {
                    (Space::Global, true) => env.metrics.global_load_bytes += es,
                    (Space::Global, false) => env.metrics.global_store_bytes += es,
                    (Space::Shared, true) => env.metrics.shared_load_bytes += es,
                    (Space::Shared, false) => env.metrics.shared_store_bytes += es,
                    (Space::Local, _) => env.metrics.local_bytes += es,
                    _ => {}
                }
                if sp == req_space {
                    if contiguous && prev {
                        reqs[n - 1].1 += es;
                    } else {
                        reqs[n] = (off, es);
                        n += 1;
                    }
                    prev = true;
                }
            }
        });
        request_metrics(env, req_space, &reqs[..n]);
    }
    if load {
        let WmmaOp::Load { ds, .. } = op else { return };
        lanes!(group, |l| {
            for (r, d) in ds.iter().enumerate().take(nr) {
                set(&mut w.regs, *d, l, vals[l][r]);
            }
        });
    }
}
