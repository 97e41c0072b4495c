//! Golden-file tests of streaming plans: for each `golden/<name>.sql`, the
//! output of `EXPLAIN CREATE MATERIALIZED VIEW v AS <query>` must equal
//! `golden/<name>.plan`. `FRESHET_BLESS=1` rewrites the `.plan` files (review
//! the diff before committing it).

use std::path::PathBuf;

use anyhow::{bail, Result};
use freshet_sql_tests::{query_rows, TestServer};

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn streaming_plans_match_golden_files() -> Result<()> {
    let manifest =
        std::env::var("CARGO_MANIFEST_DIR").unwrap_or_else(|_| env!("CARGO_MANIFEST_DIR").into());
    let dir = PathBuf::from(manifest).join("golden");
    let server = TestServer::start().await?;
    let c = server.connect().await?;
    c.batch_execute(&std::fs::read_to_string(dir.join("schema.sql"))?)
        .await?;
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
