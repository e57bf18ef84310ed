//! Gathered writes: what a connection writes is held until the thread that serves it has run
//! every other task it had ready, then leaves in one system call.
//!
//! Many calls share an HTTP/2 connection. Their answers become ready one after the other (a reply
//! of Redis wakes several of them at once), and each one wakes the connection, which would write
//! it out alone: about one system call per answer, each of which costs the sending side as much as
//! building a small answer (on loopback, the receiving side's work too). Gathered, the answers
//! that became ready together leave together.
//!
//! A flush is answered at once and the bytes stay here; the send is due once the runtime's worker
//! runs out of other ready tasks (a `yield_now` deferred wake-up, which tokio gives after the
//! worker's queue is empty), and the connection, woken then, sends them at its next flush or read.
//! When the worker is idle, that is at once: an answer waits only while other tasks are ready to
//! run, each of them a few microseconds. A write that would hold more than `LIMIT` bytes sends
//! what is held first, and a shutdown sends what is held before it closes.

use std::future::Future;
use std::io;
use std::pin::Pin;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::task::{Context, Poll, Wake, Waker};

use tokio::io::{AsyncRead, AsyncWrite, ReadBuf};

/// Bytes held at most: past them a write sends first (as a socket's buffer would push back).
const LIMIT: usize = 64 * 1024;

/// Capacity a connection keeps between sends: a larger buffer, grown by a burst, is given back.
const KEPT: usize = 16 * 1024;

/// `io` with its writes gathered.
pub struct Gathered<T> {
    io: T,
    held: Vec<u8>,
    /// Of `held`, the bytes already sent.
    sent: usize,
    /// The wake-up that makes the send due; `None` while nothing waits for one.
    due: Option<Arc<Due>>,
}

/// A deferred wake-up: marks the send due, and wakes the connection's task to make it.
struct Due {
    fired: AtomicBool,
    task: Waker,
}

impl Wake for Due {
    fn wake(self: Arc<Self>) {
        self.wake_by_ref();
    }

    fn wake_by_ref(self: &Arc<Self>) {
        self.fired.store(true, Ordering::Release);
        self.task.wake_by_ref();
    }
}

impl<T> Gathered<T> {
    pub fn new(io: T) -> Gathered<T> {
        Gathered {
            io,
            held: Vec::new(),
            sent: 0,
            due: None,
        }
    }

    /// Bytes written and not yet sent.
    pub fn held(&self) -> usize {
        self.held.len() - self.sent
    }
}

impl<T: AsyncWrite + Unpin> Gathered<T> {
    /// Sends what is held, all of it, or says why not yet.
    fn poll_send(&mut self, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        while self.sent < self.held.len() {
            let n =
                std::task::ready!(Pin::new(&mut self.io).poll_write(cx, &self.held[self.sent..]))?;
            if n == 0 {
                return Poll::Ready(Err(io::ErrorKind::WriteZero.into()));
            }
            self.sent += n;
        }
        self.held.clear();
        self.sent = 0;
        if self.held.capacity() > KEPT {
            self.held.shrink_to(KEPT);
        }
        self.due = None;
        Poll::Ready(Ok(()))
    }

    /// Whether the send is due; the first time it is asked after a send, asks for the wake-up
    /// that makes it due.
    fn send_due(&mut self, cx: &mut Context<'_>) -> bool {
        match &self.due {
            Some(due) => due.fired.load(Ordering::Acquire),
            None => {
                let due = Arc::new(Due {
                    fired: AtomicBool::new(false),
                    task: cx.waker().clone(),
                });
                let waker = Waker::from(due.clone());
                // Its first poll defers the wake-up to when the worker has nothing else to run
                // (outside a runtime, it wakes at once); the future is not needed after that.
                let yielded = std::pin::pin!(tokio::task::yield_now());
                let _ = yielded.poll(&mut Context::from_waker(&waker));
                let fired = due.fired.load(Ordering::Acquire);
                self.due = Some(due);
                fired
            }
        }
    }

    /// Makes room for `more` bytes: sends what is held first when they would pass the limit.
    fn poll_room(&mut self, cx: &mut Context<'_>, more: usize) -> Poll<io::Result<()>> {
        if self.held() > 0 && self.held() + more > LIMIT {
            std::task::ready!(self.poll_send(cx))?;
        }
        Poll::Ready(Ok(()))
    }
}

/// A read sends what a flush left held once the send is due, or at once when another task reads
/// than the one the wake-up would wake: a protocol that flushes, then waits for an answer without
/// flushing again, still has its bytes sent.
impl<T: AsyncRead + AsyncWrite + Unpin> AsyncRead for Gathered<T> {
    fn poll_read(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<io::Result<()>> {
        let this = self.get_mut();
        let send = this.due.as_ref().is_some_and(|due| {
            due.fired.load(Ordering::Acquire) || !due.task.will_wake(cx.waker())
        });
        if send && let Poll::Ready(Err(e)) = this.poll_send(cx) {
            return Poll::Ready(Err(e));
        }
        Pin::new(&mut this.io).poll_read(cx, buf)
    }
}

impl<T: AsyncWrite + Unpin> AsyncWrite for Gathered<T> {
    fn poll_write(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        data: &[u8],
    ) -> Poll<io::Result<usize>> {
        let this = self.get_mut();
        std::task::ready!(this.poll_room(cx, data.len()))?;
        this.held.extend_from_slice(data);
        Poll::Ready(Ok(data.len()))
    }

    fn poll_write_vectored(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buffers: &[io::IoSlice<'_>],
    ) -> Poll<io::Result<usize>> {
        let this = self.get_mut();
        let total = buffers.iter().map(|b| b.len()).sum();
        std::task::ready!(this.poll_room(cx, total))?;
        for buffer in buffers {
            this.held.extend_from_slice(buffer);
        }
        Poll::Ready(Ok(total))
    }

    fn is_write_vectored(&self) -> bool {
        true
    }

    /// Sends what is held once the send is due; until then the bytes stay held, and the wake-up
    /// brings the connection back to send them.
    fn poll_flush(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        let this = self.get_mut();
        if this.held() == 0 {
            return Pin::new(&mut this.io).poll_flush(cx);
        }
        if !this.send_due(cx) {
            return Poll::Ready(Ok(()));
        }
        std::task::ready!(this.poll_send(cx))?;
        Pin::new(&mut this.io).poll_flush(cx)
    }

    fn poll_shutdown(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        let this = self.get_mut();
        std::task::ready!(this.poll_send(cx))?;
        Pin::new(&mut this.io).poll_shutdown(cx)
    }
}

#[cfg(test)]
mod tests {
    use std::sync::Mutex;

    use proptest::prelude::*;
    use tokio::io::{AsyncReadExt, AsyncWriteExt};

    use super::*;

    /// A writer that records each write it is given, as a socket records system calls.
    #[derive(Clone, Default)]
    struct Writes(Arc<Mutex<Vec<Vec<u8>>>>);

    impl Writes {
        fn taken(&self) -> Vec<Vec<u8>> {
            self.0.lock().expect("writes").clone()
        }
    }

    impl AsyncWrite for Writes {
        fn poll_write(
            self: Pin<&mut Self>,
            _: &mut Context<'_>,
            data: &[u8],
        ) -> Poll<io::Result<usize>> {
            self.0.lock().expect("writes").push(data.to_vec());
            Poll::Ready(Ok(data.len()))
        }

        fn poll_flush(self: Pin<&mut Self>, _: &mut Context<'_>) -> Poll<io::Result<()>> {
            Poll::Ready(Ok(()))
        }

        fn poll_shutdown(self: Pin<&mut Self>, _: &mut Context<'_>) -> Poll<io::Result<()>> {
            Poll::Ready(Ok(()))
        }
    }

    #[tokio::test]
    async fn flushes_made_while_other_tasks_are_ready_leave_in_one_write() {
        let writes = Writes::default();
        let mut gathered = Gathered::new(writes.clone());
        gathered.write_all(b"first answer").await.expect("write");
        gathered.flush().await.expect("flush");
        // Another answer, ready before the thread ran out of tasks: it joins the first.
        gathered.write_all(b", second").await.expect("write");
        gathered.flush().await.expect("flush");
        assert!(writes.taken().is_empty(), "held while the task runs");
        assert_eq!(gathered.held(), 20);
        // The thread runs out of other tasks: the send is due, and the next flush makes it.
        tokio::task::yield_now().await;
        gathered.flush().await.expect("flush");
        assert_eq!(writes.taken(), vec![b"first answer, second".to_vec()]);
        assert_eq!(gathered.held(), 0);
        // The next bytes wait for a wake-up of their own.
        gathered.write_all(b"third").await.expect("write");
        gathered.flush().await.expect("flush");
        assert_eq!(writes.taken().len(), 1);
        tokio::task::yield_now().await;
        gathered.flush().await.expect("flush");
        assert_eq!(writes.taken()[1], b"third");
    }

    #[tokio::test]
    async fn the_wake_up_brings_the_writer_back_to_send() {
        let (near, mut far) = tokio::io::duplex(1024);
        let writer = tokio::spawn(async move {
            let mut gathered = Gathered::new(near);
            gathered.write_all(b"answer").await.expect("write");
            gathered.flush().await.expect("flush");
            // Nothing is read: only the wake-up can bring it back, and the flush after it sends.
            flushed_when_woken(&mut gathered).await;
        });
        let mut read = [0u8; 6];
        tokio::time::timeout(
            std::time::Duration::from_secs(10),
            far.read_exact(&mut read),
        )
        .await
        .expect("sent after the wake-up, not left held")
        .expect("read");
        assert_eq!(&read, b"answer");
        writer.await.expect("writer");
    }

    /// Flushes as a connection does, only when its task is woken, until nothing is held.
    async fn flushed_when_woken<T: AsyncWrite + Unpin>(gathered: &mut Gathered<T>) {
        std::future::poll_fn(|cx| {
            match (Pin::new(&mut *gathered).poll_flush(cx), gathered.held()) {
                (Poll::Ready(Ok(())), 0) => Poll::Ready(()),
                (Poll::Ready(Err(e)), _) => panic!("flush: {e}"),
                _ => Poll::Pending,
            }
        })
        .await;
    }

    /// A peer that answers each line it reads with the line in capitals.
    fn capitals(mut far: tokio::io::DuplexStream) -> tokio::task::JoinHandle<()> {
        tokio::spawn(async move {
            let mut line = [0u8; 5];
            while far.read_exact(&mut line).await.is_ok() {
                line.make_ascii_uppercase();
                if far.write_all(&line).await.is_err() {
                    break;
                }
            }
        })
    }

    #[tokio::test]
    async fn a_flush_then_a_read_gets_the_answer() {
        let (near, far) = tokio::io::duplex(1024);
        let peer = capitals(far);
        let mut gathered = Gathered::new(near);
        gathered.write_all(b"ping\n").await.expect("write");
        gathered.flush().await.expect("flush");
        // Only reads from here on, as a handshake that waits for its answer does.
        let mut answer = [0u8; 5];
        tokio::time::timeout(
            std::time::Duration::from_secs(10),
            gathered.read_exact(&mut answer),
        )
        .await
        .expect("answered: the read sent what was held")
        .expect("read");
        assert_eq!(&answer, b"PING\n");
        drop(gathered);
        peer.await.expect("peer");
    }

    #[tokio::test]
    async fn a_read_in_another_task_sends_what_a_flush_left() {
        let (near, far) = tokio::io::duplex(1024);
        let peer = capitals(far);
        // Written and flushed in one task, then handed to another that only reads.
        let mut gathered = tokio::spawn(async move {
            let mut gathered = Gathered::new(near);
            gathered.write_all(b"hand\n").await.expect("write");
            gathered.flush().await.expect("flush");
            gathered
        })
        .await
        .expect("writer");
        let reader = tokio::spawn(async move {
            let mut answer = [0u8; 5];
            gathered.read_exact(&mut answer).await.expect("read");
            answer
        });
        let answer = tokio::time::timeout(std::time::Duration::from_secs(10), reader)
            .await
            .expect("answered: the other task's read sent what was held")
            .expect("reader");
        assert_eq!(&answer, b"HAND\n");
        peer.await.expect("peer");
    }

    #[tokio::test]
    async fn a_shutdown_sends_what_is_held() {
        let (near, mut far) = tokio::io::duplex(1024);
        let mut gathered = Gathered::new(near);
        gathered.write_all(b"last words").await.expect("write");
        gathered.flush().await.expect("flush");
        gathered.shutdown().await.expect("shutdown");
        let mut read = Vec::new();
        far.read_to_end(&mut read).await.expect("read to the end");
        assert_eq!(read, b"last words");
    }

    #[tokio::test]
    async fn a_write_past_the_limit_sends_what_is_held_first() {
        let writes = Writes::default();
        let mut gathered = Gathered::new(writes.clone());
        let most = vec![1u8; LIMIT - 10];
        gathered.write_all(&most).await.expect("write");
        gathered.flush().await.expect("flush");
        assert!(writes.taken().is_empty());
        gathered.write_all(&[2u8; 100]).await.expect("write");
        assert_eq!(writes.taken(), vec![most]);
        assert_eq!(gathered.held(), 100);
    }

    #[tokio::test]
    async fn a_slow_reader_gets_every_byte_in_order() {
        // A pipe of 64 bytes: each send waits for the reader, as a full socket buffer does.
        let (near, mut far) = tokio::io::duplex(64);
        let sent: Vec<u8> = (0..10_000u32).map(|n| (n % 251) as u8).collect();
        let writer = {
            let sent = sent.clone();
            tokio::spawn(async move {
                let mut gathered = Gathered::new(near);
                for chunk in sent.chunks(333) {
                    gathered.write_all(chunk).await.expect("write");
                    gathered.flush().await.expect("flush");
                }
                gathered.shutdown().await.expect("shutdown");
            })
        };
        let mut read = Vec::new();
        far.read_to_end(&mut read).await.expect("read");
        writer.await.expect("writer");
        assert_eq!(read, sent);
    }

    /// What a writer does next: write so many bytes (as one buffer, or as two at once, as HTTP/2
    /// writes a frame's header and payload), flush, or let other tasks run.
    #[derive(Debug, Clone)]
    enum Step {
        Write(usize),
        WriteTwo(usize, usize),
        Flush,
        Yield,
    }

    fn step() -> impl Strategy<Value = Step> {
        prop_oneof![
            3 => (1usize..20_000).prop_map(Step::Write),
            2 => (1usize..200, 1usize..20_000).prop_map(|(a, b)| Step::WriteTwo(a, b)),
            2 => Just(Step::Flush),
            1 => Just(Step::Yield),
        ]
    }

    /// The next `n` bytes of the stream a writer writes.
    fn following(written: &[u8], n: usize) -> Vec<u8> {
        (written.len()..written.len() + n)
            .map(|i| (i % 251) as u8)
            .collect()
    }

    proptest! {
        #![proptest_config(ProptestConfig { cases: 64, ..ProptestConfig::default() })]

        /// Whatever the writes, flushes and yields, and however slowly the other side reads, it
        /// reads every byte written, in order: all of them while the writer only flushes when
        /// woken, as a connection does (nothing stays held), and nothing more after its shutdown.
        #[test]
        fn every_byte_written_is_read_in_order(
            steps in prop::collection::vec(step(), 1..40),
            pipe in 16usize..100_000,
            threads in 1usize..3,
        ) {
            let runtime = tokio::runtime::Builder::new_multi_thread()
                .worker_threads(threads)
                .enable_time()
                .build()
                .expect("runtime");
            let (written, read) = runtime.block_on(async move {
                let (near, mut far) = tokio::io::duplex(pipe);
                let reader = tokio::spawn(async move {
                    let mut read = Vec::new();
                    far.read_to_end(&mut read).await.expect("read");
                    read
                });
                let writer = tokio::spawn(async move {
                    let mut gathered = Gathered::new(near);
                    let mut written = Vec::new();
                    for step in steps {
                        match step {
                            Step::Write(n) => {
                                let bytes = following(&written, n);
                                gathered.write_all(&bytes).await.expect("write");
                                written.extend_from_slice(&bytes);
                            }
                            Step::WriteTwo(a, b) => {
                                let head = following(&written, a);
                                written.extend_from_slice(&head);
                                let payload = following(&written, b);
                                written.extend_from_slice(&payload);
                                let both = [io::IoSlice::new(&head), io::IoSlice::new(&payload)];
                                let taken = gathered.write_vectored(&both).await.expect("write");
                                let rest: Vec<u8> =
                                    head.iter().chain(&payload).skip(taken).copied().collect();
                                gathered.write_all(&rest).await.expect("write");
                            }
                            Step::Flush => gathered.flush().await.expect("flush"),
                            Step::Yield => tokio::task::yield_now().await,
                        }
                    }
                    flushed_when_woken(&mut gathered).await;
                    gathered.shutdown().await.expect("shutdown");
                    written
                });
                let wait = std::time::Duration::from_secs(20);
                let written = tokio::time::timeout(wait, writer)
                    .await
                    .expect("nothing stays held: the writer sent all it wrote")
                    .expect("writer");
                let read = tokio::time::timeout(wait, reader)
                    .await
                    .expect("the reader reaches the end")
                    .expect("reader");
                (written, read)
            });
            prop_assert_eq!(written.len(), read.len());
            prop_assert!(written == read, "the bytes read differ from those written");
        }
    }
}
