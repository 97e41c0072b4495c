//! PostgreSQL semantics where DataFusion's differ, applied at the planner's
//! edge: analyzer rules that type literals and rewrite operators, and the
//! functions those rules call. Every session gets them from
//! [`crate::session::new_context`], so ad-hoc queries and views agree.

pub mod arith;
pub mod avg;
pub mod datetime;
pub mod floattext;
pub mod funcs;
pub mod interval;
pub mod jsonb;
pub mod jsonb_agg;
pub mod ops;
pub mod rules;
pub mod simple;
pub mod textout;

use std::sync::Arc;

use datafusion::logical_expr::LogicalPlan;
use datafusion::optimizer::analyzer::{Analyzer, AnalyzerRule};
use datafusion::prelude::SessionContext;

/// DataFusion's analyzer rules, then Freshet's operator rewrites (once
/// every type is known).
pub fn analyzer_rules() -> Vec<Arc<dyn AnalyzerRule + Send + Sync>> {
    let mut rules = Analyzer::new().rules;
    rules.push(Arc::new(rules::PgOperators));
    rules
}

/// Types the literals of a plan fresh from SQL as PostgreSQL does. Runs once,
/// before analysis: DataFusion analyzes a plan again when it runs it, and by
/// then coercion has made `Int64` literals out of `Int32` ones on purpose.
pub fn type_literals(plan: LogicalPlan) -> datafusion::error::Result<LogicalPlan> {
    rules::PgLiterals.analyze(plan, &Default::default())
}

/// DataFusion's expression planners with Freshet's operator binding first.
pub fn expr_planners(
    defaults: Vec<Arc<dyn datafusion::logical_expr::planner::ExprPlanner>>,
) -> Vec<Arc<dyn datafusion::logical_expr::planner::ExprPlanner>> {
    let mut all: Vec<Arc<dyn datafusion::logical_expr::planner::ExprPlanner>> =
        vec![Arc::new(ops::PgOps)];
    all.extend(defaults);
    all
}

/// Registers the functions PostgreSQL has and DataFusion lacks or defines
/// differently.
pub fn register(ctx: &SessionContext) {
    for f in arith::functions()
        .into_iter()
        .chain(interval::functions())
        .chain(datetime::functions())
        .chain(funcs::functions())
        .chain(floattext::functions())
        .chain(textout::functions())
        .chain(textout::array_functions())
        .chain(jsonb::functions())
    {
        ctx.register_udf(f);
    }
    ctx.register_udaf(avg::avg_udaf());
    ctx.register_udaf(jsonb_agg::jsonb_agg_udaf());
    // `every` is the standard's name for `bool_and`.
    let every = datafusion::functions_aggregate::bool_and_or::bool_and_udaf()
        .as_ref()
        .clone()
        .with_aliases(["every"]);
    ctx.register_udaf(every);
}
