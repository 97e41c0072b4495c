//! The filesystem source: CSV and JSON-lines files read exactly once across
//! `kill -9`, files added later picked up, bad lines skipped and listed.

use std::io::Write;
use std::path::Path;
use std::time::Duration;

use anyhow::Result;
use freshet_sql_tests::{query_rows, wait_rows, TestServer};

const FILES: u64 = 8;
const ROWS_PER_FILE: u64 = 40_000;

/// Writes rows `first..first + n` (`id, grp, note`) as CSV or JSON lines,
/// with a bad line after row `bad_after` if given. The file appears
/// complete: it is written under a hidden name, then renamed.
fn write_file(
    dir: &Path,
    name: &str,
    json: bool,
    first: u64,
    n: u64,
    bad_after: Option<u64>,
) -> Result<()> {
    let tmp = dir.join(format!(".{name}"));
    let mut f = std::io::BufWriter::new(std::fs::File::create(&tmp)?);
    for id in first..first + n {
        if json {
            writeln!(f, r#"{{"id": {id}, "grp": {}, "note": "n{id}"}}"#, id % 7)?;
        } else {
            writeln!(f, "{id},{},n{id}", id % 7)?;
        }
        if bad_after == Some(id) {
            if json {
                writeln!(f, r#"{{"id": "not a number", "grp": 1}}"#)?;
            } else {
                writeln!(f, "oops,not,a,row")?;
            }
        }
    }
    f.flush()?;
    drop(f);
    std::fs::rename(tmp, dir.join(name))?;
    Ok(())
}

fn expect(rows: u64) -> String {
    // ids 1..=rows: count, sum, distinct count.
    format!("{rows},{},{rows}", rows * (rows + 1) / 2)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn files_are_read_exactly_once_across_kills() -> Result<()> {
    let root = std::env::temp_dir().join(format!("freshet-files-{}", std::process::id()));
    let (csv, json) = (root.join("csv"), root.join("json"));
    std::fs::create_dir_all(&csv)?;
    std::fs::create_dir_all(&json)?;
    for i in 0..FILES {
        let first = 1 + i * ROWS_PER_FILE;
        write_file(
            &csv,
            &format!("part-{i:03}.csv"),
            false,
            first,
            ROWS_PER_FILE,
            None,
        )?;
        write_file(
            &json,
            &format!("part-{i:03}.json"),
            true,
            first,
            ROWS_PER_FILE,
            None,
        )?;
    }
    let mut server = TestServer::start_with(&["--checkpoint-interval", "50ms"]).await?;
    let c = server.connect().await?;
    c.batch_execute(&format!(
        "CREATE SOURCE c (id BIGINT, grp INT, note VARCHAR) WITH (connector = 'filesystem', path = '{}/*.csv', source.monitor.interval = '200ms', source.max.chunk.rows = '1000') FORMAT PLAIN ENCODE CSV;
         CREATE SOURCE j (id BIGINT, grp INT, note VARCHAR) WITH (connector = 'posix_fs', posix_fs.root = '{}', match_pattern = '*.json', source.monitor.interval = '200ms', source.max.chunk.rows = '1000') FORMAT PLAIN ENCODE JSON;
         CREATE MATERIALIZED VIEW cv AS SELECT count(*) AS n, sum(id) AS s, count(DISTINCT id) AS d FROM c;
         CREATE MATERIALIZED VIEW jv AS SELECT count(*) AS n, sum(id) AS s, count(DISTINCT id) AS d FROM j;
         CREATE MATERIALIZED VIEW jg AS SELECT grp, count(*) AS n FROM j GROUP BY grp;",
        csv.display(),
        json.display()
    ))
    .await?;
    // Kill it several times while it reads.
    let mut seen = Vec::new();
    for wait_ms in [400u64, 700, 300, 900] {
        tokio::time::sleep(Duration::from_millis(wait_ms)).await;
        let c = server.connect().await?;
        seen.push(query_rows(&c, "SELECT n FROM cv").await.unwrap_or_default());
        server.kill_and_restart().await?;
    }
    println!("rows seen before each kill: {seen:?}");
    let c = server.connect().await?;
    let total = FILES * ROWS_PER_FILE;
    wait_rows(&c, "SELECT n, s, d FROM cv", &[&expect(total)], 120).await?;
    wait_rows(&c, "SELECT n, s, d FROM jv", &[&expect(total)], 120).await?;
    // Files added later are picked up; a bad line is skipped and listed,
    // and the lines after it are read.
    let more = 5_000;
    write_file(
        &csv,
        "part-100.csv",
        false,
        total + 1,
        more,
        Some(total + 10),
    )?;
    write_file(
        &json,
        "part-100.json",
        true,
        total + 1,
        more,
        Some(total + 20),
    )?;
    wait_rows(&c, "SELECT n, s, d FROM cv", &[&expect(total + more)], 60).await?;
    wait_rows(&c, "SELECT n, s, d FROM jv", &[&expect(total + more)], 60).await?;
    // jg joined j's reader after jv: it may still be reading what came
    // before it joined, on its own.
    wait_rows(
        &c,
        "SELECT sum(n) FROM jg",
        &[&(total + more).to_string()],
        60,
    )
    .await?;
    let errors = query_rows(&c, "SHOW SOURCE ERRORS").await?;
    println!("{errors:?}");
    let text = format!("{errors:?}");
    assert!(text.contains("part-100.csv"), "{text}");
    assert!(text.contains("part-100.json"), "{text}");
    // One reader per source: the bad JSON line is skipped once, for both
    // views of it.
    assert_eq!(errors.len(), 2, "{text}");
    assert!(text.contains("jg, jv"), "{text}");
    let _ = std::fs::remove_dir_all(&root);
    Ok(())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn file_source_errors() -> Result<()> {
    let server = TestServer::start().await?;
    let c = server.connect().await?;
    let state = |sql: &'static str| {
        let c = &c;
        async move { freshet_sql_tests::sqlstate_of(c, sql).await }
    };
    assert_eq!(
        state("CREATE SOURCE s (a INT) WITH (connector = 'filesystem', path = '/no/such/dir') FORMAT PLAIN ENCODE CSV").await,
        "58P01"
    );
    assert_eq!(
        state("CREATE SOURCE s (a INT) WITH (connector = 'filesystem') FORMAT PLAIN ENCODE CSV")
            .await,
        "22023"
    );
    assert_eq!(
        state("CREATE SOURCE s (a INT) WITH (connector = 'filesystem', path = '/tmp', source.monitor.interval = 'soon') FORMAT PLAIN ENCODE CSV").await,
        "22023"
    );
    assert_eq!(
        state("CREATE TABLE s (a INT PRIMARY KEY) WITH (connector = 'filesystem', path = '/tmp') FORMAT UPSERT ENCODE JSON").await,
        "0A000"
    );
    Ok(())
}
