//! The Kafka target of a sink: one transactional producer per sink.
//!
//! Exactly once: the producer's `transactional.id` is stable for the sink,
//! so `init_transactions` after a restart fences the previous producer and
//! completes or aborts the transaction it left. Each epoch is one
//! transaction that also commits the epoch as the offset of partition 0 of
//! the topic for the consumer group `freshet-sink-...` (the transaction's
//! own metadata; Kafka makes it visible exactly when the records are). The
//! epoch read back from that group after `init_transactions` is the last
//! one Kafka has. At least once: an idempotent producer, flushed per epoch.

use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

use rdkafka::client::ClientContext;
use rdkafka::config::ClientConfig;
use rdkafka::consumer::{BaseConsumer, Consumer};
use rdkafka::error::{KafkaError, RDKafkaErrorCode};
use rdkafka::producer::{BaseProducer, BaseRecord, DeliveryResult, Producer, ProducerContext};
use rdkafka::{Offset, TopicPartitionList};

use super::deliver::Target;
use super::encode::Record;
use super::options::KafkaSinkOptions;
use crate::source::SourceError;

/// How long one broker operation may take before the attempt is
/// abandoned (and retried after `init_transactions` settles it).
const OP_TIMEOUT: Duration = Duration::from_secs(10);

/// Counts records the broker refused (at-least-once mode checks it).
#[derive(Default)]
pub struct Deliveries {
    failed: AtomicU64,
}

impl ClientContext for Deliveries {}

impl ProducerContext for Deliveries {
    type DeliveryOpaque = ();
    fn delivery(&self, r: &DeliveryResult<'_>, _: ()) {
        if r.is_err() {
            self.failed.fetch_add(1, Ordering::Relaxed);
        }
    }
}

pub struct KafkaTarget {
    opts: KafkaSinkOptions,
    exactly_once: bool,
    transactional_id: String,
    group: String,
    producer: Option<BaseProducer<Deliveries>>,
    progress: Option<BaseConsumer>,
}

impl KafkaTarget {
    /// `ident` names the sink uniquely and stably (name and id).
    pub fn new(opts: KafkaSinkOptions, exactly_once: bool, ident: &str) -> Self {
        let own = |key: &str| {
            opts.properties
                .iter()
                .find(|(k, _)| k == key)
                .map(|(_, v)| v.clone())
        };
        let transactional_id =
            own("transactional.id").unwrap_or_else(|| format!("freshet-sink-{ident}"));
        let group = format!("{transactional_id}-progress");
        KafkaTarget {
            opts,
            exactly_once,
            transactional_id,
            group,
            producer: None,
            progress: None,
        }
    }

    fn config(&self) -> ClientConfig {
        let mut c = ClientConfig::new();
        c.set("bootstrap.servers", &self.opts.brokers)
            .set("linger.ms", "5")
            .set("log_level", "3");
        for (k, v) in &self.opts.properties {
            c.set(k, v);
        }
        c
    }

    fn progress_offsets(&self, epoch: Option<u64>) -> Result<TopicPartitionList, String> {
        let mut tpl = TopicPartitionList::new();
        match epoch {
            Some(e) => tpl
                .add_partition_offset(&self.opts.topic, 0, Offset::Offset(e as i64))
                .map_err(|e| e.to_string())?,
            None => {
                tpl.add_partition(&self.opts.topic, 0);
            }
        }
        Ok(tpl)
    }
}

fn kafka_err(what: &str, e: KafkaError) -> String {
    format!("{what}: {e}")
}

impl Target for KafkaTarget {
    fn open(&mut self) -> Result<Option<u64>, String> {
        let mut cfg = self.config();
        if self.exactly_once {
            cfg.set("transactional.id", &self.transactional_id)
                .set("transaction.timeout.ms", "60000");
        } else {
            cfg.set("enable.idempotence", "true");
        }
        let producer: BaseProducer<Deliveries> = cfg
            .create_with_context(Deliveries::default())
            .map_err(|e| kafka_err("creating the Kafka producer", e))?;
        if !self.exactly_once {
            self.producer = Some(producer);
            return Ok(None);
        }
        producer
            .init_transactions(OP_TIMEOUT)
            .map_err(|e| kafka_err("initializing Kafka transactions", e))?;
        let consumer: BaseConsumer = self
            .config()
            .set("group.id", &self.group)
            .set("isolation.level", "read_committed")
            .set("enable.auto.commit", "false")
            .create()
            .map_err(|e| kafka_err("creating the progress reader", e))?;
        let committed = consumer
            .committed_offsets(self.progress_offsets(None)?, OP_TIMEOUT)
            .map_err(|e| kafka_err("reading the sink's progress from Kafka", e))?;
        let progress = committed.elements().iter().find_map(|e| match e.offset() {
            Offset::Offset(n) if n >= 0 => Some(n as u64),
            _ => None,
        });
        self.producer = Some(producer);
        self.progress = Some(consumer);
        Ok(progress)
    }

    fn begin(&mut self, _epoch: u64) -> Result<(), String> {
        let p = self.producer.as_ref().ok_or("the producer is not open")?;
        if self.exactly_once {
            p.begin_transaction()
                .map_err(|e| kafka_err("beginning a Kafka transaction", e))?;
        }
        Ok(())
    }

    fn write(&mut self, records: &[Record]) -> Result<(), String> {
        let p = self.producer.as_ref().ok_or("the producer is not open")?;
        for r in records {
            loop {
                let mut rec: BaseRecord<'_, [u8], [u8]> = BaseRecord::to(&self.opts.topic);
                if let Some(k) = &r.key {
                    rec = rec.key(k.as_slice());
                }
                if let Some(v) = &r.value {
                    rec = rec.payload(v.as_slice());
                }
                match p.send(rec) {
                    Ok(()) => break,
                    Err((KafkaError::MessageProduction(RDKafkaErrorCode::QueueFull), _)) => {
                        p.poll(Duration::from_millis(10));
                    }
                    Err((e, _)) => return Err(kafka_err("producing a record", e)),
                }
            }
        }
        p.poll(Duration::ZERO);
        Ok(())
    }

    fn commit(&mut self, epoch: u64) -> Result<(), String> {
        let p = self.producer.as_ref().ok_or("the producer is not open")?;
        if !self.exactly_once {
            p.flush(OP_TIMEOUT)
                .map_err(|e| kafka_err("flushing the Kafka producer", e))?;
            let failed = p.context().failed.swap(0, Ordering::Relaxed);
            if failed > 0 {
                return Err(format!("Kafka refused {failed} records"));
            }
            return Ok(());
        }
        let group = self
            .progress
            .as_ref()
            .and_then(|c| c.group_metadata())
            .ok_or("the progress reader is not open")?;
        p.send_offsets_to_transaction(&self.progress_offsets(Some(epoch))?, &group, OP_TIMEOUT)
            .map_err(|e| kafka_err("recording the sink's progress in the transaction", e))?;
        p.commit_transaction(OP_TIMEOUT)
            .map_err(|e| kafka_err("committing the Kafka transaction", e))
    }

    fn reset(&mut self) {
        if let Some(p) = self.producer.take() {
            if self.exactly_once {
                let _ = p.abort_transaction(Duration::from_secs(5));
            }
        }
        self.progress = None;
    }
}

/// Checks at `CREATE SINK` that the broker answers and the topic exists.
pub fn check_topic(opts: &KafkaSinkOptions) -> Result<(), SourceError> {
    let mut cfg = ClientConfig::new();
    cfg.set("bootstrap.servers", &opts.brokers)
        .set("log_level", "3");
    for (k, v) in &opts.properties {
        cfg.set(k, v);
    }
    let c: BaseConsumer = cfg
        .create()
        .map_err(|e| SourceError::Option(format!("invalid Kafka client settings: {e}")))?;
    let t = Duration::from_millis(opts.connect_timeout_ms);
    let md = c.fetch_metadata(Some(&opts.topic), t).map_err(|e| {
        SourceError::Connect(format!(
            "cannot reach Kafka broker at {} within {} ms: {e}",
            opts.brokers,
            t.as_millis()
        ))
    })?;
    let ok = md
        .topics()
        .iter()
        .any(|tp| tp.name() == opts.topic && tp.error().is_none() && !tp.partitions().is_empty());
    if !ok {
        return Err(SourceError::Missing(format!(
            "Kafka topic \"{}\" does not exist on broker {}",
            opts.topic, opts.brokers
        )));
    }
    Ok(())
}
