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

    /// Plans `input` for expressions `exprs` that may hold uncorrelated
    /// scalar subqueries: each subquery becomes a column joined onto every
    /// input row (a keyless left join with its single row), and the
    /// expressions are rewritten to read that column. Returns the node, its
    /// schema and the rewritten expressions.
    fn with_scalar_subqueries(
        &mut self,
        input: &LogicalPlan,
        exprs: &[Expr],
    ) -> Result<(NodeIdx, DFSchema, Vec<Expr>)> {
        use datafusion::common::tree_node::Transformed;
        let mut subs: Vec<datafusion::logical_expr::Subquery> = Vec::new();
        let mut rewritten = Vec::with_capacity(exprs.len());
        for e in exprs {
            let t = e.clone().transform(|x| match x {
                Expr::ScalarSubquery(sq) if sq.outer_ref_columns.is_empty() => {
                    let name = format!("__scalar_subquery_{}", subs.len());
                    subs.push(sq);
                    Ok(Transformed::yes(Expr::Column(
                        datafusion::common::Column::new_unqualified(name),
                    )))
                }
                other => Ok(Transformed::no(other)),
            })?;
            rewritten.push(t.data);
        }
        let mut idx = self.visit(input)?;
        let mut schema = input.schema().as_ref().clone();
        for (i, sq) in subs.iter().enumerate() {
            if !at_most_one_row(&sq.subquery) {
                return Err(unsupported(
                    "a scalar subquery that is not a single aggregate row (it may return several rows)",
                ));
            }
            let sub_schema = sq.subquery.schema();
            if sub_schema.fields().len() != 1 {
                return Err(unsupported("a scalar subquery with several columns"));
            }
            let right = self.visit(&sq.subquery)?;
            let field = Field::new(
                format!("__scalar_subquery_{i}"),
                sub_schema.field(0).data_type().clone(),
                true,
            );
            let right_schema =
                DFSchema::from_unqualified_fields(vec![field].into(), Default::default())?;
            schema = schema.join(&right_schema)?;
            let slots = [self.slots, self.slots + 1];
            self.slots += 2;
            idx = self.push(
                NodeKind::HashJoin {
                    outer: [true, false],
                    left_keys: vec![],
                    right_keys: vec![],
                    nulls_match: false,
                    filter: None,
                    state_slots: slots,
                    bounds: Vec::new(),
                },
                vec![idx, right],
                nullable_schema(&schema),
            );
        }
        Ok((idx, schema, rewritten))
    }

    /// `DISTINCT ON` (which DataFusion turns into `first_value(x ORDER BY
    /// ...)` per group), and grouped `first_value` / `last_value` calls that
    /// share one `ORDER BY`: the first row of each group in that order
    /// (a per-group top-1), then its values.
    fn first_value_per_group(
        &mut self,
        a: &datafusion::logical_expr::Aggregate,
    ) -> Result<Option<NodeIdx>> {
        let mut order: Option<Vec<SortExpr>> = None;
        let mut args = Vec::with_capacity(a.aggr_expr.len());
        for e in &a.aggr_expr {
            let inner = match e {
                Expr::Alias(al) => al.expr.as_ref(),
                e => e,
            };
            let Expr::AggregateFunction(AggregateFunction { func, params }) = inner else {
                return Ok(None);
            };
            let name = func.name().to_ascii_lowercase();
            let last = match name.as_str() {
                "first_value" => false,
                "last_value" => true,
                _ => return Ok(None),
            };
            if params.order_by.is_empty()
                || params.distinct
                || params.filter.is_some()
                || params.null_treatment.is_some()
                || params.args.len() != 1
            {
                return Ok(None);
            }
            let o: Vec<SortExpr> = params
                .order_by
                .iter()
                .map(|s| if last { s.reverse() } else { s.clone() })
                .collect();
            match &order {
                None => order = Some(o),
                Some(prev) if *prev == o => {}
                Some(_) => return Ok(None),
            }
            args.push(params.args[0].clone());
        }
        let Some(order) = order else {
            return Ok(None);
        };
        let input = self.visit(&a.input)?;
        let in_schema = a.input.schema();
        let partition = a
            .group_expr
            .iter()
            .map(|e| self.physical(e, in_schema))
            .collect::<Result<Vec<_>>>()?;
        let order = self.sort_keys(&order, in_schema)?;
        let slot = self.slots;
        self.slots += 1;
        let top = self.push(
            NodeKind::TopN {
                partition,
                order,
                limit: Some(1),
                offset: 0,
                with_rank: false,
                state_slot: slot,
            },
            vec![input],
            nullable_schema(in_schema),
        );
        let exprs = a
            .group_expr
            .iter()
            .chain(&args)
            .map(|e| self.physical(e, in_schema))
            .collect::<Result<Vec<_>>>()?;
        Ok(Some(self.push(
            NodeKind::Project { exprs },
            vec![top],
            nullable_schema(&a.schema),
        )))
    }

    /// OVER window functions of one `Window` node (DataFusion gives each
    /// distinct `PARTITION BY` / `ORDER BY` its own node).
    fn window(&mut self, w: &datafusion::logical_expr::Window) -> Result<NodeIdx> {
        let in_schema = w.input.schema();
        let mut keys: Option<(&Vec<Expr>, &Vec<SortExpr>)> = None;
        let mut funcs = Vec::with_capacity(w.window_expr.len());
        let mut reach = Some((0usize, 0usize));
        for e in &w.window_expr {
            let inner = match e {
                Expr::Alias(a) => a.expr.as_ref(),
                e => e,
            };
            let Expr::WindowFunction(wf) = inner else {
                return Err(unsupported(format!("the window expression {e}")));
            };
            let p = &wf.params;
            match keys {
                None => keys = Some((&p.partition_by, &p.order_by)),
                Some((part, order)) if part == &p.partition_by && order == &p.order_by => {}
                Some(_) => {
                    return Err(unsupported(
                        "window functions with different PARTITION BY or ORDER BY in one node",
                    ))
                }
            }
            if e.is_volatile() {
                return Err(unsupported(format!("the volatile expression {e}")));
            }
            for a in p.args.iter().chain(&p.partition_by) {
                self.physical(a, in_schema)?;
            }
            reach = match (reach, window_reach(wf)) {
                (Some(a), Some(b)) => Some((a.0.max(b.0), a.1.max(b.1))),
                _ => None,
            };
            funcs.push(datafusion::physical_planner::create_window_expr(
                e,
                in_schema,
                &self.props,
                &PhysicalPlanningContext::default(),
            )?);
        }
        let Some((part, order)) = keys else {
            return Err(unsupported("an empty window node"));
        };
        for f in w.schema.fields().iter().skip(in_schema.fields().len()) {
            if !freshet_storage::codec::is_supported(f.data_type()) {
                return Err(unsupported(format!(
                    "a window function result of type {} (\"{}\")",
                    f.data_type(),
                    f.name()
                )));
            }
        }
        let input = self.visit(&w.input)?;
        let session = self.session_close(w, input);
        let partition = part
            .iter()
            .map(|e| self.physical(e, in_schema))
            .collect::<Result<Vec<_>>>()?;
        let order = self.sort_keys(order, in_schema)?;
        let slot = self.slots;
        self.slots += 1;
        Ok(self.push(
            NodeKind::OverWindow {
                partition,
                order,
                funcs,
                reach: reach.and_then(|(p, f)| p.checked_add(f)),
                state_slot: slot,
                session,
            },
            vec![input],
            nullable_schema(&w.schema),
        ))
    }

    /// A filter with conditions on `now()` (`proctime()`): the other
    /// conditions filter first, then each `x > now() - INTERVAL ...` becomes
    /// a temporal filter that retracts rows as time passes.
    fn temporal_filter(&mut self, f: &datafusion::logical_expr::Filter) -> Result<NodeIdx> {
        let schema = f.input.schema().clone();
        let (temporal, rest): (Vec<&Expr>, Vec<&Expr>) =
            datafusion::logical_expr::utils::split_conjunction(&f.predicate)
                .into_iter()
                .partition(|e| uses_proctime(e));
        let mut idx = self.visit(&f.input)?;
        if let Some(pred) = datafusion::logical_expr::utils::conjunction(rest.into_iter().cloned())
        {
            let predicate = self.physical(&pred, &schema)?;
            idx = self.push(
                NodeKind::Filter { predicate },
                vec![idx],
                nullable_schema(&schema),
            );
        }
        for t in temporal {
            let (expiry, inclusive) = temporal_bound(t).ok_or_else(|| {
                unsupported(format!(
                    "now() in the condition {t} (a view may filter on time with `col > now() - INTERVAL '...'`)"
                ))
            })?;
            let expiry = self.physical(&expiry, &schema)?;
            let slot = self.slots;
            self.slots += 1;
            idx = self.push(
                NodeKind::TemporalFilter {
                    expiry,
                    inclusive,
                    state_slot: slot,
                },
                vec![idx],
                nullable_schema(&schema),
            );
        }
        Ok(idx)
    }

    /// Session windows (`SESSION(...)`): a window node of `session_start` /
    /// `session_end` over one watermarked time column, ordered by it.
    fn session_close(
        &self,
        w: &datafusion::logical_expr::Window,
        input: NodeIdx,
    ) -> Option<freshet_runtime::time::SessionClose> {
        let in_schema = w.input.schema();
        let wm = self.watermarked(input);
        let mut ts_col = None;
        let mut gap = None;
        let mut end_col = None;
        for (i, e) in w.window_expr.iter().enumerate() {
            let inner = match e {
                Expr::Alias(a) => a.expr.as_ref(),
                e => e,
            };
            let Expr::WindowFunction(wf) = inner else {
                return None;
            };
            let name = wf.fun.name();
            if name != "session_start" && name != "session_end" {
                return None;
            }
            let [Expr::Column(c), Expr::Literal(datafusion::common::ScalarValue::Int64(Some(g)), _)] =
                wf.params.args.as_slice()
            else {
                return None;
            };
            let idx = in_schema.index_of_column(c).ok()?;
            if ts_col.is_some_and(|t| t != idx) || gap.is_some_and(|x| x != *g) {
                return None;
            }
            let order_ok = matches!(wf.params.order_by.as_slice(),
                [o] if o.asc && matches!(&o.expr, Expr::Column(oc) if oc == c));
            if !order_ok {
                return None;
            }
            ts_col = Some(idx);
            gap = Some(*g);
            if name == "session_end" {
                end_col = Some(in_schema.fields().len() + i);
            }
        }
        let (ts_col, gap_ns, end_col) = (ts_col?, gap?, end_col?);
        wm.get(ts_col)
            .copied()
            .unwrap_or(false)
            .then_some(freshet_runtime::time::SessionClose {
                ts_col,
                gap_ns,
                end_col,
            })
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
fn grouping_sets_union(
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

/// How many rows before and after the current one a window function's value
/// depends on; `None` when it can depend on the whole partition.
fn window_reach(wf: &datafusion::logical_expr::expr::WindowFunction) -> Option<(usize, usize)> {
    use datafusion::logical_expr::{WindowFrameBound, WindowFrameUnits};
    let literal = |e: &Expr| -> Option<i64> {
        match e {
            Expr::Literal(v, _) => {
                match v.cast_to(&datafusion::arrow::datatypes::DataType::Int64) {
                    Ok(datafusion::common::ScalarValue::Int64(Some(n))) => Some(n),
                    _ => None,
                }
            }
            _ => None,
        }
    };
    let name = wf.fun.name().to_ascii_lowercase();
    match name.as_str() {
        "lag" | "lead" => {
            let k = match wf.params.args.get(1) {
                Some(e) => literal(e)?,
                None => 1,
            };
            let n = usize::try_from(k.unsigned_abs()).ok()?;
            // LAG looks back and LEAD ahead; a negative offset turns them round.
            if (name == "lag") == (k >= 0) {
                Some((n, 0))
            } else {
                Some((0, n))
            }
        }
        "row_number" | "rank" | "dense_rank" | "percent_rank" | "cume_dist" | "ntile" => None,
        _ => {
            // Frame-based: first_value, last_value, nth_value, aggregates.
            let f = &wf.params.window_frame;
            if f.units != WindowFrameUnits::Rows || wf.params.order_by.is_empty() {
                return None;
            }
            let rows = |v: &datafusion::common::ScalarValue| -> Option<usize> {
                if v.is_null() {
                    return None;
                }
                match v.cast_to(&datafusion::arrow::datatypes::DataType::UInt64) {
                    Ok(datafusion::common::ScalarValue::UInt64(Some(n))) => usize::try_from(n).ok(),
                    _ => None,
                }
            };
            let preceding = match &f.start_bound {
                WindowFrameBound::Preceding(v) => rows(v)?,
                WindowFrameBound::CurrentRow | WindowFrameBound::Following(_) => 0,
            };
            let following = match &f.end_bound {
                WindowFrameBound::Following(v) => rows(v)?,
                WindowFrameBound::CurrentRow | WindowFrameBound::Preceding(_) => 0,
            };
            Some((preceding, following))
        }
    }
}

/// Whether `plan` returns at most one row whatever its inputs hold.
/// Whether `e` reads the processing time (`now()` in a view).
fn uses_proctime(e: &Expr) -> bool {
    let mut found = false;
    let _ = e.apply(|x| {
        if matches!(x, Expr::ScalarFunction(f) if f.func.name() == crate::tvf::PROCTIME) {
            found = true;
            return Ok(datafusion::common::tree_node::TreeNodeRecursion::Stop);
        }
        Ok(datafusion::common::tree_node::TreeNodeRecursion::Continue)
    });
    found
}

/// `now()`, optionally plus or minus a constant, through casts: the
/// constant's sign and value (`None`: none).
fn now_term(e: &Expr) -> Option<Option<(bool, Expr)>> {
    match e {
        Expr::Cast(c) => now_term(&c.expr),
        Expr::TryCast(c) => now_term(&c.expr),
        Expr::ScalarFunction(f) if f.func.name() == crate::tvf::PROCTIME => Some(None),
        Expr::BinaryExpr(b) if matches!(b.right.as_ref(), Expr::Literal(..)) => {
            let plus = match b.op {
                datafusion::logical_expr::Operator::Plus => true,
                datafusion::logical_expr::Operator::Minus => false,
                _ => return None,
            };
            match now_term(&b.left)? {
                None => Some(Some((plus, b.right.as_ref().clone()))),
                Some(_) => None,
            }
        }
        _ => None,
    }
}

/// `x > now() [+-] c` (or `now() [+-] c < x`, and the `>=` forms): the row
/// expires when the processing time passes `x [-+] c`. Returns that
/// expression and whether the comparison is inclusive.
fn temporal_bound(e: &Expr) -> Option<(Expr, bool)> {
    use datafusion::logical_expr::Operator as Op;
    let Expr::BinaryExpr(b) = e else {
        return None;
    };
    let (x, now, inclusive) = match b.op {
        Op::Gt => (b.left.as_ref(), b.right.as_ref(), false),
        Op::GtEq => (b.left.as_ref(), b.right.as_ref(), true),
        Op::Lt => (b.right.as_ref(), b.left.as_ref(), false),
        Op::LtEq => (b.right.as_ref(), b.left.as_ref(), true),
        _ => return None,
    };
    if uses_proctime(x) {
        return None;
    }
    let expiry = match now_term(now)? {
        None => x.clone(),
        // x > now() + c  <=>  x - c > now()
        Some((true, c)) => x.clone() - c,
        Some((false, c)) => x.clone() + c,
    };
    Some((expiry, inclusive))
}

fn at_most_one_row(plan: &LogicalPlan) -> bool {
    match plan {
        LogicalPlan::Aggregate(a) => a.group_expr.is_empty(),
        LogicalPlan::Projection(p) => at_most_one_row(&p.input),
        LogicalPlan::SubqueryAlias(s) => at_most_one_row(&s.input),
        LogicalPlan::Filter(f) => at_most_one_row(&f.input),
        LogicalPlan::Sort(s) => at_most_one_row(&s.input),
        _ => false,
    }
}
