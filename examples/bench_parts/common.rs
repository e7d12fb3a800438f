//! What every benchmark uses: a runtime, a daemon or one per member, the process's CPU and
//! memory from /proc, etcdctl and the scripted runbook, and the clock.
//!
//! Why apart: the benchmarks differ in what they measure, not in how they start things.

use std::process::Command;
use std::time::{Duration, Instant};

use crate::support::{self, Cluster, Daemon, fill_until_nospace};

pub const MIB: u64 = 1024 * 1024;

pub fn rt() -> tokio::runtime::Runtime {
    tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .unwrap()
}

pub fn proc_status(pid: u32, field: &str) -> u64 {
    let text = std::fs::read_to_string(format!("/proc/{pid}/status")).unwrap_or_default();
    text.lines()
        .find(|l| l.starts_with(field))
        .and_then(|l| l.split_whitespace().nth(1)?.parse().ok())
        .unwrap_or(0)
}

pub fn cpu_ticks(pid: u32) -> u64 {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).unwrap_or_default();
    let after = stat.rsplit_once(')').map(|(_, a)| a).unwrap_or("");
    let fields: Vec<&str> = after.split_whitespace().collect();
    fields
        .get(11)
        .and_then(|v| v.parse::<u64>().ok())
        .unwrap_or(0)
        + fields
            .get(12)
            .and_then(|v| v.parse::<u64>().ok())
            .unwrap_or(0)
}

pub fn clk_tck() -> f64 {
    // SAFETY: sysconf has no preconditions.
    (unsafe { libc::sysconf(libc::_SC_CLK_TCK) }) as f64
}

pub fn daemon(cluster: &Cluster, endpoint: &str, extra: &[&str]) -> Daemon {
    Daemon::start(
        &support::daemon_args(cluster, endpoint, extra),
        cluster.dir.path(),
    )
}

/// One sidecar beside each member, defragmenting by `rule` (prevention and the forecast off).
pub fn defrag_sidecars(cluster: &Cluster, rule: &str, log_level: &str) -> Vec<Daemon> {
    let flags = [
        "--poll-interval",
        "1s",
        "--defrag-rule",
        rule,
        "--space-target",
        "0",
        "--forecast-horizon",
        "0s",
        "--log-level",
        log_level,
    ];
    let endpoints = cluster.endpoints();
    endpoints
        .iter()
        .map(|e| daemon(cluster, e, &flags))
        .collect()
}

/// Writes until NOSPACE, then retries a small put every 20 ms; returns seconds from the first
/// refusal to the first accepted write.
pub fn time_to_writable(cluster: &Cluster, during: impl FnOnce()) -> f64 {
    let runtime = rt();
    runtime.block_on(async {
        let mut c = cluster.client(&cluster.endpoints()).await;
        fill_until_nospace(&mut c, 5, 100_000, 100_000).await;
    });
    let refused = Instant::now();
    let prober = {
        let config = cluster.client_config();
        std::thread::spawn(move || {
            rt().block_on(async {
                let mut c = config.connect().await;
                loop {
                    if c.put("bench/probe", "x", None).await.is_ok() {
                        break refused.elapsed().as_secs_f64();
                    }
                    if refused.elapsed() > Duration::from_secs(120) {
                        break f64::NAN;
                    }
                    tokio::time::sleep(Duration::from_millis(20)).await;
                }
            })
        })
    };
    during();
    prober.join().unwrap()
}

pub fn etcdctl(cluster: &Cluster, args: &[&str]) -> String {
    let out = Command::new("etcdctl")
        .env("ETCDCTL_API", "3")
        .args([
            "--endpoints",
            &cluster.endpoints().join(","),
            "--cacert",
            &cluster.pki.ca.display().to_string(),
            "--cert",
            &cluster.pki.client_cert.display().to_string(),
            "--key",
            &cluster.pki.client_key.display().to_string(),
        ])
        .args(args)
        .output()
        .expect("etcdctl (Debian etcd-client) on PATH");
    String::from_utf8_lossy(&out.stdout).into_owned()
}

pub fn runbook(cluster: &Cluster) {
    let status = etcdctl(cluster, &["endpoint", "status", "-w", "json"]);
    let rev = status
        .split("\"revision\":")
        .nth(1)
        .and_then(|r| r.split(|c: char| !c.is_ascii_digit()).next())
        .unwrap()
        .to_string();
    etcdctl(cluster, &["compact", &rev, "--physical"]);
    etcdctl(cluster, &["defrag", "--cluster"]);
    etcdctl(cluster, &["alarm", "disarm"]);
}

/// One etcd-upkeep beside each member, as the embedded vCluster snippet deploys them: the local
/// member first, quota from that member's metrics URL, and `extra`.
pub fn sidecars(cluster: &Cluster, extra: &[&str]) -> Vec<Daemon> {
    (0..cluster.members.len())
        .map(|i| {
            let metrics = format!("{}/metrics", cluster.members[i].metrics_url);
            let mut args = vec![
                "--etcd-metrics-url",
                metrics.as_str(),
                "--log-level",
                "warn",
            ];
            args.extend_from_slice(extra);
            daemon(cluster, &cluster.members[i].client_url, &args)
        })
        .collect()
}

/// Runs a command under /usr/bin/time: wall seconds, peak RSS in MiB, and its stdout.
pub fn timed(program: &str, args: &[String]) -> (f64, f64, Vec<u8>) {
    let start = Instant::now();
    let out = Command::new("/usr/bin/time")
        .args(["-f", "%U %S %M", program])
        .args(args)
        .output()
        .expect("/usr/bin/time (Debian package time)");
    let wall = start.elapsed().as_secs_f64();
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(out.status.success(), "{program}: {stderr}");
    // "%U %S %M": user and system CPU seconds, peak RSS in KiB.
    let last: Vec<f64> = (stderr.lines().last().unwrap_or(""))
        .split_whitespace()
        .filter_map(|v| v.parse().ok())
        .collect();
    let cpu = last.first().unwrap_or(&0.0) + last.get(1).unwrap_or(&0.0);
    println!("  ({program}: {cpu:.1} s of CPU)");
    (wall, last.get(2).unwrap_or(&0.0) / 1024.0, out.stdout)
}

pub fn unix_now() -> f64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_secs_f64()
}
