//! --state: the org and tokens survive a restart.

use serde_json::{Value, json};
use sf_emulator::{Emulator, EmulatorConfig};

use super::support::{client, refresh};

#[tokio::test]
async fn org_and_rotated_tokens_persist_across_restart() {
    let dir = std::env::temp_dir().join(format!("sf-emu-state-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let path = dir.join("state.json");
    let _ = std::fs::remove_file(&path);
    let config = EmulatorConfig {
        users: 10,
        state_file: Some(path.clone()),
        rotate_refresh_tokens: true,
        ..Default::default()
    };

    let running = Emulator::build(config.clone(), "127.0.0.1:0".parse().unwrap())
        .await
        .unwrap()
        .start();
    let base = running.base_url().to_owned();
    let http = client();
    let tok = refresh(&http, &base, "idm-sync-emulator-refresh-token").await;
    let rt = tok["refresh_token"].as_str().unwrap().to_owned();
    let access = tok["access_token"].as_str().unwrap().to_owned();
    let h = running.handle();
    let mut body = json!({
        "Username": "persisted@example.org", "LastName": "Kept", "Email": "k@example.org", "Alias": "kept",
        "ProfileId": h.profile_id("Standard User").unwrap(), "TimeZoneSidKey": "Europe/Paris",
        "LocaleSidKey": "fr_FR", "EmailEncodingKey": "UTF-8", "LanguageLocaleKey": "fr"
    });
    body["FirstName"] = json!("Zoë");
    let r = http
        .post(format!("{base}/services/data/v62.0/sobjects/User"))
        .bearer_auth(&access)
        .json(&body)
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 201);
    let id = r.json::<Value>().await.unwrap()["id"]
        .as_str()
        .unwrap()
        .to_owned();
    let before = h.user(&id).unwrap();
    let org_id = h.org_id();
    running.stop().await.unwrap();
    assert!(path.exists());

    let running = Emulator::build(config, "127.0.0.1:0".parse().unwrap())
        .await
        .unwrap()
        .start();
    let base = running.base_url().to_owned();
    let h = running.handle();
    assert_eq!(h.org_id(), org_id);
    assert_eq!(h.user_count(), 11);
    assert_eq!(h.user(&id).unwrap(), before);
    // The rotated refresh token is the valid one after the restart.
    let tok = refresh(&http, &base, &rt).await;
    let access = tok["access_token"].as_str().unwrap();
    // New ids do not collide with persisted ones.
    body["Username"] = json!("second@example.org");
    let r = http
        .post(format!("{base}/services/data/v62.0/sobjects/User"))
        .bearer_auth(access)
        .json(&body)
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 201);
    let id2 = r.json::<Value>().await.unwrap()["id"]
        .as_str()
        .unwrap()
        .to_owned();
    assert_ne!(id2, id);
    assert_eq!(h.user_count(), 12);
    // The configured token was rotated out before the restart, and stays dead.
    let r = http
        .post(format!("{base}/services/oauth2/token"))
        .form(&[
            ("grant_type", "refresh_token"),
            ("client_id", "idm-sync-emulator-key"),
            ("client_secret", "idm-sync-emulator-secret"),
            ("refresh_token", "idm-sync-emulator-refresh-token"),
        ])
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 400);
    running.stop().await.unwrap();
    let _ = std::fs::remove_dir_all(&dir);
}

#[tokio::test]
async fn seed_file_users() {
    let dir = std::env::temp_dir().join(format!("sf-emu-seed-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let path = dir.join("seed.json");
    let seed = json!({"users": [
        {"Id": "0055g000001AbCd", "Username": "ada@example.org", "LastName": "Lovelace", "FirstName": "Ada",
         "Email": "ada@example.org", "Alias": "alove", "ProfileId": "System Administrator"},
        {"Username": "autoproc@00d000000000001", "LastName": "Automated Process", "Email": "autoproc@example.org",
         "Alias": "autoproc", "IsActive": true}
    ]});
    std::fs::write(&path, seed.to_string()).unwrap();
    let config = EmulatorConfig {
        seed_file: Some(path),
        ..Default::default()
    };
    let running = Emulator::build(config, "127.0.0.1:0".parse().unwrap())
        .await
        .unwrap()
        .start();
    let h = running.handle();
    assert_eq!(h.user_count(), 2);
    let id = sf_emulator::ids::to_18("0055g000001AbCd").unwrap();
    let ada = h
        .user(&id)
        .expect("the given id is kept (with its checksum)");
    assert_eq!(ada["Name"], "Ada Lovelace");
    assert_eq!(
        ada["ProfileId"],
        h.profile_id("System Administrator").unwrap().as_str()
    );
    assert_eq!(ada["TimeZoneSidKey"], "America/Los_Angeles");
    // A bad seed file is a clear start-up error.
    let bad = dir.join("bad.json");
    std::fs::write(&bad, r#"[{"Username":"x@y.z"}]"#).unwrap();
    let err = Emulator::build(
        EmulatorConfig {
            seed_file: Some(bad),
            ..Default::default()
        },
        "127.0.0.1:0".parse().unwrap(),
    )
    .await
    .unwrap_err();
    assert!(err.to_string().contains("not a valid seed file"), "{err}");
    running.stop().await.unwrap();
    let _ = std::fs::remove_dir_all(&dir);
}
