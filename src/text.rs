//! Text helpers for strings that come from outside (Graph and Entra error
//! bodies, peers' answers): bounded without splitting a character.

/// The longest prefix of `s` of at most `max_bytes` bytes that ends on a
/// character boundary.
pub fn prefix(s: &str, max_bytes: usize) -> &str {
    if s.len() <= max_bytes {
        return s;
    }
    let mut end = max_bytes;
    // A UTF-8 character is at most 4 bytes: at most 3 steps back.
    while !s.is_char_boundary(end) {
        end -= 1;
    }
    &s[..end]
}

/// Shortens `s` to at most `max_bytes` bytes, cutting before a character
/// that would straddle the limit (`String::truncate` panics there).
pub fn truncate(s: &mut String, max_bytes: usize) {
    let end = prefix(s, max_bytes).len();
    s.truncate(end);
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn cuts_at_char_boundaries() {
        // "é" is 2 bytes, "€" 3, "😀" 4: every limit inside one backs off to its start.
        let s = "aé€😀";
        let expect = ["", "a", "a", "aé", "aé", "aé", "aé€", "aé€", "aé€", "aé€", "aé€😀", "aé€😀"];
        for (n, want) in expect.iter().enumerate() {
            assert_eq!(prefix(s, n), *want, "limit {n}");
            let mut owned = s.to_string();
            truncate(&mut owned, n);
            assert_eq!(owned, *want, "limit {n}");
        }
    }

    #[test]
    fn long_non_ascii_text_is_bounded() {
        let mut s = "ü".repeat(1000);
        truncate(&mut s, 301);
        assert_eq!(s, "ü".repeat(150));
        assert_eq!(prefix("ascii", 3), "asc");
    }
}
