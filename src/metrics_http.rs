//! A minimal HTTP listener for Prometheus: `GET /metrics` answers with what `render` returns,
//! anything else with 404. Used by `fstore serve` and `fstore join`.

use std::sync::Arc;

use tokio::io::{AsyncReadExt, AsyncWriteExt};

/// Renders the metrics text (Prometheus exposition format).
pub type Render = Arc<dyn Fn() -> String + Send + Sync>;

/// Serves until the process ends.
pub async fn serve(listener: tokio::net::TcpListener, render: Render) {
    loop {
        let Ok((mut sock, _)) = listener.accept().await else {
            continue;
        };
        let render = render.clone();
        tokio::spawn(async move {
            let mut buf = vec![0u8; 4096];
            let mut len = 0;
            while len < buf.len() {
                match sock.read(&mut buf[len..]).await {
                    Ok(0) | Err(_) => break,
                    Ok(n) => len += n,
                }
                if buf[..len].windows(4).any(|w| w == b"\r\n\r\n") {
                    break;
                }
            }
            let head = String::from_utf8_lossy(&buf[..len]);
            let (status, body) = if head.starts_with("GET /metrics") {
                ("200 OK", render())
            } else {
                ("404 Not Found", "metrics are at /metrics\n".to_string())
            };
            let resp = format!(
                "HTTP/1.1 {status}\r\nContent-Type: text/plain; version=0.0.4\r\nContent-Length: {}\r\nConnection: close\r\n\r\n{body}",
                body.len()
            );
            let _ = sock.write_all(resp.as_bytes()).await;
            let _ = sock.shutdown().await;
        });
    }
}

/// Binds `addr` and serves on a thread of its own (for commands without a runtime); returns
/// the bound address.
pub fn spawn(addr: &str, render: Render) -> std::io::Result<std::net::SocketAddr> {
    let std_listener = std::net::TcpListener::bind(addr)?;
    std_listener.set_nonblocking(true)?;
    let bound = std_listener.local_addr()?;
    crate::in_background(async move {
        if let Ok(listener) = tokio::net::TcpListener::from_std(std_listener) {
            serve(listener, render).await;
        }
    });
    Ok(bound)
}
