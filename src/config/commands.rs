//! One settings value per command, built from its flags: what `daemon::run` and the one-shot
//! commands take instead of clap's structs.

use std::net::SocketAddr;
use std::time::Duration;

use crate::cli::{self, AnalyzeArgs, GlobalArgs, HealArgs, RunArgs, StatusArgs};
use crate::decide::actor::ActWhen;

use super::{ConfigError, Connection, at_least, connection, maintenance};

/// How a one-shot command prints its report.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Output {
    Table,
    Json,
}

fn output(format: cli::OutputFormat) -> Output {
    match format {
        cli::OutputFormat::Table => Output::Table,
        cli::OutputFormat::Json => Output::Json,
    }
}

/// `etcd-upkeep run`.
#[derive(Debug)]
pub struct RunSettings {
    pub connection: Connection,
    pub engine: crate::engine::Config,
    pub listen_address: SocketAddr,
    pub poll_interval: Duration,
    /// The churn (sync-loop) watch: prefix and threshold (writes per minute); None: off.
    pub churn: Option<(String, f64)>,
    /// TLS and basic auth for the HTTP surface (`--web-config-file`).
    pub web: Option<crate::report::web::WebConfig>,
}

impl RunSettings {
    pub fn from_cli(g: &GlobalArgs, a: &RunArgs) -> Result<RunSettings, ConfigError> {
        let connection = connection(g)?;
        // A zero poll observes etcd in a busy loop (measured: etcd at ~42 % of a core).
        let poll = at_least(
            "--poll-interval",
            a.poll_interval,
            Duration::from_millis(200),
        )?;
        let floor = at_least("--history-floor", a.history_floor, Duration::from_secs(1))?;
        if a.churn_threshold.is_nan() || a.churn_threshold <= 0.0 {
            return Err(ConfigError(format!(
                "--churn-threshold {}: must be above 0",
                a.churn_threshold
            )));
        }
        let mut engine =
            maintenance::for_run(g, &a.maintenance, poll)?.with_space_target(a.space_target, floor);
        engine.forecast_horizon = (!a.forecast_horizon.is_zero()).then_some(a.forecast_horizon);
        let web = a
            .web_config_file
            .as_deref()
            .map(|path| crate::report::web::load(path, a.web_healthz_open))
            .transpose()
            .map_err(ConfigError)?;
        Ok(RunSettings {
            web,
            connection,
            engine,
            listen_address: a.listen_address,
            poll_interval: poll,
            churn: (a.churn_watch && !a.no_churn_watch)
                .then(|| (a.churn_prefix.clone(), a.churn_threshold)),
        })
    }

    /// Whether the first endpoint is this instance's own member (a sidecar), as opposed to a
    /// service that reaches any member.
    pub fn beside_a_member(&self) -> bool {
        self.engine.act_when == ActWhen::Leader
    }
}

/// `etcd-upkeep heal`.
#[derive(Debug)]
pub struct HealSettings {
    pub connection: Connection,
    pub engine: crate::engine::Config,
    pub timeout: Duration,
}

impl HealSettings {
    pub fn from_cli(g: &GlobalArgs, a: &HealArgs) -> Result<HealSettings, ConfigError> {
        Ok(HealSettings {
            connection: connection(g)?,
            engine: maintenance::for_heal(g, &a.healing)?,
            timeout: at_least("--heal-timeout", a.heal_timeout, Duration::from_secs(1))?,
        })
    }
}

/// `etcd-upkeep status`.
#[derive(Debug)]
pub struct StatusSettings {
    pub connection: Connection,
    pub output: Output,
}

impl StatusSettings {
    pub fn from_cli(g: &GlobalArgs, a: &StatusArgs) -> Result<StatusSettings, ConfigError> {
        Ok(StatusSettings {
            connection: connection(g)?,
            output: output(a.output.format),
        })
    }
}

/// `etcd-upkeep analyze`.
#[derive(Debug)]
pub struct AnalyzeSettings {
    pub connection: Connection,
    pub output: Output,
    pub prefix: String,
    pub top: usize,
    pub page_size: i64,
    pub watch: Option<Duration>,
}

impl AnalyzeSettings {
    pub fn from_cli(g: &GlobalArgs, a: &AnalyzeArgs) -> Result<AnalyzeSettings, ConfigError> {
        let watch = a
            .watch
            .map(|w| at_least("--watch", w, Duration::from_secs(1)))
            .transpose()?;
        if a.top == 0 {
            return Err(ConfigError("--top 0: must be at least 1".into()));
        }
        Ok(AnalyzeSettings {
            connection: connection(g)?,
            output: output(a.output.format),
            prefix: a.prefix.clone(),
            top: a.top,
            page_size: a.page_size,
            watch,
        })
    }
}
