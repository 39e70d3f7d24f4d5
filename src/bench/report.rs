//! `openhands bench report`: reads the figures file the other benchmarks wrote
//! (`BENCH_FIGURES`) and prints one markdown table, each figure beside the reference measured in
//! the same run and their ratio; a figure that did not run shows as `—`. It measures nothing.

use anyhow::Context as _;
use anyhow::bail;

/// Prints the figures that the benchmarks wrote to `path` as one markdown table, each beside
/// the reference measured in the same run and their ratio (docs/benchmarks.md's table).
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
        let answered = get(&format!("reference.webhook_answer_per_s.{backend}"));
        let answered_p99 = get(&format!("reference.webhook_answer_p99.{backend}"));
        row(
            format!("webhook ingest, {label}: signed GitHub deliveries/s (32 clients)"),
            number(rate, 0),
            format!(
                "verify and answer 202 without storing: {}/s",
                number(answered, 0)
            ),
            ratio(rate, answered),
        );
        row(
            format!("webhook ingest, {label}: signed GitHub deliveries/s, against pgbench"),
            number(rate, 0),
            pgbench_text.clone(),
            ratio(rate, pgbench),
        );
        let p99 = get(&format!("ingest.p99.{backend}"));
        row(
            format!("webhook ingest, {label}: latency p50 / p99, ms"),
            pair(
                &format!("ingest.p50.{backend}"),
                &format!("ingest.p99.{backend}"),
                2,
            ),
            format!(
                "verify and answer 202 without storing p99: {} ms",
                number(answered_p99, 2)
            ),
            ratio(p99, answered_p99),
        );
        let beside = get(&format!("ingest.p99_beside_cpu.{backend}"));
        row(
            format!("webhook ingest, {label}: p99 beside a CPU-bound process, ms"),
            number(beside, 2),
            format!("alone: {} ms", number(p99, 2)),
            ratio(beside, p99),
        );
        row(
            format!("webhook ingest, {label}: longest answer at 512 clients, ms"),
            number(get(&format!("ingest.overload_max_ms.{backend}")), 0),
            "GitHub waits 10,000 ms".into(),
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
    let plain_step = get("agent.step.p50");
    row(
        "agent step, an idle MCP server of 5 tools configured: p50 / p99, ms".into(),
        pair("agent.step_mcp_idle.p50", "agent.step_mcp_idle.p99", 2),
        format!("agent step without it p50: {} ms", number(plain_step, 2)),
        ratio(get("agent.step_mcp_idle.p50"), plain_step),
    );
    let post = get("reference.http_post.p50");
    row(
        "MCP tool call, streamable HTTP on loopback: p50 / p99, ms".into(),
        pair("tools.mcp_call.p50", "tools.mcp_call.p99", 2),
        format!("POST of the same body p50: {} ms", number(post, 2)),
        ratio(get("tools.mcp_call.p50"), post),
    );
    let curl = get("reference.curl_exec.p50");
    row(
        "`fetch` of a 40 KB page in the sandbox: p50 / p99, ms".into(),
        pair("tools.fetch.p50", "tools.fetch.p99", 2),
        format!(
            "`curl` of it in the same sandbox p50: {} ms",
            number(curl, 2)
        ),
        ratio(get("tools.fetch.p50"), curl),
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

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_report_sets_figures_beside_their_references() {
        let figures: std::collections::HashMap<String, f64> = [
            ("reference.pgbench_inserts_per_s", 10_000.0),
            ("ingest.rate.postgres", 5_000.0),
            ("reference.webhook_answer_per_s.postgres", 8_000.0),
            ("sandbox.true.p50", 2.0),
            ("sandbox.true.p99", 4.5),
            ("reference.docker_exec.p50", 40.0),
        ]
        .into_iter()
        .map(|(name, value)| (name.to_string(), value))
        .collect();
        let rows = report_rows(&figures).join("\n");
        assert!(
            rows.contains("| webhook ingest, PostgreSQL: signed GitHub deliveries/s, against pgbench | 5000 | pgbench single-row INSERTs: 10000/s | 0.50× |"),
            "{rows}"
        );
        assert!(
            rows.contains("| webhook ingest, PostgreSQL: signed GitHub deliveries/s (32 clients) | 5000 | verify and answer 202 without storing: 8000/s | 0.62× |"),
            "{rows}"
        );
        assert!(
            rows.contains("| command round trip (`true`, warm session): p50 / p99, ms | 2.00 / 4.50 | `docker exec … true` (CLI) p50: 40.00 ms | 0.050× |"),
            "{rows}"
        );
        // A part that did not run shows as missing, not as zero.
        assert!(rows.contains("| webhook ingest, SQLite: signed GitHub deliveries/s, against pgbench | — | pgbench single-row INSERTs: 10000/s | — |"), "{rows}");
    }
}
