//! The compact IR the executor runs: registers are slot indices into a per-thread register file of u64,
//! types and modifiers are resolved into the opcode, symbols into addresses, labels into PCs.

/// A register slot.
pub type Slot = u32;

/// A source operand: a register slot or an immediate (raw bits).
#[derive(Clone, Copy, Debug, PartialEq)]
pub enum Src {
    R(Slot),
    I(u64),
}

/// State spaces.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum Space {
    Global,
    Shared,
    Local,
    /// Kernel parameters (read only).
    Param,
    Const,
    /// A generic address: the window it falls in decides the space.
    Generic,
}

/// `[base + off]`; `base` None means the absolute address `off`.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct Addr {
    pub base: Option<Slot>,
    pub off: i64,
}

/// An integer type: width in bits (1 for predicates) and signedness.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct IntTy {
    pub bits: u8,
    pub signed: bool,
}

/// Float formats, including the packed pairs.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum FTy {
    F16,
    BF16,
    F32,
    F64,
    F16x2,
    BF16x2,
}

/// Rounding modes. `Rni`..`Rpi` are the round-to-integer forms of cvt/cvt.rni.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Rnd {
    Rn,
    Rz,
    Rm,
    Rp,
    Rna,
    Rni,
    Rzi,
    Rmi,
    Rpi,
    /// `.approx` / `.full` / no modifier where the result is not correctly rounded.
    Approx,
}

/// Float modifiers.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct FMods {
    pub rnd: Rnd,
    pub ftz: bool,
    pub sat: bool,
    /// `.relu` (f16/bf16 min/max/fma/cvt).
    pub relu: bool,
    /// `.NaN` on min/max: propagate NaN.
    pub nan: bool,
}

/// A scalar type for setp/cvt/atom: integer or float.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Ty {
    I(IntTy),
    F(FTy),
}

impl Ty {
    pub fn bits(self) -> u32 {
        match self {
            Ty::I(t) => t.bits as u32,
            Ty::F(FTy::F16 | FTy::BF16) => 16,
            Ty::F(FTy::F32 | FTy::F16x2 | FTy::BF16x2) => 32,
            Ty::F(FTy::F64) => 64,
        }
    }
}

mod kinds;
mod wmma_mbar;
pub use kinds::*;
pub use wmma_mbar::*;

#[derive(Clone, Debug, PartialEq)]
pub enum Op {
    /// Copy `bits` of a into d.
    Mov {
        d: Slot,
        a: Src,
        bits: u8,
    },
    /// d = concatenation of parts (part 0 in the low bits), each `each` bits wide.
    Pack {
        d: Slot,
        parts: Vec<Src>,
        each: u8,
    },
    /// Splits a into parts of `each` bits (part 0 from the low bits).
    Unpack {
        ds: Vec<Option<Slot>>,
        a: Src,
        each: u8,
    },
    SReg {
        d: Slot,
        r: SReg,
    },
    IBin {
        op: IBin,
        t: IntTy,
        d: Slot,
        a: Src,
        b: Src,
    },
    IUn {
        op: IUn,
        t: IntTy,
        d: Slot,
        a: Src,
    },
    ITern {
        op: ITern,
        t: IntTy,
        d: Slot,
        a: Src,
        b: Src,
        c: Src,
    },
    Bfi {
        t: IntTy,
        d: Slot,
        a: Src,
        b: Src,
        c: Src,
        e: Src,
    },
    Lop3 {
        d: Slot,
        a: Src,
        b: Src,
        c: Src,
        lut: u8,
    },
    /// `prmt.b32[.mode]`: mode 0 default, 1 f4e, 2 b4e, 3 rc8, 4 ecl, 5 ecr, 6 rc16.
    Prmt {
        d: Slot,
        a: Src,
        b: Src,
        c: Src,
        mode: u8,
    },
    /// Carry chains: `add.cc`, `addc[.cc]`, `sub.cc`, `subc[.cc]`, `mad[c].{lo,hi}[.cc]`; `cc` holds CC.CF.
    Carry {
        op: CarryOp,
        cin: bool,
        cout: bool,
        t: IntTy,
        d: Slot,
        a: Src,
        b: Src,
        c: Src,
        cc: Slot,
    },
    /// `slct.dtype.{s32,f32} d, a, b, c`: c >= 0 ? a : b.
    Slct {
        d: Slot,
        a: Src,
        b: Src,
        c: Src,
        float: bool,
        ftz: bool,
    },
    /// `dp4a.atype.btype` (four: true) and `dp2a.{lo,hi}.atype.btype`.
    Dp {
        d: Slot,
        a: Src,
        b: Src,
        c: Src,
        four: bool,
        hi: bool,
        a_signed: bool,
        b_signed: bool,
    },
    Shf {
        d: Slot,
        a: Src,
        b: Src,
        c: Src,
        left: bool,
        wrap: bool,
    },
    FBin {
        op: FBin,
        t: FTy,
        m: FMods,
        d: Slot,
        a: Src,
        b: Src,
    },
    FUn {
        op: FUn,
        t: FTy,
        m: FMods,
        d: Slot,
        a: Src,
    },
    Fma {
        t: FTy,
        m: FMods,
        d: Slot,
        a: Src,
        b: Src,
        c: Src,
    },
    Testp {
        t: FTy,
        kind: u8,
        d: Slot,
        a: Src,
    },
    Setp {
        cmp: Cmp,
        t: Ty,
        ftz: bool,
        d: Slot,
        d2: Option<Slot>,
        a: Src,
        b: Src,
        comb: Option<(BoolOp, Src, bool)>,
    },
    /// `set.cmp.dtype.stype`: d = all ones (or 1.0f) when true.
    Set {
        cmp: Cmp,
        t: Ty,
        float_out: bool,
        d: Slot,
        a: Src,
        b: Src,
    },
    Selp {
        d: Slot,
        a: Src,
        b: Src,
        p: Src,
    },
    Cvt {
        dt: Ty,
        st: Ty,
        m: FMods,
        d: Slot,
        a: Src,
    },
    /// `cvt.rn[.relu].{f16x2,bf16x2}.f32 d, hi, lo`.
    CvtPack {
        dt: FTy,
        m: FMods,
        d: Slot,
        hi: Src,
        lo: Src,
    },
    /// `isspacep.space p, a`: whether generic address a lies in the space's window.
    Isspacep {
        space: Space,
        d: Slot,
        a: Src,
    },
    /// generic <-> state-space address.
    Cvta {
        to_space: bool,
        space: Space,
        d: Slot,
        a: Src,
    },
    /// `strong`: `.volatile`, `.relaxed`, `.acquire` (`.release` for `st`): never a data race with
    /// atomics or other strong accesses (the global race check treats it as atomic).
    Ld {
        space: Space,
        size: u8,
        signed: bool,
        ds: Vec<Slot>,
        addr: Addr,
        strong: bool,
    },
    St {
        space: Space,
        size: u8,
        srcs: Vec<Src>,
        addr: Addr,
        strong: bool,
    },
    Atom {
        space: Space,
        op: AtomOp,
        t: Ty,
        d: Option<Slot>,
        addr: Addr,
        b: Src,
        c: Option<Src>,
    },
    Bra {
        target: u32,
    },
    Call {
        func: u32,
        args: Vec<(u32, u32)>,
        ret: Vec<(u32, u32)>,
    },
    /// A CUDA runtime device function the emulator provides; `args`/`ret` are call-site frame offsets.
    Builtin {
        kind: Builtin,
        args: Vec<u32>,
        ret: Option<u32>,
    },
    Ret,
    Exit,
    Trap,
    Bar {
        kind: BarKind,
        id: Src,
        count: Option<Src>,
        /// `bar.red`: destination, predicate and whether it is negated.
        red: Option<(Slot, Src, bool)>,
    },
    Membar,
    Shfl {
        mode: ShflMode,
        d: Slot,
        p: Option<Slot>,
        a: Src,
        b: Src,
        c: Src,
        mask: Src,
    },
    Vote {
        mode: VoteMode,
        d: Slot,
        a: Src,
        neg: bool,
        mask: Src,
    },
    Redux {
        op: ReduxOp,
        signed: bool,
        d: Slot,
        a: Src,
        mask: Src,
    },
    Match {
        all: bool,
        bits: u8,
        d: Slot,
        p: Option<Slot>,
        a: Src,
        mask: Src,
    },
    WarpSync {
        mask: Src,
    },
    Activemask {
        d: Slot,
    },
    /// `mma.sync.aligned.m16n8kK.row.col.dtype.atype.btype.ctype`.
    Mma {
        k: u8,
        ab: MmaTy,
        cd: MmaTy,
        ct: MmaTy,
        d: Vec<Slot>,
        a: Vec<Src>,
        b: Vec<Src>,
        c: Vec<Src>,
    },
    /// `ldmatrix.sync.aligned.m8n8.xN[.trans].shared.b16`.
    Ldmatrix {
        n: u8,
        trans: bool,
        ds: Vec<Slot>,
        addr: Addr,
        space: Space,
    },
    /// `stmatrix.sync.aligned.m8n8.xN[.trans].shared.b16`.
    Stmatrix {
        n: u8,
        trans: bool,
        srcs: Vec<Src>,
        addr: Addr,
        space: Space,
    },
    /// `cp.async.{ca,cg}.shared.global [dst], [src], cp_size[, src_size][, ignore_src]`.
    CpAsync {
        size: u8,
        dst: Addr,
        src: Addr,
        src_size: Option<Src>,
        ignore: Option<(Src, bool)>,
    },
    CpAsyncCommit,
    CpAsyncWait {
        n: u32,
    },
    /// `wmma.load` / `wmma.store` / `wmma.mma` (m16n16k16): a warp collective (`exec/wmma.rs`).
    Wmma(Box<WmmaOp>),
    /// `mbarrier.*` and `cp.async.mbarrier.arrive` (`exec/mbarrier.rs`).
    Mbar(Box<MbarOp>),
    Nop,
}

/// One instruction: operation, guard predicate, PTX line, metrics class.
#[derive(Clone, Debug)]
pub struct Inst {
    pub op: Op,
    pub guard: Option<(Slot, bool)>,
    pub line: u32,
    pub class: Class,
}

/// Per-kernel facts the launcher needs.
#[derive(Clone, Debug)]
pub struct KernelInfo {
    pub name: String,
    pub entry: u32,
    /// (offset, size, align) of each parameter in the param buffer.
    pub params: Vec<(u32, u32, u32)>,
    pub param_bytes: u32,
    pub line: u32,
    /// Static shared bytes this kernel can address (module-level and its own `.shared` variables).
    pub static_shared: u32,
    /// `.maxntid` / `.reqntid` of the kernel (missing dimensions are 1).
    pub maxntid: Option<[u32; 3]>,
    pub reqntid: Option<[u32; 3]>,
    /// The first unsupported instruction this kernel (or a device function it calls) contains, as
    /// `(PTX line, instruction)`: the module still loads, launching this kernel is the
    /// `EmuError::Unsupported` error.
    pub unsupported: Option<(u32, String)>,
    /// The kernel (or a device function it calls) has global/generic atomics or strong loads/stores,
    /// so its blocks may communicate: the launch runs them in order on one thread (deterministic).
    pub cross_block: bool,
}

/// A device function: where it starts, where its params and return values live in the per-thread frame.
#[derive(Clone, Debug)]
pub struct FuncInfo {
    pub name: String,
    pub entry: u32,
    pub params: Vec<(u32, u32)>,
    pub rets: Vec<(u32, u32)>,
}

/// A lowered module: one flat code array for all functions.
#[derive(Clone, Debug)]
pub struct Program {
    pub code: Vec<Inst>,
    pub kernels: Vec<KernelInfo>,
    pub funcs: Vec<FuncInfo>,
    pub nslots: u32,
    /// Per-thread local bytes (local depots and device-function param frames).
    pub local_bytes: u32,
    /// Static shared bytes; dynamic shared memory starts at `dyn_shared_base`.
    pub static_shared: u32,
    pub dyn_shared_base: u32,
}

/// Start of the generic-address window of shared memory.
pub const SHARED_WINDOW: u64 = 0x0000_7f00_0000_0000;
/// Start of the generic-address window of local memory.
pub const LOCAL_WINDOW: u64 = 0x0000_7e00_0000_0000;
/// Start of the generic-address window of kernel parameters.
pub const PARAM_WINDOW: u64 = 0x0000_7d00_0000_0000;
/// Size of each window.
pub const WINDOW_SIZE: u64 = 0x0000_0001_0000_0000;
