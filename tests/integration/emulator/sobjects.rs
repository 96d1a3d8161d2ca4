//! sobjects/User: create validation, get, patch, delete, describe, updated, versions.

use serde_json::{Value, json};

use super::support::{V, error_of, org};

#[tokio::test]
async fn create_then_get_patch_and_audit_fields() {
    let org = org(5).await;
    let r = org
        .post("sobjects/User", &org.new_user("new.one@example.org"))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 201);
    let body: Value = r.json().await.unwrap();
    assert_eq!(body["success"], true);
    assert_eq!(body["errors"], json!([]));
    let id = body["id"].as_str().unwrap().to_owned();
    assert_eq!(id.len(), 18);
    assert!(id.starts_with("005"));

    let r = org
        .get(&format!("sobjects/User/{id}"))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 200);
    let rec: Value = r.json().await.unwrap();
    assert_eq!(
        rec["attributes"],
        json!({"type":"User","url":format!("/services/data/{V}/sobjects/User/{id}")})
    );
    assert_eq!(rec["Name"], "Tess Tester");
    assert_eq!(rec["IsActive"], true);
    let created = rec["CreatedDate"].as_str().unwrap().to_owned();
    assert_eq!(created.len(), 28, "{created}");
    assert!(created.ends_with("+0000"));
    assert_eq!(rec["SystemModstamp"], rec["CreatedDate"]);

    // 15-char and mis-cased 18-char ids find the same record; ?fields= picks fields.
    let r = org
        .get(&format!(
            "sobjects/User/{}?fields=Username,IsActive",
            &id[..15]
        ))
        .send()
        .await
        .unwrap();
    let rec: Value = r.json().await.unwrap();
    assert_eq!(rec.as_object().unwrap().len(), 3);
    assert_eq!(rec["Username"], "new.one@example.org");
    let r = org
        .get(&format!("sobjects/User/{}", id.to_lowercase()))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 200);

    tokio::time::sleep(std::time::Duration::from_millis(5)).await;
    let r = org
        .patch(
            &format!("sobjects/User/{id}"),
            &json!({"LastName":"Changed","IsActive":false}),
        )
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 204);
    assert!(r.text().await.unwrap().is_empty());
    let rec: Value = org
        .get(&format!("sobjects/User/{id}"))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(rec["LastName"], "Changed");
    assert_eq!(rec["Name"], "Tess Changed");
    assert_eq!(rec["IsActive"], false);
    assert_eq!(rec["CreatedDate"], created.as_str());
    assert!(rec["SystemModstamp"].as_str().unwrap() > created.as_str());
    assert_eq!(rec["LastModifiedDate"], rec["SystemModstamp"]);
    assert_eq!(org.handle().stats().records_written, 2);
}

#[tokio::test]
async fn every_create_validation_error() {
    let org = org(5).await;
    let valid = org.new_user("valid@example.org");
    let with = |k: &str, v: Value| {
        let mut b = valid.clone();
        b[k] = v;
        b
    };
    let without = |ks: &[&str]| {
        let mut b = valid.clone();
        for k in ks {
            b.as_object_mut().unwrap().remove(*k);
        }
        b
    };
    let existing = org.handle().user(&{
        let q: Value = org
            .get("query?q=SELECT+Id+FROM+User+LIMIT+1")
            .send()
            .await
            .unwrap()
            .json()
            .await
            .unwrap();
        q["records"][0]["Id"].as_str().unwrap().to_owned()
    });
    let taken = existing.unwrap()["Username"]
        .as_str()
        .unwrap()
        .to_uppercase();
    let cases: Vec<(Value, &str, Option<&str>, Value)> = vec![
        (
            without(&["LastName", "Alias"]),
            "REQUIRED_FIELD_MISSING",
            Some("Required fields are missing: [LastName, Alias]"),
            json!(["LastName", "Alias"]),
        ),
        (
            with("Email", json!("")),
            "REQUIRED_FIELD_MISSING",
            Some("Required fields are missing: [Email]"),
            json!(["Email"]),
        ),
        (
            with("Alias", json!("toolongalias")),
            "STRING_TOO_LONG",
            Some("Alias: data value too large: toolongalias (max length=8)"),
            json!(["Alias"]),
        ),
        (
            with("Username", json!(taken)),
            "DUPLICATE_USERNAME",
            None,
            json!(["Username"]),
        ),
        (
            with("ProfileId", json!("00e000000000000AAA")),
            "INVALID_CROSS_REFERENCE_KEY",
            Some("invalid cross reference id"),
            json!(["ProfileId"]),
        ),
        (
            with("ProfileId", json!("not-an-id")),
            "MALFORMED_ID",
            None,
            json!(["ProfileId"]),
        ),
        (
            with("Email", json!("no-at-sign")),
            "INVALID_EMAIL_ADDRESS",
            Some("Email: invalid email address: no-at-sign"),
            json!(["Email"]),
        ),
        (
            with("Username", json!("plainname")),
            "INVALID_EMAIL_ADDRESS",
            None,
            json!(["Username"]),
        ),
        (
            with("Nickname__c", json!("x")),
            "INVALID_FIELD",
            Some("No such column 'Nickname__c' on sobject of type User"),
            json!([]),
        ),
        (
            with("CreatedDate", json!("2020-01-01T00:00:00Z")),
            "INVALID_FIELD_FOR_INSERT_UPDATE",
            None,
            json!(["CreatedDate"]),
        ),
        (
            with("IsActive", json!("maybe")),
            "JSON_PARSER_ERROR",
            None,
            json!([]),
        ),
    ];
    for (body, code, message, fields) in cases {
        let r = org.post("sobjects/User", &body).send().await.unwrap();
        let (status, got_code, got_message, got_fields) = error_of(r).await;
        assert_eq!((status, got_code.as_str()), (400, code), "{body}");
        if let Some(m) = message {
            assert_eq!(got_message, m);
        }
        if code != "JSON_PARSER_ERROR" {
            assert_eq!(got_fields, fields, "{code}");
        }
    }
    let r = org
        .http
        .post(org.data_url("sobjects/User"))
        .bearer_auth(&org.token)
        .header("content-type", "application/json")
        .body("{not json")
        .send()
        .await
        .unwrap();
    let (status, code, _, _) = error_of(r).await;
    assert_eq!((status, code.as_str()), (400, "JSON_PARSER_ERROR"));
    let (_, code, message, _) = error_of(
        org.post("sobjects/User", &json!({"Username":"d@x.org"}))
            .send()
            .await
            .unwrap(),
    )
    .await;
    assert_eq!(code, "REQUIRED_FIELD_MISSING");
    assert_eq!(
        message,
        "Required fields are missing: [LastName, Email, Alias, ProfileId, TimeZoneSidKey, LocaleSidKey, EmailEncodingKey, LanguageLocaleKey]"
    );
    // Nothing was created by any of these.
    assert_eq!(org.handle().user_count(), 5);
    assert_eq!(org.handle().stats().records_written, 0);
}

#[tokio::test]
async fn patch_get_delete_edge_cases() {
    let org = org(5).await;
    let q: Value = org
        .get("query?q=SELECT+Id,Username+FROM+User")
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    let id = q["records"][1]["Id"].as_str().unwrap().to_owned();
    let other_username = q["records"][2]["Username"].as_str().unwrap().to_owned();

    let (status, code, message, _) = error_of(
        org.get("sobjects/User/005000000000000AAA")
            .send()
            .await
            .unwrap(),
    )
    .await;
    assert_eq!(
        (status, code.as_str(), message.as_str()),
        (404, "NOT_FOUND", "The requested resource does not exist")
    );
    let (status, code, _, _) =
        error_of(org.get("sobjects/User/garbage").send().await.unwrap()).await;
    assert_eq!((status, code.as_str()), (404, "NOT_FOUND"));
    let r = org
        .patch("sobjects/User/005000000000000AAA", &json!({"LastName":"x"}))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 404);
    let (status, code, _, _) = error_of(
        org.get(&format!("sobjects/User/{id}?fields=Nope"))
            .send()
            .await
            .unwrap(),
    )
    .await;
    assert_eq!((status, code.as_str()), (400, "INVALID_FIELD"));

    let (status, code, _, fields) = error_of(
        org.patch(&format!("sobjects/User/{id}"), &json!({"LastName":null}))
            .send()
            .await
            .unwrap(),
    )
    .await;
    assert_eq!(
        (status, code.as_str(), fields),
        (400, "REQUIRED_FIELD_MISSING", json!(["LastName"]))
    );
    let (_, code, _, _) = error_of(
        org.patch(
            &format!("sobjects/User/{id}"),
            &json!({"Username":other_username}),
        )
        .send()
        .await
        .unwrap(),
    )
    .await;
    assert_eq!(code, "DUPLICATE_USERNAME");
    let (_, code, _, _) = error_of(
        org.patch(&format!("sobjects/User/{id}"), &json!({"Id":id}))
            .send()
            .await
            .unwrap(),
    )
    .await;
    assert_eq!(code, "INVALID_FIELD_FOR_INSERT_UPDATE");
    // Changing one's own username's case is not a duplicate.
    let own: Value = org
        .get(&format!("sobjects/User/{id}"))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    let r = org
        .patch(
            &format!("sobjects/User/{id}"),
            &json!({"Username": own["Username"].as_str().unwrap().to_uppercase()}),
        )
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 204);

    let r = org
        .http
        .delete(org.data_url(&format!("sobjects/User/{id}")))
        .bearer_auth(&org.token)
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 405);
    assert_eq!(r.headers()["allow"], "HEAD,GET,PATCH");
    let (_, code, message, _) = error_of(r).await;
    assert_eq!(code, "METHOD_NOT_ALLOWED");
    assert_eq!(
        message,
        "HTTP Method 'DELETE' not allowed. Allowed are HEAD,GET,PATCH"
    );
    assert!(org.handle().user(&id).is_some());

    // The `_HttpMethod=PATCH` override.
    let r = org
        .post(
            &format!("sobjects/User/{id}?_HttpMethod=PATCH"),
            &json!({"Title":"Boss"}),
        )
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 204);
    assert_eq!(org.handle().user(&id).unwrap()["Title"], "Boss");

    // Unknown sObjects and unknown paths.
    assert_eq!(
        org.get("sobjects/Account/describe")
            .send()
            .await
            .unwrap()
            .status(),
        404
    );
    assert_eq!(org.get("nothing/here").send().await.unwrap().status(), 404);
}

#[tokio::test]
async fn describe_user() {
    let org = org(3).await;
    let d: Value = org
        .get("sobjects/User/describe")
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(d["name"], "User");
    assert_eq!(d["keyPrefix"], "005");
    assert_eq!(d["deletable"], false);
    let fields = d["fields"].as_array().unwrap();
    let alias = fields.iter().find(|f| f["name"] == "Alias").unwrap();
    assert_eq!(alias["length"], 8);
    assert_eq!(alias["type"], "string");
    assert_eq!(alias["nillable"], false);
    assert_eq!(alias["createable"], true);
    let modstamp = fields
        .iter()
        .find(|f| f["name"] == "SystemModstamp")
        .unwrap();
    assert_eq!(modstamp["type"], "datetime");
    assert_eq!(modstamp["updateable"], false);
}

#[tokio::test]
async fn versions_list_and_unknown_versions() {
    let org = org(3).await;
    let r = org
        .http
        .get(format!("{}/services/data/", org.base))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 200);
    assert!(r.headers().get("sforce-limit-info").is_none());
    let list: Vec<Value> = r.json().await.unwrap();
    assert_eq!(list.len(), 19);
    assert_eq!(
        list[0],
        json!({"label":"Winter '19","url":"/services/data/v44.0","version":"44.0"})
    );
    assert_eq!(list[18]["version"], "62.0");
    for v in ["v43.0", "v63.0", "latest", "v62"] {
        let r = org
            .http
            .get(format!("{}/services/data/{v}/limits", org.base))
            .bearer_auth(&org.token)
            .send()
            .await
            .unwrap();
        assert_eq!(r.status(), 404, "{v}");
        let (_, code, _, _) = error_of(r).await;
        assert_eq!(code, "NOT_FOUND");
    }
    let r = org
        .http
        .get(format!("{}/services/data/v44.0/limits", org.base))
        .bearer_auth(&org.token)
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 200);
}

#[tokio::test]
async fn updated_ids_within_a_window() {
    let org = org(300).await;
    let now = chrono::Utc::now();
    let fmt = |d: chrono::DateTime<chrono::Utc>| d.format("%Y-%m-%dT%H:%M:%S+00:00").to_string();
    let start = now - chrono::Duration::days(29);
    let r = org
        .http
        .get(org.data_url("sobjects/User/updated/"))
        .bearer_auth(&org.token)
        .query(&[("start", fmt(start)), ("end", fmt(now))])
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 200);
    let body: Value = r.json().await.unwrap();
    let ids = body["ids"].as_array().unwrap();
    assert!(!ids.is_empty());
    let covered = body["latestDateCovered"].as_str().unwrap();
    assert!(
        covered.ends_with(":00.000+0000"),
        "minute granularity: {covered}"
    );
    for id in ids {
        let u = org.handle().user(id.as_str().unwrap()).unwrap();
        let stamp = chrono::DateTime::parse_from_str(
            u["SystemModstamp"].as_str().unwrap(),
            "%Y-%m-%dT%H:%M:%S%.3f%z",
        )
        .unwrap();
        assert!(
            stamp >= start - chrono::Duration::minutes(1) && stamp <= now,
            "{stamp}"
        );
    }
    // The rules: start before end, at most 30 days back.
    for (s, e) in [
        (now, now - chrono::Duration::hours(1)),
        (now - chrono::Duration::days(45), now),
    ] {
        let r = org
            .http
            .get(org.data_url("sobjects/User/updated/"))
            .bearer_auth(&org.token)
            .query(&[("start", fmt(s)), ("end", fmt(e))])
            .send()
            .await
            .unwrap();
        let (status, code, _, _) = error_of(r).await;
        assert_eq!((status, code.as_str()), (400, "INVALID_REPLICATION_DATE"));
    }
}
