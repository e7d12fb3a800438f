//! Part 2 of the demo: the same loop with prevention off (`--space-target 0`), so it fills etcd
//! until NOSPACE, and the sidecars heal it by themselves: compact, defragment every member,
//! disarm only once space is really free.
//!
//! Healed means: a sidecar reported the heal, then a write was accepted, the alarm list is
//! empty, and every object written before the alarm is still there.

use std::collections::HashSet;
use std::time::{Duration, Instant};

use crate::sidecars;
use crate::support::{Cluster, Daemon};
use crate::sync_loop::{Counts, LOOP_KEY, SyncLoop, Tell};
use crate::{runtime, say};

/// Objects written before the loop: all of them must survive the heal.
const CONFIGMAPS: usize = 20;

/// What part 2 showed: (loop named, healed, writable afterwards).
pub struct Cured {
    pub named: bool,
    pub healed: bool,
    pub writable: bool,
}

pub fn run(cluster: &Cluster) -> Cured {
    say("Now the same loop with prevention turned off (--space-target 0): the cure instead");
    let daemons = sidecars::start(cluster, &["--space-target", "0"]);
    let leader_side = sidecars::acting(&daemons).unwrap();
    say(&format!(
        "The sync loop again: {LOOP_KEY} rewritten 25×/s (100 KB each)"
    ));
    write_configmaps(cluster);
    let (named, healed) = watch_the_heal(cluster, &daemons);
    let writable = writable_and_intact(cluster);
    if healed && writable {
        say(
            "Healed: alarm disarmed after space was verified free; writes succeed again; all 20 configmaps intact",
        );
    }
    sidecars::status_table(cluster);
    key_metrics(&daemons, leader_side);
    Cured {
        named,
        healed,
        writable,
    }
}

fn write_configmaps(cluster: &Cluster) {
    runtime().block_on(async {
        let mut c = cluster.client(&cluster.endpoints()).await;
        for i in 0..CONFIGMAPS {
            let key = format!("/registry/configmaps/default/app-config-{i}");
            c.put(key, vec![b'c'; 2000], None).await.unwrap();
        }
    });
}

/// Runs the loop until NOSPACE (a person would now fix the sync setting; the loop stops) and
/// follows the sidecars until one reports the heal, 90 s at most. Returns (named, healed).
fn watch_the_heal(cluster: &Cluster, daemons: &[Daemon]) -> (bool, bool) {
    let mut sync = Some(SyncLoop::start(cluster, Tell::FirstRefusal));
    let mut shown: HashSet<String> = HashSet::new();
    let start = Instant::now();
    let (mut named, mut healed) = (false, false);
    while !healed && start.elapsed() < Duration::from_secs(90) {
        std::thread::sleep(Duration::from_millis(250));
        if !named && let Some(line) = sidecars::log_line(daemons, "sync loop suspected") {
            say("etcd-upkeep names the looping object");
            let found = line.split("sync loop suspected: ").nth(1).unwrap_or(&line);
            println!("    {found}");
            named = true;
        }
        if sync
            .as_ref()
            .is_some_and(|s| Counts::get(&s.counts.refused) > 0)
        {
            say("NOSPACE: etcd raised the alarm — every write in the virtual cluster now fails");
            if let Some(sync) = sync.take() {
                sync.stop();
            }
        }
        let done = sidecars::print_actions(daemons, &mut shown, start, |_| true);
        healed |= done.iter().any(|(action, ok)| action == "heal" && *ok);
    }
    if let Some(sync) = sync {
        sync.stop();
    }
    (named, healed)
}

/// A write is accepted, no alarm is left, and every configmap written before is there.
fn writable_and_intact(cluster: &Cluster) -> bool {
    runtime().block_on(async {
        let mut c = cluster.client(&cluster.endpoints()).await;
        let ok = c
            .put("/registry/configmaps/default/after-heal", "ok", None)
            .await
            .is_ok();
        let prefix = etcd_client::GetOptions::new()
            .with_prefix()
            .with_count_only();
        let kept = c
            .get("/registry/configmaps/default/app-config-", Some(prefix))
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
        ok && kept == CONFIGMAPS as i64 && alarms == 0
    })
}

/// The metrics a platform engineer would look at, from the sidecar that disarmed (leadership,
/// and so the acting role, may have moved since the start).
fn key_metrics(daemons: &[Daemon], leader_side: usize) {
    say("Key metrics (from the sidecar that finished the heal)");
    std::thread::sleep(Duration::from_millis(1500)); // one poll: the gauges show the healed cluster
    let finisher = daemons
        .iter()
        .position(|d| d.metric("etcd_upkeep_alarm_disarm_total").unwrap_or(0.0) > 0.0)
        .unwrap_or(leader_side);
    let metrics = daemons[finisher].get("/metrics").1;
    let wanted = [
        "etcd_upkeep_alarm_active",
        "etcd_upkeep_alarm_disarm_total",
        "etcd_upkeep_defrag_total",
        "etcd_upkeep_heal_duration_seconds_sum",
        "etcd_upkeep_compaction_total{result=\"ok\"}",
        "etcd_upkeep_churn_writes_per_minute",
        "etcd_upkeep_member_db_size_bytes",
    ];
    let hot_churn =
        |l: &str| !l.starts_with("etcd_upkeep_churn_writes_per_minute") || l.contains(LOOP_KEY);
    for line in metrics
        .lines()
        .filter(|l| !l.starts_with('#') && hot_churn(l) && wanted.iter().any(|m| l.starts_with(m)))
    {
        println!("    {line}");
    }
}
