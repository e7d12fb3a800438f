//! Benchmarks (figures, not pass/fail tests; these machines are noisy). Each prints its result
//! beside the target or baseline it is compared with. Run through `scripts/bench.sh [NAME...]`:
//!
//! - `idle`:     `run` against 3 members at the default poll — RSS (≤ 15 MiB) and CPU (≤ 1 %).
//! - `heal`:     NOSPACE → writable with the daemon vs the runbook scripted with etcdctl
//!   (target ≤ runbook + one poll interval).
//! - `churn`:    churn detector events/s (≥ 20 000/s) and memory (≤ 64 MiB), in-process and
//!   end-to-end behind a real etcd watch.
//! - `analyze`:  `analyze` over 1 000 000 keys — wall time and peak memory (bounded).
//! - `stall`:    a fragmented ~600 MB 3-member cluster defragmented by three instances while a
//!   client pinned to each member writes — the longest window with no write accepted anywhere
//!   (reference: uncoordinated 11.5–13.8 s; target < 1 s).
//! - `prevent`:  a ≥ 2 MB/s sync loop against 3 members with a 256 MiB quota and the seed's
//!   `--auto-compaction-*` flags, for `PREVENT_SECONDS` (default 600): etcd alone (baseline: its
//!   time to NOSPACE), then one etcd-upkeep per member on default flags — NOSPACE count, failed
//!   writes, peak db/quota and the history kept over time (target 0, 0, ≤ 80 %).
//! - `hashkv`:   HashKV of every member at once against one at a time, on a ~1.2 GiB fragmented
//!   3-member db under pinned writers — the longest window with no write accepted anywhere
//!   (the integrity check hashes in turn; at once, every member stops applying together).
//! - `bigdb` (on request only; ~10 GB of disk, tens of minutes): a ≥ 2 GiB fragmented 3-member db
//!   (6 GiB quota; `BIGDB_LIVE_MB` of live 512 KiB values, default 1600) defragmented by a sidecar
//!   beside each member, then re-fragmented and defragmented by `etcdctl defrag --cluster`, both
//!   under writers pinned to each member: time, longest stall anywhere and on each member, RSS.
//! - `analyze` also runs the baselines users reach for: `etcdctl get --prefix "" --keys-only` and
//!   `etcdctl get -w json | jq` summed by resource, on the same keys.

#[path = "bench_parts/apiserver.rs"]
mod apiserver_bench;
#[path = "../tests/integration/support/mod.rs"]
mod support;

use std::process::Command;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use etcd_upkeep::diagnose::churn::ChurnDetector;
use support::{ClientConfig, Cluster, Daemon, fill_until_nospace, s};

const MIB: u64 = 1024 * 1024;

fn rt() -> tokio::runtime::Runtime {
    tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .unwrap()
}

fn proc_status(pid: u32, field: &str) -> u64 {
    let text = std::fs::read_to_string(format!("/proc/{pid}/status")).unwrap_or_default();
    text.lines()
        .find(|l| l.starts_with(field))
        .and_then(|l| l.split_whitespace().nth(1)?.parse().ok())
        .unwrap_or(0)
}

fn cpu_ticks(pid: u32) -> u64 {
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

fn clk_tck() -> f64 {
    // SAFETY: sysconf has no preconditions.
    (unsafe { libc::sysconf(libc::_SC_CLK_TCK) }) as f64
}

fn daemon(cluster: &Cluster, endpoint: &str, extra: &[&str]) -> Daemon {
    Daemon::start(
        &support::daemon_args(cluster, endpoint, extra),
        cluster.dir.path(),
    )
}

/// One sidecar beside each member, defragmenting by `rule` (prevention and the forecast off).
fn defrag_sidecars(cluster: &Cluster, rule: &str, log_level: &str) -> Vec<Daemon> {
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

fn idle() {
    let cluster = Cluster::start(3, 64 * MIB);
    let d = daemon(&cluster, &cluster.endpoints()[0], &["--log-level", "warn"]);
    std::thread::sleep(Duration::from_secs(10));
    let pid = d.child.id();
    let (t0, c0) = (Instant::now(), cpu_ticks(pid));
    let mut peak_rss = 0;
    let seconds: u64 = std::env::var("IDLE_SECONDS")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(60);
    while t0.elapsed() < Duration::from_secs(seconds) {
        std::thread::sleep(Duration::from_secs(1));
        peak_rss = peak_rss.max(proc_status(pid, "VmRSS:"));
    }
    let cpu = (cpu_ticks(pid) - c0) as f64 / clk_tck() / t0.elapsed().as_secs_f64() * 100.0;
    println!(
        "idle run, 3 members, poll 5s, 60 s: RSS peak {:.1} MiB (target ≤ 15 MiB; now {:.1} MiB heap/stacks + {:.1} MiB code and files); CPU {:.2} % of a core (target ≤ 1 %)",
        peak_rss as f64 / 1024.0,
        proc_status(pid, "RssAnon:") as f64 / 1024.0,
        proc_status(pid, "RssFile:") as f64 / 1024.0,
        cpu
    );
}

/// Writes until NOSPACE, then retries a small put every 20 ms; returns seconds from the first
/// refusal to the first accepted write.
fn time_to_writable(cluster: &Cluster, during: impl FnOnce()) -> f64 {
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

fn etcdctl(cluster: &Cluster, args: &[&str]) -> String {
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

fn runbook(cluster: &Cluster) {
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
fn sidecars(cluster: &Cluster, extra: &[&str]) -> Vec<Daemon> {
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

fn heal() {
    // The cure with prevention off (it would otherwise keep the fill from reaching NOSPACE):
    // sidecars on otherwise default flags (5 s poll; NOSPACE is noticed by the quick alarm check).
    {
        let (members, quota) = (3usize, 64 * MIB);
        let mut manual = Vec::new();
        let mut auto = Vec::new();
        for _ in 0..3 {
            let cluster = Cluster::start(members, quota);
            manual.push(time_to_writable(&cluster, || runbook(&cluster)));
            drop(cluster);
            let cluster = Cluster::start(members, quota);
            let _sidecars = sidecars(&cluster, &["--space-target", "0"]);
            std::thread::sleep(Duration::from_secs(12)); // the leader's sidecar settles
            auto.push(time_to_writable(&cluster, || {}));
        }
        let show = |v: &[f64]| {
            v.iter()
                .map(|x| format!("{x:.2}"))
                .collect::<Vec<_>>()
                .join(", ")
        };
        let worst_manual = manual.iter().cloned().fold(0.0, f64::max);
        println!(
            "NOSPACE → writable, 3 members, 64 MiB quota, one sidecar per member at default flags (poll 5s, --space-target 0): runbook with etcdctl {} s; etcd-upkeep {} s (target ≤ runbook + 1 s = {:.2} s)",
            show(&manual),
            show(&auto),
            worst_manual + 1.0
        );
    }
    for (members, quota) in [(1usize, 16 * MIB), (3, 64 * MIB)] {
        let cluster = Cluster::start(members, quota);
        let manual = time_to_writable(&cluster, || runbook(&cluster));
        drop(cluster);
        let cluster = Cluster::start(members, quota);
        let poll = "1s";
        let _d = daemon(
            &cluster,
            &cluster.endpoints()[0],
            &[
                "--poll-interval",
                poll,
                "--act-when",
                "always",
                "--quota-backend-bytes",
                &quota.to_string(),
                "--forecast-horizon",
                "0s",
                "--space-target",
                "0",
                "--log-level",
                "warn",
            ],
        );
        std::thread::sleep(Duration::from_secs(3)); // settle: the actor is chosen
        let auto = time_to_writable(&cluster, || {});
        println!(
            "NOSPACE → writable, {members} member(s), {} MiB quota: runbook with etcdctl {manual:.2} s; etcd-upkeep (poll {poll}) {auto:.2} s (target ≤ runbook + poll = {:.2} s)",
            quota / MIB,
            manual + 1.0
        );
    }
}

fn churn() {
    // In-process: the detector alone, a sync loop amid 200 000 distinct keys.
    let mut detector = ChurnDetector::new(256, 60.0);
    let keys: Vec<String> = (0..200_000)
        .map(|i| format!("/registry/configmaps/ns-{}/cm-{i}", i % 50))
        .collect();
    let loop_key = "/registry/example.com/widgets/default/looping-widget";
    let n = 5_000_000u64;
    let rss0 = proc_status(std::process::id(), "VmRSS:");
    let start = Instant::now();
    for i in 0..n {
        let now = 1_000.0 + i as f64 / 20_000.0; // stream time: 20 000 events per second
        if i % 20 == 0 {
            detector.record(loop_key, 1000, now);
        } else {
            detector.record(&keys[(i as usize * 7919) % keys.len()], 300, now);
        }
    }
    let elapsed = start.elapsed().as_secs_f64();
    let top = detector.top(1_000.0 + n as f64 / 20_000.0, 60.0, 1);
    let grew = proc_status(std::process::id(), "VmRSS:").saturating_sub(rss0);
    println!(
        "churn detector in-process: {:.0} events/s (target ≥ 20 000/s); memory grown {:.1} MiB for {} events over 200 000 keys; top key {} ({}) ",
        n as f64 / elapsed,
        grew as f64 / 1024.0,
        n,
        top[0].key,
        if top[0].sync_loop {
            "flagged as sync loop"
        } else {
            "NOT flagged"
        }
    );

    // End-to-end: the daemon's watch behind etcd, fed with 100-put transactions.
    let cluster = Cluster::start(1, 2048 * MIB);
    let d = daemon(
        &cluster,
        &cluster.endpoints()[0],
        &[
            "--log-level",
            "warn",
            "--forecast-horizon",
            "0s",
            "--compaction-mode",
            "off",
        ],
    );
    std::thread::sleep(Duration::from_secs(2));
    let events = |d: &Daemon| d.metric("etcd_upkeep_watch_events_total").unwrap_or(0.0);
    let e0 = events(&d);
    let seconds = 20.0;
    let written = rt().block_on(async {
        let mut writers = Vec::new();
        for w in 0..4 {
            let config = cluster.client_config();
            writers.push(tokio::spawn(async move {
                let mut c = config.connect().await;
                let start = Instant::now();
                let mut written = 0u64;
                let mut batch = 0u64;
                while start.elapsed().as_secs_f64() < seconds {
                    let ops: Vec<etcd_client::TxnOp> = (0..100)
                        .map(|i| {
                            etcd_client::TxnOp::put(
                                format!("/registry/pods/ns-{w}/p-{}", (batch * 100 + i) % 50_000),
                                vec![b'p'; 200],
                                None,
                            )
                        })
                        .collect();
                    if c.txn(etcd_client::Txn::new().and_then(ops)).await.is_ok() {
                        written += 100;
                    }
                    batch += 1;
                }
                written
            }));
        }
        let mut total = 0;
        for w in writers {
            total += w.await.unwrap();
        }
        total
    });
    std::thread::sleep(Duration::from_secs(6)); // let the watch drain and a report publish
    let seen = events(&d) - e0;
    println!(
        "churn watch end-to-end: etcd delivered {:.0} events/s ({} writes in {seconds:.0} s); daemon counted {:.0} ({:.1} %); daemon RSS {:.1} MiB (target ≤ 64 MiB)",
        written as f64 / seconds,
        written,
        seen,
        seen * 100.0 / written as f64,
        proc_status(d.child.id(), "VmRSS:") as f64 / 1024.0
    );
}

fn analyze() {
    let cluster = Cluster::start(1, 4096 * MIB);
    let keys = 1_000_000u64;
    let load = Instant::now();
    rt().block_on(async {
        let mut tasks = Vec::new();
        for w in 0..4u64 {
            let config = cluster.client_config();
            tasks.push(tokio::spawn(async move {
                let mut c = config.connect().await;
                let mut i = w * 128;
                while i < keys {
                    let ops: Vec<etcd_client::TxnOp> = (i..(i + 128).min(keys))
                        .map(|k| {
                            let key = match k % 4 {
                                0 => format!("/registry/configmaps/ns-{}/cm-{k}", k % 100),
                                1 => format!("/registry/pods/ns-{}/pod-{k}", k % 100),
                                2 => format!("/registry/example.com/widgets/ns-{}/w-{k}", k % 100),
                                _ => format!("/registry/events/ns-{}/ev-{k}", k % 100),
                            };
                            etcd_client::TxnOp::put(key, vec![b'v'; 100], None)
                        })
                        .collect();
                    c.txn(etcd_client::Txn::new().and_then(ops)).await.unwrap();
                    i += 4 * 128;
                }
            }));
        }
        for t in tasks {
            t.await.unwrap();
        }
    });
    println!(
        "loaded {keys} keys in {:.1} s",
        load.elapsed().as_secs_f64()
    );
    let endpoint = cluster.endpoints()[0].clone();
    let etcd_pid = cluster.members[0].pid();
    // ANALYZE_PAGE_SIZES="1000,10000" compares page sizes on the same keys.
    for size in std::env::var("ANALYZE_PAGE_SIZES")
        .unwrap_or_default()
        .split(',')
        .filter(|v| !v.is_empty())
    {
        let mut args = s(&[
            "analyze",
            "--endpoints",
            &endpoint,
            "-o",
            "json",
            "--page-size",
            size,
        ]);
        args.extend(cluster.pki.flags());
        let etcd_cpu = cpu_ticks(etcd_pid);
        let (wall, peak, _) = timed(&support::upkeep_bin().display().to_string(), &args);
        let etcd_cpu = (cpu_ticks(etcd_pid) - etcd_cpu) as f64 / 100.0;
        println!(
            "analyze --page-size {size}: {wall:.1} s wall, peak RSS {peak:.1} MiB; etcd's CPU {etcd_cpu:.1} s"
        );
    }
    let mut args = s(&["analyze", "--endpoints", &endpoint, "-o", "json"]);
    args.extend(cluster.pki.flags());
    let etcd_cpu = cpu_ticks(etcd_pid);
    let (wall, peak, out) = timed(&support::upkeep_bin().display().to_string(), &args);
    let etcd_cpu = (cpu_ticks(etcd_pid) - etcd_cpu) as f64 / 100.0;
    let json: serde_json::Value = serde_json::from_slice(&out).unwrap_or_default();
    println!(
        "analyze over {} keys: {wall:.1} s wall, peak RSS {peak:.1} MiB (bounded: two ~2 MiB pages at a time; target ≤ 32 MiB, no slower than etcdctl keys-only); etcd's CPU meanwhile {etcd_cpu:.1} s",
        json["total_keys"]
    );
    // The baselines users reach for: etcdctl keys only (no sizes), and every value as JSON
    // summed by resource with jq.
    let mut etcdctl = s(&["--endpoints", &endpoint, "--command-timeout", "300s"]);
    etcdctl.extend(cluster.pki.flags());
    let mut keys_only = etcdctl.clone();
    keys_only.extend(s(&["get", "--prefix", "", "--keys-only"]));
    let etcd_cpu = cpu_ticks(etcd_pid);
    let (wall, peak, out) = timed("etcdctl", &keys_only);
    let etcd_cpu = (cpu_ticks(etcd_pid) - etcd_cpu) as f64 / 100.0;
    let lines = out.split(|b| *b == b'\n').filter(|l| !l.is_empty()).count();
    println!(
        "baseline etcdctl get --prefix \"\" --keys-only: {wall:.1} s wall, peak RSS {peak:.1} MiB ({lines} keys, no sizes); etcd's CPU meanwhile {etcd_cpu:.1} s"
    );
    let dump = tempfile::NamedTempFile::new().unwrap();
    let mut as_json = etcdctl;
    as_json.extend(s(&["get", "--prefix", "", "-w", "json"]));
    let (get_wall, get_peak, out) = timed("etcdctl", &as_json);
    std::fs::write(dump.path(), out).unwrap();
    let by_resource = r#"[.kvs[] | {r: ((.key | @base64d | split("/")[2]) // "other"), b: ((.key | length) + ((.value // "") | length) * 3 / 4)}] | group_by(.r) | map({(.[0].r): (map(.b) | add)}) | add"#;
    let (jq_wall, jq_peak, _) = timed(
        "jq",
        &s(&["-c", by_resource, &dump.path().display().to_string()]),
    );
    println!(
        "baseline etcdctl -w json then jq by resource: {get_wall:.1} + {jq_wall:.1} s wall, peak RSS {get_peak:.0} + {jq_peak:.0} MiB"
    );
}

/// Runs a command under /usr/bin/time: wall seconds, peak RSS in MiB, and its stdout.
fn timed(program: &str, args: &[String]) -> (f64, f64, Vec<u8>) {
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

fn stall() {
    let cluster = Cluster::start(3, 2048 * MIB);
    let fill = Instant::now();
    let runtime = rt();
    // ~400 MB live (4000 × 100 KB) + ~200 MB overwritten history, then compacted: ~600 MB, a third free.
    runtime.block_on(async {
        let mut c = cluster.client(&cluster.endpoints()).await;
        for round in 0..2 {
            for k in 0..4000u32 {
                if round == 1 && k % 2 == 1 {
                    continue;
                }
                c.put(
                    format!("/registry/secrets/ns/s-{k}"),
                    vec![b's'; 100_000],
                    None,
                )
                .await
                .unwrap();
            }
        }
        support::compact_to_current(&mut c).await;
        // A few writes so followers refresh their in-use figures.
        for i in 0..20 {
            c.put(format!("bench/refresh-{i}"), "x", None)
                .await
                .unwrap();
        }
    });
    println!(
        "filled a ~600 MB db in {:.0} s",
        fill.elapsed().as_secs_f64()
    );
    let writers = PinnedWriters::start(&cluster);
    std::thread::sleep(Duration::from_secs(2));
    let begin = Instant::now();
    let daemons = defrag_sidecars(&cluster, "dbSizeFree > 100*1024*1024", "warn");
    let defrags = |daemons: &[Daemon]| -> usize {
        daemons
            .iter()
            .map(|d| {
                d.get("/metrics")
                    .1
                    .lines()
                    .filter(|l| {
                        l.starts_with("etcd_upkeep_defrag_total{") && l.contains("result=\"ok\"")
                    })
                    .map(|l| l.rsplit(' ').next().unwrap().parse::<f64>().unwrap() as usize)
                    .sum::<usize>()
            })
            .sum()
    };
    let deadline = Instant::now() + Duration::from_secs(180);
    while defrags(&daemons) < 3 && Instant::now() < deadline {
        std::thread::sleep(Duration::from_millis(500));
    }
    std::thread::sleep(Duration::from_secs(2));
    let longest = writers.stop(begin).longest;
    let mut per_member: Vec<String> = Vec::new();
    for i in 0..3 {
        for (a, b) in support::defrag_intervals(&cluster.log(i)) {
            per_member.push(format!("{} {:.1}s", cluster.members[i].name, b - a));
        }
    }
    println!(
        "3 instances defragmenting a ~600 MB 3-member cluster under pinned writers: {} defrags ({}); longest window with no write accepted anywhere: {:.2} s (reference: uncoordinated 11.5–13.8 s; target < 1 s)",
        defrags(&daemons),
        per_member.join(", "),
        longest
    );
}

/// The seed's prevention flags on etcd itself.
const SEED_ETCD_FLAGS: [&str; 4] = [
    "--auto-compaction-mode",
    "periodic",
    "--auto-compaction-retention",
    "30m",
];

/// Rewrites one object 20×/s with 100 KB values (≈ 2 MB/s of history) until `stop`; returns
/// (accepted, refused) puts. Refusals are counted, never retried: each is a failed write.
fn loop_writer(cluster: &Cluster, stop: Arc<AtomicBool>) -> std::thread::JoinHandle<(u64, u64)> {
    let config = cluster.client_config();
    std::thread::spawn(move || {
        rt().block_on(async move {
            let mut c = config.connect().await;
            let mut tick = tokio::time::interval(Duration::from_millis(50));
            let (mut ok, mut failed) = (0, 0);
            while !stop.load(Ordering::SeqCst) {
                tick.tick().await;
                match c
                    .put(
                        "/registry/example.com/widgets/default/looping-widget",
                        vec![b'w'; 100_000],
                        None,
                    )
                    .await
                {
                    Ok(_) => ok += 1,
                    Err(_) => failed += 1,
                }
            }
            (ok, failed)
        })
    })
}

/// Largest db size across the members, and whether any alarm is raised.
fn sample(cluster: &Cluster) -> (u64, bool) {
    rt().block_on(async {
        let mut largest = 0;
        for endpoint in cluster.endpoints() {
            let mut c = cluster.client(std::slice::from_ref(&endpoint)).await;
            if let Ok(s) = c.status().await {
                largest = largest.max(s.db_size().max(0) as u64);
            }
        }
        let mut c = cluster.client(&cluster.endpoints()).await;
        let alarmed = c
            .alarm(
                etcd_client::AlarmAction::Get,
                etcd_client::AlarmType::None,
                None,
            )
            .await
            .map(|r| !r.alarms().is_empty())
            .unwrap_or(false);
        (largest, alarmed)
    })
}

fn prevent() {
    let seconds: u64 = std::env::var("PREVENT_SECONDS")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(600);
    let quota = 256 * MIB;

    // Baseline: etcd alone with the seed's flags.
    let cluster = Cluster::start_with(3, quota, &SEED_ETCD_FLAGS);
    let stop = Arc::new(AtomicBool::new(false));
    let writer = loop_writer(&cluster, stop.clone());
    let start = Instant::now();
    let mut nospace_after = None;
    while start.elapsed() < Duration::from_secs(seconds.min(600)) {
        std::thread::sleep(Duration::from_secs(1));
        if sample(&cluster).1 {
            nospace_after = Some(start.elapsed().as_secs_f64());
            break;
        }
    }
    stop.store(true, Ordering::SeqCst);
    let (ok, failed) = writer.join().unwrap();
    println!(
        "baseline, etcd alone (--auto-compaction-mode=periodic --auto-compaction-retention=30m), 3 members, 256 MiB quota, 2 MB/s loop: NOSPACE after {} ({ok} writes accepted, {failed} refused before stopping)",
        nospace_after
            .map(|s| format!("{s:.0} s"))
            .unwrap_or_else(|| "never".into())
    );
    drop(cluster);

    // The same with one etcd-upkeep per member on default flags.
    let cluster = Cluster::start_with(3, quota, &SEED_ETCD_FLAGS);
    let daemons = sidecars(&cluster, &[]);
    std::thread::sleep(Duration::from_secs(12));
    let stop = Arc::new(AtomicBool::new(false));
    let writer = loop_writer(&cluster, stop.clone());
    let start = Instant::now();
    let (mut peak, mut alarm_seconds, mut timeline) = (0u64, 0u64, Vec::new());
    let mut least_kept = f64::INFINITY;
    while start.elapsed() < Duration::from_secs(seconds) {
        std::thread::sleep(Duration::from_secs(1));
        let (largest, alarmed) = sample(&cluster);
        peak = peak.max(largest);
        alarm_seconds += u64::from(alarmed);
        let kept = daemons
            .iter()
            .find(|d| d.metric("etcd_upkeep_is_actor") == Some(1.0))
            .and_then(|d| d.metric("etcd_upkeep_history_retention_seconds"));
        if let Some(k) = kept {
            least_kept = least_kept.min(k);
        }
        let t = start.elapsed().as_secs();
        if t.is_multiple_of(60) || timeline.is_empty() {
            timeline.push(format!(
                "t={t}s db {:.0} MiB ({:.0} %) history kept {}",
                largest as f64 / MIB as f64,
                largest as f64 * 100.0 / quota as f64,
                kept.map(|k| format!("{k:.0} s"))
                    .unwrap_or_else(|| "?".into())
            ));
        }
    }
    stop.store(true, Ordering::SeqCst);
    let (ok, failed) = writer.join().unwrap();
    let heals: f64 = daemons
        .iter()
        .filter_map(|d| d.metric("etcd_upkeep_alarm_disarm_total"))
        .sum();
    for line in &timeline {
        println!("  {line}");
    }
    println!(
        "etcd-upkeep beside each member, default flags, {seconds} s of the same loop: NOSPACE raised {heals:.0} times (seconds with an alarm seen: {alarm_seconds}); failed writes {failed} of {}; peak db {:.0} MiB = {:.1} % of the quota; least history kept {least_kept:.0} s (target: 0 NOSPACE, 0 failed writes, peak ≤ 80 %)",
        ok + failed,
        peak as f64 / MIB as f64,
        peak as f64 * 100.0 / quota as f64
    );
}

/// Writers pinned to each member, recording when each write was accepted.
struct PinnedWriters {
    /// The same moment on both clocks, to place gaps in the members' and sidecars' logs.
    origin: (Instant, f64),
    stop: Arc<AtomicBool>,
    accepted: Vec<Arc<Mutex<Vec<Instant>>>>,
    threads: Vec<std::thread::JoinHandle<()>>,
}

/// What each pinned client does, and records the success of.
#[derive(Clone, Copy, PartialEq)]
enum Pinned {
    /// Small puts, every 5 ms.
    Writes,
    /// One lease kept alive every 100 ms (kube-apiserver's leases, and etcd-upkeep's own).
    Renewals,
}

impl PinnedWriters {
    fn start(cluster: &Cluster) -> PinnedWriters {
        PinnedWriters::start_doing(cluster, Pinned::Writes)
    }

    /// A client pinned to each member, doing `what` until stopped.
    fn start_doing(cluster: &Cluster, what: Pinned) -> PinnedWriters {
        let stop = Arc::new(AtomicBool::new(false));
        let config = cluster.client_config();
        let mut accepted = Vec::new();
        let mut threads = Vec::new();
        for endpoint in cluster.endpoints() {
            let times = Arc::new(Mutex::new(Vec::new()));
            accepted.push(times.clone());
            let (stop, config) = (stop.clone(), config.clone());
            threads.push(std::thread::spawn(move || {
                rt().block_on(async move {
                    let mut c = config.only(std::slice::from_ref(&endpoint)).connect().await;
                    if what == Pinned::Renewals {
                        let lease = c.lease_grant(30, None).await.unwrap().id();
                        let (mut keeper, mut stream) = c.lease_keep_alive(lease).await.unwrap();
                        while !stop.load(Ordering::SeqCst) {
                            let renew = async {
                                keeper.keep_alive().await.ok()?;
                                stream.message().await.ok()?
                            };
                            let renewed = tokio::time::timeout(Duration::from_secs(2), renew).await;
                            if matches!(renewed, Ok(Some(r)) if r.ttl() > 0) {
                                times.lock().unwrap().push(Instant::now());
                            }
                            tokio::time::sleep(Duration::from_millis(100)).await;
                        }
                        return;
                    }
                    let mut i = 0u64;
                    while !stop.load(Ordering::SeqCst) {
                        let key = format!("bench/pinned/{endpoint}/{}", i % 100);
                        if c.put(key, "x", None).await.is_ok() {
                            times.lock().unwrap().push(Instant::now());
                        }
                        i += 1;
                        tokio::time::sleep(Duration::from_millis(5)).await;
                    }
                })
            }));
        }
        PinnedWriters {
            origin: (Instant::now(), unix_now()),
            stop,
            accepted,
            threads,
        }
    }

    /// Stops; the longest gap between accepted writes anywhere (and when it was), and the
    /// longest on each member.
    fn stop(self, since: Instant) -> Gap {
        let until = Instant::now();
        self.stop.store(true, Ordering::SeqCst);
        for t in self.threads {
            t.join().unwrap();
        }
        // From `since` to the stop, so that a pause at either end (or no write at all) counts.
        let longest = |times: &mut Vec<Instant>| {
            times.retain(|t| *t >= since && *t <= until);
            times.extend([since, until]);
            times.sort();
            times
                .windows(2)
                .map(|w| (w[1] - w[0], w[0]))
                .max()
                .unwrap_or((Duration::ZERO, since))
        };
        let mut all: Vec<Instant> = Vec::new();
        let mut each = Vec::new();
        for times in &self.accepted {
            let mut times = times.lock().unwrap().clone();
            all.extend(&times);
            each.push(longest(&mut times).0.as_secs_f64());
        }
        let (gap, at) = longest(&mut all);
        let from = self.origin.1 + (at - self.origin.0).as_secs_f64();
        Gap {
            longest: gap.as_secs_f64(),
            from,
            to: from + gap.as_secs_f64(),
            each,
        }
    }
}

/// The longest window with no write accepted anywhere, in wall-clock seconds, and each member's
/// longest.
struct Gap {
    longest: f64,
    from: f64,
    to: f64,
    each: Vec<f64>,
}

fn unix_now() -> f64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_secs_f64()
}

/// Where the sidecars' time went: their info lines and each member's defragmentation, in
/// seconds from `begin` (wall clock).
fn print_timeline(begin: f64, cluster: &Cluster, sidecars: &[String]) {
    let mut lines: Vec<(f64, String)> = Vec::new();
    for (i, m) in cluster.members.iter().enumerate() {
        for (a, b) in support::defrag_intervals(&cluster.log(i)) {
            lines.push((a, format!("{} etcd: defragmentation starts", m.name)));
            lines.push((
                b,
                format!("{} etcd: defragmentation ends ({:.1} s)", m.name, b - a),
            ));
        }
    }
    for (i, log) in sidecars.iter().enumerate() {
        for line in log.lines() {
            let ts = line.split_whitespace().next().unwrap_or("");
            if ts.len() > 20 && ts.as_bytes()[4] == b'-' {
                let rest: String = line[ts.len()..].trim().chars().take(150).collect();
                lines.push((support::parse_ts(ts), format!("sidecar {i}: {rest}")));
            }
        }
    }
    lines.sort_by(|a, b| a.0.total_cmp(&b.0));
    println!("  timeline (s from the sidecars' start):");
    for (t, line) in lines.iter().take(150) {
        println!("  {:7.2}  {line}", t - begin);
    }
}

/// What the members and the sidecars logged during the longest gap (and half a second around
/// it): the figure is only useful when its cause can be read off.
fn print_gap_context(cluster: &Cluster, daemons: &[String], gap: &Gap) {
    let within = |t: f64| t >= gap.from - 0.5 && t <= gap.to + 0.5;
    let mut lines: Vec<(f64, String)> = Vec::new();
    for (i, m) in cluster.members.iter().enumerate() {
        for (t, msg) in support::log_events(&cluster.log(i), "") {
            if within(t) {
                lines.push((t, format!("{} etcd: {msg}", m.name)));
            }
        }
    }
    for (i, log) in daemons.iter().enumerate() {
        for line in log.lines() {
            let ts = line.split_whitespace().next().unwrap_or("");
            if ts.len() > 20 && ts.as_bytes()[4] == b'-' {
                let t = support::parse_ts(ts);
                if within(t) {
                    lines.push((t, format!("sidecar {i}: {}", &line[ts.len()..].trim())));
                }
            }
        }
    }
    lines.sort_by(|a, b| a.0.total_cmp(&b.0));
    println!(
        "  logged during the longest gap ({:.2} s), in seconds from its start:",
        gap.longest
    );
    for (t, line) in lines.iter().take(60) {
        println!("  {:+.2} s  {line}", t - gap.from);
    }
}

/// Overwrites half of the `objects` values and compacts: about a third of the db becomes free.
fn fragment(cluster: &Cluster, objects: u32, value: usize, rounds: &[u8]) {
    rt().block_on(async {
        let mut tasks = Vec::new();
        // Minutes, not seconds: 512 KiB puts and a compaction of GiBs on a loaded machine.
        let patient = cluster
            .client_config()
            .with_timeout(Duration::from_secs(900));
        for w in 0..4u32 {
            let config = patient.clone();
            let rounds = rounds.to_vec();
            tasks.push(tokio::spawn(async move {
                let mut c = config.connect().await;
                for round in rounds {
                    for k in (w..objects).step_by(4) {
                        if round > 0 && k % 2 == 1 {
                            continue;
                        }
                        let key = format!("/registry/secrets/ns/s-{k}");
                        c.put(key, vec![b'a' + round; value], None).await.unwrap();
                    }
                }
            }));
        }
        for t in tasks {
            t.await.unwrap();
        }
        // Not `physical`: the wait for etcd to compact GiBs of history outlasted the client's
        // deadline. Wait instead until every member's in-use figure settles.
        let mut c = patient.connect().await;
        let rev = c.get("x", None).await.unwrap().header().unwrap().revision();
        c.compact(rev, None).await.unwrap();
        let mut last = Vec::new();
        for i in 0..600 {
            let key = format!("bench/refresh-{}", i % 20);
            // etcd refuses writes ("request timed out") while it compacts GiBs: keep trying.
            let _ = c.put(key, "x", None).await;
            tokio::time::sleep(Duration::from_secs(1)).await;
            let mut in_use = Vec::new();
            for e in cluster.endpoints() {
                let mut m = patient.only(&[e]).connect().await;
                in_use.push(m.status().await.map_or(-1, |s| s.raft_used_db_size()));
            }
            if in_use == last {
                break;
            }
            last = in_use;
        }
    });
    wait_until_quiet(cluster);
}

/// Until writes pinned to every member go through without a pause of 1 s for 10 s straight (at
/// most 10 min): after a compaction of GiBs, etcd keeps refusing or stalling writes for a while
/// on its own, and a stall measured then would be etcd's, not the tool's under test.
fn wait_until_quiet(cluster: &Cluster) {
    let since = Instant::now();
    for _ in 0..60 {
        let writers = PinnedWriters::start(cluster);
        std::thread::sleep(Duration::from_secs(10));
        let begin = Instant::now() - Duration::from_secs(10);
        if writers.stop(begin).longest < 1.0 {
            break;
        }
    }
    println!(
        "  the cluster took writes without a 1 s pause for 10 s after {:.0} s",
        since.elapsed().as_secs_f64()
    );
}

fn db_sizes(cluster: &Cluster) -> Vec<i64> {
    rt().block_on(async {
        let mut sizes = Vec::new();
        let patient = cluster
            .client_config()
            .with_timeout(Duration::from_secs(120));
        for e in cluster.endpoints() {
            let mut c = patient.only(&[e]).connect().await;
            sizes.push(c.status().await.map_or(-1, |s| s.db_size()));
        }
        sizes
    })
}

fn gib(sizes: &[i64]) -> String {
    let each: Vec<String> = sizes
        .iter()
        .map(|s| format!("{:.2}", *s as f64 / (1u64 << 30) as f64))
        .collect();
    format!("{} GiB", each.join(" / "))
}

/// A multi-GiB, fragmented 3-member db: etcd-upkeep's rolling defragmentation (a sidecar beside
/// each member) against `etcdctl defrag --cluster` on the same data, under pinned writers.
fn bigdb() {
    let live_mb: u32 = std::env::var("BIGDB_LIVE_MB")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(1600);
    let value = 512 * 1024;
    let objects = live_mb * 2;
    let cluster = Cluster::start(3, 6 * 1024 * MIB);
    let fill = Instant::now();
    fragment(&cluster, objects, value, &[0, 1]);
    let sizes = db_sizes(&cluster);
    println!(
        "filled {objects} × 512 KiB (+ half overwritten, compacted) in {:.0} s: db {}",
        fill.elapsed().as_secs_f64(),
        gib(&sizes)
    );

    let writers = PinnedWriters::start(&cluster);
    std::thread::sleep(Duration::from_secs(2));
    let begin = Instant::now();
    let begin_unix = unix_now();
    let daemons = defrag_sidecars(&cluster, "dbSizeFree > 256*1024*1024", "info");
    let deadline = Instant::now() + Duration::from_secs(900);
    while (0..3).any(|i| support::defrag_intervals(&cluster.log(i)).is_empty())
        && Instant::now() < deadline
    {
        std::thread::sleep(Duration::from_millis(500));
    }
    let took = begin.elapsed().as_secs_f64();
    std::thread::sleep(Duration::from_secs(2));
    let gap = writers.stop(begin);
    let (longest, each) = (gap.longest, &gap.each);
    let sidecar_logs: Vec<String> = daemons.iter().map(Daemon::log).collect();
    let peak_rss = daemons
        .iter()
        .map(|d| proc_status(d.child.id(), "VmHWM:"))
        .max()
        .unwrap_or(0);
    drop(daemons);
    let mut per_member = Vec::new();
    for i in 0..3 {
        for (a, b) in support::defrag_intervals(&cluster.log(i)) {
            per_member.push(format!("{} {:.1}s", cluster.members[i].name, b - a));
        }
    }
    println!(
        "etcd-upkeep (3 sidecars, rolling, leader last): {took:.0} s until all three were done ({}); db after {}; longest window with no write accepted anywhere {longest:.2} s; per member {:.2} / {:.2} / {:.2} s; sidecar peak RSS {:.1} MiB",
        per_member.join(", "),
        gib(&db_sizes(&cluster)),
        each[0],
        each[1],
        each[2],
        peak_rss as f64 / 1024.0
    );
    print_gap_context(&cluster, &sidecar_logs, &gap);
    print_timeline(begin_unix, &cluster, &sidecar_logs);
    if std::env::var("BIGDB_BASELINE").is_ok_and(|v| v == "0") {
        return;
    }

    // The same data fragmented again, then the runbook's command.
    fragment(&cluster, objects, value, &[2]);
    println!("re-fragmented: db {}", gib(&db_sizes(&cluster)));
    let writers = PinnedWriters::start(&cluster);
    std::thread::sleep(Duration::from_secs(2));
    let begin = Instant::now();
    let mut args = s(&[
        "--endpoints",
        &cluster.endpoints().join(","),
        "--command-timeout",
        "900s",
    ]);
    args.extend(cluster.pki.flags());
    args.extend(s(&["defrag", "--cluster"]));
    let out = Command::new("etcdctl")
        .args(&args)
        .output()
        .expect("etcdctl");
    let took = begin.elapsed().as_secs_f64();
    std::thread::sleep(Duration::from_secs(2));
    let gap = writers.stop(begin);
    let (longest, each) = (gap.longest, &gap.each);
    println!(
        "baseline etcdctl defrag --cluster: {took:.0} s ({}); db after {}; longest window with no write accepted anywhere {longest:.2} s; per member {:.2} / {:.2} / {:.2} s",
        if out.status.success() { "ok" } else { "FAILED" },
        gib(&db_sizes(&cluster)),
        each[0],
        each[1],
        each[2]
    );
    print_gap_context(&cluster, &[], &gap);
}

/// HashKV under writers pinned to each member, on a fragmented 3-member db of `HASHKV_LIVE_MB`
/// (default 800) of 512 KiB values: every member hashed at once (what the integrity check did)
/// against one member at a time (what it does now) — the longest window with no write accepted
/// anywhere, and on each member. A hash holds the member's backend read lock for its whole scan,
/// so the member applies nothing meanwhile.
fn hashkv() {
    let live_mb: u32 = std::env::var("HASHKV_LIVE_MB")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(800);
    let (cluster, patient) = filled(live_mb, 4 * 1024 * MIB);
    for together in [true, false, true, false] {
        let writers = PinnedWriters::start(&cluster);
        std::thread::sleep(Duration::from_secs(2));
        let begin = Instant::now();
        let endpoints = cluster.endpoints();
        let hashes: Vec<u32> = rt().block_on(async {
            let hash = |endpoint: String| {
                let config = patient.only(&[endpoint]);
                async move {
                    let mut c = config.connect().await;
                    c.hash_kv(0).await.map_or(0, |r| r.hash())
                }
            };
            if together {
                futures_util::future::join_all(endpoints.into_iter().map(hash)).await
            } else {
                let mut each = Vec::new();
                for e in endpoints {
                    each.push(hash(e).await);
                }
                each
            }
        });
        let took = begin.elapsed().as_secs_f64();
        std::thread::sleep(Duration::from_secs(1));
        let gap = writers.stop(begin);
        println!(
            "HashKV of all 3 members {}: {took:.2} s (hashes {}); longest window with no write accepted anywhere {:.2} s; per member {:.2} / {:.2} / {:.2} s",
            if together { "at once  " } else { "in turn  " },
            if hashes.contains(&0) { "FAILED" } else { "ok" },
            gap.longest,
            gap.each[0],
            gap.each[1],
            gap.each[2]
        );
    }
}

/// Three members holding `live_mb` MiB of 512 KiB values (written twice, the first copy
/// compacted away), and a client patient enough for a HashKV of GiBs.
fn filled(live_mb: u32, quota: u64) -> (Cluster, ClientConfig) {
    let cluster = Cluster::start(3, quota);
    let fill = Instant::now();
    fragment(&cluster, live_mb * 2, 512 * 1024, &[0]);
    println!(
        "filled {} × 512 KiB in {:.0} s: db {}",
        live_mb * 2,
        fill.elapsed().as_secs_f64(),
        gib(&db_sizes(&cluster))
    );
    let patient = cluster
        .client_config()
        .with_timeout(Duration::from_secs(300));
    (cluster, patient)
}

/// What a HashKV does to lease renewals (issue 19 §6): one lease kept alive through each member
/// every 100 ms, and HashKV run on the raft leader (what a new actor's agreement check and the
/// proof after each defragmentation did before) against the followers one at a time (what they
/// do now). Printed: the longest window in which no renewal succeeded anywhere.
fn lease() {
    let live_mb: u32 = std::env::var("LEASE_LIVE_MB")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(2100);
    let (cluster, patient) = filled(live_mb, 8 * 1024 * MIB);
    let leader = cluster.leader_index();
    let followers: Vec<usize> = (0..3).filter(|&i| i != leader).collect();
    for (what, hashed) in [
        (
            "the leader (before: every new actor, and the peer of most proofs)",
            vec![leader],
        ),
        ("the followers in turn (now)", followers.clone()),
        ("the leader (before), again", vec![leader]),
        ("the followers in turn (now), again", followers),
    ] {
        // Writes as well, as kube-apiserver always writes: a leader renews a lease only once it
        // has applied what it committed, so renewals wait on a stalled apply only under writes.
        let writes = PinnedWriters::start(&cluster);
        let renewals = PinnedWriters::start_doing(&cluster, Pinned::Renewals);
        std::thread::sleep(Duration::from_secs(3));
        let begin = Instant::now();
        let endpoints = cluster.endpoints();
        let ok = rt().block_on(async {
            let mut ok = true;
            for i in &hashed {
                let mut c = patient.only(&[endpoints[*i].clone()]).connect().await;
                ok &= c.hash_kv(0).await.is_ok();
            }
            ok
        });
        let took = begin.elapsed().as_secs_f64();
        std::thread::sleep(Duration::from_secs(2));
        let gap = renewals.stop(begin);
        let written = writes.stop(begin);
        println!(
            "HashKV of {what}: {took:.2} s ({}); longest window with no lease renewal anywhere {:.2} s (per member {:.2} / {:.2} / {:.2} s); with no write accepted anywhere {:.2} s",
            if ok { "ok" } else { "FAILED" },
            gap.longest,
            gap.each[0],
            gap.each[1],
            gap.each[2],
            written.longest
        );
    }
}

/// The churn detector (the daemon's sketch size) at 100 000 distinct hot keys: every key of a
/// large cluster rewritten every 10 s (a resync storm), with 5 sync loops among them at
/// `LOOP_PER_MINUTE`. Memory must stay bounded and the top 5 must be the loops.
fn churn_wide() {
    let loop_per_minute: f64 = std::env::var("LOOP_PER_MINUTE")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(600.0);
    let mut detector = ChurnDetector::new(256, 60.0);
    let keys: Vec<String> = (0..100_000)
        .map(|i| format!("/registry/configmaps/ns-{}/cm-{i}", i % 100))
        .collect();
    let loops: Vec<String> = (0..5)
        .map(|i| format!("/registry/example.com/widgets/default/loop-{i}"))
        .collect();
    let seconds = 180.0;
    let noise_per_second = keys.len() as f64 / 10.0;
    let loop_every = noise_per_second / (loop_per_minute / 60.0 * loops.len() as f64);
    let rss0 = proc_status(std::process::id(), "VmRSS:");
    let total = (seconds * noise_per_second) as u64;
    let (mut next_loop, mut l) = (0.0, 0usize);
    let start = Instant::now();
    for i in 0..total {
        let now = 1_000.0 + i as f64 / noise_per_second;
        detector.record(&keys[(i as usize * 7919) % keys.len()], 300, now);
        if i as f64 >= next_loop {
            detector.record(&loops[l % loops.len()], 1000, now);
            l += 1;
            next_loop += loop_every;
        }
    }
    let elapsed = start.elapsed().as_secs_f64();
    let top = detector.top(1_000.0 + seconds, 60.0, 5);
    let right = top.iter().filter(|e| loops.contains(&e.key)).count();
    let grew = proc_status(std::process::id(), "VmRSS:").saturating_sub(rss0);
    println!(
        "churn detector at 100 000 hot keys (each every 10 s) + 5 loops at {loop_per_minute:.0}/min, {seconds:.0} s of stream: {:.0} events/s; memory grown {:.1} MiB; top 5 = the loops: {right}/5 ({})",
        (total + l as u64) as f64 / elapsed,
        grew as f64 / 1024.0,
        top.iter()
            .map(|e| format!(
                "{} {:.0}/min",
                e.key.rsplit('/').next().unwrap_or(""),
                e.writes_per_minute
            ))
            .collect::<Vec<_>>()
            .join(", ")
    );
}

fn main() {
    let which: Vec<String> = std::env::args().skip(1).collect();
    let all = [
        "idle",
        "heal",
        "churn",
        "churn-wide",
        "analyze",
        "stall",
        "prevent",
        "hashkv",
    ]; // bigdb and lease (multi-GiB) and apiserver (20 minutes): on request only
    let chosen: Vec<&str> = if which.is_empty() {
        all.to_vec()
    } else {
        which.iter().map(String::as_str).collect()
    };
    for name in chosen {
        println!("== {name}");
        match name {
            "idle" => idle(),
            "heal" => heal(),
            "churn" => churn(),
            "analyze" => analyze(),
            "bigdb" => bigdb(),
            "churn-wide" => churn_wide(),
            "stall" => stall(),
            "prevent" => prevent(),
            "hashkv" => hashkv(),
            "lease" => lease(),
            "apiserver" => apiserver_bench::apiserver(),
            other => eprintln!("unknown benchmark {other}; choose from {all:?}"),
        }
    }
}
