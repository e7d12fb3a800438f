//! Config: the one boundary between the command line and the domain. `cli` (clap) is known here
//! and nowhere else; every flag is checked once, here, and turned into typed settings that the
//! commands and the domain take (`RunSettings`, `HealSettings`, …) — never the clap structs.
//!
//! Why: bad input must fail at start-up with one line naming the flag and value (exit 2), and
//! the domain must not change when a flag is renamed. Certificates that merely do not exist
//! *yet* are not bad input: that is a runtime condition the daemon waits out.

mod commands;
mod cron;
mod error;
#[cfg(test)]
mod help_tests;
mod maintenance;
mod value_enums;

pub use cron::cron_with_seconds;
pub use error::ConfigError;

use std::time::Duration;

use crate::certs::{CertFlags, CertPaths};
use crate::cli::{GlobalArgs, ObserveArgs};
use crate::observe::ObserveSettings;

pub use commands::{
    AnalyzeSettings, EventsSettings, HealSettings, Output, RunSettings, StatusSettings,
};

/// How to reach etcd: what observing needs, the certificate paths and the timeouts.
#[derive(Debug, Clone)]
pub struct Connection {
    pub observe: ObserveSettings,
    pub certs: Option<CertPaths>,
    pub dial_timeout: Duration,
    pub command_timeout: Duration,
}

impl Connection {
    /// Connections for a one-shot command: the certificate files must be there now (the
    /// daemon waits for them instead, through `connector`).
    pub fn etcd(&self) -> Result<std::sync::Arc<crate::etcd::Etcd>, ConfigError> {
        self.connector()
            .etcd()
            .map_err(|e| ConfigError(e.to_string()))
    }

    /// The connector that hands out etcd connections for these settings.
    pub fn connector(&self) -> crate::connect::Connector {
        crate::connect::Connector::new(self.certs.clone(), self.dial_timeout, self.command_timeout)
    }
}

/// A duration flag that must be at least `min`.
fn at_least(flag: &str, value: Duration, min: Duration) -> Result<Duration, ConfigError> {
    if value < min {
        return Err(ConfigError(format!(
            "{flag} {}: must be at least {}",
            humantime::format_duration(value),
            humantime::format_duration(min)
        )));
    }
    Ok(value)
}

fn at_most(flag: &str, value: Duration, max: Duration) -> Result<Duration, ConfigError> {
    if value > max {
        return Err(ConfigError(format!(
            "{flag} {}: must be at most {}",
            humantime::format_duration(value),
            humantime::format_duration(max)
        )));
    }
    Ok(value)
}

/// A week: beyond it a defragmentation interval or a forecast says nothing a person could use.
const A_WEEK: Duration = Duration::from_secs(7 * 24 * 3600);

/// Checks the endpoints, the certificate flags, the timeouts and, for the commands that observe
/// every member (`observe`; None for `analyze`), the observation flags.
fn connection(args: &GlobalArgs, observe: Option<&ObserveArgs>) -> Result<Connection, ConfigError> {
    let endpoints: Vec<String> = args
        .endpoints
        .iter()
        .map(|e| e.trim().trim_end_matches('/').to_string())
        .filter(|e| !e.is_empty())
        .collect();
    if endpoints.is_empty() {
        return Err(ConfigError("--endpoints: no endpoint given".into()));
    }
    for endpoint in &endpoints {
        validate_endpoint(endpoint)?;
    }
    let flags = CertFlags {
        cacert: args.cacert.clone(),
        cert: args.cert.clone(),
        key: args.key.clone(),
        preset: args.preset,
        pki_dir: args.pki_dir.clone(),
    };
    let paths = CertPaths::resolve(&flags).map_err(|e| ConfigError(e.to_string()))?;
    if paths.is_none()
        && let Some(e) = endpoints.iter().find(|e| e.starts_with("https://"))
    {
        return Err(ConfigError(format!(
            "--endpoints {e}: https needs --cacert (or --preset embedded|deployed); \
                 write http:// explicitly for a plain-text etcd"
        )));
    }
    let metrics_url = observe.and_then(|o| o.etcd_metrics_url.clone());
    if let Some(url) = &metrics_url
        && !url.starts_with("http://")
    {
        return Err(ConfigError(format!(
            "--etcd-metrics-url {url}: must be an http:// URL (etcd serves /metrics over plain HTTP)"
        )));
    }
    // A zero timeout fails every call; a zero quota makes every ratio meaningless.
    let dial_timeout = at_least(
        "--dial-timeout",
        args.dial_timeout,
        Duration::from_millis(100),
    )?;
    let command_timeout = at_least(
        "--command-timeout",
        args.command_timeout,
        Duration::from_secs(1),
    )?;
    // analyze asks one endpoint, and never divides by a quota.
    let (discover, quota_flag) =
        observe.map_or((false, 2 << 30), |o| (o.discover, o.quota_backend_bytes));
    if quota_flag < 1 << 20 {
        return Err(ConfigError(format!(
            "--quota-backend-bytes {quota_flag}: must be at least 1Mi (etcd's quota, e.g. 2Gi or 8Gi)"
        )));
    }
    Ok(Connection {
        observe: ObserveSettings {
            endpoints,
            discover,
            quota_flag,
            metrics_url,
            dial_timeout,
        },
        certs: paths,
        dial_timeout,
        command_timeout,
    })
}

fn validate_endpoint(endpoint: &str) -> Result<(), ConfigError> {
    let bad = |why: &str| ConfigError(format!("--endpoints {endpoint}: {why}"));
    let rest = endpoint
        .strip_prefix("https://")
        .or_else(|| endpoint.strip_prefix("http://"))
        .ok_or_else(|| bad("must start with https:// or http://"))?;
    let uri: axum::http::Uri = endpoint.parse().map_err(|e| bad(&format!("{e}")))?;
    if uri.host().is_none_or(str::is_empty) || rest.starts_with(':') {
        return Err(bad("has no host"));
    }
    if uri.port_u16().is_none() {
        return Err(bad(
            "has no port (etcd listens on 2379 by default: add :2379)",
        ));
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn endpoints_are_validated() {
        assert!(validate_endpoint("https://127.0.0.1:2379").is_ok());
        assert!(validate_endpoint("http://etcd-0.etcd-headless:2379").is_ok());
        assert!(
            validate_endpoint("127.0.0.1:2379")
                .unwrap_err()
                .0
                .contains("https://")
        );
        assert!(
            validate_endpoint("https://127.0.0.1")
                .unwrap_err()
                .0
                .contains("port")
        );
        assert!(validate_endpoint("https://:2379").is_err());
    }
}
