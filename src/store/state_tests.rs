//! Unit tests of `state.rs`.

use super::*;

fn temp_dir(tag: &str) -> PathBuf {
    let dir = std::env::temp_dir().join(format!("aegis-state-{tag}-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    dir
}

#[test]
fn a_change_is_on_disk_when_update_returns_and_a_refused_change_changes_nothing() {
    let dir = temp_dir("update");
    let mut store = StateStore::open(&dir).unwrap();
    store
        .update(|s| {
            s.workspaces.insert(
                "ws-1".into(),
                Workspace {
                    active: true,
                    policy: None,
                    identity: None,
                },
            );
            Ok::<_, Error>(())
        })
        .unwrap();
    assert!(StateStore::open(&dir).unwrap().state().workspaces["ws-1"].active);
    let refused: Result<(), Error> = store.update(|s| {
        s.workspaces.clear();
        Err(Error::UnknownTool("refused".into()))
    });
    assert!(refused.is_err());
    assert_eq!(store.state().workspaces.len(), 1);
    assert_eq!(StateStore::open(&dir).unwrap().state().workspaces.len(), 1);
    let _ = std::fs::remove_dir_all(&dir);
}

#[test]
fn a_corrupt_file_names_itself_and_the_last_good_backup() {
    let dir = temp_dir("corrupt");
    let mut store = StateStore::open(&dir).unwrap();
    for id in ["a", "b"] {
        store
            .update(|s| {
                s.workspaces.insert(id.into(), Workspace::default());
                Ok::<_, Error>(())
            })
            .unwrap();
    }
    std::fs::write(dir.join(FILE), b"{\"version\": 1, \"workspa").unwrap();
    let err = StateStore::open(&dir).unwrap_err().to_string();
    assert!(
        err.contains("state.json is corrupt") && err.contains("state.json.bak"),
        "{err}"
    );
    let backup: State = serde_json::from_slice(&std::fs::read(dir.join(BACKUP)).unwrap()).unwrap();
    assert!(backup.workspaces.contains_key("a"));
    let _ = std::fs::remove_dir_all(&dir);
}

#[test]
fn a_write_keeps_the_last_good_file_as_backup_never_a_corrupt_one() {
    use std::os::unix::fs::PermissionsExt;
    let dir = temp_dir("backup");
    let file = StateFile::new(&dir).unwrap();
    let with = |id: &str| {
        let mut state = State::default();
        state.workspaces.insert(id.into(), Workspace::default());
        state
    };
    let read = |name: &str| -> State {
        serde_json::from_slice(&std::fs::read(dir.join(name)).unwrap()).unwrap()
    };
    for id in ["a", "b"] {
        file.write(&file.lock().unwrap(), &with(id)).unwrap();
    }
    assert!(read(BACKUP).workspaces.contains_key("a"));
    assert!(read(FILE).workspaces.contains_key("b"));
    // A file that does not parse is not a good one: the backup stays the last good file.
    std::fs::write(dir.join(FILE), b"{\"version\": 2, \"workspa").unwrap();
    file.write(&file.lock().unwrap(), &with("c")).unwrap();
    assert!(read(BACKUP).workspaces.contains_key("a"));
    assert!(read(FILE).workspaces.contains_key("c"));
    file.write(&file.lock().unwrap(), &with("d")).unwrap();
    assert!(read(BACKUP).workspaces.contains_key("c"));
    // Read good, then replaced behind the gate's back by a corrupt file: still checked.
    assert!(file.read().unwrap().unwrap().workspaces.contains_key("d"));
    std::fs::write(dir.join("other"), b"not json").unwrap();
    std::fs::rename(dir.join("other"), dir.join(FILE)).unwrap();
    file.write(&file.lock().unwrap(), &with("e")).unwrap();
    assert!(read(BACKUP).workspaces.contains_key("c"));
    // Read good and left alone: kept as backup (without being read again).
    assert!(file.read().unwrap().unwrap().workspaces.contains_key("e"));
    file.write(&file.lock().unwrap(), &with("f")).unwrap();
    assert!(read(BACKUP).workspaces.contains_key("e"));
    for name in [FILE, BACKUP] {
        let mode = std::fs::metadata(dir.join(name))
            .unwrap()
            .permissions()
            .mode();
        assert_eq!(mode & 0o777, 0o600, "{name}");
    }
    let _ = std::fs::remove_dir_all(&dir);
}
