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

impl KubeAnswer {
    /// Ok for a 2xx; else the refusal with the API's own message (a 403 names the missing RBAC
    /// verb).
    pub fn accepted(&self, path: &str) -> Result<(), KubeError> {
        if (200..300).contains(&self.status) {
            return Ok(());
        }
        let body = &self.body;
        let message = serde_json::from_slice::<serde_json::Value>(body)
            .ok()
            .and_then(|v| v["message"].as_str().map(str::to_string))
            .unwrap_or_else(|| String::from_utf8_lossy(body).chars().take(200).collect());
        Err(KubeError::Refused {
            path: path.into(),
            status: self.status,
            message,
        })
    }
}

/// Why a request to the Kubernetes API did not succeed, or why the client could not be built.
#[derive(Debug, thiserror::Error)]
pub enum KubeError {
    /// The CA file (at start: a configuration error).
    #[error(transparent)]
    Ca(#[from] crate::tls::TlsFileError),
    /// The service account's token, read for every request (the kubelet rotates it).
    #[error("--kubernetes-token-file {}: {why}", path.display())]
    Token { path: PathBuf, why: String },
    #[error("Kubernetes API address {address}: {why}")]
    Address { address: String, why: String },
    #[error("TLS: {0}")]
    Tls(String),
    /// Connecting, the TLS handshake or the HTTP handshake (`step` says which).
    #[error("{step} {address}: {why}")]
    Transport {
        step: &'static str,
        address: String,
        why: String,
    },
    #[error("{method} {path}: no answer from {address} within {}", humantime::format_duration(*timeout))]
    Timeout {
        method: String,
        path: String,
        address: String,
        timeout: Duration,
    },
    #[error("{method} {path}: {why}")]
    Request {
        method: String,
        path: String,
        why: String,
    },
    /// The API answered, with a status other than 2xx.
    #[error("{path}: HTTP {status}: {message}")]
    Refused {
        path: String,
        status: u16,
        message: String,
    },
}

impl KubeApi {
    /// Reads the CA now (a missing or empty CA file is a configuration error, named at start);
    /// the token is read per request.
    pub fn new(settings: &KubeApiSettings, timeout: Duration) -> Result<KubeApi, KubeError> {
        let ca = &settings.ca_file;
        let roots = crate::tls::ca_roots(ca, "--kubernetes-ca-file")?;
        if roots.is_empty() {
            let empty = "no certificate in it";
            return Err(crate::tls::TlsFileError::new("--kubernetes-ca-file", ca, empty).into());
        }
        let config = rustls::ClientConfig::builder_with_provider(Arc::new(
            rustls::crypto::ring::default_provider(),
        ))
        .with_safe_default_protocol_versions()
        .map_err(|e| KubeError::Tls(e.to_string()))?
        .with_root_certificates(roots)
        .with_no_client_auth();
        let host = host_of(&settings.address);
        let server_name =
            ServerName::try_from(host.to_string()).map_err(|e| KubeError::Address {
                address: settings.address.clone(),
                why: e.to_string(),
            })?;
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
    ) -> Result<KubeAnswer, KubeError> {
        tokio::time::timeout(
            self.timeout,
            self.send_once(method, path, content_type, body),
        )
        .await
        .map_err(|_| KubeError::Timeout {
            method: method.into(),
            path: path.into(),
            address: self.settings.address.clone(),
            timeout: self.timeout,
        })?
    }

    async fn send_once(
        &self,
        method: &str,
        path: &str,
        content_type: &str,
        body: Vec<u8>,
    ) -> Result<KubeAnswer, KubeError> {
        let token = read_token(&self.settings.token_file)?;
        let address = &self.settings.address;
        let transport = |step: &'static str| {
            move |e: &dyn std::fmt::Display| KubeError::Transport {
                step,
                address: address.clone(),
                why: e.to_string(),
            }
        };
        let tcp = tokio::net::TcpStream::connect(address)
            .await
            .map_err(|e| transport("connect")(&e))?;
        let tls = self
            .tls
            .connect(self.server_name.clone(), tcp)
            .await
            .map_err(|e| transport("TLS to")(&e))?;
        let (mut sender, connection) = hyper::client::conn::http1::handshake(TokioIo::new(tls))
            .await
            .map_err(|e| transport("HTTP to")(&e))?;
        let request_error = |e: &dyn std::fmt::Display| KubeError::Request {
            method: method.into(),
            path: path.into(),
            why: e.to_string(),
        };
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
            .map_err(|e| request_error(&e))?;
        let response = sender
            .send_request(request)
            .await
            .map_err(|e| request_error(&e))?;
        let status = response.status().as_u16();
        let body = response
            .into_body()
            .collect()
            .await
            .map_err(|e| request_error(&e))?
            .to_bytes();
        Ok(KubeAnswer { status, body })
    }
}

/// The host part of host:port (an IPv6 literal keeps its brackets off).
fn host_of(address: &str) -> &str {
    let host = address.rsplit_once(':').map_or(address, |(h, _)| h);
    host.trim_start_matches('[').trim_end_matches(']')
}

fn read_token(path: &Path) -> Result<String, KubeError> {
    let token_error = |why: String| KubeError::Token {
        path: path.into(),
        why,
    };
    let token = std::fs::read_to_string(path).map_err(|e| token_error(e.to_string()))?;
    let token = token.trim();
    if token.is_empty() {
        return Err(token_error("empty".into()));
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
        assert!(matches!(err, KubeError::Ca(_)), "{err:?}");
        let err = err.to_string();
        assert!(
            err.starts_with("--kubernetes-ca-file ") && err.contains("ca.crt"),
            "{err}"
        );
        std::fs::write(dir.path().join("token"), "\n").unwrap();
        let err = read_token(&dir.path().join("token")).unwrap_err();
        assert!(matches!(err, KubeError::Token { .. }), "{err:?}");
        let err = err.to_string();
        assert!(
            err.contains("--kubernetes-token-file") && err.ends_with("empty"),
            "{err}"
        );
    }
}
