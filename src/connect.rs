//! The [`Connector`]: etcd connections kept in step with the certificate files.
//!
//! Why: vCluster writes its certificates after etcd-upkeep starts and renews them while it runs;
//! the daemon re-reads the files every poll and reconnects when their bytes change, so a
//! renewal never needs a restart.

use std::sync::Arc;
use std::time::Duration;

use crate::certs::{CertError, CertPaths};
use crate::etcd::Etcd;

/// Hands out the etcd connections, rebuilt whenever the certificate files change.
pub struct Connector {
    paths: Option<CertPaths>,
    dial_timeout: Duration,
    command_timeout: Duration,
    current: Option<Arc<Etcd>>,
}

impl Connector {
    pub fn new(
        paths: Option<CertPaths>,
        dial_timeout: Duration,
        command_timeout: Duration,
    ) -> Self {
        Connector {
            paths,
            dial_timeout,
            command_timeout,
            current: None,
        }
    }

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
