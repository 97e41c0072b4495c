//! PostgreSQL's text of floats (`extra_float_digits = 1`): shortest exact
//! digits (Ryu, ties to even), `1e+20`, `1.5e-05`, `-0`, `NaN`,
//! `Infinity`. Used for text results and for `float::text` casts.

use std::sync::Arc;

use datafusion::arrow::array::{ArrayRef, AsArray, StringArray};
use datafusion::arrow::datatypes::{DataType, Float32Type, Float64Type};
use datafusion::error::Result;
use datafusion::logical_expr::ScalarUDF;

use super::simple::{any, udf};

pub const FLOAT_TEXT: &str = "pg_float_text";

pub fn functions() -> Vec<ScalarUDF> {
    vec![udf(FLOAT_TEXT, any(1), |_| Ok(DataType::Utf8), float_text)]
}

fn float_text(a: &[ArrayRef], _: &DataType) -> Result<ArrayRef> {
    let out: StringArray = match a[0].data_type() {
        DataType::Float32 => a[0]
            .as_primitive::<Float32Type>()
            .iter()
            .map(|v| v.map(float4_text))
            .collect(),
        _ => {
            let f = datafusion::arrow::compute::cast(&a[0], &DataType::Float64)?;
            f.as_primitive::<Float64Type>()
                .iter()
                .map(|v| v.map(float8_text))
                .collect()
        }
    };
    Ok(Arc::new(out))
}

/// Formats a float the way PostgreSQL does with `extra_float_digits = 1`.
pub fn format_float(v: f64, decimal: String, shortest: String) -> String {
    if v.is_nan() {
        return "NaN".into();
    }
    if v.is_infinite() {
        return if v > 0.0 {
            "Infinity".into()
        } else {
            "-Infinity".into()
        };
    }
    if v == 0.0 {
        return if v.is_sign_negative() {
            "-0".into()
        } else {
            "0".into()
        };
    }
    let exp = v.abs().log10().floor() as i32;
    if !(-4..15).contains(&exp) {
        // Rust's `{:e}` gives the shortest digits: 1.5e-5 -> PostgreSQL's 1.5e-05.
        let s = shortest;
        if let Some((mant, e)) = s.split_once('e') {
            let (sign, digits) = match e.strip_prefix('-') {
                Some(d) => ('-', d),
                None => ('+', e),
            };
            return format!("{mant}e{sign}{digits:0>2}");
        }
        return s;
    }
    decimal
}

/// The decimal and exponent forms (`0.003`, `3e-3`) of a finite float's
/// shortest round-trip digits as Ryu gives them (ties to even, as
/// PostgreSQL's own Ryu does; Rust's formatter rounds ties up).
pub fn shortest_forms(ryu: &str) -> (String, String) {
    let (neg, body) = match ryu.strip_prefix('-') {
        Some(b) => ("-", b),
        None => ("", ryu),
    };
    let (mant, exp) = match body.split_once(['e', 'E']) {
        Some((m, e)) => (m, e.parse::<i32>().unwrap_or(0)),
        None => (body, 0),
    };
    let (int, frac) = mant.split_once('.').unwrap_or((mant, ""));
    let all = format!("{int}{frac}");
    let lead = all.len() - all.trim_start_matches('0').len();
    let digits = all.trim_start_matches('0').trim_end_matches('0');
    if digits.is_empty() {
        return (format!("{neg}0"), format!("{neg}0e0"));
    }
    // value = 0.digits x 10^point
    let point = int.len() as i32 + exp - lead as i32;
    let n = digits.len() as i32;
    let decimal = if point <= 0 {
        format!("{neg}0.{}{digits}", "0".repeat((-point) as usize))
    } else if point >= n {
        format!("{neg}{digits}{}", "0".repeat((point - n) as usize))
    } else {
        format!(
            "{neg}{}.{}",
            &digits[..point as usize],
            &digits[point as usize..]
        )
    };
    let m = if n > 1 {
        format!("{}.{}", &digits[..1], &digits[1..])
    } else {
        digits.to_string()
    };
    (decimal, format!("{neg}{m}e{}", point - 1))
}

/// PostgreSQL's text of a float8.
pub fn float8_text(v: f64) -> String {
    if !v.is_finite() {
        return format_float(v, String::new(), String::new());
    }
    let (d, e) = shortest_forms(ryu::Buffer::new().format_finite(v));
    format_float(v, d, e)
}

/// PostgreSQL's text of a float4.
pub fn float4_text(v: f32) -> String {
    if !v.is_finite() {
        return format_float(f64::from(v), String::new(), String::new());
    }
    let (d, e) = shortest_forms(ryu::Buffer::new().format_finite(v));
    format_float(f64::from(v), d, e)
}

/// An unsigned number with an exponent (`1.5e-2`) written without one
/// (`0.015`); `None` without an exponent or beyond |exponent| 1000.
pub fn expand_exponent(n: &str) -> Option<String> {
    let (mant, exp) = n.split_once(['e', 'E'])?;
    let exp: i64 = exp.parse().ok()?;
    if exp.abs() > 1000 {
        return None;
    }
    let (int, frac) = mant.split_once('.').unwrap_or((mant, ""));
    let digits = format!("{int}{frac}");
    let point = int.len() as i64 + exp;
    let s = if point <= 0 {
        format!("0.{}{digits}", "0".repeat((-point) as usize))
    } else if point as usize >= digits.len() {
        format!("{digits}{}", "0".repeat(point as usize - digits.len()))
    } else {
        format!(
            "{}.{}",
            &digits[..point as usize],
            &digits[point as usize..]
        )
    };
    let s = s.trim_start_matches('0');
    Some(if s.is_empty() || s.starts_with('.') {
        format!("0{s}")
    } else {
        s.to_string()
    })
}
