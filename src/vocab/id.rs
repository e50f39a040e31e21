//! Stable ids: the same key gives the same id on every run and host, so a
//! replay of the same events gives the same alert ids.

/// Namespace of tocsin's ids (UUID v5).
const NAMESPACE: uuid::Uuid = uuid::Uuid::from_bytes([
    0x6f, 0x2b, 0x1e, 0x43, 0x8c, 0x1a, 0x4e, 0x7d, 0x9a, 0x55, 0x0b, 0x3c, 0x71, 0x20, 0xe4, 0x19,
]);

/// The UUID v5 of `key` in tocsin's namespace.
pub(crate) fn stable_id(key: &str) -> String {
    stable_id_of(&[key.as_bytes()])
}

/// The UUID v5 of the concatenated `parts` in tocsin's namespace.
///
/// The same UUID as `uuid::Uuid::new_v5`, hashed with the `sha1` crate:
/// uuid's own SHA-1 is portable code, while `sha1` uses the CPU's SHA
/// instructions where it has them, and every alert hashes its event (a
/// kilobyte or more): several times faster on the alert path.
pub(crate) fn stable_id_of(parts: &[&[u8]]) -> String {
    use sha1::Digest;
    let mut hasher = sha1::Sha1::new();
    hasher.update(NAMESPACE.as_bytes());
    for part in parts {
        hasher.update(part);
    }
    let digest: [u8; 20] = hasher.finalize().into();
    let mut bytes = [0u8; 16];
    bytes.copy_from_slice(&digest[..16]);
    uuid::Builder::from_sha1_bytes(bytes)
        .into_uuid()
        .to_string()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ids_are_uuid_v5_of_the_key_in_the_namespace() {
        for key in ["", "rule\n{\"a\":1}", &"x".repeat(5000)] {
            assert_eq!(
                stable_id(key),
                uuid::Uuid::new_v5(&NAMESPACE, key.as_bytes()).to_string()
            );
        }
        assert_eq!(stable_id_of(&[b"ru", b"le"]), stable_id("rule"));
    }
}
