//! Source definitions: the connector, format and encoding options of a
//! `CREATE SOURCE` or connector table, parsed and checked once.

use std::collections::BTreeMap;

use datafusion::arrow::datatypes::SchemaRef;

use super::SourceError;

/// A parsed source definition.
#[derive(Debug, Clone)]
pub struct SourceSpec {
    /// The source or table name (for messages and stats).
    pub name: String,
    /// Declared columns; every field nullable.
    pub schema: SchemaRef,
    /// Primary key column indices (connector tables only).
    pub pk: Option<Vec<usize>>,
    pub connector: Connector,
    pub format: Format,
    pub encode: Encode,
    /// `WATERMARK FOR col AS col - INTERVAL '...'`.
    pub watermark: Option<crate::time::WatermarkDef>,
    /// A split (Kafka partition) with no record for this long stops holding
    /// the watermark back (`watermark.idle_timeout`).
    pub idle_timeout: std::time::Duration,
}

#[derive(Debug, Clone)]
pub enum Connector {
    Kafka(KafkaOptions),
    File(FileOptions),
    Datagen(DatagenOptions),
    Nexmark(NexmarkOptions),
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum StartupMode {
    Earliest,
    Latest,
    /// Milliseconds since the Unix epoch.
    Timestamp(i64),
}

#[derive(Debug, Clone)]
pub struct KafkaOptions {
    pub brokers: String,
    pub topic: String,
    pub startup: StartupMode,
    /// `properties.*` options, passed to librdkafka without the prefix.
    pub properties: Vec<(String, String)>,
    /// How long `CREATE` waits for the broker to answer.
    pub connect_timeout_ms: u64,
    /// Most records per chunk, and how long a chunk may wait to fill.
    pub max_chunk_rows: usize,
    pub linger_ms: u64,
}

/// The `filesystem` (or `posix_fs`) connector.
#[derive(Debug, Clone)]
pub struct FileOptions {
    /// A glob over file paths (`/data/*.csv`); a plain directory means
    /// every file in it (`/data/*`).
    pub pattern: String,
    /// Look for new files (and lines appended to known ones) this often;
    /// `None`: read what is there when the reader starts, then finish.
    pub monitor: Option<std::time::Duration>,
    /// Most lines per decoded batch.
    pub max_chunk_rows: usize,
}

#[derive(Debug, Clone)]
pub struct DatagenOptions {
    pub rows_per_second: u64,
    pub seed: u64,
    /// Per-column options (`fields.<col>.<opt>`), by column name.
    pub fields: BTreeMap<String, BTreeMap<String, String>>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum NexmarkTable {
    Person,
    Auction,
    Bid,
}

#[derive(Debug, Clone)]
pub struct NexmarkOptions {
    pub table: NexmarkTable,
    /// Stop once this many Nexmark events (of all three types, as in
    /// RisingWave) have passed; the table gets its share of them (`None`:
    /// never).
    pub event_num: Option<u64>,
    /// Pace by wall time (`nexmark.use.real.time`): an event goes out when as
    /// much wall time has passed as event time. Unpaced, the generator runs
    /// as fast as the engine takes rows, with the same event times.
    pub real_time: bool,
    /// Minimum gap between events, in nanoseconds (sets the rate).
    pub min_event_gap_ns: u64,
    pub max_chunk_size: usize,
    /// Event time base in ms; `None`: the creation time, stored with the view.
    pub base_time_ms: Option<u64>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Format {
    /// Every record is a new row.
    Plain,
    /// The record key names the row; a null value deletes it.
    Upsert,
    /// Debezium change events (`before`, `after`, `op`).
    Debezium,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Encode {
    Json,
    Csv { delimiter: u8, has_header: bool },
}

/// Options as written in the DDL, names lower-cased.
pub type Options = Vec<(String, String)>;

pub(crate) fn bad(msg: impl Into<String>) -> SourceError {
    SourceError::Option(msg.into())
}

pub(crate) struct Opts(pub(crate) BTreeMap<String, String>);

impl Opts {
    pub(crate) fn take(&mut self, k: &str) -> Option<String> {
        self.0.remove(k)
    }
    pub(crate) fn take_num<T: std::str::FromStr>(
        &mut self,
        k: &str,
    ) -> Result<Option<T>, SourceError> {
        match self.0.remove(k) {
            None => Ok(None),
            Some(v) => v
                .trim()
                .parse()
                .map(Some)
                .map_err(|_| bad(format!("invalid value for option \"{k}\": \"{v}\""))),
        }
    }
    /// Takes every `properties.*` option, without the prefix (what is
    /// passed to librdkafka as it is).
    pub(crate) fn take_properties(&mut self) -> Vec<(String, String)> {
        let keys: Vec<String> = self
            .0
            .keys()
            .filter(|k| k.starts_with("properties."))
            .cloned()
            .collect();
        let mut properties = Vec::new();
        for k in keys {
            if let Some(v) = self.take(&k) {
                properties.push((k["properties.".len()..].to_string(), v));
            }
        }
        properties
    }

    pub(crate) fn finish(self, what: &str) -> Result<(), SourceError> {
        if let Some(k) = self.0.keys().next() {
            return Err(bad(format!("unknown option \"{k}\" for {what}")));
        }
        Ok(())
    }
}

impl SourceSpec {
    /// Parses a definition. `is_table` is true for `CREATE TABLE ... WITH
    /// (connector = ...)`, which stores rows and may use UPSERT / DEBEZIUM.
    #[allow(clippy::too_many_arguments)]
    pub fn parse(
        name: &str,
        schema: SchemaRef,
        pk: Option<Vec<usize>>,
        is_table: bool,
        with: &Options,
        format: Option<&str>,
        encode: Option<&str>,
        encode_opts: &Options,
    ) -> Result<SourceSpec, SourceError> {
        let mut o = Opts(BTreeMap::new());
        for (k, v) in with {
            if o.0.insert(k.to_ascii_lowercase(), v.clone()).is_some() {
                return Err(bad(format!("option \"{k}\" is given twice")));
            }
        }
        let connector = o
            .take("connector")
            .ok_or_else(|| {
                bad("missing option \"connector\" (kafka, filesystem, datagen or nexmark)")
            })?
            .to_ascii_lowercase();
        let format = match format.map(|f| f.to_ascii_lowercase()) {
            None => Format::Plain,
            Some(f) => match f.as_str() {
                "plain" => Format::Plain,
                "upsert" => Format::Upsert,
                "debezium" => Format::Debezium,
                other => {
                    return Err(SourceError::Unsupported(format!(
                        "FORMAT {} is not supported (use PLAIN, UPSERT or DEBEZIUM)",
                        other.to_uppercase()
                    )))
                }
            },
        };
        let mut eo = Opts(
            encode_opts
                .iter()
                .map(|(k, v)| (k.to_ascii_lowercase(), v.clone()))
                .collect(),
        );
        let encode = match encode.map(|e| e.to_ascii_lowercase()) {
            None => Encode::Json,
            Some(e) => match e.as_str() {
                "json" => Encode::Json,
                "csv" => {
                    let delimiter = match eo.take("delimiter") {
                        None => b',',
                        Some(d) => {
                            let d = match d.as_str() {
                                "\\t" => "\t".to_string(),
                                _ => d,
                            };
                            if d.len() != 1 {
                                return Err(bad(format!(
                                    "CSV delimiter must be one byte, got \"{d}\""
                                )));
                            }
                            d.as_bytes()[0]
                        }
                    };
                    let has_header = match eo.take("without_header") {
                        None => false,
                        Some(v) => !parse_bool(&v).ok_or_else(|| {
                            bad(format!("invalid value for without_header: \"{v}\""))
                        })?,
                    };
                    Encode::Csv {
                        delimiter,
                        has_header,
                    }
                }
                other => {
                    return Err(SourceError::Unsupported(format!(
                        "ENCODE {} is not supported (use JSON or CSV)",
                        other.to_uppercase()
                    )))
                }
            },
        };
        eo.finish("ENCODE")?;
        if format != Format::Plain {
            if !is_table || pk.is_none() {
                return Err(SourceError::Unsupported(format!(
                    "FORMAT {} needs CREATE TABLE with a PRIMARY KEY (a source stores no rows to update or delete)",
                    if format == Format::Upsert { "UPSERT" } else { "DEBEZIUM" }
                )));
            }
            if !matches!(encode, Encode::Json) {
                return Err(SourceError::Unsupported(
                    "FORMAT UPSERT and FORMAT DEBEZIUM need ENCODE JSON".into(),
                ));
            }
        }
        let idle_timeout = match o.take("watermark.idle_timeout") {
            None => DEFAULT_IDLE_TIMEOUT,
            Some(v) => parse_duration(&v).ok_or_else(|| {
                bad(format!(
                    "invalid value for watermark.idle_timeout: \"{v}\" (use e.g. '500ms', '10s', '5m')"
                ))
            })?,
        };
        let connector = match connector.as_str() {
            "kafka" => Connector::Kafka(parse_kafka(&mut o)?),
            "filesystem" | "posix_fs" => Connector::File(parse_file(&mut o)?),
            "datagen" => Connector::Datagen(parse_datagen(&mut o, &schema)?),
            "nexmark" => Connector::Nexmark(parse_nexmark(&mut o)?),
            other => {
                return Err(SourceError::Unsupported(format!(
                    "connector \"{other}\" is not supported (use kafka, filesystem, datagen or nexmark)"
                )))
            }
        };
        if !matches!(connector, Connector::Kafka(_)) && format != Format::Plain {
            return Err(SourceError::Unsupported(format!(
                "the {} connector produces plain rows; use FORMAT PLAIN",
                connector_name(&connector)
            )));
        }
        o.finish(&format!("the {} connector", connector_name(&connector)))?;
        Ok(SourceSpec {
            name: name.to_string(),
            schema,
            pk,
            connector,
            format,
            encode,
            watermark: None,
            idle_timeout,
        })
    }
}

/// How long a split may go without records before it stops holding the
/// watermark back, unless `watermark.idle_timeout` says otherwise.
pub const DEFAULT_IDLE_TIMEOUT: std::time::Duration = std::time::Duration::from_secs(30);

/// `'500ms'`, `'10s'`, `'5m'`, `'1h'` or a bare number of milliseconds.
fn parse_duration(v: &str) -> Option<std::time::Duration> {
    let v = v.trim().to_ascii_lowercase();
    let split = v.find(|c: char| !c.is_ascii_digit()).unwrap_or(v.len());
    let (num, unit) = v.split_at(split);
    let n: u64 = num.parse().ok()?;
    let ms = match unit.trim() {
        "" | "ms" => n,
        "s" => n.checked_mul(1000)?,
        "m" | "min" => n.checked_mul(60_000)?,
        "h" => n.checked_mul(3_600_000)?,
        _ => return None,
    };
    Some(std::time::Duration::from_millis(ms))
}

fn connector_name(c: &Connector) -> &'static str {
    match c {
        Connector::Kafka(_) => "kafka",
        Connector::File(_) => "filesystem",
        Connector::Datagen(_) => "datagen",
        Connector::Nexmark(_) => "nexmark",
    }
}

pub(crate) fn parse_bool(v: &str) -> Option<bool> {
    match v.trim().to_ascii_lowercase().as_str() {
        "true" | "on" | "yes" | "1" => Some(true),
        "false" | "off" | "no" | "0" => Some(false),
        _ => None,
    }
}

fn parse_kafka(o: &mut Opts) -> Result<KafkaOptions, SourceError> {
    let topic = o
        .take("topic")
        .ok_or_else(|| bad("missing option \"topic\" for the kafka connector"))?;
    let brokers = o
        .take("properties.bootstrap.server")
        .or_else(|| o.take("properties.bootstrap.servers"))
        .ok_or_else(|| {
            bad("missing option \"properties.bootstrap.server\" for the kafka connector")
        })?;
    let ts = match o.take_num::<i64>("scan.startup.timestamp.millis")? {
        Some(t) => Some(t),
        None => o.take_num::<i64>("scan.startup.timestamp_millis")?,
    };
    let startup = match o.take("scan.startup.mode").map(|m| m.to_ascii_lowercase()) {
        None if ts.is_some() => StartupMode::Timestamp(ts.unwrap_or(0)),
        None => StartupMode::Earliest,
        Some(m) => match m.as_str() {
            "earliest" => StartupMode::Earliest,
            "latest" => StartupMode::Latest,
            "timestamp" => StartupMode::Timestamp(ts.ok_or_else(|| {
                bad("scan.startup.mode = 'timestamp' needs scan.startup.timestamp.millis")
            })?),
            other => {
                return Err(bad(format!(
                    "invalid scan.startup.mode \"{other}\" (use earliest, latest or timestamp)"
                )))
            }
        },
    };
    let connect_timeout_ms = o.take_num("connect.timeout.ms")?.unwrap_or(10_000);
    let max_chunk_rows = o.take_num("source.max.chunk.rows")?.unwrap_or(4096).max(1);
    let linger_ms = o.take_num("source.linger.ms")?.unwrap_or(20);
    let properties = o.take_properties();
    Ok(KafkaOptions {
        brokers,
        topic,
        startup,
        properties,
        connect_timeout_ms,
        max_chunk_rows,
        linger_ms,
    })
}

fn parse_file(o: &mut Opts) -> Result<FileOptions, SourceError> {
    let path = o.take("path");
    let root = o.take("posix_fs.root");
    let pattern = o.take("match_pattern");
    let pattern = match (path, root) {
        (Some(p), None) if pattern.is_none() => super::file::pattern_of(&p),
        (None, Some(r)) => {
            let r = r.trim_end_matches('/');
            format!("{r}/{}", pattern.as_deref().unwrap_or("*"))
        }
        (None, None) => {
            return Err(bad(
                "missing option \"path\" (a directory or glob) for the filesystem connector",
            ))
        }
        _ => {
            return Err(bad(
                "give either \"path\" or \"posix_fs.root\" (with \"match_pattern\"), not both",
            ))
        }
    };
    let monitor = match o
        .take("source.monitor.interval")
        .or_else(|| o.take("source.monitor-interval"))
    {
        None => None,
        Some(v) => Some(
            parse_duration(&v)
                .filter(|d| !d.is_zero())
                .ok_or_else(|| {
                    bad(format!(
                        "invalid value for source.monitor.interval: \"{v}\" (use e.g. '500ms', '10s', '5m')"
                    ))
                })?,
        ),
    };
    let max_chunk_rows = o.take_num("source.max.chunk.rows")?.unwrap_or(8192).max(1);
    Ok(FileOptions {
        pattern,
        monitor,
        max_chunk_rows,
    })
}

fn parse_datagen(o: &mut Opts, schema: &SchemaRef) -> Result<DatagenOptions, SourceError> {
    let rows_per_second = o.take_num("datagen.rows.per.second")?.unwrap_or(10);
    let seed = o.take_num("datagen.seed")?.unwrap_or(0);
    let _ = o.take("datagen.split.num");
    let mut fields: BTreeMap<String, BTreeMap<String, String>> = BTreeMap::new();
    let keys: Vec<String> =
        o.0.keys()
            .filter(|k| k.starts_with("fields."))
            .cloned()
            .collect();
    for k in keys {
        let rest = &k["fields.".len()..];
        let Some((col, opt)) = rest.rsplit_once('.') else {
            return Err(bad(format!("invalid datagen option \"{k}\"")));
        };
        if schema.field_with_name(col).is_err() {
            return Err(bad(format!(
                "datagen option \"{k}\" names no column of the source"
            )));
        }
        let v = o.take(&k).unwrap_or_default();
        fields
            .entry(col.to_string())
            .or_default()
            .insert(opt.to_string(), v);
    }
    Ok(DatagenOptions {
        rows_per_second,
        seed,
        fields,
    })
}

fn parse_nexmark(o: &mut Opts) -> Result<NexmarkOptions, SourceError> {
    let table = match o
        .take("nexmark.table.type")
        .map(|t| t.to_ascii_lowercase())
        .as_deref()
    {
        None | Some("bid") => NexmarkTable::Bid,
        Some("person") => NexmarkTable::Person,
        Some("auction") => NexmarkTable::Auction,
        Some(other) => {
            return Err(bad(format!(
                "invalid nexmark.table.type \"{other}\" (use Person, Auction or Bid)"
            )))
        }
    };
    let event_num = match o.take_num::<i64>("nexmark.event.num")? {
        Some(n) if n >= 0 => Some(n as u64),
        _ => None,
    };
    let min_event_gap_ns = o
        .take_num("nexmark.min.event.gap.in.ns")?
        .unwrap_or(100_000);
    let max_chunk_size = o
        .take_num("nexmark.max.chunk.size")?
        .unwrap_or(1024usize)
        .max(1);
    let base_time_ms = o.take_num("nexmark.base.time")?;
    let _ = o.take("nexmark.split.num");
    // Unbounded streams are paced by default (an unpaced one would fill the
    // disk); bounded ones run as fast as the engine goes.
    let real_time = match o.take("nexmark.use.real.time") {
        None => event_num.is_none(),
        Some(v) => parse_bool(&v)
            .ok_or_else(|| bad(format!("invalid value for nexmark.use.real.time: \"{v}\"")))?,
    };
    Ok(NexmarkOptions {
        table,
        event_num,
        real_time,
        min_event_gap_ns,
        max_chunk_size,
        base_time_ms,
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use datafusion::arrow::datatypes::{DataType, Field, Schema};
    use std::sync::Arc;

    fn parse(with: &[(&str, &str)]) -> Result<SourceSpec, SourceError> {
        let schema = Arc::new(Schema::new(vec![Field::new("a", DataType::Int64, true)]));
        let with: Options = with
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect();
        SourceSpec::parse("s", schema, None, false, &with, None, Some("csv"), &vec![])
    }

    #[test]
    fn file_options() {
        let Ok(SourceSpec {
            connector: Connector::File(f),
            ..
        }) = parse(&[
            ("connector", "filesystem"),
            ("path", "/d"),
            ("source.monitor.interval", "2s"),
        ])
        else {
            panic!("filesystem options");
        };
        assert_eq!(f.pattern, "/d/*");
        assert_eq!(f.monitor, Some(std::time::Duration::from_secs(2)));
        let Ok(SourceSpec {
            connector: Connector::File(f),
            ..
        }) = parse(&[
            ("connector", "posix_fs"),
            ("posix_fs.root", "/d/"),
            ("match_pattern", "*.csv"),
        ])
        else {
            panic!("posix_fs options");
        };
        assert_eq!((f.pattern.as_str(), f.monitor), ("/d/*.csv", None));
        for bad in [
            &[("connector", "filesystem")][..],
            &[
                ("connector", "filesystem"),
                ("path", "/d"),
                ("posix_fs.root", "/e"),
            ],
            &[
                ("connector", "filesystem"),
                ("path", "/d"),
                ("source.monitor.interval", "0s"),
            ],
            &[("connector", "filesystem"), ("path", "/d"), ("nope", "1")],
        ] {
            assert!(matches!(parse(bad), Err(SourceError::Option(_))), "{bad:?}");
        }
    }

    #[test]
    fn nexmark_pacing_defaults() {
        let pacing = |with: &[(&str, &str)]| match parse(with) {
            Ok(SourceSpec {
                connector: Connector::Nexmark(n),
                ..
            }) => Some(n.real_time),
            _ => None,
        };
        assert_eq!(pacing(&[("connector", "nexmark")]), Some(true));
        assert_eq!(
            pacing(&[("connector", "nexmark"), ("nexmark.event.num", "10")]),
            Some(false)
        );
        assert_eq!(
            pacing(&[
                ("connector", "nexmark"),
                ("nexmark.event.num", "10"),
                ("nexmark.use.real.time", "true")
            ]),
            Some(true)
        );
        assert_eq!(
            pacing(&[("connector", "nexmark"), ("nexmark.use.real.time", "maybe")]),
            None
        );
    }
}
