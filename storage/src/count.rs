//! Multiset counts: the value of every entry of a multiset state (view
//! rows, join sides, sorted rows), written blind as RocksDB merges.
//!
//! A multiset entry's value is `COUNT_TAG | count (i64 BE) | extra`, where
//! `extra` is whatever the owner keeps beside the count (the sort-key length
//! of a sorted row). A change writes its *delta* in the same form with
//! [`crate::WriteSet::add_count`]; RocksDB sums the deltas with [`merge`]
//! when the entry is read or compacted, so no change ever reads the old
//! count first. An entry whose count reaches zero stays readable as a zero
//! (readers skip counts <= 0) until a compaction drops it
//! ([`compaction_filter`]).
//!
//! Values written before merges existed carry [`crate::codec::FORMAT_VERSION`]
//! as their tag; they decode the same way.

use rocksdb::compaction_filter::Decision;
use rocksdb::MergeOperands;

use crate::codec::FORMAT_VERSION;
use crate::error::{Result, StorageError};
use crate::keys::META;

/// Tag of a count value (distinct from every other value's first byte).
pub const COUNT_TAG: u8 = 0xC1;

/// The value (or delta) `count` with `extra`.
pub fn encode(count: i64, extra: &[u8]) -> Vec<u8> {
    let mut v = Vec::with_capacity(9 + extra.len());
    encode_into(&mut v, count, extra);
    v
}

/// Appends the value (or delta) `count` with `extra` to `out`.
pub fn encode_into(out: &mut Vec<u8>, count: i64, extra: &[u8]) {
    out.push(COUNT_TAG);
    out.extend_from_slice(&count.to_be_bytes());
    out.extend_from_slice(extra);
}

/// The count and extra bytes of a stored count value.
pub fn decode(v: &[u8]) -> Result<(i64, &[u8])> {
    match v {
        [COUNT_TAG | FORMAT_VERSION, rest @ ..] if rest.len() >= 8 => {
            let mut b = [0u8; 8];
            b.copy_from_slice(&rest[..8]);
            Ok((i64::from_be_bytes(b), &rest[8..]))
        }
        _ => Err(StorageError::Corrupt("bad multiset count".into())),
    }
}

/// The merge operator: sums the counts of the existing value and every
/// operand; the extra bytes of the latest operand win.
pub fn merge(_key: &[u8], existing: Option<&[u8]>, operands: &MergeOperands) -> Option<Vec<u8>> {
    let mut total: i64 = 0;
    let mut extra: &[u8] = &[];
    for v in existing.into_iter().chain(operands.iter()) {
        // A malformed operand cannot come from this code; keep going
        // rather than failing the read of the whole key.
        if let Ok((c, e)) = decode(v) {
            total = total.wrapping_add(c);
            extra = e;
        }
    }
    Some(encode(total, extra))
}

/// Drops multiset entries whose count is zero (metadata is never touched).
pub fn compaction_filter(_level: u32, key: &[u8], value: &[u8]) -> Decision {
    if key.len() >= 4 && key[..4] != META.0.to_be_bytes() && value.first() == Some(&COUNT_TAG) {
        if let Ok((0, _)) = decode(value) {
            return Decision::Remove;
        }
    }
    Decision::Keep
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn round_trip_and_legacy() {
        let v = encode(-3, b"xy");
        assert_eq!(decode(&v).unwrap(), (-3, &b"xy"[..]));
        let mut legacy = vec![FORMAT_VERSION];
        legacy.extend_from_slice(&7i64.to_be_bytes());
        assert_eq!(decode(&legacy).unwrap(), (7, &b""[..]));
        assert!(decode(b"\x01abc").is_err());
    }

    #[test]
    fn merges_sum_in_the_store() {
        let dir = std::env::temp_dir().join(format!("freshet-count-test-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&dir);
        let store = crate::Store::open(&dir).unwrap();
        let key = crate::keys::row_key(crate::TableId(9), b"row");
        let mut ws = crate::WriteSet::default();
        ws.add_count(key.clone(), 2, b"e");
        store.commit(ws, crate::Epoch(1)).unwrap();
        let mut ws = crate::WriteSet::default();
        ws.add_count(key.clone(), 3, b"e");
        ws.add_count(key.clone(), -1, b"e");
        store.commit(ws, crate::Epoch(2)).unwrap();
        let v = store.get(&key).unwrap().unwrap();
        assert_eq!(decode(&v).unwrap(), (4, &b"e"[..]));
        let mut ws = crate::WriteSet::default();
        ws.add_count(key.clone(), -4, b"e");
        store.commit(ws, crate::Epoch(3)).unwrap();
        let v = store.get(&key).unwrap().unwrap();
        assert_eq!(decode(&v).unwrap().0, 0);
        let _ = std::fs::remove_dir_all(&dir);
    }
}
