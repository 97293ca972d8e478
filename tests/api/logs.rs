//! The real binary's log output: one access-log line per request, as JSON with
//! `LOG_FORMAT=json`, and no colour codes when standard output is not a terminal.

use std::io::{BufRead, BufReader};
use std::process::{Child, Command, Stdio};
use std::sync::mpsc;
use std::time::Duration;

use serde_json::Value;

/// The binary on its own private PostgreSQL in a fresh data directory, its output piped.
struct Server {
    child: Child,
    lines: mpsc::Receiver<String>,
    data_dir: std::path::PathBuf,
}

impl Server {
    fn start(log_format: &str) -> Self {
        let data_dir =
            std::env::temp_dir().join(format!("taskapi-logs-{}", uuid::Uuid::new_v4().simple()));
        let mut child = Command::new(env!("CARGO_BIN_EXE_taskapi"))
            .env_remove("DATABASE_URL")
            .env_remove("SECRET_KEY")
            .env_remove("RUST_LOG")
            .env("TASKAPI_DATA_DIR", &data_dir)
            .env("PORT", "0")
            .env("LOG_FORMAT", log_format)
            .current_dir(std::env::temp_dir())
            .stdout(Stdio::piped())
            .stderr(Stdio::null())
            .spawn()
            .expect("the binary starts");
        let stdout = child.stdout.take().unwrap();
        let (send, lines) = mpsc::channel();
        std::thread::spawn(move || {
            for line in BufReader::new(stdout).lines().map_while(Result::ok) {
                if send.send(line).is_err() {
                    return;
                }
            }
        });
        Self {
            child,
            lines,
            data_dir,
        }
    }

    /// The next line, within a generous bound (a first start runs initdb).
    fn next_line(&self) -> String {
        self.lines
            .recv_timeout(Duration::from_secs(60))
            .expect("a log line within 60 s")
    }

    /// Reads lines until one contains `needle`; returns every line read.
    fn read_until(&self, needle: &str) -> Vec<String> {
        let mut seen = Vec::new();
        loop {
            let line = self.next_line();
            let done = line.contains(needle);
            seen.push(line);
            if done {
                return seen;
            }
        }
    }

    fn port(lines: &[String]) -> u16 {
        let line = lines.last().unwrap();
        let start = line.find("http://127.0.0.1:").expect("the address") + 17;
        line[start..]
            .chars()
            .take_while(char::is_ascii_digit)
            .collect::<String>()
            .parse()
            .unwrap()
    }
}

impl Drop for Server {
    fn drop(&mut self) {
        let _ = Command::new("kill")
            .arg("-TERM")
            .arg(self.child.id().to_string())
            .status();
        let _ = self.child.wait();
        let _ = std::fs::remove_dir_all(&self.data_dir);
    }
}

#[tokio::test]
async fn json_logs_have_one_access_line_per_request_and_no_secrets() {
    let server = Server::start("json");
    let startup = server.read_until("listening on");
    for line in &startup {
        let parsed: Value = serde_json::from_str(line).unwrap_or_else(|e| panic!("{e}: {line}"));
        assert!(parsed["level"].is_string(), "{line}");
    }
    let base = format!("http://127.0.0.1:{}", Server::port(&startup));
    let client = reqwest::Client::new();
    let health = client.get(format!("{base}/health")).send().await.unwrap();
    let request_id = health.headers()["x-request-id"]
        .to_str()
        .unwrap()
        .to_owned();
    assert_eq!(health.status(), 200);
    let secret_token = "eyJhbGciOiJIUzI1NiJ9.eyJzdWIiOiJ4In0.c2VjcmV0";
    let refused = client
        .get(format!("{base}/tasks/0193a5b2-0000-4000-8000-000000000000"))
        .bearer_auth(secret_token)
        .send()
        .await
        .unwrap();
    assert_eq!(refused.status(), 401);

    let lines = server.read_until("/tasks/{id}");
    let access: Vec<Value> = lines
        .iter()
        .map(|line| serde_json::from_str::<Value>(line).unwrap())
        .filter(|line| line["target"] == "taskapi::access")
        .collect();
    assert_eq!(access.len(), 2, "one line per request: {lines:?}");
    assert_eq!(access[0]["method"], "GET");
    assert_eq!(access[0]["route"], "/health");
    assert_eq!(access[0]["status"], 200);
    assert_eq!(access[0]["request_id"], request_id.as_str());
    assert!(access[0]["latency_ms"].is_number());
    assert_eq!(
        access[1]["route"], "/tasks/{id}",
        "the matched route, not the path"
    );
    assert_eq!(access[1]["status"], 401);
    for line in &lines {
        assert!(
            !line.contains(secret_token),
            "a token reached the log: {line}"
        );
    }
}

#[tokio::test]
async fn text_logs_to_a_pipe_carry_no_colour_codes() {
    let server = Server::start("text");
    let lines = server.read_until("listening on");
    let base = format!("http://127.0.0.1:{}", Server::port(&lines));
    reqwest::get(format!("{base}/livez")).await.unwrap();
    let mut all = lines;
    all.extend(server.read_until("request"));
    for line in &all {
        assert!(!line.contains('\u{1b}'), "an escape code: {line:?}");
    }
}
