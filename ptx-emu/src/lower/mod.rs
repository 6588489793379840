//! AST -> IR: lays out memory (params, shared, local, module globals), assigns register slots per
//! scope, resolves labels and calls, and lowers each instruction (`inst.rs`, `inst_mem.rs`).

mod globals;
mod inst;
mod inst_cmp;
mod inst_mbar;
mod inst_mem;
mod inst_tensor;
mod inst_wmma;
mod mods;

use std::collections::HashMap;

use crate::ast::{self, Operand, Stmt, VarDecl};
use crate::error::{parse_err, unsupported, EmuError};
use crate::ir::*;

pub use globals::{module_globals, GlobalVar};

type R<T> = Result<T, EmuError>;

/// What a name refers to inside a function.
#[derive(Clone, Copy, Debug)]
pub(crate) enum Sym {
    Reg(Slot),
    /// Kernel parameter at this offset of the param buffer.
    KParam(u32),
    /// Device-function parameter / call-site param: per-thread frame at this local offset.
    Frame(u32),
    Local(u32),
    Shared(u32),
    /// Module `.global`/`.const` variable at this device address.
    Global(u64),
}

/// Register slots per function (per thread) the emulator accepts.
const MAX_SLOTS: u64 = 1 << 16;
/// Local memory per thread (CUDA's limit is 512 KiB).
const MAX_LOCAL: u64 = 512 * 1024;
/// Kernel parameter bytes (CUDA's limit since 12.1 on Volta and newer).
pub const MAX_PARAM_BYTES: u64 = 32764;
/// Static shared memory layout of a module (far beyond any device: a launch then needs it to fit
/// `Options::max_shared_bytes`).
const MAX_SHARED_LAYOUT: u64 = 1 << 24;

fn align_up(x: u64, a: u64) -> u64 {
    let a = a.max(1);
    x.div_ceil(a) * a
}

pub(crate) struct FnCtx<'a> {
    pub scopes: Vec<HashMap<String, Sym>>,
    pub next_slot: Slot,
    pub code: &'a mut Vec<Inst>,
    pub labels: HashMap<String, u32>,
    pub fixups: Vec<(usize, String, u32)>,
    pub funcs: &'a HashMap<String, (u32, FuncInfo)>,
    pub call_fixups: &'a mut Vec<(usize, String, u32)>,
    pub local_bytes: &'a mut u64,
    pub shared_bytes: u64,
    pub is_kernel: bool,
    /// Call-site `.param` decls pending for the next call (name -> (offset, size)).
    pub line: u32,
    pub preds: std::collections::HashSet<Slot>,
    /// The hidden condition-code register (carry flag) of this function, once used.
    pub cc: Option<Slot>,
    /// The first instruction of this function the emulator does not support: (line, instruction).
    /// Lowering goes on (a trap stands in for it), so that one unsupported instruction does not
    /// reject kernels that never reach it.
    pub unsupported: Option<(u32, String)>,
}

impl FnCtx<'_> {
    pub fn lookup(&self, name: &str) -> Option<Sym> {
        self.scopes.iter().rev().find_map(|s| s.get(name).copied())
    }

    pub fn new_slot(&mut self) -> Slot {
        let s = self.next_slot;
        self.next_slot += 1;
        s
    }

    pub fn emit(&mut self, op: Op, guard: Option<(Slot, bool)>, class: Class) {
        self.code.push(Inst {
            op,
            guard,
            line: self.line,
            class,
        });
    }

    pub fn reg(&self, name: &str) -> R<Slot> {
        match self.lookup(name) {
            Some(Sym::Reg(s)) => Ok(s),
            Some(_) => parse_err(self.line, format!("`{name}` is not a register")),
            None => parse_err(self.line, format!("undeclared register `{name}`")),
        }
    }

    /// A destination register.
    pub fn dst(&self, o: &Operand) -> R<Slot> {
        match o {
            Operand::Name(n) => self.reg(n),
            _ => parse_err(self.line, format!("expected a destination register, found {o:?}")),
        }
    }

    /// A source operand. `fty` says how to read decimal/f64 float literals (f32 ops take f32 bits).
    pub fn src(&mut self, o: &Operand, fty: Option<FTy>) -> R<Src> {
        Ok(match o {
            Operand::Name(n) => {
                if let Some(r) = special_reg(n) {
                    let d = self.new_slot();
                    self.emit(Op::SReg { d, r }, None, Class::Move);
                    return Ok(Src::R(d));
                }
                match self.lookup(n) {
                    Some(Sym::Reg(s)) => Src::R(s),
                    Some(sym) => Src::I(sym_addr(sym)),
                    None => {
                        if n == "WARP_SZ" {
                            // The predefined constant `warpSize` compiles to.
                            return Ok(Src::I(32));
                        }
                        if n.starts_with('%') {
                            return unsupported(self.line, format!("special or undeclared register `{n}`"));
                        }
                        return parse_err(self.line, format!("unknown name `{n}`"));
                    }
                }
            }
            Operand::Imm(i) => Src::I(*i as u64),
            Operand::F32(b) => match fty {
                Some(FTy::F64) => Src::I((f32::from_bits(*b) as f64).to_bits()),
                _ => Src::I(*b as u64),
            },
            Operand::F64(b) => match fty {
                Some(FTy::F32) => Src::I((f64::from_bits(*b) as f32).to_bits() as u64),
                _ => Src::I(*b),
            },
            _ => return parse_err(self.line, format!("unexpected operand {o:?}")),
        })
    }

    /// An address operand; returns the address and, for a symbol base, the space the symbol lives in.
    pub fn addr(&mut self, o: &Operand) -> R<(Addr, Option<Space>)> {
        match o {
            Operand::Addr { base: None, offset } => Ok((
                Addr {
                    base: None,
                    off: *offset,
                },
                None,
            )),
            Operand::Addr { base: Some(n), offset } => match self.lookup(n) {
                Some(Sym::Reg(s)) => Ok((
                    Addr {
                        base: Some(s),
                        off: *offset,
                    },
                    None,
                )),
                Some(sym) => {
                    let sp = match sym {
                        Sym::KParam(_) => Space::Param,
                        Sym::Frame(_) | Sym::Local(_) => Space::Local,
                        Sym::Shared(_) => Space::Shared,
                        Sym::Global(_) => Space::Global,
                        Sym::Reg(_) => unreachable!("handled above"),
                    };
                    Ok((
                        Addr {
                            base: None,
                            off: (sym_addr(sym) as i64).wrapping_add(*offset),
                        },
                        Some(sp),
                    ))
                }
                None => parse_err(self.line, format!("unknown address base `{n}`")),
            },
            _ => parse_err(self.line, format!("expected an address, found {o:?}")),
        }
    }
}

fn sym_addr(s: Sym) -> u64 {
    match s {
        Sym::Reg(_) => 0,
        Sym::KParam(o) | Sym::Frame(o) | Sym::Local(o) | Sym::Shared(o) => o as u64,
        Sym::Global(a) => a,
    }
}

pub(crate) fn special_reg(n: &str) -> Option<SReg> {
    let dim = |s: &str| match s {
        "x" => Some(0u8),
        "y" => Some(1),
        "z" => Some(2),
        _ => None,
    };
    if let Some((base, d)) = n.split_once('.') {
        let d = dim(d)?;
        return Some(match base {
            "%tid" => SReg::Tid(d),
            "%ntid" => SReg::Ntid(d),
            "%ctaid" => SReg::Ctaid(d),
            "%nctaid" => SReg::Nctaid(d),
            _ => return None,
        });
    }
    Some(match n {
        "%tid" => SReg::Tid(0),
        "%laneid" => SReg::Laneid,
        "%warpid" => SReg::Warpid,
        "%nwarpid" => SReg::Nwarpid,
        "%clock" => SReg::Clock,
        "%clock64" => SReg::Clock64,
        "%lanemask_eq" => SReg::LanemaskEq,
        "%lanemask_lt" => SReg::LanemaskLt,
        "%lanemask_le" => SReg::LanemaskLe,
        "%lanemask_gt" => SReg::LanemaskGt,
        "%lanemask_ge" => SReg::LanemaskGe,
        "%smid" => SReg::Smid,
        "%nsmid" => SReg::Nsmid,
        "%gridid" => SReg::Gridid,
        "%globaltimer" => SReg::GlobalTimer,
        "%dynamic_smem_size" => SReg::DynSmemSize,
        "%total_smem_size" => SReg::TotalSmemSize,
        _ => return None,
    })
}

/// Lowers a parsed module. `global_addr` gives the device address of each module `.global`/`.const`.
pub fn lower(m: &ast::Module, global_addr: &HashMap<String, u64>) -> R<Program> {
    let mut module_syms: HashMap<String, Sym> = HashMap::new();
    let mut shared_off = 0u64;
    let mut extern_shared: Vec<(String, u32)> = vec![];
    for g in &m.globals {
        match g.space.as_str() {
            ".shared" => {
                if g.count.is_none() || g.is_extern {
                    extern_shared.push((g.name.clone(), g.align.max(16)));
                } else {
                    shared_off = align_up(shared_off, g.align as u64);
                    if shared_off + g.size() > MAX_SHARED_LAYOUT {
                        return unsupported(
                            g.line,
                            format!("more than {MAX_SHARED_LAYOUT} bytes of static .shared variables"),
                        );
                    }
                    module_syms.insert(g.name.clone(), Sym::Shared(shared_off as u32));
                    shared_off += g.size();
                }
            }
            ".global" | ".const" => {
                let a = *global_addr
                    .get(&g.name)
                    .ok_or_else(|| EmuError::Usage(format!("global `{}` was not allocated", g.name)))?;
                module_syms.insert(g.name.clone(), Sym::Global(a));
            }
            sp => return unsupported(g.line, format!("module-level {sp} variable {}", g.name)),
        }
    }
    let module_shared = shared_off;
    // Dynamic shared memory starts above the largest static layout of any kernel.
    let mut max_static = module_shared;
    for f in &m.funcs {
        let mut off = module_shared;
        for s in f.body.iter().flatten() {
            if let Stmt::Var(v) = s {
                if v.space == ".shared" {
                    off = (align_up(off, v.align.max(1) as u64) + v.size()).min(MAX_SHARED_LAYOUT + 1);
                }
            }
        }
        max_static = max_static.max(off);
    }
    let dyn_base = align_up(max_static, 16);
    for (name, _) in &extern_shared {
        module_syms.insert(name.clone(), Sym::Shared(dyn_base as u32));
    }

    // Device functions: frame layout for params and return values in per-thread local memory.
    let mut local_bytes = 0u64;
    let mut funcs: HashMap<String, (u32, FuncInfo)> = HashMap::new();
    let mut func_list = vec![];
    for f in m.funcs.iter().filter(|f| !f.is_entry) {
        if f.body.is_none() {
            continue;
        }
        let mut lay = |v: &[VarDecl]| {
            v.iter()
                .map(|p| {
                    local_bytes = align_up(local_bytes, p.align.max(1) as u64);
                    let o = local_bytes as u32;
                    local_bytes += p.size().max(1);
                    (o, p.size() as u32)
                })
                .collect::<Vec<_>>()
        };
        let params = lay(&f.params);
        let rets = lay(&f.rets);
        if local_bytes > MAX_LOCAL {
            return unsupported(
                f.line,
                format!(
                    "parameters of `{}` need more than {MAX_LOCAL} bytes of local memory",
                    f.name
                ),
            );
        }
        let info = FuncInfo {
            name: f.name.clone(),
            entry: 0,
            params,
            rets,
        };
        funcs.insert(f.name.clone(), (func_list.len() as u32, info.clone()));
        func_list.push(info);
    }

    let mut code = vec![];
    let mut kernels = vec![];
    let mut call_fixups = vec![];
    let mut max_kernel_slots = 0u32;
    let mut max_shared = module_shared;
    let mut kernel_slots = vec![];
    // Kernels first (slot base 0 each), then device functions above every kernel's slots.
    let order: Vec<&ast::Function> = m
        .funcs
        .iter()
        .filter(|f| f.is_entry)
        .chain(m.funcs.iter().filter(|f| !f.is_entry && f.body.is_some()))
        .collect();
    let mut func_slot_base = 0u32;
    let mut first_func = true;
    let mut ranges: Vec<(String, usize, usize)> = vec![];
    let mut fn_unsupported: HashMap<String, (u32, String)> = HashMap::new();
    for f in order {
        let body = f.body.as_ref().expect("filtered");
        let start = code.len();
        if !f.is_entry && first_func {
            first_func = false;
            func_slot_base = max_kernel_slots;
        }
        let mut scope: HashMap<String, Sym> = module_syms.clone();
        let mut kinfo = None;
        if f.is_entry {
            let mut off = 0u64;
            let mut params = vec![];
            for p in &f.params {
                off = align_up(off, p.align.max(1) as u64);
                if off + p.size() > MAX_PARAM_BYTES {
                    return unsupported(
                        p.line,
                        format!(
                            "parameters of kernel `{}` larger than {MAX_PARAM_BYTES} bytes (CUDA's limit)",
                            f.name
                        ),
                    );
                }
                scope.insert(p.name.clone(), Sym::KParam(off as u32));
                params.push((off as u32, p.size() as u32, p.align));
                off += p.size();
            }
            kinfo = Some(KernelInfo {
                name: f.name.clone(),
                entry: code.len() as u32,
                params,
                param_bytes: off as u32,
                line: f.line,
                static_shared: 0,
                maxntid: f.maxntid,
                reqntid: f.reqntid,
                unsupported: None,
                cross_block: false,
            });
        } else {
            let (idx, info) = &funcs[&f.name];
            func_list[*idx as usize].entry = code.len() as u32;
            for (p, (o, _)) in f.params.iter().zip(&info.params) {
                scope.insert(p.name.clone(), Sym::Frame(*o));
            }
            for (p, (o, _)) in f.rets.iter().zip(&info.rets) {
                scope.insert(p.name.clone(), Sym::Frame(*o));
            }
        }
        let mut ctx = FnCtx {
            scopes: vec![scope],
            next_slot: if f.is_entry { 0 } else { func_slot_base },
            code: &mut code,
            labels: HashMap::new(),
            fixups: vec![],
            funcs: &funcs,
            call_fixups: &mut call_fixups,
            local_bytes: &mut local_bytes,
            shared_bytes: module_shared,
            is_kernel: f.is_entry,
            line: f.line,
            preds: Default::default(),
            cc: None,
            unsupported: None,
        };
        lower_body(&mut ctx, body)?;
        // A body that falls off its end returns.
        ctx.emit(if f.is_entry { Op::Exit } else { Op::Ret }, None, Class::Control);
        for (at, label, line) in std::mem::take(&mut ctx.fixups) {
            let Some(&t) = ctx.labels.get(&label) else {
                return parse_err(line, format!("unknown label `{label}`"));
            };
            if let Op::Bra { target } = &mut ctx.code[at].op {
                *target = t;
            }
        }
        max_shared = max_shared.max(ctx.shared_bytes);
        if let Some(u) = ctx.unsupported.take() {
            fn_unsupported.insert(f.name.clone(), u);
        }
        ranges.push((f.name.clone(), start, ctx.code.len()));
        if f.is_entry {
            max_kernel_slots = max_kernel_slots.max(ctx.next_slot);
            kernel_slots.push(ctx.next_slot);
            let mut k = kinfo.expect("entry");
            k.static_shared = ctx.shared_bytes as u32;
            kernels.push(k);
        } else {
            func_slot_base = ctx.next_slot;
        }
    }
    // Device functions use fixed register slots and frames: recursion would clobber them.
    let owner = |pc: usize| {
        ranges
            .iter()
            .find(|r| pc >= r.1 && pc < r.2)
            .map(|r| r.0.clone())
            .unwrap_or_default()
    };
    let edges: Vec<(String, String, u32)> = call_fixups
        .iter()
        .map(|(at, n, l)| (owner(*at), n.clone(), *l))
        .collect();
    for (from, to, line) in &edges {
        // is `from` reachable from `to`?
        let mut stack = vec![to.clone()];
        let mut seen = std::collections::HashSet::new();
        while let Some(f) = stack.pop() {
            if &f == from {
                return unsupported(*line, format!("recursive call of `{to}` (recursion is not supported)"));
            }
            if seen.insert(f.clone()) {
                stack.extend(edges.iter().filter(|e| e.0 == f).map(|e| e.1.clone()));
            }
        }
    }
    // A kernel is unsupported if it, or a device function it can reach, contains an unsupported
    // instruction (the first one in module order).
    for k in &mut kernels {
        let mut stack = vec![k.name.clone()];
        let mut seen = std::collections::HashSet::new();
        let mut first: Option<(u32, String)> = None;
        let mut cross_block = false;
        while let Some(f) = stack.pop() {
            if !seen.insert(f.clone()) {
                continue;
            }
            if let Some((_, lo, hi)) = ranges.iter().find(|r| r.0 == f) {
                cross_block |= code[*lo..*hi].iter().any(|i| communicates_across_blocks(&i.op));
            }
            if let Some(u) = fn_unsupported.get(&f) {
                if first.as_ref().is_none_or(|x| u.0 < x.0) {
                    first = Some(u.clone());
                }
            }
            stack.extend(edges.iter().filter(|e| e.0 == f).map(|e| e.1.clone()));
        }
        k.unsupported = first;
        k.cross_block = cross_block;
    }
    for (at, name, line) in call_fixups {
        let Some((idx, _)) = funcs.get(&name) else {
            return unsupported(line, format!("call of `{name}`, which has no body in this module"));
        };
        if let Op::Call { func, .. } = &mut code[at].op {
            *func = *idx;
        }
    }
    let nslots = if func_list.is_empty() {
        max_kernel_slots
    } else {
        func_slot_base.max(max_kernel_slots)
    };
    let dyn_base = dyn_base as u32;
    let prog = Program {
        code,
        kernels,
        funcs: func_list,
        nslots,
        local_bytes: align_up(local_bytes, 16) as u32,
        static_shared: max_shared as u32,
        dyn_shared_base: dyn_base,
    };
    let _ = kernel_slots;
    Ok(prog)
}

/// Can this instruction let blocks communicate (so that their order matters)? Global or generic
/// atomics, and strong global or generic loads and stores.
fn communicates_across_blocks(op: &Op) -> bool {
    let global = |s: &Space| matches!(s, Space::Global | Space::Generic);
    match op {
        Op::Atom { space, .. } => global(space),
        Op::Ld { space, strong, .. } | Op::St { space, strong, .. } => *strong && global(space),
        _ => false,
    }
}

fn lower_body(ctx: &mut FnCtx, body: &[Stmt]) -> R<()> {
    for s in body {
        match s {
            Stmt::Open => ctx.scopes.push(HashMap::new()),
            Stmt::Close => {
                ctx.scopes.pop();
            }
            Stmt::Label(l, line) => {
                if ctx.labels.insert(l.clone(), ctx.code.len() as u32).is_some() {
                    return parse_err(*line, format!("label `{l}` defined twice"));
                }
            }
            Stmt::Reg(r) => {
                let total: u64 = r.names.iter().map(|(_, c)| c.unwrap_or(1) as u64).sum::<u64>() * r.vec.max(1) as u64;
                if total + ctx.next_slot as u64 > MAX_SLOTS {
                    return unsupported(r.line, format!("more than {MAX_SLOTS} registers in one function"));
                }
                for (name, count) in &r.names {
                    let slots = r.vec.max(1);
                    match count {
                        Some(n) => {
                            for i in 0..*n {
                                let s = ctx.next_slot;
                                ctx.next_slot += slots;
                                ctx.scopes
                                    .last_mut()
                                    .expect("scope")
                                    .insert(format!("{name}{i}"), Sym::Reg(s));
                                if r.ty == ".pred" {
                                    ctx.preds.insert(s);
                                }
                            }
                        }
                        None => {
                            let s = ctx.next_slot;
                            ctx.next_slot += slots;
                            ctx.scopes.last_mut().expect("scope").insert(name.clone(), Sym::Reg(s));
                            if r.ty == ".pred" {
                                ctx.preds.insert(s);
                            }
                        }
                    }
                }
            }
            Stmt::Var(v) => {
                let sym = match v.space.as_str() {
                    ".local" | ".param" => {
                        if align_up(*ctx.local_bytes, v.align.max(1) as u64) + v.size().max(1) > MAX_LOCAL {
                            return unsupported(
                                v.line,
                                format!("more than {MAX_LOCAL} bytes of local memory per thread"),
                            );
                        }
                        *ctx.local_bytes = align_up(*ctx.local_bytes, v.align.max(1) as u64);
                        let o = *ctx.local_bytes as u32;
                        *ctx.local_bytes += v.size().max(1);
                        if v.space == ".param" {
                            Sym::Frame(o)
                        } else {
                            Sym::Local(o)
                        }
                    }
                    ".shared" => {
                        if v.count.is_none() {
                            return unsupported(v.line, "unsized .shared declaration inside a function");
                        }
                        if align_up(ctx.shared_bytes, v.align.max(1) as u64) + v.size() > MAX_SHARED_LAYOUT {
                            return unsupported(
                                v.line,
                                format!("more than {MAX_SHARED_LAYOUT} bytes of static .shared variables"),
                            );
                        }
                        ctx.shared_bytes = align_up(ctx.shared_bytes, v.align.max(1) as u64);
                        let o = ctx.shared_bytes as u32;
                        ctx.shared_bytes += v.size();
                        Sym::Shared(o)
                    }
                    sp => return unsupported(v.line, format!("{sp} variable inside a function")),
                };
                ctx.scopes.last_mut().expect("scope").insert(v.name.clone(), sym);
            }
            Stmt::Inst(i) => {
                ctx.line = i.line;
                let mark = ctx.code.len();
                match inst::lower_inst(ctx, i) {
                    Ok(()) => {}
                    Err(EmuError::Unsupported { line, instruction }) => {
                        // Deferred to the launch of a kernel that reaches it (see `FnCtx::unsupported`).
                        ctx.code.truncate(mark);
                        ctx.fixups.retain(|f| f.0 < mark);
                        ctx.call_fixups.retain(|f| f.0 < mark);
                        ctx.emit(Op::Trap, None, Class::Control);
                        ctx.unsupported.get_or_insert((line, instruction));
                    }
                    Err(e) => return Err(e),
                }
            }
        }
    }
    Ok(())
}
