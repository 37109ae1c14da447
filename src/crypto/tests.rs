use super::*;
use serde_json::Value;

fn vectors(name: &str) -> Vec<Value> {
    let path = format!(
        "{}/tests/data/fernet/{name}.json",
        env!("CARGO_MANIFEST_DIR")
    );
    serde_json::from_slice(&std::fs::read(path).unwrap()).unwrap()
}

/// Seconds since the epoch of an RFC 3339 time like `1985-10-26T01:20:01-07:00`.
fn unix(time: &str) -> u64 {
    let (date, rest) = time.split_once('T').unwrap();
    let mut d = date.split('-').map(|p| p.parse::<i64>().unwrap());
    let (y, m, day) = (d.next().unwrap(), d.next().unwrap(), d.next().unwrap());
    let (clock, offset) = rest.split_at(8);
    let mut c = clock.split(':').map(|p| p.parse::<i64>().unwrap());
    let secs = c.next().unwrap() * 3600 + c.next().unwrap() * 60 + c.next().unwrap();
    let sign = if offset.starts_with('-') { -1 } else { 1 };
    let (oh, om) = offset[1..].split_once(':').unwrap();
    let off = sign * (oh.parse::<i64>().unwrap() * 3600 + om.parse::<i64>().unwrap() * 60);
    // Days from civil (Howard Hinnant).
    let y = if m <= 2 { y - 1 } else { y };
    let era = y.div_euclid(400);
    let yoe = y - era * 400;
    let doy = (153 * (if m > 2 { m - 3 } else { m + 9 }) + 2) / 5 + day - 1;
    let doe = yoe * 365 + yoe / 4 - yoe / 100 + doy;
    let days = era * 146_097 + doe - 719_468;
    u64::try_from(days * 86_400 + secs - off).unwrap()
}

#[test]
fn spec_verify_vectors_decrypt() {
    for v in vectors("verify") {
        let key = Fernet::new(v["secret"].as_str().unwrap()).unwrap();
        let ttl = v["ttl_sec"].as_u64();
        let plain = key
            .decrypt_at_time(
                v["token"].as_str().unwrap(),
                ttl,
                unix(v["now"].as_str().unwrap()),
            )
            .unwrap();
        assert_eq!(plain, v["src"].as_str().unwrap().as_bytes());
    }
}

#[test]
fn spec_invalid_vectors_are_refused() {
    let cases = vectors("invalid");
    assert!(!cases.is_empty());
    for v in cases {
        let key = Fernet::new(v["secret"].as_str().unwrap()).unwrap();
        let ttl = v["ttl_sec"].as_u64();
        let res = key.decrypt_at_time(
            v["token"].as_str().unwrap(),
            ttl,
            unix(v["now"].as_str().unwrap()),
        );
        assert!(res.is_err(), "{}", v["desc"]);
    }
}

#[test]
fn spec_generate_vector_tokens_decrypt_to_their_source() {
    for v in vectors("generate") {
        let key = Fernet::new(v["secret"].as_str().unwrap()).unwrap();
        let plain = key
            .decrypt_at_time(
                v["token"].as_str().unwrap(),
                None,
                unix(v["now"].as_str().unwrap()),
            )
            .unwrap();
        assert_eq!(plain, v["src"].as_str().unwrap().as_bytes());
    }
}

#[test]
fn secrets_are_bound_to_their_connection_and_variable() {
    let ring = Keyring::from_list(&Keyring::generate_key(), "test").unwrap();
    let token = ring.encrypt_secret("conn-1", "TOKEN", "s3cret");
    assert!(!token.contains("s3cret"));
    assert_eq!(
        ring.decrypt_secret("conn-1", "TOKEN", &token).unwrap(),
        "s3cret"
    );
    assert_eq!(
        ring.decrypt_secret("conn-2", "TOKEN", &token),
        Err(Error::WrongBinding)
    );
    assert_eq!(
        ring.decrypt_secret("conn-1", "OTHER", &token),
        Err(Error::WrongBinding)
    );
    let other = Keyring::from_list(&Keyring::generate_key(), "test").unwrap();
    assert_eq!(
        other.decrypt_secret("conn-1", "TOKEN", &token),
        Err(Error::Undecryptable)
    );
}

#[test]
fn rotation_old_keys_decrypt_the_first_encrypts() {
    let old = Keyring::generate_key();
    let new = Keyring::generate_key();
    let before = Keyring::from_list(&old, "test")
        .unwrap()
        .encrypt_secret("c", "n", "v");
    let both = Keyring::from_list(&format!("{new},{old}"), "test").unwrap();
    let after = both.reencrypt_secret("c", "n", &before).unwrap();
    let only_new = Keyring::from_list(&new, "test").unwrap();
    assert_eq!(only_new.decrypt_secret("c", "n", &after).unwrap(), "v");
    assert!(only_new.decrypt_secret("c", "n", &before).is_err());
}

#[test]
fn bad_keys_are_named_without_their_value() {
    let err = Keyring::from_list("not-a-key", "AEGIS_FERNET_KEYS").unwrap_err();
    assert!(!err.to_string().contains("not-a-key"));
    assert_eq!(Keyring::from_list(" , ", "x").unwrap_err(), Error::NoKeys);
}

#[test]
fn a_key_file_is_created_0600_and_reused() {
    let dir = std::env::temp_dir().join(format!("aegis-crypto-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir).unwrap();
    // The environment variable would win; this test exercises the file path only.
    if std::env::var(KEYS_ENV).is_err() {
        let first = Keyring::load_or_create(&dir).unwrap();
        let token = first.encrypt_secret("c", "n", "v");
        let again = Keyring::load_or_create(&dir).unwrap();
        assert_eq!(again.decrypt_secret("c", "n", &token).unwrap(), "v");
        let mode = std::os::unix::fs::PermissionsExt::mode(
            &std::fs::metadata(dir.join(KEY_FILE)).unwrap().permissions(),
        );
        assert_eq!(mode & 0o777, 0o600);
    }
    let _ = std::fs::remove_dir_all(&dir);
}
