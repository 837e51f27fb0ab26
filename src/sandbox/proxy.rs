//! The network allowlist: an HTTP proxy in the interpreter that admits only the hosts an
//! agent's `network [...]` names. It accepts on a socket that lives inside the step's
//! own network namespace (see `child.rs`) and connects out from the host's, so the proxy
//! is the only thing a step can reach. `CONNECT host:port` (HTTPS and any TLS) and
//! absolute-URI requests (`GET http://host/…`) are understood; each decision is logged.

use std::io;
use std::path::PathBuf;
use std::sync::Arc;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};

/// The port the proxy listens on inside every step's network namespace.
pub const PORT: u16 = 3128;

/// The largest request head the proxy reads before it answers 431.
const MAX_HEAD: usize = 16 * 1024;

/// Hosts a step may reach, and where its decisions are logged.
#[derive(Debug)]
pub struct Allowlist {
    hosts: Vec<String>,
    log: Option<PathBuf>,
}

impl Allowlist {
    /// An allowlist of `hosts` (`host`, `*.domain`, `host:port`), logging to `log`.
    pub fn new(hosts: Vec<String>, log: Option<PathBuf>) -> Allowlist {
        Allowlist { hosts, log }
    }

    /// Whether `host:port` may be reached: a bare entry admits ports 80 and 443, an
    /// entry with a port only that port; `*.domain` admits every subdomain of it.
    pub fn admits(&self, host: &str, port: u16) -> bool {
        let host = host.trim_end_matches('.').to_ascii_lowercase();
        self.hosts.iter().any(|entry| {
            let entry = entry.to_ascii_lowercase();
            let (name, ports): (&str, Option<u16>) = match entry.rsplit_once(':') {
                Some((n, p)) if p.chars().all(|c| c.is_ascii_digit()) => (n, p.parse().ok()),
                _ => (entry.as_str(), None),
            };
            let port_ok = match ports {
                Some(p) => p == port,
                None => port == 80 || port == 443,
            };
            let name_ok = match name.strip_prefix("*.") {
                Some(domain) => host.ends_with(&format!(".{domain}")),
                None => host == name,
            };
            port_ok && name_ok
        })
    }

    fn record(&self, line: &str) {
        if let Some(path) = &self.log {
            use std::io::Write;
            if let Ok(mut f) = std::fs::OpenOptions::new()
                .create(true)
                .append(true)
                .open(path)
            {
                let _ = writeln!(f, "{line}");
            }
        }
    }
}

/// Serves `listener` until the task is aborted.
pub async fn serve(listener: TcpListener, rules: Arc<Allowlist>) {
    while let Ok((client, _)) = listener.accept().await {
        let rules = rules.clone();
        tokio::spawn(async move {
            let _ = handle(client, &rules).await;
        });
    }
}

/// Where a request wants to go.
#[derive(Debug, PartialEq, Eq)]
struct Target {
    connect: bool,
    host: String,
    port: u16,
    /// For plain HTTP: the request line in origin form (`GET /path HTTP/1.1`).
    origin_line: Option<String>,
}

/// Reads the request line of a proxy request.
fn parse(line: &str) -> Option<Target> {
    let mut parts = line.split_whitespace();
    let method = parts.next()?;
    let target = parts.next()?;
    let version = parts.next()?;
    if method.eq_ignore_ascii_case("CONNECT") {
        let (host, port) = split_host_port(target, 443)?;
        return Some(Target {
            connect: true,
            host,
            port,
            origin_line: None,
        });
    }
    let rest = target.strip_prefix("http://")?;
    let (authority, path) = match rest.find('/') {
        Some(i) => (&rest[..i], &rest[i..]),
        None => (rest, "/"),
    };
    let (host, port) = split_host_port(authority, 80)?;
    Some(Target {
        connect: false,
        host,
        port,
        origin_line: Some(format!("{method} {path} {version}")),
    })
}

/// The head of a plain-HTTP request as the origin server gets it: the request line in
/// origin form, hop-by-hop and proxy headers dropped, and `Connection: close`. One
/// request per connection: the proxy relays bytes after the head without parsing
/// them, so a client must not send its next request (which may be for another host)
/// down the same connection; closing makes it open a new one, which is checked anew.
fn origin_request(line: &str, head: &str) -> String {
    let mut out = format!("{line}\r\n");
    for h in head.split("\r\n").skip(1) {
        if h.is_empty() {
            continue;
        }
        let name = h.split(':').next().unwrap_or_default().trim();
        if [
            "connection",
            "proxy-connection",
            "keep-alive",
            "proxy-authorization",
        ]
        .iter()
        .any(|d| name.eq_ignore_ascii_case(d))
        {
            continue;
        }
        out.push_str(h);
        out.push_str("\r\n");
    }
    out.push_str("Connection: close\r\n\r\n");
    out
}

fn split_host_port(authority: &str, default: u16) -> Option<(String, u16)> {
    // Credentials in the authority are never forwarded.
    let authority = authority.rsplit('@').next()?;
    if let Some(rest) = authority.strip_prefix('[') {
        let (host, after) = rest.split_once(']')?;
        let port = match after.strip_prefix(':') {
            Some(p) => p.parse().ok()?,
            None => default,
        };
        return Some((host.to_string(), port));
    }
    match authority.rsplit_once(':') {
        Some((h, p)) => Some((h.to_string(), p.parse().ok()?)),
        None => Some((authority.to_string(), default)),
    }
    .filter(|(h, _)| !h.is_empty())
}

async fn handle(mut client: TcpStream, rules: &Allowlist) -> io::Result<()> {
    let mut head = Vec::with_capacity(1024);
    let mut buf = [0u8; 4096];
    let end = loop {
        let n = client.read(&mut buf).await?;
        if n == 0 {
            return Ok(());
        }
        head.extend_from_slice(&buf[..n]);
        if let Some(i) = head.windows(4).position(|w| w == b"\r\n\r\n") {
            break i + 4;
        }
        if head.len() > MAX_HEAD {
            client
                .write_all(b"HTTP/1.1 431 Request Header Fields Too Large\r\n\r\n")
                .await?;
            return Ok(());
        }
    };
    let text = String::from_utf8_lossy(&head[..end]).into_owned();
    let first = text.lines().next().unwrap_or_default().to_string();
    let Some(target) = parse(&first) else {
        rules.record(&format!("refused (not a proxy request): {first}"));
        client
            .write_all(b"HTTP/1.1 400 Bad Request\r\nContent-Length: 0\r\n\r\n")
            .await?;
        return Ok(());
    };
    let what = format!(
        "{} {}:{}",
        if target.connect { "CONNECT" } else { "HTTP" },
        target.host,
        target.port
    );
    if !rules.admits(&target.host, target.port) {
        rules.record(&format!("denied {what}"));
        let body = format!(
            "runbook: {}:{} is not in this agent's network allowlist\n",
            target.host, target.port
        );
        client
            .write_all(
                format!(
                    "HTTP/1.1 403 Forbidden\r\nContent-Type: text/plain\r\nContent-Length: {}\r\nConnection: close\r\n\r\n{body}",
                    body.len()
                )
                .as_bytes(),
            )
            .await?;
        return Ok(());
    }
    let mut upstream = match TcpStream::connect((target.host.as_str(), target.port)).await {
        Ok(s) => s,
        Err(e) => {
            rules.record(&format!("failed {what}: {e}"));
            client
                .write_all(
                    b"HTTP/1.1 502 Bad Gateway\r\nContent-Length: 0\r\nConnection: close\r\n\r\n",
                )
                .await?;
            return Ok(());
        }
    };
    rules.record(&format!("allowed {what}"));
    if target.connect {
        client
            .write_all(b"HTTP/1.1 200 Connection Established\r\n\r\n")
            .await?;
    } else {
        let line = target.origin_line.unwrap_or_default();
        upstream
            .write_all(origin_request(&line, &text).as_bytes())
            .await?;
    }
    // Bytes the client sent after its head belong to the upstream conversation.
    upstream.write_all(&head[end..]).await?;
    tokio::io::copy_bidirectional(&mut client, &mut upstream).await?;
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn plain_http_goes_in_origin_form_one_request_per_connection() {
        let head = "POST http://127.0.0.1:8/v1/x?y=1 HTTP/1.1\r\nHost: 127.0.0.1:8\r\nProxy-Connection: Keep-Alive\r\nconnection: keep-alive\r\nContent-Length: 2\r\n\r\n";
        assert_eq!(
            origin_request("POST /v1/x?y=1 HTTP/1.1", head),
            "POST /v1/x?y=1 HTTP/1.1\r\nHost: 127.0.0.1:8\r\nContent-Length: 2\r\nConnection: close\r\n\r\n"
        );
    }

    #[test]
    fn hosts_ports_and_wildcards() {
        let a = Allowlist::new(
            vec![
                "crates.io".into(),
                "*.github.com".into(),
                "localhost:8080".into(),
            ],
            None,
        );
        assert!(a.admits("crates.io", 443));
        assert!(a.admits("CRATES.IO.", 80));
        assert!(!a.admits("crates.io", 22));
        assert!(!a.admits("static.crates.io", 443));
        assert!(a.admits("api.github.com", 443));
        assert!(!a.admits("github.com", 443));
        assert!(!a.admits("evilgithub.com", 443));
        assert!(a.admits("localhost", 8080));
        assert!(!a.admits("localhost", 443));
        assert!(!a.admits("crates.io.evil.com", 443));
    }

    #[test]
    fn request_lines() {
        assert_eq!(
            parse("CONNECT crates.io:443 HTTP/1.1"),
            Some(Target {
                connect: true,
                host: "crates.io".into(),
                port: 443,
                origin_line: None
            })
        );
        let t = parse("GET http://user:pw@example.com:8080/a?b HTTP/1.1").unwrap();
        assert_eq!((t.host.as_str(), t.port), ("example.com", 8080));
        assert_eq!(t.origin_line.unwrap(), "GET /a?b HTTP/1.1");
        let t = parse("GET http://[::1]/ HTTP/1.0").unwrap();
        assert_eq!((t.host.as_str(), t.port), ("::1", 80));
        assert_eq!(parse("GET /relative HTTP/1.1"), None);
        assert_eq!(parse("CONNECT :443 HTTP/1.1"), None);
        assert_eq!(parse("garbage"), None);
    }
}
