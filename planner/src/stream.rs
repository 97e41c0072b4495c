//! From a DataFusion logical plan to a streaming plan of incremental operators.
//!
//! The input is an analyzed and optimized `LogicalPlan`. Each supported node
//! maps to one operator spec; expressions become `PhysicalExpr`s bound to the
//! input schema of their node. Supported today: table and view scans,
//! projections with any deterministic scalar expression, filters, and
//! retractable aggregates (count, sum, avg, min, max, with `FILTER`) with or
//! without `GROUP BY` — which also covers `HAVING` and `SELECT DISTINCT`
//! (DataFusion rewrites both into these) — and inner equi-joins (any number
//! of them, with extra conditions in `ON`). Everything else is refused with
//! [`PlanError::NotSupported`] naming the construct.

use std::sync::Arc;

use datafusion::arrow::compute::SortOptions;
use datafusion::arrow::datatypes::{Field, Schema, SchemaRef};
use datafusion::common::tree_node::TreeNode;
use datafusion::common::DFSchema;
use datafusion::common::NullEquality;
use datafusion::execution::context::ExecutionProps;
use datafusion::logical_expr::expr::AggregateFunction;
use datafusion::logical_expr::physical_planning_context::PhysicalPlanningContext;
use datafusion::logical_expr::{
    Expr, ExprSchemable, FetchType, JoinType, LogicalPlan, SkipType, SortExpr,
};
use datafusion::physical_expr::{create_physical_expr, PhysicalExpr};
use freshet_runtime::plan::{AggCall, AggKind, NodeIdx, NodeKind, PlanNode, StreamPlan};

use crate::error::{PlanError, Result};
use crate::relation::{relation_of, RelKind};

/// Plans the incremental maintenance of `plan`. `columns` renames the
/// output columns (`CREATE MATERIALIZED VIEW v (a, b) AS ...`).
pub fn plan_view(plan: &LogicalPlan, columns: &[String]) -> Result<StreamPlan> {
    let mut b = Builder {
        nodes: Vec::new(),
        slots: 0,
        props: ExecutionProps::new(),
    };
    let top = b.visit(plan)?;
    let mut schema = b.nodes[top].schema.clone();
    if !columns.is_empty() {
        if columns.len() != schema.fields().len() {
            return Err(PlanError::DataFusion(
                datafusion::error::DataFusionError::Plan(format!(
                    "view has {} columns but {} column names were given",
                    schema.fields().len(),
                    columns.len()
                )),
            ));
        }
        schema = Arc::new(Schema::new(
            schema
                .fields()
                .iter()
                .zip(columns)
                .map(|(f, n)| Field::new(n, f.data_type().clone(), true))
                .collect::<Vec<_>>(),
        ));
    }
    let mut names = std::collections::HashSet::new();
    for f in schema.fields() {
        if !names.insert(f.name().clone()) {
            return Err(PlanError::DataFusion(
                datafusion::error::DataFusionError::Plan(format!(
                    "column \"{}\" specified more than once",
                    f.name()
                )),
            ));
        }
    }
    for f in schema.fields() {
        if !freshet_storage::codec::is_supported(f.data_type()) {
            return Err(unsupported(format!(
                "a view column of type {} (\"{}\")",
                f.data_type(),
                f.name()
            )));
        }
    }
    b.nodes.push(PlanNode {
        kind: NodeKind::Materialize,
        inputs: vec![top],
        schema,
    });
    Ok(StreamPlan {
        nodes: b.nodes,
        state_slots: b.slots,
    })
}

struct Builder {
    nodes: Vec<PlanNode>,
    slots: u32,
    props: ExecutionProps,
}

fn nullable_schema(s: &DFSchema) -> SchemaRef {
    Arc::new(Schema::new(
        s.fields()
            .iter()
            .map(|f| Field::new(f.name(), f.data_type().clone(), true))
            .collect::<Vec<_>>(),
    ))
}

fn unsupported(what: impl Into<String>) -> PlanError {
    PlanError::NotSupported(what.into())
}

impl Builder {
    fn push(&mut self, kind: NodeKind, inputs: Vec<NodeIdx>, schema: SchemaRef) -> NodeIdx {
        self.nodes.push(PlanNode {
            kind,
            inputs,
            schema,
        });
        self.nodes.len() - 1
    }

    fn physical(&self, e: &Expr, input: &DFSchema) -> Result<Arc<dyn PhysicalExpr>> {
        if e.is_volatile() {
            return Err(unsupported(format!("the volatile expression {e}")));
        }
        let mut found = None;
        let _ = e.apply(|x| {
            if matches!(
                x,
                Expr::ScalarSubquery(_) | Expr::Exists(_) | Expr::InSubquery(_)
            ) {
                found = Some("a subquery");
            } else if matches!(x, Expr::WindowFunction(_)) {
                found = Some("a window function (OVER)");
            }
            Ok(datafusion::common::tree_node::TreeNodeRecursion::Continue)
        });
        if let Some(what) = found {
            return Err(unsupported(what));
        }
        Ok(create_physical_expr(
            e,
            input,
            &self.props,
            &PhysicalPlanningContext::default(),
        )?)
    }

    fn visit(&mut self, plan: &LogicalPlan) -> Result<NodeIdx> {
        match plan {
            LogicalPlan::TableScan(scan) => {
                let rel = relation_of(scan.source.as_ref())
                    .ok_or_else(|| unsupported(format!("reading from {}", scan.table_name)))?;
                if scan.fetch.is_some() {
                    return Err(unsupported("LIMIT"));
                }
                let kind = match rel.kind {
                    RelKind::Table => NodeKind::TableScan {
                        table: rel.id,
                        name: rel.name.clone(),
                    },
                    RelKind::View => NodeKind::ViewScan {
                        view: rel.id,
                        name: rel.name.clone(),
                    },
                    RelKind::Source => NodeKind::SourceScan {
                        source: rel.id,
                        name: rel.name.clone(),
                        spec: rel
                            .source
                            .clone()
                            .ok_or_else(|| unsupported("a source without a connector"))?,
                    },
                };
                let full =
                    DFSchema::try_from_qualified_schema(scan.table_name.clone(), &rel.schema)?;
                let mut idx = self.push(kind, vec![], nullable_schema(&full));
                // Filters pushed into the scan are only hints for point reads
                // (`Inexact`): DataFusion keeps them in a Filter above.
                if let Some(proj) = &scan.projection {
                    let exprs = proj
                        .iter()
                        .map(|&i| {
                            let (q, f) = full.qualified_field(i);
                            self.physical(
                                &Expr::Column(datafusion::common::Column::from((q, f))),
                                &full,
                            )
                        })
                        .collect::<Result<Vec<_>>>()?;
                    idx = self.push(
                        NodeKind::Project { exprs },
                        vec![idx],
                        nullable_schema(&scan.projected_schema),
                    );
                }
                Ok(idx)
            }
            LogicalPlan::Projection(p) => {
                let input = self.visit(&p.input)?;
                let exprs = p
                    .expr
                    .iter()
                    .map(|e| self.physical(e, p.input.schema()))
                    .collect::<Result<Vec<_>>>()?;
                Ok(self.push(
                    NodeKind::Project { exprs },
                    vec![input],
                    nullable_schema(&p.schema),
                ))
            }
            LogicalPlan::Filter(f) if matches!(f.input.as_ref(), LogicalPlan::Window(_)) => {
                self.row_number_filter(f)
            }
            LogicalPlan::Filter(f) => {
                let input = self.visit(&f.input)?;
                let predicate = self.physical(&f.predicate, f.input.schema())?;
                Ok(self.push(
                    NodeKind::Filter { predicate },
                    vec![input],
                    nullable_schema(f.input.schema()),
                ))
            }
            LogicalPlan::SubqueryAlias(a) => self.visit(&a.input),
            LogicalPlan::Aggregate(a) => {
                let input = self.visit(&a.input)?;
                let in_schema = a.input.schema();
                if a.group_expr
                    .iter()
                    .any(|e| matches!(e, Expr::GroupingSet(_)))
                {
                    return Err(unsupported("GROUPING SETS, CUBE and ROLLUP"));
                }
                for e in &a.group_expr {
                    let t = e.get_type(in_schema)?;
                    if !freshet_storage::codec::is_supported(&t) {
                        return Err(unsupported(format!("GROUP BY on a value of type {t}")));
                    }
                }
                let group_exprs = a
                    .group_expr
                    .iter()
                    .map(|e| self.physical(e, in_schema))
                    .collect::<Result<Vec<_>>>()?;
                let mut aggs = Vec::with_capacity(a.aggr_expr.len());
                for (i, e) in a.aggr_expr.iter().enumerate() {
                    let out_field = a.schema.field(a.group_expr.len() + i);
                    aggs.push(self.agg_call(e, in_schema, out_field.data_type().clone())?);
                }
                let slot = self.slots;
                self.slots += 1;
                Ok(self.push(
                    NodeKind::Aggregate {
                        group_exprs,
                        aggs,
                        state_slot: slot,
                    },
                    vec![input],
                    nullable_schema(&a.schema),
                ))
            }
            LogicalPlan::Sort(s) => {
                let limit = s.fetch;
                self.top_n(&s.input, &s.expr, limit, 0)
            }
            LogicalPlan::Limit(l) => {
                let skip = match l.get_skip_type()? {
                    SkipType::Literal(n) => n,
                    SkipType::UnsupportedExpr => return Err(unsupported("a non-constant OFFSET")),
                };
                let fetch = match l.get_fetch_type()? {
                    FetchType::Literal(n) => n,
                    FetchType::UnsupportedExpr => return Err(unsupported("a non-constant LIMIT")),
                };
                match l.input.as_ref() {
                    LogicalPlan::Sort(s) => self.top_n(&s.input, &s.expr, fetch, skip),
                    _ => Err(unsupported(
                        "LIMIT or OFFSET without ORDER BY (which rows it keeps is not defined)",
                    )),
                }
            }
            LogicalPlan::Join(j) => {
                let semi = match j.join_type {
                    JoinType::LeftSemi => Some((0, false)),
                    JoinType::LeftAnti => Some((0, true)),
                    JoinType::RightSemi => Some((1, false)),
                    JoinType::RightAnti => Some((1, true)),
                    _ => None,
                };
                if j.null_aware && (semi != Some((0, true)) || j.on.len() != 1) {
                    return Err(unsupported("NOT IN over a subquery with several columns"));
                }
                if semi.is_some() && j.filter.is_some() {
                    return Err(unsupported(
                        "a correlated EXISTS / IN subquery with conditions other than equalities",
                    ));
                }
                let outer = match j.join_type {
                    JoinType::Inner => [false, false],
                    JoinType::Left => [true, false],
                    JoinType::Right => [false, true],
                    JoinType::Full => [true, true],
                    _ if semi.is_some() => [false, false],
                    _ => {
                        return Err(unsupported(format!(
                            "{} join (from EXISTS, IN or NOT IN subqueries)",
                            j.join_type
                        )))
                    }
                };
                if j.filter.is_some() && outer != [false, false] {
                    return Err(unsupported(
                        "an outer join with conditions other than key equalities in ON",
                    ));
                }
                let left = self.visit(&j.left)?;
                let right = self.visit(&j.right)?;
                let mut left_keys = Vec::with_capacity(j.on.len());
                let mut right_keys = Vec::with_capacity(j.on.len());
                for (l, r) in &j.on {
                    let (lt, rt) = (l.get_type(j.left.schema())?, r.get_type(j.right.schema())?);
                    for t in [&lt, &rt] {
                        if !freshet_storage::codec::is_supported(t) {
                            return Err(unsupported(format!("a join key of type {t}")));
                        }
                    }
                    // Keys are compared by their encoding: both sides must
                    // have one type (DataFusion's coercion makes it so).
                    let (l, r) = if lt == rt {
                        (l.clone(), r.clone())
                    } else {
                        let common =
                            datafusion::logical_expr::type_coercion::binary::comparison_coercion(
                                &lt, &rt,
                            )
                            .ok_or_else(|| unsupported(format!("a join of {lt} with {rt}")))?;
                        (
                            l.clone().cast_to(&common, j.left.schema())?,
                            r.clone().cast_to(&common, j.right.schema())?,
                        )
                    };
                    left_keys.push(self.physical(&l, j.left.schema())?);
                    right_keys.push(self.physical(&r, j.right.schema())?);
                }
                let slots = [self.slots, self.slots + 1];
                self.slots += 2;
                let nulls_match = j.null_equality == NullEquality::NullEqualsNull;
                if let Some((keep, anti)) = semi {
                    return Ok(self.push(
                        NodeKind::SemiJoin {
                            keep,
                            anti,
                            null_aware: j.null_aware,
                            left_keys,
                            right_keys,
                            nulls_match,
                            state_slots: slots,
                        },
                        vec![left, right],
                        nullable_schema(&j.schema),
                    ));
                }
                let mut idx = self.push(
                    NodeKind::HashJoin {
                        outer,
                        left_keys,
                        right_keys,
                        nulls_match,
                        state_slots: slots,
                    },
                    vec![left, right],
                    nullable_schema(&j.schema),
                );
                if let Some(f) = &j.filter {
                    let predicate = self.physical(f, &j.schema)?;
                    idx = self.push(
                        NodeKind::Filter { predicate },
                        vec![idx],
                        nullable_schema(&j.schema),
                    );
                }
                Ok(idx)
            }
            LogicalPlan::Union(u) => {
                let inputs = u
                    .inputs
                    .iter()
                    .map(|i| self.visit(i))
                    .collect::<Result<Vec<_>>>()?;
                Ok(self.push(NodeKind::Union, inputs, nullable_schema(&u.schema)))
            }
            LogicalPlan::Window(_) => Err(unsupported("window functions (OVER)")),
            LogicalPlan::Distinct(_) => Err(unsupported("DISTINCT ON")),
            LogicalPlan::EmptyRelation(_) | LogicalPlan::Values(_) => Err(unsupported(
                "a view that reads no table (constant rows or VALUES)",
            )),
            LogicalPlan::Unnest(_) => Err(unsupported("UNNEST")),
            LogicalPlan::RecursiveQuery(_) => Err(unsupported("WITH RECURSIVE")),
            other => Err(unsupported(format!("the plan node {}", other.display()))),
        }
    }

    /// `ORDER BY` expressions bound to `schema`, with their sort options.
    fn sort_keys(
        &self,
        sort: &[SortExpr],
        schema: &DFSchema,
    ) -> Result<Vec<(Arc<dyn PhysicalExpr>, SortOptions)>> {
        sort.iter()
            .map(|s| {
                Ok((
                    self.physical(&s.expr, schema)?,
                    SortOptions {
                        descending: !s.asc,
                        nulls_first: s.nulls_first,
                    },
                ))
            })
            .collect()
    }

    /// `ORDER BY ... [LIMIT n] [OFFSET m]` over `input`.
    fn top_n(
        &mut self,
        input: &LogicalPlan,
        sort: &[SortExpr],
        limit: Option<usize>,
        offset: usize,
    ) -> Result<NodeIdx> {
        if limit.is_none() && offset == 0 {
            // Row order is not part of a view's contents; ORDER BY applies when it is queried.
            return self.visit(input);
        }
        let idx = self.visit(input)?;
        let schema = input.schema();
        let order = self.sort_keys(sort, schema)?;
        let slot = self.slots;
        self.slots += 1;
        Ok(self.push(
            NodeKind::TopN {
                partition: vec![],
                order,
                limit,
                offset,
                with_rank: false,
                state_slot: slot,
            },
            vec![idx],
            nullable_schema(schema),
        ))
    }

    /// `WHERE rn <= n` over `ROW_NUMBER() OVER (PARTITION BY ... ORDER BY ...)`:
    /// a per-partition top-N that also outputs the row number.
    fn row_number_filter(&mut self, f: &datafusion::logical_expr::Filter) -> Result<NodeIdx> {
        let LogicalPlan::Window(w) = f.input.as_ref() else {
            return Err(unsupported("window functions (OVER)"));
        };
        let not_topn = || unsupported("window functions (OVER) other than ROW_NUMBER() <= n");
        if w.window_expr.len() != 1 {
            return Err(not_topn());
        }
        let inner = match &w.window_expr[0] {
            Expr::Alias(a) => a.expr.as_ref(),
            e => e,
        };
        let Expr::WindowFunction(wf) = inner else {
            return Err(not_topn());
        };
        if !wf.fun.name().eq_ignore_ascii_case("row_number") {
            return Err(not_topn());
        }
        let rn_col = w.schema.field(w.schema.fields().len() - 1).name().clone();
        // Split the predicate: one bound on the row number, the rest applied after.
        let mut limit: Option<usize> = None;
        let mut rest: Vec<Expr> = Vec::new();
        for c in datafusion::logical_expr::utils::split_conjunction(&f.predicate) {
            let bound = match c {
                Expr::BinaryExpr(b) => match (b.left.as_ref(), b.right.as_ref()) {
                    (Expr::Column(col), Expr::Literal(v, _)) if col.name == rn_col => {
                        let n = v
                            .cast_to(&datafusion::arrow::datatypes::DataType::Int64)
                            .ok()
                            .and_then(|v| match v {
                                datafusion::common::ScalarValue::Int64(Some(n)) => Some(n),
                                _ => None,
                            });
                        match (b.op, n) {
                            (datafusion::logical_expr::Operator::LtEq, Some(n)) => Some(n),
                            (datafusion::logical_expr::Operator::Lt, Some(n)) => Some(n - 1),
                            (datafusion::logical_expr::Operator::Eq, Some(1)) => Some(1),
                            _ => None,
                        }
                    }
                    _ => None,
                },
                _ => None,
            };
            match bound {
                Some(n) if limit.is_none() => limit = Some(n.max(0) as usize),
                _ => rest.push(c.clone()),
            }
        }
        let Some(limit) = limit else {
            return Err(not_topn());
        };
        let input = self.visit(&w.input)?;
        let in_schema = w.input.schema();
        let partition = wf
            .params
            .partition_by
            .iter()
            .map(|e| self.physical(e, in_schema))
            .collect::<Result<Vec<_>>>()?;
        let order = self.sort_keys(&wf.params.order_by, in_schema)?;
        let slot = self.slots;
        self.slots += 1;
        let mut idx = self.push(
            NodeKind::TopN {
                partition,
                order,
                limit: Some(limit),
                offset: 0,
                with_rank: true,
                state_slot: slot,
            },
            vec![input],
            nullable_schema(&w.schema),
        );
        if let Some(pred) = datafusion::logical_expr::utils::conjunction(rest) {
            let predicate = self.physical(&pred, &w.schema)?;
            idx = self.push(
                NodeKind::Filter { predicate },
                vec![idx],
                nullable_schema(&w.schema),
            );
        }
        Ok(idx)
    }

    fn agg_call(
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
        if !params.order_by.is_empty() {
            return Err(unsupported(format!("ORDER BY inside {name}(...)")));
        }
        let kind = match name.as_str() {
            "count" if params.args.is_empty() => AggKind::CountStar,
            "count" => AggKind::Count,
            "sum" => AggKind::Sum,
            "avg" | "mean" => AggKind::Avg,
            "min" => AggKind::Min,
            "max" => AggKind::Max,
            other => return Err(unsupported(format!("the aggregate function {other}"))),
        };
        if kind != AggKind::CountStar && params.args.len() != 1 {
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
        if matches!(kind, AggKind::Min | AggKind::Max)
            && !freshet_storage::codec::is_supported(&input_type)
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
            distinct: params.distinct && kind != AggKind::CountStar,
            input_type,
            output_type,
            display: e.schema_name().to_string(),
        })
    }
}
