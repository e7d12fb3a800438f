//! The tests of `web.rs`, kept beside it (a file stays short enough to read in one go).
use super::*;

fn write(dir: &Path, text: &str) -> PathBuf {
    let path = dir.join("web.yml");
    std::fs::write(&path, text).unwrap();
    path
}

#[test]
fn basic_auth_checks_the_bcrypt_hash_and_remembers_good_credentials() {
    let dir = tempfile::tempdir().unwrap();
    let hash = bcrypt::hash("s3cret", 4).unwrap();
    let path = write(dir.path(), &format!("basic_auth_users:\n  prom: {hash}\n"));
    let web = load(&path, true).unwrap();
    let auth = web.auth.unwrap();
    let header = |u: &str, p: &str| {
        format!(
            "Basic {}",
            base64::engine::general_purpose::STANDARD.encode(format!("{u}:{p}"))
        )
    };
    assert!(auth.allows(Some(&header("prom", "s3cret"))));
    assert!(auth.allows(Some(&header("prom", "s3cret"))), "remembered");
    assert!(!auth.allows(Some(&header("prom", "wrong"))));
    assert!(!auth.allows(Some(&header("other", "s3cret"))));
    assert!(!auth.allows(Some("Bearer x")));
    assert!(!auth.allows(None));
}

/// A cost of 31 passed the format check and made `load` run for days (found while writing
/// fuzz/fuzz_targets/web_config.rs).
#[test]
fn a_bcrypt_cost_that_would_take_minutes_is_refused_without_hashing() {
    let hash = bcrypt::hash("x", 4).unwrap().replacen("$04$", "$31$", 1);
    let err = parse(
        &format!("basic_auth_users:\n  prom: '{hash}'\n"),
        Path::new("."),
        true,
    )
    .unwrap_err();
    assert!(
        matches!(
            &err,
            WebFieldError::Hash {
                why: HashError::CostTooHigh(31),
                ..
            }
        ),
        "{err:?}"
    );
    assert!(
        err.to_string()
            .contains("basic_auth_users.prom: bcrypt cost 31 is above 16"),
        "{err}"
    );
}

/// The smoke run's `web_config` target timed out (10 s, unoptimised) on a cost-14 hash:
/// the check derived a key to test the form. Now the form is parsed, and every cost up to
/// 16 is taken at once; malformed hashes are still refused.
#[test]
fn a_well_formed_hash_is_taken_without_deriving_a_key() {
    let config = |hash: &str| format!("basic_auth_users:\n  prometheus: '{hash}'\n");
    let found = "$2y$14$Hk7Hc1Xo0Jv3Z0o5q3A6ZOeM3aF3N0a0nW2Z9V7cX8kP8sY0mQm1e";
    assert!(parse(&config(found), Path::new("."), true).is_ok());
    let sixteen = bcrypt::hash("x", 4).unwrap().replacen("$04$", "$16$", 1);
    assert!(parse(&config(&sixteen), Path::new("."), true).is_ok());
    for bad in [
        "$2y$03$Hk7Hc1Xo0Jv3Z0o5q3A6ZOeM3aF3N0a0nW2Z9V7cX8kP8sY0mQm1e", // below bcrypt's 4
        "$2y$14$Hk7Hc1Xo0Jv3Z0o5q3A6ZOeM3aF3N0a0nW2Z9V7cX8kP8sY0mQm1",  // 59 characters
        "$3y$14$Hk7Hc1Xo0Jv3Z0o5q3A6ZOeM3aF3N0a0nW2Z9V7cX8kP8sY0mQm1e", // not bcrypt's prefix
    ] {
        let err = parse(&config(bad), Path::new("."), true).unwrap_err();
        let not_bcrypt = matches!(
            &err,
            WebFieldError::Hash {
                why: HashError::NotBcrypt,
                ..
            }
        );
        assert!(not_bcrypt, "{bad}: {err:?}");
    }
}

#[test]
fn a_bad_file_names_the_field() {
    let dir = tempfile::tempdir().unwrap();
    let load = |path: &Path, open: bool| load(path, open).map_err(|e| e.to_string());
    let err = load(
        &write(dir.path(), "basic_auth_users:\n  prom: plain\n"),
        true,
    )
    .unwrap_err();
    assert!(
        err.contains("basic_auth_users.prom: not a bcrypt hash"),
        "{err}"
    );
    let err = load(
        &write(dir.path(), "tls_server_config:\n  cert_file: x\n"),
        true,
    )
    .unwrap_err();
    assert!(err.contains("key_file"), "{err}");
    let err = load(
        &write(
            dir.path(),
            "tls_server_config:\n  cert_file: a.crt\n  key_file: a.key\n",
        ),
        true,
    )
    .unwrap_err();
    assert!(
        err.contains("tls_server_config.cert_file") && err.contains("a.crt"),
        "{err}"
    );
    let err = load(&write(dir.path(), "basic_auth: {}\n"), true).unwrap_err();
    assert!(err.contains("unknown field"), "{err}");
}
