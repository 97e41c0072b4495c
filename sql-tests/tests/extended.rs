//! The extended query protocol, as drivers use it: Parse/Bind/Describe/Execute
//! with typed parameters and binary results (tokio-postgres), prepared
//! statements run many times, and errors that leave the connection usable.

use anyhow::Result;
use freshet_sql_tests::TestServer;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn prepared_statements_with_parameters() -> Result<()> {
    let server = TestServer::start().await?;
    let client = server.connect().await?;
    client
        .batch_execute(
            "CREATE TABLE p (id INT PRIMARY KEY, name TEXT, score DOUBLE PRECISION, ok BOOLEAN, big BIGINT, small SMALLINT);
             CREATE MATERIALIZED VIEW pv AS SELECT ok, count(*) AS n, sum(big) AS total FROM p GROUP BY ok;",
        )
        .await?;
    let insert = client
        .prepare("INSERT INTO p VALUES ($1, $2, $3, $4, $5, $6)")
        .await?;
    for i in 0..10i32 {
        let n = client
            .execute(
                &insert,
                &[
                    &i,
                    &format!("n{i}"),
                    &(f64::from(i) / 2.0),
                    &(i % 2 == 0),
                    &(i64::from(i) * 1_000_000_000),
                    &(i as i16),
                ],
            )
            .await?;
        assert_eq!(n, 1);
    }
    client.batch_execute("FLUSH").await?;

    // Binary results with typed columns.
    let sel = client.prepare("SELECT id, name, score, ok, big, small FROM p WHERE id >= $1 AND name <> $2 ORDER BY id").await?;
    for _ in 0..7 {
        let rows = client.query(&sel, &[&7i32, &"n8"]).await?;
        let got: Vec<(i32, String, f64, bool, i64, i16)> = rows
            .iter()
            .map(|r| (r.get(0), r.get(1), r.get(2), r.get(3), r.get(4), r.get(5)))
            .collect();
        assert_eq!(
            got,
            vec![
                (7, "n7".into(), 3.5, false, 7_000_000_000, 7),
                (9, "n9".into(), 4.5, false, 9_000_000_000, 9)
            ]
        );
    }

    // UPDATE and DELETE with parameters, then the view over the extended protocol.
    assert_eq!(
        client
            .execute("UPDATE p SET big = big + $1 WHERE id = $2", &[&5i64, &1i32])
            .await?,
        1
    );
    assert_eq!(
        client
            .execute("DELETE FROM p WHERE id > $1", &[&7i32])
            .await?,
        2
    );
    client.batch_execute("FLUSH").await?;
    let rows = client
        .query("SELECT ok, n, total::bigint FROM pv ORDER BY ok", &[])
        .await?;
    let got: Vec<(bool, i64, i64)> = rows
        .iter()
        .map(|r| (r.get(0), r.get(1), r.get(2)))
        .collect();
    assert_eq!(
        got,
        vec![(false, 4, 16_000_000_005), (true, 4, 12_000_000_000)]
    );

    // An error in the extended protocol does not break the connection.
    let err = client
        .query("SELECT * FROM nope WHERE x = $1", &[&1i32])
        .await
        .unwrap_err();
    assert_eq!(err.code().map(|c| c.code()), Some("42P01"));
    let err = client
        .execute(&insert, &[&1i32, &"dup", &0.0f64, &true, &0i64, &0i16])
        .await
        .unwrap_err();
    assert_eq!(err.code().map(|c| c.code()), Some("23505"));
    let one: i64 = client
        .query_one("SELECT count(*) FROM p WHERE id = $1", &[&1i32])
        .await?
        .get(0);
    assert_eq!(one, 1);

    // NULL parameters and text parameters inferred from context.
    client
        .execute(
            "INSERT INTO p (id, name) VALUES ($1, $2)",
            &[&100i32, &None::<String>],
        )
        .await?;
    client.batch_execute("FLUSH").await?;
    let r = client
        .query_one(
            "SELECT name IS NULL, score FROM p WHERE id = $1",
            &[&100i32],
        )
        .await?;
    assert!(r.get::<_, bool>(0));
    assert_eq!(r.get::<_, Option<f64>>(1), None);
    Ok(())
}
