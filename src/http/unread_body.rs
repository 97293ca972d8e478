//! A request answered without its body being read to the end (a refusal decided on the
//! headers: 413 on `Content-Length`, 401, 415; or a handler that needs no body) leaves the
//! connection unusable: the rest of the body is still on its way. Such a response says
//! `Connection: close`, and arms the connection's lingering close (`crate::listener`), so
//! that the bytes still arriving are read and thrown away rather than answered with a reset
//! that could destroy the response.

use std::pin::Pin;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::task::{Context, Poll};

use axum::body::{Body, Bytes};
use axum::extract::{ConnectInfo, Request};
use axum::http::{HeaderValue, header};
use axum::middleware::Next;
use axum::response::Response;
use http_body::{Frame, SizeHint};

use crate::listener::Peer;

pub async fn close_when_unread(request: Request, next: Next) -> Response {
    let linger = request
        .extensions()
        .get::<ConnectInfo<Peer>>()
        .map(|info| info.0.linger.clone());
    if http_body::Body::is_end_stream(request.body()) {
        // No body (most GETs): nothing can be left unread, and nothing to wrap.
        if let Some(linger) = linger {
            linger.set(false);
        }
        return next.run(request).await;
    }
    let (parts, body) = request.into_parts();
    let finished = Arc::new(AtomicBool::new(false));
    let tracked = Body::new(TrackedBody {
        inner: body,
        finished: finished.clone(),
    });
    let mut response = next.run(Request::from_parts(parts, tracked)).await;
    let unread = !finished.load(Ordering::Relaxed);
    if unread {
        response
            .headers_mut()
            .insert(header::CONNECTION, HeaderValue::from_static("close"));
    }
    if let Some(linger) = linger {
        linger.set(unread);
    }
    response
}

/// A request body that records whether it was read to its end.
struct TrackedBody {
    inner: Body,
    finished: Arc<AtomicBool>,
}

impl http_body::Body for TrackedBody {
    type Data = Bytes;
    type Error = axum::Error;

    fn poll_frame(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<Frame<Bytes>, axum::Error>>> {
        let polled = Pin::new(&mut self.inner).poll_frame(cx);
        if matches!(polled, Poll::Ready(None)) || self.inner.is_end_stream() {
            self.finished.store(true, Ordering::Relaxed);
        }
        polled
    }

    fn is_end_stream(&self) -> bool {
        self.inner.is_end_stream()
    }

    fn size_hint(&self) -> SizeHint {
        self.inner.size_hint()
    }
}
