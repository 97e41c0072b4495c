//! Filter: keeps rows whose predicate is true; weights ride along.

use std::sync::Arc;

use datafusion::arrow::array::{Array, BooleanArray};
use datafusion::arrow::compute::cast;
use datafusion::arrow::datatypes::DataType;
use datafusion::physical_expr::PhysicalExpr;

use super::expr::eval;
use super::{EpochCtx, Operator};
use crate::change::ChangeBatch;
use crate::error::{Result, RuntimeError};

pub struct FilterOperator {
    predicate: Arc<dyn PhysicalExpr>,
}

impl FilterOperator {
    pub fn new(predicate: Arc<dyn PhysicalExpr>) -> Self {
        FilterOperator { predicate }
    }

    /// The pure part: filter one batch.
    pub fn filter(&self, batch: &ChangeBatch) -> Result<ChangeBatch> {
        let mask = eval(&self.predicate, &batch.data)?;
        let mask = if mask.data_type() != &DataType::Boolean {
            cast(&mask, &DataType::Boolean)?
        } else {
            mask
        };
        let mask = mask
            .as_any()
            .downcast_ref::<BooleanArray>()
            .ok_or_else(|| RuntimeError::Internal("filter predicate is not boolean".into()))?;
        batch.filter(mask)
    }
}

impl Operator for FilterOperator {
    fn process(
        &mut self,
        _input: usize,
        batch: ChangeBatch,
        _ctx: &mut EpochCtx<'_>,
    ) -> Result<Vec<ChangeBatch>> {
        let out = self.filter(&batch)?;
        Ok(if out.is_empty() { vec![] } else { vec![out] })
    }

    fn on_watermark(
        &mut self,
        _input: usize,
        wm: crate::time::Watermark,
        _ctx: &mut EpochCtx<'_>,
    ) -> Result<super::WatermarkOut> {
        Ok((Vec::new(), vec![wm]))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use datafusion::logical_expr::Operator as Op;
    use datafusion::physical_expr::expressions::{binary, col, lit};

    #[test]
    fn keeps_matching_rows_with_their_weights() {
        let b = ChangeBatch::from_pretty("I T\n+ 1 a\n- 5 b\n+3 7 c\n+ . d");
        let schema = b.schema();
        let pred = binary(col("c0", &schema).unwrap(), Op::Gt, lit(2i64), &schema).unwrap();
        let out = FilterOperator::new(pred).filter(&b).unwrap();
        assert_eq!(out.to_pretty_lines(), vec!["+3 7 c", "-1 5 b"]);
    }
}
