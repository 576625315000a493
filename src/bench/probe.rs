//! Blocking one-off checks next to the client's loop: that a URL upgrades at all (to
//! fail early with the server's answer), and the status of a plain `GET` (`/readyz`
//! during a drain).

use std::io::{Read, Write};
use std::net::{SocketAddr, TcpStream};
use std::time::Duration;

use super::frames::{new_key, parse_upgrade_response, upgrade_request, Target};

const TIMEOUT: Duration = Duration::from_secs(2);

fn connect(addr: SocketAddr) -> Result<TcpStream, String> {
    let stream = TcpStream::connect_timeout(&addr, TIMEOUT).map_err(|e| format!("connect: {e}"))?;
    stream
        .set_read_timeout(Some(TIMEOUT))
        .and_then(|()| stream.set_write_timeout(Some(TIMEOUT)))
        .map_err(|e| format!("socket: {e}"))?;
    Ok(stream)
}

/// Whether `target` upgrades (with `headers`); the server's answer when it does not.
pub fn upgrade(target: &Target, headers: &str) -> Result<(), String> {
    let mut stream = connect(target.addr)?;
    let key = new_key();
    stream
        .write_all(&upgrade_request(target, &key, headers))
        .map_err(|e| format!("write: {e}"))?;
    let mut buf = vec![0; 8192];
    let mut filled = 0;
    loop {
        match stream.read(&mut buf[filled..]) {
            Ok(0) => return Err("server closed the connection during the upgrade".into()),
            Ok(n) => filled += n,
            Err(e) => return Err(format!("read: {e}")),
        }
        if parse_upgrade_response(&buf[..filled], &key)?.is_some() {
            return Ok(());
        }
        if filled == buf.len() {
            return Err("upgrade response too long".into());
        }
    }
}

/// The status code of `GET path` on `addr` (one request, connection closed after).
pub fn get_status(addr: SocketAddr, authority: &str, path: &str) -> Result<u16, String> {
    let mut stream = connect(addr)?;
    let request = format!("GET {path} HTTP/1.1\r\nHost: {authority}\r\nConnection: close\r\n\r\n");
    stream
        .write_all(request.as_bytes())
        .map_err(|e| format!("write: {e}"))?;
    let mut buf = [0u8; 1024];
    let mut filled = 0;
    loop {
        let mut headers = [httparse::EMPTY_HEADER; 32];
        let mut response = httparse::Response::new(&mut headers);
        if let Ok(httparse::Status::Complete(_)) = response.parse(&buf[..filled]) {
            return response.code.ok_or_else(|| "no status".into());
        }
        if filled == buf.len() {
            return Err("response head too long".into());
        }
        match stream.read(&mut buf[filled..]) {
            Ok(0) => return Err("closed before a response".into()),
            Ok(n) => filled += n,
            Err(e) => return Err(format!("read: {e}")),
        }
    }
}
