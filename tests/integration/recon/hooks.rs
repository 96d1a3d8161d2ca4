//! The inbound mapping's event scripts (onCreate, onUpdate, onLink, onDelete, result) as a
//! reconciliation runs them: what they change is written, what they refuse fails its one
//! object, and an onUpdate that changes nothing writes nothing.

use serde_json::{Value, json};

use super::support::{Env, env_with, record, shipped_sync_with, target};

fn js(source: &str) -> Value {
    json!({"type": "text/javascript", "source": source})
}

/// The shipped sync.json with scripts on the inbound mapping.
fn hooked_sync() -> std::path::PathBuf {
    shipped_sync_with(|sync| {
        let inbound = &mut sync["mappings"][0];
        inbound["onCreate"] =
            js("target.description = 'created from ' + source.Id + ' (' + situation + ')';");
        inbound["onUpdate"] = js(
            "if (source.LastName === 'Refused') { throw 'onUpdate refused, sn stays ' + oldTarget.sn; }
             target.telephoneNumber = 'was ' + oldTarget.sn;",
        );
        inbound["onLink"] = js("if (source.FirstName === 'Nolink') { throw 'onLink refused'; }");
        inbound["onDelete"] =
            js("if (target.sn === 'Keep') { throw 'onDelete keeps ' + target._id; }");
        inbound["result"] = js("global.state + ': ' + target.created + ' created';");
    })
}

async fn failures(env: &Env, recon_id: &str) -> Vec<String> {
    let filter = format!("reconId eq \"{recon_id}\" and status eq \"FAILURE\"");
    let page: Value = env
        .app
        .get("/audit/recon")
        .query(&[("_queryFilter", filter)])
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    page["result"]
        .as_array()
        .unwrap()
        .iter()
        .map(|e| e["message"].as_str().unwrap_or_default().to_owned())
        .collect()
}

async fn set(env: &Env, sf_id: &str, fields: Value) {
    env.sf.update(sf_id, &record(fields)).await.unwrap();
}

#[tokio::test]
async fn event_scripts_shape_and_refuse_what_recon_writes() {
    let sync = hooked_sync();
    let env = env_with(12, &sync).await;
    let _ = std::fs::remove_file(&sync);
    let people = env.people().await;
    let id = |i: usize| people[i]["Id"].as_str().unwrap().to_owned();
    let n = people.len() as u64;
    assert!(n >= 10, "{n} ordinary users");
    set(&env, &id(0), json!({"FirstName": "Nolink"})).await;

    // onCreate shapes every new user; onLink (run for the link a CREATE makes) refuses one,
    // which is then neither created nor linked.
    let s = env.recon("").await;
    assert_eq!(s["state"], "SUCCESS", "{s}");
    assert_eq!(target(&s, "created"), n - 1, "{s}");
    assert_eq!(s["statusSummary"]["FAILURE"], 1, "{s}");
    let run = s["_id"].as_str().unwrap();
    let why = failures(&env, run).await;
    assert!(
        why.len() == 1 && why[0].contains("onLink refused"),
        "{why:?}"
    );
    assert_eq!(env.users().await as u64, n - 1);
    let user = env.linked_user(&id(1)).await;
    assert_eq!(
        user["description"],
        format!("created from {} (ABSENT)", id(1))
    );
    assert_eq!(
        s["resultScript"],
        json!({"value": format!("SUCCESS: {} created", n - 1)}),
        "{s}"
    );

    // onUpdate runs for every UPDATE, changed or not: its telephoneNumber is written once,
    // and a second run, where it sets the same value again, writes nothing.
    set(&env, &id(0), json!({"FirstName": "Linked"})).await;
    set(&env, &id(1), json!({"LastName": "Changed"})).await;
    let old_sn = user["sn"].as_str().unwrap().to_owned();
    let s = env.recon("").await;
    assert_eq!(target(&s, "created"), 1, "{s}");
    assert_eq!(target(&s, "updated"), n - 1, "{s}");
    let user = env.linked_user(&id(1)).await;
    assert_eq!(
        (user["sn"].as_str(), user["telephoneNumber"].as_str()),
        (Some("Changed"), Some(format!("was {old_sn}").as_str()))
    );
    let outbox = env.outbox().await;
    let s = env.recon("").await;
    // Two writes: the user created by the run before had no telephoneNumber yet, and the
    // renamed one's old sn (what the script reads) is now "Changed".
    assert_eq!(
        (target(&s, "updated"), target(&s, "unchanged")),
        (2, n - 2),
        "{s}"
    );
    assert_eq!(env.outbox().await, outbox + 2);
    assert_eq!(
        env.linked_user(&id(1)).await["telephoneNumber"],
        "was Changed"
    );
    let s = env.recon("").await;
    assert_eq!(target(&s, "unchanged"), n, "{s}");
    assert_eq!(env.outbox().await, outbox + 2, "nothing written");

    // A throw in onUpdate fails that user and leaves it as it was.
    set(&env, &id(2), json!({"LastName": "Refused"})).await;
    let before = env.linked_user(&id(2)).await;
    let s = env.recon("").await;
    assert_eq!(s["statusSummary"]["FAILURE"], 1, "{s}");
    let why = failures(&env, s["_id"].as_str().unwrap()).await;
    assert!(
        why[0].contains(&format!(
            "onUpdate refused, sn stays {}",
            before["sn"].as_str().unwrap()
        )),
        "{why:?}"
    );
    assert_eq!(env.linked_user(&id(2)).await["sn"], before["sn"]);

    // UNQUALIFIED → DELETE: onDelete lets one go and keeps the other (sn "Keep").
    set(&env, &id(2), json!({"LastName": "Keep"})).await;
    env.recon("").await;
    let kept = env.linked_user(&id(2)).await;
    assert_eq!(kept["sn"], "Keep");
    let gone = env.linked_user(&id(3)).await;
    for i in [2, 3] {
        set(
            &env,
            &id(i),
            json!({"Email": format!("autoproc{i}@example.com")}),
        )
        .await;
    }
    let s = env.recon("").await;
    assert_eq!(s["state"], "SUCCESS", "{s}");
    assert_eq!(target(&s, "deleted"), 1, "{s}");
    let why = failures(&env, s["_id"].as_str().unwrap()).await;
    let kept_id = kept["_id"].as_str().unwrap();
    assert!(
        why.len() == 1 && why[0].contains(&format!("onDelete keeps {kept_id}")),
        "{why:?}"
    );
    let status = |id: &str| {
        let app = &env.app;
        let path = format!("/managed/user/{id}");
        async move { app.get(&path).send().await.unwrap().status() }
    };
    assert_eq!(status(kept_id).await, 200);
    assert_eq!(status(gone["_id"].as_str().unwrap()).await, 404);
}
