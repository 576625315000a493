//! The public scrape route judges a proxied request by the client the proxy forwarded,
//! never by the proxy: through a real nginx (the configs of `deployments/nginx`, on the
//! test's ports) an outside client gets 403, although nginx's own address may scrape.
//! The K3s Ingress once forwarded everything under the prefix, `P/metrics/prometheus`
//! included; the shipped nginx locations refuse that path themselves as well.
mod common;

use std::io::Write;
use std::net::TcpStream;
use std::path::Path;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use common::{free_port, read_response, HttpResponse, Server, TempDir};

const SCRAPE: &str = "/chatbox/metrics/prometheus";
/// What a CDN or load balancer in front of nginx would say the client is; nginx takes
/// it as `$remote_addr` (`set_real_ip_from`, as chatbox-proxy.conf advises there).
const CLIENT_HEADER: &str = "X-Test-Client";
const OUTSIDE: &str = "203.0.113.7";

/// `nginx` from `CHATBOX_TEST_NGINX` (scripts/test installs nginx-light), else on PATH
/// or where Debian puts it.
fn nginx_binary() -> String {
    std::env::var("CHATBOX_TEST_NGINX").unwrap_or_else(|_| {
        if Path::new("/usr/sbin/nginx").exists() {
            "/usr/sbin/nginx".into()
        } else {
            "nginx".into()
        }
    })
}

struct Nginx {
    child: Child,
    _dir: TempDir,
}

impl Drop for Nginx {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// The repository's nginx files, with Debian's paths pointed into `dir` and the
/// upstream at `chatbox_port`.
fn templated(name: &str, dir: &Path, chatbox_port: u16) -> String {
    let path = Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("deployments/nginx")
        .join(name);
    std::fs::read_to_string(&path)
        .unwrap_or_else(|e| panic!("{}: {e}", path.display()))
        .replace("/etc/nginx/snippets/", &format!("{}/", dir.display()))
        .replace("/var/log/nginx/", &format!("{}/", dir.display()))
        .replace("127.0.0.1:8080", &format!("127.0.0.1:{chatbox_port}"))
}

/// nginx with two sites in front of chatbox: `shipped` serves chatbox-locations.conf as
/// it is; `forward_all` sends everything under the prefix to chatbox, as the K3s Ingress
/// did. Both take the client's address from `CLIENT_HEADER`.
fn start_nginx(chatbox_port: u16, shipped: u16, forward_all: u16) -> Nginx {
    let dir = TempDir::new();
    let d = dir.path();
    for name in [
        "chatbox-http.conf",
        "chatbox-proxy.conf",
        "chatbox-locations.conf",
    ] {
        std::fs::write(d.join(name), templated(name, d, chatbox_port)).expect("write");
    }
    let locations = templated("chatbox-locations.conf", d, chatbox_port);
    let start = locations
        .find("location /chatbox/metrics/")
        .expect("the shipped locations refuse the scrape path");
    let end = start + locations[start..].find('}').expect("block end") + 1;
    let forwarding = format!("{}{}", &locations[..start], &locations[end..]);
    std::fs::write(d.join("forward-all-locations.conf"), forwarding).expect("write");
    let single = templated("single.conf", d, chatbox_port);
    let upstream_end = single.find("server {").expect("a server block");
    let site = |port: u16, locations: &str| {
        format!(
            "server {{\n    listen 127.0.0.1:{port};\n    set_real_ip_from 127.0.0.1;\n    \
             real_ip_header {CLIENT_HEADER};\n    include {}/{locations};\n}}\n",
            d.display()
        )
    };
    let conf = format!(
        "pid {d}/nginx.pid;\nerror_log {d}/error.log;\nevents {{}}\nhttp {{\n    \
         access_log off;\n    client_body_temp_path {d}/client_body;\n    \
         proxy_temp_path {d}/proxy;\n    include {d}/chatbox-http.conf;\n{upstream}{a}{b}}}\n",
        d = d.display(),
        upstream = &single[..upstream_end],
        a = site(shipped, "chatbox-locations.conf"),
        b = site(forward_all, "forward-all-locations.conf"),
    );
    std::fs::write(d.join("nginx.conf"), conf).expect("write");
    let tool = nginx_binary();
    let child = Command::new(&tool)
        .arg("-p")
        .arg(d)
        .arg("-c")
        .arg(d.join("nginx.conf"))
        .args(["-e", "stderr", "-g", "daemon off; master_process off;"])
        .stdout(Stdio::null())
        .stderr(Stdio::inherit())
        .spawn()
        .unwrap_or_else(|e| {
            panic!("cannot run {tool} ({e}); run scripts/test, which installs nginx-light")
        });
    let nginx = Nginx { child, _dir: dir };
    let deadline = Instant::now() + Duration::from_secs(10);
    for port in [shipped, forward_all] {
        while TcpStream::connect(("127.0.0.1", port)).is_err() {
            assert!(Instant::now() < deadline, "nginx did not listen on {port}");
            std::thread::sleep(Duration::from_millis(20));
        }
    }
    nginx
}

fn get(port: u16, path: &str, headers: &str) -> HttpResponse {
    let mut stream = TcpStream::connect(("127.0.0.1", port)).expect("connect");
    stream
        .set_read_timeout(Some(Duration::from_secs(10)))
        .expect("timeout");
    write!(
        stream,
        "GET {path} HTTP/1.1\r\nHost: t\r\nConnection: close\r\n{headers}\r\n"
    )
    .expect("send");
    read_response(&mut stream).expect("a response")
}

#[test]
fn an_outside_client_through_nginx_gets_403_and_the_internal_scrape_works() {
    let internal = free_port();
    // nginx on this host is the trusted proxy, and (in the default allowed networks,
    // like Traefik's pod network on K3s) it could scrape by its own address.
    let server = Server::start(&[
        ("TRUSTED_PROXIES", "127.0.0.1/32"),
        ("METRICS_PORT", &internal.to_string()),
    ]);
    let (shipped, forward_all) = (free_port(), free_port());
    let _nginx = start_nginx(server.port, shipped, forward_all);
    let outside = format!("{CLIENT_HEADER}: {OUTSIDE}\r\n");

    assert_eq!(
        get(forward_all, "/chatbox/healthz", &outside).status,
        200,
        "nginx forwards to chatbox"
    );
    let refused = get(forward_all, SCRAPE, &outside);
    assert_eq!(refused.status, 403, "judged by the client, not by nginx");
    assert_eq!(refused.json()["code"], "FORBIDDEN");
    let inside = get(forward_all, SCRAPE, "");
    assert_eq!(
        inside.status, 200,
        "a client in METRICS_ALLOWED_NETWORKS, forwarded"
    );

    assert_eq!(
        get(shipped, SCRAPE, &outside).status,
        404,
        "the shipped nginx locations refuse the path themselves"
    );

    let scrape = get(internal, "/metrics", "");
    assert_eq!(scrape.status, 200);
    assert!(String::from_utf8_lossy(&scrape.body).contains("chatbox_draining 0"));
}
