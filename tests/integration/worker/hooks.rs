//! The outbound mapping's event scripts as implicit sync runs them: onCreate and onUpdate
//! shape what is sent (an UPDATE still sends only what differs), onLink, onUpdate and
//! onDelete refuse with a sync failure that names the script.

use serde_json::{Value, json};

use super::{Env, env, wait_until};

fn js(source: &str) -> Value {
    json!({"type": "text/javascript", "source": source})
}

fn hook_outbound(env: &Env) {
    let path = env.conf.join("sync.json");
    let mut sync: Value = serde_json::from_str(&std::fs::read_to_string(&path).unwrap()).unwrap();
    let outbound = &mut sync["mappings"][1];
    assert_eq!(outbound["name"], "managedUser_systemSalesforceUser");
    outbound["onCreate"] = js("target.Title = 'created for ' + source.userName;");
    outbound["onUpdate"] = js("if (source.sn === 'Refused') { throw 'onUpdate refused'; }
         target.Department = 'was ' + (oldTarget ? oldTarget.LastName : 'unknown');");
    outbound["onLink"] = js("if (source.givenName === 'Nolink') { throw 'onLink refused'; }");
    outbound["onDelete"] =
        js("if (target.LastName === 'Keep') { throw 'onDelete keeps ' + target._id; }");
    std::fs::write(&path, sync.to_string()).unwrap();
}

async fn failure_of(env: &Env, id: &str) -> Value {
    let filter = format!("objectId eq \"{id}\"");
    wait_until(&format!("a sync failure of {id}"), async || {
        env.failures(&filter).await["resultCount"] == 1
    })
    .await;
    env.failures(&filter).await["result"][0].clone()
}

#[tokio::test]
async fn event_scripts_shape_and_refuse_what_the_worker_sends() {
    let env = env(0).await;
    hook_outbound(&env);
    let worker = env.spawn_worker();

    // onCreate adds to the created record; onUpdate's addition goes with the delta.
    let id = env.create("hooked@idm-sync.test").await;
    let sf = env.wait_synced(&id).await;
    assert_eq!(sf["Title"], "created for hooked@idm-sync.test");
    assert!(sf["Department"].is_null(), "{sf}");
    env.patch(&id, "/sn", json!("Smith")).await;
    let sf = env.wait_synced(&id).await;
    assert_eq!(
        (&sf["LastName"], &sf["Department"]),
        (&json!("Smith"), &json!("was Jensen"))
    );

    // A throw in onUpdate: a sync failure naming it, Salesforce untouched.
    env.patch(&id, "/sn", json!("Refused")).await;
    let f = failure_of(&env, &id).await;
    assert!(
        f["message"].as_str().unwrap().contains("onUpdate refused"),
        "{f}"
    );
    let sf_id = env.linked(&id).await.unwrap();
    assert_eq!(env.handle().user(&sf_id).unwrap()["LastName"], "Smith");

    // onDelete refuses to deactivate a user whose LastName is Keep.
    env.patch(&id, "/sn", json!("Keep")).await;
    env.wait_synced(&id).await;
    env.delete(&id).await;
    let f = failure_of(&env, &id).await;
    assert!(
        f["message"]
            .as_str()
            .unwrap()
            .contains(&format!("onDelete keeps {sf_id}")),
        "{f}"
    );
    assert_eq!(env.handle().user(&sf_id).unwrap()["IsActive"], true);

    // onLink runs once the Salesforce user exists: the link stays, the change fails.
    let mut body = env.user_body("nolink@idm-sync.test");
    body["givenName"] = json!("Nolink");
    let other = crate::helpers::create_managed(&env.app, &body).await;
    let f = failure_of(&env, &other).await;
    assert!(
        f["message"].as_str().unwrap().contains("onLink refused"),
        "{f}"
    );
    assert!(env.linked(&other).await.is_some(), "the link is kept");
    assert_eq!(env.handle().user_count(), 2);
    worker.stop().await;
}
