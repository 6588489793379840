//! Errors and check reports.

use std::fmt;

/// Which check produced a report.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum CheckKind {
    /// Out-of-bounds or misaligned access.
    Memcheck,
    /// Shared-memory hazard between two barriers.
    Racecheck,
    /// Read of bytes nothing wrote.
    Initcheck,
    /// Divergent barrier, deadlock, or a warp collective whose lanes disagree.
    Synccheck,
    /// A `cp.async` destination read before its wait.
    AsyncCopy,
    /// `trap` or another fatal condition raised by the kernel itself.
    Trap,
}

impl fmt::Display for CheckKind {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let s = match self {
            CheckKind::Memcheck => "memcheck",
            CheckKind::Racecheck => "racecheck",
            CheckKind::Initcheck => "initcheck",
            CheckKind::Synccheck => "synccheck",
            CheckKind::AsyncCopy => "cp.async",
            CheckKind::Trap => "trap",
        };
        f.write_str(s)
    }
}

/// One finding of a check: what, where (kernel, block, thread, PTX line) and at which address.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct CheckReport {
    pub kind: CheckKind,
    pub kernel: String,
    pub block: [u32; 3],
    pub thread: [u32; 3],
    /// 1-based line in the PTX text.
    pub line: u32,
    /// The address involved (state-space address for shared/local), if any.
    pub address: Option<u64>,
    pub message: String,
}

impl fmt::Display for CheckReport {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "[{}] kernel {} block ({},{},{}) thread ({},{},{}) PTX line {}",
            self.kind,
            self.kernel,
            self.block[0],
            self.block[1],
            self.block[2],
            self.thread[0],
            self.thread[1],
            self.thread[2],
            self.line
        )?;
        if let Some(a) = self.address {
            write!(f, " address {a:#x}")?;
        }
        write!(f, ": {}", self.message)
    }
}

/// Every error the emulator returns.
#[derive(Clone, Debug)]
pub enum EmuError {
    /// The PTX text could not be parsed.
    Parse { line: u32, msg: String },
    /// Valid PTX that the emulator does not implement.
    Unsupported { line: u32, instruction: String },
    /// One or more checks fired during a launch (the launch ran to completion or to the first fatal fault).
    Check { kernel: String, reports: Vec<CheckReport> },
    /// Wrong use of the API or the command line.
    Usage(String),
    /// A host-side memory operation (write/read/free) on an address that is not allocated.
    BadAddress { addr: u64, len: usize, msg: String },
    /// No kernel of that name in the module.
    NoKernel(String),
}

impl fmt::Display for EmuError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            EmuError::Parse { line, msg } => write!(f, "PTX parse error at line {line}: {msg}"),
            EmuError::Unsupported { line, instruction } => {
                write!(f, "unsupported PTX at line {line}: {instruction}")
            }
            EmuError::Check { kernel, reports } => {
                write!(f, "{} check report(s) in kernel {kernel}", reports.len())?;
                for r in reports.iter().take(20) {
                    write!(f, "\n  {r}")?;
                }
                if reports.len() > 20 {
                    write!(f, "\n  ... and {} more", reports.len() - 20)?;
                }
                Ok(())
            }
            EmuError::Usage(m) => write!(f, "usage error: {m}"),
            EmuError::BadAddress { addr, len, msg } => write!(f, "bad device address {addr:#x} (+{len} bytes): {msg}"),
            EmuError::NoKernel(k) => write!(f, "no kernel named {k} in the module"),
        }
    }
}

impl std::error::Error for EmuError {}

pub(crate) fn unsupported<T>(line: u32, instruction: impl Into<String>) -> Result<T, EmuError> {
    Err(EmuError::Unsupported {
        line,
        instruction: instruction.into(),
    })
}

pub(crate) fn parse_err<T>(line: u32, msg: impl Into<String>) -> Result<T, EmuError> {
    Err(EmuError::Parse { line, msg: msg.into() })
}
