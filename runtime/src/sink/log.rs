//! A sink's log: the records of each committed epoch the target may not have
//! yet, in the sink's state table, keyed `table | epoch | sequence` (both
//! big-endian, so a scan returns epochs in order). Each entry holds up to
//! about [`CHUNK_BYTES`] of records in the compact encoding.

use freshet_storage::{Store, TableId, WriteSet};

use super::encode::Record;
use crate::error::{Result, RuntimeError};
use crate::state::compact::{put_bytes, put_u64, Reader};

/// About how many bytes of records one log entry holds.
pub const CHUNK_BYTES: usize = 1 << 20;

use crate::state::layout::{
    relation as table_prefix, sink_log_entry as entry_key, sink_log_epoch as epoch_key,
};

/// Writes `records` as epoch `epoch`'s entries into the epoch's writes.
pub fn append(writes: &mut WriteSet, table: TableId, epoch: u64, records: &[Record]) {
    let mut seq = 0u32;
    let mut buf = Vec::new();
    let mut n = 0u64;
    let mut body = Vec::new();
    let mut flush = |writes: &mut WriteSet, body: &mut Vec<u8>, n: &mut u64, seq: &mut u32| {
        if *n == 0 {
            return;
        }
        buf.clear();
        put_u64(&mut buf, *n);
        buf.extend_from_slice(body);
        writes.put(entry_key(table, epoch, *seq), std::mem::take(&mut buf));
        body.clear();
        *n = 0;
        *seq += 1;
    };
    for r in records {
        let flags = u8::from(r.key.is_some()) | (u8::from(r.value.is_some()) << 1);
        body.push(flags);
        if let Some(k) = &r.key {
            put_bytes(&mut body, k);
        }
        if let Some(v) = &r.value {
            put_bytes(&mut body, v);
        }
        n += 1;
        if body.len() >= CHUNK_BYTES {
            flush(writes, &mut body, &mut n, &mut seq);
        }
    }
    flush(writes, &mut body, &mut n, &mut seq);
}

fn decode(v: &[u8], out: &mut Vec<Record>) -> Result<()> {
    let mut r = Reader::new(v);
    let n = r.u64()?;
    for _ in 0..n {
        let flags = r.u8()?;
        let key = if flags & 1 != 0 {
            Some(r.bytes()?.to_vec())
        } else {
            None
        };
        let value = if flags & 2 != 0 {
            Some(r.bytes()?.to_vec())
        } else {
            None
        };
        out.push(Record { key, value });
    }
    Ok(())
}

fn parse_key(table: TableId, k: &[u8]) -> Result<(u64, u32)> {
    let rest = k
        .strip_prefix(table_prefix(table).as_slice())
        .filter(|r| r.len() == 12)
        .ok_or_else(|| RuntimeError::Internal("bad sink log key".into()))?;
    let mut e = [0u8; 8];
    e.copy_from_slice(&rest[..8]);
    let mut s = [0u8; 4];
    s.copy_from_slice(&rest[8..]);
    Ok((u64::from_be_bytes(e), u32::from_be_bytes(s)))
}

/// A position in the log: the next entry to read.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Cursor {
    pub epoch: u64,
    pub seq: u32,
}

/// One read of the log: the records of up to about `max_bytes` of entries
/// of one epoch, starting at `from` (or at the first epoch after it).
#[derive(Debug)]
pub struct Chunk {
    pub epoch: u64,
    pub records: Vec<Record>,
    /// Where the next read starts.
    pub next: Cursor,
    /// True when the chunk ends its epoch.
    pub epoch_done: bool,
}

/// Reads the committed log from `from`; `None` when there is nothing.
pub fn read(
    store: &Store,
    table: TableId,
    from: Cursor,
    max_bytes: usize,
) -> Result<Option<Chunk>> {
    let prefix = table_prefix(table);
    let start = entry_key(table, from.epoch, from.seq);
    let mut chunk: Option<Chunk> = None;
    let mut bytes = 0usize;
    let mut err = None;
    store.scan_from_while(&prefix, &start, |k, v| {
        let (epoch, seq) = match parse_key(table, k) {
            Ok(x) => x,
            Err(e) => {
                err = Some(e);
                return Ok(false);
            }
        };
        match &mut chunk {
            Some(c) if c.epoch != epoch => {
                c.epoch_done = true;
                return Ok(false);
            }
            Some(_) if bytes >= max_bytes => return Ok(false),
            _ => {}
        }
        let c = chunk.get_or_insert_with(|| Chunk {
            epoch,
            records: Vec::new(),
            next: Cursor { epoch, seq },
            epoch_done: false,
        });
        if let Err(e) = decode(v, &mut c.records) {
            err = Some(e);
            return Ok(false);
        }
        bytes += v.len();
        c.next = Cursor {
            epoch,
            seq: seq + 1,
        };
        Ok(true)
    })?;
    if let Some(e) = err {
        return Err(e);
    }
    if let Some(c) = &mut chunk {
        if !c.epoch_done {
            // Ended by the size limit or by the end of the log: the epoch is
            // done when no entry of it follows.
            let more = entry_key(table, c.next.epoch, c.next.seq);
            let mut same = false;
            store.scan_from_while(&prefix, &more, |k, _| {
                same = parse_key(table, k)
                    .map(|(e, _)| e == c.epoch)
                    .unwrap_or(false);
                Ok(false)
            })?;
            c.epoch_done = !same;
        }
        if c.epoch_done {
            c.next = Cursor {
                epoch: c.epoch + 1,
                seq: 0,
            };
        }
    }
    Ok(chunk)
}

/// Deletes every entry of epochs up to `epoch` (delivered).
pub fn trim(store: &Store, table: TableId, epoch: u64) -> Result<()> {
    store.trim_range(
        &epoch_key(table, 0),
        &epoch_key(table, epoch.saturating_add(1)),
    )?;
    Ok(())
}
