//! A real PostgreSQL for tests that use it as an oracle: a new cluster in a
//! temporary directory (`initdb`), started on a free loopback port with
//! `fsync=off`, removed when dropped. Run as root, the server runs as the
//! `postgres` user (PostgreSQL refuses root). The test command installs
//! Debian's `postgresql` package when no server is found.

use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use anyhow::{bail, Context, Result};
use tokio_postgres::Client;

/// The directory of `initdb` and `postgres`: `$FRESHET_PG_BIN`, else the
/// newest `/usr/lib/postgresql/<version>/bin`, else the `PATH`.
fn bin_dir() -> Result<PathBuf> {
    if let Ok(p) = std::env::var("FRESHET_PG_BIN") {
        return Ok(PathBuf::from(p));
    }
    let mut versions: Vec<(u32, PathBuf)> = std::fs::read_dir("/usr/lib/postgresql")
        .into_iter()
        .flatten()
        .filter_map(|e| e.ok())
        .filter_map(|e| {
            let v: u32 = e.file_name().to_string_lossy().parse().ok()?;
            let bin = e.path().join("bin");
            bin.join("initdb").exists().then_some((v, bin))
        })
        .collect();
    versions.sort();
    if let Some((_, bin)) = versions.pop() {
        return Ok(bin);
    }
    let found = std::env::var_os("PATH")
        .into_iter()
        .flat_map(|p| std::env::split_paths(&p).collect::<Vec<_>>())
        .find(|d| d.join("initdb").exists() && d.join("postgres").exists());
    found.context(
        "no PostgreSQL server found (initdb); ./scripts/test.sh installs Debian's postgresql package",
    )
}

fn is_root() -> bool {
    Command::new("id")
        .arg("-u")
        .output()
        .map(|o| String::from_utf8_lossy(&o.stdout).trim() == "0")
        .unwrap_or(false)
}

/// Runs `bin` as the `postgres` user when we are root.
fn command(bin: &Path, root: bool) -> Command {
    if root {
        let mut c = Command::new("runuser");
        c.args(["-u", "postgres", "--"]).arg(bin);
        c
    } else {
        Command::new(bin)
    }
}

/// A running PostgreSQL server.
pub struct PgServer {
    pub port: u16,
    dir: PathBuf,
    child: Option<Child>,
}

impl PgServer {
    pub async fn start() -> Result<PgServer> {
        let bin = bin_dir()?;
        let root = is_root();
        let nanos = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)?
            .subsec_nanos();
        let dir = std::env::temp_dir().join(format!("freshet-pg-{}-{nanos}", std::process::id()));
        std::fs::create_dir_all(&dir)?;
        if root {
            let ok = Command::new("chown")
                .args(["postgres:postgres"])
                .arg(&dir)
                .status()?
                .success();
            if !ok {
                bail!("cannot hand {} to the postgres user", dir.display());
            }
        }
        let data = dir.join("data");
        let out = command(&bin.join("initdb"), root)
            .args([
                "-A",
                "trust",
                "-U",
                "postgres",
                "-E",
                "UTF8",
                "--no-sync",
                "--locale=C.UTF-8",
                "-D",
            ])
            .arg(&data)
            .output()
            .context("running initdb")?;
        if !out.status.success() {
            bail!("initdb failed: {}", String::from_utf8_lossy(&out.stderr));
        }
        let port = std::net::TcpListener::bind("127.0.0.1:0")?
            .local_addr()?
            .port();
        let log = std::fs::File::create(dir.join("postgres.log"))?;
        let child = command(&bin.join("postgres"), root)
            .arg("-D")
            .arg(&data)
            .args([
                "-p",
                &port.to_string(),
                "-c",
                "listen_addresses=127.0.0.1",
                "-c",
                "fsync=off",
            ])
            .args(["-c", "synchronous_commit=off", "-c", "full_page_writes=off"])
            .arg("-k")
            .arg(&dir)
            .stdout(Stdio::null())
            .stderr(log)
            .spawn()
            .context("starting postgres")?;
        let mut s = PgServer {
            port,
            dir,
            child: Some(child),
        };
        let deadline = Instant::now() + Duration::from_secs(30);
        loop {
            if s.connect().await.is_ok() {
                return Ok(s);
            }
            if let Some(c) = s.child.as_mut() {
                if let Some(st) = c.try_wait()? {
                    bail!("postgres exited during start ({st}): {}", s.log());
                }
            }
            if Instant::now() > deadline {
                bail!(
                    "postgres did not accept connections within 30 s: {}",
                    s.log()
                );
            }
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
    }

    pub fn log(&self) -> String {
        std::fs::read_to_string(self.dir.join("postgres.log")).unwrap_or_default()
    }

    pub async fn connect(&self) -> Result<Client> {
        crate::connect_loopback(self.port, "postgres").await
    }

    /// Creates the database `name` and connects to it.
    pub async fn new_database(&self, name: &str) -> Result<Client> {
        self.connect()
            .await?
            .simple_query(&format!("CREATE DATABASE {name}"))
            .await?;
        let conf = format!(
            "host=127.0.0.1 port={} user=postgres dbname={name} connect_timeout=5",
            self.port
        );
        let (client, conn) = tokio_postgres::connect(&conf, tokio_postgres::NoTls).await?;
        tokio::spawn(async move {
            let _ = conn.await;
        });
        Ok(client)
    }
}

impl Drop for PgServer {
    fn drop(&mut self) {
        // Signal the postmaster itself: under `runuser` our child is not it.
        let pid = std::fs::read_to_string(self.dir.join("data/postmaster.pid"))
            .ok()
            .and_then(|s| s.lines().next().map(str::to_string));
        if let Some(pid) = pid {
            let _ = Command::new("kill").args(["-QUIT", &pid]).status();
        }
        if let Some(mut c) = self.child.take() {
            let deadline = Instant::now() + Duration::from_secs(10);
            while matches!(c.try_wait(), Ok(None)) && Instant::now() < deadline {
                std::thread::sleep(Duration::from_millis(50));
            }
            let _ = c.kill();
            let _ = c.wait();
        }
        let _ = std::fs::remove_dir_all(&self.dir);
    }
}
