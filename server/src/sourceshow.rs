//! `SHOW SOURCE ERRORS` and `SHOW SOURCE PROGRESS`: the source readers'
//! counters and recent skipped records, as rows.

use std::sync::atomic::Ordering;
use std::sync::Arc;

use datafusion::arrow::array::{
    ArrayRef, BooleanArray, Int32Array, Int64Array, RecordBatch, StringArray,
};
use datafusion::arrow::datatypes::{DataType, Field, Schema, SchemaRef};
use freshet_runtime::Engine;

use crate::exec::Output;

pub fn errors_schema() -> SchemaRef {
    Arc::new(Schema::new(vec![
        Field::new("source", DataType::Utf8, true),
        Field::new("consumer", DataType::Utf8, true),
        Field::new("skipped_total", DataType::Int64, true),
        Field::new("rows_total", DataType::Int64, true),
        Field::new("partition", DataType::Int32, true),
        Field::new("offset", DataType::Int64, true),
        Field::new("reason", DataType::Utf8, true),
        Field::new("at", DataType::Utf8, true),
    ]))
}

pub fn progress_schema() -> SchemaRef {
    Arc::new(Schema::new(vec![
        Field::new("source", DataType::Utf8, true),
        Field::new("consumer", DataType::Utf8, true),
        Field::new("rows_total", DataType::Int64, true),
        Field::new("skipped_total", DataType::Int64, true),
        Field::new("finished", DataType::Boolean, true),
    ]))
}

fn rows(schema: SchemaRef, cols: Vec<ArrayRef>) -> Output {
    let batches = RecordBatch::try_new(schema.clone(), cols)
        .map(|b| vec![b])
        .unwrap_or_default();
    Output::Rows { schema, batches }
}

/// `SHOW SOURCE ERRORS`: the last records each reader skipped, and why.
pub fn errors(engine: &Engine) -> Output {
    let (mut src, mut owner, mut part, mut off, mut reason, mut at) =
        (vec![], vec![], vec![], vec![], vec![], vec![]);
    let (mut skipped, mut read) = (vec![], vec![]);
    for (_, st) in engine.source_stats() {
        let total = st.skipped.load(Ordering::Relaxed) as i64;
        let n = st.rows.load(Ordering::Relaxed) as i64;
        for e in st.errors() {
            src.push(st.source.clone());
            owner.push(st.owners().join(", "));
            skipped.push(total);
            read.push(n);
            part.push(e.partition);
            off.push(e.offset);
            reason.push(e.reason);
            let t: chrono::DateTime<chrono::Utc> = e.at.into();
            at.push(t.format("%Y-%m-%d %H:%M:%S%.3f+00").to_string());
        }
    }
    rows(
        errors_schema(),
        vec![
            Arc::new(StringArray::from(src)),
            Arc::new(StringArray::from(owner)),
            Arc::new(Int64Array::from(skipped)),
            Arc::new(Int64Array::from(read)),
            Arc::new(Int32Array::from(part)),
            Arc::new(Int64Array::from(off)),
            Arc::new(StringArray::from(reason)),
            Arc::new(StringArray::from(at)),
        ],
    )
}

/// `SHOW SOURCE PROGRESS`: per reader, the rows it handed the engine, the
/// records it skipped, and whether a bounded reader has handed over its
/// last row (a `FLUSH` after that commits everything it read).
pub fn progress(engine: &Engine) -> Output {
    // A shared reader shows once for each view it feeds.
    let mut stats: Vec<(String, String, i64, i64, bool)> = Vec::new();
    for (_, s) in engine.source_stats() {
        for owner in s.owners() {
            stats.push((
                s.source.clone(),
                owner,
                s.rows.load(Ordering::Relaxed) as i64,
                s.skipped.load(Ordering::Relaxed) as i64,
                s.finished.load(Ordering::SeqCst),
            ));
        }
    }
    stats.sort_by(|a, b| (&a.0, &a.1).cmp(&(&b.0, &b.1)));
    rows(
        progress_schema(),
        vec![
            Arc::new(StringArray::from_iter_values(
                stats.iter().map(|s| s.0.as_str()),
            )),
            Arc::new(StringArray::from_iter_values(
                stats.iter().map(|s| s.1.as_str()),
            )),
            Arc::new(Int64Array::from_iter_values(stats.iter().map(|s| s.2))),
            Arc::new(Int64Array::from_iter_values(stats.iter().map(|s| s.3))),
            Arc::new(BooleanArray::from_iter(stats.iter().map(|s| Some(s.4)))),
        ],
    )
}
