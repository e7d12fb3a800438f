//! The HTTP surface is bounded in time: a client that holds its request headers open (a
//! slowloris) is cut off within seconds, and `/healthz` answers without etcd.

use crate::support;

use std::io::{Read, Write};
use std::net::TcpStream;
use std::time::{Duration, Instant};

use support::{Daemon, s};

#[test]
fn a_connection_holding_a_partial_request_header_is_closed_within_seconds() {
    let dir = tempfile::tempdir().unwrap();
    // No etcd at all: the daemon backs off and stays alive.
    let args = s(&["--endpoints", "http://127.0.0.1:1", "--poll-interval", "1s"]);
    let daemon = Daemon::start(&args, dir.path());
    let mut stream = TcpStream::connect(&daemon.address).unwrap();
    stream
        .write_all(b"GET /metrics HTTP/1.1\r\nHost: upkeep\r\nX-Slow: ")
        .unwrap();
    stream
        .set_read_timeout(Some(Duration::from_secs(20)))
        .unwrap();
    let started = Instant::now();
    let mut buf = Vec::new();
    let _ = stream.read_to_end(&mut buf);
    let held = started.elapsed();
    assert!(
        held < Duration::from_secs(10),
        "a partial header was held open for {held:?}"
    );
    // The daemon itself is fine.
    assert_eq!(daemon.get("/healthz").0, 200);
}

/// GET over TLS (trusting `ca`), with an optional `Authorization` header; (status, body).
fn https_get(address: &str, ca: &std::path::Path, path: &str, auth: Option<&str>) -> (u16, String) {
    https_get_as(address, ca, path, auth, None)
}

/// The same, presenting a client certificate (cert, key) when given. Status 0 when the server
/// refused the handshake.
fn https_get_as(
    address: &str,
    ca: &std::path::Path,
    path: &str,
    auth: Option<&str>,
    identity: Option<(&std::path::Path, &std::path::Path)>,
) -> (u16, String) {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    support::runtime().block_on(async {
        let connector = support::tls::connector(ca, identity);
        let tcp = tokio::net::TcpStream::connect(address).await.unwrap();
        let name = rustls::pki_types::ServerName::try_from("127.0.0.1").unwrap();
        let Ok(mut tls) = connector.connect(name, tcp).await else {
            return (0, String::new());
        };
        let auth = auth
            .map(|a| format!("Authorization: {a}\r\n"))
            .unwrap_or_default();
        let request = format!("GET {path} HTTP/1.0\r\nHost: upkeep\r\n{auth}\r\n");
        if tls.write_all(request.as_bytes()).await.is_err() {
            return (0, String::new());
        }
        let mut response = Vec::new();
        let _ = tls.read_to_end(&mut response).await;
        support::parse_http(&String::from_utf8_lossy(&response))
    })
}

/// `run` serving with `web` (no etcd behind it: the HTTP surface is what is tested), once its
/// port accepts. Daemon::start probes /healthz in plain HTTP; these servers speak TLS.
fn start_with_web_config(
    dir: &std::path::Path,
    web: &std::path::Path,
) -> (std::process::Child, String) {
    let address = format!("127.0.0.1:{}", support::free_port());
    let log = std::fs::File::create(dir.join("upkeep.log")).unwrap();
    let web = web.display().to_string();
    let argv = s(&[
        "run",
        "--listen-address",
        &address,
        "--endpoints",
        "http://127.0.0.1:1",
        "--web-config-file",
        &web,
    ]);
    let child = std::process::Command::new(support::upkeep_bin())
        .args(&argv)
        .stdout(log.try_clone().unwrap())
        .stderr(log)
        .spawn()
        .unwrap();
    let deadline = Instant::now() + Duration::from_secs(10);
    while TcpStream::connect(&address).is_err() && Instant::now() < deadline {
        std::thread::sleep(Duration::from_millis(100));
    }
    (child, address)
}

#[test]
fn metrics_over_tls_with_basic_auth_and_a_bad_web_config_names_the_field() {
    use base64::Engine as _;
    let dir = tempfile::tempdir().unwrap();
    let pki = support::Pki::generate(&dir.path().join("pki"), "web-ca");
    let hash = bcrypt::hash("scrape-s3cret", 4).unwrap();
    let web = dir.path().join("web.yml");
    std::fs::write(
        &web,
        format!(
            "tls_server_config:\n  cert_file: pki/server.crt\n  key_file: pki/server.key\nbasic_auth_users:\n  prometheus: {hash}\n"
        ),
    )
    .unwrap();
    let (mut child, address) = start_with_web_config(dir.path(), &web);
    let basic = |user: &str, password: &str| {
        format!(
            "Basic {}",
            base64::engine::general_purpose::STANDARD.encode(format!("{user}:{password}"))
        )
    };
    let (code, body) = https_get(
        &address,
        &pki.ca,
        "/metrics",
        Some(&basic("prometheus", "scrape-s3cret")),
    );
    assert_eq!(code, 200, "{body}");
    assert!(body.contains("etcd_upkeep_ready"), "{body}");
    let check = std::process::Command::new("promtool")
        .args(["check", "metrics"])
        .stdin(std::process::Stdio::piped())
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .and_then(|mut p| {
            use std::io::Write as _;
            p.stdin.take().unwrap().write_all(body.as_bytes())?;
            p.wait_with_output()
        })
        .expect("promtool (Debian package prometheus)");
    assert!(
        check.status.success(),
        "{}",
        String::from_utf8_lossy(&check.stderr)
    );
    assert_eq!(
        https_get(
            &address,
            &pki.ca,
            "/metrics",
            Some(&basic("prometheus", "wrong"))
        )
        .0,
        401
    );
    assert_eq!(https_get(&address, &pki.ca, "/status", None).0, 401);
    assert_eq!(
        https_get(&address, &pki.ca, "/healthz", None).0,
        200,
        "open for the kubelet"
    );
    let _ = child.kill();
    let _ = child.wait();

    // A bad file: exit 2, naming the field.
    std::fs::write(&web, "basic_auth_users:\n  prometheus: not-a-hash\n").unwrap();
    let out = support::upkeep(&s(&[
        "run",
        "--endpoints",
        "http://127.0.0.1:1",
        "--web-config-file",
        &web.display().to_string(),
    ]));
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(2), "{stderr}");
    assert!(
        stderr.contains("basic_auth_users.prometheus: not a bcrypt hash"),
        "{stderr}"
    );
}

#[test]
fn with_a_client_ca_only_clients_with_a_certificate_it_signed_are_served() {
    let dir = tempfile::tempdir().unwrap();
    let pki = support::Pki::generate(&dir.path().join("pki"), "web-ca");
    let other = support::Pki::generate(&dir.path().join("other"), "another-ca");
    let web = dir.path().join("web.yml");
    std::fs::write(
        &web,
        "tls_server_config:\n  cert_file: pki/server.crt\n  key_file: pki/server.key\n  client_ca_file: pki/ca.crt\n  client_auth_type: RequireAndVerifyClientCert\n",
    )
    .unwrap();
    let (mut child, address) = start_with_web_config(dir.path(), &web);
    let ours = Some((pki.client_cert.as_path(), pki.client_key.as_path()));
    let (code, body) = https_get_as(&address, &pki.ca, "/metrics", None, ours);
    assert_eq!(code, 200, "{body}");
    assert!(body.contains("etcd_upkeep_ready"));
    assert_eq!(
        https_get(&address, &pki.ca, "/metrics", None).0,
        0,
        "no certificate: refused"
    );
    let foreign = Some((other.client_cert.as_path(), other.client_key.as_path()));
    assert_eq!(
        https_get_as(&address, &pki.ca, "/metrics", None, foreign).0,
        0,
        "a certificate of another CA: refused"
    );
    let _ = child.kill();
    let _ = child.wait();
}
