//! Aggregate calls of a stream plan, and grouping sets as a union of plain
//! aggregates.

use super::*;

impl Builder {
    pub(super) fn agg_call(
        &self,
        e: &Expr,
        input: &DFSchema,
        output_type: datafusion::arrow::datatypes::DataType,
    ) -> Result<AggCall> {
        let inner = match e {
            Expr::Alias(a) => a.expr.as_ref(),
            other => other,
        };
        let Expr::AggregateFunction(AggregateFunction { func, params }) = inner else {
            return Err(unsupported(format!("the aggregate expression {e}")));
        };
        let name = func.name().to_ascii_lowercase();
        let kind = match name.as_str() {
            "count" if params.args.is_empty() => AggKind::CountStar,
            "count" => AggKind::Count,
            "sum" => AggKind::Sum,
            "avg" | "mean" => AggKind::Avg,
            "min" => AggKind::Min,
            "max" => AggKind::Max,
            "bool_and" | "every" => AggKind::BoolAnd,
            "bool_or" => AggKind::BoolOr,
            "bit_and" => AggKind::BitAnd,
            "bit_or" => AggKind::BitOr,
            "bit_xor" => AggKind::BitXor,
            "string_agg" => AggKind::StringAgg,
            "array_agg" => AggKind::ArrayAgg,
            "jsonb_agg" => AggKind::JsonbAgg,
            other => return Err(unsupported(format!("the aggregate function {other}"))),
        };
        // Order matters only to string_agg; the others ignore it, as
        // PostgreSQL's results do not depend on it.
        let order = if matches!(
            kind,
            AggKind::StringAgg | AggKind::ArrayAgg | AggKind::JsonbAgg
        ) {
            self.sort_keys(&params.order_by, input)?
        } else {
            Vec::new()
        };
        let separator = if kind == AggKind::StringAgg {
            match params.args.get(1) {
                Some(Expr::Literal(v, _)) => match v
                    .cast_to(&datafusion::arrow::datatypes::DataType::Utf8)
                {
                    Ok(datafusion::common::ScalarValue::Utf8(s)) => Some(s.unwrap_or_default()),
                    _ => return Err(unsupported("string_agg with a separator that is not text")),
                },
                _ => {
                    return Err(unsupported(
                        "string_agg with a separator that is not a constant",
                    ))
                }
            }
        } else {
            None
        };
        let arity = if kind == AggKind::StringAgg { 2 } else { 1 };
        if kind != AggKind::CountStar && params.args.len() != arity {
            return Err(unsupported(format!(
                "{name} with {} arguments",
                params.args.len()
            )));
        }
        let (arg, input_type) = match params.args.first() {
            Some(a) => (Some(self.physical(a, input)?), a.get_type(input)?),
            None => (None, datafusion::arrow::datatypes::DataType::Null),
        };
        if matches!(kind, AggKind::Sum | AggKind::Avg) && !(input_type.is_numeric()) {
            return Err(unsupported(format!("{name} over {input_type}")));
        }
        if !matches!(
            kind,
            AggKind::CountStar | AggKind::Count | AggKind::Sum | AggKind::Avg
        ) && !freshet_storage::codec::is_supported(&input_type)
        {
            return Err(unsupported(format!("{name} over {input_type}")));
        }
        let filter = match &params.filter {
            Some(f) => Some(self.physical(f, input)?),
            None => None,
        };
        Ok(AggCall {
            kind,
            arg,
            filter,
            order,
            separator,
            input_jsonb: params
                .args
                .first()
                .and_then(|a| a.to_field(input).ok())
                .is_some_and(|(_, f)| crate::pg::jsonb::is_jsonb(&f)),
            distinct: params.distinct && kind != AggKind::CountStar,
            input_type,
            output_type,
            display: e.schema_name().to_string(),
        })
    }
}

/// `GROUP BY GROUPING SETS / ROLLUP / CUBE` as a union of one plain
/// aggregate per set, each padded with NULLs for the columns it does not
/// group by and tagged with DataFusion's grouping id (first column the
/// highest bit, set when not grouped; repeated sets numbered above).
pub(super) fn grouping_sets_union(
    a: &datafusion::logical_expr::Aggregate,
    gs: &datafusion::logical_expr::expr::GroupingSet,
) -> Result<LogicalPlan> {
    use datafusion::common::{Column, ScalarValue};
    use datafusion::logical_expr::expr::GroupingSet;
    use datafusion::logical_expr::{Aggregate, Projection, Union};
    let all: Vec<Expr> = gs.distinct_expr().into_iter().cloned().collect();
    let sets: Vec<Vec<Expr>> = match gs {
        GroupingSet::Rollup(e) => (0..=e.len()).rev().map(|n| e[..n].to_vec()).collect(),
        GroupingSet::Cube(e) => {
            if e.len() > 12 {
                return Err(unsupported("CUBE of more than 12 columns"));
            }
            (0..(1u32 << e.len()))
                .map(|mask| {
                    e.iter()
                        .enumerate()
                        .filter(|(i, _)| mask & (1 << i) == 0)
                        .map(|(_, x)| x.clone())
                        .collect()
                })
                .collect()
        }
        GroupingSet::GroupingSets(g) => g.clone(),
    };
    let n_aggs = a.aggr_expr.len();
    if a.schema.fields().len() != all.len() + 1 + n_aggs {
        return Err(unsupported("this form of GROUPING SETS"));
    }
    let gid_type = a.schema.field(all.len()).data_type().clone();
    let mut inputs = Vec::with_capacity(sets.len());
    for (k, set) in sets.iter().enumerate() {
        let ordinal = sets[..k].iter().filter(|s| *s == set).count() as u64;
        let agg = LogicalPlan::Aggregate(Aggregate::try_new(
            a.input.clone(),
            set.clone(),
            a.aggr_expr.clone(),
        )?);
        let agg_schema = agg.schema().clone();
        let col_of = |i: usize| {
            let (q, f) = agg_schema.qualified_field(i);
            Expr::Column(Column::new(q.cloned(), f.name()))
        };
        let mut exprs = Vec::with_capacity(a.schema.fields().len());
        let mut bits: u64 = 0;
        for (i, e) in all.iter().enumerate() {
            let (q, f) = a.schema.qualified_field(i);
            let v = match set.iter().position(|x| x == e) {
                Some(p) => col_of(p),
                None => Expr::Literal(ScalarValue::try_from(f.data_type())?, None),
            };
            bits = (bits << 1) | u64::from(!set.contains(e));
            exprs.push(v.alias_qualified(q.cloned(), f.name()));
        }
        let id = ScalarValue::UInt64(Some(bits | (ordinal << all.len()))).cast_to(&gid_type)?;
        let (q, f) = a.schema.qualified_field(all.len());
        exprs.push(Expr::Literal(id, None).alias_qualified(q.cloned(), f.name()));
        for j in 0..n_aggs {
            let (q, f) = a.schema.qualified_field(all.len() + 1 + j);
            exprs.push(col_of(set.len() + j).alias_qualified(q.cloned(), f.name()));
        }
        inputs.push(Arc::new(LogicalPlan::Projection(Projection::try_new(
            exprs,
            Arc::new(agg),
        )?)));
    }
    Ok(LogicalPlan::Union(Union {
        inputs,
        schema: a.schema.clone(),
    }))
}
