//! Row order in a stream plan: `ORDER BY` keys, top-N, `ROW_NUMBER` filters,
//! first value per group, and scalar subqueries.

use super::*;

impl Builder {
    /// `ORDER BY` expressions bound to `schema`, with their sort options.
    pub(super) fn sort_keys(
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
    pub(super) fn top_n(
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
    pub(super) fn with_scalar_subqueries(
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
    pub(super) fn first_value_per_group(
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

    /// `WHERE rn <= n` over `ROW_NUMBER() OVER (PARTITION BY ... ORDER BY ...)`:
    /// a per-partition top-N that also outputs the row number.
    pub(super) fn row_number_filter(
        &mut self,
        f: &datafusion::logical_expr::Filter,
    ) -> Result<NodeIdx> {
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
}

/// Whether `plan` returns at most one row whatever its inputs hold.
pub(super) fn at_most_one_row(plan: &LogicalPlan) -> bool {
    match plan {
        LogicalPlan::Aggregate(a) => a.group_expr.is_empty(),
        LogicalPlan::Projection(p) => at_most_one_row(&p.input),
        LogicalPlan::SubqueryAlias(s) => at_most_one_row(&s.input),
        LogicalPlan::Filter(f) => at_most_one_row(&f.input),
        LogicalPlan::Sort(s) => at_most_one_row(&s.input),
        _ => false,
    }
}
