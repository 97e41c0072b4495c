//! PostgreSQL's date and timestamp input: `2020-04-15 12:02` (no seconds),
//! `2020-04-15T12:02:03.5+02`, `20200415`, `Apr 15 2020`, `04/15/2020`
//! (DateStyle MDY), `epoch`. Arrow's string casts take only RFC 3339-like
//! text with seconds.

use std::sync::Arc;

use chrono::{NaiveDate, NaiveDateTime, NaiveTime};
use datafusion::arrow::array::{Array, ArrayRef, AsArray, Date32Array, TimestampNanosecondArray};
use datafusion::arrow::compute::cast;
use datafusion::arrow::datatypes::{DataType, TimeUnit};
use datafusion::common::exec_err;
use datafusion::error::Result;
use datafusion::logical_expr::ScalarUDF;

use super::simple::{any, udf};

pub const TIMESTAMP_IN: &str = "pg_timestamp_in";
pub const TIMESTAMPTZ_IN: &str = "pg_timestamptz_in";
pub const DATE_IN: &str = "pg_date_in";

pub fn functions() -> Vec<ScalarUDF> {
    vec![
        udf(
            TIMESTAMP_IN,
            any(1),
            |_| Ok(DataType::Timestamp(TimeUnit::Nanosecond, None)),
            |a, _| timestamps(&a[0], false),
        ),
        udf(
            TIMESTAMPTZ_IN,
            any(1),
            |_| {
                Ok(DataType::Timestamp(
                    TimeUnit::Nanosecond,
                    Some("+00:00".into()),
                ))
            },
            |a, _| timestamps(&a[0], true),
        ),
        udf(
            DATE_IN,
            any(1),
            |_| Ok(DataType::Date32),
            |a, _| dates(&a[0]),
        ),
    ]
}

fn texts(a: &ArrayRef) -> Result<datafusion::arrow::array::StringArray> {
    Ok(cast(a, &DataType::Utf8)?.as_string::<i32>().clone())
}

fn timestamps(a: &ArrayRef, with_zone: bool) -> Result<ArrayRef> {
    let t = texts(a)?;
    let mut out = Vec::with_capacity(t.len());
    for s in t.iter() {
        out.push(match s {
            None => None,
            Some(s) => {
                let kind = if with_zone {
                    "timestamp with time zone"
                } else {
                    "timestamp"
                };
                let p = parse(s, kind)?;
                let mut ns = p
                    .datetime
                    .and_utc()
                    .timestamp_nanos_opt()
                    .map_or_else(|| exec_err!("timestamp out of range: \"{s}\""), Ok)?;
                if with_zone {
                    ns -= p.offset_secs as i64 * 1_000_000_000;
                }
                Some(ns)
            }
        });
    }
    let arr = TimestampNanosecondArray::from(out);
    Ok(if with_zone {
        Arc::new(arr.with_timezone("+00:00"))
    } else {
        Arc::new(arr)
    })
}

fn dates(a: &ArrayRef) -> Result<ArrayRef> {
    let t = texts(a)?;
    let epoch = NaiveDate::from_ymd_opt(1970, 1, 1).unwrap_or_default();
    let mut out = Vec::with_capacity(t.len());
    for s in t.iter() {
        out.push(match s {
            None => None,
            Some(s) => {
                let p = parse(s, "date")?;
                Some((p.datetime.date() - epoch).num_days() as i32)
            }
        });
    }
    Ok(Arc::new(Date32Array::from(out)))
}

/// A parsed date/time: the wall-clock value and the zone offset written
/// with it (0 when none).
#[derive(Debug, PartialEq)]
pub struct Parsed {
    pub datetime: NaiveDateTime,
    pub offset_secs: i32,
}

const MONTHS: [&str; 12] = [
    "january",
    "february",
    "march",
    "april",
    "may",
    "june",
    "july",
    "august",
    "september",
    "october",
    "november",
    "december",
];

/// The month a name or its abbreviation (three letters or more) denotes.
fn month_of(word: &str) -> Option<u32> {
    let w = word.trim_end_matches(['.', ',']).to_ascii_lowercase();
    if w.len() < 3 {
        return None;
    }
    let w = if w == "sept" { "sep".to_string() } else { w };
    MONTHS
        .iter()
        .position(|m| m.starts_with(w.as_str()))
        .map(|i| i as u32 + 1)
}

/// Parses PostgreSQL date/time input for type `kind` (used in messages).
pub fn parse(input: &str, kind: &str) -> Result<Parsed> {
    let bad = || exec_err!("invalid input syntax for type {kind}: \"{input}\"");
    let s = input.trim();
    if s.eq_ignore_ascii_case("epoch") {
        return Ok(Parsed {
            datetime: NaiveDateTime::default(),
            offset_secs: 0,
        });
    }
    // Split into the date part and the rest (time and zone).
    let (date_part, rest) = split_date(s);
    let Some((y, m, d)) = date_fields(date_part) else {
        return bad();
    };
    let Some(date) = NaiveDate::from_ymd_opt(y, m, d) else {
        return exec_err!("date/time field value out of range: \"{input}\"");
    };
    let rest = rest.trim();
    let (time, offset_secs) = if rest.is_empty() {
        (NaiveTime::MIN, 0)
    } else {
        match time_and_zone(rest) {
            Some(Ok(t)) => t,
            Some(Err(())) => return exec_err!("date/time field value out of range: \"{input}\""),
            None => return bad(),
        }
    };
    Ok(Parsed {
        datetime: date.and_time(time),
        offset_secs,
    })
}

/// The date text and what follows it (`T` or a space separates them).
fn split_date(s: &str) -> (&str, &str) {
    // Month-name forms keep their spaces: "Apr 15 2020 10:00".
    let first = s.split([' ', ',']).next().unwrap_or("");
    if month_of(first).is_some()
        || s.split(' ')
            .nth(1)
            .is_some_and(|w| month_of(w.trim_end_matches(',')).is_some())
    {
        let words: Vec<&str> = s.splitn(4, ' ').collect();
        if words.len() >= 3 {
            let end = words[..3].iter().map(|w| w.len() + 1).sum::<usize>() - 1;
            return (&s[..end.min(s.len())], &s[end.min(s.len())..]);
        }
        return (s, "");
    }
    match s.find(['T', 't', ' ']) {
        Some(i) => (&s[..i], &s[i + 1..]),
        None => (s, ""),
    }
}

fn num(s: &str) -> Option<u32> {
    if s.is_empty() || !s.bytes().all(|b| b.is_ascii_digit()) {
        return None;
    }
    s.parse().ok()
}

fn date_fields(s: &str) -> Option<(i32, u32, u32)> {
    let s = s.trim();
    if s.len() == 8 && s.bytes().all(|b| b.is_ascii_digit()) {
        return Some((s[..4].parse().ok()?, num(&s[4..6])?, num(&s[6..])?));
    }
    for sep in ['-', '/', '.'] {
        let parts: Vec<&str> = s.split(sep).collect();
        if parts.len() == 3 {
            let (a, b, c) = (num(parts[0])?, num(parts[1])?, num(parts[2])?);
            return if parts[0].len() >= 3 {
                Some((a as i32, b, c)) // year first
            } else if sep == '-' && parts[2].len() < 3 {
                None
            } else {
                Some((c as i32, a, b)) // MDY
            };
        }
    }
    // Month names: "Apr 15 2020", "April 15, 2020", "15 Apr 2020".
    let words: Vec<&str> = s.split([' ', ',']).filter(|w| !w.is_empty()).collect();
    if words.len() == 3 {
        if let Some(m) = month_of(words[0]) {
            return Some((num(words[2])? as i32, m, num(words[1])?));
        }
        if let Some(m) = month_of(words[1]) {
            return Some((num(words[2])? as i32, m, num(words[0])?));
        }
    }
    None
}

/// `HH:MM[:SS[.f]]` and an optional zone: `Z`, `UTC`, `+HH`, `-HH:MM`.
/// `Some(Err)` for fields out of range, `None` for bad syntax.
#[allow(clippy::type_complexity)]
fn time_and_zone(s: &str) -> Option<std::result::Result<(NaiveTime, i32), ()>> {
    let s = s.trim();
    let zone_at = s[1..].find(['+', '-', 'Z', 'z', ' ']).map(|i| i + 1);
    let (t, zone) = match zone_at {
        Some(i) => (&s[..i], s[i..].trim()),
        None => (s, ""),
    };
    let offset = zone_offset(zone)?;
    let parts: Vec<&str> = t.split(':').collect();
    if parts.len() < 2 || parts.len() > 3 {
        return None;
    }
    let h = num(parts[0])?;
    let m = num(parts[1])?;
    let (sec, nanos) = match parts.get(2) {
        None => (0, 0),
        Some(p) => {
            let (whole, frac) = p.split_once('.').unwrap_or((p, ""));
            let sec = num(whole)?;
            if !frac.is_empty() && !frac.bytes().all(|b| b.is_ascii_digit()) {
                return None;
            }
            // PostgreSQL keeps microseconds, rounding the rest.
            let mut digits: String = frac.chars().take(7).collect();
            while digits.len() < 7 {
                digits.push('0');
            }
            let tenths_of_micros: u64 = digits.parse().ok()?;
            let micros = (tenths_of_micros + 5) / 10;
            (sec, micros * 1000)
        }
    };
    if h == 24 && m == 0 && sec == 0 && nanos == 0 {
        return Some(Err(())); // 24:00:00 is the next day in PostgreSQL; not taken here
    }
    let (sec, nanos) = if nanos >= 1_000_000_000 {
        (sec + 1, nanos - 1_000_000_000)
    } else {
        (sec, nanos)
    };
    match NaiveTime::from_hms_nano_opt(h, m, sec, nanos as u32) {
        Some(t) => Some(Ok((t, offset))),
        None => Some(Err(())),
    }
}

fn zone_offset(z: &str) -> Option<i32> {
    if z.is_empty()
        || z.eq_ignore_ascii_case("z")
        || z.eq_ignore_ascii_case("utc")
        || z.eq_ignore_ascii_case("gmt")
    {
        return Some(0);
    }
    let sign = match z.as_bytes()[0] {
        b'+' => 1,
        b'-' => -1,
        _ => return None,
    };
    let body = &z[1..];
    let (h, m) = match body.split_once(':') {
        Some((h, m)) => (num(h)?, num(m)?),
        None if body.len() == 4 => (num(&body[..2])?, num(&body[2..])?),
        None => (num(body)?, 0),
    };
    if h > 15 || m > 59 {
        return None;
    }
    Some(sign * (h as i32 * 3600 + m as i32 * 60))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ts(s: &str) -> String {
        parse(s, "timestamp")
            .map(|p| p.datetime.to_string())
            .unwrap_or_else(|e| e.to_string())
    }

    #[test]
    fn postgres_forms() {
        assert_eq!(ts("2020-04-15 12:02"), "2020-04-15 12:02:00");
        assert_eq!(ts("2020-04-15"), "2020-04-15 00:00:00");
        assert_eq!(ts("2020-04-15T12:02:03.5"), "2020-04-15 12:02:03.500");
        assert_eq!(ts("20200415"), "2020-04-15 00:00:00");
        assert_eq!(ts("Apr 15 2020"), "2020-04-15 00:00:00");
        assert_eq!(ts("April 15, 2020 10:30"), "2020-04-15 10:30:00");
        assert_eq!(ts("04/15/2020"), "2020-04-15 00:00:00");
        assert_eq!(ts("2020-04-15 12:02:03+02"), "2020-04-15 12:02:03");
        assert!(ts("2020-13-01").contains("out of range"));
        assert!(ts("not a time").contains("invalid input syntax"));
        assert_eq!(
            parse("2020-04-15 12:00-02:30", "t").unwrap().offset_secs,
            -9000
        );
    }
}
