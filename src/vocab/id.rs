//! Stable ids: the same key gives the same id on every run and host, so a
//! replay of the same events gives the same alert ids.

/// Namespace of tocsin's ids (UUID v5).
const NAMESPACE: uuid::Uuid = uuid::Uuid::from_bytes([
    0x6f, 0x2b, 0x1e, 0x43, 0x8c, 0x1a, 0x4e, 0x7d, 0x9a, 0x55, 0x0b, 0x3c, 0x71, 0x20, 0xe4, 0x19,
]);

/// The UUID v5 of `key` in tocsin's namespace.
pub(crate) fn stable_id(key: &str) -> String {
    let mut stable = StableKey::new();
    stable.push(key.as_bytes());
    stable.id()
}

/// A stable id's key, hashed as it is given. Ids whose keys share a
/// beginning hash it once: the key is cloned after it, and each clone is
/// given its own end (an event's alerts: the event once, then each rule id).
///
/// The same UUID as `uuid::Uuid::new_v5`, hashed with the `sha1` crate:
/// uuid's own SHA-1 is portable code, while `sha1` uses the CPU's SHA
/// instructions where it has them, and an alert's key holds its event (a
/// kilobyte or more).
#[derive(Clone)]
pub(crate) struct StableKey(sha1::Sha1);

impl StableKey {
    /// An empty key, in tocsin's namespace.
    pub(crate) fn new() -> StableKey {
        use sha1::Digest;
        StableKey(sha1::Sha1::new_with_prefix(NAMESPACE.as_bytes()))
    }

    /// Appends `part` to the key.
    pub(crate) fn push(&mut self, part: &[u8]) {
        sha1::Digest::update(&mut self.0, part);
    }

    /// The UUID v5 of the key.
    pub(crate) fn id(self) -> String {
        let digest: [u8; 20] = sha1::Digest::finalize(self.0).into();
        let mut bytes = [0u8; 16];
        bytes.copy_from_slice(&digest[..16]);
        uuid::Builder::from_sha1_bytes(bytes)
            .into_uuid()
            .to_string()
    }
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
        let mut shared = StableKey::new();
        shared.push(b"event\n");
        let mut one = shared.clone();
        one.push(b"rule a");
        assert_eq!(one.id(), stable_id("event\nrule a"));
        shared.push(b"rule b");
        assert_eq!(shared.id(), stable_id("event\nrule b"));
    }
}
