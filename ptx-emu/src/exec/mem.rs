//! ld / st / atom / red on every state space, generic addressing through disjoint windows, and the
//! memory checks: memcheck (bounds, alignment), initcheck (unwritten bytes), racecheck (shared hazards),
//! reads of shared bytes with a cp.async in flight. Also the coalescing and bank-conflict metrics.

use super::globalrace::Kind;
use super::step::{get, lanes, set};
use super::{float, Env, Warp};
use crate::error::CheckKind;
use crate::ir::*;

pub(crate) fn window(space: Space) -> u64 {
    match space {
        Space::Shared => SHARED_WINDOW,
        Space::Local => LOCAL_WINDOW,
        Space::Param => PARAM_WINDOW,
        _ => 0,
    }
}

/// The state space and in-space address of an address used with `space`.
#[inline]
pub(crate) fn resolve(space: Space, a: u64) -> (Space, u64) {
    match space {
        Space::Generic => {
            for s in [Space::Shared, Space::Local, Space::Param] {
                let b = window(s);
                if a >= b && a < b + WINDOW_SIZE {
                    return (s, a - b);
                }
            }
            (Space::Global, a)
        }
        Space::Const => (Space::Global, a),
        s => (s, a),
    }
}

fn space_name(s: Space) -> &'static str {
    match s {
        Space::Global | Space::Generic => "global",
        Space::Shared => "shared",
        Space::Local => "local",
        Space::Param => "param",
        Space::Const => "const",
    }
}

/// Where one lane's access lands, after the checks.
pub(crate) enum Loc {
    Global(usize, usize),
    Shared(usize),
    Local(usize),
    Param(usize),
}

/// Resolves and checks one lane's access of `len` bytes; reports and returns None when it cannot happen.
#[allow(clippy::too_many_arguments)]
pub(crate) fn locate(
    w: &Warp,
    env: &mut Env,
    l: usize,
    space: Space,
    a: u64,
    len: u64,
    write: bool,
    line: u32,
) -> Option<Loc> {
    let (sp, off) = resolve(space, a);
    let what = if write { "write" } else { "read" };
    if len.is_power_of_two() && a % len.min(16) != 0 {
        if env.checks.memcheck {
            env.report(
                CheckKind::Memcheck,
                w.id,
                l,
                line,
                Some(a),
                format!("misaligned {} {what} of {len} bytes", space_name(sp)),
            );
        }
        return None;
    }
    // [off, off + len) must lie inside a space of `size` bytes; checked arithmetic, because a negative
    // offset (`s[tid - 1]`, `[p+-8]`) arrives here as a huge u64 and `off + len` would wrap.
    let inside = |size: usize| off.checked_add(len).is_some_and(|end| end <= size as u64);
    let loc = match sp {
        Space::Global => env
            .gmem
            .find(&mut env.gcache, off, len)
            .map(|(i, o)| Loc::Global(i, o as usize)),
        Space::Shared => inside(env.shared.len()).then_some(Loc::Shared(off as usize)),
        Space::Local => inside(env.prog.local_bytes as usize).then_some(Loc::Local(off as usize)),
        Space::Param => (!write && inside(env.params.len())).then_some(Loc::Param(off as usize)),
        _ => None,
    };
    if loc.is_none() && env.checks.memcheck {
        let detail = match sp {
            Space::Shared => format!(" (block has {} bytes of shared memory)", env.shared.len()),
            Space::Local => format!(" (thread has {} bytes of local memory)", env.prog.local_bytes),
            Space::Param if write => " (parameters are read-only)".to_string(),
            Space::Global => nearest_allocation(env, off),
            _ => String::new(),
        };
        env.report(
            CheckKind::Memcheck,
            w.id,
            l,
            line,
            Some(a),
            format!("out-of-bounds {} {what} of {len} bytes{detail}", space_name(sp)),
        );
    }
    loc
}

/// Where a bad global address lies relative to the nearest allocation.
fn nearest_allocation(env: &Env, a: u64) -> String {
    let allocs = &env.gmem.allocs;
    let i = allocs.partition_point(|x| x.base <= a);
    let before = i.checked_sub(1).map(|j| &allocs[j]);
    let after = allocs.get(i);
    match (before, after) {
        (Some(b), _) if a >= b.base + b.size && a - (b.base + b.size) < 1 << 20 => format!(
            " ({} bytes after the end of the {}-byte allocation at {:#x})",
            a - (b.base + b.size),
            b.size,
            b.base
        ),
        (Some(b), _) if a < b.base + b.size => {
            format!(
                " (the access runs past the end of the {}-byte allocation at {:#x})",
                b.size, b.base
            )
        }
        (_, Some(n)) if n.base - a < 1 << 20 => {
            format!(
                " ({} bytes before the {}-byte allocation at {:#x})",
                n.base - a,
                n.size,
                n.base
            )
        }
        _ => " (not in or near any allocation)".to_string(),
    }
}

fn tid(w: &Warp, l: usize) -> u32 {
    w.id * 32 + l as u32
}

/// initcheck / racecheck / cp.async checks of a shared access.
fn check_shared(w: &Warp, env: &mut Env, l: usize, off: usize, len: usize, write: bool, line: u32) {
    if env.mbar.any_valid() && env.checks.memcheck {
        super::mbarrier::plain_access(w, env, l, off, len, write, line);
    }
    if !write && env.checks.initcheck && !bits_set(&env.shared_init, off, len) {
        env.report(
            CheckKind::Initcheck,
            w.id,
            l,
            line,
            Some(off as u64),
            format!("read of {len} bytes of shared memory that nothing wrote"),
        );
    }
    if !write && !env.shared_pending.is_empty() && env.shared_pending[off..off + len].iter().any(|&p| p != u32::MAX) {
        env.report(
            CheckKind::AsyncCopy,
            w.id,
            l,
            line,
            Some(off as u64),
            "read of a cp.async destination before cp.async.wait_group/wait_all completed it".into(),
        );
    }
    if env.checks.racecheck {
        let t = tid(w, l);
        let sync = super::race::SyncState {
            full_epoch: env.full_epoch,
            hist: &env.bar_hist,
            warp_syncs: &env.warp_syncs,
        };
        if let Some(h) = env.race.access(off, len, t, write, env.epoch, &sync, line) {
            let other = env.thread_of(h.other / 32, (h.other % 32) as usize);
            env.report(
                CheckKind::Racecheck,
                w.id,
                l,
                line,
                Some(off as u64),
                format!(
                    "{} hazard on shared memory with thread ({},{},{}) at PTX line {}: no barrier between the accesses",
                    h.kind, other[0], other[1], other[2], h.other_line
                ),
            );
        }
    }
    if write {
        set_bits(&mut env.shared_init, off, len);
    }
}

pub(crate) fn bits_set(bits: &[u64], off: usize, len: usize) -> bool {
    (off..off + len).all(|i| bits[i / 64] >> (i % 64) & 1 == 1)
}

pub(crate) fn set_bits(bits: &mut [u64], off: usize, len: usize) {
    for i in off..off + len {
        bits[i / 64] |= 1 << (i % 64);
    }
}

/// Reads `out.len()` bytes at a checked location.
pub(crate) fn read_bytes(w: &Warp, env: &mut Env, l: usize, loc: &Loc, out: &mut [u8], line: u32, a: u64) {
    let n = out.len();
    match *loc {
        Loc::Global(i, o) => {
            let al = &env.gmem.allocs[i];
            al.read(o, out);
            if let Some(g) = env.global_access.as_mut() {
                let kind = if env.strong_access { Kind::Atomic } else { Kind::Read };
                g.record(al.base + o as u64, n, kind, line, tid(w, l));
            }
            if env.checks.initcheck && !al.is_init(o as u64, n as u64) {
                env.report(
                    CheckKind::Initcheck,
                    w.id,
                    l,
                    line,
                    Some(a),
                    format!("read of {n} bytes of global memory that nothing wrote"),
                );
            }
        }
        Loc::Shared(o) => {
            check_shared(w, env, l, o, n, false, line);
            out.copy_from_slice(&env.shared[o..o + n]);
        }
        Loc::Local(o) => {
            let b = l * env.prog.local_bytes as usize + o;
            out.copy_from_slice(&w.local[b..b + n]);
        }
        Loc::Param(o) => out.copy_from_slice(&env.params[o..o + n]),
    }
}

pub(crate) fn write_bytes(w: &mut Warp, env: &mut Env, l: usize, loc: &Loc, data: &[u8], line: u32) {
    let n = data.len();
    match *loc {
        Loc::Global(i, o) => {
            let al = &env.gmem.allocs[i];
            al.write(o, data);
            al.mark_init(o as u64, n as u64);
            if let Some(g) = env.global_access.as_mut() {
                let kind = if env.strong_access { Kind::Atomic } else { Kind::Write };
                g.record(al.base + o as u64, n, kind, line, tid(w, l));
            }
        }
        Loc::Shared(o) => {
            check_shared(w, env, l, o, n, true, line);
            env.shared[o..o + n].copy_from_slice(data);
        }
        Loc::Local(o) => {
            let b = l * env.prog.local_bytes as usize + o;
            w.local[b..b + n].copy_from_slice(data);
        }
        Loc::Param(_) => {}
    }
}

/// Coalescing / bank-conflict metrics of one warp-level request (no heap allocation).
pub(crate) fn request_metrics(env: &mut Env, space: Space, addrs: &[(u64, u64)]) {
    if addrs.is_empty() {
        return;
    }
    match space {
        Space::Global => {
            let mut sectors = [0u64; 160];
            let mut n = 0;
            for &(a, len) in addrs {
                let mut s = a >> 5;
                while s <= (a + len - 1) >> 5 && n < sectors.len() {
                    sectors[n] = s;
                    n += 1;
                    s += 1;
                }
            }
            let sectors = &mut sectors[..n];
            sectors.sort_unstable();
            let distinct = 1 + sectors.windows(2).filter(|w| w[0] != w[1]).count();
            env.metrics.global_requests += 1;
            env.metrics.global_sectors += distinct as u64;
            if let Some(t) = env.trace.as_mut() {
                let mut uniq = [0u64; 160];
                let mut k = 0;
                for (i, &s) in sectors.iter().enumerate() {
                    if i == 0 || sectors[i - 1] != s {
                        uniq[k] = s;
                        k += 1;
                    }
                }
                t.global_sectors(&uniq[..k]);
            }
        }
        Space::Shared => {
            let (wavefronts, phases) = shared_wavefronts(addrs);
            env.metrics.shared_requests += 1;
            env.metrics.shared_wavefronts += wavefronts;
            env.metrics.shared_bank_conflicts += wavefronts.saturating_sub(phases);
            if let Some(t) = env.trace.as_mut() {
                t.shared_request(wavefronts, addrs);
            }
        }
        _ => {}
    }
}

/// Wavefronts and phases of one warp-level shared-memory request (lanes' offset and length, in lane
/// order). Lanes are served 128 bytes at a time (32 lanes x 4 B, 16 x 8 B, 8 x 16 B); within a phase
/// each bank serves one distinct 4-byte word per wavefront.
pub(crate) fn shared_wavefronts(addrs: &[(u64, u64)]) -> (u64, u64) {
    let Some(first) = addrs.first() else { return (0, 0) };
    let len = first.1.max(4);
    let per_phase = (128 / len).max(1) as usize;
    let mut wavefronts = 0u64;
    let mut phases = 0u64;
    for chunk in addrs.chunks(per_phase) {
        phases += 1;
        let mut words = [0u64; 160];
        let mut n = 0;
        for &(a, l) in chunk {
            let mut wd = a >> 2;
            while wd <= (a + l - 1) >> 2 && n < words.len() {
                words[n] = wd;
                n += 1;
                wd += 1;
            }
        }
        let words = &mut words[..n];
        words.sort_unstable();
        let mut per_bank = [0u32; 32];
        for (i, &wd) in words.iter().enumerate() {
            if i == 0 || words[i - 1] != wd {
                per_bank[(wd % 32) as usize] += 1;
            }
        }
        wavefronts += *per_bank.iter().max().unwrap_or(&1) as u64;
    }
    (wavefronts, phases)
}

#[inline]
pub(crate) fn lane_addr(r: &[u64], addr: &Addr, l: usize) -> u64 {
    match addr.base {
        Some(b) => r[((b as usize) << 5) | l].wrapping_add(addr.off as u64),
        None => addr.off as u64,
    }
}

pub(crate) fn access(w: &mut Warp, env: &mut Env, inst: &Inst, active: u32) {
    match &inst.op {
        Op::Ld {
            space,
            size,
            signed,
            ds,
            addr,
            strong,
        } => {
            env.strong_access = *strong;
            let total = *size as u64 * ds.len() as u64;
            let mut reqs = [(0u64, 0u64); 32];
            let mut nreq = 0;
            let mut req_space = Space::Global;
            lanes!(active, |l| {
                let a = lane_addr(&w.regs, addr, l);
                let Some(loc) = locate(w, env, l, *space, a, total, false, inst.line) else {
                    continue;
                };
                let mut buf = [0u8; 64];
                let buf = &mut buf[..total as usize];
                read_bytes(w, env, l, &loc, buf, inst.line, a);
                let (sp, off) = resolve(*space, a);
                req_space = sp;
                reqs[nreq] = (off, total);
                nreq += 1;
                match sp {
                    Space::Global => env.metrics.global_load_bytes += total,
                    Space::Shared => env.metrics.shared_load_bytes += total,
                    Space::Local => env.metrics.local_bytes += total,
                    _ => {}
                }
                for (i, d) in ds.iter().enumerate() {
                    let s = *size as usize;
                    let mut v = [0u8; 8];
                    v[..s.min(8)].copy_from_slice(&buf[i * s..i * s + s.min(8)]);
                    let mut x = u64::from_le_bytes(v);
                    if *signed && s < 8 {
                        let sh = 64 - 8 * s as u32;
                        x = (((x << sh) as i64) >> sh) as u64;
                    }
                    set(&mut w.regs, *d, l, x);
                }
            });
            request_metrics(env, req_space, &reqs[..nreq]);
        }
        Op::St {
            space,
            size,
            srcs,
            addr,
            strong,
        } => {
            env.strong_access = *strong;
            let total = *size as u64 * srcs.len() as u64;
            let mut reqs = [(0u64, 0u64); 32];
            let mut nreq = 0;
            let mut req_space = Space::Global;
            lanes!(active, |l| {
                let a = lane_addr(&w.regs, addr, l);
                let Some(loc) = locate(w, env, l, *space, a, total, true, inst.line) else {
                    continue;
                };
                let mut buf = [0u8; 64];
                let s = *size as usize;
                for (i, src) in srcs.iter().enumerate() {
                    let v = get(&w.regs, *src, l).to_le_bytes();
                    buf[i * s..i * s + s.min(8)].copy_from_slice(&v[..s.min(8)]);
                }
                write_bytes(w, env, l, &loc, &buf[..total as usize], inst.line);
                let (sp, off) = resolve(*space, a);
                req_space = sp;
                reqs[nreq] = (off, total);
                nreq += 1;
                match sp {
                    Space::Global => env.metrics.global_store_bytes += total,
                    Space::Shared => env.metrics.shared_store_bytes += total,
                    Space::Local => env.metrics.local_bytes += total,
                    _ => {}
                }
            });
            request_metrics(env, req_space, &reqs[..nreq]);
        }
        Op::Atom {
            space,
            op,
            t,
            d,
            addr,
            b,
            c,
        } => {
            let len = (t.bits() / 8) as u64;
            lanes!(active, |l| {
                let a = lane_addr(&w.regs, addr, l);
                let Some(loc) = locate(w, env, l, *space, a, len, true, inst.line) else {
                    continue;
                };
                if matches!(loc, Loc::Local(_) | Loc::Param(_)) && env.checks.memcheck {
                    env.report(
                        CheckKind::Memcheck,
                        w.id,
                        l,
                        inst.line,
                        Some(a),
                        "atomic on local or param memory".into(),
                    );
                    continue;
                }
                let n = len as usize;
                let bv = get(&w.regs, *b, l);
                let cv = c.map(|c| get(&w.regs, c, l)).unwrap_or(0);
                let old = if let Loc::Global(i, o) = loc {
                    // Global atomics are indivisible even with blocks on several host threads.
                    let al = &env.gmem.allocs[i];
                    if env.checks.initcheck && !al.is_init(o as u64, len) {
                        env.report(
                            CheckKind::Initcheck,
                            w.id,
                            l,
                            inst.line,
                            Some(a),
                            format!("atomic on {n} bytes of global memory that nothing wrote"),
                        );
                    }
                    let old = al.rmw(o, n, |old| atom_op(*op, *t, old, bv, cv));
                    al.mark_init(o as u64, len);
                    if let Some(g) = env.global_access.as_mut() {
                        g.record(al.base + o as u64, n, Kind::Atomic, inst.line, tid(w, l));
                    }
                    env.metrics.global_atomic_bytes += len;
                    old
                } else {
                    // Atomics never race with each other: racecheck skips them (see README "Status").
                    let race = std::mem::replace(&mut env.checks.racecheck, false);
                    let mut buf = [0u8; 8];
                    read_bytes(w, env, l, &loc, &mut buf[..n], inst.line, a);
                    let old = u64::from_le_bytes(buf);
                    let nb = atom_op(*op, *t, old, bv, cv).to_le_bytes();
                    write_bytes(w, env, l, &loc, &nb[..n], inst.line);
                    env.checks.racecheck = race;
                    old
                };
                if let Some(d) = d {
                    set(&mut w.regs, *d, l, old);
                }
            });
        }
        _ => {}
    }
    env.strong_access = false;
}

fn atom_op(op: AtomOp, t: Ty, old: u64, b: u64, c: u64) -> u64 {
    let bits = t.bits() as u8;
    let m = super::int::mask(bits);
    match t {
        Ty::F(f) => match op {
            AtomOp::Add => {
                let mods = FMods {
                    rnd: Rnd::Rn,
                    ftz: f == FTy::F32,
                    sat: false,
                    relu: false,
                    nan: false,
                };
                if float::is_packed(f) {
                    float::packed(f, |s, x, y, _| float::bin_scalar(FBin::Add, s, mods, x, y), old, b, 0)
                } else {
                    float::bin_scalar(FBin::Add, f, mods, old, b)
                }
            }
            AtomOp::Exch => b,
            AtomOp::Min => float::bin_scalar(
                FBin::Min,
                f,
                FMods {
                    rnd: Rnd::Rn,
                    ftz: false,
                    sat: false,
                    relu: false,
                    nan: false,
                },
                old,
                b,
            ),
            AtomOp::Max => float::bin_scalar(
                FBin::Max,
                f,
                FMods {
                    rnd: Rnd::Rn,
                    ftz: false,
                    sat: false,
                    relu: false,
                    nan: false,
                },
                old,
                b,
            ),
            _ => old,
        },
        Ty::I(it) => {
            let (x, y) = (super::int::read(it, old), super::int::read(it, b));
            (match op {
                AtomOp::Add => old.wrapping_add(b),
                AtomOp::Min => x.min(y) as u64,
                AtomOp::Max => x.max(y) as u64,
                AtomOp::Inc => {
                    if (old & m) >= (b & m) {
                        0
                    } else {
                        old + 1
                    }
                }
                AtomOp::Dec => {
                    if (old & m) == 0 || (old & m) > (b & m) {
                        b
                    } else {
                        old - 1
                    }
                }
                AtomOp::And => old & b,
                AtomOp::Or => old | b,
                AtomOp::Xor => old ^ b,
                AtomOp::Exch => b,
                AtomOp::Cas => {
                    if (old & m) == (b & m) {
                        c
                    } else {
                        old
                    }
                }
            }) & m
        }
    }
}
