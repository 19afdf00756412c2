//! Asynchronous front end: a communication thread owns the communicator and runs submitted
//! buckets one after another, so a trainer can all-reduce gradients while backward goes on.
//! Buckets complete in submission order; after a failure every pending and later bucket gets the
//! same error.

use crate::comm::{AbortHandle, Communicator};
use crate::dtype::{Element, ReduceOp};
use crate::error::{CommError, Result};
use crossbeam::channel::{self, Receiver, Sender};
use std::thread::JoinHandle;

type Job = Box<dyn FnOnce(&mut Communicator) + Send>;

/// A communicator driven by its own thread.
pub struct AsyncCommunicator {
    jobs: Option<Sender<Job>>,
    thread: Option<JoinHandle<()>>,
    abort: AbortHandle,
    rank: usize,
    world_size: usize,
}

/// The pending result of a submitted bucket.
#[must_use = "wait() for the result"]
pub struct Handle<T> {
    result: Receiver<Result<T>>,
}

impl<T> Handle<T> {
    /// Blocks until the bucket is done; gives the reduced bucket back, or the error.
    pub fn wait(self) -> Result<T> {
        self.result
            .recv()
            .unwrap_or_else(|_| Err(CommError::Local("communication thread stopped".into())))
    }

    /// The result if it is ready, or the handle back.
    pub fn try_wait(self) -> std::result::Result<Result<T>, Handle<T>> {
        match self.result.try_recv() {
            Ok(r) => Ok(r),
            Err(channel::TryRecvError::Empty) => Err(self),
            Err(channel::TryRecvError::Disconnected) => {
                Ok(Err(CommError::Local("communication thread stopped".into())))
            }
        }
    }
}

impl AsyncCommunicator {
    /// Moves `comm` onto a new communication thread.
    pub fn new(comm: Communicator) -> AsyncCommunicator {
        let (tx, rx) = channel::unbounded::<Job>();
        let abort = comm.abort_handle();
        let (rank, world_size) = (comm.rank(), comm.world_size());
        let thread = std::thread::Builder::new()
            .name(format!("ringdet-comm-{rank}"))
            .spawn(move || {
                let mut comm = comm;
                for job in rx {
                    job(&mut comm);
                }
            });
        AsyncCommunicator {
            jobs: Some(tx),
            thread: thread.ok(),
            abort,
            rank,
            world_size,
        }
    }

    /// This rank.
    pub fn rank(&self) -> usize {
        self.rank
    }

    /// Ranks in the job.
    pub fn world_size(&self) -> usize {
        self.world_size
    }

    /// Runs any closure on the communication thread after the buckets already submitted.
    pub fn run<R: Send + 'static>(
        &self,
        f: impl FnOnce(&mut Communicator) -> Result<R> + Send + 'static,
    ) -> Handle<R> {
        let (tx, rx) = channel::bounded(1);
        let job: Job = Box::new(move |c| {
            let _ = tx.send(f(c));
        });
        let sent = match (&self.jobs, &self.thread) {
            (Some(jobs), Some(_)) => jobs.send(job).is_ok(),
            _ => false,
        };
        if !sent {
            let (tx, rx) = channel::bounded(1);
            let _ = tx.send(Err(CommError::Local(
                "communication thread is not running".into(),
            )));
            return Handle { result: rx };
        }
        Handle { result: rx }
    }

    /// Queues an all-reduce of `bucket`; `wait()` on the handle returns the reduced bucket.
    pub fn submit<T: Element>(&self, bucket: Vec<T>, op: ReduceOp) -> Handle<Vec<T>> {
        self.run(move |c| {
            let mut b = bucket;
            c.all_reduce(&mut b, op)?;
            Ok(b)
        })
    }

    /// Fails the running and every pending bucket now, from any thread.
    pub fn abort(&self) {
        self.abort.abort();
    }

    /// A handle to abort from elsewhere.
    pub fn abort_handle(&self) -> AbortHandle {
        self.abort.clone()
    }
}

impl Drop for AsyncCommunicator {
    fn drop(&mut self) {
        self.jobs.take();
        if let Some(t) = self.thread.take() {
            let _ = t.join();
        }
    }
}
