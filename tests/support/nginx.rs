//! Debian nginx as the naive baseline: round-robin over the same ENs, started by the test.

use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::time::Duration;

/// A running nginx; killed when dropped.
pub struct Nginx {
    pub url: String,
    /// WebSocket round-robin over the ENs' WS endpoints (per connection), when started with them.
    pub ws_url: Option<String>,
    child: Child,
    _dir: TempDir,
}

struct TempDir(PathBuf);
impl Drop for TempDir {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.0);
    }
}

fn nginx_bin() -> String {
    for p in ["/usr/sbin/nginx", "/usr/local/sbin/nginx", "/usr/bin/nginx"] {
        if std::path::Path::new(p).exists() {
            return p.to_owned();
        }
    }
    panic!("nginx is not installed: `apt-get install -y nginx-light` (scripts/test installs it)");
}

impl Nginx {
    /// Round-robin over `upstreams` (http://host:port URLs), with upstream keep-alive.
    pub fn start(upstreams: &[String]) -> Nginx {
        Self::start_with_ws(upstreams, &[])
    }

    /// Also a WebSocket proxy on a second port: each connection to one of `ws_upstreams`
    /// (ws://host:port), round-robin, as a load balancer in front of ENs would do.
    pub fn start_with_ws(upstreams: &[String], ws_upstreams: &[String]) -> Nginx {
        let port = super::free_port();
        let ws_port = super::free_port();
        let ws_servers: String = ws_upstreams
            .iter()
            .map(|u| format!("    server {};\n", u.trim_start_matches("ws://").trim_end_matches('/')))
            .collect();
        let ws_block = if ws_upstreams.is_empty() {
            String::new()
        } else {
            format!(
                "  upstream ens_ws {{\n{ws_servers}  }}\n\
                 server {{\n    listen 127.0.0.1:{ws_port};\n    location / {{\n      proxy_pass http://ens_ws;\n\
                 proxy_http_version 1.1;\n      proxy_set_header Upgrade $http_upgrade;\n\
                 proxy_set_header Connection \"upgrade\";\n      proxy_set_header Host localhost;\n\
                 proxy_read_timeout 3600s;\n    }}\n  }}\n"
            )
        };
        let dir = std::env::temp_dir().join(format!("kengate-nginx-{}-{port}", std::process::id()));
        std::fs::create_dir_all(dir.join("tmp")).unwrap();
        let servers: String = upstreams
            .iter()
            .map(|u| {
                format!(
                    "    server {};\n",
                    u.trim_start_matches("http://").trim_end_matches('/')
                )
            })
            .collect();
        let d = dir.display();
        let conf = format!(
            "daemon off;\nmaster_process off;\nworker_processes 1;\nerror_log {d}/error.log warn;\npid {d}/nginx.pid;\n\
             events {{ worker_connections 4096; }}\n\
             http {{\n  access_log off;\n  client_body_temp_path {d}/tmp; proxy_temp_path {d}/tmp;\n\
               fastcgi_temp_path {d}/tmp; uwsgi_temp_path {d}/tmp; scgi_temp_path {d}/tmp;\n\
               upstream ens {{\n{servers}    keepalive 64;\n  }}\n\
               server {{\n    listen 127.0.0.1:{port};\n    location / {{\n      proxy_pass http://ens;\n\
                 proxy_http_version 1.1;\n      proxy_set_header Connection \"\";\n\
                 proxy_set_header Host localhost;\n    }}\n  }}\n{ws_block}}}\n"
        );
        std::fs::write(dir.join("nginx.conf"), conf).unwrap();
        let child = Command::new(nginx_bin())
            .args(["-p", &d.to_string(), "-c", &format!("{d}/nginx.conf")])
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .expect("start nginx");
        for _ in 0..100 {
            if std::net::TcpStream::connect(("127.0.0.1", port)).is_ok() {
                break;
            }
            std::thread::sleep(Duration::from_millis(50));
        }
        Nginx {
            url: format!("http://127.0.0.1:{port}"),
            ws_url: (!ws_upstreams.is_empty()).then(|| format!("ws://127.0.0.1:{ws_port}")),
            child,
            _dir: TempDir(dir),
        }
    }
}

impl Drop for Nginx {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}
