//! The guard: a component that owns what the checks before any step remember — why maintenance
//! is refused (by reason), whether the members' data agrees, a member still busy with a
//! defragmentation that timed out on our side, and the members whose free disk nobody knows.
//!
//! Why a component: the daemon's tick, the one-shot `heal` and the rolling pass must refuse the
//! same things, so the checks live in one place with one memory; no other part of the engine
//! sees its fields (the compiler enforces it), they go through the methods below.
//!
//! - [`hold`]: the checks before anything is touched, a heal's included;
//! - [`agreement`]: the members' hashes compared before an actor's first step;
//! - [`gate`]: the health gate and the disk check before each member of a pass;
//! - [`blocked`]: the reasons, published to the metric, /status and the log.

mod agreement;
mod blocked;
mod gate;
mod hold;

#[cfg(test)]
#[path = "guard_tests.rs"]
mod tests;

use std::collections::{BTreeMap, HashSet};

pub use agreement::Consistency;
pub(in crate::engine) use agreement::hash_all;
pub(in crate::engine) use blocked::shape;
pub use hold::Hold;

/// Rechecking a cluster known (or not yet shown) to disagree costs a HashKV of every member:
/// at most every this many seconds.
const RECHECK_SECONDS: f64 = 60.0;

#[derive(Debug, Default)]
pub struct Guard {
    /// Why maintenance is refused, by reason. Each reason is set and cleared by the check that
    /// owns it (alarms, the health gate, the disk check), so the metric does not flap.
    refusals: BTreeMap<&'static str, Vec<String>>,
    /// Whether the members' data agrees (derived from the cluster for every actor grant).
    consistency: Consistency,
    /// A member whose defragmentation timed out on our side: it may still be defragmenting.
    busy: Option<Busy>,
    /// Members whose free disk nobody knows, each said once.
    disk_unknown: HashSet<u64>,
}

/// A member whose defragmentation timed out on our side: it may still be defragmenting.
#[derive(Debug, Clone)]
struct Busy {
    name: String,
    endpoint: String,
    /// Monotonic seconds.
    since: f64,
}

/// What a change of one reason means for the log.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(in crate::engine) enum Refusal {
    /// The same messages as before: nothing to publish.
    Unchanged,
    /// The same refusal with other figures: published, not logged again.
    Figures,
    /// The reason is gone.
    Cleared,
    /// A new refusal: logged (an error unless it is no fault, e.g. a member busy for
    /// someone else or a downgrade).
    Set { fault: bool },
}

impl Guard {
    /// Records one reason's messages (empty: cleared) and says what changed.
    fn record(&mut self, reason: &'static str, messages: Vec<String>) -> Refusal {
        let previous = self.refusals.get(reason).cloned().unwrap_or_default();
        if previous == messages {
            return Refusal::Unchanged;
        }
        // The log speaks once per change of what is refused, not per change of its figures: a
        // volume's free bytes or the live data move every poll while the refusal stays the same.
        let said_before = previous
            .iter()
            .map(|m| blocked::shape(m))
            .eq(messages.iter().map(|m| blocked::shape(m)));
        if messages.is_empty() {
            self.refusals.remove(reason);
            return Refusal::Cleared;
        }
        self.refusals.insert(reason, messages);
        if said_before {
            Refusal::Figures
        } else {
            Refusal::Set {
                fault: !matches!(reason, "defragmenting" | "downgrade"),
            }
        }
    }

    /// Whether the members must be compared now: not yet for this actor grant, or a
    /// disagreement or failed comparison is older than the recheck interval.
    fn agreement_due(&self, now: f64) -> bool {
        match &self.consistency {
            Consistency::Unknown => true,
            Consistency::Agree => false,
            Consistency::Disagree { checked_at, .. } | Consistency::Unproven { checked_at } => {
                now - checked_at >= RECHECK_SECONDS
            }
        }
    }

    fn disagrees(&self) -> bool {
        matches!(self.consistency, Consistency::Disagree { .. })
    }

    /// A new actor grant: its first mutation waits for a fresh comparison.
    pub fn forget_agreement(&mut self) {
        if self.consistency == Consistency::Agree {
            self.consistency = Consistency::Unknown;
        }
    }

    /// A member's defragmentation timed out on our side at `now`: it counts as busy until it
    /// answers again (or is found down).
    pub(in crate::engine) fn member_busy(&mut self, name: String, endpoint: String, now: f64) {
        self.busy = Some(Busy {
            name,
            endpoint,
            since: now,
        });
    }

    /// The busy member answered again (or the pass gave it up): nothing waits for it.
    pub(in crate::engine) fn member_free(&mut self) {
        self.busy = None;
    }

    /// Whether the member's missing free-disk figure is new (said once per member).
    fn disk_unknown_first(&mut self, member: u64) -> bool {
        self.disk_unknown.insert(member)
    }
}
