//! The registration of every metric, by concern, and their initial values (every labelled
//! reason and outcome is exported from the start, so alerts can match it at 0).

use prometheus_client::registry::{Registry, Unit};

use super::*;

/// What the last observation saw: members, quota, alarms, readiness.
pub(super) fn cluster(r: &mut Registry, m: &Metrics) {
    r.register_with_unit(
        "member_db_size",
        "Physical size of the member's db file",
        Unit::Bytes,
        m.member_db_size.clone(),
    );
    r.register_with_unit(
        "member_db_size_in_use",
        "Bytes of the member's db file holding data",
        Unit::Bytes,
        m.member_db_size_in_use.clone(),
    );
    r.register(
        "member_is_leader",
        "1 when the member is the raft leader",
        m.member_is_leader.clone(),
    );
    r.register(
        "member_is_learner",
        "1 when the member is a raft learner",
        m.member_is_learner.clone(),
    );
    r.register(
        "member_up",
        "1 when the member answered Status in the last observation",
        m.member_up.clone(),
    );
    r.register_with_unit(
        "member_fragmentation",
        "Free share of the member's db file (reclaimable by defragmentation)",
        Unit::Other("ratio".into()),
        m.member_fragmentation.clone(),
    );
    r.register_with_unit(
        "member_quota_usage",
        "Member's db size over the space quota",
        Unit::Other("ratio".into()),
        m.member_quota_usage.clone(),
    );
    r.register_with_unit(
        "quota",
        "The etcd space quota in force",
        Unit::Bytes,
        m.quota_bytes.clone(),
    );
    r.register(
        "quota_source",
        "1 for where the quota figure came from (etcd, metrics-url, flag)",
        m.quota_source.clone(),
    );
    r.register(
        "alarm_active",
        "1 while the alarm is raised on any member",
        m.alarm_active.clone(),
    );
    r.register(
        "observation_errors",
        "Observations that failed entirely",
        m.observation_errors.clone(),
    );
    r.register_with_unit(
        "last_observation_timestamp",
        "Unix time of the last successful observation",
        Unit::Seconds,
        m.last_observation_timestamp.clone(),
    );
    r.register(
        "ready",
        "1 when an observation succeeded within the last 3 poll intervals",
        m.ready.clone(),
    );
}

/// What maintenance did and why it is refused.
pub(super) fn maintenance(r: &mut Registry, m: &Metrics) {
    r.register(
        "is_actor",
        "1 when this instance is the one allowed to maintain the cluster",
        m.is_actor.clone(),
    );
    r.register(
        "compaction",
        "Compactions by result (ok, already_compacted, failed, dry_run)",
        m.compaction.clone(),
    );
    r.register(
        "compacted_revision",
        "Revision of the last compaction this instance made",
        m.compacted_revision.clone(),
    );
    r.register(
        "defrag",
        "Defragmentations by member and result",
        m.defrag.clone(),
    );
    r.register_with_unit(
        "defrag_duration",
        "Time a member's defragmentation took",
        Unit::Seconds,
        m.defrag_duration.clone(),
    );
    r.register(
        "alarm_disarm",
        "NOSPACE alarms disarmed after space was verified free",
        m.alarm_disarm.clone(),
    );
    r.register_with_unit(
        "heal_duration",
        "Time from NOSPACE seen to the alarm gone",
        Unit::Seconds,
        m.heal_duration.clone(),
    );
    r.register(
        "heal_blocked",
        "1 while NOSPACE cannot be healed, by reason",
        m.heal_blocked.clone(),
    );
    r.register(
        "maintenance_blocked",
        "1 while maintenance is refused, by reason",
        m.maintenance_blocked.clone(),
    );
}

/// Churn, forecast, the space controller, the election, integrity.
pub(super) fn diagnosis(r: &mut Registry, m: &Metrics) {
    r.register(
        "churn_writes_per_minute",
        "Writes per minute to the 10 most written keys (last minute)",
        m.churn_writes_per_minute.clone(),
    );
    r.register(
        "sync_loops",
        "Keys written more often than --churn-threshold per minute (suspected sync loops)",
        m.sync_loops.clone(),
    );
    r.register(
        "watch_events",
        "Write events seen by the churn watch",
        m.watch_events.clone(),
    );
    r.register(
        "seconds_until_quota",
        "Forecast seconds until the largest member reaches the quota (+Inf: not growing)",
        m.seconds_until_quota.clone(),
    );
    r.register(
        "growth_bytes_per_second",
        "Least-squares growth of the largest member's db over the last hour",
        m.growth_bytes_per_second.clone(),
    );
    r.register_with_unit(
        "history_retention",
        "History the space controller keeps now (the configured retention while it fits)",
        Unit::Seconds,
        m.history_retention_seconds.clone(),
    );
    r.register_with_unit(
        "space_pressure",
        "What the configured retention would hold (live data + history) over the space target; above 1 the controller keeps less history",
        Unit::Other("ratio".into()),
        m.space_pressure.clone(),
    );
    r.register_with_unit(
        "space_target",
        "Bytes in use the space controller keeps the db under (--space-target of the quota)",
        Unit::Bytes,
        m.space_target_bytes.clone(),
    );
    r.register(
        "history_bytes_per_second",
        "New history per second: versions superseded by updates and deletes (churn watch)",
        m.history_bytes_per_second.clone(),
    );
    r.register_with_unit(
        "live_data",
        "Estimated live data: bytes in use less the history kept",
        Unit::Bytes,
        m.live_data_bytes.clone(),
    );
    r.register(
        "live_data_over_target",
        "1 while live data alone is over the space target (compaction cannot help)",
        m.live_data_over_target.clone(),
    );
    r.register(
        "registered",
        "1 while this instance's actor candidacy (a lease-bound key in etcd) is alive",
        m.registered.clone(),
    );
    r.register(
        "integrity_checks",
        "KV-hash integrity checks by outcome (verified: compared and equal; unverifiable: a comparison could not be made; mismatch)",
        m.integrity_checks.clone(),
    );
    for outcome in ["verified", "unverifiable", "mismatch"] {
        let _ = m.integrity_checks.get_or_create(&OutcomeLabel {
            outcome: outcome.into(),
        });
    }
}

/// Values that are not zero before the first observation, and every known label at 0.
pub(super) fn initial_values(m: &Metrics) {
    m.seconds_until_quota.set(f64::INFINITY);
    for alarm in [AlarmKind::NoSpace, AlarmKind::Corrupt] {
        m.alarm_active
            .get_or_create(&AlarmLabel {
                alarm: alarm.as_str().into(),
            })
            .set(0);
    }
    for result in ["ok", "already_compacted", "failed"] {
        let _ = m.compaction.get_or_create(&ResultLabel {
            result: result.into(),
        });
    }
    for reason in HEAL_BLOCKED_REASONS {
        m.heal_blocked
            .get_or_create(&ReasonLabel {
                reason: reason.into(),
            })
            .set(0);
    }
    for reason in MAINTENANCE_BLOCKED_REASONS {
        m.maintenance_blocked
            .get_or_create(&ReasonLabel {
                reason: reason.into(),
            })
            .set(0);
    }
}
