//! What the brokers can do, checked before records flow: exactly-once
//! delivery needs Kafka transactions, and a broker without them would
//! otherwise fail only at the first commit, with records already read.
//!
//! librdkafka learns each broker's API versions but does not expose them,
//! and an empty transaction never reaches the broker, so a probe
//! transaction proves nothing. This sends the protocol's own
//! `ApiVersions` request (v0, a few bytes each way) on a plain connection.
//! Over TLS or SASL the check is skipped with a warning.

use super::KafkaError;
use std::io::{Read, Write};
use std::net::{TcpStream, ToSocketAddrs};
use std::time::Duration;

/// The APIs a transactional producer uses: InitProducerId,
/// AddPartitionsToTxn, AddOffsetsToTxn, EndTxn, TxnOffsetCommit.
const TRANSACTION_APIS: [(i16, &str); 5] = [
    (22, "InitProducerId"),
    (24, "AddPartitionsToTxn"),
    (25, "AddOffsetsToTxn"),
    (26, "EndTxn"),
    (28, "TxnOffsetCommit"),
];

const API_VERSIONS: i16 = 18;
/// A broker's answer is a few hundred bytes; anything larger is not one.
const MAX_RESPONSE: usize = 1 << 20;

/// Fails, naming the missing APIs, when the first bootstrap broker that
/// answers lacks Kafka transactions.
pub(crate) fn check_transactions(properties: &[(String, String)]) -> Result<(), KafkaError> {
    let property = |key: &str| {
        properties
            .iter()
            .find(|(k, _)| k == key)
            .map(|(_, v)| v.as_str())
    };
    let protocol = property("security.protocol").unwrap_or("plaintext");
    if !protocol.eq_ignore_ascii_case("plaintext") {
        tracing::warn!(
            protocol,
            "cannot check over this security.protocol that the brokers support transactions; a broker without them fails at the first commit"
        );
        return Ok(());
    }
    let servers = property("bootstrap.servers").unwrap_or_default();
    let mut last_error = String::from("no bootstrap.servers");
    for server in servers.split(',').map(str::trim).filter(|s| !s.is_empty()) {
        match api_versions(server) {
            Ok(apis) => {
                let missing: Vec<&str> = TRANSACTION_APIS
                    .iter()
                    .filter(|(key, _)| !apis.contains(key))
                    .map(|(_, name)| *name)
                    .collect();
                if missing.is_empty() {
                    return Ok(());
                }
                return Err(KafkaError::Other(format!(
                    "delivery.mode = \"exactly-once\" needs Kafka transactions, and the broker at {server} does not support {}; use at-least-once, or a broker with transactions (Apache Kafka 0.11 or later)",
                    missing.join(", ")
                )));
            }
            Err(e) => last_error = format!("{server}: {e}"),
        }
    }
    Err(KafkaError::Other(format!(
        "cannot ask the brokers whether they support transactions (needed by exactly-once): {last_error}"
    )))
}

/// The API keys a broker supports.
fn api_versions(server: &str) -> std::io::Result<Vec<i16>> {
    let timeout = Duration::from_secs(10);
    let address = server
        .to_socket_addrs()?
        .next()
        .ok_or_else(|| std::io::Error::other("no address"))?;
    let mut stream = TcpStream::connect_timeout(&address, timeout)?;
    stream.set_read_timeout(Some(timeout))?;
    stream.set_write_timeout(Some(timeout))?;
    stream.write_all(&request())?;
    let mut size = [0u8; 4];
    stream.read_exact(&mut size)?;
    let size = usize::try_from(i32::from_be_bytes(size))
        .ok()
        .filter(|n| *n <= MAX_RESPONSE)
        .ok_or_else(|| std::io::Error::other("not a Kafka response"))?;
    let mut body = vec![0u8; size];
    stream.read_exact(&mut body)?;
    parse_response(&body).ok_or_else(|| std::io::Error::other("malformed ApiVersions response"))
}

const CORRELATION_ID: i32 = 1;
const CLIENT_ID: &[u8] = b"tocsin";

/// ApiVersions v0: header (api key, version, correlation id, client id), no body.
fn request() -> Vec<u8> {
    let mut message = Vec::with_capacity(16 + CLIENT_ID.len());
    message.extend_from_slice(&API_VERSIONS.to_be_bytes());
    message.extend_from_slice(&0i16.to_be_bytes());
    message.extend_from_slice(&CORRELATION_ID.to_be_bytes());
    message.extend_from_slice(&(CLIENT_ID.len() as i16).to_be_bytes());
    message.extend_from_slice(CLIENT_ID);
    let mut framed = (message.len() as i32).to_be_bytes().to_vec();
    framed.append(&mut message);
    framed
}

/// Correlation id, error code, then `[api key, min version, max version]`.
fn parse_response(body: &[u8]) -> Option<Vec<i16>> {
    let mut at = 0usize;
    let mut take = |n: usize| -> Option<&[u8]> {
        let bytes = body.get(at..at.checked_add(n)?)?;
        at += n;
        Some(bytes)
    };
    let correlation = i32::from_be_bytes(take(4)?.try_into().ok()?);
    let error = i16::from_be_bytes(take(2)?.try_into().ok()?);
    if correlation != CORRELATION_ID || error != 0 {
        return None;
    }
    let count = i32::from_be_bytes(take(4)?.try_into().ok()?);
    let count = usize::try_from(count).ok()?;
    let mut keys = Vec::with_capacity(count.min(1000));
    for _ in 0..count {
        let entry = take(6)?;
        keys.push(i16::from_be_bytes([*entry.first()?, *entry.get(1)?]));
    }
    Some(keys)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn response(keys: &[i16]) -> Vec<u8> {
        let mut body = CORRELATION_ID.to_be_bytes().to_vec();
        body.extend_from_slice(&0i16.to_be_bytes());
        body.extend_from_slice(&(keys.len() as i32).to_be_bytes());
        for k in keys {
            body.extend_from_slice(&k.to_be_bytes());
            body.extend_from_slice(&0i16.to_be_bytes());
            body.extend_from_slice(&3i16.to_be_bytes());
        }
        body
    }

    #[test]
    fn the_request_is_a_framed_api_versions_v0_header() {
        let r = request();
        assert_eq!(&r[..4], &(r.len() as i32 - 4).to_be_bytes());
        assert_eq!(&r[4..6], &18i16.to_be_bytes());
        assert!(r.ends_with(b"tocsin"));
    }

    #[test]
    fn responses_list_api_keys_and_broken_ones_are_refused() {
        assert_eq!(
            parse_response(&response(&[0, 18, 26])),
            Some(vec![0, 18, 26])
        );
        let full = response(&[0, 18, 26]);
        for cut in 0..full.len() {
            assert_eq!(parse_response(&full[..cut]), None, "{cut}");
        }
        let mut lying = response(&[1]);
        lying[6..10].copy_from_slice(&i32::MAX.to_be_bytes());
        assert_eq!(parse_response(&lying), None);
    }

    #[test]
    fn a_broker_without_end_txn_is_named_with_what_it_lacks() {
        let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        let address = listener.local_addr().unwrap().to_string();
        let broker = std::thread::spawn(move || {
            let (mut s, _) = listener.accept().unwrap();
            let mut size = [0u8; 4];
            s.read_exact(&mut size).unwrap();
            let mut req = vec![0u8; i32::from_be_bytes(size) as usize];
            s.read_exact(&mut req).unwrap();
            let body = response(&[0, 1, 3, 18, 22, 24, 25, 28]);
            s.write_all(&(body.len() as i32).to_be_bytes()).unwrap();
            s.write_all(&body).unwrap();
        });
        let err = check_transactions(&[("bootstrap.servers".into(), address)]).unwrap_err();
        broker.join().unwrap();
        assert!(err.to_string().contains("does not support EndTxn"), "{err}");
    }
}
