//! The demo behind the README's first command: a 3-member TLS etcd with a small quota, one
//! etcd-upkeep per member (as the sidecars of an HA vCluster), a simulated CRD sync loop that
//! fills etcd until NOSPACE — and etcd-upkeep naming the loop and healing the cluster by itself.
//! Exits 0 only if the heal really happened (alarm gone, writes accepted, every key intact).

#[path = "../tests/support/mod.rs"]
mod support;

use std::collections::HashSet;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant};

use support::{Cluster, Daemon, s, upkeep};

const MIB: u64 = 1024 * 1024;
const LOOP_KEY: &str = "/registry/example.com/widgets/default/looping-widget";

fn say(text: &str) {
    println!("\n\x1b[1m==> {text}\x1b[0m");
}

fn runtime() -> tokio::runtime::Runtime {
    tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap()
}

fn status_table(cluster: &Cluster) {
    let mut args = s(&[
        "status",
        "--endpoints",
        &cluster.endpoints()[0],
        "--quota-backend-bytes",
        "48Mi",
    ]);
    args.extend(cluster.pki.flags());
    print!("{}", String::from_utf8_lossy(&upkeep(&args).stdout));
}

fn main() {
    let started = Instant::now();
    say("Starting a 3-member etcd cluster with client and peer TLS and a 48 MiB quota");
    let cluster = Cluster::start(3, 48 * MIB);
    println!(
        "etcd {} — {}",
        support::etcd_bin().display(),
        cluster.endpoints().join(", ")
    );

    say("Starting one etcd-upkeep per member, as the sidecars of an HA vCluster");
    let daemons: Vec<Daemon> = cluster
        .endpoints()
        .iter()
        .map(|endpoint| {
            let mut args = s(&[
                "--endpoints",
                endpoint,
                "--poll-interval",
                "1s",
                "--quota-backend-bytes",
                "48Mi",
                // Prevention is off for the demo, so that NOSPACE really happens.
                "--forecast-horizon",
                "0s",
            ]);
            args.extend(cluster.pki.flags());
            Daemon::start(&args, cluster.dir.path())
        })
        .collect();
    let actor = || {
        daemons
            .iter()
            .position(|d| d.status_json()["maintenance"]["actor"] == true)
    };
    daemons[0].wait_for(Duration::from_secs(20), "an actor", |_| actor().is_some());
    let leader_side = actor().unwrap();
    println!(
        "metrics on http://{}/metrics (and /status, /healthz, /readyz) — one per sidecar",
        daemons[0].address
    );
    println!(
        "the sidecar beside the raft leader ({}) is the one that acts; the others stand by",
        cluster.members[leader_side].name
    );
    status_table(&cluster);

    say(&format!(
        "Simulating a CRD sync loop: {LOOP_KEY} rewritten 25×/s (100 KB each)"
    ));
    let stop = Arc::new(AtomicBool::new(false));
    let nospace_seen = Arc::new(AtomicBool::new(false));
    let writer = {
        let (stop, nospace_seen) = (stop.clone(), nospace_seen.clone());
        let config = cluster.client_config();
        std::thread::spawn(move || {
            runtime().block_on(async move {
                let mut c = config.connect().await;
                for i in 0..20 {
                    c.put(
                        format!("/registry/configmaps/default/app-config-{i}"),
                        vec![b'c'; 2000],
                        None,
                    )
                    .await
                    .unwrap();
                }
                let mut tick = tokio::time::interval(Duration::from_millis(40));
                while !stop.load(Ordering::SeqCst) {
                    tick.tick().await;
                    if let Err(e) = c.put(LOOP_KEY, vec![b'w'; 100_000], None).await
                        && e.to_string().contains("database space exceeded")
                        && !nospace_seen.swap(true, Ordering::SeqCst)
                    {
                        println!("    write refused: etcdserver: mvcc: database space exceeded");
                    }
                }
            })
        })
    };

    let mut shown: HashSet<String> = HashSet::new();
    let deadline = Instant::now() + Duration::from_secs(90);
    let mut named = false;
    let mut alarm_printed = false;
    let mut healed = false;
    while Instant::now() < deadline {
        std::thread::sleep(Duration::from_millis(250));
        let log = daemons
            .iter()
            .map(|d| d.log())
            .collect::<Vec<_>>()
            .join("\n");
        if !named && let Some(line) = log.lines().find(|l| l.contains("sync loop suspected")) {
            say("etcd-upkeep names the looping object");
            println!(
                "    {}",
                strip_ansi(line.split("sync loop suspected: ").nth(1).unwrap_or(line))
            );
            named = true;
        }
        if nospace_seen.load(Ordering::SeqCst) && !alarm_printed {
            say("NOSPACE: etcd raised the alarm — every write in the virtual cluster now fails");
            stop.store(true, Ordering::SeqCst); // the loop's writes fail anyway; a human would now fix the sync setting
            alarm_printed = true;
        }
        for d in &daemons {
            let status = d.status_json();
            let Some(actions) = status["actions"].as_array() else {
                continue;
            };
            for a in actions.iter().rev() {
                let id = format!("{}{}{}", a["at"], a["action"], a["member"]);
                if shown.insert(id) {
                    let member = a["member"]
                        .as_str()
                        .map(|m| format!(" {m}"))
                        .unwrap_or_default();
                    println!(
                        "    [{}] {}{}: {} ({:.2}s) — {}",
                        d.address,
                        a["action"].as_str().unwrap_or(""),
                        member,
                        a["result"].as_str().unwrap_or(""),
                        a["duration_seconds"].as_f64().unwrap_or(0.0),
                        a["detail"].as_str().unwrap_or("")
                    );
                    if a["action"] == "heal" && a["result"] == "ok" {
                        healed = true;
                    }
                }
            }
        }
        if healed {
            break;
        }
    }
    stop.store(true, Ordering::SeqCst);
    writer.join().unwrap();

    let writable = runtime().block_on(async {
        let mut c = cluster.client(&cluster.endpoints()).await;
        let ok = c
            .put("/registry/configmaps/default/after-heal", "ok", None)
            .await
            .is_ok();
        let kept = c
            .get(
                "/registry/configmaps/default/app-config-",
                Some(
                    etcd_client::GetOptions::new()
                        .with_prefix()
                        .with_count_only(),
                ),
            )
            .await
            .map(|r| r.count())
            .unwrap_or(0);
        let alarms = c
            .alarm(
                etcd_client::AlarmAction::Get,
                etcd_client::AlarmType::None,
                None,
            )
            .await
            .map(|r| r.alarms().len())
            .unwrap_or(99);
        ok && kept == 20 && alarms == 0
    });
    if healed && writable {
        say(
            "Healed: alarm disarmed after space was verified free; writes succeed again; all 20 configmaps intact",
        );
    }
    status_table(&cluster);
    say("Key metrics (from the sidecar that finished the heal)");
    std::thread::sleep(Duration::from_millis(1500)); // one poll: the gauges show the healed cluster
    let finisher = daemons
        .iter()
        .position(|d| d.status_json()["maintenance"]["actor"] == true)
        .unwrap_or(leader_side);
    let metrics = daemons[finisher].get("/metrics").1;
    let hot_churn =
        |l: &str| !l.starts_with("etcd_upkeep_churn_writes_per_minute") || l.contains(LOOP_KEY);
    for line in metrics.lines().filter(|l| hot_churn(l)).filter(|l| {
        !l.starts_with('#')
            && [
                "etcd_upkeep_alarm_active",
                "etcd_upkeep_alarm_disarm_total",
                "etcd_upkeep_defrag_total",
                "etcd_upkeep_heal_duration_seconds_sum",
                "etcd_upkeep_compaction_total{result=\"ok\"}",
                "etcd_upkeep_churn_writes_per_minute",
                "etcd_upkeep_member_db_size_bytes",
            ]
            .iter()
            .any(|m| l.starts_with(m))
    }) {
        println!("    {line}");
    }
    println!("\ndemo finished in {:.0}s", started.elapsed().as_secs_f64());
    drop(daemons);
    drop(cluster);
    if !(healed && writable && named) {
        eprintln!("demo FAILED: healed={healed} writable={writable} loop named={named}");
        std::process::exit(1);
    }
}

fn strip_ansi(text: &str) -> String {
    let mut out = String::new();
    let mut chars = text.chars();
    while let Some(c) = chars.next() {
        if c == '\x1b' {
            for c in chars.by_ref() {
                if c == 'm' {
                    break;
                }
            }
        } else {
            out.push(c);
        }
    }
    out
}
