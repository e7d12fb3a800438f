//! Why maintenance or healing is refused right now: one owner per reason, published to the
//! metric, /status and (on change) the log.
//!
//! Why owners: a reason set by one check and cleared by another flaps between ticks, and the
//! 15-minute alert on it never fires; so each reason is set *and* cleared by the check it
//! belongs to (alarms by the tick, `unhealthy` by the health gate and the heal's member check,
//! `disk_space` by the disk check, `hash_mismatch` by the members' comparison).

use crate::report::metrics::{HEAL_BLOCKED_REASONS, MAINTENANCE_BLOCKED_REASONS, Metrics};

use super::{Ctx, Engine};

impl Engine {
    /// Sets (non-empty `messages`) or clears (empty) one reason maintenance is refused, and
    /// publishes all of them to the metric, /status and — on change — the log.
    pub(super) fn set_blocked(
        &mut self,
        ctx: &Ctx<'_>,
        reason: &'static str,
        messages: Vec<String>,
    ) {
        let previous = self.blocked.get(reason).cloned().unwrap_or_default();
        if previous == messages {
            return;
        }
        // The log speaks once per change of what is refused, not per change of its figures: a
        // volume's free bytes or the live data move every poll while the refusal stays the same.
        let said_before = previous
            .iter()
            .map(|m| shape(m))
            .eq(messages.iter().map(|m| shape(m)));
        if said_before && !messages.is_empty() {
            self.blocked.insert(reason, messages);
            self.publish_blocked(ctx);
            return;
        }
        if messages.is_empty() {
            tracing::info!("maintenance no longer blocked ({reason})");
            self.blocked.remove(reason);
        } else {
            // A member busy defragmenting for someone else, or a downgrade, is no fault.
            let fault = !matches!(reason, "defragmenting" | "downgrade");
            for m in &messages {
                if fault {
                    tracing::error!("maintenance blocked: {m}");
                } else {
                    tracing::warn!("maintenance paused: {m}");
                }
            }
            self.blocked.insert(reason, messages);
        }
        self.publish_blocked(ctx);
    }

    /// The metric and /status, from every reason maintenance is refused for now.
    fn publish_blocked(&self, ctx: &Ctx<'_>) {
        let active: Vec<&str> = self.blocked.keys().copied().collect();
        Metrics::set_reasons(
            &ctx.shared.metrics.maintenance_blocked,
            &MAINTENANCE_BLOCKED_REASONS,
            &active,
        );
        ctx.shared.write().maintenance.blocked = self.blocked.values().flatten().cloned().collect();
    }

    pub(super) fn set_heal_blocked(
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
pub(super) fn shape(message: &str) -> String {
    message
        .chars()
        .filter(|c| !c.is_ascii_digit() && *c != '.')
        .collect()
}
