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
//! a sidecar whose memory is mostly code; the tests encode with such a crate (k8s-pb) instead.
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

/// The protobuf wire format, as far as the envelope and ObjectMeta need it.
mod protobuf {
    use super::{DecodeError, ManagerEntry, Revision, hash_of};

    enum Wire<'a> {
        Varint(u64),
        Bytes(&'a [u8]),
        Fixed,
    }

    /// The fields of one message, in order; an error on truncated or malformed input.
    fn fields(mut buf: &[u8]) -> Result<Vec<(u64, Wire<'_>)>, DecodeError> {
        let mut out = Vec::new();
        while !buf.is_empty() {
            let tag = varint(&mut buf)?;
            let (number, wire_type) = (tag >> 3, tag & 7);
            if number == 0 {
                return Err(DecodeError("protobuf: field number 0".into()));
            }
            let value = match wire_type {
                0 => Wire::Varint(varint(&mut buf)?),
                1 => {
                    buf = buf.get(8..).ok_or(truncated())?;
                    Wire::Fixed
                }
                2 => {
                    let len = usize::try_from(varint(&mut buf)?).map_err(|_| truncated())?;
                    let (bytes, rest) = (buf.get(..len).ok_or(truncated())?, &buf[len..]);
                    buf = rest;
                    Wire::Bytes(bytes)
                }
                5 => {
                    buf = buf.get(4..).ok_or(truncated())?;
                    Wire::Fixed
                }
                other => return Err(DecodeError(format!("protobuf: wire type {other}"))),
            };
            out.push((number, value));
        }
        Ok(out)
    }

    fn truncated() -> DecodeError {
        DecodeError("protobuf: truncated".into())
    }

    fn varint(buf: &mut &[u8]) -> Result<u64, DecodeError> {
        let mut value = 0u64;
        for shift in (0..64).step_by(7) {
            let (&byte, rest) = buf.split_first().ok_or(truncated())?;
            *buf = rest;
            value |= u64::from(byte & 0x7f) << shift;
            if byte & 0x80 == 0 {
                return Ok(value);
            }
        }
        Err(DecodeError("protobuf: varint too long".into()))
    }

    fn text(bytes: &[u8]) -> String {
        String::from_utf8_lossy(bytes).into_owned()
    }

    /// The first length-delimited field `number` of a message.
    fn bytes_of<'a>(fields: &'a [(u64, Wire<'a>)], number: u64) -> Option<&'a [u8]> {
        fields.iter().find_map(|(n, w)| match w {
            Wire::Bytes(b) if *n == number => Some(*b),
            _ => None,
        })
    }

    /// A map entry (field 1 key, field 2 value).
    fn entry(bytes: &[u8]) -> Result<(String, u64), DecodeError> {
        let f = fields(bytes)?;
        let key = bytes_of(&f, 1).map(text).unwrap_or_default();
        Ok((key, hash_of(bytes_of(&f, 2).unwrap_or_default())))
    }

    pub(super) fn decode(envelope: &[u8]) -> Result<Revision, DecodeError> {
        let unknown = fields(envelope)?;
        let kind = bytes_of(&unknown, 1)
            .map(fields)
            .transpose()?
            .and_then(|type_meta| bytes_of(&type_meta, 2).map(text))
            .unwrap_or_default();
        let raw = bytes_of(&unknown, 2).ok_or(DecodeError("protobuf: no raw object".into()))?;
        let mut revision = Revision::default();
        let mut sections: std::collections::BTreeMap<String, Vec<u8>> = Default::default();
        for (number, value) in fields(raw)? {
            let Wire::Bytes(bytes) = value else {
                // A scalar top-level field (`immutable`): compared whole.
                sections
                    .entry(section(&kind, number))
                    .or_default()
                    .push(number as u8);
                continue;
            };
            let name = section(&kind, number);
            if number == 1 {
                metadata(bytes, &mut revision)?;
            } else if (kind == "ConfigMap" || kind == "Secret") && name.ends_with("ata") {
                let (key, hash) = entry(bytes)?;
                revision.fields.insert(format!("{name}.{key}"), hash);
            } else {
                sections.entry(name).or_default().extend_from_slice(bytes);
            }
        }
        for (name, bytes) in sections {
            revision.fields.insert(name, hash_of(bytes));
        }
        Ok(revision)
    }

    fn section(kind: &str, number: u64) -> String {
        match (kind, number) {
            (_, 1) => "metadata".into(),
            ("ConfigMap", 2) | ("Secret", 2) => "data".into(),
            ("ConfigMap", 3) => "binaryData".into(),
            ("ConfigMap", 4) | ("Secret", 5) => "immutable".into(),
            ("Secret", 3) => "type".into(),
            ("Secret", 4) => "stringData".into(),
            (_, 2) => "spec".into(),
            (_, 3) => "status".into(),
            (_, n) => format!("field{n}"),
        }
    }

    fn metadata(bytes: &[u8], revision: &mut Revision) -> Result<(), DecodeError> {
        let mut others: std::collections::BTreeMap<&str, Vec<u8>> = Default::default();
        for (number, value) in fields(bytes)? {
            let Wire::Bytes(b) = value else {
                continue; // generation (7), deletionGracePeriodSeconds (10)
            };
            match number {
                6 => {} // resourceVersion: changes on every write
                11 | 12 => {
                    let (key, hash) = entry(b)?;
                    let map = if number == 11 {
                        "labels"
                    } else {
                        "annotations"
                    };
                    revision
                        .fields
                        .insert(format!("metadata.{map}.{key}"), hash);
                }
                17 if revision.managers.len() < super::MAX_MANAGERS => {
                    let f = fields(b)?;
                    let time = match bytes_of(&f, 4) {
                        Some(t) => fields(t)?
                            .iter()
                            .map(|(n, w)| match w {
                                Wire::Varint(v) => format!("{n}:{v};"),
                                _ => String::new(),
                            })
                            .collect(),
                        None => String::new(),
                    };
                    revision.managers.push(ManagerEntry {
                        manager: bytes_of(&f, 1).map(text).unwrap_or_default(),
                        operation: bytes_of(&f, 2).map(text).unwrap_or_default(),
                        subresource: bytes_of(&f, 8).map(text).unwrap_or_default(),
                        time,
                    });
                }
                17 => {}
                n => {
                    let name = match n {
                        1 => "name",
                        3 => "namespace",
                        5 => "uid",
                        8 => "creationTimestamp",
                        9 => "deletionTimestamp",
                        13 => "ownerReferences",
                        14 => "finalizers",
                        _ => "other",
                    };
                    others.entry(name).or_default().extend_from_slice(b);
                }
            }
        }
        for (name, bytes) in others {
            revision
                .fields
                .insert(format!("metadata.{name}"), hash_of(bytes));
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A Widget as the apiserver stores it; `times`: each manager's last write.
    fn widget(size: u32, times: (&str, &str), secret: &str) -> Vec<u8> {
        serde_json::json!({
            "apiVersion": "example.com/v1",
            "kind": "Widget",
            "metadata": {
                "name": "w", "namespace": "default", "resourceVersion": format!("{size}{}", times.0),
                "managedFields": [
                    {"manager": "vcluster", "operation": "Update", "time": times.0,
                     "fieldsType": "FieldsV1", "fieldsV1": {"f:spec": {"f:size": {}}}},
                    {"manager": "widget-operator", "operation": "Update", "time": times.1,
                     "fieldsType": "FieldsV1", "fieldsV1": {"f:spec": {"f:size": {}}}}
                ]
            },
            "spec": {"size": size, "password": secret},
            "status": {"conditions": [{"type": "Ready"}]}
        })
        .to_string()
        .into_bytes()
    }

    #[test]
    fn the_flipping_field_and_the_writers_taking_turns() {
        let mut t = FieldTracker::default();
        let key = "/registry/example.com/widgets/default/w";
        let (mut ours, mut theirs) = ("t0".to_string(), "t0".to_string());
        for i in 0..10 {
            let size = if i % 2 == 0 {
                ours = format!("t{i}");
                3
            } else {
                theirs = format!("t{i}");
                5
            };
            t.record(key, &widget(size, (&ours, &theirs), "hunter2-s3cr3t"));
        }
        let (fields, writers) = t.report(key, 5);
        assert_eq!(
            fields[0],
            FieldChange {
                path: "spec.size".into(),
                changes: 9
            }
        );
        assert!(
            fields
                .iter()
                .all(|f| !f.path.contains("resourceVersion") && !f.path.contains("managedFields")),
            "{fields:?}"
        );
        let names: Vec<&str> = writers.iter().map(|w| w.manager.as_str()).collect();
        assert_eq!(names.len(), 2, "{writers:?}");
        assert!(names.contains(&"vcluster") && names.contains(&"widget-operator"));
        let text = describe(&fields, &writers).unwrap();
        assert!(
            text.contains("`spec.size`") && text.contains("taking turns"),
            "{text}"
        );
        // Never values: neither the secret nor the sizes appear in anything reported.
        let all = format!("{fields:?}{writers:?}{text}");
        assert!(!all.contains("hunter2") && !all.contains("s3cr3t"), "{all}");
    }

    #[test]
    fn garbage_and_truncated_input_is_an_error_never_a_panic() {
        assert!(decode(b"wwwwwwww").is_err());
        assert!(decode(b"{not json").is_err());
        assert!(decode(b"k8s\0").is_err(), "an envelope without an object");
        assert!(decode(b"k8s\0\x12\x05ab").is_err(), "length beyond the end");
        assert!(decode(b"k8s\0\xff\xff\xff\xff\xff\xff\xff\xff\xff\xff\xff").is_err());
        assert!(decode(b"k8s\0\x0f").is_err(), "wire type 7");
        // Every prefix of a valid envelope: an error or a value, never a panic.
        let valid =
            b"k8s\0\x0a\x0f\x0a\x02v1\x12\x09ConfigMap\x12\x0a\x0a\x03\x0a\x01a\x12\x03\x0a\x01b";
        for end in 0..valid.len() {
            let _ = decode(&valid[..end]);
        }
        assert!(decode(valid).is_ok());
    }

    #[test]
    fn a_hot_object_keeps_its_place_among_many_keys_written_twice() {
        let mut t = FieldTracker::default();
        let hot = "/registry/x/hot";
        for i in 0..2000u64 {
            if i % 10 == 0 {
                let value = serde_json::json!({"spec": {"size": i % 20}}).to_string();
                t.record(hot, value.as_bytes());
            }
            let value = serde_json::json!({"spec": {"n": i}}).to_string();
            t.record(&format!("/registry/x/k{}", i % 500), value.as_bytes());
        }
        let (fields, _) = t.report(hot, 3);
        assert_eq!(fields[0].path, "spec.size");
        assert!(fields[0].changes >= 150, "{fields:?}");
    }

    #[test]
    fn memory_is_bounded_in_objects_and_counted_paths() {
        let mut t = FieldTracker::default();
        for k in 0..100 {
            for v in 0..3 {
                let value = serde_json::json!({"spec": {format!("f{v}"): v}}).to_string();
                t.record(&format!("/registry/x/{k}"), value.as_bytes());
            }
        }
        assert!(t.objects.len() <= MAX_OBJECTS);
        let mut t = FieldTracker::default();
        for v in 0..200 {
            let value = serde_json::json!({"spec": {format!("f{v}"): v}}).to_string();
            t.record("/registry/x/one", value.as_bytes());
        }
        assert!(t.objects["/registry/x/one"].changes.len() <= MAX_COUNTED);
    }
}
