//! Fragmented clusters of a given size, and waiting until they are quiet before measuring.
//!
//! Why apart: the defragmentation benchmarks share the fill; only what runs on it differs.

use std::time::{Duration, Instant};

use crate::common::*;
use crate::pinned::*;
use crate::support::{ClientConfig, Cluster};

/// Overwrites half of the `objects` values and compacts: about a third of the db becomes free.
pub fn fragment(cluster: &Cluster, objects: u32, value: usize, rounds: &[u8]) {
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
pub fn wait_until_quiet(cluster: &Cluster) {
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

pub fn db_sizes(cluster: &Cluster) -> Vec<i64> {
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

pub fn gib(sizes: &[i64]) -> String {
    let each: Vec<String> = sizes
        .iter()
        .map(|s| format!("{:.2}", *s as f64 / (1u64 << 30) as f64))
        .collect();
    format!("{} GiB", each.join(" / "))
}

/// Three members holding `live_mb` MiB of 512 KiB values (written twice, the first copy
/// compacted away), and a client patient enough for a HashKV of GiBs.
pub fn filled(live_mb: u32, quota: u64) -> (Cluster, ClientConfig) {
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
