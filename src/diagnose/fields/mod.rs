//! For an object caught in a sync loop: which fields change between its revisions, and which
//! field managers write them — from the values the watch already delivers. Never the values:
//! only paths, manager names and counts leave this module, and all it keeps of a revision is a
//! hash per field path.
//!
//! Why: naming the looping object is not enough to fix it. One field flipping between two
//! writers (`spec.size` set by `vcluster` and reset by `widget-operator`) can be fixed with a
//! patch or an ignore for that field, keeping the object synced.
//!
//! Two encodings reach etcd: JSON (custom resources) and Kubernetes protobuf (built-in types:
//! the magic `k8s\0`, then a `runtime.Unknown` whose `raw` is the object). For protobuf the
//! envelope and `metadata` (ObjectMeta is field 1 of every top-level object: label and
//! annotation keys, managedFields) are decoded; other top-level sections are compared whole
//! (one level deeper for ConfigMap and Secret `data` keys). The wire format is read by hand
//! (a hundred lines): a generated crate of every Kubernetes type would add thousands of types to
//! a sidecar whose memory is mostly code; the tests encode with prost from Kubernetes' own field
//! numbers instead (tests/integration/fields.rs).
//! Truncated or garbage input is an error, never a panic.

use std::collections::{BTreeMap, HashMap};
use std::hash::{DefaultHasher, Hash, Hasher};

use serde::Serialize;

/// Fields that change on every write: never reported as "changing".
const ALWAYS_CHANGING: [&str; 3] = [
    "metadata.resourceVersion",
    "metadata.generation",
    "metadata.managedFields",
];
const MAX_DEPTH: usize = 6;
const MAX_PATHS: usize = 256;
/// Per tracked object: at most this many distinct paths and writers are counted.
const MAX_COUNTED: usize = 32;
/// Objects tracked at once (the hot keys).
const MAX_OBJECTS: usize = 16;
const MAX_MANAGERS: usize = 32;

/// One field manager's entry in `metadata.managedFields`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ManagerEntry {
    pub manager: String,
    pub operation: String,
    pub subresource: String,
    /// The entry's time, as written (a moved time marks this revision's writer).
    pub time: String,
}

/// What is kept of one revision: a hash per field path, and the managers.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Revision {
    fields: BTreeMap<String, u64>,
    managers: Vec<ManagerEntry>,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DecodeError(pub String);

/// Decodes a value as etcd holds it for Kubernetes.
pub fn decode(value: &[u8]) -> Result<Revision, DecodeError> {
    if let Some(envelope) = value.strip_prefix(b"k8s\0") {
        return protobuf::decode(envelope);
    }
    match value.iter().find(|b| !b.is_ascii_whitespace()) {
        Some(b'{') => decode_json(value),
        _ => Err(DecodeError("neither JSON nor Kubernetes protobuf".into())),
    }
}

fn hash_of(bytes: impl Hash) -> u64 {
    let mut h = DefaultHasher::new();
    bytes.hash(&mut h);
    h.finish()
}

fn decode_json(value: &[u8]) -> Result<Revision, DecodeError> {
    let v: serde_json::Value =
        serde_json::from_slice(value).map_err(|e| DecodeError(format!("JSON: {e}")))?;
    let mut revision = Revision::default();
    flatten(&v, String::new(), 0, &mut revision.fields);
    if let Some(entries) = v
        .pointer("/metadata/managedFields")
        .and_then(|m| m.as_array())
    {
        for e in entries.iter().take(MAX_MANAGERS) {
            let text = |k: &str| e.get(k).and_then(|x| x.as_str()).unwrap_or("").to_string();
            revision.managers.push(ManagerEntry {
                manager: text("manager"),
                operation: text("operation"),
                subresource: text("subresource"),
                time: text("time"),
            });
        }
    }
    Ok(revision)
}

fn flatten(v: &serde_json::Value, path: String, depth: usize, out: &mut BTreeMap<String, u64>) {
    if out.len() >= MAX_PATHS || ALWAYS_CHANGING.contains(&path.as_str()) {
        return;
    }
    match v {
        serde_json::Value::Object(map) if depth < MAX_DEPTH && !map.is_empty() => {
            for (k, child) in map {
                let child_path = if path.is_empty() {
                    k.clone()
                } else {
                    format!("{path}.{k}")
                };
                flatten(child, child_path, depth + 1, out);
            }
        }
        // Scalars, arrays (`status.conditions`) and the depth cap: one leaf.
        leaf => {
            out.insert(path, hash_of(leaf.to_string()));
        }
    }
}

/// The field paths that differ between two revisions (added, removed or changed).
pub fn changed_paths(before: &Revision, after: &Revision) -> Vec<String> {
    let mut changed: Vec<String> = after
        .fields
        .iter()
        .filter(|(path, hash)| before.fields.get(*path) != Some(hash))
        .map(|(path, _)| path.clone())
        .collect();
    changed.extend(
        before
            .fields
            .keys()
            .filter(|path| !after.fields.contains_key(*path))
            .cloned(),
    );
    changed.sort();
    changed
}

/// The writers of `after`: the managedFields entries whose time moved (or that are new).
pub fn writers(before: &Revision, after: &Revision) -> Vec<(String, String)> {
    after
        .managers
        .iter()
        .filter(|m| {
            !before.managers.iter().any(|b| {
                b.manager == m.manager
                    && b.operation == m.operation
                    && b.subresource == m.subresource
                    && b.time == m.time
            })
        })
        .map(|m| (m.manager.clone(), m.operation.clone()))
        .collect()
}

/// A field path and how often it changed.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct FieldChange {
    pub path: String,
    pub changes: u64,
}

/// A field manager and how many revisions it wrote.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct WriterCount {
    pub manager: String,
    pub operation: String,
    pub writes: u64,
}

#[derive(Debug, Default)]
struct Tracked {
    last: Option<Revision>,
    changes: HashMap<String, u64>,
    writers: HashMap<(String, String), u64>,
    /// Revisions seen, and when last (for eviction).
    revisions: u64,
    touched: u64,
}

/// Changed fields and writers of a bounded set of hot objects.
#[derive(Debug, Default)]
pub struct FieldTracker {
    objects: HashMap<String, Tracked>,
    clock: u64,
}

impl FieldTracker {
    /// Records one revision of `key`. Undecodable values are ignored (the object is still
    /// counted as churn by the caller).
    pub fn record(&mut self, key: &str, value: &[u8]) {
        let Ok(revision) = decode(value) else { return };
        self.clock += 1;
        if !self.objects.contains_key(key) && self.objects.len() >= MAX_OBJECTS {
            // Forget the object with the fewest revisions (a hot object keeps its place; keys
            // written a few times take turns in the last one), the oldest among equals.
            if let Some(oldest) = self
                .objects
                .iter()
                .min_by_key(|(_, t)| (t.revisions, t.touched))
                .map(|(k, _)| k.clone())
            {
                self.objects.remove(&oldest);
            }
        }
        let tracked = self.objects.entry(key.to_string()).or_default();
        tracked.touched = self.clock;
        tracked.revisions += 1;
        if let Some(before) = &tracked.last {
            for path in changed_paths(before, &revision) {
                if tracked.changes.len() < MAX_COUNTED || tracked.changes.contains_key(&path) {
                    *tracked.changes.entry(path).or_default() += 1;
                }
            }
            for writer in writers(before, &revision) {
                if tracked.writers.len() < MAX_COUNTED || tracked.writers.contains_key(&writer) {
                    *tracked.writers.entry(writer).or_default() += 1;
                }
            }
        }
        tracked.last = Some(revision);
    }

    /// The most changed fields and the writers of `key`, most first (empty until two revisions
    /// were seen).
    pub fn report(&self, key: &str, top: usize) -> (Vec<FieldChange>, Vec<WriterCount>) {
        let Some(tracked) = self.objects.get(key) else {
            return (Vec::new(), Vec::new());
        };
        let mut fields: Vec<FieldChange> = tracked
            .changes
            .iter()
            .map(|(path, n)| FieldChange {
                path: path.clone(),
                changes: *n,
            })
            .collect();
        fields.sort_by(|a, b| b.changes.cmp(&a.changes).then_with(|| a.path.cmp(&b.path)));
        fields.truncate(top);
        let mut writers: Vec<WriterCount> = tracked
            .writers
            .iter()
            .map(|((manager, operation), n)| WriterCount {
                manager: manager.clone(),
                operation: operation.clone(),
                writes: *n,
            })
            .collect();
        writers.sort_by(|a, b| {
            b.writes
                .cmp(&a.writes)
                .then_with(|| a.manager.cmp(&b.manager))
        });
        writers.truncate(top);
        (fields, writers)
    }

    /// Stops tracking objects that are no longer hot.
    pub fn retain(&mut self, hot: impl Fn(&str) -> bool) {
        self.objects.retain(|k, _| hot(k));
    }
}

/// One sentence for the sync-loop warning: what changes, who writes, and what to do.
pub fn describe(fields: &[FieldChange], writers: &[WriterCount]) -> Option<String> {
    if fields.is_empty() && writers.is_empty() {
        return None;
    }
    let paths: Vec<String> = fields
        .iter()
        .take(3)
        .map(|f| format!("`{}`", f.path))
        .collect();
    let who: Vec<String> = writers
        .iter()
        .take(3)
        .map(|w| format!("`{}` ({})", w.manager, w.operation))
        .collect();
    let mut text = String::new();
    if !paths.is_empty() {
        text.push_str(&format!("changing: {}", paths.join(", ")));
    }
    match who.len() {
        0 => {}
        1 => text.push_str(&format!("; written by {} alone", who[0])),
        _ => text.push_str(&format!("; writers taking turns: {}", who.join(" and "))),
    }
    let field = fields
        .first()
        .map(|f| f.path.as_str())
        .unwrap_or("the field");
    text.push_str(&match who.len() {
        0 | 1 => format!(
            "; check the controller that rewrites `{field}` on every round"
        ),
        _ => format!(
            "; two writers fight over `{field}`: patch or ignore that field in vCluster's sync config, or stop the controller that fights"
        ),
    });
    Some(text)
}

mod protobuf;

#[cfg(test)]
mod tests;
