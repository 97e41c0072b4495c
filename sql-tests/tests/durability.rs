//! `--sync-commit`: with `on`, every epoch commit syncs RocksDB's write-ahead
//! log before FLUSH returns; with `off`, nothing is synced. Observed from
//! outside the process with `strace` attached to the running server.

use std::process::{Command, Stdio};
use std::time::Duration;

use anyhow::{bail, Context, Result};
use freshet_sql_tests::TestServer;

const FLUSHES: usize = 10;

/// Sync calls (`fsync`/`fdatasync`) the server made during `FLUSHES`
/// one-row INSERT + FLUSH round trips.
async fn sync_calls(setting: &str) -> Result<usize> {
    let server = TestServer::start_with(&["--sync-commit", setting]).await?;
    let client = server.connect().await?;
    client
        .batch_execute(
            "CREATE TABLE t (a INT); CREATE MATERIALIZED VIEW v AS SELECT count(*) FROM t; FLUSH",
        )
        .await?;
    let pid = server.pid().context("server pid")?;
    let out = server.data_dir.join("strace.out");
    let mut strace = Command::new("strace")
        .args(["-f", "-qq", "-e", "trace=fsync,fdatasync", "-o"])
        .arg(&out)
        .args(["-p", &pid.to_string()])
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()
        .context("starting strace (the test script installs it)")?;
    // Wait until strace is attached: it creates its output file then.
    let deadline = std::time::Instant::now() + Duration::from_secs(20);
    while !out.exists() {
        if std::time::Instant::now() > deadline {
            bail!("strace did not attach to the server");
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    tokio::time::sleep(Duration::from_millis(500)).await;
    for i in 0..FLUSHES {
        client
            .batch_execute(&format!("INSERT INTO t VALUES ({i}); FLUSH"))
            .await?;
    }
    let n: i64 = client.query_one("SELECT * FROM v", &[]).await?.get(0);
    assert_eq!(n, FLUSHES as i64);
    Command::new("kill")
        .arg("-INT")
        .arg(strace.id().to_string())
        .status()?;
    let status = strace.wait()?;
    let trace = std::fs::read_to_string(&out).context("reading the strace output")?;
    if trace.contains("Operation not permitted") {
        bail!("strace could not attach (ptrace not permitted): {status}");
    }
    Ok(trace
        .lines()
        .filter(|l| l.contains("fsync(") || l.contains("fdatasync("))
        .count())
}

#[tokio::test]
async fn sync_commit_syncs_every_flush_and_off_never() -> Result<()> {
    let on = sync_calls("on").await?;
    let off = sync_calls("off").await?;
    eprintln!("sync calls over {FLUSHES} flushes: on={on} off={off}");
    assert!(
        on >= FLUSHES,
        "--sync-commit=on: {on} sync calls for {FLUSHES} flushes"
    );
    assert_eq!(off, 0, "--sync-commit=off made {off} sync calls");
    Ok(())
}
