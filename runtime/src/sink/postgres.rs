//! The PostgreSQL target of a sink: upserts by key into a table of a real
//! PostgreSQL server, one transaction per epoch.
//!
//! Each transaction writes the epoch's rows (`INSERT ... SELECT FROM
//! json_populate_recordset(...) ON CONFLICT (key) DO UPDATE`, deletes by
//! key the same way) and the epoch into `freshet_sink_progress` (sink name
//! -> epoch), created on first use. The progress read at connect time is the
//! last epoch the table has; an epoch at or below it is skipped, so a
//! replayed epoch is never applied twice.

use std::time::Duration;

use tokio_postgres::{Client, NoTls};

use super::deliver::Target;
use super::encode::Record;
use super::options::PgSinkOptions;
use crate::source::SourceError;

/// `name` as a quoted SQL identifier.
fn quote(name: &str) -> String {
    format!("\"{}\"", name.replace('"', "\"\""))
}

fn config(o: &PgSinkOptions) -> tokio_postgres::Config {
    let mut c = tokio_postgres::Config::new();
    c.host(&o.host)
        .port(o.port)
        .user(&o.user)
        .dbname(&o.database)
        .connect_timeout(Duration::from_millis(o.connect_timeout_ms))
        .application_name("freshet-sink");
    if let Some(p) = &o.password {
        c.password(p);
    }
    c
}

fn runtime() -> Result<tokio::runtime::Runtime, String> {
    tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .map_err(|e| format!("starting the PostgreSQL client: {e}"))
}

async fn connect(o: &PgSinkOptions) -> Result<Client, tokio_postgres::Error> {
    let (client, conn) = config(o).connect(NoTls).await?;
    tokio::spawn(async move {
        let _ = conn.await;
    });
    Ok(client)
}

fn pg_err(what: &str, e: tokio_postgres::Error) -> String {
    match e.as_db_error() {
        Some(d) => format!("{what}: {} ({})", d.message(), d.code().code()),
        None => format!("{what}: {e}"),
    }
}

pub struct PgTarget {
    opts: PgSinkOptions,
    /// The sink's name in the progress table.
    sink: String,
    /// The columns written, in order.
    columns: Vec<String>,
    key: Vec<String>,
    rt: Option<tokio::runtime::Runtime>,
    client: Option<Client>,
}

impl PgTarget {
    pub fn new(opts: PgSinkOptions, sink: &str, columns: Vec<String>, key: Vec<String>) -> Self {
        PgTarget {
            opts,
            sink: sink.to_string(),
            columns,
            key,
            rt: None,
            client: None,
        }
    }

    fn table(&self) -> String {
        format!("{}.{}", quote(&self.opts.schema), quote(&self.opts.table))
    }

    fn run<T>(&mut self, f: impl AsyncFnOnce(&Client) -> Result<T, String>) -> Result<T, String> {
        let (Some(rt), Some(client)) = (&self.rt, &self.client) else {
            return Err("not connected to PostgreSQL".into());
        };
        rt.block_on(f(client))
    }
}

impl Target for PgTarget {
    fn open(&mut self) -> Result<Option<u64>, String> {
        let rt = runtime()?;
        let opts = self.opts.clone();
        let sink = self.sink.clone();
        let (client, progress) = rt.block_on(async move {
            let client = connect(&opts)
                .await
                .map_err(|e| pg_err("connecting to PostgreSQL", e))?;
            client
                .batch_execute(
                    "CREATE TABLE IF NOT EXISTS freshet_sink_progress (sink text PRIMARY KEY, epoch bigint NOT NULL)",
                )
                .await
                .map_err(|e| pg_err("creating freshet_sink_progress", e))?;
            let row = client
                .query_opt(
                    "SELECT epoch FROM freshet_sink_progress WHERE sink = $1",
                    &[&sink],
                )
                .await
                .map_err(|e| pg_err("reading the sink's progress", e))?;
            let progress = row.map(|r| r.get::<_, i64>(0) as u64);
            Ok::<_, String>((client, progress))
        })?;
        self.rt = Some(rt);
        self.client = Some(client);
        Ok(progress)
    }

    fn begin(&mut self, _epoch: u64) -> Result<(), String> {
        self.run(async |c| {
            c.batch_execute("BEGIN")
                .await
                .map_err(|e| pg_err("beginning a transaction", e))
        })
    }

    fn write(&mut self, records: &[Record]) -> Result<(), String> {
        let mut upserts = Vec::new();
        let mut deletes = Vec::new();
        for r in records {
            match (&r.value, &r.key) {
                (Some(v), _) => upserts.push(v.as_slice()),
                (None, Some(k)) => deletes.push(k.as_slice()),
                (None, None) => {}
            }
        }
        let json = |rows: &[&[u8]]| {
            let mut s = Vec::with_capacity(rows.iter().map(|r| r.len() + 1).sum::<usize>() + 2);
            s.push(b'[');
            for (i, r) in rows.iter().enumerate() {
                if i > 0 {
                    s.push(b',');
                }
                s.extend_from_slice(r);
            }
            s.push(b']');
            String::from_utf8_lossy(&s).into_owned()
        };
        let table = self.table();
        let cols: Vec<String> = self.columns.iter().map(|c| quote(c)).collect();
        let keys: Vec<String> = self.key.iter().map(|c| quote(c)).collect();
        let set: Vec<String> = cols
            .iter()
            .filter(|c| !keys.contains(c))
            .map(|c| format!("{c} = EXCLUDED.{c}"))
            .collect();
        let upsert_sql = format!(
            "INSERT INTO {table} ({cols}) SELECT {cols} FROM json_populate_recordset(NULL::{table}, $1::text::json) ON CONFLICT ({keys}) {action}",
            cols = cols.join(", "),
            keys = keys.join(", "),
            action = if set.is_empty() {
                "DO NOTHING".to_string()
            } else {
                format!("DO UPDATE SET {}", set.join(", "))
            }
        );
        let delete_sql = format!(
            "DELETE FROM {table} AS t USING json_populate_recordset(NULL::{table}, $1::text::json) AS d WHERE {}",
            keys.iter()
                .map(|k| format!("t.{k} = d.{k}"))
                .collect::<Vec<_>>()
                .join(" AND ")
        );
        let (up, del) = (json(&upserts), json(&deletes));
        let (nu, nd) = (upserts.len(), deletes.len());
        self.run(async move |c| {
            if nd > 0 {
                c.execute(&delete_sql, &[&del])
                    .await
                    .map_err(|e| pg_err("deleting rows", e))?;
            }
            if nu > 0 {
                c.execute(&upsert_sql, &[&up])
                    .await
                    .map_err(|e| pg_err("upserting rows", e))?;
            }
            Ok(())
        })
    }

    fn commit(&mut self, epoch: u64) -> Result<(), String> {
        let sink = self.sink.clone();
        let epoch = epoch as i64;
        self.run(async move |c| {
            let params: [&(dyn tokio_postgres::types::ToSql + Sync); 2] = [&sink, &epoch];
            c.execute(
                "INSERT INTO freshet_sink_progress (sink, epoch) VALUES ($1, $2) ON CONFLICT (sink) DO UPDATE SET epoch = EXCLUDED.epoch",
                &params,
            )
            .await
            .map_err(|e| pg_err("recording the sink's progress", e))?;
            c.batch_execute("COMMIT")
                .await
                .map_err(|e| pg_err("committing", e))
        })
    }

    fn reset(&mut self) {
        if let (Some(rt), Some(c)) = (&self.rt, &self.client) {
            let _ = rt.block_on(async { c.batch_execute("ROLLBACK").await });
        }
        self.client = None;
        self.rt = None;
    }
}

/// Checks at `CREATE SINK` that the server answers and the table exists
/// with every column the sink writes.
pub fn check_table(o: &PgSinkOptions, columns: &[String]) -> Result<(), SourceError> {
    let o = o.clone();
    let columns = columns.to_vec();
    let t = std::thread::spawn(move || {
        let rt = runtime().map_err(SourceError::Connect)?;
        rt.block_on(async {
            let client = connect(&o).await.map_err(|e| {
                SourceError::Connect(pg_err(
                    &format!("cannot connect to PostgreSQL at {}:{}", o.host, o.port),
                    e,
                ))
            })?;
            let found: Vec<String> = client
                .query(
                    "SELECT column_name::text FROM information_schema.columns WHERE table_schema = $1 AND table_name = $2",
                    &[&o.schema, &o.table],
                )
                .await
                .map_err(|e| SourceError::Connect(pg_err("reading the table's columns", e)))?
                .iter()
                .map(|r| r.get(0))
                .collect();
            if found.is_empty() {
                return Err(SourceError::Missing(format!(
                    "PostgreSQL table {}.{} does not exist",
                    o.schema, o.table
                )));
            }
            if let Some(c) = columns.iter().find(|c| !found.contains(c)) {
                return Err(SourceError::Missing(format!(
                    "PostgreSQL table {}.{} has no column \"{c}\"",
                    o.schema, o.table
                )));
            }
            Ok(())
        })
    });
    t.join()
        .map_err(|_| SourceError::Connect("the PostgreSQL check panicked".into()))?
}
