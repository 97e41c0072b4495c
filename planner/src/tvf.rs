//! Window table functions: `TUMBLE(rel, ts, size [, offset])` and
//! `HOP(rel, ts, slide, size [, offset])` in `FROM`.
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
use datafusion::logical_expr::{cast, col, lit, Expr, LogicalPlanBuilder};
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

/// Registers `TUMBLE` and `HOP` in `ctx`.
pub fn register(ctx: &SessionContext) {
    ctx.register_udtf("tumble", Arc::new(WindowTvf { hop: false }));
    ctx.register_udtf("hop", Arc::new(WindowTvf { hop: true }));
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
        let DataType::Timestamp(_, tz) = &ts_type else {
            return plan_err!(
                "{fname}: the time column \"{ts}\" must be a timestamp, not {ts_type}"
            );
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
        let columns: Vec<Expr> = schema
            .fields()
            .iter()
            .map(|f| col(datafusion::common::Column::new(Some(rel.as_str()), f.name())))
            .collect();
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
            let branch = LogicalPlanBuilder::scan(rel.as_str(), provider_as_source(provider.clone()), None)?
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
