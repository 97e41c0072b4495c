//! `CREATE SINK`, `DROP SINK`, `SHOW SINKS` and the recovery of sinks.
//!
//! A sink is planned as a materialized view of its query (`FROM v` is
//! `SELECT * FROM v`) whose root writes to the sink's log instead of
//! storing rows (see `freshet_runtime::sink`).

use super::*;
use crate::catalog::SinkEntry;
use crate::sinkddl::SinkDdl;
use datafusion::arrow::array::{ArrayRef, Int64Array};
use freshet_runtime::sink::{parse_sink, SinkConnector};

/// `name` as a quoted SQL identifier.
fn quoted(name: &str) -> String {
    format!("\"{}\"", name.replace('"', "\"\""))
}

impl Server {
    /// Plans a sink: its dataflow (with the sink's root) and catalog entry.
    async fn plan_sink(
        &self,
        ddl: &SinkDdl,
        id: Option<TableId>,
    ) -> ExecResult<(SinkEntry, StreamPlan)> {
        let cat = self.catalog();
        let (query, from_append_only) = match (&ddl.from, &ddl.query) {
            (Some(from), _) => {
                let e = cat.get(from).ok_or_else(|| {
                    ExecError::new(
                        code::UNDEFINED_TABLE,
                        format!("relation \"{from}\" does not exist"),
                    )
                })?;
                if !matches!(e.rel.kind, RelKind::View | RelKind::Table) {
                    return Err(ExecError::new(
                        code::WRONG_OBJECT_TYPE,
                        format!("\"{from}\" is not a materialized view or table (use CREATE SINK ... AS SELECT ... to sink a source)"),
                    ));
                }
                (
                    format!("SELECT * FROM {}", quoted(from)),
                    Some(e.rel.append_only),
                )
            }
            (None, Some(q)) => (q.clone(), None),
            (None, None) => {
                return Err(ExecError::new(code::SYNTAX, "CREATE SINK needs FROM or AS"))
            }
        };
        let text = format!("CREATE MATERIALIZED VIEW {} AS {query}", quoted(&ddl.name));
        let Parsed::Sql(stmt) = crate::dialect::parse_one(&text)? else {
            return Err(ExecError::new(
                code::SYNTAX,
                "CREATE SINK ... AS needs a query",
            ));
        };
        let (entry, mut plan) = self.plan_mv(&stmt, id).await?;
        let append_only = from_append_only.unwrap_or(entry.rel.append_only);
        let spec = parse_sink(
            &ddl.name,
            entry.rel.schema.clone(),
            entry.rel.pk.as_deref(),
            append_only,
            &ddl.with,
            ddl.format.as_deref(),
            ddl.encode.as_deref(),
            &ddl.encode_opts,
        )
        .map_err(|e| ExecError::from(freshet_runtime::RuntimeError::from(e)))?;
        let slot = plan.state_slots;
        if let Some(root) = plan.nodes.last_mut() {
            root.kind = NodeKind::Sink {
                spec: Box::new(spec.clone()),
                state_slot: slot,
            };
        }
        plan.state_slots += 1;
        let sink = SinkEntry {
            id: entry.rel.id,
            name: ddl.name.clone(),
            ddl: ddl.text.clone(),
            deps: entry.deps.clone(),
            width: 1 + plan.state_slots,
            spec,
        };
        Ok((sink, plan))
    }

    pub(super) async fn create_sink(&self, ddl: &SinkDdl) -> ExecResult<Output> {
        let tag = "CREATE SINK";
        {
            let cat = self.catalog();
            if cat.taken(&ddl.name) || cat.sinks.contains_key(&ddl.name) {
                if ddl.if_not_exists {
                    return Ok(Output::Command { tag, rows: None });
                }
                return Err(ExecError::new(
                    code::DUPLICATE_TABLE,
                    format!("relation \"{}\" already exists", ddl.name),
                ));
            }
        }
        let (sink, plan) = self.plan_sink(ddl, None).await?;
        let spec = sink.spec.clone();
        tokio::task::spawn_blocking(move || match &spec.connector {
            SinkConnector::Kafka(k) => freshet_runtime::sink::kafka::check_topic(k),
            SinkConnector::Postgres(p) => {
                let cols: Vec<String> = spec
                    .schema
                    .fields()
                    .iter()
                    .map(|f| f.name().clone())
                    .collect();
                freshet_runtime::sink::postgres::check_table(p, &cols)
            }
        })
        .await
        .map_err(|e| ExecError::new(code::INTERNAL, e.to_string()))?
        .map_err(|e| ExecError::from(freshet_runtime::RuntimeError::from(e)))?;
        let mut catalog = vec![(
            SinkEntry::key(sink.id),
            Some(SinkEntry::encode_ddl(&sink.ddl)),
        )];
        for (idx, node) in plan.nodes.iter().enumerate() {
            if let NodeKind::SourceScan { spec, .. } = &node.kind {
                let key = ReaderKey {
                    owner: sink.id,
                    slot: idx as u32,
                };
                catalog.extend(initial_state_writes(spec.clone(), key).await?);
            }
        }
        let def = ViewDef {
            id: sink.id,
            name: sink.name.clone(),
            plan,
        };
        self.engine.create_view(def, catalog, true).await?;
        self.with_catalog(|c| c.sinks.insert(sink.name.clone(), sink))?;
        Ok(Output::Command { tag, rows: None })
    }

    /// Restarts every stored sink (after the relations it reads).
    pub(super) async fn recover_sinks(&self) -> ExecResult<()> {
        let store = self.store.clone();
        let entries = tokio::task::spawn_blocking(move || store.scan_prefix(&SinkEntry::prefix()))
            .await
            .map_err(|e| ExecError::new(code::INTERNAL, e.to_string()))?
            .map_err(freshet_runtime::RuntimeError::from)?;
        let prefix = SinkEntry::prefix();
        for (k, v) in entries {
            let id = std::str::from_utf8(&k[prefix.len()..])
                .ok()
                .and_then(|s| s.parse().ok())
                .map(TableId)
                .ok_or_else(|| ExecError::new(code::INTERNAL, "corrupt sink catalog key"))?;
            let ddl = SinkEntry::decode_ddl(&v)
                .ok_or_else(|| ExecError::new(code::INTERNAL, "corrupt sink catalog entry"))?;
            let Parsed::CreateSink(parsed) = crate::dialect::parse_one(&ddl)? else {
                return Err(ExecError::new(code::INTERNAL, "bad stored sink DDL"));
            };
            let (sink, plan) = self.plan_sink(&parsed, Some(id)).await?;
            let def = ViewDef {
                id: sink.id,
                name: sink.name.clone(),
                plan,
            };
            self.engine.create_view(def, vec![], false).await?;
            self.with_catalog(|c| c.sinks.insert(sink.name.clone(), sink))?;
        }
        Ok(())
    }

    pub(super) async fn drop_sinks(&self, names: &[String], if_exists: bool) -> ExecResult<Output> {
        for name in names {
            let cat = self.catalog();
            let Some(s) = cat.sinks.get(name).cloned() else {
                if cat.get(name).is_some() {
                    return Err(ExecError::new(
                        code::WRONG_OBJECT_TYPE,
                        format!("\"{name}\" is not a sink"),
                    ));
                }
                if if_exists {
                    continue;
                }
                return Err(ExecError::new(
                    code::UNDEFINED_OBJECT,
                    format!("sink \"{name}\" does not exist"),
                ));
            };
            self.drop_sink(&s).await?;
        }
        Ok(Output::Command {
            tag: "DROP SINK",
            rows: None,
        })
    }

    /// Stops a sink and deletes its log and catalog entry.
    pub(super) async fn drop_sink(&self, s: &SinkEntry) -> ExecResult<()> {
        self.engine
            .drop_object(s.id, vec![(SinkEntry::key(s.id), None)])
            .await?;
        self.with_catalog(|c| c.sinks.remove(&s.name))?;
        Ok(())
    }

    pub(super) fn show_sinks(&self) -> Output {
        let cat = self.catalog();
        let stats: BTreeMap<TableId, _> = self.engine.sink_stats().into_iter().collect();
        let sinks: Vec<&SinkEntry> = cat.sinks.values().collect();
        let text = |f: &dyn Fn(&SinkEntry) -> Option<String>| -> ArrayRef {
            Arc::new(StringArray::from(
                sinks.iter().map(|s| f(s)).collect::<Vec<Option<String>>>(),
            ))
        };
        let num = |f: &dyn Fn(&freshet_runtime::sink::SinkStats) -> u64| -> ArrayRef {
            Arc::new(Int64Array::from(
                sinks
                    .iter()
                    .map(|s| stats.get(&s.id).map(|st| f(st) as i64))
                    .collect::<Vec<Option<i64>>>(),
            ))
        };
        use std::sync::atomic::Ordering::Relaxed;
        let cols = vec![
            text(&|s| Some(s.name.clone())),
            text(&|s| Some(s.spec.connector_name().to_string())),
            text(&|s| Some(s.spec.target())),
            text(&|s| Some(s.spec.format.name().to_string())),
            text(&|s| {
                Some(
                    if s.spec.exactly_once {
                        "exactly-once"
                    } else {
                        "at-least-once"
                    }
                    .to_string(),
                )
            }),
            num(&|st| st.records.load(Relaxed)),
            num(&|st| st.bytes.load(Relaxed)),
            num(&|st| st.delivered_epoch.load(Relaxed)),
            num(&|st| st.logged_epoch.load(Relaxed)),
            num(&|st| st.errors.load(Relaxed)),
            text(&|s| stats.get(&s.id).and_then(|st| st.last_error())),
        ];
        let schema = show_schema();
        match RecordBatch::try_new(schema.clone(), cols) {
            Ok(b) => Output::Rows {
                schema,
                batches: vec![b],
            },
            Err(_) => Output::Rows {
                schema,
                batches: vec![],
            },
        }
    }
}

pub(super) fn show_schema() -> SchemaRef {
    let t = |n: &str| Field::new(n, DataType::Utf8, true);
    let i = |n: &str| Field::new(n, DataType::Int64, true);
    Arc::new(Schema::new(vec![
        t("name"),
        t("connector"),
        t("target"),
        t("format"),
        t("delivery"),
        i("records"),
        i("bytes"),
        i("delivered_epoch"),
        i("logged_epoch"),
        i("errors"),
        t("last_error"),
    ]))
}
