//! `chatbox --dev` prints day-long admin tokens. With `JWT_SECRET` set they would be
//! real ones, so it refuses to start (exit 2, one line) unless `--dev-with-real-secret`
//! says that is meant; without a secret it makes a throw-away one, as before.
mod common;

use std::path::Path;
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use common::{binary, Server, TempDir, JWT_SECRET};

fn dev_command(flag: &str, secret: Option<&str>, port: u16, data: &Path) -> Command {
    let mut command = Command::new(binary());
    command
        .arg(flag)
        .env_clear()
        .env("SERVER_PORT", port.to_string())
        .env("DATA_DIR", data)
        .env("LOG_LEVEL", "info");
    if let Some(secret) = secret {
        command.env("JWT_SECRET", secret);
    }
    command
}

/// The line of the dev banner that carries the chat link's token.
fn chat_token(server: &Server) -> (String, String) {
    let deadline = Instant::now() + Duration::from_secs(20);
    loop {
        let logs = server.logs();
        let banner = logs.iter().find(|l| l.contains("chatbox --dev: tokens"));
        let chat = logs.iter().find_map(|l| l.split_once("/chat?token="));
        if let (Some(banner), Some((_, token))) = (banner, chat) {
            return (banner.clone(), token.trim().to_owned());
        }
        assert!(Instant::now() < deadline, "no dev links: {logs:?}");
        std::thread::sleep(Duration::from_millis(20));
    }
}

#[test]
fn dev_refuses_a_configured_secret() {
    let data = TempDir::new();
    let mut child = dev_command("--dev", Some(JWT_SECRET), common::free_port(), data.path())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("spawn chatbox");
    let deadline = Instant::now() + Duration::from_secs(20);
    while child.try_wait().expect("wait").is_none() {
        if Instant::now() > deadline {
            let _ = child.kill();
            panic!("chatbox --dev started with a real JWT_SECRET set");
        }
        std::thread::sleep(Duration::from_millis(20));
    }
    let output = child.wait_with_output().expect("output");
    assert_eq!(output.status.code(), Some(2));
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert_eq!(stderr.lines().count(), 1, "{stderr}");
    assert!(
        stderr.contains("JWT_SECRET") && stderr.contains("--dev-with-real-secret"),
        "{stderr}"
    );
    assert!(!stderr.contains(JWT_SECRET), "the secret is never printed");
    assert!(output.stdout.is_empty(), "no tokens were printed");
}

#[test]
fn dev_with_real_secret_signs_with_it() {
    let data = TempDir::new();
    let path = data.path().to_path_buf();
    let real = "--dev-with-real-secret";
    let server = Server::launch(
        |port| dev_command(real, Some(JWT_SECRET), port, &path),
        data,
    );
    let (banner, token) = chat_token(&server);
    assert!(banner.contains("signed with JWT_SECRET"), "{banner}");
    let verifier = chatbox::auth::Verifier::new(JWT_SECRET.as_bytes(), true);
    let identity = verifier.verify(&token, chatbox::time::unix_now());
    assert_eq!(
        identity.expect("signed with the real secret").user_id,
        "dev-user"
    );
}

#[test]
fn dev_without_a_secret_makes_a_throwaway_one() {
    let data = TempDir::new();
    let path = data.path().to_path_buf();
    let server = Server::launch(|port| dev_command("--dev", None, port, &path), data);
    let (banner, token) = chat_token(&server);
    assert!(banner.contains("throw-away secret"), "{banner}");
    let verifier = chatbox::auth::Verifier::new(JWT_SECRET.as_bytes(), true);
    assert!(verifier.verify(&token, chatbox::time::unix_now()).is_err());
    let models = server.request(
        "GET",
        "/chatbox/models",
        &format!("Authorization: Bearer {token}\r\n"),
        "",
    );
    assert_eq!(models.status, 200, "the server takes its own tokens");
}
