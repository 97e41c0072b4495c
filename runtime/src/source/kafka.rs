//! The Kafka reader: every partition of one topic, assigned explicitly at
//! the offsets committed with the last epoch (never consumer-group offsets),
//! decoded in runs straight into Arrow.

use std::collections::{BTreeMap, HashMap};
use std::sync::atomic::Ordering;
use std::time::{Duration, Instant};

use rdkafka::config::ClientConfig;
use rdkafka::consumer::{BaseConsumer, Consumer};
use rdkafka::error::KafkaError;
use rdkafka::message::Message;
use rdkafka::{Offset, TopicPartitionList};

use super::decode::{Record, RecordDecoder};
use super::options::KafkaOptions;
use super::{Ingest, ReaderCtx, SourceError, SplitState, StartupMode};

/// Most payload bytes per chunk.
const MAX_CHUNK_BYTES: usize = 8 << 20;
/// How often the topic is checked for new partitions.
const PARTITION_REFRESH: Duration = Duration::from_secs(5);

fn split_name(p: i32) -> String {
    format!("p{p}")
}

fn consumer(k: &KafkaOptions, group: &str) -> Result<BaseConsumer, SourceError> {
    let mut cfg = ClientConfig::new();
    cfg.set("bootstrap.servers", &k.brokers)
        .set("group.id", group)
        .set("enable.auto.commit", "false")
        .set("enable.auto.offset.store", "false")
        .set("auto.offset.reset", "earliest")
        // A broker holds an empty fetch for the whole wait: librdkafka's
        // default (500 ms) would add up to that much to freshness.
        .set("fetch.wait.max.ms", "50")
        .set("log_level", "3");
    for (key, v) in &k.properties {
        cfg.set(key, v);
    }
    // The reader learns that a partition has been read to its end (only
    // then may it turn idle for the watermark), whatever the properties say.
    cfg.set("enable.partition.eof", "true");
    cfg.create()
        .map_err(|e| SourceError::Option(format!("invalid Kafka client settings: {e}")))
}

/// The topic's partition ids; fails clearly when the broker cannot be
/// reached or the topic does not exist.
pub fn check_topic(k: &KafkaOptions) -> Result<Vec<i32>, SourceError> {
    let c = consumer(k, "freshet-check")?;
    partitions(&c, k, Duration::from_millis(k.connect_timeout_ms))
}

fn partitions(c: &BaseConsumer, k: &KafkaOptions, t: Duration) -> Result<Vec<i32>, SourceError> {
    let md = c.fetch_metadata(Some(&k.topic), t).map_err(|e| {
        SourceError::Connect(format!(
            "cannot reach Kafka broker at {} within {} ms: {e}",
            k.brokers,
            t.as_millis()
        ))
    })?;
    let Some(topic) = md.topics().iter().find(|tp| tp.name() == k.topic) else {
        return Err(missing(k));
    };
    if topic.error().is_some() || topic.partitions().is_empty() {
        return Err(missing(k));
    }
    let mut ps: Vec<i32> = topic.partitions().iter().map(|p| p.id()).collect();
    ps.sort_unstable();
    Ok(ps)
}

fn missing(k: &KafkaOptions) -> SourceError {
    SourceError::Missing(format!(
        "Kafka topic \"{}\" does not exist on broker {}",
        k.topic, k.brokers
    ))
}

/// Start offsets: nothing for `earliest` (a partition without an entry is
/// read from its beginning), the current end for `latest`, the first offset
/// at or after the time for `timestamp`.
pub fn initial_state(k: &KafkaOptions) -> Result<SplitState, SourceError> {
    let c = consumer(k, "freshet-check")?;
    let t = Duration::from_millis(k.connect_timeout_ms);
    let ps = partitions(&c, k, t)?;
    let mut state = SplitState::new();
    match k.startup {
        StartupMode::Earliest => {}
        StartupMode::Latest => {
            for p in ps {
                let (_, high) = c.fetch_watermarks(&k.topic, p, t).map_err(|e| {
                    SourceError::Connect(format!(
                        "cannot read the end offset of partition {p}: {e}"
                    ))
                })?;
                state.insert(split_name(p), high);
            }
        }
        StartupMode::Timestamp(ms) => {
            let mut tpl = TopicPartitionList::new();
            for &p in &ps {
                tpl.add_partition_offset(&k.topic, p, Offset::Offset(ms))
                    .map_err(|e| SourceError::Connect(e.to_string()))?;
            }
            let out = c.offsets_for_times(tpl, t).map_err(|e| {
                SourceError::Connect(format!("cannot look up offsets by time: {e}"))
            })?;
            for e in out.elements() {
                let off = match e.offset() {
                    Offset::Offset(o) => o,
                    _ => {
                        c.fetch_watermarks(&k.topic, e.partition(), t)
                            .map_err(|e| SourceError::Connect(e.to_string()))?
                            .1
                    }
                };
                state.insert(split_name(e.partition()), off);
            }
        }
    }
    Ok(state)
}

fn offset_of(next: &HashMap<i32, i64>, p: i32) -> Offset {
    match next.get(&p) {
        Some(&o) => Offset::Offset(o),
        None => Offset::Beginning,
    }
}

/// Runs until stopped or the engine goes away.
pub fn run(ctx: ReaderCtx, k: &KafkaOptions) -> Result<(), SourceError> {
    let group = format!("freshet-{}-{}", ctx.key.owner.0, ctx.key.slot);
    let c = consumer(k, &group)?;
    let mut next: HashMap<i32, i64> = HashMap::new();
    for (split, off) in &ctx.state {
        if let Some(p) = split.strip_prefix('p').and_then(|p| p.parse().ok()) {
            next.insert(p, *off);
        }
    }
    // A catch-up reader: the partitions it still reads, each up to its end.
    let mut open: Option<BTreeMap<i32, i64>> = ctx.until.as_ref().map(|u| {
        u.iter()
            .filter_map(|(s, &end)| Some((s.strip_prefix('p')?.parse::<i32>().ok()?, end)))
            .filter(|(p, end)| next.get(p).copied().unwrap_or(0) < *end)
            .collect()
    });
    let decoder = RecordDecoder::new(ctx.spec.clone());
    let mut assigned: Vec<i32> = Vec::new();
    let mut last_refresh: Option<Instant> = None;
    let mut last_error_log: Option<Instant> = None;
    let mut wms = super::SplitWatermarks::new(&ctx.spec);
    loop {
        if ctx.stop.stopped() {
            return Ok(());
        }
        if open.as_ref().is_some_and(|o| o.is_empty()) {
            ctx.finish_catch_up();
            return Ok(());
        }
        if last_refresh.is_none_or(|t| t.elapsed() >= PARTITION_REFRESH) {
            last_refresh = Some(Instant::now());
            match partitions(&c, k, Duration::from_secs(2)) {
                Ok(ps) => {
                    let new: Vec<i32> = ps
                        .into_iter()
                        .filter(|p| !assigned.contains(p))
                        .filter(|p| open.as_ref().is_none_or(|o| o.contains_key(p)))
                        .collect();
                    if !new.is_empty() {
                        let mut tpl = TopicPartitionList::new();
                        for &p in &new {
                            tpl.add_partition_offset(&k.topic, p, offset_of(&next, p))
                                .map_err(|e| SourceError::Connect(e.to_string()))?;
                        }
                        let r = if assigned.is_empty() {
                            c.assign(&tpl)
                        } else {
                            c.incremental_assign(&tpl)
                        };
                        match r {
                            Ok(()) => {
                                tracing::info!(source = %ctx.spec.name, partitions = ?new, "assigned Kafka partitions");
                                for &p in &new {
                                    wms.add_split(&split_name(p));
                                }
                                assigned.extend(new);
                            }
                            Err(e) => {
                                tracing::warn!(source = %ctx.spec.name, "cannot assign partitions: {e}")
                            }
                        }
                    }
                }
                Err(e) => log_rate_limited(&mut last_error_log, &ctx.spec.name, &e.to_string()),
            }
        }
        if assigned.is_empty() {
            std::thread::sleep(Duration::from_millis(200));
            continue;
        }
        // Gather one chunk: up to max rows / bytes, or until linger passes.
        let mut recs: Vec<Record> = Vec::new();
        let mut bytes = 0usize;
        let mut first_at: Option<Instant> = None;
        // Partitions read to their end after their last record here.
        let mut at_end: Vec<i32> = Vec::new();
        let linger = Duration::from_millis(k.linger_ms);
        loop {
            let wait = match first_at {
                None => Duration::from_millis(100),
                Some(t) => linger.saturating_sub(t.elapsed()),
            };
            match c.poll(wait) {
                None => {
                    if first_at.is_none() || wait.is_zero() {
                        break;
                    }
                }
                Some(Ok(m)) => {
                    let p = m.partition();
                    let off = m.offset();
                    if next.get(&p).is_some_and(|&n| off < n) {
                        continue; // already applied (a re-fetch after an error)
                    }
                    if let Some(o) = open.as_mut() {
                        match o.get(&p) {
                            Some(&end) if off < end => {
                                if off + 1 >= end {
                                    o.remove(&p);
                                }
                            }
                            _ => {
                                o.remove(&p); // past its end: the shared reader has it
                                continue;
                            }
                        }
                    }
                    next.insert(p, off + 1);
                    at_end.retain(|&q| q != p);
                    let payload = m.payload().map(|v| v.to_vec());
                    bytes += payload.as_ref().map_or(0, Vec::len);
                    recs.push(Record {
                        partition: p,
                        offset: off,
                        key: m.key().map(|v| v.to_vec()),
                        payload,
                    });
                    first_at.get_or_insert_with(Instant::now);
                }
                Some(Err(e)) => {
                    if let KafkaError::PartitionEOF(p) = e {
                        at_end.push(p);
                        // Read to its end: what is left before its end
                        // position is no record (a transaction marker).
                        if let Some(o) = open.as_mut() {
                            o.remove(&p);
                        }
                    } else {
                        log_rate_limited(&mut last_error_log, &ctx.spec.name, &e.to_string());
                    }
                    if first_at.is_none() {
                        break;
                    }
                }
            }
            if recs.len() >= k.max_chunk_rows
                || bytes >= MAX_CHUNK_BYTES
                || first_at.is_some_and(|t| t.elapsed() >= linger)
            {
                break;
            }
            if ctx.stop.stopped() {
                return Ok(());
            }
        }
        if recs.is_empty() {
            // A quiet topic: partitions may have turned idle, which can
            // move the watermark on its own.
            for &p in &at_end {
                wms.reached_end(&split_name(p));
            }
            if !super::send_idle_watermark(&ctx, &mut wms) {
                return Ok(());
            }
            continue;
        }
        // With a watermark, each partition's records are decoded apart so
        // its event times are known; without, one chunk for all.
        let groups: Vec<Vec<Record>> = if wms.has_watermark() {
            let mut by: BTreeMap<i32, Vec<Record>> = BTreeMap::new();
            for r in recs {
                by.entry(r.partition).or_default().push(r);
            }
            by.into_values().collect()
        } else {
            vec![recs]
        };
        for recs in groups {
            let mut touched: BTreeMap<i32, i64> = BTreeMap::new();
            for r in &recs {
                touched.insert(r.partition, r.offset + 1);
            }
            let chunk = decoder.decode(&recs, &ctx.stats);
            if let Some(c) = &chunk {
                ctx.stats
                    .rows
                    .fetch_add(c.rows.num_rows() as u64, Ordering::Relaxed);
            }
            if let Some(r) = recs.first() {
                wms.observe(&split_name(r.partition), chunk.as_ref().map(|c| &c.rows));
            }
            for &p in &at_end {
                wms.reached_end(&split_name(p));
            }
            let msg = Ingest {
                key: ctx.key,
                chunk,
                state: touched
                    .into_iter()
                    .map(|(p, o)| (split_name(p), o))
                    .collect(),
                watermark: wms.poll(),
                done: false,
            };
            if !ctx.sink.send(msg) {
                return Ok(());
            }
        }
    }
}

fn log_rate_limited(last: &mut Option<Instant>, source: &str, msg: &str) {
    if last.is_none_or(|t| t.elapsed() > Duration::from_secs(10)) {
        *last = Some(Instant::now());
        tracing::warn!(source = %source, "Kafka: {msg} (retrying)");
    }
}
