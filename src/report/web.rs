//! `--web-config-file`: TLS and basic auth for `/metrics` and `/status`, in the format
//! Prometheus users know from the exporters (exporter-toolkit's web configuration file).
//!
//! Why: `/metrics` and `/status` carry object names (the churn top list) and the cluster's
//! shape; in plain HTTP anyone who can reach the pod IP reads them. The file:
//!
//! ```yaml
//! tls_server_config:
//!   cert_file: server.crt          # relative paths are relative to this file
//!   key_file: server.key
//!   client_ca_file: ca.crt         # optional: clients must present a certificate it signed
//!   client_auth_type: RequireAndVerifyClientCert   # NoClientCert (default), VerifyClientCertIfGiven
//! basic_auth_users:
//!   prometheus: $2y$10$...          # bcrypt hashes (htpasswd -nBC 10 "" | tr -d ':\n')
//! ```
//!
//! The certificate and key are re-read when their files change (checked at most every 10 s, on
//! a new connection); a renewal needs no restart, and a broken renewal keeps the last good pair
//! and says so. `/healthz` stays open without credentials by default, for the kubelet's probe.

use crate::tls::TlsFileError;
use std::collections::{BTreeMap, HashSet};
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant, SystemTime};

use base64::Engine as _;
use rustls::pki_types::pem::PemObject;
use rustls::pki_types::{CertificateDer, PrivateKeyDer};
use rustls::server::{ClientHello, ResolvesServerCert, WebPkiClientVerifier};
use rustls::sign::CertifiedKey;
use serde::Deserialize;

/// The file as written.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct WebConfigFile {
    tls_server_config: Option<TlsServerConfig>,
    #[serde(default)]
    basic_auth_users: BTreeMap<String, String>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct TlsServerConfig {
    cert_file: PathBuf,
    key_file: PathBuf,
    client_ca_file: Option<PathBuf>,
    client_auth_type: Option<String>,
}

/// The web configuration, checked.
#[derive(Clone)]
pub struct WebConfig {
    pub tls: Option<Arc<rustls::ServerConfig>>,
    pub auth: Option<Arc<BasicAuth>>,
    /// `/healthz` answers without credentials (the kubelet's probe has none).
    pub open_healthz: bool,
}

impl std::fmt::Debug for WebConfig {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("WebConfig")
            .field("tls", &self.tls.is_some())
            .field(
                "basic_auth_users",
                &self.auth.as_ref().map(|a| a.users.len()),
            )
            .field("open_healthz", &self.open_healthz)
            .finish()
    }
}

/// Why `--web-config-file` was refused: the file, and what in it.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum WebConfigError {
    #[error("--web-config-file {}: {why}", path.display())]
    Unreadable { path: PathBuf, why: String },
    #[error("--web-config-file {}: {why}", path.display())]
    Invalid { path: PathBuf, why: WebFieldError },
}

/// What in the file is wrong, by field.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum WebFieldError {
    /// Not YAML of the expected shape (serde's message names the field).
    #[error("{0}")]
    Shape(String),
    #[error("basic_auth_users.{user}: {why}")]
    Hash { user: String, why: HashError },
    /// A certificate, key or CA file it names.
    #[error(transparent)]
    File(#[from] crate::tls::TlsFileError),
    /// rustls refused the TLS settings.
    #[error("{field}: {why}")]
    Tls { field: &'static str, why: String },
    #[error("tls_server_config.client_auth_type {0}: needs client_ca_file")]
    NeedsClientCa(String),
    #[error(
        "tls_server_config.client_auth_type {0}: expected NoClientCert, VerifyClientCertIfGiven or RequireAndVerifyClientCert"
    )]
    UnknownClientAuth(String),
}

/// Why a `basic_auth_users` entry is not accepted.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum HashError {
    #[error("not a bcrypt hash (expected $2y$…, e.g. from htpasswd -nBC 10)")]
    NotBcrypt,
    #[error(
        "bcrypt cost {0} is above {MAX_BCRYPT_COST}: every new credential would take minutes to check (use htpasswd -nBC 10)"
    )]
    CostTooHigh(u32),
}

/// Reads and checks the file; `Err` names the file and the field.
pub fn load(path: &Path, open_healthz: bool) -> Result<WebConfig, WebConfigError> {
    let text = std::fs::read_to_string(path).map_err(|e| WebConfigError::Unreadable {
        path: path.into(),
        why: e.to_string(),
    })?;
    let dir = path.parent().unwrap_or(Path::new("."));
    parse(&text, dir, open_healthz).map_err(|why| WebConfigError::Invalid {
        path: path.into(),
        why,
    })
}

/// Checks the file's text; relative certificate paths are read from `dir`. `Err` names the
/// field. (Separate from [`load`] for the fuzz target, `fuzz/fuzz_targets/web_config.rs`.)
pub fn parse(text: &str, dir: &Path, open_healthz: bool) -> Result<WebConfig, WebFieldError> {
    let file: WebConfigFile =
        serde_yaml_ng::from_str(text).map_err(|e| WebFieldError::Shape(e.to_string()))?;
    let tls = file
        .tls_server_config
        .map(|t| tls_config(&t, dir))
        .transpose()?;
    let auth = if file.basic_auth_users.is_empty() {
        None
    } else {
        for (user, hash) in &file.basic_auth_users {
            check_bcrypt_hash(hash).map_err(|why| WebFieldError::Hash {
                user: user.clone(),
                why,
            })?;
        }
        Some(Arc::new(BasicAuth {
            users: file.basic_auth_users,
            accepted: Mutex::new(HashSet::new()),
            keys: std::collections::hash_map::RandomState::new(),
        }))
    };
    Ok(WebConfig {
        tls,
        auth,
        open_healthz,
    })
}

/// The highest bcrypt cost accepted: each new credential is checked once at this cost, and
/// cost 16 already takes seconds (every step up doubles it; 31 would take days).
const MAX_BCRYPT_COST: u32 = 16;

/// The hash's form only: 60 characters, a `$2a`/`$2b`/`$2x`/`$2y` prefix, a cost bcrypt takes
/// (4 to [`MAX_BCRYPT_COST`]), salt and hash in bcrypt's base64. No key is derived here: at
/// cost 14 that alone held the start-up for a second per user (and the unoptimised fuzz build
/// past its 10 s timeout, which is how it was found).
fn check_bcrypt_hash(hash: &str) -> Result<(), HashError> {
    let parts: bcrypt::HashParts = hash.parse().map_err(|_| HashError::NotBcrypt)?;
    match parts.get_cost() {
        cost if cost > MAX_BCRYPT_COST => Err(HashError::CostTooHigh(cost)),
        cost if cost < 4 => Err(HashError::NotBcrypt),
        _ => Ok(()),
    }
}

fn tls_config(t: &TlsServerConfig, dir: &Path) -> Result<Arc<rustls::ServerConfig>, WebFieldError> {
    let resolve = |p: &Path| {
        if p.is_absolute() {
            p.to_path_buf()
        } else {
            dir.join(p)
        }
    };
    let (cert_file, key_file) = (resolve(&t.cert_file), resolve(&t.key_file));
    let key = ReloadingKey::new(cert_file, key_file)?;
    let provider = Arc::new(rustls::crypto::ring::default_provider());
    let builder = rustls::ServerConfig::builder_with_provider(provider.clone())
        .with_safe_default_protocol_versions()
        .map_err(|e| WebFieldError::Tls {
            field: "tls_server_config",
            why: e.to_string(),
        })?;
    let auth_type = t
        .client_auth_type
        .as_deref()
        .unwrap_or(if t.client_ca_file.is_some() {
            "RequireAndVerifyClientCert"
        } else {
            "NoClientCert"
        });
    let builder = match (auth_type, &t.client_ca_file) {
        ("NoClientCert", _) => builder.with_no_client_auth(),
        (kind @ ("RequireAndVerifyClientCert" | "VerifyClientCertIfGiven"), Some(ca)) => {
            let roots = crate::tls::ca_roots(&resolve(ca), "tls_server_config.client_ca_file")?;
            let mut verifier = WebPkiClientVerifier::builder_with_provider(roots.into(), provider);
            if kind == "VerifyClientCertIfGiven" {
                verifier = verifier.allow_unauthenticated();
            }
            let verifier = verifier.build().map_err(|e| WebFieldError::Tls {
                field: "tls_server_config.client_ca_file",
                why: e.to_string(),
            })?;
            builder.with_client_cert_verifier(verifier)
        }
        (kind, None) if kind != "NoClientCert" => {
            return Err(WebFieldError::NeedsClientCa(kind.into()));
        }
        (other, _) => return Err(WebFieldError::UnknownClientAuth(other.into())),
    };
    let mut config = builder.with_cert_resolver(Arc::new(key));
    config.alpn_protocols = vec![b"http/1.1".to_vec()];
    Ok(Arc::new(config))
}

/// The server's certificate and key, re-read when either file changes.
#[derive(Debug)]
struct ReloadingKey {
    cert_file: PathBuf,
    key_file: PathBuf,
    state: Mutex<KeyState>,
}

#[derive(Debug)]
struct KeyState {
    key: Arc<CertifiedKey>,
    stamps: (Option<SystemTime>, Option<SystemTime>),
    checked: Instant,
}

const RECHECK: Duration = Duration::from_secs(10);

impl ReloadingKey {
    fn new(cert_file: PathBuf, key_file: PathBuf) -> Result<ReloadingKey, TlsFileError> {
        let key = read_pair(&cert_file, &key_file)?;
        let stamps = (modified(&cert_file), modified(&key_file));
        Ok(ReloadingKey {
            cert_file,
            key_file,
            state: Mutex::new(KeyState {
                key,
                stamps,
                checked: Instant::now(),
            }),
        })
    }
}

fn modified(path: &Path) -> Option<SystemTime> {
    std::fs::metadata(path).and_then(|m| m.modified()).ok()
}

fn read_pair(cert_file: &Path, key_file: &Path) -> Result<Arc<CertifiedKey>, TlsFileError> {
    let cert_error = |why: &dyn std::fmt::Display| {
        TlsFileError::new("tls_server_config.cert_file", cert_file, why)
    };
    let key_error = |why: &dyn std::fmt::Display| {
        TlsFileError::new("tls_server_config.key_file", key_file, why)
    };
    let chain: Vec<CertificateDer<'static>> = CertificateDer::pem_file_iter(cert_file)
        .and_then(|certs| certs.collect::<Result<_, _>>())
        .map_err(|e| cert_error(&e))?;
    if chain.is_empty() {
        return Err(cert_error(&"no certificate in it"));
    }
    let key = PrivateKeyDer::from_pem_file(key_file).map_err(|e| key_error(&e))?;
    let provider = rustls::crypto::ring::default_provider();
    CertifiedKey::from_der(chain, key, &provider)
        .map(Arc::new)
        .map_err(|e| key_error(&format!("{e} (with cert_file {})", cert_file.display())))
}

impl ResolvesServerCert for ReloadingKey {
    fn resolve(&self, _hello: ClientHello<'_>) -> Option<Arc<CertifiedKey>> {
        let mut state = self.state.lock().unwrap_or_else(|p| p.into_inner());
        if state.checked.elapsed() >= RECHECK {
            state.checked = Instant::now();
            let stamps = (modified(&self.cert_file), modified(&self.key_file));
            if stamps != state.stamps {
                match read_pair(&self.cert_file, &self.key_file) {
                    Ok(key) => {
                        tracing::info!(
                            "the web server's certificate files changed; using the new pair"
                        );
                        state.key = key;
                        state.stamps = stamps;
                    }
                    Err(e) => tracing::warn!(
                        "the web server's new certificate files are unusable ({e}); keeping the previous pair"
                    ),
                }
            }
        }
        Some(state.key.clone())
    }
}

/// Users and their bcrypt hashes; credentials verified once are remembered (keyed hashes
/// only), so a scrape every 15 s costs one bcrypt check, not one per scrape.
#[derive(Debug)]
pub struct BasicAuth {
    users: BTreeMap<String, String>,
    accepted: Mutex<HashSet<u64>>,
    keys: std::collections::hash_map::RandomState,
}

impl BasicAuth {
    /// Whether an `Authorization` header value names a user with the right password.
    pub fn allows(&self, header: Option<&str>) -> bool {
        use std::hash::BuildHasher;
        let Some(header) = header else { return false };
        let fingerprint = self.keys.hash_one(header);
        if self
            .accepted
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .contains(&fingerprint)
        {
            return true;
        }
        let Some(encoded) = header.strip_prefix("Basic ") else {
            return false;
        };
        let Ok(decoded) = base64::engine::general_purpose::STANDARD.decode(encoded.trim()) else {
            return false;
        };
        let Ok(text) = String::from_utf8(decoded) else {
            return false;
        };
        let Some((user, password)) = text.split_once(':') else {
            return false;
        };
        let ok = self
            .users
            .get(user)
            .is_some_and(|hash| bcrypt::verify(password, hash).unwrap_or(false));
        if ok {
            let mut accepted = self.accepted.lock().unwrap_or_else(|p| p.into_inner());
            if accepted.len() > 64 {
                accepted.clear();
            }
            accepted.insert(fingerprint);
        }
        ok
    }
}

#[cfg(test)]
#[path = "web_tests.rs"]
mod tests;
