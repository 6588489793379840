//! Tokens -> AST (`ast::Module`). Accepts the PTX that nvcc 12.x/13.x emits, inline-asm `{ }` scopes
//! included; anything else is a `Parse` error naming the line.

use crate::ast::*;
use crate::error::{parse_err, EmuError};
use crate::lexer::{lex, Tok, Token};

struct P {
    toks: Vec<Token>,
    i: usize,
}

type R<T> = Result<T, EmuError>;

impl P {
    fn peek(&self) -> Option<&Tok> {
        self.toks.get(self.i).map(|t| &t.tok)
    }
    fn peek_at(&self, k: usize) -> Option<&Tok> {
        self.toks.get(self.i + k).map(|t| &t.tok)
    }
    fn line(&self) -> u32 {
        self.toks.get(self.i).or(self.toks.last()).map(|t| t.line).unwrap_or(0)
    }
    fn next(&mut self) -> R<Tok> {
        let line = self.line();
        let t = self.toks.get(self.i).map(|t| t.tok.clone());
        self.i += 1;
        t.ok_or(EmuError::Parse {
            line,
            msg: "unexpected end of input".into(),
        })
    }
    fn is_punct(&self, c: char) -> bool {
        self.peek() == Some(&Tok::Punct(c))
    }
    fn eat_punct(&mut self, c: char) -> bool {
        if self.is_punct(c) {
            self.i += 1;
            true
        } else {
            false
        }
    }
    fn expect_punct(&mut self, c: char) -> R<()> {
        if self.eat_punct(c) {
            Ok(())
        } else {
            parse_err(self.line(), format!("expected `{c}`, found {:?}", self.peek()))
        }
    }
    fn is_dir(&self, d: &str) -> bool {
        matches!(self.peek(), Some(Tok::Dir(x)) if x == d)
    }
    fn ident(&mut self) -> R<String> {
        let line = self.line();
        match self.next()? {
            Tok::Ident(s) => Ok(s),
            t => parse_err(line, format!("expected a name, found {t:?}")),
        }
    }
    fn int(&mut self) -> R<i64> {
        let line = self.line();
        let neg = self.eat_punct('-');
        match self.next()? {
            Tok::Int(v) => Ok(if neg { (v as i64).wrapping_neg() } else { v as i64 }),
            t => parse_err(line, format!("expected an integer, found {t:?}")),
        }
    }
    /// Skips tokens to the end of the current line.
    fn skip_line(&mut self) {
        let line = self.line();
        while self.i < self.toks.len() && self.toks[self.i].line == line {
            self.i += 1;
        }
    }
}

pub fn parse(src: &str) -> R<Module> {
    let mut p = P { toks: lex(src)?, i: 0 };
    let mut m = Module::default();
    while let Some(t) = p.peek().cloned() {
        let line = p.line();
        match t {
            Tok::Dir(d) => match d.as_str() {
                ".version" => {
                    p.i += 1;
                    m.version = match p.next()? {
                        Tok::Float(v) => format!("{v}"),
                        Tok::Int(v) => v.to_string(),
                        t => return parse_err(line, format!("bad .version {t:?}")),
                    };
                }
                ".target" => {
                    p.i += 1;
                    m.target = p.ident()?;
                    while p.eat_punct(',') {
                        p.ident()?;
                    }
                }
                ".address_size" => {
                    p.i += 1;
                    let a = p.int()?;
                    if a != 64 {
                        return parse_err(line, ".address_size other than 64 is not supported");
                    }
                }
                ".file" | ".loc" | ".pragma" => p.skip_line(),
                ".visible" | ".extern" | ".weak" | ".common" => {
                    p.i += 1;
                    if p.is_dir(".entry") || p.is_dir(".func") {
                        m.funcs.push(parse_function(&mut p)?);
                    } else {
                        let mut v = parse_var(&mut p)?;
                        v.is_extern = d == ".extern";
                        p.expect_punct(';')?;
                        m.globals.push(v);
                    }
                }
                ".entry" | ".func" => m.funcs.push(parse_function(&mut p)?),
                ".global" | ".shared" | ".const" => {
                    let v = parse_var(&mut p)?;
                    p.expect_punct(';')?;
                    m.globals.push(v);
                }
                ".section" => {
                    // DWARF sections (-lineinfo / -G): not needed to execute; skip `{ ... }`.
                    p.i += 1;
                    while !p.is_punct('{') {
                        p.next()?;
                    }
                    let mut depth = 0;
                    loop {
                        match p.next()? {
                            Tok::Punct('{') => depth += 1,
                            Tok::Punct('}') => {
                                depth -= 1;
                                if depth == 0 {
                                    break;
                                }
                            }
                            _ => {}
                        }
                    }
                }
                _ => return parse_err(line, format!("unexpected directive `{d}` at module level")),
            },
            _ => return parse_err(line, format!("unexpected token {t:?} at module level")),
        }
    }
    Ok(m)
}

/// `.space [.align N] [.ptr ...] [.vN] .type name[dims] [= {init}]` (no trailing `;`).
fn parse_var(p: &mut P) -> R<VarDecl> {
    let line = p.line();
    let space = match p.next()? {
        Tok::Dir(d) => d,
        t => return parse_err(line, format!("expected a state space, found {t:?}")),
    };
    let mut v = VarDecl {
        space,
        align: 0,
        ty: String::new(),
        vec: 1,
        name: String::new(),
        count: Some(1),
        init: vec![],
        is_extern: false,
        line,
    };
    loop {
        match p.peek().cloned() {
            Some(Tok::Dir(d)) => {
                p.i += 1;
                match d.as_str() {
                    ".align" => {
                        let a = p.int()?;
                        if !(1..=1 << 30).contains(&a) || !(a as u64).is_power_of_two() {
                            return parse_err(line, format!(".align {a}: must be a power of two up to 2^30"));
                        }
                        v.align = a as u32;
                    }
                    ".v2" => v.vec = 2,
                    ".v4" => v.vec = 4,
                    ".v8" => v.vec = 8,
                    ".ptr" | ".global" | ".shared" | ".const" | ".local" | ".param" => {}
                    t if type_size(t).is_some() => v.ty = t.to_string(),
                    _ => return parse_err(line, format!("unexpected `{d}` in a declaration")),
                }
            }
            Some(Tok::Ident(_)) => break,
            t => return parse_err(line, format!("unexpected {t:?} in a declaration")),
        }
    }
    if v.ty.is_empty() {
        return parse_err(line, "declaration without a type");
    }
    v.name = p.ident()?;
    if p.is_punct('[') {
        let mut count = 1u64;
        while p.eat_punct('[') {
            if p.eat_punct(']') {
                v.count = None;
                continue;
            }
            let n = p.int()?;
            if !(0..=1 << 40).contains(&n) {
                return parse_err(line, format!("array dimension {n} out of range"));
            }
            count = count.saturating_mul(n as u64).min(1 << 40);
            p.expect_punct(']')?;
        }
        if v.count.is_some() {
            v.count = Some(count);
        }
    }
    if p.eat_punct('=') {
        let braced = p.eat_punct('{');
        loop {
            let neg = p.eat_punct('-');
            let val = match p.next()? {
                Tok::Int(x) => {
                    if neg {
                        x.wrapping_neg()
                    } else {
                        x
                    }
                }
                Tok::F32(x) => x as u64,
                Tok::F64(x) => x,
                Tok::Punct('{') => {
                    // nested braces of multi-dimensional initializers: flatten
                    continue;
                }
                t => return parse_err(line, format!("unsupported initializer {t:?}")),
            };
            v.init.push(val);
            while p.eat_punct('}') {}
            if !p.eat_punct(',') {
                break;
            }
        }
        if braced {
            while p.eat_punct('}') {}
        }
    }
    if v.align == 0 {
        v.align = v.elem_size().max(1) as u32;
    }
    Ok(v)
}

fn parse_function(p: &mut P) -> R<Function> {
    let line = p.line();
    let is_entry = p.is_dir(".entry");
    p.i += 1;
    let mut rets = vec![];
    if p.eat_punct('(') {
        while !p.eat_punct(')') {
            rets.push(parse_var(p)?);
            p.eat_punct(',');
        }
    }
    let name = p.ident()?;
    let mut params = vec![];
    if p.eat_punct('(') {
        while !p.eat_punct(')') {
            params.push(parse_var(p)?);
            p.eat_punct(',');
        }
    }
    // performance directives (.maxntid 256, 1, 1 / .reqntid / .minnctapersm / .noreturn / ...)
    let (mut maxntid, mut reqntid) = (None, None);
    while let Some(Tok::Dir(d)) = p.peek().cloned() {
        let dline = p.line();
        p.i += 1;
        let mut vals = vec![];
        while let Some(Tok::Int(v)) = p.peek().cloned() {
            vals.push(v);
            p.i += 1;
            p.eat_punct(',');
        }
        if d == ".maxntid" || d == ".reqntid" {
            if vals.is_empty() || vals.len() > 3 || vals.iter().any(|&v| v == 0 || v > u32::MAX as u64) {
                return parse_err(dline, format!("bad {d} {vals:?}"));
            }
            let mut dims = [1u32; 3];
            for (x, v) in dims.iter_mut().zip(&vals) {
                *x = *v as u32;
            }
            if d == ".maxntid" {
                maxntid = Some(dims);
            } else {
                reqntid = Some(dims);
            }
        }
    }
    if p.eat_punct(';') {
        return Ok(Function {
            name,
            is_entry,
            params,
            rets,
            body: None,
            line,
            maxntid,
            reqntid,
        });
    }
    p.expect_punct('{')?;
    let mut body = vec![];
    let mut depth = 0;
    loop {
        let sline = p.line();
        match p.peek().cloned() {
            None => return parse_err(sline, format!("unterminated body of `{name}`")),
            Some(Tok::Punct('}')) => {
                p.i += 1;
                if depth == 0 {
                    break;
                }
                depth -= 1;
                body.push(Stmt::Close);
            }
            Some(Tok::Punct('{')) => {
                p.i += 1;
                depth += 1;
                body.push(Stmt::Open);
            }
            Some(Tok::Dir(d)) => match d.as_str() {
                ".reg" => body.push(Stmt::Reg(parse_reg(p)?)),
                ".local" | ".shared" | ".param" | ".const" | ".global" => {
                    let v = parse_var(p)?;
                    p.expect_punct(';')?;
                    body.push(Stmt::Var(v));
                }
                ".pragma" | ".loc" | ".file" => {
                    p.skip_line();
                    p.eat_punct(';');
                }
                _ => return parse_err(sline, format!("unexpected directive `{d}` in a function body")),
            },
            Some(Tok::Ident(s)) if p.peek_at(1) == Some(&Tok::Punct(':')) => {
                p.i += 2;
                body.push(Stmt::Label(s, sline));
            }
            Some(_) => body.push(Stmt::Inst(parse_instr(p)?)),
        }
    }
    Ok(Function {
        name,
        is_entry,
        params,
        rets,
        body: Some(body),
        line,
        maxntid,
        reqntid,
    })
}

fn parse_reg(p: &mut P) -> R<RegDecl> {
    let line = p.line();
    p.i += 1; // .reg
    let mut ty = String::new();
    let mut vec = 1;
    while let Some(Tok::Dir(d)) = p.peek().cloned() {
        p.i += 1;
        match d.as_str() {
            ".v2" => vec = 2,
            ".v4" => vec = 4,
            t if type_size(t).is_some() => ty = t.to_string(),
            _ => return parse_err(line, format!("unexpected `{d}` in .reg")),
        }
    }
    let mut names = vec![];
    loop {
        let n = p.ident()?;
        if p.eat_punct('<') {
            let c = p.int()?;
            if !(0..=1 << 16).contains(&c) {
                return parse_err(line, format!("register count {c} out of range"));
            }
            let c = c as u32;
            p.expect_punct('>')?;
            names.push((n, Some(c)));
        } else {
            names.push((n, None));
        }
        if !p.eat_punct(',') {
            break;
        }
    }
    p.expect_punct(';')?;
    Ok(RegDecl { ty, vec, names, line })
}

fn parse_instr(p: &mut P) -> R<Instr> {
    let line = p.line();
    let mut guard = None;
    if p.eat_punct('@') {
        let neg = p.eat_punct('!');
        guard = Some((neg, p.ident()?));
    }
    let opcode = p.ident()?;
    let mut operands = vec![];
    if !p.eat_punct(';') {
        loop {
            operands.push(parse_operand(p)?);
            if p.eat_punct(';') {
                break;
            }
            if !p.eat_punct(',') {
                return parse_err(line, format!("expected `,` or `;` in `{opcode}`, found {:?}", p.peek()));
            }
        }
    }
    Ok(Instr {
        guard,
        opcode,
        operands,
        line,
    })
}

fn parse_operand(p: &mut P) -> R<Operand> {
    let line = p.line();
    match p.peek().cloned() {
        Some(Tok::Punct('[')) => {
            p.i += 1;
            let mut base = None;
            let mut offset = 0i64;
            match p.peek().cloned() {
                Some(Tok::Ident(s)) => {
                    p.i += 1;
                    base = Some(s);
                }
                _ => offset = p.int()?,
            }
            while p.eat_punct('+') {
                offset = offset.wrapping_add(p.int()?);
            }
            if p.is_punct('-') {
                offset = offset.wrapping_add(p.int()?);
            }
            p.expect_punct(']')?;
            Ok(Operand::Addr { base, offset })
        }
        Some(Tok::Punct('{')) => {
            p.i += 1;
            let mut v = vec![];
            while !p.eat_punct('}') {
                v.push(parse_operand(p)?);
                p.eat_punct(',');
            }
            Ok(Operand::Vec(v))
        }
        Some(Tok::Punct('(')) => {
            p.i += 1;
            let mut v = vec![];
            while !p.eat_punct(')') {
                v.push(parse_operand(p)?);
                p.eat_punct(',');
            }
            Ok(Operand::List(v))
        }
        Some(Tok::Punct('!')) => {
            p.i += 1;
            Ok(Operand::Not(p.ident()?))
        }
        Some(Tok::Punct('-')) | Some(Tok::Int(_)) => {
            if p.is_punct('-') {
                if let Some(Tok::F32(_) | Tok::F64(_) | Tok::Float(_)) = p.peek_at(1) {
                    p.i += 1;
                    return match p.next()? {
                        Tok::F32(b) => Ok(Operand::F32(b ^ 0x8000_0000)),
                        Tok::F64(b) => Ok(Operand::F64(b ^ (1 << 63))),
                        Tok::Float(f) => Ok(Operand::F64((-f).to_bits())),
                        _ => parse_err(line, "bad negative float"),
                    };
                }
            }
            Ok(Operand::Imm(p.int()?))
        }
        Some(Tok::F32(b)) => {
            p.i += 1;
            Ok(Operand::F32(b))
        }
        Some(Tok::F64(b)) => {
            p.i += 1;
            Ok(Operand::F64(b))
        }
        Some(Tok::Float(f)) => {
            p.i += 1;
            Ok(Operand::F64(f.to_bits()))
        }
        Some(Tok::Ident(s)) => {
            p.i += 1;
            if p.eat_punct('|') {
                let q = p.ident()?;
                return Ok(Operand::Pair(s, q));
            }
            Ok(Operand::Name(s))
        }
        t => parse_err(line, format!("unexpected operand token {t:?}")),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_entry_with_scopes() {
        let src = r#"
.version 9.2
.target sm_80
.address_size 64
.extern .shared .align 16 .b8 dyn[];
.global .align 4 .b8 tab[4] = {1, 2, 3, 4};
.visible .entry k(
    .param .align 8 .b8 k_param_0[16]
)
{
    .reg .pred %p<2>;
    .reg .b32 %r<5>;
    ld.param.u32 %r1, [k_param_0+8];
    { .reg .b32 t; mov.b32 t, 0x3f803f80U; }
    @!%p1 bra $L__BB0_2;
    shfl.sync.bfly.b32 %r2|%p1, %r1, 16, 31, -1;
$L__BB0_2:
    ret;
}
"#;
        let m = parse(src).unwrap();
        assert_eq!(m.globals.len(), 2);
        assert_eq!(m.globals[1].init, vec![1, 2, 3, 4]);
        assert_eq!(m.globals[0].count, None);
        let f = &m.funcs[0];
        assert!(f.is_entry);
        assert_eq!(f.params[0].size(), 16);
        let body = f.body.as_ref().unwrap();
        assert!(body.iter().any(|s| matches!(s, Stmt::Label(l, _) if l == "$L__BB0_2")));
        let shfl = body
            .iter()
            .find_map(|s| match s {
                Stmt::Inst(i) if i.opcode.starts_with("shfl") => Some(i.clone()),
                _ => None,
            })
            .unwrap();
        assert_eq!(shfl.operands[0], Operand::Pair("%r2".into(), "%p1".into()));
        assert_eq!(shfl.operands[4], Operand::Imm(-1));
    }

    #[test]
    fn reports_line_of_garbage() {
        let err = parse(".version 9.2\n.target sm_80\n\n.entry k() { mov.u32 %r1, #; }").unwrap_err();
        match err {
            EmuError::Parse { line, .. } => assert_eq!(line, 4),
            e => panic!("{e}"),
        }
    }
}
