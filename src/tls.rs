//! Reading a CA bundle for rustls, shared by every TLS client and server etcd-upkeep builds
//! itself (the web config's client CA, the Kubernetes API's CA). Why one place: each names the
//! setting and the path in its error, and a wrong file must read the same way everywhere.

use std::path::Path;

use rustls::RootCertStore;
use rustls::pki_types::CertificateDer;
use rustls::pki_types::pem::PemObject;

/// Every certificate in the PEM file at `path`; errors start with `setting` (the flag or
/// field that named the file) and the path.
pub fn ca_roots(path: &Path, setting: &str) -> Result<RootCertStore, String> {
    let named = |e: &dyn std::fmt::Display| format!("{setting} {}: {e}", path.display());
    let mut roots = RootCertStore::empty();
    for cert in CertificateDer::pem_file_iter(path).map_err(|e| named(&e))? {
        roots
            .add(cert.map_err(|e| named(&e))?)
            .map_err(|e| named(&e))?;
    }
    Ok(roots)
}
