//! What helm-values-snippet.yaml gives etcd, read from the file itself: the tests that prove the
//! snippet's flags run what users install, not a copy that can drift.

/// Every `extraArgs` list of helm-values-snippet.yaml, as written (both documents).
pub fn extra_args() -> Vec<Vec<String>> {
    let text = std::fs::read_to_string(concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/helm-values-snippet.yaml"
    ))
    .unwrap();
    fn walk(v: &serde_yaml_ng::Value, found: &mut Vec<Vec<String>>) {
        match v {
            serde_yaml_ng::Value::Mapping(map) => {
                for (key, value) in map {
                    if key.as_str() == Some("extraArgs") {
                        let args = value.as_sequence().expect("extraArgs is a list");
                        found.push(
                            args.iter()
                                .map(|a| a.as_str().expect("a string").to_string())
                                .collect(),
                        );
                    } else {
                        walk(value, found);
                    }
                }
            }
            serde_yaml_ng::Value::Sequence(items) => items.iter().for_each(|i| walk(i, found)),
            _ => {}
        }
    }
    let mut found = Vec::new();
    for doc in serde_yaml_ng::Deserializer::from_str(&text) {
        let value = serde::Deserialize::deserialize(doc).unwrap();
        walk(&value, &mut found);
    }
    found
}

/// The snippet's etcd flags without the quota (a test picks a quota small enough to fill).
pub fn etcd_flags_but_the_quota() -> Vec<String> {
    let lists = extra_args();
    let first = lists.first().expect("the snippet has extraArgs");
    assert!(
        lists.iter().all(|l| l == first),
        "both documents give etcd the same flags: {lists:?}"
    );
    first
        .iter()
        .filter(|a| !a.starts_with("--quota-backend-bytes"))
        .cloned()
        .collect()
}
