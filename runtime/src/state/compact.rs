//! The compact value encoding of state tables: varints (zigzag for signed
//! numbers), raw floats and length-prefixed bytes, with no escaping and no
//! order. Keys that must sort use the memcomparable codec instead.

use freshet_storage::StorageError;

/// Appends `v` as an unsigned LEB128 varint (1 byte below 128).
pub fn put_u128(out: &mut Vec<u8>, mut v: u128) {
    while v >= 0x80 {
        out.push((v as u8) | 0x80);
        v >>= 7;
    }
    out.push(v as u8);
}

pub fn put_u64(out: &mut Vec<u8>, v: u64) {
    put_u128(out, u128::from(v));
}

/// Appends a signed number zigzag-encoded (small magnitudes are short).
pub fn put_i64(out: &mut Vec<u8>, v: i64) {
    put_u64(out, ((v << 1) ^ (v >> 63)) as u64);
}

pub fn put_i128(out: &mut Vec<u8>, v: i128) {
    put_u128(out, ((v << 1) ^ (v >> 127)) as u128);
}

/// Appends a float: one byte for 0.0, else a marker and its 8 bytes.
pub fn put_f64(out: &mut Vec<u8>, v: f64) {
    let bits = v.to_bits();
    if bits == 0 {
        out.push(0);
    } else {
        out.push(1);
        out.extend_from_slice(&bits.to_le_bytes());
    }
}

/// Appends `b` with its length in front.
pub fn put_bytes(out: &mut Vec<u8>, b: &[u8]) {
    put_u64(out, b.len() as u64);
    out.extend_from_slice(b);
}

/// Reads values written by the `put_*` functions, in the same order.
pub struct Reader<'a> {
    buf: &'a [u8],
}

fn corrupt(what: &str) -> StorageError {
    StorageError::Corrupt(format!("state value: {what}"))
}

impl<'a> Reader<'a> {
    pub fn new(buf: &'a [u8]) -> Self {
        Reader { buf }
    }

    pub fn is_empty(&self) -> bool {
        self.buf.is_empty()
    }

    pub fn u8(&mut self) -> Result<u8, StorageError> {
        let (&b, rest) = self.buf.split_first().ok_or_else(|| corrupt("truncated"))?;
        self.buf = rest;
        Ok(b)
    }

    pub fn u128(&mut self) -> Result<u128, StorageError> {
        let mut v: u128 = 0;
        for shift in (0..128).step_by(7) {
            let b = self.u8()?;
            v |= u128::from(b & 0x7f) << shift;
            if b < 0x80 {
                return Ok(v);
            }
        }
        Err(corrupt("varint too long"))
    }

    pub fn u64(&mut self) -> Result<u64, StorageError> {
        u64::try_from(self.u128()?).map_err(|_| corrupt("varint out of range"))
    }

    pub fn i64(&mut self) -> Result<i64, StorageError> {
        let u = self.u64()?;
        Ok(((u >> 1) as i64) ^ -((u & 1) as i64))
    }

    pub fn i128(&mut self) -> Result<i128, StorageError> {
        let u = self.u128()?;
        Ok(((u >> 1) as i128) ^ -((u & 1) as i128))
    }

    pub fn f64(&mut self) -> Result<f64, StorageError> {
        match self.u8()? {
            0 => Ok(0.0),
            1 => {
                let b = self.take(8)?;
                let mut a = [0u8; 8];
                a.copy_from_slice(b);
                Ok(f64::from_bits(u64::from_le_bytes(a)))
            }
            _ => Err(corrupt("bad float marker")),
        }
    }

    pub fn bytes(&mut self) -> Result<&'a [u8], StorageError> {
        let n = usize::try_from(self.u64()?).map_err(|_| corrupt("length out of range"))?;
        self.take(n)
    }

    /// The next `n` raw bytes.
    pub fn take(&mut self, n: usize) -> Result<&'a [u8], StorageError> {
        if self.buf.len() < n {
            return Err(corrupt("truncated"));
        }
        let (h, t) = self.buf.split_at(n);
        self.buf = t;
        Ok(h)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn round_trips_and_stays_short() {
        let mut out = Vec::new();
        let ints = [0i64, 1, -1, 63, -64, 64, i64::MAX, i64::MIN];
        for v in ints {
            put_i64(&mut out, v);
        }
        let bigs = [0i128, -5, i128::MAX, i128::MIN];
        for v in bigs {
            put_i128(&mut out, v);
        }
        for f in [0.0, -0.0, 1.5, f64::NAN] {
            put_f64(&mut out, f);
        }
        put_bytes(&mut out, b"abc");
        put_u64(&mut out, u64::MAX);
        let mut r = Reader::new(&out);
        for v in ints {
            assert_eq!(r.i64().unwrap(), v);
        }
        for v in bigs {
            assert_eq!(r.i128().unwrap(), v);
        }
        assert_eq!(r.f64().unwrap(), 0.0);
        assert!(r.f64().unwrap().is_sign_negative());
        assert_eq!(r.f64().unwrap(), 1.5);
        assert!(r.f64().unwrap().is_nan());
        assert_eq!(r.bytes().unwrap(), b"abc");
        assert_eq!(r.u64().unwrap(), u64::MAX);
        assert!(r.is_empty());
        assert!(r.u8().is_err(), "reading past the end is an error");

        let mut one = Vec::new();
        put_i64(&mut one, -3);
        assert_eq!(one.len(), 1);
    }

    #[test]
    fn corrupt_input_is_an_error_not_a_panic() {
        assert!(Reader::new(&[0xff; 30]).u128().is_err());
        let mut max = vec![0xff; 9];
        max.push(0x01);
        assert_eq!(Reader::new(&max).u64().unwrap(), u64::MAX);
        max[9] = 0x7f;
        assert!(Reader::new(&max).u64().is_err(), "beyond u64");
        assert!(Reader::new(&[5, 1]).bytes().is_err());
        assert!(Reader::new(&[2]).f64().is_err());
    }
}
