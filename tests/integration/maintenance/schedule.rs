//! Periodic compaction and rule-driven defragmentation.

use super::*;

#[test]
fn periodic_compaction_and_rule_driven_defragmentation() {
    let cluster = Cluster::start(3, 64 * MIB);
    let endpoint = cluster.endpoints()[0].clone();
    let daemon = Daemon::start(
        &daemon_args(
            &cluster,
            &endpoint,
            &[
                "--act-when",
                "always",
                "--compaction-retention",
                "2s",
                "--defrag-rule",
                "dbSizeFree > 2*1024*1024 && fragmentation > 0.3",
            ],
        ),
        cluster.dir.path(),
    );
    // Overwrite a few keys many times: history that compaction turns into free pages.
    runtime().block_on(async {
        let mut c = cluster.client(std::slice::from_ref(&endpoint)).await;
        for i in 0..120 {
            c.put(
                format!("/registry/configmaps/default/cm-{}", i % 3),
                vec![b'y'; 100_000],
                None,
            )
            .await
            .unwrap();
        }
    });
    daemon.wait_for(Duration::from_secs(30), "a compaction", |d| {
        d.metric("etcd_upkeep_compaction_total{result=\"ok\"}")
            .unwrap_or(0.0)
            >= 1.0
    });
    // A trickle of small writes, as on any live cluster: etcd refreshes a member's "in use"
    // figure when its backend next commits, so followers show the freed pages only then.
    let stop = std::sync::Arc::new(std::sync::atomic::AtomicBool::new(false));
    let writer = {
        let stop = stop.clone();
        let config = cluster.client_config();
        std::thread::spawn(move || {
            runtime().block_on(async {
                let mut c = config.connect().await;
                let mut i = 0u64;
                while !stop.load(std::sync::atomic::Ordering::SeqCst) {
                    let _ = c
                        .put(
                            format!("/registry/leases/kube-node-lease/n{}", i % 5),
                            "x",
                            None,
                        )
                        .await;
                    i += 1;
                    tokio::time::sleep(Duration::from_millis(100)).await;
                }
            })
        })
    };
    daemon.wait_for(
        Duration::from_secs(60),
        "rule-driven defrags of all members",
        |d| {
            d.get("/metrics")
                .1
                .lines()
                .filter(|l| {
                    l.starts_with("etcd_upkeep_defrag_total{") && l.contains("result=\"ok\"")
                })
                .count()
                == 3
        },
    );
    stop.store(true, std::sync::atomic::Ordering::SeqCst);
    writer.join().unwrap();
    assert!(daemon.metric("etcd_upkeep_compacted_revision").unwrap() > 0.0);
    let mut intervals: Vec<(f64, f64)> = (0..3)
        .flat_map(|i| defrag_intervals(&cluster.log(i)))
        .collect();
    intervals.sort_by(|a, b| a.0.partial_cmp(&b.0).unwrap());
    assert!(
        intervals.windows(2).all(|w| w[1].0 >= w[0].1),
        "{intervals:?}"
    );
}
