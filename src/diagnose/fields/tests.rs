//! The field diff, the writer attribution and the decoders, without etcd.

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
