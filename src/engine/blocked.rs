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
        if messages.is_empty() {
            tracing::info!("maintenance no longer blocked ({reason})");
            self.blocked.remove(reason);
        } else {
            for m in &messages {
                tracing::error!("maintenance blocked: {m}");
            }
            self.blocked.insert(reason, messages);
        }
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
        ctx.shared.write().maintenance.heal_blocked = message;
    }
}
