//! `jsonb`: JSON documents kept as text in PostgreSQL's canonical form
//! (object keys ordered shortest first then bytewise, the last of duplicate
//! keys kept, `{"a": 1, "b": [1, 2]}` spacing), in `Utf8` columns whose
//! field carries [`JSONB_KEY`] so clients see the `jsonb` type. The
//! functions here parse and write that form and implement `::jsonb`, `->`,
//! `->>`, `#>`, `#>>`, `@>`, `?` and `jsonb_typeof`.

use std::collections::HashMap;
use std::sync::Arc;

use datafusion::arrow::array::{Array, ArrayRef, AsArray, BooleanArray, StringArray};
use datafusion::arrow::compute::cast;
use datafusion::arrow::datatypes::{DataType, Field};
use datafusion::common::exec_err;
use datafusion::error::Result;
use datafusion::logical_expr::ScalarUDF;

use super::simple::{any, udf, udf_jsonb};

/// Field metadata marking a text column as `jsonb`.
pub const JSONB_KEY: &str = "freshet.pg_type";
pub const JSONB_VALUE: &str = "jsonb";

pub const JSONB_IN: &str = "pg_jsonb_in";
pub const GET: &str = "pg_jsonb_get";
pub const GET_TEXT: &str = "pg_jsonb_get_text";
pub const PATH: &str = "pg_jsonb_path";
pub const PATH_TEXT: &str = "pg_jsonb_path_text";
pub const CONTAINS: &str = "pg_jsonb_contains";
pub const EXISTS: &str = "pg_jsonb_exists";

/// The metadata of a `jsonb` field.
pub fn jsonb_metadata() -> HashMap<String, String> {
    HashMap::from([(JSONB_KEY.to_string(), JSONB_VALUE.to_string())])
}

/// Whether `f` is a `jsonb` column.
pub fn is_jsonb(f: &Field) -> bool {
    f.metadata()
        .get(JSONB_KEY)
        .is_some_and(|v| v == JSONB_VALUE)
}

pub fn functions() -> Vec<ScalarUDF> {
    vec![
        udf_jsonb(JSONB_IN, any(1), |a, _| {
            map(&a[0], |s| Ok(Some(canonical(s)?)))
        }),
        udf_jsonb(GET, any(2), |a, _| get(a, false)),
        udf(
            GET_TEXT,
            any(2),
            |_| Ok(DataType::Utf8),
            |a, _| get(a, true),
        ),
        udf_jsonb(PATH, any(2), |a, _| path(a, false)),
        udf(
            PATH_TEXT,
            any(2),
            |_| Ok(DataType::Utf8),
            |a, _| path(a, true),
        ),
        udf(CONTAINS, any(2), |_| Ok(DataType::Boolean), contains),
        udf(EXISTS, any(2), |_| Ok(DataType::Boolean), exists),
        udf(
            "jsonb_typeof",
            any(1),
            |_| Ok(DataType::Utf8),
            |a, _| {
                map(&a[0], |s| {
                    Ok(parse(s).ok().map(|v| v.type_name().to_string()))
                })
            },
        ),
    ]
}

/// A JSON value; numbers keep their text.
#[derive(Debug, Clone, PartialEq)]
pub enum Json {
    Null,
    Bool(bool),
    Num(String),
    Str(String),
    Arr(Vec<Json>),
    /// Keys in canonical order, unique.
    Obj(Vec<(String, Json)>),
}

impl Json {
    fn type_name(&self) -> &'static str {
        match self {
            Json::Null => "null",
            Json::Bool(_) => "boolean",
            Json::Num(_) => "number",
            Json::Str(_) => "string",
            Json::Arr(_) => "array",
            Json::Obj(_) => "object",
        }
    }

    /// PostgreSQL's text of a jsonb value.
    pub fn write(&self, out: &mut String) {
        match self {
            Json::Null => out.push_str("null"),
            Json::Bool(b) => out.push_str(if *b { "true" } else { "false" }),
            Json::Num(n) => out.push_str(n),
            Json::Str(s) => write_str(s, out),
            Json::Arr(items) => {
                out.push('[');
                for (i, v) in items.iter().enumerate() {
                    if i > 0 {
                        out.push_str(", ");
                    }
                    v.write(out);
                }
                out.push(']');
            }
            Json::Obj(fields) => {
                out.push('{');
                for (i, (k, v)) in fields.iter().enumerate() {
                    if i > 0 {
                        out.push_str(", ");
                    }
                    write_str(k, out);
                    out.push_str(": ");
                    v.write(out);
                }
                out.push('}');
            }
        }
    }

    fn text(&self) -> String {
        let mut s = String::new();
        self.write(&mut s);
        s
    }

    /// `a @> b`: every part of `b` is in `a`, as PostgreSQL's containment.
    fn contains(&self, b: &Json) -> bool {
        match (self, b) {
            (Json::Obj(x), Json::Obj(y)) => y
                .iter()
                .all(|(k, v)| x.iter().any(|(k2, v2)| k2 == k && v2.contains(v))),
            (Json::Arr(x), Json::Arr(y)) => y.iter().all(|v| x.iter().any(|v2| v2.contains(v))),
            // A top-level array contains a primitive it holds.
            (Json::Arr(x), p) if !matches!(p, Json::Obj(_)) => x.iter().any(|v| v == p),
            (Json::Num(x), Json::Num(y)) => num_eq(x, y),
            (x, y) => x == y,
        }
    }
}

fn num_eq(a: &str, b: &str) -> bool {
    a == b || matches!((a.parse::<f64>(), b.parse::<f64>()), (Ok(x), Ok(y)) if x == y)
}

fn write_str(s: &str, out: &mut String) {
    freshet_runtime::jsontext::push_json_string(s, out)
}

struct Parser<'a> {
    s: &'a [u8],
    i: usize,
}

fn bad(input: &str) -> datafusion::error::DataFusionError {
    datafusion::error::DataFusionError::Execution(format!(
        "invalid input syntax for type json: \"{input}\""
    ))
}

impl Parser<'_> {
    fn ws(&mut self) {
        while self.i < self.s.len() && matches!(self.s[self.i], b' ' | b'\t' | b'\n' | b'\r') {
            self.i += 1;
        }
    }
    fn value(&mut self, depth: usize) -> Option<Json> {
        if depth > 1000 {
            return None;
        }
        self.ws();
        match *self.s.get(self.i)? {
            b'{' => {
                self.i += 1;
                let mut fields: Vec<(String, Json)> = Vec::new();
                self.ws();
                if self.s.get(self.i) == Some(&b'}') {
                    self.i += 1;
                    return Some(Json::Obj(fields));
                }
                loop {
                    self.ws();
                    let Json::Str(k) = self.string()? else {
                        return None;
                    };
                    self.ws();
                    if self.s.get(self.i) != Some(&b':') {
                        return None;
                    }
                    self.i += 1;
                    let v = self.value(depth + 1)?;
                    fields.retain(|(k2, _)| *k2 != k);
                    fields.push((k, v));
                    self.ws();
                    match self.s.get(self.i)? {
                        b',' => self.i += 1,
                        b'}' => {
                            self.i += 1;
                            break;
                        }
                        _ => return None,
                    }
                }
                fields.sort_by(|(a, _), (b, _)| a.len().cmp(&b.len()).then_with(|| a.cmp(b)));
                Some(Json::Obj(fields))
            }
            b'[' => {
                self.i += 1;
                let mut items = Vec::new();
                self.ws();
                if self.s.get(self.i) == Some(&b']') {
                    self.i += 1;
                    return Some(Json::Arr(items));
                }
                loop {
                    items.push(self.value(depth + 1)?);
                    self.ws();
                    match self.s.get(self.i)? {
                        b',' => self.i += 1,
                        b']' => {
                            self.i += 1;
                            break;
                        }
                        _ => return None,
                    }
                }
                Some(Json::Arr(items))
            }
            b'"' => self.string(),
            b't' => self.word("true", Json::Bool(true)),
            b'f' => self.word("false", Json::Bool(false)),
            b'n' => self.word("null", Json::Null),
            _ => self.number(),
        }
    }
    fn word(&mut self, w: &str, v: Json) -> Option<Json> {
        if self.s[self.i..].starts_with(w.as_bytes()) {
            self.i += w.len();
            Some(v)
        } else {
            None
        }
    }
    fn number(&mut self) -> Option<Json> {
        let start = self.i;
        while self.i < self.s.len()
            && matches!(
                self.s[self.i],
                b'0'..=b'9' | b'-' | b'+' | b'.' | b'e' | b'E'
            )
        {
            self.i += 1;
        }
        let t = std::str::from_utf8(&self.s[start..self.i]).ok()?;
        t.parse::<f64>().ok()?;
        if t.starts_with('+') || t.ends_with('.') || t.starts_with('.') || t.starts_with("-.") {
            return None;
        }
        // jsonb keeps a number as a numeric: exponents are written out.
        Some(Json::Num(match t.split_once(['e', 'E']) {
            Some(_) => normalize_exponent(t),
            None => t.to_string(),
        }))
    }
    fn string(&mut self) -> Option<Json> {
        if self.s.get(self.i) != Some(&b'"') {
            return None;
        }
        self.i += 1;
        let mut out = String::new();
        loop {
            let c = *self.s.get(self.i)?;
            self.i += 1;
            match c {
                b'"' => return Some(Json::Str(out)),
                b'\\' => {
                    let e = *self.s.get(self.i)?;
                    self.i += 1;
                    match e {
                        b'"' => out.push('"'),
                        b'\\' => out.push('\\'),
                        b'/' => out.push('/'),
                        b'b' => out.push('\u{8}'),
                        b'f' => out.push('\u{c}'),
                        b'n' => out.push('\n'),
                        b'r' => out.push('\r'),
                        b't' => out.push('\t'),
                        b'u' => {
                            let hex = std::str::from_utf8(self.s.get(self.i..self.i + 4)?).ok()?;
                            self.i += 4;
                            let mut code = u32::from_str_radix(hex, 16).ok()?;
                            if (0xD800..0xDC00).contains(&code)
                                && self.s[self.i..].starts_with(b"\\u")
                            {
                                let lo = std::str::from_utf8(self.s.get(self.i + 2..self.i + 6)?)
                                    .ok()?;
                                let lo = u32::from_str_radix(lo, 16).ok()?;
                                self.i += 6;
                                code =
                                    0x10000 + ((code - 0xD800) << 10) + (lo.checked_sub(0xDC00)?);
                            }
                            out.push(char::from_u32(code)?);
                        }
                        _ => return None,
                    }
                }
                c if c < 0x20 => return None,
                _ => {
                    // Copy the UTF-8 sequence this byte starts.
                    let start = self.i - 1;
                    let mut end = self.i;
                    while end < self.s.len() && (self.s[end] & 0xC0) == 0x80 {
                        end += 1;
                    }
                    out.push_str(std::str::from_utf8(&self.s[start..end]).ok()?);
                    self.i = end;
                }
            }
        }
    }
}

fn normalize_exponent(t: &str) -> String {
    let (neg, body) = match t.strip_prefix('-') {
        Some(r) => ("-", r),
        None => ("", t),
    };
    match super::floattext::expand_exponent(body) {
        Some(plain) => format!("{neg}{plain}"),
        None => t.to_string(),
    }
}

/// Parses JSON text.
pub fn parse(s: &str) -> Result<Json> {
    let mut p = Parser {
        s: s.as_bytes(),
        i: 0,
    };
    let v = p.value(0).ok_or_else(|| bad(s))?;
    p.ws();
    if p.i != p.s.len() {
        return Err(bad(s));
    }
    Ok(v)
}

/// JSON text in PostgreSQL's canonical jsonb form.
pub fn canonical(s: &str) -> Result<String> {
    Ok(parse(s)?.text())
}

fn texts(a: &ArrayRef) -> Result<StringArray> {
    Ok(cast(a, &DataType::Utf8)?.as_string::<i32>().clone())
}

fn map(a: &ArrayRef, f: impl Fn(&str) -> Result<Option<String>>) -> Result<ArrayRef> {
    let t = texts(a)?;
    let mut out = Vec::with_capacity(t.len());
    for v in t.iter() {
        out.push(match v {
            Some(s) => f(s)?,
            None => None,
        });
    }
    Ok(Arc::new(StringArray::from(out)))
}

/// The element `key` selects: an object's field by text, an array's by
/// integer (negative counts from the end).
fn step<'a>(v: &'a Json, key: &str, by_index: bool) -> Option<&'a Json> {
    match v {
        Json::Obj(fields) if !by_index => fields.iter().find(|(k, _)| k == key).map(|(_, v)| v),
        Json::Arr(items) => {
            let i: i64 = key.parse().ok()?;
            let i = if i < 0 { items.len() as i64 + i } else { i };
            items.get(usize::try_from(i).ok()?)
        }
        // A scalar document is a one-element array to PostgreSQL's `->`.
        Json::Obj(_) => None,
        scalar if by_index && matches!(key.parse::<i64>(), Ok(0 | -1)) => Some(scalar),
        _ => None,
    }
}

fn out_of(v: Option<&Json>, as_text: bool) -> Option<String> {
    match (v?, as_text) {
        (Json::Null, true) => None,
        (Json::Str(s), true) => Some(s.clone()),
        (v, _) => Some(v.text()),
    }
}

/// `j -> key` / `j ->> key`; text that is not JSON gives NULL.
fn get(a: &[ArrayRef], as_text: bool) -> Result<ArrayRef> {
    let docs = texts(&a[0])?;
    let by_index = a[1].data_type().is_integer();
    let keys = texts(&a[1])?;
    let mut out = Vec::with_capacity(docs.len());
    for i in 0..docs.len() {
        let ki = if keys.len() == 1 { 0 } else { i };
        if docs.is_null(i) || keys.is_null(ki) {
            out.push(None);
            continue;
        }
        let Ok(v) = parse(docs.value(i)) else {
            out.push(None);
            continue;
        };
        out.push(out_of(step(&v, keys.value(ki), by_index), as_text));
    }
    Ok(Arc::new(StringArray::from(out)))
}

/// `j #> '{a,0,b}'` / `j #>> ...`.
fn path(a: &[ArrayRef], as_text: bool) -> Result<ArrayRef> {
    let docs = texts(&a[0])?;
    let paths = texts(&a[1])?;
    let mut out = Vec::with_capacity(docs.len());
    for i in 0..docs.len() {
        let pi = if paths.len() == 1 { 0 } else { i };
        if docs.is_null(i) || paths.is_null(pi) {
            out.push(None);
            continue;
        }
        let Some(keys) = super::textout::parse_array(paths.value(pi)) else {
            return exec_err!("malformed array literal: \"{}\"", paths.value(pi));
        };
        let Ok(v) = parse(docs.value(i)) else {
            out.push(None);
            continue;
        };
        let mut cur = Some(&v);
        for k in keys.iter() {
            cur = match (cur, k) {
                (Some(c), Some(k)) => step(c, k, matches!(c, Json::Arr(_))),
                _ => None,
            };
        }
        out.push(out_of(cur, as_text));
    }
    Ok(Arc::new(StringArray::from(out)))
}

fn contains(a: &[ArrayRef], _: &DataType) -> Result<ArrayRef> {
    let (x, y) = (texts(&a[0])?, texts(&a[1])?);
    let n = x.len().max(y.len());
    let mut out = Vec::with_capacity(n);
    for i in 0..n {
        let (xi, yi) = (
            if x.len() == 1 { 0 } else { i },
            if y.len() == 1 { 0 } else { i },
        );
        if x.is_null(xi) || y.is_null(yi) {
            out.push(None);
            continue;
        }
        out.push(Some(parse(x.value(xi))?.contains(&parse(y.value(yi))?)));
    }
    Ok(Arc::new(BooleanArray::from(out)))
}

/// `j ? key`: an object's key, or a string element of an array.
fn exists(a: &[ArrayRef], _: &DataType) -> Result<ArrayRef> {
    let (x, k) = (texts(&a[0])?, texts(&a[1])?);
    let mut out = Vec::with_capacity(x.len());
    for i in 0..x.len() {
        let ki = if k.len() == 1 { 0 } else { i };
        if x.is_null(i) || k.is_null(ki) {
            out.push(None);
            continue;
        }
        let key = k.value(ki);
        out.push(Some(match parse(x.value(i))? {
            Json::Obj(f) => f.iter().any(|(n, _)| n == key),
            Json::Arr(items) => items.iter().any(|v| matches!(v, Json::Str(s) if s == key)),
            Json::Str(s) => s == key,
            _ => false,
        }));
    }
    Ok(Arc::new(BooleanArray::from(out)))
}

/// `batch` (rows for a table of `schema`, possibly with more columns after)
/// with its jsonb columns checked and in canonical form.
pub fn normalize_columns(
    schema: &datafusion::arrow::datatypes::Schema,
    batch: datafusion::arrow::array::RecordBatch,
) -> Result<datafusion::arrow::array::RecordBatch> {
    if !schema.fields().iter().any(|f| is_jsonb(f)) {
        return Ok(batch);
    }
    let mut cols = batch.columns().to_vec();
    for (i, f) in schema.fields().iter().enumerate() {
        if is_jsonb(f) && i < cols.len() {
            cols[i] = map(&cols[i], |s| Ok(Some(canonical(s)?)))?;
        }
    }
    Ok(datafusion::arrow::array::RecordBatch::try_new_with_options(
        batch.schema(),
        cols,
        &datafusion::arrow::array::RecordBatchOptions::new().with_row_count(Some(batch.num_rows())),
    )?)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn canonical_like_postgres() {
        assert_eq!(
            canonical(r#"{"b":1, "a" : [1,2,{"cc":null,"c":true}]}"#)
                .ok()
                .as_deref(),
            Some(r#"{"a": [1, 2, {"c": true, "cc": null}], "b": 1}"#)
        );
        assert_eq!(
            canonical(r#"{"a":1,"a":2}"#).ok().as_deref(),
            Some(r#"{"a": 2}"#)
        );
        assert_eq!(canonical("1e2").ok().as_deref(), Some("100"));
        assert_eq!(canonical(r#""\u00e9\n""#).ok().as_deref(), Some("\"é\\n\""));
        assert!(canonical("{").is_err());
        assert!(parse(r#"{"a":{"b":[1,2]}}"#)
            .unwrap_or(Json::Null)
            .contains(&parse(r#"{"a":{"b":[2]}}"#).unwrap_or(Json::Null)));
    }
}
