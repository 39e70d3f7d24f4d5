//! Files and trees in and out of a sandbox, as tar archives through the engine's archive API:
//! reading and writing one file, listing a directory (`find` in the container), unpacking a tar
//! into a directory (created as the sandbox user when missing) and packing a tree. Paths are
//! checked to stay inside the sandbox's filesystem first; a missing path and a dead container
//! are told apart.

use bollard::errors::Error as DockerError;
use bollard::query_parameters::{DownloadFromContainerOptions, UploadToContainerOptions};
use futures::TryStreamExt;

use super::{DockerBackend, Entry};
use crate::sandbox::archive;
use crate::sandbox::paths::{sandbox_path, split};
use crate::sandbox::{FileEntry, FileKind, SandboxError, SandboxResult};

impl DockerBackend {
    async fn download(&self, container: &str, path: &str) -> Result<Vec<u8>, DockerError> {
        let chunks: Vec<bytes::Bytes> = self
            .docker
            .download_from_container(
                container,
                Some(DownloadFromContainerOptions {
                    path: path.to_string(),
                }),
            )
            .try_collect()
            .await?;
        Ok(chunks.concat())
    }

    pub(super) async fn upload(
        &self,
        container: &str,
        directory: &str,
        tar: bytes::Bytes,
    ) -> Result<(), DockerError> {
        self.docker
            .upload_to_container(
                container,
                Some(UploadToContainerOptions {
                    path: directory.to_string(),
                    ..Default::default()
                }),
                bollard::body_full(tar),
            )
            .await
    }

    /// Uploads `tar` into `directory`, creating the directory as the sandbox user if missing.
    async fn upload_creating(
        &self,
        entry: &Entry,
        directory: &str,
        tar: Vec<u8>,
    ) -> SandboxResult<()> {
        // Bytes: the retry after creating the directory sends the same archive without a copy.
        let tar = bytes::Bytes::from(tar);
        match self.upload(&entry.container, directory, tar.clone()).await {
            Ok(()) => Ok(()),
            Err(DockerError::DockerResponseServerError {
                status_code: 404, ..
            }) => {
                let made = self
                    .run_argv(
                        entry,
                        &["mkdir".into(), "-p".into(), "--".into(), directory.into()],
                        "/",
                    )
                    .await?;
                if made.exit_code != 0 {
                    return Err(SandboxError::BadPath(format!(
                        "cannot create {directory}: {}",
                        made.stderr.trim()
                    )));
                }
                self.upload(&entry.container, directory, tar)
                    .await
                    .map_err(|e| self.container_error(entry, e))
            }
            Err(DockerError::DockerResponseServerError {
                status_code: 400 | 403 | 500,
                message,
            }) => Err(SandboxError::BadPath(format!(
                "cannot write into {directory}: {message}"
            ))),
            Err(error) => Err(self.container_error(entry, error)),
        }
    }

    /// [`SandboxBackend::read_file`]: one file's content.
    pub(super) async fn read_file_from(
        &self,
        sandbox_id: &str,
        path: &str,
    ) -> SandboxResult<Vec<u8>> {
        let path = sandbox_path(path)?;
        let entry = self.ready(sandbox_id).await?;
        match self.download(&entry.container, &path).await {
            Ok(tar) => archive::file_content(&tar, &path),
            Err(DockerError::DockerResponseServerError {
                status_code: 404, ..
            }) => match self.death_reason(&entry).await {
                Some(reason) => Err(SandboxError::Gone {
                    id: entry.id.clone(),
                    reason,
                }),
                None => Err(SandboxError::FileNotFound(path)),
            },
            Err(error) => Err(self.container_error(&entry, error)),
        }
    }

    /// [`SandboxBackend::write_file`]: one file, its directory created if missing.
    pub(super) async fn write_file_to(
        &self,
        sandbox_id: &str,
        path: &str,
        content: &[u8],
    ) -> SandboxResult<()> {
        let path = sandbox_path(path)?;
        let Some((directory, name)) = split(&path) else {
            return Err(SandboxError::BadPath("cannot write to /".into()));
        };
        let entry = self.ready(sandbox_id).await?;
        let tar = archive::single_file(name, content, 0o644)?;
        self.upload_creating(&entry, directory, tar).await
    }

    /// [`SandboxBackend::list_files`]: a directory's entries, sorted by path.
    pub(super) async fn list_files_in(
        &self,
        sandbox_id: &str,
        path: &str,
    ) -> SandboxResult<Vec<FileEntry>> {
        let path = sandbox_path(path)?;
        let entry = self.ready(sandbox_id).await?;
        // The trailing slash makes find refuse a file ("Not a directory").
        let directory = format!("{}/", path.trim_end_matches('/'));
        let argv: Vec<String> = [
            "find",
            &directory,
            "-mindepth",
            "1",
            "-maxdepth",
            "1",
            "-printf",
            "%y\\t%s\\t%p\\0",
        ]
        .iter()
        .map(|s| s.to_string())
        .collect();
        let listed = self.run_argv(&entry, &argv, "/").await?;
        if listed.exit_code != 0 && listed.stdout.is_empty() {
            if listed.stderr.contains("Not a directory") {
                return Err(SandboxError::BadPath(format!(
                    "{path} is a file, not a directory"
                )));
            }
            return Err(SandboxError::FileNotFound(path));
        }
        Ok(parse_listing(&listed.stdout))
    }

    /// [`SandboxBackend::put_archive`]: a tar unpacked into a directory.
    pub(super) async fn put_archive_into(
        &self,
        sandbox_id: &str,
        directory: &str,
        tar: Vec<u8>,
    ) -> SandboxResult<()> {
        let directory = sandbox_path(directory)?;
        let entry = self.ready(sandbox_id).await?;
        self.upload_creating(&entry, &directory, tar).await
    }

    /// [`SandboxBackend::get_archive`]: a file or tree as a tar.
    pub(super) async fn get_archive_from(
        &self,
        sandbox_id: &str,
        path: &str,
    ) -> SandboxResult<Vec<u8>> {
        let path = sandbox_path(path)?;
        let entry = self.ready(sandbox_id).await?;
        match self.download(&entry.container, &path).await {
            Ok(tar) => Ok(tar),
            Err(DockerError::DockerResponseServerError {
                status_code: 404, ..
            }) => match self.death_reason(&entry).await {
                Some(reason) => Err(SandboxError::Gone {
                    id: entry.id.clone(),
                    reason,
                }),
                None => Err(SandboxError::FileNotFound(path)),
            },
            Err(error) => Err(self.container_error(&entry, error)),
        }
    }
}

/// Parses `find -printf '%y\t%s\t%p\0'` output.
fn parse_listing(stdout: &str) -> Vec<FileEntry> {
    let mut entries: Vec<FileEntry> = stdout
        .split('\0')
        .filter_map(|record| {
            let mut fields = record.splitn(3, '\t');
            let kind = match fields.next()? {
                "f" => FileKind::File,
                "d" => FileKind::Directory,
                "l" => FileKind::Symlink,
                _ => FileKind::Other,
            };
            let size = fields.next()?.parse().unwrap_or(0);
            let path = fields.next()?.to_string();
            Some(FileEntry { path, kind, size })
        })
        .collect();
    entries.sort_by(|a, b| a.path.cmp(&b.path));
    entries
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn listing() {
        let entries = parse_listing("f\t12\t/w/b.txt\0d\t4096\t/w/a\0");
        assert_eq!(entries.len(), 2);
        assert_eq!(entries[0].path, "/w/a");
        assert_eq!(entries[0].kind, FileKind::Directory);
        assert_eq!(entries[1].size, 12);
    }
}
