//! Markdown (what the agent and the service write) as Jira wiki markup, the text format of
//! Jira Data Center's REST API v2: `**bold**` becomes `*bold*`, `` `code` `` `{{code}}`,
//! `[text](url)` `[text|url]`, fenced code `{code}`, quotes `{quote}`, lists `*` and `#`.
//! Characters that wiki markup would read as formatting are escaped in plain text; web
//! addresses are left whole so that Jira still links them.

use pulldown_cmark::{
    CodeBlockKind, Event, HeadingLevel, Options, Parser, Tag, TagEnd, TextMergeStream,
};

/// `markdown` as Jira wiki markup.
pub fn from_markdown(markdown: &str) -> String {
    let mut writer = Writer::default();
    let options =
        Options::ENABLE_TABLES | Options::ENABLE_STRIKETHROUGH | Options::ENABLE_TASKLISTS;
    // Text arrives cut at every character that could start formatting; addresses must be whole.
    for event in TextMergeStream::new(Parser::new_ext(markdown, options)) {
        writer.event(event);
    }
    writer.out.trim_end().to_string()
}

#[derive(Default)]
struct Writer {
    out: String,
    /// The markers of the lists the text is in, outermost first: `*` or `#`.
    lists: Vec<char>,
    /// For each open link: its address and where its text starts in `out`.
    links: Vec<(String, usize)>,
    /// Inside a code block: the macro that closes it (`{code}` or `{noformat}`).
    code_block: Option<&'static str>,
    in_table_head: bool,
}

impl Writer {
    fn event(&mut self, event: Event<'_>) {
        match event {
            Event::Start(tag) => self.start(tag),
            Event::End(tag) => self.end(tag),
            Event::Text(text) if self.code_block.is_some() => self.out.push_str(&text),
            Event::Text(text) => self.text(&text),
            Event::Code(code) => {
                // Monospace cannot hold its own closing braces; those are written as text.
                if code.contains("}}") || code.trim().is_empty() {
                    self.text(&code);
                } else {
                    self.out.push_str(&format!("{{{{{code}}}}}"));
                }
            }
            Event::Html(html) | Event::InlineHtml(html) => self.text(&html),
            Event::InlineMath(math) | Event::DisplayMath(math) => self.text(&math),
            Event::FootnoteReference(name) => self.text(&format!("[{name}]")),
            Event::SoftBreak | Event::HardBreak => self.out.push('\n'),
            Event::Rule => {
                self.block_break();
                self.out.push_str("----\n\n");
            }
            Event::TaskListMarker(done) => self.out.push_str(if done { "(/) " } else { "(x) " }),
        }
    }

    fn start(&mut self, tag: Tag<'_>) {
        match tag {
            Tag::Paragraph => {}
            Tag::Heading { level, .. } => {
                self.block_break();
                self.out.push_str(&format!("h{}. ", heading_number(level)));
            }
            Tag::BlockQuote(_) => {
                self.block_break();
                self.out.push_str("{quote}\n");
            }
            Tag::CodeBlock(kind) => {
                self.block_break();
                let language = match &kind {
                    CodeBlockKind::Fenced(info) => info
                        .split_whitespace()
                        .next()
                        .filter(|l| l.chars().all(|c| c.is_ascii_alphanumeric() || c == '-')),
                    CodeBlockKind::Indented => None,
                };
                let closing = match language {
                    Some(language) => {
                        self.out.push_str(&format!("{{code:{language}}}\n"));
                        "{code}"
                    }
                    None => {
                        self.out.push_str("{noformat}\n");
                        "{noformat}"
                    }
                };
                self.code_block = Some(closing);
            }
            Tag::List(first) => {
                if self.lists.is_empty() {
                    self.block_break();
                } else {
                    self.line_break();
                }
                self.lists.push(if first.is_some() { '#' } else { '*' });
            }
            Tag::Item => {
                self.line_break();
                let markers: String = self.lists.iter().collect();
                self.out.push_str(&format!("{markers} "));
            }
            Tag::Table(_) => self.block_break(),
            Tag::TableHead => self.in_table_head = true,
            Tag::TableRow => {}
            Tag::TableCell => self
                .out
                .push_str(if self.in_table_head { "||" } else { "|" }),
            Tag::Emphasis => self.out.push('_'),
            Tag::Strong => self.out.push('*'),
            Tag::Strikethrough => self.out.push('-'),
            Tag::Superscript => self.out.push('^'),
            Tag::Subscript => self.out.push('~'),
            Tag::Link { dest_url, .. } | Tag::Image { dest_url, .. } => {
                self.links.push((dest_url.to_string(), self.out.len()));
            }
            Tag::HtmlBlock
            | Tag::FootnoteDefinition(_)
            | Tag::DefinitionList
            | Tag::DefinitionListTitle
            | Tag::DefinitionListDefinition
            | Tag::MetadataBlock(_) => {}
        }
    }

    fn end(&mut self, tag: TagEnd) {
        match tag {
            TagEnd::Paragraph => {
                if self.lists.is_empty() {
                    self.out.push_str("\n\n");
                } else {
                    self.line_break();
                }
            }
            TagEnd::Heading(_) => self.out.push_str("\n\n"),
            TagEnd::BlockQuote(_) => {
                let kept = self.out.trim_end_matches('\n').len();
                self.out.truncate(kept);
                self.out.push_str("\n{quote}\n\n");
            }
            TagEnd::CodeBlock => {
                let closing = self.code_block.take().unwrap_or("{code}");
                self.line_break();
                self.out.push_str(closing);
                self.out.push_str("\n\n");
            }
            TagEnd::List(_) => {
                self.lists.pop();
                self.line_break();
                if self.lists.is_empty() {
                    self.out.push('\n');
                }
            }
            TagEnd::Item => self.line_break(),
            TagEnd::TableHead => {
                self.out.push_str("||\n");
                self.in_table_head = false;
            }
            TagEnd::TableRow => self.out.push_str("|\n"),
            TagEnd::Table => self.out.push('\n'),
            TagEnd::TableCell => {}
            TagEnd::Emphasis => self.out.push('_'),
            TagEnd::Strong => self.out.push('*'),
            TagEnd::Strikethrough => self.out.push('-'),
            TagEnd::Superscript => self.out.push('^'),
            TagEnd::Subscript => self.out.push('~'),
            TagEnd::Link | TagEnd::Image => {
                let Some((url, start)) = self.links.pop() else {
                    return;
                };
                let text = self.out.split_off(start);
                if text.is_empty() || text == url || text == escape(&url) {
                    self.out.push_str(&url);
                } else {
                    self.out.push_str(&format!("[{text}|{url}]"));
                }
            }
            TagEnd::HtmlBlock
            | TagEnd::FootnoteDefinition
            | TagEnd::DefinitionList
            | TagEnd::DefinitionListTitle
            | TagEnd::DefinitionListDefinition
            | TagEnd::MetadataBlock(_) => {}
        }
    }

    fn text(&mut self, text: &str) {
        // A web address inside a link's text is its text, not a link of its own.
        if self.links.is_empty() {
            self.out.push_str(&escape(text));
        } else {
            self.out.push_str(&escape_all(text));
        }
    }

    /// Ends the current line, unless the text is at a line's start already.
    fn line_break(&mut self) {
        if !self.out.is_empty() && !self.out.ends_with('\n') {
            self.out.push('\n');
        }
    }

    /// Leaves a blank line before a new block, unless the text is at its start.
    fn block_break(&mut self) {
        if self.out.is_empty() || self.out.ends_with("\n\n") {
            return;
        }
        self.line_break();
        self.out.push('\n');
    }
}

fn heading_number(level: HeadingLevel) -> u8 {
    match level {
        HeadingLevel::H1 => 1,
        HeadingLevel::H2 => 2,
        HeadingLevel::H3 => 3,
        HeadingLevel::H4 => 4,
        HeadingLevel::H5 => 5,
        HeadingLevel::H6 => 6,
    }
}

/// Plain text with the characters wiki markup reads as formatting escaped, web addresses kept
/// whole (Jira links them as they are).
fn escape(text: &str) -> String {
    let mut out = String::with_capacity(text.len());
    let mut rest = text;
    while let Some(at) = next_address(rest) {
        let (before, from) = rest.split_at(at);
        out.push_str(&escape_all(before));
        let end = from
            .find(|c: char| c.is_whitespace() || matches!(c, '<' | '>' | '"' | '|'))
            .unwrap_or(from.len());
        // A sentence's closing punctuation is not part of the address.
        let end = from[..end]
            .trim_end_matches(['.', ',', ';', ':', '!', '?', ')', '\''])
            .len();
        out.push_str(&from[..end]);
        rest = &from[end..];
        if end == 0 {
            // Not an address after all: take one character as text and go on.
            let next = rest.chars().next().map_or(0, char::len_utf8);
            out.push_str(&escape_all(&rest[..next]));
            rest = &rest[next..];
        }
    }
    out.push_str(&escape_all(rest));
    out
}

/// Where the next `http://` or `https://` address starts in `text`.
fn next_address(text: &str) -> Option<usize> {
    match (text.find("https://"), text.find("http://")) {
        (Some(a), Some(b)) => Some(a.min(b)),
        (a, b) => a.or(b),
    }
}

fn escape_all(text: &str) -> String {
    let mut out = String::with_capacity(text.len());
    for c in text.chars() {
        if matches!(
            c,
            '\\' | '*' | '_' | '{' | '}' | '[' | ']' | '|' | '^' | '~' | '+' | '#' | '-' | '!'
        ) {
            out.push('\\');
        }
        out.push(c);
    }
    out
}

#[cfg(test)]
mod tests {
    use super::from_markdown;

    #[test]
    fn formatting_becomes_wiki_markup() {
        let markdown = "# Done\n\nI fixed **the flaky test** in `tests/test_checkout.py` \
                        and _retried_ it ~~once~~.\n\nSee [the run](https://ci.example.com/runs/7).";
        assert_eq!(
            from_markdown(markdown),
            "h1. Done\n\nI fixed *the flaky test* in {{tests/test_checkout.py}} and _retried_ it -once-.\n\nSee [the run|https://ci.example.com/runs/7]."
        );
    }

    #[test]
    fn lists_quotes_code_and_tables() {
        let markdown = "Steps:\n\n- one\n- two\n  1. nested\n\n> quoted\n\n```bash\nmake test | tee out\n```\n\n```\n{raw}\n```\n\n| a | b |\n|---|---|\n| 1 | 2 |\n";
        assert_eq!(
            from_markdown(markdown),
            "Steps:\n\n* one\n* two\n*# nested\n\n{quote}\nquoted\n{quote}\n\n{code:bash}\nmake test | tee out\n{code}\n\n{noformat}\n{raw}\n{noformat}\n\n||a||b||\n|1|2|"
        );
    }

    #[test]
    fn plain_text_is_escaped_but_addresses_stay_whole() {
        assert_eq!(
            from_markdown("Conversation: https://oh.example.com/c/a_b-1*2."),
            "Conversation: https://oh.example.com/c/a_b-1*2."
        );
        assert_eq!(
            from_markdown("2 * 3 = 6, snake_case, {braces} and [brackets]"),
            "2 \\* 3 = 6, snake\\_case, \\{braces\\} and \\[brackets\\]"
        );
        assert_eq!(
            from_markdown("<https://oh.example.com/c/1>"),
            "https://oh.example.com/c/1"
        );
        assert_eq!(from_markdown("line one\nline two"), "line one\nline two");
        assert_eq!(from_markdown("`a}}b`"), "a\\}\\}b");
    }

    #[test]
    fn any_text_converts_without_panicking() {
        for text in [
            "",
            "*",
            "[",
            "[a](",
            "```",
            "> ",
            "- ",
            "|a|\n|-|",
            "http://",
            "é https://é",
        ] {
            let _ = from_markdown(text);
        }
    }
}
