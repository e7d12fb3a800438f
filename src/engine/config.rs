//! What the engine may do: the complete, validated settings `config` builds from the flags.

use std::path::PathBuf;
use std::time::Duration;

use crate::decide::actor::ActWhen;
use crate::decide::compaction::CompactionPolicy;
use crate::decide::defrag_rule::DefragRule;
use crate::decide::space::SpacePolicy;

/// What the engine may do, validated from the flags by `config`.
#[derive(Debug)]
pub struct Config {
    pub compaction: CompactionPolicy,
    pub rule: DefragRule,
    /// Six-field cron (seconds first) derived from the 5-field `--defrag-schedule`.
    pub schedule: Option<String>,
    pub min_defrag_interval: Duration,
    pub move_leader: bool,
    pub data_dir: Option<PathBuf>,
    pub auto_heal: bool,
    pub disarm_threshold: f64,
    pub dry_run: bool,
    pub act_when: ActWhen,
    /// Timeout of the health gate's linearizable reads.
    pub health_timeout: Duration,
    /// How long a new leader's instance waits before acting.
    pub settle: Duration,
    pub poll: Duration,
    /// Warn when the growth forecast reaches the quota within this (run only).
    pub forecast_horizon: Option<Duration>,
    /// The space controller (run only; None: off).
    pub space: Option<SpacePolicy>,
}

impl Config {
    /// How long NOSPACE must last without progress before the first-ranked standby takes over
    /// (`decide::takeover`): an actor beside the leader settles for `settle`, then compacts and
    /// defragments within a few polls, each of which shows as progress.
    pub fn takeover_wait(&self) -> Duration {
        self.settle + self.poll * 4
    }

    /// Turns the space controller on: keep `in_use` under `target` × quota, with at least
    /// `floor` of history while it fits and never less than a few polls.
    pub fn with_space_target(mut self, target: f64, floor: Duration) -> Config {
        let retention = match self.compaction {
            CompactionPolicy::Periodic { retention } => retention,
            // A count of revisions has no duration: the controller's ceiling is etcd's usual 30m.
            CompactionPolicy::Revision { .. } | CompactionPolicy::Off => {
                Duration::from_secs(30 * 60)
            }
        };
        let floor = floor.min(retention);
        let minimum = (self.poll * 2).max(Duration::from_secs(10)).min(floor);
        self.space = (target > 0.0).then_some(SpacePolicy {
            target,
            retention: retention.as_secs_f64(),
            floor: floor.as_secs_f64(),
            minimum: minimum.as_secs_f64(),
        });
        self
    }
}
