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
    /// The OID of a relation named `name` (`[schema.]name`, quoted or not).
    fn oid_of(&self, name: &str) -> Option<i64> {
        let name = name.trim();
        let (schema, rel) = match name.rsplit_once('.') {
            Some((s, r)) => (Some(s.trim_matches('"')), r),
            None => (None, name),
        };
        let rel = if rel.starts_with('"') {
            rel.trim_matches('"').replace("\"\"", "\"")
        } else {
            rel.to_ascii_lowercase()
        };
        if schema.is_none_or(|s| s.eq_ignore_ascii_case("pg_catalog")) {
            if let Some((_, oid)) = crate::dialect::SYSTEM_CATALOG_OIDS
                .iter()
                .find(|(n, _)| *n == rel)
            {
                return Some(i64::from(*oid));
            }
        }
        if schema.is_some_and(|s| s != crate::pgcatalog::SCHEMA) {
            return None;
        }
        let map = match self.0.read() {
            Ok(m) => m,
            Err(p) => p.into_inner(),
        };
        map.iter().find(|(_, o)| o.name == rel).map(|(oid, _)| *oid)
    }

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

/// SQL `LIKE` with an escape character: `%` any run, `_` any one character.
fn like_match(value: &str, pattern: &str, escape: Option<char>) -> bool {
    enum Tok {
        Lit(char),
        One,
        Many,
    }
    let mut toks = Vec::new();
    let mut it = pattern.chars();
    while let Some(c) = it.next() {
        if Some(c) == escape {
            if let Some(n) = it.next() {
                toks.push(Tok::Lit(n));
            }
        } else if c == '%' {
            toks.push(Tok::Many);
        } else if c == '_' {
            toks.push(Tok::One);
        } else {
            toks.push(Tok::Lit(c));
        }
    }
    let v: Vec<char> = value.chars().collect();
    // reach[j]: the first j value characters can be matched so far.
    let mut reach = vec![false; v.len() + 1];
    reach[0] = true;
    for t in &toks {
        let mut next = vec![false; v.len() + 1];
        for j in 0..=v.len() {
            if !reach[j] {
                continue;
            }
            match t {
                Tok::Many => {
                    for k in next.iter_mut().skip(j) {
                        *k = true;
                    }
                    break;
                }
                Tok::One => {
                    if j < v.len() {
                        next[j + 1] = true;
                    }
                }
                Tok::Lit(c) => {
                    if j < v.len() && v[j] == *c {
                        next[j + 1] = true;
                    }
                }
            }
        }
        reach = next;
    }
    reach[v.len()]
}

/// The OID of a built-in type by name (`to_regtype`); `None` when unknown.
fn type_oid(name: &str) -> Option<i32> {
    let n = name.trim().to_ascii_lowercase();
    let n = n.strip_prefix("pg_catalog.").unwrap_or(&n);
    Some(match n {
        "bool" | "boolean" => 16,
        "bytea" => 17,
        "char" | "\"char\"" => 18,
        "name" => 19,
        "int8" | "bigint" => 20,
        "int2" | "smallint" => 21,
        "int4" | "integer" | "int" => 23,
        "regproc" => 24,
        "text" => 25,
        "oid" => 26,
        "json" => 114,
        "xml" => 142,
        "float4" | "real" => 700,
        "float8" | "double precision" => 701,
        "bpchar" | "character" => 1042,
        "varchar" | "character varying" => 1043,
        "date" => 1082,
        "time" | "time without time zone" => 1083,
        "timestamp" | "timestamp without time zone" => 1114,
        "timestamptz" | "timestamp with time zone" => 1184,
        "interval" => 1186,
        "timetz" | "time with time zone" => 1266,
        "numeric" | "decimal" => 1700,
        "regclass" => 2205,
        "regtype" => 2206,
        "uuid" => 2950,
        "jsonb" => 3802,
        "int2[]" | "_int2" => 1005,
        "int4[]" | "_int4" => 1007,
        "text[]" | "_text" => 1009,
        "int8[]" | "_int8" => 1016,
        "float8[]" | "_float8" => 1022,
        _ => return None,
    })
}

/// Row `r` of `a` as a JSON value.
fn json_value(a: &ArrayRef, r: usize) -> Result<String> {
    use datafusion::common::ScalarValue;
    if a.is_null(r) {
        return Ok("null".into());
    }
    let v = ScalarValue::try_from_array(a.as_ref(), r)?;
    Ok(match v {
        ScalarValue::Boolean(Some(b)) => b.to_string(),
        ScalarValue::Int8(Some(_))
        | ScalarValue::Int16(Some(_))
        | ScalarValue::Int32(Some(_))
        | ScalarValue::Int64(Some(_))
        | ScalarValue::UInt8(Some(_))
        | ScalarValue::UInt16(Some(_))
        | ScalarValue::UInt32(Some(_))
        | ScalarValue::UInt64(Some(_))
        | ScalarValue::Float32(Some(_))
        | ScalarValue::Float64(Some(_)) => v.to_string(),
        other => {
            let s = other.to_string();
            let mut q = String::with_capacity(s.len() + 2);
            q.push('"');
            for ch in s.chars() {
                match ch {
                    '"' => q.push_str("\\\""),
                    '\\' => q.push_str("\\\\"),
                    '\n' => q.push_str("\\n"),
                    c if (c as u32) < 0x20 => q.push_str(&format!("\\u{:04x}", c as u32)),
                    c => q.push(c),
                }
            }
            q.push('"');
            q
        }
    })
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
        "pg_tablespace_location",
    ] {
        ctx.register_udf(udf(
            name,
            DataType::Utf8,
            Arc::new(|_args, n| Ok(Arc::new(StringArray::from(vec![""; n])) as ArrayRef)),
        ));
    }
    ctx.register_udf(udf(
        "pg_like_escape",
        DataType::Boolean,
        Arc::new(|args, n| {
            let text = |i: usize| -> Result<ArrayRef> {
                Ok(cast(
                    args.get(i).ok_or_else(|| {
                        datafusion::error::DataFusionError::Plan(
                            "pg_like_escape takes 3 arguments".into(),
                        )
                    })?,
                    &DataType::Utf8,
                )?)
            };
            let (v, p, e) = (text(0)?, text(1)?, text(2)?);
            let as_str = |a: &ArrayRef| a.as_any().downcast_ref::<StringArray>().cloned();
            let (Some(v), Some(p), Some(e)) = (as_str(&v), as_str(&p), as_str(&e)) else {
                return Err(datafusion::error::DataFusionError::Internal(
                    "pg_like_escape".into(),
                ));
            };
            let out: BooleanArray = (0..n)
                .map(|i| {
                    let get = |a: &StringArray| {
                        (i < a.len() && a.is_valid(i))
                            .then(|| a.value(i).to_string())
                            .or_else(|| {
                                (a.len() == 1 && a.is_valid(0)).then(|| a.value(0).to_string())
                            })
                    };
                    let (v, p) = (get(&v)?, get(&p)?);
                    let esc = get(&e).and_then(|s| s.chars().next());
                    Some(like_match(&v, &p, esc))
                })
                .collect();
            Ok(Arc::new(out) as ArrayRef)
        }),
    ));
    ctx.register_udf(udf(
        "to_regtype",
        DataType::Int32,
        Arc::new(|args, n| {
            let names = datafusion::arrow::compute::cast(&args[0], &DataType::Utf8)?;
            let names = names
                .as_any()
                .downcast_ref::<StringArray>()
                .ok_or_else(|| datafusion::error::DataFusionError::Internal("to_regtype".into()))?;
            let out: datafusion::arrow::array::Int32Array = (0..n)
                .map(|i| {
                    (i < names.len() && names.is_valid(i))
                        .then(|| type_oid(names.value(i)))
                        .flatten()
                })
                .collect();
            Ok(Arc::new(out) as ArrayRef)
        }),
    ));
    ctx.register_udf(udf(
        "json_build_object",
        DataType::Utf8,
        Arc::new(|args, n| {
            let mut out = Vec::with_capacity(n);
            for r in 0..n {
                let mut parts = Vec::with_capacity(args.len() / 2);
                for pair in args.chunks(2) {
                    let key = json_value(&pair[0], r)?;
                    let val = match pair.get(1) {
                        Some(v) => json_value(v, r)?,
                        None => "null".to_string(),
                    };
                    let key = if key.starts_with('"') {
                        key
                    } else {
                        format!("\"{key}\"")
                    };
                    parts.push(format!("{key} : {val}"));
                }
                out.push(format!("{{{}}}", parts.join(", ")));
            }
            Ok(Arc::new(StringArray::from(out)) as ArrayRef)
        }),
    ));
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
    ctx.register_udf(udf(
        "set_config",
        DataType::Utf8,
        // The new value, as PostgreSQL returns it; settings that matter are
        // changed with SET (asyncpg turns `jit` off this way).
        Arc::new(|args, n| {
            let v = args.get(1).ok_or_else(|| {
                datafusion::error::DataFusionError::Plan("set_config(name, value, is_local)".into())
            })?;
            let v = cast(v, &DataType::Utf8)?;
            if v.len() == n {
                Ok(v)
            } else {
                let s = v
                    .as_any()
                    .downcast_ref::<StringArray>()
                    .and_then(|a| (a.len() == 1 && a.is_valid(0)).then(|| a.value(0).to_string()));
                Ok(Arc::new(StringArray::from(vec![s; n])) as ArrayRef)
            }
        }),
    ));
    let idx = index.clone();
    ctx.register_udf(udf(
        "freshet_regclass",
        DataType::Int32,
        Arc::new(move |args, n| {
            let names = cast(
                args.first().ok_or_else(|| {
                    datafusion::error::DataFusionError::Plan("regclass of what?".into())
                })?,
                &DataType::Utf8,
            )?;
            let names = names
                .as_any()
                .downcast_ref::<StringArray>()
                .ok_or_else(|| datafusion::error::DataFusionError::Internal("regclass".into()))?;
            let out: datafusion::arrow::array::Int32Array = (0..n)
                .map(|i| {
                    let i = if names.len() == 1 { 0 } else { i };
                    (i < names.len() && names.is_valid(i))
                        .then(|| idx.oid_of(names.value(i)).map(|o| o as i32))
                        .flatten()
                })
                .collect();
            Ok(Arc::new(out) as ArrayRef)
        }),
    ));
    ctx.register_udf(ScalarUDF::new_from_impl(ExpandArray {
        signature: Signature::any(1, Volatility::Immutable),
    }));
    ctx.register_udf(udf(
        "pg_get_ruledef",
        DataType::Utf8,
        // Freshet has no rewrite rules beyond a view's own.
        Arc::new(|_args, n| Ok(Arc::new(StringArray::from(vec![None::<&str>; n])) as ArrayRef)),
    ));
    // Primary keys: their index and constraint OIDs are offsets of the
    // table's (see `pgkeys`).
    let idx = index.clone();
    ctx.register_udf(udf(
        "pg_get_indexdef",
        DataType::Utf8,
        Arc::new(move |args, n| {
            let oids = ints(args, 0, n)?;
            let cols = ints(args, 1, n)?;
            let out: StringArray = oids
                .into_iter()
                .zip(cols)
                .map(|(oid, col)| {
                    let table = idx.get(oid? - crate::pgkeys::INDEX_OID_OFFSET)?;
                    crate::pgkeys::index_def(&table, col.unwrap_or(0))
                })
                .collect();
            Ok(Arc::new(out) as ArrayRef)
        }),
    ));
    let idx = index.clone();
    ctx.register_udf(udf(
        "pg_get_constraintdef",
        DataType::Utf8,
        Arc::new(move |args, n| {
            let oids = ints(args, 0, n)?;
            let out: StringArray = oids
                .into_iter()
                .map(|oid| {
                    let table = idx.get(oid? - crate::pgkeys::CONSTRAINT_OID_OFFSET)?;
                    crate::pgkeys::constraint_def(&table)
                })
                .collect();
            Ok(Arc::new(out) as ArrayRef)
        }),
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

/// `_pg_expandarray(a)`: the elements of `a` with their positions, as a
/// list of `(x, n)` records (unnested by the dialect, like PostgreSQL's
/// set-returning `information_schema._pg_expandarray`).
#[derive(Debug, PartialEq, Eq, Hash)]
struct ExpandArray {
    signature: Signature,
}

impl ExpandArray {
    fn record(elem: &DataType) -> DataType {
        use datafusion::arrow::datatypes::Field;
        DataType::Struct(
            vec![
                Field::new("x", elem.clone(), true),
                Field::new("n", DataType::Int32, true),
            ]
            .into(),
        )
    }
}

impl ScalarUDFImpl for ExpandArray {
    fn name(&self) -> &str {
        "_pg_expandarray"
    }

    fn signature(&self) -> &Signature {
        &self.signature
    }

    fn return_type(&self, arg_types: &[DataType]) -> Result<DataType> {
        use datafusion::arrow::datatypes::Field;
        let elem = match arg_types.first() {
            Some(DataType::List(f)) | Some(DataType::LargeList(f)) => f.data_type().clone(),
            Some(DataType::Null) | None => DataType::Null,
            Some(other) => {
                return Err(datafusion::error::DataFusionError::Plan(format!(
                    "_pg_expandarray expects an array, not {other}"
                )))
            }
        };
        Ok(DataType::List(Arc::new(Field::new(
            "item",
            Self::record(&elem),
            true,
        ))))
    }

    fn invoke_with_args(&self, args: ScalarFunctionArgs) -> Result<ColumnarValue> {
        use datafusion::arrow::array::{AsArray, Int32Array, ListArray, StructArray};
        use datafusion::arrow::buffer::OffsetBuffer;
        use datafusion::arrow::datatypes::Field;
        let arrays = ColumnarValue::values_to_arrays(&args.args)?;
        let input = arrays.first().ok_or_else(|| {
            datafusion::error::DataFusionError::Plan("_pg_expandarray(array)".into())
        })?;
        let input = cast(input, &{
            let DataType::List(f) = self.return_type(&[input.data_type().clone()])? else {
                unreachable!("return_type gives a list")
            };
            let DataType::Struct(fields) = f.data_type() else {
                unreachable!("records are structs")
            };
            DataType::List(Arc::new(Field::new(
                "item",
                fields[0].data_type().clone(),
                true,
            )))
        })?;
        let list = input.as_list::<i32>();
        let offsets = list.offsets();
        let positions: Int32Array = (0..list.len())
            .flat_map(|i| {
                let len = (offsets[i + 1] - offsets[i]) as i32;
                (1..=len).map(Some)
            })
            .collect();
        let values = list.values().slice(
            offsets[0] as usize,
            (offsets[list.len()] - offsets[0]) as usize,
        );
        let elem = values.data_type().clone();
        let DataType::Struct(fields) = Self::record(&elem) else {
            unreachable!("records are structs")
        };
        let records =
            StructArray::try_new(fields.clone(), vec![values, Arc::new(positions)], None)?;
        let rebased: Vec<i32> = offsets.iter().map(|o| o - offsets[0]).collect();
        let out = ListArray::try_new(
            Arc::new(Field::new("item", DataType::Struct(fields), true)),
            OffsetBuffer::new(rebased.into()),
            Arc::new(records),
            list.nulls().cloned(),
        )?;
        Ok(ColumnarValue::Array(Arc::new(out)))
    }
}

#[cfg(test)]
mod tests {
    use super::{like_match, size_pretty};

    #[test]
    fn like_with_escape() {
        assert!(like_match("pg_toast", "pg/_%", Some('/')));
        assert!(!like_match("pgxtoast", "pg/_%", Some('/')));
        assert!(like_match("public", "p_bl%", None));
        assert!(!like_match("public", "p_bl", None));
    }

    #[test]
    fn sizes_print_like_postgres() {
        assert_eq!(size_pretty(0), "0 bytes");
        assert_eq!(size_pretty(10239), "10239 bytes");
        assert_eq!(size_pretty(10240), "10 kB");
        assert_eq!(size_pretty(5 * 1024 * 1024 * 1024), "5120 MB");
    }
}
