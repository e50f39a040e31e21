//! Seasonal baselines: what is usual for this hour of the day, on a weekday
//! or at the weekend.
//!
//! Activity has a daily rhythm. A baseline that mixes night and day judges
//! every bucket against the all-day average: a client sending ten times its
//! usual rate for 10:00 looks ordinary because 10:00 is always busier than
//! 03:00, and the night's quiet widens the spread that a burst is measured
//! against. Elastic ML detects such periods and models them; here the period
//! is configured (`seasonality`, default a day split into weekdays and
//! weekend days) and its effect is learned per entity.
//!
//! The model is additive on the modelled (log) scale, so a multiplicative
//! rhythm ("three times busier at noon") becomes an offset per *slot*: the
//! hour of the period (or the bucket span, if longer), doubled into weekday
//! and weekend copies. Each entity keeps a running mean of its values per
//! slot ([`SlotMeans`]); the offset of a slot is how far that mean sits from
//! the entity's overall mean. The baseline mixture is then fitted to what is
//! left after the offsets (the residuals), and a new bucket is scored as its
//! value minus its slot's offset.
//!
//! Few values make a poor mean, so offsets are shrunk: towards the hour's
//! offset on all days for the weekday/weekend split, and towards the
//! population's offset for the hour (what every entity does at 10:00) for
//! the hour itself. A new entity therefore starts with the population's
//! rhythm and gains its own as its slots fill, roughly after two periods. An
//! entity without rhythm (a poller) gets offsets near zero; whether offsets
//! help at all is decided per entity when its baseline is fitted (they must
//! explain a fifth of its variance), so a steady entity is judged flat.
//!
//! Slots use UTC. Time zones shift which slot is "10:00" but not the rhythm
//! itself, so only the weekend boundary moves, by the zone's offset.

use crate::sigma::anomaly::{JobSpec, Seasonality};
use serde::{Deserialize, Serialize};

/// Slots are at least this long: a rhythm finer than an hour is noise.
const MIN_SLOT_SECS: i64 = 3600;
/// Slots per period at most (a week of hours).
const MAX_SLOTS: i64 = 168;
/// Periods whose worth of values a slot mean leans on: past it the mean
/// becomes a moving average, so a changed rhythm is learned in about as long.
const MEMORY_PERIODS: u32 = 8;
/// Periods whose worth of values a slot needs to count as much as its prior.
const PRIOR_PERIODS: f64 = 2.0;
/// Variance added while a job has never seen the hour of the day a bucket
/// falls in (its first day), on the log scale of counts and magnitudes, in
/// proportion to how little of the hour it has seen ([`HoursSeen`]): the
/// rhythm is unknown, and a morning several times busier than the night
/// must not look like a burst. A standard deviation of a third of a factor
/// of ten: twentyfold stays below an alert, a hundredfold burst still
/// stands out.
pub(crate) const UNSEEN_HOUR_VARIANCE: f64 =
    std::f64::consts::LN_10 * std::f64::consts::LN_10 / 9.0;
/// Variance of an expectation borrowed from the population: entities of
/// one population differ in size, and a level estimated from a few quiet
/// hours (a client first seen on a Sunday) says little about its busy ones.
/// A standard deviation of half a factor of four, weighted by how much of
/// the expectation is borrowed.
const BORROWED_VARIANCE: f64 = 0.25 * 1.386_294_361 * 1.386_294_361;
/// Share of an entity's variance its seasonal expectations must explain to
/// be used. Zero: they are used unless they make the history look noisier
/// than one flat baseline does (a poller). An entity whose own history
/// cannot show a rhythm yet (first seen on a quiet Sunday) takes the
/// population's rhythm rather than none.
pub(crate) const MIN_EXPLAINED: f64 = 0.0;

/// How a job's buckets map to slots.
#[derive(Debug, Clone, Copy, PartialEq)]
pub(crate) struct Seasons {
    period: i64,
    slot: i64,
    /// Slots per period.
    per_period: usize,
    weekend: bool,
    /// Buckets per slot: how many values a slot gets per period.
    buckets_per_slot: f64,
}

impl Seasons {
    /// The seasons of a job, or `None` when it has none (turned off, or a
    /// period no longer than the bucket and no weekend split).
    pub(crate) fn of(spec: &JobSpec) -> Option<Seasons> {
        let Seasonality::Period { period, weekend } = spec.seasonality else {
            return None;
        };
        let bucket = (spec.bucket_span.as_secs() as i64).max(1);
        let period = period.as_secs() as i64;
        let slot = bucket
            .max(MIN_SLOT_SECS)
            .max(period / MAX_SLOTS)
            .min(period.max(1));
        let per_period = usize::try_from((period / slot.max(1)).max(1)).ok()?;
        if per_period <= 1 && !weekend {
            return None;
        }
        Some(Seasons {
            period: period.max(1),
            slot: slot.max(1),
            per_period,
            weekend,
            buckets_per_slot: (slot as f64 / bucket as f64).max(1.0),
        })
    }

    /// Slots in all: the period's, and their weekend copies.
    pub(crate) fn len(&self) -> usize {
        self.per_period * if self.weekend { 2 } else { 1 }
    }

    /// The slot of a bucket starting at `start` (epoch seconds, UTC).
    pub(crate) fn slot_of(&self, start: i64) -> u16 {
        let within = start.rem_euclid(self.period) / self.slot;
        let within = usize::try_from(within)
            .unwrap_or(0)
            .min(self.per_period - 1);
        // 1970-01-01 was a Thursday: day 0 -> Thursday, 2 -> Saturday, 3 -> Sunday.
        let weekend = self.weekend && matches!(start.div_euclid(86_400).rem_euclid(7), 2 | 3);
        let slot = within + if weekend { self.per_period } else { 0 };
        u16::try_from(slot).unwrap_or(0)
    }

    /// The slot's position in the period, weekday or weekend alike.
    fn hour(&self, slot: u16) -> usize {
        usize::from(slot) % self.per_period
    }

    /// The slots of the same hour: the weekday one and its weekend copy.
    fn copies(&self, slot: u16) -> impl Iterator<Item = usize> {
        let (hour, per_period) = (self.hour(slot), self.per_period);
        let copies = if self.weekend { 2 } else { 1 };
        (0..copies).map(move |c| hour + c * per_period)
    }

    /// How much a slot's own mean counts against its prior.
    fn shrink(&self, n: f64) -> f64 {
        n / (n + PRIOR_PERIODS * self.buckets_per_slot)
    }

    fn cap(&self) -> f64 {
        f64::from(MEMORY_PERIODS) * self.buckets_per_slot
    }
}

/// What one entity usually has per slot; see [`SlotMeans::expectation`].
pub(crate) struct Expectation<'a> {
    own: &'a SlotMeans,
    prior: &'a SlotMeans,
    seasons: Seasons,
    /// The entity's mean over all slots.
    all: f64,
    /// The entity's level against the prior, and how well it fits.
    level: (f64, f64),
}

impl Expectation<'_> {
    /// The entity's own mean for `slot`, shrunk towards what the population
    /// has in that slot, moved to the entity's level, while the slot has few
    /// values of its own. A client first seen on a Sunday therefore still
    /// expects Monday morning to be busier, in proportion to its own size.
    /// Where the population knows nothing of the slot yet (the first
    /// weekend), its hour on all days stands in. Also returns the variance
    /// of the expectation: the part borrowed from the population is only as
    /// good as the population's shape fits this entity where both are known
    /// (see [`BORROWED_VARIANCE`]).
    pub(crate) fn at(&self, slot: u16) -> (f64, f64) {
        let (own, n) = self.own.pooled(std::iter::once(usize::from(slot)));
        let w = self.seasons.shrink(n);
        let (borrowed, fit) = match self.prior.slot_mean(&self.seasons, slot) {
            Some(p) => (p + self.level.0, self.level.1),
            None => (self.all, BORROWED_VARIANCE),
        };
        let b = 1.0 - w;
        (w * own + b * borrowed, b * b * fit)
    }
}

/// Running means of an entity's (or the population's) values per slot, on
/// the modelled scale.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub(crate) struct SlotMeans {
    /// Per slot: mean and how many values it holds (capped, see [`MEMORY_PERIODS`]).
    means: Vec<f32>,
    counts: Vec<f32>,
}

impl SlotMeans {
    /// True before any value was added.
    pub(crate) fn is_empty(&self) -> bool {
        self.means.is_empty()
    }

    /// Adds a value of slot `slot`. `members` is how many entities feed
    /// these means (1 for an entity's own; the population's values come from
    /// many at once, and its memory must still span [`MEMORY_PERIODS`]).
    pub(crate) fn add(&mut self, seasons: &Seasons, slot: u16, x: f64, members: usize) {
        let len = seasons.len();
        if self.means.len() != len {
            self.means = vec![0.0; len];
            self.counts = vec![0.0; len];
        }
        let i = usize::from(slot);
        let (Some(mean), Some(count)) = (self.means.get_mut(i), self.counts.get_mut(i)) else {
            return;
        };
        // Once the slot has a period's worth of values, a value below its
        // mean moves it as if it were at most a factor of two below: a
        // holiday's quiet day must not drag the weekday's 10:00 down for a
        // week, while a lasting drop is still learned. Values above are not
        // held back: a burst arrives here already clipped by the baseline,
        // and a slot that started low (its first day judged against the
        // night) must be able to catch up.
        let m = f64::from(*mean);
        let x = if f64::from(*count) >= seasons.buckets_per_slot * members.max(1) as f64 {
            x.max(m - std::f64::consts::LN_2)
        } else {
            x
        };
        let n = (f64::from(*count) + 1.0).min(seasons.cap() * members.max(1) as f64);
        *mean = (m + (x - m) / n) as f32;
        *count = n as f32;
    }

    /// Mean and weight of a set of slots together.
    fn pooled(&self, slots: impl Iterator<Item = usize>) -> (f64, f64) {
        let (mut sum, mut n) = (0.0, 0.0);
        for i in slots {
            if let (Some(m), Some(c)) = (self.means.get(i), self.counts.get(i)) {
                sum += f64::from(*m) * f64::from(*c);
                n += f64::from(*c);
            }
        }
        if n > 0.0 {
            (sum / n, n)
        } else {
            (0.0, 0.0)
        }
    }

    /// What the entity usually has per slot, on the modelled scale (see
    /// [`Expectation::at`]), against the population `prior`. `None` before
    /// the entity has any value. Computed once for all the slots asked.
    pub(crate) fn expectation<'a>(
        &'a self,
        seasons: &Seasons,
        prior: &'a SlotMeans,
    ) -> Option<Expectation<'a>> {
        let (all, total) = self.pooled(0..self.means.len());
        (total > 0.0).then(|| Expectation {
            own: self,
            prior,
            seasons: *seasons,
            all,
            level: self.level_against(seasons, prior),
        })
    }

    /// The mean of a slot, or of its hour on all days when the slot itself
    /// has no value yet.
    fn slot_mean(&self, seasons: &Seasons, slot: u16) -> Option<f64> {
        let (mean, n) = self.pooled(std::iter::once(usize::from(slot)));
        if n > 0.0 {
            return Some(mean);
        }
        let (mean, n) = self.pooled(seasons.copies(slot));
        (n > 0.0).then_some(mean)
    }

    /// How far above `prior` this entity usually is, over the slots both
    /// know, and how well that level fits them: the variance of the slots'
    /// differences around it, which leans on [`BORROWED_VARIANCE`] until the
    /// entity has a period's worth of values.
    fn level_against(&self, seasons: &Seasons, prior: &SlotMeans) -> (f64, f64) {
        // (difference, weight) per slot both know; two passes, no allocation.
        let pairs = || {
            self.means
                .iter()
                .zip(&self.counts)
                .enumerate()
                .filter(|(_, (_, c))| **c > 0.0)
                .filter_map(|(i, (m, c))| {
                    let slot = u16::try_from(i).ok()?;
                    let p = prior.slot_mean(seasons, slot)?;
                    Some((f64::from(*m) - p, f64::from(*c)))
                })
        };
        let n: f64 = pairs().map(|(_, c)| c).sum();
        if n == 0.0 {
            return (0.0, BORROWED_VARIANCE);
        }
        let level = pairs().map(|(d, c)| d * c).sum::<f64>() / n;
        let spread = pairs()
            .map(|(d, c)| (d - level) * (d - level) * c)
            .sum::<f64>();
        let k = seasons.per_period as f64;
        (level, (spread + k * BORROWED_VARIANCE) / (n + k))
    }

    /// Whether any value of the slot's hour (on any day) was added.
    pub(crate) fn knows_hour(&self, seasons: &Seasons, slot: u16) -> bool {
        self.pooled(seasons.copies(slot)).1 > 0.0
    }

    /// A short description of a slot for the alert: `10:00-11:00 UTC, weekdays`.
    pub(crate) fn describe(seasons: &Seasons, slot: u16) -> String {
        let start = seasons.hour(slot) as i64 * seasons.slot;
        let end = start + seasons.slot;
        let clock = |s: i64| {
            let days = s / 86_400;
            let (h, m) = ((s % 86_400) / 3600, (s % 3600) / 60);
            if seasons.period > 86_400 {
                format!("day {} {h:02}:{m:02}", days + 1)
            } else {
                format!("{h:02}:{m:02}")
            }
        };
        let days = match (seasons.weekend, usize::from(slot) >= seasons.per_period) {
            (false, _) => "",
            (true, false) => ", weekdays",
            (true, true) => ", weekends",
        };
        if seasons.per_period <= 1 {
            return days.trim_start_matches(", ").to_string();
        }
        format!("{}-{} UTC{days}", clock(start), clock(end))
    }
}

/// How many buckets of each hour of the period a job has closed: an hour
/// seen for one bucket is barely known (the first morning's ramp).
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub(crate) struct HoursSeen(Vec<u32>);

impl HoursSeen {
    pub(crate) fn is_empty(&self) -> bool {
        self.0.is_empty()
    }

    /// Counts a closed bucket of `slot`.
    pub(crate) fn add(&mut self, seasons: &Seasons, slot: u16) {
        if self.0.len() != seasons.per_period {
            self.0.resize(seasons.per_period, 0);
        }
        if let Some(n) = self.0.get_mut(seasons.hour(slot)) {
            *n = n.saturating_add(1);
        }
    }

    /// How much of the slot's hour is still unknown, 0..1: all of it before
    /// `population` has any value of it, none once a whole hour's buckets
    /// closed. A model saved before buckets were counted knows what its
    /// population knows.
    pub(crate) fn unknown(&self, seasons: &Seasons, slot: u16, population: &SlotMeans) -> f64 {
        if !population.knows_hour(seasons, slot) {
            return 1.0;
        }
        match self.0.get(seasons.hour(slot)) {
            None if self.0.is_empty() => 0.0,
            n => 1.0 - (f64::from(n.copied().unwrap_or(0)) / seasons.buckets_per_slot).min(1.0),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::vocab::Span;

    fn seasons(bucket: u64, seasonality: Seasonality) -> Seasons {
        let spec = JobSpec {
            bucket_span: Span::from_secs(bucket),
            seasonality,
            ..JobSpec::example()
        };
        Seasons::of(&spec).unwrap()
    }

    fn daily() -> Seasonality {
        Seasonality::Period {
            period: Span::from_secs(86_400),
            weekend: true,
        }
    }

    #[test]
    fn buckets_map_to_the_hour_of_the_day_and_weekends_to_their_own_slots() {
        let s = seasons(600, daily());
        assert_eq!(s.len(), 48);
        // 2026-11-18 (a Wednesday) 10:20 UTC and 10:50 share a slot.
        let wed_1020 = 1_794_997_200;
        assert_eq!(s.slot_of(wed_1020), 10);
        assert_eq!(s.slot_of(wed_1020 + 1800), 10);
        // Saturday 10:20 is the weekend copy.
        assert_eq!(s.slot_of(wed_1020 + 3 * 86_400), 34);
        assert_eq!(SlotMeans::describe(&s, 34), "10:00-11:00 UTC, weekends");
        // Day buckets: one slot per day, weekdays and weekends apart.
        let d = seasons(86_400, daily());
        assert_eq!(d.len(), 2);
        assert_eq!(SlotMeans::describe(&d, 1), "weekends");
    }

    #[test]
    fn no_seasons_when_turned_off_or_nothing_to_split() {
        let spec = JobSpec {
            seasonality: Seasonality::None,
            ..JobSpec::example()
        };
        assert!(Seasons::of(&spec).is_none());
        let spec = JobSpec {
            bucket_span: Span::from_secs(86_400),
            seasonality: Seasonality::Period {
                period: Span::from_secs(86_400),
                weekend: false,
            },
            ..JobSpec::example()
        };
        assert!(Seasons::of(&spec).is_none());
    }

    #[test]
    fn expectations_follow_the_entity_once_it_has_values_and_the_population_before() {
        let s = seasons(3600, daily());
        // The population: busy at 10:00 (ln 100), quiet at 03:00 (ln 10), weekdays.
        let mut population = SlotMeans::default();
        let day = 1_795_000_000 / 86_400 * 86_400; // a midnight
        for d in 0..20 {
            let t = day + d * 86_400;
            if s.slot_of(t) >= 24 {
                continue;
            }
            for h in 0..24 {
                let x = if (8..18).contains(&h) {
                    100f64.ln()
                } else {
                    10f64.ln()
                };
                population.add(&s, s.slot_of(t + h * 3600), x, 1);
            }
        }
        let ten = s.slot_of(day + 10 * 3600);
        let three = s.slot_of(day + 3 * 3600);
        // A new entity, seen once at 03:00 at half the population's level,
        // expects 10:00 to be as much busier as the population's is.
        let mut entity = SlotMeans::default();
        entity.add(&s, three, 5f64.ln(), 1);
        let level = |e: &SlotMeans, slot| e.expectation(&s, &population).unwrap().at(slot).0;
        let gap = level(&entity, ten) - level(&entity, three);
        assert!((gap - 10f64.ln()).abs() < 0.5, "{gap}");
        // A flat one (a poller) learns its own flatness.
        let mut poller = SlotMeans::default();
        for d in 0..10 {
            for h in 0..24 {
                poller.add(&s, s.slot_of(day + d * 86_400 + h * 3600), 50f64.ln(), 1);
            }
        }
        let own_gap = level(&poller, ten) - level(&poller, three);
        assert!(own_gap.abs() < 0.8, "{own_gap}");
        assert!(SlotMeans::default().expectation(&s, &population).is_none());
    }

    #[test]
    fn an_hour_is_unknown_until_its_buckets_have_closed_once() {
        let s = seasons(600, daily());
        let ten = s.slot_of(1_794_996_000); // a Wednesday, 10:00
        let mut population = SlotMeans::default();
        let mut hours = HoursSeen::default();
        assert_eq!(hours.unknown(&s, ten, &population), 1.0);
        population.add(&s, ten, 2.0, 1);
        // A model saved before buckets were counted trusts its population.
        assert_eq!(hours.unknown(&s, ten, &population), 0.0);
        hours.add(&s, s.slot_of(1_794_996_000 - 3600));
        hours.add(&s, ten);
        assert!((hours.unknown(&s, ten, &population) - 5.0 / 6.0).abs() < 1e-9);
        for _ in 0..6 {
            hours.add(&s, ten);
        }
        assert_eq!(hours.unknown(&s, ten, &population), 0.0);
        // The weekend copy of the hour is the same hour.
        assert_eq!(hours.unknown(&s, ten + 24, &population), 0.0);
    }
}
