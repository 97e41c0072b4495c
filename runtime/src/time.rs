//! Event time: watermark definitions, watermark values and the late-event
//! statistics shown by `SHOW WATERMARKS`.
//!
//! A watermark is a promise on one column of a node's output: no row that
//! comes later has a value below it in that column. It is a [`ScalarValue`]
//! of the column's type (a timestamp), so operators compare and derive it
//! with the same expressions they evaluate on rows.

use std::collections::BTreeMap;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use datafusion::arrow::array::{Array, ArrayRef, AsArray, BooleanArray};
use datafusion::arrow::compute::kernels::cmp::lt;
use datafusion::arrow::datatypes::{DataType, TimeUnit};
use datafusion::common::ScalarValue;

use crate::error::{Result, RuntimeError};

/// `WATERMARK FOR col AS col - INTERVAL '...'` of a table or source.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct WatermarkDef {
    /// The event-time column (a timestamp).
    pub col: usize,
    /// The delay, in nanoseconds.
    pub delay_ns: i64,
}

/// A watermark on column `col` of a node's output.
#[derive(Debug, Clone, PartialEq)]
pub struct Watermark {
    pub col: usize,
    pub value: ScalarValue,
}

fn unit_ns(unit: &TimeUnit) -> i64 {
    match unit {
        TimeUnit::Second => 1_000_000_000,
        TimeUnit::Millisecond => 1_000_000,
        TimeUnit::Microsecond => 1_000,
        TimeUnit::Nanosecond => 1,
    }
}

/// A timestamp value as (raw value, unit); `None` for NULL or a non-timestamp.
pub fn timestamp_parts(v: &ScalarValue) -> Option<(i64, TimeUnit)> {
    match v {
        ScalarValue::TimestampSecond(Some(x), _) => Some((*x, TimeUnit::Second)),
        ScalarValue::TimestampMillisecond(Some(x), _) => Some((*x, TimeUnit::Millisecond)),
        ScalarValue::TimestampMicrosecond(Some(x), _) => Some((*x, TimeUnit::Microsecond)),
        ScalarValue::TimestampNanosecond(Some(x), _) => Some((*x, TimeUnit::Nanosecond)),
        _ => None,
    }
}

/// `v` shifted by `delta_ns` nanoseconds (rounded down to `v`'s unit).
pub fn shift(v: &ScalarValue, delta_ns: i64) -> Option<ScalarValue> {
    let (x, unit) = timestamp_parts(v)?;
    let d = delta_ns.div_euclid(unit_ns(&unit));
    let x = x.checked_add(d)?;
    Some(match v {
        ScalarValue::TimestampSecond(_, tz) => ScalarValue::TimestampSecond(Some(x), tz.clone()),
        ScalarValue::TimestampMillisecond(_, tz) => {
            ScalarValue::TimestampMillisecond(Some(x), tz.clone())
        }
        ScalarValue::TimestampMicrosecond(_, tz) => {
            ScalarValue::TimestampMicrosecond(Some(x), tz.clone())
        }
        ScalarValue::TimestampNanosecond(_, tz) => {
            ScalarValue::TimestampNanosecond(Some(x), tz.clone())
        }
        _ => return None,
    })
}

/// Whether `ty` can carry a watermark.
pub fn is_event_time_type(ty: &DataType) -> bool {
    matches!(ty, DataType::Timestamp(_, _))
}

/// The largest non-NULL value of a timestamp column, as a scalar.
pub fn max_value(col: &ArrayRef) -> Result<Option<ScalarValue>> {
    let mut best: Option<ScalarValue> = None;
    if col.null_count() == col.len() {
        return Ok(None);
    }
    let DataType::Timestamp(_, _) = col.data_type() else {
        return Err(RuntimeError::Internal(format!(
            "event-time column of type {} is not a timestamp",
            col.data_type()
        )));
    };
    let max = match col.data_type() {
        DataType::Timestamp(TimeUnit::Second, _) => max_i64(
            col.as_primitive::<datafusion::arrow::datatypes::TimestampSecondType>(),
        ),
        DataType::Timestamp(TimeUnit::Millisecond, _) => max_i64(
            col.as_primitive::<datafusion::arrow::datatypes::TimestampMillisecondType>(),
        ),
        DataType::Timestamp(TimeUnit::Microsecond, _) => max_i64(
            col.as_primitive::<datafusion::arrow::datatypes::TimestampMicrosecondType>(),
        ),
        _ => max_i64(col.as_primitive::<datafusion::arrow::datatypes::TimestampNanosecondType>()),
    };
    if let Some(m) = max {
        best = Some(timestamp_scalar(col.data_type(), m)?);
    }
    Ok(best)
}

fn max_i64<T: datafusion::arrow::datatypes::ArrowPrimitiveType<Native = i64>>(
    a: &datafusion::arrow::array::PrimitiveArray<T>,
) -> Option<i64> {
    datafusion::arrow::compute::max(a)
}

/// A timestamp scalar of type `ty` with raw value `v`.
pub fn timestamp_scalar(ty: &DataType, v: i64) -> Result<ScalarValue> {
        Ok(match ty {
            DataType::Timestamp(TimeUnit::Second, tz) => {
                ScalarValue::TimestampSecond(Some(v), tz.clone())
            }
            DataType::Timestamp(TimeUnit::Millisecond, tz) => {
                ScalarValue::TimestampMillisecond(Some(v), tz.clone())
            }
            DataType::Timestamp(TimeUnit::Microsecond, tz) => {
                ScalarValue::TimestampMicrosecond(Some(v), tz.clone())
            }
            DataType::Timestamp(TimeUnit::Nanosecond, tz) => {
                ScalarValue::TimestampNanosecond(Some(v), tz.clone())
            }
            other => {
                return Err(RuntimeError::Internal(format!(
                    "{other} is not a timestamp type"
                )))
            }
        })
}

/// The watermark `def` implies after seeing `col` (its event-time column):
/// the column's maximum minus the delay; `None` if the column is all NULL.
pub fn watermark_of(def: &WatermarkDef, col: &ArrayRef) -> Result<Option<ScalarValue>> {
    Ok(max_value(col)?.and_then(|m| shift(&m, -def.delay_ns)))
}

/// Rows of `col` below `wm` (late rows); NULLs are not late.
pub fn below(col: &ArrayRef, wm: &ScalarValue) -> Result<BooleanArray> {
    let wm = wm.cast_to(col.data_type())?;
    let scalar = wm.to_scalar()?;
    let m = lt(col, &scalar)?;
    // NULL comparisons count as "not below".
    Ok(m.iter().map(|b| Some(b.unwrap_or(false))).collect())
}

/// The larger of two optional watermarks.
pub fn advance(cur: &mut Option<ScalarValue>, new: ScalarValue) -> bool {
    match cur {
        Some(c) if (*c).partial_cmp(&new) != Some(std::cmp::Ordering::Less) => false,
        _ => {
            *cur = Some(new);
            true
        }
    }
}

/// Late events and the current watermark of one table, source reader or view.
#[derive(Debug)]
pub struct TimeStats {
    /// `table`, `source` or `view`.
    pub kind: &'static str,
    pub name: String,
    /// For a source: the view or table its reader feeds.
    pub consumer: String,
    pub late: AtomicU64,
    /// Rows retracted from a view (an `EMIT ON WINDOW CLOSE` view has none).
    pub retractions: AtomicU64,
    watermark: Mutex<Option<ScalarValue>>,
    last_log: Mutex<Option<Instant>>,
}

impl TimeStats {
    pub fn new(kind: &'static str, name: &str, consumer: &str) -> TimeStats {
        TimeStats {
            kind,
            name: name.to_string(),
            consumer: consumer.to_string(),
            late: AtomicU64::new(0),
            retractions: AtomicU64::new(0),
            watermark: Mutex::new(None),
            last_log: Mutex::new(None),
        }
    }

    /// Counts `n` late events; logs at most one line per 10 seconds.
    pub fn late(&self, n: u64) {
        if n == 0 {
            return;
        }
        let total = self.late.fetch_add(n, Ordering::Relaxed) + n;
        if let Ok(mut last) = self.last_log.lock() {
            if last.is_none_or(|t| t.elapsed() >= Duration::from_secs(10)) {
                *last = Some(Instant::now());
                let wm = self.watermark().map(|w| w.to_string()).unwrap_or_default();
                tracing::warn!(
                    kind = self.kind,
                    name = %self.name,
                    late_total = total,
                    watermark = %wm,
                    "late events behind the watermark (dropped from windows; see SHOW WATERMARKS)"
                );
            }
        }
    }

    pub fn retracted(&self, n: u64) {
        if n > 0 {
            self.retractions.fetch_add(n, Ordering::Relaxed);
        }
    }

    pub fn set_watermark(&self, wm: &ScalarValue) {
        if let Ok(mut w) = self.watermark.lock() {
            advance(&mut w, wm.clone());
        }
    }

    pub fn watermark(&self) -> Option<ScalarValue> {
        self.watermark.lock().ok().and_then(|w| w.clone())
    }

    pub fn late_total(&self) -> u64 {
        self.late.load(Ordering::Relaxed)
    }
}

/// Every [`TimeStats`], by (kind, name, consumer).
#[derive(Debug, Clone, Default)]
pub struct TimeRegistry(Arc<Mutex<BTreeMap<(String, String, String), Arc<TimeStats>>>>);

impl TimeRegistry {
    /// The stats of one object, created on first use.
    pub fn get(&self, kind: &'static str, name: &str, consumer: &str) -> Arc<TimeStats> {
        let key = (kind.to_string(), name.to_string(), consumer.to_string());
        match self.0.lock() {
            Ok(mut m) => m
                .entry(key)
                .or_insert_with(|| Arc::new(TimeStats::new(kind, name, consumer)))
                .clone(),
            Err(_) => Arc::new(TimeStats::new(kind, name, consumer)),
        }
    }

    /// Forgets the stats of `name` (a dropped object) and of its readers.
    pub fn remove(&self, name: &str) {
        if let Ok(mut m) = self.0.lock() {
            m.retain(|(_, n, c), _| n != name && c != name);
        }
    }

    pub fn all(&self) -> Vec<Arc<TimeStats>> {
        self.0
            .lock()
            .map(|m| m.values().cloned().collect())
            .unwrap_or_default()
    }
}

/// The input column `expr` is a non-decreasing function of, if it is one
/// Freshet can tell: a column, plus or minus a constant, a cast between
/// timestamp types, `date_bin(constant, x [, constant])` or
/// `date_trunc(constant, x)` of such an expression. A watermark on that
/// column maps to one on the expression's result.
pub fn monotone_column(expr: &Arc<dyn datafusion::physical_expr::PhysicalExpr>) -> Option<usize> {
    use datafusion::logical_expr::Operator as Op;
    use datafusion::physical_expr::expressions::{BinaryExpr, CastExpr, Column, Literal};
    use datafusion::physical_expr::ScalarFunctionExpr;
    let any = expr.as_ref();
    let is_lit = |e: &Arc<dyn datafusion::physical_expr::PhysicalExpr>| {
        e.as_ref().downcast_ref::<Literal>().is_some()
    };
    if let Some(c) = any.downcast_ref::<Column>() {
        return Some(c.index());
    }
    if let Some(b) = any.downcast_ref::<BinaryExpr>() {
        return match b.op() {
            Op::Plus | Op::Minus if is_lit(b.right()) => monotone_column(b.left()),
            Op::Plus if is_lit(b.left()) => monotone_column(b.right()),
            _ => None,
        };
    }
    if let Some(c) = any.downcast_ref::<CastExpr>() {
        return if is_event_time_type(c.cast_type()) {
            monotone_column(c.expr())
        } else {
            None
        };
    }
    if let Some(f) = any.downcast_ref::<ScalarFunctionExpr>() {
        let args = f.args();
        return match f.name() {
            "date_bin" if args.len() >= 2 && is_lit(&args[0]) && args[2..].iter().all(is_lit) => {
                monotone_column(&args[1])
            }
            "date_trunc" if args.len() == 2 && is_lit(&args[0]) => monotone_column(&args[1]),
            _ => None,
        };
    }
    None
}

#[cfg(test)]
mod tests {
    use super::*;
    use datafusion::arrow::array::TimestampMicrosecondArray;
    use std::sync::Arc;

    #[test]
    fn watermark_is_max_minus_delay() {
        let col: ArrayRef = Arc::new(TimestampMicrosecondArray::from(vec![
            Some(5_000_000),
            None,
            Some(9_000_000),
        ]));
        let def = WatermarkDef {
            col: 0,
            delay_ns: 2_000_000_000,
        };
        let wm = watermark_of(&def, &col).unwrap().unwrap();
        assert_eq!(wm, ScalarValue::TimestampMicrosecond(Some(7_000_000), None));
        let late = below(&col, &wm).unwrap();
        assert_eq!(late.iter().collect::<Vec<_>>(), vec![Some(true), Some(false), Some(false)]);
        let mut cur = None;
        assert!(advance(&mut cur, wm.clone()));
        assert!(!advance(&mut cur, shift(&wm, -1000).unwrap()));
    }
}
