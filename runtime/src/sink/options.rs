//! Sink definitions: the connector, format and delivery options of a
//! `CREATE SINK`, parsed and checked once.

use std::collections::BTreeMap;

use datafusion::arrow::datatypes::SchemaRef;

use crate::source::options::{bad, parse_bool, Options, Opts};
use crate::source::SourceError;

/// A parsed sink definition.
#[derive(Debug, Clone)]
pub struct SinkSpec {
    /// The sink's name (for messages, stats and the transactional id).
    pub name: String,
    /// The columns written out.
    pub schema: SchemaRef,
    pub connector: SinkConnector,
    pub format: SinkFormat,
    /// The columns of the record key (UPSERT and DEBEZIUM always; PLAIN
    /// when `primary_key` is given).
    pub key: Vec<usize>,
    /// PLAIN over an input with deletes: drop them (`force_append_only`).
    pub force_append_only: bool,
    /// Exactly once (the default) or at least once.
    pub exactly_once: bool,
}

#[derive(Debug, Clone)]
pub enum SinkConnector {
    Kafka(KafkaSinkOptions),
    Postgres(PgSinkOptions),
}

/// A table of a PostgreSQL server, upserted by key.
#[derive(Debug, Clone)]
pub struct PgSinkOptions {
    pub host: String,
    pub port: u16,
    pub user: String,
    pub password: Option<String>,
    pub database: String,
    pub schema: String,
    pub table: String,
    pub connect_timeout_ms: u64,
}

#[derive(Debug, Clone)]
pub struct KafkaSinkOptions {
    pub brokers: String,
    pub topic: String,
    /// `properties.*` options, passed to librdkafka without the prefix.
    pub properties: Vec<(String, String)>,
    /// How long `CREATE` waits for the broker to answer.
    pub connect_timeout_ms: u64,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum SinkFormat {
    /// Each inserted row as one record (deletes are refused or dropped).
    Plain,
    /// The last row per key, or a tombstone (null value) when it is gone.
    Upsert,
    /// Debezium change events: `before`, `after`, `op`.
    Debezium,
}

impl SinkFormat {
    pub fn name(self) -> &'static str {
        match self {
            SinkFormat::Plain => "PLAIN",
            SinkFormat::Upsert => "UPSERT",
            SinkFormat::Debezium => "DEBEZIUM",
        }
    }
}

impl SinkSpec {
    pub fn connector_name(&self) -> &'static str {
        match self.connector {
            SinkConnector::Kafka(_) => "kafka",
            SinkConnector::Postgres(_) => "postgres",
        }
    }

    /// Where the records go, for `SHOW SINKS` and `EXPLAIN`.
    pub fn target(&self) -> String {
        match &self.connector {
            SinkConnector::Kafka(k) => format!("{}/{}", k.brokers, k.topic),
            SinkConnector::Postgres(p) => {
                format!(
                    "{}:{}/{}/{}.{}",
                    p.host, p.port, p.database, p.schema, p.table
                )
            }
        }
    }
}

/// Parses a sink definition over input columns `schema`, whose stream key
/// is `input_key` and which is append-only or not.
#[allow(clippy::too_many_arguments)]
pub fn parse_sink(
    name: &str,
    schema: SchemaRef,
    input_key: Option<&[usize]>,
    append_only: bool,
    with: &Options,
    format: Option<&str>,
    encode: Option<&str>,
    encode_opts: &Options,
) -> Result<SinkSpec, SourceError> {
    let mut o = Opts(BTreeMap::new());
    for (k, v) in with {
        if o.0.insert(k.to_ascii_lowercase(), v.clone()).is_some() {
            return Err(bad(format!("option \"{k}\" is given twice")));
        }
    }
    let connector = o
        .take("connector")
        .ok_or_else(|| bad("missing option \"connector\" (kafka or postgres)"))?
        .to_ascii_lowercase();
    let postgres = matches!(connector.as_str(), "postgres" | "postgresql");
    let format = match format.map(|f| f.to_ascii_lowercase()) {
        None if postgres => SinkFormat::Upsert,
        None => SinkFormat::Plain,
        Some(f) => match f.as_str() {
            "plain" => SinkFormat::Plain,
            "upsert" => SinkFormat::Upsert,
            "debezium" => SinkFormat::Debezium,
            other => {
                return Err(SourceError::Unsupported(format!(
                    "FORMAT {} is not supported for sinks (use PLAIN, UPSERT or DEBEZIUM)",
                    other.to_uppercase()
                )))
            }
        },
    };
    match encode.map(|e| e.to_ascii_lowercase()) {
        None => {}
        Some(e) if e == "json" => {}
        Some(e) => {
            return Err(SourceError::Unsupported(format!(
                "ENCODE {} is not supported for sinks (use JSON)",
                e.to_uppercase()
            )))
        }
    }
    if postgres && format != SinkFormat::Upsert {
        return Err(SourceError::Unsupported(
            "a postgres sink upserts by key: leave out FORMAT or use FORMAT UPSERT".into(),
        ));
    }
    if let Some((k, _)) = encode_opts.first() {
        return Err(bad(format!("unknown option \"{k}\" for ENCODE JSON")));
    }
    let key = match o.take("primary_key") {
        Some(cols) => {
            let mut key = Vec::new();
            for c in cols.split(',').map(str::trim).filter(|c| !c.is_empty()) {
                let c = c.trim_matches('"');
                let i = schema
                    .fields()
                    .iter()
                    .position(|f| f.name().eq_ignore_ascii_case(c))
                    .ok_or_else(|| {
                        SourceError::Missing(format!(
                            "primary_key column \"{c}\" is not a column of the sink's input"
                        ))
                    })?;
                if !key.contains(&i) {
                    key.push(i);
                }
            }
            if key.is_empty() {
                return Err(bad("primary_key names no column"));
            }
            key
        }
        None => match (format, input_key) {
            (SinkFormat::Plain, _) => Vec::new(),
            (_, Some(k)) if !k.is_empty() => k.to_vec(),
            _ => {
                return Err(bad(format!(
                    "FORMAT {} needs primary_key = '<columns>' (the sink's input has no key of its own)",
                    format.name()
                )))
            }
        },
    };
    let force_append_only = match o.take("force_append_only") {
        None => false,
        Some(v) => parse_bool(&v)
            .ok_or_else(|| bad(format!("invalid value for force_append_only: \"{v}\"")))?,
    };
    if format == SinkFormat::Plain && !append_only && !force_append_only {
        return Err(SourceError::Unsupported(
            "FORMAT PLAIN needs an append-only input, and this one has updates or deletes: use FORMAT UPSERT or FORMAT DEBEZIUM, or force_append_only = 'true' to drop them".into(),
        ));
    }
    let exactly_once = match o
        .take("sink.delivery.guarantee")
        .map(|v| v.to_ascii_lowercase().replace('_', "-"))
    {
        None => true,
        Some(v) if v == "exactly-once" => true,
        Some(v) if v == "at-least-once" => false,
        Some(v) => {
            return Err(bad(format!(
                "invalid sink.delivery.guarantee \"{v}\" (use 'exactly-once' or 'at-least-once')"
            )))
        }
    };
    let connector = match connector.as_str() {
        "kafka" => SinkConnector::Kafka(parse_kafka(&mut o)?),
        _ if postgres => SinkConnector::Postgres(parse_postgres(&mut o)?),
        other => {
            return Err(SourceError::Unsupported(format!(
                "sink connector \"{other}\" is not supported (use kafka or postgres)"
            )))
        }
    };
    o.finish("the sink")?;
    Ok(SinkSpec {
        name: name.to_string(),
        schema,
        connector,
        format,
        key,
        force_append_only,
        exactly_once,
    })
}

fn parse_kafka(o: &mut Opts) -> Result<KafkaSinkOptions, SourceError> {
    let topic = o
        .take("topic")
        .ok_or_else(|| bad("missing option \"topic\" for the kafka sink"))?;
    let brokers = o
        .take("properties.bootstrap.server")
        .or_else(|| o.take("properties.bootstrap.servers"))
        .ok_or_else(|| bad("missing option \"properties.bootstrap.server\" for the kafka sink"))?;
    let connect_timeout_ms = o.take_num("connect.timeout.ms")?.unwrap_or(10_000);
    let properties = o.take_properties();
    Ok(KafkaSinkOptions {
        brokers,
        topic,
        properties,
        connect_timeout_ms,
    })
}

fn parse_postgres(o: &mut Opts) -> Result<PgSinkOptions, SourceError> {
    let table = o
        .take("table")
        .or_else(|| o.take("table.name"))
        .ok_or_else(|| bad("missing option \"table\" for the postgres sink"))?;
    let user = o.take("user").unwrap_or_else(|| "postgres".to_string());
    Ok(PgSinkOptions {
        host: o.take("host").unwrap_or_else(|| "localhost".to_string()),
        port: o.take_num("port")?.unwrap_or(5432),
        database: o.take("database").unwrap_or_else(|| user.clone()),
        password: o.take("password"),
        schema: o.take("schema").unwrap_or_else(|| "public".to_string()),
        connect_timeout_ms: o.take_num("connect.timeout.ms")?.unwrap_or(10_000),
        user,
        table,
    })
}
