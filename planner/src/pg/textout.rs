//! PostgreSQL's text of timestamps and intervals, for text results and
//! for `::text` casts (Arrow's casts write `2024-02-29T13:45:00` and
//! `1 hours 30 mins`).

use std::sync::Arc;

use datafusion::arrow::array::{ArrayRef, AsArray, StringArray};
use datafusion::arrow::compute::cast;
use datafusion::arrow::datatypes::{DataType, Int64Type, IntervalMonthDayNanoType, TimeUnit};
use datafusion::error::Result;
use datafusion::logical_expr::ScalarUDF;

use super::simple::{any, udf};

pub const TEXT_OUT: &str = "pg_text_out";

pub fn functions() -> Vec<ScalarUDF> {
    vec![udf(TEXT_OUT, any(1), |_| Ok(DataType::Utf8), text_out)]
}

fn text_out(a: &[ArrayRef], _: &DataType) -> Result<ArrayRef> {
    let x = &a[0];
    let out: StringArray = match x.data_type() {
        DataType::Interval(_) => {
            let v = cast(x, &super::interval::interval_type())?;
            v.as_primitive::<IntervalMonthDayNanoType>()
                .iter()
                .map(|v| v.map(|v| interval_string(v.months, v.days, v.nanoseconds)))
                .collect()
        }
        DataType::Timestamp(_, tz) => {
            let tz = tz.is_some();
            let ns = cast(x, &DataType::Timestamp(TimeUnit::Nanosecond, None))?;
            let ns = cast(&ns, &DataType::Int64)?;
            ns.as_primitive::<Int64Type>()
                .iter()
                .map(|v| {
                    v.and_then(|v| {
                        ts_string(
                            v.div_euclid(1_000_000_000),
                            v.rem_euclid(1_000_000_000) as u32,
                            tz,
                        )
                    })
                })
                .collect()
        }
        _ => {
            let t = cast(x, &DataType::Utf8)?;
            t.as_string::<i32>().clone()
        }
    };
    Ok(Arc::new(out))
}

pub fn ts_string(secs: i64, nanos: u32, tz: bool) -> Option<String> {
    let dt = chrono::DateTime::from_timestamp(secs, nanos)?.naive_utc();
    let mut s = dt.format("%Y-%m-%d %H:%M:%S").to_string();
    if nanos > 0 {
        let micros = (nanos + 500) / 1000;
        let frac = format!("{micros:06}");
        let frac = frac.trim_end_matches('0');
        if !frac.is_empty() {
            s.push('.');
            s.push_str(frac);
        }
    }
    if tz {
        s.push_str("+00");
    }
    Some(s)
}

/// An interval in PostgreSQL's default `IntervalStyle` (`postgres`):
/// `1 year 2 mons -3 days +04:05:06.5`.
pub fn interval_string(months: i32, days: i32, nanos: i64) -> String {
    let mut out = String::new();
    let mut is_zero = true;
    let mut is_before = false;
    let mut part = |out: &mut String, value: i64, unit: &str| {
        if value == 0 {
            return;
        }
        let sep = if is_zero { "" } else { " " };
        let plus = if is_before && value > 0 { "+" } else { "" };
        let s = if value != 1 { "s" } else { "" };
        out.push_str(&format!("{sep}{plus}{value} {unit}{s}"));
        is_before = value < 0;
        is_zero = false;
    };
    part(&mut out, i64::from(months / 12), "year");
    part(&mut out, i64::from(months % 12), "mon");
    part(&mut out, i64::from(days), "day");
    let micros = nanos / 1_000;
    if is_zero || micros != 0 {
        let minus = micros < 0;
        let m = micros.unsigned_abs();
        let (h, rest) = (m / 3_600_000_000, m % 3_600_000_000);
        let (mi, rest) = (rest / 60_000_000, rest % 60_000_000);
        let (sec, frac) = (rest / 1_000_000, rest % 1_000_000);
        let sign = if minus {
            "-"
        } else if is_before {
            "+"
        } else {
            ""
        };
        let sep = if is_zero { "" } else { " " };
        out.push_str(&format!("{sep}{sign}{h:02}:{mi:02}:{sec:02}"));
        if frac != 0 {
            let f = format!("{frac:06}");
            out.push('.');
            out.push_str(f.trim_end_matches('0'));
        }
    }
    out
}

pub const ARRAY_IN: &str = "pg_array_in";

/// PostgreSQL's array input for one dimension: `{1,2,NULL}`,
/// `{"a b","c\"d"}`, `{}` -> its elements' text (`None` for NULL); `None`
/// when it is not an array literal.
pub fn parse_array(s: &str) -> Option<Vec<Option<String>>> {
    let t = s.trim();
    // An optional dimension decoration: [1:3]={...}
    let t = match t.find('=') {
        Some(p) if t.starts_with('[') => &t[p + 1..],
        _ => t,
    };
    let body = t.strip_prefix('{')?.strip_suffix('}')?;
    let mut out = Vec::new();
    if body.trim().is_empty() {
        return Some(out);
    }
    let mut chars = body.chars().peekable();
    loop {
        while chars.peek().is_some_and(|c| c.is_whitespace()) {
            chars.next();
        }
        let mut item = String::new();
        let quoted = chars.peek() == Some(&'"');
        if quoted {
            chars.next();
            loop {
                match chars.next()? {
                    '\\' => item.push(chars.next()?),
                    '"' => break,
                    c => item.push(c),
                }
            }
            while chars.peek().is_some_and(|c| c.is_whitespace()) {
                chars.next();
            }
        } else {
            while let Some(&c) = chars.peek() {
                if c == ',' {
                    break;
                }
                if c == '{' || c == '}' || c == '"' {
                    return None; // nested arrays are not taken here
                }
                if c == '\\' {
                    chars.next();
                    item.push(chars.next()?);
                    continue;
                }
                item.push(c);
                chars.next();
            }
            item = item.trim_end().to_string();
        }
        out.push(if !quoted && item.eq_ignore_ascii_case("null") {
            None
        } else {
            Some(item)
        });
        match chars.next() {
            None => return Some(out),
            Some(',') => continue,
            Some(_) => return None,
        }
    }
}

pub fn array_functions() -> Vec<ScalarUDF> {
    vec![udf(
        ARRAY_IN,
        any(1),
        |_| {
            Ok(DataType::List(Arc::new(
                datafusion::arrow::datatypes::Field::new_list_field(DataType::Utf8, true),
            )))
        },
        array_in,
    )]
}

fn array_in(a: &[ArrayRef], _: &DataType) -> Result<ArrayRef> {
    use datafusion::arrow::array::{ListBuilder, StringBuilder};
    let t = cast(&a[0], &DataType::Utf8)?;
    let mut b = ListBuilder::new(StringBuilder::new());
    for v in t.as_string::<i32>().iter() {
        match v {
            None => b.append_null(),
            Some(s) => {
                let Some(items) = parse_array(s) else {
                    return datafusion::common::exec_err!("malformed array literal: \"{s}\"");
                };
                for i in items {
                    b.values().append_option(i);
                }
                b.append(true);
            }
        }
    }
    Ok(Arc::new(b.finish()))
}
