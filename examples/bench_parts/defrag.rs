//! `stall`, `bigdb`, `hashkv` and `lease`: rolling defragmentation and the integrity check
//! under pinned writers, against the baselines users would run instead.

use std::process::Command;
use std::time::{Duration, Instant};

use crate::common::*;
use crate::fragmented::*;
use crate::pinned::*;
use crate::support::{self, Cluster, Daemon, s};

pub fn stall() {
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

/// A multi-GiB, fragmented 3-member db: etcd-upkeep's rolling defragmentation (a sidecar beside
/// each member) against `etcdctl defrag --cluster` on the same data, under pinned writers.
pub fn bigdb() {
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
    bigdb_sidecars(&cluster);
    if std::env::var("BIGDB_BASELINE").is_ok_and(|v| v == "0") {
        return;
    }
    // The same data fragmented again, then the runbook's command.
    fragment(&cluster, objects, value, &[2]);
    println!("re-fragmented: db {}", gib(&db_sizes(&cluster)));
    bigdb_etcdctl(&cluster);
}

/// A sidecar beside each member defragments the fragmented cluster under pinned writers.
fn bigdb_sidecars(cluster: &Cluster) {
    let writers = PinnedWriters::start(cluster);
    std::thread::sleep(Duration::from_secs(2));
    let begin = Instant::now();
    let begin_unix = unix_now();
    let daemons = defrag_sidecars(cluster, "dbSizeFree > 256*1024*1024", "info");
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
        gib(&db_sizes(cluster)),
        each[0],
        each[1],
        each[2],
        peak_rss as f64 / 1024.0
    );
    print_gap_context(cluster, &sidecar_logs, &gap);
    print_timeline(begin_unix, cluster, &sidecar_logs);
}

/// `etcdctl defrag --cluster` on the same cluster, under pinned writers.
fn bigdb_etcdctl(cluster: &Cluster) {
    let writers = PinnedWriters::start(cluster);
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
        gib(&db_sizes(cluster)),
        each[0],
        each[1],
        each[2]
    );
    print_gap_context(cluster, &[], &gap);
}

/// HashKV under writers pinned to each member, on a fragmented 3-member db of `HASHKV_LIVE_MB`
/// (default 800) of 512 KiB values: every member hashed at once (what the integrity check did)
/// against one member at a time (what it does now) — the longest window with no write accepted
/// anywhere, and on each member. A hash holds the member's backend read lock for its whole scan,
/// so the member applies nothing meanwhile.
pub fn hashkv() {
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

/// What a HashKV does to lease renewals (issue 19 §6): one lease kept alive through each member
/// every 100 ms, and HashKV run on the raft leader (what a new actor's agreement check and the
/// proof after each defragmentation did before) against the followers one at a time (what they
/// do now). Printed: the longest window in which no renewal succeeded anywhere.
pub fn lease() {
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
