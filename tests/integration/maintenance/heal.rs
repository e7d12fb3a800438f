//! The daemon heals NOSPACE: a verified disarm on one member, a quota it was told wrong, and
//! live data over the quota left armed until deletions free it.

use super::*;

#[test]
fn nospace_on_one_member_is_healed_with_a_verified_disarm() {
    let cluster = Cluster::start(1, 16 * MIB);
    let endpoint = cluster.endpoints()[0].clone();
    let daemon = Daemon::start(&daemon_args(&cluster, &endpoint, &[]), cluster.dir.path());
    let keys = 5;
    fill_and_wait_for_the_disarm(&cluster, &daemon, &endpoint, keys);
    daemon.wait_for(Duration::from_secs(10), "alarm gone", |_| {
        alarms(&cluster).is_empty()
    });
    let (members, writable) = inspect(&cluster);
    assert!(writable, "writes must succeed after the heal");
    assert!(
        members[0].1 as f64 <= 0.9 * (16 * MIB) as f64,
        "{members:?}"
    );
    assert_eq!(
        keys_present(&cluster, keys),
        keys,
        "every live key survives"
    );
    // "heal" is recorded once a write was accepted and the alarm stayed away for a poll.
    let actions = |d: &Daemon| -> Vec<String> {
        d.status_json()["actions"]
            .as_array()
            .unwrap()
            .iter()
            .map(|a| a["action"].as_str().unwrap().to_string())
            .collect()
    };
    daemon.wait_for(Duration::from_secs(15), "the heal confirmed", |d| {
        actions(d).iter().any(|a| a == "heal")
    });
    let actions = actions(&daemon);
    for expected in ["compact", "defragment", "disarm", "heal"] {
        assert!(
            actions.iter().any(|a| a == expected),
            "{expected} missing from {actions:?}"
        );
    }
    assert!(
        daemon
            .metric("etcd_upkeep_heal_duration_seconds_count")
            .unwrap()
            >= 1.0
    );
    assert!(
        daemon.log().contains("history"),
        "the emergency compaction says history is given up"
    );
    // Alone, the member is compared with itself: its hash from before the defrag, taken again.
    let log = daemon.log();
    assert!(
        log.contains("integrity verified for m0: its KV hash at revision")
            && log.contains("is unchanged")
            && log.contains("no other member to compare with"),
        "{log}"
    );
}

#[test]
fn an_instance_told_a_far_larger_quota_than_etcds_frees_space_before_disarming() {
    // etcd runs with a 16 MiB quota; the daemon is told nothing (etcd 3.5 does not report it)
    // and assumes etcd's default 2 GiB: every member looks far below the line. A disarm then
    // would free nothing, and the next write would raise NOSPACE again.
    let cluster = Cluster::start(1, 16 * MIB);
    let endpoint = cluster.endpoints()[0].clone();
    let args = support::daemon_args(&cluster, &endpoint, &["--poll-interval", "500ms"]);
    let daemon = Daemon::start(&args, cluster.dir.path());
    let keys = 5;
    fill_and_wait_for_the_disarm(&cluster, &daemon, &endpoint, keys);
    let log = daemon.log();
    assert!(
        !defrag_intervals(&cluster.log(0)).is_empty(),
        "space was freed before the disarm: {log}"
    );
    let (members, writable) = inspect(&cluster);
    assert!(writable, "{log}");
    assert!(
        members[0].1 as f64 <= 0.9 * (16 * MIB) as f64,
        "{members:?}"
    );
    assert_eq!(keys_present(&cluster, keys), keys);
    assert_eq!(
        daemon.metric("etcd_upkeep_alarm_disarm_total"),
        Some(1.0),
        "{log}"
    );
}

#[test]
fn live_data_over_quota_is_not_disarmed_and_heals_after_deletion() {
    let cluster = Cluster::start(1, 16 * MIB);
    let endpoint = cluster.endpoints()[0].clone();
    // Distinct keys: live data, not history, fills the quota.
    let written = force_nospace(&cluster, &endpoint, 100_000);

    // The one-shot heal refuses and says why.
    let mut args = s(&[
        "heal",
        "--endpoints",
        &endpoint,
        "--quota-backend-bytes",
        "16Mi",
        "--heal-timeout",
        "20s",
    ]);
    args.extend(cluster.pki.flags());
    let out = upkeep(&args);
    let err = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(1), "{err}");
    assert!(
        err.contains("live data") && err.contains("--quota-backend-bytes"),
        "{err}"
    );
    assert!(!alarms(&cluster).is_empty(), "NOSPACE must stay armed");

    let daemon = Daemon::start(&daemon_args(&cluster, &endpoint, &[]), cluster.dir.path());
    daemon.wait_for(Duration::from_secs(20), "heal blocked", |d| {
        d.metric("etcd_upkeep_heal_blocked{reason=\"live_data_over_quota\"}") == Some(1.0)
    });
    let status = daemon.status_json();
    assert!(
        status["maintenance"]["heal_blocked"]
            .as_str()
            .unwrap()
            .contains("MiB in use"),
        "{status:#}"
    );
    assert!(!alarms(&cluster).is_empty());

    // Delete most objects (allowed during NOSPACE): the daemon heals by itself.
    runtime().block_on(async {
        let mut c = cluster.client(std::slice::from_ref(&endpoint)).await;
        // List what is there: etcd applies the put that crosses the quota and still answers
        // NOSPACE, so there may be one key more than `written` counted.
        let listed = c
            .get(
                "/registry/fill/",
                Some(
                    etcd_client::GetOptions::new()
                        .with_prefix()
                        .with_keys_only(),
                ),
            )
            .await
            .unwrap();
        assert!(listed.kvs().len() >= written);
        for kv in &listed.kvs()[..listed.kvs().len() - 20] {
            c.delete(kv.key().to_vec(), None).await.unwrap();
        }
    });
    daemon.wait_for(Duration::from_secs(60), "healed after deletions", |_| {
        alarms(&cluster).is_empty()
    });
    daemon.wait_for(Duration::from_secs(10), "heal_blocked cleared", |d| {
        d.metric("etcd_upkeep_heal_blocked{reason=\"live_data_over_quota\"}") == Some(0.0)
    });
    assert_eq!(
        keys_present(&cluster, 100_000),
        20,
        "the keys not deleted survive"
    );
}
