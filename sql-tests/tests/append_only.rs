//! Append-only specializations keep state bounded: over an `APPEND ONLY`
//! table, a per-partition top-N keeps N rows per partition and a max keeps
//! one value per group, where the same views over a plain table keep every
//! row. (Their results are checked in `slt/append_only.slt`.)

use anyhow::Result;
use freshet_sql_tests::TestServer;

/// `SHOW STATE` entries and bytes of `view`.
async fn state_of(client: &tokio_postgres::Client, view: &str) -> Result<(i64, i64)> {
    for m in client.simple_query("SHOW STATE").await? {
        if let tokio_postgres::SimpleQueryMessage::Row(r) = m {
            if r.get(0) == Some(view) {
                let keys = r.get(1).unwrap_or("0").parse()?;
                let bytes = r.get(2).unwrap_or("0").parse()?;
                return Ok((keys, bytes));
            }
        }
    }
    anyhow::bail!("no SHOW STATE row for {view}")
}

#[tokio::test]
async fn append_only_views_keep_bounded_state() -> Result<()> {
    let server = TestServer::start().await?;
    let c = server.connect().await?;
    for (table, mode) in [("ao", "APPEND ONLY"), ("plain", "")] {
        c.batch_execute(&format!(
            "CREATE TABLE {table} (uid INT, ms INT) {mode};
             CREATE MATERIALIZED VIEW {table}_top AS SELECT uid, ms FROM (SELECT uid, ms, ROW_NUMBER() OVER (PARTITION BY uid ORDER BY ms DESC) AS rn FROM {table}) WHERE rn <= 2;
             CREATE MATERIALIZED VIEW {table}_max AS SELECT uid, max(ms) AS m FROM {table} GROUP BY uid;"
        ))
        .await?;
        for chunk in 0..3 {
            c.batch_execute(&format!(
                "INSERT INTO {table} SELECT value % 3, value FROM generate_series({}, {}); FLUSH",
                chunk * 1000 + 1,
                chunk * 1000 + 1000
            ))
            .await?;
        }
    }
    let (ao_top, _) = state_of(&c, "ao_top").await?;
    let (plain_top, _) = state_of(&c, "plain_top").await?;
    let (_, ao_max) = state_of(&c, "ao_max").await?;
    let (_, plain_max) = state_of(&c, "plain_max").await?;
    eprintln!("top-2 state: append-only {ao_top}, plain {plain_top}; max state bytes: append-only {ao_max}, plain {plain_max}");
    assert_eq!(ao_top, 6, "2 rows for each of 3 partitions");
    assert_eq!(plain_top, 3000);
    assert!(ao_max * 20 < plain_max, "max keeps one value per group");
    // Same answers either way.
    for v in ["top", "max"] {
        let a = c
            .query(&format!("SELECT * FROM ao_{v} ORDER BY 1, 2"), &[])
            .await?;
        let p = c
            .query(&format!("SELECT * FROM plain_{v} ORDER BY 1, 2"), &[])
            .await?;
        let a: Vec<(i32, i32)> = a.iter().map(|r| (r.get(0), r.get(1))).collect();
        let p: Vec<(i32, i32)> = p.iter().map(|r| (r.get(0), r.get(1))).collect();
        assert_eq!(a, p, "{v}");
    }
    Ok(())
}
