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
use datafusion::datasource::{TableProvider, TableType};
use datafusion::error::{DataFusionError, Result};
use datafusion::logical_expr::{Expr, LogicalPlan, TableScan};
use datafusion::physical_plan::ExecutionPlan;
use freshet_runtime::engine::nullable;
use freshet_runtime::table::ROWKEY_COLUMN;
use freshet_runtime::TableDef;
use freshet_storage::TableId;

/// Whether a relation is a base table or a materialized view.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum RelKind {
    Table,
    View,
}

/// A table or materialized view from the catalog.
#[derive(Debug, Clone)]
pub struct Relation {
    pub kind: RelKind,
    pub id: TableId,
    pub name: String,
    /// Visible columns (all nullable).
    pub schema: SchemaRef,
    /// Primary key column indices (tables only).
    pub pk: Option<Vec<usize>>,
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
            RelKind::View => TableType::View,
        }
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
        }
        Ok(TreeNodeRecursion::Continue)
    });
    out
}

/// The relation behind a `TableScan` source, if it is one of ours.
pub fn relation_of(source: &dyn datafusion::logical_expr::TableSource) -> Option<Arc<Relation>> {
    let d = source.downcast_ref::<datafusion::datasource::DefaultTableSource>()?;
    d.table_provider
        .downcast_ref::<RelationProvider>()
        .map(|p| p.rel.clone())
}

/// Whether a column name is the hidden row key.
pub fn is_rowkey(name: &str) -> bool {
    name == ROWKEY_COLUMN
}
