//! PostgreSQL's text output for the types where Arrow's encoders differ.
//!
//! Clients, tools and anyone comparing results with PostgreSQL see floats as
//! `20` and `1.5e-05` (not `20.0`), and timestamps as `2024-02-29 12:34:56`
//! with trailing fractional zeros dropped. Columns of those types are turned
//! into PostgreSQL-formatted strings before text encoding; binary results are
//! untouched.

use freshet_planner::pg::floattext::{float4_text, float8_text};
#[cfg(test)]
use freshet_planner::pg::textout::interval_string;
use freshet_planner::pg::textout::ts_string;
use std::sync::Arc;

use datafusion::arrow::array::{Array, ArrayRef, AsArray, RecordBatch, StringArray};
use datafusion::arrow::datatypes::{
    DataType, Field, Float32Type, Float64Type, IntervalMonthDayNanoType, IntervalUnit, Schema,
    TimeUnit, TimestampMicrosecondType, TimestampMillisecondType, TimestampNanosecondType,
    TimestampSecondType,
};

fn convert(col: &ArrayRef) -> Option<ArrayRef> {
    let out: StringArray = match col.data_type() {
        DataType::Interval(IntervalUnit::MonthDayNano) => col
            .as_primitive::<IntervalMonthDayNanoType>()
            .iter()
            .map(|v| {
                v.map(|v| {
                    freshet_planner::pg::textout::interval_string(v.months, v.days, v.nanoseconds)
                })
            })
            .collect(),
        DataType::Float64 => col
            .as_primitive::<Float64Type>()
            .iter()
            .map(|v| v.map(float8_text))
            .collect(),
        DataType::Float32 => col
            .as_primitive::<Float32Type>()
            .iter()
            .map(|v| v.map(float4_text))
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

/// PostgreSQL has no unsigned integers: `row_number()` and other counts
/// DataFusion types `UInt64` are `bigint` to clients.
fn signed(t: &DataType) -> Option<DataType> {
    match t {
        DataType::UInt64 | DataType::UInt32 => Some(DataType::Int64),
        DataType::UInt16 => Some(DataType::Int32),
        DataType::UInt8 => Some(DataType::Int16),
        _ => None,
    }
}

/// `schema` with unsigned integer columns as the signed types clients see.
pub fn pg_schema(schema: &Arc<Schema>) -> Arc<Schema> {
    if !schema
        .fields()
        .iter()
        .any(|f| signed(f.data_type()).is_some())
    {
        return schema.clone();
    }
    let fields: Vec<Field> = schema
        .fields()
        .iter()
        .map(|f| match signed(f.data_type()) {
            Some(t) => f.as_ref().clone().with_data_type(t),
            None => f.as_ref().clone(),
        })
        .collect();
    Arc::new(Schema::new_with_metadata(fields, schema.metadata().clone()))
}

/// `batch` with unsigned integer columns cast to signed ones (see
/// [`pg_schema`]); values beyond the signed range become NULL.
pub fn pg_signed_batch(batch: RecordBatch) -> RecordBatch {
    let schema = batch.schema();
    if !schema
        .fields()
        .iter()
        .any(|f| signed(f.data_type()).is_some())
    {
        return batch;
    }
    let cols: Vec<ArrayRef> = batch
        .columns()
        .iter()
        .map(|c| match signed(c.data_type()) {
            Some(t) => datafusion::arrow::compute::cast(c, &t).unwrap_or_else(|_| c.clone()),
            None => c.clone(),
        })
        .collect();
    RecordBatch::try_new(pg_schema(&schema), cols).unwrap_or(batch)
}

/// jsonb columns sent in binary: PostgreSQL's jsonb binary form is a
/// version byte (1) and the text.
pub fn jsonb_binary(batch: RecordBatch, fields: &[pgwire::api::results::FieldInfo]) -> RecordBatch {
    let needs = |i: usize| {
        fields.get(i).is_some_and(|f| {
            *f.datatype() == pgwire::api::Type::JSONB
                && f.format() == pgwire::api::results::FieldFormat::Binary
        })
    };
    if !(0..batch.num_columns()).any(needs) {
        return batch;
    }
    let schema = batch.schema();
    let mut cols = Vec::with_capacity(batch.num_columns());
    let mut out_fields = Vec::with_capacity(batch.num_columns());
    for (i, (c, f)) in batch.columns().iter().zip(schema.fields()).enumerate() {
        match c.as_string_opt::<i32>().filter(|_| needs(i)) {
            Some(t) => {
                let b: datafusion::arrow::array::BinaryArray = t
                    .iter()
                    .map(|v| {
                        v.map(|v| {
                            let mut x = Vec::with_capacity(v.len() + 1);
                            x.push(1u8);
                            x.extend_from_slice(v.as_bytes());
                            x
                        })
                    })
                    .collect();
                out_fields.push(Field::new(f.name(), DataType::Binary, true));
                cols.push(Arc::new(b) as ArrayRef);
            }
            None => {
                out_fields.push(f.as_ref().clone());
                cols.push(c.clone());
            }
        }
    }
    RecordBatch::try_new(Arc::new(Schema::new(out_fields)), cols).unwrap_or(batch)
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
        float8_text(v)
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
        // A tie at 17 digits rounds to even, as PostgreSQL's Ryu does.
        assert_eq!(f(-148_140_854.173_828_12), "-148140854.17382812");
        assert_eq!(f(0.003), "0.003");
        assert_eq!(f(1e-7), "1e-07");
        assert_eq!(float4_text(0.1), "0.1");
    }

    #[test]
    fn intervals_like_postgres() {
        let h = 3_600_000_000_000i64;
        assert_eq!(interval_string(0, 0, 0), "00:00:00");
        assert_eq!(
            interval_string(14, 3, 4 * h + 306_500_000_000),
            "1 year 2 mons 3 days 04:05:06.5"
        );
        assert_eq!(interval_string(0, -1, 0), "-1 days");
        assert_eq!(interval_string(0, 1, -h), "1 day -01:00:00");
        assert_eq!(interval_string(0, -1, h), "-1 days +01:00:00");
        assert_eq!(
            interval_string(0, 21, 23 * h + 3_599_000_000_000),
            "21 days 23:59:59"
        );
        assert_eq!(interval_string(1, 0, 0), "1 mon");
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
