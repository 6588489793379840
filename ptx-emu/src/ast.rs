//! The parsed form of a PTX module, close to the text: names are still strings, opcodes still dotted.

/// An instruction operand as written.
#[derive(Clone, Debug, PartialEq)]
pub enum Operand {
    /// A register, special register, label, function or variable name.
    Name(String),
    /// An integer immediate (two's complement).
    Imm(i64),
    /// `0fXXXXXXXX`.
    F32(u32),
    /// `0dXXXXXXXXXXXXXXXX` or a decimal float.
    F64(u64),
    /// `[base+offset]`; `base` is None for an absolute address.
    Addr { base: Option<String>, offset: i64 },
    /// `{a, b, ...}`.
    Vec(Vec<Operand>),
    /// `d|p`: a destination with a predicate output.
    Pair(String, String),
    /// `!p`: a negated predicate source.
    Not(String),
    /// `( ... )`: call arguments or return values.
    List(Vec<Operand>),
}

/// `[@[!]pred] opcode operands;`
#[derive(Clone, Debug)]
pub struct Instr {
    pub guard: Option<(bool, String)>,
    pub opcode: String,
    pub operands: Vec<Operand>,
    pub line: u32,
}

/// A variable declaration in any state space (`.global`, `.shared`, `.const`, `.local`, `.param`).
#[derive(Clone, Debug)]
pub struct VarDecl {
    pub space: String,
    pub align: u32,
    /// Element type, e.g. `.b8`, `.u32`, `.f32`.
    pub ty: String,
    /// Vector width of the element (`.v2`/`.v4`), 1 when scalar.
    pub vec: u32,
    pub name: String,
    /// Number of elements: Some(n) for `name[n]` (product of dimensions) or a scalar (1); None for `name[]`.
    pub count: Option<u64>,
    /// Initializer values, one per element (bits).
    pub init: Vec<u64>,
    pub is_extern: bool,
    pub line: u32,
}

impl VarDecl {
    pub fn elem_size(&self) -> u64 {
        type_size(&self.ty).unwrap_or(1) as u64 * self.vec as u64
    }
    pub fn size(&self) -> u64 {
        self.count.unwrap_or(0) * self.elem_size()
    }
}

/// `.reg .ty names;` where a name may be `%r<N>` (N registers %r0..%r{N-1}).
#[derive(Clone, Debug)]
pub struct RegDecl {
    pub ty: String,
    pub vec: u32,
    pub names: Vec<(String, Option<u32>)>,
    pub line: u32,
}

#[derive(Clone, Debug)]
pub enum Stmt {
    Reg(RegDecl),
    Var(VarDecl),
    Label(String, u32),
    Inst(Instr),
    Open,
    Close,
}

#[derive(Clone, Debug)]
pub struct Function {
    pub name: String,
    pub is_entry: bool,
    pub params: Vec<VarDecl>,
    pub rets: Vec<VarDecl>,
    /// None for a prototype (`.extern .func f(...);`).
    pub body: Option<Vec<Stmt>>,
    pub line: u32,
    /// `.maxntid x[, y[, z]]`: the most threads per block (missing dimensions are 1).
    pub maxntid: Option<[u32; 3]>,
    /// `.reqntid x[, y[, z]]`: the exact block shape a launch must use.
    pub reqntid: Option<[u32; 3]>,
}

#[derive(Clone, Debug, Default)]
pub struct Module {
    pub version: String,
    pub target: String,
    pub globals: Vec<VarDecl>,
    pub funcs: Vec<Function>,
}

/// Size in bytes of a PTX fundamental type name (with leading dot).
pub fn type_size(ty: &str) -> Option<u32> {
    Some(match ty.trim_start_matches('.') {
        "b8" | "u8" | "s8" | "e4m3x2" | "e5m2x2" => 1,
        "b16" | "u16" | "s16" | "f16" | "bf16" => 2,
        "b32" | "u32" | "s32" | "f32" | "f16x2" | "bf16x2" | "tf32" => 4,
        "b64" | "u64" | "s64" | "f64" => 8,
        "b128" => 16,
        "pred" => 1,
        _ => return None,
    })
}
