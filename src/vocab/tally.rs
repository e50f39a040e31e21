//! Counts per name (rule title, job name) as the summary and the log show
//! them: most first, then by name.

use std::collections::BTreeMap;

/// The counts, most first; equal counts by name.
pub fn most_first(counts: &BTreeMap<String, u64>) -> Vec<(String, u64)> {
    let mut sorted: Vec<(String, u64)> = counts.iter().map(|(k, n)| (k.clone(), *n)).collect();
    sorted.sort_by(|a, b| b.1.cmp(&a.1).then_with(|| a.0.cmp(&b.0)));
    sorted
}

/// `name: n, other: m` for a log line or a summary.
pub fn describe(counts: &[(String, u64)]) -> String {
    let parts: Vec<String> = counts.iter().map(|(k, n)| format!("{k}: {n}")).collect();
    parts.join(", ")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn most_first_then_by_name() {
        let counts = BTreeMap::from([
            ("b".to_string(), 2),
            ("a".to_string(), 2),
            ("c".to_string(), 5),
        ]);
        let sorted = most_first(&counts);
        assert_eq!(describe(&sorted), "c: 5, a: 2, b: 2");
    }
}
