//! The structural form of a stream plan, persisted with each view.
//!
//! What a view's state depends on, one line per node: the operator, its
//! inputs, its output types, its state slots and what decides the layout of
//! that state (group and key counts, aggregate kinds, sort directions,
//! window function names, join kind, the view's storage key). Expression
//! text is left out on purpose: DataFusion may print the same expression
//! differently after an upgrade, and that must not refuse to resume a view.
//! On restart the server re-plans each view and compares this form with the
//! stored one; the first differing node is named in the refusal.

use crate::plan::{NodeKind, StreamPlan};

/// Version of the form below; bump it when the form changes.
pub const STRUCTURE_VERSION: u32 = 1;

/// One line per node, in plan order.
pub fn structure(plan: &StreamPlan) -> Vec<String> {
    plan.nodes
        .iter()
        .enumerate()
        .map(|(i, n)| {
            let types: Vec<String> = n
                .schema
                .fields()
                .iter()
                .map(|f| f.data_type().to_string())
                .collect();
            let inputs: Vec<String> = n.inputs.iter().map(|x| x.to_string()).collect();
            format!(
                "#{i} {} <- [{}] types=[{}]",
                node_structure(&n.kind),
                inputs.join(","),
                types.join(", ")
            )
        })
        .collect()
}

fn sorts(
    order: &[(
        std::sync::Arc<dyn datafusion::physical_expr::PhysicalExpr>,
        datafusion::arrow::compute::SortOptions,
    )],
) -> String {
    order
        .iter()
        .map(|(_, o)| {
            format!(
                "{}{}",
                if o.descending { "desc" } else { "asc" },
                if o.nulls_first { "/nf" } else { "/nl" }
            )
        })
        .collect::<Vec<_>>()
        .join(",")
}

fn node_structure(k: &NodeKind) -> String {
    match k {
        NodeKind::TableScan { table, pk, .. } => format!("TableScan(table={} pk={pk:?})", table.0),
        NodeKind::ViewScan { view, key, .. } => format!("ViewScan(view={} key={key:?})", view.0),
        NodeKind::SourceScan { source, .. } => format!("SourceScan(source={})", source.0),
        NodeKind::Values { rows } => format!("Values(rows={})", rows.num_rows()),
        NodeKind::Project { exprs } => format!("Project(exprs={})", exprs.len()),
        NodeKind::Unnest {
            columns,
            keep_nulls,
        } => format!("Unnest(columns={columns:?} keep_nulls={keep_nulls})"),
        NodeKind::Filter { .. } => "Filter".into(),
        NodeKind::Aggregate {
            group_exprs,
            aggs,
            state_slot,
            window_col,
            emit_on_close,
        } => {
            let calls: Vec<String> = aggs
                .iter()
                .map(|a| {
                    format!(
                        "{:?}{}{}/{}",
                        a.kind,
                        if a.distinct { " distinct" } else { "" },
                        if a.order.is_empty() {
                            String::new()
                        } else {
                            format!(" order {}", sorts(&a.order))
                        },
                        a.input_type
                    )
                })
                .collect();
            format!(
                "Aggregate(groups={} aggs=[{}] slot={state_slot} window_col={window_col:?} emit_on_close={emit_on_close})",
                group_exprs.len(),
                calls.join(", ")
            )
        }
        NodeKind::HashJoin {
            outer,
            left_keys,
            nulls_match,
            filter,
            state_slots,
            bounds,
            ..
        } => format!(
            "HashJoin(outer={outer:?} keys={} nulls_match={nulls_match} filter={} slots={state_slots:?} bounds={})",
            left_keys.len(),
            filter.is_some(),
            bounds.len()
        ),
        NodeKind::SemiJoin {
            keep,
            anti,
            null_aware,
            left_keys,
            nulls_match,
            filter,
            state_slots,
            ..
        } => format!(
            "SemiJoin(keep={keep} anti={anti} null_aware={null_aware} keys={} nulls_match={nulls_match} filter={} slots={state_slots:?})",
            left_keys.len(),
            filter.is_some()
        ),
        NodeKind::Union => "Union".into(),
        NodeKind::TopN {
            partition,
            order,
            limit,
            offset,
            with_rank,
            state_slot,
        } => format!(
            "TopN(partition={} order=[{}] limit={limit:?} offset={offset} with_rank={with_rank} slot={state_slot})",
            partition.len(),
            sorts(order)
        ),
        NodeKind::OverWindow {
            partition,
            order,
            funcs,
            reach,
            state_slot,
            session,
        } => {
            let names: Vec<String> = funcs
                .iter()
                .map(|f| {
                    let n = f.name();
                    n.split('(').next().unwrap_or(n).trim().to_lowercase()
                })
                .collect();
            format!(
                "OverWindow(partition={} order=[{}] funcs=[{}] reach={reach:?} slot={state_slot} session={})",
                partition.len(),
                sorts(order),
                names.join(","),
                session.is_some()
            )
        }
        NodeKind::TemporalFilter {
            inclusive,
            state_slot,
            ..
        } => format!("TemporalFilter(inclusive={inclusive} slot={state_slot})"),
        NodeKind::Materialize { key } => format!("Materialize(key={key:?})"),
        NodeKind::Sink { spec, state_slot } => format!(
            "Sink(format={} key={:?} slot={state_slot})",
            spec.format.name(),
            spec.key
        ),
    }
}

/// A description of the first difference between a stored structure and a
/// new one, if they differ.
pub fn first_difference(stored: &[String], new: &[String]) -> Option<String> {
    for i in 0..stored.len().max(new.len()) {
        match (stored.get(i), new.get(i)) {
            (Some(a), Some(b)) if a == b => continue,
            (Some(a), Some(b)) => return Some(format!("stored node {a}, now {b}")),
            (Some(a), None) => return Some(format!("stored node {a} has no counterpart now")),
            (None, Some(b)) => return Some(format!("new node {b} was not in the stored plan")),
            (None, None) => break,
        }
    }
    None
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_the_first_changed_node() {
        let a: Vec<String> = vec!["#0 x".into(), "#1 y".into()];
        assert_eq!(first_difference(&a, &a), None);
        let b: Vec<String> = vec!["#0 x".into(), "#1 z".into()];
        assert_eq!(
            first_difference(&a, &b).as_deref(),
            Some("stored node #1 y, now #1 z")
        );
        assert!(first_difference(&a, &a[..1]).is_some());
    }
}
