//! The node's side of short-circuit reads and writes
//! (`cairn_node_api::local`): a Unix socket in the data directory where a
//! service on this host, showing the cluster secret, is granted an open
//! descriptor of a chunk file and the extents and stored hashes of the
//! blocks it asked for (the node does the same checks as for an HTTP read;
//! the caller reads and hashes the blocks), or a descriptor of a new chunk's
//! temporary file, which the node checks block by block and seals when the
//! caller has written it (the same checks and durability as an HTTP PUT).

use std::io;
use std::os::fd::AsFd;
use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};
use std::sync::Arc;

use std::time::Instant;

use cairn_core::ids::ChunkId;
use cairn_node_api::local::{
    self, BlockExtent, LocalEndpoint, MAX_SOCKET_PATH, Op, REQUEST_HEAD_LEN, RequestHead,
};
use cairn_service::tasks::CancellationToken;
use cairn_service::{ApiError, ErrorBody, ErrorCode};
use prometheus::IntCounterVec;
use tokio::io::AsyncReadExt;
use tokio::net::{UnixListener, UnixStream};
use tracing::Instrument;

use crate::node::NodeShared;
use crate::store::{ChunkReader, ChunkWriter, StoreError};

/// A connection with no request for this long is closed.
const IDLE_CLOSE: std::time::Duration = std::time::Duration::from_secs(120);
/// A request's secret and extra bytes must follow its head within this.
const REQUEST_REST_WITHIN: std::time::Duration = std::time::Duration::from_secs(10);

/// A bound local socket and what the node registers for it.
#[derive(Debug)]
pub(crate) struct LocalSocket {
    listener: UnixListener,
    path: PathBuf,
    pub(crate) endpoint: LocalEndpoint,
}

impl LocalSocket {
    /// Binds `<data_dir>/local.sock` (mode 0600), replacing a socket
    /// a previous run left. `None`, with a warning, when the path is too
    /// long for a Unix socket or cannot be bound: reads then go over HTTP.
    pub(crate) fn bind(data_dir: &Path) -> Option<Self> {
        let path = std::path::absolute(data_dir.join(local::SOCKET_NAME)).ok()?;
        if path.as_os_str().len() > MAX_SOCKET_PATH {
            tracing::warn!(path = %path.display(), "data directory path too long for a Unix socket; short-circuit reads and writes are off");
            return None;
        }
        match bind(&path) {
            Ok(listener) => Some(Self {
                listener,
                endpoint: LocalEndpoint {
                    host: local::host_identity(),
                    socket: path.display().to_string(),
                },
                path,
            }),
            Err(err) => {
                tracing::warn!(path = %path.display(), error = %err, "cannot serve short-circuit reads and writes");
                None
            }
        }
    }

    /// Accepts connections until `token` is cancelled, then removes the
    /// socket file.
    pub(crate) async fn serve(self, shared: Arc<NodeShared>, token: CancellationToken) {
        loop {
            let accepted = tokio::select! {
                _ = token.cancelled() => break,
                accepted = self.listener.accept() => accepted,
            };
            match accepted {
                Ok((stream, _)) => {
                    let shared = shared.clone();
                    let token = token.clone();
                    tokio::spawn(async move {
                        tokio::select! {
                            _ = token.cancelled() => {}
                            _ = serve_connection(stream, shared) => {}
                        }
                    });
                }
                Err(err) => {
                    tracing::warn!(error = %err, "local-read accept failed");
                    tokio::time::sleep(std::time::Duration::from_millis(50)).await;
                }
            }
        }
        let _ = std::fs::remove_file(&self.path);
    }
}

fn bind(path: &Path) -> io::Result<UnixListener> {
    use std::os::unix::fs::FileTypeExt;
    // Only a socket is ever removed: never a file someone put there.
    if let Ok(meta) = std::fs::symlink_metadata(path)
        && meta.file_type().is_socket()
    {
        std::fs::remove_file(path)?;
    }
    let listener = UnixListener::bind(path)?;
    std::fs::set_permissions(path, std::fs::Permissions::from_mode(0o600))?;
    Ok(listener)
}

/// Answers one caller's requests in turn until it hangs up or misbehaves.
/// A chunk created on the connection and not sealed when it ends is
/// dropped, with its temporary file.
async fn serve_connection(mut stream: UnixStream, shared: Arc<NodeShared>) {
    let mut created: Option<ChunkWriter> = None;
    loop {
        let mut head = [0u8; REQUEST_HEAD_LEN];
        // An idle connection (a caller's pool) is closed after a while; the
        // caller retries a closed pooled connection on a new one.
        match tokio::time::timeout(IDLE_CLOSE, stream.read_exact(&mut head)).await {
            Ok(Ok(_)) => {}
            _ => return, // hung up, idle too long, or a half request
        }
        let head = match RequestHead::decode(&head) {
            Ok(head) => head,
            Err(message) => {
                refuse_invalid(&mut stream, &shared.metrics.local_reads, message).await;
                return;
            }
        };
        let mut secret = vec![0u8; head.secret_len];
        let mut extra = vec![0u8; head.extra_len()];
        let rest = async {
            stream.read_exact(&mut secret).await?;
            stream.read_exact(&mut extra).await
        };
        match tokio::time::timeout(REQUEST_REST_WITHIN, rest).await {
            Ok(Ok(_)) => {}
            _ => return, // a request started and never finished
        }
        if !shared.secret.matches(&secret) {
            let body = error_body(
                ErrorCode::Unauthorized,
                "missing or wrong cluster secret".into(),
            );
            refuse(
                &mut stream,
                &shared.metrics.local_reads,
                "unauthorized",
                401,
                body,
            )
            .await;
            return;
        }
        let answered = match head.op {
            Op::Read {
                chunk,
                first,
                count,
            } => {
                grant_read(&mut stream, &shared, chunk, first, count)
                    .instrument(tracing::info_span!("local_read_grant", %chunk))
                    .await
            }
            Op::Create { chunk, block_size } => {
                create(&mut stream, &shared, &mut created, chunk, block_size)
                    .instrument(tracing::info_span!("local_write_create", %chunk))
                    .await
            }
            Op::Seal {
                block_count: _,
                data_len,
            } => {
                let Some(writer) = created.take() else {
                    let message = "no chunk created on this connection".into();
                    refuse_invalid(&mut stream, &shared.metrics.local_writes, message).await;
                    return;
                };
                let span = tracing::info_span!("local_write_seal", chunk = %writer.chunk());
                seal(&mut stream, &shared, writer, &extra, data_len)
                    .instrument(span)
                    .await
            }
        };
        if answered.is_err() {
            return;
        }
    }
}

/// Opens the chunk, checks the range and sends the descriptor with the
/// blocks' extents, or the error an HTTP read would have answered.
async fn grant_read(
    stream: &mut UnixStream,
    shared: &Arc<NodeShared>,
    chunk: ChunkId,
    first: u64,
    count: Option<u64>,
) -> io::Result<()> {
    let store = shared.store.clone();
    let opened = tokio::task::spawn_blocking(move || open(&store, chunk, first, count))
        .await
        .map_err(io::Error::other)?;
    match opened {
        Ok((reader, first, extents)) => {
            let answer = local::encode_grant(first, &extents);
            let sent = local::send_answer(stream, &answer, Some(reader.file().as_fd())).await;
            count_outcome(
                &shared.metrics.local_reads,
                if sent.is_ok() { "granted" } else { "failed" },
            );
            sent
        }
        Err(err) => answer_error(stream, &shared.metrics.local_reads, err).await,
    }
}

/// Creates the chunk's temporary file with its header and hands over a
/// write-only descriptor of it; a chunk created before on this connection
/// and never sealed is dropped.
async fn create(
    stream: &mut UnixStream,
    shared: &Arc<NodeShared>,
    created: &mut Option<ChunkWriter>,
    chunk: ChunkId,
    block_size: u32,
) -> io::Result<()> {
    *created = None;
    if block_size == 0 || block_size as usize > shared.config.max_block_size {
        let err = StoreError::InvalidStream(format!(
            "block_size must be 1..={}",
            shared.config.max_block_size
        ));
        return answer_error(stream, &shared.metrics.local_writes, err).await;
    }
    let store = shared.store.clone();
    let opened = tokio::task::spawn_blocking(move || {
        let mut writer = store.create(chunk, block_size)?;
        let header_len = writer.begin_external()?;
        Ok::<_, StoreError>((writer, header_len))
    })
    .await
    .map_err(io::Error::other)?;
    match opened {
        Ok((writer, header_len)) => {
            let answer = local::encode_created(header_len);
            local::send_answer(stream, &answer, Some(writer.file().as_fd())).await?;
            *created = Some(writer);
            Ok(())
        }
        Err(err) => answer_error(stream, &shared.metrics.local_writes, err).await,
    }
}

/// Checks every block the caller wrote against its declared hash and seals
/// the chunk (trailer, fsync, rename, directory fsync).
async fn seal(
    stream: &mut UnixStream,
    shared: &Arc<NodeShared>,
    writer: ChunkWriter,
    extra: &[u8],
    data_len: u64,
) -> io::Result<()> {
    let (root, hashes) = local::decode_seal_extra(extra);
    let started = Instant::now();
    let sealed = tokio::task::spawn_blocking(move || writer.seal_external(hashes, data_len, root))
        .await
        .map_err(io::Error::other)?;
    match sealed {
        Ok(response) => {
            shared
                .metrics
                .fsync_seconds
                .observe(started.elapsed().as_secs_f64());
            shared.metrics.bytes_in.inc_by(response.data_len);
            shared.refresh_usage_gauges();
            count_outcome(&shared.metrics.local_writes, "sealed");
            local::send_answer(stream, &local::encode_sealed(&response), None).await
        }
        Err(err) => answer_error(stream, &shared.metrics.local_writes, err).await,
    }
}

/// Sends the error an HTTP request would have got, counted by its kind.
async fn answer_error(
    stream: &mut UnixStream,
    counter: &IntCounterVec,
    err: StoreError,
) -> io::Result<()> {
    let api = ApiError::from(err);
    let status = api.status.as_u16();
    count_outcome(counter, label(status));
    local::send_answer(stream, &local::encode_refusal(status, &api.body), None).await
}

fn count_outcome(counter: &IntCounterVec, result: &str) {
    counter.with_label_values(&[result]).inc();
}

fn open(
    store: &crate::store::ChunkStore,
    chunk: ChunkId,
    first: u64,
    count: Option<u64>,
) -> Result<(ChunkReader, u64, Vec<BlockExtent>), StoreError> {
    let reader = store.open_chunk(chunk)?;
    let blocks = reader.meta().block_count();
    let count = count.unwrap_or_else(|| blocks.saturating_sub(first));
    reader.check_range(first, count)?;
    let extents = (first..first + count)
        .map(|index| {
            let (offset, len) = reader.meta().block_extent(index);
            BlockExtent {
                offset,
                len: len as u32,
                hash: reader.meta().hashes[index as usize],
            }
        })
        .collect();
    Ok((reader, first, extents))
}

/// Refuses a malformed request (400 `invalid_stream`), counted on `counter`
/// (reads or writes, whichever the request was about).
async fn refuse_invalid(stream: &mut UnixStream, counter: &IntCounterVec, message: String) {
    let body = error_body(ErrorCode::InvalidStream, message);
    refuse(stream, counter, "refused", 400, body).await;
}

async fn refuse(
    stream: &mut UnixStream,
    counter: &IntCounterVec,
    result: &str,
    status: u16,
    body: ErrorBody,
) {
    count_outcome(counter, result);
    let _ = local::send_answer(stream, &local::encode_refusal(status, &body), None).await;
}

fn error_body(code: ErrorCode, message: String) -> ErrorBody {
    ErrorBody {
        code,
        message,
        block: None,
        leader: None,
    }
}

fn label(status: u16) -> &'static str {
    match status {
        401 => "unauthorized",
        404 => "not_found",
        400..=499 => "refused",
        _ => "error",
    }
}
