//! Stream keys: which output columns of each plan node identify a row.
//!
//! A node's stream key is a set of its output columns such that, at any
//! moment, no two rows of its output agree on all of them. A view whose
//! root has one is stored by it ([`crate::plan::NodeKind::Materialize`]):
//! each change is then a put or a delete of one key, and a `SELECT` that
//! pins the key is a point read. Derived bottom-up:
//!
//! - a table scan: the table's primary key; a view scan: the upstream
//!   view's key; sources, `VALUES`, `UNION ALL` and `unnest`: none;
//! - filters (and temporal filters), top-N, OVER windows: the input's key
//!   (their output rows are input rows, OVER and ranked top-N with columns
//!   added at the end);
//! - a projection: the input's key if every key column is passed through
//!   as a plain column;
//! - an aggregate: its group columns (none at all for a global aggregate:
//!   it has one row);
//! - a join: the left key plus the right key (NULL padding keeps that
//!   unique); for inner and left outer joins whose right join columns
//!   contain the right key, each left row matches at most one right row,
//!   so the left key alone; a semi or anti join: the kept side's key.

use datafusion::physical_expr::expressions::Column;
use datafusion::physical_expr::PhysicalExpr;

use crate::plan::{NodeKind, StreamPlan};

/// The stream key of every node of `plan`, by node index.
pub fn stream_keys(plan: &StreamPlan) -> Vec<Option<Vec<usize>>> {
    let mut keys: Vec<Option<Vec<usize>>> = Vec::with_capacity(plan.nodes.len());
    for n in &plan.nodes {
        let input = |i: usize| -> Option<Vec<usize>> {
            n.inputs
                .get(i)
                .and_then(|&x| keys.get(x).cloned().flatten())
        };
        let width = |i: usize| -> usize {
            n.inputs
                .get(i)
                .map_or(0, |&x| plan.nodes[x].schema.fields().len())
        };
        let k = match &n.kind {
            NodeKind::TableScan { pk, .. } => pk.clone(),
            NodeKind::ViewScan { key, .. } => key.clone(),
            NodeKind::SourceScan { .. }
            | NodeKind::Values { .. }
            | NodeKind::Union
            | NodeKind::Unnest { .. } => None,
            NodeKind::Filter { .. }
            | NodeKind::TemporalFilter { .. }
            | NodeKind::TopN { .. }
            | NodeKind::OverWindow { .. }
            | NodeKind::Materialize { .. }
            | NodeKind::Sink { .. } => input(0),
            NodeKind::Project { exprs } => input(0).and_then(|k| {
                k.iter()
                    .map(|c| exprs.iter().position(|e| column_of(e) == Some(*c)))
                    .collect()
            }),
            NodeKind::Aggregate { group_exprs, .. } => Some((0..group_exprs.len()).collect()),
            NodeKind::HashJoin {
                outer, right_keys, ..
            } => match (input(0), input(1)) {
                (Some(l), Some(r)) => {
                    let right_unique = r
                        .iter()
                        .all(|c| right_keys.iter().any(|e| column_of(e) == Some(*c)));
                    if right_unique && !outer[1] {
                        Some(l)
                    } else {
                        let lw = width(0);
                        Some(l.into_iter().chain(r.into_iter().map(|c| c + lw)).collect())
                    }
                }
                _ => None,
            },
            NodeKind::SemiJoin { keep, .. } => input(*keep),
        };
        keys.push(k);
    }
    keys
}

/// Whether each node's output is append-only (rows are only ever
/// inserted): sources, `APPEND ONLY` tables and `VALUES`, and filters,
/// projections, unions, unnests and inner joins of append-only inputs; an
/// aggregate that emits each window once (`EMIT ON WINDOW CLOSE`).
pub fn append_only(plan: &StreamPlan) -> Vec<bool> {
    let mut out: Vec<bool> = Vec::with_capacity(plan.nodes.len());
    for n in &plan.nodes {
        let all = n
            .inputs
            .iter()
            .all(|&i| out.get(i).copied().unwrap_or(false));
        let a = match &n.kind {
            NodeKind::SourceScan { .. } | NodeKind::Values { .. } => true,
            NodeKind::TableScan { append_only, .. } => *append_only,
            NodeKind::ViewScan { .. } => false,
            NodeKind::Filter { .. }
            | NodeKind::Project { .. }
            | NodeKind::Union
            | NodeKind::Unnest { .. }
            | NodeKind::Materialize { .. }
            | NodeKind::Sink { .. } => all,
            NodeKind::HashJoin { outer, .. } => all && !outer[0] && !outer[1],
            NodeKind::Aggregate {
                emit_on_close,
                window_col,
                ..
            } => *emit_on_close && window_col.is_some(),
            NodeKind::SemiJoin { .. }
            | NodeKind::TopN { .. }
            | NodeKind::OverWindow { .. }
            | NodeKind::TemporalFilter { .. } => false,
        };
        out.push(a);
    }
    out
}

/// The input column an expression passes through unchanged, if it is one.
fn column_of(e: &std::sync::Arc<dyn PhysicalExpr>) -> Option<usize> {
    e.as_ref().downcast_ref::<Column>().map(|c| c.index())
}
