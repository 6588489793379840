//! Special registers and comparison semantics (`setp`/`set`: ordered and unordered float comparisons,
//! signed and unsigned integer comparisons, `.ftz`).

use super::{float, int, Env, Warp};
use crate::ir::*;

pub(crate) fn sreg(w: &Warp, env: &Env, r: SReg, l: usize) -> u64 {
    let lin = w.id * 32 + l as u32;
    let b = env.block;
    let tid = [lin % b[0], (lin / b[0]) % b[1], lin / (b[0] * b[1])];
    let nwarps = (b[0] * b[1] * b[2]).div_ceil(32);
    let lm = |x: u64| x & 0xffff_ffff;
    match r {
        SReg::Tid(d) => tid[d as usize] as u64,
        SReg::Ntid(d) => b[d as usize] as u64,
        SReg::Ctaid(d) => env.ctaid[d as usize] as u64,
        SReg::Nctaid(d) => env.grid[d as usize] as u64,
        SReg::Laneid => l as u64,
        SReg::Warpid => w.id as u64,
        SReg::Nwarpid => nwarps as u64,
        SReg::Clock => env.clock & 0xffff_ffff,
        SReg::Clock64 | SReg::GlobalTimer => env.clock,
        SReg::LanemaskEq => 1 << l,
        SReg::LanemaskLt => lm((1u64 << l) - 1),
        SReg::LanemaskLe => lm((1u64 << (l + 1)) - 1),
        SReg::LanemaskGt => lm(!((1u64 << (l + 1)) - 1)),
        SReg::LanemaskGe => lm(!((1u64 << l) - 1)),
        SReg::Smid | SReg::Gridid => 0,
        SReg::Nsmid => 1,
        SReg::DynSmemSize => env.dyn_shared as u64,
        SReg::TotalSmemSize => env.shared.len() as u64,
    }
}

fn cmp_int(cmp: Cmp, t: IntTy, a: u64, b: u64) -> bool {
    let (x, y) = (int::read(t, a), int::read(t, b));
    let (ux, uy) = (a & int::mask(t.bits), b & int::mask(t.bits));
    match cmp {
        Cmp::Eq | Cmp::Equ => x == y,
        Cmp::Ne | Cmp::Neu => x != y,
        Cmp::Lt | Cmp::Ltu => x < y,
        Cmp::Le | Cmp::Leu => x <= y,
        Cmp::Gt | Cmp::Gtu => x > y,
        Cmp::Ge | Cmp::Geu => x >= y,
        Cmp::Lo => ux < uy,
        Cmp::Ls => ux <= uy,
        Cmp::Hi => ux > uy,
        Cmp::Hs => ux >= uy,
        Cmp::Num | Cmp::Nan => false,
    }
}

fn cmp_f(cmp: Cmp, x: f64, y: f64) -> bool {
    let un = x.is_nan() || y.is_nan();
    match cmp {
        Cmp::Eq => x == y,
        Cmp::Ne => !un && x != y,
        Cmp::Lt | Cmp::Lo => x < y,
        Cmp::Le | Cmp::Ls => x <= y,
        Cmp::Gt | Cmp::Hi => x > y,
        Cmp::Ge | Cmp::Hs => x >= y,
        Cmp::Equ => un || x == y,
        Cmp::Neu => un || x != y,
        Cmp::Ltu => un || x < y,
        Cmp::Leu => un || x <= y,
        Cmp::Gtu => un || x > y,
        Cmp::Geu => un || x >= y,
        Cmp::Num => !un,
        Cmp::Nan => un,
    }
}

pub(crate) fn compare(cmp: Cmp, t: Ty, ftz: bool, a: u64, b: u64) -> bool {
    match t {
        Ty::I(it) => cmp_int(cmp, it, a, b),
        Ty::F(FTy::F32) => {
            let (mut x, mut y) = (f32::from_bits(a as u32), f32::from_bits(b as u32));
            if ftz {
                x = float::ftz32(x);
                y = float::ftz32(y);
            }
            cmp_f(cmp, x as f64, y as f64)
        }
        Ty::F(f) => cmp_f(cmp, float::load(f, a, false), float::load(f, b, false)),
    }
}
