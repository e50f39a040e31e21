//! The business calendar: Monday to Friday in one time zone, minus
//! holidays, and the deadline of a triage window from a start instant
//! (the rules are in the module documentation of [`super`]).

use super::TriageWindow;
use chrono::{
    DateTime, Datelike, MappedLocalTime, NaiveDate, NaiveDateTime, NaiveTime, Offset, TimeDelta,
    TimeZone, Utc, Weekday,
};
use chrono_tz::Tz;
use std::collections::BTreeSet;
use std::ops::Bound;

/// How many consecutive non-business days are searched for the next business
/// day before the calendar is given up on (about ten years).
pub(crate) const MAX_NON_BUSINESS_RUN: u64 = 3660;

/// Monday-Friday business days in a time zone, minus holidays.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct BusinessCalendar {
    tz: Tz,
    holidays: BTreeSet<NaiveDate>,
}

impl Default for BusinessCalendar {
    /// UTC without holidays.
    fn default() -> Self {
        BusinessCalendar::new(Tz::UTC, [])
    }
}

impl BusinessCalendar {
    pub fn new(tz: Tz, holidays: impl IntoIterator<Item = NaiveDate>) -> Self {
        BusinessCalendar {
            tz,
            holidays: holidays.into_iter().collect(),
        }
    }

    /// Whether `date` (a local date in the calendar's zone) is a weekday that
    /// is not a holiday.
    pub fn is_business_day(&self, date: NaiveDate) -> bool {
        is_weekday(date) && !self.holidays.contains(&date)
    }

    /// The exact deadline of `window` started at `start`; see the module
    /// documentation for the rules.
    pub fn due_at(&self, start: DateTime<Utc>, window: TriageWindow) -> DateTime<Utc> {
        self.checked_due_at(start, window)
            .unwrap_or(DateTime::<Utc>::MAX_UTC)
    }

    /// `due_at`, with `None` when the deadline is out of chrono's range.
    fn checked_due_at(&self, start: DateTime<Utc>, window: TriageWindow) -> Option<DateTime<Utc>> {
        match window {
            TriageWindow::Hours(0) | TriageWindow::Days(0) | TriageWindow::BusinessDays(0) => {
                Some(start)
            }
            TriageWindow::Hours(n) => start.checked_add_signed(TimeDelta::try_hours(n.into())?),
            TriageWindow::Days(n) => {
                let local = local_time(self.tz, start)?;
                let date = add_days(local.date(), n.into())?;
                resolve_local(self.tz, date.and_time(local.time()))
            }
            TriageWindow::BusinessDays(n) => {
                let local = local_time(self.tz, start)?;
                resolve_local(self.tz, self.add_business_time(local, n)?)
            }
        }
    }

    /// Adds `n >= 1` business days of 24 local hours to `local`.
    fn add_business_time(&self, local: NaiveDateTime, n: u32) -> Option<NaiveDateTime> {
        let (first_day, clock) = if self.is_business_day(local.date()) {
            (local.date(), local.time())
        } else {
            match self.next_business_day(local.date()) {
                Some(day) => (day, NaiveTime::MIN),
                // No business day in sight: every day counts from here on.
                None => return Some(add_days(local.date(), n.into())?.and_time(local.time())),
            }
        };
        if clock == NaiveTime::MIN {
            // Whole business days starting at midnight end at the end of the
            // n-th one, which is midnight of the calendar day after it.
            let last_day = self.nth_business_day_after(first_day, n - 1)?;
            Some(add_days(last_day, 1)?.and_time(NaiveTime::MIN))
        } else {
            Some(self.nth_business_day_after(first_day, n)?.and_time(clock))
        }
    }

    /// The first business day after `date`, searching at most
    /// [`MAX_NON_BUSINESS_RUN`] days.
    fn next_business_day(&self, date: NaiveDate) -> Option<NaiveDate> {
        (1..=MAX_NON_BUSINESS_RUN)
            .map_while(|offset| add_days(date, offset))
            .find(|&day| self.is_business_day(day))
    }

    /// The `k`-th business day after the business day `day`.
    ///
    /// Runs of plain weekdays up to the next holiday are jumped over in one
    /// step, so the cost grows with the number of holidays passed, not with
    /// `k`: an absurd window cannot make this slow.
    pub(super) fn nth_business_day_after(&self, mut day: NaiveDate, k: u32) -> Option<NaiveDate> {
        let mut left = u64::from(k);
        while left > 0 {
            let next_holiday = self
                .holidays
                .range((Bound::Excluded(day), Bound::Unbounded))
                .next();
            let Some(&holiday) = next_holiday else {
                return add_weekdays(day, left);
            };
            let free = weekdays_between(day, holiday);
            if left <= free {
                return add_weekdays(day, left);
            }
            day = add_weekdays(day, free)?;
            left -= free;
            match self.next_business_day(day) {
                Some(next) => {
                    day = next;
                    left -= 1;
                }
                // No business day in sight: every day counts from here on.
                None => return add_days(day, left),
            }
        }
        Some(day)
    }
}

fn is_weekday(date: NaiveDate) -> bool {
    !matches!(date.weekday(), Weekday::Sat | Weekday::Sun)
}

pub(super) fn add_days(date: NaiveDate, days: u64) -> Option<NaiveDate> {
    date.checked_add_days(chrono::Days::new(days))
}

/// The number of weekdays strictly between `from` and `until`.
fn weekdays_between(from: NaiveDate, until: NaiveDate) -> u64 {
    let span = (until - from).num_days();
    if span <= 1 {
        return 0;
    }
    // Count the days in (from, until): whole weeks have five weekdays each,
    // the rest are checked one by one.
    let inner = span.unsigned_abs() - 1;
    let first = u64::from(from.weekday().succ().num_days_from_monday());
    let partial = (0..inner % 7).filter(|i| (first + i) % 7 < 5).count();
    inner / 7 * 5 + partial as u64
}

/// The `k`-th weekday after `date` (`date` itself for `k == 0`).
fn add_weekdays(date: NaiveDate, k: u64) -> Option<NaiveDate> {
    if k == 0 {
        return Some(date);
    }
    // The weekdays after a Saturday or Sunday are those after the Friday
    // before it.
    let weekday = u64::from(date.weekday().num_days_from_monday());
    let (base, weekday) = if weekday >= 5 {
        (date.checked_sub_days(chrono::Days::new(weekday - 4))?, 4)
    } else {
        (date, weekday)
    };
    let rest = k % 5;
    let weekend = if rest > 0 && weekday + rest > 4 { 2 } else { 0 };
    add_days(
        base,
        (k / 5).saturating_mul(7).saturating_add(rest + weekend),
    )
}

/// The local wall-clock time of `instant` in `tz`, `None` at the edge of
/// chrono's range (where `with_timezone(..).naive_local()` would panic).
fn local_time(tz: Tz, instant: DateTime<Utc>) -> Option<NaiveDateTime> {
    let utc = instant.naive_utc();
    utc.checked_add_offset(tz.offset_from_utc_datetime(&utc).fix())
}

/// The instant at which the wall clock in `tz` shows `local`: the earlier one
/// if it shows it twice, the end of the gap if it skips it.
fn resolve_local(tz: Tz, local: NaiveDateTime) -> Option<DateTime<Utc>> {
    match tz.from_local_datetime(&local) {
        MappedLocalTime::Single(instant) => Some(instant.with_timezone(&Utc)),
        MappedLocalTime::Ambiguous(a, b) => Some(a.min(b).with_timezone(&Utc)),
        MappedLocalTime::None => first_instant_after_gap(tz, local),
    }
}

/// The first instant whose wall-clock time in `tz` is past `local`, which for
/// a `local` inside a DST gap is the transition that skipped it.
///
/// chrono-tz does not expose its transition table, so this bisects on whole
/// seconds (transitions are on whole seconds). UTC offsets stay well within
/// 26 hours, so the wall clock is before `local` 26 hours before it and past
/// it 26 hours after it.
fn first_instant_after_gap(tz: Tz, local: NaiveDateTime) -> Option<DateTime<Utc>> {
    const REACH: i64 = 26 * 3600;
    let wall = |secs: i64| local_time(tz, DateTime::from_timestamp(secs, 0)?);
    let centre = local.and_utc().timestamp();
    let (mut before, mut after) = (centre - REACH, centre + REACH);
    while after - before > 1 {
        let mid = before + (after - before) / 2;
        if wall(mid)? < local {
            before = mid;
        } else {
            after = mid;
        }
    }
    DateTime::from_timestamp(after, 0)
}
