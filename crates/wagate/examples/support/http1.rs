//! A minimal HTTP/1.1 client for load generation: one keep-alive connection, one request at a
//! time, requests written as text and responses read by `Content-Length`. The load generator
//! shares the machine with the server it measures, so it should cost as little as a tool like
//! `wrk` does; a general client (connection pool, header maps, URL parsing) costs several
//! times more per request.

use std::sync::Mutex;

use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;

/// One keep-alive connection to the server.
pub struct Connection {
    stream: TcpStream,
    host: String,
    authorization: String,
    request: Vec<u8>,
    response: Vec<u8>,
}

/// A response: status and body.
pub struct Response {
    pub status: u16,
    pub body: Vec<u8>,
}

impl Connection {
    /// Connects to `base` (`http://host:port`); requests carry `token` as a bearer token.
    pub async fn open(base: &str, token: &str) -> std::io::Result<Connection> {
        let host = base.strip_prefix("http://").unwrap_or(base).trim_end_matches('/').to_owned();
        let stream = TcpStream::connect(&host).await?;
        stream.set_nodelay(true)?;
        Ok(Connection {
            stream,
            host,
            authorization: format!("Bearer {token}"),
            request: Vec::with_capacity(512),
            response: Vec::with_capacity(4096),
        })
    }

    pub async fn get(&mut self, path: &str) -> std::io::Result<Response> {
        self.send("GET", path, None).await
    }

    pub async fn post_json(&mut self, path: &str, body: &str) -> std::io::Result<Response> {
        self.send("POST", path, Some(body)).await
    }

    async fn send(&mut self, method: &str, path: &str, body: Option<&str>) -> std::io::Result<Response> {
        use std::io::Write;
        self.request.clear();
        write!(
            self.request,
            "{method} {path} HTTP/1.1\r\nHost: {}\r\nAuthorization: {}\r\n",
            self.host, self.authorization
        )?;
        if let Some(body) = body {
            write!(
                self.request,
                "Content-Type: application/json\r\nContent-Length: {}\r\n\r\n{body}",
                body.len()
            )?;
        } else {
            self.request.extend_from_slice(b"\r\n");
        }
        self.stream.write_all(&self.request).await?;
        self.read_response().await
    }

    async fn read_response(&mut self) -> std::io::Result<Response> {
        self.response.clear();
        let head_end = loop {
            if let Some(at) = find(&self.response, b"\r\n\r\n") {
                break at + 4;
            }
            self.fill().await?;
        };
        let head = std::str::from_utf8(&self.response[..head_end]).map_err(invalid)?;
        let status = head
            .split(' ')
            .nth(1)
            .and_then(|s| s.parse().ok())
            .ok_or_else(|| invalid(format!("no status in {head:?}")))?;
        let length: usize = head
            .lines()
            .find_map(|line| {
                let (name, value) = line.split_once(':')?;
                name.eq_ignore_ascii_case("content-length").then(|| value.trim().parse().ok())?
            })
            .ok_or_else(|| invalid(format!("no Content-Length in {head:?}")))?;
        while self.response.len() < head_end + length {
            self.fill().await?;
        }
        Ok(Response { status, body: self.response[head_end..head_end + length].to_vec() })
    }

    async fn fill(&mut self) -> std::io::Result<()> {
        let mut chunk = [0u8; 4096];
        let read = self.stream.read(&mut chunk).await?;
        if read == 0 {
            return Err(std::io::ErrorKind::UnexpectedEof.into());
        }
        self.response.extend_from_slice(&chunk[..read]);
        Ok(())
    }
}

/// Idle connections, reused by whichever task needs one next.
pub struct Connections {
    base: String,
    token: String,
    idle: Mutex<Vec<Connection>>,
}

impl Connections {
    pub fn new(base: &str, token: &str) -> Connections {
        Connections { base: base.to_owned(), token: token.to_owned(), idle: Mutex::default() }
    }

    /// An idle connection, or a new one.
    pub async fn take(&self) -> Connection {
        let idle = self.idle.lock().unwrap().pop();
        match idle {
            Some(connection) => connection,
            None => Connection::open(&self.base, &self.token).await.expect("connect to the server"),
        }
    }

    pub fn give_back(&self, connection: Connection) {
        self.idle.lock().unwrap().push(connection);
    }
}

fn find(haystack: &[u8], needle: &[u8]) -> Option<usize> {
    haystack.windows(needle.len()).position(|window| window == needle)
}

fn invalid(detail: impl std::fmt::Display) -> std::io::Error {
    std::io::Error::new(std::io::ErrorKind::InvalidData, detail.to_string())
}
