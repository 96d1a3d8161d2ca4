//! A worker cut off from the broker while Postgres still answers steps aside: its peers take
//! its partitions and the changes keep flowing; once it reaches the broker again it rejoins.

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};

use tokio::net::{TcpListener, TcpStream};
use tokio::sync::Notify;

use super::{env, wait_until};

/// A TCP relay to the broker that can be cut (every connection dropped, new ones refused)
/// and restored, as a network partition between one worker and the broker would.
struct Cable {
    port: u16,
    cut: Arc<AtomicBool>,
    cut_now: Arc<Notify>,
}

impl Cable {
    async fn to(broker: &str) -> Cable {
        let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let port = listener.local_addr().unwrap().port();
        let cut = Arc::new(AtomicBool::new(false));
        let cut_now = Arc::new(Notify::new());
        let broker = broker.to_owned();
        let (flag, notify) = (cut.clone(), cut_now.clone());
        tokio::spawn(async move {
            loop {
                let Ok((mut inbound, _)) = listener.accept().await else {
                    return;
                };
                if flag.load(Ordering::SeqCst) {
                    continue; // dropped: refused while cut
                }
                let broker = broker.clone();
                let notify = notify.clone();
                tokio::spawn(async move {
                    let Ok(mut outbound) = TcpStream::connect(&broker).await else {
                        return;
                    };
                    tokio::select! {
                        _ = tokio::io::copy_bidirectional(&mut inbound, &mut outbound) => {}
                        () = notify.notified() => {}
                    }
                });
            }
        });
        Cable { port, cut, cut_now }
    }

    fn cut(&self) {
        self.cut.store(true, Ordering::SeqCst);
        self.cut_now.notify_waiters();
    }

    fn restore(&self) {
        self.cut.store(false, Ordering::SeqCst);
    }
}

#[tokio::test]
async fn a_worker_cut_off_from_the_broker_leaves_its_partitions_and_rejoins() {
    let env = env(0).await;
    // host:port of the broker URL (`amqp://user:pass@host:port/vhost`).
    let broker = env
        .amqp_url
        .split('@')
        .nth(1)
        .and_then(|rest| rest.split('/').next())
        .unwrap()
        .to_owned();
    let cable = Cable::to(&broker).await;
    let direct = env.spawn_worker();
    let mut settings = env.settings();
    settings.broker.url = env
        .amqp_url
        .replacen(&broker, &format!("127.0.0.1:{}", cable.port), 1);
    assert_ne!(
        settings.broker.url, env.amqp_url,
        "the cut-off worker goes through the cable"
    );
    let remote = env.spawn_worker_with(settings);
    env.wait_split(&[&direct.id, &remote.id]).await;

    cable.cut();
    // After a lease without the broker the cut-off worker deregisters: the other one holds
    // every partition, and changes of every partition reach Salesforce.
    env.wait_split(&[&direct.id]).await;
    let mut ids = Vec::new();
    for n in 0..12 {
        ids.push(env.create(&format!("cut{n}@idm-sync.test")).await);
    }
    for id in &ids {
        env.wait_synced(id).await;
    }
    let partitions: std::collections::BTreeSet<u16> = ids
        .iter()
        .map(|id| env.topology.partition_for(id))
        .collect();
    assert!(partitions.len() > 1, "the users span several partitions");

    cable.restore();
    env.wait_split(&[&direct.id, &remote.id]).await;
    let back = env.create("after.cut@idm-sync.test").await;
    env.wait_synced(&back).await;
    wait_until("no failure recorded", async || {
        env.scalar("SELECT count(*) FROM sync_failures").await == 0
    })
    .await;
    remote.stop().await;
    direct.stop().await;
}
