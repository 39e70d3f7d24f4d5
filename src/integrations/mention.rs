//! Recognising `@openhands` in a comment: case-insensitive, on a word boundary, and not inside
//! quoted lines (`> …`) or code (fenced blocks, indented blocks, inline spans), so that a
//! quote-reply or a pasted log does not start the agent again.

/// Whether `text` mentions `handle` (given with its `@`, e.g. `@openhands`) outside quotes
/// and code.
pub fn mentions(text: &str, handle: &str) -> bool {
    let handle = handle.to_lowercase();
    prose_lines(text).any(|line| line_mentions(&line.to_lowercase(), &handle))
}

/// Whether any of `markers` (matched case-insensitively, as written) appears in `text` outside
/// quotes and code.
pub fn names_any(text: &str, markers: &[String]) -> bool {
    let markers: Vec<String> = markers
        .iter()
        .map(|m| m.trim().to_lowercase())
        .filter(|m| !m.is_empty())
        .collect();
    !markers.is_empty()
        && prose_lines(text).any(|line| {
            let line = line.to_lowercase();
            markers.iter().any(|marker| line.contains(marker.as_str()))
        })
}

/// The lines of `text` that are neither quoted nor code, with inline code spans removed.
fn prose_lines(text: &str) -> impl Iterator<Item = String> + '_ {
    let mut fence: Option<(char, usize)> = None;
    text.lines().filter_map(move |line| {
        let trimmed = line.trim_start();
        if let Some((marker, length)) = fence {
            // A fence closes with at least as many of the same marker.
            let run = trimmed.chars().take_while(|&c| c == marker).count();
            if run >= length && trimmed[run..].trim().is_empty() {
                fence = None;
            }
            return None;
        }
        if let Some(marker) = trimmed.chars().next().filter(|c| *c == '`' || *c == '~') {
            let run = trimmed.chars().take_while(|&c| c == marker).count();
            if run >= 3 {
                fence = Some((marker, run));
                return None;
            }
        }
        let indent = line.len() - trimmed.len();
        if trimmed.starts_with('>') || line.starts_with('\t') || indent >= 4 {
            return None;
        }
        Some(without_inline_code(line))
    })
}

/// `line` with every `` `code` `` span removed (an unclosed backtick is kept as text).
fn without_inline_code(line: &str) -> String {
    let mut out = String::with_capacity(line.len());
    let mut rest = line;
    while let Some(start) = rest.find('`') {
        let ticks = rest[start..].chars().take_while(|&c| c == '`').count();
        let closing = "`".repeat(ticks);
        let after = &rest[start + ticks..];
        match after.find(&closing) {
            Some(end) => {
                out.push_str(&rest[..start]);
                out.push(' ');
                rest = &after[end + ticks..];
            }
            None => break,
        }
    }
    out.push_str(rest);
    out
}

/// Characters that continue a handle or a word: `@openhands-agent`, `user@openhands`.
fn is_word_char(c: char) -> bool {
    c.is_alphanumeric() || c == '_' || c == '-'
}

fn line_mentions(line: &str, handle: &str) -> bool {
    line.match_indices(handle).any(|(at, _)| {
        let before = line[..at].chars().next_back();
        let after = &line[at + handle.len()..];
        let mut following = after.chars();
        let next = following.next();
        let starts_a_word = before.is_none_or(|c| !is_word_char(c) && c != '@' && c != '.');
        let ends_the_handle = match next {
            None => true,
            // `@openhands.` ends a sentence; `@openhands.com` is a domain.
            Some('.') => following.next().is_none_or(|c| !is_word_char(c)),
            Some(c) => !is_word_char(c) && c != '@' && c != '/',
        };
        starts_a_word && ends_the_handle
    })
}

#[cfg(test)]
mod tests {
    use super::mentions;

    const HANDLE: &str = "@openhands";

    #[test]
    fn plain_mentions_match_in_any_case() {
        for text in [
            "@openhands please fix this",
            "Hey @OpenHands, can you look?",
            "please take this one @openhands.",
            "(@openhands) thoughts?",
            "line one\n@OPENHANDS fix the flaky test",
            "cc: @openhands!",
        ] {
            assert!(mentions(text, HANDLE), "{text:?}");
        }
    }

    #[test]
    fn other_handles_addresses_and_paths_do_not_match() {
        for text in [
            "@openhands-agent please fix",
            "write to user@openhands.com",
            "see @openhands.com for details",
            "@openhands_bot do it",
            "@openhandsx",
            "ping @@openhands",
            "https://github.com/@openhands/repo",
            "@openhands/core is the package",
            "openhands without the at sign",
        ] {
            assert!(!mentions(text, HANDLE), "{text:?}");
        }
    }

    #[test]
    fn quoted_lines_and_code_do_not_match() {
        for text in [
            "> @openhands please fix this\n\nI agree with the above.",
            "  > @openhands nested quote",
            "```\n@openhands in a fenced block\n```",
            "~~~text\n@openhands in a tilde fence\n~~~",
            "Log:\n\n    @openhands in an indented block",
            "Run `@openhands fix` to start it",
            "Run ``code with ` and @openhands`` here",
        ] {
            assert!(!mentions(text, HANDLE), "{text:?}");
        }
    }

    #[test]
    fn a_mention_after_a_quote_or_code_still_matches() {
        for text in [
            "> earlier comment\n@openhands please do what they said",
            "```\nlog line\n```\n@openhands fix the error above",
            "Run `make` then @openhands check",
            "an unclosed ` backtick and @openhands",
        ] {
            assert!(mentions(text, HANDLE), "{text:?}");
        }
    }

    #[test]
    fn the_handle_is_configurable() {
        assert!(mentions("@devbot go", "@DevBot"));
        assert!(!mentions("@openhands go", "@devbot"));
    }
}
