//! Live tail: `GET /loki/api/v1/tail` upgraded to a WebSocket, as Grafana's
//! live mode and `logcli --tail` open it. First the newest `limit` lines
//! since `start` (default an hour ago), oldest first; then, every second,
//! the lines that arrived after the last one sent (read `delay_for`
//! seconds behind, at most 5), each batch one message
//! `{"streams": [{"stream": {…}, "values": [["<ns>", "line"]…]}]}`.

use std::collections::{BTreeMap, VecDeque};
use std::sync::Arc;
use std::time::Duration;

use axum::extract::ws::{Message, WebSocket, WebSocketUpgrade};
use sightline_storage::logs::SortKey;
use sightline_storage::model::Tenant;

use super::model::Stream;
use crate::error::ApiError;
use crate::logql::ast::Query;
use crate::logql::pipeline::{Labels, Line};
use crate::logql::{Compiled, Reader};
use crate::state::QueryState;

/// What a tail follows.
pub struct Tail {
    pub tenant: Tenant,
    pub compiled: Arc<Compiled>,
    pub start: i64,
    pub limit: usize,
    /// Nanoseconds behind now that reads stop, for late lines.
    pub delay: i64,
}

#[derive(serde::Serialize)]
struct Batch {
    streams: Vec<Stream>,
}

pub fn upgrade(state: QueryState, tail: Tail, ws: WebSocketUpgrade) -> Result<axum::response::Response, ApiError> {
    if !matches!(tail.compiled.query, Query::Log(_)) {
        return Err(ApiError::BadRequest("tail needs a log query, not a metric query".into()));
    }
    Ok(ws.on_upgrade(move |socket| follow(state, tail, socket)))
}

/// Reads the lines after `after` up to `now − delay`; the new `after`.
async fn read(
    state: &QueryState,
    tail: &Tail,
    after: Option<SortKey>,
    keep: usize,
) -> Result<(Vec<Line>, Option<SortKey>), ApiError> {
    let (logs, tenant, compiled) = (state.logs.clone(), tail.tenant.clone(), tail.compiled.clone());
    let end = sightline_storage::model::now_unix_nanos() as i64 - tail.delay;
    let start = tail.start;
    let read = state
        .read_logs(move |deadline| {
            let Query::Log(log) = &compiled.query else { return Ok(Ok((Vec::new(), after))) };
            let reader = Reader { store: &logs, tenant: &tenant, compiled: &compiled, deadline };
            let mut lines = VecDeque::new();
            let last = reader.scan_after(log, (start, end), false, after, |line| {
                if let Some((line, _)) = compiled.regexes().run(&log.stages, line) {
                    lines.push_back(line);
                    if lines.len() > keep {
                        lines.pop_front();
                    }
                }
                true
            })?;
            Ok(last.map(|last| (Vec::from(lines), last.or(after))))
        })
        .await?;
    read.map_err(ApiError::BadRequest)
}

async fn send(socket: &mut WebSocket, lines: Vec<Line>) -> bool {
    if lines.is_empty() {
        return true;
    }
    let mut by: BTreeMap<Labels, Vec<(i64, String)>> = BTreeMap::new();
    for l in lines {
        by.entry(l.labels).or_default().push((l.ts, l.text));
    }
    let batch = Batch { streams: by.into_iter().map(|(stream, values)| Stream { stream, values }).collect() };
    let Ok(text) = serde_json::to_string(&batch) else { return false };
    socket.send(Message::Text(text.into())).await.is_ok()
}

async fn follow(state: QueryState, tail: Tail, mut socket: WebSocket) {
    let mut after = None;
    let mut keep = tail.limit;
    let mut tick = tokio::time::interval(Duration::from_secs(1));
    loop {
        tokio::select! {
            _ = tick.tick() => {}
            incoming = socket.recv() => match incoming {
                Some(Ok(Message::Close(_))) | None | Some(Err(_)) => return,
                Some(Ok(_)) => continue,
            },
        }
        match read(&state, &tail, after, keep).await {
            Ok((lines, last)) => {
                after = last;
                if !send(&mut socket, lines).await {
                    return;
                }
            }
            Err(e) => {
                // A close frame's reason holds at most 123 bytes.
                let mut reason = e.to_string();
                while reason.len() > 120 {
                    reason.pop();
                }
                let frame = axum::extract::ws::CloseFrame { code: 1011, reason: reason.into() };
                let _ = socket.send(Message::Close(Some(frame))).await;
                return;
            }
        }
        // After the first batch, every new line is sent.
        keep = usize::MAX;
    }
}
