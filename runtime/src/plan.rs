//! The streaming plan: what the planner hands to the runtime.
//!
//! A [`StreamPlan`] is a DAG of operator specs stored in topological order
//! (every node's inputs come before it) and ending in one `Materialize` root.
//! Expressions are DataFusion `PhysicalExpr`s bound to the input schema of
//! their node, so operators evaluate them on Arrow arrays directly.
//!
//! State tables are named by *slot* (0, 1, ...) within the plan; the engine
//! turns a slot into a [`TableId`] from the view's id block, so planning stays
//! a pure function of the SQL and the catalog.

use std::fmt;
use std::sync::Arc;

use datafusion::arrow::datatypes::{DataType, SchemaRef};
use datafusion::physical_expr::PhysicalExpr;
use freshet_storage::TableId;

/// Index of a node within its plan.
pub type NodeIdx = usize;

/// A plan for one materialized view.
#[derive(Debug, Clone)]
pub struct StreamPlan {
    pub nodes: Vec<PlanNode>,
    /// How many state tables the plan's operators use (slots `0..n`).
    pub state_slots: u32,
}

/// One operator spec.
#[derive(Debug, Clone)]
pub struct PlanNode {
    pub kind: NodeKind,
    pub inputs: Vec<NodeIdx>,
    /// Output schema; every field is nullable.
    pub schema: SchemaRef,
}

/// Which aggregate an [`AggCall`] computes.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum AggKind {
    CountStar,
    Count,
    Sum,
    Avg,
    Min,
    Max,
    /// `bool_and` / `every`.
    BoolAnd,
    BoolOr,
    BitAnd,
    BitOr,
    BitXor,
    /// `string_agg(value, separator [ORDER BY ...])`.
    StringAgg,
    /// `array_agg(value [ORDER BY ...])`.
    ArrayAgg,
    /// `jsonb_agg(value [ORDER BY ...])`.
    JsonbAgg,
}

/// One aggregate call of a hash aggregate.
#[derive(Debug, Clone)]
pub struct AggCall {
    pub kind: AggKind,
    /// Argument; `None` only for `CountStar`.
    pub arg: Option<Arc<dyn PhysicalExpr>>,
    /// `FILTER (WHERE ...)`, if any.
    pub filter: Option<Arc<dyn PhysicalExpr>>,
    /// `agg(DISTINCT x)`: the group keeps the multiset of values.
    pub distinct: bool,
    /// `agg(x ORDER BY ...)` of an order-sensitive aggregate (`string_agg`).
    pub order: Vec<(
        Arc<dyn PhysicalExpr>,
        datafusion::arrow::compute::SortOptions,
    )>,
    /// `string_agg`'s constant separator.
    pub separator: Option<String>,
    /// The argument is a jsonb document (embedded, not quoted, by
    /// `jsonb_agg`).
    pub input_jsonb: bool,
    pub input_type: DataType,
    pub output_type: DataType,
    pub display: String,
}

/// The operator kinds the SQL of the spine needs.
#[derive(Debug, Clone)]
pub enum NodeKind {
    /// Changes of a base table.
    TableScan {
        table: TableId,
        name: String,
        /// The table's primary key columns, if it has one.
        pk: Option<Vec<usize>>,
        /// `APPEND ONLY`: rows are only ever inserted.
        append_only: bool,
    },
    /// Rows of a source, from its shared reader (append-only).
    SourceScan {
        source: TableId,
        name: String,
        spec: Arc<crate::source::SourceSpec>,
    },
    /// Changes of another materialized view.
    ViewScan {
        view: TableId,
        name: String,
        /// The upstream view's stream key (its rows are stored by it).
        key: Option<Vec<usize>>,
    },
    /// Constant rows (`VALUES`, `SELECT 1`): inserted once, when the view
    /// is created, and never changed.
    Values {
        rows: datafusion::arrow::array::RecordBatch,
    },
    Project {
        exprs: Vec<Arc<dyn PhysicalExpr>>,
    },
    /// One row per element of list columns; `columns` gives each output
    /// column's input column and whether it is that list's elements.
    Unnest {
        columns: Vec<(usize, bool)>,
        keep_nulls: bool,
    },
    Filter {
        predicate: Arc<dyn PhysicalExpr>,
    },
    /// Retractable hash aggregate; `group_exprs` empty for a global aggregate.
    Aggregate {
        group_exprs: Vec<Arc<dyn PhysicalExpr>>,
        aggs: Vec<AggCall>,
        state_slot: u32,
        /// Input column whose watermark closes groups by group key 0 (a
        /// window bound that is a non-decreasing function of it).
        window_col: Option<usize>,
        /// `EMIT ON WINDOW CLOSE`: each group is emitted once, when closed.
        emit_on_close: bool,
    },
    /// Equi-join of inputs 0 (left) and 1 (right); output columns are the
    /// left's then the right's. Each side's rows live in its state slot.
    HashJoin {
        /// Keep unmatched rows of [left, right] (padded with NULLs).
        outer: [bool; 2],
        left_keys: Vec<Arc<dyn PhysicalExpr>>,
        right_keys: Vec<Arc<dyn PhysicalExpr>>,
        /// `IS NOT DISTINCT FROM` keys: NULL matches NULL.
        nulls_match: bool,
        /// Conditions besides the keys, over (left row, right row), decided
        /// inside the join (outer joins); inner joins filter above instead.
        filter: Option<Arc<dyn PhysicalExpr>>,
        state_slots: [u32; 2],
        /// Interval join: when stored rows can no longer match (and are
        /// deleted), from time conditions between watermarked columns.
        bounds: Vec<crate::time::StateBound>,
    },
    /// Semi join (anti: anti join) of inputs 0 (left) and 1 (right): the
    /// rows of side `keep` whose key has (anti: has no) match on the other.
    SemiJoin {
        keep: usize,
        anti: bool,
        /// `NOT IN` NULL semantics (left anti join on one key column).
        null_aware: bool,
        left_keys: Vec<Arc<dyn PhysicalExpr>>,
        right_keys: Vec<Arc<dyn PhysicalExpr>>,
        nulls_match: bool,
        /// Conditions besides the keys, over (left row, right row).
        filter: Option<Arc<dyn PhysicalExpr>>,
        state_slots: [u32; 2],
    },
    /// `UNION ALL` of any number of inputs with one schema.
    Union,
    /// The first `limit` rows (after `offset`) of each partition in `order`;
    /// with `with_rank`, a trailing `UInt64` column holds the row number.
    TopN {
        partition: Vec<Arc<dyn PhysicalExpr>>,
        order: Vec<(
            Arc<dyn PhysicalExpr>,
            datafusion::arrow::compute::SortOptions,
        )>,
        limit: Option<usize>,
        offset: usize,
        with_rank: bool,
        state_slot: u32,
    },
    /// OVER window functions sharing one `PARTITION BY` and `ORDER BY`:
    /// the input's columns followed by one column per function.
    OverWindow {
        partition: Vec<Arc<dyn PhysicalExpr>>,
        order: Vec<(
            Arc<dyn PhysicalExpr>,
            datafusion::arrow::compute::SortOptions,
        )>,
        funcs: Vec<Arc<dyn datafusion::physical_expr::window::WindowExpr>>,
        /// How many rows before plus after a row its values can depend on;
        /// `None` when a function looks at the whole partition (ranks,
        /// running or unbounded frames).
        reach: Option<usize>,
        state_slot: u32,
        /// Session windows: rows of sessions the watermark has closed are
        /// retired from state, and later rows behind it dropped as late.
        session: Option<crate::time::SessionClose>,
    },
    /// `WHERE expiry > now()` (`>=` if `inclusive`): rows pass while the
    /// processing time is before their `expiry` and are retracted after.
    TemporalFilter {
        expiry: Arc<dyn PhysicalExpr>,
        inclusive: bool,
        state_slot: u32,
    },
    /// Writes the view's rows: by `key` (output columns that identify a
    /// row: a change is a put or a delete), or, without one, as a multiset
    /// keyed by the whole row.
    Materialize {
        key: Option<Vec<usize>>,
    },
    /// Writes the changes out to an external system (the root of a
    /// sink's dataflow); its log is state slot `state_slot`.
    Sink {
        spec: Box<crate::sink::SinkSpec>,
        state_slot: u32,
    },
}

/// A window function's display name without the `PARTITION BY [...]` and
/// `ORDER BY [...]` parts its node already shows.
fn short_window_name(name: &str) -> String {
    let mut out = name.to_string();
    for tag in [" PARTITION BY [", " ORDER BY ["] {
        if let Some(start) = out.find(tag) {
            let mut depth = 0usize;
            let mut end = out.len();
            for (i, ch) in out[start + tag.len() - 1..].char_indices() {
                match ch {
                    '[' => depth += 1,
                    ']' => {
                        depth -= 1;
                        if depth == 0 {
                            end = start + tag.len() - 1 + i + 1;
                            break;
                        }
                    }
                    _ => {}
                }
            }
            out.replace_range(start..end, "");
        }
    }
    out
}

fn fmt_filter(filter: &Option<Arc<dyn PhysicalExpr>>) -> String {
    filter
        .as_ref()
        .map(|f| format!(" filter={f} (left columns, then right)"))
        .unwrap_or_default()
}

fn fmt_order(
    order: &[(
        Arc<dyn PhysicalExpr>,
        datafusion::arrow::compute::SortOptions,
    )],
) -> String {
    order
        .iter()
        .map(|(e, o)| {
            format!(
                "{e} {}{}",
                if o.descending { "DESC" } else { "ASC" },
                if o.nulls_first {
                    " NULLS FIRST"
                } else {
                    " NULLS LAST"
                }
            )
        })
        .collect::<Vec<_>>()
        .join(", ")
}

impl StreamPlan {
    /// Index of the root (`Materialize`) node.
    pub fn root(&self) -> NodeIdx {
        self.nodes.len() - 1
    }

    /// A stable text form: `EXPLAIN` prints it and its hash is the plan's
    /// fingerprint, checked against stored state on restart.
    pub fn explain(&self) -> String {
        let mut out = String::new();
        self.fmt_node(self.root(), 0, &mut out);
        out
    }

    fn fmt_node(&self, idx: NodeIdx, depth: usize, out: &mut String) {
        let n = &self.nodes[idx];
        let pad = "  ".repeat(depth);
        let cols: Vec<String> = n
            .schema
            .fields()
            .iter()
            .map(|f| format!("{}:{}", f.name(), f.data_type()))
            .collect();
        let kind = match &n.kind {
            // The storage key by column name.
            NodeKind::Materialize { key: Some(k) } => format!(
                "StreamMaterialize key=[{}]",
                k.iter()
                    .map(|&i| n
                        .schema
                        .fields()
                        .get(i)
                        .map_or_else(|| format!("c{i}"), |f| f.name().clone()))
                    .collect::<Vec<_>>()
                    .join(", ")
            ),
            k => k.to_string(),
        };
        out.push_str(&format!("{pad}{kind} [{}]\n", cols.join(", ")));
        for &i in &n.inputs {
            self.fmt_node(i, depth + 1, out);
        }
    }

    /// Fingerprint of the plan shape, stable across runs of one build format.
    pub fn fingerprint(&self) -> u64 {
        let mut h: u64 = 0xcbf2_9ce4_8422_2325;
        for b in self.explain().bytes() {
            h ^= u64::from(b);
            h = h.wrapping_mul(0x0100_0000_01b3);
        }
        h
    }
}

fn join_exprs(e: &[Arc<dyn PhysicalExpr>]) -> String {
    e.iter()
        .map(|e| e.to_string())
        .collect::<Vec<_>>()
        .join(", ")
}

impl fmt::Display for NodeKind {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            NodeKind::TableScan { name, .. } => write!(f, "StreamTableScan table={name}"),
            NodeKind::ViewScan { name, .. } => write!(f, "StreamViewScan view={name}"),
            NodeKind::SourceScan { name, .. } => write!(f, "StreamSourceScan source={name}"),
            NodeKind::Values { rows } => write!(f, "StreamValues rows={}", rows.num_rows()),
            NodeKind::Unnest { columns, .. } => write!(
                f,
                "StreamUnnest lists=[{}]",
                columns
                    .iter()
                    .filter(|c| c.1)
                    .map(|c| format!("#{}", c.0))
                    .collect::<Vec<_>>()
                    .join(", ")
            ),
            NodeKind::Project { exprs } => write!(f, "StreamProject exprs=[{}]", join_exprs(exprs)),
            NodeKind::Filter { predicate } => write!(f, "StreamFilter predicate={predicate}"),
            NodeKind::Aggregate {
                group_exprs,
                aggs,
                state_slot,
                window_col,
                emit_on_close,
            } => {
                let a: Vec<&str> = aggs.iter().map(|a| a.display.as_str()).collect();
                write!(
                    f,
                    "StreamHashAgg group_by=[{}] aggs=[{}] state=slot{}",
                    join_exprs(group_exprs),
                    a.join(", "),
                    state_slot
                )?;
                if let Some(c) = window_col {
                    write!(
                        f,
                        " windows=closed by watermark of input column {c}{}",
                        if *emit_on_close {
                            " emit=on window close"
                        } else {
                            ""
                        }
                    )?;
                }
                Ok(())
            }
            NodeKind::HashJoin {
                outer,
                left_keys,
                right_keys,
                nulls_match,
                filter,
                state_slots,
                bounds,
            } => {
                let ty = match outer {
                    [false, false] => "inner",
                    [true, false] => "left outer",
                    [false, true] => "right outer",
                    [true, true] => "full outer",
                };
                let on: Vec<String> = left_keys
                    .iter()
                    .zip(right_keys)
                    .map(|(l, r)| {
                        format!(
                            "{l} {} {r}",
                            if *nulls_match {
                                "IS NOT DISTINCT FROM"
                            } else {
                                "="
                            }
                        )
                    })
                    .collect();
                write!(
                    f,
                    "StreamHashJoin type={ty} on=[{}]{} state=slot{} (left), slot{} (right)",
                    on.join(", "),
                    fmt_filter(filter),
                    state_slots[0],
                    state_slots[1]
                )?;
                for b in bounds {
                    write!(f, " [{b}]")?;
                }
                Ok(())
            }
            NodeKind::SemiJoin {
                keep,
                anti,
                null_aware,
                left_keys,
                right_keys,
                filter,
                state_slots,
                ..
            } => write!(
                f,
                "StreamHashJoin type={} {}{} on=[{}]{} state=slot{} (left), slot{} (right)",
                if *keep == 0 { "left" } else { "right" },
                if *anti { "anti" } else { "semi" },
                if *null_aware { " (NOT IN)" } else { "" },
                left_keys
                    .iter()
                    .zip(right_keys)
                    .map(|(l, r)| format!("{l} = {r}"))
                    .collect::<Vec<_>>()
                    .join(", "),
                fmt_filter(filter),
                state_slots[0],
                state_slots[1]
            ),
            NodeKind::Union => write!(f, "StreamUnion all"),
            NodeKind::TopN {
                partition,
                order,
                limit,
                offset,
                with_rank,
                state_slot,
            } => {
                write!(
                    f,
                    "StreamTopN partition_by=[{}] order_by=[{}] limit={} offset={offset}{} state=slot{state_slot}",
                    join_exprs(partition),
                    fmt_order(order),
                    limit.map_or("all".to_string(), |l| l.to_string()),
                    if *with_rank { " row_number" } else { "" }
                )
            }
            NodeKind::OverWindow {
                partition,
                order,
                funcs,
                reach,
                state_slot,
                session,
            } => write!(
                f,
                "StreamOverWindow partition_by=[{}] order_by=[{}] funcs=[{}] recompute={} state=slot{state_slot}{}",
                join_exprs(partition),
                fmt_order(order),
                funcs
                    .iter()
                    .map(|w| short_window_name(w.name()))
                    .collect::<Vec<_>>()
                    .join(", "),
                match reach {
                    Some(r) => format!("changed rows +/- {r} rows"),
                    None => "partition".to_string(),
                },
                match session {
                    Some(s) => format!(
                        " sessions=closed by watermark of input column {} (gap {}ns)",
                        s.ts_col, s.gap_ns
                    ),
                    None => String::new(),
                }
            ),
            NodeKind::TemporalFilter {
                expiry,
                inclusive,
                state_slot,
            } => write!(
                f,
                "StreamTemporalFilter {expiry} {} now() (rows expire as time passes) state=slot{state_slot}",
                if *inclusive { ">=" } else { ">" }
            ),
            NodeKind::Materialize { key: None } => {
                write!(f, "StreamMaterialize key=all columns (multiset)")
            }
            NodeKind::Materialize { key: Some(k) } => write!(
                f,
                "StreamMaterialize key=[{}]",
                k.iter()
                    .map(|i| format!("c{i}"))
                    .collect::<Vec<_>>()
                    .join(", ")
            ),
            NodeKind::Sink { spec, state_slot } => write!(
                f,
                "StreamSink connector={} target={} format={} key=[{}] delivery={} log=slot{state_slot}",
                spec.connector_name(),
                spec.target(),
                spec.format.name(),
                spec.key
                    .iter()
                    .map(|i| format!("c{i}"))
                    .collect::<Vec<_>>()
                    .join(", "),
                if spec.exactly_once { "exactly-once" } else { "at-least-once" }
            ),
        }
    }
}
