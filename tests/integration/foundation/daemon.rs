//! The daemon's foundation: metrics and readiness while its only endpoint is frozen, and
//! certificates that appear after it started.

use super::*;

#[test]
fn daemon_serves_metrics_and_readiness_follows_a_frozen_endpoint() {
    let cluster = Cluster::start(3, 32 << 20);
    let mut args = s(&[
        "--endpoints",
        &cluster.endpoints()[0],
        "--poll-interval",
        "1s",
        "--dial-timeout",
        "1s",
        "--etcd-metrics-url",
        &format!("{}/metrics", cluster.members[0].metrics_url),
    ]);
    args.extend(cluster.pki.flags());
    let daemon = Daemon::start(&args, cluster.dir.path());
    daemon.wait_for(Duration::from_secs(15), "ready", |d| {
        d.get("/readyz").0 == 200
    });

    let source = metrics_name_every_member_and_the_quota(&daemon);
    let status = daemon.status_json();
    assert_eq!(status["ready"], true);
    assert_eq!(
        status["observation"]["members"].as_array().unwrap().len(),
        3
    );
    assert_eq!(status["observation"]["quota"]["source"], source);
    assert!(status["actions"].is_array());
    drop(daemon);
    readiness_follows_a_frozen_endpoint(&cluster);
}

/// `/metrics`: each member's sizes and leadership, the quota and where it came from, the
/// alarms, the observation counters, and promtool's word on the format. Returns the quota's
/// source.
fn metrics_name_every_member_and_the_quota(daemon: &Daemon) -> &'static str {
    let (code, metrics) = daemon.get("/metrics");
    assert_eq!(code, 200);
    for name in ["m0", "m1", "m2"] {
        for metric in [
            "etcd_upkeep_member_db_size_bytes",
            "etcd_upkeep_member_db_size_in_use_bytes",
            "etcd_upkeep_member_is_leader",
        ] {
            assert!(
                metrics.contains(&format!("{metric}{{member=\"{name}\"}}")),
                "{metric} {name}\n{metrics}"
            );
        }
    }
    assert!(
        metrics.contains(&format!("etcd_upkeep_quota_bytes {}", 32u64 << 20)),
        "{metrics}"
    );
    let source = if support::etcd_reports_quota() {
        "etcd"
    } else {
        "metrics-url"
    };
    assert!(
        metrics.contains(&format!(
            "etcd_upkeep_quota_source{{source=\"{source}\"}} 1"
        )),
        "{metrics}"
    );
    assert!(
        metrics.contains("etcd_upkeep_alarm_active{alarm=\"NOSPACE\"} 0"),
        "{metrics}"
    );
    assert!(
        metrics.contains("etcd_upkeep_alarm_active{alarm=\"CORRUPT\"} 0"),
        "{metrics}"
    );
    assert!(
        metrics.contains("etcd_upkeep_observation_errors_total"),
        "{metrics}"
    );
    assert!(
        metrics.contains("etcd_upkeep_last_observation_timestamp_seconds"),
        "{metrics}"
    );
    promtool_check(&metrics);

    source
}

/// One endpoint only, then freeze that member: not ready within seconds, live throughout.
fn readiness_follows_a_frozen_endpoint(cluster: &Cluster) {
    let mut args = s(&[
        "--endpoints",
        &cluster.endpoints()[1],
        "--discover=false",
        "--poll-interval",
        "1s",
        "--dial-timeout",
        "1s",
    ]);
    args.extend(cluster.pki.flags());
    let daemon = Daemon::start(&args, cluster.dir.path());
    daemon.wait_for(Duration::from_secs(15), "ready", |d| {
        d.get("/readyz").0 == 200
    });
    cluster.freeze(1);
    let frozen = Instant::now();
    daemon.wait_for(Duration::from_secs(15), "not ready while frozen", |d| {
        assert_eq!(d.get("/healthz").0, 200, "liveness must not depend on etcd");
        d.get("/readyz").0 == 503
    });
    eprintln!("readiness dropped {:?} after SIGSTOP", frozen.elapsed());
    cluster.thaw(1);
    daemon.wait_for(Duration::from_secs(30), "ready again after SIGCONT", |d| {
        assert_eq!(d.get("/healthz").0, 200);
        d.get("/readyz").0 == 200
    });
}

#[test]
fn daemon_waits_for_certificates_that_appear_after_start() {
    let cluster = Cluster::start(1, 16 << 20);
    let pki = cluster.dir.path().join("late-pki");
    let args = s(&[
        "--endpoints",
        &cluster.endpoints()[0],
        "--preset",
        "embedded",
        "--pki-dir",
        &pki.display().to_string(),
        "--poll-interval",
        "500ms",
        "--dial-timeout",
        "1s",
    ]);
    let daemon = Daemon::start(&args, cluster.dir.path());
    std::thread::sleep(Duration::from_secs(2));
    assert_eq!(daemon.get("/readyz").0, 503);
    assert_eq!(daemon.get("/healthz").0, 200);
    let status = daemon.status_json();
    assert!(
        status["last_error"]
            .as_str()
            .unwrap()
            .contains(&pki.join("etcd/ca.crt").display().to_string()),
        "{status:#}"
    );
    assert!(daemon.log().contains("etcd/ca.crt"), "{}", daemon.log());

    std::fs::create_dir_all(pki.join("etcd")).unwrap();
    std::fs::copy(
        &cluster.pki.client_cert,
        pki.join("etcd/healthcheck-client.crt"),
    )
    .unwrap();
    std::fs::copy(
        &cluster.pki.client_key,
        pki.join("etcd/healthcheck-client.key"),
    )
    .unwrap();
    std::fs::copy(&cluster.pki.ca, pki.join("etcd/ca.crt")).unwrap();
    daemon.wait_for(
        Duration::from_secs(20),
        "ready once certificates exist",
        |d| d.get("/readyz").0 == 200,
    );

    // A renewed certificate (same CA, new bytes) is picked up without a restart.
    let renewed = Pki::generate(&cluster.dir.path().join("renewed"), "renewed-ca");
    std::fs::copy(&renewed.ca, pki.join("etcd/ca.crt")).unwrap();
    daemon.wait_for(
        Duration::from_secs(20),
        "not ready with an untrusted CA",
        |d| d.get("/readyz").0 == 503,
    );
    std::fs::copy(&cluster.pki.ca, pki.join("etcd/ca.crt")).unwrap();
    daemon.wait_for(
        Duration::from_secs(30),
        "ready again with the right CA",
        |d| d.get("/readyz").0 == 200,
    );
    assert!(
        daemon.log().contains("certificate files changed"),
        "{}",
        daemon.log()
    );
}

/// `promtool check metrics` when promtool is installed (scripts/setup.sh installs it; CI has it).
fn promtool_check(metrics: &str) {
    let Ok(mut child) = std::process::Command::new("promtool")
        .args(["check", "metrics"])
        .stdin(std::process::Stdio::piped())
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .spawn()
    else {
        assert!(std::env::var("CI").is_err(), "promtool is required in CI");
        eprintln!("promtool not installed; skipping the lint");
        return;
    };
    use std::io::Write;
    child
        .stdin
        .take()
        .unwrap()
        .write_all(metrics.as_bytes())
        .unwrap();
    let out = child.wait_with_output().unwrap();
    assert!(
        out.status.success(),
        "promtool check metrics:\n{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
}
