//! Real-etcd test harness: generates a PKI with rcgen, starts 1- or 3-member etcd clusters with
//! client and peer TLS on free loopback ports, and runs the etcd-upkeep binary against them.
//!
//! Why real processes: every behaviour that matters (NOSPACE, defrag blocking a member, TLS
//! errors, a frozen member) is etcd's own, and a mock would only test our assumptions about it.
//! The etcd binary comes from `ETCD_BIN`, else `.tools/etcd-3.5` (filled by scripts/setup.sh),
//! else `etcd` on PATH.
#![allow(dead_code)]

pub mod netns;
pub mod nospace;
pub mod slowdisk;
#[allow(unused_imports)]
pub use nospace::*;

use std::io::{Read, Write};
use std::net::{TcpListener, TcpStream};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Output, Stdio};
use std::time::{Duration, Instant};

use rcgen::{
    BasicConstraints, CertificateParams, DnType, ExtendedKeyUsagePurpose, IsCa, Issuer, KeyPair,
};

pub fn etcd_bin() -> PathBuf {
    if let Ok(bin) = std::env::var("ETCD_BIN") {
        return PathBuf::from(bin);
    }
    let local = Path::new(env!("CARGO_MANIFEST_DIR")).join(".tools/etcd-3.5/usr/bin/etcd");
    if local.exists() {
        return local;
    }
    PathBuf::from("etcd")
}

/// The (major, minor) of the etcd under test, from `--version`.
pub fn etcd_version() -> (u32, u32) {
    let out = Command::new(etcd_bin()).arg("--version").output().unwrap();
    let text = String::from_utf8_lossy(&out.stdout);
    let version = text
        .lines()
        .find_map(|l| l.strip_prefix("etcd Version: "))
        .expect("etcd --version names its version");
    let mut parts = version.trim().split('.').map(|p| p.parse().unwrap_or(0));
    (parts.next().unwrap_or(0), parts.next().unwrap_or(0))
}

/// Whether etcd reports its quota in Status (`dbSizeQuota`, etcd ≥ 3.6).
pub fn etcd_reports_quota() -> bool {
    etcd_version() >= (3, 6)
}

/// The etcd-upkeep binary: Cargo's for tests; for the demo (an example), the one built beside it.
pub fn upkeep_bin() -> PathBuf {
    if let Some(bin) = option_env!("CARGO_BIN_EXE_etcd-upkeep") {
        return PathBuf::from(bin);
    }
    if let Ok(bin) = std::env::var("ETCD_UPKEEP_BIN") {
        return PathBuf::from(bin);
    }
    let exe = std::env::current_exe().expect("current exe");
    exe.parent()
        .and_then(|examples| examples.parent())
        .expect("target dir")
        .join("etcd-upkeep")
}

/// A loopback port for a test server, below the kernel's ephemeral range (32768+) so that no
/// outgoing connection can take it between this check and the server's bind. Each process
/// starts at its own offset and walks forward (distinct per cluster), skipping ports in use.
///
/// Why a lock per port: the test command runs tests in parallel processes, and two of them can
/// both find a port free before either server binds it. A port is handed out only with an
/// exclusive `flock` on a file named after it, held until this process exits (the kernel drops
/// it then, so a crashed test frees its ports).
pub fn free_port() -> u16 {
    use std::os::fd::AsRawFd;
    use std::sync::Mutex;
    use std::sync::atomic::{AtomicU32, Ordering};
    const FIRST: u32 = 10_000;
    const SPAN: u32 = 22_000; // 10000..31999
    static NEXT: AtomicU32 = AtomicU32::new(0);
    static HELD: Mutex<Vec<std::fs::File>> = Mutex::new(Vec::new());
    let locks = std::env::temp_dir().join("etcd-upkeep-test-ports");
    std::fs::create_dir_all(&locks).expect("the port lock directory");
    let offset = (std::process::id() % 220) * 100;
    loop {
        let n = NEXT.fetch_add(1, Ordering::SeqCst);
        let port = (FIRST + (offset + n) % SPAN) as u16;
        let Ok(lock) = std::fs::File::create(locks.join(port.to_string())) else {
            continue;
        };
        // SAFETY: flock on a descriptor this function owns; no memory is involved.
        if unsafe { libc::flock(lock.as_raw_fd(), libc::LOCK_EX | libc::LOCK_NB) } != 0 {
            continue; // another test process holds it
        }
        if TcpListener::bind(("127.0.0.1", port)).is_ok() {
            HELD.lock().unwrap().push(lock);
            return port;
        }
    }
}

/// A CA with a server/peer certificate (127.0.0.1, localhost) and a client certificate.
pub struct Pki {
    pub dir: PathBuf,
    pub ca: PathBuf,
    pub server_cert: PathBuf,
    pub server_key: PathBuf,
    pub client_cert: PathBuf,
    pub client_key: PathBuf,
}

fn ca_params(name: &str) -> CertificateParams {
    let mut params = CertificateParams::new(Vec::<String>::new()).unwrap();
    params.distinguished_name.push(DnType::CommonName, name);
    params.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
    params
}

impl Pki {
    pub fn generate(dir: &Path, ca_name: &str) -> Pki {
        Pki::generate_for(dir, ca_name, &[])
    }

    /// The same, with the server certificate also valid for `hosts` (test-host addresses).
    pub fn generate_for(dir: &Path, ca_name: &str, hosts: &[String]) -> Pki {
        std::fs::create_dir_all(dir).unwrap();
        let ca_key = KeyPair::generate().unwrap();
        let ca_params = ca_params(ca_name);
        let ca_cert = ca_params.self_signed(&ca_key).unwrap();
        let issuer = Issuer::new(ca_params, ca_key);

        let names = ["127.0.0.1".to_string(), "localhost".to_string()];
        let mut server = CertificateParams::new([&names[..], hosts].concat()).unwrap();
        server
            .distinguished_name
            .push(DnType::CommonName, "etcd-server");
        server.extended_key_usages = vec![
            ExtendedKeyUsagePurpose::ServerAuth,
            ExtendedKeyUsagePurpose::ClientAuth,
        ];
        let server_key = KeyPair::generate().unwrap();
        let server_cert = server.signed_by(&server_key, &issuer).unwrap();

        let mut client = CertificateParams::new(Vec::<String>::new()).unwrap();
        client
            .distinguished_name
            .push(DnType::CommonName, "etcd-upkeep");
        client.extended_key_usages = vec![ExtendedKeyUsagePurpose::ClientAuth];
        let client_key = KeyPair::generate().unwrap();
        let client_cert = client.signed_by(&client_key, &issuer).unwrap();

        let write = |name: &str, text: String| {
            let path = dir.join(name);
            std::fs::write(&path, text).unwrap();
            path
        };
        Pki {
            dir: dir.to_path_buf(),
            ca: write("ca.crt", ca_cert.pem()),
            server_cert: write("server.crt", server_cert.pem()),
            server_key: write("server.key", server_key.serialize_pem()),
            client_cert: write("client.crt", client_cert.pem()),
            client_key: write("client.key", client_key.serialize_pem()),
        }
    }

    /// The TLS flags for etcd-upkeep.
    pub fn flags(&self) -> Vec<String> {
        vec![
            "--cacert".into(),
            self.ca.display().to_string(),
            "--cert".into(),
            self.client_cert.display().to_string(),
            "--key".into(),
            self.client_key.display().to_string(),
        ]
    }
}

/// Endpoints and TLS files for a test client.
#[derive(Clone)]
pub struct ClientConfig {
    pub endpoints: Vec<String>,
    ca: PathBuf,
    cert: PathBuf,
    key: PathBuf,
    /// Per-request timeout (5 s; benchmarks on GiB-sized dbs need more).
    timeout: Duration,
}

impl ClientConfig {
    /// The same TLS material for other endpoints (e.g. one member only).
    pub fn only(&self, endpoints: &[String]) -> ClientConfig {
        ClientConfig {
            endpoints: endpoints.to_vec(),
            ..self.clone()
        }
    }

    /// The same with another per-request timeout.
    pub fn with_timeout(&self, timeout: Duration) -> ClientConfig {
        ClientConfig {
            timeout,
            ..self.clone()
        }
    }

    pub async fn connect(&self) -> etcd_client::Client {
        let tls = etcd_client::TlsOptions::new()
            .ca_certificate(etcd_client::Certificate::from_pem(
                std::fs::read(&self.ca).unwrap(),
            ))
            .identity(etcd_client::Identity::from_pem(
                std::fs::read(&self.cert).unwrap(),
                std::fs::read(&self.key).unwrap(),
            ));
        let options = etcd_client::ConnectOptions::new()
            .with_tls(tls)
            .with_timeout(self.timeout)
            .with_connect_timeout(Duration::from_secs(2));
        etcd_client::Client::connect(&self.endpoints, Some(options))
            .await
            .unwrap()
    }
}

pub struct Member {
    pub name: String,
    pub client_url: String,
    pub peer_url: String,
    pub metrics_url: String,
    pub data_dir: PathBuf,
    pub log_path: PathBuf,
    args: Vec<String>,
    process: Option<Child>,
    /// The network namespace it runs in (partition tests), else the root one.
    netns: Option<String>,
}

impl Member {
    pub fn pid(&self) -> u32 {
        self.process.as_ref().expect("member running").id()
    }
}

pub struct Cluster {
    pub dir: tempfile::TempDir,
    pub pki: Pki,
    pub members: Vec<Member>,
    pub quota: u64,
    /// tmpfs volumes mounted for members' data dirs (unmounted on drop).
    mounts: Vec<PathBuf>,
}

/// (client, peer, metrics URL, no namespace) for `n` members on loopback ports of their own.
fn loopback_urls(n: usize) -> Vec<(String, String, String, Option<String>)> {
    (0..n)
        .map(|_| {
            let url = |scheme: &str| format!("{scheme}://127.0.0.1:{}", free_port());
            (url("https"), url("https"), url("http"), None)
        })
        .collect()
}

impl Cluster {
    /// Starts an `n`-member TLS cluster with the given quota and waits until it serves writes.
    pub fn start(n: usize, quota: u64) -> Cluster {
        Cluster::start_with(n, quota, &[])
    }

    /// The same with extra etcd flags on every member (e.g. `--auto-compaction-mode`).
    pub fn start_with(n: usize, quota: u64, extra: &[&str]) -> Cluster {
        let dir = tempfile::tempdir().unwrap();
        let pki = Pki::generate(&dir.path().join("pki"), "etcd-ca");
        let urls = loopback_urls(n);
        Cluster::start_on(dir, pki, urls, quota, extra, None)
    }

    /// `n` members with their WAL in a directory of its own, and member `on`'s data dir on a
    /// tmpfs of `volume` bytes: a volume that the test can fill (needs root to mount).
    pub fn start_with_volume(n: usize, quota: u64, on: usize, volume: u64) -> Cluster {
        let dir = tempfile::tempdir().unwrap();
        let pki = Pki::generate(&dir.path().join("pki"), "etcd-ca");
        let urls = loopback_urls(n);
        Cluster::start_on(dir, pki, urls, quota, &[], Some((on, volume)))
    }

    /// `n` members, member `i` on host `i` of `network` (its own namespace and address,
    /// standard ports); the hosts after them are left for daemons.
    pub fn start_in(network: &netns::Network, n: usize, quota: u64, extra: &[&str]) -> Cluster {
        let dir = tempfile::tempdir().unwrap();
        let ips: Vec<String> = network.hosts.iter().map(|h| h.ip.clone()).collect();
        let pki = Pki::generate_for(&dir.path().join("pki"), "etcd-ca", &ips);
        let urls = network.hosts[..n]
            .iter()
            .map(|h| {
                let ip = &h.ip;
                let (client, peer) = (format!("https://{ip}:2379"), format!("https://{ip}:2380"));
                (
                    client,
                    peer,
                    format!("http://{ip}:2381"),
                    Some(h.ns.clone()),
                )
            })
            .collect();
        Cluster::start_on(dir, pki, urls, quota, extra, None)
    }

    /// Members at (client, peer, metrics URL, namespace), one each; `volume`: (member, bytes)
    /// of a tmpfs for that member's data dir, every WAL then in a directory of its own.
    fn start_on(
        dir: tempfile::TempDir,
        pki: Pki,
        urls: Vec<(String, String, String, Option<String>)>,
        quota: u64,
        extra: &[&str],
        volume: Option<(usize, u64)>,
    ) -> Cluster {
        let n = urls.len();
        let names: Vec<String> = (0..n).map(|i| format!("m{i}")).collect();
        let initial_cluster: Vec<String> = names
            .iter()
            .zip(&urls)
            .map(|(name, (_, peer, _, _))| format!("{name}={peer}"))
            .collect();
        let token = format!(
            "upkeep-test-{}",
            dir.path().file_name().unwrap().to_string_lossy()
        );
        let mut members = Vec::new();
        for (name, (client_url, peer_url, metrics_url, netns)) in names.iter().zip(urls) {
            let data_dir = dir.path().join(format!("{name}.etcd"));
            let log_path = dir.path().join(format!("{name}.log"));
            let p = |p: &Path| p.display().to_string();
            let args = vec![
                "--name".into(),
                name.clone(),
                "--data-dir".into(),
                p(&data_dir),
                "--listen-client-urls".into(),
                client_url.clone(),
                "--advertise-client-urls".into(),
                client_url.clone(),
                "--listen-peer-urls".into(),
                peer_url.clone(),
                "--initial-advertise-peer-urls".into(),
                peer_url.clone(),
                "--listen-metrics-urls".into(),
                metrics_url.clone(),
                "--initial-cluster".into(),
                initial_cluster.join(","),
                "--initial-cluster-state".into(),
                "new".into(),
                "--initial-cluster-token".into(),
                token.clone(),
                "--cert-file".into(),
                p(&pki.server_cert),
                "--key-file".into(),
                p(&pki.server_key),
                "--trusted-ca-file".into(),
                p(&pki.ca),
                "--client-cert-auth".into(),
                "--peer-cert-file".into(),
                p(&pki.server_cert),
                "--peer-key-file".into(),
                p(&pki.server_key),
                "--peer-trusted-ca-file".into(),
                p(&pki.ca),
                "--peer-client-cert-auth".into(),
                "--quota-backend-bytes".into(),
                quota.to_string(),
                "--logger".into(),
                "zap".into(),
                "--log-outputs".into(),
                p(&log_path),
                "--heartbeat-interval".into(),
                "50".into(),
                "--election-timeout".into(),
                "500".into(),
                "--snapshot-count".into(),
                "5000".into(),
            ];
            let mut args: Vec<String> = args.into_iter().chain(s(extra)).collect();
            if volume.is_some() {
                args.push("--wal-dir".into());
                args.push(p(&dir.path().join(format!("{name}.wal"))));
            }
            members.push(Member {
                name: name.clone(),
                client_url,
                peer_url,
                metrics_url,
                data_dir,
                log_path,
                args,
                process: None,
                netns,
            });
        }
        let mut cluster = Cluster {
            dir,
            pki,
            members,
            quota,
            mounts: Vec::new(),
        };
        if let Some((on, bytes)) = volume {
            let at = cluster.members[on].data_dir.clone();
            std::fs::create_dir_all(&at).unwrap();
            let mounted = Command::new("mount")
                .args(["-t", "tmpfs", "-o", &format!("size={bytes}"), "tmpfs"])
                .arg(&at)
                .status()
                .unwrap();
            assert!(
                mounted.success(),
                "cannot mount a tmpfs at {}",
                at.display()
            );
            cluster.mounts.push(at);
        }
        for i in 0..n {
            cluster.spawn(i);
        }
        cluster.wait_writable(Duration::from_secs(30));
        cluster
    }

    fn spawn(&mut self, i: usize) {
        let member = &mut self.members[i];
        let mut command = match &member.netns {
            Some(ns) => {
                let mut c = Command::new("ip");
                c.args(["netns", "exec", ns]).arg(etcd_bin());
                c
            }
            None => Command::new(etcd_bin()),
        };
        let child = command
            .args(&member.args)
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .unwrap_or_else(|e| {
                panic!(
                    "cannot start etcd ({}): {e}; run scripts/setup.sh",
                    etcd_bin().display()
                )
            });
        member.process = Some(child);
    }

    pub fn endpoints(&self) -> Vec<String> {
        self.members.iter().map(|m| m.client_url.clone()).collect()
    }

    pub fn freeze(&self, i: usize) {
        signal(self.members[i].pid(), "STOP");
    }

    pub fn thaw(&self, i: usize) {
        signal(self.members[i].pid(), "CONT");
    }

    pub fn kill(&mut self, i: usize) {
        if let Some(mut child) = self.members[i].process.take() {
            let _ = child.kill();
            let _ = child.wait();
        }
    }

    /// Restarts a killed member with its data (it rejoins as the same member).
    pub fn restart(&mut self, i: usize) {
        self.kill(i);
        let args: Vec<String> = self.members[i]
            .args
            .iter()
            .map(|a| {
                if a == "new" {
                    "existing".to_string()
                } else {
                    a.clone()
                }
            })
            .collect();
        self.members[i].args = args;
        self.spawn(i);
    }

    /// Restarts member `i` with another `--quota-backend-bytes` (one step of a rolling raise).
    pub fn restart_with_quota(&mut self, i: usize, quota: u64) {
        let args = &mut self.members[i].args;
        let at = args
            .iter()
            .position(|a| a == "--quota-backend-bytes")
            .expect("every member has a quota flag");
        args[at + 1] = quota.to_string();
        self.restart(i);
    }

    /// A client connected to the given endpoints over TLS.
    pub async fn client(&self, endpoints: &[String]) -> etcd_client::Client {
        self.client_config().only(endpoints).connect().await
    }

    /// What a client needs to reach this cluster; cloneable into writer threads.
    pub fn client_config(&self) -> ClientConfig {
        ClientConfig {
            endpoints: self.endpoints(),
            ca: self.pki.ca.clone(),
            cert: self.pki.client_cert.clone(),
            key: self.pki.client_key.clone(),
            timeout: Duration::from_secs(5),
        }
    }

    /// Blocks until a write through every member succeeds.
    pub fn wait_writable(&self, limit: Duration) {
        let rt = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .unwrap();
        let deadline = Instant::now() + limit;
        for endpoint in self.endpoints() {
            loop {
                let ok = rt.block_on(async {
                    let mut client = self.client(std::slice::from_ref(&endpoint)).await;
                    client.put("upkeep-test/ready", "1", None).await.is_ok()
                });
                if ok {
                    break;
                }
                assert!(
                    Instant::now() < deadline,
                    "etcd at {endpoint} did not become writable"
                );
                std::thread::sleep(Duration::from_millis(200));
            }
        }
    }

    pub fn log(&self, i: usize) -> String {
        std::fs::read_to_string(&self.members[i].log_path).unwrap_or_default()
    }
}

impl Drop for Cluster {
    fn drop(&mut self) {
        for i in 0..self.members.len() {
            if let Some(child) = &self.members[i].process {
                signal(child.id(), "CONT");
            }
            self.kill(i);
        }
        for at in &self.mounts {
            let _ = Command::new("umount").arg(at).status();
        }
    }
}

pub fn signal(pid: u32, sig: &str) {
    let _ = Command::new("kill")
        .arg(format!("-{sig}"))
        .arg(pid.to_string())
        .status();
}

/// `run` arguments for a daemon beside `endpoint` of `cluster`, with its TLS flags and `extra`.
pub fn daemon_args(cluster: &Cluster, endpoint: &str, extra: &[&str]) -> Vec<String> {
    let mut args = s(&["--endpoints", endpoint]);
    args.extend(cluster.pki.flags());
    args.extend(s(extra));
    args
}

/// Runs a one-shot etcd-upkeep command.
pub fn upkeep(args: &[String]) -> Output {
    Command::new(upkeep_bin())
        .args(args)
        .env_remove("RUST_LOG")
        .output()
        .unwrap()
}

/// A running `etcd-upkeep run`; killed on drop.
pub struct Daemon {
    pub child: Child,
    pub address: String,
    pub log_path: PathBuf,
}

impl Daemon {
    pub fn start(args: &[String], log_dir: &Path) -> Daemon {
        Daemon::start_with_env(args, log_dir, &[])
    }

    /// The same with extra environment variables (e.g. a test fault).
    pub fn start_with_env(args: &[String], log_dir: &Path, env: &[(&str, &str)]) -> Daemon {
        let address = format!("127.0.0.1:{}", free_port());
        let mut command = Command::new(upkeep_bin());
        command.envs(env.iter().copied());
        Daemon::spawn(command, address, args, log_dir)
    }

    /// A daemon on host `i` of `network` (beside the member there, or a host of its own),
    /// serving HTTP on that host's address.
    pub fn start_in(network: &netns::Network, i: usize, args: &[String], log_dir: &Path) -> Daemon {
        let address = format!("{}:9401", network.hosts[i].ip);
        Daemon::spawn(network.command(i, upkeep_bin()), address, args, log_dir)
    }

    fn spawn(mut command: Command, address: String, args: &[String], log_dir: &Path) -> Daemon {
        let log_path = log_dir.join(format!("upkeep-{}.log", address.replace(':', "-")));
        let log = std::fs::File::create(&log_path).unwrap();
        let child = command
            .args(["run", "--listen-address", &address])
            .args(args)
            .stdout(log.try_clone().unwrap())
            .stderr(log)
            .spawn()
            .unwrap();
        let daemon = Daemon {
            child,
            address,
            log_path,
        };
        daemon.wait_for(Duration::from_secs(10), "HTTP up", |d| {
            d.get("/healthz").0 == 200
        });
        daemon
    }

    /// GET a path; (status, body). Status 0 when the connection failed.
    pub fn get(&self, path: &str) -> (u16, String) {
        http_get(&self.address, path)
    }

    pub fn log(&self) -> String {
        std::fs::read_to_string(&self.log_path).unwrap_or_default()
    }

    /// The value of the first `/metrics` sample whose line starts with `line_prefix`
    /// (a name, or a name with its labels).
    pub fn metric(&self, line_prefix: &str) -> Option<f64> {
        self.get("/metrics")
            .1
            .lines()
            .find(|l| l.starts_with(line_prefix))
            .and_then(|l| l.rsplit(' ').next()?.parse().ok())
    }

    pub fn status_json(&self) -> serde_json::Value {
        serde_json::from_str(&self.get("/status").1).unwrap_or(serde_json::Value::Null)
    }

    /// Polls `check` until it holds or panics after `limit`, printing the daemon log.
    pub fn wait_for(&self, limit: Duration, what: &str, check: impl Fn(&Daemon) -> bool) {
        let deadline = Instant::now() + limit;
        while Instant::now() < deadline {
            if check(self) {
                return;
            }
            std::thread::sleep(Duration::from_millis(200));
        }
        panic!("timed out waiting for {what}; daemon log:\n{}", self.log());
    }

    pub fn stop(&mut self) {
        signal(self.child.id(), "TERM");
        let deadline = Instant::now() + Duration::from_secs(10);
        while Instant::now() < deadline {
            if let Ok(Some(_)) = self.child.try_wait() {
                return;
            }
            std::thread::sleep(Duration::from_millis(50));
        }
        let _ = self.child.kill();
    }
}

impl Drop for Daemon {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

pub fn http_get(address: &str, path: &str) -> (u16, String) {
    // A bounded connect: a host cut off by a partition test would hold it for minutes.
    let Some(socket) = address.parse().ok() else {
        return (0, String::new());
    };
    let Ok(mut stream) = TcpStream::connect_timeout(&socket, Duration::from_secs(2)) else {
        return (0, String::new());
    };
    stream
        .set_read_timeout(Some(Duration::from_secs(10)))
        .unwrap();
    let _ = write!(stream, "GET {path} HTTP/1.0\r\nHost: {address}\r\n\r\n");
    let mut response = String::new();
    let _ = stream.read_to_string(&mut response);
    parse_http(&response)
}

/// (status, body) of an HTTP/1 response; status 0 when there was none.
pub fn parse_http(response: &str) -> (u16, String) {
    let status = response
        .split_whitespace()
        .nth(1)
        .and_then(|s| s.parse().ok())
        .unwrap_or(0);
    let body = response
        .split_once("\r\n\r\n")
        .map(|(_, b)| b.to_string())
        .unwrap_or_default();
    (status, body)
}

/// Writes `value_size`-byte values to `keys` distinct keys round-robin until etcd refuses with
/// NOSPACE; returns how many puts succeeded.
pub async fn fill_until_nospace(
    client: &mut etcd_client::Client,
    keys: usize,
    value_size: usize,
    max_puts: usize,
) -> usize {
    let value = vec![b'x'; value_size];
    for i in 0..max_puts {
        let key = format!("/registry/fill/key-{}", i % keys);
        match client.put(key, value.clone(), None).await {
            Ok(_) => {}
            Err(e) if e.to_string().contains("database space exceeded") => return i,
            // A daemon may move leadership or defragment a member meanwhile: transient.
            Err(e)
                if [
                    "leader changed",
                    "timed out",
                    "no leader",
                    "unavailable",
                    "Unavailable",
                    "Timeout expired", // the client's own deadline, on a loaded machine
                    "proposal dropped", // a leader change between proposal and commit
                ]
                .iter()
                .any(|t| e.to_string().contains(t)) =>
            {
                tokio::time::sleep(std::time::Duration::from_millis(100)).await;
            }
            Err(e) => panic!("unexpected put error: {e}"),
        }
    }
    panic!("no NOSPACE after {max_puts} puts");
}

/// Physical compaction of everything before the current revision.
pub async fn compact_to_current(c: &mut etcd_client::Client) {
    let rev = c.get("x", None).await.unwrap().header().unwrap().revision();
    c.compact(
        rev,
        Some(etcd_client::CompactionOptions::new().with_physical()),
    )
    .await
    .unwrap();
}

/// A current-thread runtime for a test's own etcd clients.
pub fn runtime() -> tokio::runtime::Runtime {
    tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap()
}

pub fn s(items: &[&str]) -> Vec<String> {
    items.iter().map(|x| x.to_string()).collect()
}

/// Seconds since the epoch of an RFC 3339 UTC timestamp as etcd's zap logger writes it.
pub fn parse_ts(ts: &str) -> f64 {
    let (date, time) = ts.trim_end_matches('Z').split_once('T').unwrap();
    let d: Vec<i64> = date.split('-').map(|x| x.parse().unwrap()).collect();
    let (y, m, day) = (d[0], d[1], d[2]);
    // Days from civil (Howard Hinnant's algorithm).
    let y = if m <= 2 { y - 1 } else { y };
    let era = y.div_euclid(400);
    let yoe = y - era * 400;
    let doy = (153 * (if m > 2 { m - 3 } else { m + 9 }) + 2) / 5 + day - 1;
    let doe = yoe * 365 + yoe / 4 - yoe / 100 + doy;
    let days = era * 146097 + doe - 719468;
    let t: Vec<f64> = time.split(':').map(|x| x.parse().unwrap()).collect();
    days as f64 * 86400.0 + t[0] * 3600.0 + t[1] * 60.0 + t[2]
}

/// Lines of an etcd JSON log whose message contains `needle`, as (time, message).
pub fn log_events(log: &str, needle: &str) -> Vec<(f64, String)> {
    log.lines()
        .filter_map(|l| serde_json::from_str::<serde_json::Value>(l).ok())
        .filter(|v| v["msg"].as_str().is_some_and(|m| m.contains(needle)))
        .map(|v| {
            (
                parse_ts(v["ts"].as_str().unwrap()),
                v["msg"].as_str().unwrap().to_string(),
            )
        })
        .collect()
}

/// (start, end) of every defragmentation in a member's etcd log.
pub fn defrag_intervals(log: &str) -> Vec<(f64, f64)> {
    let starts = log_events(log, "starting defragment");
    let ends = log_events(log, "finished defragment");
    starts
        .iter()
        .zip(ends.iter())
        .map(|(s, e)| (s.0, e.0))
        .collect()
}

impl Cluster {
    /// Waits until a defragmentation starts on any member (etcd's own log); returns that member.
    pub fn first_defragmenting(&self, limit: Duration) -> usize {
        let deadline = Instant::now() + limit;
        while Instant::now() < deadline {
            let started = |i: &usize| self.log(*i).contains("starting defragment");
            if let Some(i) = (0..self.members.len()).find(started) {
                return i;
            }
            std::thread::sleep(Duration::from_millis(10));
        }
        panic!("no defragmentation started within {limit:?}");
    }

    /// Index of the current raft leader.
    pub fn leader_index(&self) -> usize {
        let rt = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .unwrap();
        rt.block_on(async {
            let mut c = self.client(&self.endpoints()[..1]).await;
            let leader = c.status().await.unwrap().leader();
            let list = c.member_list().await.unwrap();
            let name = list
                .members()
                .iter()
                .find(|m| m.id() == leader)
                .unwrap()
                .name()
                .to_string();
            self.members.iter().position(|m| m.name == name).unwrap()
        })
    }
}

/// Whether the tests run as root (mounts, namespaces and the block-I/O throttle need it).
pub fn is_root() -> bool {
    Command::new("id")
        .arg("-u")
        .output()
        .is_ok_and(|o| String::from_utf8_lossy(&o.stdout).trim() == "0")
}
