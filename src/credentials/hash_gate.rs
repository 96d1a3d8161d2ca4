//! Deliberately slow password hashes (argon2, bcrypt) run on `cap` threads of their own; at
//! most `max_waiting` more attempts wait in a queue, and any beyond are refused at once
//! ([`Busy`]), so a flood of attempts can neither take every core nor queue without end.
//! Each argon2 verification fills its memory cost (19 MiB by default): every thread keeps one
//! buffer for it, so the memory is `cap` × that cost, whatever the allocator does with freed
//! blocks (glibc keeps them per arena: fresh buffers from many threads added up to several
//! times the cap).

use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::mpsc::{Receiver, SyncSender, sync_channel};
use std::sync::{Arc, Mutex, PoisonError};

use tokio::sync::oneshot;

use crate::config::authentication::StoredPassword;

#[derive(Debug, thiserror::Error)]
#[error("too many password checks are waiting")]
pub struct Busy;

struct Job {
    hash: String,
    is_argon2: bool,
    password: String,
    reply: oneshot::Sender<bool>,
}

#[derive(Default)]
struct Counters {
    running: AtomicUsize,
    max_running: AtomicUsize,
    hashed: AtomicUsize,
}

pub struct HashGate {
    jobs: SyncSender<Job>,
    cap: usize,
    counters: Arc<Counters>,
}

/// What the gate has done (the tests read the peak to check the cap).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct HashStats {
    pub cap: usize,
    pub running: usize,
    /// The most hashes that ever ran at once.
    pub max_running: usize,
    /// Hashes run in all.
    pub hashed: usize,
}

impl HashGate {
    /// Starts `cap` threads; they end when the gate is dropped.
    pub fn new(cap: usize, max_waiting: usize) -> std::io::Result<HashGate> {
        let cap = cap.max(1);
        let (jobs, queue) = sync_channel(max_waiting);
        let queue = Arc::new(Mutex::new(queue));
        let counters = Arc::new(Counters::default());
        for n in 0..cap {
            let (queue, counters) = (queue.clone(), counters.clone());
            std::thread::Builder::new()
                .name(format!("password-hash-{n}"))
                .spawn(move || work(&queue, &counters))?;
        }
        Ok(HashGate {
            jobs,
            cap,
            counters,
        })
    }

    /// Whether `password` matches the hash in `stored` (false for a clear password: those
    /// need no gate).
    pub async fn verify(&self, stored: &StoredPassword, password: &str) -> Result<bool, Busy> {
        let (hash, is_argon2) = match stored {
            StoredPassword::Argon2(h) => (h.clone(), true),
            StoredPassword::Bcrypt(h) => (h.clone(), false),
            StoredPassword::Clear(_) => return Ok(false),
        };
        let (reply, answer) = oneshot::channel();
        // A job whose caller hung up still runs: the cap counts hashes, not callers.
        self.jobs
            .try_send(Job {
                hash,
                is_argon2,
                password: password.to_owned(),
                reply,
            })
            .map_err(|_| Busy)?;
        answer.await.map_err(|_| Busy)
    }

    pub fn stats(&self) -> HashStats {
        let c = &self.counters;
        HashStats {
            cap: self.cap,
            running: c.running.load(Ordering::Acquire),
            max_running: c.max_running.load(Ordering::Acquire),
            hashed: c.hashed.load(Ordering::Acquire),
        }
    }
}

/// One hashing thread: takes jobs until the gate is gone.
fn work(queue: &Mutex<Receiver<Job>>, counters: &Counters) {
    let mut memory = Vec::new();
    loop {
        let job = {
            let queue = queue.lock().unwrap_or_else(PoisonError::into_inner);
            match queue.recv() {
                Ok(job) => job,
                Err(_) => return,
            }
        };
        let now = counters.running.fetch_add(1, Ordering::AcqRel) + 1;
        counters.max_running.fetch_max(now, Ordering::AcqRel);
        counters.hashed.fetch_add(1, Ordering::AcqRel);
        let ok = if job.is_argon2 {
            crate::managed::hashing::verify_reusing(&job.password, &job.hash, &mut memory)
        } else {
            bcrypt::verify(&job.password, &job.hash).unwrap_or(false)
        };
        counters.running.fetch_sub(1, Ordering::AcqRel);
        drop(job.password);
        let _ = job.reply.send(ok);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test(flavor = "multi_thread", worker_threads = 4)]
    async fn never_more_than_the_cap_at_once_and_a_bounded_queue() {
        let gate = Arc::new(HashGate::new(2, 4).unwrap());
        let stored = StoredPassword::Bcrypt(bcrypt::hash("right", 8).unwrap());
        let tasks: Vec<_> = (0..20)
            .map(|i| {
                let (gate, stored) = (gate.clone(), stored.clone());
                tokio::spawn(async move {
                    gate.verify(&stored, if i == 0 { "right" } else { "wrong" })
                        .await
                })
            })
            .collect();
        let mut busy = 0;
        let mut right = 0;
        for t in tasks {
            match t.await.unwrap() {
                Err(Busy) => busy += 1,
                Ok(true) => right += 1,
                Ok(false) => {}
            }
        }
        let stats = gate.stats();
        assert_eq!(stats.cap, 2);
        assert!(stats.max_running <= 2, "{stats:?}");
        assert!(stats.max_running >= 1);
        assert_eq!(stats.running, 0);
        assert_eq!(stats.hashed, 20 - busy);
        assert!(
            busy >= 20 - 6,
            "at most cap + queue admitted, {busy} refused"
        );
        assert!(right <= 1);
        assert!(
            !gate
                .verify(&StoredPassword::Clear("x".into()), "x")
                .await
                .unwrap(),
            "clear passwords are not the gate's"
        );
    }
}
