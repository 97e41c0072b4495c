//! A data dir written by an earlier build still opens, and its views resume
//! correctly: `fixtures/datadir-97110ed.tar.gz` was made by the build of
//! commit 97110ed (before state tables: view and join counts written as
//! puts, not merges) with the statements in `fixtures/README.md`.

use std::path::Path;

use anyhow::{bail, Result};
use freshet_sql_tests::{query_rows, TestServer};

const VIEWS: &[(&str, &str)] = &[
    ("by_user", "SELECT user_id, count(*) AS n, sum(amount) AS s, min(amount) AS lo, max(amount) AS hi FROM events GROUP BY user_id"),
    ("joined", "SELECT e.id, e.amount, u.name FROM events e JOIN users u ON e.user_id = u.id"),
    ("top5", "SELECT id, amount FROM events ORDER BY amount DESC, id LIMIT 5"),
    ("ranked", "SELECT id, user_id, rank() OVER (PARTITION BY user_id ORDER BY amount DESC) AS r FROM events"),
    ("lagged", "SELECT id, amount - lag(amount) OVER (PARTITION BY user_id ORDER BY id) AS d FROM events"),
    ("dup", "SELECT kind, amount % 3 AS m FROM events"),
];

async fn check(client: &tokio_postgres::Client, when: &str) -> Result<()> {
    for (name, query) in VIEWS {
        let mut got = query_rows(client, &format!("SELECT * FROM {name}")).await?;
        let mut want = query_rows(client, query).await?;
        got.sort();
        want.sort();
        if got != want {
            bail!(
                "{when}: view {name} ({} rows) differs from its query ({} rows)",
                got.len(),
                want.len()
            );
        }
    }
    Ok(())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn data_dir_of_an_earlier_build_resumes() -> Result<()> {
    let archive = Path::new(env!("CARGO_MANIFEST_DIR")).join("fixtures/datadir-97110ed.tar.gz");
    let mut server = TestServer::start_on_archive(&archive).await?;
    let client = server.connect().await?;
    let n: i64 = client
        .query_one("SELECT count(*) FROM joined", &[])
        .await?
        .get(0);
    assert_eq!(n, 1715, "the fixture's join view as the old build left it");
    check(&client, "after opening").await?;
    // Changes on top of the old state: new rows, deletes of old rows (their
    // counts were written by the old build), updates through the join.
    client
        .batch_execute(
            "INSERT INTO events SELECT value, value % 20, value % 89, 'buy' FROM generate_series(2001, 2600);
             DELETE FROM events WHERE id % 5 = 0;
             UPDATE users SET name = 'again' WHERE id IN (3, 4);
             INSERT INTO users VALUES (20, 'new');
             INSERT INTO events VALUES (9999, 20, 1000, 'view');
             FLUSH;",
        )
        .await?;
    check(&client, "after changes").await?;
    drop(client);
    server.kill_and_restart().await?;
    let client = server.connect().await?;
    check(&client, "after kill -9 and restart").await?;
    Ok(())
}
