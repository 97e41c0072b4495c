//! Real clients against a live server loaded with `clients/schema.sql` (a
//! table with a comment, a view and a materialized view): psql's
//! meta-commands, the Python drivers and tools (psycopg2, psycopg 3,
//! SQLAlchemy's Inspector, pandas; `clients/check_clients.py`), pgjdbc's
//! DatabaseMetaData (`clients/CheckJdbc.java`), node-postgres
//! (`clients/check_node_pg.js`), psqlODBC (`clients/check_odbc.py`),
//! SQLAlchemy 1.4 (`clients/check_sqlalchemy14.py`), Metabase's and
//! DBeaver's catalog statements replayed through pgjdbc
//! (`clients/ReplayJdbc.java`) and password authentication.
//! `scripts/test.sh` installs psql, the JDBC driver, node's `pg` and the
//! Python packages.

use std::path::PathBuf;
use std::process::Command;

use anyhow::{bail, Context, Result};
use freshet_sql_tests::{query_rows, TestServer};

fn clients_dir() -> PathBuf {
    let manifest =
        std::env::var("CARGO_MANIFEST_DIR").unwrap_or_else(|_| env!("CARGO_MANIFEST_DIR").into());
    PathBuf::from(manifest).join("clients")
}

async fn loaded_server() -> Result<TestServer> {
    let server = TestServer::start().await?;
    let c = server.connect().await?;
    c.batch_execute(&std::fs::read_to_string(clients_dir().join("schema.sql"))?)
        .await?;
    Ok(server)
}

/// Runs `psql -X -c cmd` (one `-c` per line of `cmd`) and returns its output.
fn psql(server: &TestServer, cmd: &str) -> Result<String> {
    let bin = std::env::var("FRESHET_PSQL").unwrap_or_else(|_| "psql".into());
    let out = Command::new(&bin)
        .args(["-X", "-v", "ON_ERROR_STOP=1"])
        .arg(format!(
            "host=127.0.0.1 port={} user=freshet dbname=freshet",
            server.port
        ))
        .args(cmd.lines().flat_map(|l| ["-c", l]))
        .output()
        .with_context(|| {
            format!("running {bin} (install postgresql-client; scripts/test.sh does)")
        })?;
    let text = format!(
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    if !out.status.success() || text.contains("ERROR") {
        bail!("psql {cmd} failed:\n{text}");
    }
    Ok(text)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn psql_meta_commands_show_freshet_objects() -> Result<()> {
    let server = loaded_server().await?;
    let checks: &[(&str, &[&str])] = &[
        ("\\l", &["freshet"]),
        ("\\dn", &["public"]),
        ("\\dt", &["bids", "table"]),
        ("\\dv", &["high_bids", "view"]),
        ("\\dm", &["avg_price", "materialized view"]),
        ("\\d", &["bids", "high_bids", "avg_price"]),
        (
            "\\d bids",
            &[
                "Table \"public.bids\"",
                "auction",
                "bigint",
                "timestamp without time zone",
            ],
        ),
        (
            "\\d+ avg_price",
            &[
                "Materialized view \"public.avg_price\"",
                "num_bids",
                "numeric",
                "View definition:",
                "GROUP BY auction",
            ],
        ),
        ("\\d high_bids", &["View \"public.high_bids\"", "price"]),
        (
            "\\d auctions",
            &[
                "not null",
                "Indexes:",
                "\"auctions_pkey\" PRIMARY KEY, btree (id, seller)",
            ],
        ),
        ("\\di", &["auctions_pkey", "index", "auctions"]),
        (
            "\\d auctions_pkey",
            &[
                "Index \"public.auctions_pkey\"",
                "primary key, btree, for table \"public.auctions\"",
            ],
        ),
        (
            "COPY (SELECT auction, price FROM bids WHERE auction = 2 ORDER BY price) TO STDOUT",
            &["2\t200\n2\t220"],
        ),
        ("\\copy auctions TO STDOUT WITH (FORMAT csv)", &["7,1,10"]),
        ("\\dt+", &["Nexmark-style bid stream"]),
        ("\\df", &["List of functions"]),
        (
            "\\sv high_bids",
            &["CREATE OR REPLACE VIEW public.high_bids AS", "price > 100"],
        ),
        (
            "\\x\nSELECT * FROM avg_price WHERE auction = 2",
            &["-[ RECORD 1 ]", "num_bids  | 2"],
        ),
    ];
    let mut failed = Vec::new();
    for (cmd, want) in checks {
        match psql(&server, cmd) {
            Ok(out) => {
                for w in *want {
                    if !out.contains(w) {
                        failed.push(format!("{cmd}: missing {w:?} in\n{out}"));
                    }
                }
            }
            Err(e) => failed.push(format!("{e:#}")),
        }
    }
    if !failed.is_empty() {
        bail!("{}", failed.join("\n"));
    }
    Ok(())
}

/// psql's `\copy ... FROM` (COPY FROM STDIN) in CSV and text format, and
/// its errors.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn psql_copy_from_a_file() -> Result<()> {
    let server = loaded_server().await?;
    let dir = std::env::temp_dir().join(format!("freshet-copy-{}", std::process::id()));
    std::fs::create_dir_all(&dir)?;
    let csv = dir.join("items.csv");
    std::fs::write(
        &csv,
        "id,name,at,ok,amount\n1,\"tea, green\",2024-01-01 10:00:00,t,2.50\n2,,2024-01-02 11:30:00,false,10\n",
    )?;
    let text = dir.join("items.txt");
    std::fs::write(&text, "3\tline\\nbreak\t\\N\tt\t0.1\n")?;
    let bad = dir.join("bad.txt");
    std::fs::write(&bad, "4\tonly two\n")?;
    psql(
        &server,
        "CREATE TABLE items (id bigint PRIMARY KEY, name text, at timestamp, ok boolean, amount numeric(10, 2))",
    )?;
    let out = psql(
        &server,
        &format!(
            "\\copy items FROM '{}' WITH (FORMAT csv, HEADER)\n\\copy items (id, name, at, ok, amount) FROM '{}'\nFLUSH\n\\pset format unaligned\nSELECT id, name, at, ok, amount FROM items ORDER BY id",
            csv.display(),
            text.display()
        ),
    )?;
    for want in [
        "COPY 2",
        "COPY 1",
        "1|tea, green|2024-01-01 10:00:00|t|2.50\n",
        "2||2024-01-02 11:30:00|f|10.00\n",
        "3|line\nbreak||t|0.10\n",
    ] {
        if !out.contains(want) {
            bail!("missing {want:?} in\n{out}");
        }
    }
    let err = psql(&server, &format!("\\copy items FROM '{}'", bad.display()))
        .err()
        .context("a short row was accepted")?;
    if !format!("{err:#}").contains("missing data for column \"at\"") {
        bail!("unexpected error: {err:#}");
    }
    let _ = std::fs::remove_dir_all(&dir);
    Ok(())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn python_drivers_and_tools() -> Result<()> {
    let mut cmd = Command::new(venv_python("FRESHET_CLIENT_PYTHON", "venv"));
    cmd.arg(clients_dir().join("check_clients.py"));
    run_check(cmd, "Python client").await
}

/// The Python of a client venv: `$var`, or the one `scripts/test.sh` makes.
fn venv_python(var: &str, venv: &str) -> String {
    std::env::var(var).unwrap_or_else(|_| {
        let home = std::env::var("HOME").unwrap_or_default();
        format!("{home}/.cache/freshet-tools/{venv}/bin/python")
    })
}

/// Runs a client check program and fails with its output if it fails.
async fn run_check(cmd: Command, what: &str) -> Result<()> {
    run_check_with(cmd, what, &[]).await
}

/// Like [`run_check`], with `extra` arguments after the connection's.
async fn run_check_with(mut cmd: Command, what: &str, extra: &[PathBuf]) -> Result<()> {
    let server = loaded_server().await?;
    let out = cmd
        .args(["127.0.0.1", &server.port.to_string(), "freshet", "freshet"])
        .args(extra)
        .output()
        .with_context(|| {
            format!("running the {what} checks (scripts/test.sh installs what they need)")
        })?;
    let text = format!(
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    eprintln!("{text}");
    if !out.status.success() {
        bail!(
            "{what} checks failed:\n{text}\nserver log:\n{}",
            server.log()
        );
    }
    Ok(())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sqlalchemy_14_as_superset_uses_it() -> Result<()> {
    let mut cmd = Command::new(venv_python("FRESHET_CLIENT_PYTHON14", "venv14"));
    cmd.arg(clients_dir().join("check_sqlalchemy14.py"));
    run_check(cmd, "SQLAlchemy 1.4").await
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn psqlodbc_catalog_functions() -> Result<()> {
    let mut cmd = Command::new(venv_python("FRESHET_CLIENT_PYTHON", "venv"));
    cmd.arg(clients_dir().join("check_odbc.py"));
    run_check(cmd, "psqlODBC").await
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn pgjdbc_metadata_and_prepared_statements() -> Result<()> {
    let jar = std::env::var("FRESHET_PGJDBC_JAR")
        .unwrap_or_else(|_| "/usr/share/java/postgresql.jar".into());
    let mut cmd = Command::new("java");
    cmd.arg("-cp")
        .arg(jar)
        .arg(clients_dir().join("CheckJdbc.java"));
    run_check(cmd, "pgjdbc").await
}

/// Metabase's sync and DBeaver's navigator, replayed statement by statement
/// through pgjdbc (`clients/replay/*.sql`), each result checked.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn metabase_and_dbeaver_replays() -> Result<()> {
    let jar = std::env::var("FRESHET_PGJDBC_JAR")
        .unwrap_or_else(|_| "/usr/share/java/postgresql.jar".into());
    for tool in ["metabase", "dbeaver"] {
        let mut cmd = Command::new("java");
        cmd.arg("-cp")
            .arg(&jar)
            .arg(clients_dir().join("ReplayJdbc.java"));
        let file = clients_dir().join("replay").join(format!("{tool}.sql"));
        run_check_with(cmd, &format!("{tool} replay"), &[file]).await?;
    }
    Ok(())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn node_postgres() -> Result<()> {
    let modules = std::env::var("FRESHET_NODE_MODULES").unwrap_or_else(|_| {
        let home = std::env::var("HOME").unwrap_or_default();
        format!("{home}/.cache/freshet-tools/node/node_modules")
    });
    let mut cmd = Command::new("node");
    cmd.env("NODE_PATH", modules)
        .arg(clients_dir().join("check_node_pg.js"));
    run_check(cmd, "node-postgres").await
}

async fn login(server: &TestServer, user: &str, password: &str) -> Result<tokio_postgres::Client> {
    let conf = format!(
        "host=127.0.0.1 port={} user={user} password={password} dbname=freshet connect_timeout=5",
        server.port
    );
    let (client, conn) = tokio_postgres::connect(&conf, tokio_postgres::NoTls).await?;
    tokio::spawn(async move {
        let _ = conn.await;
    });
    Ok(client)
}

fn sqlstate(e: &anyhow::Error) -> String {
    e.downcast_ref::<tokio_postgres::Error>()
        .and_then(|e| e.code())
        .map(|c| c.code().to_string())
        .unwrap_or_else(|| format!("{e:#}"))
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn password_authentication() -> Result<()> {
    let mut server = TestServer::start_with(&["--user", "alice:s3cret"]).await?;
    let alice = login(&server, "alice", "s3cret").await?;
    assert_eq!(
        query_rows(&alice, "SELECT 1").await?,
        vec![vec!["1".to_string()]]
    );
    for (user, pw) in [("alice", "wrong"), ("nobody", "s3cret"), ("alice", "")] {
        match login(&server, user, pw).await {
            Ok(_) => bail!("{user} logged in with password {pw:?}"),
            Err(e) => assert_eq!(sqlstate(&e), "28P01", "{user}/{pw}"),
        }
    }
    // Users created in SQL persist across restarts.
    alice
        .batch_execute("CREATE USER bob WITH PASSWORD 'b0b'")
        .await?;
    assert!(login(&server, "bob", "b0b").await.is_ok());
    server.kill_and_restart().await?;
    let bob = login(&server, "bob", "b0b").await?;
    bob.batch_execute("ALTER USER bob PASSWORD 'new'").await?;
    assert_eq!(
        sqlstate(
            &login(&server, "bob", "b0b")
                .await
                .err()
                .context("old password accepted")?
        ),
        "28P01"
    );
    assert!(login(&server, "bob", "new").await.is_ok());
    bob.batch_execute("DROP USER bob").await?;
    assert_eq!(
        sqlstate(
            &login(&server, "bob", "new")
                .await
                .err()
                .context("dropped user accepted")?
        ),
        "28P01"
    );
    Ok(())
}

/// Runs psql with a full connection string; returns (success, output).
fn psql_conn(conn: &str, cmds: &[&str]) -> Result<(bool, String)> {
    let bin = std::env::var("FRESHET_PSQL").unwrap_or_else(|_| "psql".into());
    let out = Command::new(&bin)
        .args(["-X", conn])
        .args(cmds.iter().flat_map(|c| ["-c", c]))
        .output()
        .with_context(|| format!("running {bin}"))?;
    Ok((
        out.status.success(),
        format!(
            "{}{}",
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        ),
    ))
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn tls_when_a_certificate_is_configured() -> Result<()> {
    // A self-signed certificate for this run.
    let dir = std::env::temp_dir().join(format!("freshet-tls-{}", std::process::id()));
    std::fs::create_dir_all(&dir)?;
    let (cert, key) = (dir.join("cert.pem"), dir.join("key.pem"));
    let made = Command::new("openssl")
        .args([
            "req",
            "-x509",
            "-newkey",
            "rsa:2048",
            "-nodes",
            "-days",
            "2",
            "-subj",
            "/CN=127.0.0.1",
        ])
        .arg("-keyout")
        .arg(&key)
        .arg("-out")
        .arg(&cert)
        .output()
        .context("running openssl (scripts/test.sh installs it)")?;
    if !made.status.success() {
        bail!("openssl failed: {}", String::from_utf8_lossy(&made.stderr));
    }
    let (cert, key) = (cert.display().to_string(), key.display().to_string());
    let server = TestServer::start_with(&["--tls-cert", &cert, "--tls-key", &key]).await?;
    let conn = |mode: &str| {
        format!(
            "host=127.0.0.1 port={} user=freshet dbname=freshet sslmode={mode}",
            server.port
        )
    };
    let (ok, out) = psql_conn(&conn("require"), &["SELECT 41 + 1 AS answer", "\\conninfo"])?;
    if !ok || !out.contains("42") || !out.contains("SSL connection") {
        bail!("TLS connection failed:\n{out}");
    }
    let (ok, out) = psql_conn(&conn("disable"), &["SELECT 1 AS plain"])?;
    if !ok {
        bail!("a plain connection to a TLS-enabled server failed:\n{out}");
    }
    // Without a certificate the server answers N, and sslmode=require fails.
    let plain = TestServer::start().await?;
    let (ok, out) = psql_conn(
        &format!(
            "host=127.0.0.1 port={} user=freshet dbname=freshet sslmode=require",
            plain.port
        ),
        &["SELECT 1"],
    )?;
    if ok || !out.to_lowercase().contains("ssl") {
        bail!("sslmode=require against a server without TLS should fail:\n{out}");
    }
    let _ = std::fs::remove_dir_all(&dir);
    Ok(())
}

/// SUBSCRIBE from psycopg 3's server-side cursor (`clients/check_subscribe.py`).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn subscribe_from_a_psycopg_server_cursor() -> Result<()> {
    let mut cmd = Command::new(venv_python("FRESHET_CLIENT_PYTHON", "venv"));
    cmd.arg(clients_dir().join("check_subscribe.py"));
    run_check(cmd, "SUBSCRIBE (psycopg)").await
}

/// `COPY (SUBSCRIBE v) TO STDOUT` in psql: the snapshot, then each change
/// as it commits (psql prints copy data as it arrives).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn subscribe_through_psql_copy_to_stdout() -> Result<()> {
    use std::io::BufRead;
    let server = TestServer::start().await?;
    let c = server.connect().await?;
    c.batch_execute(
        "CREATE TABLE ct (id int PRIMARY KEY, g int);
         INSERT INTO ct VALUES (1, 1), (2, 5);
         CREATE MATERIALIZED VIEW cm AS SELECT g, count(*) AS n FROM ct GROUP BY g;
         FLUSH;",
    )
    .await?;
    let bin = std::env::var("FRESHET_PSQL").unwrap_or_else(|_| "psql".into());
    // psql's stdout is block-buffered into a pipe: stdbuf makes it write
    // each line as it comes, as it does on a terminal.
    let mut child = Command::new("stdbuf")
        .args(["-o0", &bin, "-X", "-v", "ON_ERROR_STOP=1"])
        .arg(format!(
            "host=127.0.0.1 port={} user=freshet dbname=freshet",
            server.port
        ))
        .args(["-c", "COPY (SUBSCRIBE cm) TO STDOUT"])
        .stdout(std::process::Stdio::piped())
        .spawn()
        .context("running psql")?;
    let out = child.stdout.take().context("psql stdout")?;
    let (tx, rx) = std::sync::mpsc::channel::<String>();
    std::thread::spawn(move || {
        for line in std::io::BufReader::new(out).lines().map_while(|l| l.ok()) {
            if tx.send(line).is_err() {
                break;
            }
        }
    });
    let take = |n: usize| -> Result<Vec<Vec<String>>> {
        let mut got = Vec::new();
        for _ in 0..n {
            let l = rx
                .recv_timeout(std::time::Duration::from_secs(20))
                .context("a COPY line from psql")?;
            got.push(l.split('\t').map(str::to_string).collect());
        }
        got.sort_by(|a: &Vec<String>, b| a[1..].cmp(&b[1..]));
        Ok(got)
    };
    let snap = take(2)?;
    assert_eq!(
        snap.iter().map(|r| r[1..].to_vec()).collect::<Vec<_>>(),
        vec![vec!["1", "1", "1"], vec!["1", "5", "1"]]
    );
    c.batch_execute("INSERT INTO ct VALUES (3, 1); FLUSH;")
        .await?;
    let change = take(2)?;
    assert_eq!(
        change.iter().map(|r| r[1..].to_vec()).collect::<Vec<_>>(),
        vec![vec!["-1", "1", "1"], vec!["1", "1", "2"]]
    );
    let (e0, e1): (i64, i64) = (snap[0][0].parse()?, change[0][0].parse()?);
    assert!(
        e1 > e0 && change[1][0] == change[0][0],
        "{snap:?} {change:?}"
    );
    let _ = child.kill();
    let _ = child.wait();
    // The server goes on after the client left.
    assert_eq!(
        query_rows(&c, "SELECT n FROM cm WHERE g = 1").await?,
        vec![vec!["2".to_string()]]
    );
    Ok(())
}
