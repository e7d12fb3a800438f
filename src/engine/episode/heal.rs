//! The NOSPACE episode: emergency compaction, defragmentation, verified disarm.
//!
//! Why in this order: etcd's quota counts the physical db size, so compaction alone frees
//! nothing (etcd#16779) and defragmentation without compaction can even grow the db (etcd#7551).
//! Compact to the current revision (history is given up — said in the log), defragment every
//! member with reclaimable space (rolling, leader last, rule and window ignored), look again,
//! and disarm only when `decide::heal` says every member is below the line; then check the alarm
//! is really gone. When live data fills the quota, nothing is disarmed: the reason, with
//! numbers, goes to the log, /status and `etcd_upkeep_heal_blocked`, and the engine re-checks
//! each poll, compacting and defragmenting again once deletions or a new quota can change the
//! verdict, and heals by itself as soon as it can.

use std::collections::HashSet;

use crate::decide::actor::Fence;
use crate::decide::heal::{HealVerdict, alarmed_members, heal_verdict, project_defragmented};
use crate::decide::plan::{PlanCause, order};
use crate::etcd::AlarmKind;
use crate::observe::Observation;
use crate::units::format_bytes;

use crate::engine::rolling::RollOutcome;
use crate::engine::{Ctx, Engine};

/// How one heal attempt ended.
#[derive(Debug, Clone, PartialEq)]
pub enum HealOutcome {
    NoAlarm,
    Healed {
        seconds: f64,
    },
    /// Live data fills the quota (a person must act).
    Blocked(String),
    /// Not now (a member silent, leadership changed); try again later.
    Pending(String),
    /// A step failed.
    Failed(String),
}

/// Heal rounds per tick: a defrag pass and a disarm normally fit in two.
const ROUNDS_PER_TICK: usize = 4;

impl Engine {
    /// One heal attempt. Called while NOSPACE is active and this instance is the actor.
    pub async fn heal(&mut self, ctx: &Ctx<'_>, obs: &Observation, fence: Fence) -> HealOutcome {
        self.begin_episode(ctx, obs);
        if self.cfg.dry_run {
            // The real path, with every mutation printed instead of sent, once per episode.
            if !self.episode.describe() {
                return HealOutcome::Pending("dry run: plan already shown".into());
            }
            let live = self.count_live_bytes(ctx, obs).await;
            self.episode.set_dry_live(live);
        }

        if let Err(outcome) = self.emergency_compaction(ctx, obs, fence).await {
            return outcome;
        }
        for _ in 0..ROUNDS_PER_TICK {
            ctx.beat();
            let now_obs = match ctx.observe().await {
                Ok(o) => o,
                Err(e) => return HealOutcome::Pending(format!("cannot observe the cluster: {e}")),
            };
            let defragmented = self.episode.defragmented();
            let now_obs = self.projected(now_obs, &defragmented);
            if let Some(outcome) = self.heal_round(ctx, &now_obs, fence, defragmented).await {
                return outcome;
            }
        }
        HealOutcome::Pending("more rounds needed; continuing next poll".into())
    }

    /// Opens the episode on the first NOSPACE tick (every instance noted when it first saw it).
    fn begin_episode(&mut self, ctx: &Ctx<'_>, obs: &Observation) {
        if self.episode.open(self.clock.now()) {
            let alarmed: Vec<String> = obs
                .alarms
                .iter()
                .filter(|a| a.kind == AlarmKind::NoSpace)
                .map(|a| obs.member_name(a.member_id))
                .collect();
            tracing::warn!(members = ?alarmed, "NOSPACE alarm raised on {}: every write fails; healing: compact → defragment → verified disarm", alarmed.join(", "));
        }
        ctx.shared.write().maintenance.nospace_since = self.episode.since_unix();
    }

    /// Compacts to the current revision, once per episode and again after deletions: the only
    /// way overwritten history turns into free pages. `Err` is the tick's outcome.
    async fn emergency_compaction(
        &mut self,
        ctx: &Ctx<'_>,
        obs: &Observation,
        fence: Fence,
    ) -> Result<(), HealOutcome> {
        // Blocked on live data: only deletions (which move the revision) or a new quota can
        // change that; until then, re-judge from the observation alone and touch nothing.
        if self.episode.compaction_due(obs.revision, obs.quota.bytes) {
            // Emergency compaction to the current revision: the only way deletions and
            // overwritten history turn into free pages (fenced on a fresh look in `compact`).
            let why = "NOSPACE emergency: all history before the current revision is given up";
            tracing::warn!(
                revision = obs.revision,
                "compacting to the current revision {}: {why}",
                obs.revision
            );
            if !self.compact(ctx, fence, obs.revision, why, false).await {
                return Err(HealOutcome::Failed(
                    "the emergency compaction failed".into(),
                ));
            }
            self.episode.compacted(obs.revision);
        }

        Ok(())
    }

    /// One look at the cluster and the step it calls for; None: look again.
    async fn heal_round(
        &mut self,
        ctx: &Ctx<'_>,
        now_obs: &Observation,
        fence: Fence,
        defragmented: HashSet<u64>,
    ) -> Option<HealOutcome> {
        self.note_unverified(ctx, now_obs);
        let verdict = heal_verdict(now_obs, self.cfg.disarm_threshold, &defragmented);
        let held_off = match verdict {
            HealVerdict::Disarm { .. } => self.episode.still_undone(now_obs, self.clock.now()),
            _ => None,
        };
        // Every member answered unless the verdict is Wait: the heal's own "unhealthy" (a
        // silent member) is over; the gate before each member owns it from here.
        if !matches!(verdict, HealVerdict::Wait { .. }) {
            self.guard.set_blocked(ctx, "unhealthy", Vec::new());
        }
        match verdict {
            HealVerdict::NoAlarm => {
                self.guard.set_heal_blocked(ctx, None, None);
                Some(HealOutcome::NoAlarm)
            }
            HealVerdict::Wait { why } => {
                tracing::info!("heal waiting: {why}");
                self.guard
                    .set_blocked(ctx, "unhealthy", vec![format!("heal waiting: {why}")]);
                Some(HealOutcome::Pending(why))
            }
            HealVerdict::Blocked(details) if self.cfg.dry_run => {
                tracing::info!("[dry-run] would stop here without disarming: {details}");
                Some(HealOutcome::Pending("dry run: nothing changed".into()))
            }
            HealVerdict::Blocked(details)
                if self
                    .episode
                    .trial_due(now_obs, &details, self.cfg.poll, self.clock.now()) =>
            {
                tracing::warn!(
                    member = %details.member,
                    "trying one disarm: {}'s own quota is not known (etcd < 3.6 does not report it, and no sidecar beside it publishes it), so a raise would not be visible from here; if the next write raises NOSPACE again, the heal waits twice as long before the next try",
                    details.member
                );
                let alarmed = alarmed_members(now_obs);
                Some(self.disarm(ctx, now_obs, &alarmed).await)
            }
            HealVerdict::Blocked(details) => Some(self.report_blocked(ctx, now_obs, &details)),
            HealVerdict::Defragment { members } => {
                self.heal_defragment(ctx, now_obs, fence, members, defragmented)
                    .await
            }
            // A disarm the next write undid is not sent again until something changed that can
            // make it hold (see `still_undone`). Only the disarm waits: a member that still has
            // space to give back (e.g. one that came back with its old file and raised NOSPACE
            // again) is defragmented meanwhile, which is such a change.
            HealVerdict::Disarm { .. } if held_off.is_some() => {
                let message = held_off.unwrap_or_default();
                self.guard.set_heal_blocked(
                    ctx,
                    Some("live_data_over_quota"),
                    Some(message.clone()),
                );
                Some(HealOutcome::Blocked(message))
            }
            HealVerdict::Disarm { alarmed_members } => {
                self.guard.set_heal_blocked(ctx, None, None);
                Some(self.disarm(ctx, now_obs, &alarmed_members).await)
            }
        }
    }

    /// The heal's defragmentations: the members the verdict names that have room for the copy,
    /// rolling (leader last); None when the heal goes on at the next look.
    async fn heal_defragment(
        &mut self,
        ctx: &Ctx<'_>,
        now_obs: &Observation,
        fence: Fence,
        members: Vec<u64>,
        defragmented: HashSet<u64>,
    ) -> Option<HealOutcome> {
        // Never start a defragmentation that cannot finish: a copy into a full volume
        // fails with ENOSPC, and a member that then cannot write its WAL is lost.
        let mut no_room = Vec::new();
        let members: Vec<u64> = members
            .into_iter()
            .filter(|id| match self.room_for(now_obs, *id) {
                Ok(()) => true,
                Err(why) => {
                    no_room.push(why.to_string());
                    false
                }
            })
            .collect();
        self.guard.set_blocked(ctx, "disk_space", no_room.clone());
        if members.is_empty() {
            let message = format!("NOSPACE cannot be healed: {}", no_room.join("; "));
            self.guard
                .set_heal_blocked(ctx, Some("maintenance_blocked"), Some(message.clone()));
            return Some(HealOutcome::Blocked(message));
        }
        self.guard.set_heal_blocked(ctx, None, None);
        let plan = order(now_obs, PlanCause::Heal, &members);
        let mut done = defragmented;
        let outcome = self.rolling_defrag(ctx, plan, fence, &mut done).await;
        self.episode.set_defragmented(done);
        match outcome {
            RollOutcome::Completed => None,
            // We defragmented our own member before handing over: look again, and
            // disarm if that finished the job (see `disarm`).
            RollOutcome::HandedOver(why) => {
                tracing::info!("{why}");
                None
            }
            RollOutcome::Stopped(why) => Some(HealOutcome::Failed(why)),
        }
    }

    /// Live data fills the quota: nothing is disarmed; say so with the numbers (spacing out
    /// the error log) and retry only once deletions or a new quota can change the verdict.
    fn report_blocked(
        &mut self,
        ctx: &Ctx<'_>,
        now_obs: &Observation,
        details: &crate::decide::heal::LiveDataOverQuota,
    ) -> HealOutcome {
        let message = details.to_string();
        let (revision, quota, now) = (now_obs.revision, now_obs.quota.bytes, self.clock.now());
        if self.episode.blocked(revision, quota, now, self.cfg.poll) {
            tracing::error!(
                in_use = details.in_use,
                quota = details.quota,
                suggested_quota = details.suggested_quota,
                "NOSPACE cannot be healed: {message}; healing resumes by itself once objects are deleted or the quota is raised"
            );
        }
        self.guard
            .set_heal_blocked(ctx, Some("live_data_over_quota"), Some(message.clone()));
        HealOutcome::Blocked(message)
    }

    /// `--dry-run`: the live data a real heal would leave behind (the keyspace's key + value
    /// bytes, counted by a serializable scan); the largest member's bytes in use when the scan
    /// fails (the projection then stops before a disarm it cannot promise).
    async fn count_live_bytes(&self, ctx: &Ctx<'_>, obs: &Observation) -> u64 {
        let in_use = obs
            .members
            .iter()
            .filter_map(|m| m.status.as_ref().map(|s| s.db_size_in_use))
            .max()
            .unwrap_or(0);
        let Some(endpoint) = obs.members.iter().find(|m| m.status.is_some()) else {
            return in_use;
        };
        match crate::diagnose::analyze::live_data(ctx.etcd, &endpoint.endpoint).await {
            Ok(breakdown) => {
                let live: u64 = breakdown.resources().iter().map(|r| r.bytes).sum();
                tracing::info!(
                    "[dry-run] live data counted: {} (what a defragmented member would hold after the compaction)",
                    format_bytes(live)
                );
                live
            }
            Err(e) => {
                tracing::warn!(
                    "[dry-run] cannot count live data ({e}); projecting {} in use",
                    format_bytes(in_use)
                );
                in_use
            }
        }
    }

    /// In a dry run, the observation as the real heal would see it after its steps so far.
    pub(in crate::engine) fn projected(
        &self,
        obs: Observation,
        done: &HashSet<u64>,
    ) -> Observation {
        match self.episode.dry_live() {
            Some(live) if self.cfg.dry_run => project_defragmented(&obs, done, live),
            _ => obs,
        }
    }

    /// NOSPACE is gone (healed by us, or disarmed by someone else): close the episode.
    pub(in crate::engine) fn end_nospace_episode(&mut self, ctx: &Ctx<'_>) {
        if self.episode.close() {
            tracing::info!("NOSPACE is no longer raised");
            self.guard.set_blocked(ctx, "unhealthy", Vec::new());
            self.guard.set_heal_blocked(ctx, None, None);
            ctx.shared.write().maintenance.nospace_since = None;
        }
    }
}
