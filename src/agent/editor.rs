//! `str_replace_editor`, compatible with OpenHands CodeAct: view, create, str_replace, insert and
//! undo_edit on files inside the sandbox. Every failure is an observation the model can act on
//! (`EditorError`), never a fault of the run.

use std::collections::{HashMap, VecDeque};

use serde::Deserialize;

use crate::sandbox::{FileKind, SandboxBackend, SandboxError};

/// Results longer than this are clipped, with a note.
pub const MAX_RESULT_CHARS: usize = 16_000;
/// Versions kept per file for `undo_edit`.
const UNDO_DEPTH: usize = 5;
/// Lines of context shown around an edit.
const SNIPPET_CONTEXT: usize = 4;

/// The tool's parameters, as the model sends them.
#[derive(Debug, Clone, Default, Deserialize)]
pub struct EditorCall {
    pub command: String,
    pub path: String,
    #[serde(default)]
    pub file_text: Option<String>,
    #[serde(default)]
    pub old_str: Option<String>,
    #[serde(default)]
    pub new_str: Option<String>,
    #[serde(default)]
    pub insert_line: Option<i64>,
    #[serde(default)]
    pub view_range: Option<Vec<i64>>,
}

/// A message for the model saying what was wrong with its call.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{0}")]
pub struct EditorError(pub String);

fn fail<T>(message: impl Into<String>) -> Result<T, EditorError> {
    Err(EditorError(message.into()))
}

/// The editor of one conversation: the sandbox it edits and the undo history of each file.
#[derive(Debug, Default)]
pub struct FileEditor {
    history: HashMap<String, VecDeque<String>>,
    /// The version saved for undo by the last call, if it saved one.
    saved: Option<String>,
}

impl FileEditor {
    pub fn new() -> Self {
        FileEditor::default()
    }

    pub async fn run(
        &mut self,
        sandbox: &dyn SandboxBackend,
        sandbox_id: &str,
        call: &EditorCall,
    ) -> Result<String, EditorError> {
        self.saved = None;
        if !call.path.starts_with('/') {
            return fail(format!(
                "The path {} is not an absolute path, it should start with `/`. Maybe you meant /workspace/{}?",
                call.path,
                call.path.trim_start_matches("./")
            ));
        }
        let result = match call.command.as_str() {
            "view" => self.view(sandbox, sandbox_id, call).await,
            "create" => self.create(sandbox, sandbox_id, call).await,
            "str_replace" => self.str_replace(sandbox, sandbox_id, call).await,
            "insert" => self.insert(sandbox, sandbox_id, call).await,
            "undo_edit" => self.undo(sandbox, sandbox_id, call).await,
            other => fail(format!(
                "Unrecognized command {other}. The allowed commands for the str_replace_editor tool are: view, create, str_replace, insert, undo_edit"
            )),
        }?;
        Ok(clip(result))
    }

    async fn read(
        sandbox: &dyn SandboxBackend,
        sandbox_id: &str,
        path: &str,
    ) -> Result<String, EditorError> {
        let bytes = sandbox
            .read_file(sandbox_id, path)
            .await
            .map_err(|e| sandbox_error(path, e))?;
        utf8_text(path, bytes)
    }

    async fn write(
        sandbox: &dyn SandboxBackend,
        sandbox_id: &str,
        path: &str,
        text: &str,
    ) -> Result<(), EditorError> {
        sandbox
            .write_file(sandbox_id, path, text.as_bytes())
            .await
            .map_err(|e| sandbox_error(path, e))
    }

    /// Writes `text` as the whole file, created or replaced (a user's `write`); the replaced
    /// version is kept for `undo_edit`.
    pub async fn overwrite(
        &mut self,
        sandbox: &dyn SandboxBackend,
        sandbox_id: &str,
        path: &str,
        text: &str,
    ) -> Result<String, EditorError> {
        self.saved = None;
        let previous = match sandbox.read_file(sandbox_id, path).await {
            Ok(bytes) => String::from_utf8(bytes).ok(),
            Err(SandboxError::FileNotFound(_)) => None,
            Err(error) => return Err(sandbox_error(path, error)),
        };
        Self::write(sandbox, sandbox_id, path, text).await?;
        if let Some(previous) = previous {
            self.remember(path, previous);
        }
        Ok(format!(
            "The file {path} was written ({} bytes).",
            text.len()
        ))
    }

    /// The version the last call saved for `undo_edit`: recorded with the edit, so that the
    /// history can be rebuilt with [`FileEditor::replay`] after a restart.
    pub fn take_saved(&mut self) -> Option<String> {
        self.saved.take()
    }

    /// Rebuilds the undo history from a recorded call: `saved` is what it saved (edits), and an
    /// `undo_edit` drops the newest version.
    pub fn replay(&mut self, command: &str, path: &str, saved: Option<String>) {
        match (command, saved) {
            ("undo_edit", _) => {
                if let Some(versions) = self.history.get_mut(path) {
                    versions.pop_back();
                }
            }
            (_, Some(previous)) => self.remember(path, previous),
            _ => {}
        }
    }

    fn remember(&mut self, path: &str, previous: String) {
        self.saved = Some(previous.clone());
        let versions = self.history.entry(path.to_string()).or_default();
        versions.push_back(previous);
        while versions.len() > UNDO_DEPTH {
            versions.pop_front();
        }
    }

    async fn view(
        &mut self,
        sandbox: &dyn SandboxBackend,
        sandbox_id: &str,
        call: &EditorCall,
    ) -> Result<String, EditorError> {
        let path = &call.path;
        // A file is the common case: read it; only a directory is listed.
        let text = match sandbox.read_file(sandbox_id, path).await {
            Ok(bytes) => utf8_text(path, bytes)?,
            Err(SandboxError::BadPath(_)) => {
                return Self::view_directory(sandbox, sandbox_id, call).await;
            }
            Err(error) => return Err(sandbox_error(path, error)),
        };
        let lines: Vec<&str> = text.split('\n').collect();
        let count = lines.len();
        // A range counts the file's lines without the empty one after a final newline, as
        // OpenHands' editor does.
        let last = if text.ends_with('\n') && count > 1 {
            count - 1
        } else {
            count
        };
        let mut note = String::new();
        let (start, end) = match call.view_range.as_deref() {
            None => (1, count),
            Some([start, end]) => {
                let start = *start;
                let end = if *end == -1 { last as i64 } else { *end };
                if start < 1 || start as usize > last {
                    return fail(format!(
                        "Invalid `view_range`: {:?}. Its first element `{start}` should be within the range of lines of the file: [1, {last}]",
                        call.view_range.as_deref().unwrap_or_default()
                    ));
                }
                if end < start {
                    return fail(format!(
                        "Invalid `view_range`: [{start}, {end}]. Its second element should be -1 or not less than its first, {start}"
                    ));
                }
                // A range that reaches past the end shows what there is, and says so.
                if end as usize > last {
                    note = format!(
                        "NOTE: The file has {last} lines, so this shows lines {start} to {last}.\n"
                    );
                }
                (start as usize, (end as usize).min(last))
            }
            Some(_) => return fail("Invalid `view_range`. It should be a list of two integers."),
        };
        Ok(format!(
            "{note}Here's the result of running `cat -n` on {path}:\n{}\n",
            numbered(&lines[start - 1..end], start)
        ))
    }

    async fn view_directory(
        sandbox: &dyn SandboxBackend,
        sandbox_id: &str,
        call: &EditorCall,
    ) -> Result<String, EditorError> {
        let path = &call.path;
        let entries = sandbox
            .list_files(sandbox_id, path)
            .await
            .map_err(|e| sandbox_error(path, e))?;
        if call.view_range.is_some() {
            return fail(
                "The `view_range` parameter is not allowed when `path` points to a directory.",
            );
        }
        let hidden = |p: &str| p.rsplit('/').next().is_some_and(|n| n.starts_with('.'));
        // Directories end in `/`, as OpenHands' editor lists them.
        let named = |p: &str, kind: FileKind| {
            if kind == FileKind::Directory {
                format!("{}/", p.trim_end_matches('/'))
            } else {
                p.to_string()
            }
        };
        let mut shown = vec![named(path, FileKind::Directory)];
        for entry in entries.iter().filter(|e| !hidden(&e.path)) {
            shown.push(named(&entry.path, entry.kind));
            if entry.kind == FileKind::Directory
                && let Ok(children) = sandbox.list_files(sandbox_id, &entry.path).await
            {
                shown.extend(
                    children
                        .into_iter()
                        .filter(|c| !hidden(&c.path))
                        .map(|c| named(&c.path, c.kind)),
                );
            }
        }
        shown.sort_unstable();
        let hidden_here = entries.iter().filter(|e| hidden(&e.path)).count();
        let note = if hidden_here > 0 {
            format!(
                "\n{hidden_here} hidden files/directories in this directory are excluded. You can use 'ls -la {path}' to see them."
            )
        } else {
            String::new()
        };
        Ok(format!(
            "Here's the files and directories up to 2 levels deep in {path}, excluding hidden items:\n{}\n{note}",
            shown.join("\n")
        ))
    }

    async fn create(
        &mut self,
        sandbox: &dyn SandboxBackend,
        sandbox_id: &str,
        call: &EditorCall,
    ) -> Result<String, EditorError> {
        let Some(text) = &call.file_text else {
            return fail("Parameter `file_text` is required for command: create.");
        };
        match sandbox.read_file(sandbox_id, &call.path).await {
            Err(SandboxError::FileNotFound(_)) => {}
            Ok(_) | Err(SandboxError::BadPath(_)) => {
                return fail(format!(
                    "File already exists at: {}. Cannot overwrite files using command `create`.",
                    call.path
                ));
            }
            Err(error) => return Err(sandbox_error(&call.path, error)),
        }
        Self::write(sandbox, sandbox_id, &call.path, text).await?;
        // As in OpenHands' editor, a created file is a point `undo_edit` comes back to.
        self.remember(&call.path, text.clone());
        Ok(format!("File created successfully at: {}", call.path))
    }

    async fn str_replace(
        &mut self,
        sandbox: &dyn SandboxBackend,
        sandbox_id: &str,
        call: &EditorCall,
    ) -> Result<String, EditorError> {
        let Some(old) = call.old_str.as_deref() else {
            return fail("Parameter `old_str` is required for command: str_replace.");
        };
        if old.is_empty() {
            return fail("Parameter `old_str` must not be empty.");
        }
        let new = call.new_str.as_deref().unwrap_or_default();
        if new == old {
            return fail(
                "No replacement was performed: `new_str` is the same as `old_str`. Give the text that should replace it.",
            );
        }
        let path = &call.path;
        let text = Self::read(sandbox, sandbox_id, path).await?;
        let mut starts: Vec<usize> = text.match_indices(old).map(|(at, _)| at).collect();
        // As OpenHands' editor does: what does not appear verbatim is looked for again without
        // the whitespace around it, and then replaced by `new_str` without its own.
        let (mut old, mut new) = (old, new);
        if starts.is_empty() && !old.trim().is_empty() && old.trim() != old {
            (old, new) = (old.trim(), new.trim());
            starts = text.match_indices(old).map(|(at, _)| at).collect();
        }
        match starts.as_slice() {
            [] => fail(format!(
                "No replacement was performed, old_str `{old}` did not appear verbatim in {path}."
            )),
            [at] => {
                let at = *at;
                let updated = format!("{}{new}{}", &text[..at], &text[at + old.len()..]);
                Self::write(sandbox, sandbox_id, path, &updated).await?;
                self.remember(path, text.clone());
                let first_line = text[..at].matches('\n').count() + 1;
                let changed_lines = new.matches('\n').count() + 1;
                Ok(format!(
                    "The file {path} has been edited. Here's the result of running `cat -n` on a snippet of {path}:\n{}\nReview the changes and make sure they are as expected. Edit the file again if necessary.",
                    snippet(&updated, first_line, changed_lines)
                ))
            }
            many => {
                let lines: Vec<usize> = many
                    .iter()
                    .map(|at| text[..*at].matches('\n').count() + 1)
                    .collect();
                fail(format!(
                    "No replacement was performed. Multiple occurrences of old_str `{old}` in lines {lines:?}. Please ensure it is unique."
                ))
            }
        }
    }

    async fn insert(
        &mut self,
        sandbox: &dyn SandboxBackend,
        sandbox_id: &str,
        call: &EditorCall,
    ) -> Result<String, EditorError> {
        let Some(line) = call.insert_line else {
            return fail("Parameter `insert_line` is required for command: insert.");
        };
        let Some(new) = call.new_str.as_deref() else {
            return fail("Parameter `new_str` is required for command: insert.");
        };
        let path = &call.path;
        let text = Self::read(sandbox, sandbox_id, path).await?;
        let mut lines: Vec<&str> = text.split('\n').collect();
        if line < 0 || line as usize > lines.len() {
            return fail(format!(
                "Invalid `insert_line` parameter: {line}. It should be within the range of lines of the file: [0, {}]",
                lines.len()
            ));
        }
        let at = line as usize;
        let inserted: Vec<&str> = new.split('\n').collect();
        let count = inserted.len();
        lines.splice(at..at, inserted);
        let updated = lines.join("\n");
        Self::write(sandbox, sandbox_id, path, &updated).await?;
        self.remember(path, text);
        Ok(format!(
            "The file {path} has been edited. Here's the result of running `cat -n` on a snippet of the edited file:\n{}\nReview the changes and make sure they are as expected (correct indentation, no duplicate lines, etc). Edit the file again if necessary.",
            snippet(&updated, at + 1, count)
        ))
    }

    async fn undo(
        &mut self,
        sandbox: &dyn SandboxBackend,
        sandbox_id: &str,
        call: &EditorCall,
    ) -> Result<String, EditorError> {
        let path = &call.path;
        let Some(previous) = self.history.get_mut(path).and_then(VecDeque::pop_back) else {
            // A path that is not there is the mistake to name, not the missing history.
            return match sandbox.read_file(sandbox_id, path).await {
                Err(SandboxError::FileNotFound(_)) => fail(format!(
                    "Invalid `path` parameter: {path} does not exist. Give the path of an existing file."
                )),
                _ => fail(format!("No edit history found for {path}.")),
            };
        };
        Self::write(sandbox, sandbox_id, path, &previous).await?;
        let lines: Vec<&str> = previous.split('\n').collect();
        Ok(format!(
            "Last edit to {path} undone successfully. Here's the result of running `cat -n` on {path}:\n{}\n",
            numbered(&lines, 1)
        ))
    }
}

fn utf8_text(path: &str, bytes: Vec<u8>) -> Result<String, EditorError> {
    String::from_utf8(bytes).map_err(|_| {
        EditorError(format!(
            "The file {path} is not UTF-8 text; the editor only edits text files."
        ))
    })
}

fn sandbox_error(path: &str, error: SandboxError) -> EditorError {
    match error {
        SandboxError::FileNotFound(_) => EditorError(format!(
            "The path {path} does not exist. Please provide a valid path."
        )),
        other => EditorError(other.to_string()),
    }
}

/// `cat -n` style: the number right-aligned in 6 columns, a tab, the line.
fn numbered(lines: &[&str], first: usize) -> String {
    lines
        .iter()
        .enumerate()
        .map(|(i, line)| format!("{:>6}\t{line}", first + i))
        .collect::<Vec<_>>()
        .join("\n")
}

/// The changed lines of `text` with a few lines around them, numbered.
fn snippet(text: &str, first_changed: usize, changed: usize) -> String {
    let lines: Vec<&str> = text.split('\n').collect();
    let start = first_changed.saturating_sub(SNIPPET_CONTEXT).max(1);
    let end = (first_changed + changed - 1 + SNIPPET_CONTEXT).min(lines.len());
    numbered(&lines[start - 1..end.max(start - 1)], start)
}

fn clip(text: String) -> String {
    if text.chars().count() <= MAX_RESULT_CHARS {
        return text;
    }
    let kept: String = text.chars().take(MAX_RESULT_CHARS).collect();
    format!(
        "{kept}\n<response clipped><NOTE>To save on context only part of this file has been shown to you. Use `view_range` or `grep -n` to find what you are looking for.</NOTE>"
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn numbering_and_snippets() {
        assert_eq!(numbered(&["a", "b"], 9), "     9\ta\n    10\tb");
        let text = (1..=20)
            .map(|n| n.to_string())
            .collect::<Vec<_>>()
            .join("\n");
        let shown = snippet(&text, 10, 1);
        assert!(shown.starts_with("     6\t6"));
        assert!(shown.ends_with("    14\t14"));
    }

    #[test]
    fn long_results_are_clipped() {
        let clipped = clip("x".repeat(MAX_RESULT_CHARS + 10));
        assert!(clipped.contains("<response clipped>"));
    }
}
