//! A stepped wall clock (NTP after a VM resume, a wrong RTC) must not change what the daemon
//! decides: every duration is monotonic (`src/clock.rs`). The daemon runs under Debian's
//! libfaketime, which steps only its wall clock (`FAKETIME_DONT_FAKE_MONOTONIC`), re-reading the
//! offset from a file so a test can step it while the daemon runs. That the step took effect is
//! checked from the timestamps of the daemon's own log lines.

use crate::support;

use std::path::{Path, PathBuf};
use std::time::Duration;

use support::{Cluster, Daemon, alarms, daemon_args, force_nospace, parse_ts, runtime};

const MIB: u64 = 1024 * 1024;

fn libfaketime() -> PathBuf {
    let candidates = [
        "/usr/lib/x86_64-linux-gnu/faketime/libfaketime.so.1",
        "/usr/lib/aarch64-linux-gnu/faketime/libfaketime.so.1",
        "/usr/lib/faketime/libfaketime.so.1",
    ];
    candidates
        .iter()
        .map(PathBuf::from)
        .find(|p| p.exists())
        .expect("libfaketime is missing: run scripts/setup.sh (it installs Debian's faketime)")
}

/// A daemon whose wall clock is offset by what `offset_file` says ("+0", "-10m", "+31m").
fn daemon_with_faked_wall_clock(cluster: &Cluster, offset_file: &Path, extra: &[&str]) -> Daemon {
    std::fs::write(offset_file, "+0\n").unwrap();
    let preload = libfaketime();
    let mut flags = vec!["--poll-interval", "1s", "--log-format", "json"];
    flags.extend_from_slice(extra);
    Daemon::start_with_env(
        &daemon_args(cluster, &cluster.endpoints()[0], &flags),
        cluster.dir.path(),
        &[
            ("LD_PRELOAD", preload.to_str().unwrap()),
            ("FAKETIME_TIMESTAMP_FILE", offset_file.to_str().unwrap()),
            ("FAKETIME_CACHE_DURATION", "1"),
            ("FAKETIME_DONT_FAKE_MONOTONIC", "1"),
        ],
    )
}

/// The wall-clock times of the daemon's log lines containing `needle`.
fn logged_at(daemon: &Daemon, needle: &str) -> Vec<f64> {
    daemon
        .log()
        .lines()
        .filter_map(|l| serde_json::from_str::<serde_json::Value>(l).ok())
        .filter(|v| v["message"].as_str().is_some_and(|m| m.contains(needle)))
        .filter_map(|v| Some(parse_ts(v["timestamp"].as_str()?)))
        .collect()
}

/// Until the `nth` heal is confirmed (the alarm gone, a write accepted and no alarm a poll
/// later: the daemon logs it then).
fn wait_healed(cluster: &Cluster, daemon: &Daemon, nth: usize) {
    daemon.wait_for(Duration::from_secs(60), "NOSPACE healed", |d| {
        alarms(cluster).is_empty() && logged_at(d, "NOSPACE healed").len() >= nth
    });
}

#[test]
fn a_wall_clock_stepped_back_after_a_heal_does_not_stop_the_next_one() {
    let cluster = Cluster::start(1, 16 * MIB);
    let offset = cluster.dir.path().join("faketime");
    let daemon = daemon_with_faked_wall_clock(
        &cluster,
        &offset,
        &["--quota-backend-bytes", "16Mi", "--space-target", "0"],
    );
    force_nospace(&cluster, &cluster.endpoints()[0], 5);
    wait_healed(&cluster, &daemon, 1);
    // Ten minutes back, as NTP does to a clock that ran fast.
    std::fs::write(&offset, "-10m\n").unwrap();
    std::thread::sleep(Duration::from_secs(3));
    force_nospace(&cluster, &cluster.endpoints()[0], 5);
    wait_healed(&cluster, &daemon, 2);
    let healed = logged_at(&daemon, "NOSPACE healed");
    assert_eq!(healed.len(), 2, "{}", daemon.log());
    assert!(
        healed[1] < healed[0] - 500.0,
        "the second heal was logged ~10 min before the first (the step took effect): {healed:?}"
    );
}

#[test]
fn a_wall_clock_stepped_forward_past_the_retention_compacts_no_history() {
    let cluster = Cluster::start(1, 64 * MIB);
    let write = |n: usize| {
        runtime().block_on(async {
            let mut c = cluster.client(&cluster.endpoints()).await;
            for i in 0..n {
                c.put(format!("upkeep-test/k{i}"), "v", None).await.unwrap();
            }
            c.get("x", None).await.unwrap().header().unwrap().revision()
        })
    };
    let early = write(20);
    let offset = cluster.dir.path().join("faketime");
    // Periodic compaction with its default 30m retention; prevention off so only it compacts.
    let daemon = daemon_with_faked_wall_clock(&cluster, &offset, &["--space-target", "0"]);
    std::thread::sleep(Duration::from_secs(3)); // the compactor's first samples
    let observed_at = |d: &Daemon| d.status_json()["observation"]["taken_at"].as_f64().unwrap();
    let before_step = observed_at(&daemon);
    write(20);
    // 31 minutes forward: past the retention, though only seconds of history exist.
    std::fs::write(&offset, "+31m\n").unwrap();
    std::thread::sleep(Duration::from_secs(3));
    write(20);
    std::thread::sleep(Duration::from_secs(6));
    let kept = runtime().block_on(async {
        let mut c = cluster.client(&cluster.endpoints()).await;
        c.get(
            "upkeep-test/k0",
            Some(etcd_client::GetOptions::new().with_revision(early)),
        )
        .await
        .map(|_| ())
        .map_err(|e| e.to_string())
    });
    assert_eq!(
        kept,
        Ok(()),
        "history of the last seconds was compacted:\n{}",
        daemon.log()
    );
    let log = daemon.log();
    assert!(!log.contains("compacted to revision"), "{log}");
    // The step took effect: the daemon's observations are stamped 31 minutes ahead.
    let after_step = observed_at(&daemon);
    assert!(
        after_step - before_step > 30.0 * 60.0,
        "{before_step} → {after_step}"
    );
}
