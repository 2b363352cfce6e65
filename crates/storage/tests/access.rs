//! Share links and dashboard sessions against real SQLite: links are revoked one by
//! one within their project, a session names its read token (so revoking the token ends
//! it), expires, ends on sign-out, and expired sessions are swept at the next sign-in.
//! Projects' badges are stored with their other settings.

use tally_core::project::{KeyKind, ProjectInput, key_hash, new_key};
use tally_core::share::{ShareLink, new_session, session_hash};
use tally_storage::AdminStore;
use tally_storage::access::AccessStore;
use tally_storage::sqlite::{SqliteStore, block_on};

const NOW: i64 = 1_736_467_200_000;
const HOUR: i64 = 3_600_000;

fn store_with(slugs: &[&str]) -> SqliteStore {
    let store = SqliteStore::open_in_memory().unwrap();
    for slug in slugs {
        let project = ProjectInput {
            slug: Some((*slug).into()),
            ..ProjectInput::default()
        }
        .create(NOW)
        .unwrap();
        assert!(block_on(store.create_project(&project)).unwrap());
    }
    store
}

fn link(project: &str, id: &str, created_at: i64) -> ShareLink {
    ShareLink {
        id: id.into(),
        project: project.into(),
        created_at,
        expires_at: created_at + 24 * HOUR,
        revoked_at: None,
    }
}

#[test]
fn share_links_are_listed_and_revoked_one_by_one_within_their_project() {
    let store = store_with(&["one", "two"]);
    let (a, b) = (
        link("one", "sh_000000000000000a", NOW),
        link("one", "sh_000000000000000b", NOW + 1),
    );
    assert!(block_on(store.create_share_link(&a)).unwrap());
    assert!(block_on(store.create_share_link(&b)).unwrap());
    assert!(
        !block_on(store.create_share_link(&link("ghost", "sh_000000000000000c", NOW))).unwrap(),
        "no project, no link"
    );
    assert_eq!(
        block_on(store.share_links("one")).unwrap(),
        [b.clone(), a.clone()]
    );
    assert_eq!(block_on(store.share_links("two")).unwrap(), []);

    // Another project cannot see or revoke the link.
    assert_eq!(block_on(store.share_link("two", &a.id)).unwrap(), None);
    assert_eq!(
        block_on(store.revoke_share_link("two", &a.id, NOW)).unwrap(),
        None
    );
    assert_eq!(
        block_on(store.share_link("one", &a.id)).unwrap(),
        Some(a.clone())
    );

    let revoked = block_on(store.revoke_share_link("one", &a.id, NOW + 5))
        .unwrap()
        .unwrap();
    assert_eq!(revoked.revoked_at, Some(NOW + 5));
    let again = block_on(store.revoke_share_link("one", &a.id, NOW + 9))
        .unwrap()
        .unwrap();
    assert_eq!(
        again.revoked_at,
        Some(NOW + 5),
        "the first revocation stands"
    );
    assert_eq!(
        block_on(store.share_link("one", &b.id)).unwrap(),
        Some(b),
        "the other link still works"
    );
    assert_eq!(
        block_on(store.revoke_share_link("one", "sh_ffffffffffffffff", NOW)).unwrap(),
        None
    );
}

#[test]
fn sessions_name_their_read_token_and_end_by_sign_out_expiry_or_revocation() {
    let store = store_with(&["one", "two"]);
    let token = new_key(KeyKind::Read, &[3; 20]);
    let key = block_on(store.create_key("one", KeyKind::Read, &token, None, NOW))
        .unwrap()
        .unwrap();
    let id = new_session(&[1; 32]);
    let hash = session_hash(&id);
    block_on(store.open_session(&hash, key.id, NOW, NOW + HOUR)).unwrap();

    let (found, project) = block_on(store.session(&hash, NOW + 1)).unwrap().unwrap();
    assert_eq!((found.id, project.slug.as_str()), (key.id, "one"));
    assert_eq!(
        block_on(store.session(&session_hash(&new_session(&[2; 32])), NOW)).unwrap(),
        None,
        "an unknown id opens nothing"
    );
    assert_eq!(
        block_on(store.session(&key_hash(&token.secret), NOW)).unwrap(),
        None,
        "nor does the read token itself"
    );
    assert_eq!(
        block_on(store.session(&hash, NOW + HOUR)).unwrap(),
        None,
        "expired at its end"
    );

    // Revoking the read token shows in the session (the caller refuses it by name).
    block_on(store.revoke_key("one", key.id, NOW + 2)).unwrap();
    let (revoked, _) = block_on(store.session(&hash, NOW + 3)).unwrap().unwrap();
    assert_eq!(revoked.revoked_at, Some(NOW + 2));

    // Signing out ends it.
    block_on(store.close_session(&hash)).unwrap();
    assert_eq!(block_on(store.session(&hash, NOW + 4)).unwrap(), None);
    block_on(store.close_session(&hash)).unwrap();

    // A sign-in sweeps the sessions that expired.
    let old = session_hash(&new_session(&[4; 32]));
    block_on(store.open_session(&old, key.id, NOW, NOW + HOUR)).unwrap();
    let fresh = session_hash(&new_session(&[5; 32]));
    block_on(store.open_session(&fresh, key.id, NOW + 2 * HOUR, NOW + 3 * HOUR)).unwrap();
    let rows = store.with_connection(|c| {
        c.query_row("SELECT COUNT(*) FROM dashboard_sessions", [], |r| {
            r.get::<_, i64>(0)
        })
        .unwrap()
    });
    assert_eq!(rows, 1, "the expired session was deleted");
    assert!(
        block_on(store.session(&fresh, NOW + 2 * HOUR))
            .unwrap()
            .is_some()
    );
}

#[test]
fn badges_are_stored_with_the_other_settings() {
    let store = store_with(&["one"]);
    let project = block_on(store.project("one")).unwrap().unwrap();
    assert!(!project.public_badges, "off by default");
    let opened = ProjectInput {
        public_badges: Some(true),
        ..ProjectInput::default()
    }
    .apply(project)
    .unwrap();
    assert!(block_on(store.update_project(&opened)).unwrap());
    let stored = block_on(store.project("one")).unwrap().unwrap();
    assert!(stored.public_badges);
    assert!(!stored.public_dashboard);
    let token = new_key(KeyKind::Read, &[6; 20]);
    block_on(store.create_key("one", KeyKind::Read, &token, None, NOW)).unwrap();
    let (_, by_key) = block_on(store.key_by_hash(&key_hash(&token.secret)))
        .unwrap()
        .unwrap();
    assert!(by_key.public_badges);
}
