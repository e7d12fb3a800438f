//! `churn`, `churn-wide` and `analyze`: the diagnosis's speed and memory (the churn detector
//! in-process and behind a real watch, and `analyze` over a million keys beside etcdctl).
//!
//! Why together: each measures finding what fills etcd, not maintaining it.

use std::time::{Duration, Instant};

use etcd_upkeep::diagnose::churn::ChurnDetector;

use crate::common::*;
use crate::support::{self, Cluster, Daemon, s};

pub fn churn() {
    churn_in_process();
    churn_end_to_end();
}

/// The detector alone: a sync loop amid 200 000 distinct keys.
fn churn_in_process() {
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
}

/// The daemon's watch behind etcd, fed with 100-put transactions by 4 writers for 20 s.
fn churn_end_to_end() {
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
    let written = write_pod_batches(&cluster, 4, seconds);
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

/// `writers` clients putting 100 pods per transaction for `seconds`; returns the puts accepted.
fn write_pod_batches(cluster: &Cluster, writers: u64, seconds: f64) -> u64 {
    rt().block_on(async {
        let mut tasks = Vec::new();
        for w in 0..writers {
            let config = cluster.client_config();
            tasks.push(tokio::spawn(async move {
                let mut c = config.connect().await;
                let start = Instant::now();
                let (mut written, mut batch) = (0u64, 0u64);
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
        for task in tasks {
            total += task.await.unwrap();
        }
        total
    })
}

pub fn analyze() {
    let cluster = Cluster::start(1, 4096 * MIB);
    let keys = 1_000_000u64;
    let load = Instant::now();
    load_keys(&cluster, keys);
    println!(
        "loaded {keys} keys in {:.1} s",
        load.elapsed().as_secs_f64()
    );
    let endpoint = cluster.endpoints()[0].clone();
    let etcd_pid = cluster.members[0].pid();
    let upkeep = support::upkeep_bin().display().to_string();
    let analyze_args = |extra: &[&str]| {
        let mut args = s(&["analyze", "--endpoints", &endpoint, "-o", "json"]);
        args.extend(s(extra));
        args.extend(cluster.pki.flags());
        args
    };
    // ANALYZE_PAGE_SIZES="1000,10000" compares page sizes on the same keys.
    for size in std::env::var("ANALYZE_PAGE_SIZES")
        .unwrap_or_default()
        .split(',')
        .filter(|v| !v.is_empty())
    {
        let args = analyze_args(&["--page-size", size]);
        let (wall, peak, _, etcd_cpu) = timed_beside(etcd_pid, &upkeep, &args);
        println!(
            "analyze --page-size {size}: {wall:.1} s wall, peak RSS {peak:.1} MiB; etcd's CPU {etcd_cpu:.1} s"
        );
    }
    let (wall, peak, out, etcd_cpu) = timed_beside(etcd_pid, &upkeep, &analyze_args(&[]));
    let json: serde_json::Value = serde_json::from_slice(&out).unwrap_or_default();
    println!(
        "analyze over {} keys: {wall:.1} s wall, peak RSS {peak:.1} MiB (bounded: two ~2 MiB pages at a time; target ≤ 32 MiB, no slower than etcdctl keys-only); etcd's CPU meanwhile {etcd_cpu:.1} s",
        json["total_keys"]
    );
    analyze_baselines(&cluster, etcd_pid);
}

/// `keys` small objects of four resources, 128 per transaction from 4 writers.
fn load_keys(cluster: &Cluster, keys: u64) {
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
}

/// `timed`, and the seconds of CPU etcd (`etcd_pid`) spent meanwhile.
fn timed_beside(etcd_pid: u32, program: &str, args: &[String]) -> (f64, f64, Vec<u8>, f64) {
    let before = cpu_ticks(etcd_pid);
    let (wall, peak, out) = timed(program, args);
    let etcd_cpu = (cpu_ticks(etcd_pid) - before) as f64 / 100.0;
    (wall, peak, out, etcd_cpu)
}

/// The baselines users reach for: etcdctl keys only (no sizes), and every value as JSON summed
/// by resource with jq.
fn analyze_baselines(cluster: &Cluster, etcd_pid: u32) {
    let endpoint = cluster.endpoints()[0].clone();
    let mut etcdctl = s(&["--endpoints", &endpoint, "--command-timeout", "300s"]);
    etcdctl.extend(cluster.pki.flags());
    let mut keys_only = etcdctl.clone();
    keys_only.extend(s(&["get", "--prefix", "", "--keys-only"]));
    let (wall, peak, out, etcd_cpu) = timed_beside(etcd_pid, "etcdctl", &keys_only);
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

/// The churn detector (the daemon's sketch size) at 100 000 distinct hot keys: every key of a
/// large cluster rewritten every 10 s (a resync storm), with 5 sync loops among them at
/// `LOOP_PER_MINUTE`. Memory must stay bounded and the top 5 must be the loops.
pub fn churn_wide() {
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
