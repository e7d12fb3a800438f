//! Where the TLS material comes from, and noticing when it changes.
//!
//! Why: vCluster writes its certificates only after its syncer has started, and renews leaf
//! certificates while running. So the daemon resolves paths (explicit flags, else the vCluster
//! preset's candidates), re-reads the files on every poll, and reconnects when their bytes change.
//! A missing file is a normal "not yet" for the daemon and a hard error for one-shot commands;
//! both name the path.

use std::collections::hash_map::DefaultHasher;
use std::fmt;
use std::hash::{Hash, Hasher};
use std::path::{Path, PathBuf};

/// The vCluster certificate layouts (`--preset`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Preset {
    /// etcd embedded in the vCluster pod: certificates under /data/pki.
    Embedded,
    /// etcd deployed as its own StatefulSet: certificates under /run/config/pki.
    Deployed,
}

/// The certificate flags as given (validated into [`CertPaths`] by `resolve`).
#[derive(Debug, Clone, Default)]
pub struct CertFlags {
    pub cacert: Option<PathBuf>,
    pub cert: Option<PathBuf>,
    pub key: Option<PathBuf>,
    pub preset: Option<Preset>,
    pub pki_dir: Option<PathBuf>,
}

/// Where to read the CA and the client pair from.
#[derive(Debug, Clone, PartialEq)]
pub struct CertPaths {
    /// The CA bundle (always required for TLS).
    pub ca: PathBuf,
    /// Candidate client pairs (cert, key), tried in order; the first whose files both exist wins.
    /// Empty: no client certificate is presented.
    pub client_pairs: Vec<(PathBuf, PathBuf)>,
}

/// What was wrong with the certificate files.
#[derive(Debug, Clone, PartialEq)]
pub enum CertError {
    /// A file does not exist (yet). `what` names the role, e.g. `CA (--cacert)`.
    Missing { what: String, path: PathBuf },
    /// A file exists but cannot be read or is not PEM of the expected kind.
    Unusable {
        what: String,
        path: PathBuf,
        why: String,
    },
    /// Flags that do not go together.
    Config(String),
}

impl fmt::Display for CertError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            CertError::Missing { what, path } => {
                write!(f, "{what} file not found: {}", path.display())
            }
            CertError::Unusable { what, path, why } => {
                write!(f, "{what} file {} is unusable: {why}", path.display())
            }
            CertError::Config(message) => f.write_str(message),
        }
    }
}

impl std::error::Error for CertError {}

impl CertPaths {
    /// Resolves the paths from the flags: explicit `--cacert`/`--cert`/`--key` override the
    /// preset's. Returns `Ok(None)` when no TLS material is configured at all.
    pub fn resolve(args: &CertFlags) -> Result<Option<CertPaths>, CertError> {
        if args.cert.is_some() != args.key.is_some() {
            return Err(CertError::Config(
                "--cert and --key must be given together".to_string(),
            ));
        }
        if args.pki_dir.is_some() && args.preset.is_none() {
            return Err(CertError::Config(
                "--pki-dir only applies with --preset embedded|deployed".to_string(),
            ));
        }
        let preset = args
            .preset
            .map(|p| preset_paths(p, args.pki_dir.as_deref()));
        let ca = match (&args.cacert, &preset) {
            (Some(ca), _) => ca.clone(),
            (None, Some(p)) => p.ca.clone(),
            (None, None) => {
                if args.cert.is_some() {
                    return Err(CertError::Config(
                        "--cert/--key need --cacert (the CA that signed etcd's server certificate)"
                            .to_string(),
                    ));
                }
                return Ok(None);
            }
        };
        let client_pairs = match (&args.cert, &args.key, preset) {
            (Some(cert), Some(key), _) => vec![(cert.clone(), key.clone())],
            (_, _, Some(p)) => p.client_pairs,
            _ => Vec::new(),
        };
        Ok(Some(CertPaths { ca, client_pairs }))
    }

    /// Reads the files now. Missing files are reported by path; the first existing client pair
    /// of the candidates is used.
    pub fn load(&self) -> Result<TlsMaterial, CertError> {
        let ca_pem = read_pem(&self.ca, "CA certificate (--cacert)", "CERTIFICATE")?;
        let mut cert_path = None;
        let identity = match self.client_pairs.as_slice() {
            [] => None,
            pairs => {
                let (cert, key) = pairs
                    .iter()
                    .find(|(cert, key)| cert.exists() && key.exists())
                    .unwrap_or(&pairs[0]);
                let cert_pem = read_pem(cert, "client certificate (--cert)", "CERTIFICATE")?;
                let key_pem = read_pem(key, "client key (--key)", "PRIVATE KEY")?;
                check_pair(&cert_pem, &key_pem).map_err(|why| CertError::Unusable {
                    what: "client key (--key)".into(),
                    path: key.clone(),
                    why: format!("{why} (--cert {})", cert.display()),
                })?;
                tracing::debug!("client certificate: {}", cert.display());
                cert_path = Some(cert.clone());
                Some(ClientIdentity { cert_pem, key_pem })
            }
        };
        let mut hasher = DefaultHasher::new();
        ca_pem.hash(&mut hasher);
        if let Some(id) = &identity {
            id.cert_pem.hash(&mut hasher);
            id.key_pem.hash(&mut hasher);
        }
        Ok(TlsMaterial {
            ca_pem,
            identity,
            cert_path,
            fingerprint: hasher.finish(),
        })
    }
}

/// Why a client key and certificate do not make a pair.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
enum PairError {
    #[error("the certificate cannot be parsed: {0}")]
    Certificate(String),
    #[error("the key cannot be parsed: {0}")]
    Key(String),
    #[error("the certificate file holds no certificate")]
    NoCertificate,
    #[error("does not match the client certificate")]
    Mismatch,
    #[error("cannot be used with the client certificate: {0}")]
    Unusable(String),
}

/// The key must belong to the certificate: otherwise every call ends as a bare "transport
/// error" from the TLS stack, naming neither file.
fn check_pair(cert_pem: &[u8], key_pem: &[u8]) -> Result<(), PairError> {
    use rustls::pki_types::pem::PemObject;
    use rustls::pki_types::{CertificateDer, PrivateKeyDer};
    let chain: Vec<CertificateDer<'static>> = CertificateDer::pem_slice_iter(cert_pem)
        .collect::<Result<_, _>>()
        .map_err(|e| PairError::Certificate(e.to_string()))?;
    let key = PrivateKeyDer::from_pem_slice(key_pem).map_err(|e| PairError::Key(e.to_string()))?;
    if chain.is_empty() {
        return Err(PairError::NoCertificate);
    }
    let provider = rustls::crypto::ring::default_provider();
    match rustls::sign::CertifiedKey::from_der(chain, key, &provider) {
        Ok(_) => Ok(()),
        Err(rustls::Error::InconsistentKeys(_)) => Err(PairError::Mismatch),
        Err(e) => Err(PairError::Unusable(e.to_string())),
    }
}

/// The vCluster certificate layouts (see shared research: vcluster.md §1 and §2).
fn preset_paths(preset: Preset, pki_dir: Option<&Path>) -> CertPaths {
    match preset {
        Preset::Embedded => {
            let root = pki_dir.unwrap_or(Path::new("/data/pki"));
            let pair = |cert: &str, key: &str| (root.join(cert), root.join(key));
            CertPaths {
                ca: root.join("etcd/ca.crt"),
                client_pairs: vec![
                    // vCluster's docs name tls.{crt,key}; the code writes the other two.
                    pair("etcd/tls.crt", "etcd/tls.key"),
                    pair("apiserver-etcd-client.crt", "apiserver-etcd-client.key"),
                    pair("etcd/healthcheck-client.crt", "etcd/healthcheck-client.key"),
                ],
            }
        }
        Preset::Deployed => {
            let root = pki_dir.unwrap_or(Path::new("/run/config/pki"));
            let pair = |cert: &str, key: &str| (root.join(cert), root.join(key));
            CertPaths {
                ca: root.join("etcd-ca.crt"),
                client_pairs: vec![
                    pair("etcd-peer.crt", "etcd-peer.key"),
                    pair("apiserver-etcd-client.crt", "apiserver-etcd-client.key"),
                ],
            }
        }
    }
}

fn read_pem(path: &Path, what: &str, kind: &str) -> Result<Vec<u8>, CertError> {
    let bytes = std::fs::read(path).map_err(|e| match e.kind() {
        std::io::ErrorKind::NotFound => CertError::Missing {
            what: what.to_string(),
            path: path.to_path_buf(),
        },
        _ => CertError::Unusable {
            what: what.to_string(),
            path: path.to_path_buf(),
            why: e.to_string(),
        },
    })?;
    let text = String::from_utf8_lossy(&bytes);
    if !text.contains("-----BEGIN") || !text.contains(kind) {
        return Err(CertError::Unusable {
            what: what.to_string(),
            path: path.to_path_buf(),
            why: format!("no PEM block containing '{kind}'"),
        });
    }
    Ok(bytes)
}

/// The client certificate and key that will be presented.
#[derive(Clone)]
pub struct ClientIdentity {
    pub cert_pem: Vec<u8>,
    pub key_pem: Vec<u8>,
}

/// The bytes of the certificates as read, and a fingerprint to notice when they change.
#[derive(Clone)]
pub struct TlsMaterial {
    pub ca_pem: Vec<u8>,
    pub identity: Option<ClientIdentity>,
    /// Where the client certificate came from (for messages).
    pub cert_path: Option<PathBuf>,
    pub fingerprint: u64,
}

#[cfg(test)]
mod tests {
    use super::*;

    fn preset(preset: Preset) -> CertFlags {
        CertFlags {
            preset: Some(preset),
            ..CertFlags::default()
        }
    }

    #[test]
    fn embedded_preset_prefers_tls_pair_then_apiserver_client() {
        let paths = CertPaths::resolve(&preset(Preset::Embedded))
            .unwrap()
            .unwrap();
        assert_eq!(paths.ca, PathBuf::from("/data/pki/etcd/ca.crt"));
        assert_eq!(
            paths.client_pairs[0].0,
            PathBuf::from("/data/pki/etcd/tls.crt")
        );
        assert_eq!(
            paths.client_pairs[1].0,
            PathBuf::from("/data/pki/apiserver-etcd-client.crt")
        );
        assert_eq!(paths.client_pairs.len(), 3);
    }

    #[test]
    fn deployed_preset_under_pki_dir_and_explicit_override() {
        let paths = CertPaths::resolve(&CertFlags {
            pki_dir: Some("/x".into()),
            cacert: Some("/ca.pem".into()),
            ..preset(Preset::Deployed)
        })
        .unwrap()
        .unwrap();
        assert_eq!(paths.ca, PathBuf::from("/ca.pem"));
        assert_eq!(paths.client_pairs[0].0, PathBuf::from("/x/etcd-peer.crt"));
    }

    #[test]
    fn half_a_pair_is_an_error() {
        let half = CertFlags {
            cert: Some("/c".into()),
            ..CertFlags::default()
        };
        assert!(CertPaths::resolve(&half).is_err());
        assert!(CertPaths::resolve(&CertFlags::default()).unwrap().is_none());
    }

    #[test]
    fn missing_file_names_the_path() {
        let paths = CertPaths {
            ca: PathBuf::from("/nonexistent/ca.crt"),
            client_pairs: vec![],
        };
        let err = paths.load().err().unwrap();
        assert!(err.to_string().contains("/nonexistent/ca.crt"), "{err}");
        assert!(matches!(err, CertError::Missing { .. }));
    }
}
