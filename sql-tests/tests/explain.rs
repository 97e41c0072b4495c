//! Golden-file tests of streaming plans: for each `golden/<name>.sql`, the
//! output of `EXPLAIN CREATE MATERIALIZED VIEW v AS <query>` must equal
//! `golden/<name>.plan`. `FRESHET_BLESS=1` rewrites the `.plan` files (review
//! the diff before committing it).

use std::path::PathBuf;

use anyhow::{bail, Result};
use freshet_sql_tests::{query_rows, TestServer};

fn golden_dir() -> PathBuf {
    let manifest =
        std::env::var("CARGO_MANIFEST_DIR").unwrap_or_else(|_| env!("CARGO_MANIFEST_DIR").into());
    PathBuf::from(manifest).join("golden")
}

/// A server loaded with `golden/schema.sql`, and a client of it.
async fn server_with_schema(dir: &std::path::Path) -> Result<(TestServer, tokio_postgres::Client)> {
    let server = TestServer::start().await?;
    let c = server.connect().await?;
    c.batch_execute(&std::fs::read_to_string(dir.join("schema.sql"))?)
        .await?;
    Ok((server, c))
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn streaming_plans_match_golden_files() -> Result<()> {
    let dir = golden_dir();
    let (_server, c) = server_with_schema(&dir).await?;
    let bless = std::env::var("FRESHET_BLESS").is_ok_and(|v| v == "1");
    let mut names: Vec<PathBuf> = std::fs::read_dir(&dir)?
        .filter_map(|e| e.ok().map(|e| e.path()))
        .filter(|p| p.extension().is_some_and(|e| e == "sql") && !p.ends_with("schema.sql"))
        .collect();
    names.sort();
    let mut failed = Vec::new();
    for path in &names {
        let query = std::fs::read_to_string(path)?;
        let rows = query_rows(
            &c,
            &format!(
                "EXPLAIN CREATE MATERIALIZED VIEW v AS {}",
                query.trim().trim_end_matches(';')
            ),
        )
        .await?;
        let got: String = rows.iter().map(|r| format!("{}\n", r.join(" "))).collect();
        let golden = path.with_extension("plan");
        if bless {
            std::fs::write(&golden, &got)?;
            continue;
        }
        let want = std::fs::read_to_string(&golden).unwrap_or_default();
        if got != want {
            failed.push(format!(
                "{}:\n--- expected\n{want}--- actual\n{got}",
                path.display()
            ));
        }
    }
    if !failed.is_empty() {
        bail!(
            "plans differ from golden files (FRESHET_BLESS=1 rewrites them):\n{}",
            failed.join("\n")
        );
    }
    assert!(
        names.len() >= 10,
        "expected the golden queries, found {}",
        names.len()
    );
    Ok(())
}

/// Constructs outside what the engine maintains: refused at CREATE with
/// SQLSTATE 0A000 and a message that names the construct (the list in
/// `docs/sql.md`).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn unsupported_constructs_are_refused_by_name() -> Result<()> {
    let dir = golden_dir();
    let (_server, c) = server_with_schema(&dir).await?;
    let cases: &[(&str, &str)] = &[
        ("SELECT id, random() AS r FROM o", "random()"),
        ("SELECT id FROM o WHERE amount > (SELECT amount FROM o WHERE id = 1)", "scalar subquery"),
        ("SELECT id FROM o WHERE amount > 3 OR EXISTS (SELECT 1 FROM c WHERE c.id = o.cid)", "under OR"),
        ("WITH RECURSIVE r(n) AS (SELECT id FROM o UNION ALL SELECT n + 1 FROM r WHERE n < 5) SELECT n FROM r", "WITH RECURSIVE"),
        ("SELECT id, (SELECT max(amount) FROM o p WHERE p.amount < o.amount) AS below FROM o", "subquery"),
    ];
    let mut failed = Vec::new();
    for (sql, name) in cases {
        match c
            .simple_query(&format!("CREATE MATERIALIZED VIEW x AS {sql}"))
            .await
        {
            Ok(_) => failed.push(format!("accepted: {sql}")),
            Err(e) => {
                let code = e.code().map(|c| c.code().to_string()).unwrap_or_default();
                let msg = e
                    .as_db_error()
                    .map(|d| d.message().to_string())
                    .unwrap_or_default();
                if code != "0A000" || !msg.contains(name) {
                    failed.push(format!(
                        "{sql}: got {code} \"{msg}\", want 0A000 naming \"{name}\""
                    ));
                }
            }
        }
    }
    if !failed.is_empty() {
        bail!("{}", failed.join("\n"));
    }
    Ok(())
}
