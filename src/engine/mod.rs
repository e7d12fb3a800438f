//! The maintenance engine: each observation goes observe → decide → act → report.
//!
//! Why it is shaped like this: the decisions live in `decide` (pure), the mutations in `act`;
//! this module only sequences them. What must survive between observations is owned by the
//! engine's components, each in its own module with private state and its own unit tests:
//!
//! - [`actorship`]: whether this instance acts, and since when;
//! - [`guard`]: the checks before any step, and why maintenance is refused;
//! - [`episode`]: the NOSPACE episode — emergency compaction, defrag, verified disarm;
//! - [`space`]: the space controller — compaction that keeps the db under its space target, and
//!   a defragmentation when the file itself must shrink;
//! - [`rolling`]: one member at a time, gate before each, leader last, integrity proof after
//!   each, and the cool-down;
//! - [`forecast`]: the growth forecast; the periodic compactor is
//!   `decide::compaction::CompactionState`.
//!
//! Everything they remember can be lost without harm: after a restart the next observation
//! shows the cluster as it is, and the same decisions resume the work (a heal half done is
//! finished).

mod actorship;
mod compact;
mod config;
mod episode;
mod forecast;
mod guard;
mod rolling;
mod space;

pub use config::Config;

use std::sync::Arc;
use std::time::Duration;

use tokio::sync::watch;

use crate::act::Act;
use crate::clock::Clock;
use crate::decide::compaction::CompactionState;
use crate::decide::heal::files_left_behind;
use crate::diagnose::churn::ChurnEntry;
use crate::diagnose::history_rate::WriteTotals;
use crate::etcd::{AlarmKind, Etcd};
use crate::observe::Snapshot;
use crate::observe::{self, Observation, ObserveSettings};
use crate::report::state::Shared;
use crate::shutdown::Shutdown;

pub use episode::HealOutcome;
pub use guard::Hold;

/// What one tick needs besides the engine's own memory.
pub struct Ctx<'a> {
    pub etcd: &'a Arc<Etcd>,
    pub settings: &'a ObserveSettings,
    pub shared: &'a Arc<Shared>,
    pub shutdown: Shutdown,
}

impl Ctx<'_> {
    /// A fresh observation (between steps, the published one may be stale).
    pub async fn observe(&self) -> Result<Observation, observe::ObserveError> {
        observe::observe(self.etcd, self.settings, None).await
    }

    /// The engine is alive (liveness): called between steps of long passes too.
    pub fn beat(&self) {
        self.shared.write().engine_beat = std::time::Instant::now();
    }

    fn act(&self, dry_run: bool) -> Act<'_> {
        Act {
            etcd: self.etcd,
            shared: self.shared,
            dry_run,
        }
    }
}

/// The engine: its context (settings and clock) and its components, each owning its state.
/// The tick hands each component the observation and runs them in runbook order.
pub struct Engine {
    pub cfg: Config,
    /// Where every duration is read (monotonic; a test drives its own).
    clock: Clock,
    /// Whether this instance acts, and since when.
    actorship: actorship::Actorship,
    /// The checks before any step and why maintenance is refused.
    guard: guard::Guard,
    /// The NOSPACE episode: from the first sight of the alarm to the verified disarm.
    episode: episode::NospaceEpisode,
    /// The space controller: everything prevention measures, decides and says.
    space: space::SpaceController,
    /// The periodic compactor (`--auto-compaction-*`-style retention).
    compaction: CompactionState,
    /// The rolling pass's memory: cool-downs, the schedule's window, what the log said.
    rolling: rolling::Rolling,
    /// The growth forecast.
    growth: forecast::GrowthWatch,
}

impl Engine {
    pub fn new(cfg: Config) -> Engine {
        Engine {
            clock: Clock::system(),
            actorship: actorship::Actorship::default(),
            guard: guard::Guard::default(),
            episode: episode::NospaceEpisode::default(),
            space: space::SpaceController::new(cfg.space),
            compaction: CompactionState::default(),
            rolling: rolling::Rolling::new(cfg.schedule.is_some()),
            growth: forecast::GrowthWatch::default(),
            cfg,
        }
    }

    /// Reads time from `clock` instead of the system's monotonic clock (tests).
    pub fn with_clock(mut self, clock: Clock) -> Engine {
        self.clock = clock;
        self
    }

    /// Where the candidacy task publishes this instance's lease.
    pub fn with_identity(mut self, me: watch::Receiver<Option<i64>>) -> Engine {
        self.actorship = self.actorship.with_identity(me);
        self
    }

    /// What the churn watch publishes: the bytes it counted (the history rate) and its top list.
    pub fn with_churn_watch(
        mut self,
        totals: Arc<WriteTotals>,
        top: watch::Receiver<Arc<Vec<ChurnEntry>>>,
    ) -> Engine {
        self.space.with_churn_watch(totals, top);
        self
    }

    /// Where the members' progress-notify interval is published (measured or given): the
    /// history the controller keeps stays above it while it fits, and /status compares.
    pub fn with_progress_notify(
        mut self,
        interval: watch::Receiver<crate::decide::watch_history::ProgressInterval>,
    ) -> Engine {
        self.space.with_progress_notify(interval);
        self
    }

    /// The daemon's engine loop: one tick per new observation until shutdown.
    pub async fn run(
        mut self,
        settings: ObserveSettings,
        mut latest: watch::Receiver<Option<Snapshot>>,
        shared: Arc<Shared>,
        mut shutdown: Shutdown,
    ) {
        let _scheduler = match self.start_schedule().await {
            Ok(s) => s,
            Err(e) => {
                tracing::error!(
                    "cannot start the defrag schedule: {e}; rule-driven defragmentation is off"
                );
                None
            }
        };
        shared.write().maintenance.dry_run = self.cfg.dry_run;
        tracing::info!(
            rule = self.cfg.rule.source(),
            compaction = ?self.cfg.compaction,
            schedule = self.cfg.schedule.as_deref().unwrap_or("any time"),
            auto_heal = self.cfg.auto_heal,
            dry_run = self.cfg.dry_run,
            "maintenance engine ready"
        );
        // A tick may ask to look again sooner than the next observation (`Again`).
        let mut again: Option<Duration> = None;
        loop {
            shared.write().engine_beat = std::time::Instant::now();
            let fresh = tokio::select! {
                changed = latest.changed() => if changed.is_err() { return } else { false },
                _ = shutdown.requested() => return,
                // Idle while etcd is unreachable (no new observation): still alive.
                _ = tokio::time::sleep(again.unwrap_or(self.cfg.poll)) => {
                    if again.take().is_none() { continue }
                    true
                }
            };
            let Some(snapshot) = latest.borrow_and_update().clone() else {
                continue;
            };
            let ctx = Ctx {
                etcd: &snapshot.etcd,
                settings: &settings,
                shared: &shared,
                shutdown: shutdown.clone(),
            };
            // Asked for: a look of its own, the published one is up to a poll old.
            let looked;
            let observation: &Observation = if fresh {
                match ctx.observe().await {
                    Ok(obs) => looked = obs,
                    Err(_) => continue, // the observation loop reports it
                }
                &looked
            } else {
                &snapshot.observation
            };
            again = self.tick(&ctx, observation).await.map(|Again(after)| after);
            if shutdown.is_requested() {
                return;
            }
        }
    }

    /// One round: decide from `obs` and act if this instance is the actor. Reads like the
    /// runbook: who acts, may anything be touched, NOSPACE first, then prevention (compaction
    /// keeps the space target; no settling needed), then what stops a member (a file that must
    /// shrink, the rule's defragmentation).
    pub async fn tick(&mut self, ctx: &Ctx<'_>, obs: &Observation) -> Option<Again> {
        let now = self.clock.now();
        if self.episode.is_stale(obs) {
            return None; // Taken before our own disarm: it still shows the alarm we just cleared.
        }
        // Every instance samples and decides, so a newly elected actor already knows the
        // history window, the rate and the verdict.
        let periodic_target = self
            .compaction
            .observe(self.cfg.compaction, now, obs.revision);
        self.forecast(ctx, obs, now);
        let space = self
            .space
            .verdict(ctx.shared, obs, now, self.compaction.last_compacted());
        // Every instance notes when it first saw NOSPACE, so whichever one heals reports the
        // full outage in etcd_upkeep_heal_duration_seconds, not just its own part.
        let stall = self.episode.observe(obs, now);
        let settle = self.cfg.settle.as_secs_f64();
        let role = self.actorship.step(obs, self.cfg.act_when, now, settle);
        publish_role(ctx, obs, &role);
        let Some(actor) = role.actor else {
            self.take_over_if_stalled(ctx, obs, stall, now).await;
            return None;
        };
        let fence = actor.fence;
        if let Some(space) = &space {
            self.space.say(ctx, obs, space, now);
        }
        // A new grant compares the members before its first step.
        if role.new_grant {
            self.guard.forget_agreement();
        }
        if obs.has_alarm(AlarmKind::NoSpace) {
            return self.nospace_step(ctx, obs, &actor).await;
        }
        if self.hold(ctx, obs).await.is_some() {
            return None;
        }
        self.end_nospace_episode(ctx);
        self.recheck_unverified(ctx, obs);

        // Prevention: compaction stops no member, so it runs at once, even while settling.
        self.compact_for_space(ctx, fence, space.as_ref(), periodic_target, now)
            .await;
        if actor.settling.is_some() {
            return None;
        }
        let left_behind = files_left_behind(obs, self.cfg.disarm_threshold);
        if !left_behind.is_empty() {
            self.defragment_left_behind(ctx, obs, fence, &left_behind)
                .await;
            return None;
        }
        if let Some(space) = &space
            && self.shrink_pass(ctx, obs, fence, space).await
        {
            return None;
        }
        if self.rolling.window_open() {
            self.rule_pass(ctx, obs, fence).await;
        }
        None
    }

    /// NOSPACE is raised and this instance acts: heal, unless it still settles (then look
    /// again the moment it has settled, not a poll later) or healing is left to a person
    /// (`--auto-heal=false`).
    async fn nospace_step(
        &mut self,
        ctx: &Ctx<'_>,
        obs: &Observation,
        actor: &crate::decide::actor::Actor,
    ) -> Option<Again> {
        match (&actor.settling, self.cfg.auto_heal) {
            (Some(settling), auto_heal) => {
                tracing::info!("NOSPACE: {}", settling.why);
                // The settle ends between two observations (NOSPACE is noticed mid-poll by the
                // quick alarm check): waiting for the next one cost up to a poll (5.3–5.6 s
                // instead of 0.4 s in `scripts/bench.sh heal`).
                let after = Duration::from_secs_f64(settling.left) + Duration::from_millis(10);
                auto_heal.then_some(Again(after))
            }
            (None, true) => {
                let outcome = self.heal_step(ctx, obs, actor.fence).await;
                tracing::debug!(?outcome, "heal tick");
                None
            }
            (None, false) => {
                ctx.shared.write().maintenance.heal_blocked =
                    Some("NOSPACE is active and --auto-heal=false: run `etcd-upkeep heal`".into());
                None
            }
        }
    }
}

/// A tick's request to run again after this long on a fresh observation, instead of waiting
/// for the next one (e.g. NOSPACE while the actor settles: heal the moment it has settled).
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Again(pub Duration);

/// The role, where people and Prometheus see it: the metric, `/status`, and a log line when it
/// is worth one (`Role::changed`).
fn publish_role(ctx: &Ctx<'_>, obs: &Observation, role: &actorship::Role) {
    let acts = role.actor.is_some();
    ctx.shared.metrics.is_actor.set(i64::from(acts));
    if role.changed {
        if acts {
            tracing::info!(
                term = obs.raft_term,
                "this instance is the actor ({})",
                role.reason
            );
        } else {
            tracing::info!("{}", role.reason);
        }
    }
    let mut state = ctx.shared.write();
    state.maintenance.actor = acts;
    state.maintenance.actor_reason = role.reason.clone();
}
