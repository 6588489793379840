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
    /// Two blocks of one launch touching the same global bytes, at least one writing, without atomics.
    Globalrace,
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
            CheckKind::Globalrace => "globalrace",
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

/// Where one unfinished warp stood when a launch ran out of its instruction budget.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct WarpAt {
    pub block: [u32; 3],
    /// Warp index within the block.
    pub warp: u32,
    /// 1-based PTX line of the instruction the warp would run next (its lowest PC among the lanes that
    /// can run, else among the waiting lanes).
    pub line: u32,
    /// Lanes of the warp that have not exited.
    pub lanes: u32,
    /// "running", "waiting at a barrier" or "waiting at a warp collective".
    pub state: String,
}

impl fmt::Display for WarpAt {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let b = self.block;
        write!(
            f,
            "block ({},{},{}) warp {} ({} live lanes, {}) at PTX line {}",
            b[0], b[1], b[2], self.warp, self.lanes, self.state, self.line
        )
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
    /// `metrics` are the launch's metrics up to the end of the launch (or the fatal fault), as a clean
    /// launch reports them.
    Check {
        kernel: String,
        reports: Vec<CheckReport>,
        metrics: Box<crate::Metrics>,
    },
    /// Wrong use of the API or the command line.
    Usage(String),
    /// A host-side memory operation (write/read/free) on an address that is not allocated.
    BadAddress { addr: u64, len: usize, msg: String },
    /// No kernel of that name in the module.
    NoKernel(String),
    /// The launch executed more warp-instructions than `Options::max_instructions` and was stopped (an
    /// endless loop, or a launch larger than the budget allows). `warps` says where every unfinished
    /// warp of the block(s) running at that moment stood; `reports` holds the check reports that fired
    /// before the stop.
    Budget {
        kernel: String,
        limit: u64,
        warps: Vec<WarpAt>,
        reports: Vec<CheckReport>,
        /// The launch's metrics up to the stop.
        metrics: Box<crate::Metrics>,
    },
    /// A device allocation (global memory, module variables, or a launch's registers, local, shared
    /// and param memory) would exceed `Options::memory_limit` or the host's memory.
    OutOfMemory { what: String, bytes: u64, limit: u64 },
}

impl fmt::Display for EmuError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            EmuError::Parse { line, msg } => write!(f, "PTX parse error at line {line}: {msg}"),
            EmuError::Unsupported { line, instruction } => {
                write!(f, "unsupported PTX at line {line}: {instruction}")
            }
            EmuError::Check { kernel, reports, .. } => {
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
            EmuError::Budget {
                kernel,
                limit,
                warps,
                reports,
                ..
            } => {
                write!(
                    f,
                    "instruction budget exhausted in kernel {kernel}: more than {limit} warp-instructions \
                     (Options::max_instructions / --max-instructions; an endless loop?)"
                )?;
                for w in warps.iter().take(32) {
                    write!(f, "\n  {w}")?;
                }
                if warps.len() > 32 {
                    write!(f, "\n  ... and {} more warps", warps.len() - 32)?;
                }
                for r in reports.iter().take(20) {
                    write!(f, "\n  {r}")?;
                }
                Ok(())
            }
            EmuError::OutOfMemory { what, bytes, limit } => write!(
                f,
                "out of device memory: {what} needs {bytes} bytes, beyond the {limit}-byte limit \
                 (Options::memory_limit / --memory-limit) or the host's memory"
            ),
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
