//! A TLS client trusting only the test CA, optionally presenting a client certificate: what the
//! HTTPS tests of the daemon's own server and the apiserver fixture connect with.

use std::path::Path;
use std::sync::Arc;

use rustls::pki_types::pem::PemObject;

/// A connector that verifies the server against `ca` (and presents `identity`: cert, key).
pub fn connector(ca: &Path, identity: Option<(&Path, &Path)>) -> tokio_rustls::TlsConnector {
    let roots = etcd_upkeep::tls::ca_roots(ca, "the test CA").unwrap();
    let config = rustls::ClientConfig::builder_with_provider(Arc::new(
        rustls::crypto::ring::default_provider(),
    ))
    .with_safe_default_protocol_versions()
    .unwrap()
    .with_root_certificates(roots);
    let config = match identity {
        Some((cert, key)) => {
            let chain = rustls::pki_types::CertificateDer::pem_file_iter(cert)
                .unwrap()
                .map(|c| c.unwrap())
                .collect();
            let key = rustls::pki_types::PrivateKeyDer::from_pem_file(key).unwrap();
            config.with_client_auth_cert(chain, key).unwrap()
        }
        None => config.with_no_client_auth(),
    };
    tokio_rustls::TlsConnector::from(Arc::new(config))
}
