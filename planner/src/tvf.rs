//! Window table functions: `TUMBLE(rel, ts, size [, offset])`,
//! `HOP(rel, ts, slide, size [, offset])` and `SESSION(rel, ts, gap
//! [, key, ...])` in `FROM`.
//!
//! Each call becomes a named query DataFusion expands in place, like a plain
//! view: the relation's rows with two more columns, `window_start` and
//! `window_end`. A tumbling window is a projection (`date_bin` of the time
//! column); a hopping window is the `UNION ALL` of `size / slide` such
//! projections, one per window a row falls in. The streaming planner sees
//! ordinary projections and unions, and `date_bin` keeps the time column's
//! watermark, so aggregates over windows close them as it passes.

use std::collections::HashMap;
use std::sync::{Arc, RwLock};

use datafusion::arrow::datatypes::{DataType, IntervalMonthDayNano};
use datafusion::catalog::{TableFunctionArgs, TableFunctionImpl, TableProvider};
use datafusion::common::{plan_err, ScalarValue};
use datafusion::datasource::{provider_as_source, ViewTable};
use datafusion::error::Result;
use datafusion::logical_expr::{
    cast, col, lit, Expr, ExprFunctionExt, LogicalPlanBuilder, PartitionEvaluator, Signature,
    Volatility, WindowUDF, WindowUDFImpl,
};
use datafusion::prelude::SessionContext;

/// Relations a window function may read, by name; kept as a session config
/// extension so the functions find them while the SQL is planned.
#[derive(Debug, Default)]
pub struct TvfRelations(RwLock<HashMap<String, Arc<dyn TableProvider>>>);

impl TvfRelations {
    pub fn insert(&self, name: &str, provider: Arc<dyn TableProvider>) {
        if let Ok(mut m) = self.0.write() {
            m.insert(name.to_string(), provider);
        }
    }

    fn get(&self, name: &str) -> Option<Arc<dyn TableProvider>> {
        self.0.read().ok()?.get(name).cloned()
    }
}

/// Registers `TUMBLE`, `HOP` and `SESSION` in `ctx`.
pub fn register(ctx: &SessionContext) {
    ctx.register_udtf("tumble", Arc::new(WindowTvf { hop: false }));
    ctx.register_udtf("hop", Arc::new(WindowTvf { hop: true }));
    ctx.register_udtf("session", Arc::new(SessionTvf));
    ctx.register_udwf(WindowUDF::new_from_impl(SessionBound { end: false }));
    ctx.register_udwf(WindowUDF::new_from_impl(SessionBound { end: true }));
    ctx.register_udf(proctime_udf());
}

/// Name of the processing-time function: the wall clock, re-read at every
/// checkpoint by the temporal filters that use it in views.
pub const PROCTIME: &str = "proctime";

/// `proctime()`: the current time as a `timestamptz`. Volatile, so
/// DataFusion never folds it into a constant when it plans a view.
fn proctime_udf() -> datafusion::logical_expr::ScalarUDF {
    datafusion::logical_expr::create_udf(
        PROCTIME,
        vec![],
        DataType::Timestamp(
            datafusion::arrow::datatypes::TimeUnit::Microsecond,
            Some("+00:00".into()),
        ),
        Volatility::Volatile,
        Arc::new(|_args: &[datafusion::logical_expr::ColumnarValue]| {
            Ok(datafusion::logical_expr::ColumnarValue::Scalar(
                ScalarValue::TimestampMicrosecond(
                    Some(freshet_runtime::time::now_micros()),
                    Some("+00:00".into()),
                ),
            ))
        }),
    )
}

/// `SESSION(rel, ts, gap [, key, ...])`: the relation's rows with the
/// `window_start` and `window_end` of their session: per key, a run of rows
/// each less than `gap` after the one before; it starts at its first row's
/// time and ends `gap` after its last. Computed by the window functions
/// `session_start` / `session_end` over `PARTITION BY key ORDER BY ts`, so
/// a row that joins or merges sessions updates its neighbours' windows.
#[derive(Debug)]
struct SessionTvf;

impl TableFunctionImpl for SessionTvf {
    fn call_with_args(&self, args: TableFunctionArgs) -> Result<Arc<dyn TableProvider>> {
        let exprs = args.exprs();
        if exprs.len() < 3 {
            return plan_err!("SESSION takes (relation, time column, gap [, key column, ...])");
        }
        let (rel, provider, ts, _) = resolve(&args, "SESSION")?;
        let gap = duration_ns(&exprs[2], "gap", "SESSION")?;
        if gap <= 0 {
            return plan_err!("SESSION: the gap must be positive");
        }
        let schema = provider.schema();
        let mut keys = Vec::new();
        for e in &exprs[3..] {
            let Some(k) = name_of(e) else {
                return plan_err!("SESSION: key arguments must be column names");
            };
            if schema.field_with_name(&k).is_err() {
                return plan_err!("SESSION: column \"{k}\" does not exist in \"{rel}\"");
            }
            keys.push(col(datafusion::common::Column::new(Some(rel.as_str()), &k)));
        }
        let time = col(datafusion::common::Column::new(Some(rel.as_str()), &ts));
        let bound = |end: bool, alias: &str| -> Result<Expr> {
            Ok(WindowUDF::new_from_impl(SessionBound { end })
                .call(vec![time.clone(), lit(gap)])
                .partition_by(keys.clone())
                .order_by(vec![time.clone().sort(true, false)])
                .build()?
                .alias(alias))
        };
        let mut out = columns_of(&rel, &schema);
        let (start, end) = (bound(false, "window_start")?, bound(true, "window_end")?);
        let plan = LogicalPlanBuilder::scan(rel.as_str(), provider_as_source(provider), None)?
            .window(vec![unalias(&start), unalias(&end)])?;
        // The window node names its columns after the expressions.
        let names: Vec<Expr> = {
            let s = plan.schema();
            let n = s.fields().len();
            vec![
                col(s.qualified_field(n - 2).1.name()).alias("window_start"),
                col(s.qualified_field(n - 1).1.name()).alias("window_end"),
            ]
        };
        let _ = (start, end);
        out.extend(names);
        Ok(Arc::new(ViewTable::new(plan.project(out)?.build()?, None)))
    }
}

/// Every column of relation `rel` (with `schema`), qualified by its name.
fn columns_of(rel: &str, schema: &datafusion::arrow::datatypes::SchemaRef) -> Vec<Expr> {
    schema
        .fields()
        .iter()
        .map(|f| col(datafusion::common::Column::new(Some(rel), f.name())))
        .collect()
}

fn unalias(e: &Expr) -> Expr {
    match e {
        Expr::Alias(a) => a.expr.as_ref().clone(),
        e => e.clone(),
    }
}

/// `session_start(ts, gap_ns)` / `session_end(ts, gap_ns)` over rows in
/// time order: the session a row belongs to starts at the first row of its
/// run of rows less than `gap_ns` apart and ends `gap_ns` after the last.
#[derive(Debug, PartialEq, Eq, Hash)]
struct SessionBound {
    end: bool,
}

impl WindowUDFImpl for SessionBound {
    fn name(&self) -> &str {
        if self.end {
            "session_end"
        } else {
            "session_start"
        }
    }

    fn signature(&self) -> &Signature {
        static SIG: std::sync::OnceLock<Signature> = std::sync::OnceLock::new();
        SIG.get_or_init(|| Signature::any(2, Volatility::Immutable))
    }

    fn partition_evaluator(
        &self,
        _args: datafusion::logical_expr::function::PartitionEvaluatorArgs,
    ) -> Result<Box<dyn PartitionEvaluator>> {
        Ok(Box::new(SessionEval { end: self.end }))
    }

    fn field(
        &self,
        field_args: datafusion::logical_expr::function::WindowUDFFieldArgs,
    ) -> Result<datafusion::arrow::datatypes::FieldRef> {
        let t = field_args
            .get_input_field(0)
            .map(|f| f.data_type().clone())
            .unwrap_or(DataType::Null);
        Ok(Arc::new(datafusion::arrow::datatypes::Field::new(
            field_args.name(),
            t,
            true,
        )))
    }
}

#[derive(Debug)]
struct SessionEval {
    end: bool,
}

impl PartitionEvaluator for SessionEval {
    fn evaluate_all(
        &mut self,
        values: &[datafusion::arrow::array::ArrayRef],
        num_rows: usize,
    ) -> Result<datafusion::arrow::array::ArrayRef> {
        use datafusion::arrow::array::{Array, AsArray};
        use datafusion::arrow::datatypes::Int64Type;
        let ts = &values[0];
        let DataType::Timestamp(unit, _) = ts.data_type() else {
            return plan_err!("session windows need a timestamp column");
        };
        let per = freshet_runtime::time::unit_ns(unit);
        let gap_ns = match ScalarValue::try_from_array(&values[1], 0)? {
            ScalarValue::Int64(Some(g)) => g,
            _ => return plan_err!("session windows need a constant gap"),
        };
        let gap = (gap_ns / per).max(1);
        let raw = datafusion::arrow::compute::cast(ts, &DataType::Int64)?;
        let raw = raw.as_primitive::<Int64Type>();
        let mut out: Vec<Option<i64>> = vec![None; num_rows];
        // Rows come sorted by time (NULLs, which belong to no session, at the end).
        let mut i = 0;
        while i < num_rows {
            if raw.is_null(i) {
                i += 1;
                continue;
            }
            let mut j = i;
            while j + 1 < num_rows && !raw.is_null(j + 1) && raw.value(j + 1) - raw.value(j) < gap {
                j += 1;
            }
            let v = if self.end {
                raw.value(j).saturating_add(gap)
            } else {
                raw.value(i)
            };
            for o in out.iter_mut().take(j + 1).skip(i) {
                *o = Some(v);
            }
            i = j + 1;
        }
        let arr = datafusion::arrow::array::Int64Array::from(out);
        Ok(datafusion::arrow::compute::cast(&arr, ts.data_type())?)
    }
}

/// Most windows one row may fall into (`size / slide` of `HOP`).
const MAX_HOPS: i64 = 1024;

#[derive(Debug)]
struct WindowTvf {
    hop: bool,
}

fn name_of(e: &Expr) -> Option<String> {
    match e {
        Expr::Column(c) => Some(c.name.clone()),
        Expr::Literal(ScalarValue::Utf8(Some(s)), _) => Some(s.clone()),
        _ => None,
    }
}

/// A positive fixed-length interval argument, in nanoseconds.
fn duration_ns(e: &Expr, what: &str, fname: &str) -> Result<i64> {
    let v = match e {
        Expr::Literal(v, _) => v.clone(),
        Expr::Cast(c) => match c.expr.as_ref() {
            Expr::Literal(v, _) => v.cast_to(c.field.data_type())?,
            _ => return plan_err!("{fname}: the {what} must be a constant INTERVAL"),
        },
        _ => return plan_err!("{fname}: the {what} must be a constant INTERVAL"),
    };
    let v = v.cast_to(&DataType::Interval(
        datafusion::arrow::datatypes::IntervalUnit::MonthDayNano,
    ))?;
    let ScalarValue::IntervalMonthDayNano(Some(i)) = v else {
        return plan_err!("{fname}: the {what} must be a constant INTERVAL");
    };
    if i.months != 0 {
        return plan_err!(
            "{fname}: the {what} must be a fixed length (days, hours, minutes, seconds), not months or years"
        );
    }
    let ns = i64::from(i.days)
        .checked_mul(86_400_000_000_000)
        .and_then(|d| d.checked_add(i.nanoseconds));
    match ns {
        Some(ns) => Ok(ns),
        None => plan_err!("{fname}: the {what} is out of range"),
    }
}

fn interval(ns: i64) -> Expr {
    lit(ScalarValue::IntervalMonthDayNano(Some(
        IntervalMonthDayNano::new(0, 0, ns),
    )))
}

/// The relation (name and provider), time column name and its type of a
/// window function's first two arguments.
fn resolve(
    args: &TableFunctionArgs,
    fname: &str,
) -> Result<(String, Arc<dyn TableProvider>, String, DataType)> {
    let exprs = args.exprs();
    let Some(rel) = name_of(&exprs[0]) else {
        return plan_err!("{fname}: the first argument must name a table, source or view");
    };
    let Some(rels) = args.session().config().get_extension::<TvfRelations>() else {
        return plan_err!("{fname} is not available here");
    };
    let Some(provider) = rels.get(&rel) else {
        return plan_err!("{fname}: relation \"{rel}\" does not exist");
    };
    let Some(ts) = name_of(&exprs[1]) else {
        return plan_err!("{fname}: the second argument must be a column name");
    };
    let schema = provider.schema();
    let Ok(ts_field) = schema.field_with_name(&ts) else {
        return plan_err!("{fname}: column \"{ts}\" does not exist in \"{rel}\"");
    };
    let ts_type = ts_field.data_type().clone();
    if !matches!(ts_type, DataType::Timestamp(_, _)) {
        return plan_err!("{fname}: the time column \"{ts}\" must be a timestamp, not {ts_type}");
    }
    Ok((rel, provider, ts, ts_type))
}

impl TableFunctionImpl for WindowTvf {
    fn call_with_args(&self, args: TableFunctionArgs) -> Result<Arc<dyn TableProvider>> {
        let fname = if self.hop { "HOP" } else { "TUMBLE" };
        let exprs = args.exprs();
        let (min, max) = if self.hop { (4, 5) } else { (3, 4) };
        if exprs.len() < min || exprs.len() > max {
            return plan_err!(
                "{fname} takes {}",
                if self.hop {
                    "(relation, time column, slide, size [, offset])"
                } else {
                    "(relation, time column, size [, offset])"
                }
            );
        }
        let (rel, provider, ts, ts_type) = resolve(&args, fname)?;
        let schema = provider.schema();
        let DataType::Timestamp(_, tz) = &ts_type else {
            return plan_err!("{fname}: the time column must be a timestamp");
        };
        let (slide, size) = if self.hop {
            (
                duration_ns(&exprs[2], "slide", fname)?,
                duration_ns(&exprs[3], "size", fname)?,
            )
        } else {
            let s = duration_ns(&exprs[2], "size", fname)?;
            (s, s)
        };
        let offset = match exprs.get(min) {
            Some(e) => duration_ns(e, "offset", fname)?,
            None => 0,
        };
        if slide <= 0 || size <= 0 {
            return plan_err!("{fname}: window sizes must be positive");
        }
        if size % slide != 0 {
            return plan_err!("{fname}: the size must be a whole multiple of the slide");
        }
        let hops = size / slide;
        if hops > MAX_HOPS {
            return plan_err!("{fname}: a row would fall into {hops} windows (at most {MAX_HOPS})");
        }
        let origin = cast(
            lit(ScalarValue::TimestampNanosecond(Some(offset), tz.clone())),
            ts_type.clone(),
        );
        let columns = columns_of(&rel, &schema);
        let time = col(datafusion::common::Column::new(Some(rel.as_str()), &ts));
        let mut plan: Option<LogicalPlanBuilder> = None;
        for i in 0..hops {
            let start = datafusion::functions::expr_fn::date_bin(
                interval(slide),
                time.clone(),
                origin.clone(),
            );
            let start = if i == 0 {
                start
            } else {
                start - interval(i * slide)
            };
            let mut exprs = columns.clone();
            exprs.push(cast(start.clone(), ts_type.clone()).alias("window_start"));
            exprs.push(cast(start + interval(size), ts_type.clone()).alias("window_end"));
            let branch =
                LogicalPlanBuilder::scan(rel.as_str(), provider_as_source(provider.clone()), None)?
                    .project(exprs)?;
            plan = Some(match plan {
                None => branch,
                Some(p) => p.union(branch.build()?)?,
            });
        }
        let Some(plan) = plan else {
            return plan_err!("{fname}: no windows");
        };
        Ok(Arc::new(ViewTable::new(plan.build()?, None)))
    }
}
