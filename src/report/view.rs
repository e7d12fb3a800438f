//! The status view: one observation rendered for people (a table like `etcdctl endpoint status
//! -w table`, with the numbers that matter for space) and for machines (JSON).
//!
//! Why one view type: `status --output json`, `/status` and the table all show the same derived
//! numbers (fragmentation %, quota usage %), computed once here.

use serde::Serialize;

use crate::observe::{Observation, Quota};
use crate::units::format_bytes;

#[derive(Debug, Clone, Serialize)]
pub struct MemberView {
    pub name: String,
    /// Hex, as etcdctl prints it.
    pub id: String,
    pub endpoint: String,
    pub version: Option<String>,
    pub is_leader: bool,
    pub is_learner: bool,
    pub raft_term: Option<u64>,
    pub raft_index: Option<u64>,
    pub raft_applied_index: Option<u64>,
    pub db_size: Option<u64>,
    pub db_size_in_use: Option<u64>,
    pub fragmentation_percent: Option<f64>,
    pub quota_usage_percent: Option<f64>,
    pub errors: Vec<String>,
    pub error: Option<String>,
}

#[derive(Debug, Clone, Serialize)]
pub struct AlarmView {
    pub member: String,
    pub member_id: String,
    pub alarm: &'static str,
}

#[derive(Debug, Clone, Serialize)]
pub struct ClusterView {
    pub taken_at: f64,
    pub members: Vec<MemberView>,
    pub alarms: Vec<AlarmView>,
    pub quota: Quota,
    pub leader: Option<String>,
    pub raft_term: u64,
    pub revision: i64,
    pub local_member: Option<String>,
    pub warnings: Vec<String>,
    /// Each member's progress notifications, as its sidecar knows them.
    pub watch_progress: Vec<WatchProgressView>,
}

/// One member's progress-notify interval, and the etcd flag to set while the history kept is
/// below it.
#[derive(Debug, Clone, Serialize)]
pub struct WatchProgressView {
    pub member: String,
    pub interval_seconds: u64,
    pub source: &'static str,
    /// `--watch-progress-notify-interval` (3.6+) or its 3.5 spelling, by the member's version.
    pub flag: &'static str,
    /// The value to give it, while the history kept is below the interval.
    pub set_to: Option<String>,
}

fn round2(x: f64) -> f64 {
    (x * 100.0).round() / 100.0
}

impl ClusterView {
    pub fn from_observation(obs: &Observation) -> Self {
        let members = obs
            .members
            .iter()
            .map(|m| {
                let s = m.status.as_ref();
                MemberView {
                    name: m.name.clone(),
                    id: format!("{:x}", m.id),
                    endpoint: m.endpoint.clone(),
                    version: s.map(|s| s.version.clone()),
                    is_leader: obs.leader == Some(m.id),
                    is_learner: m.is_learner,
                    raft_term: s.map(|s| s.raft_term),
                    raft_index: s.map(|s| s.raft_index),
                    raft_applied_index: s.map(|s| s.raft_applied_index),
                    db_size: s.map(|s| s.db_size),
                    db_size_in_use: s.map(|s| s.db_size_in_use),
                    fragmentation_percent: m.fragmentation().map(|f| round2(f * 100.0)),
                    quota_usage_percent: m.quota_usage(obs.quota.bytes).map(|u| round2(u * 100.0)),
                    errors: s.map(|s| s.errors.clone()).unwrap_or_default(),
                    error: m.error.clone(),
                }
            })
            .collect();
        ClusterView {
            taken_at: obs.taken_at,
            members,
            alarms: obs
                .alarms
                .iter()
                .map(|a| AlarmView {
                    member: obs.member_name(a.member_id),
                    member_id: format!("{:x}", a.member_id),
                    alarm: a.kind.as_str(),
                })
                .collect(),
            quota: obs.quota,
            leader: obs.leader.map(|id| obs.member_name(id)),
            raft_term: obs.raft_term,
            revision: obs.revision,
            local_member: obs.local_member.map(|id| obs.member_name(id)),
            warnings: obs.warnings.clone(),
            watch_progress: watch_progress(obs),
        }
    }

    /// The table `etcd-upkeep status` prints.
    pub fn to_table(&self) -> String {
        let header = [
            "NAME",
            "ID",
            "ENDPOINT",
            "VERSION",
            "LEADER",
            "LEARNER",
            "RAFT TERM",
            "RAFT INDEX",
            "DB SIZE",
            "IN USE",
            "FRAG %",
            "QUOTA %",
        ];
        let rows: Vec<Vec<String>> = self.members.iter().map(MemberView::row).collect();
        let mut out = grid(&header.map(String::from), &rows);
        for m in &self.members {
            if let Some(error) = &m.error {
                out.push_str(&format!("member {} unreachable: {error}\n", m.name));
            }
        }
        out.push_str(&format!(
            "quota: {} (source: {})   revision: {}   leader: {}\n",
            format_bytes(self.quota.bytes),
            self.quota.source.as_str(),
            self.revision,
            self.leader.as_deref().unwrap_or("none"),
        ));
        if self.alarms.is_empty() {
            out.push_str("alarms: none\n");
        } else {
            let list: Vec<String> = self
                .alarms
                .iter()
                .map(|a| format!("{} on {} ({})", a.alarm, a.member, a.member_id))
                .collect();
            out.push_str(&format!("alarms: {}\n", list.join(", ")));
        }
        for w in &self.watch_progress {
            out.push_str(&format!(
                "watch progress notifications on {}: every {} ({})",
                w.member,
                humantime::format_duration(std::time::Duration::from_secs(w.interval_seconds)),
                w.source
            ));
            match &w.set_to {
                Some(value) => out.push_str(&format!(
                    "; the history kept is shorter, so kube-apiserver's watch cache reads compacted revisions: set {}={value} on every member\n",
                    w.flag
                )),
                None => out.push('\n'),
            }
        }
        out
    }
}

/// What the registered sidecars say of their members' progress notifications.
fn watch_progress(obs: &Observation) -> Vec<WatchProgressView> {
    let candidates = obs.candidates.as_deref().unwrap_or_default();
    candidates
        .iter()
        .filter_map(|c| {
            let w = c.watch_progress.as_ref()?;
            let version = obs
                .member(c.member)
                .and_then(|m| m.status.as_ref())
                .map_or("", |s| s.version.as_str());
            Some(WatchProgressView {
                member: obs.member_name(c.member),
                interval_seconds: w.interval_seconds,
                source: w.source.as_str(),
                flag: crate::decide::watch_history::flag_for(version),
                set_to: w.set_to.clone(),
            })
        })
        .collect()
}

impl MemberView {
    /// The member's cells, `-` where it did not answer.
    fn row(&self) -> Vec<String> {
        let dash = || "-".to_string();
        let percent = |v: Option<f64>| v.map(|v| format!("{v:.1}")).unwrap_or_else(dash);
        vec![
            self.name.clone(),
            self.id.clone(),
            self.endpoint.clone(),
            self.version.clone().unwrap_or_else(dash),
            self.is_leader.to_string(),
            self.is_learner.to_string(),
            self.raft_term.map(|v| v.to_string()).unwrap_or_else(dash),
            self.raft_index.map(|v| v.to_string()).unwrap_or_else(dash),
            self.db_size.map(format_bytes).unwrap_or_else(dash),
            self.db_size_in_use.map(format_bytes).unwrap_or_else(dash),
            percent(self.fragmentation_percent),
            percent(self.quota_usage_percent),
        ]
    }
}

/// A bordered text table, each column as wide as its widest cell.
fn grid(header: &[String], rows: &[Vec<String>]) -> String {
    let mut widths: Vec<usize> = header.iter().map(|h| h.chars().count()).collect();
    for row in rows {
        for (w, cell) in widths.iter_mut().zip(row) {
            *w = (*w).max(cell.chars().count());
        }
    }
    let line = |cells: &[String]| {
        let mut out = String::from("|");
        for (cell, w) in cells.iter().zip(&widths) {
            out.push_str(&format!(" {cell:<w$} |"));
        }
        out.push('\n');
        out
    };
    let mut rule = String::from("+");
    for w in &widths {
        rule.push_str(&"-".repeat(w + 2));
        rule.push('+');
    }
    rule.push('\n');
    let mut out = rule.clone();
    out.push_str(&line(header));
    out.push_str(&rule);
    for row in rows {
        out.push_str(&line(row));
    }
    out.push_str(&rule);
    out
}
