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
    let trickle = Rewriter::start(&cluster, "/registry/leases/kube-node-lease/n", 5, 1, 100);
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
    trickle.stop();
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

/// The per-member cool-down holds across actors. A rule pass that reaches the leader ends by
/// handing leadership (and so the acting role) to another sidecar; that sidecar must not
/// defragment again the members the pass just did, although the rule still matches them (a
/// loop keeps fragmenting the files). Counted from etcd's own logs, over 25 s after the pass.
#[test]
fn the_cool_down_holds_when_the_pass_hands_the_acting_role_to_another_sidecar() {
    let cluster = Cluster::start(3, 64 * MIB);
    let daemons: Vec<Daemon> = cluster
        .endpoints()
        .iter()
        .map(|endpoint| {
            let args = daemon_args(
                &cluster,
                endpoint,
                &[
                    "--compaction-retention",
                    "2s",
                    "--defrag-rule",
                    "dbSizeFree > 1024*1024",
                    "--min-defrag-interval",
                    "1h",
                ],
            );
            Daemon::start(&args, cluster.dir.path())
        })
        .collect();
    // Three keys rewritten with 100 KB values, 20 times a second: compaction every poll turns
    // the history into free pages, so the rule matches again within seconds of a defrag.
    let sync_loop = Rewriter::start(&cluster, "/registry/configmaps/default/cm-", 3, 100_000, 50);
    let defrags = |i: usize| defrag_intervals(&cluster.log(i)).len();
    daemons[0].wait_for(
        Duration::from_secs(60),
        "one pass over every member",
        |_| (0..3).all(|i| defrags(i) >= 1),
    );
    std::thread::sleep(Duration::from_secs(25));
    sync_loop.stop();
    let counts: Vec<usize> = (0..3).map(defrags).collect();
    let logs: Vec<String> = daemons.iter().map(|d| d.log()).collect();
    assert_eq!(
        counts,
        vec![1, 1, 1],
        "each member defragmented once within the 1h cool-down, whichever sidecar acts; sidecar logs:\n{}",
        logs.join("\n-----\n")
    );
}

/// Keys `{prefix}0` … `{prefix}{keys - 1}` rewritten in turn with `size`-byte values, a pause
/// of `pause_ms` between writes, until stopped. Failed writes are ignored (a defragmentation
/// or a leadership move may refuse one; the next goes on).
struct Rewriter {
    stop: std::sync::Arc<std::sync::atomic::AtomicBool>,
    writer: std::thread::JoinHandle<()>,
}

impl Rewriter {
    fn start(cluster: &Cluster, prefix: &str, keys: u64, size: usize, pause_ms: u64) -> Rewriter {
        let stop = std::sync::Arc::new(std::sync::atomic::AtomicBool::new(false));
        let (flag, config, prefix) = (stop.clone(), cluster.client_config(), prefix.to_string());
        let writer = std::thread::spawn(move || {
            runtime().block_on(async {
                let mut c = config.connect().await;
                let mut i = 0u64;
                while !flag.load(std::sync::atomic::Ordering::SeqCst) {
                    let _ = c
                        .put(format!("{prefix}{}", i % keys), vec![b'y'; size], None)
                        .await;
                    i += 1;
                    tokio::time::sleep(Duration::from_millis(pause_ms)).await;
                }
            })
        });
        Rewriter { stop, writer }
    }

    fn stop(self) {
        self.stop.store(true, std::sync::atomic::Ordering::SeqCst);
        self.writer.join().unwrap();
    }
}
