//! `_queryFilter` → SQL against real Postgres: every filter selects exactly the expected ids,
//! `Filter::matches` agrees with Postgres on every object, and indexed fields use their index.

use std::collections::BTreeSet;

use idm_sync::filter::{self, Filter, Pointer};
use idm_sync::repo::filter_sql::{push_filter, push_json_field};
use serde_json::{Value, json};
use sqlx::{PgPool, Postgres, QueryBuilder, Row};

use crate::helpers::TestDb;

/// Objects covering strings, numbers, booleans, arrays, nested objects, missing and null fields,
/// quotes, backslashes, `%` and `_`, non-ASCII text and field names that are not identifiers.
fn fixtures() -> Vec<(&'static str, Value)> {
    vec![
        (
            "u1",
            json!({"userName": "bjensen", "mail": "bjensen@example.com", "givenName": "Barbara",
                   "sn": "Jensen", "age": 42, "score": 3.5, "active": true,
                   "roles": ["admin", "user"], "name": {"givenName": "Barbara", "family": "Jensen"}}),
        ),
        (
            "u2",
            json!({"userName": "jdoe", "mail": "jdoe@example.com", "givenName": "John", "sn": "Doe",
                   "age": 7, "active": false, "name": {"givenName": "John"}}),
        ),
        (
            "u3",
            json!({"userName": "100%_sure", "description": "50% off_sale", "age": 42.0}),
        ),
        (
            "u4",
            json!({"userName": "o'neil", "mail": null, "description": "say \"hi\"", "age": -3}),
        ),
        (
            "u5",
            json!({"userName": "back\\slash", "description": "a\\b"}),
        ),
        (
            "u6",
            json!({"userName": "élodie", "givenName": "Élodie", "sn": "Ünïcödé 😀"}),
        ),
        (
            "u7",
            json!({"userName": "num", "age": "42", "active": "true"}),
        ),
        (
            "u8",
            json!({"userName": "big", "age": 18_446_744_073_709_551_615_u64, "score": 0.1}),
        ),
        (
            "u9",
            json!({"userName": "nested", "name": {"givenName": "Nora", "a/b": {"c~d": "deep"}},
                   "emails": [{"value": "n@x"}, {"value": "m@x"}]}),
        ),
        (
            "u10",
            json!({"userName": "empty", "mail": "", "description": ""}),
        ),
        ("u11", json!({"userName": "Zed", "tags": []})),
        (
            "u12",
            json!({"userName": "weird keys", "odd-key": "v", "1st": "first", "o'k": "quote key"}),
        ),
    ]
}

const ALL: &[&str] = &[
    "u1", "u2", "u3", "u4", "u5", "u6", "u7", "u8", "u9", "u10", "u11", "u12",
];

async fn insert_fixtures(pool: &PgPool) {
    for (id, body) in fixtures() {
        sqlx::query(
            "INSERT INTO managed_objects (object_type, id, rev, body) \
             VALUES ('user', $1, nextval('managed_object_rev_seq'), $2)",
        )
        .bind(id)
        .bind(body)
        .execute(pool)
        .await
        .unwrap();
    }
    // Another object type must never leak into a 'user' query.
    sqlx::query(
        "INSERT INTO managed_objects (object_type, id, rev, body) \
         VALUES ('role', 'u1', nextval('managed_object_rev_seq'), '{\"userName\": \"bjensen\"}')",
    )
    .execute(pool)
    .await
    .unwrap();
}

/// The users as IDM shows them: the body plus `_id` and `_rev` (a string).
async fn load_users(pool: &PgPool) -> Vec<(String, Value)> {
    let rows = sqlx::query("SELECT id, rev, body FROM managed_objects WHERE object_type = 'user'")
        .fetch_all(pool)
        .await
        .unwrap();
    rows.into_iter()
        .map(|row| {
            let id: String = row.get("id");
            let rev: i64 = row.get("rev");
            let mut body: Value = row.get("body");
            let object = body.as_object_mut().unwrap();
            object.insert("_id".into(), json!(id));
            object.insert("_rev".into(), json!(rev.to_string()));
            (id, body)
        })
        .collect()
}

async fn sql_ids(pool: &PgPool, filter: &Filter) -> BTreeSet<String> {
    let mut qb = QueryBuilder::<Postgres>::new(
        "SELECT id FROM managed_objects WHERE object_type = 'user' AND (",
    );
    push_filter(&mut qb, filter);
    qb.push(")");
    qb.build_query_scalar::<String>()
        .fetch_all(pool)
        .await
        .unwrap_or_else(|e| panic!("{filter}: {e}\nSQL: {}", qb.sql().as_str()))
        .into_iter()
        .collect()
}

fn memory_ids(users: &[(String, Value)], filter: &Filter) -> BTreeSet<String> {
    users
        .iter()
        .filter(|(_, object)| filter.matches(object))
        .map(|(id, _)| id.clone())
        .collect()
}

fn ids(list: &[&str]) -> BTreeSet<String> {
    list.iter().map(|s| s.to_string()).collect()
}

fn all_but(excluded: &[&str]) -> Vec<&'static str> {
    ALL.iter()
        .copied()
        .filter(|id| !excluded.contains(id))
        .collect()
}

/// Runs each filter in Postgres and in memory; both must give exactly the expected ids.
async fn check(pool: &PgPool, users: &[(String, Value)], cases: &[(String, Vec<&str>)]) {
    let mut failures = Vec::new();
    for (text, expected) in cases {
        let filter = filter::parse(text).unwrap_or_else(|e| panic!("{text}: {e}"));
        let expected = ids(expected);
        let from_sql = sql_ids(pool, &filter).await;
        let from_memory = memory_ids(users, &filter);
        if from_sql != expected || from_memory != expected {
            failures.push(format!(
                "{text}\n  expected {expected:?}\n  sql      {from_sql:?}\n  memory   {from_memory:?}"
            ));
        }
    }
    assert!(failures.is_empty(), "{}", failures.join("\n"));
}

#[tokio::test]
async fn filters_select_the_same_objects_in_sql_and_in_memory() {
    let db = TestDb::new().await;
    insert_fixtures(&db.pool).await;
    let users = load_users(&db.pool).await;
    let rev_of_u2 = users
        .iter()
        .find(|(id, _)| id == "u2")
        .map(|(_, o)| o["_rev"].as_str().unwrap().to_owned())
        .unwrap();

    let mut cases: Vec<(String, Vec<&str>)> = [
        // Strings: exact, case-sensitive, typed.
        (r#"userName eq "bjensen""#, vec!["u1"]),
        (r#"/userName eq "BJENSEN""#, vec![]),
        (r#"mail eq "jdoe@example.com""#, vec!["u2"]),
        (r#"USERNAME EQ "bjensen""#, vec![]),
        (r#"userName EQ "bjensen""#, vec!["u1"]),
        (r#"userName eq "\u00e9lodie""#, vec!["u6"]),
        (r#"givenName sw "É""#, vec!["u6"]),
        (r#"sn co "😀""#, vec!["u6"]),
        (r#"age eq "42""#, vec!["u7"]),
        (r#"active eq "true""#, vec!["u7"]),
        // LIKE metacharacters are plain characters.
        (r#"userName co "%""#, vec!["u3"]),
        (r#"userName co "_""#, vec!["u3"]),
        (r#"description co "%""#, vec!["u3"]),
        (r#"description co "% off_""#, vec!["u3"]),
        (r#"userName sw "100%""#, vec!["u3"]),
        (r#"userName sw "%""#, vec![]),
        (r#"userName sw "_""#, vec![]),
        (r#"description co "\\""#, vec!["u5"]),
        (r#"userName eq "back\\slash""#, vec!["u5"]),
        // Quotes.
        (r#"userName co "'""#, vec!["u4"]),
        (r#"userName eq "o'neil""#, vec!["u4"]),
        (r"userName eq 'o\'neil'", vec!["u4"]),
        (r#"description eq "say \"hi\"""#, vec!["u4"]),
        (r#"description eq 'say "hi"'"#, vec!["u4"]),
        // Empty strings.
        (r#"mail eq """#, vec!["u10"]),
        (r#"description co """#, vec!["u3", "u4", "u5", "u10"]),
        // Ordering on strings: code point order ('Z' < 'a' < 'é').
        (
            r#"userName gt "a" and userName lt "c""#,
            vec!["u1", "u5", "u8"],
        ),
        (r#"userName lt "a""#, vec!["u3", "u11"]),
        (r#"userName gt "z""#, vec!["u6"]),
        (r#"userName ge "weird keys""#, vec!["u6", "u12"]),
        (r#"userName le "Zed""#, vec!["u3", "u11"]),
        // Numbers: numeric, exact, typed.
        ("age eq 42", vec!["u1", "u3"]),
        ("age eq 42.0", vec!["u1", "u3"]),
        ("age eq 4.2e1", vec!["u1", "u3"]),
        ("age gt 10", vec!["u1", "u3", "u8"]),
        ("age lt 0", vec!["u4"]),
        ("age le -3", vec!["u4"]),
        ("age ge 42 and age le 42", vec!["u1", "u3"]),
        ("age gt 18446744073709551614", vec!["u8"]),
        ("age eq 18446744073709551615", vec!["u8"]),
        ("score eq 0.1", vec!["u8"]),
        ("score gt 0.1", vec!["u1"]),
        ("score gt 1", vec!["u1"]),
        ("age co 4", vec![]),
        ("age sw 4", vec![]),
        ("userName eq 42", vec![]),
        // Booleans.
        ("active eq true", vec!["u1"]),
        ("active eq false", vec!["u2"]),
        ("active gt false", vec![]),
        ("active co true", vec![]),
        // Presence: null and missing are absent.
        ("mail pr", vec!["u1", "u2", "u10"]),
        ("age pr", vec!["u1", "u2", "u3", "u4", "u7", "u8"]),
        ("roles pr", vec!["u1"]),
        ("tags pr", vec!["u11"]),
        // Nested objects, escaped pointers, array elements.
        (r#"/name/givenName eq "Barbara""#, vec!["u1"]),
        (r#"name/givenName sw "N""#, vec!["u9"]),
        ("/name/givenName pr", vec!["u1", "u2", "u9"]),
        (r#"/name/a~1b/c~0d eq "deep""#, vec!["u9"]),
        (r#"/emails/1/value eq "m@x""#, vec!["u9"]),
        (r#"/emails/-1/value eq "m@x""#, vec!["u9"]),
        (r#"/emails/0/value co "@""#, vec!["u9"]),
        ("/emails/2/value pr", vec![]),
        (r#"/roles/0 eq "admin""#, vec!["u1"]),
        (r#"/userName/0 pr"#, vec![]),
        // Arrays have scalar semantics (documented): eq does not look inside.
        (r#"roles eq "admin""#, vec![]),
        // Top-level names that are not identifiers are bound, and still work.
        (r#"/odd-key eq "v""#, vec!["u12"]),
        ("/1st pr", vec!["u12"]),
        (r#"/o'k eq "quote key""#, vec!["u12"]),
        // _id and _rev.
        (r#"_id eq "u3""#, vec!["u3"]),
        (r#"/_id sw "u1""#, vec!["u1", "u10", "u11", "u12"]),
        ("_id pr", ALL.to_vec()),
        ("_id eq 3", vec![]),
        (r#"_rev eq "abc""#, vec![]),
        // Logic and precedence.
        ("true", ALL.to_vec()),
        ("false", vec![]),
        ("!true", vec![]),
        (
            r#"userName eq "bjensen" or userName eq "jdoe" and active eq true"#,
            vec!["u1"],
        ),
        (
            r#"(userName eq "bjensen" or userName eq "jdoe") and active eq false"#,
            vec!["u2"],
        ),
        // NOT is two-valued: missing and null fields are "not equal".
        (r#"!(mail eq "jdoe@example.com")"#, all_but(&["u2"])),
        (r#"not mail eq "x""#, ALL.to_vec()),
        ("!(mail pr)", all_but(&["u1", "u2", "u10"])),
        ("!!(mail pr)", vec!["u1", "u2", "u10"]),
        ("!(age gt 10 or !(mail pr))", vec!["u2", "u10"]),
        (
            "!(age gt 10) and !(age lt 10)",
            all_but(&["u1", "u2", "u3", "u4", "u8"]),
        ),
        (r#"!(/name/givenName eq "John")"#, all_but(&["u2"])),
        ("!(active eq true)", all_but(&["u1"])),
        ("!(age co 4)", ALL.to_vec()),
        // Hostile input is data: it matches nothing and drops nothing.
        (r#"userName eq "'; drop table managed_objects; --""#, vec![]),
        (r#"userName eq "x\" or true""#, vec![]),
        (r#"userName co "' OR '1'='1""#, vec![]),
        (r#"userName sw "\\'; select pg_sleep(10); --""#, vec![]),
        ("/x';drop/**/table/**/managed_objects;-- eq 1", vec![]),
        ("/a'b pr", vec![]),
        (r#"/name/givenName'::text[];--'1'='1 eq "x""#, vec![]),
    ]
    .into_iter()
    .map(|(text, expected)| (text.to_owned(), expected))
    .collect();
    cases.push((format!(r#"_rev eq "{rev_of_u2}""#), vec!["u2"]));
    cases.push((format!("_rev eq {rev_of_u2}"), vec![]));

    check(&db.pool, &users, &cases).await;

    let count: i64 = sqlx::query_scalar("SELECT count(*) FROM managed_objects")
        .fetch_one(&db.pool)
        .await
        .unwrap();
    assert_eq!(count, 13, "the table is intact");
}

/// Random combinations (with `and`, `or`, `!`) of assorted comparisons: Postgres and
/// `Filter::matches` must agree on every one, including where NULLs meet NOT.
/// Property: on random objects and random filters, Postgres and `Filter::matches` select the
/// same objects, and the compiled SQL never fails. proptest shrinks a disagreement to a small
/// filter and a few objects.
#[test]
fn random_filters_over_random_objects_agree_in_sql_and_in_memory() {
    use proptest::test_runner::{Config, TestCaseError, TestRunner};

    let rt = tokio::runtime::Runtime::new().unwrap();
    let db = rt.block_on(TestDb::new());
    // Random objects may share a userName: this database checks filters, not uniqueness.
    rt.block_on(sqlx::query("DROP INDEX managed_objects_user_name").execute(&db.pool))
        .unwrap();
    let mut runner = TestRunner::new(Config {
        cases: 200,
        failure_persistence: None,
        ..Config::default()
    });
    let strategy = (
        proptest::collection::vec(props::object(), 1..8),
        proptest::collection::vec(props::filter(), 1..6),
    );
    let result = runner.run(&strategy, |(objects, filters)| {
        rt.block_on(async {
            sqlx::query("DELETE FROM managed_objects")
                .execute(&db.pool)
                .await
                .unwrap();
            for (i, body) in objects.iter().enumerate() {
                sqlx::query(
                    "INSERT INTO managed_objects (object_type, id, rev, body) \
                     VALUES ('user', $1, nextval('managed_object_rev_seq'), $2)",
                )
                .bind(format!("p{i}"))
                .bind(body)
                .execute(&db.pool)
                .await
                .unwrap();
            }
            let users = load_users(&db.pool).await;
            for filter in &filters {
                let (from_sql, from_memory) =
                    (sql_ids(&db.pool, filter).await, memory_ids(&users, filter));
                if from_sql != from_memory {
                    return Err(TestCaseError::fail(format!(
                        "{filter}\n  sql {from_sql:?}\n  mem {from_memory:?}\n  objects {objects:?}"
                    )));
                }
            }
            Ok(())
        })
    });
    if let Err(e) = result {
        panic!("{e}");
    }
}

/// Property: a random filter, as text, over the REST API answers 200 (or 400 for what the
/// parser refuses), never 500; the answer lists what the in-memory evaluator selects.
#[tokio::test]
async fn random_filters_over_rest_never_answer_500() {
    use proptest::strategy::{Strategy, ValueTree};
    use proptest::test_runner::{Config, TestRunner};

    let app = crate::helpers::TestApp::spawn().await;
    insert_fixtures(&app.db.pool).await;
    let users = load_users(&app.db.pool).await;
    let mut runner = TestRunner::new(Config::default());
    for _ in 0..150 {
        let filter = props::filter().new_tree(&mut runner).unwrap().current();
        let text = filter.to_string();
        let res = app
            .get("/managed/user")
            .query(&[("_queryFilter", text.as_str()), ("_fields", "_id")])
            .send()
            .await
            .unwrap();
        let status = res.status().as_u16();
        let body: Value = res.json().await.unwrap();
        assert_eq!(status, 200, "{text}: {body}");
        let listed: BTreeSet<String> = body["result"]
            .as_array()
            .unwrap()
            .iter()
            .map(|u| u["_id"].as_str().unwrap().to_owned())
            .collect();
        assert_eq!(listed, memory_ids(&users, &filter), "{text}");
    }
}

/// proptest strategies for filters and the objects they run over: a small vocabulary, so
/// comparisons hit as often as they miss, with the values where SQL and JSON differ most.
mod props {
    use idm_sync::filter::{CompareOp, Filter, Literal, Pointer};
    use proptest::prelude::*;
    use serde_json::{Map, Number, Value};

    const FIELDS: &[&str] = &[
        "userName",
        "sn",
        "age",
        "active",
        "name/givenName",
        "name",
        "roles",
        "roles/0",
        "_id",
        "missing",
    ];
    const TEXTS: &[&str] = &[
        "",
        "a",
        "ab",
        "b",
        "A",
        "é",
        "Ünï 😀",
        "%",
        "_",
        "a%b",
        "'",
        "\"",
        "\\",
        "10",
        "true",
        "p1",
    ];
    const NUMBERS: &[&str] = &[
        "0",
        "1",
        "-1",
        "1.0",
        "1.5",
        "42",
        "1e3",
        "0.1",
        "18446744073709551615",
    ];

    fn number(text: &str) -> Number {
        serde_json::from_str(text).unwrap()
    }

    fn leaf() -> impl Strategy<Value = Value> {
        prop_oneof![
            Just(Value::Null),
            any::<bool>().prop_map(Value::Bool),
            proptest::sample::select(NUMBERS).prop_map(|n| Value::Number(number(n))),
            proptest::sample::select(TEXTS).prop_map(Value::from),
        ]
    }

    fn value() -> impl Strategy<Value = Value> {
        leaf().prop_recursive(2, 8, 3, |inner| {
            prop_oneof![
                proptest::collection::vec(inner.clone(), 0..3).prop_map(Value::Array),
                proptest::collection::vec(
                    (
                        proptest::sample::select(&["givenName", "sn", "x"][..]),
                        inner
                    ),
                    0..3
                )
                .prop_map(|pairs| Value::Object(
                    pairs.into_iter().map(|(k, v)| (k.to_owned(), v)).collect()
                )),
            ]
        })
    }

    pub fn object() -> impl Strategy<Value = Value> {
        proptest::collection::vec(
            (
                proptest::sample::select(&["userName", "sn", "age", "active", "name", "roles"][..]),
                value(),
            ),
            0..6,
        )
        .prop_map(|pairs| {
            let map: Map<String, Value> =
                pairs.into_iter().map(|(k, v)| (k.to_owned(), v)).collect();
            Value::Object(map)
        })
    }

    fn literal() -> impl Strategy<Value = Literal> {
        prop_oneof![
            proptest::sample::select(TEXTS).prop_map(|t| Literal::String(t.to_owned())),
            proptest::sample::select(NUMBERS).prop_map(|n| Literal::Number(number(n))),
            any::<bool>().prop_map(Literal::Bool),
        ]
    }

    fn op() -> impl Strategy<Value = CompareOp> {
        proptest::sample::select(vec![
            CompareOp::Eq,
            CompareOp::Co,
            CompareOp::Sw,
            CompareOp::Lt,
            CompareOp::Le,
            CompareOp::Gt,
            CompareOp::Ge,
        ])
    }

    fn pointer() -> impl Strategy<Value = Pointer> {
        proptest::sample::select(FIELDS).prop_map(|f| Pointer::parse(f).unwrap())
    }

    pub fn filter() -> impl Strategy<Value = Filter> {
        let leaf = prop_oneof![
            Just(Filter::True),
            Just(Filter::False),
            pointer().prop_map(Filter::Present),
            (pointer(), op(), literal()).prop_map(|(field, op, value)| Filter::Compare {
                field,
                op,
                value
            }),
        ];
        leaf.prop_recursive(3, 12, 3, |inner| {
            prop_oneof![
                inner.clone().prop_map(|f| Filter::Not(Box::new(f))),
                proptest::collection::vec(inner.clone(), 2..4).prop_map(Filter::And),
                proptest::collection::vec(inner, 2..4).prop_map(Filter::Or),
            ]
        })
    }
}

#[tokio::test]
async fn json_fields_order_results() {
    let db = TestDb::new().await;
    insert_fixtures(&db.pool).await;

    let ordered = |field: &str| {
        let mut qb = QueryBuilder::<Postgres>::new(
            "SELECT id FROM managed_objects WHERE object_type = 'user' AND ",
        );
        let field = Pointer::parse(field).unwrap();
        qb.push("(");
        push_filter(&mut qb, &Filter::Present(field.clone()));
        qb.push(") ORDER BY ");
        push_json_field(&mut qb, &field);
        qb.push(", id");
        qb
    };
    let run = async |mut qb: QueryBuilder<Postgres>| -> Vec<String> {
        qb.build_query_scalar::<String>()
            .fetch_all(&db.pool)
            .await
            .unwrap()
    };
    // jsonb orders strings before numbers, numbers numerically.
    assert_eq!(
        run(ordered("/age")).await,
        ["u7", "u4", "u2", "u1", "u3", "u8"]
    );
    assert_eq!(run(ordered("/name/givenName")).await, ["u1", "u2", "u9"]);
    assert_eq!(run(ordered("_id")).await.len(), ALL.len());
    // Revisions come from one sequence: insertion order.
    assert_eq!(
        run(ordered("/_rev")).await.first().map(String::as_str),
        Some("u1")
    );
}

/// The plan of `filter` on the 'user' objects, as text.
async fn plan(conn: &mut sqlx::PgConnection, filter: &str) -> String {
    let filter = filter::parse(filter).unwrap();
    let mut qb = QueryBuilder::<Postgres>::new(
        "EXPLAIN SELECT id, rev, body FROM managed_objects WHERE object_type = 'user' AND (",
    );
    push_filter(&mut qb, &filter);
    qb.push(")");
    let lines: Vec<String> = qb.build_query_scalar().fetch_all(&mut *conn).await.unwrap();
    lines.join("\n")
}

#[tokio::test]
async fn indexed_fields_use_their_index() {
    let db = TestDb::new().await;
    sqlx::query(
        "INSERT INTO managed_objects (object_type, id, rev, body) \
         SELECT 'user', 'g' || i, nextval('managed_object_rev_seq'), \
                jsonb_build_object('userName', 'user' || i, 'mail', 'user' || i || '@example.com', \
                                   'sn', 'Surname' || (i % 100), 'age', i % 90) \
         FROM generate_series(1, 20000) AS i",
    )
    .execute(&db.pool)
    .await
    .unwrap();
    sqlx::query("ANALYZE managed_objects")
        .execute(&db.pool)
        .await
        .unwrap();

    let mut conn = db.pool.acquire().await.unwrap();
    // Custom plans (values known) and generic plans (what a cached prepared statement gets
    // after a few runs) must both use the index.
    for mode in ["force_custom_plan", "force_generic_plan"] {
        sqlx::query(sqlx::AssertSqlSafe(format!("SET plan_cache_mode = {mode}")))
            .execute(&mut *conn)
            .await
            .unwrap();
        for (filter, index) in [
            (r#"/userName eq "user123""#, "managed_objects_user_name"),
            (
                r#"userName eq "user123" and age gt 3"#,
                "managed_objects_user_name",
            ),
            (r#"/mail eq "user123@example.com""#, "managed_objects_mail"),
            (r#"_id eq "g123""#, "managed_objects_pkey"),
        ] {
            let plan = plan(&mut conn, filter).await;
            assert!(
                plan.contains(index),
                "{mode}: {filter} should use {index}:\n{plan}"
            );
            assert!(
                !plan.contains("Seq Scan"),
                "{mode}: {filter} scans the table:\n{plan}"
            );
        }
    }
    // And the answers are right at that size.
    let filter = filter::parse(r#"userName eq "user123" or mail eq "user7@example.com""#).unwrap();
    assert_eq!(sql_ids(&db.pool, &filter).await, ids(&["g123", "g7"]));
}
