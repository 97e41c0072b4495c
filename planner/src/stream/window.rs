//! OVER window functions and session windows.

use super::*;

impl Builder {
    /// OVER window functions of one `Window` node (DataFusion gives each
    /// distinct `PARTITION BY` / `ORDER BY` its own node).
    pub(super) fn window(&mut self, w: &datafusion::logical_expr::Window) -> Result<NodeIdx> {
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

    /// Session windows (`SESSION(...)`): a window node of `session_start` /
    /// `session_end` over one watermarked time column, ordered by it.
    pub(super) fn session_close(
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
}

/// How many rows before and after the current one a window function's value
/// depends on; `None` when it can depend on the whole partition.
pub(super) fn window_reach(
    wf: &datafusion::logical_expr::expr::WindowFunction,
) -> Option<(usize, usize)> {
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
