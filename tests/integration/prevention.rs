//! Prevention against real etcd: the space controller holds a sync loop below the quota (no
//! NOSPACE, no failed write) and gives the history back when the loop stops; live data growing
//! toward the quota is reported before NOSPACE, with the biggest resource, and history is not
//! blamed for it.

use crate::support;

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::time::{Duration, Instant};

use support::{Cluster, Daemon, alarms, daemon_args, runtime};

const MIB: u64 = 1 << 20;
const LOOP_KEY: &str = "/registry/example.com/widgets/default/looping-widget";

/// What a writer saw: puts that succeeded and failed, and the largest db size it sampled.
#[derive(Default)]
struct Seen {
    ok: AtomicU64,
    failed: AtomicU64,
    peak_db: AtomicU64,
}

/// Rewrites `LOOP_KEY` `per_second` times a second with `size`-byte values until `stop`,
/// sampling the db size every second.
fn sync_loop(
    cluster: &Cluster,
    per_second: u64,
    size: usize,
    stop: Arc<AtomicBool>,
    seen: Arc<Seen>,
) -> std::thread::JoinHandle<()> {
    let config = cluster.client_config();
    std::thread::spawn(move || {
        runtime().block_on(async {
            let mut c = config.connect().await;
            let mut tick = tokio::time::interval(Duration::from_micros(1_000_000 / per_second));
            let mut sampled = Instant::now();
            while !stop.load(Ordering::SeqCst) {
                tick.tick().await;
                match c.put(LOOP_KEY, vec![b'w'; size], None).await {
                    Ok(_) => seen.ok.fetch_add(1, Ordering::SeqCst),
                    Err(_) => seen.failed.fetch_add(1, Ordering::SeqCst),
                };
                if sampled.elapsed() >= Duration::from_secs(1) {
                    sampled = Instant::now();
                    if let Ok(s) = c.status().await {
                        seen.peak_db
                            .fetch_max(s.db_size().max(0) as u64, Ordering::SeqCst);
                    }
                }
            }
        })
    })
}

#[test]
fn a_sync_loop_is_held_below_the_quota_and_history_grows_back_after_it_stops() {
    let quota = 64 * MIB;
    let cluster = Cluster::start(1, quota);
    let endpoint = cluster.endpoints()[0].clone();
    let args = daemon_args(
        &cluster,
        &endpoint,
        &[
            "--poll-interval",
            "1s",
            "--quota-backend-bytes",
            "64Mi",
            "--compaction-retention",
            "2m",
        ],
    );
    let daemon = Daemon::start(&args, cluster.dir.path());
    daemon.wait_for(Duration::from_secs(10), "the configured history", |d| {
        d.metric("etcd_upkeep_history_retention_seconds") == Some(120.0)
    });

    // 3 MB/s of history for 30 s: 90 MB through a 64 MiB quota; 2 minutes of it would be 360 MB.
    let stop = Arc::new(AtomicBool::new(false));
    let seen = Arc::new(Seen::default());
    let writer = sync_loop(&cluster, 30, 100_000, stop.clone(), seen.clone());
    let started = Instant::now();
    let mut least_kept = f64::INFINITY;
    while started.elapsed() < Duration::from_secs(30) {
        if let Some(kept) = daemon.metric("etcd_upkeep_history_retention_seconds") {
            least_kept = least_kept.min(kept);
        }
        std::thread::sleep(Duration::from_millis(500));
    }
    stop.store(true, Ordering::SeqCst);
    writer.join().unwrap();

    let log = daemon.log();
    assert_eq!(
        seen.failed.load(Ordering::SeqCst),
        0,
        "no write failed; daemon log:\n{log}"
    );
    assert!(seen.ok.load(Ordering::SeqCst) > 600, "the loop really ran");
    assert_eq!(alarms(&cluster).len(), 0, "no NOSPACE; daemon log:\n{log}");
    assert!(!log.contains("NOSPACE alarm raised"), "{log}");
    let peak = seen.peak_db.load(Ordering::SeqCst);
    assert!(
        peak <= quota * 8 / 10,
        "db peaked at {} MiB of a 64 MiB quota; daemon log:\n{log}",
        peak / MIB
    );
    assert!(
        least_kept < 60.0,
        "the history kept shrank under the loop: {least_kept}; daemon log:\n{log}"
    );
    assert!(
        log.contains("space controller: keeping") && log.contains("instead of 2m")
            || log.contains("below the"),
        "the shrink is explained in the log: {log}"
    );
    assert!(
        log.contains("the history comes from a sync loop") && log.contains(LOOP_KEY),
        "the log names the loop: {log}"
    );
    let status = daemon.status_json();
    assert!(
        status["space"]["keep_seconds"].as_f64().is_some(),
        "{status}"
    );
    assert!(
        status["space"]["explanation"].as_str().is_some(),
        "{status}"
    );

    // The loop stopped: within about a minute the configured history is kept again.
    daemon.wait_for(Duration::from_secs(90), "history to grow back", |d| {
        d.metric("etcd_upkeep_history_retention_seconds") == Some(120.0)
    });
}

#[test]
fn live_data_growing_toward_the_quota_is_reported_before_nospace_and_history_is_not_blamed() {
    let quota = 32 * MIB;
    let cluster = Cluster::start(1, quota);
    let endpoint = cluster.endpoints()[0].clone();
    let args = daemon_args(
        &cluster,
        &endpoint,
        &[
            "--poll-interval",
            "500ms",
            "--quota-backend-bytes",
            "32Mi",
            "--history-floor",
            "10s",
        ],
    );
    let daemon = Daemon::start(&args, cluster.dir.path());
    // Distinct objects (live data, no history): 240 × 100 KB = 75 % of the quota in ~12 s.
    runtime().block_on(async {
        let mut c = cluster.client(std::slice::from_ref(&endpoint)).await;
        let mut tick = tokio::time::interval(Duration::from_millis(50));
        for i in 0..240 {
            tick.tick().await;
            c.put(
                format!("/registry/secrets/tenant-{}/blob-{i}", i % 4),
                vec![b's'; 100_000],
                None,
            )
            .await
            .unwrap();
        }
    });
    daemon.wait_for(Duration::from_secs(40), "live data reported", |d| {
        d.metric("etcd_upkeep_live_data_over_target") == Some(1.0)
            && d.status_json()["space"]["largest_resources"]
                .as_array()
                .is_some_and(|r| !r.is_empty())
    });
    let status = daemon.status_json();
    let log = daemon.log();
    assert_eq!(
        status["space"]["largest_resources"][0]["resource"], "secrets",
        "{status}"
    );
    assert!(
        status["space"]["suggested_quota"].as_u64().unwrap() > quota,
        "{status}"
    );
    assert!(
        log.contains("live data (") && log.contains("--quota-backend-bytes"),
        "{log}"
    );
    assert!(
        log.contains("the biggest resources in etcd: secrets"),
        "{log}"
    );
    assert!(
        !log.contains("sync loop") && !log.contains("history comes from"),
        "history is not blamed: {log}"
    );
    assert_eq!(status["space"]["limit"], "retention", "{status}");
    assert_eq!(alarms(&cluster).len(), 0, "reported before NOSPACE");
}
