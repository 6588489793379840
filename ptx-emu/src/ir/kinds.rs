//! The small operation kinds the IR's opcodes are built from (one enum per family), and the metrics
//! instruction classes.

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum IBin {
    Add,
    Sub,
    AddSat,
    SubSat,
    MulLo,
    MulHi,
    MulWide,
    Mul24Lo,
    Mul24Hi,
    Div,
    Rem,
    Min,
    Max,
    And,
    Or,
    Xor,
    Shl,
    Shr,
    /// `bmsk`
    Bmsk,
    /// add.cc / addc: not supported yet; kept out of the IR on purpose.
    Copysign,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum IUn {
    Not,
    Cnot,
    Neg,
    Abs,
    Popc,
    Clz,
    Brev,
    Bfind,
    BfindShift,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum ITern {
    MadLo,
    MadHi,
    MadWide,
    Mad24Lo,
    Bfe,
    Sad,
    /// `dp4a`/`dp2a` are not emitted by our kernels: not here.
    MadHiSat,
}

/// Device-runtime functions provided by the emulator.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Builtin {
    /// `vprintf(fmt, args)`: device printf.
    Printf,
    /// `__assertfail(message, file, line, function, char_size)`: a failed `assert()`.
    AssertFail,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum CarryOp {
    Add,
    Sub,
    MadLo,
    MadHi,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum FBin {
    Add,
    Sub,
    Mul,
    Div,
    Min,
    Max,
    Copysign,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum FUn {
    Neg,
    Abs,
    Sqrt,
    Rsqrt,
    Rcp,
    Ex2,
    Lg2,
    Sin,
    Cos,
    Tanh,
    /// `testp`-style classification is separate; this is `cvt.rni`-free `frc`-free set.
    Mov,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Cmp {
    Eq,
    Ne,
    Lt,
    Le,
    Gt,
    Ge,
    Lo,
    Ls,
    Hi,
    Hs,
    Equ,
    Neu,
    Ltu,
    Leu,
    Gtu,
    Geu,
    Num,
    Nan,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum BoolOp {
    And,
    Or,
    Xor,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum AtomOp {
    Add,
    Min,
    Max,
    Inc,
    Dec,
    And,
    Or,
    Xor,
    Exch,
    Cas,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum ShflMode {
    Up,
    Down,
    Bfly,
    Idx,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum VoteMode {
    All,
    Any,
    Uni,
    Ballot,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum ReduxOp {
    Add,
    Min,
    Max,
    And,
    Or,
    Xor,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum SReg {
    Tid(u8),
    Ntid(u8),
    Ctaid(u8),
    Nctaid(u8),
    Laneid,
    Warpid,
    Nwarpid,
    Clock,
    Clock64,
    LanemaskEq,
    LanemaskLt,
    LanemaskLe,
    LanemaskGt,
    LanemaskGe,
    Smid,
    Nsmid,
    Gridid,
    GlobalTimer,
    DynSmemSize,
    TotalSmemSize,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum BarKind {
    Sync,
    Arrive,
    /// `bar.red`: waits as `bar.sync`, then gives every thread the reduction of the arrived threads'
    /// predicates.
    Red(BarRed),
}

/// The reduction of `bar.red`.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum BarRed {
    /// `.popc.u32`: how many predicates were true.
    Popc,
    /// `.and.pred`: all were true.
    And,
    /// `.or.pred`: any was true.
    Or,
}

/// Element type of an `mma.sync` operand.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum MmaTy {
    F16,
    BF16,
    F32,
    /// TF32 (f32 bits; the low 13 mantissa bits are ignored).
    TF32,
}

/// Instruction classes for the metrics.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum Class {
    Int,
    Fp32,
    Fp64,
    Half,
    Convert,
    Special,
    Move,
    Global,
    Shared,
    Local,
    ParamConst,
    Atomic,
    Control,
    Barrier,
    Warp,
    Tensor,
    Async,
    Other,
}

pub const NUM_CLASSES: usize = 18;

impl Class {
    pub const ALL: [Class; NUM_CLASSES] = [
        Class::Int,
        Class::Fp32,
        Class::Fp64,
        Class::Half,
        Class::Convert,
        Class::Special,
        Class::Move,
        Class::Global,
        Class::Shared,
        Class::Local,
        Class::ParamConst,
        Class::Atomic,
        Class::Control,
        Class::Barrier,
        Class::Warp,
        Class::Tensor,
        Class::Async,
        Class::Other,
    ];
    pub fn name(self) -> &'static str {
        match self {
            Class::Int => "int",
            Class::Fp32 => "fp32",
            Class::Fp64 => "fp64",
            Class::Half => "half",
            Class::Convert => "convert",
            Class::Special => "special_function",
            Class::Move => "move",
            Class::Global => "global_memory",
            Class::Shared => "shared_memory",
            Class::Local => "local_memory",
            Class::ParamConst => "param_const",
            Class::Atomic => "atomic",
            Class::Control => "control",
            Class::Barrier => "barrier",
            Class::Warp => "warp_collective",
            Class::Tensor => "tensor_core",
            Class::Async => "async_copy",
            Class::Other => "other",
        }
    }
}
