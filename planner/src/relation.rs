//! Catalog relations as DataFusion sees them while planning and querying.
//!
//! A [`RelationProvider`] carries the identity of a table or view (so the
//! streaming planner can tell which one a `TableScan` reads) and, for a query
//! being executed, the data loaded for it: [`QueryData`] is filled once per
//! query from one snapshot before execution starts, so every relation in the
//! query comes from the same epoch.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};

use async_trait::async_trait;
use datafusion::arrow::array::RecordBatch;
use datafusion::arrow::datatypes::SchemaRef;
use datafusion::catalog::memory::MemorySourceConfig;
use datafusion::catalog::Session;
use datafusion::common::tree_node::TreeNodeRecursion;
use datafusion::common::ScalarValue;
use datafusion::datasource::{TableProvider, TableType};
use datafusion::error::{DataFusionError, Result};
use datafusion::logical_expr::{
    BinaryExpr, Expr, LogicalPlan, Operator, TableProviderFilterPushDown, TableScan,
};
use datafusion::physical_plan::ExecutionPlan;
use freshet_runtime::engine::nullable;
use freshet_runtime::source::SourceSpec;
use freshet_runtime::table::ROWKEY_COLUMN;
use freshet_runtime::TableDef;
use freshet_storage::TableId;

/// Whether a relation is a base table or a materialized view.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum RelKind {
    Table,
    View,
    /// A `CREATE SOURCE`: no rows of its own; views read it.
    Source,
    /// A plain `CREATE VIEW`: a named query, expanded where it is used.
    PlainView,
}

/// A table or materialized view from the catalog.
#[derive(Debug, Clone)]
pub struct Relation {
    pub kind: RelKind,
    pub id: TableId,
    pub name: String,
    /// Visible columns (all nullable).
    pub schema: SchemaRef,
    /// Primary key column indices (tables), or the stream key a
    /// materialized view's rows are stored by.
    pub pk: Option<Vec<usize>>,
    /// The connector of a source or connector table.
    pub source: Option<Arc<SourceSpec>>,
    /// `WATERMARK FOR` of a table or source.
    pub watermark: Option<freshet_runtime::time::WatermarkDef>,
    /// `APPEND ONLY` table.
    pub append_only: bool,
}

impl Relation {
    pub fn table_def(&self) -> TableDef {
        let mut not_null: Vec<usize> = self
            .schema
            .fields()
            .iter()
            .enumerate()
            .filter(|(_, f)| !f.is_nullable())
            .map(|(i, _)| i)
            .collect();
        for &i in self.pk.iter().flatten() {
            if !not_null.contains(&i) {
                not_null.push(i);
            }
        }
        TableDef {
            id: self.id,
            name: self.name.clone(),
            schema: nullable(&self.schema),
            pk: self.pk.clone(),
            not_null,
            connector: self.source.clone(),
            watermark: self.watermark,
            append_only: self.append_only,
        }
    }
}

/// Data loaded for one query, keyed by relation id.
#[derive(Debug, Default)]
pub struct QueryData {
    batches: Mutex<HashMap<TableId, RecordBatch>>,
}

impl QueryData {
    pub fn insert(&self, id: TableId, batch: RecordBatch) {
        if let Ok(mut m) = self.batches.lock() {
            m.insert(id, batch);
        }
    }

    fn get(&self, id: TableId) -> Option<RecordBatch> {
        self.batches.lock().ok().and_then(|m| m.get(&id).cloned())
    }
}

/// A relation registered in a DataFusion context.
#[derive(Debug)]
pub struct RelationProvider {
    pub rel: Arc<Relation>,
    /// Expose the hidden `_rowkey` column (UPDATE and DELETE planning).
    pub with_rowkey: bool,
    pub data: Arc<QueryData>,
}

impl RelationProvider {
    pub fn new(rel: Arc<Relation>, with_rowkey: bool, data: Arc<QueryData>) -> Self {
        RelationProvider {
            rel,
            with_rowkey,
            data,
        }
    }
}

#[async_trait]
impl TableProvider for RelationProvider {
    fn schema(&self) -> SchemaRef {
        if self.with_rowkey && self.rel.kind == RelKind::Table {
            self.rel.table_def().schema_with_rowkey()
        } else {
            self.rel.schema.clone()
        }
    }

    fn table_type(&self) -> TableType {
        match self.rel.kind {
            RelKind::Table => TableType::Base,
            RelKind::View | RelKind::Source | RelKind::PlainView => TableType::View,
        }
    }

    /// Filters reach `scan` so reads can use primary-key lookups
    /// ([`scan_keys`]); DataFusion still applies every filter above the scan.
    fn supports_filters_pushdown(
        &self,
        filters: &[&Expr],
    ) -> Result<Vec<TableProviderFilterPushDown>> {
        Ok(vec![TableProviderFilterPushDown::Inexact; filters.len()])
    }

    async fn scan(
        &self,
        _state: &dyn Session,
        projection: Option<&Vec<usize>>,
        _filters: &[Expr],
        _limit: Option<usize>,
    ) -> Result<Arc<dyn ExecutionPlan>> {
        let batch = self.data.get(self.rel.id).ok_or_else(|| {
            DataFusionError::Internal(format!(
                "relation {} was not loaded for this query",
                self.rel.name
            ))
        })?;
        let schema = self.schema();
        let batch = if batch.schema() != schema {
            let n = batch.num_columns().min(schema.fields().len());
            RecordBatch::try_new(schema.clone(), batch.columns()[..n].to_vec())?
        } else {
            batch
        };
        Ok(MemorySourceConfig::try_new_exec(
            &[vec![batch]],
            schema,
            projection.cloned(),
        )?)
    }
}

/// What a query needs to read of each relation: everything (`None`), or only
/// the rows with these encoded primary keys.
pub type ReadPlan = Vec<(Arc<Relation>, Option<Vec<Vec<u8>>>)>;

/// Every relation an (optimized) plan reads, with the primary keys its
/// filters pin down where they do: `WHERE pk = 1` or `pk IN (1, 2)` (all
/// key columns constrained) becomes point lookups instead of a full read.
pub fn read_plan(plan: &LogicalPlan) -> ReadPlan {
    let mut out: ReadPlan = Vec::new();
    let _ = plan.apply_with_subqueries(|p| {
        if let LogicalPlan::TableScan(scan) = p {
            if let Some(rel) = relation_of(scan.source.as_ref()) {
                let keys = scan_keys(scan, &rel);
                match out.iter_mut().find(|(r, _)| r.id == rel.id) {
                    Some((_, existing)) => match (existing.as_mut(), keys) {
                        (Some(e), Some(k)) => {
                            e.extend(k);
                            e.sort();
                            e.dedup();
                        }
                        _ => *existing = None,
                    },
                    None => out.push((rel, keys)),
                }
            }
        }
        Ok(TreeNodeRecursion::Continue)
    });
    out
}

/// The encoded primary keys a scan's filters allow, if they pin every key column.
pub fn scan_keys(scan: &TableScan, rel: &Relation) -> Option<Vec<Vec<u8>>> {
    let pk = rel.pk.as_ref()?;
    // Tables by primary key; materialized views stored by their stream key.
    if !matches!(rel.kind, RelKind::Table | RelKind::View) || pk.is_empty() {
        return None;
    }
    // Candidate values per key column, from `col = lit` and `col IN (lits)`.
    let mut per_col: Vec<Option<Vec<ScalarValue>>> = vec![None; pk.len()];
    for f in &scan.filters {
        let (col, vals) = match f {
            Expr::BinaryExpr(BinaryExpr {
                left,
                op: Operator::Eq,
                right,
            }) => match (left.as_ref(), right.as_ref()) {
                (Expr::Column(c), Expr::Literal(v, _)) | (Expr::Literal(v, _), Expr::Column(c)) => {
                    (c, vec![v.clone()])
                }
                _ => continue,
            },
            Expr::InList(l) if !l.negated => match l.expr.as_ref() {
                Expr::Column(c) => {
                    let vals: Option<Vec<ScalarValue>> = l
                        .list
                        .iter()
                        .map(|e| {
                            if let Expr::Literal(v, _) = e {
                                Some(v.clone())
                            } else {
                                None
                            }
                        })
                        .collect();
                    match vals {
                        Some(v) => (c, v),
                        None => continue,
                    }
                }
                _ => continue,
            },
            _ => continue,
        };
        let Some(i) = rel
            .schema
            .fields()
            .iter()
            .position(|f| f.name() == &col.name)
        else {
            continue;
        };
        let Some(slot) = pk.iter().position(|&p| p == i) else {
            continue;
        };
        let ty = rel.schema.field(i).data_type();
        let vals: Option<Vec<ScalarValue>> = vals.into_iter().map(|v| v.cast_to(ty).ok()).collect();
        per_col[slot] = Some(vals?);
    }
    let mut keys: Vec<Vec<u8>> = vec![Vec::new()];
    for vals in per_col {
        let vals = vals?;
        let mut next = Vec::with_capacity(keys.len() * vals.len());
        for k in &keys {
            for v in &vals {
                if v.is_null() {
                    continue; // `pk = NULL` matches nothing
                }
                let mut nk = k.clone();
                freshet_storage::codec::encode_datum(&mut nk, v).ok()?;
                next.push(nk);
            }
        }
        if next.len() > 10_000 {
            return None;
        }
        keys = next;
    }
    keys.sort();
    keys.dedup();
    Some(keys)
}

/// Every relation a plan reads, subqueries included, each once.
pub fn referenced_relations(plan: &LogicalPlan) -> Vec<Arc<Relation>> {
    let mut out: Vec<Arc<Relation>> = Vec::new();
    let _ = plan.apply_with_subqueries(|p| {
        if let LogicalPlan::TableScan(TableScan { source, .. }) = p {
            if let Some(rel) = relation_of(source.as_ref()) {
                if !out.iter().any(|r| r.id == rel.id) {
                    out.push(rel);
                }
            }
            // A plain view's own relations, too.
            if let Some(inner) = source.get_logical_plan() {
                for rel in referenced_relations(&inner) {
                    if !out.iter().any(|r| r.id == rel.id) {
                        out.push(rel);
                    }
                }
            }
        }
        Ok(TreeNodeRecursion::Continue)
    });
    out
}

/// The relation behind a `TableScan` source, if it is one of ours.
pub fn relation_of(source: &dyn datafusion::logical_expr::TableSource) -> Option<Arc<Relation>> {
    let d = source.downcast_ref::<datafusion::datasource::DefaultTableSource>()?;
    if let Some(v) = d.table_provider.downcast_ref::<PlainViewProvider>() {
        return Some(v.rel.clone());
    }
    d.table_provider
        .downcast_ref::<RelationProvider>()
        .map(|p| p.rel.clone())
}

/// A plain view in a DataFusion context: DataFusion expands its query
/// wherever it is used (its `TableScan` is inlined before optimization), so
/// queries and materialized views over it read the relations underneath.
#[derive(Debug)]
pub struct PlainViewProvider {
    pub rel: Arc<Relation>,
    view: datafusion::datasource::ViewTable,
}

impl PlainViewProvider {
    pub fn new(rel: Arc<Relation>, plan: LogicalPlan, definition: String) -> Self {
        PlainViewProvider {
            rel,
            view: datafusion::datasource::ViewTable::new(plan, Some(definition)),
        }
    }
}

#[async_trait]
impl TableProvider for PlainViewProvider {
    fn schema(&self) -> SchemaRef {
        self.view.schema()
    }

    fn table_type(&self) -> TableType {
        TableType::View
    }

    fn get_logical_plan(&'_ self) -> Option<std::borrow::Cow<'_, LogicalPlan>> {
        self.view.get_logical_plan()
    }

    fn get_table_definition(&self) -> Option<&str> {
        self.view.get_table_definition()
    }

    async fn scan(
        &self,
        state: &dyn Session,
        projection: Option<&Vec<usize>>,
        filters: &[Expr],
        limit: Option<usize>,
    ) -> Result<Arc<dyn ExecutionPlan>> {
        self.view.scan(state, projection, filters, limit).await
    }
}

/// Whether a column name is the hidden row key.
pub fn is_rowkey(name: &str) -> bool {
    name == ROWKEY_COLUMN
}
