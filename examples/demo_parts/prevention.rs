//! Part 1 of the demo: the sync loop with prevention on (the default flags). The sidecars name
//! the loop and keep less history, so the loop cannot fill the quota.
//!
//! Held means: no write refused for space, the file below the quota, no NOSPACE, and no more
//! other failed writes than the leadership moves the sidecars made before defragmenting the
//! leader (raft drops the one proposal in flight on the old leader, at most).

use std::collections::HashSet;
use std::time::{Duration, Instant};

use crate::sidecars::{self, QUOTA};
use crate::support::{Cluster, Daemon};
use crate::sync_loop::{Counts, LOOP_KEY, SyncLoop, Tell};
use crate::{MIB, say};

/// What part 1 saw while the loop ran.
#[derive(Default)]
struct Watch {
    named: bool,
    explained: bool,
    /// The largest member's file at the last look, and the largest seen.
    db: u64,
    peak: u64,
    moves: u64,
    shown: HashSet<String>,
}

/// Runs the loop for `seconds`; true when etcd was held below the quota and the loop named.
pub fn run(cluster: &Cluster, seconds: u64) -> bool {
    say(
        "Starting one etcd-upkeep per member, as the sidecars of an HA vCluster (default flags: prevention on)",
    );
    let daemons = sidecars::start(cluster, &[]);
    introduce(cluster, &daemons);
    say(&format!(
        "Simulating a CRD sync loop for {seconds} s: {LOOP_KEY} rewritten 25×/s (100 KB each, ≈ 2.5 MB/s — {} MB through a 48 MiB quota)",
        seconds * 25 / 10
    ));
    let sync = SyncLoop::start(cluster, Tell::EveryFailure);
    let start = Instant::now();
    let mut watch = Watch::default();
    while start.elapsed() < Duration::from_secs(seconds) {
        std::thread::sleep(Duration::from_secs(1));
        watch.look(cluster, &daemons, start);
        if start.elapsed().as_secs().is_multiple_of(5) {
            progress(&daemons, &watch, &sync.counts, start);
        }
    }
    let counts = sync.stop();
    let held = verdict(&daemons, &watch, &counts);
    held && watch.named
}

/// Where to look, and which sidecar acts.
fn introduce(cluster: &Cluster, daemons: &[Daemon]) {
    let leader_side = sidecars::acting(daemons).unwrap();
    println!(
        "metrics on http://{}/metrics (and /status, /healthz, /readyz) — one per sidecar",
        daemons[0].address
    );
    println!(
        "the sidecar beside the raft leader ({}) is the one that acts; the others stand by",
        cluster.members[leader_side].name
    );
    sidecars::status_table(cluster);
}

impl Watch {
    /// One look: the sidecars' diagnosis and explanation (once each), what they did besides
    /// the routine compactions, and the largest file.
    fn look(&mut self, cluster: &Cluster, daemons: &[Daemon], start: Instant) {
        if !self.named
            && let Some(line) = sidecars::log_line(daemons, "changing: ")
        {
            say("etcd-upkeep names the looping object, the field that flips and the two writers");
            let found = line.split("sync loop suspected: ").nth(1).unwrap_or(&line);
            println!("    {found}");
            self.named = true;
        }
        if !self.explained
            && let Some(line) = sidecars::log_line(daemons, "space controller: keeping")
        {
            say("and keeps less history, compacting every poll, so the loop cannot fill the quota");
            let text = line.split("space controller: ").nth(1).unwrap_or(&line);
            let text = text.split("; the history comes").next().unwrap_or(text);
            println!("    {text}");
            self.explained = true;
        }
        // Compactions come every poll under the loop; anything else the sidecars do is shown.
        let done = sidecars::print_actions(daemons, &mut self.shown, start, |a| a != "compact");
        self.moves += done.iter().filter(|(a, _)| a == "move-leader").count() as u64;
        self.db = sidecars::largest_db(cluster);
        self.peak = self.peak.max(self.db);
    }
}

/// Every 5 s: the file against the quota, the history kept, the writes.
fn progress(daemons: &[Daemon], watch: &Watch, counts: &Counts, start: Instant) {
    let db = watch.db as f64;
    let kept = sidecars::acting(daemons)
        .and_then(|i| daemons[i].metric("etcd_upkeep_history_retention_seconds"))
        .map(|k| format!("{k:.0}s"))
        .unwrap_or_else(|| "?".into());
    println!(
        "    t={:>2}s  db {:>4.1} MiB of 48 MiB ({:>2.0} %)  history kept {kept}  writes accepted {}  refused for space {}",
        start.elapsed().as_secs(),
        db / MIB as f64,
        db * 100.0 / QUOTA as f64,
        Counts::get(&counts.accepted),
        Counts::get(&counts.refused)
    );
}

/// Whether the loop was held, said either way.
fn verdict(daemons: &[Daemon], watch: &Watch, counts: &Counts) -> bool {
    let (refused, failed) = (Counts::get(&counts.refused), Counts::get(&counts.failed));
    let moves = watch.moves;
    let held = refused == 0
        && failed <= moves
        && watch.peak < QUOTA
        && sidecars::log_line(daemons, "NOSPACE alarm raised").is_none();
    let peak = watch.peak as f64 * 100.0 / QUOTA as f64;
    if held {
        let others = match failed {
            0 => "none failed".to_string(),
            n => format!(
                "{n} failed while leadership moved ({moves} moves before defragmenting the leader) and the next write went through"
            ),
        };
        say(&format!(
            "Held: {} writes of the loop accepted, none refused for space ({others}), no NOSPACE; the db peaked at {peak:.0} % of the quota",
            Counts::get(&counts.accepted),
        ));
    } else {
        println!(
            "    not held: {refused} writes refused for space, {failed} failed otherwise against {moves} leadership moves, the db peaked at {peak:.0} % of the quota"
        );
    }
    held
}
