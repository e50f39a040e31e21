//! Stable ids: the same key gives the same id on every run and host, so a
//! replay of the same events gives the same alert ids.

/// Namespace of tocsin's ids (UUID v5).
const NAMESPACE: uuid::Uuid = uuid::Uuid::from_bytes([
    0x6f, 0x2b, 0x1e, 0x43, 0x8c, 0x1a, 0x4e, 0x7d, 0x9a, 0x55, 0x0b, 0x3c, 0x71, 0x20, 0xe4, 0x19,
]);

/// The UUID v5 of `key` in tocsin's namespace.
pub(crate) fn stable_id(key: &str) -> String {
    uuid::Uuid::new_v5(&NAMESPACE, key.as_bytes()).to_string()
}
