//! Sandboxes in which the agent's commands run (one `Sandbox` interface; Docker, remote and
//! process backends; the warm pool; the Runtime API server).
