//! The `datagen` connector: rows from per-column generators (sequences and
//! seeded random values), at a set rate. Row `n` is a pure function of the
//! options and `n`, so a restart resumes the same stream at the committed
//! row count.

use std::sync::atomic::Ordering;
use std::sync::Arc;
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use datafusion::arrow::array::{
    ArrayRef, BooleanArray, Date32Array, Float32Array, Float64Array, Int16Array, Int32Array,
    Int64Array, RecordBatch, StringArray, TimestampMicrosecondArray, TimestampMillisecondArray,
    TimestampNanosecondArray, TimestampSecondArray,
};
use datafusion::arrow::datatypes::{DataType, TimeUnit};

use super::options::DatagenOptions;
use super::{Ingest, ReaderCtx, SourceChunk, SourceError, SourceSpec};

const CHUNK: u64 = 1024;
const SPLIT: &str = "offset";

#[derive(Debug, Clone)]
enum Gen {
    /// `start + n`, up to `end` (inclusive) when set.
    Sequence { start: i64, end: Option<i64> },
    /// Uniform in `[min, max]`; strings of `length` characters.
    Random {
        min: f64,
        max: f64,
        length: usize,
        seed: u64,
    },
    /// Timestamps: `start + n * step` milliseconds.
    TimeSequence { start_ms: i64, step_ms: i64 },
    /// Timestamps: the wall clock when the row is generated.
    Now,
}

fn opt_num<T: std::str::FromStr>(
    o: &std::collections::BTreeMap<String, String>,
    col: &str,
    k: &str,
) -> Result<Option<T>, SourceError> {
    match o.get(k) {
        None => Ok(None),
        Some(v) => v.trim().parse().map(Some).map_err(|_| {
            SourceError::Option(format!("invalid value for fields.{col}.{k}: \"{v}\""))
        }),
    }
}

fn generators(spec: &SourceSpec, d: &DatagenOptions) -> Result<Vec<Gen>, SourceError> {
    let empty = Default::default();
    spec.schema
        .fields()
        .iter()
        .enumerate()
        .map(|(i, f)| {
            let col = f.name().as_str();
            let o = d.fields.get(col).unwrap_or(&empty);
            for k in o.keys() {
                if !matches!(
                    k.as_str(),
                    "kind" | "start" | "end" | "min" | "max" | "length" | "seed" | "step"
                ) {
                    return Err(SourceError::Option(format!(
                        "unknown datagen option fields.{col}.{k}"
                    )));
                }
            }
            let kind = o.get("kind").map(|k| k.to_ascii_lowercase());
            let is_time = matches!(f.data_type(), DataType::Timestamp(_, _) | DataType::Date32);
            let ok_type = matches!(
                f.data_type(),
                DataType::Int16
                    | DataType::Int32
                    | DataType::Int64
                    | DataType::Float32
                    | DataType::Float64
                    | DataType::Utf8
                    | DataType::Boolean
            ) || is_time;
            if !ok_type {
                return Err(SourceError::Unsupported(format!(
                    "datagen cannot generate column \"{col}\" of type {}",
                    f.data_type()
                )));
            }
            Ok(match kind.as_deref() {
                Some("sequence") if is_time => Gen::TimeSequence {
                    start_ms: opt_num(o, col, "start")?.unwrap_or(0),
                    step_ms: opt_num(o, col, "step")?.unwrap_or(1000),
                },
                Some("sequence") => Gen::Sequence {
                    start: opt_num(o, col, "start")?.unwrap_or(1),
                    end: opt_num(o, col, "end")?,
                },
                None if is_time => Gen::Now,
                None | Some("random") => Gen::Random {
                    min: opt_num(o, col, "min")?.unwrap_or(0.0),
                    max: opt_num(o, col, "max")?.unwrap_or(32767.0),
                    length: opt_num(o, col, "length")?.unwrap_or(10),
                    seed: opt_num::<u64>(o, col, "seed")?
                        .unwrap_or(i as u64)
                        .wrapping_add(d.seed.wrapping_mul(0x9E37_79B9_7F4A_7C15)),
                },
                Some(other) => {
                    return Err(SourceError::Option(format!(
                        "invalid fields.{col}.kind \"{other}\" (use sequence or random)"
                    )))
                }
            })
        })
        .collect()
}

/// Checks the options against the declared columns.
pub fn check(spec: &SourceSpec, d: &DatagenOptions) -> Result<(), SourceError> {
    generators(spec, d).map(|_| ())
}

fn mix(mut z: u64) -> u64 {
    z = z.wrapping_add(0x9E37_79B9_7F4A_7C15);
    z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
    z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
    z ^ (z >> 31)
}

fn unit(seed: u64, n: u64) -> f64 {
    (mix(seed ^ mix(n)) >> 11) as f64 / (1u64 << 53) as f64
}

fn now_ms() -> i64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_millis() as i64)
        .unwrap_or(0)
}

fn column(g: &Gen, ty: &DataType, rows: std::ops::Range<u64>) -> ArrayRef {
    let ints = |rows: std::ops::Range<u64>| -> Vec<i64> {
        rows.map(|n| match g {
            Gen::Sequence { start, .. } => start + n as i64,
            Gen::Random { min, max, seed, .. } => {
                (min + unit(*seed, n) * (max - min + 1.0)).floor().min(*max) as i64
            }
            Gen::TimeSequence { start_ms, step_ms } => start_ms + n as i64 * step_ms,
            Gen::Now => now_ms(),
        })
        .collect()
    };
    let floats = |rows: std::ops::Range<u64>| -> Vec<f64> {
        rows.map(|n| match g {
            Gen::Random { min, max, seed, .. } => min + unit(*seed, n) * (max - min),
            _ => ints(n..n + 1)[0] as f64,
        })
        .collect()
    };
    match ty {
        DataType::Int16 => Arc::new(Int16Array::from_iter_values(
            ints(rows).into_iter().map(|v| v as i16),
        )),
        DataType::Int32 => Arc::new(Int32Array::from_iter_values(
            ints(rows).into_iter().map(|v| v as i32),
        )),
        DataType::Int64 => Arc::new(Int64Array::from(ints(rows))),
        DataType::Float32 => Arc::new(Float32Array::from_iter_values(
            floats(rows).into_iter().map(|v| v as f32),
        )),
        DataType::Float64 => Arc::new(Float64Array::from(floats(rows))),
        DataType::Boolean => Arc::new(BooleanArray::from_iter(
            ints(rows).into_iter().map(|v| Some(v % 2 == 0)),
        )),
        DataType::Utf8 => {
            const ALPHA: &[u8] = b"abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789";
            let vals: Vec<String> = rows
                .map(|n| match g {
                    Gen::Random { length, seed, .. } => (0..*length)
                        .map(|i| {
                            let r =
                                mix(seed ^ mix(n) ^ (i as u64).wrapping_mul(0x51_7CC1_B727_220A));
                            ALPHA[(r % ALPHA.len() as u64) as usize] as char
                        })
                        .collect(),
                    _ => ints(n..n + 1)[0].to_string(),
                })
                .collect();
            Arc::new(StringArray::from(vals))
        }
        DataType::Date32 => Arc::new(Date32Array::from_iter_values(
            ints(rows)
                .into_iter()
                .map(|ms| ms.div_euclid(86_400_000) as i32),
        )),
        DataType::Timestamp(unit_, tz) => {
            let ms = ints(rows);
            let a: ArrayRef = match unit_ {
                TimeUnit::Second => Arc::new(
                    TimestampSecondArray::from_iter_values(ms.into_iter().map(|v| v / 1000))
                        .with_timezone_opt(tz.clone()),
                ),
                TimeUnit::Millisecond => {
                    Arc::new(TimestampMillisecondArray::from(ms).with_timezone_opt(tz.clone()))
                }
                TimeUnit::Microsecond => Arc::new(
                    TimestampMicrosecondArray::from_iter_values(ms.into_iter().map(|v| v * 1000))
                        .with_timezone_opt(tz.clone()),
                ),
                TimeUnit::Nanosecond => Arc::new(
                    TimestampNanosecondArray::from_iter_values(
                        ms.into_iter().map(|v| v * 1_000_000),
                    )
                    .with_timezone_opt(tz.clone()),
                ),
            };
            a
        }
        _ => Arc::new(Int64Array::from(ints(rows))),
    }
}

/// Generates rows `range` of the stream.
pub fn generate(
    spec: &SourceSpec,
    d: &DatagenOptions,
    range: std::ops::Range<u64>,
) -> Result<RecordBatch, SourceError> {
    let gens = generators(spec, d)?;
    let cols: Vec<ArrayRef> = gens
        .iter()
        .zip(spec.schema.fields())
        .map(|(g, f)| column(g, f.data_type(), range.clone()))
        .collect();
    RecordBatch::try_new(spec.schema.clone(), cols)
        .map_err(|e| SourceError::Option(format!("datagen: {e}")))
}

/// Runs until stopped, the engine goes away, or a bounded sequence ends.
pub fn run(ctx: ReaderCtx, d: &DatagenOptions) -> Result<(), SourceError> {
    let gens = generators(&ctx.spec, d)?;
    let total: Option<u64> = gens
        .iter()
        .filter_map(|g| match g {
            Gen::Sequence {
                start,
                end: Some(end),
            } => Some((end - start + 1).max(0) as u64),
            _ => None,
        })
        .min();
    // A catch-up reader stops at its end, and is not paced.
    let end = ctx.end_of(SPLIT).map(|e| e.max(0) as u64);
    let total = match (total, end) {
        (Some(t), Some(e)) => Some(t.min(e)),
        (t, e) => t.or(e),
    };
    let mut done = ctx.state.get(SPLIT).copied().unwrap_or(0).max(0) as u64;
    let started = Instant::now();
    let base = done;
    let mut wms = super::SplitWatermarks::new(&ctx.spec);
    loop {
        if ctx.stop.stopped() {
            return Ok(());
        }
        let mut n = CHUNK;
        if d.rows_per_second > 0 && end.is_none() {
            let allowed =
                base + (started.elapsed().as_secs_f64() * d.rows_per_second as f64) as u64 + 1;
            n = n.min(allowed.saturating_sub(done));
        }
        if let Some(t) = total {
            n = n.min(t.saturating_sub(done));
            if n == 0 && done >= t && end.is_some() {
                ctx.finish_catch_up();
                return Ok(());
            }
            if n == 0 && done >= t {
                ctx.stats.finished.store(true, Ordering::SeqCst);
                std::thread::sleep(Duration::from_millis(200));
                continue;
            }
        }
        if n == 0 {
            std::thread::sleep(Duration::from_millis(20));
            continue;
        }
        let rows = generate(&ctx.spec, d, done..done + n)?;
        done += n;
        wms.observe(SPLIT, Some(&rows));
        let msg = Ingest {
            key: ctx.key,
            chunk: Some(SourceChunk { rows, ops: None }),
            state: vec![(SPLIT.to_string(), done as i64)],
            watermark: wms.poll(),
            done: false,
        };
        if !ctx.sink.send(msg) {
            return Ok(());
        }
        ctx.stats.rows.fetch_add(n, Ordering::Relaxed);
    }
}
