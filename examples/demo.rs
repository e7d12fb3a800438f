//! The demo behind the README's first command: a 3-member TLS etcd with a small quota and one
//! etcd-upkeep per member (as the sidecars of an HA vCluster), then a simulated CRD sync loop:
//!
//! 1. with prevention on (the default): the loop is named and etcd is held below its quota —
//!    no NOSPACE, no write refused for space (a write in flight while the sidecars move
//!    leadership before defragmenting the leader may be dropped by raft: it is printed, with
//!    etcd's words, and counted against those moves);
//! 2. with prevention off (`--space-target 0`): the loop fills etcd until NOSPACE, and
//!    etcd-upkeep heals the cluster by itself.
//!
//! Exits 0 only if both really happened (held below the quota; then alarm gone, writes accepted,
//! every key intact).

#[path = "../tests/integration/support/mod.rs"]
mod support;

use std::collections::HashSet;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
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

/// Revision `i` of the looping custom resource, as the apiserver stores it: `spec.size` set by
/// `vcluster` on even revisions and reset by `widget-operator` on odd ones (each manager's
/// managedFields time moves when it writes), and a 100 KB `spec.template` that never changes.
fn widget(i: u64) -> Vec<u8> {
    let time = |writer: u64| {
        let last = if i % 2 == writer {
            i
        } else {
            i.saturating_sub(1)
        };
        format!("2026-12-01T10:{:02}:{:02}Z", (last / 60) % 60, last % 60)
    };
    let entry = |manager: &str, writer: u64| {
        serde_json::json!({"manager": manager, "operation": "Update", "apiVersion": "example.com/v1",
            "time": time(writer), "fieldsType": "FieldsV1", "fieldsV1": {"f:spec": {"f:size": {}}}})
    };
    serde_json::json!({
        "apiVersion": "example.com/v1", "kind": "Widget",
        "metadata": {"name": "looping-widget", "namespace": "default", "resourceVersion": i.to_string(),
            "managedFields": [entry("vcluster", 0), entry("widget-operator", 1)]},
        "spec": {"size": if i.is_multiple_of(2) { 3 } else { 5 }, "template": "t".repeat(100_000)},
    })
    .to_string()
    .into_bytes()
}

/// One etcd-upkeep per member, the local member first; `extra` flags on each.
fn sidecars(cluster: &Cluster, extra: &[&str]) -> Vec<Daemon> {
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
            ]);
            args.extend(s(extra));
            args.extend(cluster.pki.flags());
            Daemon::start(&args, cluster.dir.path())
        })
        .collect();
    daemons[0].wait_for(Duration::from_secs(20), "an actor", |_| {
        acting(&daemons).is_some()
    });
    daemons
}

/// The sidecar that acts now.
fn acting(daemons: &[Daemon]) -> Option<usize> {
    daemons
        .iter()
        .position(|d| d.status_json()["maintenance"]["actor"] == true)
}

/// The first line of any sidecar's log containing `needle`, without colours.
fn log_line(daemons: &[Daemon], needle: &str) -> Option<String> {
    daemons
        .iter()
        .flat_map(|d| d.log().lines().map(strip_ansi).collect::<Vec<_>>())
        .find(|l| l.contains(needle))
}

/// Largest member db size (bytes).
fn largest_db(cluster: &Cluster) -> u64 {
    runtime().block_on(async {
        let mut largest = 0;
        for endpoint in cluster.endpoints() {
            let mut c = cluster.client(std::slice::from_ref(&endpoint)).await;
            if let Ok(st) = c.status().await {
                largest = largest.max(st.db_size().max(0) as u64);
            }
        }
        largest
    })
}

/// Part 1: the loop runs for `seconds` with prevention on; returns whether etcd was held below
/// the quota with every write accepted, and the loop named.
fn prevention(cluster: &Cluster, seconds: u64) -> bool {
    say(
        "Starting one etcd-upkeep per member, as the sidecars of an HA vCluster (default flags: prevention on)",
    );
    let daemons = sidecars(cluster, &[]);
    let leader_side = acting(&daemons).unwrap();
    println!(
        "metrics on http://{}/metrics (and /status, /healthz, /readyz) — one per sidecar",
        daemons[0].address
    );
    println!(
        "the sidecar beside the raft leader ({}) is the one that acts; the others stand by",
        cluster.members[leader_side].name
    );
    status_table(cluster);
    say(&format!(
        "Simulating a CRD sync loop for {seconds} s: {LOOP_KEY} rewritten 25×/s (100 KB each, ≈ 2.5 MB/s — {} MB through a 48 MiB quota)",
        seconds * 25 / 10
    ));
    let stop = Arc::new(AtomicBool::new(false));
    let (ok, refused, dropped) = (
        Arc::new(AtomicU64::new(0)),
        Arc::new(AtomicU64::new(0)),
        Arc::new(AtomicU64::new(0)),
    );
    // Each failed write is told the moment it happens, with etcd's words. A refusal for space is
    // what prevention exists to stop; any other failure is transient (a proposal in flight on the
    // old leader while leadership moves is dropped by raft) and the loop's next write retries it,
    // as the apiserver's callers do.
    let writer = {
        let (stop, ok, refused, dropped) =
            (stop.clone(), ok.clone(), refused.clone(), dropped.clone());
        let config = cluster.client_config();
        let start = Instant::now();
        std::thread::spawn(move || {
            runtime().block_on(async move {
                let mut c = config.connect().await;
                let mut tick = tokio::time::interval(Duration::from_millis(40));
                let mut i = 0;
                while !stop.load(Ordering::SeqCst) {
                    tick.tick().await;
                    i += 1;
                    let Err(e) = c.put(LOOP_KEY, widget(i), None).await else {
                        ok.fetch_add(1, Ordering::SeqCst);
                        continue;
                    };
                    let for_space = e.to_string().contains("database space exceeded");
                    println!(
                        "    t={:.1}s  write {}: {e}",
                        start.elapsed().as_secs_f64(),
                        if for_space { "refused" } else { "failed" }
                    );
                    let count = if for_space { &refused } else { &dropped };
                    count.fetch_add(1, Ordering::SeqCst);
                }
            })
        })
    };
    let mut shown = HashSet::new();
    let start = Instant::now();
    let (mut named, mut explained, mut peak, mut moves) = (false, false, 0u64, 0u64);
    while start.elapsed() < Duration::from_secs(seconds) {
        std::thread::sleep(Duration::from_secs(1));
        if !named && let Some(line) = log_line(&daemons, "changing: ") {
            say("etcd-upkeep names the looping object, the field that flips and the two writers");
            println!(
                "    {}",
                line.split("sync loop suspected: ").nth(1).unwrap_or(&line)
            );
            named = true;
        }
        if !explained && let Some(line) = log_line(&daemons, "space controller: keeping") {
            say("and keeps less history, compacting every poll, so the loop cannot fill the quota");
            let text = line.split("space controller: ").nth(1).unwrap_or(&line);
            println!(
                "    {}",
                text.split("; the history comes").next().unwrap_or(text)
            );
            explained = true;
        }
        // Compactions come every poll under the loop; anything else the sidecars do is shown.
        let done = print_actions(&daemons, &mut shown, start, |action| action != "compact");
        moves += done
            .iter()
            .filter(|(action, _)| action == "move-leader")
            .count() as u64;
        let db = largest_db(cluster);
        peak = peak.max(db);
        if start.elapsed().as_secs().is_multiple_of(5) {
            let kept = acting(&daemons)
                .and_then(|i| daemons[i].metric("etcd_upkeep_history_retention_seconds"));
            println!(
                "    t={:>2}s  db {:>4.1} MiB of 48 MiB ({:>2.0} %)  history kept {}  writes accepted {}  refused for space {}",
                start.elapsed().as_secs(),
                db as f64 / MIB as f64,
                db as f64 * 100.0 / (48 * MIB) as f64,
                kept.map(|k| format!("{k:.0}s"))
                    .unwrap_or_else(|| "?".into()),
                ok.load(Ordering::SeqCst),
                refused.load(Ordering::SeqCst)
            );
        }
    }
    stop.store(true, Ordering::SeqCst);
    writer.join().unwrap();
    let (refused, dropped) = (
        refused.load(Ordering::SeqCst),
        dropped.load(Ordering::SeqCst),
    );
    // Held: nothing refused for space, the file below the quota, no alarm, and no failed write
    // beyond what the sidecars' own leadership moves can drop (one in flight each at most).
    let held = refused == 0
        && dropped <= moves
        && peak < 48 * MIB
        && log_line(&daemons, "NOSPACE alarm raised").is_none();
    let transient = match dropped {
        0 => "none failed".to_string(),
        n => format!(
            "{n} failed while leadership moved ({moves} moves before defragmenting the leader) and the next write went through"
        ),
    };
    if held {
        say(&format!(
            "Held: {} writes of the loop accepted, none refused for space ({transient}), no NOSPACE; the db peaked at {:.0} % of the quota",
            ok.load(Ordering::SeqCst),
            peak as f64 * 100.0 / (48 * MIB) as f64
        ));
    } else {
        println!(
            "    not held: {refused} writes refused for space, {dropped} failed otherwise against {moves} leadership moves, peak {:.1} MiB of 48 MiB",
            peak as f64 / MIB as f64
        );
    }
    held && named
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
    let prevented = prevention(&cluster, 25);

    say("Now the same loop with prevention turned off (--space-target 0): the cure instead");
    let daemons = sidecars(&cluster, &["--space-target", "0"]);
    let leader_side = acting(&daemons).unwrap();
    say(&format!(
        "The sync loop again: {LOOP_KEY} rewritten 25×/s (100 KB each)"
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
                let mut i = 0;
                while !stop.load(Ordering::SeqCst) {
                    tick.tick().await;
                    i += 1;
                    if let Err(e) = c.put(LOOP_KEY, widget(i), None).await
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
    let part_two = Instant::now();
    let deadline = part_two + Duration::from_secs(90);
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
        let done = print_actions(&daemons, &mut shown, part_two, |_| true);
        healed |= done.iter().any(|(action, ok)| action == "heal" && *ok);
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
    // The sidecar that disarmed (leadership, and so the acting role, may have moved since).
    let finisher = daemons
        .iter()
        .position(|d| d.metric("etcd_upkeep_alarm_disarm_total").unwrap_or(0.0) > 0.0)
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
    if !(prevented && healed && writable && named) {
        eprintln!(
            "demo FAILED: held below the quota={prevented} healed={healed} writable={writable} loop named={named}"
        );
        std::process::exit(1);
    }
}

/// Prints the actions of every sidecar's `/status` not shown yet that `wanted` keeps, with the
/// time since `since`; returns each one printed and whether it succeeded.
fn print_actions(
    daemons: &[Daemon],
    shown: &mut HashSet<String>,
    since: Instant,
    wanted: impl Fn(&str) -> bool,
) -> Vec<(String, bool)> {
    let mut printed = Vec::new();
    for d in daemons {
        let status = d.status_json();
        let Some(actions) = status["actions"].as_array() else {
            continue;
        };
        for a in actions.iter().rev() {
            let action = a["action"].as_str().unwrap_or("");
            let id = format!("{}{}{}", a["at"], action, a["member"]);
            if !wanted(action) || !shown.insert(id) {
                continue;
            }
            let member = a["member"]
                .as_str()
                .map(|m| format!(" {m}"))
                .unwrap_or_default();
            println!(
                "    t={:.1}s [{}] {action}{member}: {} ({:.2}s) — {}",
                since.elapsed().as_secs_f64(),
                d.address,
                a["result"].as_str().unwrap_or(""),
                a["duration_seconds"].as_f64().unwrap_or(0.0),
                a["detail"].as_str().unwrap_or("")
            );
            printed.push((action.to_string(), a["result"] == "ok"));
        }
    }
    printed
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
