//! Why maintenance or healing is refused right now: one owner per reason, published to the
//! metric, /status and (on change) the log.
//!
//! Why owners: a reason set by one check and cleared by another flaps between ticks, and the
//! 15-minute alert on it never fires; so each reason is set *and* cleared by the check it
//! belongs to (alarms by the tick, `unhealthy` by the health gate and the heal's member check,
//! `disk_space` by the disk check, `hash_mismatch` by the members' comparison).

use crate::report::metrics::{HEAL_BLOCKED_REASONS, MAINTENANCE_BLOCKED_REASONS, Metrics};

use super::{Guard, Refusal};
use crate::engine::Ctx;

impl Guard {
    /// Sets (non-empty `messages`) or clears (empty) one reason maintenance is refused, and
    /// publishes all of them to the metric, /status and — on change — the log.
    pub(in crate::engine) fn set_blocked(
        &mut self,
        ctx: &Ctx<'_>,
        reason: &'static str,
        messages: Vec<String>,
    ) {
        match self.record(reason, messages.clone()) {
            Refusal::Unchanged => return,
            Refusal::Figures => {}
            Refusal::Cleared => tracing::info!("maintenance no longer blocked ({reason})"),
            Refusal::Set { fault: true } => {
                for m in &messages {
                    tracing::error!("maintenance blocked: {m}");
                }
            }
            Refusal::Set { fault: false } => {
                for m in &messages {
                    tracing::warn!("maintenance paused: {m}");
                }
            }
        }
        self.publish_blocked(ctx);
    }

    /// The metric and /status, from every reason maintenance is refused for now.
    fn publish_blocked(&self, ctx: &Ctx<'_>) {
        let active: Vec<&str> = self.refusals.keys().copied().collect();
        Metrics::set_reasons(
            &ctx.shared.metrics.maintenance_blocked,
            &MAINTENANCE_BLOCKED_REASONS,
            &active,
        );
        ctx.shared.write().maintenance.blocked =
            self.refusals.values().flatten().cloned().collect();
    }

    /// Sets or clears why NOSPACE cannot be healed now (one reason at a time).
    pub(in crate::engine) fn set_heal_blocked(
        &self,
        ctx: &Ctx<'_>,
        reason: Option<&str>,
        message: Option<String>,
    ) {
        let active: Vec<&str> = reason.into_iter().collect();
        Metrics::set_reasons(
            &ctx.shared.metrics.heal_blocked,
            &HEAL_BLOCKED_REASONS,
            &active,
        );
        let mut state = ctx.shared.write();
        // An Event when what is refused changes, not every poll it stays refused.
        if let Some(now) = &message
            && state.maintenance.heal_blocked.as_deref().map(shape) != Some(shape(now))
        {
            ctx.shared.event(
                crate::report::events::EventReason::HealBlocked,
                &shape(now),
                format!("NOSPACE cannot be healed yet: {now}"),
            );
        }
        state.maintenance.heal_blocked = message;
    }
}

/// A message without its figures (digits and decimal points), to tell a new refusal from the
/// same one with other numbers.
pub(in crate::engine) fn shape(message: &str) -> String {
    message
        .chars()
        .filter(|c| !c.is_ascii_digit() && *c != '.')
        .collect()
}
