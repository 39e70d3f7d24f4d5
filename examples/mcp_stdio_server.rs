//! The test MCP server over stdio: the tools of `tests/support/mcp_tools.rs`, one JSON-RPC
//! message a line on stdin and stdout. Tests run it on the host and inside the sandbox
//! container; it exits when stdin closes, that is when its client goes away.

// Shared with the test crate, where the call count is read; this binary has no use for it.
#[allow(dead_code)]
#[path = "../tests/support/mcp_tools.rs"]
mod mcp_tools;

use rmcp::ServiceExt;

#[tokio::main]
async fn main() -> Result<(), Box<dyn std::error::Error>> {
    let server = mcp_tools::TestTools::new()
        .serve(rmcp::transport::stdio())
        .await?;
    // Ends when the client closes stdin (or the connection fails).
    server.waiting().await?;
    Ok(())
}
