//! The calendar routing runs on: local time in the platform's time zone (Europe/Paris, with daylight
//! saving), each cooperator's opening hours, and French public holidays for any year.
//!
//! A day that is a public holiday is closed all day, whatever the opening hours say.

use chrono::{DateTime, Datelike, Duration, NaiveDate, NaiveDateTime, Timelike, Utc, Weekday};
use chrono_tz::Tz;

use super::urgency::Urgency;

/// Weekly opening hours: for each day (Monday first), the open intervals in minutes since
/// local midnight, half-open `[start, end)`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct OpeningHours {
    days: [Vec<(u16, u16)>; 7],
}

const DAY_NAMES: [&str; 7] = ["mon", "tue", "wed", "thu", "fri", "sat", "sun"];

impl OpeningHours {
    /// Open every minute of every day (contractors' emergency lines, on-call teams).
    pub fn always() -> OpeningHours {
        OpeningHours {
            days: std::array::from_fn(|_| vec![(0, 24 * 60)]),
        }
    }

    /// Parses lines such as `mon-fri 08:30-12:30 13:30-17:30` or `sat 09:00-12:00`.
    /// A day may appear on several lines; its intervals add up.
    pub fn parse(lines: &[String]) -> Result<OpeningHours, String> {
        let mut days: [Vec<(u16, u16)>; 7] = Default::default();
        for line in lines {
            let mut parts = line.split_whitespace();
            let day_spec = parts
                .next()
                .ok_or_else(|| "an opening-hours line is empty".to_owned())?;
            let (first, last) = parse_day_range(day_spec)?;
            let mut any = false;
            for interval in parts {
                any = true;
                let (start, end) = parse_interval(interval)?;
                for intervals in &mut days[first..=last] {
                    intervals.push((start, end));
                }
            }
            if !any {
                return Err(format!(
                    "'{line}' gives days but no hours (e.g. 08:30-12:00)"
                ));
            }
        }
        for intervals in &mut days {
            intervals.sort_unstable();
            if intervals.windows(2).any(|w| w[0].1 > w[1].0) {
                return Err("opening-hours intervals of one day overlap".to_owned());
            }
        }
        Ok(OpeningHours { days })
    }

    /// Whether this local time falls in an opening interval (holidays aside).
    pub fn contains(&self, local: NaiveDateTime) -> bool {
        let day = local.weekday().num_days_from_monday() as usize;
        let minute = (local.hour() * 60 + local.minute()) as u16;
        self.days[day]
            .iter()
            .any(|&(start, end)| start <= minute && minute < end)
    }

    /// Whether the hours are open at some time of every day, all day long.
    pub fn is_always(&self) -> bool {
        self.days.iter().all(|d| d.as_slice() == [(0, 24 * 60)])
    }
}

fn parse_day(name: &str) -> Result<usize, String> {
    DAY_NAMES
        .iter()
        .position(|d| *d == name)
        .ok_or_else(|| format!("unknown day '{name}' (use mon, tue, wed, thu, fri, sat, sun)"))
}

fn parse_day_range(spec: &str) -> Result<(usize, usize), String> {
    match spec.split_once('-') {
        Some((a, b)) => {
            let (first, last) = (parse_day(a)?, parse_day(b)?);
            if first > last {
                return Err(format!("day range '{spec}' runs backwards"));
            }
            Ok((first, last))
        }
        None => {
            let day = parse_day(spec)?;
            Ok((day, day))
        }
    }
}

fn parse_time(text: &str) -> Result<u16, String> {
    let bad = || format!("'{text}' is not a time of day (HH:MM, 00:00 to 24:00)");
    let (h, m) = text.split_once(':').ok_or_else(bad)?;
    let (h, m): (u16, u16) = (h.parse().map_err(|_| bad())?, m.parse().map_err(|_| bad())?);
    if m >= 60 || h > 24 || (h == 24 && m != 0) {
        return Err(bad());
    }
    Ok(h * 60 + m)
}

fn parse_interval(text: &str) -> Result<(u16, u16), String> {
    let (a, b) = text
        .split_once('-')
        .ok_or_else(|| format!("'{text}' is not an interval (e.g. 08:30-12:00)"))?;
    let (start, end) = (parse_time(a)?, parse_time(b)?);
    if start >= end {
        return Err(format!("interval '{text}' is empty or runs backwards"));
    }
    Ok((start, end))
}

/// Easter Sunday of a Gregorian year (anonymous Gregorian algorithm, Meeus/Jones/Butcher).
pub fn easter_sunday(year: i32) -> NaiveDate {
    let a = year.rem_euclid(19);
    let b = year.div_euclid(100);
    let c = year.rem_euclid(100);
    let d = b / 4;
    let e = b % 4;
    let f = (b + 8) / 25;
    let g = (b - f + 1) / 3;
    let h = (19 * a + b - d - g + 15) % 30;
    let i = c / 4;
    let k = c % 4;
    let l = (32 + 2 * e + 2 * i - h - k) % 7;
    let m = (a + 11 * h + 22 * l) / 451;
    let month = (h + l - 7 * m + 114) / 31;
    let day = (h + l - 7 * m + 114) % 31 + 1;
    NaiveDate::from_ymd_opt(year, month as u32, day as u32).unwrap_or(NaiveDate::MIN)
}

/// The French public holidays of a year, in date order, with their names.
pub fn public_holidays(year: i32) -> Vec<(NaiveDate, &'static str)> {
    let easter = easter_sunday(year);
    let fixed = |month, day| NaiveDate::from_ymd_opt(year, month, day).unwrap_or(NaiveDate::MIN);
    let mut days = vec![
        (fixed(1, 1), "Jour de l'an"),
        (easter + Duration::days(1), "Lundi de Pâques"),
        (fixed(5, 1), "Fête du Travail"),
        (fixed(5, 8), "Victoire 1945"),
        (easter + Duration::days(39), "Ascension"),
        (easter + Duration::days(50), "Lundi de Pentecôte"),
        (fixed(7, 14), "Fête nationale"),
        (fixed(8, 15), "Assomption"),
        (fixed(11, 1), "Toussaint"),
        (fixed(11, 11), "Armistice 1918"),
        (fixed(12, 25), "Noël"),
    ];
    days.sort();
    days
}

/// Whether a local date is a French public holiday.
pub fn is_public_holiday(date: NaiveDate) -> bool {
    match (date.month(), date.day()) {
        (1, 1) | (5, 1) | (5, 8) | (7, 14) | (8, 15) | (11, 1) | (11, 11) | (12, 25) => true,
        _ => {
            let offset = (date - easter_sunday(date.year())).num_days();
            matches!(offset, 1 | 39 | 50)
        }
    }
}

/// What routing needs to know about a moment for one cooperator.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct TimeFacts {
    /// Inside opening hours and not a public holiday.
    pub open: bool,
    /// A public holiday (always closed).
    pub holiday: bool,
}

/// Local time for a time zone.
pub fn local_time(tz: Tz, at: DateTime<Utc>) -> NaiveDateTime {
    at.with_timezone(&tz).naive_local()
}

/// Whether `hours` are open at `at`, seen from time zone `tz`.
pub fn time_facts(tz: Tz, hours: &OpeningHours, at: DateTime<Utc>) -> TimeFacts {
    let local = local_time(tz, at);
    let holiday = is_public_holiday(local.date());
    TimeFacts {
        open: !holiday && hours.contains(local),
        holiday,
    }
}

/// Whether a local date is a working day (Monday to Friday, not a public holiday).
pub fn is_working_day(date: NaiveDate) -> bool {
    !matches!(date.weekday(), Weekday::Sat | Weekday::Sun) && !is_public_holiday(date)
}

/// When a ticket of this urgency must be handled by: `U1` within 4 hours and `U2` within 24 hours,
/// day and night; `U3` within 5 working days (same local time, holidays and weekends skipped).
pub fn sla_due(urgency: Urgency, tz: Tz, at: DateTime<Utc>) -> DateTime<Utc> {
    match urgency {
        Urgency::U1 => at + Duration::hours(4),
        Urgency::U2 => at + Duration::hours(24),
        Urgency::U3 => {
            let local = at.with_timezone(&tz);
            let mut date = local.date_naive();
            let mut left = 5;
            while left > 0 {
                date = date.succ_opt().unwrap_or(date);
                if is_working_day(date) {
                    left -= 1;
                }
            }
            let naive = date.and_time(local.time());
            naive
                .and_local_timezone(tz)
                .earliest()
                .map_or(at + Duration::days(7), |t| t.with_timezone(&Utc))
        }
    }
}

/// How long before its due time a waiting ticket is "near due": `U1` 1 hour, `U2` 6 hours,
/// `U3` one day.
pub fn near_due_warning(urgency: Urgency) -> Duration {
    match urgency {
        Urgency::U1 => Duration::hours(1),
        Urgency::U2 => Duration::hours(6),
        Urgency::U3 => Duration::days(1),
    }
}

/// How far back [`starts_due_by`] looks day by day; tickets started earlier are due anyway.
const DUE_LOOKBACK_DAYS: i64 = 20;

/// The start times of tickets of this urgency that are due at or before `deadline`, as
/// inclusive ranges in milliseconds since the epoch, oldest first. Due times do not always grow
/// with start times (a `U3` ticket started on Saturday morning is due before one started on
/// Friday afternoon), but within one local day they do: each day is searched on its own.
pub fn starts_due_by(urgency: Urgency, tz: Tz, deadline: DateTime<Utc>) -> Vec<(i64, i64)> {
    let last_day = local_time(tz, deadline).date();
    let first_day = last_day - Duration::days(DUE_LOOKBACK_DAYS);
    let midnight = |day: NaiveDate| {
        day.and_hms_opt(0, 0, 0)
            .and_then(|m| m.and_local_timezone(tz).earliest())
            .map_or(deadline, |t| t.with_timezone(&Utc))
    };
    let mut ranges: Vec<(i64, i64)> = vec![(0, midnight(first_day).timestamp_millis() - 1)];
    let mut day = first_day;
    while day <= last_day {
        let start = midnight(day);
        let end = midnight(day + Duration::days(1)).min(deadline + Duration::milliseconds(1))
            - Duration::milliseconds(1);
        let due_by = |ms: i64| {
            DateTime::from_timestamp_millis(ms).is_some_and(|t| sla_due(urgency, tz, t) <= deadline)
        };
        let (from, mut early, mut late) = (
            start.timestamp_millis(),
            start.timestamp_millis(),
            end.timestamp_millis(),
        );
        if from <= late && due_by(from) {
            if due_by(late) {
                early = late;
            }
            while late - early > 1 {
                let middle = early + (late - early) / 2;
                if due_by(middle) {
                    early = middle;
                } else {
                    late = middle;
                }
            }
            let to = early;
            match ranges.last_mut() {
                Some(last) if last.1 + 1 == from => last.1 = to,
                _ => ranges.push((from, to)),
            }
        }
        day += Duration::days(1);
    }
    ranges
}

#[cfg(test)]
mod tests {
    use super::*;
    use chrono::TimeZone;

    fn date(y: i32, m: u32, d: u32) -> NaiveDate {
        NaiveDate::from_ymd_opt(y, m, d).expect("valid date")
    }

    #[test]
    fn easter_matches_the_published_dates() {
        let known = [
            (2024, 3, 31),
            (2025, 4, 20),
            (2026, 4, 5),
            (2027, 3, 28),
            (2028, 4, 16),
            (2029, 4, 1),
            (2030, 4, 21),
            (2038, 4, 25),
            (2285, 3, 22),
        ];
        for (y, m, d) in known {
            assert_eq!(easter_sunday(y), date(y, m, d), "Easter {y}");
        }
    }

    #[test]
    fn holidays_2024_to_2030_match_the_official_calendar() {
        // Moveable feasts as published by the French government (service-public.fr).
        let moveable = [
            (date(2024, 4, 1), date(2024, 5, 9), date(2024, 5, 20)),
            (date(2025, 4, 21), date(2025, 5, 29), date(2025, 6, 9)),
            (date(2026, 4, 6), date(2026, 5, 14), date(2026, 5, 25)),
            (date(2027, 3, 29), date(2027, 5, 6), date(2027, 5, 17)),
            (date(2028, 4, 17), date(2028, 5, 25), date(2028, 6, 5)),
            (date(2029, 4, 2), date(2029, 5, 10), date(2029, 5, 21)),
            (date(2030, 4, 22), date(2030, 5, 30), date(2030, 6, 10)),
        ];
        for (easter_monday, ascension, whit_monday) in moveable {
            let year = easter_monday.year();
            let days: Vec<NaiveDate> = public_holidays(year).into_iter().map(|(d, _)| d).collect();
            assert_eq!(days.len(), 11, "{year}");
            for d in [easter_monday, ascension, whit_monday] {
                assert!(days.contains(&d), "{d} missing in {year}");
                assert!(is_public_holiday(d), "{d}");
            }
            for (m, d) in [
                (1, 1),
                (5, 1),
                (5, 8),
                (7, 14),
                (8, 15),
                (11, 1),
                (11, 11),
                (12, 25),
            ] {
                assert!(is_public_holiday(date(year, m, d)));
            }
            // Easter Sunday, Good Friday and Whit Sunday are not public holidays in these departments.
            let easter = easter_sunday(year);
            assert!(!is_public_holiday(easter));
            assert!(!is_public_holiday(easter - Duration::days(2)));
            assert!(!is_public_holiday(easter + Duration::days(49)));
        }
        assert!(!is_public_holiday(date(2026, 11, 27)));
        assert!(!is_public_holiday(date(2026, 12, 24)));
    }

    #[test]
    fn opening_hours_parse_and_reject() {
        let hours = OpeningHours::parse(&[
            "mon-fri 08:30-12:30 13:30-17:30".to_owned(),
            "sat 09:00-12:00".to_owned(),
        ])
        .expect("valid hours");
        let at = |d: u32, h: u32, m: u32| date(2026, 11, d).and_hms_opt(h, m, 0).expect("time");
        assert!(hours.contains(at(27, 8, 30)), "Friday 8:30 opens");
        assert!(!hours.contains(at(27, 12, 30)), "Friday lunch closed");
        assert!(!hours.contains(at(27, 17, 30)), "Friday 17:30 closed");
        assert!(hours.contains(at(28, 11, 59)), "Saturday morning");
        assert!(!hours.contains(at(29, 10, 0)), "Sunday closed");
        assert!(!hours.is_always());
        assert!(OpeningHours::always().is_always());

        for bad in [
            "mon-fri",
            "fri-mon 08:00-09:00",
            "mon 25:00-26:00",
            "mon 09:00-08:00",
            "lun 08:00-12:00",
        ] {
            assert!(OpeningHours::parse(&[bad.to_owned()]).is_err(), "{bad}");
        }
        assert!(OpeningHours::parse(&["mon 08:00-12:00 11:00-13:00".to_owned()]).is_err());
    }

    #[test]
    fn daylight_saving_moves_local_time() {
        let tz = chrono_tz::Europe::Paris;
        let hours = OpeningHours::parse(&["mon-fri 08:30-17:30".to_owned()]).expect("valid");
        // 07:00 UTC is 08:00 in winter (closed) and 09:00 in summer (open).
        let winter = Utc
            .with_ymd_and_hms(2026, 1, 14, 7, 0, 0)
            .single()
            .expect("utc");
        let summer = Utc
            .with_ymd_and_hms(2026, 7, 15, 7, 0, 0)
            .single()
            .expect("utc");
        assert!(!time_facts(tz, &hours, winter).open);
        assert!(time_facts(tz, &hours, summer).open);
        // 2026-03-29 is the spring change: 00:30 UTC is 01:30 CET, 01:30 UTC is 03:30 CEST.
        let before = Utc
            .with_ymd_and_hms(2026, 3, 29, 0, 30, 0)
            .single()
            .expect("utc");
        let after = Utc
            .with_ymd_and_hms(2026, 3, 29, 1, 30, 0)
            .single()
            .expect("utc");
        assert_eq!(local_time(tz, before).hour(), 1);
        assert_eq!(local_time(tz, after).hour(), 3);
    }

    #[test]
    fn sla_due_dates() {
        let tz = chrono_tz::Europe::Paris;
        // Friday 6 November 2026, 10:00 UTC: 5 working days later skips the weekend and
        // Armistice (Wednesday 11 November) and lands on Monday 16 November.
        let at = Utc
            .with_ymd_and_hms(2026, 11, 6, 10, 0, 0)
            .single()
            .expect("utc");
        assert_eq!(sla_due(Urgency::U1, tz, at), at + Duration::hours(4));
        assert_eq!(sla_due(Urgency::U2, tz, at), at + Duration::hours(24));
        let u3 = Utc
            .with_ymd_and_hms(2026, 11, 16, 10, 0, 0)
            .single()
            .expect("utc");
        assert_eq!(sla_due(Urgency::U3, tz, at), u3);
    }

    #[test]
    fn holidays_close_an_open_day() {
        let tz = chrono_tz::Europe::Paris;
        let hours = OpeningHours::parse(&["mon-sun 08:00-18:00".to_owned()]).expect("valid");
        // Wednesday 11 November 2026, 10:00 local.
        let armistice = Utc
            .with_ymd_and_hms(2026, 11, 11, 9, 0, 0)
            .single()
            .expect("utc");
        let facts = time_facts(tz, &hours, armistice);
        assert!(facts.holiday);
        assert!(!facts.open);
        assert!(is_working_day(date(2026, 11, 27)));
        assert!(!is_working_day(date(2026, 11, 28)));
    }

    #[test]
    fn the_starts_due_by_a_deadline_are_exactly_those_whose_due_time_is_not_later() {
        let tz = chrono_tz::Europe::Paris;
        let deadline = Utc
            .with_ymd_and_hms(2026, 11, 16, 10, 0, 0)
            .single()
            .expect("utc");
        let u1 = starts_due_by(Urgency::U1, tz, deadline);
        assert_eq!(
            u1,
            vec![(0, (deadline - Duration::hours(4)).timestamp_millis())]
        );
        for urgency in Urgency::ALL {
            let ranges = starts_due_by(urgency, tz, deadline);
            let inside = |ms: i64| ranges.iter().any(|(from, to)| *from <= ms && ms <= *to);
            // Every 7 minutes and 13 seconds over 25 days, and around each range's ends.
            let mut starts: Vec<i64> = (0..5000)
                .map(|i| (deadline - Duration::days(25)).timestamp_millis() + i * 433_000)
                .collect();
            for (from, to) in &ranges {
                starts.extend([from - 1, *from, *to, to + 1]);
            }
            for ms in starts.into_iter().filter(|ms| *ms > 0) {
                let start = DateTime::from_timestamp_millis(ms).expect("a time");
                assert_eq!(
                    inside(ms),
                    sla_due(urgency, tz, start) <= deadline,
                    "{urgency:?} started {start}"
                );
            }
        }
        // A U3 ticket started on Saturday morning is due before one started Friday afternoon:
        // two ranges, not one.
        assert!(starts_due_by(Urgency::U3, tz, deadline).len() > 1);
    }
}
