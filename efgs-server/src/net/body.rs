//! Request bodies: the streaming size limit and read timeouts.

use super::*;

// Request bodies
// ---------------------------------------------------------------------------------------------

/// Why a request body could not be read. Implements `warp::reject::Reject`.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub(crate) enum BodyError {
    /// The body is larger than the limit (by `Content-Length`, or counted while reading).
    #[error("request body exceeds the limit of {limit} bytes")]
    TooLarge {
        /// The limit in bytes.
        limit: u64,
    },
    /// The client stopped sending the body.
    #[error("request body was not received in time")]
    Timeout,
    /// The body could not be read (client aborted, protocol error).
    #[error("request body could not be read: {reason}")]
    Read {
        /// The transport's message.
        reason: String,
    },
}

impl BodyError {
    /// Stable machine code.
    pub(crate) fn code(&self) -> &'static str {
        match self {
            BodyError::TooLarge { .. } => "body-too-large",
            BodyError::Timeout => "body-timeout",
            BodyError::Read { .. } => "body-read",
        }
    }

    /// The HTTP status for this error: 413, 408 or 400.
    pub(crate) fn status(&self) -> StatusCode {
        match self {
            BodyError::TooLarge { .. } => StatusCode::PAYLOAD_TOO_LARGE,
            BodyError::Timeout => StatusCode::REQUEST_TIMEOUT,
            BodyError::Read { .. } => StatusCode::BAD_REQUEST,
        }
    }

    /// Maps an error from warp's body stream, recognising the connection-level [`BodyError`]
    /// inside it.
    pub(crate) fn from_warp(err: &warp::Error) -> Self {
        let mut source: Option<&(dyn std::error::Error + 'static)> = std::error::Error::source(err);
        while let Some(e) = source {
            if let Some(body_error) = e.downcast_ref::<BodyError>() {
                return body_error.clone();
            }
            source = e.source();
        }
        BodyError::Read {
            reason: err.to_string(),
        }
    }
}

impl warp::reject::Reject for BodyError {}

/// The request body as hyper delivers it, with the connection-level size cap and the
/// between-pieces timeout.
pub(super) struct GuardedBody {
    inner: Incoming,
    read: u64,
    max: Option<u64>,
    timeout: Duration,
    sleep: Option<Pin<Box<Sleep>>>,
    done: bool,
}

impl GuardedBody {
    pub(super) fn new(inner: Incoming, max: Option<u64>, timeout: Duration) -> Self {
        GuardedBody {
            inner,
            read: 0,
            max,
            timeout,
            sleep: None,
            done: false,
        }
    }
}

impl Body for GuardedBody {
    type Data = Bytes;
    type Error = BodyError;

    fn poll_frame(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<Frame<Bytes>, BodyError>>> {
        let this = self.get_mut();
        if this.done {
            return Poll::Ready(None);
        }
        if let Some(max) = this.max
            && this.read == 0
            && this.inner.size_hint().lower() > max
        {
            // Declared too large: refuse before reading (and before any 100-continue).
            this.done = true;
            return Poll::Ready(Some(Err(BodyError::TooLarge { limit: max })));
        }
        match Pin::new(&mut this.inner).poll_frame(cx) {
            Poll::Ready(Some(Ok(frame))) => {
                this.sleep = None;
                if let Some(data) = frame.data_ref() {
                    this.read = this.read.saturating_add(data.len() as u64);
                    if let Some(max) = this.max
                        && this.read > max
                    {
                        this.done = true;
                        return Poll::Ready(Some(Err(BodyError::TooLarge { limit: max })));
                    }
                }
                Poll::Ready(Some(Ok(frame)))
            }
            Poll::Ready(Some(Err(e))) => {
                this.done = true;
                Poll::Ready(Some(Err(BodyError::Read {
                    reason: e.to_string(),
                })))
            }
            Poll::Ready(None) => {
                this.done = true;
                Poll::Ready(None)
            }
            Poll::Pending => {
                let timeout = this.timeout;
                let sleep = this
                    .sleep
                    .get_or_insert_with(|| Box::pin(tokio::time::sleep(timeout)));
                if sleep.as_mut().poll(cx).is_ready() {
                    this.done = true;
                    Poll::Ready(Some(Err(BodyError::Timeout)))
                } else {
                    Poll::Pending
                }
            }
        }
    }

    fn is_end_stream(&self) -> bool {
        self.done || self.inner.is_end_stream()
    }

    fn size_hint(&self) -> SizeHint {
        self.inner.size_hint()
    }
}

/// Reads a body stream into memory, refusing more than `max` bytes: at once when
/// `content_length` exceeds it, otherwise as soon as the running count does. Never holds more
/// than `max` bytes.
pub(crate) async fn read_limited<S, B>(
    stream: S,
    content_length: Option<u64>,
    max: u64,
) -> Result<Bytes, BodyError>
where
    S: Stream<Item = Result<B, warp::Error>>,
    B: Buf,
{
    if content_length.is_some_and(|len| len > max) {
        return Err(BodyError::TooLarge { limit: max });
    }
    // Do not trust the declared length for the allocation.
    let initial = content_length.unwrap_or(0).min(max).min(1024 * 1024);
    let mut body = BytesMut::with_capacity(usize::try_from(initial).unwrap_or(0));
    let mut stream = pin!(stream);
    while let Some(chunk) = stream.next().await {
        let mut chunk = chunk.map_err(|e| BodyError::from_warp(&e))?;
        if (body.len() as u64).saturating_add(chunk.remaining() as u64) > max {
            return Err(BodyError::TooLarge { limit: max });
        }
        while chunk.has_remaining() {
            let piece = chunk.chunk();
            let n = piece.len();
            body.extend_from_slice(piece);
            chunk.advance(n);
        }
    }
    Ok(body.freeze())
}

/// Extracts the request body as `Result<Bytes, BodyError>` with at most `max` bytes (see
/// [`read_limited`]). Rejects only if another filter already took the body.
#[cfg(test)]
pub(crate) fn try_body_limited(
    max: u64,
) -> impl Filter<Extract = (Result<Bytes, BodyError>,), Error = Rejection> + Clone {
    warp::header::optional::<u64>("content-length")
        .and(warp::body::stream())
        .then(move |len: Option<u64>, stream| read_limited(stream, len, max))
}

/// Extracts the request body with at most `max` bytes, rejecting with
/// `warp::reject::custom(`[`BodyError`]`)` (413 for too large; see [`BodyError::status`]).
#[cfg(test)]
pub(crate) fn body_limited(max: u64) -> impl Filter<Extract = (Bytes,), Error = Rejection> + Clone {
    try_body_limited(max).and_then(|result: Result<Bytes, BodyError>| async move {
        result.map_err(warp::reject::custom)
    })
}

// ---------------------------------------------------------------------------------------------
