//! A real Apache Kafka broker (single-node KRaft, from the jars that
//! `scripts/install-kafka.sh` resolves from Maven Central) for tests, on free
//! loopback ports, and a producer built on librdkafka.

use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{mpsc, Mutex, OnceLock};
use std::time::{Duration, Instant};

use anyhow::{bail, Context, Result};
use rdkafka::admin::{AdminClient, AdminOptions, NewPartitions, NewTopic, TopicReplication};
use rdkafka::client::ClientContext;
use rdkafka::client::DefaultClientContext;
use rdkafka::config::ClientConfig;
use rdkafka::consumer::{BaseConsumer, Consumer};
use rdkafka::error::{KafkaError, RDKafkaErrorCode};
use rdkafka::producer::{BaseProducer, BaseRecord, DeliveryResult, Producer, ProducerContext};
use rdkafka::util::Timeout;

/// The directory holding the broker's jars: `$FRESHET_KAFKA_LIBS`, else
/// what `scripts/install-kafka.sh` prints (it installs them when missing).
pub fn kafka_libs() -> Result<PathBuf> {
    static LIBS: OnceLock<std::result::Result<PathBuf, String>> = OnceLock::new();
    LIBS.get_or_init(|| {
        if let Ok(p) = std::env::var("FRESHET_KAFKA_LIBS") {
            return Ok(PathBuf::from(p));
        }
        let script = Path::new(env!("CARGO_MANIFEST_DIR")).join("../scripts/install-kafka.sh");
        let out = Command::new("bash")
            .arg(&script)
            .stderr(Stdio::inherit())
            .output()
            .map_err(|e| format!("running {}: {e}", script.display()))?;
        if !out.status.success() {
            return Err(format!(
                "{} failed; run ./scripts/test.sh, which installs Apache Kafka",
                script.display()
            ));
        }
        Ok(PathBuf::from(String::from_utf8_lossy(&out.stdout).trim()))
    })
    .clone()
    .map_err(anyhow::Error::msg)
}

fn java() -> PathBuf {
    match std::env::var_os("JAVA_HOME") {
        Some(h) => PathBuf::from(h).join("bin/java"),
        None => PathBuf::from("java"),
    }
}

fn free_port() -> Result<u16> {
    let l = std::net::TcpListener::bind("127.0.0.1:0")?;
    Ok(l.local_addr()?.port())
}

/// Starts every broker process from one thread that lives as long as the
/// test binary, with `PR_SET_PDEATHSIG`: a broker never outlives the tests
/// that started it, even when they are killed (the signal follows the
/// thread that forked, so it must not be a test's own thread).
fn spawn_tied(cmd: Command) -> Result<Child> {
    type Req = (Command, mpsc::Sender<std::io::Result<Child>>);
    static SPAWNER: OnceLock<Mutex<mpsc::Sender<Req>>> = OnceLock::new();
    let tx = SPAWNER.get_or_init(|| {
        let (tx, rx) = mpsc::channel::<Req>();
        std::thread::spawn(move || {
            for (mut cmd, reply) in rx {
                use std::os::unix::process::CommandExt;
                // SAFETY: prctl is async-signal-safe; nothing else runs
                // between fork and exec.
                unsafe {
                    cmd.pre_exec(|| {
                        libc::prctl(libc::PR_SET_PDEATHSIG, libc::SIGKILL);
                        Ok(())
                    });
                }
                let _ = reply.send(cmd.spawn());
            }
            // Keep the thread (and so its children) alive until exit.
            loop {
                std::thread::park();
            }
        });
        Mutex::new(tx)
    });
    let (reply, rx) = mpsc::channel();
    tx.lock()
        .map_err(|_| anyhow::anyhow!("broker spawner poisoned"))?
        .send((cmd, reply))
        .map_err(|_| anyhow::anyhow!("broker spawner gone"))?;
    rx.recv()
        .context("broker spawner gone")?
        .context("starting java")
}

/// A broker process owned by a test; killed on drop. Its log directory
/// survives [`Broker::stop`] and [`Broker::restart`].
pub struct Broker {
    child: Option<Child>,
    pub port: u16,
    dir: PathBuf,
}

impl Broker {
    /// Starts a broker of its own on a free loopback port (for tests that
    /// stop or restart it; others share [`Broker::shared`]).
    pub fn start() -> Result<Broker> {
        let port = free_port()?;
        let controller = free_port()?;
        let dir = std::env::temp_dir().join(format!("freshet-kafka-{}-{port}", std::process::id()));
        let _ = std::fs::remove_dir_all(&dir);
        std::fs::create_dir_all(&dir)?;
        std::fs::write(
            dir.join("server.properties"),
            properties(port, controller, &dir),
        )?;
        std::fs::write(dir.join("log4j2.properties"), LOG4J)?;
        let mut b = Broker {
            child: None,
            port,
            dir,
        };
        b.run_java(
            "kafka.tools.StorageTool",
            &["format", "-t", CLUSTER_ID, "-c"],
            true,
        )?;
        b.spawn()?;
        Ok(b)
    }

    /// One broker for the whole test binary, started on first use (tests
    /// that share it use topic names of their own).
    pub fn shared() -> Result<&'static Broker> {
        static SHARED: OnceLock<std::result::Result<Broker, String>> = OnceLock::new();
        SHARED
            .get_or_init(|| Broker::start().map_err(|e| format!("{e:#}")))
            .as_ref()
            .map_err(|e| anyhow::anyhow!("{e}"))
    }

    fn java_command(&self, class: &str, args: &[&str]) -> Result<Command> {
        let mut cmd = Command::new(java());
        cmd.args([
            "-Xms128m",
            "-Xmx768m",
            "-XX:+UseSerialGC",
            "-XX:TieredStopAtLevel=1",
            "-Djava.awt.headless=true",
        ])
        .arg(format!(
            "-Dlog4j2.configurationFile={}",
            self.dir.join("log4j2.properties").display()
        ))
        .arg(format!("-Dkafka.logs.dir={}", self.dir.display()))
        .arg("-cp")
        .arg(format!("{}/*", kafka_libs()?.display()))
        .arg(class)
        .args(args)
        .arg(self.dir.join("server.properties"))
        .current_dir(&self.dir)
        .stdin(Stdio::null());
        Ok(cmd)
    }

    /// Runs a Kafka tool to completion (`wait`) or starts the broker.
    fn run_java(&mut self, class: &str, args: &[&str], wait: bool) -> Result<()> {
        let log = std::fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(self.dir.join("broker.log"))?;
        let mut cmd = self.java_command(class, args)?;
        cmd.stdout(log.try_clone()?).stderr(log);
        let mut child = spawn_tied(cmd)?;
        if wait {
            let status = child.wait()?;
            if !status.success() {
                bail!("{class} failed ({status}):\n{}", self.log());
            }
        } else {
            self.child = Some(child);
        }
        Ok(())
    }

    fn spawn(&mut self) -> Result<()> {
        self.run_java("kafka.Kafka", &[], false)?;
        // Ready when it answers metadata with itself as a broker.
        let deadline = Instant::now() + Duration::from_secs(90);
        let consumer: BaseConsumer = ClientConfig::new()
            .set("bootstrap.servers", self.addr())
            .set("log_level", "0")
            .create()?;
        loop {
            if let Some(c) = self.child.as_mut() {
                if let Some(status) = c.try_wait()? {
                    bail!("the Kafka broker exited ({status}):\n{}", self.log());
                }
            }
            if std::net::TcpStream::connect(("127.0.0.1", self.port)).is_ok() {
                if let Ok(md) = consumer.fetch_metadata(None, Duration::from_secs(2)) {
                    if !md.brokers().is_empty() {
                        return Ok(());
                    }
                }
            }
            if Instant::now() > deadline {
                bail!("the Kafka broker did not come up:\n{}", self.log());
            }
            std::thread::sleep(Duration::from_millis(100));
        }
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

    /// Starts it again on the same ports and log directory.
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

    /// Grows a topic to `total` partitions (CreatePartitions).
    pub async fn add_partitions(&self, name: &str, total: usize) -> Result<()> {
        let admin = self.admin()?;
        let p = NewPartitions::new(name, total);
        let r = admin
            .create_partitions(
                [&p],
                &AdminOptions::new().operation_timeout(Some(Duration::from_secs(10))),
            )
            .await?;
        for x in r {
            if let Err((topic, e)) = x {
                bail!("adding partitions to {topic}: {e}");
            }
        }
        self.wait_partitions(name, total)
    }

    fn wait_partitions(&self, name: &str, n: usize) -> Result<()> {
        let consumer: BaseConsumer = ClientConfig::new()
            .set("bootstrap.servers", self.addr())
            .set("log_level", "3")
            .create()?;
        let deadline = Instant::now() + Duration::from_secs(30);
        loop {
            if let Ok(md) = consumer.fetch_metadata(Some(name), Duration::from_secs(2)) {
                let ready = md.topics().iter().any(|t| {
                    t.name() == name
                        && t.error().is_none()
                        && t.partitions().len() >= n
                        && t.partitions().iter().all(|p| p.leader() >= 0)
                });
                if ready {
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

/// Any fixed cluster id will do: every broker has a log directory of its own.
const CLUSTER_ID: &str = "MkU3OEVBNTcwNTJENDM2Qk";

/// Warnings and errors only, to `broker.log` (through stdout).
const LOG4J: &str = "\
rootLogger.level=WARN
rootLogger.appenderRef.stdout.ref=STDOUT
appender.stdout.type=Console
appender.stdout.name=STDOUT
appender.stdout.layout.type=PatternLayout
appender.stdout.layout.pattern=[%d] %p %m (%c)%n
";

/// A single node that is both broker and controller, sized for tests: one
/// replica of everything, one partition for the internal topics (fast
/// first use), no rebalance delay, records up to 16 MB.
fn properties(port: u16, controller: u16, dir: &Path) -> String {
    format!(
        "\
process.roles=broker,controller
node.id=1
controller.quorum.voters=1@127.0.0.1:{controller}
listeners=PLAINTEXT://127.0.0.1:{port},CONTROLLER://127.0.0.1:{controller}
advertised.listeners=PLAINTEXT://127.0.0.1:{port}
controller.listener.names=CONTROLLER
inter.broker.listener.name=PLAINTEXT
listener.security.protocol.map=PLAINTEXT:PLAINTEXT,CONTROLLER:PLAINTEXT
log.dirs={}
num.partitions=1
num.network.threads=2
num.io.threads=2
background.threads=2
offsets.topic.replication.factor=1
offsets.topic.num.partitions=1
transaction.state.log.replication.factor=1
transaction.state.log.min.isr=1
transaction.state.log.num.partitions=1
share.coordinator.state.topic.replication.factor=1
share.coordinator.state.topic.min.isr=1
group.initial.rebalance.delay.ms=0
message.max.bytes=16777216
replica.fetch.max.bytes=16777216
",
        dir.join("data").display()
    )
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

/// One record read back from a topic.
#[derive(Debug, Clone)]
pub struct ReadRecord {
    pub partition: i32,
    pub offset: i64,
    pub key: Option<String>,
    pub value: Option<String>,
}

/// Reads `topic` from the beginning of every partition as a `read_committed`
/// consumer (only committed transactions) until at least `want` records
/// arrived and nothing new came for `idle`, or `timeout` passed.
pub fn read_committed(
    addr: &str,
    topic: &str,
    want: usize,
    idle: Duration,
    timeout: Duration,
) -> Result<Vec<ReadRecord>> {
    use rdkafka::message::Message;
    let c: BaseConsumer = ClientConfig::new()
        .set("bootstrap.servers", addr)
        .set(
            "group.id",
            format!("freshet-test-reader-{}", std::process::id()),
        )
        .set("isolation.level", "read_committed")
        .set("enable.auto.commit", "false")
        .set("enable.partition.eof", "false")
        .set("log_level", "3")
        .create()?;
    let md = c.fetch_metadata(Some(topic), Duration::from_secs(10))?;
    let mut tpl = rdkafka::TopicPartitionList::new();
    for t in md.topics().iter().filter(|t| t.name() == topic) {
        for p in t.partitions() {
            tpl.add_partition_offset(topic, p.id(), rdkafka::Offset::Beginning)?;
        }
    }
    c.assign(&tpl)?;
    let start = Instant::now();
    let mut last = Instant::now();
    let mut out = Vec::new();
    while start.elapsed() < timeout {
        match c.poll(Duration::from_millis(200)) {
            Some(Ok(m)) => {
                out.push(ReadRecord {
                    partition: m.partition(),
                    offset: m.offset(),
                    key: m.key().map(|k| String::from_utf8_lossy(k).to_string()),
                    value: m.payload().map(|v| String::from_utf8_lossy(v).to_string()),
                });
                last = Instant::now();
            }
            Some(Err(e)) => bail!("reading {topic}: {e}"),
            None => {
                if out.len() >= want && last.elapsed() >= idle {
                    break;
                }
            }
        }
    }
    Ok(out)
}

/// The integer value of `"field":N` in a flat JSON object.
pub fn json_int(json: &str, field: &str) -> Option<i64> {
    let pat = format!("\"{field}\":");
    let at = json.find(&pat)? + pat.len();
    let rest = json[at..].trim_start();
    let end = rest
        .find(|c: char| !(c == '-' || c.is_ascii_digit()))
        .unwrap_or(rest.len());
    rest[..end].parse().ok()
}
