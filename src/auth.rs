//! memcached's text-protocol authentication (`-Y <authfile>`): the file holds
//! `user:password` lines; a client authenticates with a `set` whose data is
//! `user password`, and until then every command is refused. Passwords are compared in
//! constant time.

use subtle::ConstantTimeEq;

/// The credentials of an auth file.
#[derive(Debug, Clone, Default)]
pub struct AuthFile {
    entries: Vec<(Vec<u8>, Vec<u8>)>,
}

/// Compares two byte strings without revealing, through timing, where they first differ
/// (`subtle` keeps the compiler from turning the comparison into an early exit). Only
/// their lengths may show.
fn constant_time_eq(a: &[u8], b: &[u8]) -> bool {
    bool::from(a.ct_eq(b))
}

impl AuthFile {
    /// Reads an auth file; empty and malformed lines are skipped, as memcached does.
    pub fn load(path: &str) -> std::io::Result<AuthFile> {
        let text = std::fs::read(path)?;
        let entries = text
            .split(|&byte| byte == b'\n')
            .map(|line| line.strip_suffix(b"\r").unwrap_or(line))
            .filter_map(|line| {
                let colon = line.iter().position(|&byte| byte == b':')?;
                Some((line[..colon].to_vec(), line[colon + 1..].to_vec()))
            })
            .filter(|(user, _)| !user.is_empty())
            .collect();
        Ok(AuthFile { entries })
    }

    /// Checks `user password` (the data of the authenticating `set`). Every entry is
    /// compared, so the time taken does not reveal which part matched.
    pub fn check(&self, data: &[u8]) -> bool {
        let Some(space) = data.iter().position(|&byte| byte == b' ') else {
            return false;
        };
        let (user, password) = (&data[..space], &data[space + 1..]);
        let mut found = false;
        for (known_user, known_password) in &self.entries {
            let user_ok = constant_time_eq(user, known_user);
            let password_ok = constant_time_eq(password, known_password);
            found |= user_ok & password_ok;
        }
        found
    }

    /// Number of users.
    pub fn len(&self) -> usize {
        self.entries.len()
    }

    /// True when the file held no usable line.
    pub fn is_empty(&self) -> bool {
        self.entries.is_empty()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn checks_user_and_password() {
        let path = std::env::temp_dir().join(format!("auth-{}", std::process::id()));
        std::fs::write(&path, "alice:secret\r\nbob:pa:ss\n\nbroken\n").unwrap();
        let auth = AuthFile::load(path.to_str().unwrap()).unwrap();
        assert_eq!(auth.len(), 2);
        assert!(auth.check(b"alice secret"));
        assert!(auth.check(b"bob pa:ss"));
        assert!(!auth.check(b"alice secrets"));
        assert!(!auth.check(b"alice"));
        assert!(!auth.check(b"mallory secret"));
        assert!(constant_time_eq(b"abc", b"abc") && !constant_time_eq(b"abc", b"abd"));
        assert!(!constant_time_eq(b"ab", b"abc"));
        let _ = std::fs::remove_file(path);
    }
}
