//! The registration of every metric, by concern, and their initial values (every labelled
//! reason and outcome is exported from the start, so alerts can match it at 0).
//!
//! One table row per metric (name, unit, value, help), so adding a metric is one line here
//! and one field in `Metrics`.

use prometheus_client::encoding::EncodeLabelSet;
use prometheus_client::metrics::family::Family;
use prometheus_client::metrics::gauge::Gauge;
use prometheus_client::registry::{Metric, Registry, Unit};

use super::*;

/// `name: unit, value, help;` rows, registered in the order listed.
macro_rules! register {
    ($r:ident; $($name:literal: $unit:ident, $metric:expr, $help:literal;)*) => {
        $( add($r, $name, $help, unit!($unit), $metric.clone()); )*
    };
}

/// The unit suffix a row names (`none` for counts and flags).
macro_rules! unit {
    (none) => {
        None
    };
    (bytes) => {
        Some(Unit::Bytes)
    };
    (seconds) => {
        Some(Unit::Seconds)
    };
    (ratio) => {
        Some(Unit::Other("ratio".into()))
    };
}

fn add(r: &mut Registry, name: &str, help: &str, unit: Option<Unit>, metric: impl Metric) {
    match unit {
        Some(unit) => r.register_with_unit(name, help, unit, metric),
        None => r.register(name, help, metric),
    }
}

/// What the last observation saw: members, quota, alarms, readiness.
pub(super) fn cluster(r: &mut Registry, m: &Metrics) {
    register! { r;
        "member_db_size": bytes, m.member_db_size, "Physical size of the member's db file";
        "member_db_size_in_use": bytes, m.member_db_size_in_use, "Bytes of the member's db file holding data";
        "member_is_leader": none, m.member_is_leader, "1 when the member is the raft leader";
        "member_is_learner": none, m.member_is_learner, "1 when the member is a raft learner";
        "member_up": none, m.member_up, "1 when the member answered Status in the last observation";
        "member_fragmentation": ratio, m.member_fragmentation, "Free share of the member's db file (reclaimable by defragmentation)";
        "member_quota_usage": ratio, m.member_quota_usage, "Member's db size over the space quota";
        "quota": bytes, m.quota_bytes, "The etcd space quota in force";
        "quota_source": none, m.quota_source, "1 for where the quota figure came from (etcd, etcd-default, metrics-url, flag, candidate)";
        "alarm_active": none, m.alarm_active, "1 while the alarm is raised on any member";
        "observation_errors": none, m.observation_errors, "Observations that failed entirely";
        "last_observation_timestamp": seconds, m.last_observation_timestamp, "Unix time of the last successful observation";
        "ready": none, m.ready, "1 when an observation succeeded within the last 3 poll intervals";
    }
}

/// What maintenance did and why it is refused.
pub(super) fn maintenance(r: &mut Registry, m: &Metrics) {
    register! { r;
        "is_actor": none, m.is_actor, "1 when this instance is the one allowed to maintain the cluster";
        "compaction": none, m.compaction, "Compactions by result (ok, already_compacted, failed, dry_run)";
        "compacted_revision": none, m.compacted_revision, "Revision of the last compaction this instance made";
        "defrag": none, m.defrag, "Defragmentations by member and result";
        "defrag_duration": seconds, m.defrag_duration, "Time a member's defragmentation took";
        "alarm_disarm": none, m.alarm_disarm, "NOSPACE alarms disarmed after space was verified free";
        "heal_duration": seconds, m.heal_duration, "Time from NOSPACE seen to the alarm gone";
        "heal_blocked": none, m.heal_blocked, "1 while NOSPACE cannot be healed, by reason";
        "maintenance_blocked": none, m.maintenance_blocked, "1 while maintenance is refused, by reason";
    }
}

/// Churn, forecast, the space controller, the election, integrity.
pub(super) fn diagnosis(r: &mut Registry, m: &Metrics) {
    register! { r;
        "churn_writes_per_minute": none, m.churn_writes_per_minute, "Writes per minute to the 10 most written keys (last minute)";
        "sync_loops": none, m.sync_loops, "Keys written more often than --churn-threshold per minute (suspected sync loops)";
        "watch_events": none, m.watch_events, "Write events seen by the churn watch";
        "seconds_until_quota": none, m.seconds_until_quota, "Forecast seconds until the largest member reaches the quota (+Inf: not growing)";
        "growth_bytes_per_second": none, m.growth_bytes_per_second, "Least-squares growth of the largest member's db over the last hour";
        "history_retention": seconds, m.history_retention_seconds, "History the space controller keeps now (the configured retention while it fits)";
        "watch_progress_notify_interval": seconds, m.watch_progress_notify_interval_seconds, "The local member's watch progress-notify interval: measured on etcd-upkeep's own watch, given by --watch-progress-notify-interval, or etcd's 10m assumed until then (/status says which)";
        "history_kept_over_watch_progress_interval": ratio, m.history_over_watch_progress_interval, "History kept over the progress-notify interval; below 1 the kube-apiserver's watch cache reads compacted revisions (consistency checks, paginated LISTs fail): /status names the etcd flag to set";
        "space_pressure": ratio, m.space_pressure, "What the configured retention would hold (live data + history) over the space target; above 1 the controller keeps less history";
        "space_target": bytes, m.space_target_bytes, "Bytes in use the space controller keeps the db under (--space-target of the quota)";
        "history_bytes_per_second": none, m.history_bytes_per_second, "New history per second: versions superseded by updates and deletes (churn watch)";
        "live_data": bytes, m.live_data_bytes, "Estimated live data: bytes in use less the history kept";
        "live_data_over_target": none, m.live_data_over_target, "1 while live data alone is over the space target (compaction cannot help)";
        "registered": none, m.registered, "1 while this instance's actor candidacy (a lease-bound key in etcd) is alive";
        "integrity_checks": none, m.integrity_checks, "KV-hash integrity checks by outcome (verified: compared and equal; unverifiable: a comparison could not be made; mismatch)";
        "kubernetes_events": none, m.kubernetes_events, "Kubernetes Events about this pod by outcome (recorded, failed, limited: over the rate, dropped: the queue to the API was full); only with --kubernetes-events";
    }
}

/// Values that are not zero before the first observation, and every known label at 0.
pub(super) fn initial_values(m: &Metrics) {
    m.seconds_until_quota.set(f64::INFINITY);
    let alarms = [AlarmKind::NoSpace, AlarmKind::Corrupt].map(|alarm| AlarmLabel {
        alarm: alarm.as_str().into(),
    });
    zero_gauges(&m.alarm_active, alarms);
    let results = ["ok", "already_compacted", "failed"];
    create_counters(
        &m.compaction,
        results.map(|result| ResultLabel {
            result: result.into(),
        }),
    );
    let outcomes = ["verified", "unverifiable", "mismatch"];
    let outcomes = outcomes.map(|outcome| OutcomeLabel {
        outcome: outcome.into(),
    });
    create_counters(&m.integrity_checks, outcomes);
    zero_gauges(&m.heal_blocked, HEAL_BLOCKED_REASONS.map(reason));
    zero_gauges(
        &m.maintenance_blocked,
        MAINTENANCE_BLOCKED_REASONS.map(reason),
    );
}

fn reason(reason: &str) -> ReasonLabel {
    ReasonLabel {
        reason: reason.into(),
    }
}

/// Gauges are exported at 0 once created.
fn zero_gauges<L: EncodeLabelSet + Clone + Eq + std::hash::Hash>(
    family: &Family<L, Gauge>,
    labels: impl IntoIterator<Item = L>,
) {
    for label in labels {
        family.get_or_create(&label).set(0);
    }
}

/// Counters start at 0 when created.
fn create_counters<L: EncodeLabelSet + Clone + Eq + std::hash::Hash>(
    family: &Family<L, Counter>,
    labels: impl IntoIterator<Item = L>,
) {
    for label in labels {
        let _ = family.get_or_create(&label);
    }
}
