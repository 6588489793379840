//! Which modifiers each opcode accepts. A modifier the emulator does not know could change the
//! semantics (e.g. `min.xorsign.abs`), so anything not listed here is an `Unsupported` error instead of
//! being ignored. Types are accepted everywhere (each family checks its own); cache and eviction hints
//! (`L1::...`, `L2::...`) are accepted on memory instructions (an extra cache-policy operand is still
//! rejected by the operand count).

const ROUND: &[&str] = &["rn", "rz", "rm", "rp"];
const SPACES: &[&str] = &[
    "global",
    "shared",
    "shared::cta",
    "local",
    "param",
    "param::entry",
    "param::func",
    "const",
];
const SEM: &[&str] = &[
    "weak", "volatile", "relaxed", "acquire", "release", "acq_rel", "sc", "cta", "gpu", "sys", "mmio",
];
const CACHE: &[&str] = &["ca", "cg", "cs", "lu", "cv", "wb", "wt", "nc", "v2", "v4", "v8"];

fn allowed(base: &str) -> Option<Vec<&'static str>> {
    let mut v: Vec<&'static str> = vec![];
    let mut add = |xs: &[&'static str]| v.extend_from_slice(xs);
    match base {
        "mov" | "and" | "or" | "xor" | "not" | "cnot" | "shl" | "shr" | "popc" | "clz" | "brev" | "copysign"
        | "selp" | "rem" | "sad" | "bfe" | "bfi" | "lop3" | "activemask" | "exit" | "trap" | "brkpt" | "nanosleep"
        | "pmevent" | "dp4a" => {}
        "bmsk" => add(&["clamp"]),
        "add" | "sub" => add(&["ftz", "sat", "cc"]),
        "addc" | "subc" => add(&["cc"]),
        "mul" => add(&["lo", "hi", "wide", "ftz", "sat"]),
        "mul24" | "mad24" => add(&["lo", "hi"]),
        "mad" | "fma" => add(&["lo", "hi", "wide", "sat", "ftz", "cc", "relu"]),
        "madc" => add(&["lo", "hi", "cc"]),
        "div" => add(&["approx", "full", "ftz"]),
        "min" | "max" => add(&["ftz", "NaN", "relu"]),
        "abs" | "neg" => add(&["ftz"]),
        "sqrt" | "rcp" => add(&["approx", "ftz"]),
        "rsqrt" | "ex2" | "lg2" | "sin" | "cos" | "tanh" => add(&["approx", "ftz"]),
        "bfind" => add(&["shiftamt"]),
        "shf" => add(&["l", "r", "wrap", "clamp"]),
        "prmt" => add(&["f4e", "b4e", "rc8", "ecl", "ecr", "rc16"]),
        "dp2a" => add(&["lo", "hi"]),
        "testp" => add(&["finite", "infinite", "number", "notanumber", "normal", "subnormal"]),
        "setp" | "set" => add(&[
            "eq", "ne", "lt", "le", "gt", "ge", "lo", "ls", "hi", "hs", "equ", "neu", "ltu", "leu", "gtu", "geu",
            "num", "nan", "and", "or", "xor", "ftz",
        ]),
        "slct" => add(&["ftz"]),
        "cvt" => add(&["rna", "rni", "rzi", "rmi", "rpi", "ftz", "sat", "relu"]),
        "cvta" => add(&["to"]),
        "isspacep" => {}
        "ld" | "ldu" | "st" => {
            add(SEM);
            add(CACHE);
        }
        "atom" | "red" => {
            add(SEM);
            add(&[
                "add", "min", "max", "inc", "dec", "and", "or", "xor", "exch", "cas", "noftz",
            ]);
        }
        "bra" | "ret" | "call" => add(&["uni"]),
        "bar" | "barrier" => add(&[
            "sync", "arrive", "red", "popc", "and", "or", "pred", "u32", "aligned", "cta", "warp",
        ]),
        "membar" => add(&["cta", "gl", "sys"]),
        "fence" => add(&["sc", "acq_rel", "cta", "gpu", "sys", "proxy", "async", "alias"]),
        "prefetch" | "prefetchu" => add(&["L1", "L2", "tensormap"]),
        "discard" | "applypriority" | "griddepcontrol" => {
            add(&["L2", "launch_dependents", "wait", "evict_normal"]);
        }
        "shfl" => add(&["sync", "up", "down", "bfly", "idx"]),
        "vote" => add(&["sync", "all", "any", "uni", "ballot"]),
        "redux" => add(&["sync", "add", "min", "max", "and", "or", "xor"]),
        "match" => add(&["sync", "any", "all"]),
        "mma" => add(&["sync", "aligned", "m16n8k16", "m16n8k8", "m16n8k4", "row", "col"]),
        "ldmatrix" | "stmatrix" => add(&["sync", "aligned", "m8n8", "x1", "x2", "x4", "trans"]),
        "cp" => {
            add(&["async", "ca", "cg", "commit_group", "wait_group", "wait_all"]);
            add(super::inst_mbar::CP_ASYNC_MODS);
        }
        "wmma" => add(super::inst_wmma::MODS),
        "mbarrier" => v.extend(super::inst_mbar::modifiers()),
        _ => return None,
    }
    Some(v)
}

/// The first modifier of `opcode` the emulator does not understand, if any.
pub(crate) fn unknown_modifier<'a>(base: &str, mods: &[&'a str]) -> Option<&'a str> {
    let ok = allowed(base)?;
    let memory = matches!(
        base,
        "ld" | "ldu" | "st" | "atom" | "red" | "cp" | "prefetch" | "prefetchu" | "ldmatrix" | "stmatrix"
    );
    let rounding_ok = !matches!(
        base,
        "ld" | "ldu" | "st" | "atom" | "red" | "cp" | "ldmatrix" | "stmatrix" | "wmma" | "mbarrier"
    );
    mods.iter().copied().find(|m| {
        let known = super::inst::ty(m).is_some()
            || matches!(*m, "tf32" | "b128")
            || ok.contains(m)
            || (rounding_ok && ROUND.contains(m))
            || (memory || base == "cvta" || base == "isspacep") && SPACES.contains(m)
            || memory && (m.starts_with("L1::") || m.starts_with("L2::"))
            || (base == "fence" && m.starts_with("proxy"));
        !known
    })
}
