//! `openhands bench ingest`: signed GitHub deliveries per second, and their latency, durably
//! accepted by a `web` process of this binary, sent from this process over loopback. Prints each
//! round, then a table of the medians (deliveries/s, p50 and p99 ms) and the web process's peak
//! memory.

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
    let backend = backend_name(DatabaseKind::of_url(config.database.database_url.expose())?);
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
