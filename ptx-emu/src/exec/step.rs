//! One warp's turn: picks the lanes that share the lowest PC, runs them together until they diverge,
//! block, meet other lanes or use up the time slice; dispatches arithmetic, logic, conversion and control
//! instructions (memory: `mem.rs`, collectives: `warp.rs`, tensor core and async copies: `tensor.rs`).

use super::pred::{compare, sreg};
use super::{approx, barrier, builtin, cvt, float, int, mbarrier, mem, tensor, warp, Env, Lane, Warp};
use crate::error::CheckKind;
use crate::ir::*;

/// Warp-instructions per turn before the next warp runs.
pub(crate) const SLICE: u32 = 8192;

pub(crate) enum Flow {
    /// Every lane of the group goes on at pc + 1.
    Next,
    /// Every lane of the group goes on at this pc.
    Jump(u32),
    /// The instruction set each lane's pc / state itself.
    Stop,
}

#[inline(always)]
pub(crate) fn get(r: &[u64], s: Src, l: usize) -> u64 {
    match s {
        Src::R(x) => r[((x as usize) << 5) | l],
        Src::I(v) => v,
    }
}

#[inline(always)]
pub(crate) fn set(r: &mut [u64], d: Slot, l: usize, v: u64) {
    r[((d as usize) << 5) | l] = v;
}

/// Iterates the set bits of a lane mask.
macro_rules! lanes {
    ($m:expr, |$l:ident| $body:block) => {{
        let mut m: u32 = $m;
        while m != 0 {
            let $l = m.trailing_zeros() as usize;
            m &= m - 1;
            $body
        }
    }};
}
pub(crate) use lanes;

/// Runs the warp for one turn; returns whether any instruction executed.
/// `setp`'s outputs of lane `l`: `p` and `q`, each combined with the optional `.and/.or/.xor` predicate
/// operand (negated when its flag is set), written to `d` and, when present, `d2`.
fn set_predicates(
    r: &mut [u64],
    l: usize,
    comb: Option<(BoolOp, Src, bool)>,
    (d, p): (Slot, bool),
    (d2, q): (Option<Slot>, bool),
) {
    let (p, q) = match comb {
        Some((bop, c, neg)) => {
            let c = ((get(r, c, l) & 1) != 0) != neg;
            let f = |x: bool| match bop {
                BoolOp::And => x && c,
                BoolOp::Or => x || c,
                BoolOp::Xor => x ^ c,
            };
            (f(p), f(q))
        }
        None => (p, q),
    };
    set(r, d, l, p as u64);
    if let Some(d2) = d2 {
        set(r, d2, l, q as u64);
    }
}

pub(crate) fn run_warp(w: &mut Warp, env: &mut Env) -> bool {
    let prog = env.prog;
    let mut progress = false;
    let mut budget = env.slice;
    w.parked = 0;
    'pick: while budget > 0 && !env.fatal {
        let mut ready = 0u32;
        let mut minpc = u32::MAX;
        for l in 0..32 {
            if w.state[l] == Lane::Ready && w.parked >> l & 1 == 0 {
                ready |= 1 << l;
                minpc = minpc.min(w.pc[l]);
            }
        }
        if ready == 0 {
            // Lanes may wait at a collective for lanes that have since exited: retry those now.
            let mut pcs: Vec<u32> = (0..32)
                .filter(|&l| w.state[l] == Lane::Collective)
                .map(|l| w.pc[l])
                .collect();
            pcs.dedup();
            let mut woke = false;
            for pc in pcs {
                warp::try_complete(w, env, pc);
                // (lanes parked by a failed mbarrier wait do not count: they wait for the next turn)
                woke |= (0..32).any(|l| w.state[l] == Lane::Ready && w.parked >> l & 1 == 0);
            }
            if woke {
                continue;
            }
            break;
        }
        let mut mask = 0u32;
        let mut limit = u32::MAX;
        lanes!(ready, |l| {
            if w.pc[l] == minpc {
                mask |= 1 << l;
            } else {
                limit = limit.min(w.pc[l]);
            }
        });
        let mut pc = minpc;
        loop {
            let inst = &prog.code[pc as usize];
            let active = match inst.guard {
                None => mask,
                Some((p, neg)) => {
                    let mut a = 0u32;
                    lanes!(mask, |l| {
                        if ((w.regs[((p as usize) << 5) | l] & 1) != 0) != neg {
                            a |= 1 << l;
                        }
                    });
                    a
                }
            };
            budget -= 1;
            progress = true;
            let n = active.count_ones() as u64;
            env.metrics.warp_instructions += 1;
            env.metrics.instructions += n;
            env.metrics.by_class[inst.class as usize] += n;
            env.clock += 1;
            if let Some(t) = env.trace.as_mut() {
                t.begin(w.id, inst);
            }
            let flow = exec(w, env, inst, pc, mask, active);
            if let Some(t) = env.trace.as_mut() {
                t.end(w.id, inst, active);
            }
            match flow {
                Flow::Next => pc += 1,
                Flow::Jump(t) => pc = t,
                Flow::Stop => continue 'pick,
            }
            if pc >= limit || budget == 0 || env.fatal {
                break;
            }
        }
        lanes!(mask, |l| {
            w.pc[l] = pc;
        });
    }
    progress
}

/// Copies `size` bytes from offset `src` to offset `dst` of one lane's local frame (`lb` bytes at
/// `base`), clamped to the frame: a call-site `.param` smaller than the callee's parameter (or one at
/// the end of the frame) copies what fits instead of reaching past the frame.
fn frame_copy(local: &mut [u8], base: usize, lb: usize, src: u32, dst: u32, size: u32) {
    let (src, dst) = (src as usize, dst as usize);
    let n = (size as usize).min(lb.saturating_sub(src)).min(lb.saturating_sub(dst));
    if n > 0 && base + lb <= local.len() {
        local.copy_within(base + src..base + src + n, base + dst);
    }
}

/// Sets pc+1 for the group's lanes that did not take part.
#[inline]
fn skip(w: &mut Warp, mask: u32, active: u32, pc: u32) {
    lanes!(mask & !active, |l| {
        w.pc[l] = pc + 1;
    });
}

fn exec(w: &mut Warp, env: &mut Env, inst: &Inst, pc: u32, mask: u32, active: u32) -> Flow {
    let r = &mut w.regs;
    match &inst.op {
        Op::Mov { d, a, bits } => {
            let m = int::mask(*bits);
            lanes!(active, |l| {
                let v = get(r, *a, l) & m;
                set(r, *d, l, v);
            });
        }
        Op::Pack { d, parts, each } => {
            let m = int::mask(*each);
            lanes!(active, |l| {
                let mut v = 0u64;
                for (i, p) in parts.iter().enumerate() {
                    v |= (get(r, *p, l) & m) << (i as u32 * *each as u32);
                }
                set(r, *d, l, v);
            });
        }
        Op::Unpack { ds, a, each } => {
            let m = int::mask(*each);
            lanes!(active, |l| {
                let v = get(r, *a, l);
                for (i, d) in ds.iter().enumerate() {
                    if let Some(d) = d {
                        set(r, *d, l, (v >> (i as u32 * *each as u32)) & m);
                    }
                }
            });
        }
        Op::SReg { d, r: s } => {
            lanes!(active, |l| {
                let v = sreg(w, env, *s, l);
                set(&mut w.regs, *d, l, v);
            });
        }
        Op::IBin { op, t, d, a, b } => {
            lanes!(active, |l| {
                let v = int::bin(*op, *t, get(r, *a, l), get(r, *b, l));
                set(r, *d, l, v);
            });
        }
        Op::IUn { op, t, d, a } => {
            lanes!(active, |l| {
                let v = int::un(*op, *t, get(r, *a, l));
                set(r, *d, l, v);
            });
        }
        Op::ITern { op, t, d, a, b, c } => {
            lanes!(active, |l| {
                let v = int::tern(*op, *t, get(r, *a, l), get(r, *b, l), get(r, *c, l));
                set(r, *d, l, v);
            });
        }
        Op::Bfi { t, d, a, b, c, e } => {
            lanes!(active, |l| {
                let v = int::bfi(*t, get(r, *a, l), get(r, *b, l), get(r, *c, l), get(r, *e, l));
                set(r, *d, l, v);
            });
        }
        Op::Lop3 { d, a, b, c, lut } => {
            lanes!(active, |l| {
                let v = int::lop3(get(r, *a, l), get(r, *b, l), get(r, *c, l), *lut);
                set(r, *d, l, v);
            });
        }
        Op::Prmt { d, a, b, c, mode } => {
            lanes!(active, |l| {
                let v = int::prmt_mode(get(r, *a, l), get(r, *b, l), get(r, *c, l), *mode);
                set(r, *d, l, v);
            });
        }
        Op::Carry {
            op,
            cin,
            cout,
            t,
            d,
            a,
            b,
            c,
            cc,
        } => {
            lanes!(active, |l| {
                let carry_in = if *cin { get(r, Src::R(*cc), l) & 1 } else { 0 };
                let (v, carry) = int::carry(*op, *t, get(r, *a, l), get(r, *b, l), get(r, *c, l), carry_in);
                set(r, *d, l, v);
                if *cout {
                    set(r, *cc, l, carry);
                }
            });
        }
        Op::Slct { d, a, b, c, float, ftz } => {
            lanes!(active, |l| {
                let cv = get(r, *c, l);
                let pick_a = if *float {
                    let f = f32::from_bits(cv as u32);
                    let f = if *ftz { float::ftz32(f) } else { f };
                    f >= 0.0
                } else {
                    (cv as u32 as i32) >= 0
                };
                let v = if pick_a { get(r, *a, l) } else { get(r, *b, l) };
                set(r, *d, l, v);
            });
        }
        Op::Dp {
            d,
            a,
            b,
            c,
            four,
            hi,
            a_signed,
            b_signed,
        } => {
            lanes!(active, |l| {
                let v = int::dp(
                    get(r, *a, l),
                    get(r, *b, l),
                    get(r, *c, l),
                    *four,
                    *hi,
                    *a_signed,
                    *b_signed,
                );
                set(r, *d, l, v);
            });
        }
        Op::Shf { d, a, b, c, left, wrap } => {
            lanes!(active, |l| {
                let v = int::shf(get(r, *a, l), get(r, *b, l), get(r, *c, l), *left, *wrap);
                set(r, *d, l, v);
            });
        }
        Op::FBin { op, t, m, d, a, b } if op == &FBin::Div && env.approx_seed.is_some() && m.rnd == Rnd::Approx => {
            let (t, m, seed) = (*t, *m, env.approx_seed.unwrap_or(0));
            lanes!(active, |l| {
                let (x, y) = (get(r, *a, l), get(r, *b, l));
                let exact = float::bin_scalar(FBin::Div, t, m, x, y);
                set(r, *d, l, approx::binary(FBin::Div, t, m, x, y, exact, seed));
            });
        }
        Op::FBin { op, t, m, d, a, b } => {
            let (op, t, m) = (*op, *t, *m);
            if float::is_packed(t) {
                lanes!(active, |l| {
                    let v = float::packed(
                        t,
                        |s, x, y, _| float::bin_scalar(op, s, m, x, y),
                        get(r, *a, l),
                        get(r, *b, l),
                        0,
                    );
                    set(r, *d, l, v);
                });
            } else {
                lanes!(active, |l| {
                    let v = float::bin_scalar(op, t, m, get(r, *a, l), get(r, *b, l));
                    set(r, *d, l, v);
                });
            }
        }
        Op::FUn { op, t, m, d, a } if env.approx_seed.is_some() && approx::is_approx_unary(*op, *m) => {
            let (op, t, m, seed) = (*op, *t, *m, env.approx_seed.unwrap_or(0));
            let f = |s: FTy, x: u64| approx::unary(op, s, m, x, float::un_scalar(op, s, m, x), seed);
            lanes!(active, |l| {
                let x = get(r, *a, l);
                let v = if float::is_packed(t) {
                    float::packed(t, |s, x, _, _| f(s, x), x, 0, 0)
                } else {
                    f(t, x)
                };
                set(r, *d, l, v);
            });
        }
        Op::FUn { op, t, m, d, a } => {
            let (op, t, m) = (*op, *t, *m);
            lanes!(active, |l| {
                let x = get(r, *a, l);
                let v = if float::is_packed(t) {
                    float::packed(t, |s, x, _, _| float::un_scalar(op, s, m, x), x, 0, 0)
                } else {
                    float::un_scalar(op, t, m, x)
                };
                set(r, *d, l, v);
            });
        }
        Op::Fma { t, m, d, a, b, c } => {
            let (t, m) = (*t, *m);
            if float::is_packed(t) {
                lanes!(active, |l| {
                    let v = float::packed(
                        t,
                        |s, x, y, z| float::fma_scalar(s, m, x, y, z),
                        get(r, *a, l),
                        get(r, *b, l),
                        get(r, *c, l),
                    );
                    set(r, *d, l, v);
                });
            } else {
                lanes!(active, |l| {
                    let v = float::fma_scalar(t, m, get(r, *a, l), get(r, *b, l), get(r, *c, l));
                    set(r, *d, l, v);
                });
            }
        }
        Op::Testp { t, kind, d, a } => {
            lanes!(active, |l| {
                let v = float::testp(*t, *kind, get(r, *a, l)) as u64;
                set(r, *d, l, v);
            });
        }
        Op::Setp {
            cmp,
            t: Ty::F(pt @ (FTy::F16x2 | FTy::BF16x2)),
            ftz,
            d,
            d2,
            a,
            b,
            comb,
        } => {
            // packed pairs: d from the low halves, d2 from the high halves
            let s = if *pt == FTy::F16x2 { FTy::F16 } else { FTy::BF16 };
            lanes!(active, |l| {
                let (x, y) = (get(r, *a, l), get(r, *b, l));
                let p = compare(*cmp, Ty::F(s), *ftz, x & 0xffff, y & 0xffff);
                let q = compare(*cmp, Ty::F(s), *ftz, (x >> 16) & 0xffff, (y >> 16) & 0xffff);
                set_predicates(r, l, *comb, (*d, p), (*d2, q));
            });
        }
        Op::Setp {
            cmp,
            t,
            ftz,
            d,
            d2,
            a,
            b,
            comb,
        } => {
            lanes!(active, |l| {
                let p = compare(*cmp, *t, *ftz, get(r, *a, l), get(r, *b, l));
                set_predicates(r, l, *comb, (*d, p), (*d2, !p));
            });
        }
        Op::Set {
            cmp,
            t,
            float_out,
            d,
            a,
            b,
        } => {
            lanes!(active, |l| {
                let p = compare(*cmp, *t, false, get(r, *a, l), get(r, *b, l));
                let v = match (p, float_out) {
                    (true, true) => 0x3f80_0000,
                    (true, false) => 0xffff_ffff,
                    _ => 0,
                };
                set(r, *d, l, v);
            });
        }
        Op::Selp { d, a, b, p } => {
            lanes!(active, |l| {
                let v = if get(r, *p, l) & 1 != 0 {
                    get(r, *a, l)
                } else {
                    get(r, *b, l)
                };
                set(r, *d, l, v);
            });
        }
        Op::Cvt { dt, st, m, d, a } => {
            let tf32 = matches!(dt, Ty::I(IntTy { bits: 19, .. }));
            lanes!(active, |l| {
                let x = get(r, *a, l);
                let v = if tf32 { cvt::tf32(x) } else { cvt::cvt(*dt, *st, *m, x) };
                set(r, *d, l, v);
            });
        }
        Op::CvtPack { dt, m, d, hi, lo } => {
            lanes!(active, |l| {
                let v = cvt::pack(*dt, *m, get(r, *hi, l), get(r, *lo, l));
                set(r, *d, l, v);
            });
        }
        Op::Cvta { to_space, space, d, a } => {
            let base = mem::window(*space);
            lanes!(active, |l| {
                let x = get(r, *a, l);
                let v = if *to_space {
                    x.wrapping_sub(base)
                } else {
                    x.wrapping_add(base)
                };
                set(r, *d, l, v);
            });
        }
        Op::Isspacep { space, d, a } => {
            lanes!(active, |l| {
                let (sp, _) = mem::resolve(Space::Generic, get(r, *a, l));
                let want = if *space == Space::Const { Space::Global } else { *space };
                set(r, *d, l, (sp == want) as u64);
            });
        }
        Op::Ld { .. } | Op::St { .. } | Op::Atom { .. } => mem::access(w, env, inst, active),
        Op::Bra { target } => {
            if active == mask {
                return Flow::Jump(*target);
            }
            if active == 0 {
                return Flow::Next;
            }
            lanes!(mask, |l| {
                w.pc[l] = if active >> l & 1 == 1 { *target } else { pc + 1 };
            });
            return Flow::Stop;
        }
        Op::Call { func, args, .. } => {
            if active == 0 {
                return Flow::Next;
            }
            let f = &env.prog.funcs[*func as usize];
            let lb = env.prog.local_bytes as usize;
            lanes!(active, |l| {
                w.stack[l].push(pc);
                for ((src, size), (dst, _)) in args.iter().zip(&f.params) {
                    frame_copy(&mut w.local, l * lb, lb, *src, *dst, *size);
                }
            });
            if active == mask {
                return Flow::Jump(f.entry);
            }
            lanes!(mask, |l| {
                w.pc[l] = if active >> l & 1 == 1 { f.entry } else { pc + 1 };
            });
            return Flow::Stop;
        }
        Op::Builtin { kind, args, ret } => {
            if active != 0 {
                builtin::call(w, env, *kind, args, *ret, active, inst.line);
            }
            if env.fatal {
                return Flow::Stop;
            }
        }
        Op::Ret => {
            if active == 0 {
                return Flow::Next;
            }
            let lb = env.prog.local_bytes as usize;
            lanes!(active, |l| {
                match w.stack[l].pop() {
                    Some(call_pc) => {
                        if let Op::Call { func, ret, .. } = &env.prog.code[call_pc as usize].op {
                            let f = &env.prog.funcs[*func as usize];
                            for ((dst, size), (src, _)) in ret.iter().zip(&f.rets) {
                                frame_copy(&mut w.local, l * lb, lb, *src, *dst, *size);
                            }
                        }
                        w.pc[l] = call_pc + 1;
                    }
                    None => {
                        w.state[l] = Lane::Exited;
                        env.live -= 1;
                    }
                }
            });
            skip(w, mask, active, pc);
            return Flow::Stop;
        }
        Op::Exit => {
            if active == 0 {
                return Flow::Next;
            }
            lanes!(active, |l| {
                w.state[l] = Lane::Exited;
                env.live -= 1;
            });
            skip(w, mask, active, pc);
            return Flow::Stop;
        }
        Op::Trap => {
            if active == 0 {
                return Flow::Next;
            }
            let l = active.trailing_zeros() as usize;
            env.report(CheckKind::Trap, w.id, l, inst.line, None, "trap executed".into());
            env.fatal = true;
            return Flow::Stop;
        }
        Op::Bar { kind, id, count, red } => {
            if active == 0 {
                return Flow::Next;
            }
            if !barrier::arrive(w, env, inst, (*kind, *id, *count, *red), pc, active) {
                return Flow::Next;
            }
            skip(w, mask, active, pc);
            return Flow::Stop;
        }
        Op::Membar | Op::Nop => {}
        Op::Activemask { d } => {
            lanes!(active, |l| {
                set(r, *d, l, active as u64);
            });
        }
        Op::Shfl { .. }
        | Op::Vote { .. }
        | Op::Redux { .. }
        | Op::Match { .. }
        | Op::WarpSync { .. }
        | Op::Mma { .. }
        | Op::Ldmatrix { .. }
        | Op::Stmatrix { .. }
        | Op::Wmma(_) => {
            if active == 0 {
                return Flow::Next;
            }
            lanes!(active, |l| {
                w.state[l] = Lane::Collective;
                w.pc[l] = pc;
            });
            skip(w, mask, active, pc);
            warp::try_complete(w, env, pc);
            return Flow::Stop;
        }
        Op::CpAsync { .. } | Op::CpAsyncCommit | Op::CpAsyncWait { .. } => {
            return tensor::async_copy(w, env, inst, active)
        }
        Op::Mbar(m) => {
            if active == 0 {
                return Flow::Next;
            }
            return mbarrier::exec(w, env, inst, m, pc, mask, active);
        }
    }
    Flow::Next
}
