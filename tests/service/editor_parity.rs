//! The agent's `str_replace_editor` beside OpenHands' own (`OHEditor` of `openhands-aci`, in
//! the venv the test command makes: OPENHANDS_ACI_PYTHON): the same call sequences through
//! both, each on an empty directory. After every call both must agree on whether it succeeded
//! and on the file's content; what they say may be worded differently. The differences chosen
//! on purpose are checked as such.

use std::time::Duration;

use openhands::agent::editor::{EditorCall, FileEditor};
use openhands::sandbox::process::ProcessBackend;
use openhands::sandbox::{BackendKind, SandboxBackend, SandboxSettings};
use serde_json::{Value, json};

/// One call, as the model sends it.
fn call(value: Value) -> Value {
    value
}

const TEN: &str =
    "line 1\nline 2\nline 3\nline 4\nline 5\nline 6\nline 7\nline 8\nline 9\nline 10\n";

/// The sequences compared; paths are inside /workspace.
fn sequences() -> Vec<Vec<Value>> {
    let f = "/workspace/f.txt";
    vec![
        // A file with a final newline: views, ranges, inserts, replacements and undo.
        vec![
            call(json!({"command": "create", "path": f, "file_text": TEN})),
            call(json!({"command": "view", "path": f})),
            call(json!({"command": "view", "path": f, "view_range": [8, 20]})),
            call(json!({"command": "view", "path": f, "view_range": [2, -1]})),
            call(json!({"command": "view", "path": f, "view_range": [11, -1]})),
            call(json!({"command": "view", "path": f, "view_range": [0, 3]})),
            call(json!({"command": "view", "path": f, "view_range": [5, 2]})),
            call(json!({"command": "insert", "path": f, "insert_line": 10, "new_str": "eleven"})),
            call(json!({"command": "insert", "path": f, "insert_line": 13, "new_str": "x"})),
            call(json!({"command": "insert", "path": f, "insert_line": 0, "new_str": "zero"})),
            call(json!({"command": "insert", "path": f, "insert_line": -1, "new_str": "x"})),
            call(
                json!({"command": "str_replace", "path": f, "old_str": "line 3\n", "new_str": "LINE 3\n"}),
            ),
            call(
                json!({"command": "str_replace", "path": f, "old_str": "line 4", "new_str": "line 4"}),
            ),
            call(
                json!({"command": "str_replace", "path": f, "old_str": "line 42", "new_str": "x"}),
            ),
            call(json!({"command": "str_replace", "path": f, "old_str": "line", "new_str": "row"})),
            call(
                json!({"command": "str_replace", "path": f, "old_str": "line 5\n", "new_str": ""}),
            ),
            call(json!({"command": "undo_edit", "path": f})),
            call(json!({"command": "undo_edit", "path": f})),
            call(json!({"command": "undo_edit", "path": f})),
            call(json!({"command": "undo_edit", "path": f})),
            call(json!({"command": "undo_edit", "path": f})),
            call(
                json!({"command": "str_replace", "path": f, "old_str": "  line 6  ", "new_str": "  LINE 6  "}),
            ),
            call(
                json!({"command": "str_replace", "path": f, "old_str": "\nline 7\n\n", "new_str": "\nLINE 7\n"}),
            ),
            call(json!({"command": "str_replace", "path": f, "old_str": "   ", "new_str": "x"})),
            call(json!({"command": "undo_edit", "path": f})),
            call(json!({"command": "undo_edit", "path": f})),
            call(json!({"command": "undo_edit", "path": f})),
            call(json!({"command": "undo_edit", "path": "/workspace/missing.txt"})),
        ],
        // A file without a final newline.
        vec![
            call(json!({"command": "create", "path": f, "file_text": "a\nb\nc"})),
            call(json!({"command": "view", "path": f, "view_range": [1, -1]})),
            call(json!({"command": "insert", "path": f, "insert_line": 1, "new_str": "a2\na3"})),
            call(json!({"command": "insert", "path": f, "insert_line": 2, "new_str": "b0"})),
            call(json!({"command": "str_replace", "path": f, "old_str": "b", "new_str": "B"})),
            call(json!({"command": "view", "path": f})),
        ],
        // Mistakes: each refused, nothing changed.
        vec![
            call(json!({"command": "create", "path": f, "file_text": "x\n"})),
            call(json!({"command": "create", "path": f, "file_text": "y\n"})),
            call(json!({"command": "view", "path": "/workspace/none.txt"})),
            call(
                json!({"command": "str_replace", "path": "/workspace/none.txt", "old_str": "a", "new_str": "b"}),
            ),
            call(json!({"command": "insert", "path": f, "insert_line": 1})),
            call(json!({"command": "str_replace", "path": f, "new_str": "b"})),
            call(json!({"command": "create", "path": "/workspace/g.txt"})),
            call(json!({"command": "view", "path": "/workspace", "view_range": [1, 2]})),
            call(json!({"command": "view", "path": "/workspace"})),
        ],
    ]
}

/// What OpenHands' editor did with each call of `calls`.
fn reference(calls: &[Value]) -> Vec<Value> {
    let python = std::env::var("OPENHANDS_ACI_PYTHON").unwrap_or_else(|_| {
        panic!(
            "OPENHANDS_ACI_PYTHON is not set: the test command (./scripts/test) installs openhands-aci into a venv and sets it (scripts/lib/openhands-aci.sh)"
        )
    });
    let root = tempfile::tempdir().unwrap();
    let script = concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/tests/fixtures/editor/oh_editor.py"
    );
    let mut child = std::process::Command::new(python)
        .arg(script)
        .stdin(std::process::Stdio::piped())
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    let request = json!({"root": root.path().to_str().unwrap(), "calls": calls});
    std::io::Write::write_all(
        child.stdin.as_mut().unwrap(),
        request.to_string().as_bytes(),
    )
    .unwrap();
    drop(child.stdin.take());
    let output = child.wait_with_output().unwrap();
    assert!(
        output.status.success(),
        "OpenHands' editor failed: {}",
        String::from_utf8_lossy(&output.stderr)
    );
    serde_json::from_slice(&output.stdout).unwrap()
}

/// What ours did with each call, on the process backend.
async fn ours(calls: &[Value], sequence: usize) -> Vec<Value> {
    let root = tempfile::tempdir().unwrap();
    let backend = ProcessBackend::new(&SandboxSettings {
        sandbox_backend: BackendKind::Process,
        sandbox_allow_unsafe_process: true,
        sandbox_process_root: root.path().to_path_buf(),
        sandbox_no_output_timeout: Duration::from_secs(1),
        ..SandboxSettings::default()
    })
    .unwrap();
    let sandbox = backend.start(&format!("parity-{sequence}")).await.unwrap();
    let mut editor = FileEditor::new();
    let mut results = Vec::new();
    for value in calls {
        let call: EditorCall = serde_json::from_value(value.clone()).unwrap();
        let answer = editor.run(&backend, &sandbox.id, &call).await;
        let content = backend
            .read_file(&sandbox.id, &call.path)
            .await
            .ok()
            .map(|bytes| String::from_utf8_lossy(&bytes).into_owned());
        let (ok, output) = match answer {
            Ok(text) => (true, text),
            Err(error) => (false, error.0),
        };
        results.push(json!({"ok": ok, "output": output, "content": content}));
    }
    results
}

#[tokio::test]
async fn the_editor_does_what_openhands_editor_does() {
    let mut differences = Vec::new();
    let mut compared = 0;
    for (number, calls) in sequences().iter().enumerate() {
        let theirs = reference(calls);
        let mine = ours(calls, number).await;
        for ((call, theirs), mine) in calls.iter().zip(&theirs).zip(&mine) {
            compared += 1;
            // A directory's view has no file content to compare.
            let same_content = call["path"] == "/workspace" || theirs["content"] == mine["content"];
            if theirs["ok"] != mine["ok"] || !same_content {
                differences.push(format!(
                    "{call}\n  theirs: ok={} {:?}\n          content={:?}\n  ours:   ok={} {:?}\n          content={:?}",
                    theirs["ok"], theirs["output"], theirs["content"], mine["ok"], mine["output"], mine["content"]
                ));
            }
        }
    }
    assert!(compared >= 35, "{compared} calls compared");
    assert!(
        differences.is_empty(),
        "{} of {compared} calls differ:\n{}",
        differences.len(),
        differences.join("\n")
    );
}

/// Chosen on purpose: `create` makes missing parent directories, where OpenHands' editor fails.
#[tokio::test]
async fn create_makes_parent_directories_where_openhands_editor_fails() {
    let calls =
        vec![json!({"command": "create", "path": "/workspace/new/dir/x.txt", "file_text": "x\n"})];
    let theirs = reference(&calls);
    let mine = ours(&calls, 99).await;
    assert_eq!(theirs[0]["ok"], false, "{theirs:?}");
    assert_eq!(mine[0]["ok"], true, "{mine:?}");
    assert_eq!(mine[0]["content"], "x\n");
}

/// Chosen on purpose: inserting after the last line of a file without a final newline starts a
/// new line, where OpenHands' editor joins the text to that last line.
#[tokio::test]
async fn an_insert_after_a_last_line_without_newline_starts_a_line() {
    let calls = vec![
        json!({"command": "create", "path": "/workspace/f.txt", "file_text": "a\nb\nc"}),
        json!({"command": "insert", "path": "/workspace/f.txt", "insert_line": 3, "new_str": "d"}),
    ];
    let theirs = reference(&calls);
    let mine = ours(&calls, 98).await;
    assert_eq!(theirs[1]["content"], "a\nb\ncd\n", "{theirs:?}");
    assert_eq!(mine[1]["content"], "a\nb\nc\nd", "{mine:?}");
}
