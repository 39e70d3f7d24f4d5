//! What a repository says about itself: its always-on instructions and its keyword-triggered
//! knowledge, read from a checkout on the worker's disk by the file rules of OpenHands'
//! microagents and skills, plus the same from the service's own skills directory
//! (`OPENHANDS_SKILLS_DIR`).
//!
//! The module owns finding, reading, classifying and bounding these files. It promises that
//! nothing in a checkout can make it follow a symbolic link, leave the root it was given, read
//! a file over 1 MB, walk without bound, flood the prompt, or panic: whatever it skips or cuts
//! is told in [`Found::notes`], in sentences a person can read.
//!
//! # What is read from a repository ([`read_repository`])
//!
//! - `AGENTS.md` at the root, else `agents.md`, `AGENT.md` or `agent.md` (the first of these
//!   names present decides; only one is taken). Always on, named `agents`.
//! - `.cursorrules` at the root. Always on, named `cursorrules`.
//! - Every `*.md` under `.openhands/microagents/` (any depth, `README.md` excepted). One whose
//!   front matter lists `triggers` is knowledge; any other is always on. `repo.md` right in that
//!   folder comes first among them and is named `repo`.
//! - Every `*.md` under `.openhands/skills/`, by the same rule, with the AgentSkills layout of
//!   the OpenHands SDK: a folder right inside `skills/` that holds a `SKILL.md` is one skill,
//!   named after the folder, and the rest of that folder (its `references/`, `scripts/`...) is
//!   material for the skill rather than skills of their own, so it is not read. Such a
//!   `SKILL.md` with `triggers` is knowledge; one without is meant to be opened on demand,
//!   which this service does not offer, so it is skipped with a note rather than put in every
//!   prompt. A `SKILL.md` anywhere else is skipped with a note.
//! - When two knowledge files of one repository share a name, the one under
//!   `.openhands/skills/` wins (as in the SDK), else the first by path.
//!
//! An organisation's configuration repository (a `source` whose last segment is `.openhands`,
//! or `openhands-config` as GitLab names it) keeps its microagents in `microagents/` at its top,
//! as upstream lays it out; for such a source only that folder is read, by the rules of
//! `.openhands/microagents/`. Its own `AGENTS.md` describes that repository, not the ones it
//! serves, so it is not read.
//!
//! Not read, though upstream knows them: the legacy `.openhands_instructions` file, the
//! model-specific `CLAUDE.md` and `GEMINI.md`, and `.agents/skills/`.
//!
//! # What is read from the service's directory ([`read_skills_dir`])
//!
//! Every `*.md` in it at any depth (`README.md` excepted): with `triggers` it is knowledge,
//! otherwise always on. The `SKILL.md` folder rule above applies here too, so that an
//! AgentSkills folder dropped in keeps its reference files out of the prompt.
//!
//! # Names, content and front matter
//!
//! A file's name is its front matter's `name` when that is given and not empty, else its
//! path below the microagents or skills folder without `.md` (`repo`, `frontend/react`), or a
//! `SKILL.md`'s folder name. Front matter is optional: a first line of three or more dashes
//! opens it and the next such line closes it; without a closing line the whole file is the
//! body, as `python-frontmatter` reads it. Content is the body without the front matter,
//! trimmed; a file with an empty body adds nothing and is left out. `AGENTS.md` and
//! `.cursorrules` are other tools' formats and are taken whole, with no front matter, as
//! upstream does.
//!
//! In the front matter, `triggers` must be a list of non-empty strings (an empty list means
//! none; a key with no value is refused, as upstream refuses it); `name`, when given, a single
//! value. A file with `inputs` (a list) is one the user calls up by name, as upstream has it:
//! it is knowledge triggered also by `/name`, and its content ends with a request to ask for
//! missing values. Other keys are ignored; front matter that is not a mapping is ignored too,
//! as upstream does. Invalid YAML, a `triggers` that is not a list of strings, YAML aliases
//! that expand past 10,000 values, or more than one YAML document skip that file with a note
//! naming it and the reason.
//!
//! # Order
//!
//! Instructions: `AGENTS.md`, `.cursorrules`, `repo.md`, then the other always-on files by
//! path. Knowledge: by path. [`Found::merge`] appends another source's entries after these.
//!
//! # Limits
//!
//! Per file: at most 20,000 characters of content, cut at a line boundary where one is near,
//! followed by a visible line saying it was cut and how long the file is. In all (applied by
//! [`Found::limit`] after merging): at most 60,000 characters of instructions, the entry that
//! crosses the line being cut and later ones left out; at most 100 knowledge entries and
//! 200,000 characters of knowledge, entries that do not fit being left out whole.
//!
//! # Safety
//!
//! A checkout is anyone's repository. Everything below the root is looked at with
//! `symlink_metadata`: symbolic links (to files or folders) are skipped with a note, and only
//! names listed by the directory itself are joined, so the walk cannot leave the root. Only
//! regular files are opened (a FIFO would block), none over 1 MB, and a file that turns out to
//! be another than the one looked at is not read. A walk goes at most 8 folders deep and looks
//! at 500 entries per call in all. Files that are not UTF-8 are skipped with a note. The root
//! itself is the caller's path and may be a link. Reading is synchronous; callers on the async
//! runtime wrap it in `spawn_blocking`.

use std::collections::HashMap;
use std::fs;
use std::io::{self, Read};
use std::path::{Path, PathBuf};

use serde::{Deserialize, Serialize};
use yaml_rust2::Yaml;
use yaml_rust2::parser::{Event, Parser, Tag};
use yaml_rust2::scanner::TScalarStyle;

/// Characters of content kept from one file.
const MAX_FILE_CHARS: usize = 20_000;
/// Characters of always-on instructions in all.
const MAX_INSTRUCTION_CHARS: usize = 60_000;
/// Knowledge entries in all.
const MAX_KNOWLEDGE_COUNT: usize = 100;
/// Characters of knowledge in all.
const MAX_KNOWLEDGE_CHARS: usize = 200_000;
/// Files larger than this are not read at all.
const MAX_FILE_BYTES: u64 = 1_000_000;
/// Folders below a microagents or skills folder that are still entered.
const MAX_DEPTH: usize = 8;
/// Directory entries looked at by one read.
const MAX_ENTRIES: usize = 500;
/// YAML values built from one front matter, counting each repetition an alias makes.
const MAX_YAML_VALUES: usize = 10_000;
/// A cut shorter than this is not worth keeping when the instructions' total runs out.
const MIN_USEFUL_CHARS: usize = 500;
/// Entries named in one note before the rest are only counted.
const NAMED_IN_NOTE: usize = 10;

/// One always-on instruction file.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Instruction {
    pub name: String,
    /// where it came from, as given by the caller: "acme/api", "acme/.openhands", "service"
    pub source: String,
    /// the path relative to the root, e.g. "AGENTS.md"
    pub path: String,
    pub content: String,
}

/// One knowledge microagent: content that applies when one of its triggers is mentioned.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Knowledge {
    pub name: String,
    pub source: String,
    pub path: String,
    pub triggers: Vec<String>,
    pub content: String,
}

/// Everything found in one or more sources.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Found {
    pub instructions: Vec<Instruction>,
    pub knowledge: Vec<Knowledge>,
    /// what was skipped or cut, in words
    pub notes: Vec<String>,
}

/// A repository checkout (or an organisation's `.openhands` repository) at `root`.
pub fn read_repository(root: &Path, source: &str) -> Found {
    let mut reader = Reader::new(source);
    if !reader.root_is_dir(root) {
        return reader.finish(Vec::new(), Vec::new());
    }

    let mut leading = Vec::new();
    let mut dirs: Vec<(&str, Layout)> = Vec::new();
    if is_config_repository(source) {
        dirs.push(("microagents", Layout::Microagents));
    } else {
        if let Some(agents) = reader.agents_file(root) {
            leading.push(agents);
        }
        if let Some(rules) = reader.whole_file(root, ".cursorrules", "cursorrules") {
            leading.push(rules);
        }
        if reader.real_dir(&root.join(".openhands"), ".openhands") {
            dirs.push((".openhands/microagents", Layout::Microagents));
            dirs.push((".openhands/skills", Layout::Skills));
        }
    }

    let mut microagents = Vec::new();
    let mut skills = Vec::new();
    for (rel, layout) in dirs {
        let mut entries = reader.read_dir_of_files(root, rel, layout);
        entries.sort_by(|a, b| a.path().cmp(b.path()));
        match layout {
            Layout::Microagents => microagents = entries,
            Layout::Skills => skills = entries,
        }
    }

    // The SDK lets `.openhands/skills` win over `.openhands/microagents` on a shared name.
    let (mut instructions, knowledge) = reader.split_entries(skills.into_iter().chain(microagents));
    let repo_md = repo_md_path(source);
    instructions.sort_by(|a, b| (a.path != repo_md, &a.path).cmp(&(b.path != repo_md, &b.path)));
    leading.extend(instructions);
    reader.finish(leading, knowledge)
}

/// The service's own directory of skills (OPENHANDS_SKILLS_DIR).
pub fn read_skills_dir(dir: &Path, source: &str) -> Found {
    let mut reader = Reader::new(source);
    if !reader.root_is_dir(dir) {
        return reader.finish(Vec::new(), Vec::new());
    }
    let mut entries = reader.read_dir_of_files(dir, "", Layout::Skills);
    entries.sort_by(|a, b| a.path().cmp(b.path()));
    let (mut instructions, knowledge) = reader.split_entries(entries.into_iter());
    instructions.sort_by(|a, b| a.path.cmp(&b.path));
    reader.finish(instructions, knowledge)
}

impl Found {
    /// Adds `other`'s entries after this one's (a knowledge microagent whose name is already present is skipped: the first source wins).
    pub fn merge(&mut self, other: Found) {
        let Found {
            instructions,
            knowledge,
            notes,
        } = other;
        self.instructions.extend(instructions);
        self.notes.extend(notes);
        let mut first: HashMap<String, String> = self
            .knowledge
            .iter()
            .map(|k| (k.name.clone(), k.source.clone()))
            .collect();
        for k in knowledge {
            if let Some(earlier) = first.get(&k.name) {
                self.notes.push(format!(
                    "{}: the knowledge microagent `{}` ({}) is skipped: {} already has one by that name",
                    k.source, k.name, k.path, earlier
                ));
            } else {
                first.insert(k.name.clone(), k.source.clone());
                self.knowledge.push(k);
            }
        }
    }

    /// Applies the totals' limits (call after merging), adding notes for what was dropped.
    pub fn limit(&mut self) {
        let mut used = 0;
        let mut left_out = Vec::new();
        let mut kept = Vec::new();
        for mut ins in std::mem::take(&mut self.instructions) {
            let size = ins.content.chars().count();
            if used + size <= MAX_INSTRUCTION_CHARS {
                used += size;
                kept.push(ins);
                continue;
            }
            let marker = format!(
                "\n\n[{} is cut here to keep the repository instructions within {} characters.]",
                ins.path, MAX_INSTRUCTION_CHARS
            );
            let marker_chars = marker.chars().count();
            let room = MAX_INSTRUCTION_CHARS.saturating_sub(used);
            if room >= MIN_USEFUL_CHARS + marker_chars {
                let text = cut_at_line(&ins.content, room - marker_chars);
                let text_chars = text.chars().count();
                self.notes.push(format!(
                    "{}: {} is cut to {} of its {} characters to keep the repository instructions within {} characters in all",
                    ins.source, ins.path, text_chars, size, MAX_INSTRUCTION_CHARS
                ));
                ins.content = format!("{text}{marker}");
                used += text_chars + marker_chars;
                kept.push(ins);
            } else {
                left_out.push(format!("{} ({})", ins.path, ins.source));
            }
        }
        self.instructions = kept;
        if !left_out.is_empty() {
            self.notes.push(format!(
                "{} instruction file(s) are left out to keep the repository instructions within {} characters in all: {}",
                left_out.len(),
                MAX_INSTRUCTION_CHARS,
                name_some(&left_out)
            ));
        }

        let mut used = 0;
        let mut over_count = Vec::new();
        let mut over_size = Vec::new();
        let mut kept = Vec::new();
        for k in std::mem::take(&mut self.knowledge) {
            let size = k.content.chars().count();
            let label = format!("`{}` ({}, {})", k.name, k.source, k.path);
            if kept.len() >= MAX_KNOWLEDGE_COUNT {
                over_count.push(label);
            } else if used + size > MAX_KNOWLEDGE_CHARS {
                over_size.push(label);
            } else {
                used += size;
                kept.push(k);
            }
        }
        self.knowledge = kept;
        if !over_size.is_empty() {
            self.notes.push(format!(
                "{} knowledge microagent(s) are left out to keep knowledge within {} characters in all: {}",
                over_size.len(),
                MAX_KNOWLEDGE_CHARS,
                name_some(&over_size)
            ));
        }
        if !over_count.is_empty() {
            self.notes.push(format!(
                "{} knowledge microagent(s) are left out beyond the first {}: {}",
                over_count.len(),
                MAX_KNOWLEDGE_COUNT,
                name_some(&over_count)
            ));
        }
    }

    /// No instructions and no knowledge (notes alone count as empty).
    pub fn is_empty(&self) -> bool {
        self.instructions.is_empty() && self.knowledge.is_empty()
    }
}

impl Knowledge {
    /// The first trigger that appears in `text`, case-insensitively.
    pub fn trigger_in(&self, text: &str) -> Option<&str> {
        let text = text.to_lowercase();
        self.triggers
            .iter()
            // A blank trigger would match every text; files with one are refused on reading,
            // and this keeps hand-made values honest too.
            .filter(|t| !t.trim().is_empty())
            .find(|t| text.contains(&t.to_lowercase()))
            .map(String::as_str)
    }
}

/// Which rules a folder of markdown files is read by.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Layout {
    /// `.openhands/microagents`: every `*.md`.
    Microagents,
    /// `.openhands/skills` and the service's directory: every `*.md`, with `SKILL.md` folders.
    Skills,
}

/// What a directory entry is, looked at without following links.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Kind {
    File,
    Dir,
    Link,
    Other,
}

/// A directory entry by its own name.
struct Listed {
    name: String,
    file: PathBuf,
    kind: Kind,
}

/// A markdown file found by a walk, before it is read.
struct Candidate {
    file: PathBuf,
    /// Relative to the root the caller gave, with `/` between parts.
    path: String,
    /// The name when the front matter gives none.
    default_name: String,
    is_skill_md: bool,
}

/// A file read and classified.
enum Entry {
    Instruction(Instruction),
    Knowledge(Knowledge),
}

impl Entry {
    fn path(&self) -> &str {
        match self {
            Entry::Instruction(i) => &i.path,
            Entry::Knowledge(k) => &k.path,
        }
    }
}

/// What one call has seen so far: its notes and how much of its walk budget is spent.
struct Reader<'a> {
    source: &'a str,
    notes: Vec<String>,
    visited: usize,
    told_budget: bool,
}

impl<'a> Reader<'a> {
    fn new(source: &'a str) -> Self {
        Reader {
            source,
            notes: Vec::new(),
            visited: 0,
            told_budget: false,
        }
    }

    fn note(&mut self, text: String) {
        self.notes.push(format!("{}: {}", self.source, text));
    }

    fn finish(self, instructions: Vec<Instruction>, mut knowledge: Vec<Knowledge>) -> Found {
        knowledge.sort_by(|a, b| a.path.cmp(&b.path));
        Found {
            instructions,
            knowledge,
            notes: self.notes,
        }
    }

    /// The caller's root: followed if it is a link, since the caller chose it. Missing is
    /// simply nothing to read.
    fn root_is_dir(&mut self, root: &Path) -> bool {
        match fs::metadata(root) {
            Ok(m) if m.is_dir() => true,
            Ok(_) => {
                self.note("the given root is not a directory, so nothing is read".to_string());
                false
            }
            Err(e) if e.kind() == io::ErrorKind::NotFound => false,
            Err(e) => {
                self.note(format!("the given root could not be opened ({e})"));
                false
            }
        }
    }

    /// Whether `dir` (below the root) is a directory of its own, not a link to one.
    fn real_dir(&mut self, dir: &Path, rel: &str) -> bool {
        match fs::symlink_metadata(dir) {
            Ok(m) if m.file_type().is_symlink() => {
                self.note(format!("{rel} is skipped: it is a symbolic link"));
                false
            }
            Ok(m) => m.is_dir(),
            Err(e) if e.kind() == io::ErrorKind::NotFound => false,
            Err(e) => {
                self.note(format!("{rel} could not be opened ({e})"));
                false
            }
        }
    }

    /// The first of the `AGENTS.md` spellings present at the root.
    fn agents_file(&mut self, root: &Path) -> Option<Instruction> {
        for name in ["AGENTS.md", "agents.md", "AGENT.md", "agent.md"] {
            match fs::symlink_metadata(root.join(name)) {
                Err(e) if e.kind() == io::ErrorKind::NotFound => continue,
                _ => return self.whole_file(root, name, "agents"),
            }
        }
        None
    }

    /// A root-level file of another tool's format, taken whole as one instruction.
    fn whole_file(&mut self, root: &Path, rel: &str, name: &str) -> Option<Instruction> {
        let file = root.join(rel);
        match fs::symlink_metadata(&file) {
            Err(e) if e.kind() == io::ErrorKind::NotFound => return None,
            Err(e) => {
                self.note(format!("{rel} could not be opened ({e})"));
                return None;
            }
            Ok(_) => {}
        }
        let text = self.read_text(&file, rel)?;
        let content = text.trim();
        if content.is_empty() {
            return None;
        }
        let content = self.fit_file(rel, content);
        Some(Instruction {
            name: name.to_string(),
            source: self.source.to_string(),
            path: rel.to_string(),
            content,
        })
    }

    /// Reads every markdown file below `root/rel` by `layout`'s rules.
    fn read_dir_of_files(&mut self, root: &Path, rel: &str, layout: Layout) -> Vec<Entry> {
        let dir = if rel.is_empty() {
            root.to_path_buf()
        } else {
            if !self.real_dir(&root.join(rel), rel) {
                return Vec::new();
            }
            root.join(rel)
        };
        let candidates = self.walk(&dir, rel, layout);
        let mut entries = Vec::new();
        for candidate in candidates {
            if let Some(text) = self.read_text(&candidate.file, &candidate.path)
                && let Some(entry) = self.classify(&candidate, &text)
            {
                entries.push(entry);
            }
        }
        entries
    }

    /// Splits entries into instructions and knowledge, the first of a knowledge name winning.
    fn split_entries(
        &mut self,
        entries: impl Iterator<Item = Entry>,
    ) -> (Vec<Instruction>, Vec<Knowledge>) {
        let mut instructions = Vec::new();
        let mut knowledge: Vec<Knowledge> = Vec::new();
        let mut by_name: HashMap<String, String> = HashMap::new();
        for entry in entries {
            match entry {
                Entry::Instruction(i) => instructions.push(i),
                Entry::Knowledge(k) => {
                    if let Some(first) = by_name.get(&k.name) {
                        let text = format!(
                            "{} is skipped: the knowledge microagent `{}` is already given by {}",
                            k.path, k.name, first
                        );
                        self.note(text);
                    } else {
                        by_name.insert(k.name.clone(), k.path.clone());
                        knowledge.push(k);
                    }
                }
            }
        }
        (instructions, knowledge)
    }

    /// The markdown files below `dir`, depth first in name order, within the walk's bounds.
    fn walk(&mut self, dir: &Path, rel: &str, layout: Layout) -> Vec<Candidate> {
        let mut found = Vec::new();
        // (folder on disk, its path from the root, its path from `dir`, its depth below `dir`)
        let mut stack = vec![(dir.to_path_buf(), rel.to_string(), String::new(), 0usize)];
        while let Some((here, here_rel, here_inner, depth)) = stack.pop() {
            let Some(entries) = self.list(&here, &here_rel) else {
                continue;
            };

            if layout == Layout::Skills
                && depth == 1
                && let Some(skill) = entries
                    .iter()
                    .find(|e| e.name.eq_ignore_ascii_case("skill.md"))
            {
                let path = join(&here_rel, &skill.name);
                match skill.kind {
                    Kind::File => found.push(Candidate {
                        file: skill.file.clone(),
                        path,
                        default_name: here_inner.clone(),
                        is_skill_md: true,
                    }),
                    Kind::Link => self.note(format!("{path} is skipped: it is a symbolic link")),
                    Kind::Dir | Kind::Other => {
                        self.note(format!("{path} is skipped: it is not a regular file"))
                    }
                }
                // The rest of a skill's folder is its material, not more skills.
                continue;
            }

            let mut subdirs = Vec::new();
            for entry in entries {
                let path = join(&here_rel, &entry.name);
                let inner = join(&here_inner, &entry.name);
                let is_md = entry.name.ends_with(".md");
                match entry.kind {
                    Kind::Link => self.note(format!("{path} is skipped: it is a symbolic link")),
                    Kind::Dir if depth >= MAX_DEPTH => self.note(format!(
                        "{path} is skipped: it is more than {MAX_DEPTH} folders deep"
                    )),
                    Kind::Dir => subdirs.push((entry.file, path, inner, depth + 1)),
                    Kind::Other if is_md => {
                        self.note(format!("{path} is skipped: it is not a regular file"))
                    }
                    Kind::Other => {}
                    Kind::File if !is_md || entry.name.eq_ignore_ascii_case("readme.md") => {}
                    Kind::File
                        if layout == Layout::Skills
                            && entry.name.eq_ignore_ascii_case("skill.md") =>
                    {
                        self.note(format!(
                            "{path} is skipped: a SKILL.md counts only right inside a skill's own folder"
                        ))
                    }
                    Kind::File => found.push(Candidate {
                        file: entry.file,
                        path,
                        default_name: inner.strip_suffix(".md").unwrap_or(&inner).to_string(),
                        is_skill_md: false,
                    }),
                }
            }
            // Reversed so that the stack hands folders back in name order.
            stack.extend(subdirs.into_iter().rev());
        }
        found
    }

    /// One folder's entries in name order, each looked at without following links; `None`
    /// when it cannot be listed. Stops when the call's entry budget is spent.
    fn list(&mut self, dir: &Path, rel: &str) -> Option<Vec<Listed>> {
        let shown = if rel.is_empty() { "the directory" } else { rel };
        let items = match fs::read_dir(dir) {
            Ok(items) => items,
            Err(e) => {
                self.note(format!("{shown} could not be listed ({e})"));
                return None;
            }
        };
        let mut listed = Vec::new();
        for item in items {
            if self.visited >= MAX_ENTRIES {
                if !self.told_budget {
                    self.told_budget = true;
                    self.note(format!(
                        "the search stopped after {MAX_ENTRIES} directory entries, so files beyond them (from {shown} on) are not read"
                    ));
                }
                break;
            }
            self.visited += 1;
            let item = match item {
                Ok(item) => item,
                Err(e) => {
                    self.note(format!("an entry of {shown} could not be read ({e})"));
                    continue;
                }
            };
            let Ok(name) = item.file_name().into_string() else {
                self.note(format!(
                    "an entry of {shown} is skipped: its name is not UTF-8"
                ));
                continue;
            };
            let file = item.path();
            let kind = match fs::symlink_metadata(&file) {
                Ok(m) if m.file_type().is_symlink() => Kind::Link,
                Ok(m) if m.is_dir() => Kind::Dir,
                Ok(m) if m.is_file() => Kind::File,
                Ok(_) => Kind::Other,
                Err(e) => {
                    let path = join(rel, &name);
                    self.note(format!("{path} could not be looked at ({e})"));
                    continue;
                }
            };
            listed.push(Listed { name, file, kind });
        }
        listed.sort_by(|a, b| a.name.cmp(&b.name));
        Some(listed)
    }

    /// The text of a regular file of at most 1 MB, or a note saying why not.
    fn read_text(&mut self, file: &Path, rel: &str) -> Option<String> {
        let seen = match fs::symlink_metadata(file) {
            Ok(m) => m,
            Err(e) => {
                self.note(format!("{rel} could not be opened ({e})"));
                return None;
            }
        };
        if seen.file_type().is_symlink() {
            self.note(format!("{rel} is skipped: it is a symbolic link"));
            return None;
        }
        if !seen.is_file() {
            self.note(format!("{rel} is skipped: it is not a regular file"));
            return None;
        }
        if seen.len() > MAX_FILE_BYTES {
            self.note(format!(
                "{rel} is skipped: it is {} bytes, over the limit of 1 MB ({MAX_FILE_BYTES} bytes)",
                seen.len()
            ));
            return None;
        }
        let handle = match fs::File::open(file) {
            Ok(h) => h,
            Err(e) => {
                self.note(format!("{rel} could not be opened ({e})"));
                return None;
            }
        };
        if !same_file(&seen, &handle) {
            self.note(format!(
                "{rel} is skipped: it changed between being looked at and being opened"
            ));
            return None;
        }
        let mut bytes = Vec::new();
        if let Err(e) = handle.take(MAX_FILE_BYTES + 1).read_to_end(&mut bytes) {
            self.note(format!("{rel} could not be read ({e})"));
            return None;
        }
        if bytes.len() as u64 > MAX_FILE_BYTES {
            self.note(format!(
                "{rel} is skipped: it grew over the limit of 1 MB while being read"
            ));
            return None;
        }
        match String::from_utf8(bytes) {
            Ok(mut text) => {
                if text.starts_with('\u{feff}') {
                    text.remove(0);
                }
                Some(text)
            }
            Err(_) => {
                self.note(format!("{rel} is skipped: it is not UTF-8 text"));
                None
            }
        }
    }

    /// Turns a microagent or skill file into an entry by its front matter.
    fn classify(&mut self, candidate: &Candidate, text: &str) -> Option<Entry> {
        let path = &candidate.path;
        let (yaml, body) = split_front_matter(text);
        let meta = match yaml.map(parse_meta) {
            None => Meta::default(),
            Some(Ok(meta)) => meta,
            Some(Err(reason)) => {
                self.note(format!("{path} is skipped: {reason}"));
                return None;
            }
        };
        let name = meta
            .name
            .filter(|n| !n.is_empty())
            .unwrap_or_else(|| candidate.default_name.clone());
        let mut triggers = meta.triggers.unwrap_or_default();
        let mut content = body.trim().to_string();
        if content.is_empty() {
            return None;
        }
        if let Some(inputs) = meta.inputs {
            // A microagent with inputs is called up by `/name` and asks for what it lacks, as upstream's do.
            let call = format!("/{name}");
            if !triggers.contains(&call) {
                triggers.push(call);
            }
            if inputs > 0 || has_variable(&content) {
                content.push_str(
                    "\n\nIf the user has not given a value for each of these variables, ask for the missing ones before going on.",
                );
            }
        }
        let content = self.fit_file(path, &content);
        let source = self.source.to_string();
        let path = path.clone();
        if triggers.is_empty() {
            if candidate.is_skill_md {
                self.note(format!(
                    "{path} is skipped: a SKILL.md without `triggers` is meant to be opened on demand, which this service does not offer"
                ));
                return None;
            }
            Some(Entry::Instruction(Instruction {
                name,
                source,
                path,
                content,
            }))
        } else {
            Some(Entry::Knowledge(Knowledge {
                name,
                source,
                path,
                triggers,
                content,
            }))
        }
    }

    /// `content` within the per-file limit, with a visible line where it was cut.
    fn fit_file(&mut self, path: &str, content: &str) -> String {
        let total = content.chars().count();
        if total <= MAX_FILE_CHARS {
            return content.to_string();
        }
        let marker = |kept: usize| {
            format!(
                "\n\n[{path} is cut here: it has {total} characters, of which the first {kept} are shown.]"
            )
        };
        // Room for the longest marker, so that text and marker stay within the limit.
        let room = MAX_FILE_CHARS.saturating_sub(marker(MAX_FILE_CHARS).chars().count());
        let kept_text = cut_at_line(content, room);
        let kept = kept_text.chars().count();
        self.note(format!("{path} is cut to {kept} of its {total} characters"));
        format!("{kept_text}{}", marker(kept))
    }
}

/// The path of the `repo.md` that leads the always-on microagents of `source`.
fn repo_md_path(source: &str) -> &'static str {
    if is_config_repository(source) {
        "microagents/repo.md"
    } else {
        ".openhands/microagents/repo.md"
    }
}

/// Whether `source` names an organisation's configuration repository (`acme/.openhands`).
fn is_config_repository(source: &str) -> bool {
    let last = source
        .trim_end_matches('/')
        .rsplit('/')
        .next()
        .unwrap_or("");
    last.eq_ignore_ascii_case(".openhands") || last.eq_ignore_ascii_case("openhands-config")
}

fn join(parent: &str, name: &str) -> String {
    if parent.is_empty() {
        name.to_string()
    } else {
        format!("{parent}/{name}")
    }
}

/// Whether the opened file is the one that was looked at (no swap in between).
#[cfg(unix)]
fn same_file(seen: &fs::Metadata, handle: &fs::File) -> bool {
    use std::os::unix::fs::MetadataExt;
    match handle.metadata() {
        Ok(m) => m.is_file() && m.dev() == seen.dev() && m.ino() == seen.ino(),
        Err(_) => false,
    }
}

#[cfg(not(unix))]
fn same_file(_seen: &fs::Metadata, handle: &fs::File) -> bool {
    handle.metadata().map(|m| m.is_file()).unwrap_or(false)
}

/// At most `max_chars` characters of `text`, ending at a line break when one is in the
/// second half of what fits.
fn cut_at_line(text: &str, max_chars: usize) -> &str {
    let Some((end, _)) = text.char_indices().nth(max_chars) else {
        return text;
    };
    let head = &text[..end];
    match head.rfind('\n') {
        Some(line_end) if line_end >= end / 2 => head[..line_end].trim_end(),
        _ => head,
    }
}

/// A list for a note: the first few named, the rest counted.
fn name_some(items: &[String]) -> String {
    let mut text = items
        .iter()
        .take(NAMED_IN_NOTE)
        .cloned()
        .collect::<Vec<_>>()
        .join(", ");
    if items.len() > NAMED_IN_NOTE {
        text.push_str(&format!(" and {} more", items.len() - NAMED_IN_NOTE));
    }
    text
}

/// Whether `text` holds a `${variable}` as upstream's microagents with inputs write them.
fn has_variable(text: &str) -> bool {
    text.split("${").skip(1).any(|rest| {
        let Some((name, _)) = rest.split_once('}') else {
            return false;
        };
        let mut chars = name.chars();
        chars
            .next()
            .is_some_and(|c| c.is_ascii_alphabetic() || c == '_')
            && chars.all(|c| c.is_ascii_alphanumeric() || c == '_')
    })
}

/// Separates front matter from the body as `python-frontmatter` does: the text (trimmed at
/// its start) opens with a line of three or more dashes, and the next such line closes the
/// front matter. Without both there is no front matter.
fn split_front_matter(text: &str) -> (Option<&str>, &str) {
    let text = text.trim_start();
    let Some((first, rest)) = text.split_once('\n') else {
        return (None, text);
    };
    if !is_boundary(first) {
        return (None, text);
    }
    let mut offset = 0;
    for line in rest.split_inclusive('\n') {
        if is_boundary(line) {
            return (Some(&rest[..offset]), &rest[offset + line.len()..]);
        }
        offset += line.len();
    }
    (None, text)
}

fn is_boundary(line: &str) -> bool {
    let line = line.trim_end();
    line.len() >= 3 && line.bytes().all(|b| b == b'-')
}

/// The front matter keys this module uses.
#[derive(Debug, Default, PartialEq, Eq)]
struct Meta {
    name: Option<String>,
    triggers: Option<Vec<String>>,
    /// How many inputs a microagent declares, when it has the key.
    inputs: Option<usize>,
}

/// Reads `name`, `triggers` and `inputs` from front matter, or says why the file is refused.
fn parse_meta(yaml: &str) -> Result<Meta, String> {
    // The parser's own invariants are trusted, but a checkout is anyone's: a panic deep in
    // it becomes a refused file rather than a failed run.
    let tree = match std::panic::catch_unwind(|| yaml_tree(yaml)) {
        Ok(tree) => tree?,
        Err(_) => return Err("its front matter could not be read as YAML".to_string()),
    };
    let Some(Node::Map(pairs)) = tree else {
        // Upstream ignores front matter that is not a mapping.
        return Ok(Meta::default());
    };
    let mut meta = Meta::default();
    for (key, value) in pairs {
        let Node::Scalar(key) = key else {
            continue;
        };
        match key.text.as_str() {
            "name" => {
                meta.name = match value {
                    Node::Scalar(s) if s.kind == ScalarKind::Null => None,
                    Node::Scalar(s) => Some(s.text.trim().to_string()),
                    _ => return Err("its `name` is not a single value".to_string()),
                }
            }
            "triggers" => {
                let Node::Seq(items) = value else {
                    return Err("its `triggers` is not a list of strings".to_string());
                };
                let mut triggers = Vec::with_capacity(items.len());
                for item in items {
                    match item {
                        Node::Scalar(s) if s.kind == ScalarKind::Str => {
                            if s.text.trim().is_empty() {
                                return Err(
                                    "its `triggers` has an empty entry, which would match everything"
                                        .to_string(),
                                );
                            }
                            triggers.push(s.text);
                        }
                        _ => return Err("its `triggers` is not a list of strings".to_string()),
                    }
                }
                meta.triggers = Some(triggers);
            }
            "inputs" => {
                let Node::Seq(items) = value else {
                    return Err("its `inputs` is not a list".to_string());
                };
                meta.inputs = Some(items.len());
            }
            _ => {}
        }
    }
    Ok(meta)
}

/// A YAML value, as much of it as front matter needs.
#[derive(Debug, Clone)]
enum Node {
    Scalar(Scalar),
    Seq(Vec<Node>),
    Map(Vec<(Node, Node)>),
}

#[derive(Debug, Clone)]
struct Scalar {
    text: String,
    kind: ScalarKind,
}

/// How a scalar resolves under YAML 1.2's core schema.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum ScalarKind {
    Str,
    Null,
    /// A number or a boolean.
    Other,
}

/// A collection still being filled while its events arrive.
struct Open {
    node: Node,
    anchor: usize,
    /// Values built before this one began, to know its size when it ends.
    start: usize,
    key: Option<Node>,
}

/// Builds the single document of `yaml` from the parser's events, without recursion and with
/// a bound on values built, aliases counted at their full size (no "billion laughs").
fn yaml_tree(yaml: &str) -> Result<Option<Node>, String> {
    let invalid = |e: yaml_rust2::ScanError| {
        format!(
            "its front matter is not valid YAML ({} on line {} of the front matter)",
            e.info(),
            e.marker().line()
        )
    };
    let too_big = || {
        format!(
            "its front matter is too large: it makes more than {MAX_YAML_VALUES} YAML values, counting what aliases repeat"
        )
    };
    let mut parser = Parser::new_from_str(yaml);
    let mut stack: Vec<Open> = Vec::new();
    let mut anchors: HashMap<usize, (Node, usize)> = HashMap::new();
    let mut built = 0usize;
    let mut documents = 0usize;
    let mut root = None;
    loop {
        let (event, _) = parser.next_token().map_err(invalid)?;
        let (node, anchor, size) = match event {
            Event::StreamEnd => break,
            Event::DocumentStart => {
                documents += 1;
                if documents > 1 {
                    return Err("its front matter holds more than one YAML document".to_string());
                }
                continue;
            }
            Event::Nothing | Event::StreamStart | Event::DocumentEnd => continue,
            Event::SequenceStart(anchor, _) | Event::MappingStart(anchor, _) => {
                let node = if matches!(event, Event::SequenceStart(..)) {
                    Node::Seq(Vec::new())
                } else {
                    Node::Map(Vec::new())
                };
                stack.push(Open {
                    node,
                    anchor,
                    start: built,
                    key: None,
                });
                built += 1;
                if built > MAX_YAML_VALUES {
                    return Err(too_big());
                }
                continue;
            }
            Event::SequenceEnd | Event::MappingEnd => {
                let Some(open) = stack.pop() else {
                    return Err("its front matter is not valid YAML".to_string());
                };
                (open.node, open.anchor, built - open.start)
            }
            Event::Scalar(text, style, anchor, tag) => {
                built += 1;
                let kind = scalar_kind(&text, style, tag.as_ref());
                (Node::Scalar(Scalar { text, kind }), anchor, 1)
            }
            Event::Alias(id) => {
                let Some((node, size)) = anchors.get(&id) else {
                    return Err("its front matter uses an alias with no anchor".to_string());
                };
                built += size;
                if built > MAX_YAML_VALUES {
                    return Err(too_big());
                }
                (node.clone(), 0, *size)
            }
        };
        if built > MAX_YAML_VALUES {
            return Err(too_big());
        }
        if anchor > 0 {
            anchors.insert(anchor, (node.clone(), size));
        }
        match stack.last_mut() {
            None => root = Some(node),
            Some(Open {
                node: Node::Seq(items),
                ..
            }) => items.push(node),
            Some(Open {
                node: Node::Map(pairs),
                key,
                ..
            }) => match key.take() {
                None => *key = Some(node),
                Some(k) => pairs.push((k, node)),
            },
            Some(_) => return Err("its front matter is not valid YAML".to_string()),
        }
    }
    Ok(root)
}

/// Resolves a scalar as `yaml-rust2`'s own loader does: quoted or block scalars and unknown
/// tags are strings; plain ones by the core schema.
fn scalar_kind(text: &str, style: TScalarStyle, tag: Option<&Tag>) -> ScalarKind {
    if style != TScalarStyle::Plain {
        return ScalarKind::Str;
    }
    if let Some(tag) = tag {
        if tag.handle != "tag:yaml.org,2002:" {
            return ScalarKind::Str;
        }
        return match tag.suffix.as_str() {
            "null" => ScalarKind::Null,
            "bool" | "int" | "float" => ScalarKind::Other,
            _ => ScalarKind::Str,
        };
    }
    match Yaml::from_str(text) {
        Yaml::String(_) => ScalarKind::Str,
        Yaml::Null => ScalarKind::Null,
        _ => ScalarKind::Other,
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used, clippy::expect_used)]
    use super::*;
    use std::os::unix::fs::symlink;
    use tempfile::TempDir;

    /// Writes `files` (path, text) below a new temporary root.
    fn tree(files: &[(&str, &str)]) -> TempDir {
        let dir = tempfile::tempdir().unwrap();
        for (path, text) in files {
            write(dir.path(), path, text);
        }
        dir
    }

    fn write(root: &Path, path: &str, text: &str) {
        let file = root.join(path);
        fs::create_dir_all(file.parent().unwrap()).unwrap();
        fs::write(file, text).unwrap();
    }

    fn names_of_instructions(found: &Found) -> Vec<(&str, &str)> {
        found
            .instructions
            .iter()
            .map(|i| (i.name.as_str(), i.path.as_str()))
            .collect()
    }

    fn names_of_knowledge(found: &Found) -> Vec<(&str, &str)> {
        found
            .knowledge
            .iter()
            .map(|k| (k.name.as_str(), k.path.as_str()))
            .collect()
    }

    fn has_note(found: &Found, parts: &[&str]) -> bool {
        found
            .notes
            .iter()
            .any(|n| parts.iter().all(|p| n.contains(p)))
    }

    fn knowledge(name: &str, source: &str, chars: usize) -> Knowledge {
        Knowledge {
            name: name.to_string(),
            source: source.to_string(),
            path: format!(".openhands/microagents/{name}.md"),
            triggers: vec![name.to_string()],
            content: "k".repeat(chars),
        }
    }

    fn instruction(name: &str, chars: usize) -> Instruction {
        Instruction {
            name: name.to_string(),
            source: "acme/api".to_string(),
            path: format!("{name}.md"),
            content: format!("{}\n", "i".repeat(79)).repeat(chars / 80),
        }
    }

    #[test]
    fn a_repository_gives_every_kind_of_file_in_a_fixed_order() {
        let root = tree(&[
            ("AGENTS.md", "\n  Run `make check` before committing.\n\n"),
            (
                "agents.md",
                "the lower-case spelling is not read when AGENTS.md exists",
            ),
            (".cursorrules", "Prefer small functions."),
            (
                ".openhands/microagents/repo.md",
                "---\nagent: CodeActAgent\n---\n\nThis is the acme API.\n",
            ),
            (".openhands/microagents/zeta.md", "No front matter at all."),
            (
                ".openhands/microagents/style/python.md",
                "---\nname: python-style\n---\nUse type hints.",
            ),
            (
                ".openhands/microagents/deploy.md",
                "---\ntriggers:\n- Deploy\n- release\n---\nDeploys go through `make ship`.",
            ),
            (
                ".openhands/microagents/README.md",
                "How to write microagents.",
            ),
            (".openhands/microagents/notes.txt", "not markdown"),
            (
                ".openhands/skills/database.md",
                "---\ntriggers: [postgres, SQL]\n---\nMigrations live in `db/`.",
            ),
            (
                ".openhands/skills/conventions.md",
                "Commit messages say why.",
            ),
            (
                ".openhands/skills/pdf-tools/SKILL.md",
                "---\nname: pdf-tools\ndescription: Reads PDFs.\ntriggers: [pdf]\n---\nUse pdftotext.",
            ),
            (
                ".openhands/skills/pdf-tools/references/guide.md",
                "Material of the skill, not a skill of its own.",
            ),
            (
                ".openhands/skills/on-demand/SKILL.md",
                "---\nname: on-demand\ndescription: Opened when needed.\n---\nLong text.",
            ),
        ]);
        let found = read_repository(root.path(), "acme/api");

        assert_eq!(
            names_of_instructions(&found),
            vec![
                ("agents", "AGENTS.md"),
                ("cursorrules", ".cursorrules"),
                ("repo", ".openhands/microagents/repo.md"),
                ("python-style", ".openhands/microagents/style/python.md"),
                ("zeta", ".openhands/microagents/zeta.md"),
                ("conventions", ".openhands/skills/conventions.md"),
            ]
        );
        assert_eq!(
            found.instructions[0].content,
            "Run `make check` before committing."
        );
        assert_eq!(found.instructions[2].content, "This is the acme API.");
        assert!(found.instructions.iter().all(|i| i.source == "acme/api"));

        assert_eq!(
            names_of_knowledge(&found),
            vec![
                ("deploy", ".openhands/microagents/deploy.md"),
                ("database", ".openhands/skills/database.md"),
                ("pdf-tools", ".openhands/skills/pdf-tools/SKILL.md"),
            ]
        );
        assert_eq!(found.knowledge[0].triggers, vec!["Deploy", "release"]);
        assert_eq!(
            found.knowledge[0].content,
            "Deploys go through `make ship`."
        );
        assert_eq!(found.knowledge[1].triggers, vec!["postgres", "SQL"]);

        assert!(has_note(
            &found,
            &[".openhands/skills/on-demand/SKILL.md", "on demand"]
        ));
        assert!(!found.notes.iter().any(|n| n.contains("guide.md")));
        assert!(!found.notes.iter().any(|n| n.contains("README")));
        assert!(found.notes.iter().all(|n| n.starts_with("acme/api: ")));
    }

    #[test]
    fn triggers_match_case_insensitively_and_the_first_listed_wins() {
        let root = tree(&[(
            ".openhands/microagents/deploy.md",
            "---\ntriggers: [Deploy, release, Ünïcode]\n---\nShip it.",
        )]);
        let found = read_repository(root.path(), "acme/api");
        let deploy = &found.knowledge[0];
        assert_eq!(
            deploy.trigger_in("please DEPLOY the release"),
            Some("Deploy")
        );
        assert_eq!(deploy.trigger_in("cut a Release today"), Some("release"));
        assert_eq!(deploy.trigger_in("ÜNÏCODE names"), Some("Ünïcode"));
        assert_eq!(deploy.trigger_in("fix the login page"), None);
        assert_eq!(deploy.trigger_in(""), None);

        let blank = Knowledge {
            triggers: vec![" ".to_string(), "x".to_string()],
            ..deploy.clone()
        };
        assert_eq!(blank.trigger_in("nothing here"), None);
    }

    #[test]
    fn the_agents_file_falls_back_through_its_spellings() {
        let root = tree(&[
            ("agent.md", "From agent.md."),
            ("AGENT.md", "From AGENT.md."),
        ]);
        let found = read_repository(root.path(), "acme/api");
        assert_eq!(names_of_instructions(&found), vec![("agents", "AGENT.md")]);

        let root = tree(&[("agent.md", "---\ntriggers: [x]\n---\nKept whole.")]);
        let found = read_repository(root.path(), "acme/api");
        assert_eq!(names_of_instructions(&found), vec![("agents", "agent.md")]);
        // Another tool's format: taken whole, front matter and all.
        assert!(found.instructions[0].content.starts_with("---\ntriggers"));
    }

    #[test]
    fn malformed_front_matter_skips_the_file_and_says_why() {
        let root = tree(&[
            (
                ".openhands/microagents/broken.md",
                "---\ntriggers: [a, b\n---\nBody.",
            ),
            (
                ".openhands/microagents/word.md",
                "---\ntriggers: git\n---\nBody.",
            ),
            (
                ".openhands/microagents/number.md",
                "---\ntriggers: [git, 42]\n---\nBody.",
            ),
            (
                ".openhands/microagents/nested.md",
                "---\ntriggers: [[git]]\n---\nBody.",
            ),
            (
                ".openhands/microagents/empty.md",
                "---\ntriggers: ['']\n---\nBody.",
            ),
            (
                ".openhands/microagents/nulls.md",
                "---\ntriggers:\n---\nBody.",
            ),
            (
                ".openhands/microagents/named.md",
                "---\nname: [a, b]\n---\nBody.",
            ),
            (
                ".openhands/microagents/two.md",
                "---\na: 1\n...\nb: 2\n---\nBody.",
            ),
            (
                ".openhands/microagents/fine.md",
                "---\ntriggers: ['42', \"git\"]\n---\nBody.",
            ),
        ]);
        let found = read_repository(root.path(), "acme/api");
        assert_eq!(
            names_of_knowledge(&found),
            vec![("fine", ".openhands/microagents/fine.md")]
        );
        assert_eq!(found.knowledge[0].triggers, vec!["42", "git"]);
        assert!(found.instructions.is_empty());
        assert!(has_note(
            &found,
            &["broken.md is skipped", "not valid YAML", "line"]
        ));
        assert!(has_note(
            &found,
            &["word.md is skipped", "not a list of strings"]
        ));
        assert!(has_note(
            &found,
            &["number.md is skipped", "not a list of strings"]
        ));
        assert!(has_note(
            &found,
            &["nested.md is skipped", "not a list of strings"]
        ));
        assert!(has_note(&found, &["empty.md is skipped", "empty entry"]));
        assert!(has_note(
            &found,
            &["nulls.md is skipped", "not a list of strings"]
        ));
        assert!(has_note(&found, &["named.md is skipped", "`name`"]));
        assert!(has_note(
            &found,
            &["two.md is skipped", "more than one YAML document"]
        ));
    }

    #[test]
    fn front_matter_follows_python_frontmatter() {
        // No closing line: no front matter, the whole text is the body.
        assert_eq!(
            split_front_matter("---\ntriggers: [a]\nBody"),
            (None, "---\ntriggers: [a]\nBody")
        );
        // Leading blank lines, longer boundaries, trailing spaces and CRLF are all accepted.
        assert_eq!(
            split_front_matter("\n\n----  \r\nname: x\r\n-----\r\nBody\r\n"),
            (Some("name: x\r\n"), "Body\r\n")
        );
        // Dashes further down are the body's own.
        assert_eq!(
            split_front_matter("Title\n---\nText"),
            (None, "Title\n---\nText")
        );
        assert_eq!(split_front_matter("---"), (None, "---"));

        // Front matter that is not a mapping is ignored, as upstream does.
        assert_eq!(parse_meta("- a\n- b\n"), Ok(Meta::default()));
        assert_eq!(parse_meta(""), Ok(Meta::default()));
        // Unknown keys are ignored; numbers as names are read as written; an empty list of
        // triggers means none.
        assert_eq!(
            parse_meta("name: 123\ntype: knowledge\nversion: 1.0.0\ntriggers: []\n"),
            Ok(Meta {
                name: Some("123".to_string()),
                triggers: Some(Vec::new()),
                inputs: None,
            })
        );
        // Anchors and aliases within bounds work.
        assert_eq!(
            parse_meta("base: &t [git, github]\ntriggers: *t\n")
                .unwrap()
                .triggers,
            Some(vec!["git".to_string(), "github".to_string()])
        );
    }

    #[test]
    fn aliases_that_multiply_are_refused_quickly() {
        let mut yaml = String::from("a0: &a0 [x, x, x, x, x, x, x, x, x, x]\n");
        for i in 1..12 {
            let p = i - 1;
            yaml.push_str(&format!(
                "a{i}: &a{i} [*a{p}, *a{p}, *a{p}, *a{p}, *a{p}, *a{p}, *a{p}, *a{p}, *a{p}, *a{p}]\n"
            ));
        }
        yaml.push_str("triggers: [boom]\n");
        let started = std::time::Instant::now();
        let reason = parse_meta(&yaml).unwrap_err();
        assert!(reason.contains("too large"), "{reason}");
        assert!(started.elapsed() < std::time::Duration::from_secs(2));

        let root = tree(&[(
            ".openhands/microagents/laughs.md",
            &format!("---\n{yaml}---\nBody"),
        )]);
        let found = read_repository(root.path(), "acme/api");
        assert!(found.is_empty());
        assert!(has_note(&found, &["laughs.md is skipped", "too large"]));
    }

    #[test]
    fn no_input_makes_the_front_matter_reader_panic() {
        // A small deterministic generator over YAML's special characters.
        let alphabet: Vec<char> = "-:[]{},&*!|>'\"#%@`? \n\tax0~\\\u{feff}é".chars().collect();
        let mut state: u64 = 0x9e37_79b9_7f4a_7c15;
        for _ in 0..3000 {
            let mut text = String::from("---\n");
            let len = (state % 60) as usize;
            for _ in 0..len {
                state ^= state << 13;
                state ^= state >> 7;
                state ^= state << 17;
                text.push(alphabet[(state % alphabet.len() as u64) as usize]);
            }
            text.push_str("\n---\nbody");
            let (yaml, _) = split_front_matter(&text);
            if let Some(yaml) = yaml {
                let _ = parse_meta(yaml);
            }
        }
        for yaml in [
            "[[[[[[[[[[",
            "{a: [b, {c: [d",
            "&a [*a]",
            "*unknown",
            "? [a]\n: b",
            "!!binary x",
        ] {
            let _ = parse_meta(yaml);
        }
        let deep = format!("{}{}", "[".repeat(5000), "]".repeat(5000));
        let _ = parse_meta(&deep);
    }

    #[test]
    fn microagents_with_inputs_are_called_up_by_their_name() {
        let root = tree(&[(
            ".openhands/microagents/fix_test.md",
            "---\nname: fix_test\ninputs:\n  - name: TEST\n    description: the failing test\n---\nMake ${TEST} pass.",
        )]);
        let found = read_repository(root.path(), "acme/api");
        assert!(found.instructions.is_empty());
        let called = &found.knowledge[0];
        assert_eq!(called.triggers, vec!["/fix_test"]);
        assert_eq!(called.trigger_in("/fix_test for me"), Some("/fix_test"));
        assert!(
            called
                .content
                .starts_with("Make ${TEST} pass.\n\nIf the user has not given")
        );
    }

    #[test]
    fn symbolic_links_are_never_followed() {
        let outside = tree(&[
            ("secret.md", "---\ntriggers: [x]\n---\nSECRET"),
            ("agents/AGENTS.md", "SECRET"),
            ("dir/inner.md", "SECRET"),
        ]);
        let root = tree(&[(".openhands/microagents/real.md", "Real.")]);
        let base = root.path();
        let o = outside.path();
        symlink(o.join("agents/AGENTS.md"), base.join("AGENTS.md")).unwrap();
        symlink(o.join("secret.md"), base.join(".cursorrules")).unwrap();
        symlink(
            o.join("secret.md"),
            base.join(".openhands/microagents/evil.md"),
        )
        .unwrap();
        symlink(o.join("dir"), base.join(".openhands/microagents/linked")).unwrap();
        fs::create_dir_all(base.join("x")).unwrap();
        symlink(o.join("dir"), base.join(".openhands/skills")).unwrap();

        let found = read_repository(base, "acme/api");
        assert_eq!(
            names_of_instructions(&found),
            vec![("real", ".openhands/microagents/real.md")]
        );
        assert!(found.knowledge.is_empty());
        let everything = serde_json::to_string(&found).unwrap();
        assert!(!everything.contains("SECRET"));
        for path in [
            "AGENTS.md",
            ".cursorrules",
            ".openhands/microagents/evil.md",
            ".openhands/microagents/linked",
            ".openhands/skills",
        ] {
            assert!(
                has_note(
                    &found,
                    &[&format!("{path} is skipped: it is a symbolic link")]
                ),
                "{path}: {:?}",
                found.notes
            );
        }

        // A linked `.openhands` is not entered at all.
        let root = tree(&[]);
        symlink(o, root.path().join(".openhands")).unwrap();
        let found = read_repository(root.path(), "acme/api");
        assert!(found.is_empty());
        assert!(has_note(
            &found,
            &[".openhands is skipped: it is a symbolic link"]
        ));
    }

    #[test]
    fn special_files_oversized_files_and_non_utf8_files_are_not_read() {
        let root = tree(&[(".openhands/microagents/ok.md", "Fine.")]);
        let dir = root.path().join(".openhands/microagents");
        let status = std::process::Command::new("mkfifo")
            .arg(dir.join("pipe.md"))
            .status()
            .unwrap();
        assert!(status.success());
        fs::write(dir.join("latin1.md"), b"caf\xe9").unwrap();
        fs::write(dir.join("huge.md"), "x".repeat(MAX_FILE_BYTES as usize + 1)).unwrap();

        let found = read_repository(root.path(), "acme/api");
        assert_eq!(
            names_of_instructions(&found),
            vec![("ok", ".openhands/microagents/ok.md")]
        );
        assert!(has_note(
            &found,
            &["pipe.md is skipped: it is not a regular file"]
        ));
        assert!(has_note(
            &found,
            &["latin1.md is skipped: it is not UTF-8 text"]
        ));
        assert!(has_note(
            &found,
            &["huge.md is skipped", "1000001 bytes", "1 MB"]
        ));
    }

    #[test]
    fn a_long_file_is_cut_at_a_line_with_a_visible_note() {
        let line = format!("{}\n", "a".repeat(99));
        let long = line.repeat(850);
        let root = tree(&[("AGENTS.md", &long)]);
        let found = read_repository(root.path(), "acme/api");
        let agents = &found.instructions[0];
        let total = long.trim().chars().count();
        assert_eq!(total, 84_999);
        assert!(agents.content.chars().count() <= MAX_FILE_CHARS);
        let (kept, marker) = agents.content.split_once("\n\n[").unwrap();
        assert!(kept.ends_with(&"a".repeat(99)));
        assert_eq!(kept.chars().count() % 100, 99, "cut inside a line");
        assert!(marker.contains("AGENTS.md is cut here: it has 84999 characters"));
        let kept_chars = kept.chars().count();
        assert!(has_note(
            &found,
            &[&format!(
                "acme/api: AGENTS.md is cut to {kept_chars} of its 84999 characters"
            )]
        ));

        // With no line break near the limit, the cut falls at the limit itself.
        let one_line = "é".repeat(30_000);
        let root = tree(&[(".openhands/microagents/wide.md", &one_line)]);
        let found = read_repository(root.path(), "acme/api");
        let wide = &found.instructions[0].content;
        assert!(wide.chars().count() <= MAX_FILE_CHARS);
        assert!(wide.chars().count() > MAX_FILE_CHARS - 200);
    }

    #[test]
    fn the_walk_is_bounded_in_depth_and_in_entries() {
        let mut deep = String::from(".openhands/microagents");
        for i in 1..=9 {
            deep.push_str(&format!("/d{i}"));
        }
        let root = tree(&[
            (
                ".openhands/microagents/d1/d2/d3/d4/d5/d6/d7/d8/ok.md",
                "Eight deep.",
            ),
            (&format!("{deep}/too-deep.md"), "Nine deep."),
        ]);
        let found = read_repository(root.path(), "acme/api");
        assert_eq!(
            names_of_instructions(&found),
            vec![(
                "d1/d2/d3/d4/d5/d6/d7/d8/ok",
                ".openhands/microagents/d1/d2/d3/d4/d5/d6/d7/d8/ok.md"
            )]
        );
        assert!(has_note(
            &found,
            &["d8/d9 is skipped: it is more than 8 folders deep"]
        ));

        let root = tree(&[]);
        for i in 0..600 {
            write(
                root.path(),
                &format!(".openhands/microagents/f{i:03}.md"),
                "x",
            );
        }
        let found = read_repository(root.path(), "acme/api");
        assert!(found.instructions.len() <= MAX_ENTRIES);
        assert!(found.instructions.len() > 400);
        assert!(has_note(&found, &["stopped after 500 directory entries"]));
    }

    #[test]
    fn a_missing_root_is_simply_empty() {
        let root = tempfile::tempdir().unwrap();
        let gone = root.path().join("not-cloned");
        assert_eq!(read_repository(&gone, "acme/api"), Found::default());
        assert_eq!(read_skills_dir(&gone, "service"), Found::default());

        let file = root.path().join("a-file");
        fs::write(&file, "x").unwrap();
        let found = read_repository(&file, "acme/api");
        assert!(found.is_empty());
        assert!(has_note(&found, &["not a directory"]));
    }

    #[test]
    fn knowledge_names_are_unique_within_a_repository_and_skills_win() {
        let root = tree(&[
            (
                ".openhands/microagents/db.md",
                "---\ntriggers: [db]\n---\nFrom microagents.",
            ),
            (
                ".openhands/skills/db.md",
                "---\ntriggers: [db]\n---\nFrom skills.",
            ),
        ]);
        let found = read_repository(root.path(), "acme/api");
        assert_eq!(
            names_of_knowledge(&found),
            vec![("db", ".openhands/skills/db.md")]
        );
        assert!(has_note(
            &found,
            &[
                ".openhands/microagents/db.md is skipped",
                "already given by .openhands/skills/db.md"
            ]
        ));

        // Within one folder the first by path wins, whatever order the walk met them in.
        let root = tree(&[
            ("z.md", "---\nname: dup\ntriggers: [x]\n---\nLast by path."),
            (
                "a/b.md",
                "---\nname: dup\ntriggers: [x]\n---\nFirst by path.",
            ),
        ]);
        let found = read_skills_dir(root.path(), "service");
        assert_eq!(names_of_knowledge(&found), vec![("dup", "a/b.md")]);
        assert!(has_note(
            &found,
            &["z.md is skipped", "already given by a/b.md"]
        ));
    }

    #[test]
    fn an_organisation_repository_keeps_its_microagents_at_the_top() {
        let files = [
            ("AGENTS.md", "About the .openhands repository itself."),
            ("microagents/repo.md", "Every acme repository uses tabs."),
            (
                "microagents/security.md",
                "---\ntriggers: [secret]\n---\nNever log secrets.",
            ),
        ];
        let root = tree(&files);
        let found = read_repository(root.path(), "acme/.openhands");
        assert_eq!(
            names_of_instructions(&found),
            vec![("repo", "microagents/repo.md")]
        );
        assert_eq!(
            names_of_knowledge(&found),
            vec![("security", "microagents/security.md")]
        );
        assert_eq!(found.instructions[0].source, "acme/.openhands");

        let found = read_repository(root.path(), "acme/openhands-config");
        assert_eq!(found.instructions.len(), 1);

        // An ordinary repository's `microagents/` folder is its own business.
        let found = read_repository(root.path(), "acme/api");
        assert_eq!(names_of_instructions(&found), vec![("agents", "AGENTS.md")]);
        assert!(found.knowledge.is_empty());
    }

    #[test]
    fn the_service_directory_reads_every_markdown_file() {
        let root = tree(&[
            ("house-rules.md", "Be kind in comments."),
            (
                "lang/rust.md",
                "---\ntriggers: [cargo, rust]\n---\nRun clippy.",
            ),
            (
                "lang/go.md",
                "---\nname: golang\ntriggers: [go.mod]\n---\nRun go vet.",
            ),
            ("README.md", "About this directory."),
            (
                "review/SKILL.md",
                "---\ntriggers: [review]\n---\nReview carefully.",
            ),
            ("review/references/checklist.md", "Material."),
        ]);
        let found = read_skills_dir(root.path(), "service");
        assert_eq!(
            names_of_instructions(&found),
            vec![("house-rules", "house-rules.md")]
        );
        assert_eq!(
            names_of_knowledge(&found),
            vec![
                ("golang", "lang/go.md"),
                ("lang/rust", "lang/rust.md"),
                ("review", "review/SKILL.md"),
            ]
        );
        assert!(found.knowledge.iter().all(|k| k.source == "service"));
    }

    #[test]
    fn upstream_microagents_parse_as_upstream_reads_them() {
        let fixtures = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures/microagents");
        let root = tree(&[]);
        let dir = root.path().join(".openhands/microagents");
        fs::create_dir_all(&dir).unwrap();
        for name in ["github.md", "documentation.md"] {
            fs::copy(fixtures.join(name), dir.join(name)).unwrap();
        }
        let found = read_repository(root.path(), "acme/api");
        assert!(found.instructions.is_empty());
        assert!(found.notes.is_empty(), "{:?}", found.notes);
        assert_eq!(
            names_of_knowledge(&found),
            vec![
                ("documentation", ".openhands/microagents/documentation.md"),
                ("github", ".openhands/microagents/github.md"),
            ]
        );
        let documentation = &found.knowledge[0];
        assert_eq!(
            documentation.triggers,
            vec!["documentation", "docs", "document"]
        );
        assert!(
            documentation
                .content
                .starts_with("# Documentation Guidelines")
        );
        assert!(
            documentation
                .content
                .ends_with("potentially incorrect information.")
        );

        let github = &found.knowledge[1];
        assert_eq!(github.triggers, vec!["github", "git"]);
        assert!(
            github
                .content
                .starts_with("You have access to an environment variable")
        );
        assert!(
            github
                .content
                .ends_with("git push -u origin create-widget\n```")
        );
        assert_eq!(
            github.trigger_in("Open a PR on GitHub please"),
            Some("github")
        );
        assert_eq!(github.trigger_in("then git push"), Some("git"));
        assert_eq!(github.trigger_in("deploy to production"), None);
    }

    #[test]
    fn merging_keeps_the_first_source_of_a_knowledge_name() {
        let mut repo = Found {
            instructions: vec![instruction("repo", 800)],
            knowledge: vec![knowledge("github", "acme/api", 10)],
            notes: vec!["acme/api: something".to_string()],
        };
        let org = Found {
            instructions: vec![instruction("org", 800)],
            knowledge: vec![
                knowledge("github", "acme/.openhands", 10),
                knowledge("security", "acme/.openhands", 10),
            ],
            notes: vec!["acme/.openhands: other".to_string()],
        };
        repo.merge(org);
        repo.merge(Found {
            knowledge: vec![knowledge("security", "service", 10)],
            ..Found::default()
        });
        assert_eq!(
            repo.instructions
                .iter()
                .map(|i| i.name.as_str())
                .collect::<Vec<_>>(),
            vec!["repo", "org"]
        );
        assert_eq!(
            repo.knowledge
                .iter()
                .map(|k| (k.name.as_str(), k.source.as_str()))
                .collect::<Vec<_>>(),
            vec![("github", "acme/api"), ("security", "acme/.openhands")]
        );
        assert!(has_note(
            &repo,
            &[
                "acme/.openhands: the knowledge microagent `github`",
                "acme/api already has one"
            ]
        ));
        assert!(has_note(
            &repo,
            &[
                "service: the knowledge microagent `security`",
                "acme/.openhands already has one"
            ]
        ));
        assert!(has_note(&repo, &["acme/api: something"]));
        assert!(has_note(&repo, &["acme/.openhands: other"]));
    }

    #[test]
    fn totals_are_limited_with_notes() {
        let mut found = Found {
            instructions: (0..4)
                .map(|i| instruction(&format!("i{i}"), 19_200))
                .collect(),
            ..Found::default()
        };
        found.limit();
        let sizes: Vec<usize> = found
            .instructions
            .iter()
            .map(|i| i.content.chars().count())
            .collect();
        assert_eq!(sizes.len(), 4);
        assert_eq!(&sizes[..3], &[19_200, 19_200, 19_200]);
        assert!(sizes.iter().sum::<usize>() <= MAX_INSTRUCTION_CHARS);
        assert!(
            found.instructions[3]
                .content
                .contains("is cut here to keep the repository instructions")
        );
        assert!(has_note(
            &found,
            &["acme/api: i3.md is cut to", "of its 19200 characters"]
        ));

        // Once the total is spent, later files are left out whole.
        let mut found = Found {
            instructions: (0..5)
                .map(|i| instruction(&format!("j{i}"), 20_000))
                .collect(),
            ..Found::default()
        };
        found.limit();
        assert_eq!(found.instructions.len(), 3);
        assert!(has_note(
            &found,
            &[
                "2 instruction file(s) are left out",
                "j3.md (acme/api), j4.md (acme/api)"
            ]
        ));
        let again = found.clone();
        found.limit();
        assert_eq!(found, again, "limiting twice changes nothing");

        let mut found = Found {
            knowledge: (0..101)
                .map(|i| knowledge(&format!("k{i:03}"), "service", 10))
                .collect(),
            ..Found::default()
        };
        found.limit();
        assert_eq!(found.knowledge.len(), MAX_KNOWLEDGE_COUNT);
        assert_eq!(found.knowledge[99].name, "k099");
        assert!(has_note(
            &found,
            &[
                "1 knowledge microagent(s) are left out beyond the first 100",
                "`k100`"
            ]
        ));

        let mut found = Found {
            knowledge: vec![
                knowledge("a", "service", 19_000),
                knowledge("b", "service", 190_000),
                knowledge("c", "service", 5_000),
            ],
            ..Found::default()
        };
        found.limit();
        assert_eq!(
            found
                .knowledge
                .iter()
                .map(|k| k.name.as_str())
                .collect::<Vec<_>>(),
            vec!["a", "c"]
        );
        assert!(has_note(
            &found,
            &["within 200000 characters", "`b` (service"]
        ));
    }

    #[test]
    fn notes_alone_count_as_empty() {
        let found = Found {
            notes: vec!["acme/api: x.md is skipped".to_string()],
            ..Found::default()
        };
        assert!(found.is_empty());
        assert!(Found::default().is_empty());
        assert!(
            !Found {
                knowledge: vec![knowledge("a", "service", 1)],
                ..Found::default()
            }
            .is_empty()
        );
    }
}
