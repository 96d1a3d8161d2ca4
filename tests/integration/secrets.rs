//! Secrets at rest: the refresh token and the consumer secret are stored sealed, read back
//! under the same key only, and plain values left by an earlier version are sealed at start.

use idm_sync::salesforce::{Credentials, Secret};
use idm_sync::secrets::Sealer;

use crate::helpers::{TestDb, db_settings, token_store};

async fn raw(db: &TestDb) -> (String, String) {
    sqlx::query_as(
        "SELECT t.refresh_token, c.client_secret FROM salesforce_tokens t
         JOIN salesforce_connector_settings c USING (system_name)",
    )
    .fetch_one(&db.pool)
    .await
    .unwrap()
}

fn credentials() -> Credentials {
    Credentials {
        login_url: "https://login.salesforce.com/services/oauth2/token"
            .parse()
            .unwrap(),
        client_id: "consumer-key".into(),
        client_secret: Secret::new("consumer-secret-XYZ"),
    }
}

#[tokio::test]
async fn stored_secrets_are_sealed_and_open_under_their_key_only() {
    let db = TestDb::new().await;
    let store = token_store(&db.pool);
    store
        .save(
            "salesforce",
            &Secret::new("refresh-XYZ"),
            Some("https://x"),
            None,
        )
        .await
        .unwrap();
    store
        .save_credentials("salesforce", &credentials())
        .await
        .unwrap();

    let (token, secret) = raw(&db).await;
    // The secrets hold '-', which base64 never does: their text cannot appear by chance.
    for (stored, plain) in [(&token, "refresh-XYZ"), (&secret, "consumer-secret-XYZ")] {
        assert!(Sealer::is_sealed(stored), "{stored}");
        assert!(!stored.contains(plain), "{stored}");
    }
    let loaded = store.load("salesforce").await.unwrap().unwrap();
    assert_eq!(loaded.refresh_token.expose(), "refresh-XYZ");
    let saved = store.load_credentials("salesforce").await.unwrap().unwrap();
    assert_eq!(saved.client_secret.expose(), "consumer-secret-XYZ");

    // A role holding another key cannot read them, and says why.
    let other =
        idm_sync::repo::salesforce_store::postgres(db.pool.clone(), Sealer::new(&[1; 32]).unwrap());
    let err = other.load("salesforce").await.unwrap_err().to_string();
    assert!(err.contains("another secrets key"), "{err}");
    let err = other
        .load_credentials("salesforce")
        .await
        .unwrap_err()
        .to_string();
    assert!(err.contains("IDM_SECRETS_KEY"), "{err}");
}

#[tokio::test]
async fn plain_secrets_of_an_earlier_version_are_sealed_at_start() {
    let db = TestDb::new().await;
    for insert in [
        "INSERT INTO salesforce_tokens (system_name, refresh_token) VALUES ('salesforce', 'refresh-XYZ')",
        "INSERT INTO salesforce_connector_settings (system_name, login_url, client_id, client_secret)
         VALUES ('salesforce', 'https://login.salesforce.com/services/oauth2/token', 'k', 'consumer-secret-XYZ')",
    ] {
        sqlx::query(sqlx::AssertSqlSafe(insert)).execute(&db.pool).await.unwrap();
    }
    // Read as they are meanwhile.
    let store = token_store(&db.pool);
    let loaded = store.load("salesforce").await.unwrap().unwrap();
    assert_eq!(loaded.refresh_token.expose(), "refresh-XYZ");

    let conf = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("conf");
    idm_sync::app::Components::build(&conf, &db_settings(&db.url))
        .await
        .unwrap();
    let (token, secret) = raw(&db).await;
    assert!(Sealer::is_sealed(&token) && Sealer::is_sealed(&secret));
    assert_eq!(
        store
            .load("salesforce")
            .await
            .unwrap()
            .unwrap()
            .refresh_token
            .expose(),
        "refresh-XYZ"
    );
    assert_eq!(
        store
            .load_credentials("salesforce")
            .await
            .unwrap()
            .unwrap()
            .client_secret
            .expose(),
        "consumer-secret-XYZ"
    );
}

#[test]
fn a_role_given_a_bad_key_stops_and_names_it() {
    let out = std::process::Command::new(env!("CARGO_BIN_EXE_idm-sync"))
        .args(["recon", "--mapping", "systemSalesforceUser_managedUser"])
        .current_dir(env!("CARGO_MANIFEST_DIR"))
        .env("IDM_SECRETS_KEY", "too-short")
        .env("DATABASE_URL", "postgres://postgres@127.0.0.1:1/unused")
        .output()
        .unwrap();
    assert!(!out.status.success());
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(
        stderr.contains("IDM_SECRETS_KEY is not the base64 of 32 bytes"),
        "{stderr}"
    );
    assert!(
        !stderr.contains("too-short"),
        "the key is never printed: {stderr}"
    );
}

#[tokio::test]
async fn a_role_with_another_key_refuses_to_start() {
    let db = TestDb::new().await;
    token_store(&db.pool)
        .save("salesforce", &Secret::new("refresh-XYZ"), None, None)
        .await
        .unwrap();
    let conf = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("conf");
    let mut settings = db_settings(&db.url);
    settings.secrets = idm_sync::secrets::KeySource::Key([1; 32]);
    let err = match idm_sync::app::Components::build(&conf, &settings).await {
        Ok(_) => panic!("a role with another key started"),
        Err(e) => idm_sync::telemetry::error_chain(&e).to_string(),
    };
    assert!(err.contains("sealed under another secrets key"), "{err}");
    // The stored token is untouched: the right key still reads it.
    let loaded = token_store(&db.pool)
        .load("salesforce")
        .await
        .unwrap()
        .unwrap();
    assert_eq!(loaded.refresh_token.expose(), "refresh-XYZ");
}

/// A role started before the secrets were stored, with another key than the role that stored
/// them: its connector stops (which pauses implicit sync, as for any credentials an operator
/// must fix) and makes no token call with what it cannot read.
#[tokio::test]
async fn a_client_that_cannot_open_the_stored_token_stops_its_connector() {
    use crate::salesforce::support::{config, start_org};
    use idm_sync::salesforce::{ConnectorState, ErrorKind, SalesforceClient};

    let db = TestDb::new().await;
    let org = start_org(1, false).await;
    let other =
        idm_sync::repo::salesforce_store::postgres(db.pool.clone(), Sealer::new(&[1; 32]).unwrap());
    let client = SalesforceClient::new(config(org.base_url()), other).unwrap();
    token_store(&db.pool)
        .save("salesforce", &Secret::new("refresh-XYZ"), None, None)
        .await
        .unwrap();

    let err = client.limits().await.unwrap_err();
    assert_eq!(err.kind(), ErrorKind::BadCredentials, "{err}");
    assert!(err.to_string().contains("another secrets key"), "{err}");
    assert!(
        matches!(client.state(), ConnectorState::UnreadableSecrets { reason } if reason.contains("another secrets key")),
        "{:?}",
        client.state()
    );
    assert_eq!(
        org.handle().stats().calls_of("POST /services/oauth2/token"),
        0
    );
    // Remembered: the next call fails the same way without reading anything new.
    assert_eq!(
        client.limits().await.unwrap_err().kind(),
        ErrorKind::BadCredentials
    );
}
