//! Integer arithmetic that fails on overflow (`integer out of range`,
//! SQLSTATE 22003) and float division that fails on a zero divisor
//! (`division by zero`, 22012), as PostgreSQL's operators do. DataFusion's
//! wrap around and give `Infinity`.

use datafusion::arrow::array::{Array, ArrayRef, AsArray, PrimitiveArray};
use datafusion::arrow::compute::kernels::numeric;
use datafusion::arrow::datatypes::{DataType, Float32Type, Float64Type};
use datafusion::common::exec_err;
use datafusion::error::Result;
use datafusion::logical_expr::ScalarUDF;

use super::simple::{any, udf};

pub const ADD: &str = "pg_int_add";
pub const SUB: &str = "pg_int_sub";
pub const MUL: &str = "pg_int_mul";
pub const FLOAT_DIV: &str = "pg_float_div";

pub fn functions() -> Vec<ScalarUDF> {
    vec![
        udf(ADD, any(2), same, |a, _| checked(a, numeric::add)),
        udf(SUB, any(2), same, |a, _| checked(a, numeric::sub)),
        udf(MUL, any(2), same, |a, _| checked(a, numeric::mul)),
        udf(FLOAT_DIV, any(2), same, float_div),
    ]
    .into_iter()
    .chain(numeric_functions())
    .collect()
}

fn same(args: &[DataType]) -> Result<DataType> {
    match args {
        [a, b] if a == b => Ok(a.clone()),
        [a, b] => exec_err!("arithmetic on {a} and {b}"),
        _ => exec_err!("arithmetic takes two arguments"),
    }
}

/// PostgreSQL's name of an integer type in its overflow message.
fn type_word(t: &DataType) -> &'static str {
    match t {
        DataType::Int16 => "smallint",
        DataType::Int64 => "bigint",
        _ => "integer",
    }
}

fn checked(
    a: &[ArrayRef],
    op: fn(
        &dyn datafusion::arrow::array::Datum,
        &dyn datafusion::arrow::array::Datum,
    ) -> std::result::Result<ArrayRef, datafusion::arrow::error::ArrowError>,
) -> Result<ArrayRef> {
    let [l, r] = a else {
        return exec_err!("arithmetic takes two arguments");
    };
    match op(l, r) {
        Ok(v) => Ok(v),
        Err(_) => exec_err!("{} out of range", type_word(l.data_type())),
    }
}

fn float_div(a: &[ArrayRef], _: &DataType) -> Result<ArrayRef> {
    let [l, r] = a else {
        return exec_err!("division takes two arguments");
    };
    let zero = match r.data_type() {
        DataType::Float64 => r
            .as_primitive::<Float64Type>()
            .iter()
            .any(|v| v == Some(0.0)),
        DataType::Float32 => r
            .as_primitive::<Float32Type>()
            .iter()
            .any(|v| v == Some(0.0)),
        _ => false,
    };
    if zero {
        // Only rows that reach the division count: a NULL dividend gives NULL.
        let hit = (0..r.len()).any(|i| {
            l.is_valid(i)
                && r.is_valid(i)
                && match r.data_type() {
                    DataType::Float64 => r.as_primitive::<Float64Type>().value(i) == 0.0,
                    _ => r.as_primitive::<Float32Type>().value(i) == 0.0,
                }
        });
        if hit {
            return exec_err!("division by zero");
        }
    }
    Ok(numeric::div(l, r)?)
}

pub const NUMERIC_DIV: &str = "pg_numeric_div";
pub const NUMERIC_ROUND: &str = "pg_numeric_round";
pub const RINT: &str = "pg_rint";

/// Numeric functions: division at PostgreSQL's minimum of 16 fractional
/// digits (never fewer than either operand has), rounding half away from
/// zero to an integer (numeric to integer casts), and float rounding half
/// to even (float to integer casts).
pub fn numeric_functions() -> Vec<ScalarUDF> {
    vec![
        udf(NUMERIC_DIV, any(2), div_type, numeric_div),
        udf(
            NUMERIC_ROUND,
            any(1),
            |_| Ok(DataType::Decimal128(38, 0)),
            numeric_round,
        ),
        udf(RINT, any(1), |_| Ok(DataType::Float64), rint),
    ]
}

/// The scale of `a / b`: at least 16, and at least either operand's.
pub fn div_scale(s1: i8, s2: i8) -> i8 {
    s1.max(s2).clamp(16, 38)
}

fn div_type(args: &[DataType]) -> Result<DataType> {
    match args {
        [DataType::Decimal128(_, s1), DataType::Decimal128(_, s2)] => {
            Ok(DataType::Decimal128(38, div_scale(*s1, *s2)))
        }
        _ => exec_err!("numeric division takes two numerics"),
    }
}

fn numeric_div(a: &[ArrayRef], ret: &DataType) -> Result<ArrayRef> {
    use datafusion::arrow::datatypes::{i256, Decimal128Type};
    let [l, r] = a else {
        return exec_err!("division takes two arguments");
    };
    let (DataType::Decimal128(_, s1), DataType::Decimal128(_, s2), DataType::Decimal128(_, s)) =
        (l.data_type(), r.data_type(), ret)
    else {
        return exec_err!("numeric division takes two numerics");
    };
    let (l, r) = (
        l.as_primitive::<Decimal128Type>(),
        r.as_primitive::<Decimal128Type>(),
    );
    // l / 10^s1 / (r / 10^s2) at scale s = l * 10^(s + s2 - s1) / r.
    let shift = i32::from(*s) + i32::from(*s2) - i32::from(*s1);
    let ten = i256::from_i128(10);
    let max = i256::from_i128(10i128.pow(38));
    let mut out = Vec::with_capacity(l.len());
    for i in 0..l.len() {
        if l.is_null(i) || r.is_null(i) {
            out.push(None);
            continue;
        }
        let (x, y) = (i256::from_i128(l.value(i)), i256::from_i128(r.value(i)));
        if y == i256::ZERO {
            return exec_err!("division by zero");
        }
        let (mut num, mut den) = (x, y);
        if shift >= 0 {
            num = num.wrapping_mul(ten.wrapping_pow(shift as u32));
        } else {
            den = den.wrapping_mul(ten.wrapping_pow((-shift) as u32));
        }
        // Round half away from zero, as PostgreSQL does.
        let q = num.wrapping_div(den);
        let rem = num.wrapping_rem(den);
        let twice = rem.wrapping_abs().wrapping_mul(i256::from_i128(2));
        let q = if twice >= den.wrapping_abs() {
            if (num < i256::ZERO) != (den < i256::ZERO) {
                q.wrapping_sub(i256::ONE)
            } else {
                q.wrapping_add(i256::ONE)
            }
        } else {
            q
        };
        if q.wrapping_abs() >= max {
            return exec_err!("numeric field overflow");
        }
        out.push(q.to_i128());
    }
    let DataType::Decimal128(p, s) = ret else {
        return exec_err!("numeric division");
    };
    Ok(std::sync::Arc::new(
        PrimitiveArray::<Decimal128Type>::from(out).with_precision_and_scale(*p, *s)?,
    ))
}

fn numeric_round(a: &[ArrayRef], _: &DataType) -> Result<ArrayRef> {
    use datafusion::arrow::datatypes::Decimal128Type;
    let DataType::Decimal128(_, s) = a[0].data_type() else {
        return exec_err!("expected a numeric");
    };
    let s = *s;
    let v = a[0].as_primitive::<Decimal128Type>();
    let out: PrimitiveArray<Decimal128Type> = if s <= 0 {
        v.clone()
    } else {
        let p = 10i128.pow(s as u32);
        v.unary(|x| {
            let q = x / p;
            let r = (x % p).abs();
            if r * 2 >= p {
                q + x.signum()
            } else {
                q
            }
        })
    };
    Ok(std::sync::Arc::new(out.with_precision_and_scale(38, 0)?))
}

fn rint(a: &[ArrayRef], _: &DataType) -> Result<ArrayRef> {
    let v = datafusion::arrow::compute::cast(&a[0], &DataType::Float64)?;
    let out: PrimitiveArray<Float64Type> =
        v.as_primitive::<Float64Type>().unary(f64::round_ties_even);
    Ok(std::sync::Arc::new(out))
}
