//! The one rule for a path a client names inside a sandbox, wherever it is resolved (on
//! the host beneath the sandbox's root, or by a microVM's agent).

/// Where an upload is written before it is put at its path (beside it); watches do not
/// report these.
pub const UPLOAD_PREFIX: &str = ".vulcan-upload-";

/// The components of `path` below `/` (`.` and empty ones dropped), or why it is not one
/// to use: not absolute, a NUL byte, a `..` component.
pub fn parts(path: &str) -> Result<Vec<String>, String> {
    let invalid = |why: &str| {
        format!(
            "path {path:?} {why}: give an absolute path inside the sandbox, e.g. /home/user/data.txt"
        )
    };
    if !path.starts_with('/') {
        return Err(invalid("is not absolute"));
    }
    if path.contains('\0') {
        return Err(invalid("has a NUL byte"));
    }
    let mut parts = Vec::new();
    for part in path.split('/').filter(|p| !p.is_empty() && *p != ".") {
        if part == ".." {
            return Err(invalid("has a `..` component"));
        }
        parts.push(part.to_owned());
    }
    Ok(parts)
}

#[cfg(test)]
mod tests {
    #[test]
    fn only_absolute_paths_without_dot_dot_pass() {
        assert_eq!(super::parts("/a//./b/").unwrap(), ["a", "b"]);
        assert!(super::parts("/").unwrap().is_empty());
        for bad in ["a/b", "/a/../b", "/a\0b", ""] {
            assert!(super::parts(bad).is_err(), "{bad:?}");
        }
    }
}
