//! `openhands bench sandbox`: sandbox latencies on this machine's Docker engine — warm-pool
//! acquire, cold create+start, and the `true` round trip in a warm session and through a
//! `runtime-api` process on loopback — with `docker exec` and `docker run --rm` through the CLI
//! as references. Prints one table of p50 and p99 in ms, and the runtime-api's peak memory.

use std::time::Instant;

use anyhow::Context as _;

use super::{Role, mib, percentile, record};
use crate::config::Config;

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
