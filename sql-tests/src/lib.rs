//! Test harness: starts the real `freshet` binary and talks to it over pgwire.
//!
//! [`TestServer`] runs `freshet` on a free loopback port with a temporary data
//! dir, and can kill (`SIGKILL`), stop (`SIGTERM`) and restart it on the same
//! data. [`FreshetDb`] adapts a connection to `sqllogictest`; besides SQL it
//! understands one directive, `__restart kill` / `__restart clean`, which
//! restarts the server in the middle of a file and reconnects.

pub mod exprgen;
pub mod kafka;
pub mod nexmark;
pub mod oracle;
pub mod postgres;

use std::net::TcpListener;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::atomic::{AtomicU32, Ordering};
use std::time::{Duration, Instant};

use anyhow::{bail, Context, Result};
use sqllogictest::{DBOutput, DefaultColumnType};
use tokio_postgres::{Client, NoTls, SimpleQueryMessage};

static COUNTER: AtomicU32 = AtomicU32::new(0);

/// Path of the `freshet` binary: `$FRESHET_BIN`, or next to the test executable.
pub fn freshet_bin() -> Result<PathBuf> {
    if let Ok(p) = std::env::var("FRESHET_BIN") {
        return Ok(PathBuf::from(p));
    }
    let exe = std::env::current_exe()?;
    let mut dir = exe
        .parent()
        .context("test binary has no directory")?
        .to_path_buf();
    if dir.ends_with("deps") {
        dir.pop();
    }
    let bin = dir.join("freshet");
    if !bin.exists() {
        bail!("{} not found: build it first with `cargo build -p freshet-server` (the test script does)", bin.display());
    }
    Ok(bin)
}

fn free_port() -> Result<u16> {
    Ok(TcpListener::bind("127.0.0.1:0")?.local_addr()?.port())
}

/// A running `freshet` process with its own data dir.
pub struct TestServer {
    pub port: u16,
    pub data_dir: PathBuf,
    child: Option<Child>,
    extra_args: Vec<String>,
}

impl TestServer {
    /// Starts a server on a new temporary data dir.
    pub async fn start() -> Result<TestServer> {
        Self::start_with(&[]).await
    }

    /// Starts a server on a copy of the data dir in `archive` (a `.tar.gz`
    /// holding `data/`, as made by an older build).
    pub async fn start_on_archive(archive: &Path) -> Result<TestServer> {
        let mut s = Self::prepare(&[])?;
        let status = Command::new("tar")
            .arg("xzf")
            .arg(archive)
            .arg("-C")
            .arg(&s.data_dir)
            .status()
            .context("running tar")?;
        if !status.success() {
            bail!("tar xzf {} failed: {status}", archive.display());
        }
        s.spawn().await?;
        Ok(s)
    }

    pub async fn start_with(extra_args: &[&str]) -> Result<TestServer> {
        let mut s = Self::prepare(extra_args)?;
        s.spawn().await?;
        Ok(s)
    }

    /// A server on a new temporary data dir, not started.
    fn prepare(extra_args: &[&str]) -> Result<TestServer> {
        let n = COUNTER.fetch_add(1, Ordering::SeqCst);
        let nanos = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)?
            .subsec_nanos();
        let data_dir =
            std::env::temp_dir().join(format!("freshet-test-{}-{n}-{nanos}", std::process::id()));
        std::fs::create_dir_all(&data_dir)?;
        Ok(TestServer {
            port: free_port()?,
            data_dir,
            child: None,
            extra_args: extra_args.iter().map(|s| s.to_string()).collect(),
        })
    }

    async fn spawn(&mut self) -> Result<()> {
        let log = std::fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(self.data_dir.join("server.log"))?;
        let child = Command::new(freshet_bin()?)
            .arg("--listen")
            .arg(format!("127.0.0.1:{}", self.port))
            .arg("--data-dir")
            .arg(self.data_dir.join("data"))
            .args(&self.extra_args)
            .stdout(Stdio::null())
            .stderr(log)
            .spawn()
            .context("starting freshet")?;
        self.child = Some(child);
        let deadline = Instant::now() + Duration::from_secs(60);
        loop {
            match self.connect().await {
                Ok(c) => {
                    drop(c);
                    return Ok(());
                }
                // Up, but requiring a password (`--user`).
                Err(e) if is_auth_failure(&e) => return Ok(()),
                Err(_) => {}
            }
            if let Some(c) = self.child.as_mut() {
                if let Some(status) = c.try_wait()? {
                    bail!(
                        "freshet exited during start ({status}); log:\n{}",
                        self.log()
                    );
                }
            }
            if Instant::now() > deadline {
                bail!(
                    "freshet did not accept connections within 60 s; log:\n{}",
                    self.log()
                );
            }
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    }

    /// The server's log so far.
    pub fn log(&self) -> String {
        std::fs::read_to_string(self.data_dir.join("server.log")).unwrap_or_default()
    }

    /// Opens a new client connection.
    pub async fn connect(&self) -> Result<Client> {
        connect_loopback(self.port, "freshet").await
    }

    /// `kill -9` the server, then start it again on the same data.
    pub async fn kill_and_restart(&mut self) -> Result<()> {
        if let Some(mut c) = self.child.take() {
            c.kill()?;
            c.wait()?;
        }
        self.spawn().await
    }

    /// `SIGTERM` the server, wait for it to exit, then start it again.
    pub async fn stop_and_restart(&mut self) -> Result<()> {
        self.stop()?;
        self.spawn().await
    }

    /// `SIGTERM` and wait.
    pub fn stop(&mut self) -> Result<()> {
        if let Some(mut c) = self.child.take() {
            Command::new("kill")
                .arg("-TERM")
                .arg(c.id().to_string())
                .status()?;
            let deadline = Instant::now() + Duration::from_secs(30);
            while c.try_wait()?.is_none() {
                if Instant::now() > deadline {
                    c.kill()?;
                    bail!("freshet did not exit within 30 s of SIGTERM");
                }
                std::thread::sleep(Duration::from_millis(20));
            }
        }
        Ok(())
    }

    /// Process id of the running server.
    pub fn pid(&self) -> Option<u32> {
        self.child.as_ref().map(|c| c.id())
    }

    pub fn data_path(&self) -> &Path {
        &self.data_dir
    }
}

impl Drop for TestServer {
    fn drop(&mut self) {
        if let Some(mut c) = self.child.take() {
            let _ = c.kill();
            let _ = c.wait();
        }
        if std::env::var("FRESHET_KEEP_TEST_DATA").is_err() {
            let _ = std::fs::remove_dir_all(&self.data_dir);
        }
    }
}

/// Connects to a server on `127.0.0.1:port` as `user`, into the database
/// of the same name, driving the connection on a task of its own.
pub async fn connect_loopback(port: u16, user: &str) -> Result<Client> {
    let conf = format!("host=127.0.0.1 port={port} user={user} dbname={user} connect_timeout=5");
    let (client, conn) = tokio_postgres::connect(&conf, NoTls).await?;
    tokio::spawn(async move {
        let _ = conn.await;
    });
    Ok(client)
}

/// A process's peak resident memory (`VmHWM`), in KiB.
pub fn peak_rss_kib(pid: u32) -> Option<u64> {
    status_kib(pid, "VmHWM")
}

/// A KiB field of `/proc/PID/status` (`VmHWM`, `VmRSS`, ...).
pub fn status_kib(pid: u32, field: &str) -> Option<u64> {
    std::fs::read_to_string(format!("/proc/{pid}/status"))
        .ok()?
        .lines()
        .find(|l| l.starts_with(field))?
        .split_whitespace()
        .nth(1)?
        .parse()
        .ok()
}

/// Bytes of the files under `dir`, recursively (a data dir's size).
pub fn dir_bytes(dir: &Path) -> u64 {
    let Ok(rd) = std::fs::read_dir(dir) else {
        return 0;
    };
    rd.filter_map(|e| e.ok())
        .map(|e| match e.metadata() {
            Ok(m) if m.is_dir() => dir_bytes(&e.path()),
            Ok(m) => m.len(),
            Err(_) => 0,
        })
        .sum()
}

/// Runs a simple query and returns its rows as text (NULL as `NULL`).
pub async fn query_rows(client: &Client, sql: &str) -> Result<Vec<Vec<String>>> {
    let mut rows = Vec::new();
    for m in client.simple_query(sql).await? {
        if let SimpleQueryMessage::Row(r) = m {
            rows.push(
                (0..r.len())
                    .map(|i| {
                        r.get(i)
                            .map(str::to_string)
                            .unwrap_or_else(|| "NULL".into())
                    })
                    .collect(),
            );
        }
    }
    Ok(rows)
}

/// Error type for the sqllogictest adapter, carrying the SQLSTATE.
#[derive(Debug)]
pub struct DbError {
    pub msg: String,
    pub sqlstate: Option<String>,
}

impl std::fmt::Display for DbError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.msg)
    }
}

impl std::error::Error for DbError {}

impl From<tokio_postgres::Error> for DbError {
    fn from(e: tokio_postgres::Error) -> Self {
        match e.as_db_error() {
            Some(db) => DbError {
                msg: db.message().to_string(),
                sqlstate: Some(db.code().code().to_string()),
            },
            None => DbError {
                msg: e.to_string(),
                sqlstate: None,
            },
        }
    }
}

impl From<anyhow::Error> for DbError {
    fn from(e: anyhow::Error) -> Self {
        DbError {
            msg: format!("{e:#}"),
            sqlstate: None,
        }
    }
}

/// A sqllogictest database backed by a [`TestServer`].
pub struct FreshetDb {
    pub server: TestServer,
    client: Client,
}

impl FreshetDb {
    pub async fn new(server: TestServer) -> Result<Self> {
        let client = server.connect().await?;
        Ok(FreshetDb { server, client })
    }
}

#[async_trait::async_trait]
impl sqllogictest::AsyncDB for FreshetDb {
    type Error = DbError;
    type ColumnType = DefaultColumnType;

    async fn run(&mut self, sql: &str) -> Result<DBOutput<DefaultColumnType>, DbError> {
        let trimmed = sql.trim();
        if let Some(mode) = trimmed.strip_prefix("__restart") {
            match mode.trim() {
                "kill" => self.server.kill_and_restart().await?,
                _ => self.server.stop_and_restart().await?,
            }
            self.client = self.server.connect().await?;
            return Ok(DBOutput::StatementComplete(0));
        }
        let msgs = self.client.simple_query(sql).await?;
        let mut rows = Vec::new();
        let mut width = 0;
        let mut is_query = false;
        let mut affected = 0;
        for m in msgs {
            match m {
                SimpleQueryMessage::Row(r) => {
                    width = r.len();
                    rows.push(
                        (0..r.len())
                            .map(|i| match r.get(i) {
                                None => "NULL".to_string(),
                                Some("") => "(empty)".to_string(),
                                Some(v) => v.to_string(),
                            })
                            .collect(),
                    );
                }
                SimpleQueryMessage::RowDescription(d) => {
                    is_query = true;
                    width = d.len();
                }
                SimpleQueryMessage::CommandComplete(n) => affected = n,
                _ => {}
            }
        }
        if is_query || !rows.is_empty() {
            Ok(DBOutput::Rows {
                types: vec![DefaultColumnType::Any; width],
                rows,
            })
        } else {
            Ok(DBOutput::StatementComplete(affected))
        }
    }

    async fn shutdown(&mut self) {}

    fn engine_name(&self) -> &str {
        "freshet"
    }

    async fn sleep(dur: Duration) {
        tokio::time::sleep(dur).await
    }

    fn error_sql_state(err: &DbError) -> Option<String> {
        err.sqlstate.clone()
    }
}

/// Whether `e` is the server refusing a login (SQLSTATE 28P01 or 28000), or
/// asking for a password the probe does not have.
pub fn is_auth_failure(e: &anyhow::Error) -> bool {
    e.downcast_ref::<tokio_postgres::Error>()
        .and_then(|e| e.code())
        .is_some_and(|c| c.code().starts_with("28"))
        || format!("{e:#}").to_lowercase().contains("password")
}

/// Polls `sql` until it returns `want` (sorted), or fails after `secs`.
pub async fn wait_rows(client: &Client, sql: &str, want: &[&str], secs: u64) -> Result<()> {
    let mut want: Vec<String> = want.iter().map(|s| s.to_string()).collect();
    want.sort();
    let deadline = Instant::now() + Duration::from_secs(secs);
    let mut last = Vec::new();
    while Instant::now() < deadline {
        if let Ok(rows) = query_rows(client, sql).await {
            let mut got: Vec<String> = rows.into_iter().map(|r| r.join(",")).collect();
            got.sort();
            if got == want {
                return Ok(());
            }
            last = got;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    bail!("`{sql}` did not reach {want:?} within {secs}s; last: {last:?}")
}

pub async fn sqlstate_of(client: &Client, sql: &str) -> String {
    match client.simple_query(sql).await {
        Ok(_) => "ok".into(),
        Err(e) => e
            .code()
            .map(|c| c.code().to_string())
            .unwrap_or_else(|| e.to_string()),
    }
}

/// The `.slt` files of `sql-tests/<subdir>`, sorted, whose path contains
/// `$<filter_var>` when it is set. The manifest directory is read at run
/// time first: a build cache shared by two checkouts may run a test binary
/// compiled in the other one.
pub fn slt_files(subdir: &str, filter_var: &str) -> Vec<PathBuf> {
    let manifest =
        std::env::var("CARGO_MANIFEST_DIR").unwrap_or_else(|_| env!("CARGO_MANIFEST_DIR").into());
    let dir = PathBuf::from(manifest).join(subdir);
    let filter = std::env::var(filter_var).ok();
    let mut files: Vec<PathBuf> = std::fs::read_dir(&dir)
        .into_iter()
        .flatten()
        .filter_map(|e| e.ok().map(|e| e.path()))
        .filter(|p| p.extension().is_some_and(|x| x == "slt"))
        .filter(|p| {
            filter
                .as_ref()
                .is_none_or(|f| p.to_string_lossy().contains(f.as_str()))
        })
        .collect();
    files.sort();
    files
}
