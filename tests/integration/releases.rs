//! What is different in etcd 3.6 and 3.7, each on the real binary that scripts/setup.sh built
//! from the Go module proxy (`.tools/etcd-<version>/`): the quota 3.6.4 reports when its flag is
//! unset, the values snippet's etcd flags, StopGRPCServiceOnDefrag, auth with the root role, and a
//! downgrade in progress.
//!
//! Why pinned releases and not `ETCD_BIN`: each behaviour belongs to a release line (3.6.4's 0,
//! 3.7's removed flags), so each test names the release it proves. A release that was not built
//! (no Go, a module the proxy refused) is SKIPPED by name; the test command says which ran.

use crate::support;

use std::path::PathBuf;
use std::process::Command;
use std::time::Duration;

use support::{Cluster, Daemon, daemon_args, s, upkeep};

const MIB: u64 = 1024 * 1024;

/// A daemon that acts alone and defragments every member whenever the rule is asked.
const DEFRAGMENT_ALL: [&str; 4] = ["--act-when", "always", "--defrag-rule", "true"];

/// `DEFRAGMENT_ALL` and `extra`, beside the first member.
fn defragmenting_daemon(cluster: &Cluster, extra: &[&str]) -> Daemon {
    let flags: Vec<&str> = DEFRAGMENT_ALL.iter().chain(extra).copied().collect();
    Daemon::start(
        &daemon_args(cluster, &cluster.endpoints()[0], &flags),
        cluster.dir.path(),
    )
}

fn release(version: &str) -> Option<PathBuf> {
    let bin = support::release_bin(version);
    if bin.is_none() {
        eprintln!("SKIPPED: etcd {version} is not in .tools/ (scripts/setup.sh did not build it)");
    }
    bin
}

fn status_json(cluster: &Cluster, extra: &[&str]) -> serde_json::Value {
    let mut args = s(&["status", "--endpoints", &cluster.endpoints()[0]]);
    args.extend(cluster.pki.flags());
    args.extend(s(extra));
    args.extend(s(&["--output", "json"]));
    let out = upkeep(&args);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    serde_json::from_slice(&out.stdout).expect("status --output json")
}

/// etcd 3.6.4 (vCluster with Kubernetes 1.34) reports `dbSizeQuota` 0 when
/// `--quota-backend-bytes` is unset (fixed in 3.6.6): that 0 is etcd's 2 GiB default, found with
/// no quota flag and no metrics URL, never "unknown" or "0 bytes". 3.6.8 reports the figure.
#[test]
fn etcd_3_6_4_without_a_quota_flag_reads_as_etcds_default() {
    for (version, source) in [("3.6.4", "etcd-default"), ("3.6.8", "etcd")] {
        let Some(bin) = release(version) else {
            continue;
        };
        let cluster = Cluster::start_release(&bin, 1, 0, &[]);
        let json = status_json(&cluster, &[]);
        assert_eq!(json["quota"]["bytes"], 2u64 << 30, "{version}: {json:#}");
        assert_eq!(json["quota"]["source"], source, "{version}: {json:#}");
    }
}

/// 3.6 renamed several flags and 3.7 removed every `--experimental-*` one: the snippet's
/// `extraArgs` must start both, exactly as written, with no deprecation warning, and the quota
/// they set is the one etcd reports.
#[test]
fn the_snippets_extra_args_start_etcd_3_6_and_3_7() {
    let lists = support::snippet::extra_args();
    assert_eq!(lists.len(), 2, "embedded and deployed: {lists:?}");
    for version in ["3.6.8", "3.7.3"] {
        let Some(bin) = release(version) else {
            continue;
        };
        for args in &lists {
            let extra: Vec<&str> = args.iter().map(String::as_str).collect();
            let cluster = Cluster::start_release(&bin, 1, 0, &extra);
            let log = cluster.log(0);
            assert!(
                !log.contains("deprecated"),
                "etcd {version} warns about {extra:?}:\n{log}"
            );
            let json = status_json(&cluster, &[]);
            assert_eq!(json["quota"]["bytes"], 8u64 << 30, "{version}: {json:#}");
        }
    }
}

/// Fragmentation for a defrag rule to find: 100 KB values rewritten, history compacted away.
fn fragment(cluster: &Cluster) {
    fragment_as(cluster.client_config());
}

/// `fragment`, through `config` (another user's certificate when auth is on).
fn fragment_as(config: support::ClientConfig) {
    support::runtime().block_on(async {
        let mut c = config.connect().await;
        for i in 0..100 {
            c.put(
                format!("/registry/configmaps/default/cm-{}", i % 4),
                vec![b'f'; 100_000],
                None,
            )
            .await
            .unwrap();
        }
        support::compact_to_current(&mut c).await;
    });
}

fn defrags_ok(daemon: &Daemon) -> usize {
    daemon
        .get("/metrics")
        .1
        .lines()
        .filter(|l| l.starts_with("etcd_upkeep_defrag_total{") && l.contains("result=\"ok\""))
        .count()
}

/// With `StopGRPCServiceOnDefrag` on, each member says NOT_SERVING on its gRPC health service
/// while it defragments. A rolling defrag still goes through every member, one at a time, with
/// nothing read as a fault. And while a member defragments for someone else, the health gate
/// names it "defragmenting", not unhealthy, and waits.
#[test]
fn stop_grpc_service_on_defrag_reads_as_defragmenting_not_as_a_fault() {
    let gate = "--feature-gates=StopGRPCServiceOnDefrag=true";
    for version in ["3.6.8", "3.7.3"] {
        let Some(bin) = release(version) else {
            continue;
        };
        let cluster = Cluster::start_release(&bin, 3, 64 * MIB, &[gate]);
        fragment(&cluster);
        // A pass of every member, then another 20 s after each member's last one.
        let daemon = defragmenting_daemon(
            &cluster,
            &["--min-defrag-interval", "20s", "--dial-timeout", "1s"],
        );
        daemon.wait_for(
            Duration::from_secs(60),
            "a rolling defrag of all three",
            |d| defrags_ok(d) == 3,
        );
        // The gate was on: each member went NOT_SERVING and back (etcd's own log).
        for i in 0..3 {
            let log = cluster.log(i);
            assert!(log.contains("defrag is active"), "{version} m{i}:\n{log}");
        }
        let log = daemon.log();
        assert!(!log.contains("maintenance blocked"), "{version}:\n{log}");
        assert_eq!(
            daemon.metric("etcd_upkeep_maintenance_blocked{reason=\"unhealthy\"}"),
            Some(0.0)
        );

        // Someone else's defragmentation of m1, slowed by a throttled disk so that it lasts
        // (it rewrites 20 MB of live data at 1 MiB/s): the gate before the next pass reads m1's
        // NOT_SERVING as "defragmenting".
        let Some(disk) = support::slowdisk::SlowDisk::create(cluster.dir.path(), MIB) else {
            return;
        };
        let external = slow_external_defrag_of_m1(&cluster, &disk);
        std::thread::sleep(Duration::from_secs(1));
        // Status waits for the defragmentation, so the observation asks m1's gRPC health why.
        daemon.wait_for(Duration::from_secs(60), "m1 named as defragmenting", |d| {
            d.get("/status")
                .1
                .contains("defragmenting: its gRPC health reports NOT_SERVING")
        });
        daemon.wait_for(Duration::from_secs(30), "maintenance held for m1", |d| {
            let log = d.log();
            log.contains("m1 is defragmenting")
        });
        let log = daemon.log();
        assert!(!log.contains("m1 is not healthy"), "{version}:\n{log}");
        assert_eq!(
            defrags_ok(&daemon),
            3,
            "nothing else defragmented meanwhile"
        );
        drop(disk);
        external
            .join()
            .unwrap()
            .expect("the external defragmentation");
    }
}

/// 20 MB of live data, then m1 defragmented by another client on a throttled disk (so that it
/// lasts). Returns that client's thread.
fn slow_external_defrag_of_m1(
    cluster: &Cluster,
    disk: &support::slowdisk::SlowDisk,
) -> std::thread::JoinHandle<Result<(), etcd_client::Error>> {
    support::runtime().block_on(async {
        let mut c = cluster.client(&cluster.endpoints()).await;
        for i in 0..200 {
            let key = format!("/registry/secrets/default/s-{i}");
            c.put(key, vec![b'l'; 100_000], None).await.unwrap();
        }
    });
    disk.add(cluster.members[1].pid());
    let config = cluster
        .client_config()
        .only(&[cluster.endpoints()[1].clone()]);
    std::thread::spawn(move || {
        support::runtime().block_on(async {
            let mut c = config
                .with_timeout(Duration::from_secs(120))
                .connect()
                .await;
            c.defragment().await.map(|_| ())
        })
    })
}

/// `etcdctl` of the release, with the root user's certificate.
fn etcdctl(bin: &std::path::Path, cluster: &Cluster, cert: &(PathBuf, PathBuf), args: &[&str]) {
    let out = Command::new(bin.with_file_name("etcdctl"))
        .arg(format!("--endpoints={}", cluster.endpoints().join(",")))
        .arg(format!("--cacert={}", cluster.pki.ca.display()))
        .arg(format!("--cert={}", cert.0.display()))
        .arg(format!("--key={}", cert.1.display()))
        .args(args)
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "etcdctl {args:?}: {}",
        String::from_utf8_lossy(&out.stderr)
    );
}

/// While a downgrade is enabled (`etcdctl downgrade enable`), defragmentation pauses and says
/// why; once it is cancelled, the same rule's pass goes through.
#[test]
fn a_downgrade_in_progress_pauses_defragmentation() {
    let Some(bin) = release("3.6.8") else {
        return;
    };
    let cluster = Cluster::start_release(&bin, 3, 64 * MIB, &[]);
    let pair = (
        cluster.pki.client_cert.clone(),
        cluster.pki.client_key.clone(),
    );
    fragment(&cluster);
    etcdctl(&bin, &cluster, &pair, &["downgrade", "enable", "3.5"]);
    let daemon = defragmenting_daemon(&cluster, &[]);
    daemon.wait_for(Duration::from_secs(30), "the downgrade named", |d| {
        d.metric("etcd_upkeep_maintenance_blocked{reason=\"downgrade\"}") == Some(1.0)
    });
    let status = daemon.status_json();
    let blocked = status["maintenance"]["blocked"].to_string();
    assert!(
        blocked.contains("a downgrade to 3.5.0 is enabled"),
        "{status:#}"
    );
    assert_eq!(defrags_ok(&daemon), 0);
    for i in 0..3 {
        assert!(
            !cluster.log(i).contains("starting defragment"),
            "m{i} defragmented"
        );
    }

    etcdctl(&bin, &cluster, &pair, &["downgrade", "cancel"]);
    daemon.wait_for(Duration::from_secs(60), "the pass after the cancel", |d| {
        defrags_ok(d) == 3
    });
    assert_eq!(
        daemon.metric("etcd_upkeep_maintenance_blocked{reason=\"downgrade\"}"),
        Some(0.0)
    );
}

/// Since 3.6.0, with auth enabled, Status, Defragment and MoveLeader need the root role. A
/// certificate whose CN is a user without it gets one line naming the RPC refused and the role
/// it needs, and /readyz says the same; with a root certificate everything works.
#[test]
fn with_auth_enabled_a_certificate_without_the_root_role_is_named() {
    let Some(bin) = release("3.6.8") else {
        return;
    };
    let cluster = Cluster::start_release(&bin, 3, 64 * MIB, &["--auth-token=simple"]);
    let root = cluster.pki.client_pair("root");
    for args in [
        &["user", "add", "root", "--no-password"][..],
        &["user", "grant-role", "root", "root"],
        // The harness's own certificate (CN etcd-upkeep): a user with no role at all.
        &["user", "add", "etcd-upkeep", "--no-password"],
        &["auth", "enable"],
    ] {
        etcdctl(&bin, &cluster, &root, args);
    }
    let endpoint = cluster.endpoints()[0].clone();

    let refused = Daemon::start(&daemon_args(&cluster, &endpoint, &[]), cluster.dir.path());
    refused.wait_for(Duration::from_secs(20), "the refusal named", |d| {
        d.log().contains("root role")
    });
    let log = refused.log();
    let lines: Vec<&str> = log.lines().filter(|l| l.contains("root role")).collect();
    assert_eq!(lines.len(), 1, "one line, not one per poll:\n{log}");
    assert!(lines[0].contains("Status"), "{}", lines[0]);
    let (code, body) = refused.get("/readyz");
    assert_eq!(code, 503, "{body}");
    assert!(
        body.contains("Status") && body.contains("root role"),
        "{body}"
    );
    drop(refused);

    fragment_as(cluster.client_config().with_identity(&root.0, &root.1));
    let mut args = s(&["--endpoints", &endpoint, "--cacert"]);
    args.push(cluster.pki.ca.display().to_string());
    args.extend(s(&["--cert", &root.0.display().to_string()]));
    args.extend(s(&["--key", &root.1.display().to_string()]));
    args.extend(s(&DEFRAGMENT_ALL));
    let works = Daemon::start(&args, cluster.dir.path());
    works.wait_for(Duration::from_secs(60), "a rolling defrag as root", |d| {
        defrags_ok(d) == 3
    });
    assert_eq!(works.get("/readyz").0, 200);
}
