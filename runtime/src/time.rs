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

/// Nanoseconds in one `unit`.
pub fn unit_ns(unit: &TimeUnit) -> i64 {
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
        DataType::Timestamp(TimeUnit::Second, _) => {
            max_i64(col.as_primitive::<datafusion::arrow::datatypes::TimestampSecondType>())
        }
        DataType::Timestamp(TimeUnit::Millisecond, _) => {
            max_i64(col.as_primitive::<datafusion::arrow::datatypes::TimestampMillisecondType>())
        }
        DataType::Timestamp(TimeUnit::Microsecond, _) => {
            max_i64(col.as_primitive::<datafusion::arrow::datatypes::TimestampMicrosecondType>())
        }
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
pub struct TimeRegistry(Arc<Mutex<BTreeMap<StatsKey, Arc<TimeStats>>>>);

/// (kind, name, consumer).
type StatsKey = (String, String, String);

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

/// A time bound of an interval join: a row of `side` can no longer match
/// once the other side's watermark on `other_col` passes its `col` value
/// plus `offset_ns` (from a join condition `other.other_col <= this.col +
/// offset`). Columns are indices within each side.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct StateBound {
    pub side: usize,
    pub col: usize,
    pub other_col: usize,
    pub offset_ns: i64,
}

impl std::fmt::Display for StateBound {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let name = |s: usize| if s == 0 { "left" } else { "right" };
        write!(
            f,
            "{} rows expire when {} watermark on column {} > column {} + {}ns",
            name(self.side),
            name(1 - self.side),
            self.other_col,
            self.col,
            self.offset_ns
        )
    }
}

/// `col` or `col +/- constant interval` (over the pair schema): the column
/// and the offset in nanoseconds.
fn time_term(e: &Arc<dyn datafusion::physical_expr::PhysicalExpr>) -> Option<(usize, i64)> {
    use datafusion::logical_expr::Operator as Op;
    use datafusion::physical_expr::expressions::{BinaryExpr, CastExpr, Column, Literal};
    let any = e.as_ref();
    if let Some(c) = any.downcast_ref::<Column>() {
        return Some((c.index(), 0));
    }
    if let Some(c) = any.downcast_ref::<CastExpr>() {
        return is_event_time_type(c.cast_type())
            .then(|| time_term(c.expr()))
            .flatten();
    }
    let b = any.downcast_ref::<BinaryExpr>()?;
    let lit = b.right().as_ref().downcast_ref::<Literal>()?;
    let ns = interval_ns(lit.value())?;
    let (c, off) = time_term(b.left())?;
    match b.op() {
        Op::Plus => Some((c, off.checked_add(ns)?)),
        Op::Minus => Some((c, off.checked_sub(ns)?)),
        _ => None,
    }
}

/// A fixed-length interval in nanoseconds (no months).
pub fn interval_ns(v: &ScalarValue) -> Option<i64> {
    match v {
        ScalarValue::IntervalMonthDayNano(Some(i)) if i.months == 0 => i64::from(i.days)
            .checked_mul(86_400_000_000_000)?
            .checked_add(i.nanoseconds),
        ScalarValue::IntervalDayTime(Some(i)) => i64::from(i.days)
            .checked_mul(86_400_000_000_000)?
            .checked_add(i64::from(i.milliseconds) * 1_000_000),
        _ => None,
    }
}

/// The time bounds of a join condition over (left columns, right columns)
/// with `left_width` left columns: conjuncts `a.x [+-] c1 <= b.y [+-] c2`
/// (or `<`, `>`, `>=`, `BETWEEN`) between a left and a right column.
pub fn join_time_bounds(
    filter: &Arc<dyn datafusion::physical_expr::PhysicalExpr>,
    left_width: usize,
) -> Vec<StateBound> {
    use datafusion::logical_expr::Operator as Op;
    use datafusion::physical_expr::expressions::BinaryExpr;
    let mut out = Vec::new();
    let Some(b) = filter.as_ref().downcast_ref::<BinaryExpr>() else {
        return out;
    };
    let (small, large) = match b.op() {
        Op::And => {
            out.extend(join_time_bounds(b.left(), left_width));
            out.extend(join_time_bounds(b.right(), left_width));
            return out;
        }
        Op::Lt | Op::LtEq => (b.left(), b.right()),
        Op::Gt | Op::GtEq => (b.right(), b.left()),
        _ => return out,
    };
    let (Some((p, po)), Some((q, qo))) = (time_term(small), time_term(large)) else {
        return out;
    };
    let side = |c: usize| usize::from(c >= left_width);
    let local = |c: usize| if c >= left_width { c - left_width } else { c };
    if side(p) == side(q) {
        return out;
    }
    // p + po <= q + qo: rows of q's side die once the watermark on p passes
    // q + (qo - po).
    if let Some(offset_ns) = qo.checked_sub(po) {
        out.push(StateBound {
            side: side(q),
            col: local(q),
            other_col: local(p),
            offset_ns,
        });
    }
    out
}

/// Session windows whose rows a watermark retires: the `session_start` /
/// `session_end` functions of an OVER window over input column `ts_col`
/// with gap `gap_ns`; `end_col` is the output column of `session_end`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct SessionClose {
    pub ts_col: usize,
    pub gap_ns: i64,
    pub end_col: usize,
}

/// The watermark an operator saved in `table` (see [`save_operator_wm`]).
pub fn load_operator_wm(
    store: &freshet_storage::Store,
    table: freshet_storage::TableId,
    ty: &DataType,
) -> Result<Option<ScalarValue>> {
    match store.get(&operator_wm_key(table))? {
        Some(v) => Ok(Some(freshet_storage::codec::decode_datum(
            &mut v.as_slice(),
            ty,
        )?)),
        None => Ok(None),
    }
}

/// Saves the watermark an operator has acted on (closed windows, retired
/// sessions up to), in the running epoch, so a restart resumes from it.
pub fn save_operator_wm(
    writes: &mut freshet_storage::WriteSet,
    table: freshet_storage::TableId,
    wm: &ScalarValue,
) -> Result<()> {
    let mut v = Vec::new();
    freshet_storage::codec::encode_datum(&mut v, wm)?;
    writes.put(operator_wm_key(table), v);
    Ok(())
}

/// Microseconds since the Unix epoch, now (processing time).
pub fn now_micros() -> i64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_micros() as i64)
        .unwrap_or(0)
}

pub use crate::state::layout::operator_watermark as operator_wm_key;

#[cfg(test)]
mod tests {
    use super::*;
    use datafusion::arrow::array::TimestampMicrosecondArray;
    use std::sync::Arc;

    use datafusion::arrow::datatypes::{Field, Schema};
    use datafusion::logical_expr::Operator as Op;
    use datafusion::physical_expr::expressions::{binary, col, lit};

    fn pair_schema() -> Schema {
        let ts = DataType::Timestamp(TimeUnit::Nanosecond, None);
        Schema::new(vec![
            Field::new("k", DataType::Int32, true),
            Field::new("a_ts", ts.clone(), true),
            Field::new("k2", DataType::Int32, true),
            Field::new("b_ts", ts, true),
        ])
    }

    fn minute() -> ScalarValue {
        ScalarValue::IntervalMonthDayNano(Some(
            datafusion::arrow::datatypes::IntervalMonthDayNano::new(0, 0, 60_000_000_000),
        ))
    }

    #[test]
    fn interval_join_bounds_from_between() {
        // a.ts BETWEEN b.ts - 1 minute AND b.ts
        let s = pair_schema();
        let a = col("a_ts", &s).unwrap();
        let b = col("b_ts", &s).unwrap();
        let lower = binary(b.clone(), Op::Minus, lit(minute()), &s).unwrap();
        let ge = binary(a.clone(), Op::GtEq, lower, &s).unwrap();
        let le = binary(a, Op::LtEq, b, &s).unwrap();
        let both = binary(ge, Op::And, le, &s).unwrap();
        let mut got = join_time_bounds(&both, 2);
        got.sort_by_key(|b| b.side);
        assert_eq!(
            got,
            vec![
                // left rows die once the right watermark passes a.ts + 1 min
                StateBound {
                    side: 0,
                    col: 1,
                    other_col: 1,
                    offset_ns: 60_000_000_000
                },
                // right rows die once the left watermark passes b.ts
                StateBound {
                    side: 1,
                    col: 1,
                    other_col: 1,
                    offset_ns: 0
                },
            ]
        );
        // Same-side comparisons and other operators give no bound.
        let s2 = pair_schema();
        let same = binary(
            col("a_ts", &s2).unwrap(),
            Op::Lt,
            col("a_ts", &s2).unwrap(),
            &s2,
        )
        .unwrap();
        assert!(join_time_bounds(&same, 2).is_empty());
        let eq = binary(
            col("a_ts", &s2).unwrap(),
            Op::Eq,
            col("b_ts", &s2).unwrap(),
            &s2,
        )
        .unwrap();
        assert!(join_time_bounds(&eq, 2).is_empty());
    }

    #[test]
    fn monotone_outputs_are_recognised() {
        let s = pair_schema();
        let a = col("a_ts", &s).unwrap();
        assert_eq!(monotone_column(&a), Some(1));
        let minus = binary(a.clone(), Op::Minus, lit(minute()), &s).unwrap();
        assert_eq!(monotone_column(&minus), Some(1));
        let k = col("k", &s).unwrap();
        let neg = binary(lit(0i32), Op::Minus, k, &s).unwrap();
        assert_eq!(monotone_column(&neg), None);
    }

    #[test]
    fn idle_split_stops_holding_the_watermark_back() {
        use datafusion::arrow::array::RecordBatch;
        use datafusion::arrow::datatypes::Field;
        let schema = Arc::new(Schema::new(vec![Field::new(
            "ts",
            DataType::Timestamp(TimeUnit::Microsecond, None),
            true,
        )]));
        let spec = crate::source::SourceSpec {
            name: "s".into(),
            schema: schema.clone(),
            pk: None,
            connector: crate::source::Connector::Datagen(crate::source::DatagenOptions {
                rows_per_second: 1,
                seed: 0,
                fields: Default::default(),
            }),
            format: crate::source::Format::Plain,
            encode: crate::source::Encode::Json,
            watermark: Some(WatermarkDef {
                col: 0,
                delay_ns: 0,
            }),
            idle_timeout: Duration::from_millis(50),
        };
        let mut w = crate::source::SplitWatermarks::new(&spec);
        for p in ["p0", "p1"] {
            w.add_split(p);
        }
        let rows = RecordBatch::try_new(
            schema,
            vec![Arc::new(TimestampMicrosecondArray::from(vec![Some(
                9_000_000,
            )]))],
        )
        .unwrap();
        w.observe("p0", Some(&rows));
        // p1 has had nothing yet, but is not idle: no watermark.
        assert_eq!(w.poll(), None);
        std::thread::sleep(Duration::from_millis(80));
        w.observe("p0", Some(&rows));
        // Quiet for longer than the timeout, but not read to its end yet
        // (a slow first fetch): p1 still holds the watermark back.
        assert_eq!(w.poll(), None);
        w.reached_end("p1");
        // p1 is idle now: p0 alone decides.
        assert_eq!(
            w.poll(),
            Some(ScalarValue::TimestampMicrosecond(Some(9_000_000), None))
        );
        // Unchanged: nothing new to send.
        assert_eq!(w.poll(), None);
    }

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
        assert_eq!(
            late.iter().collect::<Vec<_>>(),
            vec![Some(true), Some(false), Some(false)]
        );
        let mut cur = None;
        assert!(advance(&mut cur, wm.clone()));
        assert!(!advance(&mut cur, shift(&wm, -1000).unwrap()));
    }
}
