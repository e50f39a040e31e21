//! Fields of sshd messages: who, from where, how, and whether it worked.
//!
//! sshd writes everything into the free-text message; correlation rules need
//! the source address and user as fields (brute force per address, spraying
//! across users). Adds `user`, `src_ip`, `src_port`, `auth_method` and
//! `outcome` (`success`/`failure`) when the message says them.

use regex::Regex;
use serde_json::{Map, Value};
use std::sync::OnceLock;

fn auth_regex() -> &'static Regex {
    static RE: OnceLock<Regex> = OnceLock::new();
    RE.get_or_init(|| {
        Regex::new(r"(Failed|Accepted) (\S+) for (?:invalid user )?(\S+) from (\S+) port (\d+)")
            .unwrap_or_else(|e| panic!("sshd auth regex is valid: {e}"))
    })
}

fn invalid_user_regex() -> &'static Regex {
    static RE: OnceLock<Regex> = OnceLock::new();
    RE.get_or_init(|| {
        Regex::new(r"^Invalid user (\S*) from (\S+)(?: port (\d+))?")
            .unwrap_or_else(|e| panic!("sshd invalid user regex is valid: {e}"))
    })
}

fn pam_regex() -> &'static Regex {
    static RE: OnceLock<Regex> = OnceLock::new();
    RE.get_or_init(|| {
        Regex::new(r"authentication failure;.*? rhost=(\S+)(?:\s+user=(\S+))?")
            .unwrap_or_else(|e| panic!("sshd pam regex is valid: {e}"))
    })
}

/// Adds the fields to a parsed syslog event of sshd.
pub(crate) fn enrich(fields: &mut Map<String, Value>) {
    let is_sshd = fields
        .get("program")
        .and_then(Value::as_str)
        .is_some_and(|p| p.starts_with("sshd"));
    if !is_sshd {
        return;
    }
    let Some(message) = fields
        .get("message")
        .and_then(Value::as_str)
        .map(str::to_string)
    else {
        return;
    };
    let mut put = |k: &str, v: &str| {
        fields.insert(k.to_string(), Value::String(v.to_string()));
    };
    if let Some(c) = auth_regex().captures(&message) {
        put(
            "outcome",
            if &c[1] == "Accepted" {
                "success"
            } else {
                "failure"
            },
        );
        put("auth_method", &c[2]);
        put("user", &c[3]);
        put("src_ip", &c[4]);
        put("src_port", &c[5]);
    } else if let Some(c) = invalid_user_regex().captures(&message) {
        put("user", &c[1]);
        put("src_ip", &c[2]);
        if let Some(port) = c.get(3) {
            put("src_port", port.as_str());
        }
    } else if let Some(c) = pam_regex().captures(&message) {
        put("outcome", "failure");
        put("src_ip", &c[1]);
        if let Some(user) = c.get(2) {
            put("user", user.as_str());
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn enriched(program: &str, message: &str) -> Value {
        let mut f = json!({"program": program, "message": message})
            .as_object()
            .cloned()
            .unwrap();
        enrich(&mut f);
        Value::Object(f)
    }

    #[test]
    fn failed_and_accepted_logins_give_user_address_and_outcome() {
        let f = enriched(
            "sshd",
            "Failed password for invalid user webmaster from 173.234.31.186 port 38926 ssh2",
        );
        assert_eq!(f["user"], "webmaster");
        assert_eq!(f["src_ip"], "173.234.31.186");
        assert_eq!(f["src_port"], "38926");
        assert_eq!(f["outcome"], "failure");
        assert_eq!(f["auth_method"], "password");
        let f = enriched(
            "sshd",
            "Accepted publickey for deploy from 2001:db8::7 port 50122 ssh2: RSA SHA256:x",
        );
        assert_eq!(f["outcome"], "success");
        assert_eq!(f["src_ip"], "2001:db8::7");
        let f = enriched(
            "sshd",
            "message repeated 2 times: [ Failed password for root from 5.36.59.76 port 42393 ssh2]",
        );
        assert_eq!(f["user"], "root");
    }

    #[test]
    fn invalid_users_and_pam_failures_give_the_address() {
        let f = enriched("sshd", "Invalid user test9 from 52.80.34.196");
        assert_eq!(f["user"], "test9");
        assert_eq!(f["src_ip"], "52.80.34.196");
        let f = enriched("sshd(pam_unix)", "authentication failure; logname= uid=0 euid=0 tty=ssh ruser= rhost=218.188.2.4  user=root");
        assert_eq!(f["src_ip"], "218.188.2.4");
        assert_eq!(f["user"], "root");
    }

    #[test]
    fn other_programs_and_messages_are_left_alone() {
        let f = enriched("sudo", "Failed password for root from 1.2.3.4 port 1 ssh2");
        assert!(f.get("src_ip").is_none());
        let f = enriched("sshd", "Connection closed by 1.2.3.4 [preauth]");
        assert!(f.get("user").is_none());
    }
}
