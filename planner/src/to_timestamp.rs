//! PostgreSQL's `to_timestamp(text, template)` and `to_date(text, template)`:
//! text read by the templates `to_char` writes (`YYYY-MM-DD HH24:MI:SS`,
//! `DD Mon YYYY`, ...). DataFusion's take chrono's `%Y-%m-%d`. Also
//! `to_timestamp(double precision)`, seconds since the epoch.
//! `to_timestamp` gives a `timestamp with time zone`, `to_date` a `date`.

use std::sync::Arc;

use chrono::{NaiveDate, NaiveDateTime, NaiveTime};
use datafusion::arrow::array::{Array, ArrayRef, AsArray, Date32Array, TimestampMicrosecondArray};
use datafusion::arrow::compute::cast;
use datafusion::arrow::datatypes::{DataType, Float64Type, TimeUnit};
use datafusion::common::exec_err;
use datafusion::error::Result;
use datafusion::logical_expr::ScalarUDF;

use crate::pg::simple::{any, udf};
use crate::to_char::{parse, Field, Tok};

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
const DAYS: [&str; 7] = [
    "sunday",
    "monday",
    "tuesday",
    "wednesday",
    "thursday",
    "friday",
    "saturday",
];

pub fn functions() -> Vec<ScalarUDF> {
    vec![
        udf(
            "to_timestamp",
            datafusion::logical_expr::Signature::variadic_any(
                datafusion::logical_expr::Volatility::Immutable,
            ),
            |_| {
                Ok(DataType::Timestamp(
                    TimeUnit::Microsecond,
                    Some("+00:00".into()),
                ))
            },
            to_timestamp,
        ),
        udf("to_date", any(2), |_| Ok(DataType::Date32), to_date),
    ]
}

fn texts(a: &ArrayRef) -> Result<datafusion::arrow::array::StringArray> {
    Ok(cast(a, &DataType::Utf8)?.as_string::<i32>().clone())
}

fn to_timestamp(a: &[ArrayRef], _: &DataType) -> Result<ArrayRef> {
    let out: TimestampMicrosecondArray = match a {
        [secs] if secs.data_type().is_numeric() => {
            let f = cast(secs, &DataType::Float64)?;
            let mut v = Vec::with_capacity(f.len());
            for s in f.as_primitive::<Float64Type>().iter() {
                v.push(match s {
                    Some(s) if s.is_finite() => Some((s * 1e6).round() as i64),
                    Some(_) => return exec_err!("timestamp cannot be NaN or infinite"),
                    None => None,
                });
            }
            v.into()
        }
        [text, template] => {
            let mut v = Vec::with_capacity(text.len());
            for dt in read_all(text, template, "timestamp")? {
                v.push(dt.map(|d| d.and_utc().timestamp_micros()));
            }
            v.into()
        }
        _ => return exec_err!("to_timestamp takes a number, or a text and a template"),
    };
    Ok(Arc::new(out.with_timezone("+00:00")))
}

fn to_date(a: &[ArrayRef], _: &DataType) -> Result<ArrayRef> {
    let epoch = NaiveDate::from_ymd_opt(1970, 1, 1).unwrap_or_default();
    let v: Date32Array = read_all(&a[0], &a[1], "date")?
        .into_iter()
        .map(|d| d.map(|d| (d.date() - epoch).num_days() as i32))
        .collect();
    Ok(Arc::new(v))
}

fn read_all(
    text: &ArrayRef,
    template: &ArrayRef,
    kind: &str,
) -> Result<Vec<Option<NaiveDateTime>>> {
    let (t, f) = (texts(text)?, texts(template)?);
    let single = f.len() == 1 && t.len() != 1;
    let fixed = if single && f.is_valid(0) {
        Some(parse(f.value(0)))
    } else {
        None
    };
    let mut out = Vec::with_capacity(t.len());
    for i in 0..t.len() {
        let fi = if single { 0 } else { i };
        if t.is_null(i) || f.is_null(fi) {
            out.push(None);
            continue;
        }
        let toks = match &fixed {
            Some(toks) => std::borrow::Cow::Borrowed(toks),
            None => std::borrow::Cow::Owned(parse(f.value(fi))),
        };
        out.push(Some(read(t.value(i), &toks, kind)?));
    }
    Ok(out)
}

/// Digits at the start of `s`, at most `max` of them.
fn digits(s: &str, max: usize) -> (&str, &str) {
    let n = s
        .bytes()
        .take(max)
        .take_while(|b| b.is_ascii_digit())
        .count();
    s.split_at(n)
}

/// Reads `input` by the template `toks`, as PostgreSQL's `to_timestamp`
/// does outside FX mode (spaces are flexible, literal characters skipped).
pub(crate) fn read(input: &str, toks: &[Tok], kind: &str) -> Result<NaiveDateTime> {
    let bad = || exec_err!("invalid value \"{input}\" for the template of {kind}");
    let (mut year, mut month, mut day) = (1i32, 1u32, 1u32);
    let (mut hour, mut min, mut sec, mut micros) = (0u32, 0u32, 0u32, 0u32);
    let mut pm: Option<bool> = None;
    let mut doy: Option<u32> = None;
    let mut rest = input;
    for (i, tok) in toks.iter().enumerate() {
        // A year runs to 4 digits when a field follows without a separator.
        let year_width = if matches!(toks.get(i + 1), Some(Tok::Field(_, _))) {
            4
        } else {
            9
        };
        match tok {
            Tok::Lit(l) => {
                for c in l.chars() {
                    if c.is_whitespace() {
                        rest = rest.trim_start();
                    } else if let Some(ch) = rest.chars().next() {
                        // Any one character stands for a separator.
                        if !ch.is_ascii_digit() || ch == c {
                            rest = &rest[ch.len_utf8()..];
                        }
                    }
                }
            }
            Tok::Field(f, _) => {
                rest = rest.trim_start();
                let num = |rest: &mut &str, max: usize| -> Option<u32> {
                    let cur: &str = rest;
                    let body = cur.strip_prefix('-').unwrap_or(cur);
                    let (d, r) = digits(body, max);
                    if d.is_empty() {
                        return None;
                    }
                    *rest = r;
                    d.parse().ok()
                };
                match f {
                    Field::Yyyy | Field::Iyyy => {
                        let Some(y) = num(&mut rest, year_width) else {
                            return bad();
                        };
                        year = y as i32;
                    }
                    Field::YyyyComma => {
                        let Some(a) = num(&mut rest, 3) else {
                            return bad();
                        };
                        rest = rest.strip_prefix(',').unwrap_or(rest);
                        let Some(b) = num(&mut rest, 3) else {
                            return bad();
                        };
                        year = (a * 1000 + b) as i32;
                    }
                    Field::Yyy | Field::Yy | Field::Y => {
                        let width = match f {
                            Field::Yyy => 3,
                            Field::Yy => 2,
                            _ => 1,
                        };
                        let Some(y) = num(&mut rest, width) else {
                            return bad();
                        };
                        // PostgreSQL's nearest-year rule for short years.
                        year = match width {
                            2 if y < 70 => 2000 + y as i32,
                            2 => 1900 + y as i32,
                            3 if y < 100 => 2000 + y as i32,
                            3 => 1000 + y as i32,
                            _ => 2000 + y as i32,
                        };
                    }
                    Field::Mm => {
                        let Some(m) = num(&mut rest, 2) else {
                            return bad();
                        };
                        month = m;
                    }
                    Field::Dd => {
                        let Some(d) = num(&mut rest, 2) else {
                            return bad();
                        };
                        day = d;
                    }
                    Field::Ddd => {
                        let Some(d) = num(&mut rest, 3) else {
                            return bad();
                        };
                        doy = Some(d);
                    }
                    Field::Hh24 | Field::Hh12 => {
                        let Some(h) = num(&mut rest, 2) else {
                            return bad();
                        };
                        hour = h;
                    }
                    Field::Mi => {
                        let Some(m) = num(&mut rest, 2) else {
                            return bad();
                        };
                        min = m;
                    }
                    Field::Ss => {
                        let Some(s) = num(&mut rest, 2) else {
                            return bad();
                        };
                        sec = s;
                    }
                    Field::Ms | Field::Us => {
                        let width = if matches!(f, Field::Ms) { 3 } else { 6 };
                        let (d, r) = digits(rest, width);
                        if d.is_empty() {
                            return bad();
                        }
                        rest = r;
                        let padded = format!("{d:0<width$}");
                        let v: u32 = padded.parse().unwrap_or(0);
                        micros = if width == 3 { v * 1000 } else { v };
                    }
                    Field::MonthName(_) | Field::MonAbbr(_) => {
                        let word: String = rest.chars().take_while(|c| c.is_alphabetic()).collect();
                        let w = word.to_lowercase();
                        let Some(m) = MONTHS
                            .iter()
                            .position(|m| w.len() >= 3 && m.starts_with(w.as_str()))
                        else {
                            return bad();
                        };
                        month = m as u32 + 1;
                        rest = &rest[word.len()..];
                    }
                    Field::DayName(_) | Field::DayAbbr(_) => {
                        let word: String = rest.chars().take_while(|c| c.is_alphabetic()).collect();
                        let w = word.to_lowercase();
                        if !DAYS
                            .iter()
                            .any(|d| w.len() >= 3 && d.starts_with(w.as_str()))
                        {
                            return bad();
                        }
                        rest = &rest[word.len()..];
                    }
                    Field::Meridiem(_, dots) => {
                        let len = if *dots { 4 } else { 2 };
                        let word: String = rest.chars().take(len).collect();
                        let w = word.to_lowercase().replace('.', "");
                        pm = match w.as_str() {
                            "am" => Some(false),
                            "pm" => Some(true),
                            _ => return bad(),
                        };
                        rest = &rest[word.len()..];
                    }
                    Field::Tz(_) => {
                        let word: String = rest.chars().take_while(|c| c.is_alphabetic()).collect();
                        rest = &rest[word.len()..];
                    }
                    _ => {
                        let Some(_) = num(&mut rest, 9) else {
                            return bad();
                        };
                    }
                }
            }
        }
    }
    if let Some(p) = pm {
        if hour > 12 || hour == 0 {
            return exec_err!("hour \"{hour}\" is invalid for the 12-hour clock");
        }
        hour = match (p, hour) {
            (false, 12) => 0,
            (true, 12) => 12,
            (true, h) => h + 12,
            (false, h) => h,
        };
    }
    let date = match doy {
        Some(d) => NaiveDate::from_yo_opt(year, d),
        None => NaiveDate::from_ymd_opt(year, month, day),
    };
    let time = NaiveTime::from_hms_micro_opt(hour, min, sec, micros);
    match (date, time) {
        (Some(d), Some(t)) => Ok(d.and_time(t)),
        _ => exec_err!("date/time field value out of range: \"{input}\""),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn r(s: &str, t: &str) -> String {
        read(s, &parse(t), "timestamp")
            .map(|d| d.to_string())
            .unwrap_or_else(|e| e.to_string())
    }

    #[test]
    fn reads_postgres_templates() {
        assert_eq!(r("2020-04-15", "YYYY-MM-DD"), "2020-04-15 00:00:00");
        assert_eq!(
            r("2020-04-15 12:02:03", "YYYY-MM-DD HH24:MI:SS"),
            "2020-04-15 12:02:03"
        );
        assert_eq!(r("15 Apr 2020", "DD Mon YYYY"), "2020-04-15 00:00:00");
        assert_eq!(
            r("05/06/2021 01:30 PM", "MM/DD/YYYY HH12:MI AM"),
            "2021-05-06 13:30:00"
        );
        assert_eq!(r("20200415", "YYYYMMDD"), "2020-04-15 00:00:00");
        assert!(r("2020-13-01", "YYYY-MM-DD").contains("out of range"));
    }
}
