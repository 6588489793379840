//! IR of the `wmma.*` (m16n16k16) and `mbarrier.*` instructions (lowered in `lower/inst_wmma.rs` and
//! `lower/inst_mbar.rs`, executed by `exec/wmma.rs` and `exec/mbarrier.rs`).

use super::{Addr, MmaTy, Slot, Space, Src};

/// Which matrix a `wmma.load` fills.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum WmmaMat {
    A,
    B,
    C,
}

#[derive(Clone, Debug, PartialEq)]
pub enum WmmaOp {
    /// `wmma.load.{a,b,c}.sync.aligned.{row,col}.m16n16k16[.space].type ds, [addr][, stride]`;
    /// `col`: the matrix is stored column-major; `stride` in elements (default 16).
    Load {
        mat: WmmaMat,
        col: bool,
        ty: MmaTy,
        ds: Vec<Slot>,
        addr: Addr,
        stride: Option<Src>,
        space: Space,
    },
    /// `wmma.store.d.sync.aligned.{row,col}.m16n16k16[.space].type [addr], srcs[, stride]`.
    Store {
        col: bool,
        ty: MmaTy,
        srcs: Vec<Src>,
        addr: Addr,
        stride: Option<Src>,
        space: Space,
    },
    /// `wmma.mma.sync.aligned.alayout.blayout.m16n16k16.dtype.ctype d, a, b, c` (f16 inputs) or
    /// `....f32.bf16.bf16.f32`: two `mma.m16n8k16` products (columns 0-7 and 8-15). `tmp` holds the
    /// second half of D until both halves are computed (any aliasing of d with a, b, c is safe).
    Mma {
        ab: MmaTy,
        dt: MmaTy,
        ct: MmaTy,
        d: Vec<Slot>,
        a: Vec<Src>,
        b: Vec<Src>,
        c: Vec<Src>,
        tmp: Vec<Slot>,
    },
}

/// An `mbarrier` operation; `addr` is the 8-byte mbarrier object (shared, or generic).
#[derive(Clone, Debug, PartialEq)]
pub enum MbarOp {
    /// `mbarrier.init[.shared[::cta]].b64 [addr], count`.
    Init { addr: Addr, space: Space, count: Src },
    /// `mbarrier.inval[.shared[::cta]].b64 [addr]`.
    Inval { addr: Addr, space: Space },
    /// `mbarrier.arrive[_drop][.expect_tx|.noComplete][.sem.cta][.shared[::cta]].b64 state, [addr][, n]`:
    /// `count` (default 1) arrivals, after an expect-tx of `tx` when `.expect_tx`; `drop` also lowers
    /// the expected count; `state` None for the `_` sink.
    Arrive {
        state: Option<Slot>,
        addr: Addr,
        space: Space,
        count: Option<Src>,
        tx: Option<Src>,
        drop: bool,
        no_complete: bool,
    },
    /// `mbarrier.expect_tx` (tx-count += n) or `mbarrier.complete_tx` (tx-count -= n, may complete).
    Tx {
        addr: Addr,
        space: Space,
        n: Src,
        complete: bool,
    },
    /// `mbarrier.{test,try}_wait[.parity][.sem.cta][.shared[::cta]].b64 p, [addr], state|parity[, hint]`.
    Wait {
        p: Slot,
        addr: Addr,
        space: Space,
        token: Src,
        parity: bool,
        try_wait: bool,
    },
    /// `mbarrier.pending_count.b64 d, state`.
    PendingCount { d: Slot, state: Src },
    /// `cp.async.mbarrier.arrive[.noinc][.shared[::cta]].b64 [addr]`.
    CpAsyncArrive { addr: Addr, space: Space, noinc: bool },
}
