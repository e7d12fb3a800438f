//! Writers pinned one to each member, and what they saw: the longest window with no write
//! accepted anywhere and on each member, with the timeline around it.
//!
//! Why apart: every defragmentation benchmark judges by the same writers.

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use crate::common::*;
use crate::support::{self, Cluster};

/// Writers pinned to each member, recording when each write was accepted.
pub struct PinnedWriters {
    /// The same moment on both clocks, to place gaps in the members' and sidecars' logs.
    origin: (Instant, f64),
    stop: Arc<AtomicBool>,
    accepted: Vec<Arc<Mutex<Vec<Instant>>>>,
    threads: Vec<std::thread::JoinHandle<()>>,
}

impl PinnedWriters {
    pub fn start(cluster: &Cluster) -> PinnedWriters {
        PinnedWriters::start_doing(cluster, Pinned::Writes)
    }

    /// A client pinned to each member, doing `what` until stopped.
    pub fn start_doing(cluster: &Cluster, what: Pinned) -> PinnedWriters {
        let stop = Arc::new(AtomicBool::new(false));
        let config = cluster.client_config();
        let mut accepted = Vec::new();
        let mut threads = Vec::new();
        for endpoint in cluster.endpoints() {
            let times = Arc::new(Mutex::new(Vec::new()));
            accepted.push(times.clone());
            let (stop, config) = (stop.clone(), config.clone());
            threads.push(std::thread::spawn(move || {
                rt().block_on(async move {
                    let mut c = config.only(std::slice::from_ref(&endpoint)).connect().await;
                    if what == Pinned::Renewals {
                        let lease = c.lease_grant(30, None).await.unwrap().id();
                        let (mut keeper, mut stream) = c.lease_keep_alive(lease).await.unwrap();
                        while !stop.load(Ordering::SeqCst) {
                            let renew = async {
                                keeper.keep_alive().await.ok()?;
                                stream.message().await.ok()?
                            };
                            let renewed = tokio::time::timeout(Duration::from_secs(2), renew).await;
                            if matches!(renewed, Ok(Some(r)) if r.ttl() > 0) {
                                times.lock().unwrap().push(Instant::now());
                            }
                            tokio::time::sleep(Duration::from_millis(100)).await;
                        }
                        return;
                    }
                    let mut i = 0u64;
                    while !stop.load(Ordering::SeqCst) {
                        let key = format!("bench/pinned/{endpoint}/{}", i % 100);
                        if c.put(key, "x", None).await.is_ok() {
                            times.lock().unwrap().push(Instant::now());
                        }
                        i += 1;
                        tokio::time::sleep(Duration::from_millis(5)).await;
                    }
                })
            }));
        }
        PinnedWriters {
            origin: (Instant::now(), unix_now()),
            stop,
            accepted,
            threads,
        }
    }

    /// Stops; the longest gap between accepted writes anywhere (and when it was), and the
    /// longest on each member.
    pub fn stop(self, since: Instant) -> Gap {
        let until = Instant::now();
        self.stop.store(true, Ordering::SeqCst);
        for t in self.threads {
            t.join().unwrap();
        }
        // From `since` to the stop, so that a pause at either end (or no write at all) counts.
        let longest = |times: &mut Vec<Instant>| {
            times.retain(|t| *t >= since && *t <= until);
            times.extend([since, until]);
            times.sort();
            times
                .windows(2)
                .map(|w| (w[1] - w[0], w[0]))
                .max()
                .unwrap_or((Duration::ZERO, since))
        };
        let mut all: Vec<Instant> = Vec::new();
        let mut each = Vec::new();
        for times in &self.accepted {
            let mut times = times.lock().unwrap().clone();
            all.extend(&times);
            each.push(longest(&mut times).0.as_secs_f64());
        }
        let (gap, at) = longest(&mut all);
        let from = self.origin.1 + (at - self.origin.0).as_secs_f64();
        Gap {
            longest: gap.as_secs_f64(),
            from,
            to: from + gap.as_secs_f64(),
            each,
        }
    }
}

/// What each pinned client does, and records the success of.
#[derive(Clone, Copy, PartialEq)]
pub enum Pinned {
    /// Small puts, every 5 ms.
    Writes,
    /// One lease kept alive every 100 ms (kube-apiserver's leases, and etcd-upkeep's own).
    Renewals,
}

/// The longest window with no write accepted anywhere, in wall-clock seconds, and each member's
/// longest.
pub struct Gap {
    pub longest: f64,
    pub from: f64,
    pub to: f64,
    pub each: Vec<f64>,
}

/// Where the sidecars' time went: their info lines and each member's defragmentation, in
/// seconds from `begin` (wall clock).
pub fn print_timeline(begin: f64, cluster: &Cluster, sidecars: &[String]) {
    let mut lines: Vec<(f64, String)> = Vec::new();
    for (i, m) in cluster.members.iter().enumerate() {
        for (a, b) in support::defrag_intervals(&cluster.log(i)) {
            lines.push((a, format!("{} etcd: defragmentation starts", m.name)));
            lines.push((
                b,
                format!("{} etcd: defragmentation ends ({:.1} s)", m.name, b - a),
            ));
        }
    }
    for (i, log) in sidecars.iter().enumerate() {
        for line in log.lines() {
            let ts = line.split_whitespace().next().unwrap_or("");
            if ts.len() > 20 && ts.as_bytes()[4] == b'-' {
                let rest: String = line[ts.len()..].trim().chars().take(150).collect();
                lines.push((support::parse_ts(ts), format!("sidecar {i}: {rest}")));
            }
        }
    }
    lines.sort_by(|a, b| a.0.total_cmp(&b.0));
    println!("  timeline (s from the sidecars' start):");
    for (t, line) in lines.iter().take(150) {
        println!("  {:7.2}  {line}", t - begin);
    }
}

/// What the members and the sidecars logged during the longest gap (and half a second around
/// it): the figure is only useful when its cause can be read off.
pub fn print_gap_context(cluster: &Cluster, daemons: &[String], gap: &Gap) {
    let within = |t: f64| t >= gap.from - 0.5 && t <= gap.to + 0.5;
    let mut lines: Vec<(f64, String)> = Vec::new();
    for (i, m) in cluster.members.iter().enumerate() {
        for (t, msg) in support::log_events(&cluster.log(i), "") {
            if within(t) {
                lines.push((t, format!("{} etcd: {msg}", m.name)));
            }
        }
    }
    for (i, log) in daemons.iter().enumerate() {
        for line in log.lines() {
            let ts = line.split_whitespace().next().unwrap_or("");
            if ts.len() > 20 && ts.as_bytes()[4] == b'-' {
                let t = support::parse_ts(ts);
                if within(t) {
                    lines.push((t, format!("sidecar {i}: {}", &line[ts.len()..].trim())));
                }
            }
        }
    }
    lines.sort_by(|a, b| a.0.total_cmp(&b.0));
    println!(
        "  logged during the longest gap ({:.2} s), in seconds from its start:",
        gap.longest
    );
    for (t, line) in lines.iter().take(60) {
        println!("  {:+.2} s  {line}", t - gap.from);
    }
}
