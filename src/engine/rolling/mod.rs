//! The rolling pass: a component that defragments the members of a plan one at a time, leader
//! last, with the gate before each and the integrity proof after each, and owns what passes
//! must remember between ticks — when each member was last defragmented (the cool-down), the
//! `--defrag-schedule` window, and the last stopped pass the log spoke of.
//!
//! Why a component: the heal, the space controller's shrink, the files left behind and the rule
//! all run the same pass, and the cool-down must hold whichever of them ran it. Its memory is
//! private to this directory (the compiler enforces it); the rest of the engine goes through
//! the methods below.
//!
//! - [`pass`]: the pass itself;
//! - [`handover`]: the leader's turn (leadership moved first);
//! - [`verify`]: the proof after each member;
//! - [`schedule`]: the window and the rule pass.

mod handover;
mod pass;
mod schedule;
mod verify;

#[cfg(test)]
#[path = "rolling_tests.rs"]
mod tests;

use std::collections::{HashMap, HashSet};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Duration;

use crate::observe::Observation;

pub use pass::RollOutcome;
pub(in crate::engine) use verify::record_integrity;

use pass::PassSaid;

#[derive(Debug)]
pub struct Rolling {
    /// When each member was last defragmented by this instance (monotonic seconds).
    last_defrag: HashMap<u64, f64>,
    /// Open while a rule-driven pass may start: always without `--defrag-schedule`, else from
    /// each scheduled time until the pass it admits.
    window: Arc<AtomicBool>,
    /// The last stopped pass the log spoke of.
    said: PassSaid,
}

impl Rolling {
    /// `scheduled`: rule-driven passes wait for `--defrag-schedule` to open the window.
    pub fn new(scheduled: bool) -> Rolling {
        Rolling {
            last_defrag: HashMap::new(),
            window: Arc::new(AtomicBool::new(!scheduled)),
            said: PassSaid::default(),
        }
    }

    /// `member` was defragmented at `now`: its cool-down starts.
    fn defragmented(&mut self, member: u64, now: f64) {
        self.last_defrag.insert(member, now);
    }

    /// The members still in their cool-down at `now`: by this instance's own record, or as
    /// another instance published them (`decide::cool_down`).
    fn cooling(&self, obs: &Observation, now: f64, cool_down: Duration) -> HashSet<u64> {
        crate::decide::cool_down::cooling_down(&self.last_defrag, now, obs, cool_down)
    }

    /// Whether a rule-driven pass may start now.
    pub fn window_open(&self) -> bool {
        self.window.load(Ordering::SeqCst)
    }

    /// A scheduled window admits one pass: closed until the next scheduled time.
    fn close_window(&self) {
        self.window.store(false, Ordering::SeqCst);
    }

    /// What the cron job opens.
    fn window_handle(&self) -> Arc<AtomicBool> {
        self.window.clone()
    }
}
