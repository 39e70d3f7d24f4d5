//! `openhands bench ingest`: signed GitHub deliveries per second, and their latency, durably
//! accepted by a `web` process of this binary, sent from this process over loopback. Measured
//! in the same run beside it: a reference server (`bench ingest-reference`) that only verifies
//! each signature and answers 202, with the same clients, so the figures say what storing
//! costs on this machine. Then the service again with a CPU-bound process beside it, and under
//! overload (many more clients), where the longest wait and the 503 answers are counted.
//! Prints each round, then a table of the medians and the web process's peak memory.

use std::time::{Duration, Instant};

use anyhow::bail;

use super::{Role, backend_name, median, mib, record};
use crate::config::Config;
use crate::storage::DatabaseKind;

/// The GitHub delivery every benchmark request carries: a realistic issue comment that asks
/// the agent for something, so each one is stored as accepted with an intake job.
const INGEST_PAYLOAD: &[u8] =
    include_bytes!("../../tests/fixtures/github/issue_comment.created.json");
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
    let backend = backend_name(DatabaseKind::of_url(config.database.database_url.expose())?);
    let rounds_of = |name: &'static str| Rounds {
        name,
        deliveries,
        concurrency,
        rounds,
        round_timeout,
    };

    let reference = Role::start(config, "bench ingest-reference", &[]).await?;
    let answered = rounds_of("reference")
        .run(&Load::new(&reference.url, concurrency)?)
        .await?;
    reference.stop();

    let server = Role::start(config, "web", &[("GITHUB_WEBHOOK_SECRET", INGEST_SECRET)]).await?;
    let load = Load::new(&server.url, concurrency)?;
    let (rate, p50, p99) = rounds_of("service").run(&load).await?;

    // One core kept busy by another process, as a build or a test run beside the service.
    let burner = std::process::Command::new(std::env::current_exe()?)
        .args(["bench", "burn-cpu", "--seconds", "300"])
        .stdin(std::process::Stdio::null())
        .spawn()?;
    let burner = Burner(burner);
    let beside_cpu = load
        .round("beside-cpu", deliveries, concurrency, round_timeout, false)
        .await?;
    drop(burner);
    println!(
        "beside a CPU-bound process: {:.0} deliveries/s, p50 {:.2} ms, p99 {:.2} ms",
        beside_cpu.rate, beside_cpu.p50_ms, beside_cpu.p99_ms
    );

    // Far more clients than the service can serve at once: every answer must still come
    // within the provider's wait (8 s for GitHub), as 202 or as 503 (busy).
    let overload_clients = concurrency * OVERLOAD_FACTOR;
    let overload = Load::new(&server.url, overload_clients)?
        .round(
            "overload",
            deliveries.min(OVERLOAD_DELIVERIES),
            overload_clients,
            round_timeout,
            true,
        )
        .await?;
    println!(
        "overload ({overload_clients} clients): {:.0} deliveries/s, p99 {:.2} ms, longest {:.2} ms, {} answered busy",
        overload.rate, overload.p99_ms, overload.max_ms, overload.busy
    );
    let web_peak_kib = server.peak_kib();
    server.stop();
    println!(
        "ingest {backend}: {deliveries} signed GitHub deliveries ({} bytes each) x {rounds} rounds, concurrency {concurrency}",
        INGEST_PAYLOAD.len()
    );
    let (reference_rate, reference_p50, reference_p99) = answered;
    println!("| server | deliveries/s | p50 ms | p99 ms | web peak MB |");
    println!("|---|---|---|---|---|");
    println!(
        "| reference: verify and answer 202, no storing | {reference_rate:.0} | {reference_p50:.2} | {reference_p99:.2} | |"
    );
    println!(
        "| service on {backend} | {rate:.0} | {p50:.2} | {p99:.2} | {:.1} |",
        mib(web_peak_kib)
    );
    println!(
        "| service on {backend}, beside a CPU-bound process | {:.0} | {:.2} | {:.2} | |",
        beside_cpu.rate, beside_cpu.p50_ms, beside_cpu.p99_ms
    );
    println!(
        "storing costs {:.0}% of the reference's rate; overload ({overload_clients} clients): longest wait {:.0} ms, {} of {} answered busy",
        100.0 * (1.0 - rate / reference_rate.max(1.0)),
        overload.max_ms,
        overload.busy,
        deliveries.min(OVERLOAD_DELIVERIES)
    );
    record(
        &format!("reference.webhook_answer_per_s.{backend}"),
        reference_rate,
    )?;
    record(
        &format!("reference.webhook_answer_p99.{backend}"),
        reference_p99,
    )?;
    record(
        &format!("ingest.p99_beside_cpu.{backend}"),
        beside_cpu.p99_ms,
    )?;
    record(
        &format!("ingest.overload_max_ms.{backend}"),
        overload.max_ms,
    )?;
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

/// Serves `bench ingest-reference` on 127.0.0.1:PORT until killed.
pub async fn serve_reference() -> anyhow::Result<()> {
    use axum::http::{HeaderMap, StatusCode};
    let port: u16 = std::env::var("PORT")?.parse()?;
    let secrets = std::sync::Arc::new(crate::integrations::signature::WebhookSecrets::new([
        INGEST_SECRET,
    ]));
    let answer = move |headers: HeaderMap, body: axum::body::Bytes| {
        let secrets = secrets.clone();
        async move {
            let verified = crate::integrations::verify(
                crate::integrations::request::Provider::Github,
                &headers,
                &body,
                &secrets,
                crate::storage::now_millis(),
            );
            match verified {
                Ok(()) => (StatusCode::ACCEPTED, "{\"status\":\"accepted\"}"),
                Err(_) => (StatusCode::UNAUTHORIZED, "{\"error\":\"bad signature\"}"),
            }
        }
    };
    let app = axum::Router::new().route(
        "/api/integration/github/events",
        axum::routing::post(answer),
    );
    let listener = tokio::net::TcpListener::bind(("127.0.0.1", port)).await?;
    axum::serve(listener, app).await?;
    Ok(())
}

/// Spins one core until `duration` has passed.
pub fn burn_cpu(duration: Duration) {
    let started = Instant::now();
    let mut x: u64 = 1;
    while started.elapsed() < duration {
        for _ in 0..100_000 {
            x = std::hint::black_box(x.wrapping_mul(6364136223846793005).wrapping_add(1));
        }
    }
}

/// The CPU-bound neighbour, killed when dropped (it also stops by itself).
struct Burner(std::process::Child);

impl Drop for Burner {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

/// Clients per client of the normal rounds, in the overload round.
const OVERLOAD_FACTOR: u32 = 16;
/// Deliveries of the overload round, at most.
const OVERLOAD_DELIVERIES: u32 = 10_000;

/// A warm-up, then `rounds` measured rounds against one server; the medians.
struct Rounds {
    name: &'static str,
    deliveries: u32,
    concurrency: u32,
    rounds: u32,
    round_timeout: Duration,
}

impl Rounds {
    async fn run(&self, load: &Load) -> anyhow::Result<(f64, f64, f64)> {
        let Rounds {
            name,
            deliveries,
            concurrency,
            rounds,
            round_timeout,
        } = *self;
        // Warm the connections, the server's caches and the database.
        load.round(
            &format!("{name}-warmup"),
            deliveries.min(2000),
            concurrency,
            round_timeout,
            false,
        )
        .await?;
        let mut rates = Vec::new();
        let mut p50s = Vec::new();
        let mut p99s = Vec::new();
        for round in 1..=rounds {
            let result = load
                .round(
                    &format!("{name}-r{round}"),
                    deliveries,
                    concurrency,
                    round_timeout,
                    false,
                )
                .await?;
            println!(
                "{name} round {round}/{rounds}: {:.0} deliveries/s, p50 {:.2} ms, p99 {:.2} ms",
                result.rate, result.p50_ms, result.p99_ms
            );
            rates.push(result.rate);
            p50s.push(result.p50_ms);
            p99s.push(result.p99_ms);
        }
        Ok((median(&mut rates), median(&mut p50s), median(&mut p99s)))
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
    max_ms: f64,
    /// Deliveries answered 503 (busy).
    busy: u32,
}

impl Load {
    fn new(server_url: &str, concurrency: u32) -> anyhow::Result<Self> {
        let client = reqwest::Client::builder()
            .pool_max_idle_per_host(concurrency as usize)
            .timeout(Duration::from_secs(30))
            .build()?;
        Ok(Self {
            client,
            url: format!("{server_url}/api/integration/github/events"),
            signature: format!(
                "sha256={}",
                hex::encode(hmac_sha256(INGEST_SECRET.as_bytes(), INGEST_PAYLOAD))
            ),
            run: uuid::Uuid::new_v4().simple().to_string(),
        })
    }

    /// Sends `count` deliveries from `concurrency` clients; every one must be accepted, or
    /// answered busy (503) when `busy_allowed`.
    async fn round(
        &self,
        name: &str,
        count: u32,
        concurrency: u32,
        timeout: Duration,
        busy_allowed: bool,
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
                let mut busy = 0u32;
                loop {
                    let n = next.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
                    if n >= count {
                        return anyhow::Ok((latencies, busy));
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
                    if busy_allowed && status == reqwest::StatusCode::SERVICE_UNAVAILABLE {
                        busy += 1;
                    } else if status != reqwest::StatusCode::ACCEPTED {
                        bail!("delivery {n} was answered {status}, not 202");
                    }
                    latencies.push(sent.elapsed());
                }
            });
        }
        let mut latencies = Vec::with_capacity(count as usize);
        let mut busy = 0;
        while let Some(result) = tasks.join_next().await {
            let (measured, answered_busy) = result??;
            latencies.extend(measured);
            busy += answered_busy;
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
            max_ms: percentile(1.0),
            busy,
        })
    }
}
