//! Titles written by the model. A conversation started from the web or from Slack has a
//! stand-in title (the first line of its first message); on its first run, one short LLM call
//! without tools writes a title of at most [`MAX_TITLE_CHARS`] characters, counted in the
//! conversation's cost. A rename in the meantime wins; a failed call keeps the stand-in.

use super::events::Item;
use super::llm::{ChatMessage, LlmClient};
use super::run::Run;

pub const MAX_TITLE_CHARS: usize = 50;
/// The most characters of the first message the model reads for a title.
const MAX_MESSAGE_CHARS: usize = 2_000;

/// What the model is asked. The scripted model of the tests knows this first line.
pub const TITLE_INSTRUCTIONS: &str = "You name conversations with a coding agent.\n\
Answer with a title for the request below: at most 50 characters, plain text, no quotes, no \
ending punctuation, nothing else.";

impl Run<'_> {
    /// Replaces the conversation's stand-in title with one the model writes.
    pub(super) async fn write_title(&mut self, llm: &LlmClient) -> anyhow::Result<()> {
        let Some(first) = self.history.items.iter().find_map(|item| match item {
            Item::UserMessage {
                content,
                automatic: false,
                ..
            } if !content.trim().is_empty() => Some(content.clone()),
            _ => None,
        }) else {
            return Ok(());
        };
        let request: String = first.chars().take(MAX_MESSAGE_CHARS).collect();
        let messages = vec![
            ChatMessage::system(TITLE_INSTRUCTIONS),
            ChatMessage::user(request),
        ];
        let completion = match llm.complete(&messages, &[]).await {
            Ok(completion) => completion,
            Err(error) => {
                tracing::warn!(conversation_id = %self.conversation_id(), %error, "no title was written; the first line stays");
                return Ok(());
            }
        };
        let (_, stats) = super::run::figures(llm, &completion);
        let mut tx = self.ctx.db.begin().await?;
        tx.add_llm_usage(self.conversation_id(), &stats).await?;
        tx.commit().await?;
        if let Some(title) = clean_title(&completion.message.content) {
            self.ctx
                .db
                .set_written_title(self.conversation_id(), &title)
                .await?;
        }
        Ok(())
    }
}

/// The model's answer as a title: its first non-empty line without quotes or ending
/// punctuation, cut at a word to [`MAX_TITLE_CHARS`] characters; `None` when nothing is left.
pub fn clean_title(answer: &str) -> Option<String> {
    let line = answer.lines().map(str::trim).find(|l| !l.is_empty())?;
    let line = line.trim_start_matches("Title:").trim();
    let line = line.trim_matches(|c: char| "\"'`*".contains(c)).trim();
    let line = line.trim_end_matches(['.', '!', ';', ':']).trim();
    if line.is_empty() {
        return None;
    }
    if line.chars().count() <= MAX_TITLE_CHARS {
        return Some(line.to_string());
    }
    let cut: String = line.chars().take(MAX_TITLE_CHARS).collect();
    let at_word = match cut.rfind(' ') {
        Some(space) if space > MAX_TITLE_CHARS / 2 => cut[..space].trim_end().to_string(),
        _ => cut,
    };
    Some(at_word)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn answers_become_short_titles() {
        assert_eq!(
            clean_title("\"Add a hello script\"\n").as_deref(),
            Some("Add a hello script")
        );
        assert_eq!(
            clean_title("Title: Fix the flaky API test.").as_deref(),
            Some("Fix the flaky API test")
        );
        assert_eq!(clean_title("  \n  "), None);
        let long = clean_title(&"word ".repeat(30)).unwrap();
        assert!(long.chars().count() <= MAX_TITLE_CHARS, "{long}");
        assert!(!long.ends_with(' '));
    }
}
