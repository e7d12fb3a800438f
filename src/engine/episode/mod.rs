//! The NOSPACE episode: a component that owns everything one outage needs to remember, from
//! the first observation that shows the alarm to the verified disarm.
//!
//! Why a component: the episode's memory (when it began, what was compacted and defragmented,
//! a disarm the next write undid, the members it went on without) used to be loose fields of the
//! engine that the tick, the heal, the disarm and the standby's takeover each read and wrote.
//! Here it has one owner and a small interface; the steps that use it are in this directory and
//! no other part of the engine sees its fields (the compiler enforces it).
//!
//! - [`heal`]: the step — emergency compaction, defragmentation, verified disarm;
//! - [`disarm`]: the disarm and the check that it held;
//! - [`left_out`]: the members a heal went on without, and the files left behind;
//! - [`takeover`]: a standby's one move when nobody heals.
//!
//! Every duration is read from the engine's [`Clock`](crate::clock::Clock) (monotonic seconds),
//! so the unit tests below drive time instead of sleeping.

mod disarm;
mod heal;
mod left_out;
mod takeover;

#[cfg(test)]
#[path = "episode_tests.rs"]
mod tests;

use std::collections::HashSet;
use std::time::Duration;

use crate::decide::heal::LiveDataOverQuota;
use crate::decide::takeover::{Stall, StallWatch};
use crate::etcd::AlarmKind;
use crate::observe::Observation;

pub use heal::HealOutcome;

use disarm::Undone;

/// The wait between two reports of the same block, and before a trial disarm, at most.
const MAX_LOG_BACKOFF: Duration = Duration::from_secs(300);

/// What every instance remembers of NOSPACE, whether or not it acts.
#[derive(Debug, Default)]
pub struct NospaceEpisode {
    /// The outage this instance heals (opened by the first heal step, closed by the disarm or
    /// when the alarm is gone).
    current: Option<Episode>,
    /// When this instance first saw the current alarm: (monotonic, Unix) seconds. Every instance
    /// notes it, so whichever one heals reports the whole outage, not just its own part.
    seen: Option<(f64, f64)>,
    /// How long NOSPACE has lasted without progress (a standby takes over a stalled one).
    stall: StallWatch,
    /// When this instance last disarmed (monotonic): observations older than that are stale.
    disarmed_at: f64,
    /// Voting members the last heal went on without (down): checked when they answer again.
    left_out: HashSet<u64>,
    /// `--dry-run`: the live data the projection assumes after the compaction.
    dry_live: Option<u64>,
}

/// One outage, from the first heal step to its end.
#[derive(Debug, Clone)]
struct Episode {
    /// When the outage began (monotonic) and, for people, its Unix time.
    since: f64,
    since_unix: f64,
    /// The revision of this episode's emergency compaction (0: not yet).
    compacted_at: i64,
    /// Members defragmented since that compaction: their sizes are the truth.
    defragmented: HashSet<u64>,
    /// (revision, quota) when live data was found over the line; nothing is retried until
    /// deletions move the revision or the quota changes.
    blocked_at: Option<(i64, u64)>,
    /// Consecutive blocked reports, for spacing out the error log.
    blocked_reports: u32,
    next_blocked_log: f64,
    /// `--dry-run`: the plan was printed.
    described: bool,
    /// A disarm the next write undid, or a block resting on a quota known only second-hand:
    /// what a retry waits for.
    undone: Option<Undone>,
    /// The wait before the last trial disarm: each undone one doubles it (at most 5 minutes).
    undone_wait: Duration,
    /// The wait is over: the next blocked verdict tries one disarm.
    trial_due: bool,
}

/// What ending an outage tells the report: how long writes were refused.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Ended {
    pub seconds: f64,
    pub since_unix: f64,
}

impl NospaceEpisode {
    /// Every tick, on every instance: notes when NOSPACE was first seen and how long it has
    /// lasted without progress.
    pub fn observe(&mut self, obs: &Observation, now: f64) -> Stall {
        if obs.has_alarm(AlarmKind::NoSpace) {
            self.seen.get_or_insert((now, crate::clock::wall_now()));
        } else {
            self.seen = None;
        }
        self.stall.observe(obs, now)
    }

    /// Whether `obs` was taken before this instance's own disarm (it still shows the alarm
    /// that was just cleared).
    pub fn is_stale(&self, obs: &Observation) -> bool {
        obs.seen_at < self.disarmed_at
    }

    /// The standby moved leadership: the stall starts again from `now`.
    fn took_over(&mut self, now: f64) {
        self.stall.reset(now);
    }

    /// Opens the outage on the first heal step; true when it was opened by this call.
    fn open(&mut self, now: f64) -> bool {
        if self.current.is_some() {
            return false;
        }
        let (since, since_unix) = self.seen.unwrap_or((now, crate::clock::wall_now()));
        self.current = Some(Episode {
            since,
            since_unix,
            compacted_at: 0,
            defragmented: HashSet::new(),
            blocked_at: None,
            blocked_reports: 0,
            next_blocked_log: now,
            described: false,
            undone: None,
            undone_wait: Duration::ZERO,
            trial_due: false,
        });
        true
    }

    /// The Unix time the open outage began (for /status).
    fn since_unix(&self) -> Option<f64> {
        self.current.as_ref().map(|e| e.since_unix)
    }

    /// Closes the outage (the alarm is gone, disarmed by us or by someone else); true when
    /// there was one.
    fn close(&mut self) -> bool {
        self.current.take().is_some()
    }

    /// Closes the outage after this instance's verified disarm: `disarmed_at` is when the
    /// writes were accepted again (the poll that confirmed it is not part of the outage).
    fn healed(&mut self, disarmed_at: f64, now: f64) -> Ended {
        let episode = self.current.take();
        self.disarmed_at = now;
        let since = episode.as_ref().map_or(disarmed_at, |e| e.since);
        Ended {
            seconds: (disarmed_at - since).max(0.0),
            since_unix: episode.map_or_else(crate::clock::wall_now, |e| e.since_unix),
        }
    }

    /// `--dry-run`: whether the plan still has to be printed (once per outage).
    fn describe(&mut self) -> bool {
        match self.current.as_mut() {
            Some(e) if !e.described => {
                e.described = true;
                true
            }
            _ => false,
        }
    }

    /// Whether the emergency compaction is due at `revision`: not yet done this far, and no
    /// block on live data that only deletions (which move the revision) or a new quota lift.
    fn compaction_due(&self, revision: i64, quota: u64) -> bool {
        self.current
            .as_ref()
            .is_some_and(|e| e.blocked_at != Some((revision, quota)) && revision > e.compacted_at)
    }

    /// The emergency compaction reached `revision`: the files defragmented before it count
    /// for nothing any more.
    fn compacted(&mut self, revision: i64) {
        if let Some(e) = self.current.as_mut() {
            e.compacted_at = revision;
            e.defragmented.clear();
            e.blocked_at = None;
        }
    }

    /// Members defragmented since the last emergency compaction.
    fn defragmented(&self) -> HashSet<u64> {
        self.current
            .as_ref()
            .map(|e| e.defragmented.clone())
            .unwrap_or_default()
    }

    fn set_defragmented(&mut self, done: HashSet<u64>) {
        if let Some(e) = self.current.as_mut() {
            e.defragmented = done;
        }
    }

    /// Live data over the line at (revision, quota): remembered so nothing is retried until
    /// that changes. True when the error log is due (spaced out, doubling from `poll`).
    fn blocked(&mut self, revision: i64, quota: u64, now: f64, poll: Duration) -> bool {
        let Some(e) = self.current.as_mut() else {
            return false;
        };
        e.blocked_at = Some((revision, quota));
        if now < e.next_blocked_log {
            return false;
        }
        e.blocked_reports += 1;
        let wait = (poll * 2u32.saturating_pow(e.blocked_reports.min(10))).min(MAX_LOG_BACKOFF);
        e.next_blocked_log = now + wait.as_secs_f64();
        true
    }

    /// The members a heal goes on without (down), replacing the last ones.
    fn set_left_out(&mut self, members: HashSet<u64>) {
        self.left_out = members;
    }

    /// The members left out that `answers` says are back (or gone), forgotten as they are
    /// returned.
    fn back(&mut self, answers: impl Fn(u64) -> bool) -> Vec<u64> {
        let back: Vec<u64> = self
            .left_out
            .iter()
            .copied()
            .filter(|id| answers(*id))
            .collect();
        for id in &back {
            self.left_out.remove(id);
        }
        back
    }

    fn any_left_out(&self) -> bool {
        !self.left_out.is_empty()
    }

    fn set_dry_live(&mut self, live: u64) {
        self.dry_live = Some(live);
    }

    fn dry_live(&self) -> Option<u64> {
        self.dry_live
    }

    /// The disarm did not hold (`undone`) or a block rests on a quota nobody reports: no
    /// disarm again until something changes, or — where the quota is not known — a trial after
    /// a wait that doubles each time (at least four polls, at most 5 minutes).
    fn hold_off(&mut self, mut undone: Undone, poll: Duration, now: f64) {
        let Some(e) = self.current.as_mut() else {
            return;
        };
        let wait = (e.undone_wait * 2).max(poll * 4).min(MAX_LOG_BACKOFF);
        e.undone_wait = wait;
        undone.retry_at = now + wait.as_secs_f64();
        e.undone = Some(undone);
    }

    /// After an undone disarm, only our own write check moved the revision: nothing new to
    /// compact for.
    fn compacted_through(&mut self, revision: i64) {
        if let Some(e) = self.current.as_mut() {
            e.compacted_at = e.compacted_at.max(revision);
        }
    }

    /// Whether a block on `details` is one to try a disarm through: the member's own quota is
    /// not known, and the wait since the last try (or since the block began) is over.
    fn trial_due(
        &mut self,
        obs: &Observation,
        details: &LiveDataOverQuota,
        poll: Duration,
        now: f64,
    ) -> bool {
        let member = details.member_id;
        if disarm::quota_known(obs, member) {
            return false;
        }
        let Some(e) = self.current.as_mut() else {
            return false;
        };
        if std::mem::take(&mut e.trial_due) {
            return true;
        }
        // The block begins: the first try comes after the wait, as after an undone disarm.
        let undone = Undone::of(obs, member, details.to_string());
        self.hold_off(undone, poll, now);
        false
    }

    /// While a disarm was undone: Some(why) until something changed that can make the next one
    /// hold — objects deleted (the revision moved), that member's quota or size changed — or,
    /// where its quota is not known at all, a trial after a doubling wait (at most one undone
    /// disarm per wait).
    fn still_undone(&mut self, obs: &Observation, now: f64) -> Option<String> {
        let e = self.current.as_mut()?;
        let undone = e.undone.as_ref()?;
        let changed = undone.changed_in(obs);
        let trial = !disarm::quota_known(obs, undone.member) && now >= undone.retry_at;
        if !changed && !trial {
            return Some(undone.message.clone());
        }
        tracing::info!(
            "{}: trying the heal again",
            if changed {
                "objects were deleted, or the member's quota or size changed"
            } else {
                "its quota is not known, so a raise would not be visible from here"
            }
        );
        e.undone = None;
        e.trial_due = trial && !changed;
        None
    }
}
