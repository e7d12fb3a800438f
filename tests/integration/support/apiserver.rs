//! A real kube-apiserver in front of a test cluster: etcd's only client in vCluster, built from
//! the Go module proxy by `scripts/setup-apiserver.sh`. Tests make objects through its API, never
//! by writing etcd, so what etcd-upkeep reads is what the real client wrote (its protobuf, its
//! managedFields), and what a user sees of a NOSPACE is what an API client gets back.
//!
//! The client is a few lines of HTTPS (HTTP/1.0, so every answer ends with its connection and
//! needs no chunked decoding) with the static bearer token the apiserver is started with; the
//! server's certificate is the test CA's, so the client verifies it.

use std::path::{Path, PathBuf};
use std::process::{Child, Command};
use std::time::{Duration, Instant};

use tokio::io::{AsyncReadExt, AsyncWriteExt};

use super::{Cluster, free_port, parse_http, runtime};

/// The kube-apiserver binary: `KUBE_APISERVER_BIN`, else what `scripts/setup-apiserver.sh`
/// built. These tests run from `scripts/apiserver-tests.sh`, which builds it first.
pub fn apiserver_bin() -> PathBuf {
    let bin = std::env::var_os("KUBE_APISERVER_BIN")
        .map(PathBuf::from)
        .unwrap_or_else(|| {
            Path::new(env!("CARGO_MANIFEST_DIR")).join(".tools/kube-1.36.3/kube-apiserver")
        });
    assert!(
        bin.is_file(),
        "no kube-apiserver at {}: run `bash scripts/setup-apiserver.sh` (or the suite through `bash scripts/apiserver-tests.sh`)",
        bin.display()
    );
    bin
}

/// A running kube-apiserver; killed on drop.
pub struct ApiServer {
    process: Child,
    /// host:port of its secure port.
    pub address: String,
    pub log_path: PathBuf,
    token: String,
    tls: tokio_rustls::TlsConnector,
}

/// What the API answered: the HTTP status and the body parsed as JSON (Null when it was not).
#[derive(Debug)]
pub struct Answer {
    pub status: u16,
    pub body: serde_json::Value,
    /// The body as text (`/metrics`, logs).
    pub text: String,
}

impl Answer {
    pub fn ok(&self) -> bool {
        (200..300).contains(&self.status)
    }

    /// The Status object's message of a refusal.
    pub fn message(&self) -> String {
        self.body["message"]
            .as_str()
            .unwrap_or_default()
            .to_string()
    }
}

impl ApiServer {
    /// Starts it against every member of `cluster` (TLS, with a client certificate of its own)
    /// with `extra` flags, and waits for `/readyz`. The etcd compaction interval stays at its
    /// default (every 5 minutes), as in vCluster.
    pub fn start(cluster: &Cluster, extra: &[&str]) -> ApiServer {
        let dir = cluster.dir.path().join("kube-apiserver");
        std::fs::create_dir_all(&dir).unwrap();
        let (etcd_cert, etcd_key) = cluster.pki.client_pair("kube-apiserver");
        // The service-account key pair (the apiserver refuses to start without one).
        let sa = rcgen::KeyPair::generate().unwrap();
        let sa_key = dir.join("sa.key");
        let sa_pub = dir.join("sa.pub");
        std::fs::write(&sa_key, sa.serialize_pem()).unwrap();
        std::fs::write(&sa_pub, sa.public_key_pem()).unwrap();
        let token = format!("upkeep-test-{}", std::process::id());
        let tokens = dir.join("tokens.csv");
        std::fs::write(&tokens, format!("{token},admin,admin,system:masters\n")).unwrap();
        let port = free_port();
        let address = format!("127.0.0.1:{port}");
        let log_path = dir.join("kube-apiserver.log");
        let log = std::fs::File::create(&log_path).unwrap();
        let path = |p: &Path| p.display().to_string();
        let process = Command::new(apiserver_bin())
            .arg(format!("--etcd-servers={}", cluster.endpoints().join(",")))
            .arg(format!("--etcd-cafile={}", path(&cluster.pki.ca)))
            .arg(format!("--etcd-certfile={}", path(&etcd_cert)))
            .arg(format!("--etcd-keyfile={}", path(&etcd_key)))
            .arg("--bind-address=127.0.0.1")
            .arg(format!("--secure-port={port}"))
            .arg(format!(
                "--tls-cert-file={}",
                path(&cluster.pki.server_cert)
            ))
            .arg(format!(
                "--tls-private-key-file={}",
                path(&cluster.pki.server_key)
            ))
            .arg(format!("--cert-dir={}", path(&dir)))
            .arg("--service-account-issuer=https://kubernetes.default.svc.cluster.local")
            .arg(format!("--service-account-key-file={}", path(&sa_pub)))
            .arg(format!(
                "--service-account-signing-key-file={}",
                path(&sa_key)
            ))
            .arg(format!("--token-auth-file={}", path(&tokens)))
            .arg("--authorization-mode=AlwaysAllow")
            .arg("--service-cluster-ip-range=10.96.0.0/16")
            .args(extra)
            .stdout(log.try_clone().unwrap())
            .stderr(log)
            .spawn()
            .unwrap();
        let server = ApiServer {
            process,
            address,
            log_path,
            token,
            tls: super::tls::connector(&cluster.pki.ca, None),
        };
        let deadline = Instant::now() + Duration::from_secs(90);
        loop {
            if server
                .call("GET", "/readyz", None, None)
                .is_ok_and(|a| a.ok())
            {
                break;
            }
            assert!(
                Instant::now() < deadline,
                "kube-apiserver not ready in 90 s; its log:\n{}",
                server.log_tail(40)
            );
            std::thread::sleep(Duration::from_millis(250));
        }
        server
    }

    /// The last `lines` lines of its log.
    pub fn log_tail(&self, lines: usize) -> String {
        let log = self.log();
        let all: Vec<&str> = log.lines().collect();
        all[all.len().saturating_sub(lines)..].join("\n")
    }

    pub fn log(&self) -> String {
        std::fs::read_to_string(&self.log_path).unwrap_or_default()
    }

    /// One request: `method path` with an optional body of `content_type`. Err when no answer
    /// came (connection refused or cut).
    pub async fn request(
        &self,
        method: &str,
        path: &str,
        content_type: Option<&str>,
        body: Option<&str>,
    ) -> Result<Answer, String> {
        let tcp = tokio::net::TcpStream::connect(&self.address)
            .await
            .map_err(|e| format!("connect {}: {e}", self.address))?;
        let name = rustls::pki_types::ServerName::try_from("127.0.0.1").unwrap();
        let mut tls = self
            .tls
            .connect(name, tcp)
            .await
            .map_err(|e| format!("TLS: {e}"))?;
        let body = body.unwrap_or("");
        let content_type = content_type
            .map(|t| format!("Content-Type: {t}\r\n"))
            .unwrap_or_default();
        let request = format!(
            "{method} {path} HTTP/1.0\r\nHost: {}\r\nAuthorization: Bearer {}\r\nAccept: application/json\r\n{content_type}Content-Length: {}\r\n\r\n{body}",
            self.address,
            self.token,
            body.len()
        );
        tls.write_all(request.as_bytes())
            .await
            .map_err(|e| format!("write: {e}"))?;
        let mut response = Vec::new();
        tls.read_to_end(&mut response)
            .await
            .map_err(|e| format!("read: {e}"))?;
        let (status, body) = parse_http(&String::from_utf8_lossy(&response));
        if status == 0 {
            return Err("no HTTP answer".into());
        }
        Ok(Answer {
            status,
            body: serde_json::from_str(&body).unwrap_or(serde_json::Value::Null),
            text: body,
        })
    }

    /// The same, blocking (for a test's main thread).
    pub fn call(
        &self,
        method: &str,
        path: &str,
        content_type: Option<&str>,
        body: Option<&str>,
    ) -> Result<Answer, String> {
        runtime().block_on(self.request(method, path, content_type, body))
    }

    /// Server-side apply of `object` (JSON) at `path` as `manager`, taking over conflicting
    /// fields (`force`), as a controller that insists on its value does.
    pub async fn apply(&self, path: &str, manager: &str, object: &str) -> Result<Answer, String> {
        let path = format!("{path}?fieldManager={manager}&force=true");
        self.request(
            "PATCH",
            &path,
            Some("application/apply-patch+yaml"),
            Some(object),
        )
        .await
    }

    /// Waits until `check` holds for what GET `path` answers.
    pub fn wait_for(
        &self,
        path: &str,
        limit: Duration,
        what: &str,
        check: impl Fn(&Answer) -> bool,
    ) {
        let deadline = Instant::now() + limit;
        loop {
            if self.call("GET", path, None, None).is_ok_and(|a| check(&a)) {
                return;
            }
            assert!(Instant::now() < deadline, "{what}: not within {limit:?}");
            std::thread::sleep(Duration::from_millis(200));
        }
    }

    /// The sum of every series of the apiserver's metric `name` (0 when it has none yet).
    pub fn metric_sum(&self, name: &str) -> f64 {
        let metrics = self.call("GET", "/metrics", None, None).unwrap().text;
        metrics
            .lines()
            .filter(|l| l.starts_with(name) && l[name.len()..].starts_with(['{', ' ']))
            .filter_map(|l| l.rsplit(' ').next()?.parse::<f64>().ok())
            .sum()
    }

    /// The same, only the series whose labels contain `label` (e.g. `status="error"`).
    pub fn metric_sum_where(&self, name: &str, label: &str) -> f64 {
        let metrics = self.call("GET", "/metrics", None, None).unwrap().text;
        metrics
            .lines()
            .filter(|l| l.starts_with(name) && l[name.len()..].starts_with('{'))
            .filter(|l| {
                l.split_once(' ')
                    .is_some_and(|(series, _)| series.contains(label))
            })
            .filter_map(|l| l.rsplit(' ').next()?.parse::<f64>().ok())
            .sum()
    }

    /// A file holding the test client's token (for a daemon that records Events here).
    pub fn token_file(&self) -> PathBuf {
        let path = self.log_path.with_file_name("token");
        std::fs::write(&path, &self.token).unwrap();
        path
    }

    /// Whether the process still runs (a NOSPACE must not need an apiserver restart).
    pub fn running(&mut self) -> bool {
        self.process.try_wait().unwrap().is_none()
    }
}

impl Drop for ApiServer {
    fn drop(&mut self) {
        let _ = self.process.kill();
        let _ = self.process.wait();
    }
}
