//! Column-at-a-time fast paths of the row codec for the common types.
//!
//! Same bytes as [`crate::codec::encode_datum`] / [`crate::codec::decode_datum`]
//! (tests check that), without a `ScalarValue` per datum. Types without a
//! fast path fall back to the datum-at-a-time code.

use std::sync::Arc;

use datafusion::arrow::array::{
    Array, ArrayRef, AsArray, BinaryBuilder, BooleanBuilder, Date32Builder, Decimal128Builder,
    Float32Builder, Float64Builder, Int16Builder, Int32Builder, Int64Builder, Int8Builder,
    StringBuilder, TimestampMicrosecondBuilder, TimestampMillisecondBuilder,
    TimestampNanosecondBuilder, TimestampSecondBuilder,
};
use datafusion::arrow::datatypes::{
    DataType, Date32Type, Decimal128Type, Float32Type, Float64Type, Int16Type, Int32Type,
    Int64Type, Int8Type, TimeUnit, TimestampMicrosecondType, TimestampMillisecondType,
    TimestampNanosecondType, TimestampSecondType,
};
use datafusion::common::ScalarValue;

use crate::codec::{decode_datum, encode_datum, put_str, take};
use crate::error::{Result, StorageError};

macro_rules! enc_prim {
    ($rows:expr, $col:expr, $t:ty, |$v:ident, $out:ident| $body:expr) => {{
        let a = $col.as_primitive::<$t>();
        for (i, $out) in $rows.iter_mut().enumerate() {
            if a.is_null(i) {
                $out.push(0);
            } else {
                $out.push(1);
                let $v = a.value(i);
                $body;
            }
        }
    }};
}

/// Appends the encoding of every row of `col` to `rows[i]`.
pub fn encode_column(rows: &mut [Vec<u8>], col: &ArrayRef) -> Result<()> {
    match col.data_type() {
        DataType::Int8 => enc_prim!(rows, col, Int8Type, |v, o| o.push((v as u8) ^ 0x80)),
        DataType::Int16 => enc_prim!(rows, col, Int16Type, |v, o| o
            .extend_from_slice(&((v as u16) ^ 0x8000).to_be_bytes())),
        DataType::Int32 => enc_prim!(rows, col, Int32Type, |v, o| o
            .extend_from_slice(&((v as u32) ^ (1 << 31)).to_be_bytes())),
        DataType::Date32 => enc_prim!(rows, col, Date32Type, |v, o| o
            .extend_from_slice(&((v as u32) ^ (1 << 31)).to_be_bytes())),
        DataType::Int64 => enc_prim!(rows, col, Int64Type, |v, o| o
            .extend_from_slice(&((v as u64) ^ (1 << 63)).to_be_bytes())),
        DataType::Timestamp(TimeUnit::Second, _) => {
            enc_prim!(rows, col, TimestampSecondType, |v, o| o
                .extend_from_slice(&((v as u64) ^ (1 << 63)).to_be_bytes()))
        }
        DataType::Timestamp(TimeUnit::Millisecond, _) => {
            enc_prim!(rows, col, TimestampMillisecondType, |v, o| o
                .extend_from_slice(&((v as u64) ^ (1 << 63)).to_be_bytes()))
        }
        DataType::Timestamp(TimeUnit::Microsecond, _) => {
            enc_prim!(rows, col, TimestampMicrosecondType, |v, o| o
                .extend_from_slice(&((v as u64) ^ (1 << 63)).to_be_bytes()))
        }
        DataType::Timestamp(TimeUnit::Nanosecond, _) => {
            enc_prim!(rows, col, TimestampNanosecondType, |v, o| o
                .extend_from_slice(&((v as u64) ^ (1 << 63)).to_be_bytes()))
        }
        DataType::Decimal128(_, _) => {
            enc_prim!(rows, col, Decimal128Type, |v, o| o
                .extend_from_slice(&((v as u128) ^ (1 << 127)).to_be_bytes()))
        }
        DataType::Float64 => enc_prim!(rows, col, Float64Type, |v, o| {
            let v = if v.is_nan() {
                f64::NAN
            } else if v == 0.0 {
                0.0
            } else {
                v
            };
            let bits = v.to_bits();
            let enc = if bits >> 63 == 1 {
                !bits
            } else {
                bits ^ (1 << 63)
            };
            o.extend_from_slice(&enc.to_be_bytes())
        }),
        DataType::Float32 => enc_prim!(rows, col, Float32Type, |v, o| {
            let v = if v.is_nan() {
                f32::NAN
            } else if v == 0.0 {
                0.0
            } else {
                v
            };
            let bits = v.to_bits();
            let enc = if bits >> 31 == 1 {
                !bits
            } else {
                bits ^ (1 << 31)
            };
            o.extend_from_slice(&enc.to_be_bytes())
        }),
        DataType::Boolean => {
            let a = col.as_boolean();
            for (i, o) in rows.iter_mut().enumerate() {
                if a.is_null(i) {
                    o.push(0);
                } else {
                    o.push(1);
                    o.push(u8::from(a.value(i)));
                }
            }
        }
        DataType::Utf8 => {
            let a = col.as_string::<i32>();
            for (i, o) in rows.iter_mut().enumerate() {
                if a.is_null(i) {
                    o.push(0);
                } else {
                    o.push(1);
                    put_str(o, a.value(i).as_bytes());
                }
            }
        }
        DataType::Binary => {
            let a = col.as_binary::<i32>();
            for (i, o) in rows.iter_mut().enumerate() {
                if a.is_null(i) {
                    o.push(0);
                } else {
                    o.push(1);
                    put_str(o, a.value(i));
                }
            }
        }
        _ => {
            for (i, o) in rows.iter_mut().enumerate() {
                encode_datum(o, &ScalarValue::try_from_array(col.as_ref(), i)?)?;
            }
        }
    }
    Ok(())
}

/// Reads an escaped string: `Some(bytes)` borrowed from `buf` when it holds no
/// escapes, else `None` with the bytes unescaped into `scratch`.
pub(crate) fn get_str<'a>(buf: &mut &'a [u8], scratch: &mut Vec<u8>) -> Result<Option<&'a [u8]>> {
    // Fast path: no escaped zero before the terminator.
    let b: &'a [u8] = buf;
    let mut i = 0;
    while i + 1 < b.len() {
        if b[i] == 0 {
            if b[i + 1] == 0 {
                *buf = &b[i + 2..];
                return Ok(Some(&b[..i]));
            }
            break;
        }
        i += 1;
    }
    scratch.clear();
    loop {
        let c = take(buf, 1)?[0];
        if c == 0 {
            match take(buf, 1)?[0] {
                0 => return Ok(None),
                0xFF => scratch.push(0),
                _ => return Err(StorageError::Corrupt("bad string escape".into())),
            }
        } else {
            scratch.push(c);
        }
    }
}

macro_rules! u_be {
    ($buf:expr, $n:expr, $u:ty) => {{
        let s = take($buf, $n)?;
        let mut a = [0u8; $n];
        a.copy_from_slice(s);
        <$u>::from_be_bytes(a)
    }};
}

enum Col {
    I8(Int8Builder),
    I16(Int16Builder),
    I32(Int32Builder),
    I64(Int64Builder),
    D32(Date32Builder),
    F32(Float32Builder),
    F64(Float64Builder),
    Bool(BooleanBuilder),
    Str(StringBuilder),
    Bin(BinaryBuilder),
    Dec(Decimal128Builder),
    TsS(TimestampSecondBuilder),
    TsMs(TimestampMillisecondBuilder),
    TsUs(TimestampMicrosecondBuilder),
    TsNs(TimestampNanosecondBuilder),
    Other(DataType, Vec<ScalarValue>),
}

impl Col {
    fn new(ty: &DataType, n: usize) -> Col {
        match ty {
            DataType::Int8 => Col::I8(Int8Builder::with_capacity(n)),
            DataType::Int16 => Col::I16(Int16Builder::with_capacity(n)),
            DataType::Int32 => Col::I32(Int32Builder::with_capacity(n)),
            DataType::Int64 => Col::I64(Int64Builder::with_capacity(n)),
            DataType::Date32 => Col::D32(Date32Builder::with_capacity(n)),
            DataType::Float32 => Col::F32(Float32Builder::with_capacity(n)),
            DataType::Float64 => Col::F64(Float64Builder::with_capacity(n)),
            DataType::Boolean => Col::Bool(BooleanBuilder::with_capacity(n)),
            DataType::Utf8 => Col::Str(StringBuilder::with_capacity(n, n * 8)),
            DataType::Binary => Col::Bin(BinaryBuilder::with_capacity(n, n * 8)),
            DataType::Decimal128(_, _) => Col::Dec(Decimal128Builder::with_capacity(n)),
            DataType::Timestamp(TimeUnit::Second, _) => {
                Col::TsS(TimestampSecondBuilder::with_capacity(n))
            }
            DataType::Timestamp(TimeUnit::Millisecond, _) => {
                Col::TsMs(TimestampMillisecondBuilder::with_capacity(n))
            }
            DataType::Timestamp(TimeUnit::Microsecond, _) => {
                Col::TsUs(TimestampMicrosecondBuilder::with_capacity(n))
            }
            DataType::Timestamp(TimeUnit::Nanosecond, _) => {
                Col::TsNs(TimestampNanosecondBuilder::with_capacity(n))
            }
            other => Col::Other(other.clone(), Vec::with_capacity(n)),
        }
    }

    fn push(&mut self, buf: &mut &[u8], scratch: &mut Vec<u8>) -> Result<()> {
        if let Col::Other(ty, vals) = self {
            vals.push(decode_datum(buf, ty)?);
            return Ok(());
        }
        let tag = take(buf, 1)?[0];
        if tag > 1 {
            return Err(StorageError::Corrupt(format!("bad null tag {tag}")));
        }
        let null = tag == 0;
        macro_rules! p {
            ($b:expr, $e:expr) => {
                if null {
                    $b.append_null()
                } else {
                    $b.append_value($e)
                }
            };
        }
        match self {
            Col::I8(b) => p!(b, (take(buf, 1)?[0] ^ 0x80) as i8),
            Col::I16(b) => p!(b, (u_be!(buf, 2, u16) ^ 0x8000) as i16),
            Col::I32(b) => p!(b, (u_be!(buf, 4, u32) ^ (1 << 31)) as i32),
            Col::D32(b) => p!(b, (u_be!(buf, 4, u32) ^ (1 << 31)) as i32),
            Col::I64(b) => p!(b, (u_be!(buf, 8, u64) ^ (1 << 63)) as i64),
            Col::TsS(b) => p!(b, (u_be!(buf, 8, u64) ^ (1 << 63)) as i64),
            Col::TsMs(b) => p!(b, (u_be!(buf, 8, u64) ^ (1 << 63)) as i64),
            Col::TsUs(b) => p!(b, (u_be!(buf, 8, u64) ^ (1 << 63)) as i64),
            Col::TsNs(b) => p!(b, (u_be!(buf, 8, u64) ^ (1 << 63)) as i64),
            Col::Dec(b) => p!(b, (u_be!(buf, 16, u128) ^ (1 << 127)) as i128),
            Col::F64(b) => p!(b, {
                let enc = u_be!(buf, 8, u64);
                f64::from_bits(if enc >> 63 == 1 {
                    enc ^ (1 << 63)
                } else {
                    !enc
                })
            }),
            Col::F32(b) => p!(b, {
                let enc = u_be!(buf, 4, u32);
                f32::from_bits(if enc >> 31 == 1 {
                    enc ^ (1 << 31)
                } else {
                    !enc
                })
            }),
            Col::Bool(b) => p!(b, take(buf, 1)?[0] != 0),
            Col::Str(b) => {
                if null {
                    b.append_null()
                } else {
                    let s = match get_str(buf, scratch)? {
                        Some(s) => s,
                        None => scratch.as_slice(),
                    };
                    b.append_value(
                        std::str::from_utf8(s)
                            .map_err(|_| StorageError::Corrupt("invalid utf-8".into()))?,
                    )
                }
            }
            Col::Bin(b) => {
                if null {
                    b.append_null()
                } else {
                    match get_str(buf, scratch)? {
                        Some(s) => b.append_value(s),
                        None => b.append_value(scratch.as_slice()),
                    }
                }
            }
            Col::Other(_, _) => {}
        }
        Ok(())
    }

    fn finish(self, ty: &DataType) -> Result<ArrayRef> {
        Ok(match self {
            Col::I8(mut b) => Arc::new(b.finish()),
            Col::I16(mut b) => Arc::new(b.finish()),
            Col::I32(mut b) => Arc::new(b.finish()),
            Col::I64(mut b) => Arc::new(b.finish()),
            Col::D32(mut b) => Arc::new(b.finish()),
            Col::F32(mut b) => Arc::new(b.finish()),
            Col::F64(mut b) => Arc::new(b.finish()),
            Col::Bool(mut b) => Arc::new(b.finish()),
            Col::Str(mut b) => Arc::new(b.finish()),
            Col::Bin(mut b) => Arc::new(b.finish()),
            Col::Dec(mut b) => match ty {
                DataType::Decimal128(p, s) => {
                    Arc::new(b.finish().with_precision_and_scale(*p, *s)?)
                }
                _ => Arc::new(b.finish()),
            },
            Col::TsS(mut b) => Arc::new(b.finish().with_timezone_opt(tz(ty))),
            Col::TsMs(mut b) => Arc::new(b.finish().with_timezone_opt(tz(ty))),
            Col::TsUs(mut b) => Arc::new(b.finish().with_timezone_opt(tz(ty))),
            Col::TsNs(mut b) => Arc::new(b.finish().with_timezone_opt(tz(ty))),
            Col::Other(ty, vals) => {
                if vals.is_empty() {
                    datafusion::arrow::array::new_empty_array(&ty)
                } else {
                    ScalarValue::iter_to_array(vals)?
                }
            }
        })
    }
}

fn tz(ty: &DataType) -> Option<Arc<str>> {
    match ty {
        DataType::Timestamp(_, tz) => tz.clone(),
        _ => None,
    }
}

/// Decodes encoded rows into Arrow columns of `types`.
pub fn decode_rows<'a>(
    rows: impl IntoIterator<Item = &'a [u8]>,
    types: &[DataType],
) -> Result<Vec<ArrayRef>> {
    let rows = rows.into_iter();
    let n = rows.size_hint().0;
    let mut cols: Vec<Col> = types.iter().map(|t| Col::new(t, n)).collect();
    let mut scratch = Vec::new();
    for r in rows {
        let mut buf = r;
        for c in cols.iter_mut() {
            c.push(&mut buf, &mut scratch)?;
        }
        if !buf.is_empty() {
            return Err(StorageError::Corrupt("trailing bytes after row".into()));
        }
    }
    cols.into_iter()
        .zip(types)
        .map(|(c, t)| c.finish(t))
        .collect()
}
