//! Replaying a whole input in event-time order (`tocsin scan`).
//!
//! A stream decides as it goes: a correlation window or an anomaly bucket
//! is closed once the input's time has passed it, and what arrives for it
//! later is dropped. A scan has the whole input, and its result must not
//! depend on the order of files or lines (`zcat auth.log*` feeds the newest
//! file first). So a scan keeps a copy of every item that feeds the stage
//! (up to a limit). While the input is in time order the stage runs as a
//! stream and its output is exactly the streaming one. From the first item
//! the stage would drop as late, items are only kept; at the end everything
//! kept runs, sorted by event time, through the stage in its starting state,
//! and the outputs the streaming part had not handed out are added. Past
//! the limit the scan goes back to being a stream, after running what it
//! kept in order.
//!
//! The correlator (`correlate::Reorder`) and the anomaly detector
//! (`anomaly::SampleReorder`) use it; each decides what "late" means.

use std::cmp::Ordering;
use std::collections::HashSet;
use std::hash::Hash;

/// A stage that takes items in time order and hands out outputs.
pub trait Replayable {
    /// What the stage takes: a correlation match, an anomaly sample.
    type Item: Clone;
    /// What it hands out: a firing, an anomaly.
    type Output;
    /// What an output is known by, so that the ordered run does not hand
    /// it out twice.
    type Key: Hash + Eq;
    /// Takes one item; the outputs it decided.
    fn observe(&mut self, item: Self::Item) -> Vec<Self::Output>;
    /// At the end of input: the outputs still waiting.
    fn finish(&mut self) -> Vec<Self::Output>;
    /// The key of an output.
    fn key(output: &Self::Output) -> Self::Key;
    /// Event-time order, with ties broken by what the items hold, so that
    /// two orders of the same input give the same run.
    fn order(a: &Self::Item, b: &Self::Item) -> Ordering;
}

/// What became of a whole input's order.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Replayed {
    /// Nothing was late, or nothing was kept: the stream's output stands.
    Streamed,
    /// Run again in event-time order; this many outputs came only from that.
    Ordered {
        /// Outputs the ordered run found that the streaming part had not.
        added: usize,
    },
    /// More items than the limit: a stream again after it, and items late
    /// by then were left out.
    Overflowed,
}

/// The items of a whole input, and the outputs handed out.
#[derive(Debug)]
pub struct Replay<S: Replayable> {
    kept: Vec<S::Item>,
    limit: usize,
    /// An item was late: the rest is only kept, for the ordered run.
    buffering: bool,
    overflowed: bool,
    emitted: HashSet<S::Key>,
}

impl<S: Replayable> Replay<S> {
    /// Keeps up to `limit` items.
    pub fn new(limit: usize) -> Self {
        Replay {
            kept: Vec::new(),
            limit,
            buffering: false,
            overflowed: false,
            emitted: HashSet::new(),
        }
    }

    /// Takes one item; `late` says the stage would drop it. Returns the
    /// outputs to hand out now. `fresh` makes the stage in its starting
    /// state, for an ordered run.
    pub fn observe(
        &mut self,
        stage: &mut S,
        item: S::Item,
        late: bool,
        fresh: impl FnOnce(&S) -> S,
    ) -> Vec<S::Output> {
        if late && !self.overflowed {
            self.buffering = true;
        }
        if self.overflowed {
            let out = stage.observe(item);
            return self.new_only(out);
        }
        if self.kept.len() >= self.limit {
            self.overflowed = true;
            let mut out = Vec::new();
            if self.buffering {
                // What was kept goes in now, in order; a stream from here.
                let mut ordered = fresh(stage);
                for i in self.sorted() {
                    out.extend(ordered.observe(i));
                }
                *stage = ordered;
            }
            self.kept = Vec::new();
            out.extend(stage.observe(item));
            return self.new_only(out);
        }
        self.kept.push(item.clone());
        if self.buffering {
            return Vec::new();
        }
        let out = stage.observe(item);
        self.emitted.extend(out.iter().map(S::key));
        out
    }

    /// At the end of input: the outputs still to hand out (what waited for
    /// the end, and what the ordered run adds), and what was done.
    pub fn finish(
        mut self,
        stage: &mut S,
        fresh: impl FnOnce(&S) -> S,
    ) -> (Vec<S::Output>, Replayed) {
        if self.overflowed || !self.buffering {
            let out = stage.finish();
            let how = if self.overflowed {
                Replayed::Overflowed
            } else {
                Replayed::Streamed
            };
            return (self.new_only(out), how);
        }
        let mut ordered = fresh(stage);
        let mut out = Vec::new();
        for i in self.sorted() {
            out.extend(ordered.observe(i));
        }
        out.extend(ordered.finish());
        *stage = ordered;
        let added = self.new_only(out);
        let how = Replayed::Ordered { added: added.len() };
        (added, how)
    }

    fn sorted(&mut self) -> Vec<S::Item> {
        let mut kept = std::mem::take(&mut self.kept);
        kept.sort_by(S::order);
        kept
    }

    /// The outputs not handed out yet, remembered as handed out.
    fn new_only(&mut self, out: Vec<S::Output>) -> Vec<S::Output> {
        out.into_iter()
            .filter(|o| self.emitted.insert(S::key(o)))
            .collect()
    }
}
