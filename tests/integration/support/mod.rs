//! Real-etcd test harness: generates a PKI with rcgen, starts 1- or 3-member etcd clusters with
//! client and peer TLS on free loopback ports, and runs the etcd-upkeep binary against them.
//!
//! Why real processes: every behaviour that matters (NOSPACE, defrag blocking a member, TLS
//! errors, a frozen member) is etcd's own, and a mock would only test our assumptions about it.
//! The etcd binary comes from `ETCD_BIN`, else `.tools/etcd-3.6.8` (vCluster's deployed default,
//! built by scripts/setup.sh), else `.tools/etcd-3.5`, else `etcd` on PATH.
#![allow(dead_code)]

pub mod api_loop;
pub mod apiserver;
pub mod churn;
mod cluster;
mod daemon;
mod member_flags;
pub mod netns;
pub mod nospace;
pub mod pages;
mod pki;
pub mod slowdisk;
pub mod snippet;
pub mod tls;
// What every test reaches as `support::…` (the examples use only part of it).
#[allow(unused_imports)]
pub use cluster::{Cluster, Member, release_bin};
#[allow(unused_imports)]
pub use daemon::{Daemon, daemon_args, http_get, parse_http, upkeep};
#[allow(unused_imports)]
pub use nospace::*;
#[allow(unused_imports)]
pub use pki::{ClientConfig, Pki};

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
    let tools = Path::new(env!("CARGO_MANIFEST_DIR")).join(".tools");
    for local in [
        "etcd-3.6.8/etcd",
        "etcd-3.5.21/etcd",
        "etcd-3.5/usr/bin/etcd",
    ] {
        if tools.join(local).exists() {
            return tools.join(local);
        }
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

pub fn signal(pid: u32, sig: &str) {
    let _ = Command::new("kill")
        .arg(format!("-{sig}"))
        .arg(pid.to_string())
        .status();
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
    // `acknowledged` counts the puts etcd accepted; a put that failed transiently is retried
    // with the same key, so the count is exactly what the callers may expect etcd to hold.
    let mut acknowledged = 0;
    for _ in 0..max_puts {
        let key = format!("/registry/fill/key-{}", acknowledged % keys);
        match client.put(key, value.clone(), None).await {
            Ok(_) => acknowledged += 1,
            Err(e) if e.to_string().contains("database space exceeded") => return acknowledged,
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

/// Whether the tests run as root (mounts, namespaces and the block-I/O throttle need it).
pub fn is_root() -> bool {
    Command::new("id")
        .arg("-u")
        .output()
        .is_ok_and(|o| String::from_utf8_lossy(&o.stdout).trim() == "0")
}
