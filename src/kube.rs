//! The Kubernetes API, for the one thing etcd-upkeep writes there: Events about its own pod
//! (`--kubernetes-events`, [`crate::report::events`]).
//!
//! Why a few lines of HTTPS and not kube-rs: two requests (create an Event, patch its count) do
//! not justify a client generated for every API group, nor its share of every cold build.
//!
//! In a pod it is the in-cluster configuration client-go uses: `KUBERNETES_SERVICE_HOST` and
//! `_PORT`, the service account's CA and token. The token is read again for every request: a
//! projected token is rotated by the kubelet (hourly), and a client that read it once at start
//! gets 401 after its expiry.

use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;

use http_body_util::{BodyExt, Full};
use hyper::body::Bytes;
use hyper_util::rt::TokioIo;
use rustls::pki_types::ServerName;

/// Where the API is and how to authenticate to it (typed from the flags in `config`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct KubeApiSettings {
    /// host:port of the API server (`KUBERNETES_SERVICE_HOST`:`KUBERNETES_SERVICE_PORT`).
    pub address: String,
    pub token_file: PathBuf,
    pub ca_file: PathBuf,
}

/// A client of one API server.
pub struct KubeApi {
    settings: KubeApiSettings,
    server_name: ServerName<'static>,
    tls: tokio_rustls::TlsConnector,
    timeout: Duration,
}

/// What it was built from (the TLS connector has no Debug of its own).
impl std::fmt::Debug for KubeApi {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("KubeApi")
            .field("settings", &self.settings)
            .field("timeout", &self.timeout)
            .finish()
    }
}

/// The API's answer: the status code and the body.
#[derive(Debug)]
pub struct KubeAnswer {
    pub status: u16,
    pub body: Bytes,
}

impl KubeApi {
    /// Reads the CA now (a missing or empty CA file is a configuration error, named at start);
    /// the token is read per request.
    pub fn new(settings: &KubeApiSettings, timeout: Duration) -> Result<KubeApi, String> {
        let ca = &settings.ca_file;
        let roots = crate::tls::ca_roots(ca, "--kubernetes-ca-file")?;
        if roots.is_empty() {
            return Err(format!(
                "--kubernetes-ca-file {}: no certificate in it",
                ca.display()
            ));
        }
        let config = rustls::ClientConfig::builder_with_provider(Arc::new(
            rustls::crypto::ring::default_provider(),
        ))
        .with_safe_default_protocol_versions()
        .map_err(|e| format!("TLS: {e}"))?
        .with_root_certificates(roots)
        .with_no_client_auth();
        let host = host_of(&settings.address);
        let server_name = ServerName::try_from(host.to_string())
            .map_err(|e| format!("Kubernetes API address {}: {e}", settings.address))?;
        Ok(KubeApi {
            settings: settings.clone(),
            server_name,
            tls: tokio_rustls::TlsConnector::from(Arc::new(config)),
            timeout,
        })
    }

    /// host:port of the API server.
    pub fn address(&self) -> &str {
        &self.settings.address
    }

    /// One request, bounded by the client's timeout as a whole (connect, TLS, answer).
    pub async fn send(
        &self,
        method: &str,
        path: &str,
        content_type: &str,
        body: Vec<u8>,
    ) -> Result<KubeAnswer, String> {
        tokio::time::timeout(
            self.timeout,
            self.send_once(method, path, content_type, body),
        )
        .await
        .map_err(|_| {
            format!(
                "{method} {path}: no answer from {} within {}",
                self.settings.address,
                humantime::format_duration(self.timeout)
            )
        })?
    }

    async fn send_once(
        &self,
        method: &str,
        path: &str,
        content_type: &str,
        body: Vec<u8>,
    ) -> Result<KubeAnswer, String> {
        let token = read_token(&self.settings.token_file)?;
        let tcp = tokio::net::TcpStream::connect(&self.settings.address)
            .await
            .map_err(|e| format!("connect {}: {e}", self.settings.address))?;
        let tls = self
            .tls
            .connect(self.server_name.clone(), tcp)
            .await
            .map_err(|e| format!("TLS to {}: {e}", self.settings.address))?;
        let (mut sender, connection) = hyper::client::conn::http1::handshake(TokioIo::new(tls))
            .await
            .map_err(|e| format!("HTTP to {}: {e}", self.settings.address))?;
        // The connection is driven beside the request and ends with it.
        tokio::spawn(async move {
            let _ = connection.await;
        });
        let request = hyper::Request::builder()
            .method(method)
            .uri(path)
            .header(hyper::header::HOST, &self.settings.address)
            .header(hyper::header::AUTHORIZATION, format!("Bearer {token}"))
            .header(hyper::header::CONTENT_TYPE, content_type)
            .header(hyper::header::ACCEPT, "application/json")
            .header(hyper::header::USER_AGENT, "etcd-upkeep")
            .body(Full::new(Bytes::from(body)))
            .map_err(|e| format!("{method} {path}: {e}"))?;
        let response = sender
            .send_request(request)
            .await
            .map_err(|e| format!("{method} {path}: {e}"))?;
        let status = response.status().as_u16();
        let body = response
            .into_body()
            .collect()
            .await
            .map_err(|e| format!("{method} {path}: {e}"))?
            .to_bytes();
        Ok(KubeAnswer { status, body })
    }
}

/// The host part of host:port (an IPv6 literal keeps its brackets off).
fn host_of(address: &str) -> &str {
    let host = address.rsplit_once(':').map_or(address, |(h, _)| h);
    host.trim_start_matches('[').trim_end_matches(']')
}

fn read_token(path: &Path) -> Result<String, String> {
    let token = std::fs::read_to_string(path)
        .map_err(|e| format!("--kubernetes-token-file {}: {e}", path.display()))?;
    let token = token.trim();
    if token.is_empty() {
        return Err(format!("--kubernetes-token-file {}: empty", path.display()));
    }
    Ok(token.to_string())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_host_of_an_address_is_what_the_certificate_must_name() {
        assert_eq!(host_of("10.96.0.1:443"), "10.96.0.1");
        assert_eq!(host_of("[fd00::1]:443"), "fd00::1");
        assert_eq!(
            host_of("kubernetes.default.svc:443"),
            "kubernetes.default.svc"
        );
    }

    #[test]
    fn a_missing_ca_or_token_is_named_with_its_flag_and_path() {
        let dir = tempfile::tempdir().unwrap();
        let settings = KubeApiSettings {
            address: "127.0.0.1:6443".into(),
            token_file: dir.path().join("token"),
            ca_file: dir.path().join("ca.crt"),
        };
        let err = KubeApi::new(&settings, Duration::from_secs(1))
            .err()
            .unwrap();
        assert!(
            err.starts_with("--kubernetes-ca-file ") && err.contains("ca.crt"),
            "{err}"
        );
        std::fs::write(dir.path().join("token"), "\n").unwrap();
        let err = read_token(&dir.path().join("token")).unwrap_err();
        assert!(
            err.contains("--kubernetes-token-file") && err.ends_with("empty"),
            "{err}"
        );
    }
}
