//! `jsonb_agg(x [ORDER BY ...])` for queries: a jsonb array of the values
//! (NULLs as `null`, jsonb values embedded). Views plan it as their own
//! retractable aggregate (`runtime::operators::agg_values`).

use std::sync::Arc;

use datafusion::arrow::array::{Array, ArrayRef, AsArray};
use datafusion::arrow::datatypes::{DataType, Field, FieldRef};
use datafusion::common::ScalarValue;
use datafusion::error::Result;
use datafusion::logical_expr::function::{AccumulatorArgs, StateFieldsArgs};
use datafusion::logical_expr::{
    Accumulator, AggregateUDF, AggregateUDFImpl, Signature, Volatility,
};
use freshet_runtime::jsontext::push_json;

use super::jsonb::{is_jsonb, jsonb_metadata};

#[derive(Debug, PartialEq, Eq, Hash)]
struct JsonbAgg {
    signature: Signature,
}

pub fn jsonb_agg_udaf() -> AggregateUDF {
    AggregateUDF::new_from_impl(JsonbAgg {
        signature: Signature::any(1, Volatility::Immutable),
    })
}

impl AggregateUDFImpl for JsonbAgg {
    fn name(&self) -> &str {
        "jsonb_agg"
    }
    fn signature(&self) -> &Signature {
        &self.signature
    }
    fn return_type(&self, _args: &[DataType]) -> Result<DataType> {
        Ok(DataType::Utf8)
    }
    fn return_field(&self, _args: &[FieldRef]) -> Result<FieldRef> {
        Ok(Arc::new(
            Field::new("jsonb_agg", DataType::Utf8, true).with_metadata(jsonb_metadata()),
        ))
    }
    /// The values, then each ORDER BY key, as lists.
    fn state_fields(&self, args: StateFieldsArgs) -> Result<Vec<FieldRef>> {
        let mut out = vec![Arc::new(Field::new_list(
            "values",
            Field::new_list_field(args.input_fields[0].data_type().clone(), true),
            true,
        ))];
        for (i, f) in args.ordering_fields.iter().enumerate() {
            out.push(Arc::new(Field::new_list(
                format!("order_{i}"),
                Field::new_list_field(f.data_type().clone(), true),
                true,
            )));
        }
        Ok(out)
    }
    fn accumulator(&self, args: AccumulatorArgs) -> Result<Box<dyn Accumulator>> {
        let order = args
            .order_bys
            .iter()
            .map(|o| Ok((o.expr.data_type(args.schema)?, o.options)))
            .collect::<Result<Vec<_>>>()?;
        Ok(Box::new(Acc {
            rows: Vec::new(),
            jsonb: args.expr_fields.first().is_some_and(|f| is_jsonb(f)),
            ty: args.exprs[0].data_type(args.schema)?,
            order,
        }))
    }
}

#[derive(Debug)]
struct Acc {
    /// Each value with its ORDER BY keys.
    rows: Vec<(ScalarValue, Vec<ScalarValue>)>,
    jsonb: bool,
    ty: DataType,
    order: Vec<(DataType, datafusion::arrow::compute::SortOptions)>,
}

impl Acc {
    fn sorted(&self) -> Vec<&ScalarValue> {
        let mut idx: Vec<usize> = (0..self.rows.len()).collect();
        idx.sort_by(|&a, &b| {
            for (k, (_, o)) in self.order.iter().enumerate() {
                let (x, y) = (&self.rows[a].1[k], &self.rows[b].1[k]);
                let ord = match (x.is_null(), y.is_null()) {
                    (true, true) => std::cmp::Ordering::Equal,
                    (true, false) => {
                        if o.nulls_first {
                            std::cmp::Ordering::Less
                        } else {
                            std::cmp::Ordering::Greater
                        }
                    }
                    (false, true) => {
                        if o.nulls_first {
                            std::cmp::Ordering::Greater
                        } else {
                            std::cmp::Ordering::Less
                        }
                    }
                    (false, false) => {
                        let c = x.partial_cmp(y).unwrap_or(std::cmp::Ordering::Equal);
                        if o.descending {
                            c.reverse()
                        } else {
                            c
                        }
                    }
                };
                if ord != std::cmp::Ordering::Equal {
                    return ord;
                }
            }
            std::cmp::Ordering::Equal
        });
        idx.into_iter().map(|i| &self.rows[i].0).collect()
    }
}

impl Accumulator for Acc {
    /// `values[0]` the argument, then the ORDER BY keys.
    fn update_batch(&mut self, values: &[ArrayRef]) -> Result<()> {
        for i in 0..values[0].len() {
            let v = ScalarValue::try_from_array(values[0].as_ref(), i)?;
            let keys = values[1..]
                .iter()
                .map(|k| ScalarValue::try_from_array(k.as_ref(), i))
                .collect::<Result<Vec<_>>>()?;
            self.rows.push((v, keys));
        }
        Ok(())
    }
    fn evaluate(&mut self) -> Result<ScalarValue> {
        if self.rows.is_empty() {
            return Ok(ScalarValue::Utf8(None));
        }
        let mut t = String::from("[");
        for (i, v) in self.sorted().into_iter().enumerate() {
            if i > 0 {
                t.push_str(", ");
            }
            push_json(v, self.jsonb, &mut t);
        }
        t.push(']');
        Ok(ScalarValue::Utf8(Some(t)))
    }
    fn size(&self) -> usize {
        std::mem::size_of::<Self>()
            + self
                .rows
                .iter()
                .map(|(v, k)| v.size() + k.iter().map(|x| x.size()).sum::<usize>())
                .sum::<usize>()
    }
    fn state(&mut self) -> Result<Vec<ScalarValue>> {
        let values: Vec<ScalarValue> = self.rows.iter().map(|r| r.0.clone()).collect();
        let mut out = vec![ScalarValue::List(ScalarValue::new_list_nullable(
            &values, &self.ty,
        ))];
        for (k, (t, _)) in self.order.iter().enumerate() {
            let keys: Vec<ScalarValue> = self.rows.iter().map(|r| r.1[k].clone()).collect();
            out.push(ScalarValue::List(ScalarValue::new_list_nullable(&keys, t)));
        }
        Ok(out)
    }
    fn merge_batch(&mut self, states: &[ArrayRef]) -> Result<()> {
        let lists = states[0].as_list::<i32>();
        let keys: Vec<_> = states[1..].iter().map(|s| s.as_list::<i32>()).collect();
        for i in 0..lists.len() {
            if lists.is_valid(i) {
                let v = lists.value(i);
                let ks: Vec<ArrayRef> = keys.iter().map(|k| k.value(i)).collect();
                for j in 0..v.len() {
                    let row_keys = ks
                        .iter()
                        .map(|k| ScalarValue::try_from_array(k.as_ref(), j))
                        .collect::<Result<Vec<_>>>()?;
                    self.rows
                        .push((ScalarValue::try_from_array(v.as_ref(), j)?, row_keys));
                }
            }
        }
        Ok(())
    }
}
