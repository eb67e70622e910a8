//! A TCP proxy on loopback that a test can cut and restore: the database server "goes away"
//! (every open connection is closed, new ones are refused) and comes back, without touching the
//! server itself.

use std::net::SocketAddr;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};

use tokio::net::{TcpListener, TcpStream};
use tokio::sync::watch;

pub struct Proxy {
    address: SocketAddr,
    open: Arc<AtomicBool>,
    cuts: watch::Sender<u64>,
    accept: tokio::task::JoinHandle<()>,
}

impl Proxy {
    /// A proxy on 127.0.0.1 (a free port) in front of `target`.
    pub async fn start(target: SocketAddr) -> Proxy {
        let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let address = listener.local_addr().unwrap();
        let open = Arc::new(AtomicBool::new(true));
        let (cuts, _) = watch::channel(0u64);
        let accept = tokio::spawn({
            let open = open.clone();
            let cuts = cuts.clone();
            async move {
                while let Ok((client, _)) = listener.accept().await {
                    if !open.load(Ordering::SeqCst) {
                        drop(client); // refused: closed at once
                        continue;
                    }
                    tokio::spawn(relay(client, target, cuts.subscribe()));
                }
            }
        });
        Proxy { address, open, cuts, accept }
    }

    pub fn address(&self) -> SocketAddr {
        self.address
    }

    /// Closes every open connection and refuses new ones until [`Proxy::restore`].
    pub fn cut(&self) {
        self.open.store(false, Ordering::SeqCst);
        self.cuts.send_modify(|n| *n += 1);
    }

    pub fn restore(&self) {
        self.open.store(true, Ordering::SeqCst);
    }
}

impl Drop for Proxy {
    fn drop(&mut self) {
        self.accept.abort();
        self.cut();
    }
}

async fn relay(mut client: TcpStream, target: SocketAddr, mut cuts: watch::Receiver<u64>) {
    let Ok(mut server) = TcpStream::connect(target).await else { return };
    tokio::select! {
        _ = tokio::io::copy_bidirectional(&mut client, &mut server) => {}
        _ = cuts.changed() => {}
    }
}

/// `url` with its host and port replaced by `address` (`scheme://user@host:port/…`).
pub fn url_through(url: &str, address: SocketAddr) -> String {
    let (scheme, rest) = url.split_once("://").expect("a URL with a scheme");
    let authority_end = rest.find('/').unwrap_or(rest.len());
    let (authority, path) = rest.split_at(authority_end);
    let user = authority.rsplit_once('@').map(|(user, _)| format!("{user}@")).unwrap_or_default();
    format!("{scheme}://{user}{address}{path}")
}

/// The `host:port` a database URL points at, resolved.
pub fn target_of(url: &str) -> SocketAddr {
    use std::net::ToSocketAddrs;
    let rest = url.split_once("://").expect("a URL with a scheme").1;
    let authority = &rest[..rest.find('/').unwrap_or(rest.len())];
    let host_port = authority.rsplit_once('@').map(|(_, host)| host).unwrap_or(authority);
    host_port.to_socket_addrs().unwrap().next().expect("the database's address resolves")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn urls_keep_everything_but_the_address() {
        let address: SocketAddr = "127.0.0.1:4000".parse().unwrap();
        assert_eq!(
            url_through("postgres://postgres@127.0.0.1:5432/test?options=-c%20search_path%3Dx", address),
            "postgres://postgres@127.0.0.1:4000/test?options=-c%20search_path%3Dx"
        );
        assert_eq!(url_through("mysql://root@localhost:3306/db", address), "mysql://root@127.0.0.1:4000/db");
        assert_eq!(target_of("mysql://root@127.0.0.1:3306/db"), "127.0.0.1:3306".parse().unwrap());
    }
}
