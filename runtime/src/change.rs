//! Change batches: the one data type that flows between operators.
//!
//! A [`ChangeBatch`] is an Arrow `RecordBatch` of row columns plus a parallel
//! array of signed weights (the Z-set model of DBSP and Materialize).
//!
//! Invariants:
//! - `weights.len() == data.num_rows()` and no weight is NULL;
//! - a weight of `+n` means n copies of the row are inserted, `-n` that n
//!   copies are deleted; an update is a `-1` of the old row and a `+1` of the
//!   new one, in the same or in different batches;
//! - weights may be zero (a no-op row) and rows need not be consolidated:
//!   consumers must be linear in the weights, so `+1, -1` of the same row
//!   within an epoch has no effect on any view;
//! - the row columns are plain Arrow, so DataFusion `PhysicalExpr`s evaluate
//!   on `data` unchanged.

use std::sync::Arc;

use datafusion::arrow::array::{Array, ArrayRef, BooleanArray, Int64Array, RecordBatch};
use datafusion::arrow::compute::{concat_batches, filter, filter_record_batch};
use datafusion::arrow::datatypes::SchemaRef;

use crate::error::Result;

/// A batch of weighted row changes. See the module docs for the invariants.
#[derive(Debug, Clone)]
pub struct ChangeBatch {
    pub data: RecordBatch,
    pub weights: Int64Array,
}

impl ChangeBatch {
    pub fn new(data: RecordBatch, weights: Int64Array) -> Self {
        assert_eq!(data.num_rows(), weights.len(), "one weight per row");
        ChangeBatch { data, weights }
    }

    /// Every row of `data` inserted once.
    pub fn inserts(data: RecordBatch) -> Self {
        let w = Int64Array::from(vec![1i64; data.num_rows()]);
        Self::new(data, w)
    }

    /// Every row of `data` deleted once.
    pub fn deletes(data: RecordBatch) -> Self {
        let w = Int64Array::from(vec![-1i64; data.num_rows()]);
        Self::new(data, w)
    }

    /// The same rows with weights multiplied by `w` each.
    pub fn with_weights(data: RecordBatch, weights: Vec<i64>) -> Self {
        Self::new(data, Int64Array::from(weights))
    }

    /// A batch of `schema` from columns and one weight per row (also for
    /// schemas without columns).
    pub fn from_columns(schema: SchemaRef, cols: Vec<ArrayRef>, weights: Vec<i64>) -> Result<Self> {
        let data = RecordBatch::try_new_with_options(
            schema,
            cols,
            &datafusion::arrow::array::RecordBatchOptions::new()
                .with_row_count(Some(weights.len())),
        )?;
        Ok(Self::with_weights(data, weights))
    }

    pub fn num_rows(&self) -> usize {
        self.data.num_rows()
    }

    pub fn is_empty(&self) -> bool {
        self.data.num_rows() == 0
    }

    pub fn schema(&self) -> SchemaRef {
        self.data.schema()
    }

    pub fn columns(&self) -> &[ArrayRef] {
        self.data.columns()
    }

    /// Keeps the rows where `mask` is true (NULL counts as false).
    pub fn filter(&self, mask: &BooleanArray) -> Result<Self> {
        let data = filter_record_batch(&self.data, mask)?;
        let w = filter(&self.weights, mask)?;
        let weights = w
            .as_any()
            .downcast_ref::<Int64Array>()
            .cloned()
            .unwrap_or_else(|| Int64Array::from(Vec::<i64>::new()));
        Ok(Self::new(data, weights))
    }

    /// Concatenates batches of one schema.
    pub fn concat(schema: &SchemaRef, batches: &[ChangeBatch]) -> Result<Self> {
        let data = concat_batches(schema, batches.iter().map(|b| &b.data))?;
        let weights: Vec<i64> = batches
            .iter()
            .flat_map(|b| b.weights.values().iter().copied())
            .collect();
        Ok(Self::new(data, Int64Array::from(weights)))
    }

    /// Parses a pretty-printed batch, for tests. The first line names column
    /// types (`I` int64, `F` float64, `T` text); each further line is a sign
    /// (`+`/`-`, optionally followed by a count) and the values; `.` is NULL.
    ///
    /// ```text
    /// I T
    /// + 1 a
    /// -2 3 .
    /// ```
    pub fn from_pretty(text: &str) -> Self {
        use datafusion::arrow::array::{Float64Array, StringArray};
        use datafusion::arrow::datatypes::{DataType, Field, Schema};
        let mut lines = text.lines().map(str::trim).filter(|l| !l.is_empty());
        let header: Vec<&str> = lines
            .next()
            .expect("type header")
            .split_whitespace()
            .collect();
        let mut weights = Vec::new();
        let mut cells: Vec<Vec<Option<String>>> = vec![Vec::new(); header.len()];
        for line in lines {
            let mut parts = line.split_whitespace();
            let sign = parts.next().expect("sign");
            let (s, n) = sign.split_at(1);
            let n: i64 = if n.is_empty() {
                1
            } else {
                n.parse().expect("count")
            };
            weights.push(if s == "-" { -n } else { n });
            for (i, v) in parts.enumerate() {
                cells[i].push(if v == "." { None } else { Some(v.to_string()) });
            }
        }
        let mut fields = Vec::new();
        let mut cols: Vec<ArrayRef> = Vec::new();
        for (i, t) in header.iter().enumerate() {
            let name = format!("c{i}");
            match *t {
                "I" => {
                    fields.push(Field::new(name, DataType::Int64, true));
                    cols.push(Arc::new(Int64Array::from(
                        cells[i]
                            .iter()
                            .map(|v| v.as_ref().map(|v| v.parse::<i64>().expect("int")))
                            .collect::<Vec<_>>(),
                    )));
                }
                "F" => {
                    fields.push(Field::new(name, DataType::Float64, true));
                    cols.push(Arc::new(Float64Array::from(
                        cells[i]
                            .iter()
                            .map(|v| v.as_ref().map(|v| v.parse::<f64>().expect("float")))
                            .collect::<Vec<_>>(),
                    )));
                }
                _ => {
                    fields.push(Field::new(name, DataType::Utf8, true));
                    cols.push(Arc::new(StringArray::from(cells[i].clone())));
                }
            }
        }
        let data = RecordBatch::try_new(Arc::new(Schema::new(fields)), cols).expect("valid batch");
        Self::with_weights(data, weights)
    }

    /// Pretty form used by tests: one `weight | values` line per row, sorted.
    pub fn to_pretty_lines(&self) -> Vec<String> {
        use datafusion::arrow::util::display::{ArrayFormatter, FormatOptions};
        let opts = FormatOptions::default().with_null(".");
        let fmts: Vec<ArrayFormatter> = self
            .data
            .columns()
            .iter()
            .map(|c| ArrayFormatter::try_new(c.as_ref(), &opts).expect("formatter"))
            .collect();
        let mut out: Vec<String> = (0..self.num_rows())
            .map(|r| {
                let vals: Vec<String> = fmts.iter().map(|f| f.value(r).to_string()).collect();
                format!("{:+} {}", self.weights.value(r), vals.join(" "))
            })
            .collect();
        out.sort();
        out
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn pretty_roundtrip_and_filter() {
        let b = ChangeBatch::from_pretty("I T\n+ 1 a\n-2 2 .\n+ 3 c");
        assert_eq!(b.to_pretty_lines(), vec!["+1 1 a", "+1 3 c", "-2 2 ."]);
        let f = b
            .filter(&BooleanArray::from(vec![true, true, false]))
            .unwrap();
        assert_eq!(f.to_pretty_lines(), vec!["+1 1 a", "-2 2 ."]);
    }
}
