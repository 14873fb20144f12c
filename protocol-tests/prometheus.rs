//! `/metrics` in memcached_exporter's names, checked by promtool and scraped by a real
//! Prometheus (Debian's `prometheus` package).

use crate::support::{Kind, external_target, free_port, start, tool};
use std::io::{Read, Write};
use std::net::TcpStream;
use std::process::Stdio;
use std::time::{Duration, Instant};

fn http_get(address: &str, path: &str) -> Option<String> {
    let mut stream = TcpStream::connect(address).ok()?;
    stream.set_read_timeout(Some(Duration::from_secs(5))).ok()?;
    write!(
        stream,
        "GET {path} HTTP/1.1\r\nHost: {address}\r\nConnection: close\r\n\r\n"
    )
    .ok()?;
    let mut response = String::new();
    stream.read_to_string(&mut response).ok()?;
    let (head, body) = response.split_once("\r\n\r\n")?;
    head.starts_with("HTTP/1.1 200").then(|| body.to_string())
}

/// The value of an instant-vector query's first sample, if Prometheus has one.
fn query(prometheus: &str, expression: &str) -> Option<String> {
    let encoded: String = expression
        .bytes()
        .map(|byte| match byte {
            b'a'..=b'z' | b'A'..=b'Z' | b'0'..=b'9' | b'_' => (byte as char).to_string(),
            _ => format!("%{byte:02X}"),
        })
        .collect();
    let body = http_get(prometheus, &format!("/api/v1/query?query={encoded}"))?;
    let after = body.split("\"value\":[").nth(1)?;
    let value = after.split(",\"").nth(1)?.split('"').next()?;
    Some(value.to_string())
}

#[test]
fn metrics_page_passes_promtool_and_real_prometheus_scrapes_it() {
    if external_target() {
        return;
    }
    let metrics_port = free_port();
    let metrics_address = format!("127.0.0.1:{metrics_port}");
    let server = start(
        Kind::Ferrocached,
        &["-o", &format!("metrics_listen={metrics_address}")],
    );
    let mut c = server.connect();
    c.roundtrip(
        b"set m1 0 0 1\r\nx\r\nset m2 0 0 1\r\ny\r\n",
        b"STORED\r\nSTORED\r\n",
    );
    c.roundtrip(
        b"get m1\r\nget m2\r\nget m3\r\n",
        b"VALUE m1 0 1\r\nx\r\nEND\r\nVALUE m2 0 1\r\ny\r\nEND\r\nEND\r\n",
    );
    let page = http_get(&metrics_address, "/metrics").expect("/metrics answers");
    assert!(page.contains("memcached_current_items 2\n"), "{page}");
    assert!(
        page.contains("memcached_commands_total{command=\"get\",status=\"hit\"} 2\n"),
        "{page}"
    );
    assert!(page.contains("memcached_commands_total{command=\"get\",status=\"miss\"} 1\n"));
    assert!(
        http_get(&metrics_address, "/other").is_none(),
        "only /metrics is served"
    );

    let Some(mut promtool) = tool("promtool") else {
        return;
    };
    let mut check = promtool
        .args(["check", "metrics"])
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("promtool runs");
    check
        .stdin
        .take()
        .unwrap()
        .write_all(page.as_bytes())
        .unwrap();
    let output = check.wait_with_output().unwrap();
    assert!(
        output.status.success(),
        "promtool: {}",
        String::from_utf8_lossy(&output.stderr)
    );

    let Some(mut prometheus) = tool("prometheus") else {
        return;
    };
    let dir = std::env::temp_dir().join(format!("ferrocached-prom-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let config = dir.join("prometheus.yml");
    std::fs::write(
        &config,
        format!(
            "global:\n  scrape_interval: 1s\nscrape_configs:\n  - job_name: ferrocached\n    static_configs:\n      - targets: ['{metrics_address}']\n"
        ),
    )
    .unwrap();
    let prometheus_address = format!("127.0.0.1:{}", free_port());
    let mut child = prometheus
        .arg(format!("--config.file={}", config.display()))
        .arg(format!(
            "--storage.tsdb.path={}",
            dir.join("data").display()
        ))
        .arg(format!("--web.listen-address={prometheus_address}"))
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .expect("prometheus starts");
    let deadline = Instant::now() + Duration::from_secs(60);
    let mut seen = (None, None);
    while Instant::now() < deadline {
        seen = (
            query(&prometheus_address, "memcached_current_items"),
            query(
                &prometheus_address,
                "memcached_commands_total{command=\"get\",status=\"hit\"}",
            ),
        );
        if seen.0.is_some() && seen.1.is_some() {
            break;
        }
        std::thread::sleep(Duration::from_millis(500));
    }
    let _ = child.kill();
    let _ = child.wait();
    let _ = std::fs::remove_dir_all(&dir);
    assert_eq!(
        seen,
        (Some("2".to_string()), Some("2".to_string())),
        "Prometheus scraped the figures"
    );
}
