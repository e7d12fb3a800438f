//! Act: the only code that mutates etcd — compact, defragment, move leadership, disarm NOSPACE.
//!
//! Why one narrow module: every mutation goes through here, so every mutation is logged as one
//! structured event (member, sizes, duration), counted in metrics, listed in /status, and
//! honours `--dry-run` (which logs what it would do, with the numbers, and changes nothing).

pub mod candidacy;

use std::time::{Duration, Instant};

use crate::decide::plan::DefragStep;
use crate::etcd::{CompactOutcome, Etcd, EtcdError};
use crate::observe::unix_now;
use crate::report::actions::ActionRecord;
use crate::report::metrics::{MemberLabel, MemberResultLabel, ResultLabel};
use crate::report::state::Shared;
use crate::units::format_bytes;

pub struct Act<'a> {
    pub etcd: &'a Etcd,
    pub shared: &'a Shared,
    pub dry_run: bool,
}

impl Act<'_> {
    /// `--dry-run`: lists the step it would have taken (the caller logs it with its numbers).
    fn listed_dry_run(&self, action: &str, member: Option<&str>, detail: String) {
        self.record(
            action,
            member,
            "dry-run",
            detail,
            unix_now(),
            Duration::ZERO,
        );
    }

    fn record(
        &self,
        action: &str,
        member: Option<&str>,
        result: &str,
        detail: String,
        started: f64,
        took: Duration,
    ) {
        self.shared.record_action(ActionRecord {
            at: started,
            action: action.to_string(),
            member: member.map(str::to_string),
            result: result.to_string(),
            detail,
            duration_seconds: took.as_secs_f64(),
        });
    }

    /// Physical compaction to `revision` through `endpoint`. "Already compacted" is a normal
    /// outcome (the apiserver or etcd itself got there first).
    pub async fn compact(
        &self,
        endpoint: &str,
        revision: i64,
        why: &str,
    ) -> Result<CompactOutcome, EtcdError> {
        if self.dry_run {
            tracing::info!(
                action = "compact",
                revision,
                why,
                "[dry-run] would compact to revision {revision} ({why})"
            );
            self.listed_dry_run("compact", None, format!("to revision {revision}: {why}"));
            return Ok(CompactOutcome::Compacted);
        }
        let started = unix_now();
        let clock = Instant::now();
        let result = self.etcd.compact(endpoint, revision).await;
        let took = clock.elapsed();
        let (label, detail) = match &result {
            Ok(CompactOutcome::Compacted) => {
                self.shared.metrics.compacted_revision.set(revision);
                self.shared.write().maintenance.compacted_revision = Some(revision);
                tracing::info!(
                    action = "compact",
                    revision,
                    why,
                    duration_s = took.as_secs_f64(),
                    "compacted to revision {revision} ({why})"
                );
                ("ok", format!("to revision {revision}: {why}"))
            }
            Ok(CompactOutcome::AlreadyCompacted) => {
                tracing::info!(
                    action = "compact",
                    revision,
                    "revision {revision} was already compacted (by the apiserver or etcd); nothing to do"
                );
                (
                    "already_compacted",
                    format!("revision {revision} already compacted"),
                )
            }
            Err(e) => {
                tracing::warn!(action = "compact", revision, error = %e, "compaction failed: {e}");
                ("failed", e.to_string())
            }
        };
        self.shared
            .metrics
            .compaction
            .get_or_create(&ResultLabel {
                result: label.into(),
            })
            .inc();
        self.record("compact", None, label, detail, started, took);
        result
    }

    /// Defragments one member. Returns how long it took. The caller checks health and
    /// integrity around it; a timeout means the defrag may still be running on the server.
    pub async fn defragment(&self, step: &DefragStep, cause: &str) -> Result<Duration, EtcdError> {
        let before = format!(
            "db {} (in use {})",
            format_bytes(step.db_size),
            format_bytes(step.db_size_in_use)
        );
        if self.dry_run {
            tracing::info!(action = "defragment", member = %step.name, db_size = step.db_size, db_size_in_use = step.db_size_in_use, cause,
                "[dry-run] would defragment {} ({before}; expected after ≈ {})", step.name, format_bytes(step.db_size_in_use));
            self.listed_dry_run("defragment", Some(&step.name), format!("{cause}: {before}"));
            return Ok(Duration::ZERO);
        }
        tracing::info!(action = "defragment", member = %step.name, db_size = step.db_size, db_size_in_use = step.db_size_in_use, cause,
            "defragmenting {} ({before}; {})", step.name, if step.is_leader { "leader" } else { "follower" });
        let started = unix_now();
        let clock = Instant::now();
        self.shared.write().maintenance.in_flight =
            Some(format!("defragmentation of {}", step.name));
        let result = self.etcd.defragment(&step.endpoint).await;
        self.shared.write().maintenance.in_flight = None;
        let took = clock.elapsed();
        let member = MemberLabel {
            member: step.name.clone(),
        };
        let label = match &result {
            Ok(()) => "ok",
            Err(e) if e.kind == crate::etcd::FailureKind::Timeout => "timeout",
            Err(_) => "failed",
        };
        self.shared
            .metrics
            .defrag
            .get_or_create(&MemberResultLabel {
                member: step.name.clone(),
                result: label.into(),
            })
            .inc();
        if result.is_ok() {
            self.shared
                .metrics
                .defrag_duration
                .get_or_create(&member)
                .observe(took.as_secs_f64());
        }
        let after = match &result {
            Ok(()) => match self.etcd.status(&step.endpoint).await {
                Ok(s) => {
                    tracing::info!(action = "defragment", member = %step.name, db_size_before = step.db_size, db_size_after = s.db_size,
                        db_size_in_use_after = s.db_size_in_use, duration_s = took.as_secs_f64(), cause,
                        "defragmented {} in {:.2}s: {} → {}", step.name, took.as_secs_f64(), format_bytes(step.db_size), format_bytes(s.db_size));
                    format!("{before} → db {}", format_bytes(s.db_size))
                }
                Err(_) => format!("{before} → (status unavailable)"),
            },
            Err(e) => {
                tracing::warn!(action = "defragment", member = %step.name, error = %e, duration_s = took.as_secs_f64(), "defragmentation of {} did not complete: {e}", step.name);
                format!("{before}: {e}")
            }
        };
        self.record(
            "defragment",
            Some(&step.name),
            label,
            format!("{cause}: {after}"),
            started,
            took,
        );
        result.map(|_| took)
    }

    /// Hands leadership from the leader (at `leader_endpoint`) to `target`.
    pub async fn move_leader(
        &self,
        leader_endpoint: &str,
        leader_name: &str,
        target: u64,
        target_name: &str,
    ) -> Result<(), EtcdError> {
        let detail = format!("{leader_name} → {target_name}, before defragmenting {leader_name}");
        if self.dry_run {
            tracing::info!(
                action = "move-leader",
                from = leader_name,
                to = target_name,
                "[dry-run] would move leadership {detail}"
            );
            self.listed_dry_run("move-leader", Some(leader_name), detail);
            return Ok(());
        }
        let started = unix_now();
        let clock = Instant::now();
        let result = self.etcd.move_leader(leader_endpoint, target).await;
        let took = clock.elapsed();
        match &result {
            Ok(()) => tracing::info!(
                action = "move-leader",
                from = leader_name,
                to = target_name,
                duration_s = took.as_secs_f64(),
                "moved leadership {detail}"
            ),
            Err(e) => {
                tracing::warn!(action = "move-leader", from = leader_name, to = target_name, error = %e, "moving leadership failed: {e}")
            }
        }
        self.record(
            "move-leader",
            Some(leader_name),
            if result.is_ok() { "ok" } else { "failed" },
            detail,
            started,
            took,
        );
        result
    }

    /// Disarms NOSPACE on one member (never another alarm, never "all").
    pub async fn disarm_nospace(
        &self,
        endpoint: &str,
        member_id: u64,
        member_name: &str,
        detail: &str,
    ) -> Result<(), EtcdError> {
        if self.dry_run {
            tracing::info!(
                action = "disarm",
                member = member_name,
                "[dry-run] would disarm NOSPACE on {member_name} ({detail})"
            );
            self.listed_dry_run("disarm", Some(member_name), detail.to_string());
            return Ok(());
        }
        let started = unix_now();
        let clock = Instant::now();
        let result = self.etcd.disarm_nospace(endpoint, member_id).await;
        let took = clock.elapsed();
        match &result {
            Ok(()) => {
                self.shared.metrics.alarm_disarm.inc();
                tracing::info!(
                    action = "disarm",
                    member = member_name,
                    "disarmed NOSPACE on {member_name} ({detail})"
                );
            }
            Err(e) => {
                tracing::warn!(action = "disarm", member = member_name, error = %e, "disarming NOSPACE failed: {e}")
            }
        }
        self.record(
            "disarm",
            Some(member_name),
            if result.is_ok() { "ok" } else { "failed" },
            detail.to_string(),
            started,
            took,
        );
        result
    }
}
