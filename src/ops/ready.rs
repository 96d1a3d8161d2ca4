//! Readiness: the database answers and, where this process runs a relay or a worker, that
//! role holds its broker connection. The roles register what they run; the check reads it.

use std::sync::{Arc, Mutex};
use std::time::Duration;

use crate::repo::{Pool, db};
use serde_json::{Map, Value, json};

use crate::outbound::authorization::PauseState;
use crate::outbound::broker::BrokerStatus;

/// What this process runs that readiness must check. Cheap to clone; shared by the roles.
#[derive(Debug, Clone, Default)]
pub struct Readiness(Arc<Mutex<Vec<Check>>>);

#[derive(Debug, Clone)]
enum Check {
    /// A role (`relay`, `worker`) and its broker connection.
    Broker {
        role: &'static str,
        status: BrokerStatus,
    },
    /// The worker's pause for Salesforce authorization (reported, never failing: the process
    /// does its job, holding changes back, and resumes by itself).
    /// A worker's pause, under its connector's system name.
    Paused { system: String, state: PauseState },
}

/// The outcome of one check.
#[derive(Debug, Clone, PartialEq)]
pub struct Report {
    pub ready: bool,
    pub body: Value,
}

const DB_TIMEOUT: Duration = Duration::from_secs(2);

impl Readiness {
    pub fn broker(&self, role: &'static str, status: BrokerStatus) {
        self.push(Check::Broker { role, status });
    }

    /// The pause state of the worker of connector `system`, reported under its name.
    pub fn worker_pause(&self, system: &str, state: PauseState) {
        self.push(Check::Paused {
            system: system.to_owned(),
            state,
        });
    }

    fn push(&self, check: Check) {
        self.0.lock().unwrap_or_else(|p| p.into_inner()).push(check);
    }

    pub async fn check(&self, pool: &Pool) -> Report {
        let checks = self.0.lock().unwrap_or_else(|p| p.into_inner()).clone();
        let mut components = Map::new();
        let mut failing = Vec::new();
        let db_up = db::answers(pool, DB_TIMEOUT).await;
        components.insert(
            "database".into(),
            component(db_up, "PostgreSQL does not answer"),
        );
        if !db_up {
            failing.push("database".to_owned());
        }
        for check in checks {
            match check {
                Check::Broker { role, status } => {
                    let up = status.is_up();
                    components.insert(
                        role.into(),
                        component(up, "not connected to the message broker"),
                    );
                    if !up {
                        failing.push(role.to_owned());
                    }
                }
                Check::Paused { system, state } => {
                    let salesforce = match state.reason() {
                        Some(reason) => json!({
                            "status": "PAUSED",
                            "detail": format!("implicit sync paused until an operator acts: {reason}"),
                        }),
                        None => json!({"status": "UP"}),
                    };
                    components.insert(system, salesforce);
                }
            }
        }
        let ready = failing.is_empty();
        let mut body = Map::new();
        body.insert(
            "state".into(),
            json!(if ready { "READY" } else { "NOT_READY" }),
        );
        if !ready {
            body.insert(
                "message".into(),
                json!(format!("not ready: {} down", failing.join(", "))),
            );
            body.insert("failing".into(), json!(failing));
        }
        body.insert("components".into(), Value::Object(components));
        Report {
            ready,
            body: Value::Object(body),
        }
    }
}

fn component(up: bool, down: &str) -> Value {
    if up {
        json!({"status": "UP"})
    } else {
        json!({"status": "DOWN", "detail": down})
    }
}
