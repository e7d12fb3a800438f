//! When rule-driven defragmentation may run: the `--defrag-schedule` window and the rule pass.
//!
//! Why a window, not a cron job that runs a pass: the pass needs the engine's current view and
//! its single-flight guarantees, so the cron only opens a window (a flag) and the next tick that
//! sees it open runs one rule pass — the window then closes until the next scheduled time.

use std::collections::HashSet;

use crate::decide::actor::Fence;
use crate::decide::plan::{PlanCause, order, rule_matches};
use crate::observe::Observation;

use crate::engine::{Ctx, Engine};

impl Engine {
    pub(in crate::engine) async fn start_schedule(
        &self,
    ) -> Result<Option<tokio_cron_scheduler::JobScheduler>, tokio_cron_scheduler::JobSchedulerError>
    {
        let Some(six) = &self.cfg.schedule else {
            return Ok(None);
        };
        let scheduler = tokio_cron_scheduler::JobScheduler::new().await?;
        let window = self.rolling.window_handle();
        let job = tokio_cron_scheduler::Job::new_async(six.as_str(), move |_, _| {
            let window = window.clone();
            Box::pin(async move {
                tracing::info!("defrag window opened by --defrag-schedule");
                window.store(true, std::sync::atomic::Ordering::SeqCst);
            })
        })?;
        scheduler.add(job).await?;
        scheduler.start().await?;
        Ok(Some(scheduler))
    }

    /// A member was defragmented: its cool-down starts, here and — published with this
    /// instance's candidacy — for whichever instance acts next (a pass that reaches the leader
    /// hands the acting role over). Entries past the cool-down are dropped from what is
    /// published.
    pub(in crate::engine) fn note_defragmented(&mut self, ctx: &Ctx<'_>, member: u64) {
        self.rolling.defragmented(member, self.clock.now());
        let now = crate::clock::wall_now() as u64;
        let cool_down = self.cfg.min_defrag_interval.as_secs();
        let mut state = ctx.shared.write();
        let published = &mut state.maintenance.defragmented;
        published.retain(|_, at| now.saturating_sub(*at) < cool_down);
        published.insert(member, now);
        drop(state);
        ctx.shared.republish.notify_one();
    }

    /// Rule-driven defragmentation: members the rule picks, outside their cool-down.
    pub(in crate::engine) async fn rule_pass(
        &mut self,
        ctx: &Ctx<'_>,
        obs: &Observation,
        fence: Fence,
    ) {
        let cooling = self
            .rolling
            .cooling(obs, self.clock.now(), self.cfg.min_defrag_interval);
        let (matched, notes) = rule_matches(obs, &self.cfg.rule, &cooling);
        for note in notes {
            tracing::debug!("{note}");
        }
        if self.cfg.schedule.is_some() {
            // The window admits one pass; it reopens at the next scheduled time.
            self.rolling.close_window();
        }
        if matched.is_empty() {
            return;
        }
        let plan = order(obs, PlanCause::Rule, &matched);
        let members: Vec<String> = plan.steps.iter().map(|s| s.name.clone()).collect();
        let outcome = self
            .rolling_defrag(ctx, plan, fence, &mut HashSet::new())
            .await;
        // Once per change: a pass refused before its first member (a full volume, a closed
        // gate) is tried every poll and ends the same way each time.
        if self.rolling.said.say(&outcome) {
            tracing::info!(
                rule = self.cfg.rule.source(),
                ?members,
                ?outcome,
                "rule-driven defragmentation pass ended"
            );
        } else {
            tracing::debug!(
                rule = self.cfg.rule.source(),
                ?members,
                ?outcome,
                "rule-driven defragmentation pass ended"
            );
        }
    }
}
