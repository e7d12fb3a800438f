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

/// etcd's progress-notify flag for the release under test (3.4 and 3.5: experimental).
fn progress_notify_flag(interval: &str) -> String {
    if support::etcd_version() >= (3, 6) {
        format!("--watch-progress-notify-interval={interval}")
    } else {
        format!("--experimental-watch-progress-notify-interval={interval}")
    }
}

#[test]
fn a_sync_loop_is_held_below_the_quota_and_history_grows_back_after_it_stops() {
    let quota = 64 * MIB;
    // The members notify every 30 s, and the daemon is told so: the history kept (2m) covers
    // it until the loop forces less.
    let cluster = Cluster::start_with(1, quota, &[&progress_notify_flag("30s")]);
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
            "--watch-progress-notify-interval",
            "30s",
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
    let (least_kept, status_table) = watch_the_loop(&cluster, &daemon, Duration::from_secs(30));
    stop.store(true, Ordering::SeqCst);
    writer.join().unwrap();

    held_and_explained(&cluster, &daemon, &seen, quota, least_kept);
    said_below_once_with_the_flag(&daemon, status_table);

    // The loop stopped: within about a minute the configured history is kept again, and the
    // recovery is said once too.
    daemon.wait_for(Duration::from_secs(90), "history to grow back", |d| {
        d.metric("etcd_upkeep_history_retention_seconds") == Some(120.0)
    });
    daemon.wait_for(Duration::from_secs(10), "the recovery said", |d| {
        d.log()
            .contains("kept history is back above the members' watch progress-notify interval")
    });
    let status = daemon.status_json();
    assert_eq!(status["space"]["watch_history"]["below"], false, "{status}");
    assert_eq!(
        daemon.metric("etcd_upkeep_history_kept_over_watch_progress_interval_ratio"),
        Some(4.0)
    );
    let log = daemon.log();
    assert_eq!(said_below(&log), 1, "said once: {log}");
}

/// For `seconds` of the loop: the least history the daemon kept, and `etcd-upkeep status` as it
/// read while the history kept was below the members' 30 s (the flag named, from the sidecar's
/// candidacy, rewritten within a renewal or two).
fn watch_the_loop(cluster: &Cluster, daemon: &Daemon, seconds: Duration) -> (f64, Option<String>) {
    let started = Instant::now();
    let mut least_kept = f64::INFINITY;
    let mut status_table = None;
    let mut status_args = support::s(&["status", "--endpoints", &cluster.endpoints()[0]]);
    status_args.extend(cluster.pki.flags());
    while started.elapsed() < seconds {
        if let Some(kept) = daemon.metric("etcd_upkeep_history_retention_seconds") {
            least_kept = least_kept.min(kept);
        }
        let below = daemon
            .metric("etcd_upkeep_history_kept_over_watch_progress_interval_ratio")
            .is_some_and(|r| r < 1.0);
        if below && status_table.is_none() {
            let table = String::from_utf8_lossy(&support::upkeep(&status_args).stdout).into_owned();
            status_table = table.contains("set --").then_some(table);
        }
        std::thread::sleep(Duration::from_millis(500));
    }
    (least_kept, status_table)
}

/// No write failed, no NOSPACE, the db stayed at most 80 % of the quota, the history kept
/// shrank, and the log and /status say why and name the loop.
fn held_and_explained(
    cluster: &Cluster,
    daemon: &Daemon,
    seen: &Seen,
    quota: u64,
    least_kept: f64,
) {
    let log = daemon.log();
    assert_eq!(
        seen.failed.load(Ordering::SeqCst),
        0,
        "no write failed; daemon log:\n{log}"
    );
    assert!(seen.ok.load(Ordering::SeqCst) > 600, "the loop really ran");
    assert_eq!(alarms(cluster).len(), 0, "no NOSPACE; daemon log:\n{log}");
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
}

/// How often the log said the history kept went below the members' 30 s.
fn said_below(log: &str) -> usize {
    log.matches("is below the members' watch progress-notify interval 30s (given by --watch-progress-notify-interval)").count()
}

/// Below the members' 30 s notifications: said once, with the flag (by the members' release)
/// and a value to set, in the log, /status and `etcd-upkeep status`.
fn said_below_once_with_the_flag(daemon: &Daemon, status_table: Option<String>) {
    let flag = if support::etcd_version() >= (3, 6) {
        "--watch-progress-notify-interval"
    } else {
        "--experimental-watch-progress-notify-interval"
    };
    let log = daemon.log();
    let status = daemon.status_json();
    assert_eq!(said_below(&log), 1, "said once: {log}");
    assert!(log.contains(&format!("Set {flag}=")), "{log}");
    assert_eq!(status["watch_progress"]["source"], "flag", "{status}");
    let table = status_table.expect("etcd-upkeep status named the flag while below");
    assert!(
        table.contains("every 30s (flag)") && table.contains(&format!("set {flag}=")),
        "{table}"
    );
    assert_eq!(status["watch_progress"]["seconds"], 30.0, "{status}");
}

#[test]
fn the_members_progress_notify_interval_is_measured_and_shown_by_status() {
    let cluster = Cluster::start_with(1, 64 * MIB, &[&progress_notify_flag("2s")]);
    let endpoint = cluster.endpoints()[0].clone();
    let daemon = Daemon::start(
        &daemon_args(&cluster, &endpoint, &["--poll-interval", "1s"]),
        cluster.dir.path(),
    );
    // Until the first notification etcd's default is assumed; one interval later it is known.
    daemon.wait_for(Duration::from_secs(30), "the interval measured", |d| {
        d.status_json()["watch_progress"]["source"] == "measured"
    });
    let status = daemon.status_json();
    let seconds = status["watch_progress"]["seconds"].as_f64().unwrap();
    // etcd adds up to a tenth of jitter; a loaded machine delivers late, never early.
    assert!((1.9..3.5).contains(&seconds), "{status}");
    let gauge = daemon
        .metric("etcd_upkeep_watch_progress_notify_interval_seconds")
        .unwrap();
    assert!((1.9..3.5).contains(&gauge), "{gauge}");
    // The configured 30 minutes cover 2 s: nothing to advise.
    assert_eq!(status["space"]["watch_history"]["below"], false, "{status}");
    assert!(
        status["space"]["watch_history"]["advice"].is_null(),
        "{status}"
    );
    assert!(
        daemon
            .log()
            .contains("etcd sends watch progress notifications every"),
        "{}",
        daemon.log()
    );

    // The one-shot status reads it from the sidecar's candidacy (it cannot wait an interval).
    let mut args = support::s(&["status", "--endpoints", &endpoint, "--dial-timeout", "2s"]);
    args.extend(cluster.pki.flags());
    let deadline = Instant::now() + Duration::from_secs(15);
    let table = loop {
        let out = support::upkeep(&args);
        let table = String::from_utf8_lossy(&out.stdout).into_owned();
        if table.contains("(measured)") || Instant::now() > deadline {
            break table;
        }
        std::thread::sleep(Duration::from_millis(500));
    };
    assert!(
        table.contains("watch progress notifications on ") && table.contains("(measured)"),
        "{table}"
    );
    assert!(!table.contains("set --"), "{table}");
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
