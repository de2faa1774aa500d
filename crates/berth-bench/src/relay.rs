//! A far upstream on loopback: a TCP relay that holds every byte for a fixed time in
//! each direction before passing it on, so that a server on this machine answers as
//! one a round trip away does. Only latency: the bytes flow as fast as loopback takes
//! them once their time has come (no bandwidth limit, no slow start), and opening a
//! connection costs nothing more (a client with its connections kept open gains
//! nothing over one that opens a new one). The kernel here has no `netem` qdisc, so
//! `tc` cannot do this.

use std::net::{Ipv4Addr, SocketAddr};
use std::time::Duration;

use anyhow::{Context, Result};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::mpsc;
use tokio::task::JoinHandle;
use tokio::time::Instant;

/// Listens on a port of 127.0.0.1 and relays each connection to `target` there.
pub struct Relay {
    pub port: u16,
    accepting: JoinHandle<()>,
}

impl Relay {
    /// Relays to 127.0.0.1:`target`, each byte `one_way` late in either direction (a
    /// round trip of twice that).
    pub async fn start(target: u16, one_way: Duration) -> Result<Relay> {
        let listener = TcpListener::bind(SocketAddr::from((Ipv4Addr::LOCALHOST, 0)))
            .await
            .context("binding the relay")?;
        let port = listener.local_addr()?.port();
        let accepting = tokio::spawn(async move {
            while let Ok((client, _)) = listener.accept().await {
                tokio::spawn(async move {
                    let addr = SocketAddr::from((Ipv4Addr::LOCALHOST, target));
                    let Ok(server) = TcpStream::connect(addr).await else {
                        return; // dropping the client closes it: the peer sees a reset
                    };
                    let _ = client.set_nodelay(true);
                    let _ = server.set_nodelay(true);
                    let (client_read, client_write) = client.into_split();
                    let (server_read, server_write) = server.into_split();
                    tokio::join!(
                        late(client_read, server_write, one_way),
                        late(server_read, client_write, one_way),
                    );
                });
            }
        });
        Ok(Relay { port, accepting })
    }
}

impl Drop for Relay {
    fn drop(&mut self) {
        self.accepting.abort();
    }
}

/// Copies `from` to `to`, each read passed on `delay` after it arrived; the end of
/// `from` ends `to` as late.
async fn late(
    mut from: tokio::net::tcp::OwnedReadHalf,
    mut to: tokio::net::tcp::OwnedWriteHalf,
    delay: Duration,
) {
    // Unbounded: what is in flight is at most what one answer holds (a blob of the
    // bench), and a bound would add waits of its own to the delay.
    let (tx, mut rx) = mpsc::unbounded_channel::<(Instant, Vec<u8>)>();
    let reading = async move {
        loop {
            let mut buf = vec![0u8; 64 * 1024];
            let n = from.read(&mut buf).await.unwrap_or(0);
            buf.truncate(n);
            if tx.send((Instant::now() + delay, buf)).is_err() || n == 0 {
                return;
            }
        }
    };
    let writing = async move {
        while let Some((due, bytes)) = rx.recv().await {
            tokio::time::sleep_until(due).await;
            if bytes.is_empty() || to.write_all(&bytes).await.is_err() {
                break;
            }
        }
        let _ = to.shutdown().await;
    };
    tokio::join!(reading, writing);
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn a_round_trip_through_the_relay_takes_twice_its_delay() {
        let echo = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let target = echo.local_addr().unwrap().port();
        tokio::spawn(async move {
            let (mut s, _) = echo.accept().await.unwrap();
            let mut buf = [0u8; 5];
            s.read_exact(&mut buf).await.unwrap();
            s.write_all(&buf).await.unwrap();
        });
        let relay = Relay::start(target, Duration::from_millis(40))
            .await
            .unwrap();
        let mut c = TcpStream::connect(("127.0.0.1", relay.port)).await.unwrap();
        let t = std::time::Instant::now();
        c.write_all(b"hello").await.unwrap();
        let mut got = [0u8; 5];
        c.read_exact(&mut got).await.unwrap();
        let took = t.elapsed();
        assert_eq!(&got, b"hello");
        assert!(took >= Duration::from_millis(80), "{took:?}");
        // The echo closed its end: so does the relay, as late.
        assert_eq!(c.read(&mut got).await.unwrap(), 0);
    }
}
