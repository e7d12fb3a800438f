//! Real etcd clusters for the tests: 1 or 3 members with client and peer TLS on loopback ports
//! of their own (or in network namespaces), started, stopped, frozen, restarted and read back.

use super::*;

use super::member_flags::member_flags;

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
    /// The etcd binary its members run (`etcd_bin()` unless a test picks a release).
    pub bin: PathBuf,
}

/// An etcd release that scripts/setup.sh built into `.tools/etcd-<version>/etcd`, if it is there.
pub fn release_bin(version: &str) -> Option<PathBuf> {
    let bin = Path::new(env!("CARGO_MANIFEST_DIR")).join(format!(".tools/etcd-{version}/etcd"));
    bin.exists().then_some(bin)
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
        Cluster::start_on(dir, pki, urls, quota, extra, None, etcd_bin())
    }

    /// `n` members of the etcd at `bin` (a release of the matrix, see `release_bin`) with exactly
    /// `extra` on top of the harness's own flags; `quota` 0 leaves `--quota-backend-bytes` unset.
    pub fn start_release(bin: &Path, n: usize, quota: u64, extra: &[&str]) -> Cluster {
        let dir = tempfile::tempdir().unwrap();
        let pki = Pki::generate(&dir.path().join("pki"), "etcd-ca");
        let urls = loopback_urls(n);
        Cluster::start_on(dir, pki, urls, quota, extra, None, bin.to_path_buf())
    }

    /// `n` members with their WAL in a directory of its own, and member `on`'s data dir on a
    /// tmpfs of `volume` bytes: a volume that the test can fill (needs root to mount).
    pub fn start_with_volume(n: usize, quota: u64, on: usize, volume: u64) -> Cluster {
        let dir = tempfile::tempdir().unwrap();
        let pki = Pki::generate(&dir.path().join("pki"), "etcd-ca");
        let urls = loopback_urls(n);
        Cluster::start_on(dir, pki, urls, quota, &[], Some((on, volume)), etcd_bin())
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
        Cluster::start_on(dir, pki, urls, quota, extra, None, etcd_bin())
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
        bin: PathBuf,
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
            let urls = (client_url.as_str(), peer_url.as_str(), metrics_url.as_str());
            let initial = initial_cluster.join(",");
            let args = member_flags(name, urls, &initial, &token, &pki, &data_dir, &log_path);
            let mut args: Vec<String> = args.into_iter().chain(s(extra)).collect();
            if quota > 0 {
                args.extend(["--quota-backend-bytes".into(), quota.to_string()]);
            }
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
            bin,
        };
        if let Some((on, bytes)) = volume {
            let at = cluster.members[on].data_dir.clone();
            mount_tmpfs(&at, bytes);
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
                c.args(["netns", "exec", ns]).arg(&self.bin);
                c
            }
            None => Command::new(&self.bin),
        };
        let child = command
            .args(&member.args)
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .unwrap_or_else(|e| {
                panic!(
                    "cannot start etcd ({}): {e}; run scripts/setup.sh",
                    self.bin.display()
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

/// A tmpfs of `bytes` at `at` (a member's data dir on a small volume).
fn mount_tmpfs(at: &Path, bytes: u64) {
    std::fs::create_dir_all(at).unwrap();
    let mounted = Command::new("mount")
        .args(["-t", "tmpfs", "-o", &format!("size={bytes}"), "tmpfs"])
        .arg(at)
        .status()
        .unwrap();
    assert!(
        mounted.success(),
        "cannot mount a tmpfs at {}",
        at.display()
    );
}
