//! No loop may die while `/healthz` says 200: a loop that ends turns `/healthz` 503 naming it
//! and the process exits non-zero (so the kubelet restarts the container); SIGTERM stops the
//! daemon cleanly and withdraws its actor candidacy at once.

use crate::support;

use std::time::{Duration, Instant};

use support::{Cluster, Daemon, daemon_args, runtime};

const MIB: u64 = 1024 * 1024;

/// Waits for the process to exit; its exit code.
fn exit_code(daemon: &mut Daemon, limit: Duration) -> Option<i32> {
    let deadline = Instant::now() + limit;
    while Instant::now() < deadline {
        if let Ok(Some(status)) = daemon.child.try_wait() {
            return status.code();
        }
        std::thread::sleep(Duration::from_millis(50));
    }
    None
}

#[test]
fn a_loop_that_ends_fails_healthz_naming_it_and_the_process_exits_non_zero() {
    let cluster = Cluster::start(1, 64 * MIB);
    let endpoint = cluster.endpoints()[0].clone();
    for (fault, name) in [("engine:3s", "engine"), ("churn:3s", "churn watch")] {
        let args = daemon_args(&cluster, &endpoint, &["--poll-interval", "500ms"]);
        let mut daemon = Daemon::start_with_env(
            &args,
            cluster.dir.path(),
            &[("ETCD_UPKEEP_TEST_FAULT", fault)],
        );
        assert_eq!(daemon.get("/healthz").0, 200, "alive at first");
        let code = exit_code(&mut daemon, Duration::from_secs(30));
        let log = daemon.log();
        assert_eq!(code, Some(1), "exit code for {fault}; log:\n{log}");
        assert!(
            log.contains(&format!("the {name} loop ended unexpectedly")),
            "{log}"
        );
    }
}

#[test]
fn healthz_names_the_loop_before_the_process_exits() {
    // Between the loop ending and the exit (about a second) /healthz serves the failure, and
    // never 200 again.
    let cluster = Cluster::start(1, 64 * MIB);
    let args = daemon_args(&cluster, &cluster.endpoints()[0], &[]);
    let daemon = Daemon::start_with_env(
        &args,
        cluster.dir.path(),
        &[("ETCD_UPKEEP_TEST_FAULT", "engine:2s")],
    );
    let mut seen = Vec::new();
    let deadline = Instant::now() + Duration::from_secs(20);
    while Instant::now() < deadline {
        let (code, body) = daemon.get("/healthz");
        if code == 0 {
            break; // exited
        }
        seen.push((code, body));
        std::thread::sleep(Duration::from_millis(20));
    }
    let after: Vec<&(u16, String)> = seen.iter().skip_while(|(c, _)| *c == 200).collect();
    assert!(
        !after.is_empty(),
        "the failure was served before the exit: {seen:?}"
    );
    assert!(
        after
            .iter()
            .all(|(c, b)| *c == 503 && b.contains("engine loop ended")),
        "once the engine ended, /healthz never said 200 again: {after:?}"
    );
}

#[test]
fn sigterm_stops_cleanly_and_withdraws_the_candidacy_at_once() {
    let cluster = Cluster::start(1, 64 * MIB);
    let args = daemon_args(
        &cluster,
        &cluster.endpoints()[0],
        &["--poll-interval", "500ms"],
    );
    let mut daemon = Daemon::start(&args, cluster.dir.path());
    daemon.wait_for(Duration::from_secs(15), "registered", |d| {
        d.metric("etcd_upkeep_registered") == Some(1.0)
    });
    let candidates = || {
        runtime().block_on(async {
            let mut c = cluster.client(&cluster.endpoints()).await;
            c.get(
                "/etcd-upkeep/candidates/",
                Some(etcd_client::GetOptions::new().with_prefix()),
            )
            .await
            .unwrap()
            .kvs()
            .len()
        })
    };
    assert_eq!(candidates(), 1);
    support::signal(daemon.child.id(), "TERM");
    assert_eq!(exit_code(&mut daemon, Duration::from_secs(25)), Some(0));
    assert_eq!(candidates(), 0, "revoked, not left to expire");
    assert!(daemon.log().contains("actor candidacy withdrawn"));
}
