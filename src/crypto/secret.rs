//! Secrets the gate makes and compares: random ids and tokens from the OS, and the hashes under
//! which agent keys and the admin token are stored.
//!
//! Owns: [`random_hex`], [`hash_secret`] (hex SHA-256) and [`hashes_equal`] (constant time).
//! Never: logs or returns a secret; compares hashes with an early exit.

/// Hex SHA-256 of a key or token, for storing and comparing.
pub(crate) fn hash_secret(secret: &str) -> String {
    crate::hex::sha256(secret.as_bytes())
}

/// Compares two equal-length hashes in constant time.
pub(crate) fn hashes_equal(a: &str, b: &str) -> bool {
    a.len() == b.len()
        && a.bytes()
            .zip(b.bytes())
            .fold(0u8, |acc, (x, y)| acc | (x ^ y))
            == 0
}

/// `n` random bytes as lowercase hex, from the OS.
pub(crate) fn random_hex(n: usize) -> std::io::Result<String> {
    let mut bytes = vec![0u8; n];
    getrandom::getrandom(&mut bytes)
        .map_err(|e| std::io::Error::other(format!("the OS random source: {e}")))?;
    Ok(crate::hex::encode(&bytes))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn hashes_compare_and_random_ids_differ() {
        let h = hash_secret("key");
        assert_eq!(h.len(), 64);
        assert!(hashes_equal(&h, &hash_secret("key")));
        assert!(!hashes_equal(&h, &hash_secret("other")));
        assert_eq!(random_hex(16).unwrap().len(), 32);
        assert_ne!(random_hex(16).unwrap(), random_hex(16).unwrap());
    }
}
