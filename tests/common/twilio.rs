//! A stand-in for Twilio's REST API: it checks nothing itself, but hands the test each
//! request exactly as Twilio would receive it (request line, headers, decoded form) and
//! answers as Twilio does, `201` with the message resource or an error JSON.

use std::collections::HashMap;
use std::io::{BufRead, BufReader, Read, Write};
use std::net::{TcpListener, TcpStream};
use std::sync::mpsc::{channel, Receiver};
use std::time::Duration;

/// One request as the fake received it.
#[derive(Debug)]
pub struct Received {
    pub request_line: String,
    pub headers: HashMap<String, String>,
    pub form: Vec<(String, String)>,
}

/// A Twilio stand-in: answers each request with `answer(form's To)`, and hands every
/// request it received to the test.
pub fn twilio(answer: fn(&str) -> (u16, String)) -> (String, Receiver<Received>) {
    let listener = TcpListener::bind("127.0.0.1:0").expect("a listener");
    let base = format!("http://{}", listener.local_addr().expect("its address"));
    let (tx, rx) = channel();
    std::thread::spawn(move || {
        for stream in listener.incoming() {
            let Ok(stream) = stream else { return };
            let received = serve(stream, answer);
            if tx.send(received).is_err() {
                return;
            }
        }
    });
    (base, rx)
}

fn serve(mut stream: TcpStream, answer: fn(&str) -> (u16, String)) -> Received {
    stream
        .set_read_timeout(Some(Duration::from_secs(10)))
        .expect("timeout");
    let mut reader = BufReader::new(stream.try_clone().expect("clone"));
    let mut request_line = String::new();
    reader.read_line(&mut request_line).expect("request line");
    let mut headers = HashMap::new();
    loop {
        let mut line = String::new();
        reader.read_line(&mut line).expect("header");
        let line = line.trim_end();
        if line.is_empty() {
            break;
        }
        let (name, value) = line.split_once(':').expect("name: value");
        headers.insert(name.to_ascii_lowercase(), value.trim().to_owned());
    }
    let length: usize = headers
        .get("content-length")
        .expect("a Content-Length")
        .parse()
        .expect("a number");
    let mut body = vec![0; length];
    reader.read_exact(&mut body).expect("the body");
    let form = form_decode(std::str::from_utf8(&body).expect("UTF-8 form"));
    let to = form
        .iter()
        .find(|(k, _)| k == "To")
        .map_or("", |(_, v)| v.as_str());
    let (status, json) = answer(to);
    let reason = if status == 201 {
        "Created"
    } else {
        "Bad Request"
    };
    write!(
        stream,
        "HTTP/1.1 {status} {reason}\r\nContent-Type: application/json\r\nContent-Length: {}\r\nConnection: close\r\n\r\n{json}",
        json.len()
    )
    .expect("answer");
    Received {
        request_line: request_line.trim_end().to_owned(),
        headers,
        form,
    }
}

/// `application/x-www-form-urlencoded`, decoded: `+` is a space, `%XX` a byte.
fn form_decode(body: &str) -> Vec<(String, String)> {
    let decode = |s: &str| {
        let bytes = s.as_bytes();
        let mut out = Vec::with_capacity(bytes.len());
        let mut i = 0;
        while i < bytes.len() {
            match bytes[i] {
                b'+' => out.push(b' '),
                b'%' => {
                    let hex = std::str::from_utf8(&bytes[i + 1..i + 3]).expect("hex");
                    out.push(u8::from_str_radix(hex, 16).expect("a hex byte"));
                    i += 2;
                }
                b => out.push(b),
            }
            i += 1;
        }
        String::from_utf8(out).expect("UTF-8 field")
    };
    body.split('&')
        .map(|pair| {
            let (k, v) = pair.split_once('=').expect("key=value");
            (decode(k), decode(v))
        })
        .collect()
}

pub fn received(rx: &Receiver<Received>, n: usize) -> Vec<Received> {
    (0..n)
        .map(|_| {
            rx.recv_timeout(Duration::from_secs(10))
                .expect("a request at the fake Twilio")
        })
        .collect()
}
