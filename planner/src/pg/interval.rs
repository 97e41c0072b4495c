//! PostgreSQL's interval semantics over Arrow's `Interval(MonthDayNano)`:
//! comparison as PostgreSQL compares (a month is 30 days, a day 24 hours),
//! `timestamp - timestamp` as days and time, and `interval * number`.

use std::sync::Arc;

use datafusion::arrow::array::{
    Array, ArrayRef, AsArray, Decimal128Builder, IntervalMonthDayNanoArray, PrimitiveArray,
};
use datafusion::arrow::compute::cast;
use datafusion::arrow::datatypes::{
    DataType, Float64Type, Int64Type, IntervalMonthDayNano, IntervalMonthDayNanoType, IntervalUnit,
    TimeUnit,
};
use datafusion::common::exec_err;
use datafusion::error::Result;
use datafusion::logical_expr::ScalarUDF;

use super::simple::{any, udf};

pub const KEY: &str = "pg_interval_key";
pub const TS_SUB: &str = "pg_timestamp_sub";
pub const MUL: &str = "pg_interval_mul";
pub const DIV: &str = "pg_interval_div";

const NS_PER_DAY: i128 = 86_400_000_000_000;

pub fn functions() -> Vec<ScalarUDF> {
    vec![
        udf(KEY, any(1), |_| Ok(DataType::Decimal128(38, 0)), key),
        udf(TS_SUB, any(2), |_| Ok(interval_type()), timestamp_sub),
        udf(MUL, any(2), |_| Ok(interval_type()), |a, _| scale(a, false)),
        udf(DIV, any(2), |_| Ok(interval_type()), |a, _| scale(a, true)),
    ]
}

pub fn interval_type() -> DataType {
    DataType::Interval(IntervalUnit::MonthDayNano)
}

/// An interval as one number PostgreSQL orders by: nanoseconds with a month
/// of 30 days and a day of 24 hours.
pub fn total_ns(v: IntervalMonthDayNano) -> i128 {
    (v.months as i128 * 30 + v.days as i128) * NS_PER_DAY + v.nanoseconds as i128
}

fn intervals(a: &ArrayRef) -> Result<IntervalMonthDayNanoArray> {
    Ok(cast(a, &interval_type())?
        .as_primitive::<IntervalMonthDayNanoType>()
        .clone())
}

fn key(a: &[ArrayRef], _: &DataType) -> Result<ArrayRef> {
    let v = intervals(&a[0])?;
    let mut b = Decimal128Builder::with_capacity(v.len());
    for x in v.iter() {
        b.append_option(x.map(total_ns));
    }
    Ok(Arc::new(b.finish().with_precision_and_scale(38, 0)?))
}

/// Nanoseconds since the epoch of a timestamp array of any unit.
fn epoch_ns(a: &ArrayRef) -> Result<PrimitiveArray<Int64Type>> {
    let DataType::Timestamp(unit, _) = a.data_type() else {
        return exec_err!("expected a timestamp, got {}", a.data_type());
    };
    let per: i64 = match unit {
        TimeUnit::Second => 1_000_000_000,
        TimeUnit::Millisecond => 1_000_000,
        TimeUnit::Microsecond => 1_000,
        TimeUnit::Nanosecond => 1,
    };
    let raw = cast(a, &DataType::Int64)?;
    Ok(raw
        .as_primitive::<Int64Type>()
        .unary_opt(|v| v.checked_mul(per)))
}

/// `a - b` of two timestamps: whole days and the rest as time, both with the
/// sign of the difference (PostgreSQL's `timestamp_mi`).
fn timestamp_sub(a: &[ArrayRef], _: &DataType) -> Result<ArrayRef> {
    let (l, r) = (epoch_ns(&a[0])?, epoch_ns(&a[1])?);
    let out: IntervalMonthDayNanoArray = l
        .iter()
        .zip(r.iter())
        .map(|(x, y)| {
            let d = x?.checked_sub(y?)?;
            let day = 86_400_000_000_000i64;
            Some(IntervalMonthDayNano::new(0, (d / day) as i32, d % day))
        })
        .collect();
    Ok(Arc::new(out))
}

/// `interval * f` or `interval / f` the way PostgreSQL's `interval_mul`
/// spreads fractions: months to days (30 a month), days to time.
fn scale(a: &[ArrayRef], divide: bool) -> Result<ArrayRef> {
    let v = intervals(&a[0])?;
    let f = cast(&a[1], &DataType::Float64)?;
    let f = f.as_primitive::<Float64Type>();
    let mut out = Vec::with_capacity(v.len());
    for (x, y) in v.iter().zip(f.iter()) {
        out.push(match (x, y) {
            (Some(x), Some(y)) => {
                if divide && y == 0.0 {
                    return exec_err!("division by zero");
                }
                Some(mul(x, if divide { 1.0 / y } else { y })?)
            }
            _ => None,
        });
    }
    Ok(Arc::new(IntervalMonthDayNanoArray::from(out)))
}

fn tsround(x: f64) -> f64 {
    (x * 1_000_000.0).round_ties_even() / 1_000_000.0
}

fn mul(span: IntervalMonthDayNano, factor: f64) -> Result<IntervalMonthDayNano> {
    let out_of_range = || exec_err!("interval out of range");
    let month_f = span.months as f64 * factor;
    if !month_f.is_finite() || month_f.abs() > i32::MAX as f64 {
        return out_of_range();
    }
    let mut months = month_f.trunc() as i32;
    let day_f = span.days as f64 * factor;
    if !day_f.is_finite() || day_f.abs() > i32::MAX as f64 {
        return out_of_range();
    }
    let mut days = day_f.trunc() as i32;
    let month_remainder_days = tsround((month_f - months as f64) * 30.0);
    let mut sec_remainder = tsround(
        (day_f - days as f64 + month_remainder_days - month_remainder_days.trunc()) * 86_400.0,
    );
    if sec_remainder.abs() >= 86_400.0 {
        let whole = (sec_remainder / 86_400.0).trunc();
        days = days.saturating_add(whole as i32);
        sec_remainder -= whole * 86_400.0;
    }
    days = days.saturating_add(month_remainder_days.trunc() as i32);
    // Time is kept in microseconds, as PostgreSQL does.
    let micros = span.nanoseconds as f64 / 1_000.0;
    let t = (micros * factor + sec_remainder * 1_000_000.0).round_ties_even();
    if !t.is_finite() || t.abs() > (i64::MAX / 1_000) as f64 {
        return out_of_range();
    }
    if months == i32::MIN {
        months = i32::MIN + 1;
    }
    Ok(IntervalMonthDayNano::new(months, days, t as i64 * 1_000))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn multiplies_like_postgres() {
        let day = 86_400_000_000_000i64;
        // 1 month * 1.5 = 1 mon 15 days
        assert_eq!(
            mul(IntervalMonthDayNano::new(1, 0, 0), 1.5).unwrap(),
            IntervalMonthDayNano::new(1, 15, 0)
        );
        // 1 day / 2 = 12:00:00
        assert_eq!(
            mul(IntervalMonthDayNano::new(0, 1, 0), 0.5).unwrap(),
            IntervalMonthDayNano::new(0, 0, day / 2)
        );
        assert!(
            total_ns(IntervalMonthDayNano::new(0, 0, 25 * 3_600_000_000_000))
                > total_ns(IntervalMonthDayNano::new(0, 1, 0))
        );
        assert_eq!(
            total_ns(IntervalMonthDayNano::new(1, 0, 0)),
            total_ns(IntervalMonthDayNano::new(0, 30, 0))
        );
    }
}
