//! A real Kafka-protocol broker (Tansu) for tests, on a free loopback port,
//! and a producer built on librdkafka.

use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use anyhow::{bail, Context, Result};
use rdkafka::admin::{AdminClient, AdminOptions, NewPartitions, NewTopic, TopicReplication};
use rdkafka::client::ClientContext;
use rdkafka::client::DefaultClientContext;
use rdkafka::config::ClientConfig;
use rdkafka::error::{KafkaError, RDKafkaErrorCode};
use rdkafka::producer::{BaseProducer, BaseRecord, DeliveryResult, Producer, ProducerContext};
use rdkafka::util::Timeout;
use std::sync::atomic::{AtomicU64, Ordering};

/// Where the `tansu` binary is: `$TANSU_BIN`, the tools cache the test
/// command installs into, or `PATH`.
pub fn tansu_bin() -> Result<PathBuf> {
    if let Ok(p) = std::env::var("TANSU_BIN") {
        return Ok(PathBuf::from(p));
    }
    if let Ok(home) = std::env::var("HOME") {
        let p = PathBuf::from(home).join(".cache/freshet-tools/bin/tansu");
        if p.exists() {
            return Ok(p);
        }
    }
    let out = Command::new("sh")
        .arg("-c")
        .arg("command -v tansu")
        .output()
        .context("looking for tansu")?;
    let s = String::from_utf8_lossy(&out.stdout).trim().to_string();
    if s.is_empty() {
        bail!("the tansu broker is not installed; run ./scripts/test.sh, which installs it");
    }
    Ok(PathBuf::from(s))
}

/// A broker process owned by a test; killed on drop.
///
/// By default it stores its log in SQLite (`sqlite://`) in a temporary
/// directory, so it survives a restart. Tansu 0.6's storage engines each
/// have a flaw a test must steer around:
/// - in memory (`memory://`), a fetch at an offset inside a record batch
///   skips the rest of that batch, which loses records for any consumer that
///   resumes at an exact offset (every restart of a Freshet reader);
/// - in SQLite, a record larger than the broker's 5 MiB fetch cap is never
///   returned, so a consumer stops at it.
///
/// [`Broker::start_in_memory`] is for the one test that needs records over
/// 5 MiB and never restarts its readers.
pub struct Broker {
    child: Option<Child>,
    pub port: u16,
    dir: PathBuf,
    memory: bool,
}

fn free_port() -> Result<u16> {
    let l = std::net::TcpListener::bind("127.0.0.1:0")?;
    Ok(l.local_addr()?.port())
}

impl Broker {
    /// Starts a broker on a free loopback port.
    pub fn start() -> Result<Broker> {
        Self::start_with(false)
    }

    /// Starts a broker that keeps its log in memory (see the type's docs).
    pub fn start_in_memory() -> Result<Broker> {
        Self::start_with(true)
    }

    fn start_with(memory: bool) -> Result<Broker> {
        let port = free_port()?;
        let dir = std::env::temp_dir().join(format!("freshet-tansu-{}-{port}", std::process::id()));
        std::fs::create_dir_all(&dir)?;
        let mut b = Broker {
            child: None,
            port,
            dir,
            memory,
        };
        b.spawn()?;
        Ok(b)
    }

    fn spawn(&mut self) -> Result<()> {
        let url = format!("tcp://127.0.0.1:{}", self.port);
        let storage = if self.memory {
            "memory://tansu/"
        } else {
            "sqlite://tansu.db"
        };
        let log = std::fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(self.dir.join("broker.log"))?;
        let child = Command::new(tansu_bin()?)
            .args([
                "broker",
                "--listener-url",
                &url,
                "--advertised-listener-url",
                &url,
                "--storage-engine",
                storage,
            ])
            .current_dir(&self.dir)
            .stdin(Stdio::null())
            .stdout(log.try_clone()?)
            .stderr(log)
            .spawn()
            .context("starting tansu")?;
        self.child = Some(child);
        let deadline = Instant::now() + Duration::from_secs(30);
        while std::net::TcpStream::connect(("127.0.0.1", self.port)).is_err() {
            if Instant::now() > deadline {
                bail!("tansu did not start listening:\n{}", self.log());
            }
            std::thread::sleep(Duration::from_millis(50));
        }
        Ok(())
    }

    pub fn addr(&self) -> String {
        format!("127.0.0.1:{}", self.port)
    }

    pub fn log(&self) -> String {
        std::fs::read_to_string(self.dir.join("broker.log")).unwrap_or_default()
    }

    /// Stops the broker process (SIGKILL).
    pub fn stop(&mut self) {
        if let Some(mut c) = self.child.take() {
            let _ = c.kill();
            let _ = c.wait();
        }
    }

    /// Starts it again on the same port and storage.
    pub fn restart(&mut self) -> Result<()> {
        self.stop();
        self.spawn()
    }

    fn admin(&self) -> Result<AdminClient<DefaultClientContext>> {
        Ok(ClientConfig::new()
            .set("bootstrap.servers", self.addr())
            .set("log_level", "3")
            .create()?)
    }

    /// Creates a topic with `partitions` partitions and waits until its
    /// metadata shows them.
    pub async fn create_topic(&self, name: &str, partitions: i32) -> Result<()> {
        let admin = self.admin()?;
        let t = NewTopic::new(name, partitions, TopicReplication::Fixed(1));
        let r = admin
            .create_topics(
                [&t],
                &AdminOptions::new().operation_timeout(Some(Duration::from_secs(10))),
            )
            .await?;
        for x in r {
            if let Err((topic, e)) = x {
                if e != RDKafkaErrorCode::TopicAlreadyExists {
                    bail!("creating topic {topic}: {e}");
                }
            }
        }
        self.wait_partitions(name, partitions as usize)
    }

    /// Grows a topic to `total` partitions. Tansu 0.6 does not implement
    /// CreatePartitions, so when the broker refuses it the partitions are
    /// added to the broker's own store while it is briefly stopped (what the
    /// API would do), and it is started again.
    pub async fn add_partitions(&mut self, name: &str, total: usize) -> Result<()> {
        let admin = self.admin()?;
        let p = NewPartitions::new(name, total);
        let r = admin
            .create_partitions(
                [&p],
                &AdminOptions::new().operation_timeout(Some(Duration::from_secs(10))),
            )
            .await;
        let unsupported = match r {
            Ok(results) => match results.into_iter().next() {
                Some(Err((_, RDKafkaErrorCode::UnsupportedVersion)))
                | Some(Err((_, RDKafkaErrorCode::InvalidRequest))) => true,
                Some(Err((topic, e))) => bail!("adding partitions to {topic}: {e}"),
                _ => false,
            },
            Err(KafkaError::AdminOp(RDKafkaErrorCode::UnsupportedFeature)) => true,
            Err(e) => bail!("adding partitions to {name}: {e}"),
        };
        if unsupported {
            self.stop();
            let script = r#"
import sqlite3, sys
db = sqlite3.connect(sys.argv[1])
name, total = sys.argv[2], int(sys.argv[3])
tid, cur = db.execute("select id, partitions from topic where name = ?", (name,)).fetchone()
for p in range(cur, total):
    db.execute("insert into topition (topic, partition) values (?, ?)", (tid, p))
    tp = db.execute("select id from topition where topic = ? and partition = ?", (tid, p)).fetchone()[0]
    db.execute("insert into watermark (topition) values (?)", (tp,))
db.execute("update topic set partitions = ? where id = ?", (total, tid))
db.commit()
"#;
            let out = Command::new("python3")
                .arg("-c")
                .arg(script)
                .arg(self.dir.join("tansu.db"))
                .arg(name)
                .arg(total.to_string())
                .output()
                .context("running python3 to grow the topic")?;
            if !out.status.success() {
                bail!(
                    "growing topic {name} in the broker store failed: {}",
                    String::from_utf8_lossy(&out.stderr)
                );
            }
            self.spawn()?;
        }
        self.wait_partitions(name, total)
    }

    fn wait_partitions(&self, name: &str, n: usize) -> Result<()> {
        let consumer: rdkafka::consumer::BaseConsumer = ClientConfig::new()
            .set("bootstrap.servers", self.addr())
            .set("log_level", "3")
            .create()?;
        let deadline = Instant::now() + Duration::from_secs(20);
        loop {
            use rdkafka::consumer::Consumer;
            if let Ok(md) = consumer.fetch_metadata(Some(name), Duration::from_secs(2)) {
                if md
                    .topics()
                    .iter()
                    .any(|t| t.name() == name && t.error().is_none() && t.partitions().len() >= n)
                {
                    return Ok(());
                }
            }
            if Instant::now() > deadline {
                bail!("topic {name} did not reach {n} partitions");
            }
            std::thread::sleep(Duration::from_millis(100));
        }
    }

    /// A synchronous producer.
    pub fn producer(&self) -> Result<TestProducer> {
        Self::producer_for(&self.addr())
    }

    /// A producer for the broker at `addr` (for use from other threads).
    pub fn producer_for(addr: &str) -> Result<TestProducer> {
        let p: BaseProducer<Deliveries> = ClientConfig::new()
            .set("bootstrap.servers", addr)
            .set("linger.ms", "5")
            .set("message.max.bytes", "16000000")
            .set("log_level", "3")
            .create_with_context(Deliveries::default())?;
        Ok(TestProducer { p })
    }
}

impl Drop for Broker {
    fn drop(&mut self) {
        self.stop();
        let _ = std::fs::remove_dir_all(&self.dir);
    }
}

/// Counts records the broker did not accept.
#[derive(Default)]
pub struct Deliveries {
    failed: AtomicU64,
}

impl ClientContext for Deliveries {}

impl ProducerContext for Deliveries {
    type DeliveryOpaque = ();
    fn delivery(&self, r: &DeliveryResult<'_>, _: ()) {
        if r.is_err() {
            self.failed.fetch_add(1, Ordering::Relaxed);
        }
    }
}

/// Produces records, retrying while librdkafka's queue is full.
pub struct TestProducer {
    p: BaseProducer<Deliveries>,
}

impl TestProducer {
    pub fn send(
        &self,
        topic: &str,
        partition: Option<i32>,
        key: Option<&[u8]>,
        payload: Option<&[u8]>,
    ) -> Result<()> {
        loop {
            let mut r: BaseRecord<'_, [u8], [u8]> = BaseRecord::to(topic);
            if let Some(p) = partition {
                r = r.partition(p);
            }
            if let Some(k) = key {
                r = r.key(k);
            }
            if let Some(v) = payload {
                r = r.payload(v);
            }
            match self.p.send(r) {
                Ok(()) => return Ok(()),
                Err((KafkaError::MessageProduction(RDKafkaErrorCode::QueueFull), _)) => {
                    self.p.poll(Duration::from_millis(10));
                }
                Err((e, _)) => bail!("produce failed: {e}"),
            }
        }
    }

    pub fn send_str(&self, topic: &str, partition: Option<i32>, payload: &str) -> Result<()> {
        self.send(topic, partition, None, Some(payload.as_bytes()))
    }

    /// Waits until every record sent so far is acknowledged.
    pub fn flush(&self) -> Result<()> {
        self.p
            .flush(Timeout::After(Duration::from_secs(60)))
            .context("flushing the producer")?;
        let failed = self.p.context().failed.load(Ordering::Relaxed);
        if failed > 0 {
            bail!("{failed} records were not delivered");
        }
        Ok(())
    }
}
