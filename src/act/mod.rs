//! Act: the only code that mutates etcd — compact, defragment, move leadership, disarm NOSPACE.
//!
//! Why one narrow module: every mutation goes through here, so every mutation is logged as one
//! structured event (member, sizes, duration), counted in metrics, listed in /status, and
//! honours `--dry-run` (which logs what it would do, with the numbers, and changes nothing).

pub mod candidacy;
mod candidate_value;

use std::future::Future;
use std::time::{Duration, Instant};

use crate::clock::wall_now;
use crate::decide::plan::DefragStep;
use crate::etcd::{CompactOutcome, Etcd, EtcdError};
use crate::report::actions::ActionRecord;
use crate::report::metrics::{MemberLabel, MemberResultLabel, ResultLabel};
use crate::report::state::Shared;
use crate::units::format_bytes;

pub struct Act<'a> {
    pub etcd: &'a Etcd,
    pub shared: &'a Shared,
    pub dry_run: bool,
}

/// One mutation, described once for the log, the action list and `--dry-run`.
struct Step<'s> {
    action: &'static str,
    member: Option<&'s str>,
    /// Leadership moves only: the member taking over (`member` hands over).
    to: Option<&'s str>,
    /// What is done, as a phrase: "compact to revision 42 (space)". The dry run logs
    /// "[dry-run] would {what}", a failure "could not {what}: {error}".
    what: String,
    /// The action list's detail.
    detail: String,
}

/// A mutation that was really made: its result, when it started and how long it took.
struct Ran<T> {
    result: Result<T, EtcdError>,
    started: f64,
    took: Duration,
}

impl Act<'_> {
    /// The one path of every mutation: under `--dry-run` it logs and lists the step and returns
    /// `None` without calling etcd; otherwise it times the call and logs a failure. The caller
    /// logs success with its own numbers, counts it, and calls [`Act::record`].
    async fn perform<T>(
        &self,
        step: &Step<'_>,
        call: impl Future<Output = Result<T, EtcdError>>,
    ) -> Option<Ran<T>> {
        let from = step.to.and(step.member);
        if self.dry_run {
            tracing::info!(
                action = step.action,
                member = step.member,
                from,
                to = step.to,
                "[dry-run] would {}",
                step.what
            );
            self.shared.record_action(ActionRecord {
                at: wall_now(),
                action: step.action.to_string(),
                member: step.member.map(str::to_string),
                result: "dry-run".to_string(),
                detail: step.detail.clone(),
                duration_seconds: 0.0,
            });
            return None;
        }
        let started = wall_now();
        let clock = Instant::now();
        let result = call.await;
        let took = clock.elapsed();
        if let Err(e) = &result {
            tracing::warn!(action = step.action, member = step.member, from, to = step.to, error = %e,
                duration_s = took.as_secs_f64(), "could not {}: {e}", step.what);
        }
        Some(Ran {
            result,
            started,
            took,
        })
    }

    /// Lists a mutation that was made in /status, with its result label and detail.
    fn record<T>(&self, step: &Step<'_>, ran: &Ran<T>, result: &str, detail: String) {
        self.shared.record_action(ActionRecord {
            at: ran.started,
            action: step.action.to_string(),
            member: step.member.map(str::to_string),
            result: result.to_string(),
            detail,
            duration_seconds: ran.took.as_secs_f64(),
        });
    }

    /// Physical compaction to `revision` through `endpoint`. "Already compacted" is a normal
    /// outcome (the apiserver or etcd itself got there first). A `routine` one (the space
    /// controller's, every poll under a sync loop) logs at DEBUG: its caller summarises them.
    pub async fn compact(
        &self,
        endpoint: &str,
        revision: i64,
        why: &str,
        routine: bool,
    ) -> Result<CompactOutcome, EtcdError> {
        let step = Step {
            action: "compact",
            member: None,
            to: None,
            what: format!("compact to revision {revision} ({why})"),
            detail: format!("to revision {revision}: {why}"),
        };
        let Some(ran) = self
            .perform(&step, self.etcd.compact(endpoint, revision))
            .await
        else {
            return Ok(CompactOutcome::Compacted);
        };
        let (label, detail) = match &ran.result {
            Ok(CompactOutcome::Compacted) => {
                self.shared.metrics.compacted_revision.set(revision);
                self.shared.write().maintenance.compacted_revision = Some(revision);
                let took = ran.took.as_secs_f64();
                let message = format!("compacted to revision {revision} ({why})");
                if routine {
                    tracing::debug!(
                        action = "compact",
                        revision,
                        why,
                        duration_s = took,
                        "{message}"
                    );
                } else {
                    tracing::info!(
                        action = "compact",
                        revision,
                        why,
                        duration_s = took,
                        "{message}"
                    );
                }
                ("ok", step.detail.clone())
            }
            Ok(CompactOutcome::AlreadyCompacted) => {
                tracing::info!(
                    action = "compact",
                    revision,
                    "revision {revision} was already compacted (by the apiserver or etcd); nothing to do"
                );
                let detail = format!("revision {revision} already compacted");
                ("already_compacted", detail)
            }
            Err(e) => ("failed", e.to_string()),
        };
        let result = ResultLabel {
            result: label.into(),
        };
        self.shared.metrics.compaction.get_or_create(&result).inc();
        self.record(&step, &ran, label, detail);
        ran.result
    }

    /// Defragments one member. Returns how long it took. The caller checks health and
    /// integrity around it; a timeout means the defrag may still be running on the server.
    pub async fn defragment(&self, step: &DefragStep, cause: &str) -> Result<Duration, EtcdError> {
        let before = format!(
            "db {} (in use {})",
            format_bytes(step.db_size),
            format_bytes(step.db_size_in_use)
        );
        let action = Step {
            action: "defragment",
            member: Some(&step.name),
            to: None,
            what: format!(
                "defragment {} ({before}; expected after ≈ {})",
                step.name,
                format_bytes(step.db_size_in_use)
            ),
            detail: format!("{cause}: {before}"),
        };
        if !self.dry_run {
            let role = if step.is_leader { "leader" } else { "follower" };
            tracing::info!(action = "defragment", member = %step.name, db_size = step.db_size, db_size_in_use = step.db_size_in_use, cause,
                "defragmenting {} ({before}; {role})", step.name);
            self.shared.write().maintenance.in_flight =
                Some(format!("defragmentation of {}", step.name));
        }
        let ran = self
            .perform(&action, self.etcd.defragment(&step.endpoint))
            .await;
        let Some(ran) = ran else {
            return Ok(Duration::ZERO);
        };
        self.shared.write().maintenance.in_flight = None;
        let label = match &ran.result {
            Ok(()) => "ok",
            Err(e) if e.kind == crate::etcd::FailureKind::Timeout => "timeout",
            Err(_) => "failed",
        };
        let result = MemberResultLabel {
            member: step.name.clone(),
            result: label.into(),
        };
        self.shared.metrics.defrag.get_or_create(&result).inc();
        let after = match &ran.result {
            Ok(()) => format!(
                "{before} → {}",
                self.defragmented(step, ran.took, cause).await
            ),
            Err(e) => format!("{before}: {e}"),
        };
        self.record(&action, &ran, label, format!("{cause}: {after}"));
        ran.result.map(|_| ran.took)
    }

    /// After a defragmentation: its duration in the histogram, and the member's new size (read
    /// back, for the log and the action list).
    async fn defragmented(&self, step: &DefragStep, took: Duration, cause: &str) -> String {
        let member = MemberLabel {
            member: step.name.clone(),
        };
        let seconds = took.as_secs_f64();
        (self.shared.metrics.defrag_duration.get_or_create(&member)).observe(seconds);
        match self.etcd.status(&step.endpoint).await {
            Ok(s) => {
                tracing::info!(action = "defragment", member = %step.name, db_size_before = step.db_size, db_size_after = s.db_size,
                    db_size_in_use_after = s.db_size_in_use, duration_s = took.as_secs_f64(), cause,
                    "defragmented {} in {:.2}s: {} → {}", step.name, took.as_secs_f64(), format_bytes(step.db_size), format_bytes(s.db_size));
                format!("db {}", format_bytes(s.db_size))
            }
            Err(_) => "(status unavailable)".to_string(),
        }
    }

    /// Hands leadership from the leader (at `leader_endpoint`) to `target`.
    pub async fn move_leader(
        &self,
        leader_endpoint: &str,
        leader_name: &str,
        target: u64,
        target_name: &str,
        purpose: &str,
    ) -> Result<(), EtcdError> {
        let detail = format!("{leader_name} → {target_name}, {purpose}");
        let step = Step {
            action: "move-leader",
            member: Some(leader_name),
            to: Some(target_name),
            what: format!("move leadership {detail}"),
            detail,
        };
        let call = self.etcd.move_leader(leader_endpoint, target);
        let Some(ran) = self.perform(&step, call).await else {
            return Ok(());
        };
        if ran.result.is_ok() {
            tracing::info!(
                action = "move-leader",
                from = leader_name,
                to = target_name,
                duration_s = ran.took.as_secs_f64(),
                "moved leadership {}",
                step.detail
            );
        }
        self.record(&step, &ran, ok_or_failed(&ran), step.detail.clone());
        ran.result
    }

    /// Disarms NOSPACE on one member (never another alarm, never "all").
    pub async fn disarm_nospace(
        &self,
        endpoint: &str,
        member_id: u64,
        member_name: &str,
        detail: &str,
    ) -> Result<(), EtcdError> {
        let step = Step {
            action: "disarm",
            member: Some(member_name),
            to: None,
            what: format!("disarm NOSPACE on {member_name} ({detail})"),
            detail: detail.to_string(),
        };
        let call = self.etcd.disarm_nospace(endpoint, member_id);
        let Some(ran) = self.perform(&step, call).await else {
            return Ok(());
        };
        if ran.result.is_ok() {
            self.shared.metrics.alarm_disarm.inc();
            tracing::info!(
                action = "disarm",
                member = member_name,
                "disarmed NOSPACE on {member_name} ({detail})"
            );
        }
        self.record(&step, &ran, ok_or_failed(&ran), step.detail.clone());
        ran.result
    }
}

fn ok_or_failed<T>(ran: &Ran<T>) -> &'static str {
    if ran.result.is_ok() { "ok" } else { "failed" }
}
