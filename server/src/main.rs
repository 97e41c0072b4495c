//! The `freshet` binary: a streaming SQL database server speaking the
//! PostgreSQL wire protocol.
//!
//! Layering: `server` (this crate: pgwire, sessions, statement dispatch,
//! catalog) -> `planner` -> `runtime` -> `storage`. See `docs/architecture.md`.

/// mimalloc instead of glibc's malloc: the engine allocates and frees
/// millions of small keys per epoch, and the commit thread frees what the
/// engine thread allocated (see `docs/architecture.md`).
#[global_allocator]
static GLOBAL: mimalloc::MiMalloc = mimalloc::MiMalloc;

/// `mi_option_purge_delay` in mimalloc's `mimalloc.h` (v2 and v3).
const MI_OPTION_PURGE_DELAY: libmimalloc_sys::mi_option_t = 15;

/// Returns freed memory to the OS at once rather than after mimalloc's
/// default 10 ms: an epoch frees its whole write set in one go, and keeping
/// it costs peak memory for no measurable speed.
fn tune_allocator() {
    // SAFETY: sets a process-wide option of the allocator; no pointers.
    unsafe { libmimalloc_sys::mi_option_set(MI_OPTION_PURGE_DELAY, 0) };
}

mod auth;
mod catalog;
mod colnames;
mod copy;
mod dialect;
mod error;
mod exec;
mod functions;
mod handler;
mod infoschema;
mod params;
mod pgcatalog;
mod pgfuncs;
mod pgkeys;
mod pgtext;
mod sinkddl;
mod sourceshow;
mod viewshow;

use std::net::SocketAddr;
use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

use anyhow::Context;
use clap::Parser;
use freshet_runtime::Engine;
use freshet_storage::Store;
use tokio::net::TcpListener;

/// Freshet: materialized views over tables and streams, kept fresh event by
/// event, queried over the PostgreSQL protocol.
#[derive(Debug, Parser)]
#[command(name = "freshet", version)]
struct Args {
    /// Address to accept PostgreSQL connections on.
    #[arg(long, default_value = "127.0.0.1:4566")]
    listen: SocketAddr,
    /// Directory holding all state (created if missing).
    #[arg(long, default_value = "./freshet-data")]
    data_dir: PathBuf,
    /// How often an epoch commits, e.g. `1s`, `250ms`.
    #[arg(long, default_value = "1s", value_parser = parse_duration)]
    checkpoint_interval: Duration,
    /// Memory for the operators' state caches, one budget shared by every
    /// operator of every view (least recently used entries are evicted
    /// first; evicted state stays in RocksDB): a byte size such as `64MiB`
    /// or `2GiB`. Default: a quarter of the machine's memory.
    #[arg(long, value_parser = parse_bytes)]
    state_cache_size: Option<u64>,
    /// `on` (default): an epoch is acknowledged (FLUSH returns) only after
    /// the write-ahead log reached the disk (`fdatasync`), so a machine
    /// crash loses nothing acknowledged. `off`: a process crash still loses
    /// nothing committed, a machine crash can lose the last epochs.
    #[arg(long, default_value = "on", value_parser = parse_on_off, action = clap::ArgAction::Set)]
    sync_commit: bool,
    /// A user allowed to connect, as `NAME:PASSWORD` (repeatable; also
    /// `CREATE USER ... PASSWORD`). Once any user exists, every connection
    /// must authenticate (SCRAM-SHA-256).
    #[arg(long = "user", value_name = "NAME:PASSWORD")]
    users: Vec<String>,
    /// PEM certificate chain: with `--tls-key`, clients may use TLS
    /// (`sslmode=require`); without, an SSLRequest is answered `N`.
    #[arg(long, requires = "tls_key")]
    tls_cert: Option<PathBuf>,
    /// PEM private key for `--tls-cert`.
    #[arg(long, requires = "tls_cert")]
    tls_key: Option<PathBuf>,
    /// Testing only: the materialized view of this name fails when it
    /// processes its first change (repeatable).
    #[arg(long, hide = true, value_name = "VIEW")]
    fail_view: Vec<String>,
}

/// The TLS acceptor for `--tls-cert` / `--tls-key`, if given.
fn tls_acceptor(args: &Args) -> anyhow::Result<Option<tokio_rustls::TlsAcceptor>> {
    use rustls_pki_types::pem::PemObject;
    use rustls_pki_types::{CertificateDer, PrivateKeyDer};
    let (Some(cert), Some(key)) = (&args.tls_cert, &args.tls_key) else {
        return Ok(None);
    };
    let certs = CertificateDer::pem_file_iter(cert)
        .with_context(|| format!("reading {}", cert.display()))?
        .collect::<Result<Vec<_>, _>>()
        .with_context(|| format!("parsing {}", cert.display()))?;
    let key = PrivateKeyDer::from_pem_file(key)
        .with_context(|| format!("reading the private key {}", key.display()))?;
    let mut config = tokio_rustls::rustls::ServerConfig::builder_with_provider(Arc::new(
        tokio_rustls::rustls::crypto::ring::default_provider(),
    ))
    .with_safe_default_protocol_versions()
    .context("TLS protocol versions")?
    .with_no_client_auth()
    .with_single_cert(certs, key)
    .context("the TLS certificate and key do not match")?;
    config.alpn_protocols = vec![b"postgresql".to_vec()];
    Ok(Some(tokio_rustls::TlsAcceptor::from(Arc::new(config))))
}

fn parse_duration(s: &str) -> Result<Duration, String> {
    let s = s.trim();
    let (num, unit) = s.split_at(
        s.find(|c: char| !c.is_ascii_digit() && c != '.')
            .unwrap_or(s.len()),
    );
    let n: f64 = num.parse().map_err(|_| format!("invalid duration {s:?}"))?;
    let secs = match unit.trim() {
        "" | "s" => n,
        "ms" => n / 1000.0,
        "m" | "min" => n * 60.0,
        other => return Err(format!("unknown duration unit {other:?} (use ms, s or m)")),
    };
    if secs <= 0.0 {
        return Err("duration must be positive".into());
    }
    Ok(Duration::from_secs_f64(secs))
}

fn parse_on_off(s: &str) -> Result<bool, String> {
    match s.to_ascii_lowercase().as_str() {
        "on" | "true" | "yes" | "1" => Ok(true),
        "off" | "false" | "no" | "0" => Ok(false),
        _ => Err(format!("expected on or off, got {s:?}")),
    }
}

/// A byte size: a number with an optional unit (`B`, `KiB`, `MiB`, `GiB`,
/// `TiB`, or `KB`/`MB`/`GB` as the same powers of two, as PostgreSQL does).
fn parse_bytes(s: &str) -> Result<u64, String> {
    let t = s.trim();
    let split = t
        .find(|c: char| !c.is_ascii_digit() && c != '.')
        .unwrap_or(t.len());
    let (num, unit) = t.split_at(split);
    let n: f64 = num
        .parse()
        .map_err(|_| format!("invalid byte size {s:?} (use e.g. 64MiB)"))?;
    let mult: u64 = match unit.trim().to_ascii_lowercase().as_str() {
        "" | "b" => 1,
        "k" | "kb" | "kib" => 1 << 10,
        "m" | "mb" | "mib" => 1 << 20,
        "g" | "gb" | "gib" => 1 << 30,
        "t" | "tb" | "tib" => 1 << 40,
        other => {
            return Err(format!(
                "unknown size unit {other:?} (use B, KiB, MiB, GiB)"
            ))
        }
    };
    let bytes = n * mult as f64;
    if !(1.0..=1e18).contains(&bytes) {
        return Err(format!("byte size out of range: {s:?}"));
    }
    Ok(bytes as u64)
}

/// A quarter of the machine's memory (`MemTotal` in `/proc/meminfo`), or
/// 1 GiB where that cannot be read.
fn default_state_cache_size() -> u64 {
    let total = std::fs::read_to_string("/proc/meminfo")
        .ok()
        .and_then(|m| {
            m.lines()
                .find(|l| l.starts_with("MemTotal:"))
                .and_then(|l| l.split_whitespace().nth(1)?.parse::<u64>().ok())
        })
        .map(|kib| kib * 1024);
    total.map_or(1 << 30, |t| t / 4)
}

fn main() -> anyhow::Result<()> {
    tune_allocator();
    let args = Args::parse();
    tracing_subscriber::fmt()
        .with_env_filter(
            tracing_subscriber::EnvFilter::try_from_default_env().unwrap_or_else(|_| "info".into()),
        )
        .with_writer(std::io::stderr)
        .with_ansi(std::io::IsTerminal::is_terminal(&std::io::stderr()))
        .init();
    let rt = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()?;
    rt.block_on(run(args))
}

async fn run(args: Args) -> anyhow::Result<()> {
    std::fs::create_dir_all(&args.data_dir)
        .with_context(|| format!("creating {}", args.data_dir.display()))?;
    let db = args.data_dir.join("db");
    let cache_size = args
        .state_cache_size
        .unwrap_or_else(default_state_cache_size);
    // RocksDB's block cache takes an eighth of the budget (at least 8 MiB),
    // the operators' caches the rest.
    let block_cache = (cache_size / 8).max(8 << 20);
    // Memtables (up to three) follow the budget too: an eighth of it, 8 to
    // 64 MiB each.
    let write_buffer = (cache_size / 8).clamp(8 << 20, 64 << 20);
    let store = Store::open_with(
        &db,
        &freshet_storage::StoreOptions {
            sync_commit: args.sync_commit,
            block_cache_bytes: block_cache as usize,
            write_buffer_bytes: write_buffer as usize,
        },
    )
    .with_context(|| format!("opening the store at {}", db.display()))?;
    let epoch = store.committed_epoch()?;
    tracing::info!(
        data_dir = %args.data_dir.display(),
        epoch = epoch.0,
        state_cache_bytes = cache_size,
        sync_commit = args.sync_commit,
        "opened store"
    );
    freshet_runtime::state::set_cache_budget(cache_size.saturating_sub(block_cache) as usize);
    if !args.fail_view.is_empty() {
        freshet_runtime::dataflow::set_failing_views(args.fail_view.clone());
    }
    let (engine, engine_thread) = Engine::start(store.clone())?;
    let server = Arc::new(
        exec::Server::open(store, engine.clone())
            .await
            .map_err(|e| anyhow::anyhow!("recovery failed: {}", e.sqlstate().1))?,
    );
    for u in &args.users {
        let (name, password) = u
            .split_once(':')
            .ok_or_else(|| anyhow::anyhow!("--user takes NAME:PASSWORD, got {u:?}"))?;
        server.users.set(name, Some(auth::Secret::new(password)));
    }
    if !server.users.is_empty() {
        tracing::info!(users = ?server.users.names(), "password authentication (SCRAM-SHA-256) required");
    }

    let ticker = engine.clone();
    let interval = args.checkpoint_interval;
    tokio::spawn(async move {
        let mut t = tokio::time::interval(interval);
        t.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        loop {
            t.tick().await;
            ticker.tick();
        }
    });

    let tls = tls_acceptor(&args)?;
    if tls.is_some() {
        tracing::info!("TLS enabled");
    }
    let listener = TcpListener::bind(args.listen)
        .await
        .with_context(|| format!("listening on {}", args.listen))?;
    tracing::info!(
        "freshet listening on {} (psql -h {} -p {} -U freshet -d freshet)",
        args.listen,
        args.listen.ip(),
        args.listen.port()
    );

    let mut sigterm = tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate())?;
    loop {
        tokio::select! {
            accepted = listener.accept() => {
                match accepted {
                    Ok((socket, _)) => {
                        let _ = socket.set_nodelay(true);
                        let handlers = handler::ConnHandlers::new(server.clone());
                        let tls = tls.clone();
                        tokio::spawn(async move {
                            if let Err(e) = pgwire::tokio::process_socket(socket, tls, handlers).await {
                                tracing::debug!("connection ended: {e}");
                            }
                        });
                    }
                    Err(e) => tracing::warn!("accept failed: {e}"),
                }
            }
            _ = tokio::signal::ctrl_c() => break,
            _ = sigterm.recv() => break,
        }
    }
    tracing::info!("shutting down");
    match server.engine().flush().await {
        Ok(e) => tracing::info!(epoch = e.0, "final epoch committed"),
        Err(e) => tracing::error!("final commit failed: {e}"),
    }
    drop(engine_thread);
    Ok(())
}
