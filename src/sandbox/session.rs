//! The long-lived bash session of a sandbox, as in OpenHands: `cd`, exported variables and
//! activated virtualenvs persist between commands.
//!
//! bash runs interactively on a pseudo-terminal (a Docker exec with a TTY, or a local pty), so
//! C-c, C-z and C-d reach the running program as they would from a keyboard. Echo is off and the
//! prompt is a marker carrying a per-session random nonce and the exit status (`$?`): the
//! reader below splits the terminal's byte stream into command output and "prompt, exit code N"
//! events. A program cannot fake the marker without knowing the nonce.

use std::pin::Pin;
use std::time::Duration;

use bytes::Bytes;
use futures::{Stream, StreamExt};
use tokio::io::{AsyncWrite, AsyncWriteExt};
use tokio::sync::mpsc;
use tokio::time::Instant;

use super::output::OutputBuffer;
use super::{CommandOutcome, CommandRequest, OutputSink, SandboxError, SandboxResult};

/// A terminal line longer than this does not fit the kernel's canonical-mode line buffer (4096
/// bytes); such commands are sent as a script file instead (see `needs_script`).
pub const MAX_TYPED_LINE: usize = 4000;
/// Events buffered between the terminal reader and the caller. When nobody reads (a command
/// left running in the background), the reader stops and the program blocks on its output, as
/// with a terminal that is not being read.
const EVENT_BUFFER: usize = 1024;
/// How long an interrupted command gets to return to the prompt before the session is dropped.
const INTERRUPT_GRACE: Duration = Duration::from_secs(3);

/// The program that runs the session: bash without rc files or line editing, echo off, the
/// marker prompt given through the environment (see `environment`). The prompt travels as
/// `OPENHANDS_PS1` and becomes `PS1` only for the interactive bash: the non-interactive bash
/// that runs `stty` unsets any `PS1` and `PS2` it inherits. `ShellSession::start` then
/// hides both from the programs the shell runs.
pub fn shell_command() -> Vec<String> {
    vec![
        "/bin/bash".into(),
        "-c".into(),
        "stty -echo -onlcr cols 200 rows 50 2>/dev/null; PS1=\"$OPENHANDS_PS1\" PS2= exec /bin/bash --noprofile --norc --noediting -i".into(),
    ]
}

/// Environment of the session's shell.
pub fn environment(nonce: &str) -> Vec<String> {
    vec![
        format!("OPENHANDS_PS1=\n__OH_{nonce}_$?__\n"),
        "HISTFILE=/dev/null".into(),
        "TERM=xterm-256color".into(),
        "PAGER=cat".into(),
        "GIT_PAGER=cat".into(),
        "PYTHONUNBUFFERED=1".into(),
        // Activating a virtualenv or conda env must not rewrite the marker prompt.
        "VIRTUAL_ENV_DISABLE_PROMPT=1".into(),
        "CONDA_CHANGEPS1=false".into(),
        "DEBIAN_FRONTEND=noninteractive".into(),
    ]
}

/// A fresh random nonce for a session's prompt marker.
pub fn new_nonce() -> String {
    uuid::Uuid::new_v4().simple().to_string()
}

/// Whether `command` must go through a script file because a line is too long to type.
pub fn needs_script(command: &str) -> bool {
    command.lines().any(|line| line.len() > MAX_TYPED_LINE)
}

/// Timeouts of the shell tool.
#[derive(Debug, Clone, Copy)]
pub struct Timeouts {
    /// Return "still running" after this long without new output.
    pub no_output: Duration,
    /// Interrupt a command after this long when the call gives no timeout of its own.
    pub command: Duration,
}

#[derive(Debug)]
enum Event {
    Output(Bytes),
    Prompt(i64),
    Closed,
}

pub type TerminalInput = Pin<Box<dyn AsyncWrite + Send>>;
pub type TerminalOutput = Pin<Box<dyn Stream<Item = std::io::Result<Bytes>> + Send>>;

pub struct ShellSession {
    input: TerminalInput,
    events: mpsc::Receiver<Event>,
    /// A command was started and has not returned to the prompt.
    running: bool,
    /// The shell exited or stopped answering; the owner starts a new session.
    closed: bool,
}

impl ShellSession {
    /// Starts reading the terminal and waits for the shell's first prompt.
    pub async fn start(
        input: TerminalInput,
        output: TerminalOutput,
        nonce: &str,
        startup_timeout: Duration,
    ) -> SandboxResult<ShellSession> {
        let (sender, events) = mpsc::channel(EVENT_BUFFER);
        tokio::spawn(read_terminal(output, format!("__OH_{nonce}_"), sender));
        let mut session = ShellSession {
            input,
            events,
            running: true,
            closed: false,
        };
        let deadline = Instant::now() + startup_timeout;
        session.await_startup_prompt(deadline, "start").await?;
        // Programs run from the shell must not learn the marker (they could fake a prompt).
        session
            .type_text(b"export -n PS1 PS2; unset OPENHANDS_PS1\n")
            .await?;
        session
            .await_startup_prompt(deadline, "take its first command")
            .await?;
        session.running = false;
        Ok(session)
    }

    /// Waits for a prompt while the session starts; what came before it is only shown in the
    /// error when none comes.
    async fn await_startup_prompt(&mut self, deadline: Instant, step: &str) -> SandboxResult<()> {
        let mut greeting = OutputBuffer::new();
        loop {
            match tokio::time::timeout_at(deadline, self.events.recv()).await {
                Ok(Some(Event::Prompt(_))) => return Ok(()),
                Ok(Some(Event::Output(bytes))) => greeting.push(&bytes),
                Ok(Some(Event::Closed)) | Ok(None) => {
                    return Err(SandboxError::Other(anyhow::anyhow!(
                        "the sandbox shell exited instead of answering ({step}): {}",
                        greeting.finish().trim()
                    )));
                }
                Err(_) => {
                    return Err(SandboxError::Other(anyhow::anyhow!(
                        "the sandbox shell did not answer in time ({step}): {}",
                        greeting.finish().trim()
                    )));
                }
            }
        }
    }

    /// Whether the session can take commands; a closed one is replaced by its owner.
    pub fn is_open(&self) -> bool {
        !self.closed
    }

    pub fn is_running(&self) -> bool {
        self.running
    }

    /// One call of the shell tool. `script_path`, when given, is where the owner wrote a
    /// command too long to type (see `needs_script`); it is sourced in this shell.
    pub async fn execute(
        &mut self,
        request: &CommandRequest,
        script_path: Option<&str>,
        timeouts: Timeouts,
        sink: Option<&OutputSink>,
    ) -> SandboxResult<CommandOutcome> {
        if self.closed {
            return Err(SandboxError::Other(anyhow::anyhow!(
                "the shell session has ended"
            )));
        }
        let command = request.command.trim_end_matches(['\n', '\r']);
        if request.is_input {
            if !self.running {
                return Err(SandboxError::NoRunningCommand);
            }
            self.type_text(&input_bytes(command)).await?;
        } else if command.trim().is_empty() {
            if !self.running {
                return Err(SandboxError::NoRunningCommand);
            }
        } else {
            if self.running {
                return Err(SandboxError::Busy);
            }
            // Drop what arrived while nobody was listening (output of background jobs).
            while let Ok(event) = self.events.try_recv() {
                if matches!(event, Event::Closed) {
                    self.closed = true;
                    return Err(SandboxError::Other(anyhow::anyhow!(
                        "the shell session has ended"
                    )));
                }
            }
            let typed = match script_path {
                Some(path) => format!("source {path}\n"),
                // A group, so a multi-line command returns to the prompt once, at its end.
                None if command.contains('\n') => format!("{{ {command}\n}}\n"),
                None => format!("{command}\n"),
            };
            self.type_text(typed.as_bytes()).await?;
            self.running = true;
        }
        self.wait(request.timeout, timeouts, sink).await
    }

    async fn type_text(&mut self, bytes: &[u8]) -> SandboxResult<()> {
        let written = async {
            self.input.write_all(bytes).await?;
            self.input.flush().await
        }
        .await;
        if let Err(error) = written {
            self.closed = true;
            return Err(SandboxError::Other(anyhow::anyhow!(
                "cannot write to the sandbox shell: {error}"
            )));
        }
        Ok(())
    }

    async fn wait(
        &mut self,
        blocking_timeout: Option<Duration>,
        timeouts: Timeouts,
        sink: Option<&OutputSink>,
    ) -> SandboxResult<CommandOutcome> {
        let limit = blocking_timeout.unwrap_or(timeouts.command);
        let deadline = Instant::now() + limit;
        let mut output = OutputBuffer::new();
        let mut text = Utf8Stream::default();
        loop {
            let now = Instant::now();
            let wait_until = match blocking_timeout {
                Some(_) => deadline,
                None => deadline.min(now + timeouts.no_output),
            };
            match tokio::time::timeout_at(wait_until, self.events.recv()).await {
                Ok(Some(Event::Output(bytes))) => {
                    output.push(&bytes);
                    if let Some(sink) = sink {
                        let piece = text.push(&bytes);
                        if !piece.is_empty() {
                            let _ = sink.send(piece);
                        }
                    }
                }
                Ok(Some(Event::Prompt(exit_code))) => {
                    self.running = false;
                    return Ok(finished(output, exit_code));
                }
                Ok(Some(Event::Closed)) | Ok(None) => {
                    self.running = false;
                    self.closed = true;
                    let mut out = output.finish();
                    push_note(
                        &mut out,
                        "[The shell exited; the next command starts a new session.]",
                    );
                    return Ok(CommandOutcome {
                        output: out,
                        exit_code: -1,
                        still_running: false,
                        timed_out: false,
                    });
                }
                Err(_) if Instant::now() >= deadline => {
                    return self.interrupt(output, limit).await;
                }
                Err(_) => {
                    let mut out = output.finish();
                    push_note(
                        &mut out,
                        &format!(
                            "[The command has printed nothing new for {} seconds and is still running. Send input with is_input=true (text, or C-c to interrupt), or an empty command to keep waiting.]",
                            timeouts.no_output.as_secs()
                        ),
                    );
                    return Ok(CommandOutcome {
                        output: out,
                        exit_code: -1,
                        still_running: true,
                        timed_out: false,
                    });
                }
            }
        }
    }

    /// The hard timeout: C-c, and if the shell does not come back, give the session up.
    async fn interrupt(
        &mut self,
        mut output: OutputBuffer,
        limit: Duration,
    ) -> SandboxResult<CommandOutcome> {
        let note = format!(
            "[The command timed out after {} seconds and was interrupted.]",
            limit.as_secs_f64()
        );
        if self.type_text(b"\x03").await.is_ok() {
            let deadline = Instant::now() + INTERRUPT_GRACE;
            while let Ok(Some(event)) = tokio::time::timeout_at(deadline, self.events.recv()).await
            {
                match event {
                    Event::Output(bytes) => output.push(&bytes),
                    Event::Prompt(exit_code) => {
                        self.running = false;
                        let mut outcome = finished(output, exit_code);
                        push_note(&mut outcome.output, &note);
                        outcome.timed_out = true;
                        return Ok(outcome);
                    }
                    Event::Closed => break,
                }
            }
        }
        self.running = false;
        self.closed = true;
        let mut out = output.finish();
        push_note(
            &mut out,
            &format!("{note} [It did not stop; the shell session was restarted.]"),
        );
        Ok(CommandOutcome {
            output: out,
            exit_code: -1,
            still_running: false,
            timed_out: true,
        })
    }
}

fn finished(output: OutputBuffer, exit_code: i64) -> CommandOutcome {
    CommandOutcome {
        output: output.finish(),
        exit_code,
        still_running: false,
        timed_out: false,
    }
}

fn push_note(output: &mut String, note: &str) {
    if !output.is_empty() && !output.ends_with('\n') {
        output.push('\n');
    }
    output.push_str(note);
}

/// What `is_input` text becomes on the terminal: the control keys, or the text and Enter.
fn input_bytes(text: &str) -> Vec<u8> {
    match text.trim() {
        "C-c" => vec![0x03],
        "C-d" => vec![0x04],
        "C-z" => vec![0x1a],
        _ => format!("{text}\n").into_bytes(),
    }
}

/// Splits the terminal's bytes into output and prompt events.
async fn read_terminal(mut output: TerminalOutput, marker: String, events: mpsc::Sender<Event>) {
    let mut scanner = PromptScanner::new(marker);
    while let Some(chunk) = output.next().await {
        let Ok(chunk) = chunk else { break };
        for event in scanner.push(&chunk) {
            if events.send(event).await.is_err() {
                return;
            }
        }
    }
    let rest = scanner.flush();
    if !rest.is_empty() {
        let _ = events.send(Event::Output(rest)).await;
    }
    let _ = events.send(Event::Closed).await;
}

/// Finds `\n<marker><exit code>__\n` prompts in a byte stream split at arbitrary points.
struct PromptScanner {
    marker: Vec<u8>,
    pending: Vec<u8>,
    /// A prompt ended a chunk before its closing newline: drop that newline when it comes.
    skip_newline: bool,
}

enum Code {
    Complete { code: i64, length: usize },
    Incomplete,
    Malformed,
}

impl PromptScanner {
    fn new(marker: String) -> Self {
        PromptScanner {
            marker: marker.into_bytes(),
            pending: Vec::new(),
            skip_newline: false,
        }
    }

    fn push(&mut self, mut chunk: &[u8]) -> Vec<Event> {
        if self.skip_newline && !chunk.is_empty() {
            self.skip_newline = false;
            if chunk[0] == b'\n' {
                chunk = &chunk[1..];
            }
        }
        self.pending.extend_from_slice(chunk);
        let mut events = Vec::new();
        loop {
            let Some(at) = find(&self.pending, &self.marker) else {
                // Hold back a tail that may be the start of a marker (with its newline).
                let keep = partial_marker_len(&self.pending, &self.marker);
                let emit = self.pending.len() - keep;
                if emit > 0 {
                    let bytes: Vec<u8> = self.pending.drain(..emit).collect();
                    events.push(Event::Output(Bytes::from(bytes)));
                }
                break;
            };
            match parse_code(&self.pending[at + self.marker.len()..]) {
                Code::Incomplete => {
                    let start = if at > 0 && self.pending[at - 1] == b'\n' {
                        at - 1
                    } else {
                        at
                    };
                    if start > 0 {
                        let bytes: Vec<u8> = self.pending.drain(..start).collect();
                        events.push(Event::Output(Bytes::from(bytes)));
                    }
                    break;
                }
                Code::Malformed => {
                    let end = at + self.marker.len();
                    let bytes: Vec<u8> = self.pending.drain(..end).collect();
                    events.push(Event::Output(Bytes::from(bytes)));
                }
                Code::Complete { code, length } => {
                    let mut before: Vec<u8> = self.pending[..at].to_vec();
                    // The prompt starts with a newline of its own.
                    if before.last() == Some(&b'\n') {
                        before.pop();
                    }
                    let mut end = at + self.marker.len() + length;
                    if self.pending.get(end) == Some(&b'\n') {
                        end += 1;
                    } else if end == self.pending.len() {
                        self.skip_newline = true;
                    }
                    self.pending.drain(..end);
                    if !before.is_empty() {
                        events.push(Event::Output(Bytes::from(before)));
                    }
                    events.push(Event::Prompt(code));
                }
            }
        }
        events
    }

    fn flush(&mut self) -> Bytes {
        Bytes::from(std::mem::take(&mut self.pending))
    }
}

fn find(haystack: &[u8], needle: &[u8]) -> Option<usize> {
    haystack
        .windows(needle.len())
        .position(|window| window == needle)
}

/// The length of the longest suffix of `data` that begins `\n` + marker (or the marker).
fn partial_marker_len(data: &[u8], marker: &[u8]) -> usize {
    let mut with_newline = Vec::with_capacity(marker.len() + 1);
    with_newline.push(b'\n');
    with_newline.extend_from_slice(marker);
    let longest = data.len().min(with_newline.len());
    for len in (1..=longest).rev() {
        let suffix = &data[data.len() - len..];
        if with_newline.starts_with(suffix) || marker.starts_with(suffix) {
            return len;
        }
    }
    0
}

/// After the marker: an optional `-`, digits, then `__`.
fn parse_code(rest: &[u8]) -> Code {
    let digits_start = usize::from(rest.first() == Some(&b'-'));
    let digits = rest[digits_start.min(rest.len())..]
        .iter()
        .take_while(|b| b.is_ascii_digit())
        .count();
    let end = digits_start + digits;
    if end == rest.len() || (end + 1 == rest.len() && rest[end] == b'_') {
        return if digits <= 20 {
            Code::Incomplete
        } else {
            Code::Malformed
        };
    }
    if digits == 0 || !rest[end..].starts_with(b"__") {
        return Code::Malformed;
    }
    match std::str::from_utf8(&rest[..end])
        .ok()
        .and_then(|s| s.parse::<i64>().ok())
    {
        Some(code) => Code::Complete {
            code,
            length: end + 2,
        },
        None => Code::Malformed,
    }
}

/// Decodes a byte stream as UTF-8 across chunk boundaries, for the live view.
#[derive(Default)]
struct Utf8Stream {
    carry: Vec<u8>,
}

impl Utf8Stream {
    fn push(&mut self, bytes: &[u8]) -> String {
        self.carry.extend_from_slice(bytes);
        let valid = match std::str::from_utf8(&self.carry) {
            Ok(_) => self.carry.len(),
            Err(error) if error.error_len().is_none() => error.valid_up_to(),
            Err(_) => self.carry.len(),
        };
        let text = String::from_utf8_lossy(&self.carry[..valid]).into_owned();
        self.carry.drain(..valid);
        text
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn scan(chunks: &[&[u8]]) -> (String, Vec<i64>) {
        let mut scanner = PromptScanner::new("__OH_n1_".into());
        let mut out = Vec::new();
        let mut codes = Vec::new();
        for chunk in chunks {
            for event in scanner.push(chunk) {
                match event {
                    Event::Output(b) => out.extend_from_slice(&b),
                    Event::Prompt(code) => codes.push(code),
                    Event::Closed => {}
                }
            }
        }
        out.extend_from_slice(&scanner.flush());
        (String::from_utf8(out).unwrap(), codes)
    }

    #[test]
    fn splits_output_and_prompts() {
        let (out, codes) = scan(&[b"hello\n\n__OH_n1_0__\n"]);
        assert_eq!(out, "hello\n");
        assert_eq!(codes, vec![0]);
    }

    #[test]
    fn marker_split_across_chunks() {
        let stream = b"abc\n\n__OH_n1_127__\nnext\n\n__OH_n1_3__\n";
        for split in 0..stream.len() {
            let (out, codes) = scan(&[&stream[..split], &stream[split..]]);
            assert_eq!(out, "abc\nnext\n", "split at {split}");
            assert_eq!(codes, vec![127, 3], "split at {split}");
        }
    }

    #[test]
    fn output_without_final_newline() {
        let (out, codes) = scan(&[b"abc", b"\n__OH_n1_1__\n"]);
        assert_eq!(out, "abc");
        assert_eq!(codes, vec![1]);
    }

    #[test]
    fn a_wrong_nonce_is_output() {
        let (out, codes) = scan(&[b"\n__OH_other_0__\nx"]);
        assert_eq!(out, "\n__OH_other_0__\nx");
        assert!(codes.is_empty());
    }

    #[test]
    fn malformed_marker_is_output() {
        let (out, codes) = scan(&[b"__OH_n1_zz\n"]);
        assert_eq!(out, "__OH_n1_zz\n");
        assert!(codes.is_empty());
    }

    #[test]
    fn utf8_split_across_chunks() {
        let mut stream = Utf8Stream::default();
        let bytes = "é".as_bytes();
        assert_eq!(stream.push(&bytes[..1]), "");
        assert_eq!(stream.push(&bytes[1..]), "é");
    }

    #[test]
    fn control_keys() {
        assert_eq!(input_bytes("C-c"), vec![3]);
        assert_eq!(input_bytes("C-d"), vec![4]);
        assert_eq!(input_bytes("yes"), b"yes\n".to_vec());
    }

    #[test]
    fn long_lines_need_a_script() {
        assert!(!needs_script("echo hi"));
        assert!(needs_script(&format!("echo {}", "x".repeat(5000))));
    }
}
