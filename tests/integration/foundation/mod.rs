//! Foundation against real etcd: discovery, TLS success and failures, status output, quota
//! sources, presets; the daemon's own (`daemon`): readiness while the only endpoint is frozen,
//! certificates appearing late.

mod daemon;

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

    the_table_names_every_member_and_the_quota(&cluster);

    // --discover=false: only the given endpoint is asked; the others are listed as not observed.
    let out = upkeep(&status_args(
        &cluster,
        &first,
        &["--discover=false", "-o", "json"],
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

/// The table: its columns, every member, the quota with its source, the alarms.
fn the_table_names_every_member_and_the_quota(cluster: &Cluster) {
    let first = cluster.endpoints()[0].clone();
    let out = upkeep(&status_args(
        cluster,
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
}

/// `status` through `endpoint`, trusting `ca`, as the client of `identity`.
fn status_trusting(endpoint: &str, ca: &std::path::Path, identity: &Pki) -> Vec<String> {
    let (ca, cert, key) = (
        ca.display().to_string(),
        identity.client_cert.display().to_string(),
        identity.client_key.display().to_string(),
    );
    s(&[
        "status",
        "--endpoints",
        endpoint,
        "--dial-timeout",
        "2s",
        "--cacert",
        &ca,
        "--cert",
        &cert,
        "--key",
        &key,
    ])
}

#[test]
fn tls_failures_are_one_line_and_name_the_cause() {
    let cluster = Cluster::start(1, 16 << 20);
    let endpoint = cluster.endpoints()[0].clone();

    // Wrong CA: the server certificate is not trusted.
    let other = Pki::generate(&cluster.dir.path().join("other"), "other-ca");
    let out = upkeep(&status_trusting(&endpoint, &other.ca, &cluster.pki));
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(!out.status.success());
    assert!(err.to_lowercase().contains("certificate"), "{err}");
    assert!(err.contains(&endpoint), "{err}");
    assert_eq!(err.trim().lines().count(), 1, "{err}");

    // A client certificate the server does not trust.
    let out = upkeep(&status_trusting(&endpoint, &cluster.pki.ca, &other));
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
    // `status` with a vCluster preset's certificate layout under `dir`.
    let status_with_preset = |preset: &str, dir: &std::path::Path| {
        let dir = dir.display().to_string();
        upkeep(&s(&[
            "status",
            "--preset",
            preset,
            "--pki-dir",
            &dir,
            "--endpoints",
            &endpoint,
        ]))
    };
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
    let out = status_with_preset("embedded", &embedded);
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
    let out = status_with_preset("deployed", &deployed);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );

    // Missing files are named.
    let empty = cluster.dir.path().join("empty");
    let out = status_with_preset("embedded", &empty);
    assert_eq!(out.status.code(), Some(2));
    assert!(
        String::from_utf8_lossy(&out.stderr)
            .contains(&empty.join("etcd/ca.crt").display().to_string())
    );
}
