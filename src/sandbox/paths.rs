//! Paths inside a sandbox. Every path the agent gives is checked here once: absolute, no `..`,
//! no NUL, so it can only ever name something inside the sandbox's own filesystem.

use super::{SandboxError, SandboxResult};

/// The normalised absolute form of `path` (`//` and `.` removed), or why it is refused.
pub fn sandbox_path(path: &str) -> SandboxResult<String> {
    if path.contains('\0') {
        return Err(SandboxError::BadPath(
            "a path must not contain NUL characters".into(),
        ));
    }
    if !path.starts_with('/') {
        return Err(SandboxError::BadPath(format!(
            "`{path}` is not an absolute path; give the full path, e.g. /workspace/{}",
            path.trim_start_matches("./")
        )));
    }
    let mut parts = Vec::new();
    for part in path.split('/') {
        match part {
            "" | "." => {}
            ".." => {
                return Err(SandboxError::BadPath(format!(
                    "`{path}` contains `..`; give the path without it"
                )));
            }
            other => parts.push(other),
        }
    }
    Ok(format!("/{}", parts.join("/")))
}

/// The parent directory and the file name of a normalised path; `None` for `/`.
pub fn split(path: &str) -> Option<(&str, &str)> {
    let index = path.rfind('/')?;
    let name = &path[index + 1..];
    if name.is_empty() {
        return None;
    }
    let parent = if index == 0 { "/" } else { &path[..index] };
    Some((parent, name))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn normalises_and_refuses() {
        assert_eq!(sandbox_path("/workspace//a/./b").unwrap(), "/workspace/a/b");
        assert_eq!(sandbox_path("/").unwrap(), "/");
        assert!(sandbox_path("workspace/a").is_err());
        assert!(sandbox_path("/workspace/../etc/passwd").is_err());
        assert!(sandbox_path("/a\0b").is_err());
    }

    #[test]
    fn splits() {
        assert_eq!(split("/workspace/a.txt"), Some(("/workspace", "a.txt")));
        assert_eq!(split("/a"), Some(("/", "a")));
        assert_eq!(split("/"), None);
    }
}
