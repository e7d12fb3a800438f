//! One settings value per command, built from its flags: what `daemon::run` and the one-shot
//! commands take instead of clap's structs.

use std::net::SocketAddr;
use std::time::Duration;

use crate::cli::{AnalyzeArgs, GlobalArgs, HealArgs, RunArgs, StatusArgs};

use super::{ConfigError, Connection, at_least, at_most, connection, maintenance};

/// How a one-shot command prints its report.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Output {
    Table,
    Json,
}

/// The history floor when `--history-floor` is not given (capped at the retention).
const DEFAULT_HISTORY_FLOOR: Duration = Duration::from_secs(60);

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
    /// Kubernetes Events on the daemon's pod (`--kubernetes-events`); None: off.
    pub events: Option<EventsSettings>,
    /// The members' progress-notify interval as given (`--watch-progress-notify-interval`);
    /// None: measured.
    pub progress_notify_interval: Option<Duration>,
}

/// Where Kubernetes Events go and which pod they are about.
#[derive(Debug)]
pub struct EventsSettings {
    /// Built here, so a wrong CA is named at start, not at the first Event.
    pub api: crate::kube::KubeApi,
    pub pod: crate::report::events::PodRef,
}

/// Timeout of one request to the Kubernetes API: an Event is never worth waiting longer for.
const KUBE_REQUEST_TIMEOUT: Duration = Duration::from_secs(5);

fn events(a: &crate::cli::EventsArgs) -> Result<Option<EventsSettings>, ConfigError> {
    if !a.kubernetes_events {
        return Ok(None);
    }
    let address = match &a.kubernetes_api {
        Some(address) => address.clone(),
        None => match (
            std::env::var("KUBERNETES_SERVICE_HOST"),
            std::env::var("KUBERNETES_SERVICE_PORT"),
        ) {
            (Ok(host), Ok(port)) if host.contains(':') => format!("[{host}]:{port}"),
            (Ok(host), Ok(port)) => format!("{host}:{port}"),
            _ => {
                return Err(ConfigError(
                    "--kubernetes-events: no API server: KUBERNETES_SERVICE_HOST/PORT are unset (not in a pod?); give --kubernetes-api HOST:PORT".into(),
                ));
            }
        },
    };
    if address
        .rsplit_once(':')
        .is_none_or(|(_, port)| port.parse::<u16>().is_err())
    {
        return Err(ConfigError(format!(
            "--kubernetes-api {address}: expected HOST:PORT"
        )));
    }
    let named = |value: &Option<String>, what: &str, env: &str, field: &str| {
        value.clone().filter(|v| !v.is_empty()).ok_or_else(|| {
            ConfigError(format!(
                "--kubernetes-events needs the pod's {what}: set {env} from the downward API (fieldRef {field}) or --pod-{what}"
            ))
        })
    };
    let pod = crate::report::events::PodRef {
        name: named(&a.pod_name, "name", "POD_NAME", "metadata.name")?,
        namespace: named(
            &a.pod_namespace,
            "namespace",
            "POD_NAMESPACE",
            "metadata.namespace",
        )?,
        uid: a.pod_uid.clone().filter(|u| !u.is_empty()),
    };
    let api = crate::kube::KubeApiSettings {
        address,
        token_file: a.kubernetes_token_file.clone(),
        ca_file: a.kubernetes_ca_file.clone(),
    };
    let api = crate::kube::KubeApi::new(&api, KUBE_REQUEST_TIMEOUT)
        .map_err(|e| ConfigError(e.to_string()))?;
    Ok(Some(EventsSettings { api, pod }))
}

impl RunSettings {
    pub fn from_cli(g: &GlobalArgs, a: &RunArgs) -> Result<RunSettings, ConfigError> {
        let connection = connection(g, Some(&a.observe))?;
        // A zero poll observes etcd in a busy loop (measured: etcd at ~42 % of a core).
        let poll = at_least(
            "--poll-interval",
            a.poll_interval,
            Duration::from_millis(200),
        )?;
        let floor = a
            .history_floor
            .map(|f| at_least("--history-floor", f, Duration::from_secs(1)))
            .transpose()?;
        if a.churn_threshold.is_nan() || a.churn_threshold <= 0.0 {
            return Err(ConfigError(format!(
                "--churn-threshold {}: must be above 0",
                a.churn_threshold
            )));
        }
        let engine = maintenance::for_run(g, &a.maintenance, poll)?;
        // The floor is the least history the controller keeps before going under it; above the
        // history it keeps at most, it would mean nothing (it used to be capped without a word).
        if let crate::decide::compaction::CompactionPolicy::Periodic { retention } =
            engine.compaction
            && let Some(floor) = floor.filter(|f| *f > retention)
        {
            return Err(ConfigError(format!(
                "--history-floor {}: must not exceed --compaction-retention {} (the most history kept)",
                humantime::format_duration(floor),
                humantime::format_duration(retention)
            )));
        }
        // Not given: the default, which the retention caps (a 2s retention keeps 2s at most).
        let floor = floor.unwrap_or(DEFAULT_HISTORY_FLOOR);
        let mut engine = engine.with_space_target(a.space_target, floor);
        let progress_notify_interval = a
            .watch_progress_notify_interval
            .map(|i| {
                at_least(
                    "--watch-progress-notify-interval",
                    i,
                    Duration::from_secs(1),
                )?;
                at_most("--watch-progress-notify-interval", i, super::A_WEEK)
            })
            .transpose()?;
        let horizon = at_most("--forecast-horizon", a.forecast_horizon, super::A_WEEK)?;
        engine.forecast_horizon = (!horizon.is_zero()).then_some(horizon);
        let web = a
            .web_config_file
            .as_deref()
            .map(|path| crate::report::web::load(path, a.web_healthz_open))
            .transpose()
            .map_err(|e| ConfigError(e.to_string()))?;
        Ok(RunSettings {
            events: events(&a.events)?,
            web,
            connection,
            engine,
            listen_address: a.listen_address,
            poll_interval: poll,
            progress_notify_interval,
            churn: a
                .churn_watch
                .then(|| (a.churn_prefix.clone(), a.churn_threshold)),
        })
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
            connection: connection(g, Some(&a.observe))?,
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
            connection: connection(g, Some(&a.observe))?,
            output: a.output.format,
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
            connection: connection(g, None)?,
            output: a.output.format,
            prefix: a.prefix.clone(),
            top: a.top,
            page_size: a.page_size,
            watch,
        })
    }
}
