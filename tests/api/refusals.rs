//! Refusals decided before the body is read (413 on `Content-Length`, 401 for a bad token,
//! 415) must reach a client that sends its whole body before it reads, as most HTTP
//! libraries do. Closing a socket with unread bytes makes the kernel answer them with a
//! reset, which can destroy the response before the client reads it; these tests use a
//! raw socket that behaves like such a library, so that any lost answer shows.

use std::io::{ErrorKind, Read, Write};
use std::net::TcpStream;
use std::time::{Duration, Instant};

use crate::helpers::TestApp;

/// The body every request here announces: far over the 64 KiB limit, and more than the
/// kernel buffers of a loopback connection hold.
const ANNOUNCED: usize = 16 * 1024 * 1024;
/// The client's write size.
const PIECE: usize = 16 * 1024;

/// What the client saw: the response bytes, and whether its sending failed.
struct Exchange {
    response: String,
    send_failed: bool,
}

impl Exchange {
    fn status_line(&self) -> &str {
        self.response.lines().next().unwrap_or_default()
    }

    fn has_header(&self, name: &str, value: &str) -> bool {
        let head = self.response.split("\r\n\r\n").next().unwrap_or_default();
        head.lines().skip(1).any(|line| {
            line.split_once(':').is_some_and(|(n, v)| {
                n.trim().eq_ignore_ascii_case(name) && v.trim().eq_ignore_ascii_case(value)
            })
        })
    }
}

/// Sends `head`, then `total` bytes in pieces (pausing `pause` between them), and only
/// then reads the answer until the server closes. A failed send stops the sending, as it
/// would stop a library's, but the client still tries to read what arrived.
fn send_then_read(address: &str, head: &str, total: usize, pause: Duration) -> Exchange {
    let mut stream = TcpStream::connect(address).expect("connect");
    stream
        .set_read_timeout(Some(Duration::from_secs(20)))
        .expect("timeout");
    stream.write_all(head.as_bytes()).expect("the head is sent");
    let piece = vec![b'a'; PIECE];
    let mut sent = 0;
    let mut send_failed = false;
    while sent < total {
        let n = PIECE.min(total - sent);
        if stream.write_all(&piece[..n]).is_err() {
            send_failed = true;
            break;
        }
        sent += n;
        if !pause.is_zero() {
            std::thread::sleep(pause);
        }
    }
    let mut response = Vec::new();
    let mut buffer = [0_u8; 4096];
    loop {
        match stream.read(&mut buffer) {
            Ok(0) => break,
            Ok(n) => response.extend_from_slice(&buffer[..n]),
            Err(e) if e.kind() == ErrorKind::Interrupted => {}
            Err(_) => break,
        }
    }
    Exchange {
        response: String::from_utf8_lossy(&response).into_owned(),
        send_failed,
    }
}

fn head(address: &str, token: &str, content_type: &str) -> String {
    head_announcing(address, token, content_type, ANNOUNCED)
}

fn head_announcing(address: &str, token: &str, content_type: &str, length: usize) -> String {
    format!(
        "POST /tasks HTTP/1.1\r\nHost: {address}\r\nAuthorization: Bearer {token}\r\n\
         Content-Type: {content_type}\r\nContent-Length: {length}\r\n\r\n"
    )
}

fn address(app: &TestApp) -> String {
    app.address.trim_start_matches("http://").to_owned()
}

/// Many clients at once, each refused before its body is read, each sending it all first.
async fn every_refusal_arrives(head: String, expected: &'static str) {
    let app = TestApp::spawn().await;
    let address = address(&app);
    let clients: Vec<_> = (0..12)
        .map(|_| {
            let address = address.clone();
            let head = head.clone();
            tokio::task::spawn_blocking(move || {
                send_then_read(&address, &head, ANNOUNCED, Duration::ZERO)
            })
        })
        .collect();
    for client in clients {
        let exchange = client.await.expect("the client finished");
        assert!(
            exchange.status_line().starts_with(expected),
            "expected {expected:?}, got {:?} (send failed: {})",
            exchange.status_line(),
            exchange.send_failed
        );
        assert!(
            !exchange.send_failed,
            "the server reset the connection while the client was still sending"
        );
        assert!(
            exchange.has_header("connection", "close"),
            "a refusal that leaves the body unread says the connection closes: {}",
            exchange.response
        );
        assert!(exchange.response.contains("application/problem+json"));
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_413_on_content_length_reaches_a_client_that_sends_everything_first() {
    let app = TestApp::spawn().await;
    let user = app.new_user().await;
    let address = address(&app);
    every_refusal_arrives(
        head(&address, &user.token, "application/json"),
        "HTTP/1.1 413",
    )
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_401_for_a_bad_token_reaches_a_client_that_sends_everything_first() {
    every_refusal_arrives(
        head("localhost", "not-a-token", "application/json"),
        "HTTP/1.1 401",
    )
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_415_reaches_a_client_that_sends_everything_first() {
    let app = TestApp::spawn().await;
    let user = app.new_user().await;
    every_refusal_arrives(head("localhost", &user.token, "text/plain"), "HTTP/1.1 415").await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_refusal_reaches_a_client_that_sends_its_body_slowly() {
    let app = TestApp::spawn().await;
    let address = address(&app);
    // 300 KB in 19 pieces, 20 ms apart: well inside the server's patience.
    let total = 300_000;
    let head = head_announcing(&address, "not-a-token", "application/json", total);
    let exchange = tokio::task::spawn_blocking(move || {
        send_then_read(&address, &head, total, Duration::from_millis(20))
    })
    .await
    .expect("the client finished");
    assert!(
        exchange.status_line().starts_with("HTTP/1.1 401"),
        "got {:?} (send failed: {})",
        exchange.status_line(),
        exchange.send_failed
    );
    assert!(!exchange.send_failed);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_body_that_never_ends_does_not_hold_the_connection_open() {
    let app = TestApp::spawn().await;
    let address = address(&app);
    let head = head(&address, "not-a-token", "application/json");
    let started = Instant::now();
    let ended = tokio::task::spawn_blocking(move || {
        let mut stream = TcpStream::connect(&address).expect("connect");
        stream.write_all(head.as_bytes()).expect("the head is sent");
        // A trickle that would take far longer than any budget: 1 byte every 100 ms.
        for _ in 0..600 {
            if stream.write_all(b"a").is_err() {
                return true;
            }
            std::thread::sleep(Duration::from_millis(100));
        }
        false
    })
    .await
    .expect("the client finished");
    assert!(ended, "the server never closed the connection");
    assert!(
        started.elapsed() < Duration::from_secs(30),
        "closed only after {:?}",
        started.elapsed()
    );
}

#[tokio::test]
async fn a_request_whose_body_is_read_keeps_its_connection() {
    let app = TestApp::spawn().await;
    let user = app.new_user().await;
    for body in [
        serde_json::json!({"title": "kept"}),
        serde_json::json!({"title": ""}),
    ] {
        let response = app
            .send_json(reqwest::Method::POST, "/tasks", Some(&user.token), &body)
            .await;
        assert!(
            response.headers().get("connection").is_none(),
            "{}: a read body leaves the connection reusable",
            response.status()
        );
    }
}
