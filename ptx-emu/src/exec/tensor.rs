//! Tensor-core and async-copy instructions: `mma.sync.aligned.m16n8k{8,16}.row.col` with f16/bf16
//! inputs and f32/f16 accumulators in the PTX ISA's fragment layouts; `ldmatrix`/`stmatrix` m8n8 b16
//! (x1/x2/x4, .trans); `cp.async` (ca/cg, 4/8/16 bytes, src-size zero fill, ignore-src) with groups.

use super::float::{self, BF16, F16};
use super::mem::{locate, read_bytes, request_metrics, resolve, set_bits, write_bytes, Loc};
use super::step::{get, lanes, set, Flow};
use super::{AsyncCopy, Env, Warp};
use crate::error::CheckKind;
use crate::ir::*;

fn half(t: MmaTy, bits: u64) -> f64 {
    match t {
        MmaTy::F16 => float::to_f64(F16, bits & 0xffff),
        MmaTy::BF16 => float::to_f64(BF16, bits & 0xffff),
        MmaTy::F32 => f32::from_bits(bits as u32) as f64,
        MmaTy::TF32 => f32::from_bits(bits as u32 & 0xffff_e000) as f64,
    }
}

/// A fragment element: (register index, which half for packed 16-bit values).
/// A (m16 x k): lane = 4*g + t; a{0,1,2,3} hold (g, 2t..), (g+8, 2t..), (g, 2t+8..), (g+8, 2t+8..).
fn a_coord(reg: usize, half: usize, lane: usize) -> (usize, usize) {
    let (g, t) = (lane / 4, lane % 4);
    let row = g + 8 * (reg & 1);
    let col = 2 * t + half + 8 * (reg >> 1);
    (row, col)
}

/// B (k x n8): b{0,1} hold (k = 2t.., n = g), (k = 2t+8.., n = g).
fn b_coord(reg: usize, half: usize, lane: usize) -> (usize, usize) {
    let (g, t) = (lane / 4, lane % 4);
    (2 * t + half + 8 * reg, g)
}

/// C/D (m16 x n8), element i of 4: row g (+8 for i >= 2), col 2t + (i & 1).
fn c_coord(i: usize, lane: usize) -> (usize, usize) {
    let (g, t) = (lane / 4, lane % 4);
    (g + 8 * (i >> 1), 2 * t + (i & 1))
}

pub(crate) fn mma(w: &mut Warp, env: &mut Env, op: &Op, group: u32) {
    let Op::Mma {
        k,
        ab,
        cd,
        ct,
        d,
        a,
        b,
        c,
    } = op
    else {
        return;
    };
    let k = *k as usize;
    let r = &mut w.regs;
    let mut am = [[0f64; 16]; 16];
    let mut bm = [[0f64; 8]; 16];
    let mut cm = [[0f64; 8]; 16];
    for lane in 0..32 {
        if *ab == MmaTy::TF32 {
            // one element per register: A a{0..3} = (g, t), (g+8, t), (g, t+4), (g+8, t+4);
            // B b{0,1} = (k = t, n = g), (k = t+4, n = g)
            let (g, t) = (lane / 4, lane % 4);
            for (ri, s) in a.iter().enumerate() {
                am[g + 8 * (ri & 1)][t + 4 * (ri >> 1)] = half(MmaTy::TF32, get(r, *s, lane));
            }
            for (ri, s) in b.iter().enumerate() {
                bm[t + 4 * ri][g] = half(MmaTy::TF32, get(r, *s, lane));
            }
        } else {
            for (ri, s) in a.iter().enumerate() {
                let v = get(r, *s, lane);
                for h in 0..2 {
                    let (row, col) = a_coord(ri, h, lane);
                    am[row][col] = half(*ab, v >> (16 * h));
                }
            }
            for (ri, s) in b.iter().enumerate() {
                let v = get(r, *s, lane);
                for h in 0..2 {
                    let (row, col) = b_coord(ri, h, lane);
                    bm[row][col] = half(*ab, v >> (16 * h));
                }
            }
        }
        for i in 0..4 {
            let (row, col) = c_coord(i, lane);
            cm[row][col] = if *ct == MmaTy::F32 {
                half(MmaTy::F32, get(r, c[i], lane))
            } else {
                half(MmaTy::F16, get(r, c[i / 2], lane) >> (16 * (i & 1)))
            };
        }
    }
    // d = c + sum over k in order, per element (the k loop outside, 8 independent columns inside).
    let mut dm = [[0f64; 8]; 16];
    for i in 0..16 {
        let mut acc = cm[i];
        for kk in 0..k {
            let av = am[i][kk];
            let brow = &bm[kk];
            for j in 0..8 {
                acc[j] += av * brow[j];
            }
        }
        dm[i] = acc;
    }
    let m = FMods {
        rnd: Rnd::Rn,
        ftz: false,
        sat: false,
        relu: false,
        nan: false,
    };
    lanes!(group, |lane| {
        if *cd == MmaTy::F32 {
            for (i, dst) in d.iter().enumerate() {
                let (row, col) = c_coord(i, lane);
                set(r, *dst, lane, float::store(FTy::F32, dm[row][col], 0, m));
            }
        } else {
            for (ri, dst) in d.iter().enumerate() {
                let mut v = 0u64;
                for h in 0..2 {
                    let (row, col) = c_coord(2 * ri + h, lane);
                    v |= (float::store(FTy::F16, dm[row][col], 0, m) & 0xffff) << (16 * h);
                }
                set(r, *dst, lane, v);
            }
        }
    });
    env.metrics.mma += 1;
}

/// `ldmatrix` / `stmatrix`: matrix i's 8 row addresses come from lanes 8i..8i+7; lane l holds row l/4,
/// columns 2(l%4) and 2(l%4)+1 (transposed with .trans).
pub(crate) fn matrix(w: &mut Warp, env: &mut Env, op: &Op, group: u32, line: u32) {
    let (n, trans, addr, space, load) = match op {
        Op::Ldmatrix {
            n, trans, addr, space, ..
        } => (*n as usize, *trans, *addr, *space, true),
        Op::Stmatrix {
            n, trans, addr, space, ..
        } => (*n as usize, *trans, *addr, *space, false),
        _ => return,
    };
    // mats[i][row][col]
    let mut mats = [[[0u16; 8]; 8]; 4];
    let mut locs: Vec<Option<(Loc, usize)>> = Vec::with_capacity(8 * n);
    // One warp-level shared request: 8n rows of 16 bytes, one 8x8 matrix (128 bytes) per phase.
    let mut reqs = [(0u64, 0u64); 32];
    let mut nreq = 0;
    #[allow(clippy::needless_range_loop)]
    for i in 0..n {
        for row in 0..8 {
            let lane = 8 * i + row;
            let a = match addr.base {
                Some(b) => w.regs[((b as usize) << 5) | lane].wrapping_add(addr.off as u64),
                None => addr.off as u64,
            };
            let loc = locate(w, env, lane, space, a, 16, !load, line);
            if loc.is_some() {
                reqs[nreq] = (resolve(space, a).1, 16);
                nreq += 1;
            }
            if load {
                if let Some(loc) = &loc {
                    let mut buf = [0u8; 16];
                    read_bytes(w, env, lane, loc, &mut buf, line, a);
                    for col in 0..8 {
                        mats[i][row][col] = u16::from_le_bytes([buf[2 * col], buf[2 * col + 1]]);
                    }
                    env.metrics.shared_load_bytes += 16;
                }
            }
            locs.push(loc.map(|l| (l, lane)));
        }
    }
    request_metrics(env, Space::Shared, &reqs[..nreq]);
    if load {
        let Op::Ldmatrix { ds, .. } = op else { return };
        lanes!(group, |l| {
            for (i, d) in ds.iter().enumerate() {
                let (r0, c0) = (l / 4, 2 * (l % 4));
                let e = |j: usize| if trans { mats[i][c0 + j][r0] } else { mats[i][r0][c0 + j] } as u64;
                set(&mut w.regs, *d, l, e(0) | (e(1) << 16));
            }
        });
    } else {
        let Op::Stmatrix { srcs, .. } = op else { return };
        for l in 0..32 {
            for (i, s) in srcs.iter().enumerate() {
                let v = get(&w.regs, *s, l);
                let (r0, c0) = (l / 4, 2 * (l % 4));
                for j in 0..2 {
                    let e = ((v >> (16 * j)) & 0xffff) as u16;
                    if trans {
                        mats[i][c0 + j][r0] = e;
                    } else {
                        mats[i][r0][c0 + j] = e;
                    }
                }
            }
        }
        for (idx, loc) in locs.into_iter().enumerate() {
            let Some((loc, lane)) = loc else { continue };
            let (i, row) = (idx / 8, idx % 8);
            let mut buf = [0u8; 16];
            for col in 0..8 {
                buf[2 * col..2 * col + 2].copy_from_slice(&mats[i][row][col].to_le_bytes());
            }
            write_bytes(w, env, lane, &loc, &buf, line);
            env.metrics.shared_store_bytes += 16;
        }
    }
}

/// cp.async, commit_group, wait_group / wait_all.
pub(crate) fn async_copy(w: &mut Warp, env: &mut Env, inst: &Inst, active: u32) -> Flow {
    match &inst.op {
        Op::CpAsync {
            size,
            dst,
            src,
            src_size,
            ignore,
        } => {
            let size = *size as usize;
            // Warp-level requests of both sides: the global reads (lanes that read) and the shared
            // writes (every lane; a zero fill writes shared memory too).
            let (mut greqs, mut sreqs) = ([(0u64, 0u64); 32], [(0u64, 0u64); 32]);
            let (mut ng, mut ns) = (0, 0);
            lanes!(active, |l| {
                let r = &w.regs;
                let da = match dst.base {
                    Some(b) => r[((b as usize) << 5) | l].wrapping_add(dst.off as u64),
                    None => dst.off as u64,
                };
                let sa = match src.base {
                    Some(b) => r[((b as usize) << 5) | l].wrapping_add(src.off as u64),
                    None => src.off as u64,
                };
                let ign = ignore.map(|(p, neg)| ((get(r, p, l) & 1) != 0) != neg).unwrap_or(false);
                let n = if ign {
                    0
                } else {
                    src_size.map(|s| get(r, s, l) as usize).unwrap_or(size).min(size)
                };
                let Some(Loc::Shared(doff)) = locate(w, env, l, Space::Shared, da, size as u64, true, inst.line) else {
                    continue;
                };
                if w.async_open[l].len() >= MAX_IN_FLIGHT {
                    in_flight_report(w, env, l, inst.line, "copies");
                    return Flow::Stop;
                }
                let mut data = vec![0u8; size];
                if n > 0 {
                    if let Some(loc) = locate(w, env, l, Space::Global, sa, size as u64, false, inst.line) {
                        read_bytes(w, env, l, &loc, &mut data[..n], inst.line, sa);
                        env.metrics.global_load_bytes += n as u64;
                        greqs[ng] = (sa, n as u64);
                        ng += 1;
                    }
                }
                env.metrics.shared_store_bytes += size as u64;
                sreqs[ns] = (doff as u64, size as u64);
                ns += 1;
                if env.shared_pending.is_empty() {
                    env.shared_pending = vec![u32::MAX; env.shared.len()];
                }
                for p in &mut env.shared_pending[doff..doff + size] {
                    *p = w.id * 32 + l as u32;
                }
                w.async_open[l].push(AsyncCopy {
                    dst: doff as u32,
                    data,
                    line: inst.line,
                });
            });
            request_metrics(env, Space::Global, &greqs[..ng]);
            request_metrics(env, Space::Shared, &sreqs[..ns]);
        }
        Op::CpAsyncCommit => {
            lanes!(active, |l| {
                if w.async_groups[l].len() >= MAX_IN_FLIGHT {
                    in_flight_report(w, env, l, inst.line, "committed groups");
                    return Flow::Stop;
                }
                let g = std::mem::take(&mut w.async_open[l]);
                w.async_groups[l].push(g);
            });
        }
        Op::CpAsyncWait { n } => {
            lanes!(active, |l| {
                if *n == u32::MAX {
                    let g = std::mem::take(&mut w.async_open[l]);
                    w.async_groups[l].push(g);
                }
                let keep = if *n == u32::MAX { 0 } else { *n as usize };
                while w.async_groups[l].len() > keep {
                    let g = w.async_groups[l].remove(0);
                    for c in g {
                        let off = c.dst as usize;
                        for p in &mut env.shared_pending[off..off + c.data.len()] {
                            *p = u32::MAX;
                        }
                        write_bytes(w, env, l, &Loc::Shared(off), &c.data, c.line);
                        set_bits(&mut env.shared_init, off, c.data.len());
                    }
                }
            });
        }
        _ => {}
    }
    Flow::Next
}

/// `cp.async` copies (and committed groups) one thread may have in flight; more would only grow the
/// emulator's memory without bound, as in a loop that never waits.
const MAX_IN_FLIGHT: usize = 1024;

/// Ends the launch: a thread has [`MAX_IN_FLIGHT`] async copies or groups outstanding.
fn in_flight_report(w: &Warp, env: &mut Env, l: usize, line: u32, what: &str) {
    env.report(
        CheckKind::AsyncCopy,
        w.id,
        l,
        line,
        None,
        format!(
            "more than {MAX_IN_FLIGHT} cp.async {what} in flight in one thread (a loop without cp.async.wait_group?)"
        ),
    );
    env.fatal = true;
}
