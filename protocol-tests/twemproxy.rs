//! Scale-out on an existing engine: three ferrocached nodes behind twemproxy (Debian's
//! nutcracker) with ketama distribution, driven by a real client through the proxy.

use crate::support::{Kind, external_target, free_port, start, tool};
use std::process::Stdio;
use std::time::{Duration, Instant};

#[test]
fn three_nodes_behind_twemproxy_with_ketama() {
    if external_target() {
        return;
    }
    let Some(mut nutcracker) = tool("nutcracker") else {
        return;
    };
    let nodes: Vec<_> = (0..3).map(|_| start(Kind::Ferrocached, &[])).collect();
    let dir = std::env::temp_dir().join(format!("ferrocached-twem-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let proxy_port = free_port();
    let servers: String = nodes
        .iter()
        .enumerate()
        .map(|(i, node)| format!("    - {}:1 node{i}\n", node.address))
        .collect();
    let config = dir.join("nutcracker.yml");
    std::fs::write(
        &config,
        format!(
            "pool:\n  listen: 127.0.0.1:{proxy_port}\n  hash: md5\n  distribution: ketama\n  timeout: 2000\n  auto_eject_hosts: false\n  servers:\n{servers}"
        ),
    )
    .unwrap();
    let mut proxy = nutcracker
        .arg("-c")
        .arg(&config)
        .args(["-s", &free_port().to_string()])
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .expect("nutcracker starts");
    let deadline = Instant::now() + Duration::from_secs(10);
    let stream = loop {
        if let Ok(stream) = std::net::TcpStream::connect(("127.0.0.1", proxy_port)) {
            break stream;
        }
        assert!(Instant::now() < deadline, "nutcracker did not start");
        std::thread::sleep(Duration::from_millis(50));
    };
    stream
        .set_read_timeout(Some(Duration::from_secs(5)))
        .unwrap();
    let mut c = crate::support::Client {
        stream,
        label: "twemproxy".into(),
    };
    for i in 0..300 {
        c.roundtrip(
            format!("set user:{i} 0 0 {}\r\n{i}\r\n", i.to_string().len()).as_bytes(),
            b"STORED\r\n",
        );
    }
    // Reads through the proxy, including a multiget it splits across nodes.
    c.roundtrip(
        b"get user:7 user:8 user:9\r\n",
        b"VALUE user:7 0 1\r\n7\r\nVALUE user:8 0 1\r\n8\r\nVALUE user:9 0 1\r\n9\r\nEND\r\n",
    );
    for i in 0..300 {
        let value = i.to_string();
        c.roundtrip(
            format!("get user:{i}\r\n").as_bytes(),
            format!("VALUE user:{i} 0 {}\r\n{value}\r\nEND\r\n", value.len()).as_bytes(),
        );
    }
    // Ketama spread the keys over every node, and each key lives on exactly one.
    let counts: Vec<u64> = nodes
        .iter()
        .map(|node| node.connect().stat("curr_items"))
        .collect();
    assert_eq!(counts.iter().sum::<u64>(), 300, "{counts:?}");
    assert!(
        counts.iter().all(|&count| count > 30),
        "ketama uses every node: {counts:?}"
    );
    let _ = proxy.kill();
    let _ = proxy.wait();
    let _ = std::fs::remove_dir_all(&dir);
}
