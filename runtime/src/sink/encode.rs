//! A sink's changes as records: rows as JSON (arrow-json, a batch at a
//! time), shaped per format. UPSERT and DEBEZIUM consolidate each epoch's
//! changes per key first, so a key changed several times in one epoch
//! yields one record: its state at the end of the epoch.

use std::collections::HashMap;

use datafusion::arrow::array::RecordBatch;

use super::options::{SinkFormat, SinkSpec};
use crate::change::ChangeBatch;
use crate::error::{Result, RuntimeError};
use crate::source::decode::json_string;

/// One record for the target: a key and a value, either of which may be
/// absent (a tombstone has no value).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Record {
    pub key: Option<Vec<u8>>,
    pub value: Option<Vec<u8>>,
}

impl Record {
    pub fn bytes(&self) -> usize {
        self.key.as_ref().map_or(0, Vec::len) + self.value.as_ref().map_or(0, Vec::len)
    }
}

/// The JSON object of each row of `batch`, in order; NULLs are written as
/// `null`, not left out.
pub fn json_rows(batch: &RecordBatch) -> Result<Vec<Vec<u8>>> {
    let n = batch.num_rows();
    if n == 0 {
        return Ok(Vec::new());
    }
    let mut buf = Vec::with_capacity(n * 64);
    {
        let mut w = arrow_json::WriterBuilder::new()
            .with_explicit_nulls(true)
            .build::<_, arrow_json::writer::LineDelimited>(&mut buf);
        w.write(batch).map_err(json_error)?;
        w.finish().map_err(json_error)?;
    }
    let mut out = Vec::with_capacity(n);
    out.extend(
        buf.split(|&b| b == b'\n')
            .filter(|l| !l.is_empty())
            .map(<[u8]>::to_vec),
    );
    if out.len() != n {
        return Err(RuntimeError::Internal(format!(
            "JSON encoding gave {} lines for {n} rows",
            out.len()
        )));
    }
    Ok(out)
}

fn json_error(e: datafusion::arrow::error::ArrowError) -> RuntimeError {
    RuntimeError::Internal(format!("encoding a sink row as JSON: {e}"))
}

/// Collects one epoch's changes and turns them into records at its end.
pub struct EpochEncoder {
    name: String,
    format: SinkFormat,
    key: Vec<usize>,
    /// PLAIN: records in arrival order.
    plain: Vec<Record>,
    /// UPSERT / DEBEZIUM: keys in first-seen order, and per key its rows
    /// with their summed weights.
    order: Vec<Vec<u8>>,
    rows: HashMap<Vec<u8>, Vec<(Vec<u8>, i64)>>,
    /// Deletes a PLAIN sink dropped (`force_append_only`).
    pub dropped: u64,
}

impl EpochEncoder {
    pub fn new(spec: &SinkSpec) -> Self {
        EpochEncoder {
            name: spec.name.clone(),
            format: spec.format,
            key: spec.key.clone(),
            plain: Vec::new(),
            order: Vec::new(),
            rows: HashMap::new(),
            dropped: 0,
        }
    }

    pub fn is_empty(&self) -> bool {
        self.plain.is_empty() && self.order.is_empty()
    }

    pub fn add(&mut self, batch: &ChangeBatch) -> Result<()> {
        if batch.data.num_rows() == 0 {
            return Ok(());
        }
        let rows = json_rows(&batch.data)?;
        let keys = if self.key.is_empty() {
            None
        } else {
            Some(json_rows(&batch.data.project(&self.key)?)?)
        };
        let weights = batch.weights.values();
        if self.format == SinkFormat::Plain {
            for (i, row) in rows.into_iter().enumerate() {
                let w = weights[i];
                if w < 0 {
                    self.dropped += w.unsigned_abs();
                    continue;
                }
                let key = keys.as_ref().map(|k| k[i].clone());
                for _ in 0..w {
                    self.plain.push(Record {
                        key: key.clone(),
                        value: Some(row.clone()),
                    });
                }
            }
            return Ok(());
        }
        let keys = keys.unwrap_or_default();
        for ((row, key), &w) in rows.into_iter().zip(keys).zip(weights) {
            if w == 0 {
                continue;
            }
            let entry = match self.rows.get_mut(&key) {
                Some(e) => e,
                None => {
                    self.order.push(key.clone());
                    self.rows.entry(key).or_default()
                }
            };
            match entry.iter_mut().find(|(r, _)| *r == row) {
                Some((_, n)) => *n += w,
                None => entry.push((row, w)),
            }
        }
        Ok(())
    }

    /// The epoch's records; `ts_ms` stamps DEBEZIUM events.
    pub fn finish(&mut self, ts_ms: i64) -> Vec<Record> {
        if self.format == SinkFormat::Plain {
            return std::mem::take(&mut self.plain);
        }
        let mut out = Vec::with_capacity(self.order.len());
        for key in std::mem::take(&mut self.order) {
            let rows = self.rows.remove(&key).unwrap_or_default();
            let after = rows.iter().rev().find(|(_, w)| *w > 0).map(|(r, _)| r);
            let before = rows.iter().find(|(_, w)| *w < 0).map(|(r, _)| r);
            match self.format {
                SinkFormat::Upsert => match (after, before) {
                    (Some(a), _) => out.push(Record {
                        key: Some(key),
                        value: Some(a.clone()),
                    }),
                    (None, Some(_)) => out.push(Record {
                        key: Some(key),
                        value: None,
                    }),
                    (None, None) => {}
                },
                _ => {
                    let op = match (before, after) {
                        (None, Some(_)) => "c",
                        (Some(_), Some(_)) => "u",
                        (Some(_), None) => "d",
                        (None, None) => continue,
                    };
                    let mut v = Vec::with_capacity(64 + before.map_or(4, Vec::len) * 2);
                    v.extend_from_slice(b"{\"before\":");
                    v.extend_from_slice(before.map_or(&b"null"[..], Vec::as_slice));
                    v.extend_from_slice(b",\"after\":");
                    v.extend_from_slice(after.map_or(&b"null"[..], Vec::as_slice));
                    v.extend_from_slice(
                        format!(
                            ",\"op\":\"{op}\",\"ts_ms\":{ts_ms},\"source\":{{\"connector\":\"freshet\",\"name\":{}}}}}",
                            json_string(&self.name)
                        )
                        .as_bytes(),
                    );
                    out.push(Record {
                        key: Some(key),
                        value: Some(v),
                    });
                }
            }
        }
        out
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::sink::options::{KafkaSinkOptions, SinkConnector};
    use datafusion::arrow::array::{Int64Array, StringArray};
    use datafusion::arrow::datatypes::{DataType, Field, Schema};
    use std::sync::Arc;

    fn spec(format: SinkFormat, key: Vec<usize>) -> SinkSpec {
        SinkSpec {
            name: "s".into(),
            schema: Arc::new(Schema::new(vec![
                Field::new("k", DataType::Int64, true),
                Field::new("v", DataType::Utf8, true),
            ])),
            connector: SinkConnector::Kafka(KafkaSinkOptions {
                brokers: String::new(),
                topic: String::new(),
                properties: vec![],
                connect_timeout_ms: 0,
            }),
            format,
            key,
            force_append_only: true,
            exactly_once: true,
        }
    }

    fn batch(s: &SinkSpec, rows: &[(i64, Option<&str>, i64)]) -> ChangeBatch {
        let data = RecordBatch::try_new(
            s.schema.clone(),
            vec![
                Arc::new(Int64Array::from_iter_values(rows.iter().map(|r| r.0))),
                Arc::new(StringArray::from_iter(rows.iter().map(|r| r.1))),
            ],
        )
        .unwrap();
        ChangeBatch::with_weights(data, rows.iter().map(|r| r.2).collect())
    }

    fn text(r: &Record) -> (Option<String>, Option<String>) {
        let s = |b: &Option<Vec<u8>>| b.as_ref().map(|b| String::from_utf8(b.clone()).unwrap());
        (s(&r.key), s(&r.value))
    }

    #[test]
    fn upsert_keeps_the_last_state_per_key() {
        let s = spec(SinkFormat::Upsert, vec![0]);
        let mut e = EpochEncoder::new(&s);
        e.add(&batch(&s, &[(1, Some("a"), 1), (2, Some("b"), 1)]))
            .unwrap();
        assert_eq!(e.finish(0).len(), 2);
        // Next epoch: an update, a delete, and a row inserted and deleted
        // again within the epoch (no record).
        e.add(&batch(
            &s,
            &[(1, Some("a"), -1), (1, Some("c"), 1), (2, Some("b"), -1)],
        ))
        .unwrap();
        e.add(&batch(&s, &[(3, None, 1), (3, None, -1)])).unwrap();
        let out: Vec<_> = e.finish(0).iter().map(text).collect();
        assert_eq!(
            out,
            vec![
                (Some(r#"{"k":1}"#.into()), Some(r#"{"k":1,"v":"c"}"#.into())),
                (Some(r#"{"k":2}"#.into()), None),
            ]
        );
        assert!(e.is_empty());
    }

    #[test]
    fn debezium_pairs_before_and_after() {
        let s = spec(SinkFormat::Debezium, vec![0]);
        let mut e = EpochEncoder::new(&s);
        e.add(&batch(
            &s,
            &[(1, Some("x"), -1), (1, Some("y"), 1), (2, None, 1)],
        ))
        .unwrap();
        let out: Vec<_> = e.finish(7).iter().map(text).collect();
        assert_eq!(
            out[0].1.as_deref(),
            Some(
                r#"{"before":{"k":1,"v":"x"},"after":{"k":1,"v":"y"},"op":"u","ts_ms":7,"source":{"connector":"freshet","name":"s"}}"#
            )
        );
        assert!(out[1]
            .1
            .as_deref()
            .unwrap()
            .contains(r#""after":{"k":2,"v":null},"op":"c""#));
    }

    #[test]
    fn plain_repeats_weights_and_drops_deletes() {
        let s = spec(SinkFormat::Plain, vec![]);
        let mut e = EpochEncoder::new(&s);
        e.add(&batch(&s, &[(1, Some("a"), 2), (2, Some("b"), -1)]))
            .unwrap();
        let out = e.finish(0);
        assert_eq!(out.len(), 2);
        assert_eq!(out[0].key, None);
        assert_eq!(e.dropped, 1);
    }
}
