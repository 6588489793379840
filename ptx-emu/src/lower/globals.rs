//! Module-level `.global` / `.const` variables: their sizes and initial contents, which the device
//! allocates (lazily zero-filled) before lowering resolves their addresses.

use crate::ast;
use crate::error::{unsupported, EmuError};

/// A module-level variable that needs device memory: name, size, initial contents (the initializer's
/// bytes; the rest of the variable is zero), alignment.
pub struct GlobalVar {
    pub name: String,
    pub size: u64,
    pub init: Vec<u8>,
    pub align: u32,
}

/// Largest module `.global`/`.const` variable.
const MAX_GLOBAL_VAR: u64 = 1 << 30;

/// Module-level `.global`/`.const` variables the device must allocate before lowering.
pub fn module_globals(m: &ast::Module) -> Result<Vec<GlobalVar>, EmuError> {
    let mut out = vec![];
    for g in &m.globals {
        if g.space != ".global" && g.space != ".const" {
            continue;
        }
        let Some(_) = g.count else {
            return unsupported(g.line, format!("unsized {} variable {}", g.space, g.name));
        };
        if g.size() > MAX_GLOBAL_VAR {
            return unsupported(
                g.line,
                format!(
                    "{} variable {} of {} bytes (more than 1 GiB)",
                    g.space,
                    g.name,
                    g.size()
                ),
            );
        }
        let es = crate::ast::type_size(&g.ty).unwrap_or(1) as usize;
        // Only the initializer's bytes are materialized (it is as long as the PTX text at most).
        let n = (g.init.len() * es).min(g.size() as usize);
        let mut init = vec![0u8; n];
        for (i, v) in g.init.iter().enumerate() {
            let at = i * es;
            if at + es <= init.len() {
                init[at..at + es].copy_from_slice(&v.to_le_bytes()[..es]);
            }
        }
        out.push(GlobalVar {
            name: g.name.clone(),
            size: g.size(),
            init,
            align: g.align.max(1),
        });
    }
    Ok(out)
}
