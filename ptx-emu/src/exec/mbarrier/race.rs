//! racecheck for mbarriers: every arrive-on is a new epoch recorded in the arriving thread's history
//! (`Env::bar_hist`, the one named barriers use) and in the phase; a thread whose wait on a phase
//! succeeds merges that phase's epochs into its history, so `race.rs` orders its later accesses after
//! what the arriving threads did before they arrived. Warp-level syncs carry both sides across the
//! lanes of a warp (`__syncwarp(); if (lane == 0) arrive` and `if (lane == 0) wait; __syncwarp()`).

use super::super::step::lanes;
use super::super::Env;

/// Epochs of mbarrier arrivals a thread's racecheck history keeps (the oldest half is dropped beyond).
const MAX_HIST: usize = 1024;

/// racecheck: lane `l` of warp `wid` arrives on `key`: a new epoch, recorded in its history and in the
/// phase. If the lane took part in its warp's last warp-level sync, the lanes of that sync are ordered
/// before the arrival too (`__syncwarp(); if (lane == 0) arrive`): the sync's epoch goes into their
/// histories and into the phase.
pub(super) fn record_arrival(env: &mut Env, wid: u32, l: usize, key: u32) {
    if !env.checks.racecheck {
        return;
    }
    env.epoch = env.epoch.wrapping_add(1);
    let a = env.epoch;
    let base = wid as usize * 32;
    if let Some(h) = env.bar_hist.get_mut(base + l) {
        h.push(a);
        cap(h);
    }
    let mut sync = None;
    if let Some(&(s, m)) = env.mbar.warp_sync.get(wid as usize) {
        if s != 0 && m >> l & 1 == 1 {
            sync = Some(s);
            lanes!(m & !(1 << l), |j| {
                if let Some(h) = env.bar_hist.get_mut(base + j) {
                    insert_sorted(h, s);
                }
            });
        }
    }
    if let Some(b) = env.mbar.objs.get_mut(&key) {
        b.arrivals.push(a);
        b.arrivals.extend(sync);
    }
}

/// racecheck: lane `l` of warp `wid` saw the previous phase of `key` complete: that phase's arrival
/// epochs go into its history, and into the lanes of its warp's next warp-level sync (`on_warp_sync`).
pub(super) fn record_acquire(env: &mut Env, wid: u32, l: usize, key: u32) {
    if !env.checks.racecheck {
        return;
    }
    let Some(b) = env.mbar.objs.get(&key) else { return };
    if b.prev_arrivals.is_empty() {
        return;
    }
    let prev = &b.prev_arrivals;
    if let Some(h) = env.bar_hist.get_mut(wid as usize * 32 + l) {
        merge(h, prev);
        cap(h);
    }
    let w = wid as usize;
    if env.mbar.warp_acq.len() <= w {
        env.mbar.warp_acq.resize(w + 1, (Vec::new(), 0));
    }
    let acq = &mut env.mbar.warp_acq[w];
    merge(&mut acq.0, prev);
    acq.1 |= 1 << l;
}

/// racecheck: a warp-level sync of the lanes `group` of warp `wid` completed. It starts a new epoch
/// (so an arrival after it can tell the accesses before it), and passes what its lanes acquired from
/// mbarrier waits on to every lane of the sync (`if (lane == 0) wait; __syncwarp();`).
pub(crate) fn on_warp_sync(env: &mut Env, wid: u32, group: u32) {
    env.epoch = env.epoch.wrapping_add(1);
    let w = wid as usize;
    if env.mbar.warp_sync.len() <= w {
        env.mbar.warp_sync.resize(w + 1, (0, 0));
    }
    env.mbar.warp_sync[w] = (env.epoch, group);
    let Some(acq) = env.mbar.warp_acq.get_mut(w) else {
        return;
    };
    if acq.1 & group == 0 {
        return;
    }
    acq.1 &= !group;
    let list = if acq.1 == 0 {
        std::mem::take(&mut acq.0)
    } else {
        acq.0.clone()
    };
    lanes!(group, |j| {
        if let Some(h) = env.bar_hist.get_mut(w * 32 + j) {
            merge(h, &list);
            cap(h);
        }
    });
}

/// Merges the ascending list `b` into the ascending list `h` (no duplicates).
fn merge(h: &mut Vec<u32>, b: &[u32]) {
    if b.first().is_some_and(|&x| h.last().is_none_or(|&y| x > y)) {
        h.extend_from_slice(b);
        return;
    }
    let mut out = Vec::with_capacity(h.len() + b.len());
    let (mut i, mut j) = (0, 0);
    while i < h.len() || j < b.len() {
        let x = if j >= b.len() || (i < h.len() && h[i] <= b[j]) {
            i += 1;
            h[i - 1]
        } else {
            j += 1;
            b[j - 1]
        };
        if out.last() != Some(&x) {
            out.push(x);
        }
    }
    *h = out;
}

fn insert_sorted(h: &mut Vec<u32>, x: u32) {
    let pos = h.partition_point(|&e| e < x);
    if h.get(pos) != Some(&x) {
        h.insert(pos, x);
        cap(h);
    }
}

fn cap(h: &mut Vec<u32>) {
    if h.len() > MAX_HIST {
        h.drain(..h.len() - MAX_HIST / 2);
    }
}
