//! `openhands bench websocket`: WebSocket fan-out on PostgreSQL — subscribers of one conversation
//! on a `web` process of this binary while this process appends events at a steady rate. Prints
//! one table with a row per round (one subscriber as the reference, then all): frames delivered
//! and their latency from append to receipt (p50, p99, max ms); then the web process's idle and
//! peak memory.

use std::time::{Duration, Instant};

use anyhow::Context as _;
use anyhow::bail;

use super::{Role, memory_kib, mib, record};
use crate::config::Config;
use crate::storage::{DatabaseKind, Db};

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

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_append_time_is_read_back_from_a_frame() {
        let frame = r#"{"id":3,"payload":{"content":"bench:2:1700000000123456;"}}"#;
        assert_eq!(fan_out_sent_us(frame), Some(1_700_000_000_123_456));
        assert_eq!(fan_out_sent_us(r#"{"id":3}"#), None);
    }
}
