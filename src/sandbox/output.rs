//! Command output kept within bounds: the beginning and the end are kept, the middle is cut with
//! a note, so a command that prints megabytes neither fills memory nor the model's context.

use std::collections::VecDeque;

/// Output longer than this many characters is cut in the middle.
pub const MAX_OUTPUT_CHARS: usize = 30_000;
const KEEP_CHARS: usize = MAX_OUTPUT_CHARS / 2;
/// Bytes kept at each end while collecting: enough for KEEP_CHARS characters of any UTF-8.
const KEEP_BYTES: usize = KEEP_CHARS * 4;

#[derive(Debug, Default)]
pub struct OutputBuffer {
    head: Vec<u8>,
    tail: VecDeque<u8>,
    dropped_bytes: u64,
}

impl OutputBuffer {
    pub fn new() -> Self {
        OutputBuffer::default()
    }

    pub fn push(&mut self, mut bytes: &[u8]) {
        if self.head.len() < KEEP_BYTES {
            let take = bytes.len().min(KEEP_BYTES - self.head.len());
            self.head.extend_from_slice(&bytes[..take]);
            bytes = &bytes[take..];
        }
        self.tail.extend(bytes);
        if self.tail.len() > KEEP_BYTES {
            let excess = self.tail.len() - KEEP_BYTES;
            self.tail.drain(..excess);
            self.dropped_bytes += excess as u64;
        }
    }

    pub fn is_empty(&self) -> bool {
        self.head.is_empty() && self.tail.is_empty()
    }

    /// The collected output as text, cut in the middle when too long.
    pub fn finish(self) -> String {
        let tail: Vec<u8> = self.tail.into_iter().collect();
        if self.dropped_bytes == 0 {
            let mut all = self.head;
            all.extend_from_slice(&tail);
            return cut_middle(&String::from_utf8_lossy(&all), 0);
        }
        let head = String::from_utf8_lossy(&self.head).into_owned();
        // The kept tail may start inside a multi-byte character.
        let tail = String::from_utf8_lossy(&tail);
        let tail = tail.trim_start_matches('\u{FFFD}');
        let head_chars = head.chars().count();
        let tail_chars = tail.chars().count();
        let keep_head: String = head.chars().take(KEEP_CHARS).collect();
        let keep_tail: String = tail
            .chars()
            .skip(tail_chars.saturating_sub(KEEP_CHARS))
            .collect();
        let cut = (head_chars.saturating_sub(KEEP_CHARS) + tail_chars.saturating_sub(KEEP_CHARS))
            as u64
            + self.dropped_bytes;
        format!("{keep_head}{}{keep_tail}", note(cut))
    }
}

/// Cuts `text` to its first and last 15,000 characters when it is longer than 30,000.
pub fn cut_middle(text: &str, already_cut: u64) -> String {
    let chars = text.chars().count();
    if chars <= MAX_OUTPUT_CHARS {
        return text.to_string();
    }
    let head: String = text.chars().take(KEEP_CHARS).collect();
    let tail: String = text.chars().skip(chars - KEEP_CHARS).collect();
    let cut = (chars - 2 * KEEP_CHARS) as u64 + already_cut;
    format!("{head}{}{tail}", note(cut))
}

fn note(cut: u64) -> String {
    format!("\n[... {cut} characters of output cut from the middle ...]\n")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn short_output_is_kept_whole() {
        let mut buffer = OutputBuffer::new();
        buffer.push(b"hello ");
        buffer.push("wörld".as_bytes());
        assert_eq!(buffer.finish(), "hello wörld");
    }

    #[test]
    fn long_output_keeps_both_ends() {
        let mut buffer = OutputBuffer::new();
        buffer.push(b"START");
        for _ in 0..100_000 {
            buffer.push(b"0123456789");
        }
        buffer.push(b"END");
        let text = buffer.finish();
        assert!(text.starts_with("START"));
        assert!(text.ends_with("END"));
        assert!(text.contains("characters of output cut from the middle"));
        assert!(text.chars().count() < MAX_OUTPUT_CHARS + 100);
    }

    #[test]
    fn just_over_the_limit_is_cut() {
        let text = "a".repeat(MAX_OUTPUT_CHARS + 10);
        let mut buffer = OutputBuffer::new();
        buffer.push(text.as_bytes());
        let out = buffer.finish();
        assert!(
            out.contains("[... 10 characters of output cut"),
            "{}",
            &out[14_990..15_100]
        );
    }

    #[test]
    fn multibyte_text_is_cut_on_character_boundaries() {
        let mut buffer = OutputBuffer::new();
        for _ in 0..50_000 {
            buffer.push("é€".as_bytes());
        }
        let out = buffer.finish();
        assert!(!out.contains('\u{FFFD}'));
        assert!(out.contains("cut from the middle"));
    }
}
