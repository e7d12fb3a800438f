//! What the space controller did over the last ten minutes, said in one INFO line.
//!
//! Why: under a sync loop the controller compacts every poll (720 times an hour at a 5 s poll),
//! each time for the same reason. One line per compaction is what a log shipper pays for and
//! nobody reads; each one goes to DEBUG, and this says what they added up to, with round numbers
//! for people (the exact ones are the line's fields).

use std::fmt;

/// Ten minutes between summaries.
const EVERY_SECONDS: f64 = 600.0;

/// The figures gathered since the last summary.
#[derive(Debug, Default)]
pub struct SpaceSummary {
    /// When this window began (monotonic seconds); None before the first observation.
    since: Option<f64>,
    compactions: u32,
    least_keep_seconds: Option<f64>,
    peak_ratio: f64,
}

/// One summary, ready to log.
#[derive(Debug, Clone, PartialEq)]
pub struct SummaryLine {
    pub minutes: f64,
    pub compactions: u32,
    pub least_keep_seconds: f64,
    pub peak_ratio: f64,
}

impl fmt::Display for SummaryLine {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "space controller, last {:.0} min: {} compactions kept at least {:.0} s of history; the db peaked at {:.0} % of the quota",
            self.minutes,
            self.compactions,
            self.least_keep_seconds,
            self.peak_ratio * 100.0
        )
    }
}

impl SpaceSummary {
    /// One observation: the largest member's bytes in use over the quota.
    pub fn saw(&mut self, now: f64, quota_ratio: f64) {
        self.since.get_or_insert(now);
        self.peak_ratio = self.peak_ratio.max(quota_ratio);
    }

    /// One compaction of the controller's, keeping `keep_seconds` of history.
    pub fn compacted(&mut self, keep_seconds: f64) {
        self.compactions += 1;
        let least = self.least_keep_seconds.get_or_insert(keep_seconds);
        *least = least.min(keep_seconds);
    }

    /// The summary once ten minutes have passed with at least one compaction, and a new
    /// window; None otherwise (a quiet controller says nothing).
    pub fn due(&mut self, now: f64) -> Option<SummaryLine> {
        let since = self.since?;
        if now - since < EVERY_SECONDS {
            return None;
        }
        let line = self.least_keep_seconds.map(|least| SummaryLine {
            minutes: (now - since) / 60.0,
            compactions: self.compactions,
            least_keep_seconds: least,
            peak_ratio: self.peak_ratio,
        });
        *self = SpaceSummary {
            since: Some(now),
            ..SpaceSummary::default()
        };
        line
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn one_line_per_ten_minutes_of_compactions_and_none_when_quiet() {
        let mut summary = SpaceSummary::default();
        assert_eq!(summary.due(0.0), None, "nothing observed yet");
        for tick in 0..120 {
            let now = f64::from(tick) * 5.0;
            summary.saw(now, 0.5 + f64::from(tick % 7) / 100.0);
            summary.compacted(80.0 - f64::from(tick % 3));
            assert_eq!(summary.due(now), None, "before ten minutes: {now}");
        }
        let line = summary.due(600.0).expect("ten minutes");
        assert_eq!(line.compactions, 120);
        assert_eq!(line.least_keep_seconds, 78.0);
        assert!((line.peak_ratio - 0.56).abs() < 1e-9);
        assert_eq!(
            line.to_string(),
            "space controller, last 10 min: 120 compactions kept at least 78 s of history; the db peaked at 56 % of the quota"
        );
        // A window without compactions says nothing, and starts another.
        summary.saw(700.0, 0.3);
        assert_eq!(summary.due(1200.0), None);
        assert_eq!(summary.due(1300.0), None);
    }
}
