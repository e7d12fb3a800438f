//! From flags to a validated connection setup, and the [`Connector`] that keeps the etcd
//! connections in step with the certificate files.
//!
//! Why: bad input must fail at start-up with one line naming the flag and value, while
//! certificates that merely do not exist *yet* are a runtime condition the daemon waits out.

use std::sync::Arc;

use crate::certs::{CertError, CertPaths};
use crate::cli::GlobalArgs;
use crate::etcd::Etcd;
use crate::observe::ObserveSettings;

/// A configuration error: the message names the flag and the value.
#[derive(Debug)]
pub struct ConfigError(pub String);

impl std::fmt::Display for ConfigError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.0)
    }
}

impl std::error::Error for ConfigError {}

/// Checks the endpoints and the certificate flags; returns what observing and connecting need.
pub fn connection(args: &GlobalArgs) -> Result<(ObserveSettings, Connector), ConfigError> {
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
    let paths = CertPaths::from_args(args).map_err(|e| ConfigError(e.to_string()))?;
    if paths.is_none()
        && let Some(e) = endpoints.iter().find(|e| e.starts_with("https://"))
    {
        return Err(ConfigError(format!(
            "--endpoints {e}: https needs --cacert (or --preset embedded|deployed); \
                 write http:// explicitly for a plain-text etcd"
        )));
    }
    if let Some(url) = &args.etcd_metrics_url
        && !url.starts_with("http://")
    {
        return Err(ConfigError(format!(
            "--etcd-metrics-url {url}: must be an http:// URL (etcd serves /metrics over plain HTTP)"
        )));
    }
    let settings = ObserveSettings {
        endpoints,
        discover: args.discover(),
        quota_flag: args.quota_backend_bytes,
        metrics_url: args.etcd_metrics_url.clone(),
        dial_timeout: args.dial_timeout,
    };
    let connector = Connector {
        paths,
        dial_timeout: args.dial_timeout,
        command_timeout: args.command_timeout,
        current: None,
    };
    Ok((settings, connector))
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

/// Hands out the etcd connections, rebuilt whenever the certificate files change.
pub struct Connector {
    paths: Option<CertPaths>,
    dial_timeout: std::time::Duration,
    command_timeout: std::time::Duration,
    current: Option<Arc<Etcd>>,
}

impl Connector {
    /// Reads the certificate files and returns connections that use them. `Err` names the file
    /// that is missing or unusable.
    pub fn etcd(&mut self) -> Result<Arc<Etcd>, CertError> {
        let material = match &self.paths {
            Some(paths) => Some(paths.load()?),
            None => None,
        };
        let fingerprint = material.as_ref().map(|m| m.fingerprint);
        if let Some(current) = &self.current {
            if current.tls_fingerprint() == fingerprint {
                return Ok(current.clone());
            }
            tracing::info!("certificate files changed; reconnecting with the new certificates");
        }
        let etcd = Arc::new(Etcd::new(self.dial_timeout, self.command_timeout, material));
        self.current = Some(etcd.clone());
        Ok(etcd)
    }
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
