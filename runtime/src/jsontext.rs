//! A value as JSON text, as PostgreSQL's `to_jsonb` writes it (for
//! `jsonb_agg`): numbers and booleans bare, text quoted, jsonb embedded,
//! timestamps as ISO 8601 strings.

use datafusion::arrow::array::Array;
use datafusion::common::ScalarValue;

/// Appends `s` as a JSON string.
pub fn push_json_string(s: &str, out: &mut String) {
    out.push('"');
    for c in s.chars() {
        match c {
            '"' => out.push_str("\\\""),
            '\\' => out.push_str("\\\\"),
            '\n' => out.push_str("\\n"),
            '\r' => out.push_str("\\r"),
            '\t' => out.push_str("\\t"),
            '\u{8}' => out.push_str("\\b"),
            '\u{c}' => out.push_str("\\f"),
            c if (c as u32) < 0x20 => out.push_str(&format!("\\u{:04x}", c as u32)),
            c => out.push(c),
        }
    }
    out.push('"');
}

/// Appends `v` as JSON; `jsonb` when a text value is already a jsonb
/// document (in canonical form).
pub fn push_json(v: &ScalarValue, jsonb: bool, out: &mut String) {
    use ScalarValue as S;
    if v.is_null() {
        out.push_str("null");
        return;
    }
    match v {
        S::Boolean(Some(b)) => out.push_str(if *b { "true" } else { "false" }),
        S::Utf8(Some(s)) | S::LargeUtf8(Some(s)) | S::Utf8View(Some(s)) => {
            if jsonb {
                out.push_str(s)
            } else {
                push_json_string(s, out)
            }
        }
        S::Float32(Some(f)) if f.is_finite() => out.push_str(&format!("{f}")),
        S::Float64(Some(f)) if f.is_finite() => out.push_str(&format!("{f}")),
        S::Int8(_)
        | S::Int16(_)
        | S::Int32(_)
        | S::Int64(_)
        | S::UInt8(_)
        | S::UInt16(_)
        | S::UInt32(_)
        | S::UInt64(_)
        | S::Decimal128(_, _, _) => out.push_str(&v.to_string()),
        S::TimestampSecond(..)
        | S::TimestampMillisecond(..)
        | S::TimestampMicrosecond(..)
        | S::TimestampNanosecond(..) => {
            let text = v.to_string();
            push_json_string(text.trim_end_matches(".000000000"), out)
        }
        S::List(a) if a.len() == 1 => {
            let values = a.value(0);
            out.push('[');
            for i in 0..values.len() {
                if i > 0 {
                    out.push_str(", ");
                }
                match ScalarValue::try_from_array(values.as_ref(), i) {
                    Ok(x) => push_json(&x, false, out),
                    Err(_) => out.push_str("null"),
                }
            }
            out.push(']');
        }
        other => push_json_string(&other.to_string(), out),
    }
}
