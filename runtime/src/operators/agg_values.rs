//! Aggregates computed from a group's multiset of values, so that deleting a
//! row is as easy as adding one: `bool_and`/`every`, `bool_or`, `bit_and`,
//! `bit_or`, `bit_xor`, `string_agg(x, sep [ORDER BY ...])` and
//! `array_agg(x [ORDER BY ...])`.
//!
//! Each input row becomes one multiset element: the order-preserving bytes
//! of its `ORDER BY` values (none without ORDER BY), then the value's
//! memcomparable encoding, then the length of the order part (4 bytes, big
//! endian). Both encodings are prefix-free, so elements sort by the order
//! values first, then by value, and the trailing length never decides.

use datafusion::arrow::array::{ArrayRef, RecordBatch};
use datafusion::common::ScalarValue;
use freshet_storage::codec::{decode_datum, encode_datum, encode_rows};

use super::expr::eval;
use crate::error::{Result, RuntimeError};
use crate::plan::{AggCall, AggKind};

/// Whether `kind` is computed here.
pub fn is_value_agg(kind: AggKind) -> bool {
    matches!(
        kind,
        AggKind::BoolAnd
            | AggKind::BoolOr
            | AggKind::BitAnd
            | AggKind::BitOr
            | AggKind::BitXor
            | AggKind::StringAgg
            | AggKind::ArrayAgg
            | AggKind::JsonbAgg
    )
}

/// The multiset element of every row of `batch` (`None` for a NULL value,
/// which these aggregates skip).
pub fn elements(
    a: &AggCall,
    values: &ArrayRef,
    batch: &RecordBatch,
) -> Result<Vec<Option<Vec<u8>>>> {
    let n = batch.num_rows();
    let order_cols = a
        .order
        .iter()
        .map(|(e, _)| eval(e, batch))
        .collect::<Result<Vec<_>>>()?;
    // Each column's datums encoded once for the batch.
    let encoded = order_cols
        .iter()
        .map(|c| encode_rows(std::slice::from_ref(c), n))
        .collect::<std::result::Result<Vec<_>, _>>()?;
    let mut out = Vec::with_capacity(n);
    for row in 0..n {
        // array_agg keeps NULLs, as PostgreSQL's does; the others skip them.
        if values.is_null(row) && !matches!(a.kind, AggKind::ArrayAgg | AggKind::JsonbAgg) {
            out.push(None);
            continue;
        }
        let mut k = Vec::new();
        for (((_, opts), col), enc) in a.order.iter().zip(&order_cols).zip(&encoded) {
            super::sorted::sort_bytes(&mut k, &enc[row], col.is_null(row), *opts);
        }
        let order_len = k.len() as u32;
        encode_datum(&mut k, &ScalarValue::try_from_array(values.as_ref(), row)?)?;
        k.extend_from_slice(&order_len.to_be_bytes());
        out.push(Some(k));
    }
    Ok(out)
}

/// The value of an element.
fn value_of(a: &AggCall, element: &[u8]) -> Result<ScalarValue> {
    let bad = || RuntimeError::Internal("bad aggregate element".into());
    if element.len() < 4 {
        return Err(bad());
    }
    let (body, len) = element.split_at(element.len() - 4);
    let order_len = u32::from_be_bytes(len.try_into().map_err(|_| bad())?) as usize;
    let mut v = body.get(order_len..).ok_or_else(bad)?;
    Ok(decode_datum(&mut v, &a.input_type)?)
}

/// The aggregate of `elements` (in order, with their counts).
pub fn finish<'a>(
    a: &AggCall,
    elements: impl Iterator<Item = (&'a Vec<u8>, &'a i64)>,
) -> Result<ScalarValue> {
    let mut any = false;
    let mut bools = (true, false); // (and, or)
    let mut bits: Option<i128> = None;
    let mut text = String::new();
    let mut items: Vec<ScalarValue> = Vec::new();
    let mut last: Option<ScalarValue> = None;
    for (e, &count) in elements {
        let v = value_of(a, e)?;
        // DISTINCT: each value once; elements of one value are adjacent
        // only without ORDER BY, so compare with the last one seen.
        let copies = if a.distinct {
            if last.as_ref() == Some(&v) {
                continue;
            }
            1
        } else {
            count.max(0)
        };
        if copies == 0 {
            continue;
        }
        match a.kind {
            AggKind::BoolAnd | AggKind::BoolOr => {
                if let ScalarValue::Boolean(Some(b)) = v {
                    bools = (bools.0 && b, bools.1 || b);
                }
            }
            AggKind::BitAnd | AggKind::BitOr | AggKind::BitXor => {
                let x = match v.cast_to(&datafusion::arrow::datatypes::DataType::Int64)? {
                    ScalarValue::Int64(Some(x)) => i128::from(x),
                    _ => continue,
                };
                // XOR of an even number of copies cancels out.
                let x = if a.kind == AggKind::BitXor && copies % 2 == 0 {
                    0
                } else {
                    x
                };
                bits = Some(match (a.kind, bits) {
                    (_, None) => x,
                    (AggKind::BitAnd, Some(b)) => b & x,
                    (AggKind::BitOr, Some(b)) => b | x,
                    (_, Some(b)) => b ^ x,
                });
            }
            AggKind::StringAgg => {
                let s = match &v {
                    ScalarValue::Utf8(Some(s))
                    | ScalarValue::LargeUtf8(Some(s))
                    | ScalarValue::Utf8View(Some(s)) => s.clone(),
                    other => other.to_string(),
                };
                for _ in 0..copies {
                    if any {
                        text.push_str(a.separator.as_deref().unwrap_or(""));
                    }
                    text.push_str(&s);
                    any = true;
                }
            }
            AggKind::ArrayAgg | AggKind::JsonbAgg => {
                for _ in 0..copies {
                    items.push(v.clone());
                }
            }
            _ => return Err(RuntimeError::Internal("not a value aggregate".into())),
        }
        any = true;
        last = Some(v);
    }
    let out = &a.output_type;
    if !any {
        return Ok(ScalarValue::try_from(out)?);
    }
    let v = match a.kind {
        AggKind::BoolAnd => ScalarValue::Boolean(Some(bools.0)),
        AggKind::BoolOr => ScalarValue::Boolean(Some(bools.1)),
        AggKind::StringAgg => ScalarValue::Utf8(Some(text)),
        AggKind::JsonbAgg => {
            let mut t = String::from("[");
            for (i, v) in items.iter().enumerate() {
                if i > 0 {
                    t.push_str(", ");
                }
                crate::jsontext::push_json(v, a.input_jsonb, &mut t);
            }
            t.push(']');
            ScalarValue::Utf8(Some(t))
        }
        AggKind::ArrayAgg => {
            let (item, nullable) = match out {
                datafusion::arrow::datatypes::DataType::List(f) => {
                    (f.data_type().clone(), f.is_nullable())
                }
                _ => (a.input_type.clone(), true),
            };
            ScalarValue::List(ScalarValue::new_list(&items, &item, nullable))
        }
        _ => ScalarValue::Int64(bits.map(|b| b as i64)),
    };
    Ok(if &v.data_type() != out {
        v.cast_to(out)?
    } else {
        v
    })
}
