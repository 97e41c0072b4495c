//! PostgreSQL catalog functions clients call that `datafusion-pg-catalog`
//! lacks: visibility checks, sizes, `obj_description`, `col_description`
//! and `pg_get_viewdef`, answered from Freshet's objects.

use std::collections::HashMap;
use std::sync::{Arc, RwLock};

use datafusion::arrow::array::{Array, ArrayRef, BooleanArray, Int64Array, StringArray};
use datafusion::arrow::compute::cast;
use datafusion::arrow::datatypes::DataType;
use datafusion::error::Result;
use datafusion::execution::context::SessionContext;
use datafusion::logical_expr::{
    ColumnarValue, ScalarFunctionArgs, ScalarUDF, ScalarUDFImpl, Signature, Volatility,
};

use crate::pgcatalog::Object;

/// What the functions know: objects by OID (as `pg_class` numbered them).
#[derive(Debug, Clone, Default)]
pub struct OidIndex(pub Arc<RwLock<HashMap<i64, Object>>>);

impl OidIndex {
    fn get(&self, oid: i64) -> Option<Object> {
        match self.0.read() {
            Ok(m) => m.get(&oid).cloned(),
            Err(p) => p.into_inner().get(&oid).cloned(),
        }
    }

    pub fn set(&self, entries: HashMap<i64, Object>) {
        match self.0.write() {
            Ok(mut m) => *m = entries,
            Err(p) => *p.into_inner() = entries,
        }
    }
}

type Body = dyn Fn(&[ArrayRef], usize) -> Result<ArrayRef> + Send + Sync;

/// A function of any arguments, computed row by row from arrays.
struct PgFn {
    name: &'static str,
    ret: DataType,
    signature: Signature,
    body: Arc<Body>,
}

impl std::fmt::Debug for PgFn {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "PgFn({})", self.name)
    }
}

impl PartialEq for PgFn {
    fn eq(&self, other: &Self) -> bool {
        self.name == other.name
    }
}

impl Eq for PgFn {}

impl std::hash::Hash for PgFn {
    fn hash<H: std::hash::Hasher>(&self, state: &mut H) {
        self.name.hash(state)
    }
}

impl ScalarUDFImpl for PgFn {
    fn name(&self) -> &str {
        self.name
    }

    fn signature(&self) -> &Signature {
        &self.signature
    }

    fn return_type(&self, _arg_types: &[DataType]) -> Result<DataType> {
        Ok(self.ret.clone())
    }

    fn invoke_with_args(&self, args: ScalarFunctionArgs) -> Result<ColumnarValue> {
        let n = args.number_rows;
        let arrays = ColumnarValue::values_to_arrays(&args.args)?;
        Ok(ColumnarValue::Array((self.body)(&arrays, n)?))
    }
}

fn udf(name: &'static str, ret: DataType, body: Arc<Body>) -> ScalarUDF {
    ScalarUDF::new_from_impl(PgFn {
        name,
        ret,
        signature: Signature::variadic_any(Volatility::Stable),
        body,
    })
}

/// Argument `i` as i64 values (OIDs, sizes, column numbers).
fn ints(args: &[ArrayRef], i: usize, n: usize) -> Result<Vec<Option<i64>>> {
    let Some(a) = args.get(i) else {
        return Ok(vec![None; n]);
    };
    let a = cast(a, &DataType::Int64)?;
    let a = a
        .as_any()
        .downcast_ref::<Int64Array>()
        .ok_or_else(|| datafusion::error::DataFusionError::Internal("int cast".into()))?;
    Ok((0..n)
        .map(|r| (r < a.len() && a.is_valid(r)).then(|| a.value(r)))
        .collect())
}

/// `pg_size_pretty` of a byte count, as PostgreSQL prints it.
fn size_pretty(b: i64) -> String {
    let units = ["bytes", "kB", "MB", "GB", "TB", "PB"];
    let mut v = b as f64;
    let mut u = 0;
    while v.abs() >= 10.0 * 1024.0 && u + 1 < units.len() {
        v /= 1024.0;
        u += 1;
    }
    format!("{} {}", v.round() as i64, units[u])
}

/// Registers the functions in `ctx`.
pub fn register(ctx: &SessionContext, index: &OidIndex) {
    for name in [
        "pg_function_is_visible",
        "pg_type_is_visible",
        "pg_collation_is_visible",
        "pg_opclass_is_visible",
        "pg_operator_is_visible",
        "pg_conversion_is_visible",
        "pg_statistics_obj_is_visible",
        "pg_ts_config_is_visible",
    ] {
        ctx.register_udf(udf(
            name,
            DataType::Boolean,
            Arc::new(|_args, n| Ok(Arc::new(BooleanArray::from(vec![true; n])) as ArrayRef)),
        ));
    }
    for name in ["pg_table_size", "pg_indexes_size"] {
        ctx.register_udf(udf(
            name,
            DataType::Int64,
            Arc::new(|_args, n| Ok(Arc::new(Int64Array::from(vec![0i64; n])) as ArrayRef)),
        ));
    }
    ctx.register_udf(udf(
        "pg_size_pretty",
        DataType::Utf8,
        Arc::new(|args, n| {
            let v = ints(args, 0, n)?;
            Ok(Arc::new(StringArray::from_iter(
                v.into_iter().map(|b| b.map(size_pretty)),
            )) as ArrayRef)
        }),
    ));
    for name in [
        "pg_get_function_result",
        "pg_get_function_arguments",
        "pg_get_function_identity_arguments",
    ] {
        ctx.register_udf(udf(
            name,
            DataType::Utf8,
            Arc::new(|_args, n| Ok(Arc::new(StringArray::from(vec![""; n])) as ArrayRef)),
        ));
    }
    ctx.register_udf(udf(
        "pg_get_serial_sequence",
        DataType::Utf8,
        Arc::new(|_args, n| Ok(Arc::new(StringArray::from(vec![None::<&str>; n])) as ArrayRef)),
    ));
    ctx.register_udf(udf(
        "shobj_description",
        DataType::Utf8,
        Arc::new(|_args, n| Ok(Arc::new(StringArray::from(vec![None::<&str>; n])) as ArrayRef)),
    ));
    let comment = |index: OidIndex, column: bool| -> Arc<Body> {
        Arc::new(move |args, n| {
            let oids = ints(args, 0, n)?;
            let subs = if column {
                ints(args, 1, n)?
            } else {
                vec![Some(0); n]
            };
            let out: StringArray = oids
                .into_iter()
                .zip(subs)
                .map(|(oid, sub)| {
                    let (oid, sub) = (oid?, sub?);
                    let o = index.get(oid)?;
                    o.comments
                        .iter()
                        .find(|(s, _)| i64::from(*s) == sub)
                        .map(|(_, t)| t.clone())
                })
                .collect();
            Ok(Arc::new(out) as ArrayRef)
        })
    };
    ctx.register_udf(udf(
        "obj_description",
        DataType::Utf8,
        comment(index.clone(), false),
    ));
    ctx.register_udf(udf(
        "col_description",
        DataType::Utf8,
        comment(index.clone(), true),
    ));
    let idx = index.clone();
    ctx.register_udf(udf(
        "pg_get_viewdef",
        DataType::Utf8,
        Arc::new(move |args, n| {
            let oids = ints(args, 0, n)?;
            let out: StringArray = oids
                .into_iter()
                .map(|oid| idx.get(oid?).and_then(|o| o.definition))
                .collect();
            Ok(Arc::new(out) as ArrayRef)
        }),
    ));
}

#[cfg(test)]
mod tests {
    use super::size_pretty;

    #[test]
    fn sizes_print_like_postgres() {
        assert_eq!(size_pretty(0), "0 bytes");
        assert_eq!(size_pretty(10239), "10239 bytes");
        assert_eq!(size_pretty(10240), "10 kB");
        assert_eq!(size_pretty(5 * 1024 * 1024 * 1024), "5120 MB");
    }
}
