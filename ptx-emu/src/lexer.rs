//! PTX text -> tokens. Identifiers keep their dots (`ld.global.v4.f32`, `%tid.x`), directives keep their
//! leading dot (`.reg`), float immediates keep their bit patterns (`0f3F800000`).

use crate::error::{parse_err, EmuError};

#[derive(Clone, Debug, PartialEq)]
pub enum Tok {
    /// An identifier, opcode or register name (may contain dots, `%`, `$`).
    Ident(String),
    /// A directive such as `.reg`, `.align`, `.b32`.
    Dir(String),
    /// An integer literal (two's complement bits for negatives handled by the parser).
    Int(u64),
    /// `0fXXXXXXXX`: f32 bits.
    F32(u32),
    /// `0dXXXXXXXXXXXXXXXX`: f64 bits.
    F64(u64),
    /// A decimal float literal such as `1.5`.
    Float(f64),
    Str(String),
    Punct(char),
}

#[derive(Clone, Debug)]
pub struct Token {
    pub tok: Tok,
    pub line: u32,
}

fn ident_start(c: u8) -> bool {
    c.is_ascii_alphabetic() || c == b'_' || c == b'$' || c == b'%'
}

fn ident_char(c: u8) -> bool {
    c.is_ascii_alphanumeric() || c == b'_' || c == b'$' || c == b'.'
}

pub fn lex(src: &str) -> Result<Vec<Token>, EmuError> {
    let b = src.as_bytes();
    let mut i = 0;
    let mut line = 1u32;
    let mut out = Vec::with_capacity(src.len() / 4);
    while i < b.len() {
        let c = b[i];
        if c == b'\n' {
            line += 1;
            i += 1;
            continue;
        }
        if c.is_ascii_whitespace() {
            i += 1;
            continue;
        }
        if c == b'/' && i + 1 < b.len() && b[i + 1] == b'/' {
            while i < b.len() && b[i] != b'\n' {
                i += 1;
            }
            continue;
        }
        if c == b'/' && i + 1 < b.len() && b[i + 1] == b'*' {
            i += 2;
            while i + 1 < b.len() && !(b[i] == b'*' && b[i + 1] == b'/') {
                if b[i] == b'\n' {
                    line += 1;
                }
                i += 1;
            }
            i += 2;
            continue;
        }
        let start = i;
        if c == b'.' && i + 1 < b.len() && (b[i + 1].is_ascii_alphabetic() || b[i + 1] == b'_') {
            i += 1;
            while i < b.len() && (b[i].is_ascii_alphanumeric() || b[i] == b'_') {
                i += 1;
            }
            out.push(Token {
                tok: Tok::Dir(src[start..i].to_string()),
                line,
            });
            continue;
        }
        if ident_start(c) {
            i += 1;
            while i < b.len() && ident_char(b[i]) {
                i += 1;
                // sub-qualifiers inside an opcode: `.shared::cta`, `.L2::evict_last`
                if b.get(i..i + 2) == Some(b"::") && b.get(i + 2).is_some_and(|&n| ident_char(n)) {
                    i += 2;
                }
            }
            out.push(Token {
                tok: Tok::Ident(src[start..i].to_string()),
                line,
            });
            continue;
        }
        if c.is_ascii_digit() {
            // 0f / 0d float bit patterns
            if c == b'0' && i + 1 < b.len() && matches!(b[i + 1], b'f' | b'F' | b'd' | b'D') {
                let is_f = matches!(b[i + 1], b'f' | b'F');
                let n = if is_f { 8 } else { 16 };
                let hex = src.get(i + 2..i + 2 + n).unwrap_or("");
                if hex.len() == n && hex.bytes().all(|h| h.is_ascii_hexdigit()) {
                    let v = u64::from_str_radix(hex, 16).map_err(|e| EmuError::Parse {
                        line,
                        msg: e.to_string(),
                    })?;
                    out.push(Token {
                        tok: if is_f { Tok::F32(v as u32) } else { Tok::F64(v) },
                        line,
                    });
                    i += 2 + n;
                    continue;
                }
                return parse_err(
                    line,
                    format!("bad float literal near `{}`", &src[i..(i + 12).min(src.len())]),
                );
            }
            if c == b'0' && i + 1 < b.len() && matches!(b[i + 1], b'x' | b'X') {
                i += 2;
                let s = i;
                while i < b.len() && b[i].is_ascii_hexdigit() {
                    i += 1;
                }
                let v = u64::from_str_radix(&src[s..i], 16).map_err(|e| EmuError::Parse {
                    line,
                    msg: e.to_string(),
                })?;
                if i < b.len() && (b[i] == b'U' || b[i] == b'u') {
                    i += 1;
                }
                out.push(Token { tok: Tok::Int(v), line });
                continue;
            }
            while i < b.len() && b[i].is_ascii_digit() {
                i += 1;
            }
            if i < b.len() && b[i] == b'.' && i + 1 < b.len() && b[i + 1].is_ascii_digit() {
                i += 1;
                while i < b.len() && (b[i].is_ascii_digit() || matches!(b[i], b'e' | b'E' | b'-' | b'+')) {
                    i += 1;
                }
                let v: f64 = src[start..i].parse().map_err(|_| EmuError::Parse {
                    line,
                    msg: "bad float".into(),
                })?;
                out.push(Token {
                    tok: Tok::Float(v),
                    line,
                });
                continue;
            }
            let v: u64 = src[start..i].parse().map_err(|_| EmuError::Parse {
                line,
                msg: format!("bad integer `{}`", &src[start..i]),
            })?;
            if i < b.len() && (b[i] == b'U' || b[i] == b'u') {
                i += 1;
            }
            out.push(Token { tok: Tok::Int(v), line });
            continue;
        }
        if c == b'"' {
            i += 1;
            let s = i;
            while i < b.len() && b[i] != b'"' {
                i += 1;
            }
            out.push(Token {
                tok: Tok::Str(src[s..i].to_string()),
                line,
            });
            i += 1;
            continue;
        }
        if b",;:{}[]()+-|!@<>=".contains(&c) {
            out.push(Token {
                tok: Tok::Punct(c as char),
                line,
            });
            i += 1;
            continue;
        }
        return parse_err(line, format!("unexpected character `{}`", c as char));
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn lexes_instruction() {
        let t = lex("@!%p1 ld.global.v4.f32 {%f1, %f2}, [%rd1+-4]; // x\n mov.f32 %f1, 0f3F800000;").unwrap();
        let toks: Vec<Tok> = t.into_iter().map(|t| t.tok).collect();
        assert_eq!(toks[0], Tok::Punct('@'));
        assert_eq!(toks[1], Tok::Punct('!'));
        assert_eq!(toks[2], Tok::Ident("%p1".into()));
        assert_eq!(toks[3], Tok::Ident("ld.global.v4.f32".into()));
        assert!(toks.contains(&Tok::F32(0x3F80_0000)));
        assert!(toks.contains(&Tok::Punct('-')));
    }
}
