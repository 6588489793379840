//! Register dependencies of an instruction: the slots it reads and the slots it writes, for the
//! per-warp timeline (`timeline.rs`). Guards count as reads.

use crate::ir::{Addr, Inst, MbarOp, Op, Slot, Src, WmmaOp};

/// Up to this many slots per list; longer lists (mma fragments) are cut, which only shortens the
/// dependency chains the timeline sees by the cut operands.
pub const MAX: usize = 24;

#[derive(Default)]
pub struct Deps {
    pub uses: [Slot; MAX],
    pub nuses: usize,
    pub defs: [Slot; MAX],
    pub ndefs: usize,
}

impl Deps {
    fn r(&mut self, s: Src) {
        if let Src::R(x) = s {
            if self.nuses < MAX {
                self.uses[self.nuses] = x;
                self.nuses += 1;
            }
        }
    }
    fn rs(&mut self, s: &[Src]) {
        for &x in s {
            self.r(x);
        }
    }
    fn a(&mut self, a: &Addr) {
        if let Some(b) = a.base {
            self.r(Src::R(b));
        }
    }
    fn w(&mut self, d: Slot) {
        if self.ndefs < MAX {
            self.defs[self.ndefs] = d;
            self.ndefs += 1;
        }
    }
    fn ws(&mut self, d: &[Slot]) {
        for &x in d {
            self.w(x);
        }
    }
    pub fn uses(&self) -> &[Slot] {
        &self.uses[..self.nuses]
    }
    pub fn defs(&self) -> &[Slot] {
        &self.defs[..self.ndefs]
    }
}

/// The reads and writes of `inst`.
pub fn of(inst: &Inst) -> Deps {
    let mut d = Deps::default();
    if let Some((p, _)) = inst.guard {
        d.r(Src::R(p));
    }
    match &inst.op {
        Op::Mov { d: x, a, .. } | Op::IUn { d: x, a, .. } | Op::FUn { d: x, a, .. } | Op::Testp { d: x, a, .. } => {
            d.r(*a);
            d.w(*x);
        }
        Op::Cvt { d: x, a, .. } | Op::Isspacep { d: x, a, .. } | Op::Cvta { d: x, a, .. } => {
            d.r(*a);
            d.w(*x);
        }
        Op::Pack { d: x, parts, .. } => {
            d.rs(parts);
            d.w(*x);
        }
        Op::Unpack { ds, a, .. } => {
            d.r(*a);
            for x in ds.iter().flatten() {
                d.w(*x);
            }
        }
        Op::SReg { d: x, .. } | Op::Activemask { d: x } => d.w(*x),
        Op::IBin { d: x, a, b, .. } | Op::FBin { d: x, a, b, .. } | Op::Set { d: x, a, b, .. } => {
            d.rs(&[*a, *b]);
            d.w(*x);
        }
        Op::ITern { d: x, a, b, c, .. }
        | Op::Lop3 { d: x, a, b, c, .. }
        | Op::Prmt { d: x, a, b, c, .. }
        | Op::Slct { d: x, a, b, c, .. }
        | Op::Dp { d: x, a, b, c, .. }
        | Op::Shf { d: x, a, b, c, .. }
        | Op::Fma { d: x, a, b, c, .. } => {
            d.rs(&[*a, *b, *c]);
            d.w(*x);
        }
        Op::Bfi { d: x, a, b, c, e, .. } => {
            d.rs(&[*a, *b, *c, *e]);
            d.w(*x);
        }
        Op::Carry {
            d: x,
            a,
            b,
            c,
            cc,
            cin,
            cout,
            ..
        } => {
            d.rs(&[*a, *b, *c]);
            if *cin {
                d.r(Src::R(*cc));
            }
            d.w(*x);
            if *cout {
                d.w(*cc);
            }
        }
        Op::Setp {
            d: x, d2, a, b, comb, ..
        } => {
            d.rs(&[*a, *b]);
            if let Some((_, c, _)) = comb {
                d.r(*c);
            }
            d.w(*x);
            if let Some(x2) = d2 {
                d.w(*x2);
            }
        }
        Op::Selp { d: x, a, b, p } => {
            d.rs(&[*a, *b, *p]);
            d.w(*x);
        }
        Op::CvtPack { d: x, hi, lo, .. } => {
            d.rs(&[*hi, *lo]);
            d.w(*x);
        }
        Op::Ld { ds, addr, .. } => {
            d.a(addr);
            d.ws(ds);
        }
        Op::St { srcs, addr, .. } => {
            d.a(addr);
            d.rs(srcs);
        }
        Op::Atom { d: x, addr, b, c, .. } => {
            d.a(addr);
            d.r(*b);
            if let Some(c) = c {
                d.r(*c);
            }
            if let Some(x) = x {
                d.w(*x);
            }
        }
        Op::Bar { id, count, red, .. } => {
            d.r(*id);
            if let Some(c) = count {
                d.r(*c);
            }
            if let Some((x, a, _)) = red {
                d.r(*a);
                d.w(*x);
            }
        }
        Op::Shfl {
            d: x, p, a, b, c, mask, ..
        } => {
            d.rs(&[*a, *b, *c, *mask]);
            d.w(*x);
            if let Some(p) = p {
                d.w(*p);
            }
        }
        Op::Vote { d: x, a, mask, .. } | Op::Redux { d: x, a, mask, .. } => {
            d.rs(&[*a, *mask]);
            d.w(*x);
        }
        Op::Match { d: x, p, a, mask, .. } => {
            d.rs(&[*a, *mask]);
            d.w(*x);
            if let Some(p) = p {
                d.w(*p);
            }
        }
        Op::WarpSync { mask } => d.r(*mask),
        Op::Mma { d: x, a, b, c, .. } => {
            d.rs(c);
            d.rs(a);
            d.rs(b);
            d.ws(x);
        }
        Op::Ldmatrix { ds, addr, .. } => {
            d.a(addr);
            d.ws(ds);
        }
        Op::Stmatrix { srcs, addr, .. } => {
            d.a(addr);
            d.rs(srcs);
        }
        Op::CpAsync {
            dst,
            src,
            src_size,
            ignore,
            ..
        } => {
            d.a(dst);
            d.a(src);
            if let Some(s) = src_size {
                d.r(*s);
            }
            if let Some((s, _)) = ignore {
                d.r(*s);
            }
        }
        Op::Wmma(w) => match w.as_ref() {
            WmmaOp::Load { ds, addr, stride, .. } => {
                d.a(addr);
                if let Some(s) = stride {
                    d.r(*s);
                }
                d.ws(ds);
            }
            WmmaOp::Store { srcs, addr, stride, .. } => {
                d.a(addr);
                if let Some(s) = stride {
                    d.r(*s);
                }
                d.rs(srcs);
            }
            WmmaOp::Mma { d: x, a, b, c, .. } => {
                d.rs(c);
                d.rs(a);
                d.rs(b);
                d.ws(x);
            }
        },
        Op::Mbar(m) => match m.as_ref() {
            MbarOp::Init { addr, count, .. } => {
                d.a(addr);
                d.r(*count);
            }
            MbarOp::Inval { addr, .. } | MbarOp::CpAsyncArrive { addr, .. } => d.a(addr),
            MbarOp::Arrive {
                state, addr, count, tx, ..
            } => {
                d.a(addr);
                if let Some(c) = count {
                    d.r(*c);
                }
                if let Some(t) = tx {
                    d.r(*t);
                }
                if let Some(s) = state {
                    d.w(*s);
                }
            }
            MbarOp::Tx { addr, n, .. } => {
                d.a(addr);
                d.r(*n);
            }
            MbarOp::Wait { p, addr, token, .. } => {
                d.a(addr);
                d.r(*token);
                d.w(*p);
            }
            MbarOp::PendingCount { d: x, state } => {
                d.r(*state);
                d.w(*x);
            }
        },
        // Calls pass values through the local frame (memory), not registers.
        Op::Call { .. }
        | Op::Builtin { .. }
        | Op::Bra { .. }
        | Op::Ret
        | Op::Exit
        | Op::Trap
        | Op::Membar
        | Op::CpAsyncCommit
        | Op::CpAsyncWait { .. }
        | Op::Nop => {}
    }
    d
}
