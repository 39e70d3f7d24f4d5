//! The data layer against a real SQLite file and a real PostgreSQL database.

use crate::on_both_backends;
use crate::support;

use std::collections::BTreeSet;

use openhands::storage::{
    DeliveryStatus, NewConversation, NewDelivery, NewEvent, NewOutboxPost, StorageError,
    own_migrator,
};
use serde_json::json;
use support::TestDb;

on_both_backends! {
    users_have_unique_logins => users_have_unique_logins;
    conversations_belong_to_users_and_are_found_by_external_ref => conversations_by_external_ref;
    event_ids_are_per_conversation_and_gap_free_under_concurrency => gap_free_event_ids;
    a_rolled_back_append_leaves_no_gap => rolled_back_append_leaves_no_gap;
    events_are_append_only => events_are_append_only;
    a_delivery_is_stored_once_per_provider_and_id => deliveries_are_deduplicated;
    outbox_posts_are_stored_once_per_idempotency_key => outbox_is_idempotent;
    migrations_can_run_again => migrations_can_run_again;
    a_failing_migration_leaves_the_database_as_it_was => failing_migration_changes_nothing;
    link_tokens_are_used_once_and_only_before_they_expire => link_tokens_are_used_once;
    a_rename_wins_over_the_models_title => a_rename_wins_over_the_models_title;
    slack_channels_have_one_repository_each => slack_channels_have_one_repository_each;
}

async fn link_tokens_are_used_once(t: &TestDb) {
    use openhands::storage::NewLinkToken;
    let carol = t.db.create_user("carol", None, false).await.unwrap();
    let mut tx = t.db.begin().await.unwrap();
    let ids = tx
        .record_deliveries(&[NewDelivery {
            provider: "slack",
            delivery_id: "Ev-1",
            event: "event_callback:app_mention",
            status: DeliveryStatus::Unauthorized,
            reason: None,
            payload: b"{}",
            request: Some("{}"),
        }])
        .await
        .unwrap();
    let delivery = ids[0].unwrap();
    let offer = |delivery_id, lifetime_ms| NewLinkToken {
        provider: "slack",
        workspace: "T0001",
        external_id: "U0CAROL01",
        account_name: "U0CAROL01",
        delivery_id,
        lifetime_ms,
    };
    tx.create_link_token("hash-1", &offer(Some(delivery), 60_000))
        .await
        .unwrap();
    tx.create_link_token("hash-2", &offer(None, 60_000))
        .await
        .unwrap();
    tx.create_link_token("hash-expired", &offer(Some(delivery), -1))
        .await
        .unwrap();
    tx.commit().await.unwrap();

    let found = t.db.link_token("hash-1").await.unwrap().unwrap();
    assert_eq!(found.external_id, "U0CAROL01");
    assert_eq!(found.delivery_id, Some(delivery));
    assert!(found.used_at.is_none() && found.expires_at > found.created_at);
    assert!(t.db.link_token("unknown").await.unwrap().is_none());

    // Using the account's tokens uses all the valid ones at once; the expired one stays.
    let mut tx = t.db.begin().await.unwrap();
    let held = tx
        .use_link_tokens_of("slack", "T0001", "U0CAROL01", &carol.id)
        .await
        .unwrap();
    assert_eq!(held, vec![delivery]);
    let again = tx
        .use_link_tokens_of("slack", "T0001", "U0CAROL01", &carol.id)
        .await
        .unwrap();
    assert!(again.is_empty());
    tx.commit().await.unwrap();
    for hash in ["hash-1", "hash-2"] {
        let used = t.db.link_token(hash).await.unwrap().unwrap();
        assert_eq!(used.used_by.as_deref(), Some(carol.id.as_str()));
    }
    assert!(
        t.db.link_token("hash-expired")
            .await
            .unwrap()
            .unwrap()
            .used_at
            .is_none()
    );
}

async fn a_rename_wins_over_the_models_title(t: &TestDb) {
    let owner = t.db.create_user("owner", None, false).await.unwrap();
    let new = |title| NewConversation {
        owner_id: &owner.id,
        title,
        trigger_kind: "web",
        title_pending: true,
        ..Default::default()
    };
    let written =
        t.db.create_conversation(&new("fix the parser please"))
            .await
            .unwrap();
    assert!(written.title_pending);
    assert!(
        t.db.set_written_title(&written.id, "Fix the parser")
            .await
            .unwrap()
    );
    let stored = t.db.conversation(&written.id).await.unwrap();
    assert_eq!(stored.title, "Fix the parser");
    assert!(!stored.title_pending);
    // Written once: a second answer does not replace it.
    assert!(!t.db.set_written_title(&written.id, "Other").await.unwrap());

    let renamed = t.db.create_conversation(&new("first line")).await.unwrap();
    t.db.set_conversation_title(&renamed.id, "Mine")
        .await
        .unwrap();
    assert!(
        !t.db
            .set_written_title(&renamed.id, "The model's")
            .await
            .unwrap()
    );
    assert_eq!(t.db.conversation(&renamed.id).await.unwrap().title, "Mine");
}

async fn slack_channels_have_one_repository_each(t: &TestDb) {
    assert!(t.db.channel_repository("C0001").await.unwrap().is_none());
    t.db.set_channel_repository("C0001", "acme/api", "github")
        .await
        .unwrap();
    let set =
        t.db.set_channel_repository("C0001", "platform/infra/deploy", "gitlab")
            .await
            .unwrap();
    assert_eq!(t.db.channel_repository("C0001").await.unwrap(), Some(set));
    assert_eq!(t.db.channel_repositories().await.unwrap().len(), 1);
    assert!(t.db.delete_channel_repository("C0001").await.unwrap());
    assert!(!t.db.delete_channel_repository("C0001").await.unwrap());
}

async fn users_have_unique_logins(t: &TestDb) {
    let alice =
        t.db.create_user("alice", Some("alice@example.com"), true)
            .await
            .unwrap();
    assert_eq!(t.db.user(&alice.id).await.unwrap(), alice);
    assert_eq!(
        t.db.user_by_login("alice").await.unwrap(),
        Some(alice.clone())
    );
    assert!(t.db.user_by_login("bob").await.unwrap().is_none());
    let again = t.db.create_user("alice", None, false).await;
    assert!(matches!(again, Err(StorageError::Conflict(_))), "{again:?}");
    assert!(matches!(
        t.db.user("nobody").await,
        Err(StorageError::NotFound("user"))
    ));
}

async fn conversations_by_external_ref(t: &TestDb) {
    let owner = t.db.create_user("owner", None, false).await.unwrap();
    let new = NewConversation {
        owner_id: &owner.id,
        title: "Fix the flaky test",
        trigger_kind: "github",
        repository: Some("acme/widgets"),
        branch: None,
        git_provider: Some("github"),
        external_ref: Some("acme/widgets#42"),
        trigger_url: Some("https://github.com/acme/widgets/issues/42"),
        title_pending: false,
    };
    let conversation = t.db.create_conversation(&new).await.unwrap();
    assert_eq!(conversation.status, "loading");
    assert_eq!(conversation.last_event_id, 0);
    assert_eq!(
        t.db.conversation(&conversation.id).await.unwrap(),
        conversation
    );
    let found =
        t.db.conversation_by_external_ref("github", "acme/widgets#42")
            .await
            .unwrap();
    assert_eq!(found, Some(conversation.clone()));
    assert!(
        t.db.conversation_by_external_ref("gitlab", "acme/widgets#42")
            .await
            .unwrap()
            .is_none()
    );
    // The same issue cannot start a second conversation: follow-ups continue the first.
    let twice = t.db.create_conversation(&new).await;
    assert!(matches!(twice, Err(StorageError::Conflict(_))), "{twice:?}");

    let web = NewConversation {
        owner_id: &owner.id,
        title: "Another",
        trigger_kind: "web",
        ..Default::default()
    };
    let other = t.db.create_conversation(&web).await.unwrap();
    let listed: Vec<String> =
        t.db.conversations_of(&owner.id, 10)
            .await
            .unwrap()
            .into_iter()
            .map(|c| c.id)
            .collect();
    assert_eq!(listed.len(), 2);
    assert!(listed.contains(&conversation.id) && listed.contains(&other.id));
    let stranger = t.db.create_user("stranger", None, false).await.unwrap();
    assert!(
        t.db.conversations_of(&stranger.id, 10)
            .await
            .unwrap()
            .is_empty()
    );

    let missing = NewConversation {
        owner_id: "no-such-user",
        title: "x",
        trigger_kind: "web",
        ..Default::default()
    };
    assert!(
        t.db.create_conversation(&missing).await.is_err(),
        "a conversation needs an existing owner"
    );
}

async fn gap_free_event_ids(t: &TestDb) {
    let first = web_conversation(t).await;
    let second = web_conversation(t).await;

    const WRITERS: usize = 8;
    const PER_WRITER: usize = 25;
    let mut writers = tokio::task::JoinSet::new();
    for writer in 0..WRITERS {
        let db = t.db.clone();
        let conversation = if writer % 2 == 0 {
            first.id.clone()
        } else {
            second.id.clone()
        };
        writers.spawn(async move {
            for step in 0..PER_WRITER {
                let payload = json!({ "writer": writer, "step": step });
                db.append_event(
                    &conversation,
                    &NewEvent {
                        source: "agent",
                        kind: "message",
                        payload: &payload,
                    },
                )
                .await
                .unwrap();
            }
        });
    }
    while let Some(done) = writers.join_next().await {
        done.unwrap();
    }
    for conversation in [&first, &second] {
        let events = t.db.events_after(&conversation.id, 0, 1000).await.unwrap();
        let ids: Vec<i64> = events.iter().map(|e| e.id).collect();
        let expected: Vec<i64> = (1..=(WRITERS / 2 * PER_WRITER) as i64).collect();
        assert_eq!(
            ids, expected,
            "ids of {} are 1..n in order",
            conversation.id
        );
        // Each writer's events keep that writer's order.
        for writer in 0..WRITERS {
            let steps: Vec<i64> = events
                .iter()
                .map(|e| serde_json::from_str::<serde_json::Value>(&e.payload).unwrap())
                .filter(|p| p["writer"] == writer)
                .map(|p| p["step"].as_i64().unwrap())
                .collect();
            assert!(
                steps.windows(2).all(|w| w[0] < w[1]),
                "writer {writer}: {steps:?}"
            );
        }
        assert_eq!(
            t.db.conversation(&conversation.id)
                .await
                .unwrap()
                .last_event_id,
            ids.len() as i64
        );
    }
    let page = t.db.events_after(&first.id, 10, 5).await.unwrap();
    assert_eq!(
        page.iter().map(|e| e.id).collect::<Vec<_>>(),
        vec![11, 12, 13, 14, 15]
    );
}

async fn rolled_back_append_leaves_no_gap(t: &TestDb) {
    let conversation = web_conversation(t).await;
    let payload = json!({"content": "hello"});
    let event = NewEvent {
        source: "user",
        kind: "message",
        payload: &payload,
    };
    assert_eq!(
        t.db.append_event(&conversation.id, &event).await.unwrap(),
        1
    );
    {
        let mut tx = t.db.begin().await.unwrap();
        assert_eq!(tx.append_event(&conversation.id, &event).await.unwrap(), 2);
        // Dropped without commit: rolled back.
    }
    assert_eq!(
        t.db.append_event(&conversation.id, &event).await.unwrap(),
        2
    );
    let missing = t.db.append_event("no-such-conversation", &event).await;
    assert!(
        matches!(missing, Err(StorageError::NotFound("conversation"))),
        "{missing:?}"
    );
}

async fn events_are_append_only(t: &TestDb) {
    let conversation = web_conversation(t).await;
    let payload = json!({"content": "original"});
    t.db.append_event(
        &conversation.id,
        &NewEvent {
            source: "user",
            kind: "message",
            payload: &payload,
        },
    )
    .await
    .unwrap();
    let rewrite = match &t.db {
        openhands::storage::Db::Postgres(pool) => sqlx::query("UPDATE events SET payload = '{}'")
            .execute(pool)
            .await
            .map(|_| ()),
        openhands::storage::Db::Sqlite(pool) => sqlx::query("UPDATE events SET payload = '{}'")
            .execute(pool)
            .await
            .map(|_| ()),
    };
    let error = rewrite.expect_err("updating an event must fail");
    assert!(error.to_string().contains("append-only"), "{error}");
    let events = t.db.events_after(&conversation.id, 0, 10).await.unwrap();
    assert_eq!(events[0].payload, payload.to_string());
}

async fn deliveries_are_deduplicated(t: &TestDb) {
    let new = NewDelivery {
        provider: "github",
        delivery_id: "72d3162e-cc78-11e3-81ab-4c9367dc0958",
        event: "issue_comment",
        status: DeliveryStatus::Accepted,
        reason: None,
        payload: br#"{"action":"created"}"#,
        request: None,
    };
    let mut tx = t.db.begin().await.unwrap();
    let id = tx
        .record_delivery(&new)
        .await
        .unwrap()
        .expect("first delivery is stored");
    tx.commit().await.unwrap();
    let mut tx = t.db.begin().await.unwrap();
    assert_eq!(
        tx.record_delivery(&new).await.unwrap(),
        None,
        "the same delivery again is a duplicate"
    );
    // The same id from another provider is another delivery.
    let gitlab = NewDelivery {
        provider: "gitlab",
        ..new.clone()
    };
    let gitlab_id = tx.record_delivery(&gitlab).await.unwrap().expect("stored");
    tx.set_delivery_outcome(
        gitlab_id,
        DeliveryStatus::Ignored,
        Some("not a mention"),
        None,
    )
    .await
    .unwrap();
    tx.commit().await.unwrap();

    let stored = t.db.delivery(id).await.unwrap();
    assert_eq!(stored.payload, br#"{"action":"created"}"#);
    assert_eq!(stored.status, "accepted");
    let ignored =
        t.db.deliveries(None, Some(DeliveryStatus::Ignored), None, 10)
            .await
            .unwrap();
    assert_eq!(ignored.len(), 1);
    assert_eq!(ignored[0].reason.as_deref(), Some("not a mention"));
    assert_eq!(
        t.db.deliveries(Some("github"), None, None, 10)
            .await
            .unwrap()
            .len(),
        1
    );
    let newest_first: Vec<i64> =
        t.db.deliveries(None, None, None, 10)
            .await
            .unwrap()
            .iter()
            .map(|d| d.id)
            .collect();
    assert_eq!(newest_first, vec![gitlab_id, id]);
    assert_eq!(
        t.db.deliveries(None, None, Some(gitlab_id), 10)
            .await
            .unwrap()
            .len(),
        1,
        "paging by id"
    );
}

async fn outbox_is_idempotent(t: &TestDb) {
    let target = json!({"repository": "acme/widgets", "issue": 42});
    let body = json!({"text": "On it!"});
    let post = NewOutboxPost {
        conversation_id: None,
        provider: "github",
        kind: "comment",
        target: &target,
        body: &body,
        idempotency_key: "ack:acme/widgets#42",
    };
    let mut tx = t.db.begin().await.unwrap();
    let id = tx.add_outbox_post(&post).await.unwrap().expect("stored");
    assert_eq!(tx.add_outbox_post(&post).await.unwrap(), None);
    tx.commit().await.unwrap();
    assert_eq!(t.db.pending_outbox_posts(10).await.unwrap().len(), 1);
    t.db.record_outbox_attempt(id, Err("502 from provider"), false)
        .await
        .unwrap();
    let retried = t.db.outbox_post(id).await.unwrap();
    assert_eq!((retried.status.as_str(), retried.attempts), ("pending", 1));
    assert_eq!(retried.last_error.as_deref(), Some("502 from provider"));
    t.db.record_outbox_attempt(id, Ok(None), false)
        .await
        .unwrap();
    let sent = t.db.outbox_post(id).await.unwrap();
    assert_eq!(sent.status, "sent");
    assert!(sent.sent_at.is_some());
    assert!(t.db.pending_outbox_posts(10).await.unwrap().is_empty());
}

async fn migrations_can_run_again(t: &TestDb) {
    t.db.migrate().await.unwrap();
    t.db.migrate().await.unwrap();
    t.db.create_user("after-remigration", None, false)
        .await
        .unwrap();
}

async fn failing_migration_changes_nothing(t: &TestDb) {
    use sqlx::migrate::{Migration, MigrationType, Migrator};
    let broken = Migration::new(
        20990101000000,
        "broken".into(),
        MigrationType::Simple,
        sqlx::SqlSafeStr::into_sql_str(
            "CREATE TABLE half_done (id INTEGER); INSERT INTO users (id) VALUES (NULL, NULL, NULL);",
        ),
        false,
    );
    let mut migrator = own_migrator(Migrator::with_migrations(vec![broken]));
    migrator.set_ignore_missing(true);
    let result = t.db.migrate_with(&migrator).await;
    assert!(result.is_err(), "the broken migration fails");
    let tables = table_names(t).await;
    assert!(
        !tables.contains("half_done"),
        "the failed migration's table was rolled back: {tables:?}"
    );
    // The database still works and still migrates.
    t.db.migrate().await.unwrap();
    t.db.create_user("still-works", None, false).await.unwrap();
}

async fn table_names(t: &TestDb) -> BTreeSet<String> {
    let names: Vec<String> = match &t.db {
        openhands::storage::Db::Postgres(pool) => sqlx::query_scalar(
            "SELECT table_name::text FROM information_schema.tables WHERE table_schema = 'public'",
        )
        .fetch_all(pool)
        .await
        .unwrap(),
        openhands::storage::Db::Sqlite(pool) => {
            sqlx::query_scalar("SELECT name FROM sqlite_master WHERE type = 'table'")
                .fetch_all(pool)
                .await
                .unwrap()
        }
    };
    let names: BTreeSet<String> = names.into_iter().collect();
    assert!(
        names.contains("conversations"),
        "sanity: the schema is there: {names:?}"
    );
    names
}

/// A conversation started from the web, owned by a new user.
async fn web_conversation(t: &TestDb) -> openhands::storage::Conversation {
    let owner =
        t.db.create_user(
            &format!("owner-{}", uuid::Uuid::new_v4().simple()),
            None,
            false,
        )
        .await
        .unwrap();
    let new = NewConversation {
        owner_id: &owner.id,
        title: "t",
        trigger_kind: "web",
        ..Default::default()
    };
    t.db.create_conversation(&new).await.unwrap()
}

/// The two schemas are written separately; they must describe the same tables and columns.
#[tokio::test]
async fn postgres_and_sqlite_schemas_have_the_same_tables_and_columns() {
    let sqlite = TestDb::sqlite().await;
    let postgres = TestDb::postgres().await;
    let sqlite_columns = column_names(
        &sqlite,
        "SELECT m.name, p.name FROM sqlite_master m JOIN pragma_table_info(m.name) p \
         WHERE m.type = 'table' AND m.name NOT LIKE 'sqlite_%' AND m.name NOT IN ('Jobs', 'Workers', '_sqlx_migrations')",
    )
    .await;
    let postgres_columns = column_names(
        &postgres,
        "SELECT table_name::text, column_name::text FROM information_schema.columns WHERE table_schema = 'public'",
    )
    .await;
    assert!(
        sqlite_columns.contains(&("events".to_string(), "payload".to_string())),
        "{sqlite_columns:?}"
    );
    assert_eq!(sqlite_columns, postgres_columns);
    let names = |dir: &str| -> Vec<String> {
        let mut names: Vec<String> = std::fs::read_dir(dir)
            .unwrap()
            .map(|e| e.unwrap().file_name().into_string().unwrap())
            .collect();
        names.sort();
        names
    };
    assert_eq!(
        names("migrations/postgres"),
        names("migrations/sqlite"),
        "one migration per change, for each database"
    );
    sqlite.drop_database().await;
    postgres.drop_database().await;
}

/// (table, column) pairs that `sql` lists.
async fn column_names(t: &TestDb, sql: &'static str) -> BTreeSet<(String, String)> {
    let rows: Vec<(String, String)> = match &t.db {
        openhands::storage::Db::Postgres(pool) => {
            sqlx::query_as(sql).fetch_all(pool).await.unwrap()
        }
        openhands::storage::Db::Sqlite(pool) => sqlx::query_as(sql).fetch_all(pool).await.unwrap(),
    };
    rows.into_iter().collect()
}

/// An in-memory database keeps the tables its migrations made: the service runs on it
/// (`DATABASE_URL=sqlite::memory:`) for trials that should leave nothing behind.
#[tokio::test]
async fn an_in_memory_database_keeps_its_migrated_tables() {
    let db = openhands::storage::Db::connect(
        "sqlite::memory:",
        &openhands::storage::ConnectOptions::default(),
    )
    .await
    .unwrap();
    db.migrate().await.unwrap();
    assert!(db.stored_provider_settings().await.unwrap().is_empty());
    let user = db.create_user("ada", None, true).await.unwrap();
    assert_eq!(db.users().await.unwrap(), vec![user]);
}
