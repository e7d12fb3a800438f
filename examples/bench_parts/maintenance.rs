//! `idle` (the daemon's own cost at rest) and `heal` (NOSPACE to writable against the runbook).
//!
//! Why together: both measure the daemon doing its ordinary job on a small cluster.

use std::time::{Duration, Instant};

use crate::common::*;
use crate::support::Cluster;

pub fn idle() {
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
        "idle run, 3 members, poll 5s, {seconds} s: RSS peak {:.1} MiB (target ≤ 15 MiB; now {:.1} MiB heap/stacks + {:.1} MiB code and files); CPU {:.2} % of a core (target ≤ 1 %)",
        peak_rss as f64 / 1024.0,
        proc_status(pid, "RssAnon:") as f64 / 1024.0,
        proc_status(pid, "RssFile:") as f64 / 1024.0,
        cpu
    );
}

pub fn heal() {
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
