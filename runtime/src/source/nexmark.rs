//! The `nexmark` connector: the Nexmark person, auction and bid streams
//! from the `nexmark` crate. Event `n` depends only on the options, the
//! stored base time and `n`, so a restart resumes the same stream, and the
//! three tables generated with the same options are one consistent stream
//! (sellers and bidders are generated people, bids hit generated auctions).
//!
//! Paced (`nexmark.use.real.time = 'true'`) an event goes out once as much
//! wall time has passed as event time; unpaced the reader produces as fast
//! as the engine takes rows, with the same event times.

use std::sync::atomic::Ordering;
use std::sync::Arc;
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use datafusion::arrow::array::{
    ArrayRef, Int64Array, RecordBatch, StringArray, TimestampMillisecondArray,
};
use datafusion::arrow::compute::cast;
use datafusion::arrow::datatypes::{DataType, Field, Schema, SchemaRef, TimeUnit};
use nexmark::config::NexmarkConfig;
use nexmark::event::{Event, EventType};
use nexmark::EventGenerator;

use super::options::{NexmarkOptions, NexmarkTable};
use super::{Ingest, ReaderCtx, SourceChunk, SourceError, SourceSpec, SplitState};

const OFFSET: &str = "offset";
pub(crate) const BASE_TIME: &str = "base_time";
/// Event time of the first event of an unpaced stream without
/// `nexmark.base.time`: 2026-01-01 00:00:00 UTC, so an unpaced stream is the
/// same on every run (and results can be compared across runs and engines).
pub const UNPACED_BASE_TIME_MS: i64 = 1_767_225_600_000;

fn ts() -> DataType {
    DataType::Timestamp(TimeUnit::Millisecond, None)
}

/// The columns of a Nexmark table, as generated.
pub fn native_schema(t: NexmarkTable) -> SchemaRef {
    let s = |n: &str| Field::new(n, DataType::Utf8, true);
    let i = |n: &str| Field::new(n, DataType::Int64, true);
    let t_ = |n: &str| Field::new(n, ts(), true);
    Arc::new(Schema::new(match t {
        NexmarkTable::Person => vec![
            i("id"),
            s("name"),
            s("email_address"),
            s("credit_card"),
            s("city"),
            s("state"),
            t_("date_time"),
            s("extra"),
        ],
        NexmarkTable::Auction => vec![
            i("id"),
            s("item_name"),
            s("description"),
            i("initial_bid"),
            i("reserve"),
            t_("date_time"),
            t_("expires"),
            i("seller"),
            i("category"),
            s("extra"),
        ],
        NexmarkTable::Bid => vec![
            i("auction"),
            i("bidder"),
            i("price"),
            s("channel"),
            s("url"),
            t_("date_time"),
            s("extra"),
        ],
    }))
}

/// SQL column list of a Nexmark table (used when a source declares none).
pub fn default_columns(t: NexmarkTable) -> String {
    native_schema(t)
        .fields()
        .iter()
        .map(|f| {
            let ty = match f.data_type() {
                DataType::Int64 => "BIGINT",
                DataType::Utf8 => "VARCHAR",
                _ => "TIMESTAMP",
            };
            format!("{} {ty}", f.name())
        })
        .collect::<Vec<_>>()
        .join(", ")
}

/// Checks that every declared column is a Nexmark column castable from it.
pub fn check(spec: &SourceSpec, n: &NexmarkOptions) -> Result<(), SourceError> {
    let native = native_schema(n.table);
    for f in spec.schema.fields() {
        let Ok(nf) = native.field_with_name(f.name()) else {
            return Err(SourceError::Option(format!(
                "column \"{}\" is not a column of the nexmark {:?} table (columns: {})",
                f.name(),
                n.table,
                default_columns(n.table)
            )));
        };
        if !datafusion::arrow::compute::can_cast_types(nf.data_type(), f.data_type()) {
            return Err(SourceError::Option(format!(
                "column \"{}\" cannot be declared {}",
                f.name(),
                f.data_type()
            )));
        }
    }
    Ok(())
}

/// The event-time base, fixed when the reader is created: the option, or
/// the creation time for a paced stream, or a fixed instant for an unpaced
/// one.
pub fn initial_state(n: &NexmarkOptions) -> SplitState {
    let now = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_millis() as i64)
        .unwrap_or(0);
    let default = if n.real_time {
        now
    } else {
        UNPACED_BASE_TIME_MS
    };
    let mut s = SplitState::new();
    s.insert(
        BASE_TIME.into(),
        n.base_time_ms.map_or(default, |b| b as i64),
    );
    s
}

fn rows(events: &[Event], t: NexmarkTable) -> Vec<ArrayRef> {
    let int = |f: &dyn Fn(&Event) -> i64| -> ArrayRef {
        Arc::new(Int64Array::from_iter_values(events.iter().map(f)))
    };
    let text = |f: &dyn Fn(&Event) -> &str| -> ArrayRef {
        Arc::new(StringArray::from_iter_values(events.iter().map(f)))
    };
    let time = |f: &dyn Fn(&Event) -> i64| -> ArrayRef {
        Arc::new(TimestampMillisecondArray::from_iter_values(
            events.iter().map(f),
        ))
    };
    macro_rules! get {
        ($variant:ident, $e:ident => $body:expr) => {
            |ev: &Event| match ev {
                Event::$variant($e) => $body,
                _ => Default::default(),
            }
        };
    }
    match t {
        NexmarkTable::Person => vec![
            int(&get!(Person, p => p.id as i64)),
            text(&get!(Person, p => p.name.as_str())),
            text(&get!(Person, p => p.email_address.as_str())),
            text(&get!(Person, p => p.credit_card.as_str())),
            text(&get!(Person, p => p.city.as_str())),
            text(&get!(Person, p => p.state.as_str())),
            time(&get!(Person, p => p.date_time as i64)),
            text(&get!(Person, p => p.extra.as_str())),
        ],
        NexmarkTable::Auction => vec![
            int(&get!(Auction, a => a.id as i64)),
            text(&get!(Auction, a => a.item_name.as_str())),
            text(&get!(Auction, a => a.description.as_str())),
            int(&get!(Auction, a => a.initial_bid as i64)),
            int(&get!(Auction, a => a.reserve as i64)),
            time(&get!(Auction, a => a.date_time as i64)),
            time(&get!(Auction, a => a.expires as i64)),
            int(&get!(Auction, a => a.seller as i64)),
            int(&get!(Auction, a => a.category as i64)),
            text(&get!(Auction, a => a.extra.as_str())),
        ],
        NexmarkTable::Bid => vec![
            int(&get!(Bid, b => b.auction as i64)),
            int(&get!(Bid, b => b.bidder as i64)),
            int(&get!(Bid, b => b.price as i64)),
            text(&get!(Bid, b => b.channel.as_str())),
            text(&get!(Bid, b => b.url.as_str())),
            time(&get!(Bid, b => b.date_time as i64)),
            text(&get!(Bid, b => b.extra.as_str())),
        ],
    }
}

fn to_batch(
    spec: &SourceSpec,
    t: NexmarkTable,
    events: &[Event],
) -> Result<RecordBatch, SourceError> {
    let native = native_schema(t);
    let cols = rows(events, t);
    let out = spec
        .schema
        .fields()
        .iter()
        .map(|f| {
            let i = native
                .index_of(f.name())
                .map_err(|e| SourceError::Option(e.to_string()))?;
            cast(&cols[i], f.data_type()).map_err(|e| SourceError::Option(e.to_string()))
        })
        .collect::<Result<Vec<_>, _>>()?;
    RecordBatch::try_new(spec.schema.clone(), out).map_err(|e| SourceError::Option(e.to_string()))
}

fn generator(n: &NexmarkOptions, base_time: u64, offset: u64) -> EventGenerator {
    let rate = (1_000_000_000 / n.min_event_gap_ns.max(1)).max(1) as usize;
    let cfg = NexmarkConfig {
        base_time,
        first_rate: rate,
        next_rate: rate,
        ..Default::default()
    };
    let ty = match n.table {
        NexmarkTable::Person => EventType::Person,
        NexmarkTable::Auction => EventType::Auction,
        NexmarkTable::Bid => EventType::Bid,
    };
    EventGenerator::new(cfg)
        .with_type_filter(ty)
        .with_offset(offset)
}

/// Runs until stopped, the engine goes away, or `event_num` is reached.
pub fn run(ctx: ReaderCtx, n: &NexmarkOptions) -> Result<(), SourceError> {
    let base_time = ctx
        .state
        .get(BASE_TIME)
        .copied()
        .unwrap_or_else(|| initial_state(n)[BASE_TIME]) as u64;
    let mut done = ctx.state.get(OFFSET).copied().unwrap_or(0).max(0) as u64;
    let mut gen = generator(n, base_time, done);
    // Paced: an event goes out once as much wall time has passed since the
    // reader started as event time since its first event.
    let wall0 = Instant::now();
    let ts0 = gen.timestamp();
    let mut wms = super::SplitWatermarks::new(&ctx.spec);
    let bounded = |g: &EventGenerator| n.event_num.is_none_or(|max| g.global_offset() < max);
    // A catch-up reader stops at its end offset, and is not paced.
    let end = ctx.end_of(OFFSET).map(|e| e.max(0) as u64);
    let real_time = n.real_time && end.is_none();
    loop {
        if ctx.stop.stopped() {
            return Ok(());
        }
        if let Some(end) = end {
            if done >= end || !bounded(&gen) {
                ctx.finish_catch_up();
                return Ok(());
            }
        }
        if !bounded(&gen) {
            ctx.stats.finished.store(true, Ordering::SeqCst);
            std::thread::sleep(Duration::from_millis(200));
            continue;
        }
        let mut events = Vec::with_capacity(n.max_chunk_size);
        let elapsed = wall0.elapsed().as_millis() as u64;
        let room = end.map_or(n.max_chunk_size, |e| {
            n.max_chunk_size.min(e.saturating_sub(done) as usize)
        });
        while events.len() < room
            && bounded(&gen)
            && (!real_time || gen.timestamp().saturating_sub(ts0) <= elapsed)
        {
            match gen.next() {
                Some(e) => events.push(e),
                None => break,
            }
        }
        if events.is_empty() {
            std::thread::sleep(Duration::from_millis(10));
            continue;
        }
        done += events.len() as u64;
        let batch = to_batch(&ctx.spec, n.table, &events)?;
        drop(events);
        wms.observe(OFFSET, Some(&batch));
        let rows = batch.num_rows() as u64;
        let msg = Ingest {
            key: ctx.key,
            chunk: Some(SourceChunk {
                rows: batch,
                ops: None,
            }),
            state: vec![
                (OFFSET.to_string(), done as i64),
                (BASE_TIME.to_string(), base_time as i64),
            ],
            watermark: wms.poll(),
            done: false,
        };
        if !ctx.sink.send(msg) {
            return Ok(());
        }
        // Counted once the engine has the chunk: a FLUSH after a reader
        // reports `finished` covers every row it counted.
        ctx.stats.rows.fetch_add(rows, Ordering::Relaxed);
    }
}
