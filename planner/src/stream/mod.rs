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
//!
//! Submodules plan what needs more than a few lines: [`agg`] (aggregate
//! calls, grouping sets), [`order`] (ORDER BY, top-N, `ROW_NUMBER` filters,
//! scalar subqueries), [`window`] (OVER and session windows) and
//! [`temporal`] (`now()` in views).

mod agg;
mod order;
mod temporal;
mod window;

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
use agg::grouping_sets_union;
use temporal::uses_proctime;

/// Plans the incremental maintenance of `plan`. `columns` renames the
/// output columns (`CREATE MATERIALIZED VIEW v (a, b) AS ...`).
pub fn plan_view(plan: &LogicalPlan, columns: &[String]) -> Result<StreamPlan> {
    plan_view_with(plan, columns, false)
}

/// [`plan_view`], with `EMIT ON WINDOW CLOSE` when `emit_on_close`: every
/// aggregate must group by a window bound that follows a watermark, and
/// emits each group once, when the watermark passes it.
pub fn plan_view_with(
    plan: &LogicalPlan,
    columns: &[String],
    emit_on_close: bool,
) -> Result<StreamPlan> {
    let mut b = Builder {
        nodes: Vec::new(),
        slots: 0,
        props: ExecutionProps::new(),
        emit_on_close,
        scan_watermarks: std::collections::HashMap::new(),
    };
    let top = b.visit(plan)?;
    if emit_on_close
        && !b.nodes.iter().any(|n| {
            matches!(
                n.kind,
                NodeKind::Aggregate {
                    emit_on_close: true,
                    ..
                }
            )
        })
    {
        return Err(unsupported(
            "EMIT ON WINDOW CLOSE without a windowed GROUP BY (group by window_start or window_end of TUMBLE or HOP over a table or source with a WATERMARK)",
        ));
    }
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
        kind: NodeKind::Materialize { key: None },
        inputs: vec![top],
        schema,
    });
    let mut plan = StreamPlan {
        nodes: b.nodes,
        state_slots: b.slots,
    };
    // Stored by its stream key when it has one (see `stream_key`).
    let key = freshet_runtime::stream_key::stream_keys(&plan)
        .pop()
        .flatten();
    if let Some(root) = plan.nodes.last_mut() {
        root.kind = NodeKind::Materialize { key };
    }
    Ok(plan)
}

struct Builder {
    nodes: Vec<PlanNode>,
    slots: u32,
    props: ExecutionProps,
    emit_on_close: bool,
    /// Scan node -> its event-time column (relations with a watermark).
    scan_watermarks: std::collections::HashMap<NodeIdx, usize>,
}

fn nullable_schema(s: &DFSchema) -> SchemaRef {
    Arc::new(Schema::new(
        s.fields()
            .iter()
            .map(|f| {
                Field::new(f.name(), f.data_type().clone(), true)
                    .with_metadata(f.metadata().clone())
            })
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

    /// Which output columns of node `idx` carry a watermark.
    fn watermarked(&self, idx: NodeIdx) -> Vec<bool> {
        let n = &self.nodes[idx];
        let width = n.schema.fields().len();
        let mut out = vec![false; width];
        match &n.kind {
            NodeKind::TableScan { .. } | NodeKind::SourceScan { .. } => {
                if let Some(&c) = self.scan_watermarks.get(&idx) {
                    out[c] = true;
                }
            }
            NodeKind::Project { exprs } => {
                let input = self.watermarked(n.inputs[0]);
                for (o, e) in exprs.iter().enumerate() {
                    if let Some(i) = freshet_runtime::time::monotone_column(e) {
                        out[o] = input.get(i).copied().unwrap_or(false);
                    }
                }
            }
            NodeKind::Filter { .. } => out = self.watermarked(n.inputs[0]),
            NodeKind::Union => {
                out = vec![true; width];
                for &i in &n.inputs {
                    for (o, w) in out.iter_mut().zip(self.watermarked(i)) {
                        *o &= w;
                    }
                }
            }
            NodeKind::Aggregate {
                window_col: Some(_),
                ..
            } => out[0] = true,
            NodeKind::OverWindow {
                session: Some(s), ..
            } => out[s.end_col] = true,
            _ => {}
        }
        out
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
                found = Some("a subquery that cannot be turned into a join (correlated by conditions other than equalities)");
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
                        pk: rel.pk.clone(),
                        append_only: rel.append_only,
                    },
                    RelKind::View => NodeKind::ViewScan {
                        view: rel.id,
                        name: rel.name.clone(),
                        key: rel.pk.clone(),
                    },
                    RelKind::PlainView => {
                        return Err(unsupported(format!(
                            "reading the view {} unexpanded",
                            rel.name
                        )))
                    }
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
                if let Some(wd) = rel.watermark {
                    self.scan_watermarks.insert(idx, wd.col);
                }
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
                let (input, schema, exprs) = self.with_scalar_subqueries(&p.input, &p.expr)?;
                let exprs = exprs
                    .iter()
                    .map(|e| self.physical(e, &schema))
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
            LogicalPlan::Filter(f) if uses_proctime(&f.predicate) => self.temporal_filter(f),
            LogicalPlan::Filter(f) => {
                let (input, schema, pred) =
                    self.with_scalar_subqueries(&f.input, std::slice::from_ref(&f.predicate))?;
                let predicate = self.physical(&pred[0], &schema)?;
                let mut idx = self.push(
                    NodeKind::Filter { predicate },
                    vec![input],
                    nullable_schema(&schema),
                );
                let width = f.input.schema().fields().len();
                if schema.fields().len() != width {
                    // Drop the subqueries' columns again.
                    let exprs = (0..width)
                        .map(|i| {
                            let (q, fld) = schema.qualified_field(i);
                            self.physical(
                                &Expr::Column(datafusion::common::Column::from((q, fld))),
                                &schema,
                            )
                        })
                        .collect::<Result<Vec<_>>>()?;
                    idx = self.push(
                        NodeKind::Project { exprs },
                        vec![idx],
                        nullable_schema(f.input.schema()),
                    );
                }
                Ok(idx)
            }
            LogicalPlan::SubqueryAlias(a) => self.visit(&a.input),
            LogicalPlan::Aggregate(a) => {
                if let Some(idx) = self.first_value_per_group(a)? {
                    return Ok(idx);
                }
                let input = self.visit(&a.input)?;
                let in_schema = a.input.schema();
                if let [Expr::GroupingSet(gs)] = a.group_expr.as_slice() {
                    // One aggregate per grouping set, padded to the full row
                    // and tagged with its grouping id, all unioned.
                    let union = grouping_sets_union(a, gs)?;
                    return self.visit(&union);
                }
                if a.group_expr
                    .iter()
                    .any(|e| matches!(e, Expr::GroupingSet(_)))
                {
                    return Err(unsupported(
                        "GROUPING SETS mixed with plain GROUP BY columns",
                    ));
                }
                for e in &a.group_expr {
                    let t = e.get_type(in_schema)?;
                    if !freshet_storage::codec::is_supported(&t) {
                        return Err(unsupported(format!("GROUP BY on a value of type {t}")));
                    }
                }
                let mut group_exprs = a
                    .group_expr
                    .iter()
                    .map(|e| self.physical(e, in_schema))
                    .collect::<Result<Vec<_>>>()?;
                let mut aggs = Vec::with_capacity(a.aggr_expr.len());
                for (i, e) in a.aggr_expr.iter().enumerate() {
                    let out_field = a.schema.field(a.group_expr.len() + i);
                    aggs.push(self.agg_call(e, in_schema, out_field.data_type().clone())?);
                }
                // A window: a group key that follows a watermarked column.
                // It becomes key 0 (state is kept in its order so closed
                // windows are one range), and a projection restores the
                // column order.
                let wm_in = self.watermarked(input);
                let window = group_exprs.iter().enumerate().find_map(|(g, e)| {
                    freshet_runtime::time::monotone_column(e)
                        .filter(|&c| wm_in.get(c).copied().unwrap_or(false))
                        .map(|c| (g, c))
                });
                if self.emit_on_close && window.is_none() {
                    return Err(unsupported(
                        "EMIT ON WINDOW CLOSE over a GROUP BY without a window column (group by window_start or window_end of TUMBLE or HOP over a table or source with a WATERMARK)",
                    ));
                }
                let mut schema = nullable_schema(&a.schema);
                if let Some((g, _)) = window.filter(|(g, _)| *g != 0) {
                    group_exprs.swap(0, g);
                    let mut fields: Vec<Field> =
                        schema.fields().iter().map(|f| f.as_ref().clone()).collect();
                    fields.swap(0, g);
                    schema = Arc::new(Schema::new(fields));
                }
                let slot = self.slots;
                self.slots += 1;
                let agg = self.push(
                    NodeKind::Aggregate {
                        group_exprs,
                        aggs,
                        state_slot: slot,
                        window_col: window.map(|(_, c)| c),
                        emit_on_close: self.emit_on_close && window.is_some(),
                    },
                    vec![input],
                    schema.clone(),
                );
                match window {
                    Some((g, _)) if g != 0 => {
                        let exprs = (0..schema.fields().len())
                            .map(|i| {
                                let from = if i == 0 {
                                    g
                                } else if i == g {
                                    0
                                } else {
                                    i
                                };
                                Arc::new(datafusion::physical_expr::expressions::Column::new(
                                    schema.field(from).name(),
                                    from,
                                )) as Arc<dyn PhysicalExpr>
                            })
                            .collect();
                        Ok(self.push(
                            NodeKind::Project { exprs },
                            vec![agg],
                            nullable_schema(&a.schema),
                        ))
                    }
                    _ => Ok(agg),
                }
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
                    // Without ORDER BY, PostgreSQL keeps whichever rows it
                    // meets first; a view keeps the first rows in the order
                    // of their encoded values, so the same rows every time.
                    LogicalPlan::TableScan(scan) if scan.fetch.is_some() => {
                        let mut scan = scan.clone();
                        scan.fetch = None;
                        self.top_n(&LogicalPlan::TableScan(scan), &[], fetch, skip)
                    }
                    input => self.top_n(input, &[], fetch, skip),
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
                if j.null_aware && j.filter.is_some() {
                    return Err(unsupported(
                        "NOT IN over a subquery correlated by conditions other than equalities",
                    ));
                }
                let outer = match j.join_type {
                    JoinType::Inner => [false, false],
                    JoinType::Left => [true, false],
                    JoinType::Right => [false, true],
                    JoinType::Full => [true, true],
                    _ if semi.is_some() => [false, false],
                    JoinType::LeftMark | JoinType::RightMark => return Err(unsupported(
                        "an EXISTS or IN subquery under OR or inside an expression (a mark join)",
                    )),
                    _ => {
                        return Err(unsupported(format!(
                            "{} join (from EXISTS, IN or NOT IN subqueries)",
                            j.join_type
                        )))
                    }
                };
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
                // Outer, semi and anti joins decide a residual filter inside
                // the join; inner joins filter their output instead.
                let inner_filter = outer == [false, false] && semi.is_none();
                let join_filter = match &j.filter {
                    Some(f) if !inner_filter => {
                        let pair = j.left.schema().join(j.right.schema())?;
                        Some(self.physical(f, &pair)?)
                    }
                    _ => None,
                };
                if let Some((keep, anti)) = semi {
                    return Ok(self.push(
                        NodeKind::SemiJoin {
                            keep,
                            anti,
                            null_aware: j.null_aware,
                            left_keys,
                            right_keys,
                            nulls_match,
                            filter: join_filter,
                            state_slots: slots,
                        },
                        vec![left, right],
                        nullable_schema(&j.schema),
                    ));
                }
                // Interval join: time conditions between watermarked columns
                // bound how long stored rows can still match.
                let mut bounds = Vec::new();
                if let (Some(f), true) = (&j.filter, inner_filter) {
                    let pair = j.left.schema().join(j.right.schema())?;
                    let pf = self.physical(f, &pair)?;
                    let wm = [self.watermarked(left), self.watermarked(right)];
                    bounds = freshet_runtime::time::join_time_bounds(
                        &pf,
                        j.left.schema().fields().len(),
                    )
                    .into_iter()
                    .filter(|b| wm[1 - b.side].get(b.other_col).copied().unwrap_or(false))
                    .collect();
                }
                let mut idx = self.push(
                    NodeKind::HashJoin {
                        outer,
                        left_keys,
                        right_keys,
                        nulls_match,
                        filter: join_filter,
                        state_slots: slots,
                        bounds,
                    },
                    vec![left, right],
                    nullable_schema(&j.schema),
                );
                if let (Some(f), true) = (&j.filter, inner_filter) {
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
            LogicalPlan::Window(w) => self.window(w),
            LogicalPlan::Distinct(_) => Err(unsupported("DISTINCT ON")),
            LogicalPlan::EmptyRelation(e) => {
                let rows = if e.produce_one_row { 1 } else { 0 };
                let schema = Arc::new(e.schema.as_arrow().clone());
                let batch = datafusion::arrow::array::RecordBatch::try_new_with_options(
                    schema,
                    vec![],
                    &datafusion::arrow::array::RecordBatchOptions::new().with_row_count(Some(rows)),
                )
                .map_err(|e| PlanError::DataFusion(e.into()))?;
                Ok(self.push(
                    NodeKind::Values { rows: batch },
                    vec![],
                    nullable_schema(&e.schema),
                ))
            }
            LogicalPlan::Values(v) => {
                let batch = values_batch(v)?;
                Ok(self.push(
                    NodeKind::Values { rows: batch },
                    vec![],
                    nullable_schema(&v.schema),
                ))
            }
            LogicalPlan::Unnest(u) => {
                if !u.struct_type_columns.is_empty() {
                    return Err(unsupported("UNNEST of a struct"));
                }
                if u.list_type_columns.iter().any(|(_, l)| l.depth != 1) {
                    return Err(unsupported("UNNEST of nested lists"));
                }
                let mut seen = std::collections::HashSet::new();
                let mut columns = Vec::with_capacity(u.dependency_indices.len());
                for &d in &u.dependency_indices {
                    let is_list = u.list_type_columns.iter().any(|(i, _)| *i == d);
                    if is_list && !seen.insert(d) {
                        return Err(unsupported("UNNEST of one list twice"));
                    }
                    columns.push((d, is_list));
                }
                let keep_nulls = !matches!(
                    u.options.null_handling,
                    datafusion::common::NullHandling::Drop
                );
                let input = self.visit(&u.input)?;
                Ok(self.push(
                    NodeKind::Unnest {
                        columns,
                        keep_nulls,
                    },
                    vec![input],
                    nullable_schema(&u.schema),
                ))
            }
            LogicalPlan::RecursiveQuery(_) => Err(unsupported("WITH RECURSIVE")),
            other => Err(unsupported(format!("the plan node {}", other.display()))),
        }
    }
}

/// The rows of a `VALUES` list, each expression evaluated once.
fn values_batch(
    v: &datafusion::logical_expr::Values,
) -> Result<datafusion::arrow::array::RecordBatch> {
    use datafusion::arrow::array::{RecordBatch, RecordBatchOptions};
    let schema = Arc::new(v.schema.as_arrow().clone());
    let one = RecordBatch::try_new_with_options(
        Arc::new(datafusion::arrow::datatypes::Schema::empty()),
        vec![],
        &RecordBatchOptions::new().with_row_count(Some(1)),
    )
    .map_err(|e| PlanError::DataFusion(e.into()))?;
    let empty = DFSchema::empty();
    let props = datafusion::execution::context::ExecutionProps::new();
    let mut cols: Vec<Vec<datafusion::common::ScalarValue>> =
        vec![Vec::new(); schema.fields().len()];
    for row in &v.values {
        for (c, e) in row.iter().enumerate() {
            let p = datafusion::physical_expr::create_physical_expr(
                e,
                &empty,
                &props,
                &PhysicalPlanningContext::default(),
            )?;
            let val = match p.evaluate(&one)? {
                datafusion::logical_expr::ColumnarValue::Scalar(s) => s,
                datafusion::logical_expr::ColumnarValue::Array(a) => {
                    datafusion::common::ScalarValue::try_from_array(&a, 0)?
                }
            };
            let want = schema.field(c).data_type();
            let val = if &val.data_type() != want {
                val.cast_to(want)?
            } else {
                val
            };
            if let Some(col) = cols.get_mut(c) {
                col.push(val);
            }
        }
    }
    let arrays = cols
        .into_iter()
        .zip(schema.fields())
        .map(|(vals, f)| {
            if vals.is_empty() {
                Ok(datafusion::arrow::array::new_empty_array(f.data_type()))
            } else {
                datafusion::common::ScalarValue::iter_to_array(vals)
            }
        })
        .collect::<datafusion::error::Result<Vec<_>>>()?;
    RecordBatch::try_new_with_options(
        schema,
        arrays,
        &RecordBatchOptions::new().with_row_count(Some(v.values.len())),
    )
    .map_err(|e| PlanError::DataFusion(e.into()))
}
