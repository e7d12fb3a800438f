//! `prevent`: a sync loop against a 256 MiB quota, etcd alone and then with one etcd-upkeep per
//! member on default flags (NOSPACE, failed writes, peak db, history kept).

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant};

use crate::common::*;
use crate::support::Cluster;

/// The seed's prevention flags on etcd itself.
pub const SEED_ETCD_FLAGS: [&str; 4] = [
    "--auto-compaction-mode",
    "periodic",
    "--auto-compaction-retention",
    "30m",
];

/// Rewrites one object 20×/s with 100 KB values (≈ 2 MB/s of history) until `stop`; returns
/// (accepted, refused) puts. Refusals are counted, never retried: each is a failed write.
pub fn loop_writer(
    cluster: &Cluster,
    stop: Arc<AtomicBool>,
) -> std::thread::JoinHandle<(u64, u64)> {
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
pub fn sample(cluster: &Cluster) -> (u64, bool) {
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

pub fn prevent() {
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
