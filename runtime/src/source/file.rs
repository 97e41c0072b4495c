//! The `filesystem` connector (also `posix_fs`): CSV or JSON-lines files of
//! a directory or glob, read in name order, one record per line, decoded a
//! batch of lines at a time by Arrow's CSV and JSON readers.
//!
//! Each file's next byte offset is a split of the reader's state (split
//! name `file:<path>`), sent with every batch and committed with the epoch
//! that applies the batch, so a restart (even after `kill -9`) resumes after
//! the last committed line: nothing lost, nothing read twice. A file whose
//! offset has reached its length is done; if it grows, the new lines are
//! read too.

use std::fs::File;
use std::io::{BufRead, BufReader, Read, Seek, SeekFrom};
use std::path::{Path, PathBuf};
use std::sync::atomic::Ordering;
use std::time::{Duration, SystemTime};

use datafusion::arrow::array::RecordBatch;
use datafusion::arrow::compute::concat_batches;
use datafusion::arrow::error::ArrowError;

use super::decode::{csv_batch, describe, json_batch};
use super::options::FileOptions;
use super::{Encode, Ingest, ReaderCtx, SourceChunk, SourceError, SourceSpec};

/// Most bytes of lines per batch.
const MAX_CHUNK_BYTES: usize = 8 << 20;
/// A longer line is skipped as bad (a file without newlines must not be
/// read into memory whole).
const MAX_LINE_BYTES: usize = 64 << 20;
/// The one watermark split of a file source: files are read in name order,
/// one after the other, so their event times form one stream.
const WATERMARK_SPLIT: &str = "files";
const SPLIT_PREFIX: &str = "file:";

/// A `path` option as a glob: a path without wildcards names a directory,
/// meaning every file directly in it.
pub fn pattern_of(path: &str) -> String {
    if path.contains(['*', '?', '[']) {
        path.to_string()
    } else {
        format!("{}/*", path.trim_end_matches('/'))
    }
}

/// The directory part of a pattern, before its first wildcard component.
fn base_dir(pattern: &str) -> PathBuf {
    let mut base = PathBuf::new();
    for c in Path::new(pattern).components() {
        if c.as_os_str().to_string_lossy().contains(['*', '?', '[']) {
            break;
        }
        base.push(c);
    }
    base
}

/// Checks that the pattern is a valid glob over an existing directory.
pub fn check(f: &FileOptions) -> Result<(), SourceError> {
    glob::Pattern::new(&f.pattern)
        .map_err(|e| SourceError::Option(format!("invalid path pattern \"{}\": {e}", f.pattern)))?;
    let dir = base_dir(&f.pattern);
    if !dir.is_dir() {
        return Err(SourceError::File(format!(
            "directory \"{}\" does not exist (path pattern \"{}\")",
            dir.display(),
            f.pattern
        )));
    }
    Ok(())
}

/// The files the pattern matches now, in name order; hidden files (names
/// starting with `.`, as files still being written often are) are left out.
pub fn list(pattern: &str) -> Vec<PathBuf> {
    let Ok(paths) = glob::glob(pattern) else {
        return Vec::new();
    };
    let mut files: Vec<PathBuf> = paths
        .filter_map(|p| p.ok())
        .filter(|p| p.is_file())
        .filter(|p| {
            p.file_name()
                .is_some_and(|n| !n.to_string_lossy().starts_with('.'))
        })
        .collect();
    files.sort();
    files
}

/// Runs until stopped or the engine goes away; without monitoring, reports
/// `finished` once every file present at the start has been read.
pub fn run(ctx: ReaderCtx, f: &FileOptions) -> Result<(), SourceError> {
    let mut offsets: std::collections::HashMap<String, u64> = ctx
        .state
        .iter()
        .filter_map(|(k, v)| {
            k.strip_prefix(SPLIT_PREFIX)
                .map(|p| (p.to_string(), (*v).max(0) as u64))
        })
        .collect();
    let mut reader = Reader {
        ctx: &ctx,
        f,
        wms: super::SplitWatermarks::new(&ctx.spec),
    };
    reader.wms.add_split(WATERMARK_SPLIT);
    let mut last_warning: Option<std::time::Instant> = None;
    loop {
        for path in list(&f.pattern) {
            let name = path.to_string_lossy().into_owned();
            // A catch-up reader reads only what the shared reader had read.
            let limit = ctx.end_of(&format!("{SPLIT_PREFIX}{name}"));
            if limit == Some(0) {
                continue;
            }
            let offset = offsets.entry(name.clone()).or_insert(0);
            match reader.read_file(&path, &name, offset, limit.map(|l| l as u64)) {
                Ok(true) => {}
                Ok(false) => return Ok(()), // stopped, or the engine is gone
                Err(e) => {
                    // Retried at the next pass from what was sent.
                    if last_warning.is_none_or(|t| t.elapsed() > Duration::from_secs(10)) {
                        last_warning = Some(std::time::Instant::now());
                        tracing::warn!(source = %ctx.spec.name, file = %name, "cannot read file: {e}");
                    }
                }
            }
        }
        if let Some(until) = &ctx.until {
            let read_all = until.iter().all(|(split, &end)| {
                split
                    .strip_prefix(SPLIT_PREFIX)
                    .is_none_or(|n| offsets.get(n).is_some_and(|&o| o as i64 >= end))
            });
            if read_all {
                ctx.finish_catch_up();
                return Ok(());
            }
            std::thread::sleep(Duration::from_millis(100)); // a file failed; again
            continue;
        }
        reader.wms.reached_end(WATERMARK_SPLIT);
        let Some(every) = f.monitor else {
            ctx.stats.finished.store(true, Ordering::SeqCst);
            while !ctx.stop.stopped() {
                std::thread::sleep(Duration::from_millis(200));
            }
            return Ok(());
        };
        let until = std::time::Instant::now() + every;
        while std::time::Instant::now() < until {
            if ctx.stop.stopped() {
                return Ok(());
            }
            std::thread::sleep(every.min(Duration::from_millis(100)));
        }
        // A quiet source may still move its watermark (idle timeout).
        if !super::send_idle_watermark(&ctx, &mut reader.wms) {
            return Ok(());
        }
    }
}

struct Reader<'a> {
    ctx: &'a ReaderCtx,
    f: &'a FileOptions,
    wms: super::SplitWatermarks,
}

impl Reader<'_> {
    /// Reads `path` from byte `*sent` to its end (or to byte `limit`), a
    /// batch at a time, moving `*sent` past each batch the engine has
    /// taken. Returns `false` once stopped or the engine is gone.
    fn read_file(
        &mut self,
        path: &Path,
        name: &str,
        sent: &mut u64,
        limit: Option<u64>,
    ) -> std::io::Result<bool> {
        let from = *sent;
        let meta = std::fs::metadata(path)?;
        let len = limit.map_or(meta.len(), |l| l.min(meta.len()));
        if len <= from {
            return Ok(true);
        }
        // A last line without a newline may still be being written: with
        // monitoring it waits until the file has been quiet for an interval
        // (up to a limit, the lines were read before).
        let settled = limit.is_some()
            || self.f.monitor.is_none_or(|every| {
                meta.modified()
                    .ok()
                    .and_then(|m| SystemTime::now().duration_since(m).ok())
                    .is_some_and(|age| age >= every)
            });
        let mut file = File::open(path)?;
        file.seek(SeekFrom::Start(from))?;
        let mut input = BufReader::with_capacity(1 << 20, file.take(len - from));
        let mut offset = from;
        let mut buf: Vec<u8> = Vec::with_capacity(1 << 20);
        let mut lines: Vec<(usize, usize, u64)> = Vec::new(); // start, end in buf; file offset
        loop {
            if self.ctx.stop.stopped() {
                return Ok(false);
            }
            buf.clear();
            lines.clear();
            let mut eof = false;
            while lines.len() < self.f.max_chunk_rows && buf.len() < MAX_CHUNK_BYTES {
                let start = buf.len();
                let n = (&mut input)
                    .take(MAX_LINE_BYTES as u64 + 1)
                    .read_until(b'\n', &mut buf)?;
                if n == 0 {
                    eof = true;
                    break;
                }
                if n > MAX_LINE_BYTES {
                    buf.truncate(start);
                    let rest = skip_line(&mut input)?;
                    self.ctx.stats.skip(
                        -1,
                        offset as i64,
                        format!("file \"{name}\" at byte {offset}: line longer than {MAX_LINE_BYTES} bytes"),
                    );
                    offset += (n + rest) as u64;
                    continue;
                }
                if buf.last() != Some(&b'\n') && !settled {
                    buf.truncate(start); // an unfinished last line: later
                    eof = true;
                    break;
                }
                let line_at = offset;
                offset += n as u64;
                let mut end = buf.len();
                while end > start && matches!(buf[end - 1], b'\n' | b'\r') {
                    end -= 1;
                }
                let header = line_at == 0
                    && matches!(
                        self.ctx.spec.encode,
                        Encode::Csv {
                            has_header: true,
                            ..
                        }
                    );
                if !header && buf[start..end].iter().any(|b| !b.is_ascii_whitespace()) {
                    lines.push((start, end, line_at));
                }
            }
            if !lines.is_empty() || offset > *sent {
                let slices: Vec<&[u8]> = lines.iter().map(|&(s, e, _)| &buf[s..e]).collect();
                let rows = decode(&self.ctx.spec, &slices, |i, reason| {
                    self.ctx.stats.skip(
                        -1,
                        lines[i].2 as i64,
                        format!("file \"{name}\" at byte {}: {reason}", lines[i].2),
                    )
                });
                if !self.send(name, rows, offset) {
                    return Ok(false);
                }
                *sent = offset;
            }
            if eof {
                return Ok(true);
            }
        }
    }

    /// Sends one batch (or only the new position) to the engine.
    fn send(&mut self, name: &str, rows: Option<RecordBatch>, offset: u64) -> bool {
        let n = rows.as_ref().map_or(0, |r| r.num_rows() as u64);
        if rows.is_some() {
            self.wms.observe(WATERMARK_SPLIT, rows.as_ref());
        }
        let msg = Ingest {
            key: self.ctx.key,
            chunk: rows
                .filter(|r| r.num_rows() > 0)
                .map(|rows| SourceChunk { rows, ops: None }),
            state: vec![(format!("{SPLIT_PREFIX}{name}"), offset as i64)],
            watermark: self.wms.poll(),
            done: false,
        };
        if !self.ctx.sink.send(msg) {
            return false;
        }
        self.ctx.stats.rows.fetch_add(n, Ordering::Relaxed);
        true
    }
}

/// Skips to just after the next newline (or the end); returns the bytes
/// skipped.
fn skip_line(input: &mut impl BufRead) -> std::io::Result<usize> {
    let mut skipped = 0;
    loop {
        let avail = input.fill_buf()?;
        if avail.is_empty() {
            return Ok(skipped);
        }
        match avail.iter().position(|&b| b == b'\n') {
            Some(i) => {
                input.consume(i + 1);
                return Ok(skipped + i + 1);
            }
            None => {
                let n = avail.len();
                input.consume(n);
                skipped += n;
            }
        }
    }
}

/// Decodes lines into one batch of the source's columns. When the batch as
/// a whole fails, each line is tried alone: the bad ones are reported to
/// `bad` (by index, with the reason) and the good ones decoded together.
pub fn decode(
    spec: &SourceSpec,
    lines: &[&[u8]],
    mut bad: impl FnMut(usize, String),
) -> Option<RecordBatch> {
    if lines.is_empty() {
        return None;
    }
    let one = |ls: &[&[u8]]| -> Result<RecordBatch, ArrowError> {
        match spec.encode {
            Encode::Json => json_batch(&spec.schema, ls),
            Encode::Csv { delimiter, .. } => csv_batch(&spec.schema, delimiter, ls),
        }
    };
    if let Ok(b) = one(lines) {
        return Some(b);
    }
    let mut good: Vec<&[u8]> = Vec::with_capacity(lines.len());
    for (i, l) in lines.iter().enumerate() {
        match one(&[l]) {
            Ok(_) => good.push(l),
            Err(e) => bad(i, describe(e, l)),
        }
    }
    if good.is_empty() {
        return None;
    }
    match one(&good) {
        Ok(b) => Some(b),
        // Lines that decode alone but not together (never expected): one
        // batch each.
        Err(_) => {
            let parts: Vec<RecordBatch> = good.iter().filter_map(|l| one(&[l]).ok()).collect();
            concat_batches(&spec.schema, &parts).ok()
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::source::{Connector, Format};
    use datafusion::arrow::datatypes::{DataType, Field, Schema};
    use std::sync::Arc;

    fn spec(encode: Encode) -> SourceSpec {
        SourceSpec {
            name: "f".into(),
            schema: Arc::new(Schema::new(vec![
                Field::new("id", DataType::Int64, true),
                Field::new("name", DataType::Utf8, true),
            ])),
            pk: None,
            connector: Connector::File(FileOptions {
                pattern: "/tmp/*".into(),
                monitor: None,
                max_chunk_rows: 10,
            }),
            format: Format::Plain,
            encode,
            watermark: None,
            idle_timeout: Duration::from_secs(30),
        }
    }

    #[test]
    fn patterns() {
        assert_eq!(pattern_of("/data/in/"), "/data/in/*");
        assert_eq!(pattern_of("/data/*.csv"), "/data/*.csv");
        assert_eq!(base_dir("/data/in/*.csv"), PathBuf::from("/data/in"));
        assert_eq!(base_dir("/data/*/x.csv"), PathBuf::from("/data"));
    }

    #[test]
    fn skip_line_stops_after_the_newline() {
        let mut r = std::io::Cursor::new(b"aaaa\nbb".to_vec());
        assert_eq!(skip_line(&mut r).unwrap_or(0), 5);
        assert_eq!(skip_line(&mut r).unwrap_or(0), 2);
    }

    #[test]
    fn bad_lines_are_reported_and_the_rest_kept() {
        let s = spec(Encode::Csv {
            delimiter: b',',
            has_header: false,
        });
        let mut bad = Vec::new();
        let lines: Vec<&[u8]> = vec![b"1,a", b"x,b", b"3,c", b"4,d,extra"];
        let b = decode(&s, &lines, |i, _| bad.push(i)).expect("rows");
        assert_eq!(b.num_rows(), 2);
        assert_eq!(bad, vec![1, 3]);
        let s = spec(Encode::Json);
        let mut bad = Vec::new();
        let lines: Vec<&[u8]> = vec![br#"{"id": 1}"#, b"{oops", br#"{"id": 2, "name": "b"}"#];
        let b = decode(&s, &lines, |i, _| bad.push(i)).expect("rows");
        assert_eq!(b.num_rows(), 2);
        assert_eq!(bad, vec![1]);
    }
}
