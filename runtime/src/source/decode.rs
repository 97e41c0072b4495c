//! Record decoding: runs of raw records (key, value) become one Arrow batch
//! per run, through `arrow-json` / `arrow-csv` decoders.
//!
//! The whole run is decoded at once; only when that fails (a bad record in
//! the run) is it decoded again record by record, to keep the good records
//! and report the bad ones with their partition and offset.

use std::sync::Arc;

use datafusion::arrow::array::{
    Array, ArrayRef, AsArray, RecordBatch, RecordBatchOptions, StructArray,
};
use datafusion::arrow::compute::{concat_batches, interleave};
use datafusion::arrow::datatypes::{DataType, Field, Fields, Schema, SchemaRef};
use datafusion::arrow::error::ArrowError;

use super::{Encode, Format, RowOp, SourceChunk, SourceSpec, SourceStats};

/// One raw record.
#[derive(Debug, Clone)]
pub struct Record {
    pub partition: i32,
    pub offset: i64,
    pub key: Option<Vec<u8>>,
    pub payload: Option<Vec<u8>>,
}

/// Decodes records of one source.
pub struct RecordDecoder {
    spec: Arc<SourceSpec>,
    /// Debezium envelope schema (top level and `payload`-wrapped).
    envelope: Option<SchemaRef>,
    header_line: Option<Vec<u8>>,
}

impl RecordDecoder {
    pub fn new(spec: Arc<SourceSpec>) -> RecordDecoder {
        let envelope = (spec.format == Format::Debezium).then(|| {
            let row = DataType::Struct(spec.schema.fields().clone());
            let inner = vec![
                Field::new("before", row.clone(), true),
                Field::new("after", row, true),
                Field::new("op", DataType::Utf8, true),
            ];
            let mut top = inner.clone();
            top.push(Field::new(
                "payload",
                DataType::Struct(Fields::from(inner)),
                true,
            ));
            Arc::new(Schema::new(top))
        });
        let header_line = match spec.encode {
            Encode::Csv {
                delimiter,
                has_header: true,
            } => {
                let names: Vec<&str> = spec
                    .schema
                    .fields()
                    .iter()
                    .map(|f| f.name().as_str())
                    .collect();
                Some(names.join(&(delimiter as char).to_string()).into_bytes())
            }
            _ => None,
        };
        RecordDecoder {
            spec,
            envelope,
            header_line,
        }
    }

    /// Decodes `recs`; bad records are counted in `stats` and left out.
    pub fn decode(&self, recs: &[Record], stats: &SourceStats) -> Option<SourceChunk> {
        let chunk = match self.spec.format {
            Format::Plain => self.plain(recs, stats),
            Format::Upsert => self.upsert(recs, stats),
            Format::Debezium => self.debezium(recs, stats),
        }?;
        let chunk = self.check_pk(chunk, recs, stats);
        (chunk.rows.num_rows() > 0).then_some(chunk)
    }

    fn plain(&self, recs: &[Record], stats: &SourceStats) -> Option<SourceChunk> {
        let mut good: Vec<&Record> = Vec::with_capacity(recs.len());
        for r in recs {
            match &r.payload {
                None => stats.skip(r.partition, r.offset, "null message value".into()),
                Some(p) if self.is_header(p) => {}
                Some(_) => good.push(r),
            }
        }
        let rows = self.decode_values(&good, &self.spec.schema, stats)?;
        Some(SourceChunk {
            rows: rows.0,
            ops: None,
        })
    }

    fn is_header(&self, p: &[u8]) -> bool {
        match &self.header_line {
            Some(h) => trim(p) == h.as_slice(),
            None => false,
        }
    }

    fn upsert(&self, recs: &[Record], stats: &SourceStats) -> Option<SourceChunk> {
        // Decode values and tombstone keys separately, then interleave them
        // back into record order.
        let mut values: Vec<&Record> = Vec::new();
        let mut keys: Vec<(usize, Record)> = Vec::new();
        let mut order: Vec<(bool, usize)> = Vec::new();
        for r in recs {
            match &r.payload {
                Some(p) if !p.is_empty() => values.push(r),
                _ => match &r.key {
                    Some(k) => keys.push((
                        keys.len(),
                        Record {
                            partition: r.partition,
                            offset: r.offset,
                            key: None,
                            payload: Some(self.key_json(k)),
                        },
                    )),
                    None => stats.skip(
                        r.partition,
                        r.offset,
                        "tombstone without a key: nothing to delete".into(),
                    ),
                },
            }
        }
        let (vb, vok) = self.decode_json(&values, &self.spec.schema, stats)?;
        let key_recs: Vec<&Record> = keys.iter().map(|(_, r)| r).collect();
        let (kb, kok) = self.decode_json(&key_recs, &self.spec.schema, stats)?;
        // Walk the records in order, mapping each to its decoded row.
        let (mut vi, mut ki, mut vrow, mut krow) = (0, 0, 0, 0);
        for r in recs {
            let is_value = matches!(&r.payload, Some(p) if !p.is_empty());
            if is_value {
                if vok[vi] {
                    order.push((true, vrow));
                    vrow += 1;
                }
                vi += 1;
            } else if r.key.is_some() {
                if kok[ki] {
                    order.push((false, krow));
                    krow += 1;
                }
                ki += 1;
            }
        }
        let rows = interleave_batches(&self.spec.schema, &[&vb, &kb], &order, |(v, i)| {
            (if *v { 0 } else { 1 }, *i)
        })
        .ok()?;
        let ops = order
            .iter()
            .map(|(v, _)| if *v { RowOp::Upsert } else { RowOp::Delete })
            .collect();
        Some(SourceChunk {
            rows,
            ops: Some(ops),
        })
    }

    /// A record key as a JSON object naming the primary key columns.
    fn key_json(&self, k: &[u8]) -> Vec<u8> {
        let t = trim(k);
        if t.first() == Some(&b'{') {
            return t.to_vec();
        }
        let pk = self.spec.pk.clone().unwrap_or_default();
        let Some(&col) = pk.first() else {
            return t.to_vec();
        };
        let name = self.spec.schema.field(col).name();
        let is_json_scalar = matches!(t.first(), Some(b'"') | Some(b'-') | Some(b'0'..=b'9'));
        let mut out = format!("{{{}:", json_string(name)).into_bytes();
        if is_json_scalar {
            out.extend_from_slice(t);
        } else {
            out.extend_from_slice(json_string(&String::from_utf8_lossy(t)).as_bytes());
        }
        out.push(b'}');
        out
    }

    fn debezium(&self, recs: &[Record], stats: &SourceStats) -> Option<SourceChunk> {
        let envelope = self.envelope.clone()?;
        // Tombstones follow Debezium deletes; they carry nothing.
        let values: Vec<&Record> = recs
            .iter()
            .filter(|r| matches!(&r.payload, Some(p) if !trim(p).is_empty()))
            .collect();
        let (eb, ok) = self.decode_json(&values, &envelope, stats)?;
        let good: Vec<&Record> = values
            .iter()
            .zip(&ok)
            .filter(|(_, ok)| **ok)
            .map(|(r, _)| *r)
            .collect();
        let top_before = struct_batch(eb.column(0), &self.spec.schema)?;
        let top_after = struct_batch(eb.column(1), &self.spec.schema)?;
        let top_op = eb.column(2).as_string::<i32>().clone();
        let payload = eb.column(3).as_struct().clone();
        let p_before = struct_batch(payload.column(0), &self.spec.schema)?;
        let p_after = struct_batch(payload.column(1), &self.spec.schema)?;
        let p_op = payload.column(2).as_string::<i32>().clone();
        // Sources: 0 top before, 1 top after, 2 payload before, 3 payload after.
        let mut order: Vec<(usize, usize)> = Vec::new();
        let mut ops: Vec<RowOp> = Vec::new();
        for (i, r) in good.iter().enumerate() {
            let wrapped = payload.is_valid(i);
            let (op, b, a) = if wrapped {
                (&p_op, 2, 3)
            } else {
                (&top_op, 0, 1)
            };
            let before_valid = if wrapped {
                payload.column(0).is_valid(i)
            } else {
                eb.column(0).is_valid(i)
            };
            let after_valid = if wrapped {
                payload.column(1).is_valid(i)
            } else {
                eb.column(1).is_valid(i)
            };
            let o = if op.is_valid(i) { op.value(i) } else { "" };
            match o {
                "c" | "r" | "u" if after_valid => {
                    if o == "u" && before_valid {
                        order.push((b, i));
                        ops.push(RowOp::Delete);
                    }
                    order.push((a, i));
                    ops.push(RowOp::Upsert);
                }
                "d" if before_valid => {
                    order.push((b, i));
                    ops.push(RowOp::Delete);
                }
                "" => stats.skip(
                    r.partition,
                    r.offset,
                    "Debezium event without \"op\"".into(),
                ),
                other => stats.skip(
                    r.partition,
                    r.offset,
                    format!("Debezium event with op \"{other}\" lacks the row it needs"),
                ),
            }
        }
        let rows = interleave_batches(
            &self.spec.schema,
            &[&top_before, &top_after, &p_before, &p_after],
            &order,
            |x| *x,
        )
        .ok()?;
        Some(SourceChunk {
            rows,
            ops: Some(ops),
        })
    }

    /// Drops rows whose primary key has a NULL (connector tables only).
    fn check_pk(&self, chunk: SourceChunk, recs: &[Record], stats: &SourceStats) -> SourceChunk {
        let Some(pk) = &self.spec.pk else {
            return chunk;
        };
        let n = chunk.rows.num_rows();
        let mut keep = vec![true; n];
        let mut bad = 0;
        for &c in pk {
            let col = chunk.rows.column(c);
            if col.null_count() == 0 {
                continue;
            }
            for (i, k) in keep.iter_mut().enumerate() {
                if *k && col.is_null(i) {
                    *k = false;
                    bad += 1;
                    let name = self.spec.schema.field(c).name();
                    let (p, o) = recs
                        .first()
                        .map(|r| (r.partition, r.offset))
                        .unwrap_or((-1, -1));
                    stats.skip(
                        p,
                        o,
                        format!("primary key column \"{name}\" is null (record in the run starting at this offset)"),
                    );
                }
            }
        }
        if bad == 0 {
            return chunk;
        }
        let mask = datafusion::arrow::array::BooleanArray::from(keep.clone());
        let rows = match datafusion::arrow::compute::filter_record_batch(&chunk.rows, &mask) {
            Ok(r) => r,
            Err(_) => return chunk,
        };
        let ops = chunk.ops.map(|ops| {
            ops.into_iter()
                .zip(&keep)
                .filter(|(_, k)| **k)
                .map(|(o, _)| o)
                .collect()
        });
        SourceChunk { rows, ops }
    }

    fn decode_values(
        &self,
        recs: &[&Record],
        schema: &SchemaRef,
        stats: &SourceStats,
    ) -> Option<(RecordBatch, Vec<bool>)> {
        match self.spec.encode {
            Encode::Json => self.decode_json(recs, schema, stats),
            Encode::Csv { delimiter, .. } => {
                decode_with(recs, schema, stats, |ps| csv_batch(schema, delimiter, ps))
            }
        }
    }

    fn decode_json(
        &self,
        recs: &[&Record],
        schema: &SchemaRef,
        stats: &SourceStats,
    ) -> Option<(RecordBatch, Vec<bool>)> {
        decode_with(recs, schema, stats, |ps| json_batch(schema, ps))
    }
}

/// Decodes all payloads at once, falling back to one at a time on failure.
/// Returns the rows and, per record, whether it produced its row.
fn decode_with(
    recs: &[&Record],
    schema: &SchemaRef,
    stats: &SourceStats,
    f: impl Fn(&[&[u8]]) -> Result<RecordBatch, ArrowError>,
) -> Option<(RecordBatch, Vec<bool>)> {
    let payloads: Vec<&[u8]> = recs
        .iter()
        .map(|r| r.payload.as_deref().unwrap_or(&[]))
        .collect();
    if payloads.is_empty() {
        return Some((RecordBatch::new_empty(schema.clone()), Vec::new()));
    }
    if let Ok(b) = f(&payloads) {
        return Some((b, vec![true; recs.len()]));
    }
    let mut parts = Vec::new();
    let mut ok = Vec::with_capacity(recs.len());
    for (r, p) in recs.iter().zip(&payloads) {
        match f(&[p]) {
            Ok(b) => {
                parts.push(b);
                ok.push(true);
            }
            Err(e) => {
                stats.skip(r.partition, r.offset, describe(e, p));
                ok.push(false);
            }
        }
    }
    let b = concat_batches(schema, &parts).ok()?;
    Some((b, ok))
}

/// A decoding error as a short reason for `SHOW SOURCE ERRORS`.
pub(crate) fn describe(e: ArrowError, p: &[u8]) -> String {
    let msg = match e {
        ArrowError::JsonError(m) | ArrowError::CsvError(m) | ArrowError::ParseError(m) => m,
        ArrowError::InvalidArgumentError(m) => m,
        other => other.to_string(),
    };
    if p.is_empty() {
        return "empty message".into();
    }
    let mut m = msg;
    if m.len() > 300 {
        m.truncate(300);
        m.push_str("...");
    }
    m
}

/// Decodes JSON objects, exactly one per payload.
pub fn json_batch(schema: &SchemaRef, payloads: &[&[u8]]) -> Result<RecordBatch, ArrowError> {
    let mut d = arrow_json::ReaderBuilder::new(schema.clone())
        .with_batch_size(payloads.len().max(1))
        .with_coerce_primitive(true)
        .build_decoder()?;
    for p in payloads {
        let before = d.len();
        let used = d.decode(p)?;
        if used != p.len() || d.has_partial_record() {
            return Err(ArrowError::JsonError(
                "incomplete or extra JSON in message".into(),
            ));
        }
        if d.len() != before + 1 {
            return Err(ArrowError::JsonError(if d.len() == before {
                "empty message: expected one JSON object".into()
            } else {
                "more than one JSON value in one message".into()
            }));
        }
    }
    match d.flush()? {
        Some(b) => Ok(b),
        None => Ok(RecordBatch::new_empty(schema.clone())),
    }
}

/// Decodes CSV records, exactly one per payload.
pub fn csv_batch(
    schema: &SchemaRef,
    delimiter: u8,
    payloads: &[&[u8]],
) -> Result<RecordBatch, ArrowError> {
    let mut d = arrow_csv::ReaderBuilder::new(schema.clone())
        .with_header(false)
        .with_delimiter(delimiter)
        .with_batch_size(payloads.len().max(1) + 1)
        .build_decoder();
    let mut buf = Vec::new();
    for p in payloads {
        let t = trim(p);
        if t.is_empty() {
            return Err(ArrowError::CsvError("empty message".into()));
        }
        buf.extend_from_slice(t);
        buf.push(b'\n');
    }
    let mut off = 0;
    while off < buf.len() {
        let n = d.decode(&buf[off..])?;
        if n == 0 {
            break;
        }
        off += n;
    }
    d.decode(&[])?;
    let b = d
        .flush()?
        .unwrap_or_else(|| RecordBatch::new_empty(schema.clone()));
    if b.num_rows() != payloads.len() {
        return Err(ArrowError::CsvError(
            "expected exactly one CSV record per message".into(),
        ));
    }
    Ok(b)
}

fn trim(p: &[u8]) -> &[u8] {
    let s = p
        .iter()
        .position(|b| !b.is_ascii_whitespace())
        .unwrap_or(p.len());
    let e = p
        .iter()
        .rposition(|b| !b.is_ascii_whitespace())
        .map(|i| i + 1)
        .unwrap_or(s);
    &p[s..e.max(s)]
}

/// `s` as a JSON string literal.
pub(crate) fn json_string(s: &str) -> String {
    let mut out = String::with_capacity(s.len() + 2);
    out.push('"');
    for c in s.chars() {
        match c {
            '"' => out.push_str("\\\""),
            '\\' => out.push_str("\\\\"),
            c if (c as u32) < 0x20 => out.push_str(&format!("\\u{:04x}", c as u32)),
            c => out.push(c),
        }
    }
    out.push('"');
    out
}

/// A struct column as a batch of the row schema.
fn struct_batch(col: &ArrayRef, schema: &SchemaRef) -> Option<RecordBatch> {
    let s: &StructArray = col.as_struct_opt()?;
    RecordBatch::try_new_with_options(
        schema.clone(),
        s.columns().to_vec(),
        &RecordBatchOptions::new().with_row_count(Some(s.len())),
    )
    .ok()
}

/// Picks rows from several batches of one schema, in the given order.
fn interleave_batches<T>(
    schema: &SchemaRef,
    batches: &[&RecordBatch],
    order: &[T],
    pick: impl Fn(&T) -> (usize, usize),
) -> Result<RecordBatch, ArrowError> {
    let idx: Vec<(usize, usize)> = order.iter().map(pick).collect();
    let mut cols = Vec::with_capacity(schema.fields().len());
    for c in 0..schema.fields().len() {
        let arrays: Vec<&dyn Array> = batches.iter().map(|b| b.column(c).as_ref()).collect();
        cols.push(interleave(&arrays, &idx)?);
    }
    RecordBatch::try_new_with_options(
        schema.clone(),
        cols,
        &RecordBatchOptions::new().with_row_count(Some(idx.len())),
    )
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::source::{Connector, DatagenOptions};
    use datafusion::arrow::datatypes::DataType;

    fn spec(format: Format, encode: Encode, pk: Option<Vec<usize>>) -> Arc<SourceSpec> {
        Arc::new(SourceSpec {
            name: "s".into(),
            schema: Arc::new(Schema::new(vec![
                Field::new("id", DataType::Int64, true),
                Field::new("name", DataType::Utf8, true),
            ])),
            pk,
            connector: Connector::Datagen(DatagenOptions {
                rows_per_second: 1,
                seed: 0,
                fields: Default::default(),
            }),
            format,
            encode,
            watermark: None,
            idle_timeout: crate::source::options::DEFAULT_IDLE_TIMEOUT,
        })
    }

    const UPSERT_DELETE_TWICE: [RowOp; 4] =
        [RowOp::Upsert, RowOp::Delete, RowOp::Upsert, RowOp::Delete];

    fn rec(off: i64, key: Option<&str>, v: Option<&str>) -> Record {
        Record {
            partition: 0,
            offset: off,
            key: key.map(|k| k.as_bytes().to_vec()),
            payload: v.map(|v| v.as_bytes().to_vec()),
        }
    }

    #[test]
    fn json_skips_bad_records_and_keeps_good_ones() {
        let d = RecordDecoder::new(spec(Format::Plain, Encode::Json, None));
        let stats = SourceStats::new("s", "v");
        let recs = vec![
            rec(0, None, Some(r#"{"id": 1, "name": "a"}"#)),
            rec(1, None, Some(r#"{"id": "x"}"#)),
            rec(2, None, Some("{not json")),
            rec(3, None, Some("")),
            rec(4, None, Some(r#"{"id": 2, "extra": true}"#)),
            rec(5, None, Some(r#"{"id": 3}{"id": 4}"#)),
        ];
        let c = d.decode(&recs, &stats).expect("rows");
        assert_eq!(c.rows.num_rows(), 2);
        assert_eq!(stats.skipped.load(std::sync::atomic::Ordering::Relaxed), 4);
        let offs: Vec<i64> = stats.errors().iter().map(|e| e.offset).collect();
        assert_eq!(offs, vec![1, 2, 3, 5]);
    }

    #[test]
    fn csv_and_header() {
        let d = RecordDecoder::new(spec(
            Format::Plain,
            Encode::Csv {
                delimiter: b',',
                has_header: true,
            },
            None,
        ));
        let stats = SourceStats::new("s", "v");
        let recs = vec![
            rec(0, None, Some("id,name")),
            rec(1, None, Some("1,a")),
            rec(2, None, Some("x,b")),
            rec(3, None, Some("3,c\n")),
        ];
        let c = d.decode(&recs, &stats).expect("rows");
        assert_eq!(c.rows.num_rows(), 2);
        assert_eq!(stats.skipped.load(std::sync::atomic::Ordering::Relaxed), 1);
    }

    #[test]
    fn upsert_keeps_record_order() {
        let d = RecordDecoder::new(spec(Format::Upsert, Encode::Json, Some(vec![0])));
        let stats = SourceStats::new("s", "v");
        let recs = vec![
            rec(0, Some("1"), Some(r#"{"id": 1, "name": "a"}"#)),
            rec(1, Some("1"), None),
            rec(2, Some(r#"{"id": 2}"#), Some(r#"{"id": 2, "name": "b"}"#)),
            rec(3, Some(r#"{"id": 2}"#), None),
        ];
        let c = d.decode(&recs, &stats).expect("rows");
        assert_eq!(c.ops.as_deref(), Some(&UPSERT_DELETE_TWICE[..]));
        let ids = c
            .rows
            .column(0)
            .as_primitive::<datafusion::arrow::datatypes::Int64Type>();
        assert_eq!(ids.values().to_vec(), vec![1, 1, 2, 2]);
    }

    #[test]
    fn debezium_envelopes() {
        let d = RecordDecoder::new(spec(Format::Debezium, Encode::Json, Some(vec![0])));
        let stats = SourceStats::new("s", "v");
        let recs = vec![
            rec(
                0,
                None,
                Some(r#"{"before": null, "after": {"id": 1, "name": "a"}, "op": "c"}"#),
            ),
            rec(
                1,
                None,
                Some(
                    r#"{"schema": {}, "payload": {"before": {"id": 1, "name": "a"}, "after": {"id": 1, "name": "b"}, "op": "u"}}"#,
                ),
            ),
            rec(
                2,
                None,
                Some(r#"{"before": {"id": 1, "name": "b"}, "after": null, "op": "d"}"#),
            ),
            rec(3, None, None),
        ];
        let c = d.decode(&recs, &stats).expect("rows");
        assert_eq!(c.ops.as_deref(), Some(&UPSERT_DELETE_TWICE[..]));
        let names = c.rows.column(1).as_string::<i32>();
        assert_eq!(names.value(2), "b");
        assert_eq!(stats.skipped.load(std::sync::atomic::Ordering::Relaxed), 0);
    }
}
