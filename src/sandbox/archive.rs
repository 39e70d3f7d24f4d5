//! Tar archives, the form in which files cross the Docker API.

use std::io::Read;

use anyhow::Context;

use super::{SandboxError, SandboxResult};

/// The uid and gid of the sandbox's non-root user, who owns every file written into it.
pub const SANDBOX_UID: u64 = 1000;

/// A tar holding one regular file `name` with `content`, owned by the sandbox user.
pub fn single_file(name: &str, content: &[u8], mode: u32) -> SandboxResult<Vec<u8>> {
    let mut builder = tar::Builder::new(Vec::with_capacity(content.len() + 1024));
    let mut header = tar::Header::new_gnu();
    header.set_size(content.len() as u64);
    header.set_mode(mode);
    header.set_uid(SANDBOX_UID);
    header.set_gid(SANDBOX_UID);
    header.set_mtime(now_seconds());
    header.set_entry_type(tar::EntryType::Regular);
    builder
        .append_data(&mut header, name, content)
        .context("cannot build the archive")?;
    Ok(builder.into_inner().context("cannot build the archive")?)
}

/// The content of the single regular file in `tar` (as the Docker API returns one file).
pub fn file_content(tar: &[u8], path: &str) -> SandboxResult<Vec<u8>> {
    let mut archive = tar::Archive::new(tar);
    let entries = archive.entries().context("cannot read the archive")?;
    for entry in entries {
        let mut entry = entry.context("cannot read the archive")?;
        match entry.header().entry_type() {
            tar::EntryType::Regular | tar::EntryType::Continuous => {
                let mut content = Vec::with_capacity(entry.size() as usize);
                entry
                    .read_to_end(&mut content)
                    .context("cannot read the archive")?;
                return Ok(content);
            }
            tar::EntryType::Directory => {
                return Err(SandboxError::BadPath(format!(
                    "{path} is a directory, not a file"
                )));
            }
            _ => continue,
        }
    }
    Err(SandboxError::BadPath(format!(
        "{path} is not a regular file"
    )))
}

fn now_seconds() -> u64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_secs())
        .unwrap_or(0)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn round_trip_binary() {
        let content: Vec<u8> = (0..=255u8).cycle().take(70_000).collect();
        let tar = single_file("blob.bin", &content, 0o644).unwrap();
        assert_eq!(file_content(&tar, "/x/blob.bin").unwrap(), content);
    }
}
