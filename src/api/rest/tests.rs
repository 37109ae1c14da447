use super::common::seal_secret;
use crate::crypto::Keyring;

fn keyring() -> Keyring {
    Keyring::from_list(&Keyring::generate_key(), "test").expect("a generated key is valid")
}

#[test]
fn a_plain_value_is_sealed_for_its_binding() {
    let keyring = keyring();
    let token = seal_secret(&keyring, "ws/conn", "TOKEN", "s3cret").expect("sealed");
    assert!(!token.contains("s3cret"));
    assert_eq!(
        keyring.decrypt_secret("ws/conn", "TOKEN", &token),
        Ok("s3cret".to_owned())
    );
}

#[test]
fn an_encrypted_value_is_kept_when_it_opens_for_its_binding() {
    let keyring = keyring();
    let token = keyring.encrypt_secret("ws/conn", "header:X-Key", "s3cret");
    let sent = format!("encrypted:{token}");
    assert_eq!(
        seal_secret(&keyring, "ws/conn", "header:X-Key", &sent),
        Ok(token)
    );
}

#[test]
fn an_encrypted_value_for_another_binding_is_refused() {
    let keyring = keyring();
    let token = keyring.encrypt_secret("ws/other", "TOKEN", "s3cret");
    let sent = format!("encrypted:{token}");
    assert!(seal_secret(&keyring, "ws/conn", "TOKEN", &sent).is_err());
    assert!(seal_secret(&keyring, "ws/conn", "OTHER", &sent).is_err());
}
