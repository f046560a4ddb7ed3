//! Shell-style glob matching (`*`, `?`, `[abc]`, `[a-z]`, `[!x]`) for the include/exclude
//! filters on mount points, disks, NICs and process patterns. Byte-wise, no allocation.

/// True when `text` matches `pattern` as a whole.
pub fn matches(pattern: &str, text: &str) -> bool {
    match_bytes(pattern.as_bytes(), text.as_bytes())
}

/// The include/exclude rule used by every filter: excluded names never pass; with an
/// empty include list everything else passes, otherwise only names an include matches.
pub fn selected(name: &str, include: &[String], exclude: &[String]) -> bool {
    if exclude.iter().any(|p| matches(p, name)) {
        return false;
    }
    include.is_empty() || include.iter().any(|p| matches(p, name))
}

/// [`selected`] over a default set: `name` is a candidate when `in_default_set` says so
/// or when an include entry names it literally (so `"loop3"` brings back a device the
/// defaults skip while `"*"` adds nothing). `in_default_set` runs only when needed.
pub fn selected_from_defaults(
    name: &str,
    in_default_set: impl FnOnce() -> bool,
    include: &[String],
    exclude: &[String],
) -> bool {
    let named = include.iter().any(|p| p == name);
    (named || in_default_set()) && selected(name, include, exclude)
}

fn match_bytes(pattern: &[u8], text: &[u8]) -> bool {
    // Iterative matcher with single-star backtracking: O(len(p) * len(t)) worst case.
    let (mut p, mut t) = (0usize, 0usize);
    let mut star: Option<(usize, usize)> = None;
    while t < text.len() {
        if p < pattern.len() {
            match pattern[p] {
                b'*' => {
                    star = Some((p, t));
                    p += 1;
                    continue;
                }
                b'?' => {
                    p += 1;
                    t += 1;
                    continue;
                }
                b'[' => {
                    if let Some((matched, next)) = match_class(&pattern[p..], text[t]) {
                        if matched {
                            p += next;
                            t += 1;
                            continue;
                        }
                    } else if text[t] == b'[' {
                        p += 1;
                        t += 1;
                        continue;
                    }
                }
                c if c == text[t] => {
                    p += 1;
                    t += 1;
                    continue;
                }
                _ => {}
            }
        }
        match star {
            Some((sp, st)) => {
                p = sp + 1;
                t = st + 1;
                star = Some((sp, st + 1));
            }
            None => return false,
        }
    }
    pattern[p..].iter().all(|&c| c == b'*')
}

/// Match one byte against a `[...]` class at the start of `pattern`.
/// Returns (matched, length of the class) or None when the class is not closed.
fn match_class(pattern: &[u8], c: u8) -> Option<(bool, usize)> {
    let mut i = 1;
    let negate = matches!(pattern.get(i), Some(b'!') | Some(b'^'));
    if negate {
        i += 1;
    }
    let mut matched = false;
    let mut first = true;
    while i < pattern.len() {
        let lo = pattern[i];
        if lo == b']' && !first {
            return Some((matched != negate, i + 1));
        }
        first = false;
        if i + 2 < pattern.len() && pattern[i + 1] == b'-' && pattern[i + 2] != b']' {
            let hi = pattern[i + 2];
            matched |= lo <= c && c <= hi;
            i += 3;
        } else {
            matched |= lo == c;
            i += 1;
        }
    }
    None
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn stars_and_questions() {
        assert!(matches("eth*", "eth0"));
        assert!(matches("*", ""));
        assert!(matches("veth*", "veth1a2b"));
        assert!(!matches("eth*", "ens3"));
        assert!(matches("sd?", "sda"));
        assert!(!matches("sd?", "sda1"));
        assert!(matches("/mnt/*/data", "/mnt/a b/data"));
        assert!(matches("*a*b*c", "xxaybzc"));
        assert!(!matches("*a*b*c", "xxaybz"));
    }

    #[test]
    fn classes() {
        assert!(matches("sd[a-c]", "sdb"));
        assert!(!matches("sd[a-c]", "sdd"));
        assert!(matches("nvme[0-9]n[!x]", "nvme0n1"));
        assert!(matches("a[]]b", "a]b"));
        assert!(matches("a[b", "a[b"));
    }

    #[test]
    fn include_exclude() {
        let inc = vec!["eth*".to_string(), "bond*".to_string()];
        let exc = vec!["eth9".to_string()];
        assert!(selected("eth0", &inc, &exc));
        assert!(!selected("eth9", &inc, &exc));
        assert!(!selected("ens3", &inc, &exc));
        assert!(selected("ens3", &[], &exc));
    }

    #[test]
    fn defaults_and_literal_includes() {
        let none: Vec<String> = Vec::new();
        let literal = vec!["loop3".to_string()];
        let star = vec!["*".to_string()];
        assert!(selected_from_defaults("sda", || true, &none, &none));
        assert!(!selected_from_defaults("loop3", || false, &none, &none));
        assert!(selected_from_defaults("loop3", || false, &literal, &none));
        assert!(!selected_from_defaults("loop3", || false, &star, &none));
        assert!(!selected_from_defaults(
            "loop3",
            || false,
            &literal,
            &literal
        ));
        // a literal include skips the default-set check entirely
        assert!(selected_from_defaults(
            "loop3",
            || unreachable!(),
            &literal,
            &none
        ));
    }
}
