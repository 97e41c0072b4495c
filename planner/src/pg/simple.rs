//! A scalar function defined by two plain Rust functions: its return type
//! from the argument types, and its value from the arguments as arrays.

use std::sync::Arc;

use datafusion::arrow::array::ArrayRef;
use datafusion::arrow::datatypes::{DataType, Field, FieldRef};
use datafusion::common::ScalarValue;
use datafusion::error::Result;
use datafusion::logical_expr::{
    ColumnarValue, ReturnFieldArgs, ScalarFunctionArgs, ScalarUDF, ScalarUDFImpl, Signature,
    Volatility,
};

pub type ReturnFn = fn(&[DataType]) -> Result<DataType>;
pub type EvalFn = fn(&[ArrayRef], &DataType) -> Result<ArrayRef>;
/// A return type that depends on constant arguments (`extract('epoch', x)`).
pub type ReturnWithScalarsFn = fn(&[DataType], &[Option<&ScalarValue>]) -> Result<DataType>;

#[derive(Debug)]
pub struct SimpleFn {
    name: &'static str,
    signature: Signature,
    ret: ReturnFn,
    ret_scalars: Option<ReturnWithScalarsFn>,
    eval: EvalFn,
    /// The result is `jsonb` (text with the jsonb field marker).
    jsonb: bool,
}

impl PartialEq for SimpleFn {
    fn eq(&self, other: &Self) -> bool {
        self.name == other.name && self.signature == other.signature
    }
}
impl Eq for SimpleFn {}
impl std::hash::Hash for SimpleFn {
    fn hash<H: std::hash::Hasher>(&self, state: &mut H) {
        self.name.hash(state);
    }
}

/// A function taking arguments of any type (the caller's rule or signature
/// decides), immutable unless `volatility` says otherwise.
pub fn udf(name: &'static str, signature: Signature, ret: ReturnFn, eval: EvalFn) -> ScalarUDF {
    ScalarUDF::new_from_impl(SimpleFn {
        name,
        signature,
        ret,
        ret_scalars: None,
        eval,
        jsonb: false,
    })
}

/// A function whose result is `jsonb`.
pub fn udf_jsonb(name: &'static str, signature: Signature, eval: EvalFn) -> ScalarUDF {
    ScalarUDF::new_from_impl(SimpleFn {
        name,
        signature,
        ret: |_| Ok(DataType::Utf8),
        ret_scalars: None,
        eval,
        jsonb: true,
    })
}

/// Like [`udf`], with a return type that may read constant arguments.
pub fn udf_scalars(
    name: &'static str,
    signature: Signature,
    ret: ReturnWithScalarsFn,
    eval: EvalFn,
) -> ScalarUDF {
    ScalarUDF::new_from_impl(SimpleFn {
        name,
        signature,
        ret: |_| datafusion::common::exec_err!("return type needs the arguments"),
        ret_scalars: Some(ret),
        eval,
        jsonb: false,
    })
}

/// Any `n` arguments, immutable.
pub fn any(n: usize) -> Signature {
    Signature::any(n, Volatility::Immutable)
}

impl ScalarUDFImpl for SimpleFn {
    fn name(&self) -> &str {
        self.name
    }
    fn signature(&self) -> &Signature {
        &self.signature
    }
    fn return_type(&self, args: &[DataType]) -> Result<DataType> {
        match self.ret_scalars {
            Some(f) => f(args, &vec![None; args.len()]),
            None => (self.ret)(args),
        }
    }
    fn return_field_from_args(&self, args: ReturnFieldArgs) -> Result<FieldRef> {
        let types: Vec<DataType> = args
            .arg_fields
            .iter()
            .map(|f| f.data_type().clone())
            .collect();
        let t = match self.ret_scalars {
            Some(f) => f(&types, args.scalar_arguments)?,
            None => (self.ret)(&types)?,
        };
        let f = Field::new(self.name, t, true);
        Ok(Arc::new(if self.jsonb {
            f.with_metadata(super::jsonb::jsonb_metadata())
        } else {
            f
        }))
    }
    fn invoke_with_args(&self, args: ScalarFunctionArgs) -> Result<ColumnarValue> {
        let n = args.number_rows;
        let scalar = args
            .args
            .iter()
            .all(|a| matches!(a, ColumnarValue::Scalar(_)));
        let arrays: Vec<ArrayRef> = args
            .args
            .iter()
            .map(|a| a.to_array(if scalar { 1 } else { n }))
            .collect::<Result<_>>()?;
        let ret = args.return_field.data_type().clone();
        let out = (self.eval)(&arrays, &ret)?;
        if scalar {
            Ok(ColumnarValue::Scalar(
                datafusion::common::ScalarValue::try_from_array(&out, 0)?,
            ))
        } else {
            Ok(ColumnarValue::Array(out))
        }
    }
}
