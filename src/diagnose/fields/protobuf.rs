//! The protobuf wire format, as far as the Kubernetes envelope and ObjectMeta need it: no
//! generated types, no allocation beyond what is reported; truncated or malformed input is an
//! error, never a panic.

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
