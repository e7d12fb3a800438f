//! A follower whose volume lacks room for a defragmentation's copy: never defragmented, and
//! the reason named.

use super::*;

/// Free bytes of the filesystem holding `path`.
fn free_bytes(path: &std::path::Path) -> u64 {
    let out = std::process::Command::new("df")
        .args(["--output=avail", "-B1"])
        .arg(path)
        .output()
        .unwrap();
    String::from_utf8_lossy(&out.stdout)
        .lines()
        .nth(1)
        .and_then(|l| l.trim().parse().ok())
        .unwrap()
}

/// What the sidecar beside `member` (by name) published as its volume's free bytes.
fn published_free(cluster: &Cluster, member: &str) -> Option<u64> {
    published(cluster)
        .into_iter()
        .find(|(name, _)| name == member)
        .and_then(|(_, v)| v["disk_free"].as_u64())
}

#[test]
fn a_follower_whose_volume_lacks_room_is_never_defragmented_and_the_reason_is_named() {
    if !support::is_root() {
        eprintln!("SKIPPED: mounting a tmpfs needs root");
        return;
    }
    // m2's data dir on a volume of its own (its WAL elsewhere, as a separate volume would be).
    let cluster = Cluster::start_with_volume(3, 64 * MIB, 2, 128 * MIB);
    if leader_of(&cluster, &[0, 1, 2]) == 2 {
        move_leadership_to_m0(&cluster, 2);
    }
    let daemons: Vec<Daemon> = (0..3)
        .map(|i| {
            let data_dir = cluster.members[i].data_dir.display().to_string();
            sidecar(
                &cluster,
                i,
                &["--space-target", "0", "--data-dir", &data_dir],
            )
        })
        .collect();
    let refs: Vec<&Daemon> = daemons.iter().collect();
    fill_m2s_volume(&cluster);
    daemons[0].wait_for(Duration::from_secs(30), "m2's free disk published", |_| {
        published_free(&cluster, "m2").is_some_and(|free| free < 36 * MIB)
    });
    force_nospace(&cluster, &cluster.endpoints()[0], KEYS);
    let named = |d: &Daemon| {
        let status = d.status_json();
        let text = format!(
            "{} {}",
            status["maintenance"]["blocked"], status["maintenance"]["heal_blocked"]
        );
        text.contains("m2's volume has") && text.contains("not defragmenting m2")
    };
    daemons[0].wait_for(Duration::from_secs(60), "the reason named", |_| {
        daemons.iter().any(named)
    });
    std::thread::sleep(Duration::from_secs(3));
    for d in &daemons {
        let status = d.status_json();
        if named(d) {
            eprintln!(
                "named: {} / {}",
                status["maintenance"]["blocked"], status["maintenance"]["heal_blocked"]
            );
        }
    }
    std::thread::sleep(Duration::from_secs(5));
    assert!(
        support::defrag_intervals(&cluster.log(2)).is_empty(),
        "m2 was defragmented: {}",
        refs.iter()
            .map(|d| d.log())
            .collect::<Vec<_>>()
            .join("\n----\n")
    );
    assert!(every_member_answers(&cluster), "m2 stays up");
    assert!(
        !alarms(&cluster).is_empty(),
        "no disarm that its file would undo"
    );
    // Not retried in a loop: one refusal per change, not one per poll.
    let log: String = daemons.iter().map(|d| d.log()).collect();
    assert!(log.matches("m2's volume has").count() < 10, "{}", log);
}

/// From `leader` (a member index) to m0.
fn move_leadership_to_m0(cluster: &Cluster, leader: usize) {
    runtime().block_on(async {
        let mut c = cluster.client(&[cluster.endpoints()[leader].clone()]).await;
        let list = c.member_list().await.unwrap();
        let m0 = list
            .members()
            .iter()
            .find(|m| m.name() == "m0")
            .unwrap()
            .id();
        c.move_leader(m0).await.unwrap();
    });
}

/// 40 MiB of live data, then a ballast that leaves m2's volume 30 MiB: room for the db to grow
/// to the quota, not for the 48 MiB copy a defragmentation would write.
fn fill_m2s_volume(cluster: &Cluster) {
    runtime().block_on(async {
        let mut c = cluster.client(&cluster.endpoints()).await;
        let value = vec![b'v'; 100_000];
        for i in 0..420 {
            c.put(format!("/registry/live/key-{i}"), value.clone(), None)
                .await
                .unwrap();
        }
    });
    let volume = cluster.members[2].data_dir.clone();
    let ballast = free_bytes(&volume).saturating_sub(30 * MIB);
    std::fs::write(volume.join("ballast"), vec![0u8; ballast as usize]).unwrap();
}
