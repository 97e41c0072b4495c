//! PostgreSQL's text output for the types where Arrow's encoders differ.
//!
//! Clients, tools and anyone comparing results with PostgreSQL see floats as
//! `20` and `1.5e-05` (not `20.0`), and timestamps as `2024-02-29 12:34:56`
//! with trailing fractional zeros dropped. Columns of those types are turned
//! into PostgreSQL-formatted strings before text encoding; binary results are
//! untouched.

use std::sync::Arc;

use datafusion::arrow::array::{Array, ArrayRef, AsArray, RecordBatch, StringArray};
use datafusion::arrow::datatypes::{
    DataType, Field, Float32Type, Float64Type, Schema, TimeUnit, TimestampMicrosecondType,
    TimestampMillisecondType, TimestampNanosecondType, TimestampSecondType,
};

/// Formats a float the way PostgreSQL does with `extra_float_digits = 1`.
pub fn format_float(v: f64, decimal: String, shortest: String) -> String {
    if v.is_nan() {
        return "NaN".into();
    }
    if v.is_infinite() {
        return if v > 0.0 {
            "Infinity".into()
        } else {
            "-Infinity".into()
        };
    }
    if v == 0.0 {
        return if v.is_sign_negative() {
            "-0".into()
        } else {
            "0".into()
        };
    }
    let exp = v.abs().log10().floor() as i32;
    if !(-4..15).contains(&exp) {
        // Rust's `{:e}` gives the shortest digits: 1.5e-5 -> PostgreSQL's 1.5e-05.
        let s = shortest;
        if let Some((mant, e)) = s.split_once('e') {
            let (sign, digits) = match e.strip_prefix('-') {
                Some(d) => ('-', d),
                None => ('+', e),
            };
            return format!("{mant}e{sign}{digits:0>2}");
        }
        return s;
    }
    decimal
}

fn ts_string(secs: i64, nanos: u32, tz: bool) -> Option<String> {
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

fn convert(col: &ArrayRef) -> Option<ArrayRef> {
    let out: StringArray = match col.data_type() {
        DataType::Float64 => col
            .as_primitive::<Float64Type>()
            .iter()
            .map(|v| v.map(|v| format_float(v, format!("{v}"), format!("{v:e}"))))
            .collect(),
        DataType::Float32 => col
            .as_primitive::<Float32Type>()
            .iter()
            .map(|v| v.map(|v| format_float(f64::from(v), format!("{v}"), format!("{v:e}"))))
            .collect(),
        DataType::Timestamp(unit, tz) => {
            let tz = tz.is_some();
            let split = |v: i64, per_sec: i64| {
                (
                    v.div_euclid(per_sec),
                    (v.rem_euclid(per_sec) * (1_000_000_000 / per_sec)) as u32,
                )
            };
            match unit {
                TimeUnit::Second => col
                    .as_primitive::<TimestampSecondType>()
                    .iter()
                    .map(|v| v.and_then(|v| ts_string(v, 0, tz)))
                    .collect(),
                TimeUnit::Millisecond => col
                    .as_primitive::<TimestampMillisecondType>()
                    .iter()
                    .map(|v| {
                        v.and_then(|v| {
                            let (s, n) = split(v, 1_000);
                            ts_string(s, n, tz)
                        })
                    })
                    .collect(),
                TimeUnit::Microsecond => col
                    .as_primitive::<TimestampMicrosecondType>()
                    .iter()
                    .map(|v| {
                        v.and_then(|v| {
                            let (s, n) = split(v, 1_000_000);
                            ts_string(s, n, tz)
                        })
                    })
                    .collect(),
                TimeUnit::Nanosecond => col
                    .as_primitive::<TimestampNanosecondType>()
                    .iter()
                    .map(|v| {
                        v.and_then(|v| {
                            let (s, n) = split(v, 1_000_000_000);
                            ts_string(s, n, tz)
                        })
                    })
                    .collect(),
            }
        }
        DataType::Time64(_) | DataType::Time32(_) => {
            let strs = datafusion::arrow::compute::cast(col, &DataType::Utf8).ok()?;
            strs.as_string::<i32>()
                .iter()
                .map(|v| {
                    v.map(|v| {
                        if v.contains('.') {
                            v.trim_end_matches('0').trim_end_matches('.').to_string()
                        } else {
                            v.to_string()
                        }
                    })
                })
                .collect()
        }
        _ => return None,
    };
    Some(Arc::new(out))
}

/// Rewrites float and timestamp columns of `batch` whose result format is
/// text into PostgreSQL-formatted strings.
pub fn pg_text_batch(batch: RecordBatch, is_text: impl Fn(usize) -> bool) -> RecordBatch {
    let schema = batch.schema();
    let mut changed = false;
    let mut cols = Vec::with_capacity(batch.num_columns());
    let mut fields = Vec::with_capacity(batch.num_columns());
    for (i, (c, f)) in batch.columns().iter().zip(schema.fields()).enumerate() {
        match if is_text(i) { convert(c) } else { None } {
            Some(s) => {
                changed = true;
                fields.push(Field::new(f.name(), DataType::Utf8, true));
                cols.push(s);
            }
            None => {
                fields.push(f.as_ref().clone());
                cols.push(c.clone());
            }
        }
    }
    if !changed {
        return batch;
    }
    RecordBatch::try_new(Arc::new(Schema::new(fields)), cols).unwrap_or(batch)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn f(v: f64) -> String {
        format_float(v, format!("{v}"), format!("{v:e}"))
    }

    #[test]
    fn floats_like_postgres() {
        assert_eq!(f(20.0), "20");
        assert_eq!(f(2.5), "2.5");
        assert_eq!(f(-0.1), "-0.1");
        assert_eq!(f(1e20), "1e+20");
        assert_eq!(f(1.5e-5), "1.5e-05");
        assert_eq!(f(123456789012345.0), "123456789012345");
        assert_eq!(f(1234567890123456.0), "1.234567890123456e+15");
    }

    #[test]
    fn timestamps_like_postgres() {
        assert_eq!(
            ts_string(1_709_210_096, 0, false).unwrap(),
            "2024-02-29 12:34:56"
        );
        assert_eq!(
            ts_string(1_709_210_096, 500_000_000, true).unwrap(),
            "2024-02-29 12:34:56.5+00"
        );
    }
}
