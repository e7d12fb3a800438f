//! What a new actor checks before its first step: the members' data agrees (their KV hashes at
//! one revision), without hashing the leader while it leads (a hash stops the member applying).

use super::*;

#[test]
fn members_whose_data_differs_block_maintenance_in_every_new_instance() {
    let mut cluster = Cluster::start(3, 64 * MIB);
    diverge_a_follower(&mut cluster);

    let args = daemon_args(
        &cluster,
        &cluster.endpoints()[0],
        &[
            "--act-when",
            "always",
            "--poll-interval",
            "1s",
            "--quota-backend-bytes",
            "64Mi",
        ],
    );
    let blocked = "etcd_upkeep_maintenance_blocked{reason=\"hash_mismatch\"}";
    for run in 0..2 {
        // A fresh instance (the second one after a restart) derives the mismatch from the cluster.
        let daemon = Daemon::start(&args, cluster.dir.path());
        daemon.wait_for(Duration::from_secs(30), "maintenance blocked", |d| {
            d.metric(blocked) == Some(1.0)
        });
        let log = daemon.log();
        assert!(
            log.contains("the members' data differs"),
            "run {run}: {log}"
        );
        assert!(
            log.contains("integrity MISMATCH for cluster"),
            "run {run}: {log}"
        );
        assert!(
            daemon.metric("etcd_upkeep_integrity_checks_total{outcome=\"mismatch\"}") >= Some(1.0)
        );
        // Nothing is touched meanwhile, not even a compaction.
        std::thread::sleep(Duration::from_secs(3));
        assert_eq!(
            daemon.metric("etcd_upkeep_compaction_total{result=\"ok\"}"),
            Some(0.0),
            "run {run}: {}",
            daemon.log()
        );
    }
}

/// The HashKV calls a member served, from its own /metrics (go-grpc-prometheus).
fn hashkv_served(cluster: &Cluster, i: usize) -> u64 {
    let address = cluster.members[i]
        .metrics_url
        .trim_start_matches("http://")
        .to_string();
    let (_, body) = support::http_get(&address, "/metrics");
    body.lines()
        .filter(|l| {
            l.starts_with("grpc_server_handled_total") && l.contains("grpc_method=\"HashKV\"")
        })
        .filter_map(|l| l.rsplit(' ').next()?.parse::<f64>().ok())
        .sum::<f64>() as u64
}

#[test]
fn a_new_actor_compares_the_followers_and_never_hashes_the_leader() {
    // On the leader a HashKV stops its apply for the whole scan, and every lease renewal in the
    // cluster (kube-apiserver's) with it: a new actor's agreement check hashes the followers.
    let cluster = Cluster::start(3, 64 * MIB);
    let leader = cluster.leader_index();
    let daemons = sidecars(&cluster);
    daemons[leader].wait_for(Duration::from_secs(30), "the agreement checked", |d| {
        d.log().contains("integrity verified for cluster")
    });
    assert_eq!(
        cluster.leader_index(),
        leader,
        "leadership stayed where it was"
    );
    let log = daemons[leader].log();
    assert!(
        log.contains("the leader is not hashed while it leads"),
        "{log}"
    );
    assert_eq!(hashkv_served(&cluster, leader), 0, "the leader was hashed");
    for i in (0..3).filter(|&i| i != leader) {
        assert!(hashkv_served(&cluster, i) >= 1, "m{i} was not hashed");
    }
}

/// A real divergence: one follower's db file says something else for the same key and revision
/// (a marker's last bytes rewritten while it is down). The followers are compared (the leader
/// is not hashed while it leads), so that member is kept a follower.
fn diverge_a_follower(cluster: &mut Cluster) {
    let marker = b"upkeep-test-marker-AAAAAAAAAAAAAAAA";
    runtime().block_on(async {
        let mut c = cluster.client(&cluster.endpoints()).await;
        c.put("/registry/configmaps/ns/marked", marker.to_vec(), None)
            .await
            .unwrap();
        for i in 0..20 {
            c.put(format!("/registry/configmaps/ns/after-{i}"), "x", None)
                .await
                .unwrap();
        }
    });
    std::thread::sleep(Duration::from_secs(1)); // every member's backend commits the marker
    let victim = (cluster.leader_index() + 1) % 3;
    cluster.kill(victim);
    let db = cluster.members[victim].data_dir.join("member/snap/db");
    let mut bytes = std::fs::read(&db).unwrap();
    let mut changed = 0;
    for i in 0..bytes.len().saturating_sub(marker.len()) {
        if &bytes[i..i + marker.len()] == marker {
            bytes[i + marker.len() - 4..i + marker.len()].copy_from_slice(b"BBBB");
            changed += 1;
        }
    }
    assert!(changed > 0, "the marker is in m{victim}'s db file");
    std::fs::write(&db, bytes).unwrap();
    cluster.restart(victim);
    cluster.wait_writable(Duration::from_secs(30));
    if cluster.leader_index() == victim {
        runtime().block_on(async {
            let mut c = cluster.client(&[cluster.endpoints()[victim].clone()]).await;
            let list = c.member_list().await.unwrap();
            let other = (victim + 1) % 3;
            let to = list
                .members()
                .iter()
                .find(|m| m.name() == cluster.members[other].name)
                .unwrap()
                .id();
            c.move_leader(to).await.unwrap();
        });
    }
}
