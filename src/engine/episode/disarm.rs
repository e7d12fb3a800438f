//! The verified disarm: NOSPACE is disarmed only when the heal's verdict says every member is
//! below its line, and called healed only once a write was accepted and the alarm stayed away
//! for a poll.
//!
//! Why not trust the alarm list: a member whose quota is below the live data (the one a rolling
//! quota raise has not reached yet) raises NOSPACE again at the next write. A disarm that the
//! next write undoes is remembered, and no disarm follows until something that could make it
//! hold has changed: objects deleted, that member's quota or size. Where its quota is not known
//! at all (etcd < 3.6, no sidecar beside it), a trial disarm comes after a doubling wait — at
//! most one undone disarm per wait.

use crate::decide::heal::unverified_members;
use crate::etcd::AlarmKind;
use crate::observe::Observation;
use crate::units::format_bytes;

use super::heal::HealOutcome;
use crate::engine::{Ctx, Engine};

/// Whether `member`'s own quota is known: reported by the member (etcd ≥ 3.6), read from this
/// sidecar's own member's /metrics, or published by the sidecar beside it — which withdraws its
/// candidacy when a raise cannot be published (during NOSPACE), so a stale figure goes away.
/// Then a raise is seen within a poll and no trial disarm is needed to find it.
pub(super) fn quota_known(obs: &Observation, member: u64) -> bool {
    obs.member_quotas.contains_key(&member)
}

/// Why the heal holds off a disarm, and when it tries again.
#[derive(Debug, Clone)]
pub struct Undone {
    pub member: u64,
    pub message: String,
    /// The cluster when it happened: deletions (the revision), a new quota or size of that
    /// member are what can make a disarm hold.
    pub revision: i64,
    pub quota: Option<crate::observe::Quota>,
    pub db_size: Option<u64>,
    /// While the member's quota is not known at all (etcd < 3.6 and no sidecar beside it), one
    /// trial disarm after this (monotonic seconds), the wait doubling.
    pub retry_at: f64,
}

impl Undone {
    /// What `member` looks like in `obs` now, set when the block began.
    pub(super) fn of(obs: &Observation, member: u64, message: String) -> Undone {
        Undone {
            member,
            message,
            revision: obs.revision,
            quota: obs.member_quotas.get(&member).copied(),
            db_size: obs
                .member(member)
                .and_then(|m| m.status.as_ref())
                .map(|s| s.db_size),
            retry_at: 0.0,
        }
    }

    /// Whether something changed since that can make a disarm hold: objects deleted (the
    /// revision moved), that member's quota or size.
    pub(super) fn changed_in(&self, obs: &Observation) -> bool {
        let now = Undone::of(obs, self.member, String::new());
        now.revision != self.revision || now.quota != self.quota || now.db_size != self.db_size
    }
}

/// What the first write after a disarm showed.
enum Confirmed {
    /// Accepted, and the alarm stayed away for a poll.
    Held,
    /// NOSPACE came back: raised by this member.
    Undone(u64),
    /// Could not tell (the write failed for another reason, the cluster could not be observed).
    Unknown(String),
}

impl Engine {
    pub(in crate::engine) async fn disarm(
        &mut self,
        ctx: &Ctx<'_>,
        obs: &Observation,
        alarmed: &[u64],
    ) -> HealOutcome {
        // No leadership fence here, on purpose: a disarm is idempotent and is only sent when a
        // fresh observation shows every member below the line, so an instance that just handed
        // leadership over may still send it — the heal then finishes even when the new
        // leader has no live etcd-upkeep beside it.
        let line = (self.cfg.disarm_threshold * obs.quota.bytes as f64) as u64;
        let sizes: Vec<String> = obs
            .members
            .iter()
            .filter_map(|m| {
                m.status
                    .as_ref()
                    .map(|s| format!("{} {}", m.name, format_bytes(s.db_size)))
            })
            .collect();
        let down = unverified_members(obs);
        let detail = format!(
            "every member that answered at most {} ({}% of the {} quota): {}{}",
            format_bytes(line),
            (self.cfg.disarm_threshold * 100.0).round(),
            format_bytes(obs.quota.bytes),
            sizes.join(", "),
            if down.is_empty() {
                String::new()
            } else {
                format!(
                    "; not verified (no answer; checked when it answers again): {}",
                    down.join(", ")
                )
            }
        );
        let Some(endpoint) = crate::decide::endpoints::mutation_endpoint(obs) else {
            return HealOutcome::Pending("no member answered".into());
        };
        for member_id in alarmed {
            let name = obs.member_name(*member_id);
            if let Err(e) = ctx
                .act(self.cfg.dry_run)
                .disarm_nospace(&endpoint, *member_id, &name, &detail)
                .await
            {
                return HealOutcome::Failed(format!("disarm failed: {e}"));
            }
        }
        if self.cfg.dry_run {
            return HealOutcome::Pending("dry run: nothing changed".into());
        }
        // Verify: the alarm list no longer shows NOSPACE, a write is accepted, and the alarm
        // stays away for a poll. Only then is it healed: the alarm list alone says nothing about
        // a member whose quota is below its data (the next write raises NOSPACE again).
        match ctx.etcd.alarms(&endpoint).await {
            Ok(alarms) if alarms.iter().any(|a| a.kind == AlarmKind::NoSpace) => {
                return HealOutcome::Failed("NOSPACE is still listed after the disarm".into());
            }
            Ok(_) => {}
            Err(e) => return HealOutcome::Failed(format!("cannot verify the disarm: {e}")),
        }
        // The outage ended with the disarm (writes are accepted from here); the poll that
        // confirms it is not part of it.
        let disarmed_at = self.clock.now();
        match self.confirm_writes(ctx, &endpoint).await {
            Confirmed::Held => self.healed(ctx, detail, disarmed_at),
            Confirmed::Undone(member) => self.disarm_undone(ctx, member, obs.revision).await,
            Confirmed::Unknown(why) => HealOutcome::Pending(why),
        }
    }

    /// The first write after the disarm, then one poll's wait for the alarm to come back.
    async fn confirm_writes(&self, ctx: &Ctx<'_>, endpoint: &str) -> Confirmed {
        let undone_by = |alarms: &[crate::etcd::Alarm]| {
            alarms
                .iter()
                .find(|a| a.kind == AlarmKind::NoSpace)
                .map(|a| a.member_id)
        };
        // A refused write (NOSPACE again) is told by the alarm list a poll later.
        if let Err(e) = ctx.etcd.write_check(endpoint).await
            && e.kind != crate::etcd::FailureKind::NoSpace
        {
            return Confirmed::Unknown(format!("no write accepted after the disarm: {e}"));
        }
        if ctx.shutdown.clone().sleep(self.cfg.poll).await {
            return Confirmed::Unknown("shutting down".into());
        }
        match ctx.observe().await {
            Ok(obs) => match undone_by(&obs.alarms) {
                Some(member) => Confirmed::Undone(member),
                None => Confirmed::Held,
            },
            Err(e) => Confirmed::Unknown(format!("cannot observe after the disarm: {e}")),
        }
    }

    fn healed(&mut self, ctx: &Ctx<'_>, detail: String, disarmed_at: f64) -> HealOutcome {
        let ended = self.episode.healed(disarmed_at, self.clock.now());
        let seconds = ended.seconds;
        ctx.shared.metrics.heal_duration.observe(seconds);
        ctx.shared.write().maintenance.nospace_since = None;
        tracing::info!(
            heal_seconds = seconds,
            "NOSPACE healed in {seconds:.1}s (writes accepted since the disarm; no alarm a poll later)"
        );
        ctx.shared.event(
            crate::report::events::EventReason::NospaceHealed,
            "nospace",
            format!("NOSPACE healed in {seconds:.1}s: writes are accepted again ({detail})"),
        );
        ctx.shared
            .record_action(crate::report::actions::ActionRecord {
                at: ended.since_unix,
                action: "heal".into(),
                member: None,
                result: "ok".into(),
                detail,
                duration_seconds: seconds,
            });
        HealOutcome::Healed { seconds }
    }

    /// The disarm did not hold: `member` raised NOSPACE again at the next write, so its quota is
    /// below the live data. No disarm again until something changes (see `still_undone`).
    async fn disarm_undone(
        &mut self,
        ctx: &Ctx<'_>,
        member: u64,
        revision_at_disarm: i64,
    ) -> HealOutcome {
        let obs = match ctx.observe().await {
            Ok(obs) => obs,
            Err(e) => return HealOutcome::Pending(format!("cannot observe: {e}")),
        };
        let name = obs.member_name(member);
        let mut undone = Undone::of(&obs, member, String::new());
        let (size, quota) = (undone.db_size, undone.quota);
        let others = obs
            .members
            .iter()
            .filter(|m| m.id != member && !m.is_learner)
            .map(|m| obs.quota_of(m.id))
            .max()
            .filter(|q| *q > obs.quota_of(member));
        let message = format!(
            "the disarm did not hold: {name} raised NOSPACE again at the next write: its db ({}) is over its quota ({}{}); if that is history it still holds, it is defragmented next; if it is live data, finish the quota raise on {name} or delete data. No disarm again until {name}'s quota or size changes or objects are deleted",
            size.map_or("unknown".into(), format_bytes),
            quota.map_or_else(
                || format!(
                    "{} assumed; it does not report its own",
                    format_bytes(obs.quota_of(member))
                ),
                |q| format_bytes(q.bytes)
            ),
            others.map_or(String::new(), |o| format!(
                "; the other members have {}",
                format_bytes(o)
            )),
        );
        tracing::error!(member = %name, "{message}");
        // Only our own write check moved the revision: nothing to compact for again. Other
        // writers' revisions since the disarm (a sync loop going on) are new history: the next
        // round compacts them, which also forgets which files were defragmented (they grew
        // since, so their sizes are no longer the live data).
        if only_our_write_since(revision_at_disarm, obs.revision) {
            self.episode.compacted_through(obs.revision);
        }
        undone.message = message.clone();
        self.episode
            .hold_off(undone, self.cfg.poll, self.clock.now());
        self.guard
            .set_heal_blocked(ctx, Some("live_data_over_quota"), Some(message.clone()));
        HealOutcome::Blocked(message)
    }
}

/// Whether the revisions since the disarm are at most the one put of our own write check.
fn only_our_write_since(revision_at_disarm: i64, revision_now: i64) -> bool {
    revision_now <= revision_at_disarm + 1
}

#[cfg(test)]
mod tests {
    use super::only_our_write_since;

    #[test]
    fn writes_of_others_after_a_disarm_are_history_to_compact() {
        assert!(only_our_write_since(100, 100), "our write refused");
        assert!(only_our_write_since(100, 101), "our write accepted");
        assert!(
            !only_our_write_since(100, 160),
            "a writer went on after the disarm"
        );
    }
}
