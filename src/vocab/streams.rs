//! Test streams for owners of repartition partitions: inputs interleaved
//! by chance, and stretches replayed, as Kafka delivers them.

use std::collections::VecDeque;

/// Interleaves the inputs' queues: each keeps its own order, which input
/// goes next comes from `picks` (cycled; an empty input is skipped).
pub(crate) fn interleave<T>(mut queues: Vec<VecDeque<T>>, picks: &[usize]) -> Vec<T> {
    let n = queues.len();
    let mut out = Vec::new();
    let mut picks = picks.iter().cycle();
    loop {
        let pick = picks.next().copied().unwrap_or(0);
        let Some(q) = (0..n)
            .map(|k| (pick + k) % n)
            .find(|&k| !queues[k].is_empty())
        else {
            return out;
        };
        out.extend(queues[q].pop_front());
    }
}

/// `stream` with stretches repeated, as a producer retry or a detection
/// instance restarting from its last commit repeats them: each `(at, len)`
/// repeats the `len` records up to record `at` (modulo the length) after it.
pub(crate) fn with_replays<T: Clone>(stream: &[T], replays: &[(usize, usize)]) -> Vec<T> {
    let mut out = Vec::new();
    for (i, r) in stream.iter().enumerate() {
        out.push(r.clone());
        for &(at, len) in replays {
            if at % stream.len() == i {
                out.extend(stream[i.saturating_sub(len)..=i].iter().cloned());
            }
        }
    }
    out
}
