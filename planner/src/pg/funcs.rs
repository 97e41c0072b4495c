//! PostgreSQL functions DataFusion lacks or types differently: `mod`, `div`,
//! `justify_*`, `age`, `extract` as numeric, numeric `ceil`/`floor`/`trunc`
//! at PostgreSQL's scales, `pg_typeof` and `pg_sleep`.

use std::sync::Arc;

use chrono::{Datelike, NaiveDateTime, Timelike};
use datafusion::arrow::array::{
    Array, ArrayRef, AsArray, Decimal128Array, IntervalMonthDayNanoArray, NullArray, StringArray,
};
use datafusion::arrow::compute::cast;
use datafusion::arrow::compute::kernels::numeric;
use datafusion::arrow::datatypes::{
    DataType, Decimal128Type, Int64Type, IntervalMonthDayNano, IntervalMonthDayNanoType, TimeUnit,
};
use datafusion::common::{exec_err, ScalarValue};
use datafusion::error::Result;
use datafusion::logical_expr::{ScalarUDF, Signature, Volatility};

use super::interval::interval_type;
use super::simple::{any, udf, udf_scalars};

pub const CEIL: &str = "pg_numeric_ceil";
pub const FLOOR: &str = "pg_numeric_floor";
pub const TRUNC: &str = "pg_numeric_trunc";
pub const EXTRACT: &str = "pg_extract";

const US_PER_DAY: i64 = 86_400_000_000;

pub fn functions() -> Vec<ScalarUDF> {
    vec![
        udf("mod", any(2), int_pair, |a, _| {
            Ok(numeric::rem(&a[0], &a[1])?)
        }),
        udf("div", any(2), |_| Ok(DataType::Decimal128(38, 0)), div),
        udf(
            "justify_hours",
            any(1),
            |_| Ok(interval_type()),
            |a, _| justify(a, true, false),
        ),
        udf(
            "justify_days",
            any(1),
            |_| Ok(interval_type()),
            |a, _| justify(a, false, true),
        ),
        udf(
            "justify_interval",
            any(1),
            |_| Ok(interval_type()),
            |a, _| justify(a, true, true),
        ),
        udf("age", any(2), |_| Ok(interval_type()), age),
        udf(
            CEIL,
            any(1),
            |_| Ok(DataType::Decimal128(38, 0)),
            |a, _| round_to(&a[0], 0, Mode::Ceil),
        ),
        udf(
            FLOOR,
            any(1),
            |_| Ok(DataType::Decimal128(38, 0)),
            |a, _| round_to(&a[0], 0, Mode::Floor),
        ),
        udf_scalars(TRUNC, any(2), trunc_type, |a, ret| {
            let DataType::Decimal128(_, s) = ret else {
                return exec_err!("trunc of a numeric");
            };
            // trunc(x, -n): zero the n digits left of the point.
            let places = cast(&a[1], &DataType::Int64)?;
            let places = places.as_primitive::<Int64Type>();
            let neg = (!places.is_empty() && places.is_valid(0))
                .then(|| places.value(0))
                .filter(|p| *p < 0);
            let out = round_to(&a[0], *s, Mode::Trunc)?;
            match neg {
                Some(p) => {
                    let m = 10i128.checked_pow((-p) as u32).unwrap_or(i128::MAX);
                    let v = out.as_primitive::<Decimal128Type>();
                    let z: Decimal128Array =
                        v.unary(|x| if m == i128::MAX { 0 } else { x / m * m });
                    Ok(Arc::new(z.with_precision_and_scale(38, *s)?))
                }
                None => Ok(out),
            }
        }),
        udf_scalars(EXTRACT, any(2), extract_type, extract),
        udf("pg_typeof", any(1), |_| Ok(DataType::Utf8), typeof_),
        udf(
            "sign",
            any(1),
            |a| {
                Ok(match a.first() {
                    Some(DataType::Decimal128(_, _)) => DataType::Decimal128(38, 0),
                    _ => DataType::Float64,
                })
            },
            sign,
        ),
        udf(
            "quote_literal",
            any(1),
            |_| Ok(DataType::Utf8),
            quote_literal,
        ),
        udf(
            "quote_ident",
            any(1),
            |_| Ok(DataType::Utf8),
            |a, _| map_text(&a[0], quote_ident),
        ),
        udf(
            "upper",
            any(1),
            |_| Ok(DataType::Utf8),
            |a, _| map_text(&a[0], |s| case_map(s, true)),
        ),
        udf(
            "lower",
            any(1),
            |_| Ok(DataType::Utf8),
            |a, _| map_text(&a[0], |s| case_map(s, false)),
        ),
        udf(
            "initcap",
            any(1),
            |_| Ok(DataType::Utf8),
            |a, _| map_text(&a[0], initcap),
        ),
        udf(
            "format",
            Signature::variadic_any(Volatility::Immutable),
            |_| Ok(DataType::Utf8),
            format,
        ),
        udf(
            "pg_sleep",
            Signature::any(1, Volatility::Volatile),
            |_| Ok(DataType::Null),
            sleep,
        ),
    ]
}

fn int_pair(args: &[DataType]) -> Result<DataType> {
    match args {
        [a, b] if a == b && a.is_integer() => Ok(a.clone()),
        [a, b] if a.is_integer() && b.is_integer() => Ok(DataType::Int64),
        [a, _] => Ok(a.clone()),
        _ => exec_err!("mod takes two arguments"),
    }
}

fn div(a: &[ArrayRef], _: &DataType) -> Result<ArrayRef> {
    let x = cast(&a[0], &DataType::Int64)?;
    let y = cast(&a[1], &DataType::Int64)?;
    let (x, y) = (x.as_primitive::<Int64Type>(), y.as_primitive::<Int64Type>());
    let mut out = Vec::with_capacity(x.len());
    for (p, q) in x.iter().zip(y.iter()) {
        out.push(match (p, q) {
            (Some(_), Some(0)) => return exec_err!("division by zero"),
            (Some(p), Some(q)) => Some(i128::from(p / q)),
            _ => None,
        });
    }
    Ok(Arc::new(
        Decimal128Array::from(out).with_precision_and_scale(38, 0)?,
    ))
}

fn justify(a: &[ArrayRef], hours: bool, days: bool) -> Result<ArrayRef> {
    let v = cast(&a[0], &interval_type())?;
    let v = v.as_primitive::<IntervalMonthDayNanoType>();
    let out: IntervalMonthDayNanoArray = v
        .iter()
        .map(|x| {
            x.map(|x| {
                let (mut m, mut d, mut us) = (x.months, x.days, x.nanoseconds / 1000);
                if hours {
                    d += (us / US_PER_DAY) as i32;
                    us %= US_PER_DAY;
                }
                if days {
                    m += d / 30;
                    d %= 30;
                }
                // Make the fields agree in sign, as PostgreSQL does.
                if hours && days {
                    if m > 0 && (d < 0 || (d == 0 && us < 0)) {
                        d += 30;
                        m -= 1;
                    } else if m < 0 && (d > 0 || (d == 0 && us > 0)) {
                        d -= 30;
                        m += 1;
                    }
                }
                if hours {
                    if d > 0 && us < 0 {
                        us += US_PER_DAY;
                        d -= 1;
                    } else if d < 0 && us > 0 {
                        us -= US_PER_DAY;
                        d += 1;
                    }
                }
                IntervalMonthDayNano::new(m, d, us * 1000)
            })
        })
        .collect();
    Ok(Arc::new(out))
}

fn datetimes(a: &ArrayRef) -> Result<Vec<Option<NaiveDateTime>>> {
    let ts = cast(a, &DataType::Timestamp(TimeUnit::Microsecond, None))?;
    let raw = cast(&ts, &DataType::Int64)?;
    Ok(raw
        .as_primitive::<Int64Type>()
        .iter()
        .map(|v| {
            v.and_then(|us| chrono::DateTime::from_timestamp_micros(us).map(|d| d.naive_utc()))
        })
        .collect())
}

/// `age(a, b)`: `a - b` in years, months and days, field by field with
/// borrowing, as PostgreSQL's `timestamp_age`.
fn age(a: &[ArrayRef], _: &DataType) -> Result<ArrayRef> {
    let (l, r) = (datetimes(&a[0])?, datetimes(&a[1])?);
    let out: IntervalMonthDayNanoArray = l
        .iter()
        .zip(r.iter())
        .map(|(x, y)| Some(age_of(&(*x)?, &(*y)?)))
        .collect();
    Ok(Arc::new(out))
}

fn days_in_month(year: i32, month: u32) -> i64 {
    let (ny, nm) = if month == 12 {
        (year + 1, 1)
    } else {
        (year, month + 1)
    };
    let first = chrono::NaiveDate::from_ymd_opt(year, month, 1);
    let next = chrono::NaiveDate::from_ymd_opt(ny, nm, 1);
    match (first, next) {
        (Some(f), Some(n)) => (n - f).num_days(),
        _ => 30,
    }
}

fn age_of(x: &NaiveDateTime, y: &NaiveDateTime) -> IntervalMonthDayNano {
    let (hi, lo, sign) = if x >= y { (x, y, 1i64) } else { (y, x, -1i64) };
    let us = |t: &NaiveDateTime| {
        i64::from(t.num_seconds_from_midnight()) * 1_000_000 + i64::from(t.nanosecond() / 1000)
    };
    let mut fsec = us(hi) - us(lo);
    let mut day = i64::from(hi.day()) - i64::from(lo.day());
    let mut mon = i64::from(hi.month()) - i64::from(lo.month());
    let mut year = i64::from(hi.year()) - i64::from(lo.year());
    if fsec < 0 {
        fsec += US_PER_DAY;
        day -= 1;
    }
    while day < 0 {
        // Borrow the days of the earlier timestamp's month, as PostgreSQL.
        day += days_in_month(lo.year(), lo.month());
        mon -= 1;
    }
    if mon < 0 {
        mon += 12;
        year -= 1;
    }
    let months = (year * 12 + mon) * sign;
    IntervalMonthDayNano::new(months as i32, (day * sign) as i32, fsec * sign * 1000)
}

#[derive(Clone, Copy)]
enum Mode {
    Ceil,
    Floor,
    Trunc,
}

fn trunc_type(args: &[DataType], scalars: &[Option<&ScalarValue>]) -> Result<DataType> {
    let places = match scalars.get(1) {
        Some(Some(v)) => v
            .cast_to(&DataType::Int64)
            .ok()
            .and_then(|v| match v {
                ScalarValue::Int64(Some(n)) => Some(n),
                _ => None,
            })
            .unwrap_or(0),
        _ => match args.first() {
            Some(DataType::Decimal128(_, s)) => i64::from(*s),
            _ => 0,
        },
    };
    Ok(DataType::Decimal128(38, places.clamp(0, 38) as i8))
}

/// A numeric rounded to `scale` digits by `mode`.
fn round_to(a: &ArrayRef, scale: i8, mode: Mode) -> Result<ArrayRef> {
    let DataType::Decimal128(_, s) = a.data_type() else {
        return exec_err!("expected a numeric, got {}", a.data_type());
    };
    let v = a.as_primitive::<Decimal128Type>();
    let drop = i32::from(*s) - i32::from(scale);
    let out: Decimal128Array = if drop <= 0 {
        let up = 10i128.pow((-drop) as u32);
        v.try_unary(|x| {
            x.checked_mul(up).ok_or_else(|| {
                datafusion::arrow::error::ArrowError::ComputeError("numeric field overflow".into())
            })
        })?
    } else {
        let p = 10i128.pow(drop as u32);
        v.unary(|x| {
            let q = x / p;
            let r = x % p;
            match mode {
                Mode::Trunc => q,
                Mode::Ceil if r > 0 => q + 1,
                Mode::Floor if r < 0 => q - 1,
                _ => q,
            }
        })
    };
    Ok(Arc::new(out.with_precision_and_scale(38, scale)?))
}

fn field_of(scalars: &[Option<&ScalarValue>]) -> Option<String> {
    match scalars.first() {
        Some(Some(
            ScalarValue::Utf8(Some(s))
            | ScalarValue::LargeUtf8(Some(s))
            | ScalarValue::Utf8View(Some(s)),
        )) => Some(s.to_ascii_lowercase()),
        _ => None,
    }
}

fn extract_scale(field: &str, t: &DataType) -> i8 {
    match (field, t) {
        ("epoch", DataType::Date32) => 0,
        ("epoch" | "second" | "seconds", _) => 6,
        ("millisecond" | "milliseconds", _) => 3,
        _ => 0,
    }
}

fn extract_type(args: &[DataType], scalars: &[Option<&ScalarValue>]) -> Result<DataType> {
    let field = field_of(scalars).unwrap_or_default();
    Ok(DataType::Decimal128(
        38,
        extract_scale(&field, args.get(1).unwrap_or(&DataType::Null)),
    ))
}

/// `extract(field FROM x)`: a numeric, as in PostgreSQL 14 and later.
fn extract(a: &[ArrayRef], ret: &DataType) -> Result<ArrayRef> {
    if a[1].is_empty() {
        return Ok(datafusion::arrow::array::new_empty_array(ret));
    }
    let names = cast(&a[0], &DataType::Utf8)?;
    let field = names
        .as_string_opt::<i32>()
        .filter(|f| f.len() > 0 && f.is_valid(0));
    let Some(field) = field.map(|f| f.value(0).to_ascii_lowercase()) else {
        return exec_err!("extract needs a constant field name");
    };
    let DataType::Decimal128(_, scale) = ret else {
        return exec_err!("extract returns a numeric");
    };
    let x = &a[1];
    // Microseconds as a numeric of scale 6 where PostgreSQL keeps them.
    let micros_of: Option<Vec<Option<i128>>> = match (field.as_str(), x.data_type()) {
        ("epoch", DataType::Interval(_)) => {
            let v = cast(x, &interval_type())?;
            Some(
                v.as_primitive::<IntervalMonthDayNanoType>()
                    .iter()
                    .map(|i| {
                        i.map(|i| {
                            let years = i128::from(i.months / 12);
                            let mons = i128::from(i.months % 12);
                            years * 31_557_600_000_000
                                + mons * 2_592_000_000_000
                                + i128::from(i.days) * i128::from(US_PER_DAY)
                                + i128::from(i.nanoseconds / 1000)
                        })
                    })
                    .collect(),
            )
        }
        ("epoch", DataType::Timestamp(_, _) | DataType::Date32 | DataType::Date64) => {
            let ts = cast(x, &DataType::Timestamp(TimeUnit::Microsecond, None))?;
            let raw = cast(&ts, &DataType::Int64)?;
            Some(
                raw.as_primitive::<Int64Type>()
                    .iter()
                    .map(|v| v.map(i128::from))
                    .collect(),
            )
        }
        ("second" | "seconds" | "millisecond" | "milliseconds", DataType::Interval(_)) => {
            let v = cast(x, &interval_type())?;
            Some(
                v.as_primitive::<IntervalMonthDayNanoType>()
                    .iter()
                    .map(|i| i.map(|i| i128::from(i.nanoseconds / 1000) % 60_000_000))
                    .collect(),
            )
        }
        ("second" | "seconds" | "millisecond" | "milliseconds", DataType::Timestamp(_, _)) => Some(
            datetimes(x)?
                .iter()
                .map(|t| {
                    t.map(|t| {
                        i128::from(t.second()) * 1_000_000 + i128::from(t.nanosecond() / 1000)
                    })
                })
                .collect(),
        ),
        _ => None,
    };
    let out: Decimal128Array = match micros_of {
        Some(us) => {
            // Scale 6 is microseconds; scale 3 milliseconds (of micros /
            // 1000 with 3 places: the same digits); scale 0 whole seconds.
            us.into_iter()
                .map(|v| {
                    v.map(|v| match scale {
                        6 | 3 => v,
                        _ => v / 1_000_000,
                    })
                })
                .collect()
        }
        None => match x.data_type() {
            DataType::Interval(_) => {
                let v = cast(x, &interval_type())?;
                let mut out = Vec::with_capacity(v.len());
                for i in v.as_primitive::<IntervalMonthDayNanoType>().iter() {
                    out.push(match i {
                        Some(i) => Some(interval_field(&field, i)?),
                        None => None,
                    });
                }
                out.into_iter().collect()
            }
            _ => {
                let mut out = Vec::with_capacity(x.len());
                for t in datetimes(x)? {
                    out.push(match t {
                        Some(t) => Some(timestamp_field(&field, &t)?),
                        None => None,
                    });
                }
                out.into_iter().collect()
            }
        },
    };
    Ok(Arc::new(out.with_precision_and_scale(38, *scale)?))
}

fn timestamp_field(field: &str, t: &NaiveDateTime) -> Result<i128> {
    let y = i128::from(t.year());
    Ok(match field {
        "year" | "years" => y,
        "month" | "months" | "mon" => i128::from(t.month()),
        "day" | "days" => i128::from(t.day()),
        "hour" | "hours" => i128::from(t.hour()),
        "minute" | "minutes" | "min" => i128::from(t.minute()),
        "microsecond" | "microseconds" => {
            i128::from(t.second()) * 1_000_000 + i128::from(t.nanosecond() / 1000)
        }
        "dow" => i128::from(t.weekday().num_days_from_sunday()),
        "isodow" => i128::from(t.weekday().number_from_monday()),
        "doy" => i128::from(t.ordinal()),
        "quarter" => i128::from((t.month() - 1) / 3 + 1),
        "week" => i128::from(t.iso_week().week()),
        "isoyear" => i128::from(t.iso_week().year()),
        "decade" => y.div_euclid(10),
        "century" => {
            if y > 0 {
                (y + 99) / 100
            } else {
                -((99 - (y - 1)) / 100)
            }
        }
        "millennium" => {
            if y > 0 {
                (y + 999) / 1000
            } else {
                -((999 - (y - 1)) / 1000)
            }
        }
        other => return exec_err!("unit \"{other}\" not supported for type timestamp"),
    })
}

fn interval_field(field: &str, i: IntervalMonthDayNano) -> Result<i128> {
    let us = i128::from(i.nanoseconds / 1000);
    Ok(match field {
        "year" | "years" => i128::from(i.months / 12),
        "month" | "months" | "mon" => i128::from(i.months % 12),
        "day" | "days" => i128::from(i.days),
        "hour" | "hours" => us / 3_600_000_000,
        "minute" | "minutes" | "min" => (us / 60_000_000) % 60,
        "microsecond" | "microseconds" => us % 60_000_000,
        "quarter" => i128::from((i.months % 12) / 3 + 1),
        "decade" => i128::from(i.months / 120),
        "century" => i128::from(i.months / 1200),
        "millennium" => i128::from(i.months / 12000),
        other => return exec_err!("unit \"{other}\" not supported for type interval"),
    })
}

/// PostgreSQL's `format_type` name of a column's type.
pub fn pg_type_name(t: &DataType) -> String {
    match t {
        DataType::Boolean => "boolean".into(),
        DataType::Int16 | DataType::Int8 => "smallint".into(),
        DataType::Int32 => "integer".into(),
        DataType::Int64 => "bigint".into(),
        DataType::Float32 => "real".into(),
        DataType::Float64 => "double precision".into(),
        DataType::Decimal128(_, _) | DataType::Decimal256(_, _) => "numeric".into(),
        DataType::Utf8 | DataType::LargeUtf8 | DataType::Utf8View => "text".into(),
        DataType::Binary | DataType::LargeBinary | DataType::BinaryView => "bytea".into(),
        DataType::Date32 | DataType::Date64 => "date".into(),
        DataType::Time32(_) | DataType::Time64(_) => "time without time zone".into(),
        DataType::Timestamp(_, None) => "timestamp without time zone".into(),
        DataType::Timestamp(_, Some(_)) => "timestamp with time zone".into(),
        DataType::Interval(_) | DataType::Duration(_) => "interval".into(),
        DataType::Null => "unknown".into(),
        DataType::List(f) | DataType::LargeList(f) => format!("{}[]", pg_type_name(f.data_type())),
        other => other.to_string(),
    }
}

fn map_text(a: &ArrayRef, f: impl Fn(&str) -> String) -> Result<ArrayRef> {
    let t = cast(a, &DataType::Utf8)?;
    let out: StringArray = t.as_string::<i32>().iter().map(|v| v.map(&f)).collect();
    Ok(Arc::new(out))
}

/// One character's case mapping where it is one character (as a UTF-8
/// locale's `towupper` does: `ß` stays `ß`).
fn map_char(c: char, upper: bool) -> char {
    let mut m: Vec<char> = if upper {
        c.to_uppercase().collect()
    } else {
        c.to_lowercase().collect()
    };
    if m.len() == 1 {
        m.pop().unwrap_or(c)
    } else {
        c
    }
}

fn case_map(s: &str, upper: bool) -> String {
    if s.is_ascii() {
        return if upper {
            s.to_ascii_uppercase()
        } else {
            s.to_ascii_lowercase()
        };
    }
    s.chars().map(|c| map_char(c, upper)).collect()
}

/// PostgreSQL's `initcap`: the first letter of each word upper case, the
/// rest lower case (a word is a run of letters and digits).
fn initcap(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    let mut in_word = false;
    for c in s.chars() {
        out.push(map_char(c, !in_word));
        in_word = c.is_alphanumeric();
    }
    out
}

/// PostgreSQL's `quote_ident`: quoted unless a plain lower-case identifier
/// (letters, digits, `_`, not starting with a digit).
fn quote_ident(s: &str) -> String {
    let plain = s
        .chars()
        .next()
        .is_some_and(|c| c.is_ascii_lowercase() || c == '_')
        && s.chars()
            .all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == '_')
        && !datafusion::sql::sqlparser::keywords::RESERVED_FOR_COLUMN_ALIAS
            .iter()
            .any(|k| format!("{k:?}").eq_ignore_ascii_case(s));
    if plain {
        s.to_string()
    } else {
        format!("\"{}\"", s.replace('"', "\"\""))
    }
}

fn quote_literal(a: &[ArrayRef], _: &DataType) -> Result<ArrayRef> {
    let t = cast(&a[0], &DataType::Utf8)?;
    let out: StringArray = t
        .as_string::<i32>()
        .iter()
        .map(|v| {
            v.map(|v| {
                let body = v.replace('\'', "''");
                if v.contains('\\') {
                    format!("E'{}'", body.replace('\\', "\\\\"))
                } else {
                    format!("'{body}'")
                }
            })
        })
        .collect();
    Ok(Arc::new(out))
}

/// PostgreSQL's `format(template, args...)`: `%s` (text, NULL as empty),
/// `%I` (identifier), `%L` (literal, NULL as `NULL`), `%%`, and `%n$s`.
fn format(a: &[ArrayRef], _: &DataType) -> Result<ArrayRef> {
    let Some((tpl, args)) = a.split_first() else {
        return exec_err!("format takes a template");
    };
    let tpl = cast(tpl, &DataType::Utf8)?;
    let tpl = tpl.as_string::<i32>();
    let args: Vec<ArrayRef> = args
        .iter()
        .map(|x| cast(x, &DataType::Utf8))
        .collect::<std::result::Result<_, _>>()?;
    let mut out = Vec::with_capacity(tpl.len());
    for row in 0..tpl.len() {
        if tpl.is_null(row) {
            out.push(None);
            continue;
        }
        let t = tpl.value(row);
        let mut s = String::new();
        let mut next = 0usize;
        let mut chars = t.chars().peekable();
        while let Some(c) = chars.next() {
            if c != '%' {
                s.push(c);
                continue;
            }
            // Optional `n$` position.
            let mut digits = String::new();
            while let Some(d) = chars.peek().filter(|d| d.is_ascii_digit()) {
                digits.push(*d);
                chars.next();
            }
            if !digits.is_empty() && chars.peek() == Some(&'$') {
                chars.next();
                next = digits.parse::<usize>().unwrap_or(1).saturating_sub(1);
            } else if !digits.is_empty() {
                return exec_err!("unrecognized format() type specifier");
            }
            let Some(kind) = chars.next() else {
                return exec_err!("unterminated format() type specifier");
            };
            if kind == '%' {
                s.push('%');
                continue;
            }
            let Some(arg) = args.get(next) else {
                return exec_err!("too few arguments for format()");
            };
            next += 1;
            let v = arg.as_string::<i32>();
            let val = (!v.is_null(row)).then(|| v.value(row));
            match (kind, val) {
                ('s', Some(x)) => s.push_str(x),
                ('s', None) => {}
                ('I', Some(x)) => {
                    let plain = x
                        .chars()
                        .next()
                        .is_some_and(|c| c.is_ascii_lowercase() || c == '_')
                        && x.chars()
                            .all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == '_');
                    if plain {
                        s.push_str(x);
                    } else {
                        s.push_str(&format!("\"{}\"", x.replace('"', "\"\"")));
                    }
                }
                ('I', None) => {
                    return exec_err!("null values cannot be formatted as an SQL identifier")
                }
                ('L', Some(x)) => s.push_str(&format!("'{}'", x.replace('\'', "''"))),
                ('L', None) => s.push_str("NULL"),
                (k, _) => return exec_err!("unrecognized format() type specifier \"{k}\""),
            }
        }
        out.push(Some(s));
    }
    Ok(Arc::new(StringArray::from(out)))
}

fn sign(a: &[ArrayRef], ret: &DataType) -> Result<ArrayRef> {
    if let DataType::Decimal128(_, _) = a[0].data_type() {
        let v = a[0].as_primitive::<Decimal128Type>();
        let out: Decimal128Array = v.unary(|x| x.signum());
        return Ok(Arc::new(out.with_precision_and_scale(38, 0)?));
    }
    let f = cast(&a[0], &DataType::Float64)?;
    let out: datafusion::arrow::array::Float64Array = f
        .as_primitive::<datafusion::arrow::datatypes::Float64Type>()
        .unary(|x| {
            if x > 0.0 {
                1.0
            } else if x < 0.0 {
                -1.0
            } else {
                0.0
            }
        });
    Ok(cast(&(Arc::new(out) as ArrayRef), ret)?)
}

fn typeof_(a: &[ArrayRef], _: &DataType) -> Result<ArrayRef> {
    let name = pg_type_name(a[0].data_type());
    Ok(Arc::new(StringArray::from(vec![name.as_str(); a[0].len()])))
}

fn sleep(a: &[ArrayRef], _: &DataType) -> Result<ArrayRef> {
    let secs = cast(&a[0], &DataType::Float64)?;
    let secs = secs.as_primitive::<datafusion::arrow::datatypes::Float64Type>();
    for s in secs.iter().flatten() {
        if s > 0.0 && s.is_finite() {
            std::thread::sleep(std::time::Duration::from_secs_f64(s.min(86_400.0)));
        }
    }
    Ok(Arc::new(NullArray::new(a[0].len())))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn dt(s: &str) -> NaiveDateTime {
        NaiveDateTime::parse_from_str(s, "%Y-%m-%d %H:%M:%S").unwrap_or_default()
    }

    #[test]
    fn age_like_postgres() {
        // 1 year 3 mons 14 days
        assert_eq!(
            age_of(&dt("2020-04-15 00:00:00"), &dt("2019-01-01 00:00:00")),
            IntervalMonthDayNano::new(15, 14, 0)
        );
        // -1 mons -1 days (PostgreSQL: age('2020-01-01','2020-02-02'))
        assert_eq!(
            age_of(&dt("2020-01-01 00:00:00"), &dt("2020-02-02 00:00:00")),
            IntervalMonthDayNano::new(-1, -1, 0)
        );
    }
}
