//! Bound parameters of the extended protocol: which Arrow type each `$n`
//! has, and decoding the client's text or binary bytes into a value of it.
//!
//! PostgreSQL gives a parameter the type the client declared in Parse, and
//! infers the rest from context. Freshet does the same: a declared type wins
//! (a `numeric` compared with a `bigint` column stays numeric), and an
//! undeclared one takes the type DataFusion infers, plus two contexts it does
//! not: `$1::type` and `x = ANY($1)`. Text follows PostgreSQL's input forms
//! (`{1,2}` arrays, `1 day 02:03:04` intervals, `t`/`f`), binary its send
//! formats.

use std::collections::HashMap;
use std::sync::Arc;

use datafusion::arrow::datatypes::{DataType, Field, IntervalMonthDayNano, TimeUnit};
use datafusion::common::tree_node::TreeNode;
use datafusion::common::{DFSchema, ScalarValue};
use datafusion::logical_expr::{Expr, ExprSchemable, LogicalPlan};
use pgwire::api::Type;

/// Why a parameter could not be decoded.
#[derive(Debug, thiserror::Error)]
#[error("{0}")]
pub struct ParamError(pub String);

type Result<T> = std::result::Result<T, ParamError>;

fn err(msg: impl Into<String>) -> ParamError {
    ParamError(msg.into())
}

/// The Arrow type of a parameter the client declared with `ty`, or `None`
/// for "unspecified" and types Freshet has no column type for.
pub fn arrow_type(ty: &Type) -> Option<DataType> {
    let t = match *ty {
        Type::BOOL => DataType::Boolean,
        Type::INT2 => DataType::Int16,
        Type::INT4 => DataType::Int32,
        Type::INT8 | Type::OID => DataType::Int64,
        Type::FLOAT4 => DataType::Float32,
        Type::FLOAT8 => DataType::Float64,
        Type::NUMERIC => DataType::Decimal128(38, 10),
        Type::TEXT | Type::VARCHAR | Type::BPCHAR | Type::NAME | Type::CHAR => DataType::Utf8,
        Type::JSON | Type::JSONB | Type::UUID => DataType::Utf8,
        Type::BYTEA => DataType::Binary,
        Type::DATE => DataType::Date32,
        Type::TIME => DataType::Time64(TimeUnit::Microsecond),
        Type::TIMESTAMP => DataType::Timestamp(TimeUnit::Microsecond, None),
        Type::TIMESTAMPTZ => DataType::Timestamp(TimeUnit::Microsecond, Some("+00:00".into())),
        Type::INTERVAL => {
            DataType::Interval(datafusion::arrow::datatypes::IntervalUnit::MonthDayNano)
        }
        _ => {
            let elem = array_element_type(ty)?;
            return Some(DataType::List(Arc::new(Field::new(
                "item",
                arrow_type(&elem)?,
                true,
            ))));
        }
    };
    Some(t)
}

/// The SQL name of a declared parameter type Freshet has a column type for.
fn sql_type_name(ty: &Type) -> Option<String> {
    fn of(t: &DataType) -> Option<String> {
        match t {
            DataType::List(f) => Some(format!("{}[]", of(f.data_type())?)),
            t => {
                let (name, _) = crate::infoschema::type_names(t);
                (name != "USER-DEFINED" && name != "ARRAY").then_some(name)
            }
        }
    }
    // Through the Arrow type, so `varchar`, `json` or `uuid` become `text`.
    of(&arrow_type(ty)?)
}

/// A parameter the client declared a type for, standing alone in a select
/// list (`SELECT $1`), gets that type as its result column's, as in
/// PostgreSQL: it becomes `CAST($1 AS type)`.
pub fn type_selected_placeholders(
    stmt: &mut datafusion::sql::sqlparser::ast::Statement,
    declared: &[Option<Type>],
) {
    use datafusion::sql::sqlparser::ast::{CastKind, Expr, SelectItem, SetExpr, Statement, Value};
    use datafusion::sql::sqlparser::dialect::PostgreSqlDialect;
    use datafusion::sql::sqlparser::parser::Parser;
    let Statement::Query(q) = stmt else {
        return;
    };
    let SetExpr::Select(select) = q.body.as_mut() else {
        return;
    };
    let cast = |e: &Expr| -> Option<Expr> {
        let Expr::Value(v) = e else {
            return None;
        };
        let Value::Placeholder(id) = &v.value else {
            return None;
        };
        let ty = declared.get(index(id)? - 1)?.as_ref()?;
        let name = sql_type_name(ty)?;
        let data_type = Parser::new(&PostgreSqlDialect {})
            .try_with_sql(&name)
            .ok()?
            .parse_data_type()
            .ok()?;
        Some(Expr::Cast {
            kind: CastKind::Cast,
            expr: Box::new(e.clone()),
            data_type,
            array: false,
            format: None,
        })
    };
    for item in select.projection.iter_mut() {
        match item {
            SelectItem::UnnamedExpr(e) => {
                if let Some(c) = cast(e) {
                    // Still named `?column?` (see `colnames`).
                    *e = c;
                }
            }
            SelectItem::ExprWithAlias { expr, .. } => {
                if let Some(c) = cast(expr) {
                    *expr = c;
                }
            }
            _ => {}
        }
    }
}

/// Parameters cast to `oid` or `oid[]` (`$1::oid[]`): their type for
/// ParameterDescription, which the Arrow type (a 32-bit integer) would report
/// as `int4`. asyncpg, for one, only knows `oid[]` before it has introspected
/// types.
pub fn oid_casts(stmt: &datafusion::sql::sqlparser::ast::Statement) -> HashMap<usize, Type> {
    use datafusion::sql::sqlparser::ast::{Expr, Value, Visit, Visitor};
    struct Casts(HashMap<usize, Type>);
    impl Visitor for Casts {
        type Break = ();
        fn pre_visit_expr(&mut self, e: &Expr) -> std::ops::ControlFlow<()> {
            if let Expr::Cast {
                expr, data_type, ..
            } = e
            {
                if let Expr::Value(v) = expr.as_ref() {
                    if let Value::Placeholder(id) = &v.value {
                        let ty = match data_type.to_string().to_ascii_lowercase().as_str() {
                            "oid" => Some(Type::OID),
                            "oid[]" => Some(Type::OID_ARRAY),
                            _ => None,
                        };
                        if let (Some(ty), Some(n)) = (ty, index(id)) {
                            self.0.insert(n, ty);
                        }
                    }
                }
            }
            std::ops::ControlFlow::Continue(())
        }
    }
    let mut v = Casts(HashMap::new());
    let _ = stmt.visit(&mut v);
    v.0
}

/// The element type of an array type.
fn array_element_type(ty: &Type) -> Option<Type> {
    match ty.kind() {
        postgres_types::Kind::Array(elem) => Some(elem.clone()),
        _ => None,
    }
}

/// The types DataFusion inferred for `$1..$n`, completed with the contexts
/// it leaves open: `CAST($1 AS t)` gives `t`, and `x = ANY($1)` (planned as
/// an array function of `$1` and `x`) gives a list of `x`'s type.
pub fn infer_types(plan: &LogicalPlan) -> Vec<Option<DataType>> {
    let mut found: HashMap<usize, DataType> = HashMap::new();
    if let Ok(types) = plan.get_parameter_types() {
        for (id, t) in types {
            if let (Some(i), Some(t)) = (index(&id), t) {
                found.insert(i, t);
            }
        }
    }
    let _ = plan.apply_with_subqueries(|node| {
        let schema = input_schema(node);
        let _ = node.apply_expressions(|e| {
            e.apply(|e| {
                match e {
                    Expr::Cast(c) => note(&mut found, &c.expr, c.field.data_type().clone()),
                    Expr::TryCast(c) => note(&mut found, &c.expr, c.field.data_type().clone()),
                    Expr::ScalarFunction(f) if is_array_function(f.name()) => {
                        if let [arr, needle, ..] = f.args.as_slice() {
                            if let Some(t) = schema.as_ref().and_then(|s| needle.get_type(s).ok()) {
                                if !matches!(t, DataType::Null) {
                                    let list =
                                        DataType::List(Arc::new(Field::new("item", t, true)));
                                    note(&mut found, arr, list);
                                }
                            }
                        }
                    }
                    _ => {}
                }
                Ok(datafusion::common::tree_node::TreeNodeRecursion::Continue)
            })
        });
        Ok(datafusion::common::tree_node::TreeNodeRecursion::Continue)
    });
    let n = found
        .keys()
        .max()
        .copied()
        .unwrap_or(0)
        .max(max_placeholder(plan));
    (1..=n).map(|i| found.get(&i).cloned()).collect()
}

fn is_array_function(name: &str) -> bool {
    matches!(
        name,
        "array_has" | "array_contains" | "array_position" | "array_has_all" | "array_has_any"
    )
}

/// Records `t` for a placeholder DataFusion left untyped.
fn note(found: &mut HashMap<usize, DataType>, e: &Expr, t: DataType) {
    if let Expr::Placeholder(p) = e {
        if p.field.is_none() {
            if let Some(i) = index(&p.id) {
                found.entry(i).or_insert(t);
            }
        }
    }
}

fn index(id: &str) -> Option<usize> {
    id.trim_start_matches('$')
        .parse::<usize>()
        .ok()
        .filter(|i| *i >= 1)
}

fn max_placeholder(plan: &LogicalPlan) -> usize {
    let mut n = 0;
    let _ = plan.apply_with_subqueries(|node| {
        let _ = node.apply_expressions(|e| {
            e.apply(|e| {
                if let Expr::Placeholder(p) = e {
                    n = n.max(index(&p.id).unwrap_or(0));
                }
                Ok(datafusion::common::tree_node::TreeNodeRecursion::Continue)
            })
        });
        Ok(datafusion::common::tree_node::TreeNodeRecursion::Continue)
    });
    n
}

/// The schema a node's expressions are evaluated against: its inputs' merged.
fn input_schema(node: &LogicalPlan) -> Option<DFSchema> {
    let inputs = node.inputs();
    let mut it = inputs.iter();
    let mut schema = it.next()?.schema().as_ref().clone();
    for i in it {
        schema.merge(i.schema());
    }
    Some(schema)
}

/// Decodes a parameter sent in text form as a value of `want` (`None`: keep
/// the text and let the query cast it).
pub fn from_text(text: &str, want: Option<&DataType>) -> Result<ScalarValue> {
    let Some(want) = want else {
        return Ok(ScalarValue::Utf8(Some(text.to_string())));
    };
    match want {
        DataType::Utf8 => Ok(ScalarValue::Utf8(Some(text.to_string()))),
        DataType::List(f) => {
            let items = parse_array(text)?;
            let values = items
                .iter()
                .map(|v| match v {
                    Some(s) => from_text(s, Some(f.data_type())),
                    None => ScalarValue::try_from(f.data_type()).map_err(|e| err(e.to_string())),
                })
                .collect::<Result<Vec<_>>>()?;
            Ok(ScalarValue::List(ScalarValue::new_list_nullable(
                &values,
                f.data_type(),
            )))
        }
        DataType::Boolean => match text.trim().to_ascii_lowercase().as_str() {
            "t" | "true" | "yes" | "y" | "on" | "1" => Ok(ScalarValue::Boolean(Some(true))),
            "f" | "false" | "no" | "n" | "off" | "0" => Ok(ScalarValue::Boolean(Some(false))),
            _ => Err(err(format!(
                "invalid input syntax for type boolean: \"{text}\""
            ))),
        },
        DataType::Decimal128(_, _) => decimal(text.trim()),
        DataType::Interval(_) => interval(text).map(|v| ScalarValue::IntervalMonthDayNano(Some(v))),
        DataType::Timestamp(unit, tz) => timestamp(text, *unit, tz.clone()),
        DataType::Binary => Ok(ScalarValue::Binary(Some(bytea(text)?))),
        _ => ScalarValue::Utf8(Some(text.to_string()))
            .cast_to(want)
            .map_err(|_| {
                err(format!(
                    "invalid input syntax for type {}: \"{text}\"",
                    crate::infoschema::type_names(want).0
                ))
            }),
    }
}

/// A numeric with the scale it was written with.
fn decimal(text: &str) -> Result<ScalarValue> {
    let bad = || err(format!("invalid input syntax for type numeric: \"{text}\""));
    let (mantissa, exp) = match text.find(['e', 'E']) {
        Some(p) => (&text[..p], text[p + 1..].parse::<i32>().map_err(|_| bad())?),
        None => (text, 0),
    };
    let (neg, digits) = match mantissa.strip_prefix('-') {
        Some(d) => (true, d),
        None => (false, mantissa.strip_prefix('+').unwrap_or(mantissa)),
    };
    let (int, frac) = digits.split_once('.').unwrap_or((digits, ""));
    if int.is_empty() && frac.is_empty()
        || !int.chars().chain(frac.chars()).all(|c| c.is_ascii_digit())
    {
        return Err(bad());
    }
    let mut scale = frac.len() as i32 - exp;
    let mut all = format!("{int}{frac}");
    if scale < 0 {
        all.push_str(&"0".repeat((-scale) as usize));
        scale = 0;
    }
    let all = all.trim_start_matches('0');
    if all.len() > 38 || scale > 38 {
        return Err(err(format!("numeric value out of range: \"{text}\"")));
    }
    let mut v: i128 = if all.is_empty() {
        0
    } else {
        all.parse().map_err(|_| bad())?
    };
    if neg {
        v = -v;
    }
    Ok(ScalarValue::Decimal128(Some(v), 38, scale as i8))
}

/// PostgreSQL's interval input: `1 day 02:03:04`, `1 year 2 mons`,
/// `-3 hours`, `00:00:01.5`, `@ 1 minute ago` and ISO 8601 `P1DT2H`.
pub fn interval(text: &str) -> Result<IntervalMonthDayNano> {
    let bad = || {
        err(format!(
            "invalid input syntax for type interval: \"{text}\""
        ))
    };
    let s = text.trim().to_ascii_lowercase();
    if let Some(iso) = s.strip_prefix('p') {
        return iso_interval(iso).ok_or_else(bad);
    }
    let s = s.trim_start_matches('@').trim();
    let (s, ago) = match s.strip_suffix("ago") {
        Some(rest) => (rest.trim(), true),
        None => (s, false),
    };
    let (mut months, mut days, mut nanos) = (0i64, 0i64, 0i128);
    let tokens: Vec<&str> = s.split_whitespace().collect();
    let mut i = 0;
    if tokens.is_empty() {
        return Err(bad());
    }
    while i < tokens.len() {
        let tok = tokens[i];
        if tok.contains(':') {
            nanos += clock(tok).ok_or_else(bad)?;
            i += 1;
            continue;
        }
        let n: f64 = tok.parse().map_err(|_| bad())?;
        let unit = tokens.get(i + 1).copied().unwrap_or("second");
        let unit = unit.trim_end_matches(',');
        let unit = unit
            .strip_suffix('s')
            .filter(|u| !u.is_empty())
            .unwrap_or(unit);
        let sec = 1_000_000_000f64;
        match unit {
            "millennium" | "millennia" => months += (n * 12_000.0) as i64,
            "century" | "centurie" => months += (n * 1200.0) as i64,
            "decade" => months += (n * 120.0) as i64,
            "year" | "yr" | "y" => months += (n * 12.0).round() as i64,
            "month" | "mon" => months += n.trunc() as i64,
            "week" | "w" => days += (n * 7.0) as i64,
            "day" | "d" => days += n.trunc() as i64,
            "hour" | "hr" | "h" => nanos += (n * 3600.0 * sec) as i128,
            "minute" | "min" | "m" => nanos += (n * 60.0 * sec) as i128,
            "second" | "sec" | "" => nanos += (n * sec).round() as i128,
            "millisecond" | "msec" | "ms" => nanos += (n * 1e6) as i128,
            "microsecond" | "usec" | "us" => nanos += (n * 1e3) as i128,
            _ => return Err(bad()),
        }
        i += if tokens.get(i + 1).is_some() { 2 } else { 1 };
    }
    let sign = if ago { -1 } else { 1 };
    Ok(IntervalMonthDayNano::new(
        (sign * months) as i32,
        (sign * days) as i32,
        (sign as i128 * nanos) as i64,
    ))
}

/// `[-]h:mm[:ss[.frac]]` in nanoseconds.
fn clock(tok: &str) -> Option<i128> {
    let (neg, tok) = match tok.strip_prefix('-') {
        Some(t) => (true, t),
        None => (false, tok.strip_prefix('+').unwrap_or(tok)),
    };
    let parts: Vec<&str> = tok.split(':').collect();
    if parts.len() < 2 || parts.len() > 3 {
        return None;
    }
    let h: i128 = parts[0].parse().ok()?;
    let m: i128 = parts[1].parse().ok()?;
    let s: f64 = match parts.get(2) {
        Some(s) => s.parse().ok()?,
        None => 0.0,
    };
    let v = (h * 3600 + m * 60) * 1_000_000_000 + (s * 1e9).round() as i128;
    Some(if neg { -v } else { v })
}

/// ISO 8601 durations after the `P`: `1Y2M3DT4H5M6.5S`, `2W`.
fn iso_interval(s: &str) -> Option<IntervalMonthDayNano> {
    let (date, time) = s.split_once('t').unwrap_or((s, ""));
    let (mut months, mut days, mut nanos) = (0i64, 0i64, 0i128);
    let mut num = String::new();
    for c in date.chars() {
        if c.is_ascii_digit() || c == '.' || c == '-' {
            num.push(c);
            continue;
        }
        let n: f64 = num.parse().ok()?;
        num.clear();
        match c {
            'y' => months += (n * 12.0) as i64,
            'm' => months += n as i64,
            'w' => days += (n * 7.0) as i64,
            'd' => days += n as i64,
            _ => return None,
        }
    }
    for c in time.chars() {
        if c.is_ascii_digit() || c == '.' || c == '-' {
            num.push(c);
            continue;
        }
        let n: f64 = num.parse().ok()?;
        num.clear();
        nanos += match c {
            'h' => (n * 3600e9) as i128,
            'm' => (n * 60e9) as i128,
            's' => (n * 1e9).round() as i128,
            _ => return None,
        };
    }
    if !num.is_empty() {
        return None;
    }
    Some(IntervalMonthDayNano::new(
        months as i32,
        days as i32,
        nanos as i64,
    ))
}

/// A timestamp in PostgreSQL's input forms, including offsets like `+02`.
fn timestamp(text: &str, unit: TimeUnit, tz: Option<Arc<str>>) -> Result<ScalarValue> {
    let t = text.trim();
    let bad = || {
        err(format!(
            "invalid input syntax for type timestamp: \"{text}\""
        ))
    };
    let naive = [
        "%Y-%m-%d %H:%M:%S%.f",
        "%Y-%m-%dT%H:%M:%S%.f",
        "%Y-%m-%d %H:%M",
        "%Y-%m-%d",
    ];
    let micros = 'found: {
        // With an offset: "+02", "+02:00", "+0200", "Z".
        let with_offset = if let Some(s) = t.strip_suffix('Z').or_else(|| t.strip_suffix(" UTC")) {
            Some((s.to_string(), 0))
        } else {
            offset_suffix(t)
        };
        if let Some((body, secs)) = with_offset {
            for f in naive {
                if let Ok(dt) = chrono::NaiveDateTime::parse_from_str(&body, f) {
                    break 'found dt.and_utc().timestamp_micros() - secs * 1_000_000;
                }
                if let Ok(d) = chrono::NaiveDate::parse_from_str(&body, f) {
                    break 'found d
                        .and_hms_opt(0, 0, 0)
                        .ok_or_else(bad)?
                        .and_utc()
                        .timestamp_micros()
                        - secs * 1_000_000;
                }
            }
        }
        for f in naive {
            if let Ok(dt) = chrono::NaiveDateTime::parse_from_str(t, f) {
                break 'found dt.and_utc().timestamp_micros();
            }
        }
        if let Ok(d) = chrono::NaiveDate::parse_from_str(t, "%Y-%m-%d") {
            break 'found d
                .and_hms_opt(0, 0, 0)
                .ok_or_else(bad)?
                .and_utc()
                .timestamp_micros();
        }
        return ScalarValue::Utf8(Some(text.to_string()))
            .cast_to(&DataType::Timestamp(unit, tz))
            .map_err(|_| bad());
    };
    ScalarValue::TimestampMicrosecond(Some(micros), tz.clone())
        .cast_to(&DataType::Timestamp(unit, tz))
        .map_err(|e| err(e.to_string()))
}

/// Splits `2024-01-01 10:00:00+02[:30]` into the body and the offset in seconds.
fn offset_suffix(t: &str) -> Option<(String, i64)> {
    // The offset starts at the last '+' or '-' after the time part.
    let time_start = t.find([' ', 'T'])?;
    let p = t[time_start..].rfind(['+', '-'])? + time_start;
    let (body, off) = (&t[..p], &t[p..]);
    let sign = if off.starts_with('-') { -1 } else { 1 };
    let digits: String = off[1..].chars().filter(|c| *c != ':').collect();
    if digits.is_empty() || !digits.chars().all(|c| c.is_ascii_digit()) {
        return None;
    }
    let (h, m) = match digits.len() {
        1 | 2 => (digits.parse::<i64>().ok()?, 0),
        4 => (
            digits[..2].parse::<i64>().ok()?,
            digits[2..].parse::<i64>().ok()?,
        ),
        _ => return None,
    };
    Some((body.trim().to_string(), sign * (h * 3600 + m * 60)))
}

/// PostgreSQL's `bytea` input: `\x0102` (hex), or text with `\\` and
/// `\ooo` (octal) escapes.
pub fn bytea(text: &str) -> Result<Vec<u8>> {
    if let Some(hex) = text.strip_prefix("\\x") {
        let hex: String = hex.chars().filter(|c| !c.is_whitespace()).collect();
        if hex.len() & 1 == 1 {
            return Err(err("invalid hexadecimal data: odd number of digits"));
        }
        return (0..hex.len())
            .step_by(2)
            .map(|i| {
                u8::from_str_radix(hex.get(i..i + 2).unwrap_or("zz"), 16)
                    .map_err(|_| err("invalid hexadecimal digit"))
            })
            .collect();
    }
    let bytes = text.as_bytes();
    let mut out = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while i < bytes.len() {
        if bytes[i] != b'\\' {
            out.push(bytes[i]);
            i += 1;
        } else if bytes.get(i + 1) == Some(&b'\\') {
            out.push(b'\\');
            i += 2;
        } else {
            let oct = bytes
                .get(i + 1..i + 4)
                .filter(|d| d.iter().all(|c| (b'0'..=b'7').contains(c)))
                .ok_or_else(|| err("invalid input syntax for type bytea"))?;
            let v = oct.iter().fold(0u32, |v, d| v * 8 + u32::from(d - b'0'));
            out.push(u8::try_from(v).map_err(|_| err("invalid input syntax for type bytea"))?);
            i += 4;
        }
    }
    Ok(out)
}

/// The elements of a one-dimensional array literal `{a,"b c",NULL}`.
pub fn parse_array(text: &str) -> Result<Vec<Option<String>>> {
    freshet_planner::pg::textout::parse_array(text)
        .ok_or_else(|| err(format!("malformed array literal: \"{text}\"")))
}

/// Decodes a parameter in binary form, sent as PostgreSQL type `ty`.
pub fn from_binary(bytes: &[u8], ty: &Type) -> Result<ScalarValue> {
    let bad = || {
        err(format!(
            "incorrect binary data format for type {}",
            ty.name()
        ))
    };
    let fixed = |n: usize| -> Result<&[u8]> {
        if bytes.len() == n {
            Ok(bytes)
        } else {
            Err(bad())
        }
    };
    let be8 = |b: &[u8]| -> Result<[u8; 8]> { b.try_into().map_err(|_| bad()) };
    const PG_EPOCH_DAYS: i64 = 10_957; // 2000-01-01 in days since 1970-01-01
    const PG_EPOCH_MICROS: i64 = PG_EPOCH_DAYS * 86_400_000_000;
    Ok(match *ty {
        Type::BOOL => ScalarValue::Boolean(Some(fixed(1)?[0] != 0)),
        Type::INT2 => ScalarValue::Int16(Some(i16::from_be_bytes(
            fixed(2)?.try_into().map_err(|_| bad())?,
        ))),
        Type::INT4 => ScalarValue::Int32(Some(i32::from_be_bytes(
            fixed(4)?.try_into().map_err(|_| bad())?,
        ))),
        Type::OID => ScalarValue::Int64(Some(i64::from(u32::from_be_bytes(
            fixed(4)?.try_into().map_err(|_| bad())?,
        )))),
        Type::INT8 => ScalarValue::Int64(Some(i64::from_be_bytes(be8(fixed(8)?)?))),
        Type::FLOAT4 => ScalarValue::Float32(Some(f32::from_be_bytes(
            fixed(4)?.try_into().map_err(|_| bad())?,
        ))),
        Type::FLOAT8 => ScalarValue::Float64(Some(f64::from_be_bytes(be8(fixed(8)?)?))),
        Type::BYTEA => ScalarValue::Binary(Some(bytes.to_vec())),
        Type::DATE => {
            let d = i32::from_be_bytes(fixed(4)?.try_into().map_err(|_| bad())?);
            ScalarValue::Date32(Some(d + PG_EPOCH_DAYS as i32))
        }
        Type::TIME => ScalarValue::Time64Microsecond(Some(i64::from_be_bytes(be8(fixed(8)?)?))),
        Type::TIMESTAMP => ScalarValue::TimestampMicrosecond(
            Some(i64::from_be_bytes(be8(fixed(8)?)?) + PG_EPOCH_MICROS),
            None,
        ),
        Type::TIMESTAMPTZ => ScalarValue::TimestampMicrosecond(
            Some(i64::from_be_bytes(be8(fixed(8)?)?) + PG_EPOCH_MICROS),
            Some("+00:00".into()),
        ),
        Type::INTERVAL => {
            let b = fixed(16)?;
            let micros = i64::from_be_bytes(be8(&b[..8])?);
            let days = i32::from_be_bytes(b[8..12].try_into().map_err(|_| bad())?);
            let months = i32::from_be_bytes(b[12..16].try_into().map_err(|_| bad())?);
            ScalarValue::IntervalMonthDayNano(Some(IntervalMonthDayNano::new(
                months,
                days,
                micros.saturating_mul(1000),
            )))
        }
        Type::NUMERIC => decimal(&binary_numeric(bytes).ok_or_else(bad)?)?,
        Type::JSONB => {
            // A version byte (1), then the JSON text.
            let text = bytes
                .get(1..)
                .filter(|_| bytes.first() == Some(&1))
                .ok_or_else(bad)?;
            ScalarValue::Utf8(Some(utf8(text)?))
        }
        Type::UUID => {
            let b = fixed(16)?;
            let h: String = b.iter().map(|x| format!("{x:02x}")).collect();
            ScalarValue::Utf8(Some(format!(
                "{}-{}-{}-{}-{}",
                &h[..8],
                &h[8..12],
                &h[12..16],
                &h[16..20],
                &h[20..]
            )))
        }
        _ => match array_element_type(ty) {
            Some(elem) => binary_array(bytes, &elem)?,
            None => ScalarValue::Utf8(Some(utf8(bytes)?)),
        },
    })
}

fn utf8(bytes: &[u8]) -> Result<String> {
    String::from_utf8(bytes.to_vec()).map_err(|_| err("parameter is not valid UTF-8"))
}

/// PostgreSQL's binary numeric (base-10000 digits) as decimal text.
fn binary_numeric(b: &[u8]) -> Option<String> {
    let word =
        |i: usize| -> Option<i16> { Some(i16::from_be_bytes(b.get(i..i + 2)?.try_into().ok()?)) };
    let ndigits = word(0)? as usize;
    let weight = word(2)? as i32;
    let sign = word(4)? as u16;
    let dscale = word(6)? as usize;
    if sign == 0xC000 {
        return None; // NaN has no Decimal128 form
    }
    let digits: Vec<i16> = (0..ndigits)
        .map(|i| word(8 + 2 * i))
        .collect::<Option<_>>()?;
    let mut int = String::new();
    for w in 0..=weight.max(-1) {
        let d = digits.get(w as usize).copied().unwrap_or(0);
        if int.is_empty() {
            int = d.to_string();
        } else {
            int.push_str(&format!("{d:04}"));
        }
    }
    if int.is_empty() {
        int.push('0');
    }
    let mut frac = String::new();
    let mut w = weight + 1;
    while frac.len() < dscale {
        let d = if w < 0 {
            0
        } else {
            digits.get(w as usize).copied().unwrap_or(0)
        };
        frac.push_str(&format!("{d:04}"));
        w += 1;
    }
    frac.truncate(dscale);
    let neg = if sign == 0x4000 { "-" } else { "" };
    Some(if frac.is_empty() {
        format!("{neg}{int}")
    } else {
        format!("{neg}{int}.{frac}")
    })
}

/// A one-dimensional binary array of `elem`.
fn binary_array(b: &[u8], elem: &Type) -> Result<ScalarValue> {
    let bad = || err("incorrect binary data format for an array");
    let int = |i: usize| -> Result<i32> {
        Ok(i32::from_be_bytes(
            b.get(i..i + 4)
                .ok_or_else(bad)?
                .try_into()
                .map_err(|_| bad())?,
        ))
    };
    let ndim = int(0)?;
    let elem_type = arrow_type(elem).unwrap_or(DataType::Utf8);
    if ndim == 0 {
        return Ok(ScalarValue::List(ScalarValue::new_list_nullable(
            &[],
            &elem_type,
        )));
    }
    if ndim != 1 {
        return Err(err(
            "multidimensional arrays are not supported as parameters",
        ));
    }
    let n = int(12)?.max(0) as usize;
    let mut pos = 20;
    let mut values = Vec::with_capacity(n);
    for _ in 0..n {
        let len = int(pos)?;
        pos += 4;
        if len < 0 {
            values.push(ScalarValue::try_from(&elem_type).map_err(|e| err(e.to_string()))?);
            continue;
        }
        let end = pos + len as usize;
        let v = from_binary(b.get(pos..end).ok_or_else(bad)?, elem)?;
        values.push(v.cast_to(&elem_type).map_err(|e| err(e.to_string()))?);
        pos = end;
    }
    Ok(ScalarValue::List(ScalarValue::new_list_nullable(
        &values, &elem_type,
    )))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn array_literals() {
        assert_eq!(
            parse_array(r#"{1, "a b",NULL,"NULL","q\"x"}"#).unwrap(),
            vec![
                Some("1".into()),
                Some("a b".into()),
                None,
                Some("NULL".into()),
                Some("q\"x".into())
            ]
        );
        assert!(parse_array("{}").unwrap().is_empty());
        assert!(parse_array("1,2").is_err());
        let list = DataType::List(Arc::new(Field::new("item", DataType::Int64, true)));
        let v = from_text(r#"{"1","2"}"#, Some(&list)).unwrap();
        assert_eq!(v.data_type(), list);
    }

    #[test]
    fn intervals() {
        let v = interval("1 day 02:03:04").unwrap();
        assert_eq!((v.months, v.days, v.nanoseconds), (0, 1, 7_384_000_000_000));
        let v = interval("1 year 2 mons -3 days").unwrap();
        assert_eq!((v.months, v.days), (14, -3));
        let v = interval("P1DT2H3M4.5S").unwrap();
        assert_eq!((v.days, v.nanoseconds), (1, 7_384_500_000_000));
        let v = interval("@ 2 hours ago").unwrap();
        assert_eq!(v.nanoseconds, -7_200_000_000_000);
        assert!(interval("soon").is_err());
    }

    #[test]
    fn numerics_keep_their_scale() {
        assert_eq!(
            decimal("10.5").unwrap(),
            ScalarValue::Decimal128(Some(105), 38, 1)
        );
        assert_eq!(
            decimal("-1e2").unwrap(),
            ScalarValue::Decimal128(Some(-100), 38, 0)
        );
        assert!(decimal("1.2.3").is_err());
        // 12345.6789: ndigits 3, weight 1, dscale 4 -> digits 1 2345 6789.
        let b = [0, 3, 0, 1, 0, 0, 0, 4, 0, 1, 0x09, 0x29, 0x1a, 0x85];
        assert_eq!(binary_numeric(&b).unwrap(), "12345.6789");
    }

    #[test]
    fn timestamps_with_short_offsets() {
        let tz = Some(Arc::<str>::from("+00:00"));
        let v = timestamp("2024-01-01 10:00:00+02", TimeUnit::Microsecond, tz.clone()).unwrap();
        let w = timestamp("2024-01-01 08:00:00Z", TimeUnit::Microsecond, tz).unwrap();
        assert_eq!(v, w);
    }
}
