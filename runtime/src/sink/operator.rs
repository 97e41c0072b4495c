//! The sink operator: the root of a sink's dataflow. It encodes each
//! epoch's changes into records, writes them into the sink's log with the
//! epoch, and tells the delivery thread once the epoch is committed.

use std::sync::atomic::Ordering;
use std::sync::Arc;

use freshet_storage::TableId;

use super::deliver::{Delivery, Target};
use super::encode::EpochEncoder;
use super::kafka::KafkaTarget;
use super::log;
use super::options::{SinkConnector, SinkSpec};
use super::postgres::PgTarget;
use super::stats::SinkStats;
use crate::change::ChangeBatch;
use crate::error::Result;
use crate::operators::{EpochCtx, Operator};

pub struct SinkOperator {
    spec: SinkSpec,
    sink: TableId,
    log_table: TableId,
    encoder: EpochEncoder,
    stats: Arc<SinkStats>,
    delivery: Option<Delivery>,
    /// An epoch with records was logged and is not committed yet.
    logged: bool,
}

impl SinkOperator {
    pub fn new(spec: SinkSpec, sink: TableId, log_table: TableId, stats: Arc<SinkStats>) -> Self {
        SinkOperator {
            encoder: EpochEncoder::new(&spec),
            spec,
            sink,
            log_table,
            stats,
            delivery: None,
            logged: false,
        }
    }

    fn target(&self) -> Box<dyn Target> {
        let ident = format!("{}-{}", self.spec.name, self.sink.0);
        match &self.spec.connector {
            SinkConnector::Kafka(k) => {
                Box::new(KafkaTarget::new(k.clone(), self.spec.exactly_once, &ident))
            }
            SinkConnector::Postgres(p) => {
                let names: Vec<String> = self
                    .spec
                    .schema
                    .fields()
                    .iter()
                    .map(|f| f.name().clone())
                    .collect();
                let key = self.spec.key.iter().map(|&i| names[i].clone()).collect();
                Box::new(PgTarget::new(p.clone(), &ident, names, key))
            }
        }
    }
}

impl Operator for SinkOperator {
    fn on_start(&mut self, ctx: &mut EpochCtx<'_>, _fresh: bool) -> Result<()> {
        self.delivery = Some(Delivery::spawn(
            ctx.store.clone(),
            self.log_table,
            self.stats.clone(),
            self.target(),
        )?);
        Ok(())
    }

    fn process(
        &mut self,
        _input: usize,
        batch: ChangeBatch,
        _ctx: &mut EpochCtx<'_>,
    ) -> Result<Vec<ChangeBatch>> {
        self.encoder.add(&batch)?;
        Ok(Vec::new())
    }

    fn on_barrier(&mut self, ctx: &mut EpochCtx<'_>) -> Result<Vec<ChangeBatch>> {
        if self.encoder.is_empty() {
            return Ok(Vec::new());
        }
        let now_ms = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map(|d| d.as_millis() as i64)
            .unwrap_or(0);
        let records = self.encoder.finish(now_ms);
        let dropped = std::mem::take(&mut self.encoder.dropped);
        self.stats.dropped.fetch_add(dropped, Ordering::Relaxed);
        if !records.is_empty() {
            log::append(ctx.writes, self.log_table, ctx.epoch.0, &records);
            self.stats
                .logged_epoch
                .fetch_max(ctx.epoch.0, Ordering::Relaxed);
            self.logged = true;
        }
        Ok(Vec::new())
    }

    fn on_committed(&mut self) {
        if std::mem::take(&mut self.logged) {
            if let Some(d) = &self.delivery {
                d.notify();
            }
        }
    }
}
