//! The one error type of the crate: every violated precondition of the safe API is a variant here.

use crate::dtype::DType;

/// Everything that can go wrong when asking for an op. Messages say what to change.
#[derive(Debug, Clone, PartialEq)]
#[non_exhaustive]
pub enum Error {
    /// No CUDA driver library (`libcuda.so`) could be loaded on this machine.
    NoDriver {
        /// What the loader said.
        detail: String,
    },
    /// The driver loaded, but no CUDA device is present or it could not be initialised.
    NoDevice {
        /// What the driver said.
        detail: String,
    },
    /// A tensor's length does not match the shape the op was given.
    ShapeMismatch {
        /// The op that checked.
        op: &'static str,
        /// The tensor (argument name).
        tensor: &'static str,
        /// Elements the shape needs.
        expected: usize,
        /// Elements the buffer has.
        actual: usize,
    },
    /// A shape parameter is invalid (zero where a positive size is needed, or inconsistent).
    InvalidShape {
        /// The op that checked.
        op: &'static str,
        /// What is wrong.
        reason: String,
    },
    /// A scalar argument is out of its valid range (eps <= 0, theta <= 0, NaN scale, ...).
    InvalidArgument {
        /// The op that checked.
        op: &'static str,
        /// What is wrong.
        reason: String,
    },
    /// The op does not support this dtype (or this combination of dtypes).
    UnsupportedDType {
        /// The op that checked.
        op: &'static str,
        /// The dtype refused.
        dtype: DType,
    },
    /// The attention head dimension is not one the kernels support.
    UnsupportedHeadDim {
        /// The op that checked.
        op: &'static str,
        /// The size refused.
        head_dim: usize,
        /// What the kernels take.
        supported: &'static str,
    },
    /// A device pointer is not aligned to what the kernel needs.
    Misaligned {
        /// The op that checked.
        op: &'static str,
        /// The tensor (argument name).
        tensor: &'static str,
        /// Its device address.
        addr: u64,
        /// The alignment needed, in bytes.
        align: usize,
    },
    /// Two tensors that must not share memory do.
    Aliasing {
        /// The op that checked.
        op: &'static str,
        /// One tensor (argument name).
        a: &'static str,
        /// The other.
        b: &'static str,
    },
    /// A size or index does not fit the 32-bit or 64-bit fields of the kernel parameters.
    SizeOverflow {
        /// The op that checked.
        op: &'static str,
        /// What overflows.
        what: String,
    },
    /// A buffer belongs to another device context than the backend's stream.
    ContextMismatch {
        /// The op that checked.
        op: &'static str,
        /// The tensor (argument name).
        tensor: &'static str,
    },
    /// The compiled kernel could not be found or loaded.
    KernelLoad {
        /// The kernel or module.
        kernel: String,
        /// What went wrong.
        detail: String,
    },
    /// The CUDA driver returned an error during a launch or copy.
    Driver {
        /// The driver's error.
        detail: String,
    },
    /// Token ids outside `[0, vocab)` reached an embedding gather, which read nothing for them (their rows
    /// are zeros): `count` of them, the first at token position `first`.
    IdOutOfRange {
        /// The op that checked.
        op: &'static str,
        /// Ids out of range.
        count: usize,
        /// The first one's token position.
        first: usize,
        /// The table's rows.
        vocab: usize,
    },
    /// The emulator reported a check failure (memcheck, racecheck, initcheck, synccheck, globalrace) or could not run.
    Emulator {
        /// The emulator's report.
        detail: String,
    },
}

impl std::fmt::Display for Error {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Error::NoDriver { detail } => write!(
                f,
                "no CUDA driver: {detail}; install the NVIDIA driver, or use the emulator backend (EmuBackend)"
            ),
            Error::NoDevice { detail } => write!(f, "no CUDA device: {detail}"),
            Error::ShapeMismatch {
                op,
                tensor,
                expected,
                actual,
            } => write!(
                f,
                "{op}: tensor `{tensor}` has {actual} elements but the shape needs {expected}"
            ),
            Error::InvalidShape { op, reason } => write!(f, "{op}: invalid shape: {reason}"),
            Error::InvalidArgument { op, reason } => write!(f, "{op}: invalid argument: {reason}"),
            Error::UnsupportedDType { op, dtype } => write!(f, "{op}: dtype {dtype} is not supported"),
            Error::UnsupportedHeadDim {
                op,
                head_dim,
                supported,
            } => write!(f, "{op}: head_dim {head_dim} is not supported (supported: {supported})"),
            Error::Misaligned {
                op,
                tensor,
                addr,
                align,
            } => write!(
                f,
                "{op}: tensor `{tensor}` at address {addr:#x} is not aligned to {align} bytes"
            ),
            Error::Aliasing { op, a, b } => {
                write!(
                    f,
                    "{op}: tensors `{a}` and `{b}` overlap in memory, which the op does not allow"
                )
            }
            Error::SizeOverflow { op, what } => write!(f, "{op}: size overflow: {what}"),
            Error::ContextMismatch { op, tensor } => write!(
                f,
                "{op}: tensor `{tensor}` lives in another CUDA context than the backend's stream"
            ),
            Error::KernelLoad { kernel, detail } => write!(f, "cannot load kernel `{kernel}`: {detail}"),
            Error::Driver { detail } => write!(f, "CUDA driver error: {detail}"),
            Error::IdOutOfRange {
                op,
                count,
                first,
                vocab,
            } => write!(
                f,
                "{op}: {count} token id(s) outside [0, {vocab}), the first at position {first}; their rows \
                 were written as zeros"
            ),
            Error::Emulator { detail } => write!(f, "emulator: {detail}"),
        }
    }
}

impl std::error::Error for Error {}

/// The crate's result type.
pub type Result<T> = std::result::Result<T, Error>;
