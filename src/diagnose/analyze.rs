//! `etcd-upkeep analyze`: the keyspace broken down by Kubernetes resource, the largest objects,
//! and (with `--watch`) the keys written most.
//!
//! Why paged serializable reads against one member: a full-keyspace Range would hold every value
//! in memory at once and, linearizable, load the leader of a cluster that may already be in
//! trouble. Pages of a bounded number of keys, from one member's local store, keep memory flat
//! regardless of the key count and work during NOSPACE (reads are allowed).

use std::collections::HashMap;
use std::sync::Mutex;
use std::time::{Duration, Instant};

use serde::Serialize;
use tokio::sync::Notify;

use crate::diagnose::fields::{FieldChange, FieldTracker, WriterCount, describe};
use crate::diagnose::keys::classify;
use crate::diagnose::pages::{self, Next, PageAnswer, PageRequest, Pager};
use crate::diagnose::topk::SpaceSaving;
use crate::etcd::{Etcd, EtcdError, RangePage, WatchMessage};
use crate::units::format_bytes;

const LARGEST_PER_RESOURCE: usize = 5;

#[derive(Debug, Clone, Serialize, PartialEq)]
pub struct ObjectSize {
    pub key: String,
    pub bytes: u64,
}

#[derive(Debug, Clone, Serialize, PartialEq)]
pub struct ResourceUsage {
    pub resource: String,
    pub count: u64,
    /// Key + value bytes of the live objects.
    pub bytes: u64,
    pub largest: Vec<ObjectSize>,
}

#[derive(Debug, Clone, Serialize, PartialEq)]
pub struct ChurnReport {
    pub key: String,
    pub resource: String,
    pub writes: u64,
    pub writes_per_second: f64,
    pub bytes: u64,
    pub bytes_per_second: f64,
    /// The field paths that changed between its revisions, most changed first.
    pub changed_fields: Vec<FieldChange>,
    /// The field managers that wrote them, most writes first.
    pub writers: Vec<WriterCount>,
}

#[derive(Debug, Clone, Serialize)]
pub struct Analysis {
    pub endpoint: String,
    pub total_keys: u64,
    pub total_bytes: u64,
    /// Sorted by bytes, descending.
    pub resources: Vec<ResourceUsage>,
    /// Sorted by writes, descending (empty without --watch).
    pub churn: Vec<ChurnReport>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub watched_seconds: Option<f64>,
}

/// Accumulates the breakdown one key at a time; memory grows with resources, not keys.
#[derive(Debug, Default)]
pub struct Breakdown {
    by_resource: HashMap<String, ResourceUsage>,
}

impl Breakdown {
    pub fn add(&mut self, key: &str, bytes: u64) {
        let resource = classify(key).resource;
        let usage = self
            .by_resource
            .entry(resource.clone())
            .or_insert_with(|| ResourceUsage {
                resource,
                count: 0,
                bytes: 0,
                largest: Vec::new(),
            });
        usage.count += 1;
        usage.bytes += bytes;
        let smallest_kept = usage.largest.last().map(|o| o.bytes).unwrap_or(0);
        if usage.largest.len() < LARGEST_PER_RESOURCE || bytes > smallest_kept {
            usage.largest.push(ObjectSize {
                key: key.to_string(),
                bytes,
            });
            usage
                .largest
                .sort_by(|a, b| b.bytes.cmp(&a.bytes).then_with(|| a.key.cmp(&b.key)));
            usage.largest.truncate(LARGEST_PER_RESOURCE);
        }
    }

    /// Resources by bytes, descending.
    pub fn resources(&self) -> Vec<ResourceUsage> {
        let mut all: Vec<ResourceUsage> = self.by_resource.values().cloned().collect();
        all.sort_by(|a, b| {
            b.bytes
                .cmp(&a.bytes)
                .then_with(|| a.resource.cmp(&b.resource))
        });
        all
    }
}

/// The live data of the whole keyspace, by resource, read through `endpoint`: what the engine
/// counts when live data fills the quota (the space controller names the biggest resources, a
/// dry-run heal projects what a defragmented member would hold). One scan for both, at
/// `analyze`'s own page size.
pub async fn live_data(etcd: &Etcd, endpoint: &str) -> Result<Breakdown, EtcdError> {
    scan(etcd, endpoint, "", LIVE_DATA_PAGE).await
}

/// Keys per Range of a live-data count (analyze's `--page-size` default).
pub const LIVE_DATA_PAGE: i64 = 50_000;

/// Scans the keys under `prefix` (empty: all), at most `max_page_keys` per Range request.
///
/// Why spans: etcd counts every key between a Range's start and end even when it returns only
/// `limit` of them, so each page ends about one page ahead and never past the next sibling
/// prefix ([`Pager`]) instead of at the end of the keyspace or of a resource group; etcd then
/// counts about what it returns. Page sizes adapt to ~2 MiB of data; a page too large for the
/// client is retried smaller.
///
/// Why two pages at once: etcd serves one Range on one core, and its CPU is the bottleneck
/// (analyze's own is ~1.3 s at 1 M keys); two disjoint ranges at once (the [`Pager`] hands out
/// ranges that never overlap) let it use a second. Measured at 1 M keys on one etcd, runs
/// alternating with `etcdctl get --prefix "" --keys-only`: 6.9-9.5 s against its 6.2-8.4 s,
/// etcd's CPU 10.4-15.3 s against 6.0-9.4, peak RSS 25-27 MiB. A third reader was slower
/// (7.3-9.0 s against 6.6-8.1 in alternating runs): its ranges are sized before the answers
/// in flight come back, and etcd counted more.
pub async fn scan(
    etcd: &Etcd,
    endpoint: &str,
    prefix: &str,
    max_page_keys: i64,
) -> Result<Breakdown, EtcdError> {
    let pager = Mutex::new(Pager::new(prefix.as_bytes(), max_page_keys));
    let breakdown = Mutex::new(Breakdown::default());
    let recorded = Notify::new();
    // Each reader asks for the next unread range until the scan is done. One that finds none
    // unread while the other's page is out waits for that page to be recorded: a page cut short
    // gives the rest of its range back.
    let reader = || async {
        loop {
            // Registered before the pager is asked, so an answer recorded in between still wakes it.
            let wake = recorded.notified();
            tokio::pin!(wake);
            wake.as_mut().enable();
            let next = lock(&pager).next_read();
            let request = match next {
                Next::Read(request) => request,
                Next::Wait => {
                    wake.await;
                    continue;
                }
                Next::Done => return Ok::<(), EtcdError>(()),
            };
            let (page, limit) = fetch_page(etcd, endpoint, &request).await?;
            let answer = PageAnswer {
                limit,
                keys: page.entries.len(),
                bytes: count_page(&mut lock(&breakdown), &page),
                late_key: pages::late_key(page.entries.len())
                    .map(|(at, after)| (page.entries[at].0.as_slice(), after)),
                last_key: page.entries.last().map(|(key, _)| key.as_slice()),
                more: page.more,
                count: page.count,
            };
            lock(&pager).record(&request, &answer);
            recorded.notify_waiters();
        }
    };
    tokio::try_join!(reader(), reader())?;
    Ok(breakdown.into_inner().expect(POISONED))
}

/// Both readers run in the scan's own task, so a panic in one unwinds the whole scan before a
/// poisoned lock could be seen.
const POISONED: &str = "a scan reader panicked";

fn lock<T>(mutex: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    mutex.lock().expect(POISONED)
}

/// One page, halving the page size while etcd answers that it is too large for the client.
/// Returns the page and the size that worked.
async fn fetch_page(
    etcd: &Etcd,
    endpoint: &str,
    request: &PageRequest,
) -> Result<(RangePage, i64), EtcdError> {
    let mut limit = request.limit;
    loop {
        match etcd
            .range_page(endpoint, &request.from, &request.end, limit)
            .await
        {
            Ok(page) => return Ok((page, limit)),
            Err(e) if limit > 1 && e.message.contains("too large") => limit = (limit / 2).max(1),
            Err(e) => return Err(e),
        }
    }
}

/// Adds a page to the breakdown; returns its bytes (keys and values).
fn count_page(breakdown: &mut Breakdown, page: &RangePage) -> u64 {
    let mut bytes = 0;
    for (key, value_bytes) in &page.entries {
        let size = key.len() as u64 + value_bytes;
        bytes += size;
        breakdown.add(&String::from_utf8_lossy(key), size);
    }
    bytes
}

/// Watches writes under `prefix` for `duration` and ranks keys by writes.
pub async fn watch_churn(
    etcd: &Etcd,
    endpoint: &str,
    prefix: &str,
    duration: Duration,
    top: usize,
) -> Result<Vec<ChurnReport>, EtcdError> {
    let mut sketch = SpaceSaving::new(10_000);
    let mut fields = FieldTracker::default();
    let started = Instant::now();
    let deadline = tokio::time::Instant::now() + duration;
    let mut subscription = etcd.watch_prefix(endpoint, prefix, 0).await?;
    loop {
        // Decode only keys already written more than once: the candidates for a loop.
        let message = tokio::select! {
            m = subscription.next_keeping(|k| sketch.count(k).is_some_and(|n| n >= 1)) => m?,
            _ = tokio::time::sleep_until(deadline) => break,
        };
        match message {
            Some(WatchMessage::Events(events)) => {
                for e in events {
                    sketch.add(&e.key, e.bytes);
                    if let Some(value) = &e.value {
                        fields.record(&e.key, value);
                    }
                }
            }
            Some(WatchMessage::Created) | Some(WatchMessage::Progress { .. }) => {}
            // A compaction can only cancel a lagging watch; start again from now.
            Some(WatchMessage::Compacted { .. }) | Some(WatchMessage::Canceled(_)) | None => {
                subscription = etcd.watch_prefix(endpoint, prefix, 0).await?;
            }
        }
    }
    let seconds = started.elapsed().as_secs_f64().max(0.001);
    Ok(sketch
        .top()
        .into_iter()
        .take(top)
        .map(|c| {
            let (changed_fields, writers) = fields.report(&c.key, 5);
            ChurnReport {
                resource: classify(&c.key).resource,
                writes_per_second: c.count as f64 / seconds,
                bytes_per_second: c.bytes as f64 / seconds,
                key: c.key,
                writes: c.count,
                bytes: c.bytes,
                changed_fields,
                writers,
            }
        })
        .collect())
}

impl Analysis {
    pub fn to_table(&self, top: usize) -> String {
        let mut out = format!(
            "{} keys, {} (key + value bytes of live objects) on {}\n\n",
            self.total_keys,
            format_bytes(self.total_bytes),
            self.endpoint
        );
        let width = self
            .resources
            .iter()
            .map(|r| r.resource.len())
            .max()
            .unwrap_or(8)
            .max(8);
        out.push_str(&format!(
            "{:<width$}  {:>9}  {:>11}  {:>6}\n",
            "RESOURCE", "OBJECTS", "BYTES", "SHARE"
        ));
        for r in self.resources.iter().take(top.max(1) * 3) {
            let share = if self.total_bytes == 0 {
                0.0
            } else {
                r.bytes as f64 * 100.0 / self.total_bytes as f64
            };
            out.push_str(&format!(
                "{:<width$}  {:>9}  {:>11}  {:>5.1}%\n",
                r.resource,
                r.count,
                format_bytes(r.bytes),
                share
            ));
        }
        let mut largest: Vec<&ObjectSize> =
            self.resources.iter().flat_map(|r| &r.largest).collect();
        largest.sort_by_key(|o| std::cmp::Reverse(o.bytes));
        out.push_str("\nLARGEST OBJECTS\n");
        for o in largest.into_iter().take(top) {
            out.push_str(&format!("{:>11}  {}\n", format_bytes(o.bytes), o.key));
        }
        if let Some(seconds) = self.watched_seconds {
            out.push_str(&format!(
                "\nMOST WRITTEN KEYS over {seconds:.0}s\n{:>8}  {:>9}  {:>11}  KEY\n",
                "WRITES", "WRITES/S", "BYTES/S"
            ));
            for c in &self.churn {
                out.push_str(&format!(
                    "{:>8}  {:>9.1}  {:>11}  {}\n",
                    c.writes,
                    c.writes_per_second,
                    format_bytes(c.bytes_per_second as u64),
                    c.key
                ));
                if let Some(text) = describe(&c.changed_fields, &c.writers) {
                    out.push_str(&format!("{:>32}{text}\n", ""));
                }
            }
        }
        out
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn breakdown_counts_bytes_and_keeps_the_largest() {
        let mut b = Breakdown::default();
        for i in 0..10u64 {
            b.add(&format!("/registry/configmaps/default/cm-{i}"), 100 + i);
        }
        b.add("/registry/example.com/widgets/ns/w", 5000);
        b.add("compact_rev_key", 20);
        let r = b.resources();
        assert_eq!(r[0].resource, "example.com/widgets");
        assert_eq!(r[1].resource, "configmaps");
        assert_eq!(r[1].count, 10);
        assert_eq!(r[1].bytes, (100..110).sum::<u64>());
        assert_eq!(r[1].largest.len(), LARGEST_PER_RESOURCE);
        assert_eq!(r[1].largest[0].bytes, 109);
        assert_eq!(r[2].resource, "compact_rev_key");
    }
}
