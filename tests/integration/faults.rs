//! etcd killed with SIGKILL in the middle of defragmenting a multi-hundred-MB db: bbolt's
//! defragmentation writes a new file and swaps it in, so the member must restart with every key,
//! the same KV hash as its peers at a common revision, and the daemon must carry on (pause while
//! the member is down, then finish the rolling pass) without a restart of its own.

use crate::support;

use std::time::Duration;

use support::{Cluster, Daemon, compact_to_current, daemon_args, runtime};

const MIB: u64 = 1024 * 1024;
/// 1 500 live objects of 100 KB, each written twice: ~300 MB of db, half of it free after the
/// compaction.
const OBJECTS: usize = 1_500;

fn hash_kv(cluster: &Cluster, i: usize, revision: i64) -> u32 {
    runtime().block_on(async {
        let mut c = cluster.client(&[cluster.endpoints()[i].clone()]).await;
        for _ in 0..100 {
            if let Ok(h) = c.hash_kv(revision).await {
                return h.hash();
            }
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
        panic!("no HashKV from member {i}");
    })
}

fn count(cluster: &Cluster, i: usize) -> i64 {
    runtime().block_on(async {
        let mut c = cluster.client(&[cluster.endpoints()[i].clone()]).await;
        let options = etcd_client::GetOptions::new()
            .with_prefix()
            .with_count_only()
            .with_serializable();
        c.get("/registry/big/", Some(options))
            .await
            .unwrap()
            .count()
    })
}

#[test]
fn etcd_killed_mid_defragmentation_restarts_intact_and_the_daemon_finishes_the_pass() {
    let mut cluster = Cluster::start(3, 2048 * MIB);
    let endpoint = cluster.endpoints()[0].clone();
    let revision = runtime().block_on(async {
        let mut tasks = Vec::new();
        for w in 0..4 {
            let config = cluster.client_config();
            tasks.push(tokio::spawn(async move {
                let mut c = config.connect().await;
                for round in 0..2 {
                    for k in (w..OBJECTS).step_by(4) {
                        let value = vec![b'a' + round as u8; 100_000];
                        c.put(format!("/registry/big/ns/o-{k}"), value, None)
                            .await
                            .unwrap();
                    }
                }
            }));
        }
        for t in tasks {
            t.await.unwrap();
        }
        let mut c = cluster.client(std::slice::from_ref(&endpoint)).await;
        compact_to_current(&mut c).await;
        // One write above the compaction: etcd 3.4 refuses HashKV at exactly that revision.
        let put = c.put("upkeep-test/mark", "1", None).await.unwrap();
        put.header().unwrap().revision()
    });
    let before: Vec<u32> = (0..3).map(|i| hash_kv(&cluster, i, revision)).collect();
    assert!(before.windows(2).all(|w| w[0] == w[1]), "{before:?}");

    let daemon = Daemon::start(
        &daemon_args(
            &cluster,
            &endpoint,
            &[
                "--act-when",
                "always",
                "--space-target",
                "0",
                "--poll-interval",
                "500ms",
                "--command-timeout",
                "60s",
                "--defrag-rule",
                "dbSizeFree > 64*1024*1024 && fragmentation > 0.3",
            ],
        ),
        cluster.dir.path(),
    );

    // The first member whose defragmentation starts is killed 100 ms into it.
    let victim = cluster.first_defragmenting(Duration::from_secs(60));
    std::thread::sleep(Duration::from_millis(100));
    assert!(
        !cluster.log(victim).contains("finished defragment"),
        "the defragmentation was over before the kill: make the db larger"
    );
    cluster.kill(victim);
    std::thread::sleep(Duration::from_secs(3));
    assert_eq!(daemon.get("/healthz").0, 200, "the daemon lives on");
    cluster.restart(victim);
    cluster.wait_writable(Duration::from_secs(60));

    assert_eq!(
        hash_kv(&cluster, victim, revision),
        before[victim],
        "the killed member's data is what it was"
    );
    assert_eq!(count(&cluster, victim), OBJECTS as i64);
    daemon.wait_for(
        Duration::from_secs(120),
        "every member defragmented",
        |_| (0..3).all(|i| cluster.log(i).contains("finished defragment")),
    );
    for (i, hash) in before.iter().enumerate() {
        assert_eq!(hash_kv(&cluster, i, revision), *hash, "member {i}");
    }
    assert_eq!(daemon.get("/healthz").0, 200);
}
