//! `deploy/tomcat-cluster/`, checked with the real tools that read each file: nginx,
//! Apache httpd (mod_proxy_balancer and mod_jk) and two Tomcat 9 nodes from Debian's
//! jars route real Tomcat sessions and fail over when a Tomcat stops; Tomcat parses both MSM contexts (MSM's jars are not
//! in Debian, so it must report the missing manager class and nothing else); promtool
//! checks and unit-tests the Prometheus files; the cache nodes start from their configs
//! through the unit's wrapper; the compose file names files that exist.
//!
//! The configs name the compose hosts (`tomcat1:8080`); nginx resolves upstreams when it
//! reads its config, so each test runs a copy in which only host names, ports and file
//! locations are replaced by local ones.

use crate::support::{ferrocached_binary, free_port, python_yaml_check, skip, tool};
use std::io::{Read, Write};
use std::net::TcpStream;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

fn deployment() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("deploy/tomcat-cluster")
}

fn read(path: &str) -> String {
    std::fs::read_to_string(deployment().join(path))
        .unwrap_or_else(|error| panic!("{path}: {error}"))
}

/// A fresh scratch directory for one test.
fn scratch(name: &str) -> PathBuf {
    let dir =
        std::env::temp_dir().join(format!("ferrocached-deploy-{name}-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir).unwrap();
    dir
}

fn write(path: &Path, text: &str) {
    if let Some(parent) = path.parent() {
        std::fs::create_dir_all(parent).unwrap();
    }
    std::fs::write(path, text).unwrap();
}

/// A process this test started, stopped (SIGTERM, then SIGKILL) when dropped.
struct Running {
    name: &'static str,
    child: Child,
}

impl Running {
    fn spawn(name: &'static str, command: &mut Command) -> Running {
        let child = command
            .stdin(Stdio::null())
            .spawn()
            .unwrap_or_else(|error| panic!("cannot start {name}: {error}"));
        Running { name, child }
    }

    fn assert_alive(&mut self) {
        if let Ok(Some(status)) = self.child.try_wait() {
            panic!("{} exited early: {status}", self.name);
        }
    }
}

impl Drop for Running {
    fn drop(&mut self) {
        // SAFETY: signalling our own child process.
        unsafe { libc::kill(self.child.id() as i32, libc::SIGTERM) };
        let deadline = Instant::now() + Duration::from_secs(10);
        while Instant::now() < deadline {
            if let Ok(Some(_)) = self.child.try_wait() {
                return;
            }
            std::thread::sleep(Duration::from_millis(50));
        }
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// One HTTP/1.0 GET; the status line with the headers, and the body.
fn get(port: u16, path: &str, cookie: Option<&str>) -> (String, String) {
    let mut stream = TcpStream::connect(("127.0.0.1", port)).unwrap();
    stream
        .set_read_timeout(Some(Duration::from_secs(20)))
        .unwrap();
    let cookie = cookie
        .map(|value| format!("Cookie: JSESSIONID={value}\r\n"))
        .unwrap_or_default();
    write!(
        stream,
        "GET {path} HTTP/1.0\r\nHost: localhost\r\n{cookie}\r\n"
    )
    .unwrap();
    let mut response = String::new();
    stream.read_to_string(&mut response).unwrap();
    let (head, body) = response.split_once("\r\n\r\n").unwrap_or((&response, ""));
    (head.to_string(), body.to_string())
}

fn wait_for_http(port: u16, server: &mut Running) {
    let deadline = Instant::now() + Duration::from_secs(60);
    while TcpStream::connect(("127.0.0.1", port)).is_err() {
        server.assert_alive();
        assert!(
            Instant::now() < deadline,
            "{} did not listen on {port}",
            server.name
        );
        std::thread::sleep(Duration::from_millis(100));
    }
}

/// What the walk-through's index.jsp printed.
#[derive(Debug, PartialEq, Clone)]
struct Page {
    session: String,
    count: u32,
    node: String,
}

fn page(port: u16, path: &str, cookie: Option<&str>) -> Page {
    let (head, body) = get(port, path, cookie);
    assert!(
        head.split_whitespace().nth(1) == Some("200"),
        "{path}: {head}\n{body}"
    );
    let field = |name: &str| {
        body.lines()
            .find_map(|line| line.strip_prefix(&format!("{name}=")))
            .unwrap_or_else(|| panic!("no {name}= in {body:?}"))
            .trim()
            .to_string()
    };
    Page {
        session: field("session"),
        count: field("count").parse().unwrap(),
        node: field("node"),
    }
}

/// Through a sticky balancer a session stays on the Tomcat named by its jvmRoute suffix,
/// by cookie and by `;jsessionid=` in the URL, so its counter goes on. Without
/// stickiness half the requests would reach the other Tomcat, which knows no such
/// session and starts a new one at 1.
fn assert_sticky(balancer: &str, port: u16) {
    let first = page(port, "/index.jsp", None);
    assert_eq!(first.count, 1, "{balancer}: {first:?}");
    assert!(
        first.session.ends_with(&format!(".{}", first.node)),
        "{balancer}: the session id carries the jvmRoute: {first:?}"
    );
    for count in 2..=5 {
        let next = page(port, "/index.jsp", Some(&first.session));
        assert_eq!(
            next,
            Page {
                count,
                ..first.clone()
            },
            "{balancer}: request {count} with the cookie"
        );
    }
    let by_url = page(
        port,
        &format!("/index.jsp;jsessionid={}", first.session),
        None,
    );
    assert_eq!(
        by_url,
        Page {
            count: 6,
            ..first.clone()
        },
        "{balancer}: with ;jsessionid= in the URL"
    );
}

/// Debian's Tomcat 9 jars (libtomcat9-java) and the JSP compiler they use, or a skip.
fn tomcat_classpath() -> Option<String> {
    let java = Path::new("/usr/share/java");
    let catalina = java.join("tomcat9-catalina.jar");
    if !catalina.exists() || tool("java").is_none() {
        skip("Tomcat 9 (Debian's libtomcat9-java) or java is not installed");
        return None;
    }
    let mut jars: Vec<String> = std::fs::read_dir(java)
        .unwrap()
        .filter_map(|entry| entry.ok())
        .map(|entry| entry.file_name().to_string_lossy().into_owned())
        // The unversioned names only (the versioned ones are the same jars).
        .filter(|name| name.starts_with("tomcat9-") && !name.contains("-9."))
        .map(|name| java.join(name).display().to_string())
        .collect();
    jars.push(java.join("eclipse-jdt-core.jar").display().to_string());
    Some(jars.join(":"))
}

/// The global web.xml Debian's tomcat9 package would provide (it is not in
/// libtomcat9-java): the JSP servlet, so index.jsp compiles.
const GLOBAL_WEB_XML: &str = r#"<?xml version="1.0" encoding="UTF-8"?>
<web-app xmlns="http://xmlns.jcp.org/xml/ns/javaee" version="4.0">
  <servlet>
    <servlet-name>jsp</servlet-name>
    <servlet-class>org.apache.jasper.servlet.JspServlet</servlet-class>
  </servlet>
  <servlet-mapping>
    <servlet-name>jsp</servlet-name>
    <url-pattern>*.jsp</url-pattern>
  </servlet-mapping>
</web-app>
"#;

/// A CATALINA_BASE with the deployment's server.xml (ports made local, the shutdown
/// port off) and the walk-through's ROOT application; `contexts` adds applications
/// whose META-INF/context.xml is one of the deployment's.
fn catalina_base(dir: &Path, http: u16, ajp: u16, contexts: &[(&str, &str)]) {
    let server = read("tomcat/server.xml")
        .replace("port=\"8005\"", "port=\"-1\"")
        .replace("port=\"8080\"", &format!("port=\"{http}\""))
        .replace("port=\"8009\"", &format!("port=\"{ajp}\""));
    assert!(
        server.contains(&format!("port=\"{ajp}\"")),
        "server.xml has the AJP connector"
    );
    write(&dir.join("conf/server.xml"), &server);
    write(&dir.join("conf/web.xml"), GLOBAL_WEB_XML);
    for sub in ["logs", "temp", "work", "lib"] {
        std::fs::create_dir_all(dir.join(sub)).unwrap();
    }
    write(
        &dir.join("webapps/ROOT/index.jsp"),
        &read("tomcat/webapps/ROOT/index.jsp"),
    );
    for (application, context) in contexts {
        write(
            &dir.join(format!("webapps/{application}/META-INF/context.xml")),
            &read(context),
        );
        write(
            &dir.join(format!("webapps/{application}/index.jsp")),
            &read("tomcat/webapps/ROOT/index.jsp"),
        );
    }
}

fn start_tomcat(classpath: &str, base: &Path, route: &str) -> Running {
    let log = std::fs::File::create(base.join("logs/console.log")).unwrap();
    Running::spawn(
        "tomcat",
        Command::new("java")
            .args([
                "-Xmx96m",
                "-XX:TieredStopAtLevel=1",
                "-Xshare:auto",
                "-cp",
                classpath,
            ])
            .arg(format!("-Dcatalina.home={}", base.display()))
            .arg(format!("-Dcatalina.base={}", base.display()))
            .arg(format!("-DjvmRoute={route}"))
            .args(["org.apache.catalina.startup.Bootstrap", "start"])
            .stdout(log.try_clone().unwrap())
            .stderr(log),
    )
}

/// An httpd.conf of our own (ServerRoot in `dir`), so Debian's apache2 runs without
/// being installed as a service; `modules` are loaded from Debian's module directory.
fn httpd_conf(dir: &Path, port: u16, modules: &[&str], include: &Path) -> PathBuf {
    let mut conf = format!(
        "ServerRoot {dir}\nServerName localhost\nListen 127.0.0.1:{port}\nPidFile {dir}/httpd.pid\nErrorLog {dir}/error.log\nDefaultRuntimeDir {dir}\nLogLevel warn\n",
        dir = dir.display()
    );
    // SAFETY: geteuid has no preconditions.
    if unsafe { libc::geteuid() } == 0 {
        conf.push_str("User nobody\nGroup nogroup\n");
    }
    for module in ["mpm_event", "authz_core"].iter().chain(modules) {
        conf.push_str(&format!(
            "LoadModule {module}_module /usr/lib/apache2/modules/mod_{module}.so\n"
        ));
    }
    conf.push_str(&format!("Include {}\n", include.display()));
    let path = dir.join("httpd.conf");
    write(&path, &conf);
    path
}

/// `apache2 -t`, then the server itself in the foreground.
fn start_httpd(dir: &Path, conf: &Path) -> Running {
    let check = Command::new("apache2")
        .arg("-t")
        .arg("-d")
        .arg(dir)
        .arg("-f")
        .arg(conf)
        .output()
        .unwrap();
    assert!(
        check.status.success(),
        "apache2 -t: {}",
        String::from_utf8_lossy(&check.stderr)
    );
    Running::spawn(
        "apache2",
        Command::new("apache2")
            .arg("-DFOREGROUND")
            .arg("-d")
            .arg(dir)
            .arg("-f")
            .arg(conf)
            .stdout(Stdio::null())
            .stderr(Stdio::null()),
    )
}

/// `nginx -t -c` on the config with local upstreams, port and files, then nginx itself.
fn start_nginx(dir: &Path, config: &str, port: u16, tomcats: [u16; 2]) -> Running {
    let conf = read(config)
        .replace("tomcat1:8080", &format!("127.0.0.1:{}", tomcats[0]))
        .replace("tomcat2:8080", &format!("127.0.0.1:{}", tomcats[1]))
        .replace("listen 80;", &format!("listen 127.0.0.1:{port};"))
        .replace(
            "pid /run/nginx.pid;",
            &format!("pid {}/nginx.pid;", dir.display()),
        );
    let path = dir.join("nginx.conf");
    write(&path, &conf);
    let error_log = format!("error_log {}/error.log;", dir.display());
    let check = Command::new("nginx")
        .arg("-t")
        .arg("-p")
        .arg(dir)
        .arg("-c")
        .arg(&path)
        .args(["-g", &error_log])
        .output()
        .unwrap();
    assert!(
        check.status.success(),
        "nginx -t -c {config}: {}",
        String::from_utf8_lossy(&check.stderr)
    );
    Running::spawn(
        "nginx",
        Command::new("nginx")
            .arg("-p")
            .arg(dir)
            .arg("-c")
            .arg(&path)
            .args(["-g", &format!("daemon off; {error_log}")])
            .stdout(Stdio::null())
            .stderr(Stdio::null()),
    )
}

#[test]
fn deploy_balancers_keep_sessions_on_their_tomcat() {
    let Some(classpath) = tomcat_classpath() else {
        return;
    };
    if tool("nginx").is_none() || tool("apache2").is_none() {
        return;
    }
    if !Path::new("/usr/lib/apache2/modules/mod_jk.so").exists() {
        skip("mod_jk (Debian's libapache2-mod-jk) is not installed");
        return;
    }
    let dir = scratch("balancers");
    let http = [free_port(), free_port()];
    let ajp = [free_port(), free_port()];
    let mut tomcats: Vec<Running> = (0..2)
        .map(|node| {
            let base = dir.join(format!("tomcat{}", node + 1));
            catalina_base(&base, http[node], ajp[node], &[]);
            start_tomcat(&classpath, &base, &format!("tomcat{}", node + 1))
        })
        .collect();
    for (node, tomcat) in tomcats.iter_mut().enumerate() {
        wait_for_http(http[node], tomcat);
    }
    // Each Tomcat on its own: sessions carry its jvmRoute (server.xml).
    for (node, port) in http.iter().enumerate() {
        let direct = page(*port, "/index.jsp", None);
        assert_eq!(direct.node, format!("tomcat{}", node + 1));
        assert!(direct.session.ends_with(&format!(".tomcat{}", node + 1)));
    }

    let nginx_dir = dir.join("nginx-sticky");
    std::fs::create_dir_all(&nginx_dir).unwrap();
    let port = free_port();
    let mut nginx = start_nginx(&nginx_dir, "nginx/nginx-sticky.conf", port, http);
    wait_for_http(port, &mut nginx);
    assert_sticky("nginx (sticky)", port);
    let mut balancers = vec![("nginx (sticky)", port, nginx)];

    let nginx_dir = dir.join("nginx-nonsticky");
    std::fs::create_dir_all(&nginx_dir).unwrap();
    let port = free_port();
    let mut nginx = start_nginx(&nginx_dir, "nginx/nginx-nonsticky.conf", port, http);
    wait_for_http(port, &mut nginx);
    let first = page(port, "/index.jsp", None);
    let nodes: std::collections::BTreeSet<String> = (0..4)
        .map(|_| page(port, "/index.jsp", Some(&first.session)).node)
        .collect();
    assert_eq!(
        nodes.len(),
        2,
        "non-sticky: one session's requests reach both Tomcats"
    );
    balancers.push(("nginx (non-sticky)", port, nginx));

    let httpd_dir = dir.join("httpd-balancer");
    std::fs::create_dir_all(&httpd_dir).unwrap();
    let balancer = read("httpd/proxy-balancer.conf")
        .replace(
            "http://tomcat1:8080",
            &format!("http://127.0.0.1:{}", http[0]),
        )
        .replace(
            "http://tomcat2:8080",
            &format!("http://127.0.0.1:{}", http[1]),
        );
    write(&httpd_dir.join("balancer.conf"), &balancer);
    let port = free_port();
    let conf = httpd_conf(
        &httpd_dir,
        port,
        &[
            "proxy",
            "proxy_http",
            "proxy_balancer",
            "slotmem_shm",
            "lbmethod_byrequests",
        ],
        &httpd_dir.join("balancer.conf"),
    );
    let mut httpd = start_httpd(&httpd_dir, &conf);
    wait_for_http(port, &mut httpd);
    assert_sticky("httpd mod_proxy_balancer", port);
    balancers.push(("httpd mod_proxy_balancer", port, httpd));

    let jk_dir = dir.join("httpd-jk");
    std::fs::create_dir_all(&jk_dir).unwrap();
    let workers = read("httpd/workers.properties")
        .replace(
            "worker.tomcat1.host=tomcat1",
            "worker.tomcat1.host=127.0.0.1",
        )
        .replace(
            "worker.tomcat2.host=tomcat2",
            "worker.tomcat2.host=127.0.0.1",
        )
        .replace(
            "worker.tomcat1.port=8009",
            &format!("worker.tomcat1.port={}", ajp[0]),
        )
        .replace(
            "worker.tomcat2.port=8009",
            &format!("worker.tomcat2.port={}", ajp[1]),
        );
    write(&jk_dir.join("workers.properties"), &workers);
    let jk = read("httpd/mod-jk.conf")
        .replace(
            "/etc/libapache2-mod-jk/workers.properties",
            &jk_dir.join("workers.properties").display().to_string(),
        )
        .replace("/run/apache2/", &format!("{}/", jk_dir.display()))
        .replace("/var/log/apache2/", &format!("{}/", jk_dir.display()));
    write(&jk_dir.join("jk.conf"), &jk);
    let port = free_port();
    let conf = httpd_conf(&jk_dir, port, &["jk"], &jk_dir.join("jk.conf"));
    let mut httpd = start_httpd(&jk_dir, &conf);
    wait_for_http(port, &mut httpd);
    assert_sticky("httpd mod_jk (AJP)", port);
    balancers.push(("httpd mod_jk (AJP)", port, httpd));

    // Tomcat failover: with tomcat1 gone, every balancer sends tomcat1's sessions to
    // tomcat2 (where MSM would load them from ferrocached).
    drop(tomcats.remove(0));
    for (balancer, port, _running) in &balancers {
        for _ in 0..2 {
            let moved = page(*port, "/index.jsp", Some("0123456789ABCDEF.tomcat1"));
            assert_eq!(moved.node, "tomcat2", "{balancer} fails over");
        }
    }
    drop(balancers);
    drop(tomcats);
    let _ = std::fs::remove_dir_all(&dir);
}

#[test]
fn deploy_tomcat_parses_msm_contexts_and_misses_only_the_msm_jars() {
    let Some(classpath) = tomcat_classpath() else {
        return;
    };
    let dir = scratch("msm");
    let http = free_port();
    catalina_base(
        &dir,
        http,
        free_port(),
        &[
            ("sticky", "tomcat/context-sticky.xml"),
            ("nonsticky", "tomcat/context-nonsticky.xml"),
        ],
    );
    let mut tomcat = start_tomcat(&classpath, &dir, "tomcat1");
    let log_path = dir.join("logs/console.log");
    let deadline = Instant::now() + Duration::from_secs(60);
    let log = loop {
        let log = std::fs::read_to_string(&log_path).unwrap_or_default();
        if log.contains("Server startup in") {
            break log;
        }
        tomcat.assert_alive();
        assert!(Instant::now() < deadline, "Tomcat did not start:\n{log}");
        std::thread::sleep(Duration::from_millis(100));
    };
    drop(tomcat);
    const MANAGER: &str = "de.javakaffee.web.msm.MemcachedBackupSessionManager";
    // Both contexts parse up to the Manager element, whose class is not on this machine.
    for application in ["/sticky", "/nonsticky"] {
        assert!(
            log.contains(&format!("Parse error in context.xml for [{application}]")),
            "{application}: {log}"
        );
    }
    // Every exception names the manager class: a malformed file would be a
    // SAXParseException about the XML instead.
    let exceptions: Vec<&str> = log
        .lines()
        .filter(|line| line.contains("Exception") && !line.trim_start().starts_with("at "))
        .collect();
    assert!(
        log.contains(&format!("ClassNotFoundException: {MANAGER}")),
        "{log}"
    );
    for line in &exceptions {
        assert!(
            line.contains(MANAGER),
            "the only error is the missing MSM class, not: {line}"
        );
    }
    // Every SEVERE line belongs to those two failed deployments.
    let allowed = [
        "Begin event threw exception",
        "Parse error in context.xml",
        "Occurred at line",
        "Marking this application unavailable",
        "One or more components marked the context as not correctly configured",
        "startup failed due to previous errors",
    ];
    for line in log.lines().filter(|line| line.starts_with("SEVERE")) {
        assert!(
            allowed.iter().any(|known| line.contains(known)),
            "unexpected: {line}"
        );
    }
    // server.xml itself loaded: the application without MSM serves on its connector.
    let root = {
        let mut again = start_tomcat(&classpath, &dir, "tomcat1");
        wait_for_http(http, &mut again);
        page(http, "/index.jsp", None)
    };
    assert_eq!(root.node, "tomcat1");
    assert!(root.session.ends_with(".tomcat1"));
    let _ = std::fs::remove_dir_all(&dir);
}

#[test]
fn deploy_prometheus_config_and_alert_rules_pass_promtool() {
    let Some(mut check) = tool("promtool") else {
        return;
    };
    let prometheus = deployment().join("prometheus");
    let output = check
        .args(["check", "config"])
        .arg(prometheus.join("prometheus.yml"))
        .output()
        .unwrap();
    let text = String::from_utf8_lossy(&output.stdout).into_owned();
    assert!(
        output.status.success(),
        "{text}{}",
        String::from_utf8_lossy(&output.stderr)
    );
    assert!(
        text.contains("SUCCESS: 4 rules found"),
        "the config loads alerts.yml: {text}"
    );
    for (verb, file) in [("check", "alerts.yml"), ("test", "alerts-test.yml")] {
        let output = Command::new("promtool")
            .current_dir(&prometheus)
            .args([verb, "rules", file])
            .output()
            .unwrap();
        assert!(
            output.status.success(),
            "promtool {verb} rules {file}: {}{}",
            String::from_utf8_lossy(&output.stdout),
            String::from_utf8_lossy(&output.stderr)
        );
    }
    // The rules use names /metrics serves (the snapshot ones are checked on a running
    // server by restart.rs, snapshot_health_moves_after_a_save_and_counts_failures).
    let rules = read("prometheus/alerts.yml");
    for name in [
        "memcached_items_evicted_total",
        "memcached_snapshot_last_success_timestamp_seconds",
        "memcached_snapshot_interval_seconds",
        "memcached_snapshot_failures_total",
        "memcached_uptime_seconds",
    ] {
        assert!(rules.contains(name), "{name}");
    }
}

#[test]
fn deploy_compose_file_names_existing_paths() {
    let script = r#"
import sys, yaml, os
root = sys.argv[1]
with open(os.path.join(root, "compose.yml")) as f:
    compose = yaml.safe_load(f)
services = compose["services"]
assert set(services) == {"cache1", "cache2", "tomcat1", "tomcat2", "nginx", "prometheus"}, services
build = services["cache1"]["build"]
context = os.path.normpath(os.path.join(root, build["context"]))
assert os.path.isfile(os.path.join(context, build["dockerfile"])), build
for name, service in services.items():
    for volume in service.get("volumes", []):
        source = volume.split(":")[0]
        if source.startswith("."):
            assert os.path.exists(os.path.join(root, source)), (name, source)
        else:
            assert source in compose["volumes"], (name, source)
    for dependency in service.get("depends_on", []):
        assert dependency in services, (name, dependency)
for cache, node in (("cache1", "n1"), ("cache2", "n2")):
    command = services[cache]["command"]
    assert "/var/lib/ferrocached/%s.snapshot" % node in command, command
    assert "snapshot_interval=30" in command, command
    assert "metrics_listen=0.0.0.0:9150" in command, command
for tomcat in ("tomcat1", "tomcat2"):
    assert services[tomcat]["environment"]["CATALINA_OPTS"] == "-DjvmRoute=" + tomcat
with open(os.path.join(root, "prometheus/prometheus.yml")) as f:
    prometheus = yaml.safe_load(f)
targets = prometheus["scrape_configs"][0]["static_configs"][0]["targets"]
assert targets == ["cache1:9150", "cache2:9150"], targets
assert prometheus["rule_files"] == ["alerts.yml"]
print("ok")
"#;
    if !python_yaml_check(script, &deployment()) {
        return;
    }
    // The MSM nodes of both contexts are the compose hosts of the cache nodes.
    for context in ["tomcat/context-sticky.xml", "tomcat/context-nonsticky.xml"] {
        assert!(read(context).contains(r#"memcachedNodes="n1:cache1:11211,n2:cache2:11211""#));
    }
    assert!(read("tomcat/server.xml").contains(r#"jvmRoute="${jvmRoute}""#));
    // The named volumes at /var/lib/ferrocached start with the image's owner and mode.
    let dockerfile =
        std::fs::read_to_string(Path::new(env!("CARGO_MANIFEST_DIR")).join("docker/Dockerfile"))
            .unwrap();
    assert!(dockerfile.contains("install -d -o memcache -g memcache -m 0700 /var/lib/ferrocached"));
}

#[test]
fn deploy_cache_nodes_start_from_their_unit_and_config() {
    // SAFETY: geteuid has no preconditions.
    if unsafe { libc::geteuid() } != 0 {
        skip("the unit's wrapper runs as root, as systemd runs it");
        return;
    }
    let unit = read("ferrocached/ferrocached@.service");
    let exec = unit
        .lines()
        .find_map(|line| line.strip_prefix("ExecStart="))
        .expect("ExecStart");
    assert_eq!(
        exec,
        "/usr/share/ferrocached/systemd-ferrocached-wrapper /etc/ferrocached/%i.conf"
    );
    let dir = scratch("units");
    let wrapper = std::fs::read_to_string(
        Path::new(env!("CARGO_MANIFEST_DIR")).join("deploy/debian/systemd-ferrocached-wrapper"),
    )
    .unwrap()
    .replace(
        "/usr/bin/ferrocached",
        ferrocached_binary().to_str().unwrap(),
    );
    let wrapper_path = dir.join("systemd-ferrocached-wrapper");
    write(&wrapper_path, &wrapper);
    for node in ["n1", "n2"] {
        let port = free_port();
        let metrics = free_port();
        let config = read(&format!("ferrocached/{node}.conf"));
        assert!(config.contains(&format!("-e /var/lib/ferrocached/{node}.snapshot")));
        assert!(config.contains("-o snapshot_interval=30"));
        let config = config
            .replace("-p 11211", &format!("-p {port}"))
            .replace("-l 0.0.0.0", "-l 127.0.0.1")
            .replace("-u ferrocached", "-u nobody")
            .replace("-m 512", "-m 64")
            .replace(
                "metrics_listen=0.0.0.0:9150",
                &format!("metrics_listen=127.0.0.1:{metrics}"),
            )
            .replace(
                &format!("/run/ferrocached-{node}/"),
                &format!("{}/", dir.display()),
            )
            .replace("/var/lib/ferrocached/", &format!("{}/", dir.display()));
        let config_path = dir.join(format!("{node}.conf"));
        write(&config_path, &config);
        // nobody must write the snapshot directory.
        Command::new("chown")
            .arg("nobody")
            .arg(&dir)
            .status()
            .unwrap();
        let mut server = Running::spawn(
            "ferrocached",
            Command::new("perl")
                .arg(&wrapper_path)
                .arg(&config_path)
                .stdout(Stdio::null())
                .stderr(Stdio::null()),
        );
        wait_for_http(port, &mut server);
        let mut stream = TcpStream::connect(("127.0.0.1", port)).unwrap();
        stream
            .set_read_timeout(Some(Duration::from_secs(5)))
            .unwrap();
        stream.write_all(b"set sess 0 0 2\r\nok\r\n").unwrap();
        let mut reply = [0; 8];
        stream.read_exact(&mut reply).unwrap();
        assert_eq!(&reply, b"STORED\r\n");
        let (head, body) = get(metrics, "/metrics", None);
        assert!(head.split_whitespace().nth(1) == Some("200"), "{head}");
        assert!(body.contains("memcached_current_items 1"), "{body}");
        let pid: u32 = std::fs::read_to_string(dir.join("ferrocached.pid"))
            .expect("the pid file of -P")
            .trim()
            .parse()
            .unwrap();
        assert_eq!(
            pid,
            server.child.id(),
            "the wrapper execs the server in place"
        );
        drop(server);
        let snapshot = dir.join(format!("{node}.snapshot"));
        assert!(snapshot.exists(), "SIGTERM saved {}", snapshot.display());
    }
    let _ = std::fs::remove_dir_all(&dir);
}
