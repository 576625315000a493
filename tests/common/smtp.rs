//! A real SMTP server for the tests: aiosmtpd (PyPI), run by the Python of
//! `CHATBOX_TEST_PYTHON` (`scripts/test` installs it into `.venv-tools`). Each test
//! starts its own on a free port; every message it accepts is written to a Maildir in a
//! temporary directory, with the envelope (`X-MailFrom`, `X-RcptTo`) added as headers.
//!
//! It is started through a few lines of Python rather than `python -m aiosmtpd`: the
//! command line cannot install an authenticator, which the refusing server needs.

use std::io::{BufRead, BufReader};
use std::net::TcpStream;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use super::{on_free_port, python, TempDir};

/// `handled=False` on a failed login makes aiosmtpd answer `535` itself; `True` would
/// leave the client waiting for an answer that never comes.
const SERVER: &str = r#"
import asyncio, sys
from aiosmtpd.handlers import Mailbox
from aiosmtpd.smtp import SMTP, AuthResult

port, maildir, mode = int(sys.argv[1]), sys.argv[2], sys.argv[3]

def refuse(server, session, envelope, mechanism, auth_data):
    return AuthResult(success=False, handled=False)

options = {"authenticator": refuse, "auth_require_tls": False} if mode == "refuse-auth" else {}

async def main():
    loop = asyncio.get_running_loop()
    server = await loop.create_server(
        lambda: SMTP(Mailbox(maildir), hostname="smtp.test", **options), "127.0.0.1", port)
    await server.serve_forever()

asyncio.run(main())
"#;

pub struct SmtpServer {
    child: Child,
    pub port: u16,
    dir: TempDir,
}

impl SmtpServer {
    /// Accepts every message, without authentication.
    pub fn start() -> SmtpServer {
        Self::launch("accept")
    }

    /// Offers AUTH (over plain text, for the test) and refuses every login.
    pub fn refusing_auth() -> SmtpServer {
        Self::launch("refuse-auth")
    }

    fn launch(mode: &str) -> SmtpServer {
        let dir = TempDir::new();
        let maildir = dir.path().join("Maildir");
        for sub in ["cur", "new", "tmp"] {
            std::fs::create_dir_all(maildir.join(sub)).expect("Maildir");
        }
        let stderr_path = dir.path().join("stderr");
        let started = on_free_port(
            |port| {
                let stderr = std::fs::File::create(&stderr_path).expect("stderr file");
                let mut child = Command::new(python())
                    .args(["-c", SERVER, &port.to_string()])
                    .arg(&maildir)
                    .arg(mode)
                    .stdout(Stdio::null())
                    .stderr(stderr)
                    .spawn()
                    .unwrap_or_else(|err| panic!("cannot run {}: {err}", python()));
                match wait_for_greeting(port, &mut child) {
                    Ok(()) => Ok((child, port)),
                    Err(()) => {
                        let _ = child.kill();
                        let _ = child.wait();
                        Err(std::fs::read_to_string(&stderr_path).unwrap_or_default())
                    }
                }
            },
            |stderr| stderr.to_lowercase().contains("address already in use"),
        );
        match started {
            Ok((child, port)) => SmtpServer { child, port, dir },
            Err(stderr) => panic!(
                "the SMTP test server did not start; run scripts/test, which installs \
                 aiosmtpd into .venv-tools, or set CHATBOX_TEST_PYTHON to a Python that has \
                 it. Its stderr:\n{stderr}"
            ),
        }
    }

    /// The raw messages delivered so far, oldest first.
    pub fn messages(&self) -> Vec<Vec<u8>> {
        let new = self.dir.path().join("Maildir").join("new");
        let mut files: Vec<_> = std::fs::read_dir(new)
            .expect("Maildir/new")
            .map(|entry| entry.expect("Maildir entry").path())
            .collect();
        // Maildir names start with the delivery time in seconds: good enough to order
        // the few messages of one test.
        files.sort();
        files
            .into_iter()
            .map(|path| std::fs::read(path).expect("a delivered message"))
            .collect()
    }
}

/// Waits until the server sends its `220` greeting: a listening socket alone does not
/// prove the SMTP side is up. `Err` when the process exited or 20 s passed.
fn wait_for_greeting(port: u16, child: &mut Child) -> Result<(), ()> {
    let deadline = Instant::now() + Duration::from_secs(20);
    loop {
        if let Ok(stream) = TcpStream::connect(("127.0.0.1", port)) {
            let _ = stream.set_read_timeout(Some(Duration::from_secs(5)));
            let mut greeting = String::new();
            if BufReader::new(stream).read_line(&mut greeting).is_ok()
                && greeting.starts_with("220")
            {
                return Ok(());
            }
        }
        if child.try_wait().ok().flatten().is_some() || Instant::now() > deadline {
            return Err(());
        }
        std::thread::sleep(Duration::from_millis(20));
    }
}

impl Drop for SmtpServer {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}
