//! Projection: computes output columns with `PhysicalExpr`s; weights pass through.

use std::sync::Arc;

use datafusion::arrow::array::RecordBatch;
use datafusion::arrow::compute::cast;
use datafusion::arrow::datatypes::SchemaRef;
use datafusion::physical_expr::PhysicalExpr;

use super::expr::eval;
use super::{EpochCtx, Operator};
use crate::change::ChangeBatch;
use crate::error::Result;

pub struct ProjectOperator {
    exprs: Vec<Arc<dyn PhysicalExpr>>,
    schema: SchemaRef,
}

impl ProjectOperator {
    pub fn new(exprs: Vec<Arc<dyn PhysicalExpr>>, schema: SchemaRef) -> Self {
        ProjectOperator { exprs, schema }
    }

    /// The pure part: project one batch.
    pub fn project(&self, batch: &ChangeBatch) -> Result<ChangeBatch> {
        let cols = self
            .exprs
            .iter()
            .zip(self.schema.fields())
            .map(|(e, f)| {
                let a = eval(e, &batch.data)?;
                Ok(if a.data_type() != f.data_type() {
                    cast(&a, f.data_type())?
                } else {
                    a
                })
            })
            .collect::<Result<Vec<_>>>()?;
        let opts = datafusion::arrow::array::RecordBatchOptions::new()
            .with_row_count(Some(batch.num_rows()));
        let data = RecordBatch::try_new_with_options(self.schema.clone(), cols, &opts)?;
        Ok(ChangeBatch::new(data, batch.weights.clone()))
    }
}

impl Operator for ProjectOperator {
    fn process(
        &mut self,
        _input: usize,
        batch: ChangeBatch,
        _ctx: &mut EpochCtx<'_>,
    ) -> Result<Vec<ChangeBatch>> {
        Ok(vec![self.project(&batch)?])
    }
}
