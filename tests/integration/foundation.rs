//! Foundation against real etcd: discovery, TLS success and failures, status output, quota
//! sources, presets, readiness while the only endpoint is frozen, certificates appearing late.

use crate::support;

use std::time::{Duration, Instant};

use support::{Cluster, Daemon, Pki, s, upkeep};

fn status_args(cluster: &Cluster, endpoint: &str, extra: &[&str]) -> Vec<String> {
    let mut args = s(&["status", "--endpoints", endpoint, "--dial-timeout", "2s"]);
    args.extend(cluster.pki.flags());
    args.extend(s(extra));
    args
}

#[test]
fn status_discovers_all_three_members_from_the_first_endpoint() {
    let cluster = Cluster::start(3, 64 << 20);
    let first = cluster.endpoints()[0].clone();

    let out = upkeep(&status_args(&cluster, &first, &["--output", "json"]));
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let json: serde_json::Value = serde_json::from_slice(&out.stdout).expect("valid JSON");
    let members = json["members"].as_array().unwrap();
    assert_eq!(members.len(), 3, "{json:#}");
    let mut names: Vec<&str> = members
        .iter()
        .map(|m| m["name"].as_str().unwrap())
        .collect();
    names.sort();
    assert_eq!(names, ["m0", "m1", "m2"]);
    for m in members {
        assert!(m["db_size"].as_u64().unwrap() > 0, "{m}");
        assert!(m["error"].is_null(), "{m}");
    }
    assert_eq!(members.iter().filter(|m| m["is_leader"] == true).count(), 1);
    // etcd ≥ 3.6 reports each member's quota in Status; before, the flag's default applies.
    if support::etcd_reports_quota() {
        assert_eq!(json["quota"]["source"], "etcd");
        assert_eq!(json["quota"]["bytes"], cluster.quota);
    } else {
        assert_eq!(json["quota"]["source"], "flag");
        assert_eq!(json["quota"]["bytes"], 2u64 << 30);
    }

    let out = upkeep(&status_args(
        &cluster,
        &first,
        &[
            "--etcd-metrics-url",
            &format!("{}/metrics", cluster.members[0].metrics_url),
        ],
    ));
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let table = String::from_utf8_lossy(&out.stdout);
    for header in [
        "NAME",
        "ENDPOINT",
        "RAFT TERM",
        "DB SIZE",
        "IN USE",
        "FRAG %",
        "QUOTA %",
    ] {
        assert!(table.contains(header), "{table}");
    }
    for name in ["m0", "m1", "m2"] {
        assert!(table.contains(name), "{table}");
    }
    let quota_source = if support::etcd_reports_quota() {
        "etcd"
    } else {
        "metrics-url"
    };
    assert!(
        table.contains(&format!("64.0 MiB (source: {quota_source})")),
        "{table}"
    );
    assert!(table.contains("alarms: none"), "{table}");

    // --no-discover: only the given endpoint is asked; the others are listed as not observed.
    let out = upkeep(&status_args(
        &cluster,
        &first,
        &["--no-discover", "-o", "json"],
    ));
    let json: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    let answered = json["members"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|m| m["error"].is_null())
        .count();
    assert_eq!(answered, 1, "{json:#}");
}

#[test]
fn tls_failures_are_one_line_and_name_the_cause() {
    let cluster = Cluster::start(1, 16 << 20);
    let endpoint = cluster.endpoints()[0].clone();

    // Wrong CA: the server certificate is not trusted.
    let other = Pki::generate(&cluster.dir.path().join("other"), "other-ca");
    let mut args = s(&[
        "status",
        "--endpoints",
        &endpoint,
        "--dial-timeout",
        "2s",
        "--cacert",
    ]);
    args.push(other.ca.display().to_string());
    args.extend(s(&[
        "--cert",
        &cluster.pki.client_cert.display().to_string(),
        "--key",
        &cluster.pki.client_key.display().to_string(),
    ]));
    let out = upkeep(&args);
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(!out.status.success());
    assert!(err.to_lowercase().contains("certificate"), "{err}");
    assert!(err.contains(&endpoint), "{err}");
    assert_eq!(err.trim().lines().count(), 1, "{err}");

    // A client certificate the server does not trust.
    let mut args = s(&[
        "status",
        "--endpoints",
        &endpoint,
        "--dial-timeout",
        "2s",
        "--cacert",
    ]);
    args.push(cluster.pki.ca.display().to_string());
    args.extend(s(&[
        "--cert",
        &other.client_cert.display().to_string(),
        "--key",
        &other.client_key.display().to_string(),
    ]));
    let out = upkeep(&args);
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(!out.status.success());
    assert!(err.contains(&endpoint), "{err}");

    // Missing --cacert path: quick, names the path, exit 2.
    let started = Instant::now();
    let out = upkeep(&s(&[
        "status",
        "--endpoints",
        &endpoint,
        "--cacert",
        "/nonexistent/ca.crt",
    ]));
    let err = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(2), "{err}");
    assert!(err.contains("/nonexistent/ca.crt"), "{err}");
    assert!(started.elapsed() < Duration::from_secs(2));

    // Refused connection: names the endpoint and says so.
    let closed = format!("https://127.0.0.1:{}", support::free_port());
    let out = upkeep(&status_args(&cluster, &closed, &[]));
    let err = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(1), "{err}");
    assert!(err.contains(&closed), "{err}");
    assert!(
        err.to_lowercase().contains("refused") || err.to_lowercase().contains("connect"),
        "{err}"
    );

    // https without a CA, and a malformed endpoint: usage errors naming the flag.
    let out = upkeep(&s(&["status", "--endpoints", &endpoint]));
    assert_eq!(out.status.code(), Some(2));
    assert!(String::from_utf8_lossy(&out.stderr).contains("--cacert"));
    let out = upkeep(&s(&["status", "--endpoints", "127.0.0.1:2379"]));
    assert_eq!(out.status.code(), Some(2));
    assert!(String::from_utf8_lossy(&out.stderr).contains("--endpoints 127.0.0.1:2379"));
}

#[test]
fn presets_find_vcluster_certificate_layouts_under_pki_dir() {
    let cluster = Cluster::start(1, 16 << 20);
    let endpoint = cluster.endpoints()[0].clone();
    let copy = |from: &std::path::Path, to: std::path::PathBuf| {
        std::fs::create_dir_all(to.parent().unwrap()).unwrap();
        std::fs::copy(from, to).unwrap();
    };

    // embedded: /data/pki/etcd/ca.crt + apiserver-etcd-client pair (no etcd/tls.* — as vCluster writes it).
    let embedded = cluster.dir.path().join("data-pki");
    copy(&cluster.pki.ca, embedded.join("etcd/ca.crt"));
    copy(
        &cluster.pki.client_cert,
        embedded.join("apiserver-etcd-client.crt"),
    );
    copy(
        &cluster.pki.client_key,
        embedded.join("apiserver-etcd-client.key"),
    );
    let out = upkeep(&s(&[
        "status",
        "--preset",
        "embedded",
        "--pki-dir",
        &embedded.display().to_string(),
        "--endpoints",
        &endpoint,
    ]));
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );

    // deployed: /run/config/pki/etcd-ca.crt + etcd-peer pair.
    let deployed = cluster.dir.path().join("run-config-pki");
    copy(&cluster.pki.ca, deployed.join("etcd-ca.crt"));
    copy(&cluster.pki.server_cert, deployed.join("etcd-peer.crt"));
    copy(&cluster.pki.server_key, deployed.join("etcd-peer.key"));
    let out = upkeep(&s(&[
        "status",
        "--preset",
        "deployed",
        "--pki-dir",
        &deployed.display().to_string(),
        "--endpoints",
        &endpoint,
    ]));
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );

    // Missing files are named.
    let empty = cluster.dir.path().join("empty");
    let out = upkeep(&s(&[
        "status",
        "--preset",
        "embedded",
        "--pki-dir",
        &empty.display().to_string(),
        "--endpoints",
        &endpoint,
    ]));
    assert_eq!(out.status.code(), Some(2));
    assert!(
        String::from_utf8_lossy(&out.stderr)
            .contains(&empty.join("etcd/ca.crt").display().to_string())
    );
}

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

    let status = daemon.status_json();
    assert_eq!(status["ready"], true);
    assert_eq!(
        status["observation"]["members"].as_array().unwrap().len(),
        3
    );
    assert_eq!(status["observation"]["quota"]["source"], source);
    assert!(status["actions"].is_array());
    drop(daemon);

    // One endpoint only, then freeze that member: not ready within seconds, live throughout.
    let mut args = s(&[
        "--endpoints",
        &cluster.endpoints()[1],
        "--no-discover",
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
