//! The space controller's decision: how many seconds of history to keep so that the db stays
//! below its space target, and when the file itself must shrink.
//!
//! Why history and not defragmentation: the quota counts the physical file, and bbolt reuses the
//! pages a compaction frees. A db that is compacted often enough stops growing without any
//! defrag (measured: a 2 MB/s sync loop compacted every 5 s to ~10 s of history held a 256 MiB
//! quota db at 29–30 MiB for minutes). So the controller keeps what etcd holds —
//! `live + history_rate × history_kept` — below `target × quota` by choosing `history_kept`:
//!
//! - the configured retention while it fits;
//! - less while it does not, but not below the **floor** (default 1 minute): compacting harder
//!   makes watchers that fall behind get "required revision has been compacted", and a
//!   kube-apiserver that loses its watch then relists every resource, which is expensive;
//! - below the floor only when even the floor does not fit, down to a **minimum** of a few
//!   polls: a relist is cheaper than an outage.
//!
//! Live data is estimated as `in_use − history_rate × history_age`, where `history_age` is how
//! long ago the revision of the last compaction was current. An error in the measured rate does
//! not move the outcome: whatever the rate misses is counted as live data, so the next keep
//! brings `in_use` back to the target (the fixed point is `in_use = target`, whatever the scale
//! of the rate). Without a compaction of our own the age is unknown, and so is live data; then
//! the controller compacts once to the floor to measure, instead of guessing.
//!
//! The apiserver's watchers need history at least as old as the members' progress-notify
//! interval (`decide::watch_history`). Nothing here compacts younger than what fits, so with
//! the default 30-minute retention that history is kept whenever the space target allows it;
//! when it does not (a sync loop, a small quota), prevention wins and `watch_history` says so.
//! The one compaction that is not bounded by what fits, the measuring one, is itself a case of
//! pressure (the db near the target, live data unknown).
//!
//! Live data over the target is not history's fault: it is reported (with the quota to set), and
//! compaction is not tightened for it.

use crate::units::format_bytes;

/// What the controller aims at (from the flags).
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct SpacePolicy {
    /// Share of the quota that `in_use` should stay below.
    pub target: f64,
    /// Seconds of history kept when there is room (the configured retention).
    pub retention: f64,
    /// Seconds of history kept at least while it fits.
    pub floor: f64,
    /// Seconds of history kept even when the floor does not fit.
    pub minimum: f64,
}

/// What the controller knows about the cluster now.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct SpaceInputs {
    pub quota: u64,
    /// The largest voting member's bytes in use.
    pub in_use: u64,
    /// Seconds since the revision of the last compaction was current (None: unknown).
    pub history_age: Option<f64>,
    /// Bytes per second of new history: versions superseded by updates and deletes (None: no
    /// churn watch to measure it).
    pub history_rate: Option<f64>,
}

/// What bounds the history kept.
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize)]
#[serde(rename_all = "snake_case")]
pub enum Limit {
    /// The configured retention fits.
    Retention,
    /// Less history fits; kept at what fits (at or above the floor).
    Budget,
    /// Live data is not known yet (no compaction of ours to date from): compact to the floor once.
    Measuring,
    /// Even the floor does not fit: below it, down to the minimum.
    BelowFloor,
    /// Not even the minimum fits: NOSPACE cannot be prevented by compaction alone at this rate.
    Minimum,
}

impl Limit {
    pub fn as_str(self) -> &'static str {
        match self {
            Limit::Retention => "retention",
            Limit::Budget => "budget",
            Limit::Measuring => "measuring",
            Limit::BelowFloor => "below_floor",
            Limit::Minimum => "minimum",
        }
    }
}

#[derive(Debug, Clone, PartialEq, serde::Serialize)]
pub struct SpaceVerdict {
    /// Seconds of history to keep.
    pub keep_seconds: f64,
    pub limit: Limit,
    /// What the configured retention would hold, over the target (> 1: it does not fit).
    pub pressure: f64,
    pub target_bytes: u64,
    /// Estimated live data (None until a compaction of ours dates the history).
    pub live_bytes: Option<u64>,
    pub history_bytes_per_second: Option<f64>,
    /// Live data alone is over the target: compaction cannot help; the quota or the objects
    /// must change.
    pub live_over_target: bool,
}

/// Share of the target the controller plans for: room for a poll of writes and bbolt's page
/// slack between the moment it compacts and the next.
const HEADROOM: f64 = 0.85;

/// Decides the history to keep.
pub fn space_verdict(policy: &SpacePolicy, inputs: &SpaceInputs) -> SpaceVerdict {
    let target_bytes = (policy.target * inputs.quota as f64) as u64;
    let rate = inputs.history_rate.unwrap_or(0.0).max(0.0);
    let live = inputs
        .history_age
        .map(|age| inputs.in_use.saturating_sub((rate * age.max(0.0)) as u64));
    // Unknown live data is at most everything in use.
    let live_bound = live.unwrap_or(inputs.in_use) as f64;
    let budget = target_bytes as f64 * HEADROOM - live_bound;
    let fits = if rate < 1.0 {
        // No measurable history: any history fits, or none helps.
        if budget > 0.0 || live.is_some() {
            f64::INFINITY
        } else {
            0.0
        }
    } else {
        budget / rate
    };
    // With live data unknown, everything in use counts as live (an upper bound): what fits is
    // then safe. When even the floor does not fit although the floor's own history would be
    // small, the excess is old history of unknown age: compact to the floor once and measure.
    let floor_history_is_small = rate * policy.floor <= 0.1 * target_bytes as f64;
    let (keep_seconds, limit) = if fits >= policy.retention {
        (policy.retention, Limit::Retention)
    } else if fits >= policy.floor {
        (fits, Limit::Budget)
    } else if live.is_none() && floor_history_is_small {
        (policy.floor.min(policy.retention), Limit::Measuring)
    } else if fits >= policy.minimum {
        (fits, Limit::BelowFloor)
    } else {
        (policy.minimum.min(policy.retention), Limit::Minimum)
    };
    let pressure = if target_bytes == 0 {
        0.0
    } else {
        (live_bound + rate * policy.retention) / target_bytes as f64
    };
    SpaceVerdict {
        keep_seconds,
        limit,
        pressure,
        target_bytes,
        live_bytes: live,
        history_bytes_per_second: inputs.history_rate,
        live_over_target: live.is_some_and(|l| l > target_bytes),
    }
}

impl SpaceVerdict {
    /// Why the history kept is what it is, for the log and /status.
    pub fn explain(&self, policy: &SpacePolicy) -> String {
        let rate = self
            .history_bytes_per_second
            .map(|r| format!("{}/s", format_bytes(r as u64)))
            .unwrap_or_else(|| "unmeasured".into());
        let live = self
            .live_bytes
            .map(format_bytes)
            .unwrap_or_else(|| "not yet known".into());
        let keep = seconds(self.keep_seconds);
        let target = format_bytes(self.target_bytes);
        match self.limit {
            Limit::Retention => format!(
                "keeping the configured {keep} of history (new history {rate}, live data {live}, space target {target})"
            ),
            Limit::Budget => format!(
                "keeping {keep} of history instead of {}: new history arrives at {rate} and live data is {live}, so only {keep} fits under the space target {target}",
                seconds(policy.retention)
            ),
            Limit::Measuring => format!(
                "keeping {keep} of history for now: the db is near the space target {target} and live data is not known yet; compacting once to measure it"
            ),
            Limit::BelowFloor => format!(
                "keeping only {keep} of history, below the {} floor: new history arrives at {rate} and live data is {live}; even {} would not fit under the space target {target} (watchers that fall further behind will relist)",
                seconds(policy.floor),
                seconds(policy.floor)
            ),
            Limit::Minimum => format!(
                "keeping the minimum {keep} of history: new history arrives at {rate} and live data is {live}; even that may not fit under the space target {target} — stop the writer (see the sync-loop warning) or raise the quota"
            ),
        }
    }
}

/// Where to compact to, and for which reason.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum CompactTo {
    /// The space controller keeps less than the configured history.
    Space(i64),
    /// Periodic compaction keeps the configured history.
    Periodic(i64),
}

/// Chooses between the controller's target (`space`: the revision current `keep` seconds ago,
/// only while it keeps less than the retention) and the periodic one: the newer wins, and
/// nothing at or below the last compacted revision (never backwards, never twice).
pub fn compaction_target(
    space: Option<i64>,
    periodic: Option<i64>,
    last: i64,
) -> Option<CompactTo> {
    match (space, periodic) {
        (Some(target), periodic) if target > last && Some(target) > periodic => {
            Some(CompactTo::Space(target))
        }
        (_, Some(target)) if target > last => Some(CompactTo::Periodic(target)),
        _ => None,
    }
}

/// A member whose file must shrink: near the quota (half-way between the target and the quota)
/// with a real share of it free. Anything less is left to bbolt's page reuse.
pub fn must_shrink(db_size: u64, db_size_in_use: u64, quota: u64, target: f64) -> bool {
    let line = ((1.0 + target) / 2.0 * quota as f64) as u64;
    let free = db_size.saturating_sub(db_size_in_use);
    db_size >= line && free >= (quota / 20).max(1 << 20)
}

/// Whole seconds, rounded down: 59.6 s of history is "59s", never the "1m" of a 1m floor it
/// is below.
fn seconds(s: f64) -> String {
    humantime::format_duration(std::time::Duration::from_secs(s.max(0.0).floor() as u64))
        .to_string()
}

#[cfg(test)]
#[path = "space_tests.rs"]
mod tests;
