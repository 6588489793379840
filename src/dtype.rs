//! Element types the kernels accept, and their conversions.
//!
//! Every kernel exists in three storage types: `f32`, `f16` and `bf16`. Arithmetic inside the kernels is
//! f32 (see each op's numerics table); these conversions are the only places values round.

use half::{bf16, f16};

/// The storage type of a tensor, mirrored by `lk_dtype` in `cuda/include/params.h`.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum DType {
    /// IEEE binary32.
    F32,
    /// IEEE binary16 (`half::f16`).
    F16,
    /// bfloat16 (`half::bf16`).
    BF16,
}

impl DType {
    /// Size of one element in bytes.
    pub const fn size_bytes(self) -> usize {
        match self {
            DType::F32 => 4,
            DType::F16 | DType::BF16 => 2,
        }
    }

    /// Position in the `[f32, f16, bf16]` order every op's `KERNELS` list follows.
    pub const fn index(self) -> usize {
        match self {
            DType::F32 => 0,
            DType::F16 => 1,
            DType::BF16 => 2,
        }
    }

    /// The smallest positive subnormal value: the spacing of the values near zero (2^-149 for f32,
    /// 2^-24 for f16, 2^-133 for bf16). Rounding to this type can move a value by half of it, whatever
    /// the value's magnitude.
    pub fn subnormal_spacing(self) -> f64 {
        match self {
            DType::F32 => 2f64.powi(-149),
            DType::F16 => 2f64.powi(-24),
            DType::BF16 => 2f64.powi(-133),
        }
    }

    /// The largest finite value (`f32::MAX`, 65504, `bf16::MAX`).
    pub fn max_finite(self) -> f64 {
        match self {
            DType::F32 => f32::MAX as f64,
            DType::F16 => half::f16::MAX.to_f64(),
            DType::BF16 => half::bf16::MAX.to_f64(),
        }
    }

    /// Where rounding to this type overflows: values of magnitude at or above `max_finite + ulp/2`
    /// become infinite, so an infinity stands for `2^(emax+1)` when measuring a rounding error.
    pub fn overflow_threshold(self) -> f64 {
        match self {
            DType::F32 | DType::BF16 => 2f64.powi(128),
            DType::F16 => 65536.0,
        }
    }

    /// The suffix of the kernel entry points for this dtype (`rms_norm_bf16`).
    pub const fn kernel_suffix(self) -> &'static str {
        match self {
            DType::F32 => "f32",
            DType::F16 => "f16",
            DType::BF16 => "bf16",
        }
    }
}

impl std::fmt::Display for DType {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.kernel_suffix())
    }
}

/// A storage element: `f32`, `half::f16` or `half::bf16`.
///
/// `from_f32` rounds to nearest even, as `__float2bfloat16_rn` / `__float2half_rn` do on the device.
pub trait Elem: Copy + Default + Send + Sync + std::fmt::Debug + PartialEq + bytemuck::Pod + 'static {
    /// The dtype tag of this type.
    const DTYPE: DType;
    /// Widens exactly to f32.
    fn to_f32(self) -> f32;
    /// Rounds an f32 to this type (to nearest even; f32 itself is the identity).
    fn from_f32(v: f32) -> Self;
    /// Widens exactly to f64 (through f32).
    fn to_f64(self) -> f64 {
        self.to_f32() as f64
    }
    /// Rounds an f64 straight to this type (one rounding for f32; f64 -> f32 -> T for the half types,
    /// which can double-round, and is only used to make test inputs).
    fn from_f64(v: f64) -> Self {
        Self::from_f32(v as f32)
    }
    /// The unit roundoff of this storage type (half an ulp at 1.0).
    const EPSILON_HALF_ULP: f64;
}

impl Elem for f32 {
    const DTYPE: DType = DType::F32;
    const EPSILON_HALF_ULP: f64 = f32::EPSILON as f64 / 2.0;
    fn to_f32(self) -> f32 {
        self
    }
    fn from_f32(v: f32) -> Self {
        v
    }
}

impl Elem for f16 {
    const DTYPE: DType = DType::F16;
    const EPSILON_HALF_ULP: f64 = 0.000_976_562_5 / 2.0;
    fn to_f32(self) -> f32 {
        f16::to_f32(self)
    }
    fn from_f32(v: f32) -> Self {
        f16::from_f32(v)
    }
}

impl Elem for bf16 {
    const DTYPE: DType = DType::BF16;
    const EPSILON_HALF_ULP: f64 = 0.007_812_5 / 2.0;
    fn to_f32(self) -> f32 {
        bf16::to_f32(self)
    }
    fn from_f32(v: f32) -> Self {
        bf16::from_f32(v)
    }
}

/// Rounds an f32 through the storage type `T` and back: the value a kernel would store.
pub fn round_to<T: Elem>(v: f32) -> f32 {
    T::from_f32(v).to_f32()
}
