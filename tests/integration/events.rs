//! `--kubernetes-events` without an apiserver: what it refuses at start, and that an API which
//! never answers does not slow a heal (the Events themselves are tested against the real
//! apiserver in `apiserver.rs`).

use crate::support;

use std::net::TcpListener;
use std::process::Command;
use std::time::{Duration, Instant};

use support::{Cluster, Daemon, daemon_args, force_nospace, s};

const MIB: u64 = 1024 * 1024;

/// `run` with `args` and none of the pod's downward-API variables: (exit code, stderr).
fn run_refused(args: &[String]) -> (Option<i32>, String) {
    let out = Command::new(support::upkeep_bin())
        .arg("run")
        .args(args)
        .env_remove("POD_NAME")
        .env_remove("POD_NAMESPACE")
        .env_remove("POD_UID")
        .env_remove("KUBERNETES_SERVICE_HOST")
        .env_remove("KUBERNETES_SERVICE_PORT")
        .output()
        .unwrap();
    (
        out.status.code(),
        String::from_utf8_lossy(&out.stderr).trim().to_string(),
    )
}

#[test]
fn events_without_the_pod_or_the_api_or_the_ca_are_refused_at_start_naming_what_is_missing() {
    let dir = tempfile::tempdir().unwrap();
    let ca = dir.path().join("ca.crt");
    let base = s(&["--endpoints", "http://127.0.0.1:1", "--kubernetes-events"]);

    let (code, err) = run_refused(&base);
    assert_eq!(code, Some(2), "{err}");
    assert!(
        err.contains("KUBERNETES_SERVICE_HOST") && err.contains("--kubernetes-api"),
        "{err}"
    );

    let mut args = base.clone();
    args.extend(s(&["--kubernetes-api", "127.0.0.1:6443"]));
    let (code, err) = run_refused(&args);
    assert_eq!(code, Some(2), "{err}");
    assert!(
        err.contains("POD_NAME") && err.contains("metadata.name"),
        "{err}"
    );

    args.extend(s(&[
        "--pod-name",
        "p",
        "--pod-namespace",
        "ns",
        "--kubernetes-ca-file",
    ]));
    args.push(ca.display().to_string());
    let (code, err) = run_refused(&args);
    assert_eq!(code, Some(2), "{err}");
    assert!(
        err.contains("--kubernetes-ca-file") && err.contains("ca.crt"),
        "{err}"
    );
    assert_eq!(err.lines().count(), 1, "one line: {err}");
}

#[test]
fn an_api_that_never_answers_does_not_slow_the_heal() {
    // A port that takes connections and never answers them: every Event waits out its timeout.
    let silent = TcpListener::bind("127.0.0.1:0").unwrap();
    let api = silent.local_addr().unwrap().to_string();
    let cluster = Cluster::start(1, 16 * MIB);
    let endpoint = cluster.endpoints()[0].clone();
    let token = cluster.dir.path().join("token");
    std::fs::write(&token, "t").unwrap();
    let daemon = Daemon::start(
        &daemon_args(
            &cluster,
            &endpoint,
            &[
                "--poll-interval",
                "1s",
                "--kubernetes-events",
                "--kubernetes-api",
                &api,
                "--kubernetes-token-file",
                &token.display().to_string(),
                "--kubernetes-ca-file",
                &cluster.pki.ca.display().to_string(),
                "--pod-name",
                "vcluster-0",
                "--pod-namespace",
                "vcluster",
            ],
        ),
        cluster.dir.path(),
    );
    // Two episodes back to back: the first heal's Event still waits on the silent API (5 s)
    // while the second NOSPACE is healed. Each is timed from the refused write to the alarm gone.
    let mut took = Vec::new();
    for _ in 0..2 {
        force_nospace(&cluster, &endpoint, 5);
        let refused = Instant::now();
        while !support::alarms(&cluster).is_empty() {
            assert!(
                refused.elapsed() < Duration::from_secs(20),
                "not healed: {}",
                daemon.log()
            );
            std::thread::sleep(Duration::from_millis(50));
        }
        took.push(refused.elapsed().as_secs_f64());
    }
    assert!(
        took.iter().all(|t| *t < 3.0),
        "a heal waited on the API: {took:?} s\n{}",
        daemon.log()
    );
    daemon.wait_for(Duration::from_secs(15), "the failed Event said", |d| {
        d.log().contains("a Kubernetes Event was not recorded")
    });
    assert_eq!(
        daemon
            .log()
            .matches("a Kubernetes Event was not recorded")
            .count(),
        1,
        "said once per outage"
    );
    drop(silent);
}
