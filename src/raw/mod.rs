//! The raw layer: kernel parameter structs (the Rust mirror of `cuda/include/params.h`), the compiled
//! modules that `build.rs` embeds, and ptxas's resource report.

pub mod module;
#[allow(
    non_camel_case_types,
    non_snake_case,
    non_upper_case_globals,
    dead_code,
    missing_docs,
    clippy::all
)]
pub mod params;

pub use module::{find_kernel_resources, module_image, KernelResources, ModuleImage, MODULE_IMAGES, PTXAS_REPORT};
pub use params::{
    AddParams, AttentionCombineParams, AttentionParams, ConvertParams, EmbeddingParams, GemmParams, KvAppendParams,
    RmsNormParams, RopeParams, SwigluParams,
};

/// A kernel parameter struct from `params.h`, passed by value as the kernel's only argument.
///
/// # Safety
/// Implementors must be `#[repr(C)]` mirrors of a `params.h` struct with no padding bytes, so that
/// every byte of the value is initialised and [`KernelParams::as_bytes`] is sound.
pub unsafe trait KernelParams: Copy + cudarc::driver::DeviceRepr + 'static {
    /// The struct's bytes exactly as the kernel receives them.
    fn as_bytes(&self) -> &[u8] {
        // SAFETY: the trait's contract guarantees a padding-free repr(C) struct, so all
        // size_of::<Self>() bytes behind `self` are initialised and live as long as `&self`.
        unsafe { std::slice::from_raw_parts((self as *const Self).cast::<u8>(), std::mem::size_of::<Self>()) }
    }
}

/// Asserts at compile time that `$ty` is exactly `$ptrs` pointers + `$i64s` 8-byte fields + `$i32s`
/// 4-byte fields (the formula of `params.h`'s static asserts), i.e. it has no padding, then implements
/// the launch traits for it.
macro_rules! kernel_params {
    ($ty:ty, ptrs: $ptrs:expr, i64s: $i64s:expr, i32s: $i32s:expr) => {
        const _: () = assert!(std::mem::size_of::<$ty>() == 8 * $ptrs + 8 * $i64s + 4 * $i32s);
        // SAFETY: a plain repr(C) struct of pointers and integers/floats; cudarc copies its bytes.
        unsafe impl cudarc::driver::DeviceRepr for $ty {}
        // SAFETY: repr(C) (bindgen) and padding-free (the size assert above).
        unsafe impl KernelParams for $ty {}
    };
}

kernel_params!(RmsNormParams, ptrs: 4, i64s: 3, i32s: 6);
kernel_params!(RopeParams, ptrs: 4, i64s: 2, i32s: 6);
kernel_params!(SwigluParams, ptrs: 3, i64s: 3, i32s: 4);
kernel_params!(AttentionParams, ptrs: 11, i64s: 15, i32s: 22);
kernel_params!(AttentionCombineParams, ptrs: 5, i64s: 5, i32s: 6);
kernel_params!(GemmParams, ptrs: 4, i64s: 6, i32s: 12);
kernel_params!(AddParams, ptrs: 3, i64s: 3, i32s: 4);
kernel_params!(ConvertParams, ptrs: 2, i64s: 2, i32s: 4);
kernel_params!(EmbeddingParams, ptrs: 4, i64s: 2, i32s: 4);
kernel_params!(KvAppendParams, ptrs: 9, i64s: 4, i32s: 8);

/// The `lk_rounding` value of a [`crate::Rounding`].
pub fn rounding_code(r: crate::Rounding) -> i32 {
    match r {
        crate::Rounding::MatchTorch => params::lk_rounding_LK_ROUNDING_MATCH_TORCH as i32,
        crate::Rounding::Once => params::lk_rounding_LK_ROUNDING_ONCE as i32,
    }
}

/// The `lk_rope_layout` value of a [`crate::RopeLayout`].
pub fn rope_layout_code(l: crate::RopeLayout) -> i32 {
    match l {
        crate::RopeLayout::Interleaved => params::lk_rope_layout_LK_ROPE_INTERLEAVED as i32,
        crate::RopeLayout::HalfSplit => params::lk_rope_layout_LK_ROPE_HALF_SPLIT as i32,
    }
}
