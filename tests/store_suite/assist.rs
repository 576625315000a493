//! The admin desk's writes: takeover state and the help flag.

use chatbox::store::{AssistingAdmin, Store};

use super::say;

pub fn set_assist_marks_and_clears_the_admin(store: &dyn Store) {
    let admin = AssistingAdmin {
        id: "adm-1".into(),
        name: "Ada".into(),
    };
    assert!(!store.set_assist("missing", Some(&admin), 2_000).unwrap());
    assert_eq!(store.session("missing").unwrap(), None);
    let fresh = say(store, "s1", "alice", "hi", 1_000);
    assert!(!fresh.admin_assisted && fresh.assisting_admin.is_none());

    assert!(store.set_assist("s1", Some(&admin), 2_000).unwrap());
    let taken = store.session("s1").unwrap().unwrap();
    assert!(taken.admin_assisted);
    assert_eq!(taken.assisting_admin, Some(admin));
    assert_eq!(taken.modified_at, 2_000);
    assert_eq!(taken.last_activity, 1_000, "not a message");

    assert!(store.set_assist("s1", None, 3_000).unwrap());
    let released = store.session("s1").unwrap().unwrap();
    assert!(released.admin_assisted, "ever assisted stays true");
    assert_eq!(released.assisting_admin, None);
    assert_eq!(released.modified_at, 3_000);
    // Releasing a session nobody assisted does not make it "assisted".
    say(store, "s2", "alice", "hi", 1_000);
    assert!(store.set_assist("s2", None, 3_000).unwrap());
    assert!(!store.session("s2").unwrap().unwrap().admin_assisted);
}

pub fn set_help_requested_flags_the_session(store: &dyn Store) {
    assert!(!store.set_help_requested("missing", 2_000).unwrap());
    assert_eq!(store.session("missing").unwrap(), None);
    assert!(!say(store, "s1", "alice", "hi", 1_000).help_requested);
    assert!(store.set_help_requested("s1", 2_000).unwrap());
    let flagged = store.session("s1").unwrap().unwrap();
    assert!(flagged.help_requested);
    assert_eq!(flagged.modified_at, 2_000);
    assert!(
        store.set_help_requested("s1", 3_000).unwrap(),
        "asking again is fine"
    );
    assert!(store.session("s1").unwrap().unwrap().help_requested);
}
