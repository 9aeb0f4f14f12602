//! [`LaggingLink`]: a slow replication link between a Redis replica and its master.

use std::{
    sync::{
        Arc,
        atomic::{AtomicU64, Ordering},
    },
    time::Duration,
};

use tokio::{
    io::{AsyncReadExt, AsyncWriteExt},
    net::{TcpListener, TcpStream},
    sync::mpsc,
    time::Instant,
};

/// A TCP relay on a loopback port of its own: a replica told to replicate from it
/// (`--replicaof 127.0.0.1 <port>`) gets the master's stream late by the lag set with
/// [`LaggingLink::set_lag`] (none at first, so the first synchronisation is quick), while what it sends
/// back (acknowledgements) goes through at once. When the master's side ends (the master was
/// killed), the relay drops the bytes it still holds, so whatever the replica had not received
/// by then is lost, as it is when a master crashes on a slow network. Stops when dropped.
#[derive(Debug)]
pub struct LaggingLink {
    port: u16,
    lag_ms: Arc<AtomicU64>,
    task: tokio::task::JoinHandle<()>,
}

impl LaggingLink {
    pub async fn start(master_port: u16) -> Self {
        let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let port = listener.local_addr().unwrap().port();
        let lag_ms = Arc::new(AtomicU64::new(0));
        let lag = Arc::clone(&lag_ms);
        let task = tokio::spawn(async move {
            while let Ok((replica, _)) = listener.accept().await {
                tokio::spawn(relay(replica, master_port, Arc::clone(&lag)));
            }
        });
        Self { port, lag_ms, task }
    }

    /// Bytes the master sends from now on reach the replica `lag` late.
    pub fn set_lag(&self, lag: Duration) {
        self.lag_ms.store(u64::try_from(lag.as_millis()).unwrap(), Ordering::Relaxed);
    }

    /// Where the replica connects.
    pub fn port(&self) -> u16 {
        self.port
    }
}

impl Drop for LaggingLink {
    fn drop(&mut self) {
        self.task.abort();
    }
}

/// One replica connection: master → replica delayed by the current lag, replica → master as it comes.
/// Whichever side ends first ends both, dropping the delayed bytes not yet delivered.
async fn relay(replica: TcpStream, master_port: u16, lag_ms: Arc<AtomicU64>) {
    let Ok(master) = TcpStream::connect(("127.0.0.1", master_port)).await else { return };
    let (mut from_master, mut to_master) = master.into_split();
    let (mut from_replica, mut to_replica) = replica.into_split();
    let (delayed, mut due) = mpsc::unbounded_channel::<(Instant, Vec<u8>)>();
    let read_master = async move {
        let mut buffer = vec![0_u8; 64 * 1024];
        while let Ok(read @ 1..) = from_master.read(&mut buffer).await {
            let lag = Duration::from_millis(lag_ms.load(Ordering::Relaxed));
            if delayed.send((Instant::now() + lag, buffer[..read].to_vec())).is_err() {
                break;
            }
        }
    };
    let deliver = async move {
        while let Some((at, bytes)) = due.recv().await {
            tokio::time::sleep_until(at).await;
            if to_replica.write_all(&bytes).await.is_err() {
                break;
            }
        }
    };
    let acknowledge = async move {
        let _ = tokio::io::copy(&mut from_replica, &mut to_master).await;
    };
    tokio::select! {
        () = read_master => {}
        () = deliver => {}
        () = acknowledge => {}
    }
}
