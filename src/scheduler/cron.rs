//! Quartz cron expressions, as IDM's `"type": "cron"` schedules use them:
//! `seconds minutes hours day-of-month month day-of-week [year]`, with `*`, `?`, lists,
//! ranges, steps (`0/15`), month and day names, `L` (last day of the month, or `5L`: the last
//! Thursday), and `#` (`6#3`: the third Friday). Day-of-week runs 1 (SUN) to 7 (SAT).

use chrono::{
    DateTime, Datelike, Duration, LocalResult, NaiveDate, NaiveTime, TimeZone, Timelike, Utc,
};
use chrono_tz::Tz;

#[derive(Debug, Clone, PartialEq, thiserror::Error)]
#[error("invalid cron expression {expression:?}: {message}")]
pub struct CronError {
    pub expression: String,
    pub message: String,
}

/// What is wrong in one field; [`Cron::parse`] prefixes the field's name.
#[derive(Debug, thiserror::Error)]
enum CronFieldError {
    #[error("{text:?} is not a number or name")]
    NotANumberOrName { text: String },
    #[error("{text:?} is not a year")]
    NotAYear { text: String },
    #[error("{value} is outside {min}-{max}")]
    OutOfRange { value: u32, min: u32, max: u32 },
    #[error("bad step in {part:?}")]
    BadStep { part: String },
    #[error("range {range:?} runs backwards")]
    Backwards { range: String },
}

#[derive(Debug, Clone, PartialEq)]
pub struct Cron {
    text: String,
    seconds: Set,
    minutes: Set,
    hours: Set,
    days_of_month: DayOfMonth,
    months: Set,
    days_of_week: DayOfWeek,
    years: Option<Set>,
}

/// A set of allowed values as a bit mask (every field fits in 64 bits but the year).
#[derive(Debug, Clone, Copy, PartialEq)]
struct Set(u128);

impl Set {
    fn contains(self, v: u32) -> bool {
        v < 128 && self.0 & (1u128 << v) != 0
    }
}

#[derive(Debug, Clone, PartialEq)]
enum DayOfMonth {
    Any,
    Days(Set),
    Last,
}

#[derive(Debug, Clone, PartialEq)]
enum DayOfWeek {
    Any,
    Days(Set),
    /// `5L`: the last such weekday of the month.
    Last(u32),
    /// `6#3`: the nth such weekday of the month.
    Nth(u32, u32),
}

const LAST_SECOND: NaiveTime = match NaiveTime::from_hms_opt(23, 59, 59) {
    Some(t) => t,
    None => NaiveTime::MIN,
};

const MONTHS: [&str; 12] = [
    "JAN", "FEB", "MAR", "APR", "MAY", "JUN", "JUL", "AUG", "SEP", "OCT", "NOV", "DEC",
];
const DAYS: [&str; 7] = ["SUN", "MON", "TUE", "WED", "THU", "FRI", "SAT"];

impl Cron {
    pub fn parse(text: &str) -> Result<Cron, CronError> {
        let err = |message: String| CronError {
            expression: text.to_owned(),
            message,
        };
        let fields: Vec<&str> = text.split_whitespace().collect();
        let (&[second, minute, hour, day_of_month, month, day_of_week]
        | &[second, minute, hour, day_of_month, month, day_of_week, _]) = fields.as_slice()
        else {
            return Err(err(format!(
                "expected 6 or 7 fields (seconds minutes hours day-of-month month day-of-week [year]), got {}",
                fields.len()
            )));
        };
        let seconds = parse_set(second, 0, 59, &[]).map_err(|m| err(format!("seconds: {m}")))?;
        let minutes = parse_set(minute, 0, 59, &[]).map_err(|m| err(format!("minutes: {m}")))?;
        let hours = parse_set(hour, 0, 23, &[]).map_err(|m| err(format!("hours: {m}")))?;
        let months = parse_set(month, 1, 12, &MONTHS).map_err(|m| err(format!("month: {m}")))?;
        let days_of_month = match day_of_month {
            "?" => DayOfMonth::Any,
            "L" => DayOfMonth::Last,
            f if f.contains('W') => {
                return Err(err(
                    "day-of-month: W (nearest weekday) is not supported".into()
                ));
            }
            f => DayOfMonth::Days(
                parse_set(f, 1, 31, &[]).map_err(|m| err(format!("day-of-month: {m}")))?,
            ),
        };
        let days_of_week = match day_of_week {
            "?" => DayOfWeek::Any,
            "L" => DayOfWeek::Days(Set(1 << 7)),
            f if f.ends_with('L') => DayOfWeek::Last(
                parse_value(&f[..f.len() - 1], 1, 7, &DAYS)
                    .map_err(|m| err(format!("day-of-week: {m}")))?,
            ),
            f if f.contains('#') => {
                let (day, nth) = f.split_once('#').unwrap_or((f, ""));
                let day =
                    parse_value(day, 1, 7, &DAYS).map_err(|m| err(format!("day-of-week: {m}")))?;
                let nth =
                    parse_value(nth, 1, 5, &[]).map_err(|m| err(format!("day-of-week #: {m}")))?;
                DayOfWeek::Nth(day, nth)
            }
            f => DayOfWeek::Days(
                parse_set(f, 1, 7, &DAYS).map_err(|m| err(format!("day-of-week: {m}")))?,
            ),
        };
        // Quartz requires one of the two day fields to be `?`; `*` counts as "every day".
        let dom_star = day_of_month == "*";
        let dow_star = day_of_week == "*";
        if !(matches!(days_of_month, DayOfMonth::Any)
            || matches!(days_of_week, DayOfWeek::Any)
            || dom_star
            || dow_star)
        {
            return Err(err(
                "give either day-of-month or day-of-week, and '?' for the other".into(),
            ));
        }
        let days_of_week = if dow_star && !matches!(days_of_month, DayOfMonth::Any) {
            DayOfWeek::Any
        } else {
            days_of_week
        };
        let days_of_month = if dom_star && !matches!(days_of_week, DayOfWeek::Any) {
            DayOfMonth::Any
        } else {
            days_of_month
        };
        let years = match fields.get(6) {
            None => None,
            Some(f) => {
                let set =
                    parse_set_with_offset(f, 1970, 2099).map_err(|m| err(format!("year: {m}")))?;
                Some(set)
            }
        };
        Ok(Cron {
            text: text.to_owned(),
            seconds,
            minutes,
            hours,
            days_of_month,
            months,
            days_of_week,
            years,
        })
    }

    pub fn as_str(&self) -> &str {
        &self.text
    }

    /// The first firing strictly after `after`, in `tz`; `None` if there is none within 5 years.
    pub fn next_after(&self, after: DateTime<Utc>, tz: Tz) -> Option<DateTime<Utc>> {
        let local = after.with_timezone(&tz);
        let mut date = local.date_naive();
        let mut from = local.time().with_nanosecond(0)? + Duration::seconds(1);
        if from <= local.time().with_nanosecond(0)? {
            // Wrapped past midnight.
            date = date.succ_opt()?;
            from = NaiveTime::MIN;
        }
        for _ in 0..(366 * 5) {
            if self.date_matches(date) {
                let mut time = Some(from);
                while let Some(t) = time.and_then(|t| self.time_at_or_after(t)) {
                    match tz.from_local_datetime(&date.and_time(t)) {
                        LocalResult::Single(dt) => return Some(dt.with_timezone(&Utc)),
                        // The earlier of two instants, so a repeated hour fires once.
                        LocalResult::Ambiguous(first, _) => return Some(first.with_timezone(&Utc)),
                        // A time skipped by a DST change does not happen: look further that day.
                        LocalResult::None => {
                            time = (t < LAST_SECOND).then(|| t + Duration::seconds(1))
                        }
                    }
                }
            }
            date = date.succ_opt()?;
            from = NaiveTime::MIN;
        }
        None
    }

    fn date_matches(&self, date: NaiveDate) -> bool {
        if !self.months.contains(date.month()) {
            return false;
        }
        if let Some(years) = self.years {
            let Some(offset) = date
                .year()
                .checked_sub(1970)
                .and_then(|y| u32::try_from(y).ok())
            else {
                return false;
            };
            if !years.contains(offset) {
                return false;
            }
        }
        let last_day = last_day_of_month(date);
        let dom_ok = match &self.days_of_month {
            DayOfMonth::Any => true,
            DayOfMonth::Days(set) => set.contains(date.day()),
            DayOfMonth::Last => date.day() == last_day,
        };
        let weekday = date.weekday().number_from_sunday();
        let dow_ok = match &self.days_of_week {
            DayOfWeek::Any => true,
            DayOfWeek::Days(set) => set.contains(weekday),
            DayOfWeek::Last(day) => weekday == *day && date.day() + 7 > last_day,
            DayOfWeek::Nth(day, nth) => weekday == *day && (date.day() - 1) / 7 + 1 == *nth,
        };
        dom_ok && dow_ok
    }

    /// The first matching time of day at or after `from`.
    fn time_at_or_after(&self, from: NaiveTime) -> Option<NaiveTime> {
        for h in from.hour()..24 {
            if !self.hours.contains(h) {
                continue;
            }
            let m0 = if h == from.hour() { from.minute() } else { 0 };
            for m in m0..60 {
                if !self.minutes.contains(m) {
                    continue;
                }
                let s0 = if h == from.hour() && m == from.minute() {
                    from.second()
                } else {
                    0
                };
                if let Some(s) = (s0..60).find(|s| self.seconds.contains(*s)) {
                    return NaiveTime::from_hms_opt(h, m, s);
                }
            }
        }
        None
    }
}

fn last_day_of_month(date: NaiveDate) -> u32 {
    let (y, m) = (date.year(), date.month());
    let next = if m == 12 {
        NaiveDate::from_ymd_opt(y + 1, 1, 1)
    } else {
        NaiveDate::from_ymd_opt(y, m + 1, 1)
    };
    next.and_then(|n| n.pred_opt()).map_or(28, |d| d.day())
}

fn parse_value(text: &str, min: u32, max: u32, names: &[&str]) -> Result<u32, CronFieldError> {
    let upper = text.to_ascii_uppercase();
    let value = match names.iter().position(|n| *n == upper) {
        Some(i) => i as u32 + min,
        None => text
            .parse::<u32>()
            .map_err(|_| CronFieldError::NotANumberOrName {
                text: text.to_owned(),
            })?,
    };
    if !(min..=max).contains(&value) {
        return Err(CronFieldError::OutOfRange { value, min, max });
    }
    Ok(value)
}

fn parse_set(field: &str, min: u32, max: u32, names: &[&str]) -> Result<Set, CronFieldError> {
    let mut bits = 0u128;
    for part in field.split(',') {
        let (range, step) = match part.split_once('/') {
            Some((r, s)) => (
                r,
                s.parse::<u32>().ok().filter(|s| *s > 0).ok_or_else(|| {
                    CronFieldError::BadStep {
                        part: part.to_owned(),
                    }
                })?,
            ),
            None => (part, 1),
        };
        let (lo, hi) = match range {
            "*" | "?" => (min, max),
            r => match r.split_once('-') {
                Some((a, b)) => (
                    parse_value(a, min, max, names)?,
                    parse_value(b, min, max, names)?,
                ),
                None => {
                    let v = parse_value(r, min, max, names)?;
                    // `0/15` means from 0 to the end in steps of 15.
                    (v, if part.contains('/') { max } else { v })
                }
            },
        };
        if lo > hi {
            return Err(CronFieldError::Backwards {
                range: range.to_owned(),
            });
        }
        let mut v = lo;
        while v <= hi {
            bits |= 1u128 << v;
            v += step;
        }
    }
    Ok(Set(bits))
}

/// Years as offsets from 1970, so they fit the bit set.
fn parse_set_with_offset(field: &str, min: u32, max: u32) -> Result<Set, CronFieldError> {
    if field == "*" {
        return Ok(Set(u128::MAX));
    }
    let shifted: Result<Vec<String>, CronFieldError> = field
        .split(',')
        .map(|part| {
            let shift = |v: &str| -> Result<String, CronFieldError> {
                let n: u32 = v
                    .parse()
                    .map_err(|_| CronFieldError::NotAYear { text: v.to_owned() })?;
                if !(min..=max).contains(&n) {
                    return Err(CronFieldError::OutOfRange { value: n, min, max });
                }
                Ok((n - min).to_string())
            };
            let (range, step) = match part.split_once('/') {
                Some((r, s)) => (r, Some(s)),
                None => (part, None),
            };
            let range = match range.split_once('-') {
                Some((a, b)) => format!("{}-{}", shift(a)?, shift(b)?),
                None if range == "*" => "*".to_owned(),
                None => shift(range)?,
            };
            Ok(match step {
                Some(s) => format!("{range}/{s}"),
                None => range,
            })
        })
        .collect();
    parse_set(&shifted?.join(","), 0, max - min, &[])
}

#[cfg(test)]
mod tests {
    use super::*;

    fn utc(s: &str) -> DateTime<Utc> {
        DateTime::parse_from_rfc3339(s).unwrap().with_timezone(&Utc)
    }

    fn next(expr: &str, after: &str) -> String {
        Cron::parse(expr)
            .unwrap()
            .next_after(utc(after), chrono_tz::UTC)
            .unwrap()
            .to_rfc3339()
    }

    #[test]
    fn idm_examples() {
        // IDM's sample: every minute at second 0; the shipped recon: every 15 minutes.
        assert_eq!(
            next("0 0/1 * * * ?", "2024-01-01T10:00:30Z"),
            "2024-01-01T10:01:00+00:00"
        );
        assert_eq!(
            next("0 0/15 * * * ?", "2024-01-01T10:00:00Z"),
            "2024-01-01T10:15:00+00:00"
        );
        assert_eq!(
            next("0 0/15 * * * ?", "2024-01-01T23:50:00Z"),
            "2024-01-02T00:00:00+00:00"
        );
        assert_eq!(
            next("30 10 2 * * ?", "2024-01-01T02:10:30Z"),
            "2024-01-02T02:10:30+00:00"
        );
    }

    #[test]
    fn days_months_and_specials() {
        assert_eq!(
            next("0 0 12 ? * MON-FRI", "2024-01-06T00:00:00Z"),
            "2024-01-08T12:00:00+00:00"
        ); // Sat → Mon
        assert_eq!(
            next("0 0 0 L * ?", "2024-02-10T00:00:00Z"),
            "2024-02-29T00:00:00+00:00"
        ); // leap year
        assert_eq!(
            next("0 0 0 ? * 6L", "2024-03-01T00:00:00Z"),
            "2024-03-29T00:00:00+00:00"
        ); // last Friday
        assert_eq!(
            next("0 0 0 ? * 6#3", "2024-03-01T00:00:00Z"),
            "2024-03-15T00:00:00+00:00"
        ); // third Friday
        assert_eq!(
            next("0 0 0 1 JAN,JUL ?", "2024-02-01T00:00:00Z"),
            "2024-07-01T00:00:00+00:00"
        );
        assert_eq!(
            next("0 0 0 1 1 ? 2026", "2024-02-01T00:00:00Z"),
            "2026-01-01T00:00:00+00:00"
        );
        assert!(
            Cron::parse("0 0 0 1 1 ? 2020")
                .unwrap()
                .next_after(utc("2024-01-01T00:00:00Z"), chrono_tz::UTC)
                .is_none()
        );
    }

    #[test]
    fn time_zones_and_dst() {
        let la: Tz = "America/Los_Angeles".parse().unwrap();
        let c = Cron::parse("0 0 9 * * ?").unwrap();
        assert_eq!(
            c.next_after(utc("2024-07-01T00:00:00Z"), la)
                .unwrap()
                .to_rfc3339(),
            "2024-07-01T16:00:00+00:00"
        );
        // 02:30 does not exist on 2024-03-10 in Los Angeles: that day is skipped.
        let c = Cron::parse("0 30 2 * * ?").unwrap();
        assert_eq!(
            c.next_after(utc("2024-03-10T00:00:00Z"), la)
                .unwrap()
                .to_rfc3339(),
            "2024-03-11T09:30:00+00:00"
        );
        // 01:30 happens twice on 2024-11-03: it fires once, at the first.
        let c = Cron::parse("0 30 1 * * ?").unwrap();
        assert_eq!(
            c.next_after(utc("2024-11-03T07:00:00Z"), la)
                .unwrap()
                .to_rfc3339(),
            "2024-11-03T08:30:00+00:00"
        );
    }

    #[test]
    fn errors_say_what_is_wrong() {
        for (expr, wanted) in [
            ("0 0 * * *", "6 or 7 fields"),
            ("61 0 * * * ?", "seconds"),
            ("0 0 * 5 * MON", "either day-of-month or day-of-week"),
            ("0 0 * 15W * ?", "not supported"),
            ("0 0/0 * * * ?", "step"),
            ("0 0 * * FOO ?", "month"),
        ] {
            let e = Cron::parse(expr).unwrap_err().to_string();
            assert!(e.contains(wanted), "{expr}: {e}");
        }
    }

    #[test]
    fn field_errors_name_the_field_and_the_value() {
        for (expr, wanted) in [
            ("0 0 * * FOO ?", r#"month: "FOO" is not a number or name"#),
            ("61 0 * * * ?", "seconds: 61 is outside 0-59"),
            ("0 0/0 * * * ?", r#"minutes: bad step in "0/0""#),
            ("0 0 5-2 * * ?", r#"hours: range "5-2" runs backwards"#),
            ("0 0 0 ? * 6#9", "day-of-week #: 9 is outside 1-5"),
            ("0 0 0 1 1 ? 1969", "year: 1969 is outside 1970-2099"),
            ("0 0 0 1 1 ? 20x6", r#"year: "20x6" is not a year"#),
        ] {
            let e = Cron::parse(expr).unwrap_err().to_string();
            assert_eq!(e, format!("invalid cron expression {expr:?}: {wanted}"));
        }
    }
}
