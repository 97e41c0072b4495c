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
    /// (input column, output column): the output is a non-decreasing
    /// function of that input column alone, so its watermark follows.
    watermarks: Vec<(usize, usize)>,
    input_schema: Option<SchemaRef>,
}

impl ProjectOperator {
    pub fn new(exprs: Vec<Arc<dyn PhysicalExpr>>, schema: SchemaRef) -> Self {
        ProjectOperator {
            exprs,
            schema,
            watermarks: Vec::new(),
            input_schema: None,
        }
    }

    /// Forwards watermarks through the monotone outputs `watermarks`.
    pub fn with_watermarks(mut self, watermarks: Vec<(usize, usize)>, input: SchemaRef) -> Self {
        self.watermarks = watermarks;
        self.input_schema = Some(input);
        self
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

    fn on_watermark(
        &mut self,
        _input: usize,
        wm: crate::time::Watermark,
        _ctx: &mut EpochCtx<'_>,
    ) -> Result<super::WatermarkOut> {
        let mut out = Vec::new();
        let Some(input) = &self.input_schema else {
            return Ok((Vec::new(), out));
        };
        for &(i, o) in &self.watermarks {
            if i != wm.col {
                continue;
            }
            let v = eval_at(&self.exprs[o], input, i, &wm.value)?;
            let v = v.cast_to(self.schema.field(o).data_type())?;
            if !v.is_null() {
                out.push(crate::time::Watermark { col: o, value: v });
            }
        }
        Ok((Vec::new(), out))
    }
}

/// `expr` evaluated on a one-row batch of `schema` whose column `col` is
/// `value` (and every other column NULL): the image of a watermark under a
/// monotone expression of that column.
pub fn eval_at(
    expr: &Arc<dyn PhysicalExpr>,
    schema: &SchemaRef,
    col: usize,
    value: &datafusion::common::ScalarValue,
) -> Result<datafusion::common::ScalarValue> {
    let cols = schema
        .fields()
        .iter()
        .enumerate()
        .map(|(j, f)| {
            if j == col {
                value.cast_to(f.data_type())?.to_array_of_size(1)
            } else {
                Ok(datafusion::arrow::array::new_null_array(f.data_type(), 1))
            }
        })
        .collect::<std::result::Result<Vec<_>, _>>()?;
    let batch = RecordBatch::try_new(schema.clone(), cols)?;
    let a = eval(expr, &batch)?;
    Ok(datafusion::common::ScalarValue::try_from_array(&a, 0)?)
}
