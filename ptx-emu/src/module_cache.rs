//! Parsed (and, without module variables, lowered) modules by text, for the whole process:
//! `Device::load_module` parses and lowers a module text once, whatever device loads it.

use std::collections::HashMap;
use std::hash::{Hash, Hasher};
use std::sync::{Arc, Mutex, OnceLock};

use crate::error::EmuError;
use crate::ir::Program;
use crate::{ast, lower, parser};

/// Distinct module texts kept, and their total size (a process loading more starts over: a fuzzer
/// loading thousands of mutants of a large module keeps at most this much).
const MAX_MODULES: usize = 32;
const MAX_TEXT_BYTES: usize = 32 << 20;

pub(crate) struct Cached {
    text: Arc<str>,
    pub ast: ast::Module,
    /// The lowered program when the module has no `.global`/`.const` variables (then it does
    /// not depend on the device).
    pub prog: Option<Arc<Program>>,
}

type Cache = Mutex<HashMap<u64, Vec<Arc<Cached>>>>;

fn cache() -> &'static Cache {
    static CACHE: OnceLock<Cache> = OnceLock::new();
    CACHE.get_or_init(Default::default)
}

fn key(ptx: &str) -> u64 {
    let mut h = std::collections::hash_map::DefaultHasher::new();
    ptx.hash(&mut h);
    h.finish()
}

/// The parsed module for `ptx`, from the cache or parsed (and lowered) now. Errors are not cached.
pub(crate) fn get(ptx: &str) -> Result<Arc<Cached>, EmuError> {
    let k = key(ptx);
    {
        let c = cache().lock().unwrap_or_else(|e| e.into_inner());
        if let Some(hit) = c.get(&k).and_then(|v| v.iter().find(|m| &*m.text == ptx)) {
            return Ok(hit.clone());
        }
    }
    let ast = parser::parse(ptx)?;
    let prog = if ast
        .globals
        .iter()
        .any(|g| matches!(g.space.as_str(), ".global" | ".const"))
    {
        None
    } else {
        Some(Arc::new(lower::lower(&ast, &HashMap::new())?))
    };
    let entry = Arc::new(Cached {
        text: ptx.into(),
        ast,
        prog,
    });
    let mut c = cache().lock().unwrap_or_else(|e| e.into_inner());
    let (n, bytes) = c.values().flatten().fold((0, 0), |(n, b), m| (n + 1, b + m.text.len()));
    if n >= MAX_MODULES || bytes + ptx.len() > MAX_TEXT_BYTES {
        c.clear();
    }
    c.entry(k).or_default().push(entry.clone());
    Ok(entry)
}

/// Is this module text in the cache (parsed, and lowered when it has no module variables)?
pub fn contains(ptx: &str) -> bool {
    let c = cache().lock().unwrap_or_else(|e| e.into_inner());
    c.get(&key(ptx)).is_some_and(|v| v.iter().any(|m| &*m.text == ptx))
}
