//! PostgreSQL's `avg`: a `numeric` for integer and numeric input, with at
//! least 16 fractional digits (`avg(bigint)` of 6221 and 6222 is
//! `6221.5000000000000000`), exact and rounded half away from zero; a
//! `double precision` for float input. Registered under DataFusion's name,
//! so views (which plan `avg` as their own retractable aggregate, with this
//! return type) and ad-hoc queries agree.

use std::sync::Arc;

use datafusion::arrow::array::{Array, ArrayRef, AsArray};
use datafusion::arrow::compute::cast;
use datafusion::arrow::datatypes::{
    DataType, Decimal128Type, Field, FieldRef, Float64Type, Int64Type,
};
use datafusion::common::{exec_err, plan_err, ScalarValue};
use datafusion::error::Result;
use datafusion::logical_expr::function::{AccumulatorArgs, StateFieldsArgs};
use datafusion::logical_expr::{
    Accumulator, AggregateUDF, AggregateUDFImpl, Signature, Volatility,
};

use freshet_runtime::numeric::exact_avg;

use super::arith::div_scale;

#[derive(Debug, PartialEq, Eq, Hash)]
struct PgAvg {
    signature: Signature,
    aliases: Vec<String>,
}

pub fn avg_udaf() -> AggregateUDF {
    AggregateUDF::new_from_impl(PgAvg {
        signature: Signature::user_defined(Volatility::Immutable),
        aliases: vec!["mean".into()],
    })
}

/// The scale of the sum an average keeps and the scale it shows.
fn scales(t: &DataType) -> Option<(i8, i8)> {
    match t {
        DataType::Int64 => Some((0, 16)),
        DataType::Decimal128(_, s) => Some((*s, div_scale(*s, 0))),
        _ => None,
    }
}

impl AggregateUDFImpl for PgAvg {
    fn name(&self) -> &str {
        "avg"
    }
    fn aliases(&self) -> &[String] {
        &self.aliases
    }
    fn signature(&self) -> &Signature {
        &self.signature
    }
    fn coerce_types(&self, args: &[DataType]) -> Result<Vec<DataType>> {
        let [t] = args else {
            return plan_err!("avg takes one argument");
        };
        Ok(vec![match t {
            t if t.is_integer() => DataType::Int64,
            DataType::Null => DataType::Int64,
            DataType::Decimal128(_, _) => t.clone(),
            DataType::Decimal256(_, s) => DataType::Decimal128(38, *s),
            t if t.is_floating() => DataType::Float64,
            other => return plan_err!("function avg({other}) does not exist"),
        }])
    }
    fn return_type(&self, args: &[DataType]) -> Result<DataType> {
        match args.first() {
            Some(DataType::Float64) => Ok(DataType::Float64),
            Some(t) => match scales(t) {
                Some((_, out)) => Ok(DataType::Decimal128(38, out)),
                None => plan_err!("function avg({t}) does not exist"),
            },
            None => plan_err!("avg takes one argument"),
        }
    }
    fn state_fields(&self, args: StateFieldsArgs) -> Result<Vec<FieldRef>> {
        let t = args.input_fields[0].data_type();
        let sum = match scales(t) {
            Some((s, _)) => DataType::Decimal128(38, s),
            None => DataType::Float64,
        };
        if args.is_distinct {
            return Ok(vec![Arc::new(Field::new_list(
                "values",
                Field::new_list_field(sum, true),
                true,
            ))]);
        }
        Ok(vec![
            Arc::new(Field::new("sum", sum, true)),
            Arc::new(Field::new("count", DataType::Int64, true)),
        ])
    }
    fn accumulator(&self, args: AccumulatorArgs) -> Result<Box<dyn Accumulator>> {
        let t = args.exprs[0].data_type(args.schema)?;
        if args.is_distinct {
            return Ok(Box::new(DistinctAvg {
                scales: scales(&t),
                exact: std::collections::BTreeSet::new(),
                floats: std::collections::BTreeSet::new(),
            }));
        }
        Ok(Box::new(match scales(&t) {
            Some((s, out)) => AvgAcc::Exact {
                sum: 0,
                n: 0,
                scale: s,
                out,
            },
            None => AvgAcc::Float { sum: 0.0, n: 0 },
        }))
    }
}

#[derive(Debug)]
enum AvgAcc {
    Exact {
        sum: i128,
        n: i64,
        scale: i8,
        out: i8,
    },
    Float {
        sum: f64,
        n: i64,
    },
}

impl AvgAcc {
    fn add(&mut self, values: &ArrayRef, sign: i64) -> Result<()> {
        match self {
            AvgAcc::Exact { sum, n, scale, .. } => {
                let v = cast(values, &DataType::Decimal128(38, *scale))?;
                for x in v.as_primitive::<Decimal128Type>().iter().flatten() {
                    *sum += x * i128::from(sign);
                    *n += sign;
                }
            }
            AvgAcc::Float { sum, n } => {
                let v = cast(values, &DataType::Float64)?;
                for x in v.as_primitive::<Float64Type>().iter().flatten() {
                    *sum += x * sign as f64;
                    *n += sign;
                }
            }
        }
        Ok(())
    }
}

impl Accumulator for AvgAcc {
    fn update_batch(&mut self, values: &[ArrayRef]) -> Result<()> {
        self.add(&values[0], 1)
    }
    fn retract_batch(&mut self, values: &[ArrayRef]) -> Result<()> {
        self.add(&values[0], -1)
    }
    fn supports_retract_batch(&self) -> bool {
        true
    }
    fn evaluate(&mut self) -> Result<ScalarValue> {
        match self {
            AvgAcc::Exact { n: 0, out, .. } => Ok(ScalarValue::Decimal128(None, 38, *out)),
            AvgAcc::Exact { sum, n, scale, out } => {
                match exact_avg(*sum, *n, (*out - *scale).max(0) as u32) {
                    Some(v) => Ok(ScalarValue::Decimal128(Some(v), 38, *out)),
                    None => exec_err!("numeric field overflow"),
                }
            }
            AvgAcc::Float { n: 0, .. } => Ok(ScalarValue::Float64(None)),
            AvgAcc::Float { sum, n } => Ok(ScalarValue::Float64(Some(*sum / *n as f64))),
        }
    }
    fn size(&self) -> usize {
        std::mem::size_of::<Self>()
    }
    fn state(&mut self) -> Result<Vec<ScalarValue>> {
        Ok(match self {
            AvgAcc::Exact { sum, n, scale, .. } => vec![
                ScalarValue::Decimal128(Some(*sum), 38, *scale),
                ScalarValue::Int64(Some(*n)),
            ],
            AvgAcc::Float { sum, n } => vec![
                ScalarValue::Float64(Some(*sum)),
                ScalarValue::Int64(Some(*n)),
            ],
        })
    }
    fn merge_batch(&mut self, states: &[ArrayRef]) -> Result<()> {
        let counts = cast(&states[1], &DataType::Int64)?;
        let counts = counts.as_primitive::<Int64Type>();
        match self {
            AvgAcc::Exact { sum, n, .. } => {
                let sums = states[0].as_primitive::<Decimal128Type>();
                for i in 0..sums.len() {
                    if sums.is_valid(i) {
                        *sum += sums.value(i);
                    }
                    *n += counts.value(i);
                }
            }
            AvgAcc::Float { sum, n } => {
                let sums = states[0].as_primitive::<Float64Type>();
                for i in 0..sums.len() {
                    if sums.is_valid(i) {
                        *sum += sums.value(i);
                    }
                    *n += counts.value(i);
                }
            }
        }
        Ok(())
    }
}

/// `avg(DISTINCT x)`: the set of values seen.
#[derive(Debug)]
struct DistinctAvg {
    scales: Option<(i8, i8)>,
    exact: std::collections::BTreeSet<i128>,
    /// Float values by their bits (distinct as PostgreSQL compares them
    /// closely enough: -0 and 0 differ here).
    floats: std::collections::BTreeSet<u64>,
}

impl DistinctAvg {
    fn add(&mut self, values: &ArrayRef) -> Result<()> {
        match self.scales {
            Some((s, _)) => {
                let v = cast(values, &DataType::Decimal128(38, s))?;
                self.exact
                    .extend(v.as_primitive::<Decimal128Type>().iter().flatten());
            }
            None => {
                let v = cast(values, &DataType::Float64)?;
                self.floats.extend(
                    v.as_primitive::<Float64Type>()
                        .iter()
                        .flatten()
                        .map(f64::to_bits),
                );
            }
        }
        Ok(())
    }
}

impl Accumulator for DistinctAvg {
    fn update_batch(&mut self, values: &[ArrayRef]) -> Result<()> {
        self.add(&values[0])
    }
    fn evaluate(&mut self) -> Result<ScalarValue> {
        match self.scales {
            Some((s, out)) => {
                if self.exact.is_empty() {
                    return Ok(ScalarValue::Decimal128(None, 38, out));
                }
                let sum: i128 = self.exact.iter().sum();
                match exact_avg(sum, self.exact.len() as i64, (out - s).max(0) as u32) {
                    Some(v) => Ok(ScalarValue::Decimal128(Some(v), 38, out)),
                    None => exec_err!("numeric field overflow"),
                }
            }
            None if self.floats.is_empty() => Ok(ScalarValue::Float64(None)),
            None => {
                let sum: f64 = self.floats.iter().map(|b| f64::from_bits(*b)).sum();
                Ok(ScalarValue::Float64(Some(sum / self.floats.len() as f64)))
            }
        }
    }
    fn size(&self) -> usize {
        std::mem::size_of::<Self>() + self.exact.len() * 16 + self.floats.len() * 8
    }
    fn state(&mut self) -> Result<Vec<ScalarValue>> {
        let (values, t): (Vec<ScalarValue>, DataType) = match self.scales {
            Some((s, _)) => (
                self.exact
                    .iter()
                    .map(|v| ScalarValue::Decimal128(Some(*v), 38, s))
                    .collect(),
                DataType::Decimal128(38, s),
            ),
            None => (
                self.floats
                    .iter()
                    .map(|b| ScalarValue::Float64(Some(f64::from_bits(*b))))
                    .collect(),
                DataType::Float64,
            ),
        };
        Ok(vec![ScalarValue::List(ScalarValue::new_list_nullable(
            &values, &t,
        ))])
    }
    fn merge_batch(&mut self, states: &[ArrayRef]) -> Result<()> {
        let lists = states[0].as_list::<i32>();
        for i in 0..lists.len() {
            if lists.is_valid(i) {
                self.add(&lists.value(i))?;
            }
        }
        Ok(())
    }
}
