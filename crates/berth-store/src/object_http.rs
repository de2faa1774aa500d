//! The object storage client's HTTP: every request runs on the client's own runtime,
//! and a response's body reaches its reader through a bounded queue.
//!
//! object_store's `SpawnedReqwestConnector` also runs requests on another runtime, but
//! passes the body through an unbounded channel: the bucket is read as fast as it
//! sends, whoever reads the body. A client pulling a 1 GiB layer at 20 MB/s through
//! `berth serve` made the replica hold the whole layer in memory (measured: 1 GiB of
//! RSS within seven seconds), and so did a catalog scan slower than the bucket. Here
//! the runtime's task waits while [`QUEUE`] frames are unread, so the connection reads
//! no further and TCP holds the bucket back: memory per body is bounded by the queue
//! and hyper's read buffer.

use std::pin::Pin;
use std::task::{Context, Poll};

use bytes::Bytes;
use http_body::{Body, Frame};
use http_body_util::BodyExt;
use object_store::client::{
    HttpClient, HttpConnector, HttpError, HttpErrorKind, HttpRequest, HttpResponse,
    HttpResponseBody, HttpService, ReqwestConnector,
};
use object_store::ClientOptions;
use tokio::runtime::Handle;
use tokio::sync::{mpsc, oneshot};
use tokio::task::JoinHandle;

/// Frames of a response body received and not yet read (hyper reads at most a few
/// hundred KiB into one).
const QUEUE: usize = 4;

/// Connects object_store's requests through reqwest on `runtime`.
#[derive(Debug)]
pub(crate) struct OnRuntime {
    runtime: Handle,
}

impl OnRuntime {
    pub(crate) fn new(runtime: Handle) -> OnRuntime {
        OnRuntime { runtime }
    }
}

impl HttpConnector for OnRuntime {
    fn connect(&self, options: &ClientOptions) -> object_store::Result<HttpClient> {
        let inner = ReqwestConnector::default().connect(options)?;
        Ok(HttpClient::new(Spawned {
            inner,
            runtime: self.runtime.clone(),
        }))
    }
}

#[derive(Debug)]
struct Spawned {
    inner: HttpClient,
    runtime: Handle,
}

/// The task running a request ended before it answered.
#[derive(Debug, thiserror::Error)]
#[error("the object storage client's task stopped")]
struct Stopped;

#[async_trait::async_trait]
impl HttpService for Spawned {
    async fn call(&self, req: HttpRequest) -> Result<HttpResponse, HttpError> {
        let inner = self.inner.clone();
        let (head_tx, head_rx) = oneshot::channel();
        let (frames_tx, frames_rx) = mpsc::channel(QUEUE);
        let task = self.runtime.spawn(async move {
            let (parts, mut body) = match inner.execute(req).await {
                Ok(r) => r.into_parts(),
                Err(e) => {
                    let _ = head_tx.send(Err(e));
                    return;
                }
            };
            if head_tx.send(Ok(parts)).is_err() {
                return;
            }
            while let Some(frame) = body.frame().await {
                // Waits while the reader is QUEUE frames behind; gone, it stops.
                if frames_tx.send(frame).await.is_err() {
                    return;
                }
            }
        });
        let task = AbortOnDrop(task);
        let parts = head_rx
            .await
            .map_err(|_| HttpError::new(HttpErrorKind::Interrupted, Stopped))??;
        let body = Queued {
            frames: frames_rx,
            _task: task,
        };
        Ok(HttpResponse::from_parts(parts, HttpResponseBody::new(body)))
    }
}

/// Stops the request's task when its body is dropped unread.
struct AbortOnDrop(JoinHandle<()>);

impl Drop for AbortOnDrop {
    fn drop(&mut self) {
        self.0.abort();
    }
}

/// A response body read from the queue its task fills.
struct Queued {
    frames: mpsc::Receiver<Result<Frame<Bytes>, HttpError>>,
    _task: AbortOnDrop,
}

impl Body for Queued {
    type Data = Bytes;
    type Error = HttpError;

    fn poll_frame(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<Frame<Bytes>, HttpError>>> {
        self.frames.poll_recv(cx)
    }
}

#[cfg(test)]
mod tests {
    use std::sync::atomic::{AtomicUsize, Ordering};
    use std::sync::Arc;
    use std::time::Duration;

    use futures_util::StreamExt;
    use http_body_util::StreamBody;
    use object_store::client::HttpRequestBody;

    use super::*;

    /// A service whose answer never ends, counting the frames taken from it.
    #[derive(Debug)]
    struct Endless(Arc<AtomicUsize>);

    #[async_trait::async_trait]
    impl HttpService for Endless {
        async fn call(&self, _req: HttpRequest) -> Result<HttpResponse, HttpError> {
            let taken = self.0.clone();
            let frames = futures_util::stream::repeat(()).map(move |()| {
                taken.fetch_add(1, Ordering::SeqCst);
                Ok(Frame::data(Bytes::from_static(&[7; 1024])))
            });
            Ok(HttpResponse::new(HttpResponseBody::new(StreamBody::new(
                frames,
            ))))
        }
    }

    /// A reader that stops reading stops the request's task within the queue: the
    /// body is never read ahead without bound (object_store's own spawning connector
    /// would take every frame the service has).
    #[test]
    fn a_body_is_read_ahead_only_as_far_as_the_queue() {
        let runtime = tokio::runtime::Builder::new_multi_thread()
            .worker_threads(1)
            .enable_all()
            .build()
            .unwrap();
        let taken = Arc::new(AtomicUsize::new(0));
        let service = Spawned {
            inner: HttpClient::new(Endless(taken.clone())),
            runtime: runtime.handle().clone(),
        };
        let reader = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .unwrap();
        reader.block_on(async {
            let req = HttpRequest::new(HttpRequestBody::empty());
            let mut body = service.call(req).await.unwrap().into_body();
            for _ in 0..10 {
                body.frame().await.unwrap().unwrap();
            }
            tokio::time::sleep(Duration::from_millis(200)).await;
            let ahead = taken.load(Ordering::SeqCst) - 10;
            assert!(ahead <= QUEUE + 1, "{ahead} frames read ahead");
            // Reading on takes more, and a dropped body stops the task.
            for _ in 0..100 {
                body.frame().await.unwrap().unwrap();
            }
            drop(body);
            tokio::time::sleep(Duration::from_millis(50)).await;
            let stopped = taken.load(Ordering::SeqCst);
            tokio::time::sleep(Duration::from_millis(100)).await;
            assert_eq!(taken.load(Ordering::SeqCst), stopped, "the task runs on");
        });
    }
}
