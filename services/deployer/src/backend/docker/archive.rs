//! The tar archives through which the engine hands out and takes in a container's files.

use std::io::{self, Read};
use std::path::Path;

/// A regular file read out of a container, with the metadata it is written back with.
#[derive(Clone, Debug)]
pub(crate) struct ArchiveFile {
    pub(crate) content: Vec<u8>,
    mode: u32,
    uid: u64,
    gid: u64,
}

/// Reads the one regular file of an archive the engine returned for a file's path.
///
/// # Errors
///
/// Fails when the archive is malformed or contains no regular file (the path names a directory
/// or a link).
pub(crate) fn read_file(tar: &[u8]) -> io::Result<ArchiveFile> {
    let mut archive = tar::Archive::new(tar);
    for entry in archive.entries()? {
        let mut entry = entry?;
        let header = entry.header();
        let kind = header.entry_type();
        if kind.is_pax_global_extensions() || kind.is_pax_local_extensions() {
            continue;
        }
        if !kind.is_file() {
            return Err(io::Error::new(
                io::ErrorKind::InvalidInput,
                "not a regular file",
            ));
        }
        let mode = header.mode()?;
        let uid = header.uid()?;
        let gid = header.gid()?;
        let mut content = Vec::with_capacity(usize::try_from(header.size()?).unwrap_or(0));
        entry.read_to_end(&mut content)?;
        return Ok(ArchiveFile {
            content,
            mode,
            uid,
            gid,
        });
    }
    Err(io::Error::new(
        io::ErrorKind::InvalidData,
        "the engine returned an empty archive",
    ))
}

/// Builds an archive that writes `file` to `path`; returns the directory to extract it in
/// and the archive.
///
/// # Errors
///
/// Fails when `path` has no file name or the archive cannot be built.
pub(crate) fn write_file(path: &Path, file: &ArchiveFile) -> io::Result<(String, Vec<u8>)> {
    let (Some(directory), Some(name)) = (path.parent(), path.file_name()) else {
        return Err(io::Error::new(
            io::ErrorKind::InvalidInput,
            format!("{} does not name a file", path.display()),
        ));
    };
    let mut header = tar::Header::new_gnu();
    header.set_size(file.content.len() as u64);
    header.set_mode(file.mode);
    header.set_uid(file.uid);
    header.set_gid(file.gid);
    header.set_entry_type(tar::EntryType::Regular);
    header.set_mtime(
        std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map_or(0, |elapsed| elapsed.as_secs()),
    );
    let mut builder = tar::Builder::new(Vec::new());
    builder.append_data(&mut header, name, file.content.as_slice())?;
    let tar = builder.into_inner()?;
    let directory = if directory.as_os_str().is_empty() {
        "/".to_owned()
    } else {
        directory.display().to_string()
    };
    Ok((directory, tar))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn written_file_reads_back_with_its_metadata() {
        let file = ArchiveFile {
            content: b"data set\n".to_vec(),
            mode: 0o640,
            uid: 65532,
            gid: 65532,
        };
        let (directory, tar) =
            write_file(Path::new("/srv/aro/beat-data.txt"), &file).expect("building the archive");
        assert_eq!(directory, "/srv/aro");
        let read = read_file(&tar).expect("reading the archive");
        assert_eq!(read.content, file.content);
        assert_eq!((read.mode, read.uid, read.gid), (0o640, 65532, 65532));
    }

    #[test]
    fn directory_is_not_a_file() {
        let mut header = tar::Header::new_gnu();
        header.set_entry_type(tar::EntryType::Directory);
        header.set_size(0);
        header.set_mode(0o755);
        let mut builder = tar::Builder::new(Vec::new());
        builder
            .append_data(&mut header, "srv", io::empty())
            .expect("appending");
        let tar = builder.into_inner().expect("building");
        let error = read_file(&tar).expect_err("a directory");
        assert!(error.to_string().contains("not a regular file"), "{error}");
    }
}
