//! Each subcommand's own flags (`run`, `status`, `analyze`, `heal`), grouped under headings.

use std::net::SocketAddr;
use std::path::PathBuf;
use std::time::Duration;

use clap::{ArgAction, Args, ValueEnum};

use crate::config::Output;
use crate::decide::actor::ActWhen;
use crate::units::{parse_duration, parse_fraction, parse_fraction_or_off};

/// `--output`, shared by the one-shot commands that print a report.
#[derive(Debug, Args)]
pub struct OutputArgs {
    /// Output format.
    #[arg(
        long = "output",
        short = 'o',
        env = "ETCD_UPKEEP_OUTPUT",
        value_enum,
        default_value = "table"
    )]
    pub format: Output,
}

#[derive(Debug, Args)]
pub struct StatusArgs {
    #[command(flatten)]
    pub observe: super::ObserveArgs,
    #[command(flatten)]
    pub output: OutputArgs,
}

#[derive(Debug, Args)]
pub struct AnalyzeArgs {
    /// Also watch writes for this long and rank keys by writes and bytes written.
    #[arg(long, env = "ETCD_UPKEEP_ANALYZE_WATCH", value_parser = parse_duration, value_name = "DURATION")]
    pub watch: Option<Duration>,

    /// Only keys under this prefix (default: the whole keyspace).
    #[arg(
        long,
        env = "ETCD_UPKEEP_ANALYZE_PREFIX",
        default_value = "",
        value_name = "PREFIX"
    )]
    pub prefix: String,

    /// How many largest objects and most-written keys to list.
    #[arg(
        long,
        env = "ETCD_UPKEEP_ANALYZE_TOP",
        default_value_t = 10,
        value_name = "N"
    )]
    pub top: usize,

    /// At most this many keys per Range request (pages also stop near 2 MiB). Lower it on a busy
    /// etcd: each Range is served in one read transaction, and smaller ones interleave with the
    /// apiserver's requests; each costs a fixed overhead, so very small pages make the scan slow.
    #[arg(long, env = "ETCD_UPKEEP_ANALYZE_PAGE_SIZE", default_value_t = 50_000,
          value_parser = clap::value_parser!(i64).range(1..=100_000), value_name = "N")]
    pub page_size: i64,

    #[command(flatten)]
    pub output: OutputArgs,
}

#[derive(Debug, Args)]
pub struct RunArgs {
    #[command(flatten)]
    pub observe: super::ObserveArgs,

    /// HTTP address for /metrics, /healthz, /readyz and /status. 9479 clashes with nothing in a
    /// vCluster pod (2379-2381, 6443, 8443, 10099, 10257, 10259, 14000+).
    #[arg(
        help_heading = "Daemon",
        long,
        env = "ETCD_UPKEEP_LISTEN_ADDRESS",
        default_value = "0.0.0.0:9479",
        value_name = "ADDR"
    )]
    pub listen_address: SocketAddr,

    /// Serve HTTPS and/or require basic auth, configured as for Prometheus' exporters
    /// (exporter-toolkit's web configuration file: tls_server_config, basic_auth_users).
    #[arg(
        help_heading = "Daemon",
        long,
        env = "ETCD_UPKEEP_WEB_CONFIG_FILE",
        value_name = "FILE"
    )]
    pub web_config_file: Option<PathBuf>,

    /// With basic auth, `/healthz` still answers without credentials (the kubelet's probe has
    /// none); `false` protects it too.
    #[arg(help_heading = "Daemon", long, env = "ETCD_UPKEEP_WEB_HEALTHZ_OPEN", action = ArgAction::Set,
          num_args = 0..=1, default_value_t = true, default_missing_value = "true",
          value_name = "BOOL")]
    pub web_healthz_open: bool,

    /// How often to observe the cluster.
    #[arg(help_heading = "Daemon", long, env = "ETCD_UPKEEP_POLL_INTERVAL", default_value = "5s",
          value_parser = parse_duration, value_name = "DURATION")]
    pub poll_interval: Duration,

    /// Key prefix the churn detector watches.
    #[arg(
        help_heading = "Diagnosis",
        long,
        env = "ETCD_UPKEEP_CHURN_PREFIX",
        default_value = "/registry/",
        value_name = "PREFIX"
    )]
    pub churn_prefix: String,

    /// Watch writes for sync loops (the churn detector; it also measures the history rate the
    /// space controller needs).
    #[arg(help_heading = "Diagnosis", long, env = "ETCD_UPKEEP_CHURN_WATCH", action = ArgAction::Set,
          num_args = 0..=1, default_value_t = true, default_missing_value = "true",
          value_name = "BOOL")]
    pub churn_watch: bool,

    /// Writes per minute to one object above which it is reported as a sync loop. A healthy
    /// controller updates an object a few times a minute at most (lease renewals: 6/min).
    #[arg(
        help_heading = "Diagnosis",
        long,
        env = "ETCD_UPKEEP_CHURN_THRESHOLD",
        default_value_t = 60.0,
        value_name = "PER_MINUTE"
    )]
    pub churn_threshold: f64,

    /// Warn when the growth forecast reaches the quota within this horizon. `0s` turns the
    /// warning off (the space controller acts on its own numbers).
    #[arg(help_heading = "Diagnosis", long, env = "ETCD_UPKEEP_FORECAST_HORIZON", default_value = "1h",
          value_parser = parse_duration, value_name = "DURATION")]
    pub forecast_horizon: Duration,

    /// The space controller keeps the bytes in use below this fraction of the quota by keeping
    /// less history (compacting every poll) while a sync loop or any churn would exceed it.
    /// `0` turns prevention off (NOSPACE is still healed).
    #[arg(help_heading = "Prevention", long, env = "ETCD_UPKEEP_SPACE_TARGET", default_value = "0.7",
          value_parser = parse_fraction_or_off, value_name = "FRACTION")]
    pub space_target: f64,

    /// The least history the space controller keeps while it fits: watchers that fall further
    /// behind relist. Below it only when even this much would not fit. Default: 1m, or the
    /// compaction retention when that is shorter; given, it may not exceed the retention.
    #[arg(help_heading = "Prevention", long, env = "ETCD_UPKEEP_HISTORY_FLOOR",
          value_parser = parse_duration, value_name = "DURATION")]
    pub history_floor: Option<Duration>,

    /// The members' `--watch-progress-notify-interval` (3.5: `--experimental-…`), when known.
    /// Default: measured on a watch of etcd-upkeep's own (etcd's 10m assumed until then). The
    /// history kept is compared with it, and /status names the etcd flag to set when it is
    /// shorter: the kube-apiserver reads its watch cache's revision, which only these
    /// notifications move.
    #[arg(help_heading = "Prevention", long, env = "ETCD_UPKEEP_WATCH_PROGRESS_NOTIFY_INTERVAL",
          value_parser = parse_duration, value_name = "DURATION")]
    pub watch_progress_notify_interval: Option<Duration>,

    #[command(flatten)]
    pub maintenance: MaintenanceArgs,

    #[command(flatten)]
    pub events: EventsArgs,
}

/// Kubernetes Events about the daemon's own pod (off by default).
#[derive(Debug, Args)]
pub struct EventsArgs {
    /// Record Kubernetes Events on this pod (NOSPACE healed, heal blocked, sync loop suspected,
    /// live data over the target, integrity mismatch) through the in-cluster service account.
    /// Needs create/patch on events, and the pod's name and namespace from the downward API.
    #[arg(help_heading = "Kubernetes Events", long, env = "ETCD_UPKEEP_KUBERNETES_EVENTS",
          action = ArgAction::Set, num_args = 0..=1, default_value_t = false,
          default_missing_value = "true", value_name = "BOOL")]
    pub kubernetes_events: bool,

    /// The API server as host:port. Default: $KUBERNETES_SERVICE_HOST:$KUBERNETES_SERVICE_PORT,
    /// which the kubelet sets in every pod.
    #[arg(
        help_heading = "Kubernetes Events",
        long,
        env = "ETCD_UPKEEP_KUBERNETES_API",
        value_name = "HOST:PORT"
    )]
    pub kubernetes_api: Option<String>,

    /// The service account's token (read again for every request: it is rotated).
    #[arg(
        help_heading = "Kubernetes Events",
        long,
        env = "ETCD_UPKEEP_KUBERNETES_TOKEN_FILE",
        default_value = "/var/run/secrets/kubernetes.io/serviceaccount/token",
        value_name = "FILE"
    )]
    pub kubernetes_token_file: PathBuf,

    /// The CA that signed the API server's certificate.
    #[arg(
        help_heading = "Kubernetes Events",
        long,
        env = "ETCD_UPKEEP_KUBERNETES_CA_FILE",
        default_value = "/var/run/secrets/kubernetes.io/serviceaccount/ca.crt",
        value_name = "FILE"
    )]
    pub kubernetes_ca_file: PathBuf,

    /// The pod the Events are about (downward API: fieldRef metadata.name).
    #[arg(
        help_heading = "Kubernetes Events",
        long,
        env = "POD_NAME",
        value_name = "NAME"
    )]
    pub pod_name: Option<String>,

    /// Its namespace (fieldRef metadata.namespace).
    #[arg(
        help_heading = "Kubernetes Events",
        long,
        env = "POD_NAMESPACE",
        value_name = "NAMESPACE"
    )]
    pub pod_namespace: Option<String>,

    /// Its uid (fieldRef metadata.uid): `kubectl describe pod` lists only Events that name it.
    #[arg(
        help_heading = "Kubernetes Events",
        long,
        env = "POD_UID",
        value_name = "UID"
    )]
    pub pod_uid: Option<String>,
}

#[derive(Debug, Args)]
pub struct HealArgs {
    #[command(flatten)]
    pub observe: super::ObserveArgs,
    #[command(flatten)]
    pub healing: HealingArgs,

    /// How long to keep trying before giving up with exit code 1.
    #[arg(help_heading = "NOSPACE healing", long, env = "ETCD_UPKEEP_HEAL_TIMEOUT", default_value = "10m",
          value_parser = parse_duration, value_name = "DURATION")]
    pub heal_timeout: Duration,
}

/// What the maintenance engine may do in `run` (scheduling, compaction, who acts).
#[derive(Debug, Args, Clone)]
pub struct MaintenanceArgs {
    #[command(flatten)]
    pub healing: HealingArgs,

    /// Compaction: `periodic` keeps a time window of history, `revision` a count of revisions.
    #[arg(
        help_heading = "Maintenance",
        long,
        env = "ETCD_UPKEEP_COMPACTION_MODE",
        value_enum,
        default_value = "periodic"
    )]
    pub compaction_mode: CompactionMode,

    /// History to keep: a duration for `periodic` (default 30m), a revision count for `revision`
    /// (default 10000).
    #[arg(
        help_heading = "Maintenance",
        long,
        env = "ETCD_UPKEEP_COMPACTION_RETENTION",
        value_name = "RETENTION"
    )]
    pub compaction_retention: Option<String>,

    /// CEL expression, per member, deciding when a defragmentation pays. Variables: dbSize,
    /// dbSizeInUse, dbSizeFree, dbQuota, dbQuotaUsage, fragmentation.
    #[arg(help_heading = "Maintenance", long, env = "ETCD_UPKEEP_DEFRAG_RULE", value_name = "EXPR",
          default_value = crate::decide::defrag_rule::DEFAULT_RULE)]
    pub defrag_rule: String,

    /// Cron (5 fields, UTC) of the moments rule-driven defragmentations may start; unset = any
    /// time. NOSPACE healing and the space controller's shrink of a file near the quota ignore it.
    #[arg(
        help_heading = "Maintenance",
        long,
        env = "ETCD_UPKEEP_DEFRAG_SCHEDULE",
        value_name = "CRON"
    )]
    pub defrag_schedule: Option<String>,

    /// Per-member cool-down between rule-driven defragmentations.
    #[arg(help_heading = "Maintenance", long, env = "ETCD_UPKEEP_MIN_DEFRAG_INTERVAL", default_value = "1h",
          value_parser = parse_duration, value_name = "DURATION")]
    pub min_defrag_interval: Duration,

    /// Heal the NOSPACE alarm by itself (compact, defrag every member, verified disarm).
    #[arg(help_heading = "NOSPACE healing", long, env = "ETCD_UPKEEP_AUTO_HEAL", action = ArgAction::Set, num_args = 0..=1,
          default_value_t = true, default_missing_value = "true", value_name = "BOOL")]
    pub auto_heal: bool,

    /// Which instance acts: `leader` = the one beside the raft leader, else the first registered
    /// (one sidecar per member, embedded etcd); `elected` = the first registered of identical
    /// instances (deployed etcd, HA vCluster); `always` = this is the only instance.
    #[arg(
        help_heading = "Maintenance",
        long,
        env = "ETCD_UPKEEP_ACT_WHEN",
        value_enum,
        default_value = "leader"
    )]
    pub act_when: ActWhen,
}

/// What a heal may do: shared by `run` and the one-shot `heal`.
#[derive(Debug, Args, Clone)]
pub struct HealingArgs {
    /// Transfer leadership to a defragmented follower before defragmenting the leader.
    #[arg(help_heading = "Maintenance", long, env = "ETCD_UPKEEP_MOVE_LEADER", action = ArgAction::Set, num_args = 0..=1,
          default_value_t = true, default_missing_value = "true", value_name = "BOOL")]
    pub move_leader: bool,

    /// etcd's data dir, when mounted here: defragmentation is refused while free disk is below
    /// 1.2 × the db size in use (defrag writes a full copy of the db).
    #[arg(
        help_heading = "Maintenance",
        long,
        env = "ETCD_UPKEEP_DATA_DIR",
        value_name = "DIR"
    )]
    pub data_dir: Option<PathBuf>,

    /// Disarm NOSPACE only when every member's db size ≤ this fraction of the quota.
    #[arg(help_heading = "NOSPACE healing", long, env = "ETCD_UPKEEP_DISARM_THRESHOLD", default_value_t = 0.9,
          allow_negative_numbers = true,
          value_parser = parse_fraction, value_name = "FRACTION")]
    pub disarm_threshold: f64,

    /// Print every step that would be taken, with the numbers behind it; change nothing.
    #[arg(help_heading = "Maintenance", long, env = "ETCD_UPKEEP_DRY_RUN")]
    pub dry_run: bool,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum CompactionMode {
    Periodic,
    Revision,
    Off,
}
