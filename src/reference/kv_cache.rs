//! KV append fused with RoPE: the new tokens' q and k rotated ([`crate::reference::rope()`]), then k and v
//! written to row `slot_mapping[t]` of caches of `num_slots` rows of `(n_kv_heads, head_dim)` (a paged
//! cache's pages are runs of `page_size` rows). A negative slot writes nothing (vLLM's padding tokens),
//! nor does a slot `≥ num_slots`; the status per token says which (0 written, 1 negative, 2 out of range).

use crate::dtype::Elem;
use crate::error::Result;
use crate::reference::{check_len, rope};
use crate::shapes::{KvAppendShape, RopeConfig, RopeShape};

/// Rotates `q: (tokens, n_heads, head_dim)` and `k: (tokens, n_kv_heads, head_dim)` as
/// [`crate::reference::rope()`] does and writes the rotated k and `v` into the caches at `slot_mapping`;
/// returns `(q, k, status)`. Two tokens mapped to one slot: the later token's row wins here (the kernel
/// leaves either).
///
/// # Errors
/// As [`crate::reference::rope()`]; `ShapeMismatch` for a wrong `v`, cache or `slot_mapping` length.
#[allow(clippy::too_many_arguments)]
pub fn kv_append<T: Elem>(
    q: &[T],
    k: &[T],
    v: &[T],
    (k_cache, v_cache): (&mut [T], &mut [T]),
    slot_mapping: &[i64],
    positions: &[i32],
    shape: KvAppendShape,
    cfg: RopeConfig,
) -> Result<(Vec<T>, Vec<T>, Vec<i32>)> {
    const OP: &str = "kv_append";
    let KvAppendShape {
        tokens,
        n_heads,
        n_kv_heads,
        head_dim,
        num_slots,
    } = shape;
    check_len(OP, "v", v.len(), &[tokens, n_kv_heads, head_dim])?;
    check_len(OP, "k_cache", k_cache.len(), &[num_slots, n_kv_heads, head_dim])?;
    check_len(OP, "v_cache", v_cache.len(), &[num_slots, n_kv_heads, head_dim])?;
    check_len(OP, "slot_mapping", slot_mapping.len(), &[tokens])?;
    let rope_shape = RopeShape {
        tokens,
        n_heads,
        n_kv_heads,
        head_dim,
    };
    let (q, k) = rope(q, k, positions, rope_shape, cfg)?;
    let row = n_kv_heads * head_dim;
    let status = slot_mapping
        .iter()
        .enumerate()
        .map(|(t, &slot)| match usize::try_from(slot) {
            Err(_) => 1,
            Ok(s) if s >= num_slots => 2,
            Ok(s) => {
                k_cache[s * row..][..row].copy_from_slice(&k[t * row..][..row]);
                v_cache[s * row..][..row].copy_from_slice(&v[t * row..][..row]);
                0
            }
        })
        .collect();
    Ok((q, k, status))
}
