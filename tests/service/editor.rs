//! `str_replace_editor` on a real Docker sandbox and on the process backend.

use crate::support;

use std::time::Duration;

use openhands::agent::editor::{EditorCall, FileEditor};
use openhands::sandbox::process::ProcessBackend;
use openhands::sandbox::{BackendKind, SandboxBackend, SandboxSettings};

fn call(command: &str, path: &str) -> EditorCall {
    EditorCall {
        command: command.into(),
        path: path.into(),
        ..EditorCall::default()
    }
}

#[tokio::test]
async fn the_editor_on_a_docker_sandbox() {
    let settings = support::sandbox::settings();
    let _cleanup = support::sandbox::OwnerCleanup(settings.owner());
    let backend = openhands::sandbox::docker::DockerBackend::connect(&settings)
        .await
        .unwrap();
    let sandbox = backend.start("conv-editor").await.unwrap();
    scenario(backend.as_ref(), &sandbox.id).await;
}

#[tokio::test]
async fn the_editor_on_the_process_backend() {
    let root = tempfile::tempdir().unwrap();
    let backend = ProcessBackend::new(&SandboxSettings {
        sandbox_backend: BackendKind::Process,
        sandbox_allow_unsafe_process: true,
        sandbox_process_root: root.path().to_path_buf(),
        sandbox_no_output_timeout: Duration::from_secs(1),
        ..SandboxSettings::default()
    })
    .unwrap();
    let sandbox = backend.start("conv-editor").await.unwrap();
    scenario(&backend, &sandbox.id).await;
}

async fn scenario(backend: &dyn SandboxBackend, id: &str) {
    let mut editor = FileEditor::new();
    let path = "/workspace/app.py";

    let created = editor
        .run(
            backend,
            id,
            &EditorCall {
                file_text: Some("def greet():\n    return 'hi'\n\nprint(greet())\n".into()),
                ..call("create", path)
            },
        )
        .await
        .unwrap();
    assert_eq!(created, "File created successfully at: /workspace/app.py");
    let again = editor
        .run(
            backend,
            id,
            &EditorCall {
                file_text: Some("x".into()),
                ..call("create", path)
            },
        )
        .await
        .unwrap_err();
    assert!(again.0.contains("File already exists"), "{again}");

    let viewed = editor.run(backend, id, &call("view", path)).await.unwrap();
    assert!(
        viewed.contains("     1\tdef greet():\n     2\t    return 'hi'"),
        "{viewed}"
    );
    let ranged = editor
        .run(
            backend,
            id,
            &EditorCall {
                view_range: Some(vec![4, -1]),
                ..call("view", path)
            },
        )
        .await
        .unwrap();
    assert!(
        ranged.contains("     4\tprint(greet())") && !ranged.contains("def greet"),
        "{ranged}"
    );
    let bad_range = editor
        .run(
            backend,
            id,
            &EditorCall {
                view_range: Some(vec![9, 2]),
                ..call("view", path)
            },
        )
        .await
        .unwrap_err();
    assert!(bad_range.0.contains("Invalid `view_range`"), "{bad_range}");
    // As OpenHands' editor: a range past the end shows what there is, with a note, and the
    // empty line after the final newline is not one of the file's lines.
    let past_end = editor
        .run(
            backend,
            id,
            &EditorCall {
                view_range: Some(vec![3, 20]),
                ..call("view", path)
            },
        )
        .await
        .unwrap();
    assert!(
        past_end.starts_with("NOTE: The file has 4 lines, so this shows lines 3 to 4.")
            && past_end.contains("     4\tprint(greet())")
            && !past_end.contains("     5\t"),
        "{past_end}"
    );
    let beyond = editor
        .run(
            backend,
            id,
            &EditorCall {
                view_range: Some(vec![5, -1]),
                ..call("view", path)
            },
        )
        .await
        .unwrap_err();
    assert!(beyond.0.contains("[1, 4]"), "{beyond}");
    // Replacing a text with itself is refused, and changes nothing.
    let same = editor
        .run(
            backend,
            id,
            &EditorCall {
                old_str: Some("return 'hi'".into()),
                new_str: Some("return 'hi'".into()),
                ..call("str_replace", path)
            },
        )
        .await
        .unwrap_err();
    assert!(
        same.0.contains("`new_str` is the same as `old_str`"),
        "{same}"
    );
    assert!(
        editor.take_saved().is_none(),
        "no undo point for a refused edit"
    );

    let replaced = editor
        .run(
            backend,
            id,
            &EditorCall {
                old_str: Some("return 'hi'".into()),
                new_str: Some("return 'hello'".into()),
                ..call("str_replace", path)
            },
        )
        .await
        .unwrap();
    assert!(
        replaced.contains("     2\t    return 'hello'"),
        "{replaced}"
    );
    let missing = editor
        .run(
            backend,
            id,
            &EditorCall {
                old_str: Some("return 'bye'".into()),
                new_str: Some("x".into()),
                ..call("str_replace", path)
            },
        )
        .await
        .unwrap_err();
    assert!(missing.0.contains("did not appear verbatim"), "{missing}");
    let twice = editor
        .run(
            backend,
            id,
            &EditorCall {
                old_str: Some("greet".into()),
                new_str: Some("x".into()),
                ..call("str_replace", path)
            },
        )
        .await
        .unwrap_err();
    assert!(
        twice.0.contains("Multiple occurrences") && twice.0.contains("[1, 4]"),
        "{twice}"
    );

    editor
        .run(
            backend,
            id,
            &EditorCall {
                insert_line: Some(0),
                new_str: Some("import sys".into()),
                ..call("insert", path)
            },
        )
        .await
        .unwrap();
    let content = String::from_utf8(backend.read_file(id, path).await.unwrap()).unwrap();
    assert_eq!(
        content,
        "import sys\ndef greet():\n    return 'hello'\n\nprint(greet())\n"
    );

    editor
        .run(backend, id, &call("undo_edit", path))
        .await
        .unwrap();
    editor
        .run(backend, id, &call("undo_edit", path))
        .await
        .unwrap();
    let content = String::from_utf8(backend.read_file(id, path).await.unwrap()).unwrap();
    assert_eq!(content, "def greet():\n    return 'hi'\n\nprint(greet())\n");
    // As in OpenHands' editor, the created file is a point to come back to once more; then the
    // history is empty.
    editor
        .run(backend, id, &call("undo_edit", path))
        .await
        .unwrap();
    let content = String::from_utf8(backend.read_file(id, path).await.unwrap()).unwrap();
    assert_eq!(content, "def greet():\n    return 'hi'\n\nprint(greet())\n");
    let nothing = editor
        .run(backend, id, &call("undo_edit", path))
        .await
        .unwrap_err();
    assert!(nothing.0.contains("No edit history"), "{nothing}");
    let nowhere = editor
        .run(backend, id, &call("undo_edit", "/workspace/never.py"))
        .await
        .unwrap_err();
    assert!(nowhere.0.contains("does not exist"), "{nowhere}");

    backend
        .write_file(id, "/workspace/pkg/mod.py", b"x = 1\n")
        .await
        .unwrap();
    backend
        .write_file(id, "/workspace/.env", b"A=1\n")
        .await
        .unwrap();
    let listing = editor
        .run(backend, id, &call("view", "/workspace"))
        .await
        .unwrap();
    assert!(listing.contains("\n/workspace/app.py\n"), "{listing}");
    assert!(
        listing.contains("\n/workspace/\n") && listing.contains("\n/workspace/pkg/\n"),
        "directories end in `/`: {listing}"
    );
    assert!(listing.contains("/workspace/pkg/mod.py"), "{listing}");
    assert!(!listing.contains(".env\n"), "{listing}");
    assert!(
        listing.contains("1 hidden files/directories in this directory are excluded"),
        "{listing}"
    );
    let relative = editor
        .run(backend, id, &call("view", "app.py"))
        .await
        .unwrap_err();
    assert!(relative.0.contains("not an absolute path"), "{relative}");
    let absent = editor
        .run(backend, id, &call("view", "/workspace/none.py"))
        .await
        .unwrap_err();
    assert!(absent.0.contains("does not exist"), "{absent}");
    let unknown = editor
        .run(backend, id, &call("delete", path))
        .await
        .unwrap_err();
    assert!(unknown.0.contains("Unrecognized command"), "{unknown}");
}
