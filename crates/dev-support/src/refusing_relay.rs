//! [`RefusingRelay`]: a way in to a Redis server that refuses connections until told not to.

use std::sync::{
    Arc,
    atomic::{AtomicBool, AtomicU64, Ordering},
};

use tokio::{
    io::AsyncWriteExt,
    net::{TcpListener, TcpStream},
};

/// What a Redis server at `maxclients` answers a new connection before closing it.
const REFUSAL: &[u8] = b"-ERR max number of clients reached\r\n";

/// A TCP relay on a loopback port of its own to the Redis server on `target_port`. While
/// refusing, it answers each new connection as a Redis server at `maxclients` does (the error,
/// then the connection closed); once told to [`RefusingRelay::accept`], it relays new
/// connections both ways. A cluster node announcing the relay's port (`cluster-announce-port`)
/// is then a primary whose first connections fail, as after a failover to a node that is
/// full, still loading its ACLs, or behind a TLS hiccup. Stops when dropped.
#[derive(Debug)]
pub struct RefusingRelay {
    port: u16,
    accepting: Arc<AtomicBool>,
    refused: Arc<AtomicU64>,
    task: tokio::task::JoinHandle<()>,
}

impl RefusingRelay {
    /// A relay to `target_port`, refusing every connection until [`Self::accept`].
    pub async fn start(target_port: u16) -> Self {
        let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let port = listener.local_addr().unwrap().port();
        let accepting = Arc::new(AtomicBool::new(false));
        let refused = Arc::new(AtomicU64::new(0));
        let (accepts, refusals) = (Arc::clone(&accepting), Arc::clone(&refused));
        let task = tokio::spawn(async move {
            while let Ok((mut client, _)) = listener.accept().await {
                if accepts.load(Ordering::Acquire) {
                    tokio::spawn(relay(client, target_port));
                } else {
                    refusals.fetch_add(1, Ordering::Relaxed);
                    tokio::spawn(async move {
                        let _ = client.write_all(REFUSAL).await;
                        let _ = client.shutdown().await;
                    });
                }
            }
        });
        Self { port, accepting, refused, task }
    }

    /// New connections are relayed from now on.
    pub fn accept(&self) {
        self.accepting.store(true, Ordering::Release);
    }

    /// How many connections were refused so far.
    pub fn refused(&self) -> u64 {
        self.refused.load(Ordering::Relaxed)
    }

    /// Where clients connect.
    pub fn port(&self) -> u16 {
        self.port
    }
}

impl Drop for RefusingRelay {
    fn drop(&mut self) {
        self.task.abort();
    }
}

async fn relay(mut client: TcpStream, target_port: u16) {
    let Ok(mut server) = TcpStream::connect(("127.0.0.1", target_port)).await else { return };
    let _ = tokio::io::copy_bidirectional(&mut client, &mut server).await;
}
