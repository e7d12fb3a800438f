//! TLS failures name their cause and the flag to fix: a key that does not match its
//! certificate is refused when loaded (exit 2, both paths named), and a client certificate the
//! server does not trust is named with the CA it must be signed by — never a bare
//! "transport error".

use crate::support;

use support::{Cluster, Pki, s, upkeep};

#[test]
fn a_mismatched_key_and_an_untrusted_client_certificate_are_named() {
    let cluster = Cluster::start(1, 64 << 20);
    let other = Pki::generate(&cluster.dir.path().join("other"), "other-ca");
    let endpoint = cluster.endpoints()[0].clone();
    let ca = cluster.pki.ca.display().to_string();
    let status = |cert: &std::path::Path, key: &std::path::Path| {
        let (cert, key) = (cert.display().to_string(), key.display().to_string());
        let out = upkeep(&s(&[
            "status",
            "--endpoints",
            &endpoint,
            "--cacert",
            &ca,
            "--cert",
            &cert,
            "--key",
            &key,
        ]));
        (
            out.status.code(),
            String::from_utf8_lossy(&out.stderr).to_string(),
        )
    };

    let (code, stderr) = status(&cluster.pki.client_cert, &other.client_key);
    assert_eq!(code, Some(2), "{stderr}");
    assert!(
        stderr.contains("client key (--key)")
            && stderr.contains("does not match the client certificate")
            && stderr.contains(&cluster.pki.client_cert.display().to_string()),
        "{stderr}"
    );
    assert_eq!(stderr.trim().lines().count(), 1, "one line: {stderr}");

    let (code, stderr) = status(&other.client_cert, &other.client_key);
    assert_eq!(code, Some(1), "{stderr}");
    assert!(
        stderr.contains("does not trust the client certificate (--cert")
            && stderr.contains(&other.client_cert.display().to_string())
            && stderr.contains("--trusted-ca-file"),
        "{stderr}"
    );
    assert!(!stderr.contains("transport error"), "{stderr}");
}
