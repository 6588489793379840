//! CUDA device-runtime functions the emulator provides: `vprintf` (device printf) and `__assertfail`
//! (a failed `assert()`, reported like a trap with its message, file and line).

use super::mem::{locate, read_bytes};
use super::{Env, Warp, PRINTF_BUFFER};
use crate::error::CheckKind;
use crate::ir::{Builtin, Space};

/// Reads a little-endian value of `len` (at most 8) bytes from the lane's call-site frame; bytes beyond
/// the frame read as zero.
fn frame_u64(w: &Warp, env: &Env, l: usize, off: u32, len: usize) -> u64 {
    let lb = env.prog.local_bytes as usize;
    let n = len.min(8).min(lb.saturating_sub(off as usize));
    let b = l * lb + off as usize;
    let mut v = [0u8; 8];
    if let Some(src) = w.local.get(b..b + n) {
        v[..n].copy_from_slice(src);
    }
    u64::from_le_bytes(v)
}

/// Reads `n` bytes at a generic address (global or local), or None if they are not mapped.
fn bytes_at(w: &Warp, env: &mut Env, l: usize, a: u64, n: usize, line: u32) -> Option<Vec<u8>> {
    let loc = locate(w, env, l, Space::Generic, a, n as u64, false, line)?;
    let mut out = vec![0u8; n];
    read_bytes(w, env, l, &loc, &mut out, line, a);
    Some(out)
}

/// A NUL-terminated string at a generic address (at most 4 KiB).
fn c_string(w: &Warp, env: &mut Env, l: usize, a: u64, line: u32) -> String {
    let mut out = vec![];
    for i in 0..4096u64 {
        match bytes_at(w, env, l, a.wrapping_add(i), 1, line) {
            Some(b) if b[0] != 0 => out.push(b[0]),
            _ => break,
        }
    }
    String::from_utf8_lossy(&out).into_owned()
}

pub(crate) fn call(w: &mut Warp, env: &mut Env, kind: Builtin, args: &[u32], ret: Option<u32>, active: u32, line: u32) {
    let mut m = active;
    while m != 0 {
        let l = m.trailing_zeros() as usize;
        m &= m - 1;
        match kind {
            Builtin::Printf => {
                let fmt_ptr = frame_u64(w, env, l, args[0], 8);
                let arg_ptr = frame_u64(w, env, l, args[1], 8);
                let fmt = c_string(w, env, l, fmt_ptr, line);
                let text = format(w, env, l, &fmt, arg_ptr, line);
                let n = text.len() as u32;
                let lin = ((env.ctaid[2] as u64 * env.grid[1] as u64) + env.ctaid[1] as u64) * env.grid[0] as u64
                    + env.ctaid[0] as u64;
                // Output beyond CUDA's default printf buffer is dropped, as on a GPU (once noted).
                if env.printf_bytes + text.len() <= PRINTF_BUFFER {
                    env.printf_bytes += text.len();
                    env.printf.push((lin, text));
                } else if env.printf_bytes <= PRINTF_BUFFER {
                    env.printf_bytes = PRINTF_BUFFER + 1;
                    env.printf.push((
                        lin,
                        format!("[ptx-emu: printf buffer of {PRINTF_BUFFER} bytes full, further output dropped]\n"),
                    ));
                }
                if let Some(r) = ret {
                    let lb = env.prog.local_bytes as usize;
                    let b = l * lb + r as usize;
                    if (r as usize).saturating_add(4) <= lb {
                        if let Some(dst) = w.local.get_mut(b..b + 4) {
                            dst.copy_from_slice(&n.to_le_bytes());
                        }
                    }
                }
            }
            Builtin::AssertFail => {
                let msg = c_string(w, env, l, frame_u64(w, env, l, args[0], 8), line);
                let file = c_string(w, env, l, frame_u64(w, env, l, args[1], 8), line);
                let src_line = frame_u64(w, env, l, args[2], 4) as u32;
                let func = c_string(w, env, l, frame_u64(w, env, l, args[3], 8), line);
                env.report(
                    CheckKind::Trap,
                    w.id,
                    l,
                    line,
                    None,
                    format!("assertion `{msg}` failed at {file}:{src_line} in {func}"),
                );
                env.fatal = true;
                return;
            }
        }
    }
}

/// Largest printf field width and precision honoured (a wider one is clamped: `%999999999d` must not
/// build a gigabyte string).
const MAX_FIELD: usize = 512;

/// C printf formatting of the vprintf argument buffer (each argument at its natural alignment; float
/// arguments arrive as double).
fn format(w: &Warp, env: &mut Env, l: usize, fmt: &str, args: u64, line: u32) -> String {
    let mut out = String::new();
    let mut off = 0u64;
    let mut next = |size: u64, env: &mut Env| -> u64 {
        off = off.div_ceil(size) * size;
        let v = bytes_at(w, env, l, args.wrapping_add(off), size as usize, line).unwrap_or_default();
        off += size;
        let mut b = [0u8; 8];
        b[..v.len()].copy_from_slice(&v);
        u64::from_le_bytes(b)
    };
    let c: Vec<char> = fmt.chars().collect();
    let mut i = 0;
    while i < c.len() {
        if c[i] != '%' {
            out.push(c[i]);
            i += 1;
            continue;
        }
        i += 1;
        if i < c.len() && c[i] == '%' {
            out.push('%');
            i += 1;
            continue;
        }
        let (mut left, mut zero, mut plus, mut space, mut alt) = (false, false, false, false, false);
        while i < c.len() && "-0+ #".contains(c[i]) {
            match c[i] {
                '-' => left = true,
                '0' => zero = true,
                '+' => plus = true,
                ' ' => space = true,
                _ => alt = true,
            }
            i += 1;
        }
        let mut width = 0usize;
        while i < c.len() && c[i].is_ascii_digit() {
            width = (width * 10 + c[i].to_digit(10).unwrap_or(0) as usize).min(MAX_FIELD);
            i += 1;
        }
        let mut prec: Option<usize> = None;
        if i < c.len() && c[i] == '.' {
            i += 1;
            let mut p = 0;
            while i < c.len() && c[i].is_ascii_digit() {
                p = (p * 10 + c[i].to_digit(10).unwrap_or(0) as usize).min(MAX_FIELD);
                i += 1;
            }
            prec = Some(p);
        }
        let mut long = 0;
        while i < c.len() && "hlLqjzt".contains(c[i]) {
            if c[i] == 'l' || c[i] == 'L' || c[i] == 'q' || c[i] == 'j' || c[i] == 'z' || c[i] == 't' {
                long += 1;
            }
            i += 1;
        }
        let Some(&conv) = c.get(i) else { break };
        i += 1;
        let isize = if long > 0 { 8 } else { 4 };
        let body = match conv {
            'd' | 'i' => {
                let v = next(isize, env);
                let v = if isize == 4 { v as u32 as i32 as i64 } else { v as i64 };
                let s = v.unsigned_abs().to_string();
                sign(v < 0, plus, space) + &s
            }
            'u' => next(isize, env).to_string(),
            'x' | 'X' | 'o' => {
                let v = next(isize, env);
                let v = if isize == 4 { v & 0xffff_ffff } else { v };
                let s = match conv {
                    'x' => format!("{v:x}"),
                    'X' => format!("{v:X}"),
                    _ => format!("{v:o}"),
                };
                if alt && v != 0 {
                    (if conv == 'o' {
                        "0"
                    } else if conv == 'x' {
                        "0x"
                    } else {
                        "0X"
                    })
                    .to_string()
                        + &s
                } else {
                    s
                }
            }
            'c' => char::from_u32(next(4, env) as u32 & 0xff)
                .map(String::from)
                .unwrap_or_default(),
            's' => {
                let p = next(8, env);
                let s = if p == 0 {
                    "(null)".to_string()
                } else {
                    c_string(w, env, l, p, line)
                };
                match prec {
                    Some(n) => s.chars().take(n).collect(),
                    None => s,
                }
            }
            'p' => format!("0x{:x}", next(8, env)),
            'f' | 'F' | 'e' | 'E' | 'g' | 'G' | 'a' | 'A' => {
                let v = f64::from_bits(next(8, env));
                let p = prec.unwrap_or(6);
                let s = if v.is_nan() {
                    "nan".to_string()
                } else if v.is_infinite() {
                    "inf".to_string()
                } else {
                    match conv.to_ascii_lowercase() {
                        'f' => format!("{:.*}", p, v.abs()),
                        'e' => exp_form(v.abs(), p),
                        'a' => format!("{:e}", v.abs()),
                        _ => g_form(v.abs(), p, alt),
                    }
                };
                let s = if conv.is_ascii_uppercase() { s.to_uppercase() } else { s };
                sign(v.is_sign_negative() && !v.is_nan(), plus, space) + &s
            }
            other => format!("%{other}"),
        };
        // width and padding
        let len = body.chars().count();
        if len >= width {
            out.push_str(&body);
        } else if left {
            out.push_str(&body);
            out.push_str(&" ".repeat(width - len));
        } else if zero && !matches!(conv, 's' | 'c') {
            let (sgn, digits) = if body.starts_with(['-', '+', ' ']) {
                body.split_at(1)
            } else {
                ("", body.as_str())
            };
            out.push_str(sgn);
            out.push_str(&"0".repeat(width - len));
            out.push_str(digits);
        } else {
            out.push_str(&" ".repeat(width - len));
            out.push_str(&body);
        }
    }
    out
}

fn sign(neg: bool, plus: bool, space: bool) -> String {
    if neg {
        "-".into()
    } else if plus {
        "+".into()
    } else if space {
        " ".into()
    } else {
        String::new()
    }
}

/// `%e`: d.ddde+XX
fn exp_form(v: f64, p: usize) -> String {
    let s = format!("{:.*e}", p, v);
    let (m, e) = s.split_once('e').unwrap_or((&s, "0"));
    let e: i32 = e.parse().unwrap_or(0);
    format!("{m}e{}{:02}", if e < 0 { '-' } else { '+' }, e.abs())
}

/// `%g`: shortest of %e / %f with P significant digits, trailing zeros removed.
fn g_form(v: f64, p: usize, alt: bool) -> String {
    let p = p.max(1);
    if v == 0.0 {
        return "0".into();
    }
    let x = v.log10().floor() as i32;
    let s = if x < -4 || x >= p as i32 {
        exp_form(v, p - 1)
    } else {
        format!("{:.*}", (p as i32 - 1 - x).max(0) as usize, v)
    };
    if alt {
        return s;
    }
    let (m, e) = match s.find('e') {
        Some(k) => (s[..k].to_string(), s[k..].to_string()),
        None => (s.clone(), String::new()),
    };
    let m = if m.contains('.') {
        m.trim_end_matches('0').trim_end_matches('.').to_string()
    } else {
        m
    };
    m + &e
}
