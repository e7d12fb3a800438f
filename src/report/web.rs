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

/// Reads and checks the file; `Err` names the file and the field.
pub fn load(path: &Path, open_healthz: bool) -> Result<WebConfig, String> {
    let bad = |why: String| format!("--web-config-file {}: {why}", path.display());
    let text = std::fs::read_to_string(path).map_err(|e| bad(e.to_string()))?;
    let dir = path.parent().unwrap_or(Path::new("."));
    parse(&text, dir, open_healthz).map_err(bad)
}

/// Checks the file's text; relative certificate paths are read from `dir`. `Err` names the
/// field. (Separate from [`load`] for the fuzz target, `fuzz/fuzz_targets/web_config.rs`.)
pub fn parse(text: &str, dir: &Path, open_healthz: bool) -> Result<WebConfig, String> {
    let file: WebConfigFile = serde_yaml_ng::from_str(text).map_err(|e| e.to_string())?;
    let tls = file
        .tls_server_config
        .map(|t| tls_config(&t, dir))
        .transpose()?;
    let auth = if file.basic_auth_users.is_empty() {
        None
    } else {
        for (user, hash) in &file.basic_auth_users {
            check_bcrypt_hash(hash).map_err(|why| format!("basic_auth_users.{user}: {why}"))?;
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
fn check_bcrypt_hash(hash: &str) -> Result<(), String> {
    let not_bcrypt =
        || "not a bcrypt hash (expected $2y$…, e.g. from htpasswd -nBC 10)".to_string();
    let parts: bcrypt::HashParts = hash.parse().map_err(|_| not_bcrypt())?;
    match parts.get_cost() {
        cost if cost > MAX_BCRYPT_COST => Err(format!(
            "bcrypt cost {cost} is above {MAX_BCRYPT_COST}: every new credential would take minutes to check (use htpasswd -nBC 10)"
        )),
        cost if cost < 4 => Err(not_bcrypt()),
        _ => Ok(()),
    }
}

fn tls_config(t: &TlsServerConfig, dir: &Path) -> Result<Arc<rustls::ServerConfig>, String> {
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
        .map_err(|e| format!("tls_server_config: {e}"))?;
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
            let ca = resolve(ca);
            let mut roots = rustls::RootCertStore::empty();
            for cert in CertificateDer::pem_file_iter(&ca)
                .map_err(|e| format!("tls_server_config.client_ca_file {}: {e}", ca.display()))?
            {
                let cert = cert.map_err(|e| {
                    format!("tls_server_config.client_ca_file {}: {e}", ca.display())
                })?;
                roots.add(cert).map_err(|e| {
                    format!("tls_server_config.client_ca_file {}: {e}", ca.display())
                })?;
            }
            let mut verifier = WebPkiClientVerifier::builder_with_provider(roots.into(), provider);
            if kind == "VerifyClientCertIfGiven" {
                verifier = verifier.allow_unauthenticated();
            }
            let verifier = verifier
                .build()
                .map_err(|e| format!("tls_server_config.client_ca_file: {e}"))?;
            builder.with_client_cert_verifier(verifier)
        }
        (kind, None) if kind != "NoClientCert" => {
            return Err(format!(
                "tls_server_config.client_auth_type {kind}: needs client_ca_file"
            ));
        }
        (other, _) => {
            return Err(format!(
                "tls_server_config.client_auth_type {other}: expected NoClientCert, VerifyClientCertIfGiven or RequireAndVerifyClientCert"
            ));
        }
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
    fn new(cert_file: PathBuf, key_file: PathBuf) -> Result<ReloadingKey, String> {
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

fn read_pair(cert_file: &Path, key_file: &Path) -> Result<Arc<CertifiedKey>, String> {
    let chain: Vec<CertificateDer<'static>> = CertificateDer::pem_file_iter(cert_file)
        .and_then(|certs| certs.collect::<Result<_, _>>())
        .map_err(|e| format!("tls_server_config.cert_file {}: {e}", cert_file.display()))?;
    if chain.is_empty() {
        return Err(format!(
            "tls_server_config.cert_file {}: no certificate in it",
            cert_file.display()
        ));
    }
    let key = PrivateKeyDer::from_pem_file(key_file)
        .map_err(|e| format!("tls_server_config.key_file {}: {e}", key_file.display()))?;
    let provider = rustls::crypto::ring::default_provider();
    CertifiedKey::from_der(chain, key, &provider)
        .map(Arc::new)
        .map_err(|e| {
            format!(
                "tls_server_config.key_file {}: {e} (with cert_file {})",
                key_file.display(),
                cert_file.display()
            )
        })
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
mod tests {
    use super::*;

    fn write(dir: &Path, text: &str) -> PathBuf {
        let path = dir.join("web.yml");
        std::fs::write(&path, text).unwrap();
        path
    }

    #[test]
    fn basic_auth_checks_the_bcrypt_hash_and_remembers_good_credentials() {
        let dir = tempfile::tempdir().unwrap();
        let hash = bcrypt::hash("s3cret", 4).unwrap();
        let path = write(dir.path(), &format!("basic_auth_users:\n  prom: {hash}\n"));
        let web = load(&path, true).unwrap();
        let auth = web.auth.unwrap();
        let header = |u: &str, p: &str| {
            format!(
                "Basic {}",
                base64::engine::general_purpose::STANDARD.encode(format!("{u}:{p}"))
            )
        };
        assert!(auth.allows(Some(&header("prom", "s3cret"))));
        assert!(auth.allows(Some(&header("prom", "s3cret"))), "remembered");
        assert!(!auth.allows(Some(&header("prom", "wrong"))));
        assert!(!auth.allows(Some(&header("other", "s3cret"))));
        assert!(!auth.allows(Some("Bearer x")));
        assert!(!auth.allows(None));
    }

    /// A cost of 31 passed the format check and made `load` run for days (found while writing
    /// fuzz/fuzz_targets/web_config.rs).
    #[test]
    fn a_bcrypt_cost_that_would_take_minutes_is_refused_without_hashing() {
        let hash = bcrypt::hash("x", 4).unwrap().replacen("$04$", "$31$", 1);
        let err = parse(
            &format!("basic_auth_users:\n  prom: '{hash}'\n"),
            Path::new("."),
            true,
        )
        .unwrap_err();
        assert!(
            err.contains("basic_auth_users.prom: bcrypt cost 31 is above 16"),
            "{err}"
        );
    }

    /// The smoke run's `web_config` target timed out (10 s, unoptimised) on a cost-14 hash:
    /// the check derived a key to test the form. Now the form is parsed, and every cost up to
    /// 16 is taken at once; malformed hashes are still refused.
    #[test]
    fn a_well_formed_hash_is_taken_without_deriving_a_key() {
        let config = |hash: &str| format!("basic_auth_users:\n  prometheus: '{hash}'\n");
        let found = "$2y$14$Hk7Hc1Xo0Jv3Z0o5q3A6ZOeM3aF3N0a0nW2Z9V7cX8kP8sY0mQm1e";
        assert!(parse(&config(found), Path::new("."), true).is_ok());
        let sixteen = bcrypt::hash("x", 4).unwrap().replacen("$04$", "$16$", 1);
        assert!(parse(&config(&sixteen), Path::new("."), true).is_ok());
        for bad in [
            "$2y$03$Hk7Hc1Xo0Jv3Z0o5q3A6ZOeM3aF3N0a0nW2Z9V7cX8kP8sY0mQm1e", // below bcrypt's 4
            "$2y$14$Hk7Hc1Xo0Jv3Z0o5q3A6ZOeM3aF3N0a0nW2Z9V7cX8kP8sY0mQm1",  // 59 characters
            "$3y$14$Hk7Hc1Xo0Jv3Z0o5q3A6ZOeM3aF3N0a0nW2Z9V7cX8kP8sY0mQm1e", // not bcrypt's prefix
        ] {
            let err = parse(&config(bad), Path::new("."), true).unwrap_err();
            assert!(err.contains("not a bcrypt hash"), "{bad}: {err}");
        }
    }

    #[test]
    fn a_bad_file_names_the_field() {
        let dir = tempfile::tempdir().unwrap();
        let err = load(
            &write(dir.path(), "basic_auth_users:\n  prom: plain\n"),
            true,
        )
        .unwrap_err();
        assert!(
            err.contains("basic_auth_users.prom: not a bcrypt hash"),
            "{err}"
        );
        let err = load(
            &write(dir.path(), "tls_server_config:\n  cert_file: x\n"),
            true,
        )
        .unwrap_err();
        assert!(err.contains("key_file"), "{err}");
        let err = load(
            &write(
                dir.path(),
                "tls_server_config:\n  cert_file: a.crt\n  key_file: a.key\n",
            ),
            true,
        )
        .unwrap_err();
        assert!(
            err.contains("tls_server_config.cert_file") && err.contains("a.crt"),
            "{err}"
        );
        let err = load(&write(dir.path(), "basic_auth: {}\n"), true).unwrap_err();
        assert!(err.contains("unknown field"), "{err}");
    }
}
