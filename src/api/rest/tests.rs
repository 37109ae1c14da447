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

#[test]
fn query_values_and_path_segments_are_percent_decoded() {
    assert_eq!(
        super::query_param("a=1&workspace_id=team%20one", "workspace_id").ok(),
        Some(Some("team one".to_owned()))
    );
    assert_eq!(
        super::query_param("workspace_id=a+b", "workspace_id").ok(),
        Some(Some("a b".to_owned()))
    );
    assert_eq!(
        super::query_param("other=1", "workspace_id").ok(),
        Some(None)
    );
    assert_eq!(
        super::percent_decode("slack.post%2Fmessage")
            .ok()
            .as_deref(),
        Some("slack.post/message")
    );
    for bad in ["%", "%4", "%zz", "%ff%fe"] {
        let e = super::percent_decode(bad).err().map(|e| e.status);
        assert_eq!(e, Some(400), "{bad}");
    }
}
