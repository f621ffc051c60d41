//! Connections spread over the proxy workers. Each worker is a single-threaded event loop that
//! serves its connections start to finish, so a worker holding most connections is a core at
//! its limit beside an idle one (issue 17: one worker held all 32 of wrk's connections in two of
//! three runs). The listener gives each new connection to the worker serving the fewest; the
//! operator sees the split in `om_gateway_worker_connections{worker}`.

use crate::support::gateway::Stack;
use crate::support::TestGateway;
use std::time::Duration;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;

/// Send one keep-alive GET on `stream` and read its response head and body (the test upstream
/// answers with a `Content-Length`); the status.
async fn exchange(stream: &mut TcpStream, gateway: &TestGateway, token: &str) -> u16 {
    let request = format!(
        "GET /api/v1/tables HTTP/1.1\r\nHost: {}\r\nAuthorization: Bearer {token}\r\n\r\n",
        gateway.proxy()
    );
    let answered = async {
        stream.write_all(request.as_bytes()).await.expect("write");
        let mut bytes = Vec::new();
        let mut buffer = [0u8; 4096];
        loop {
            let read = stream.read(&mut buffer).await.expect("read");
            assert!(read > 0, "connection closed mid-response: {bytes:?}");
            bytes.extend_from_slice(&buffer[..read]);
            let text = String::from_utf8_lossy(&bytes);
            let Some((head, body)) = text.split_once("\r\n\r\n") else {
                continue;
            };
            let length = head
                .lines()
                .find_map(|line| {
                    let (name, value) = line.split_once(':')?;
                    name.eq_ignore_ascii_case("content-length")
                        .then(|| value.trim().parse::<usize>().ok())?
                })
                .expect("the upstream's answer has a Content-Length");
            if body.len() >= length {
                return head
                    .split_whitespace()
                    .nth(1)
                    .and_then(|code| code.parse().ok())
                    .expect("status line");
            }
        }
    };
    tokio::time::timeout(Duration::from_secs(10), answered)
        .await
        .expect("answered within 10 s")
}

async fn worker_connections(gateway: &TestGateway) -> Vec<f64> {
    let metrics = gateway.metrics().await;
    (0..2)
        .map(|worker| {
            metrics.get(
                "om_gateway_worker_connections",
                &[("worker", &worker.to_string())],
            )
        })
        .collect()
}

#[tokio::test]
async fn connections_are_spread_evenly_over_the_workers() {
    let stack = Stack::start("server:\n  workers: 2\n").await;
    let token = stack.key.tokens().personal();
    let mut connections = Vec::new();
    // Opened one after another, each answered before the next opens: the order in which a
    // client pool or an ingress opens its connections.
    for _ in 0..8 {
        let mut stream = TcpStream::connect(stack.gateway.proxy())
            .await
            .expect("connect");
        assert_eq!(exchange(&mut stream, &stack.gateway, &token).await, 200);
        connections.push(stream);
    }
    assert_eq!(
        worker_connections(&stack.gateway).await,
        vec![4.0, 4.0],
        "eight connections, two workers"
    );
    // Every connection keeps being served on whichever worker it went to.
    for stream in &mut connections {
        assert_eq!(exchange(stream, &stack.gateway, &token).await, 200);
    }
    // Closed connections leave the count; new ones fill the emptier worker first.
    connections.truncate(2);
    let mut drained = Vec::new();
    for _ in 0..50 {
        drained = worker_connections(&stack.gateway).await;
        if drained.iter().sum::<f64>() == 2.0 {
            break;
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    assert_eq!(
        drained.iter().sum::<f64>(),
        2.0,
        "closed connections counted out: {drained:?}"
    );
    for _ in 0..4 {
        let mut stream = TcpStream::connect(stack.gateway.proxy())
            .await
            .expect("connect");
        assert_eq!(exchange(&mut stream, &stack.gateway, &token).await, 200);
        connections.push(stream);
    }
    assert_eq!(worker_connections(&stack.gateway).await, vec![3.0, 3.0]);
}
