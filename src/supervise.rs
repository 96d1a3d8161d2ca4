//! The tasks of one process, supervised together. Every role a process runs (the HTTP server,
//! the relay, the worker, the scheduler, the audit purge, the `/metrics` listener) is a task of
//! one [`Supervisor`]. A task that fails, panics or stops before shutdown was asked for is
//! reported with its name and stops the others cleanly, so the process exits with an error
//! instead of running on with a role missing.

use std::future::Future;

use tokio::task::JoinSet;

use crate::shutdown::{self, Shutdown, ShutdownTrigger};

/// Why a supervised process stopped on its own.
#[derive(Debug, thiserror::Error)]
pub enum TaskFailure {
    #[error("{task} failed: {message}")]
    Failed { task: &'static str, message: String },
    #[error("{task} stopped before shutdown was asked for")]
    StoppedEarly { task: &'static str },
    #[error("{task} panicked")]
    Panicked { task: &'static str },
}

/// What a task ended with. Its error is kept whole (each task has its own error type) and
/// spelled out with its causes only when reported.
type Ended = (
    &'static str,
    Result<(), Box<dyn std::error::Error + Send + Sync>>,
);

/// The tasks of a process and the shutdown they share.
pub struct Supervisor {
    tasks: JoinSet<Ended>,
    /// Task ids to names, for a task that panicked (its name went with it).
    names: Vec<(tokio::task::Id, &'static str)>,
    stop: ShutdownTrigger,
    shutdown: Shutdown,
}

impl Supervisor {
    /// A supervisor whose tasks stop when `outer` fires, or when one of them fails.
    pub fn new(outer: Shutdown) -> Supervisor {
        let (stop, shutdown) = shutdown::channel();
        let forward = stop.clone();
        tokio::spawn(async move {
            outer.wait().await;
            forward.trigger();
        });
        Supervisor {
            tasks: JoinSet::new(),
            names: Vec::new(),
            stop,
            shutdown,
        }
    }

    /// The shutdown every task must stop on.
    pub fn shutdown(&self) -> Shutdown {
        self.shutdown.clone()
    }

    /// Runs a task that ends only when asked (or fails).
    pub fn spawn<F, E>(&mut self, task: &'static str, run: F)
    where
        F: Future<Output = Result<(), E>> + Send + 'static,
        E: std::error::Error + Send + Sync + 'static,
    {
        let handle = self
            .tasks
            .spawn(async move { (task, run.await.map_err(Into::into)) });
        self.names.push((handle.id(), task));
    }

    /// As [`Supervisor::spawn`], for a task that cannot fail.
    pub fn spawn_infallible<F>(&mut self, task: &'static str, run: F)
    where
        F: Future<Output = ()> + Send + 'static,
    {
        self.spawn(task, async move {
            run.await;
            Ok::<(), std::convert::Infallible>(())
        });
    }

    /// Waits for every task. The first to fail, panic or stop early is logged and stops the
    /// others; it is the error returned once they have all stopped.
    pub async fn wait(mut self) -> Result<(), TaskFailure> {
        let mut first: Option<TaskFailure> = None;
        while let Some(joined) = self.tasks.join_next_with_id().await {
            let failure = match joined {
                Ok((_, (task, Ok(())))) if self.shutdown.is_triggered() => {
                    tracing::debug!(task, "stopped");
                    None
                }
                Ok((_, (task, Ok(())))) => Some(TaskFailure::StoppedEarly { task }),
                Ok((_, (task, Err(e)))) => Some(TaskFailure::Failed {
                    task,
                    message: crate::telemetry::error_chain(&*e),
                }),
                Err(e) => {
                    let id = e.id();
                    let task = self
                        .names
                        .iter()
                        .find(|(i, _)| *i == id)
                        .map_or("a task", |(_, name)| *name);
                    Some(TaskFailure::Panicked { task })
                }
            };
            if let Some(failure) = failure {
                tracing::error!(error = %failure, "stopping the process");
                self.stop.trigger();
                first.get_or_insert(failure);
            }
        }
        first.map_or(Ok(()), Err)
    }
}

#[cfg(test)]
mod tests {
    use std::time::Duration;

    use super::*;

    #[derive(Debug, thiserror::Error)]
    #[error("broker gone")]
    struct Gone;

    #[tokio::test]
    async fn tasks_stopped_by_shutdown_end_well() {
        let (trigger, outer) = shutdown::channel();
        let mut tasks = Supervisor::new(outer);
        for name in ["relay", "worker"] {
            let stop = tasks.shutdown();
            tasks.spawn_infallible(name, stop.wait());
        }
        trigger.trigger();
        tasks.wait().await.unwrap();
    }

    #[tokio::test]
    async fn a_failing_task_stops_the_others_and_is_named() {
        let (_trigger, outer) = shutdown::channel();
        let mut tasks = Supervisor::new(outer);
        let stop = tasks.shutdown();
        tasks.spawn_infallible("http server", stop.wait());
        tasks.spawn("relay", async { Err::<(), _>(Gone) });
        let failure = tokio::time::timeout(Duration::from_secs(5), tasks.wait())
            .await
            .expect("the server stops too")
            .unwrap_err();
        assert_eq!(failure.to_string(), "relay failed: broker gone");
    }

    #[tokio::test]
    async fn a_panic_or_an_early_stop_is_a_failure() {
        let (_trigger, outer) = shutdown::channel();
        let mut tasks = Supervisor::new(outer);
        let stop = tasks.shutdown();
        tasks.spawn_infallible("scheduler", stop.wait());
        tasks.spawn_infallible("worker", async { panic!("bug") });
        let failure = tasks.wait().await.unwrap_err();
        assert!(matches!(failure, TaskFailure::Panicked { task: "worker" }));

        let (_trigger, outer) = shutdown::channel();
        let mut tasks = Supervisor::new(outer);
        tasks.spawn_infallible("audit purge", async {});
        let failure = tasks.wait().await.unwrap_err();
        assert!(matches!(
            failure,
            TaskFailure::StoppedEarly {
                task: "audit purge"
            }
        ));
    }
}
