//! Prometheus metrics, in OpenMetrics text via prometheus-client.
//!
//! Why these names: `etcd_upkeep_` prefix, base units in the name (`_bytes`, `_seconds`,
//! `_ratio`), counters ending in `_total`, labels with bounded cardinality (member names, a
//! fixed set of alarm kinds, results and reasons). The output must pass `promtool check metrics`.

use std::sync::atomic::AtomicU64;

use prometheus_client::encoding::EncodeLabelSet;
use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::family::Family;
use prometheus_client::metrics::gauge::Gauge;
use prometheus_client::metrics::histogram::{Histogram, exponential_buckets};
use prometheus_client::registry::Registry;

mod register;

use crate::etcd::AlarmKind;
use crate::observe::Observation;

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct MemberLabel {
    pub member: String,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct AlarmLabel {
    pub alarm: String,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct ResultLabel {
    pub result: String,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct MemberResultLabel {
    pub member: String,
    pub result: String,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct ReasonLabel {
    pub reason: String,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct SourceLabel {
    pub source: String,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct OutcomeLabel {
    pub outcome: String,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct ChurnLabel {
    pub resource: String,
    pub key: String,
}

type FloatGauge = Gauge<f64, AtomicU64>;

fn duration_histogram() -> Histogram {
    // 50 ms … ~27 min: a tiny test db defragments in milliseconds, an 8 GiB one in minutes.
    Histogram::new(exponential_buckets(0.05, 2.0, 16))
}

/// Every metric the daemon exports. Cloning shares the underlying values.
#[derive(Clone)]
pub struct Metrics {
    pub member_db_size: Family<MemberLabel, Gauge>,
    pub member_db_size_in_use: Family<MemberLabel, Gauge>,
    pub member_is_leader: Family<MemberLabel, Gauge>,
    pub member_is_learner: Family<MemberLabel, Gauge>,
    pub member_up: Family<MemberLabel, Gauge>,
    pub member_fragmentation: Family<MemberLabel, FloatGauge>,
    pub member_quota_usage: Family<MemberLabel, FloatGauge>,
    pub quota_bytes: Gauge,
    pub quota_source: Family<SourceLabel, Gauge>,
    pub alarm_active: Family<AlarmLabel, Gauge>,
    pub observation_errors: Counter,
    pub last_observation_timestamp: FloatGauge,
    pub ready: Gauge,
    pub is_actor: Gauge,
    pub compaction: Family<ResultLabel, Counter>,
    pub compacted_revision: Gauge,
    pub defrag: Family<MemberResultLabel, Counter>,
    pub defrag_duration: Family<MemberLabel, Histogram, fn() -> Histogram>,
    pub alarm_disarm: Counter,
    pub heal_duration: Histogram,
    pub heal_blocked: Family<ReasonLabel, Gauge>,
    pub maintenance_blocked: Family<ReasonLabel, Gauge>,
    pub churn_writes_per_minute: Family<ChurnLabel, FloatGauge>,
    pub sync_loops: Gauge,
    pub watch_events: Counter,
    pub seconds_until_quota: FloatGauge,
    pub growth_bytes_per_second: FloatGauge,
    pub history_retention_seconds: FloatGauge,
    pub watch_progress_notify_interval_seconds: FloatGauge,
    pub history_over_watch_progress_interval: FloatGauge,
    pub space_pressure: FloatGauge,
    pub space_target_bytes: Gauge,
    pub history_bytes_per_second: FloatGauge,
    pub live_data_bytes: Gauge,
    pub live_data_over_target: Gauge,
    pub registered: Gauge,
    pub integrity_checks: Family<OutcomeLabel, Counter>,
    /// Kubernetes Events by outcome (`--kubernetes-events`).
    pub kubernetes_events: Family<OutcomeLabel, Counter>,
}

/// Reasons a heal can be blocked; all are always exported (0 or 1) so alerts can match them.
pub const HEAL_BLOCKED_REASONS: [&str; 3] =
    ["live_data_over_quota", "maintenance_blocked", "not_actor"];
/// Reasons maintenance can be blocked.
pub const MAINTENANCE_BLOCKED_REASONS: [&str; 7] = [
    "corrupt_alarm",
    "unknown_alarm",
    "unhealthy",
    "defragmenting",
    "downgrade",
    "disk_space",
    "hash_mismatch",
];

impl Metrics {
    pub fn new(registry: &mut Registry) -> Metrics {
        let m = Metrics {
            member_db_size: Family::default(),
            member_db_size_in_use: Family::default(),
            member_is_leader: Family::default(),
            member_is_learner: Family::default(),
            member_up: Family::default(),
            member_fragmentation: Family::default(),
            member_quota_usage: Family::default(),
            quota_bytes: Gauge::default(),
            quota_source: Family::default(),
            alarm_active: Family::default(),
            observation_errors: Counter::default(),
            last_observation_timestamp: FloatGauge::default(),
            ready: Gauge::default(),
            is_actor: Gauge::default(),
            compaction: Family::default(),
            compacted_revision: Gauge::default(),
            defrag: Family::default(),
            defrag_duration: Family::new_with_constructor(duration_histogram),
            alarm_disarm: Counter::default(),
            heal_duration: duration_histogram(),
            heal_blocked: Family::default(),
            maintenance_blocked: Family::default(),
            churn_writes_per_minute: Family::default(),
            sync_loops: Gauge::default(),
            watch_events: Counter::default(),
            seconds_until_quota: FloatGauge::default(),
            growth_bytes_per_second: FloatGauge::default(),
            history_retention_seconds: FloatGauge::default(),
            watch_progress_notify_interval_seconds: FloatGauge::default(),
            history_over_watch_progress_interval: FloatGauge::default(),
            space_pressure: FloatGauge::default(),
            space_target_bytes: Gauge::default(),
            history_bytes_per_second: FloatGauge::default(),
            live_data_bytes: Gauge::default(),
            live_data_over_target: Gauge::default(),
            registered: Gauge::default(),
            integrity_checks: Family::default(),
            kubernetes_events: Family::default(),
        };
        let r = registry.sub_registry_with_prefix("etcd_upkeep");
        register::cluster(r, &m);
        register::maintenance(r, &m);
        register::diagnosis(r, &m);
        register::initial_values(&m);
        m
    }

    /// Mirrors an observation into the gauges. Members that left the cluster disappear.
    pub fn record_observation(&self, obs: &Observation) {
        for family in [
            &self.member_db_size,
            &self.member_db_size_in_use,
            &self.member_is_leader,
            &self.member_is_learner,
            &self.member_up,
        ] {
            family.clear();
        }
        self.member_fragmentation.clear();
        self.member_quota_usage.clear();
        for m in &obs.members {
            let label = MemberLabel {
                member: m.name.clone(),
            };
            self.member_is_leader
                .get_or_create(&label)
                .set(i64::from(obs.leader == Some(m.id)));
            self.member_is_learner
                .get_or_create(&label)
                .set(i64::from(m.is_learner));
            self.member_up
                .get_or_create(&label)
                .set(i64::from(m.status.is_some()));
            if let Some(s) = &m.status {
                self.member_db_size
                    .get_or_create(&label)
                    .set(s.db_size as i64);
                self.member_db_size_in_use
                    .get_or_create(&label)
                    .set(s.db_size_in_use as i64);
            }
            if let Some(f) = m.fragmentation() {
                self.member_fragmentation.get_or_create(&label).set(f);
            }
            if let Some(u) = m.quota_usage(obs.quota.bytes) {
                self.member_quota_usage.get_or_create(&label).set(u);
            }
        }
        self.quota_bytes.set(obs.quota.bytes as i64);
        self.quota_source.clear();
        self.quota_source
            .get_or_create(&SourceLabel {
                source: obs.quota.source.as_str().into(),
            })
            .set(1);
        for alarm in [AlarmKind::NoSpace, AlarmKind::Corrupt, AlarmKind::Unknown] {
            let active = obs.has_alarm(alarm);
            if active || alarm != AlarmKind::Unknown {
                self.alarm_active
                    .get_or_create(&AlarmLabel {
                        alarm: alarm.as_str().into(),
                    })
                    .set(i64::from(active));
            }
        }
        self.last_observation_timestamp.set(obs.taken_at);
    }

    /// Sets exactly the given reasons to 1 and every other known reason to 0.
    pub fn set_reasons(family: &Family<ReasonLabel, Gauge>, known: &[&str], active: &[&str]) {
        for reason in known {
            family
                .get_or_create(&ReasonLabel {
                    reason: (*reason).into(),
                })
                .set(i64::from(active.contains(reason)));
        }
    }
}

/// Encodes the registry as OpenMetrics text.
pub fn encode_openmetrics(registry: &Registry) -> String {
    let mut out = String::new();
    prometheus_client::encoding::text::encode(&mut out, registry)
        .expect("writing to a String cannot fail");
    out
}

/// Encodes the registry in the classic Prometheus text format (0.0.4), for scrapers and tools
/// (promtool) that do not ask for OpenMetrics. The two differ in counter metadata: OpenMetrics
/// names the family `x` with samples `x_total`; the classic format names it `x_total`. `# UNIT`
/// and `# EOF` do not exist there.
pub fn encode_prometheus(registry: &Registry) -> String {
    to_prometheus_text(&encode_openmetrics(registry))
}

fn to_prometheus_text(openmetrics: &str) -> String {
    let counters: std::collections::HashSet<&str> = openmetrics
        .lines()
        .filter_map(|l| l.strip_prefix("# TYPE "))
        .filter_map(|l| l.strip_suffix(" counter"))
        .collect();
    let mut out = String::with_capacity(openmetrics.len());
    for line in openmetrics.lines() {
        if line.starts_with("# UNIT ") || line == "# EOF" {
            continue;
        }
        let rewritten = ["# HELP ", "# TYPE "].iter().find_map(|prefix| {
            let rest = line.strip_prefix(prefix)?;
            let (name, tail) = rest.split_once(' ')?;
            counters
                .contains(name)
                .then(|| format!("{prefix}{name}_total {tail}"))
        });
        out.push_str(rewritten.as_deref().unwrap_or(line));
        out.push('\n');
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn classic_format_names_counters_with_total() {
        let om = "# HELP a_x Things.\n# TYPE a_x counter\na_x_total 3\n# HELP b_bytes Size.\n# TYPE b_bytes gauge\n# UNIT b_bytes bytes\nb_bytes 1\n# EOF\n";
        assert_eq!(
            to_prometheus_text(om),
            "# HELP a_x_total Things.\n# TYPE a_x_total counter\na_x_total 3\n# HELP b_bytes Size.\n# TYPE b_bytes gauge\nb_bytes 1\n"
        );
    }

    #[test]
    fn every_required_metric_is_registered() {
        let mut registry = Registry::default();
        let _metrics = Metrics::new(&mut registry);
        let text = encode_prometheus(&registry);
        for name in [
            "etcd_upkeep_observation_errors_total",
            "etcd_upkeep_quota_bytes",
            "etcd_upkeep_last_observation_timestamp_seconds",
            "etcd_upkeep_alarm_active",
            "etcd_upkeep_compaction_total",
            "etcd_upkeep_alarm_disarm_total",
            "etcd_upkeep_heal_duration_seconds",
            "etcd_upkeep_heal_blocked",
            "etcd_upkeep_maintenance_blocked",
        ] {
            assert!(
                text.contains(&format!("# TYPE {name} ")),
                "{name} missing:\n{text}"
            );
        }
    }
}
