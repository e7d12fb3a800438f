//! Reading a CA bundle for rustls, shared by every TLS client and server etcd-upkeep builds
//! itself (the web config's client CA, the Kubernetes API's CA). Why one place: each names the
//! setting and the path in its error, and a wrong file must read the same way everywhere.

use std::path::{Path, PathBuf};

use rustls::RootCertStore;
use rustls::pki_types::CertificateDer;
use rustls::pki_types::pem::PemObject;

/// A file that a setting (a flag, or a field of a config file) names and that cannot be used.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{setting} {}: {why}", path.display())]
pub struct TlsFileError {
    pub setting: String,
    pub path: PathBuf,
    pub why: String,
}

impl TlsFileError {
    pub fn new(setting: &str, path: &Path, why: impl std::fmt::Display) -> TlsFileError {
        TlsFileError {
            setting: setting.into(),
            path: path.into(),
            why: why.to_string(),
        }
    }
}

/// Every certificate in the PEM file at `path`; errors name `setting` (the flag or field that
/// named the file) and the path.
pub fn ca_roots(path: &Path, setting: &str) -> Result<RootCertStore, TlsFileError> {
    let named = |e: &dyn std::fmt::Display| TlsFileError::new(setting, path, e);
    let mut roots = RootCertStore::empty();
    for cert in CertificateDer::pem_file_iter(path).map_err(|e| named(&e))? {
        roots
            .add(cert.map_err(|e| named(&e))?)
            .map_err(|e| named(&e))?;
    }
    Ok(roots)
}
