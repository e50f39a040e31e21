//! The stdin source.

use super::{read_stream, Batcher, Feed, SourceError, StreamEnd};
use crate::pipeline::Shutdown;
use std::io::BufReader;
use tokio::sync::mpsc;

/// Reads standard input line by line until it ends or shutdown is
/// requested. The reading runs on a thread of its own that is not waited
/// for: a read blocked on a silent terminal must not keep the process alive
/// after shutdown. Its batches pass through this task, so that on shutdown
/// the pipeline's feed is released at once, whatever the thread is doing.
pub async fn read_stdin(
    source: usize,
    tx: mpsc::Sender<Feed>,
    shutdown: Shutdown,
    max_record_bytes: usize,
) -> Vec<SourceError> {
    let (done_tx, done_rx) = tokio::sync::oneshot::channel();
    let (lines_tx, mut lines_rx) = mpsc::channel(2);
    let stop = shutdown.clone();
    let spawned = std::thread::Builder::new()
        .name("tocsin-stdin".into())
        .spawn(move || {
            let mut out = Batcher::new(source, lines_tx);
            let stdin = std::io::stdin();
            let mut reader = BufReader::with_capacity(1 << 16, stdin.lock());
            let end = read_stream(
                &mut reader,
                "stdin",
                &mut out,
                &stop,
                max_record_bytes,
                true,
            );
            out.send();
            let _ = done_tx.send(end);
        });
    if let Err(e) = spawned {
        return vec![SourceError::Io {
            path: "stdin".into(),
            source: e,
        }];
    }
    loop {
        tokio::select! {
            feed = lines_rx.recv() => match feed {
                Some(feed) => {
                    if tx.send(feed).await.is_err() {
                        return Vec::new();
                    }
                }
                None => break,
            },
            _ = shutdown.wait() => return Vec::new(),
        }
    }
    match done_rx.await {
        Ok(StreamEnd::Failed(source)) => {
            tracing::error!(error = %source, "stdin could not be read to its end");
            vec![SourceError::Io {
                path: "stdin".into(),
                source,
            }]
        }
        _ => Vec::new(),
    }
}
