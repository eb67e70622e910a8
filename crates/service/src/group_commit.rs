//! Group commit: writes that arrive while an earlier one is under way share the next one. The
//! database has one writer, and one multi-row statement costs about what a single row does;
//! every caller still gets its answer only after its rows are committed.

use std::collections::VecDeque;
use std::sync::Arc;

use futures::future::BoxFuture;
use tokio::sync::{mpsc, oneshot};
use wagate_store::StoreError;

/// Why an item was not written.
#[derive(Debug, thiserror::Error)]
pub enum WriteError {
    #[error("the server is shutting down")]
    Stopped,
    #[error(transparent)]
    Store(#[from] StoreError),
}

/// Writes a batch; returns one output per item, in order.
pub(crate) type WriteBatch<I, O> =
    Arc<dyn Fn(Vec<I>) -> BoxFuture<'static, Result<Vec<O>, StoreError>> + Send + Sync>;

struct Pending<I, O> {
    item: I,
    done: oneshot::Sender<Result<O, WriteError>>,
}

pub(crate) struct GroupCommit<I, O> {
    queue: mpsc::UnboundedSender<Pending<I, O>>,
}

impl<I: Clone + Send + 'static, O: Send + 'static> GroupCommit<I, O> {
    /// Starts the writer task (it ends when this handle is dropped). A batch holds at most
    /// `max` items, and an item joins it only when `fits(batch so far, item)`; otherwise it
    /// opens the next batch.
    pub(crate) fn start(max: usize, fits: fn(&[I], &I) -> bool, write: WriteBatch<I, O>) -> Self {
        let (queue, pending) = mpsc::unbounded_channel();
        tokio::spawn(run(max, fits, write, pending));
        GroupCommit { queue }
    }

    /// Writes `item` with the next batch and returns its output once committed.
    pub(crate) async fn submit(&self, item: I) -> Result<O, WriteError> {
        let (done, committed) = oneshot::channel();
        self.queue.send(Pending { item, done }).map_err(|_| WriteError::Stopped)?;
        committed.await.map_err(|_| WriteError::Stopped)?
    }
}

async fn run<I: Clone, O>(
    max: usize,
    fits: fn(&[I], &I) -> bool,
    write: WriteBatch<I, O>,
    mut queue: mpsc::UnboundedReceiver<Pending<I, O>>,
) {
    let mut waiting: VecDeque<Pending<I, O>> = VecDeque::new();
    loop {
        if waiting.is_empty() {
            match queue.recv().await {
                Some(pending) => waiting.push_back(pending),
                None => return,
            }
        }
        while waiting.len() < max
            && let Ok(pending) = queue.try_recv()
        {
            waiting.push_back(pending);
        }
        let mut items = Vec::new();
        let mut answers = Vec::new();
        while let Some(next) = waiting.front()
            && items.len() < max
            && (items.is_empty() || fits(&items, &next.item))
        {
            let Pending { item, done } = waiting.pop_front().expect("front exists");
            items.push(item);
            answers.push(done);
        }
        match write(items.clone()).await {
            Ok(outputs) if outputs.len() == items.len() => {
                for (output, done) in outputs.into_iter().zip(answers) {
                    let _ = done.send(Ok(output));
                }
            }
            // The database is locked, gone or full: writing each item alone, or the next
            // batch, would only make every one of them wait for the same answer in turn. All
            // that waits now gets it at once; what comes later tries again.
            Err(err) if err.outage().is_some() => {
                let kind = err.outage().expect("checked");
                let detail = err.to_string();
                while let Ok(pending) = queue.try_recv() {
                    waiting.push_back(pending);
                }
                let queued = waiting.drain(..).map(|pending| pending.done);
                for done in answers.into_iter().chain(queued) {
                    let outage = StoreError::Outage { kind, detail: detail.clone() };
                    let _ = done.send(Err(outage.into()));
                }
            }
            // One bad item must not fail the others: each on its own, with its own answer.
            _ => {
                for (item, done) in items.into_iter().zip(answers) {
                    match write(vec![item]).await {
                        Ok(mut outputs) => {
                            if let Some(output) = outputs.pop() {
                                let _ = done.send(Ok(output));
                            }
                        }
                        Err(err) => {
                            let _ = done.send(Err(err.into()));
                        }
                    }
                }
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use std::sync::Mutex;

    use super::*;

    #[tokio::test]
    async fn items_that_do_not_fit_wait_for_the_next_write_in_order() {
        let writes: Arc<Mutex<Vec<Vec<&'static str>>>> = Arc::default();
        let seen = writes.clone();
        let writer: GroupCommit<&'static str, usize> = GroupCommit::start(
            3,
            |batch, item| !batch.contains(item),
            Arc::new(move |batch: Vec<&'static str>| {
                let seen = seen.clone();
                Box::pin(async move {
                    let sizes = vec![batch.len(); batch.len()];
                    seen.lock().unwrap().push(batch);
                    Ok(sizes)
                })
            }),
        );
        let (a, b, again, c, d) = tokio::join!(
            writer.submit("a"),
            writer.submit("b"),
            writer.submit("a"),
            writer.submit("c"),
            writer.submit("d"),
        );
        assert_eq!([a, b, again, c, d].map(Result::unwrap), [2, 2, 3, 3, 3]);
        assert_eq!(*writes.lock().unwrap(), [vec!["a", "b"], vec!["a", "c", "d"]]);
    }

    #[tokio::test]
    async fn an_outage_answers_the_whole_batch_at_once() {
        let writes = Arc::new(Mutex::new(0usize));
        let seen = writes.clone();
        let writer: GroupCommit<&'static str, usize> = GroupCommit::start(
            8,
            |_, _| true,
            Arc::new(move |_batch: Vec<&'static str>| {
                *seen.lock().unwrap() += 1;
                Box::pin(async {
                    Err(StoreError::Outage { kind: wagate_store::Outage::StorageFull, detail: "full".into() })
                })
            }),
        );
        let answers = futures::future::join_all(["a", "b", "c", "d"].map(|item| writer.submit(item))).await;
        for answer in answers {
            let Err(WriteError::Store(err)) = answer else { panic!("{answer:?}") };
            assert_eq!(err.outage(), Some(wagate_store::Outage::StorageFull));
        }
        // One write answers all that waited for it, never one retry per item.
        assert!(*writes.lock().unwrap() <= 2, "{} writes", writes.lock().unwrap());
    }
}
