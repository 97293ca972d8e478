//! The socket layer under HTTP: a TCP listener whose connections close gracefully.
//!
//! A server that refuses a request before reading its body (413 on `Content-Length`, 401,
//! 415) and then closes the socket with those bytes unread makes the kernel answer them
//! with a reset, and a reset can destroy the refusal before the client reads it; most HTTP
//! libraries send the whole body before they read (RFC 9112 §9.6). So a connection whose
//! last request left its body unread is closed the way nginx's "lingering close" does it:
//! the response is flushed, our side is shut down (FIN: "the answer is complete"), and what
//! the client still sends is read and thrown away until it stops, for at most
//! [`LINGER_TOTAL`], and never waiting more than [`LINGER_IDLE`] for the next byte.
//! Which connections linger is decided per request by `http::unread_body`, through the
//! [`LingerSwitch`] that [`Peer`] carries into every request.

use std::net::SocketAddr;
use std::pin::Pin;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::task::{Context, Poll, ready};
use std::time::Duration;

use axum::extract::connect_info::Connected;
use axum::serve::{IncomingStream, Listener};
use tokio::io::{AsyncRead, AsyncWrite, ReadBuf};
use tokio::net::{TcpListener, TcpStream};
use tokio::time::{Instant, Sleep};

/// The longest a closing connection keeps reading a body nobody will use.
pub const LINGER_TOTAL: Duration = Duration::from_secs(5);
/// The longest it waits for the client's next byte before it closes.
pub const LINGER_IDLE: Duration = Duration::from_secs(1);

/// Whether the connection should linger when it closes: armed by a request whose body was
/// left unread, disarmed by one that read its body (the next request on the connection).
#[derive(Debug, Clone, Default)]
pub struct LingerSwitch(Arc<AtomicBool>);

impl LingerSwitch {
    pub fn set(&self, linger: bool) {
        self.0.store(linger, Ordering::Relaxed);
    }

    fn is_armed(&self) -> bool {
        self.0.load(Ordering::Relaxed)
    }
}

/// What a request knows of its connection: the peer's address and the connection's
/// [`LingerSwitch`]. Extracted as `ConnectInfo<Peer>`.
#[derive(Debug, Clone)]
pub struct Peer {
    pub address: SocketAddr,
    pub linger: LingerSwitch,
}

impl Connected<IncomingStream<'_, LingeringListener>> for Peer {
    fn connect_info(stream: IncomingStream<'_, LingeringListener>) -> Self {
        Self {
            address: *stream.remote_addr(),
            linger: stream.io().linger.clone(),
        }
    }
}

/// A TCP listener whose connections are [`LingeringStream`]s.
#[derive(Debug)]
pub struct LingeringListener(TcpListener);

impl LingeringListener {
    pub fn new(listener: TcpListener) -> Self {
        Self(listener)
    }
}

impl Listener for LingeringListener {
    type Io = LingeringStream;
    type Addr = SocketAddr;

    async fn accept(&mut self) -> (Self::Io, Self::Addr) {
        // axum's own accept loop: it retries, and backs off on errors such as EMFILE.
        let (stream, address) = Listener::accept(&mut self.0).await;
        (
            LingeringStream {
                stream,
                linger: LingerSwitch::default(),
                closing: Closing::Open,
            },
            address,
        )
    }

    fn local_addr(&self) -> std::io::Result<Self::Addr> {
        self.0.local_addr()
    }
}

/// A TCP connection that, when its switch is armed, lingers as it closes.
#[derive(Debug)]
pub struct LingeringStream {
    stream: TcpStream,
    linger: LingerSwitch,
    closing: Closing,
}

#[derive(Debug)]
enum Closing {
    Open,
    /// Our side is shut down; reading and discarding what the client still sends.
    Draining {
        deadline: Instant,
        idle: Pin<Box<Sleep>>,
    },
    Closed,
}

impl LingeringStream {
    /// Reads and discards until the client stops sending (end of stream or an error), the
    /// idle timer fires, or the total budget is spent.
    fn poll_drain(&mut self, cx: &mut Context<'_>) -> Poll<()> {
        let Closing::Draining { deadline, idle } = &mut self.closing else {
            return Poll::Ready(());
        };
        let mut scratch = [0_u8; 8192];
        loop {
            let mut buffer = ReadBuf::new(&mut scratch);
            match Pin::new(&mut self.stream).poll_read(cx, &mut buffer) {
                Poll::Ready(Ok(())) if !buffer.filled().is_empty() => {
                    let next = (Instant::now() + LINGER_IDLE).min(*deadline);
                    idle.as_mut().reset(next);
                }
                Poll::Ready(_) => return Poll::Ready(()),
                Poll::Pending => return idle.as_mut().poll(cx),
            }
        }
    }
}

impl AsyncRead for LingeringStream {
    fn poll_read(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<std::io::Result<()>> {
        Pin::new(&mut self.stream).poll_read(cx, buf)
    }
}

impl AsyncWrite for LingeringStream {
    fn poll_write(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<std::io::Result<usize>> {
        Pin::new(&mut self.stream).poll_write(cx, buf)
    }

    fn poll_write_vectored(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        bufs: &[std::io::IoSlice<'_>],
    ) -> Poll<std::io::Result<usize>> {
        Pin::new(&mut self.stream).poll_write_vectored(cx, bufs)
    }

    fn is_write_vectored(&self) -> bool {
        self.stream.is_write_vectored()
    }

    fn poll_flush(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<std::io::Result<()>> {
        Pin::new(&mut self.stream).poll_flush(cx)
    }

    fn poll_shutdown(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<std::io::Result<()>> {
        let this = &mut *self;
        loop {
            match this.closing {
                Closing::Open => {
                    let shut = ready!(Pin::new(&mut this.stream).poll_shutdown(cx));
                    if shut.is_err() || !this.linger.is_armed() {
                        this.closing = Closing::Closed;
                        return Poll::Ready(shut);
                    }
                    let deadline = Instant::now() + LINGER_TOTAL;
                    this.closing = Closing::Draining {
                        deadline,
                        idle: Box::pin(tokio::time::sleep(LINGER_IDLE)),
                    };
                }
                Closing::Draining { .. } => {
                    ready!(this.poll_drain(cx));
                    this.closing = Closing::Closed;
                }
                Closing::Closed => return Poll::Ready(Ok(())),
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use tokio::io::{AsyncReadExt, AsyncWriteExt};

    async fn pair() -> (LingeringStream, TcpStream) {
        let listener = TcpListener::bind("127.0.0.1:0").await.expect("bind");
        let address = listener.local_addr().expect("address");
        let mut listener = LingeringListener::new(listener);
        let client = TcpStream::connect(address);
        let ((server, _), client) = tokio::join!(Listener::accept(&mut listener), client);
        (server, client.expect("connect"))
    }

    #[tokio::test]
    async fn an_armed_stream_reads_what_the_client_still_sends_after_its_fin() {
        let (mut server, mut client) = pair().await;
        server.linger.set(true);
        server.write_all(b"refused").await.expect("write");
        let closing = tokio::spawn(async move { server.shutdown().await });
        let mut answer = [0_u8; 7];
        client.read_exact(&mut answer).await.expect("the answer");
        assert_eq!(&answer, b"refused");
        // The server has sent its FIN but is still reading: these writes are not reset.
        for _ in 0..64 {
            client
                .write_all(&[b'a'; 16 * 1024])
                .await
                .expect("still accepted");
        }
        drop(client);
        closing.await.expect("joined").expect("closed cleanly");
    }

    #[tokio::test]
    async fn an_armed_stream_gives_up_on_a_silent_client_after_the_idle_time() {
        let (mut server, _client) = pair().await;
        server.linger.set(true);
        let started = std::time::Instant::now();
        server.shutdown().await.expect("closed");
        let waited = started.elapsed();
        assert!(waited >= LINGER_IDLE && waited < LINGER_TOTAL, "{waited:?}");
    }

    #[tokio::test]
    async fn a_disarmed_stream_closes_at_once() {
        let (mut server, _client) = pair().await;
        let started = std::time::Instant::now();
        server.shutdown().await.expect("closed");
        assert!(started.elapsed() < LINGER_IDLE);
    }
}
