//! Benchmarks that print figures (`openhands bench …`). They measure; they assert nothing.

use std::time::{Duration, Instant};

use anyhow::Context as _;
use anyhow::bail;
use tokio_util::sync::CancellationToken;

use crate::config::Config;
use crate::queue::{self, probe::Probe};
use crate::storage::{DatabaseKind, Db};

/// Where the benchmarks also write their figures, one `name<TAB>value` line each, for
/// `openhands bench report` to gather into one table (`./scripts/bench` sets it).
const FIGURES_VARIABLE: &str = "BENCH_FIGURES";

/// Appends a figure to `$BENCH_FIGURES`, when it is set.
fn record(name: &str, value: f64) -> anyhow::Result<()> {
    use std::io::Write as _;
    let Some(path) = std::env::var_os(FIGURES_VARIABLE) else {
        return Ok(());
    };
    let mut file = std::fs::OpenOptions::new()
        .create(true)
        .append(true)
        .open(&path)
        .with_context(|| format!("cannot write the figures file {}", path.to_string_lossy()))?;
    writeln!(file, "{name}\t{value}")?;
    Ok(())
}

/// Prints the figures that the benchmarks wrote to `path` as one markdown table, each beside
/// the reference measured in the same run and their ratio (the README's benchmark table).
pub fn report(path: &std::path::Path) -> anyhow::Result<()> {
    let text = std::fs::read_to_string(path)
        .with_context(|| format!("cannot read the figures file {}", path.display()))?;
    let mut figures = std::collections::HashMap::new();
    for (number, line) in text.lines().enumerate() {
        let parsed = line
            .split_once('\t')
            .and_then(|(name, value)| Some((name.to_string(), value.trim().parse::<f64>().ok()?)));
        let Some((name, value)) = parsed else {
            bail!(
                "line {} of {} is not `name<TAB>number`: {line:?}",
                number + 1,
                path.display()
            );
        };
        figures.insert(name, value);
    }
    if figures.is_empty() {
        bail!(
            "{} holds no figures: run the benchmarks first (./scripts/bench)",
            path.display()
        );
    }
    for row in report_rows(&figures) {
        println!("{row}");
    }
    Ok(())
}

/// The table's lines; a figure that is missing shows as `—`.
fn report_rows(figures: &std::collections::HashMap<String, f64>) -> Vec<String> {
    let get = |name: &str| figures.get(name).copied();
    let number = |value: Option<f64>, decimals: usize| {
        value.map_or_else(|| "—".to_string(), |v| format!("{v:.decimals$}"))
    };
    let pair = |a: &str, b: &str, decimals: usize| {
        format!(
            "{} / {}",
            number(get(a), decimals),
            number(get(b), decimals)
        )
    };
    let ratio = |value: Option<f64>, reference: Option<f64>| match (value, reference) {
        // Small ratios keep their first digits rather than round to 0.00.
        (Some(v), Some(r)) if r > 0.0 && v / r < 0.1 => format!("{:.3}×", v / r),
        (Some(v), Some(r)) if r > 0.0 => format!("{:.2}×", v / r),
        _ => "—".to_string(),
    };
    let pgbench = get("reference.pgbench_inserts_per_s");
    let pgbench_text = format!("pgbench single-row INSERTs: {}/s", number(pgbench, 0));
    let docker_exec = get("reference.docker_exec.p50");
    let docker_exec_text = format!(
        "`docker exec … true` (CLI) p50: {} ms",
        number(docker_exec, 2)
    );
    let docker_run = get("reference.docker_run.p50");
    let docker_run_text = format!(
        "`docker run --rm … true` (CLI) p50: {} ms",
        number(docker_run, 0)
    );
    let mut rows = vec![
        "| figure | value | reference, same run | ratio |".to_string(),
        "|---|---|---|---|".to_string(),
    ];
    let mut row = |figure: String, value: String, reference: String, ratio: String| {
        rows.push(format!("| {figure} | {value} | {reference} | {ratio} |"));
    };
    for (backend, label) in [("postgres", "PostgreSQL"), ("sqlite", "SQLite")] {
        let rate = get(&format!("ingest.rate.{backend}"));
        row(
            format!("webhook ingest, {label}: signed GitHub deliveries/s (32 clients)"),
            number(rate, 0),
            pgbench_text.clone(),
            ratio(rate, pgbench),
        );
        row(
            format!("webhook ingest, {label}: latency p50 / p99, ms"),
            pair(
                &format!("ingest.p50.{backend}"),
                &format!("ingest.p99.{backend}"),
                2,
            ),
            "—".into(),
            "—".into(),
        );
    }
    for (backend, label) in [("postgres", "PostgreSQL"), ("sqlite", "SQLite")] {
        let enqueue = get(&format!("queue.enqueue.{backend}"));
        row(
            format!("queue, {label}: enqueue jobs/s (16 clients)"),
            number(enqueue, 0),
            pgbench_text.clone(),
            ratio(enqueue, pgbench),
        );
        for (figure, name) in [("claim+complete", "drain"), ("end to end", "end_to_end")] {
            let value = get(&format!("queue.{name}.{backend}"));
            row(
                format!("queue, {label}: {figure} jobs/s (one worker process)"),
                number(value, 0),
                pgbench_text.clone(),
                ratio(value, pgbench),
            );
        }
    }
    for (figure, name, reference, reference_text) in [
        (
            "warm-pool sandbox acquire",
            "sandbox.warm",
            docker_run,
            &docker_run_text,
        ),
        (
            "cold sandbox create+start",
            "sandbox.cold",
            docker_run,
            &docker_run_text,
        ),
        (
            "command round trip (`true`, warm session)",
            "sandbox.true",
            docker_exec,
            &docker_exec_text,
        ),
        (
            "command round trip through the Runtime API",
            "sandbox.remote_true",
            docker_exec,
            &docker_exec_text,
        ),
    ] {
        row(
            format!("{figure}: p50 / p99, ms"),
            pair(&format!("{name}.p50"), &format!("{name}.p99"), 2),
            reference_text.clone(),
            ratio(get(&format!("{name}.p50")), reference),
        );
    }
    let own_true = get("agent.true.p50");
    row(
        "agent step (`true`, zero-latency model): p50 / p99, ms".into(),
        pair("agent.step.p50", "agent.step.p99", 2),
        format!("`true` in the same session p50: {} ms", number(own_true, 2)),
        ratio(get("agent.step.p50"), own_true),
    );
    let reference_ws = get("websocket.reference.p50");
    row(
        format!(
            "WebSocket fan-out, {} subscribers at {} events/s: p50 / p99, ms",
            number(get("websocket.subscribers"), 0),
            number(get("websocket.rate"), 0)
        ),
        pair("websocket.p50", "websocket.p99", 1),
        format!("1 subscriber p50: {} ms", number(reference_ws, 1)),
        ratio(get("websocket.p50"), reference_ws),
    );
    row(
        "WebSocket fan-out: frames delivered".into(),
        get("websocket.delivered_share").map_or_else(
            || "—".to_string(),
            |share| format!("{:.2} %", share * 100.0),
        ),
        "—".into(),
        "—".into(),
    );
    let idle_web = get("memory.web_websocket.idle");
    for (figure, name, reference, reference_text) in [
        (
            "web, ingest on PostgreSQL",
            "memory.web_ingest.postgres",
            None,
            "—".to_string(),
        ),
        (
            "web, ingest on SQLite",
            "memory.web_ingest.sqlite",
            None,
            "—".to_string(),
        ),
        (
            "web, WebSocket fan-out",
            "memory.web_websocket.peak",
            idle_web,
            format!("the same process idle: {} MB", number(idle_web, 1)),
        ),
        (
            "worker, queue on PostgreSQL",
            "memory.worker.postgres",
            None,
            "—".to_string(),
        ),
        (
            "worker, queue on SQLite",
            "memory.worker.sqlite",
            None,
            "—".to_string(),
        ),
        (
            "runtime-api, command round trips",
            "memory.runtime_api",
            None,
            "—".to_string(),
        ),
    ] {
        row(
            format!("peak memory (RSS), {figure}: MB"),
            number(get(name), 1),
            reference_text,
            ratio(get(name), reference),
        );
    }
    rows
}

fn backend_name(kind: DatabaseKind) -> &'static str {
    match kind {
        DatabaseKind::Postgres => "postgres",
        DatabaseKind::Sqlite => "sqlite",
    }
}

/// Enqueue → claim → complete throughput of the job queue, as the median of `rounds`:
/// - enqueue: `clients` concurrent clients, one durable transaction per job, no workers;
/// - drain: the workers of one process claim and complete the jobs enqueued before;
/// - end to end: clients enqueue while the workers run, until the last job completes.
pub async fn queue_throughput(
    db: &Db,
    config: &Config,
    jobs: u32,
    clients: u32,
    rounds: u32,
    round_timeout: Duration,
) -> anyhow::Result<()> {
    if jobs == 0 || clients == 0 || rounds == 0 {
        bail!("--jobs, --clients and --rounds must each be at least 1");
    }
    let backend = backend_name(db.kind());
    let mut enqueue_rates = Vec::new();
    let mut worker_peak_kib = 0;
    let mut drain_rates = Vec::new();
    let mut end_to_end_rates = Vec::new();
    for round in 1..=rounds {
        let started = Instant::now();
        enqueue_probes(db, jobs, clients).await?;
        let enqueue = jobs as f64 / started.elapsed().as_secs_f64();

        let mark = db.probe_completion_mark().await?;
        let worker = Role::start(config, "worker", &[("SANDBOX_WARM_POOL", "0")]).await?;
        // Timed from the first completion, so that the process's start is not counted.
        let first = wait_for_completions(db, mark, 1, round_timeout).await?;
        let started = Instant::now();
        wait_for_completions(db, mark, i64::from(jobs), round_timeout).await?;
        let drain = (i64::from(jobs) - first) as f64 / started.elapsed().as_secs_f64();

        let mark = db.probe_completion_mark().await?;
        let started = Instant::now();
        enqueue_probes(db, jobs, clients).await?;
        wait_for_completions(db, mark, i64::from(jobs), round_timeout).await?;
        let end_to_end = jobs as f64 / started.elapsed().as_secs_f64();
        worker_peak_kib = worker_peak_kib.max(worker.peak_kib());
        worker.stop();

        println!(
            "round {round}/{rounds}: enqueue {enqueue:.0}/s, drain {drain:.0}/s, end to end {end_to_end:.0}/s"
        );
        enqueue_rates.push(enqueue);
        drain_rates.push(drain);
        end_to_end_rates.push(end_to_end);
    }
    println!(
        "queue {backend}: {jobs} jobs x {rounds} rounds, {clients} enqueueing clients, worker concurrency {}",
        config.worker_concurrency
    );
    let (enqueue, drain, end_to_end) = (
        median(&mut enqueue_rates),
        median(&mut drain_rates),
        median(&mut end_to_end_rates),
    );
    println!(
        "| backend | enqueue jobs/s | claim+complete jobs/s | end to end jobs/s | worker peak MB |"
    );
    println!("|---|---|---|---|---|");
    println!(
        "| {backend} | {enqueue:.0} | {drain:.0} | {end_to_end:.0} | {:.1} |",
        mib(worker_peak_kib)
    );
    record(&format!("queue.enqueue.{backend}"), enqueue)?;
    record(&format!("queue.drain.{backend}"), drain)?;
    record(&format!("queue.end_to_end.{backend}"), end_to_end)?;
    record(&format!("memory.worker.{backend}"), mib(worker_peak_kib))?;
    Ok(())
}

fn mib(kib: u64) -> f64 {
    kib as f64 / 1024.0
}

/// Enqueues `jobs` probes from `clients` concurrent clients, each job in its own transaction.
async fn enqueue_probes(db: &Db, jobs: u32, clients: u32) -> anyhow::Result<()> {
    let mut tasks = tokio::task::JoinSet::new();
    for client in 0..clients {
        let share = jobs / clients + u32::from(client < jobs % clients);
        let db = db.clone();
        tasks.spawn(async move {
            for _ in 0..share {
                let probe = Probe::new(uuid::Uuid::new_v4().simple().to_string());
                queue::enqueue_now(&db, &probe).await?;
            }
            anyhow::Ok(())
        });
    }
    while let Some(result) = tasks.join_next().await {
        result??;
    }
    Ok(())
}

/// Waits until `expected` probes completed after `mark`; how many had.
async fn wait_for_completions(
    db: &Db,
    mark: i64,
    expected: i64,
    timeout: Duration,
) -> anyhow::Result<i64> {
    let started = Instant::now();
    loop {
        let completed = db.probe_completions_since(mark).await?;
        if completed >= expected {
            return Ok(completed);
        }
        if started.elapsed() > timeout {
            bail!(
                "only {} of {expected} jobs completed within {}",
                completed,
                humantime::format_duration(timeout)
            );
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

fn median(values: &mut [f64]) -> f64 {
    values.sort_by(f64::total_cmp);
    values.get(values.len() / 2).copied().unwrap_or(0.0)
}

/// The GitHub delivery every benchmark request carries: a realistic issue comment that asks
/// the agent for something, so each one is stored as accepted with an intake job.
const INGEST_PAYLOAD: &[u8] = include_bytes!("../tests/fixtures/github/issue_comment.created.json");
const INGEST_SECRET: &str = "bench-webhook-secret";

/// Signed GitHub deliveries per second, and their latency, durably accepted by a `web`
/// process of this binary on DATABASE_URL, from `concurrency` clients in this process over
/// loopback. The median of `rounds`.
pub async fn ingest_throughput(
    config: &Config,
    deliveries: u32,
    concurrency: u32,
    rounds: u32,
    round_timeout: Duration,
) -> anyhow::Result<()> {
    if deliveries == 0 || concurrency == 0 || rounds == 0 {
        bail!("--deliveries, --concurrency and --rounds must each be at least 1");
    }
    let server = Role::start(config, "web", &[("GITHUB_WEBHOOK_SECRET", INGEST_SECRET)]).await?;
    let client = reqwest::Client::builder()
        .pool_max_idle_per_host(concurrency as usize)
        .timeout(Duration::from_secs(30))
        .build()?;
    let signature = format!(
        "sha256={}",
        hex::encode(hmac_sha256(INGEST_SECRET.as_bytes(), INGEST_PAYLOAD))
    );
    let run = uuid::Uuid::new_v4().simple().to_string();
    let load = Load {
        client,
        url: format!("{}/api/integration/github/events", server.url),
        signature,
        run,
    };
    // Warm the connections, the server's caches and the database.
    load.round("warmup", deliveries.min(2000), concurrency, round_timeout)
        .await?;
    let mut rates = Vec::new();
    let mut p50s = Vec::new();
    let mut p99s = Vec::new();
    for round in 1..=rounds {
        let result = load
            .round(&format!("r{round}"), deliveries, concurrency, round_timeout)
            .await?;
        println!(
            "round {round}/{rounds}: {:.0} deliveries/s, p50 {:.2} ms, p99 {:.2} ms",
            result.rate, result.p50_ms, result.p99_ms
        );
        rates.push(result.rate);
        p50s.push(result.p50_ms);
        p99s.push(result.p99_ms);
    }
    let web_peak_kib = server.peak_kib();
    server.stop();
    let backend = backend_name(DatabaseKind::of_url(config.database_url.expose())?);
    println!(
        "ingest {backend}: {deliveries} signed GitHub deliveries ({} bytes each) x {rounds} rounds, concurrency {concurrency}",
        INGEST_PAYLOAD.len()
    );
    let (rate, p50, p99) = (median(&mut rates), median(&mut p50s), median(&mut p99s));
    println!("| backend | deliveries/s | p50 ms | p99 ms | web peak MB |");
    println!("|---|---|---|---|---|");
    println!(
        "| {backend} | {rate:.0} | {p50:.2} | {p99:.2} | {:.1} |",
        mib(web_peak_kib)
    );
    record(&format!("ingest.rate.{backend}"), rate)?;
    record(&format!("ingest.p50.{backend}"), p50)?;
    record(&format!("ingest.p99.{backend}"), p99)?;
    record(&format!("memory.web_ingest.{backend}"), mib(web_peak_kib))?;
    Ok(())
}

fn hmac_sha256(key: &[u8], body: &[u8]) -> Vec<u8> {
    use hmac::{Hmac, Mac};
    // HMAC takes keys of any length.
    match Hmac::<sha2::Sha256>::new_from_slice(key) {
        Ok(mut mac) => {
            mac.update(body);
            mac.finalize().into_bytes().to_vec()
        }
        Err(_) => Vec::new(),
    }
}

/// A process of this binary in one role (`web`, `worker`, `runtime-api`), on DATABASE_URL;
/// a web or runtime-api process listens on a free loopback port. Killed when dropped.
struct Role {
    child: std::process::Child,
    url: String,
}

impl Role {
    /// Starts `role` with these extra environment variables and waits until a web or
    /// runtime-api process accepts connections.
    async fn start(config: &Config, role: &str, env: &[(&str, &str)]) -> anyhow::Result<Self> {
        let port = std::net::TcpListener::bind("127.0.0.1:0")?
            .local_addr()?
            .port();
        let child = std::process::Command::new(std::env::current_exe()?)
            .arg(role)
            .env("DATABASE_URL", config.database_url.expose())
            .env(
                "DATABASE_MAX_CONNECTIONS",
                config.database_max_connections.to_string(),
            )
            .env("HOST", "127.0.0.1")
            .env("PORT", port.to_string())
            .env("RUNTIME_API_LISTEN", format!("127.0.0.1:{port}"))
            // The process logs warnings only, unless BENCH_SERVER_LOG_LEVEL says otherwise.
            .env(
                "LOG_LEVEL",
                std::env::var("BENCH_SERVER_LOG_LEVEL").unwrap_or_else(|_| "warn".into()),
            )
            .env_remove(FIGURES_VARIABLE)
            .envs(env.iter().copied())
            .stdin(std::process::Stdio::null())
            .spawn()?;
        let mut process = Self {
            child,
            url: format!("http://127.0.0.1:{port}"),
        };
        if role == "worker" {
            return Ok(process);
        }
        let started = Instant::now();
        loop {
            if tokio::net::TcpStream::connect(("127.0.0.1", port))
                .await
                .is_ok()
            {
                return Ok(process);
            }
            if let Some(status) = process.child.try_wait()? {
                bail!("the {role} process exited ({status}) before it listened");
            }
            if started.elapsed() > Duration::from_secs(60) {
                bail!(
                    "the {role} process did not listen on {} within 60 s",
                    process.url
                );
            }
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    }

    /// The process's peak resident memory so far, in KiB.
    fn peak_kib(&self) -> u64 {
        memory_kib(self.child.id(), "VmHWM:")
    }

    fn stop(self) {}
}

impl Drop for Role {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

struct Load {
    client: reqwest::Client,
    url: String,
    signature: String,
    /// Makes this run's delivery ids unique.
    run: String,
}

struct RoundResult {
    rate: f64,
    p50_ms: f64,
    p99_ms: f64,
}

impl Load {
    /// Sends `count` deliveries from `concurrency` clients; every one must be accepted.
    async fn round(
        &self,
        name: &str,
        count: u32,
        concurrency: u32,
        timeout: Duration,
    ) -> anyhow::Result<RoundResult> {
        let next = std::sync::Arc::new(std::sync::atomic::AtomicU32::new(0));
        let started = Instant::now();
        let mut tasks = tokio::task::JoinSet::new();
        for _ in 0..concurrency {
            let next = next.clone();
            let client = self.client.clone();
            let url = self.url.clone();
            let signature = self.signature.clone();
            let prefix = format!("{}-{name}", self.run);
            tasks.spawn(async move {
                let mut latencies = Vec::new();
                loop {
                    let n = next.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
                    if n >= count {
                        return anyhow::Ok(latencies);
                    }
                    if started.elapsed() > timeout {
                        bail!(
                            "the round did not finish within {}",
                            humantime::format_duration(timeout)
                        );
                    }
                    let sent = Instant::now();
                    let response = client
                        .post(&url)
                        .header("content-type", "application/json")
                        .header("x-github-event", "issue_comment")
                        .header("x-github-delivery", format!("{prefix}-{n}"))
                        .header("x-hub-signature-256", &signature)
                        .body(INGEST_PAYLOAD)
                        .send()
                        .await?;
                    let status = response.status();
                    response.bytes().await?;
                    if status != reqwest::StatusCode::ACCEPTED {
                        bail!("delivery {n} was answered {status}, not 202");
                    }
                    latencies.push(sent.elapsed());
                }
            });
        }
        let mut latencies = Vec::with_capacity(count as usize);
        while let Some(result) = tasks.join_next().await {
            latencies.extend(result??);
        }
        let elapsed = started.elapsed();
        latencies.sort();
        let percentile = |p: f64| -> f64 {
            let index = ((latencies.len() as f64 - 1.0) * p).round() as usize;
            latencies
                .get(index)
                .map(|d| d.as_secs_f64() * 1000.0)
                .unwrap_or(0.0)
        };
        Ok(RoundResult {
            rate: f64::from(count) / elapsed.as_secs_f64(),
            p50_ms: percentile(0.50),
            p99_ms: percentile(0.99),
        })
    }
}

/// Percentile `p` (0..=100) of `values`, sorting them.
fn percentile(values: &mut [f64], p: f64) -> f64 {
    values.sort_by(f64::total_cmp);
    if values.is_empty() {
        return 0.0;
    }
    let index = ((values.len() - 1) as f64 * p / 100.0).round() as usize;
    values[index.min(values.len() - 1)]
}

/// Milliseconds a `docker` CLI command takes, `samples` times.
async fn time_cli(args: &[&str], samples: u32) -> anyhow::Result<Vec<f64>> {
    let mut times = Vec::new();
    for _ in 0..samples {
        let started = Instant::now();
        let status = tokio::process::Command::new("docker")
            .args(args)
            .stdout(std::process::Stdio::null())
            .stderr(std::process::Stdio::null())
            .status()
            .await
            .context("cannot run the docker CLI")?;
        if !status.success() {
            anyhow::bail!("`docker {}` failed", args.join(" "));
        }
        times.push(started.elapsed().as_secs_f64() * 1000.0);
    }
    Ok(times)
}

/// Warm-pool acquire, cold create+start and the `true` round trip in a warm session, on this
/// machine's engine; `docker exec … true` and `docker run --rm … true` through the CLI are
/// measured in the same run as references. Every sandbox it makes is removed at the end.
pub async fn sandbox_latency(
    config: &Config,
    samples: u32,
    round_trips: u32,
) -> anyhow::Result<()> {
    use crate::sandbox::docker::DockerBackend;
    use crate::sandbox::{CommandRequest, SandboxBackend};

    let samples = samples.clamp(1, 100);
    let round_trips = round_trips.clamp(1, 100_000);
    let settings = crate::sandbox::SandboxSettings {
        sandbox_owner: Some(format!(
            "bench-{}",
            ulid::Ulid::new().to_string().to_lowercase()
        )),
        sandbox_warm_pool: samples as usize,
        ..config.sandbox.clone()
    };
    let backend = DockerBackend::connect(&settings).await?;
    let result = async {
        println!("filling a warm pool of {samples} …");
        backend.refill_pool().await?;
        let mut acquire = Vec::new();
        let mut ids = Vec::new();
        for i in 0..samples {
            let started = Instant::now();
            let sandbox = backend.start(&format!("bench-warm-{i}")).await?;
            acquire.push(started.elapsed().as_secs_f64() * 1000.0);
            ids.push(sandbox.id);
        }
        // The pool is empty now (nothing refills it here): these are cold starts.
        let mut cold = Vec::new();
        for i in 0..samples {
            let started = Instant::now();
            let sandbox = backend.start(&format!("bench-cold-{i}")).await?;
            cold.push(started.elapsed().as_secs_f64() * 1000.0);
            ids.push(sandbox.id);
        }
        let warm = ids.first().cloned().unwrap_or_default();
        let request = CommandRequest::new("true");
        backend.execute(&warm, &request, None).await?;
        let mut trips = Vec::new();
        for _ in 0..round_trips {
            let started = Instant::now();
            let outcome = backend.execute(&warm, &request, None).await?;
            trips.push(started.elapsed().as_secs_f64() * 1000.0);
            anyhow::ensure!(outcome.exit_code == 0, "`true` failed: {}", outcome.output);
        }
        let container = backend.container_id(&warm).unwrap_or_default();
        let mut exec_cli = time_cli(&["exec", &container, "true"], samples).await?;
        let mut run_cli = time_cli(
            &[
                "run",
                "--rm",
                "--network",
                "none",
                &settings.sandbox_image,
                "true",
            ],
            samples.min(5),
        )
        .await?;
        println!();
        println!("| figure | p50 ms | p99 ms | samples |");
        println!("|---|---|---|---|");
        for (name, values) in [
            ("warm-pool acquire", &mut acquire),
            ("cold create+start", &mut cold),
            ("`true` in a warm session", &mut trips),
            ("reference: `docker exec … true` (CLI)", &mut exec_cli),
            ("reference: `docker run --rm … true` (CLI)", &mut run_cli),
        ] {
            let count = values.len();
            let p50 = percentile(values, 50.0);
            let p99 = percentile(values, 99.0);
            println!("| {name} | {p50:.2} | {p99:.2} | {count} |");
        }
        record("sandbox.warm.p50", percentile(&mut acquire, 50.0))?;
        record("sandbox.warm.p99", percentile(&mut acquire, 99.0))?;
        record("sandbox.cold.p50", percentile(&mut cold, 50.0))?;
        record("sandbox.cold.p99", percentile(&mut cold, 99.0))?;
        record("sandbox.true.p50", percentile(&mut trips, 50.0))?;
        record("sandbox.true.p99", percentile(&mut trips, 99.0))?;
        record("reference.docker_exec.p50", percentile(&mut exec_cli, 50.0))?;
        record("reference.docker_run.p50", percentile(&mut run_cli, 50.0))?;
        Ok::<(), anyhow::Error>(())
    }
    .await;
    for sandbox in backend.list().await.unwrap_or_default() {
        let _ = backend.remove(&sandbox.id).await;
    }
    result?;
    runtime_api_latency(config, round_trips).await
}

/// The `true` round trip through a `runtime-api` process of this binary on loopback, and that
/// process's peak memory.
async fn runtime_api_latency(config: &Config, round_trips: u32) -> anyhow::Result<()> {
    use crate::sandbox::docker::DockerBackend;
    use crate::sandbox::remote::RemoteBackend;
    use crate::sandbox::{CommandRequest, SandboxBackend};

    let owner = format!("bench-{}", ulid::Ulid::new().to_string().to_lowercase());
    let key = uuid::Uuid::new_v4().simple().to_string();
    let server = Role::start(
        config,
        "runtime-api",
        &[
            ("RUNTIME_API_KEY", key.as_str()),
            ("SANDBOX_WARM_POOL", "0"),
            ("SANDBOX_OWNER", owner.as_str()),
            ("SANDBOX_IMAGE", config.sandbox.sandbox_image.as_str()),
        ],
    )
    .await?;
    let remote = RemoteBackend::new(&server.url, key.parse()?)?;
    let result = async {
        let sandbox = remote.start("bench-remote").await?;
        let request = CommandRequest::new("true");
        remote.execute(&sandbox.id, &request, None).await?;
        let mut trips = Vec::new();
        for _ in 0..round_trips {
            let started = Instant::now();
            let outcome = remote.execute(&sandbox.id, &request, None).await?;
            trips.push(started.elapsed().as_secs_f64() * 1000.0);
            anyhow::ensure!(outcome.exit_code == 0, "`true` failed: {}", outcome.output);
        }
        let (p50, p99) = (percentile(&mut trips, 50.0), percentile(&mut trips, 99.0));
        let peak = mib(server.peak_kib());
        println!(
            "| `true` through the Runtime API (loopback) | {p50:.2} | {p99:.2} | {} |",
            trips.len()
        );
        println!("runtime-api process: {peak:.1} MB at its peak");
        record("sandbox.remote_true.p50", p50)?;
        record("sandbox.remote_true.p99", p99)?;
        record("memory.runtime_api", peak)?;
        Ok::<(), anyhow::Error>(())
    }
    .await;
    server.stop();
    // Whatever the process left behind is removed through the engine directly.
    let cleanup = crate::sandbox::SandboxSettings {
        sandbox_owner: Some(owner),
        sandbox_warm_pool: 0,
        ..config.sandbox.clone()
    };
    if let Ok(backend) = DockerBackend::connect(&cleanup).await {
        for sandbox in backend.list().await.unwrap_or_default() {
            let _ = backend.remove(&sandbox.id).await;
        }
    }
    result
}

/// Agent-loop overhead per step: a zero-latency scripted model on loopback asks for `true`
/// (numbered, so that no stuck pattern fires) `steps` times, then finishes; events go to
/// DATABASE_URL and commands to a Docker sandbox (SANDBOX_IMAGE). A step is the time between
/// two consecutive model requests: prompt building, the LLM round trip, recording the action,
/// running the command, recording the observation, and the checks. The `true` round trip in
/// the same sandbox is measured in the same run as the reference.
pub async fn agent_step_overhead(db: &Db, config: &Config, steps: u32) -> anyhow::Result<()> {
    use std::sync::{Arc, Mutex};

    use crate::agent::settings::AgentSettings;
    use crate::agent::{AgentRuntime, RunConversation};
    use crate::sandbox::docker::DockerBackend;
    use crate::sandbox::{CommandRequest, SandboxBackend};
    use crate::storage::{NewConversation, NewEvent};

    let steps = steps.clamp(10, 10_000);
    let arrivals: Arc<Mutex<Vec<Instant>>> = Arc::default();
    let model = {
        let arrivals = arrivals.clone();
        axum::Router::new().route(
            "/chat/completions",
            axum::routing::post(move || {
                let arrivals = arrivals.clone();
                async move {
                    let n = {
                        let mut seen = arrivals.lock().unwrap_or_else(|e| e.into_inner());
                        seen.push(Instant::now());
                        seen.len() as u32
                    };
                    let (name, arguments) = if n <= steps {
                        (
                            "execute_bash",
                            serde_json::json!({"command": format!("true #{n}")}),
                        )
                    } else {
                        ("finish", serde_json::json!({"message": "done"}))
                    };
                    axum::Json(serde_json::json!({
                        "id": format!("bench-{n}"),
                        "choices": [{"index": 0, "finish_reason": "tool_calls", "message": {
                            "role": "assistant", "content": "",
                            "tool_calls": [{"id": format!("call_{n}"), "type": "function",
                                "function": {"name": name, "arguments": arguments.to_string()}}]
                        }}],
                        "usage": {"prompt_tokens": 100, "completion_tokens": 10}
                    }))
                }
            }),
        )
    };
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await?;
    let model_url = format!("http://{}", listener.local_addr()?);
    let server = tokio::spawn(async move { axum::serve(listener, model).await });

    let sandbox_settings = crate::sandbox::SandboxSettings {
        sandbox_owner: Some(format!(
            "bench-{}",
            ulid::Ulid::new().to_string().to_lowercase()
        )),
        sandbox_warm_pool: 0,
        ..config.sandbox.clone()
    };
    let backend = DockerBackend::connect(&sandbox_settings).await?;
    let llm = crate::agent::llm::LlmClient::new("openai/bench", None, Some(&model_url))?;
    let settings = AgentSettings {
        agent_max_iterations: steps + 10,
        // Condensation would add summary calls; this measures the plain step.
        agent_condenser_max_events: usize::MAX / 2,
        ..AgentSettings::default()
    };
    let stop = CancellationToken::new();
    let runtime = AgentRuntime::new(settings, Some(llm), sandbox_settings, stop.clone())?
        .with_sandboxes(backend.clone());
    let ctx = queue::JobContext::new(db.clone());
    let workers = tokio::spawn(crate::app::run_workers(
        ctx,
        Some(Arc::new(runtime)),
        config.worker_settings(),
        stop.clone().cancelled_owned(),
    ));

    let result = async {
        let mut tx = db.begin().await?;
        let login = format!("bench-{}", ulid::Ulid::new());
        let user = tx.create_user(&login, None, false).await?;
        let conversation = tx
            .create_conversation(&NewConversation {
                owner_id: &user.id,
                title: "bench",
                trigger_kind: "web",
                ..Default::default()
            })
            .await?;
        let message = crate::agent::events::user_message("run true", false, serde_json::json!({}));
        tx.append_event(
            &conversation.id,
            &NewEvent {
                source: message.source,
                kind: &message.kind,
                payload: &message.doc,
            },
        )
        .await?;
        queue::enqueue(
            &mut tx,
            &RunConversation {
                conversation_id: conversation.id.clone(),
            },
        )
        .await?;
        tx.commit().await?;
        println!("running {steps} agent steps on {:?} …", db.kind());
        let started = Instant::now();
        loop {
            let status = db.conversation(&conversation.id).await?.status;
            if ["finished", "error", "stopped"].contains(&status.as_str()) {
                anyhow::ensure!(status == "finished", "the run ended in {status}");
                break;
            }
            anyhow::ensure!(
                started.elapsed() < Duration::from_secs(600),
                "the run did not finish within 10 minutes"
            );
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
        let times: Vec<Instant> = arrivals.lock().unwrap_or_else(|e| e.into_inner()).clone();
        let mut step_ms: Vec<f64> = times
            .windows(2)
            .map(|w| (w[1] - w[0]).as_secs_f64() * 1000.0)
            .collect();
        // The reference: `true` in the same sandbox's session.
        let sandbox = backend.start(&conversation.id).await?;
        let request = CommandRequest::new("true");
        let mut true_ms = Vec::new();
        for _ in 0..steps.min(300) {
            let started = Instant::now();
            backend.execute(&sandbox.id, &request, None).await?;
            true_ms.push(started.elapsed().as_secs_f64() * 1000.0);
        }
        let (step50, step99) = (
            percentile(&mut step_ms, 50.0),
            percentile(&mut step_ms, 99.0),
        );
        let (true50, true99) = (
            percentile(&mut true_ms, 50.0),
            percentile(&mut true_ms, 99.0),
        );
        println!();
        println!("| figure | p50 ms | p99 ms | samples |");
        println!("|---|---|---|---|");
        println!(
            "| agent step (`true`, zero-latency model) | {step50:.2} | {step99:.2} | {} |",
            step_ms.len()
        );
        println!(
            "| reference: `true` in the same session | {true50:.2} | {true99:.2} | {} |",
            true_ms.len()
        );
        println!(
            "| loop overhead (step − command, p50) | {:.2} | — | — |",
            step50 - true50
        );
        record("agent.step.p50", step50)?;
        record("agent.step.p99", step99)?;
        record("agent.true.p50", true50)?;
        Ok::<(), anyhow::Error>(())
    }
    .await;
    stop.cancel();
    let _ = workers.await;
    server.abort();
    for sandbox in backend.list().await.unwrap_or_default() {
        let _ = backend.remove(&sandbox.id).await;
    }
    result
}

/// Marks a benchmark event's payload: `bench:<sequence>:<unix time of the append in µs>;`.
const FAN_OUT_MARK: &str = "bench:";

/// See `openhands bench websocket`. A round with one subscriber first measures the path
/// itself (append, NOTIFY, read, send) as the reference for the fan-out round.
pub async fn websocket_fan_out(
    db: &Db,
    config: &Config,
    subscribers: u32,
    rate: u32,
    duration: Duration,
) -> anyhow::Result<()> {
    if subscribers == 0 || rate == 0 || duration.is_zero() {
        bail!("--subscribers, --rate and --duration must each be above 0");
    }
    if db.kind() != DatabaseKind::Postgres {
        bail!(
            "the fan-out benchmark needs PostgreSQL: events reach the web process through NOTIFY"
        );
    }
    let owner = db
        .create_user(
            &format!("bench-{}", uuid::Uuid::new_v4().simple()),
            None,
            false,
        )
        .await?;
    let (key, _) = crate::web::keys::issue_key(db, &owner.id, "bench", None).await?;
    let server = Role::start(
        config,
        "web",
        &[("RATE_LIMIT_PER_IP", "0"), ("RATE_LIMIT_PER_USER", "0")],
    )
    .await?;
    let idle_kib = memory_kib(server.child.id(), "VmRSS:");
    println!(
        "| subscribers | events/s | frames delivered | deliveries/s | p50 ms | p99 ms | max ms |"
    );
    println!("|---|---|---|---|---|---|---|");
    for round in [1, subscribers] {
        let figures =
            fan_out_round(db, &server.url, &owner.id, &key, round, rate, duration).await?;
        let name = if round == 1 {
            "websocket.reference"
        } else {
            "websocket"
        };
        record(&format!("{name}.p50"), figures.p50_ms)?;
        record(&format!("{name}.p99"), figures.p99_ms)?;
        record(
            &format!("{name}.delivered_share"),
            figures.delivered as f64 / figures.expected.max(1) as f64,
        )?;
        println!(
            "| {round}{} | {rate} | {} of {} | {:.0} | {:.1} | {:.1} | {:.1} |",
            if round == 1 { " (reference)" } else { "" },
            figures.delivered,
            figures.expected,
            figures.delivered as f64 / figures.append_secs,
            figures.p50_ms,
            figures.p99_ms,
            figures.max_ms,
        );
    }
    let peak_kib = memory_kib(server.child.id(), "VmHWM:");
    server.stop();
    println!(
        "web process memory: {:.0} MB resident when idle, {:.0} MB at its peak",
        mib(idle_kib),
        mib(peak_kib)
    );
    record("websocket.subscribers", f64::from(subscribers))?;
    record("websocket.rate", f64::from(rate))?;
    record("memory.web_websocket.idle", mib(idle_kib))?;
    record("memory.web_websocket.peak", mib(peak_kib))?;
    Ok(())
}

struct FanOutFigures {
    delivered: u64,
    expected: u64,
    append_secs: f64,
    p50_ms: f64,
    p99_ms: f64,
    max_ms: f64,
}

/// `subscribers` sockets on a new conversation while `rate` events per second are appended
/// for `duration`; the latency of each frame from its append to its arrival.
async fn fan_out_round(
    db: &Db,
    server_url: &str,
    owner_id: &str,
    key: &str,
    subscribers: u32,
    rate: u32,
    duration: Duration,
) -> anyhow::Result<FanOutFigures> {
    use futures::StreamExt;
    use tokio_tungstenite::tungstenite::client::IntoClientRequest;

    let conversation = db
        .create_conversation(&crate::storage::NewConversation {
            owner_id,
            title: "fan-out benchmark",
            trigger_kind: "web",
            ..Default::default()
        })
        .await?;
    // Connect every subscriber before the first event.
    let socket_url = format!(
        "{}/sockets/events/{}",
        server_url.replacen("http://", "ws://", 1),
        conversation.id
    );
    let total_events = (u64::from(rate) * duration.as_millis() as u64 / 1000).max(1);
    let deadline = Instant::now() + duration + Duration::from_secs(60);
    let mut readers = tokio::task::JoinSet::new();
    for _ in 0..subscribers {
        let mut request = socket_url.as_str().into_client_request()?;
        request
            .headers_mut()
            .insert("authorization", format!("Bearer {key}").parse()?);
        let (socket, _) = tokio_tungstenite::connect_async(request)
            .await
            .context("a subscriber could not connect")?;
        readers.spawn(async move {
            let (_, mut incoming) = socket.split();
            let mut latencies_us = Vec::with_capacity(total_events as usize);
            while (latencies_us.len() as u64) < total_events {
                let frame = match tokio::time::timeout_at(deadline.into(), incoming.next()).await {
                    Ok(Some(Ok(frame))) => frame,
                    _ => break,
                };
                let Ok(text) = frame.to_text() else { continue };
                if let Some(sent_us) = fan_out_sent_us(text) {
                    latencies_us.push(unix_micros().saturating_sub(sent_us));
                }
            }
            latencies_us
        });
    }

    // Append in batches every 10 ms, each batch one transaction, as an agent step does.
    const TICK: Duration = Duration::from_millis(10);
    let mut tick = tokio::time::interval(TICK);
    tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Burst);
    let mut appended: u64 = 0;
    let started = Instant::now();
    while appended < total_events {
        tick.tick().await;
        let due = (u64::from(rate) * started.elapsed().as_micros() as u64 / 1_000_000 + 1)
            .min(total_events);
        let mut tx = db.begin().await?;
        while appended < due {
            let payload = serde_json::json!({ "content": format!("{FAN_OUT_MARK}{appended}:{};", unix_micros()) });
            tx.append_event(
                &conversation.id,
                &crate::storage::NewEvent {
                    source: "agent",
                    kind: "message",
                    payload: &payload,
                },
            )
            .await?;
            appended += 1;
        }
        tx.commit().await?;
    }
    let append_secs = started.elapsed().as_secs_f64();
    let mut latencies = Vec::new();
    while let Some(result) = readers.join_next().await {
        latencies.extend(result?);
    }
    latencies.sort_unstable();
    let at = |q: f64| -> f64 {
        latencies
            .get(((latencies.len() as f64 - 1.0) * q).round() as usize)
            .map_or(f64::NAN, |&us| us as f64 / 1000.0)
    };
    Ok(FanOutFigures {
        delivered: latencies.len() as u64,
        expected: total_events * u64::from(subscribers),
        append_secs,
        p50_ms: at(0.5),
        p99_ms: at(0.99),
        max_ms: at(1.0),
    })
}

/// The append time carried by a benchmark event's frame.
fn fan_out_sent_us(frame: &str) -> Option<u64> {
    let rest = &frame[frame.find(FAN_OUT_MARK)? + FAN_OUT_MARK.len()..];
    let (_, rest) = rest.split_once(':')?;
    rest[..rest.find(';')?].parse().ok()
}

fn unix_micros() -> u64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.as_micros() as u64)
}

/// A memory figure of a process from `/proc/PID/status`, in KiB (0 when unknown).
fn memory_kib(pid: u32, field: &str) -> u64 {
    std::fs::read_to_string(format!("/proc/{pid}/status"))
        .ok()
        .and_then(|status| {
            status
                .lines()
                .find_map(|line| line.strip_prefix(field))
                .and_then(|value| value.trim().trim_end_matches("kB").trim().parse().ok())
        })
        .unwrap_or(0)
}

#[cfg(test)]
mod fan_out_tests {
    use super::*;

    #[test]
    fn the_report_sets_figures_beside_their_references() {
        let figures: std::collections::HashMap<String, f64> = [
            ("reference.pgbench_inserts_per_s", 10_000.0),
            ("ingest.rate.postgres", 5_000.0),
            ("sandbox.true.p50", 2.0),
            ("sandbox.true.p99", 4.5),
            ("reference.docker_exec.p50", 40.0),
        ]
        .into_iter()
        .map(|(name, value)| (name.to_string(), value))
        .collect();
        let rows = report_rows(&figures).join("\n");
        assert!(
            rows.contains("| webhook ingest, PostgreSQL: signed GitHub deliveries/s (32 clients) | 5000 | pgbench single-row INSERTs: 10000/s | 0.50× |"),
            "{rows}"
        );
        assert!(
            rows.contains("| command round trip (`true`, warm session): p50 / p99, ms | 2.00 / 4.50 | `docker exec … true` (CLI) p50: 40.00 ms | 0.050× |"),
            "{rows}"
        );
        // A part that did not run shows as missing, not as zero.
        assert!(rows.contains("| webhook ingest, SQLite: signed GitHub deliveries/s (32 clients) | — | pgbench single-row INSERTs: 10000/s | — |"), "{rows}");
    }

    #[test]
    fn the_append_time_is_read_back_from_a_frame() {
        let frame = r#"{"id":3,"payload":{"content":"bench:2:1700000000123456;"}}"#;
        assert_eq!(fan_out_sent_us(frame), Some(1_700_000_000_123_456));
        assert_eq!(fan_out_sent_us(r#"{"id":3}"#), None);
    }
}
