//! Incremental operators and the factory that builds them from plan specs.
//!
//! Every operator implements [`Operator`]: lifecycle callbacks called by the
//! engine, which owns the wiring between operators. An operator never sees
//! another operator; it turns input change batches into output change
//! batches and keeps its own state in the epoch's [`EpochCtx`].

mod agg_state;
mod agg_values;
mod aggregate;
mod expr;
mod filter;
mod join;
mod join_expiry;
mod materialize;
mod project;
mod sorted;
mod temporal;
mod topn;
mod unnest;
mod window;

pub use aggregate::AggregateOperator;
pub use filter::FilterOperator;
pub use join::JoinOperator;
pub use materialize::{decode_view_rows, MaterializeOperator};
pub use project::ProjectOperator;

use std::collections::HashMap;
use std::sync::Arc;

use datafusion::common::ScalarValue;
use freshet_storage::{Epoch, Store, TableId, WriteSet};

use crate::change::ChangeBatch;
use crate::error::Result;
use crate::plan::{NodeKind, PlanNode};
use crate::time::Watermark;

/// What an operator may touch while an epoch runs.
pub struct EpochCtx<'a> {
    /// Committed state (the last committed epoch).
    pub store: &'a Store,
    /// Writes of the running epoch; they commit atomically at its barrier.
    pub writes: &'a mut WriteSet,
    /// The epoch being built.
    pub epoch: Epoch,
}

/// An incremental operator.
///
/// Contracts:
/// - `process` must be linear in the weights of its input: feeding `+r` then
///   `-r` must leave state and accumulated output as if nothing happened.
/// - `on_barrier` is called once per epoch, after every upstream operator's
///   `on_barrier` output has been delivered; it emits what the operator held
///   back during the epoch and writes its dirty state into `ctx.writes`.
/// - `on_start` restores state from `ctx.store` after a restart, or
///   initialises it for a fresh operator (`fresh = true`).
pub trait Operator: Send {
    fn on_start(&mut self, _ctx: &mut EpochCtx<'_>, _fresh: bool) -> Result<()> {
        Ok(())
    }

    fn process(
        &mut self,
        input: usize,
        batch: ChangeBatch,
        ctx: &mut EpochCtx<'_>,
    ) -> Result<Vec<ChangeBatch>>;

    fn on_barrier(&mut self, _ctx: &mut EpochCtx<'_>) -> Result<Vec<ChangeBatch>> {
        Ok(Vec::new())
    }

    /// A watermark arrived on `input`: returns the changes it releases and
    /// the watermarks of this operator's output it implies. The default
    /// stops watermarks (the output carries none).
    fn on_watermark(
        &mut self,
        _input: usize,
        _wm: Watermark,
        _ctx: &mut EpochCtx<'_>,
    ) -> Result<WatermarkOut> {
        Ok((Vec::new(), Vec::new()))
    }

    /// Output watermarks decided in `on_barrier` (operators that close
    /// state at barriers); the engine forwards them after its output.
    fn take_watermarks(&mut self) -> Vec<Watermark> {
        Vec::new()
    }

    /// The epoch this operator's last `on_barrier` wrote into has been
    /// handed to the store (reads now see it).
    fn on_committed(&mut self) {}
}

/// What a watermark releases: changes, then watermarks of the output.
pub type WatermarkOut = (Vec<ChangeBatch>, Vec<Watermark>);

/// Watermarks of several inputs combined per column: the output's watermark
/// on a column is the minimum over the inputs (once every input has one).
#[derive(Debug, Default)]
pub struct WatermarkMin {
    inputs: usize,
    /// (input, column) -> latest watermark.
    seen: HashMap<(usize, usize), ScalarValue>,
    emitted: HashMap<usize, ScalarValue>,
}

impl WatermarkMin {
    pub fn new(inputs: usize) -> Self {
        WatermarkMin {
            inputs,
            ..Default::default()
        }
    }

    /// Records `wm` from `input`; returns the output column's new watermark.
    pub fn update(&mut self, input: usize, wm: Watermark) -> Option<Watermark> {
        let e = self.seen.entry((input, wm.col)).or_insert(wm.value.clone());
        if (*e).partial_cmp(&wm.value) == Some(std::cmp::Ordering::Less) {
            *e = wm.value.clone();
        }
        let mut min: Option<ScalarValue> = None;
        for i in 0..self.inputs {
            let v = self.seen.get(&(i, wm.col))?;
            if min
                .as_ref()
                .is_none_or(|m| v.partial_cmp(m) == Some(std::cmp::Ordering::Less))
            {
                min = Some(v.clone());
            }
        }
        let min = min?;
        let mut cur = self.emitted.get(&wm.col).cloned();
        if crate::time::advance(&mut cur, min.clone()) {
            self.emitted.insert(wm.col, min.clone());
            return Some(Watermark {
                col: wm.col,
                value: min,
            });
        }
        None
    }
}

/// Forwards its input unchanged: the entry point of table and view changes.
pub struct ScanOperator;

impl Operator for ScanOperator {
    fn process(
        &mut self,
        _input: usize,
        batch: ChangeBatch,
        _ctx: &mut EpochCtx<'_>,
    ) -> Result<Vec<ChangeBatch>> {
        Ok(vec![batch])
    }

    fn on_watermark(
        &mut self,
        _input: usize,
        wm: Watermark,
        _ctx: &mut EpochCtx<'_>,
    ) -> Result<WatermarkOut> {
        Ok((Vec::new(), vec![wm]))
    }
}

/// `UNION ALL`: forwards every input's changes under the union's schema.
pub struct UnionOperator {
    schema: datafusion::arrow::datatypes::SchemaRef,
    watermarks: WatermarkMin,
}

impl Operator for UnionOperator {
    fn on_watermark(
        &mut self,
        input: usize,
        wm: Watermark,
        _ctx: &mut EpochCtx<'_>,
    ) -> Result<WatermarkOut> {
        Ok((
            Vec::new(),
            self.watermarks.update(input, wm).into_iter().collect(),
        ))
    }

    fn process(
        &mut self,
        _input: usize,
        batch: ChangeBatch,
        _ctx: &mut EpochCtx<'_>,
    ) -> Result<Vec<ChangeBatch>> {
        let cols = batch
            .columns()
            .iter()
            .zip(self.schema.fields())
            .map(|(c, f)| {
                if c.data_type() == f.data_type() {
                    Ok(c.clone())
                } else {
                    datafusion::arrow::compute::cast(c, f.data_type())
                }
            })
            .collect::<std::result::Result<Vec<_>, _>>()?;
        let data = datafusion::arrow::array::RecordBatch::try_new_with_options(
            self.schema.clone(),
            cols,
            &datafusion::arrow::array::RecordBatchOptions::new()
                .with_row_count(Some(batch.num_rows())),
        )?;
        Ok(vec![ChangeBatch::new(data, batch.weights)])
    }
}

/// A schema of nullable columns `c0, c1, ...` of `types` (operators bind
/// expressions by column index, so the names do not matter).
pub fn schema_of(
    types: &[datafusion::arrow::datatypes::DataType],
) -> datafusion::arrow::datatypes::SchemaRef {
    Arc::new(datafusion::arrow::datatypes::Schema::new(
        types
            .iter()
            .enumerate()
            .map(|(i, t)| {
                datafusion::arrow::datatypes::Field::new(format!("c{i}"), t.clone(), true)
            })
            .collect::<Vec<_>>(),
    ))
}

/// Builds the operator for `node`, whose inputs have the column types
/// `input_types`. `state_table` maps a plan state slot to
/// its table id; `view_table` is where the view's rows live.
#[allow(clippy::too_many_arguments)]
pub fn build_operator(
    node: &PlanNode,
    input_append_only: bool,
    input_types: &[Vec<datafusion::arrow::datatypes::DataType>],
    view_name: &str,
    view_table: TableId,
    state_table: impl Fn(u32) -> TableId,
    time: &crate::time::TimeRegistry,
    sinks: &crate::sink::SinkStatsRegistry,
) -> Box<dyn Operator> {
    match &node.kind {
        NodeKind::TableScan { .. }
        | NodeKind::ViewScan { .. }
        | NodeKind::SourceScan { .. }
        | NodeKind::Values { .. } => Box::new(ScanOperator),
        NodeKind::Unnest {
            columns,
            keep_nulls,
        } => Box::new(unnest::UnnestOperator {
            columns: columns.clone(),
            keep_nulls: *keep_nulls,
            schema: node.schema.clone(),
        }),
        NodeKind::Project { exprs } => {
            let wms = exprs
                .iter()
                .enumerate()
                .filter_map(|(o, e)| crate::time::monotone_column(e).map(|i| (i, o)))
                .collect();
            Box::new(
                ProjectOperator::new(exprs.clone(), node.schema.clone())
                    .with_watermarks(wms, schema_of(input_types.first().map_or(&[][..], |t| t))),
            )
        }
        NodeKind::Filter { predicate } => Box::new(FilterOperator::new(predicate.clone())),
        NodeKind::Aggregate {
            group_exprs,
            aggs,
            state_slot,
            window_col,
            emit_on_close,
        } => {
            let op = AggregateOperator::new(
                group_exprs.clone(),
                aggs.clone(),
                node.schema.clone(),
                state_table(*state_slot),
            )
            .append_only_input(input_append_only);
            Box::new(match window_col {
                Some(c) => op.with_window(
                    *c,
                    schema_of(input_types.first().map_or(&[][..], |t| t)),
                    *emit_on_close,
                    time.get("view", view_name, ""),
                ),
                None => op,
            })
        }
        NodeKind::HashJoin {
            outer,
            left_keys,
            right_keys,
            nulls_match,
            filter,
            state_slots,
            bounds,
        } => Box::new(
            JoinOperator::new(
                [left_keys.clone(), right_keys.clone()],
                [input_types[0].clone(), input_types[1].clone()],
                [state_table(state_slots[0]), state_table(state_slots[1])],
                node.schema.clone(),
                *nulls_match,
                *outer,
            )
            .with_filter(filter.clone())
            .with_bounds(bounds.clone()),
        ),
        NodeKind::SemiJoin {
            keep,
            anti,
            null_aware,
            left_keys,
            right_keys,
            nulls_match,
            filter,
            state_slots,
        } => {
            let j = JoinOperator::new(
                [left_keys.clone(), right_keys.clone()],
                [input_types[0].clone(), input_types[1].clone()],
                [state_table(state_slots[0]), state_table(state_slots[1])],
                node.schema.clone(),
                *nulls_match,
                [false, false],
            )
            .semi(*keep, *anti)
            .with_filter(filter.clone());
            Box::new(if *null_aware { j.null_aware() } else { j })
        }
        NodeKind::TopN {
            partition,
            order,
            limit,
            offset,
            with_rank,
            state_slot,
        } => Box::new(
            topn::TopNOperator::new(
                partition.clone(),
                order.clone(),
                *limit,
                *offset,
                *with_rank,
                input_types[0].clone(),
                state_table(*state_slot),
                node.schema.clone(),
            )
            .append_only_input(input_append_only),
        ),
        NodeKind::OverWindow {
            partition,
            order,
            funcs,
            reach,
            state_slot,
            session,
        } => {
            let op = window::WindowOperator::new(
                partition.clone(),
                order.clone(),
                funcs.clone(),
                *reach,
                input_types[0].clone(),
                state_table(*state_slot),
                node.schema.clone(),
            );
            Box::new(match session {
                Some(s) => op.with_sessions(*s, time.get("view", view_name, "")),
                None => op,
            })
        }
        NodeKind::TemporalFilter {
            expiry,
            inclusive,
            state_slot,
        } => Box::new(temporal::TemporalFilterOperator::new(
            expiry.clone(),
            *inclusive,
            state_table(*state_slot),
            node.schema.clone(),
            input_types[0].clone(),
        )),
        NodeKind::Union => Box::new(UnionOperator {
            schema: node.schema.clone(),
            watermarks: WatermarkMin::new(node.inputs.len()),
        }),
        NodeKind::Materialize { key } => Box::new(
            MaterializeOperator::new(
                view_name.to_string(),
                view_table,
                node.schema.clone(),
                key.clone(),
            )
            .with_time(time.get("view", view_name, "")),
        ),
        NodeKind::Sink { spec, state_slot } => Box::new(crate::sink::SinkOperator::new(
            (**spec).clone(),
            view_table,
            state_table(*state_slot),
            sinks.get(view_table, view_name),
        )),
    }
}
