//! The recent actions the daemon took (or, in dry-run, would have taken), for `/status`.
//!
//! Why bounded: a daemon that runs for months must not grow; the last 100 actions are what an
//! operator needs to see what happened during the last incident. Logs keep the full history.

use std::collections::VecDeque;

use serde::Serialize;

const KEEP: usize = 100;

/// One maintenance step and how it ended.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct ActionRecord {
    /// Seconds since the Unix epoch when the step started.
    pub at: f64,
    /// `compact`, `defragment`, `move-leader`, `disarm`, `heal`, …
    pub action: String,
    /// The member acted on, when the step is per member.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub member: Option<String>,
    /// `ok`, `failed`, `skipped`, `dry-run`, …
    pub result: String,
    /// The numbers behind it: sizes before/after, revision, the reason.
    pub detail: String,
    pub duration_seconds: f64,
}

#[derive(Debug, Default, Clone, Serialize)]
pub struct ActionLog {
    recent: VecDeque<ActionRecord>,
}

impl ActionLog {
    pub fn push(&mut self, record: ActionRecord) {
        if self.recent.len() == KEEP {
            self.recent.pop_front();
        }
        self.recent.push_back(record);
    }

    /// Newest first.
    pub fn newest_first(&self) -> Vec<ActionRecord> {
        self.recent.iter().rev().cloned().collect()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn keeps_only_the_newest() {
        let mut log = ActionLog::default();
        for i in 0..150 {
            log.push(ActionRecord {
                at: i as f64,
                action: "compact".into(),
                member: None,
                result: "ok".into(),
                detail: String::new(),
                duration_seconds: 0.0,
            });
        }
        let all = log.newest_first();
        assert_eq!(all.len(), KEEP);
        assert_eq!(all[0].at, 149.0);
    }
}
