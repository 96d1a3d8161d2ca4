//! composite/sobjects: create and update up to 200, mixed success, allOrNone.

use serde_json::{Value, json};

use super::support::{error_of, org};

fn record(mut v: Value) -> Value {
    v["attributes"] = json!({"type":"User"});
    v
}

#[tokio::test]
async fn create_with_mixed_success() {
    let org = org(5).await;
    let mut bad_alias = org.new_user("b@example.org");
    bad_alias["Alias"] = json!("waytoolong");
    let mut no_type = org.new_user("c@example.org");
    no_type.as_object_mut().unwrap().remove("attributes");
    let body = json!({"allOrNone": false, "records": [
        record(org.new_user("a@example.org")),
        record(bad_alias),
        record(org.new_user("a@example.org")),
        no_type,
        record(org.new_user("d@example.org")),
    ]});
    let r = org.post("composite/sobjects", &body).send().await.unwrap();
    assert_eq!(r.status(), 200);
    let results: Vec<Value> = r.json().await.unwrap();
    assert_eq!(results.len(), 5);
    assert_eq!(results[0]["success"], true);
    assert!(results[0]["id"].as_str().unwrap().starts_with("005"));
    assert_eq!(results[0]["errors"], json!([]));
    assert_eq!(results[1]["success"], false);
    assert_eq!(results[1]["errors"][0]["statusCode"], "STRING_TOO_LONG");
    assert_eq!(results[1]["errors"][0]["fields"], json!(["Alias"]));
    assert!(results[1]["errors"][0].get("errorCode").is_none());
    assert_eq!(results[2]["errors"][0]["statusCode"], "DUPLICATE_USERNAME");
    assert_eq!(results[3]["errors"][0]["statusCode"], "INVALID_TYPE");
    assert_eq!(results[4]["success"], true);
    assert_eq!(org.handle().user_count(), 7);
    let stats = org.handle().stats();
    assert_eq!(stats.records_written, 2);
    assert_eq!(
        stats.calls_of("POST /services/data/vXX.X/composite/sobjects"),
        1
    );
    assert_eq!(stats.api_usage, 1, "one API call for the whole collection");
}

#[tokio::test]
async fn all_or_none_rolls_everything_back() {
    let org = org(5).await;
    let q: Value = org
        .get("query?q=SELECT+Id,LastName+FROM+User+LIMIT+2")
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    let id0 = q["records"][0]["Id"].as_str().unwrap().to_owned();
    let before = org.handle().user(&id0).unwrap();

    let body = json!({"allOrNone": true, "records": [
        record(org.new_user("x1@example.org")),
        record(json!({"Username": "x2@example.org"})),
    ]});
    let results: Vec<Value> = org
        .post("composite/sobjects", &body)
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(results[0]["success"], false);
    assert_eq!(
        results[0]["errors"][0]["statusCode"],
        "ALL_OR_NONE_OPERATION_ROLLED_BACK"
    );
    assert_eq!(
        results[0]["errors"][0]["message"],
        "Record rolled back because not all records were valid and the request was using AllOrNone header"
    );
    assert_eq!(
        results[1]["errors"][0]["statusCode"],
        "REQUIRED_FIELD_MISSING"
    );
    assert_eq!(org.handle().user_count(), 5);

    // Update: one good, one unknown id; all rolled back.
    let body = json!({"allOrNone": true, "records": [
        record(json!({"id": id0, "LastName": "Rolled"})),
        record(json!({"id": "005000000000000AAA", "LastName": "Nobody"})),
    ]});
    let r = org.patch("composite/sobjects", &body).send().await.unwrap();
    assert_eq!(r.status(), 200);
    let results: Vec<Value> = r.json().await.unwrap();
    assert_eq!(results[0]["id"], id0.as_str());
    assert_eq!(
        results[0]["errors"][0]["statusCode"],
        "ALL_OR_NONE_OPERATION_ROLLED_BACK"
    );
    assert_eq!(results[1]["success"], false);
    assert_eq!(org.handle().user(&id0).unwrap(), before);
    assert_eq!(org.handle().stats().records_written, 0);

    // The same update without allOrNone: the good one sticks.
    let body = json!({"allOrNone": false, "records": [
        record(json!({"id": id0, "LastName": "Kept"})),
        record(json!({"LastName": "No id"})),
    ]});
    let results: Vec<Value> = org
        .patch("composite/sobjects", &body)
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(results[0]["success"], true);
    assert_eq!(results[1]["errors"][0]["statusCode"], "MISSING_ARGUMENT");
    assert_eq!(org.handle().user(&id0).unwrap()["LastName"], "Kept");
}

#[tokio::test]
async fn more_than_200_records_is_refused() {
    let org = org(3).await;
    let records: Vec<Value> = (0..201)
        .map(|i| record(org.new_user(&format!("u{i}@example.org"))))
        .collect();
    let r = org
        .post(
            "composite/sobjects",
            &json!({"allOrNone": false, "records": records}),
        )
        .send()
        .await
        .unwrap();
    let (status, code, message, _) = error_of(r).await;
    assert_eq!((status, code.as_str()), (400, "EXCEEDED_ID_LIMIT"));
    assert_eq!(
        message,
        "record limit reached. cannot submit more than 200 records into this call"
    );
    let records: Vec<Value> = (0..200)
        .map(|i| record(org.new_user(&format!("u{i}@example.org"))))
        .collect();
    let results: Vec<Value> = org
        .post("composite/sobjects", &json!({"records": records}))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert!(results.iter().all(|r| r["success"] == true));
    assert_eq!(org.handle().user_count(), 203);
    let r = org
        .post(
            "composite/sobjects",
            &json!({"records": [record(json!({"id": "005000000000000AAA"}))]}),
        )
        .send()
        .await
        .unwrap();
    let results: Vec<Value> = r.json().await.unwrap();
    assert_eq!(results[0]["errors"][0]["statusCode"], "INVALID_FIELD");
}
