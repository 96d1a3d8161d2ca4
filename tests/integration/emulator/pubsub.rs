//! The emulator's Pub/Sub API over real gRPC (sf-client's generated client), change events
//! decoded with apache-avro against the schema `GetSchema` serves.

use std::collections::BTreeMap;
use std::time::Duration;

use apache_avro::Schema;
use apache_avro::reader::datum::GenericDatumReader;
use apache_avro::types::Value as Avro;
use serde_json::{Value, json};
use sf_client::pubsub::proto::pub_sub_client::PubSubClient;
use sf_client::pubsub::proto::{
    ConsumerEvent, FetchRequest, FetchResponse, ReplayPreset, SchemaRequest, TopicRequest,
};
use sf_emulator::{ChangeType, EmulatorConfig};
use tokio::sync::mpsc;
use tonic::codegen::tokio_stream::wrappers::ReceiverStream;
use tonic::transport::Channel;
use tonic::{Code, Status, Streaming};

use super::support::{TestOrg, V, org_with};

const TOPIC: &str = "/data/UserChangeEvent";
const WAIT: Duration = Duration::from_secs(10);

struct Bus {
    org: TestOrg,
    client: PubSubClient<Channel>,
    org_id: String,
    /// The event schema, as `GetSchema` serves it, parsed and as JSON.
    schema: Schema,
    json: Value,
}

async fn bus() -> Bus {
    let org = org_with(EmulatorConfig {
        users: 5,
        ..EmulatorConfig::default()
    })
    .await;
    let url = org.running.pubsub_url();
    assert!(url.starts_with("http://127.0.0.1:"), "{url}");
    let channel = Channel::from_shared(url).unwrap().connect().await.unwrap();
    let client = PubSubClient::new(channel);
    let org_id = org.handle().org_id();
    let mut b = Bus {
        org,
        client,
        org_id,
        schema: Schema::Null,
        json: Value::Null,
    };
    (b.schema, b.json) = b.fetch_schema().await;
    b
}

impl Bus {
    /// `req` with the three authentication headers.
    fn auth<T>(&self, req: T) -> tonic::Request<T> {
        with_headers(req, &self.org.token, &self.org.base, &self.org_id)
    }

    async fn fetch_schema(&mut self) -> (Schema, Value) {
        let topic = self
            .client
            .get_topic(self.auth(topic_req(TOPIC)))
            .await
            .unwrap();
        let id = topic.into_inner().schema_id;
        let info = self
            .client
            .get_schema(self.auth(SchemaRequest { schema_id: id }))
            .await
            .unwrap()
            .into_inner();
        let json: Value = serde_json::from_str(&info.schema_json).unwrap();
        (Schema::parse_str(&info.schema_json).unwrap(), json)
    }

    /// Opens a stream with `first`; later requests go through the returned sender.
    async fn subscribe(
        &mut self,
        first: FetchRequest,
    ) -> (mpsc::Sender<FetchRequest>, Streaming<FetchResponse>) {
        let (tx, rx) = mpsc::channel(8);
        tx.send(first).await.unwrap();
        let stream = self
            .client
            .subscribe(self.auth(ReceiverStream::new(rx)))
            .await
            .unwrap()
            .into_inner();
        (tx, stream)
    }

    async fn create_user(&self, username: &str) -> String {
        let r = self
            .org
            .post("sobjects/User", &self.org.new_user(username))
            .header("Sforce-Call-Options", "client=idm-sync-test")
            .send()
            .await
            .unwrap();
        assert_eq!(r.status(), 201);
        r.json::<Value>().await.unwrap()["id"]
            .as_str()
            .unwrap()
            .to_owned()
    }
}

fn with_headers<T>(req: T, token: &str, instance: &str, tenant: &str) -> tonic::Request<T> {
    let mut r = tonic::Request::new(req);
    let md = r.metadata_mut();
    md.insert("accesstoken", token.parse().unwrap());
    md.insert("instanceurl", instance.parse().unwrap());
    md.insert("tenantid", tenant.parse().unwrap());
    r
}

fn topic_req(name: &str) -> TopicRequest {
    TopicRequest {
        topic_name: name.to_owned(),
    }
}

fn fetch(preset: ReplayPreset, replay_id: Vec<u8>, n: i32) -> FetchRequest {
    FetchRequest {
        topic_name: TOPIC.to_owned(),
        replay_preset: preset as i32,
        replay_id,
        num_requested: n,
        auth_refresh: String::new(),
    }
}

fn more(n: i32) -> FetchRequest {
    FetchRequest {
        topic_name: TOPIC.to_owned(),
        num_requested: n,
        ..FetchRequest::default()
    }
}

fn error_code(s: &Status) -> &str {
    s.metadata()
        .get("error-code")
        .and_then(|v| v.to_str().ok())
        .unwrap_or_default()
}

async fn next(stream: &mut Streaming<FetchResponse>) -> Result<FetchResponse, Status> {
    tokio::time::timeout(WAIT, stream.message())
        .await
        .expect("a response in time")
        .map(|m| m.expect("the stream is open"))
}

/// The next `n` events (keepalives skipped).
async fn events(stream: &mut Streaming<FetchResponse>, n: usize) -> Vec<ConsumerEvent> {
    let mut out = Vec::new();
    while out.len() < n {
        let r = next(stream).await.unwrap();
        out.extend(r.events);
    }
    assert_eq!(out.len(), n, "never more than owed");
    out
}

/// The stream's final status.
async fn ended(stream: &mut Streaming<FetchResponse>) -> Status {
    loop {
        match tokio::time::timeout(WAIT, stream.message()).await.unwrap() {
            Ok(Some(_)) => continue,
            Ok(None) => panic!("the stream ended without an error"),
            Err(s) => return s,
        }
    }
}

/// Asserts the stream ends with `code` and the error code `sfdc.platform.eventbus.grpc.<sfdc>`.
async fn ends_with(stream: &mut Streaming<FetchResponse>, code: Code, sfdc: &str) {
    let s = ended(stream).await;
    let want = format!("sfdc.platform.eventbus.grpc.{sfdc}");
    assert_eq!(
        (s.code(), error_code(&s)),
        (code, want.as_str()),
        "{}",
        s.message()
    );
}

/// A decoded event: header fields and the record's other fields.
struct Event {
    header: BTreeMap<String, Avro>,
    fields: BTreeMap<String, Avro>,
}

fn decode(schema: &Schema, e: &ConsumerEvent) -> Event {
    let payload = &e.event.as_ref().unwrap().payload;
    let reader = GenericDatumReader::builder(schema).build().unwrap();
    let Avro::Record(fields) = reader.read_value(&mut &payload[..]).unwrap() else {
        panic!("not a record")
    };
    let mut fields: BTreeMap<String, Avro> = fields.into_iter().collect();
    let Some(Avro::Record(header)) = fields.remove("ChangeEventHeader") else {
        panic!("no header")
    };
    Event {
        header: header.into_iter().collect(),
        fields,
    }
}

impl Event {
    fn text(&self, name: &str) -> String {
        match &self.header[name] {
            Avro::String(s) => s.clone(),
            Avro::Enum(_, s) => s.clone(),
            other => panic!("{name}: {other:?}"),
        }
    }

    fn long(&self, name: &str) -> i64 {
        match &self.header[name] {
            Avro::Long(n) => *n,
            Avro::Int(n) => i64::from(*n),
            other => panic!("{name}: {other:?}"),
        }
    }

    fn strings(&self, name: &str) -> Vec<String> {
        let Avro::Array(a) = &self.header[name] else {
            panic!("{name}")
        };
        a.iter()
            .map(|v| match v {
                Avro::String(s) => s.clone(),
                other => panic!("{other:?}"),
            })
            .collect()
    }

    /// A record field's value, `None` for null.
    fn field(&self, name: &str) -> Option<&Avro> {
        match &self.fields[name] {
            Avro::Union(0, _) => None,
            Avro::Union(_, v) => Some(v),
            other => panic!("{name} is not a union: {other:?}"),
        }
    }
}

/// Field names of a bitmap field, decoded as the Pub/Sub API guide describes: bit i of the
/// first `0x…` is the schema's field i; `"p-0x…"` are children of field p as `Parent.Child`.
fn bitmap_names(schema_json: &Value, bitmap: &[String]) -> Vec<String> {
    let fields = schema_json["fields"].as_array().unwrap();
    let bits = |hex: &str| -> Vec<usize> {
        let n = u128::from_str_radix(hex.strip_prefix("0x").unwrap(), 16).unwrap();
        (0..128).filter(|i| n & (1u128 << i) != 0).collect()
    };
    let mut names = Vec::new();
    for entry in bitmap {
        match entry.split_once('-') {
            None => names.extend(
                bits(entry)
                    .into_iter()
                    .map(|i| fields[i]["name"].as_str().unwrap().to_owned()),
            ),
            Some((parent, hex)) => {
                let p = &fields[parent.parse::<usize>().unwrap()];
                let children = p["type"][1]["fields"].as_array().unwrap();
                names.extend(bits(hex).into_iter().map(|i| {
                    format!(
                        "{}.{}",
                        p["name"].as_str().unwrap(),
                        children[i]["name"].as_str().unwrap()
                    )
                }));
            }
        }
    }
    names.sort();
    names
}

#[tokio::test]
async fn calls_without_valid_authentication_are_refused() {
    let mut b = bus().await;
    let bare = b
        .client
        .get_topic(tonic::Request::new(topic_req(TOPIC)))
        .await
        .unwrap_err();
    assert_eq!(bare.code(), Code::Unauthenticated);
    assert_eq!(
        error_code(&bare),
        "sfdc.platform.eventbus.grpc.service.auth.headers.invalid"
    );
    assert!(bare.message().contains("rpcId: "), "{}", bare.message());

    let wrong = with_headers(topic_req(TOPIC), "00Dnot-a-token", &b.org.base, &b.org_id);
    let s = b.client.get_topic(wrong).await.unwrap_err();
    assert_eq!(s.code(), Code::Unauthenticated);
    assert_eq!(
        error_code(&s),
        "sfdc.platform.eventbus.grpc.service.auth.error"
    );

    let other_org = with_headers(
        topic_req(TOPIC),
        &b.org.token,
        &b.org.base,
        "00D000000000001AAA",
    );
    let s = b.client.get_topic(other_org).await.unwrap_err();
    assert_eq!(s.code(), Code::Unauthenticated);

    // The tenant may be given as core/<subdomain>/<org id 15>.
    let tenant = format!("core/emulator/{}", &b.org_id[..15]);
    let long_form = with_headers(topic_req(TOPIC), &b.org.token, &b.org.base, &tenant);
    b.client.get_topic(long_form).await.unwrap();

    // An expired token is refused on Subscribe too.
    b.org.handle().expire_access_tokens();
    let (_tx, rx) = mpsc::channel::<FetchRequest>(1);
    let s = b
        .client
        .subscribe(b.auth(ReceiverStream::new(rx)))
        .await
        .unwrap_err();
    assert_eq!(s.code(), Code::Unauthenticated);
}

#[tokio::test]
async fn userinfo_names_the_org_and_the_integration_user() {
    let b = bus().await;
    let r = b
        .org
        .http
        .get(format!("{}/services/oauth2/userinfo", b.org.base))
        .bearer_auth(&b.org.token)
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 200);
    let info: Value = r.json().await.unwrap();
    let h = b.org.handle();
    assert_eq!(info["organization_id"], json!(b.org_id));
    assert_eq!(info["user_id"], json!(h.integration_user_id()));
    let user = h.user(&h.integration_user_id()).unwrap();
    assert_eq!(info["preferred_username"], user["Username"]);
    assert!(info["sub"].as_str().unwrap().ends_with(&format!(
        "/id/{}/{}",
        b.org_id,
        h.integration_user_id()
    )));
    let r = b
        .org
        .http
        .get(format!("{}/services/oauth2/userinfo", b.org.base))
        .bearer_auth("00Dnope")
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 403);
    assert_eq!(r.text().await.unwrap(), "Bad_OAuth_Token");
}

#[tokio::test]
async fn get_topic_and_get_schema() {
    let mut b = bus().await;
    let usage = b.org.handle().stats().api_usage;
    let topic = b
        .client
        .get_topic(b.auth(topic_req(TOPIC)))
        .await
        .unwrap()
        .into_inner();
    assert_eq!(topic.topic_name, TOPIC);
    assert_eq!(topic.tenant_guid, b.org_id);
    assert!(topic.can_subscribe && !topic.can_publish);
    assert!(!topic.rpc_id.is_empty());
    assert_eq!(topic.schema_id, b.org.handle().pubsub_schema_id());

    let (schema, json) = b.fetch_schema().await;
    assert_eq!(json["name"], "UserChangeEvent");
    assert_eq!(json["namespace"], "com.sforce.eventbus");
    assert_eq!(json["fields"][0]["name"], "ChangeEventHeader");
    assert!(matches!(schema, Schema::Record(_)));

    let s = b
        .client
        .get_topic(b.auth(topic_req("/data/AccountChangeEvent")))
        .await
        .unwrap_err();
    assert_eq!(s.code(), Code::NotFound);
    assert_eq!(
        error_code(&s),
        "sfdc.platform.eventbus.grpc.topic.not.found"
    );
    let s = b
        .client
        .get_schema(b.auth(SchemaRequest {
            schema_id: "nope".into(),
        }))
        .await
        .unwrap_err();
    assert_eq!(s.code(), Code::NotFound);
    let s = b
        .client
        .get_schema(b.auth(SchemaRequest::default()))
        .await
        .unwrap_err();
    assert_eq!(s.code(), Code::InvalidArgument);
    assert_eq!(
        error_code(&s),
        "sfdc.platform.eventbus.grpc.schema.validation.failed"
    );

    // Counted apart from the REST API usage.
    let stats = b.org.handle().stats();
    assert_eq!(stats.api_usage, usage);
    assert!(stats.pubsub_calls["GetTopic"] >= 3, "{stats:?}");
    assert!(stats.pubsub_calls["GetSchema"] >= 3);
}

#[tokio::test]
async fn rest_and_admin_writes_arrive_as_change_events() {
    let mut b = bus().await;
    let (schema, json) = (b.schema.clone(), b.json.clone());
    let h = b.org.handle();
    // Seeding published nothing: EARLIEST starts with the first write.
    let (_tx, mut stream) = b.subscribe(fetch(ReplayPreset::Earliest, vec![], 10)).await;

    let before = chrono::Utc::now().timestamp_millis();
    let id = b.create_user("pubsub-create@example.com").await;
    let created = events(&mut stream, 1).await;
    let e = decode(&schema, &created[0]);
    assert_eq!(e.text("entityName"), "User");
    assert_eq!(e.strings("recordIds"), vec![id.clone()]);
    assert_eq!(e.text("changeType"), "CREATE");
    assert_eq!(
        e.text("changeOrigin"),
        format!("com/salesforce/api/rest/{};client=idm-sync-test", &V[1..])
    );
    assert_eq!(e.text("commitUser"), h.integration_user_id());
    assert!(!e.text("transactionKey").is_empty());
    assert_eq!(e.long("sequenceNumber"), 1);
    assert!(e.long("commitTimestamp") >= before);
    assert!(e.strings("changedFields").is_empty());
    assert_eq!(
        e.field("Username"),
        Some(&Avro::String("pubsub-create@example.com".into()))
    );
    assert_eq!(e.field("IsActive"), Some(&Avro::Boolean(true)));
    assert!(matches!(e.field("CreatedDate"), Some(Avro::Long(ms)) if *ms >= before - 1000));
    let Some(Avro::Record(name)) = e.field("Name") else {
        panic!("Name is a nested record")
    };
    assert_eq!(
        name.iter().map(|(n, _)| n.as_str()).collect::<Vec<_>>(),
        ["FirstName", "LastName"]
    );
    let first_commit = e.long("commitNumber");

    // A PATCH: only the changed fields, the changed-field bitmap, the nulled ones.
    let r = b
        .org
        .patch(
            &format!("sobjects/User/{id}"),
            &json!({"FirstName": "Tessa", "Title": "Engineer", "CompanyName": null}),
        )
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 204);
    let updated = events(&mut stream, 1).await;
    let e = decode(&schema, &updated[0]);
    assert_eq!(e.text("changeType"), "UPDATE");
    assert_eq!(
        e.text("changeOrigin"),
        format!("com/salesforce/api/rest/{}", &V[1..])
    );
    assert!(e.long("commitNumber") > first_commit);
    assert_eq!(
        bitmap_names(&json, &e.strings("changedFields")),
        [
            "LastModifiedDate",
            "Name.FirstName",
            "SystemModstamp",
            "Title"
        ]
    );
    assert!(
        e.strings("nulledFields").is_empty(),
        "CompanyName was null already"
    );
    assert_eq!(e.field("Title"), Some(&Avro::String("Engineer".into())));
    assert_eq!(e.field("Username"), None, "unchanged fields are null");
    assert!(e.field("LastModifiedDate").is_some());

    // A write that changes nothing publishes nothing; setting a value to null is "nulled".
    b.org
        .patch(
            &format!("sobjects/User/{id}"),
            &json!({"Title": "Engineer"}),
        )
        .send()
        .await
        .unwrap();
    b.org
        .patch(
            &format!("sobjects/User/{id}"),
            &json!({"Title": null, "IsActive": false}),
        )
        .send()
        .await
        .unwrap();
    let e = decode(&schema, &events(&mut stream, 1).await[0]);
    assert_eq!(bitmap_names(&json, &e.strings("nulledFields")), ["Title"]);
    assert_eq!(e.field("IsActive"), Some(&Avro::Boolean(false)));

    // An admin's edit in Salesforce: another commitUser, no API origin.
    h.admin_update_user(&id, &json!({"Department": "Support"}))
        .unwrap();
    let e = decode(&schema, &events(&mut stream, 1).await[0]);
    assert_eq!(e.text("commitUser"), h.admin_user_id());
    assert_ne!(h.admin_user_id(), h.integration_user_id());
    assert_eq!(e.text("changeOrigin"), "");
    assert_eq!(e.field("Department"), Some(&Avro::String("Support".into())));

    // A collections call is one transaction: one key, events numbered from 1.
    let body = json!({"allOrNone": false, "records": [
        {"attributes": {"type": "User"}, "id": id, "Department": "Sales"},
        {"attributes": {"type": "User"}, "id": id, "Department": "Ops"},
    ]});
    let r = b
        .org
        .http
        .patch(b.org.data_url("composite/sobjects"))
        .bearer_auth(&b.org.token)
        .json(&body)
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 200);
    let pair = events(&mut stream, 2).await;
    let (a, c) = (decode(&schema, &pair[0]), decode(&schema, &pair[1]));
    assert_eq!(a.text("transactionKey"), c.text("transactionKey"));
    assert_eq!((a.long("sequenceNumber"), c.long("sequenceNumber")), (1, 2));
    assert_eq!(c.field("Department"), Some(&Avro::String("Ops".into())));
    assert!(pair[0].replay_id < pair[1].replay_id);
}

#[tokio::test]
async fn flow_control_sends_no_more_than_requested() {
    let mut b = bus().await;
    for i in 0..5 {
        b.create_user(&format!("flow-{i}@example.com")).await;
    }
    let (tx, mut stream) = b.subscribe(fetch(ReplayPreset::Earliest, vec![], 2)).await;
    let first = next(&mut stream).await.unwrap();
    assert_eq!(first.events.len(), 2);
    assert_eq!(first.pending_num_requested, 0);
    assert_eq!(
        first.latest_replay_id, first.events[1].replay_id,
        "the position of the last event sent"
    );
    // Nothing more until asked.
    let quiet = tokio::time::timeout(Duration::from_millis(500), stream.message()).await;
    assert!(quiet.is_err(), "sent more than owed: {quiet:?}");
    tx.send(more(3)).await.unwrap();
    let rest = events(&mut stream, 3).await;
    assert!(first.events[1].replay_id < rest[0].replay_id);

    // More than 100 counts as 100; a request for none, or for another topic, ends the stream.
    tx.send(more(0)).await.unwrap();
    ends_with(
        &mut stream,
        Code::InvalidArgument,
        "subscription.fetch.requested.events.invalid",
    )
    .await;
    let (tx, mut stream) = b
        .subscribe(fetch(ReplayPreset::Earliest, vec![], 500))
        .await;
    let all = events(&mut stream, 5).await;
    assert_eq!(all.len(), 5);
    tx.send(FetchRequest {
        topic_name: "/data/ChangeEvents".into(),
        num_requested: 1,
        ..FetchRequest::default()
    })
    .await
    .unwrap();
    ends_with(
        &mut stream,
        Code::InvalidArgument,
        "subscription.fetch.topic.mismatch",
    )
    .await;
}

#[tokio::test]
async fn custom_replay_resumes_after_the_given_event() {
    let mut b = bus().await;
    let schema = b.schema.clone();
    let ids = [
        b.create_user("replay-1@example.com").await,
        b.create_user("replay-2@example.com").await,
        b.create_user("replay-3@example.com").await,
    ];
    let (_tx, mut stream) = b.subscribe(fetch(ReplayPreset::Earliest, vec![], 3)).await;
    let all = events(&mut stream, 3).await;
    let (_tx2, mut resumed) = b
        .subscribe(fetch(ReplayPreset::Custom, all[0].replay_id.clone(), 10))
        .await;
    let after = events(&mut resumed, 2).await;
    let got: Vec<Vec<String>> = after
        .iter()
        .map(|e| decode(&schema, e).strings("recordIds"))
        .collect();
    assert_eq!(got, vec![vec![ids[1].clone()], vec![ids[2].clone()]]);

    // LATEST: only what comes after subscribing (the keepalive shows the stream is open).
    b.org
        .handle()
        .set_pubsub_keepalive(Duration::from_millis(200));
    let (_tx3, mut latest) = b.subscribe(fetch(ReplayPreset::Latest, vec![], 5)).await;
    let keepalive = next(&mut latest).await.unwrap();
    assert!(keepalive.events.is_empty());
    assert_eq!(keepalive.latest_replay_id, all[2].replay_id);
    let id4 = b.create_user("replay-4@example.com").await;
    let e = decode(&schema, &events(&mut latest, 1).await[0]);
    assert_eq!(e.strings("recordIds"), vec![id4]);
}

#[tokio::test]
async fn an_expired_or_invalid_replay_id_is_refused() {
    let mut b = bus().await;
    b.create_user("expire-1@example.com").await;
    let (_tx, mut stream) = b.subscribe(fetch(ReplayPreset::Earliest, vec![], 1)).await;
    let first = events(&mut stream, 1).await;
    b.org.handle().set_pubsub_retention(Duration::ZERO);
    assert_eq!(b.org.handle().pubsub_event_count(), 0);
    let (_tx, mut stream) = b
        .subscribe(fetch(ReplayPreset::Custom, first[0].replay_id.clone(), 1))
        .await;
    ends_with(
        &mut stream,
        Code::InvalidArgument,
        "subscription.fetch.replayid.corrupted",
    )
    .await;
    let (_tx, mut stream) = b
        .subscribe(fetch(ReplayPreset::Custom, b"garbage".to_vec(), 1))
        .await;
    ends_with(
        &mut stream,
        Code::InvalidArgument,
        "subscription.fetch.replayid.corrupted",
    )
    .await;
    let (_tx, mut stream) = b.subscribe(fetch(ReplayPreset::Custom, vec![], 1)).await;
    ends_with(
        &mut stream,
        Code::InvalidArgument,
        "subscription.fetch.replayid.validation.failed",
    )
    .await;
}

#[tokio::test]
async fn gap_and_overflow_events_carry_no_field_data() {
    let mut b = bus().await;
    let schema = b.schema.clone();
    let (_tx, mut stream) = b.subscribe(fetch(ReplayPreset::Earliest, vec![], 10)).await;
    let h = b.org.handle();
    let id = h.integration_user_id();
    h.inject_gap(ChangeType::GapCreate, &[id.as_str()]);
    // And through the admin route, as a benchmark or the demo would.
    b.org
        .admin_faults(json!({
            "pubsubGap": {"changeType": "GAP_UPDATE", "recordIds": [id]},
            "pubsubOverflow": true,
        }))
        .await;
    let got = events(&mut stream, 3).await;
    let kinds: Vec<(String, Vec<String>)> = got
        .iter()
        .map(|e| {
            let d = decode(&schema, e);
            assert!(d.fields.values().all(|v| matches!(v, Avro::Union(0, _))));
            assert!(d.strings("changedFields").is_empty());
            assert_eq!(d.long("sequenceNumber"), 1);
            (d.text("changeType"), d.strings("recordIds"))
        })
        .collect();
    assert_eq!(
        kinds,
        vec![
            ("GAP_CREATE".to_owned(), vec![id.clone()]),
            ("GAP_UPDATE".to_owned(), vec![id.clone()]),
            ("GAP_OVERFLOW".to_owned(), vec![]),
        ]
    );
}

#[tokio::test]
async fn dropped_streams_end_unavailable() {
    let mut b = bus().await;
    let h = b.org.handle();
    h.set_pubsub_keepalive(Duration::from_millis(200));
    let (_tx, mut stream) = b.subscribe(fetch(ReplayPreset::Latest, vec![], 10)).await;
    assert!(next(&mut stream).await.unwrap().events.is_empty());
    h.drop_pubsub_streams(1);
    b.create_user("drop-1@example.com").await;
    b.create_user("drop-2@example.com").await;
    let one = events(&mut stream, 1).await;
    ends_with(&mut stream, Code::Unavailable, "service.unavailable").await;
    // A new stream is not affected, and resumes where the old one stopped.
    let (_tx, mut resumed) = b
        .subscribe(fetch(ReplayPreset::Custom, one[0].replay_id.clone(), 10))
        .await;
    assert_eq!(events(&mut resumed, 1).await.len(), 1);
    b.org.admin_faults(json!({"pubsubDropStreams": 0})).await;
    assert_eq!(ended(&mut resumed).await.code(), Code::Unavailable);

    // Stopping the emulator ends open streams and does not wait for them.
    let (_tx, mut open) = b.subscribe(fetch(ReplayPreset::Latest, vec![], 10)).await;
    assert!(next(&mut open).await.unwrap().events.is_empty());
    tokio::time::timeout(WAIT, b.org.running.stop())
        .await
        .expect("a prompt stop")
        .unwrap();
    ends_with(&mut open, Code::Unavailable, "service.unavailable").await;
}

#[tokio::test]
async fn keepalives_while_owed_and_idle_close_when_not() {
    let mut b = bus().await;
    let h = b.org.handle();
    let faults = b
        .org
        .admin_faults(json!({"pubsubKeepaliveMs": 300, "pubsubIdleTimeoutMs": 300}))
        .await;
    assert_eq!(faults["pubsubKeepaliveMs"], 300);
    let (_tx, mut stream) = b.subscribe(fetch(ReplayPreset::Latest, vec![], 5)).await;
    let started = std::time::Instant::now();
    let k = next(&mut stream).await.unwrap();
    assert!(k.events.is_empty());
    assert_eq!(k.pending_num_requested, 5);
    assert_eq!(k.latest_replay_id.len(), 8);
    assert!(started.elapsed() < Duration::from_secs(3));
    let k2 = next(&mut stream).await.unwrap();
    assert!(k2.events.is_empty(), "keepalives repeat");

    // Owed nothing and asked for nothing: the stream closes.
    h.set_pubsub_keepalive(Duration::from_secs(270));
    b.create_user("idle@example.com").await;
    let (_tx, mut done) = b.subscribe(fetch(ReplayPreset::Earliest, vec![], 1)).await;
    assert_eq!(events(&mut done, 1).await.len(), 1);
    let end = tokio::time::timeout(WAIT, done.message()).await.unwrap();
    assert!(matches!(end, Ok(None)), "{end:?}");
}
