//! The command-line contract: flag names, defaults and environment variables.
//!
//! Why it matters: other tools (Helm values, alert runbooks, CI checks) depend on these exact
//! names. Every flag can also be set through `ETCD_UPKEEP_<FLAG>` (upper case, `-` → `_`), and
//! the global flags (connection, TLS, logging) work before or after the subcommand; the others
//! belong to the subcommands that use them (`config::help_tests` checks every one is read).
//! Only parsing lives here; what the values mean is decided in `config` and the modules that
//! consume them.

use std::path::PathBuf;
use std::time::Duration;

use clap::{ArgAction, Args, Parser, Subcommand, ValueEnum};

mod commands;

pub use commands::*;

// The domain's own choices, read through clap::ValueEnum (implemented in config::value_enums).
pub use crate::certs::Preset;
pub use crate::decide::actor::ActWhen;

use crate::units::{parse_duration, parse_size};

#[derive(Debug, Parser)]
#[command(
    name = "etcd-upkeep",
    version,
    about = "Keeps etcd healthy by itself: scheduled compaction, safe rolling defragmentation, \
             NOSPACE self-healing, diagnosis of what fills etcd, Prometheus metrics."
)]
pub struct Cli {
    #[command(flatten)]
    pub global: GlobalArgs,
    #[command(subcommand)]
    pub command: Command,
}

#[derive(Debug, Subcommand)]
pub enum Command {
    /// Run the daemon: observe etcd every poll, maintain it, serve /metrics, /healthz, /readyz
    /// and /status.
    Run(Box<RunArgs>),
    /// Print every member's status (sizes, fragmentation, quota usage, raft state) and the alarms.
    Status(StatusArgs),
    /// Break the keyspace down by Kubernetes resource (objects, bytes, largest objects); with
    /// --watch, also rank the keys written most (sync loops).
    Analyze(AnalyzeArgs),
    /// One-shot NOSPACE remediation: compact, defragment every member (rolling, leader last),
    /// disarm NOSPACE only once space is really free. Exit 0 when the cluster ends healthy.
    Heal(HealArgs),
}

/// Flags shared by every subcommand: how to reach etcd and how to log.
#[derive(Debug, Args, Clone)]
pub struct GlobalArgs {
    /// etcd client URLs, comma separated (`https://` or explicit `http://`).
    #[arg(
        help_heading = "Connection and TLS",
        long,
        global = true,
        env = "ETCD_UPKEEP_ENDPOINTS",
        value_delimiter = ',',
        default_value = "https://127.0.0.1:2379",
        value_name = "URL[,URL]"
    )]
    pub endpoints: Vec<String>,

    /// CA bundle that signed etcd's server certificates.
    #[arg(
        help_heading = "Connection and TLS",
        long,
        global = true,
        env = "ETCD_UPKEEP_CACERT",
        value_name = "FILE"
    )]
    pub cacert: Option<PathBuf>,

    /// Client certificate presented to etcd.
    #[arg(
        help_heading = "Connection and TLS",
        long,
        global = true,
        env = "ETCD_UPKEEP_CERT",
        value_name = "FILE"
    )]
    pub cert: Option<PathBuf>,

    /// Private key of the client certificate.
    #[arg(
        help_heading = "Connection and TLS",
        long,
        global = true,
        env = "ETCD_UPKEEP_KEY",
        value_name = "FILE"
    )]
    pub key: Option<PathBuf>,

    /// vCluster certificate layout: `embedded` (/data/pki) or `deployed` (/run/config/pki).
    #[arg(
        help_heading = "Connection and TLS",
        long,
        global = true,
        env = "ETCD_UPKEEP_PRESET",
        value_enum
    )]
    pub preset: Option<Preset>,

    /// Root the preset's paths under DIR instead of /data/pki or /run/config/pki.
    #[arg(
        help_heading = "Connection and TLS",
        long,
        global = true,
        env = "ETCD_UPKEEP_PKI_DIR",
        value_name = "DIR"
    )]
    pub pki_dir: Option<PathBuf>,

    /// Connect timeout, also used for the quick observation RPCs.
    #[arg(help_heading = "Connection and TLS", long, global = true, env = "ETCD_UPKEEP_DIAL_TIMEOUT", default_value = "5s",
          value_parser = parse_duration, value_name = "DURATION")]
    pub dial_timeout: Duration,

    /// Per-RPC timeout for maintenance RPCs (defragmentation of a large db can be slow).
    #[arg(help_heading = "Connection and TLS", long, global = true, env = "ETCD_UPKEEP_COMMAND_TIMEOUT", default_value = "600s",
          value_parser = parse_duration, value_name = "DURATION")]
    pub command_timeout: Duration,

    /// Log format.
    #[arg(
        help_heading = "Logging",
        long,
        global = true,
        env = "ETCD_UPKEEP_LOG_FORMAT",
        value_enum,
        default_value = "text"
    )]
    pub log_format: LogFormat,

    /// Log level or tracing filter (e.g. `info`, `debug`, `etcd_upkeep=debug`).
    #[arg(
        help_heading = "Logging",
        long,
        global = true,
        env = "ETCD_UPKEEP_LOG_LEVEL",
        default_value = "info",
        value_name = "LEVEL"
    )]
    pub log_level: String,
}

/// How to observe the cluster: which members, and the quota when etcd does not say. Only the
/// commands that observe every member take these (`run`, `status`, `heal`); `analyze` reads
/// one endpoint's keyspace and has no use for them.
#[derive(Debug, Args, Clone)]
pub struct ObserveArgs {
    /// Find every member through MemberList from the given endpoints; `--discover=false` talks
    /// only to the endpoints given.
    #[arg(help_heading = "Observation", long, env = "ETCD_UPKEEP_DISCOVER", action = ArgAction::Set,
          num_args = 0..=1, default_value_t = true, default_missing_value = "true",
          value_name = "BOOL")]
    pub discover: bool,

    /// The space quota to assume when etcd does not report it (etcd < 3.6 and no metrics URL).
    #[arg(help_heading = "Quota", long, env = "ETCD_UPKEEP_QUOTA_BACKEND_BYTES", default_value = "2Gi",
          value_parser = parse_size, value_name = "SIZE")]
    pub quota_backend_bytes: u64,

    /// An etcd /metrics URL (plain http) to read etcd_server_quota_backend_bytes from.
    #[arg(
        help_heading = "Quota",
        long,
        env = "ETCD_UPKEEP_ETCD_METRICS_URL",
        value_name = "URL"
    )]
    pub etcd_metrics_url: Option<String>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum LogFormat {
    Text,
    Json,
}

#[cfg(test)]
mod tests {
    use super::*;
    use clap::CommandFactory;

    #[test]
    fn cli_definition_is_consistent() {
        Cli::command().debug_assert();
    }

    #[test]
    fn global_flags_work_after_the_subcommand() {
        let cli = Cli::try_parse_from([
            "etcd-upkeep",
            "status",
            "--endpoints",
            "http://a:1,http://b:2",
            "--discover=false",
        ])
        .unwrap();
        assert_eq!(cli.global.endpoints, vec!["http://a:1", "http://b:2"]);
        let Command::Status(status) = cli.command else {
            panic!("status")
        };
        assert!(!status.observe.discover);
    }

    #[test]
    fn discover_is_on_by_default_and_analyze_has_no_observation_flags() {
        let cli = Cli::try_parse_from(["etcd-upkeep", "status"]).unwrap();
        let Command::Status(status) = cli.command else {
            panic!("status")
        };
        assert!(status.observe.discover);
        assert_eq!(status.observe.quota_backend_bytes, 2 << 30);
        for flag in ["--discover=false", "--quota-backend-bytes=8Gi"] {
            assert!(
                Cli::try_parse_from(["etcd-upkeep", "analyze", flag]).is_err(),
                "{flag}"
            );
        }
    }
}
