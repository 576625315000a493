//! What a file is, decided from its first bytes (the client's claim is only a hint for
//! formats that share one container), against the spec's allow-list
//! (`spec/integrations.md` §Uploads). Magic numbers come from the `infer` crate; text
//! has none, so it is recognised here: valid UTF-8 without control characters, and
//! never a script or a web page (which a browser could run) whatever its name.

use std::fmt;

/// How much of a file's start decides its type.
pub const SNIFF_BYTES: usize = 8 * 1024;

#[derive(Debug, PartialEq, Eq)]
pub enum Refused {
    /// An executable, a script or a web page.
    Executable,
    /// Recognised (or not) but not on the allow-list.
    NotAllowed,
}

impl fmt::Display for Refused {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            Refused::Executable => "Executables and scripts are not accepted",
            Refused::NotAllowed => "File type not allowed",
        })
    }
}

/// Binary formats on the allow-list, as `infer` names them → the type we serve.
const ALLOWED: &[(&str, &str)] = &[
    ("image/jpeg", "image/jpeg"),
    ("image/png", "image/png"),
    ("image/gif", "image/gif"),
    ("image/webp", "image/webp"),
    ("application/pdf", "application/pdf"),
    ("application/msword", "application/msword"),
    ("application/vnd.ms-excel", "application/vnd.ms-excel"),
    (
        "application/vnd.ms-powerpoint",
        "application/vnd.ms-powerpoint",
    ),
    (DOCX, DOCX),
    (XLSX, XLSX),
    (PPTX, PPTX),
    ("audio/mpeg", "audio/mpeg"),
    ("audio/x-wav", "audio/wav"),
    ("audio/ogg", "audio/ogg"),
    ("audio/aac", "audio/aac"),
    ("audio/m4a", "audio/mp4"),
    ("audio/x-m4a", "audio/mp4"),
    ("video/mp4", "video/mp4"),
    ("video/webm", "video/webm"),
    ("application/zip", "application/zip"),
];
const DOCX: &str = "application/vnd.openxmlformats-officedocument.wordprocessingml.document";
const XLSX: &str = "application/vnd.openxmlformats-officedocument.spreadsheetml.sheet";
const PPTX: &str = "application/vnd.openxmlformats-officedocument.presentationml.presentation";

/// Starts of executables, refused even when too short for `infer` to be sure (it wants
/// a whole ELF header, for one): ELF, DOS/PE, Mach-O (both byte orders, 32/64 bit,
/// universal), WebAssembly.
const EXECUTABLE_MAGIC: &[&[u8]] = &[
    b"\x7fELF",
    b"MZ",
    b"\xfe\xed\xfa\xce",
    b"\xfe\xed\xfa\xcf",
    b"\xce\xfa\xed\xfe",
    b"\xcf\xfa\xed\xfe",
    b"\xca\xfe\xba\xbe",
    b"\0asm",
];

/// The type to store and serve `head` (the file's first bytes, all of them when it is
/// shorter than [`SNIFF_BYTES`]) as; `name` and `claimed` only choose between types
/// that the content allows.
pub fn sniff(head: &[u8], name: &str, claimed: Option<&str>) -> Result<&'static str, Refused> {
    if EXECUTABLE_MAGIC.iter().any(|magic| head.starts_with(magic)) {
        return Err(Refused::Executable);
    }
    // `infer` knows some text formats too (HTML, XML, shell scripts): those go through
    // the text checks, which say why they are refused.
    let binary = infer::get(head).filter(|kind| kind.matcher_type() != infer::MatcherType::Text);
    if let Some(kind) = binary {
        if kind.matcher_type() == infer::MatcherType::App {
            return Err(Refused::Executable);
        }
        let mime = kind.mime_type();
        if mime == "video/webm" && claimed.is_some_and(|c| c.starts_with("audio/")) {
            // A browser's voice recording: WebM holding only audio.
            return Ok("audio/webm");
        }
        return ALLOWED
            .iter()
            .find(|(found, _)| *found == mime)
            .map(|(_, served)| *served)
            .ok_or(Refused::NotAllowed);
    }
    text_type(head, name)
}

fn text_type(head: &[u8], name: &str) -> Result<&'static str, Refused> {
    // A multi-byte character cut by the end of the sniffed part is still text.
    let text = match std::str::from_utf8(head) {
        Ok(text) => text,
        Err(error) if error.error_len().is_none() => {
            std::str::from_utf8(&head[..error.valid_up_to()]).unwrap_or_default()
        }
        Err(_) => return Err(Refused::NotAllowed),
    };
    let control = |c: char| c.is_control() && !matches!(c, '\t' | '\n' | '\r' | '\x0c');
    if text.chars().any(control) {
        return Err(Refused::NotAllowed);
    }
    if runs_in_a_browser_or_shell(text) {
        return Err(Refused::Executable);
    }
    let lower = name.to_ascii_lowercase();
    let trimmed = text.trim_start_matches('\u{feff}').trim_start();
    Ok(if lower.ends_with(".csv") {
        "text/csv"
    } else if lower.ends_with(".json") && (trimmed.starts_with('{') || trimmed.starts_with('[')) {
        "application/json"
    } else {
        "text/plain"
    })
}

/// Text that a shell or a browser would run: a `#!` line, HTML (as browsers sniff
/// it), SVG or XML (which can carry script), PHP.
fn runs_in_a_browser_or_shell(text: &str) -> bool {
    let bytes = text.as_bytes();
    if infer::text::is_shellscript(bytes) || infer::text::is_html(bytes) {
        return true;
    }
    let start: String = text
        .trim_start_matches('\u{feff}')
        .trim_start()
        .chars()
        .take(64)
        .collect::<String>()
        .to_ascii_lowercase();
    [
        "#!",
        "<?",
        "<script",
        "<svg",
        "<!doctype",
        "<html",
        "<iframe",
    ]
    .iter()
    .any(|marker| start.starts_with(marker))
}

#[cfg(test)]
mod tests {
    use super::*;

    const PNG: &[u8] = b"\x89PNG\r\n\x1a\n\0\0\0\rIHDR\0\0\0\x01\0\0\0\x01\x08\x06\0\0\0";

    #[test]
    fn images_and_documents_by_content_not_name() {
        assert_eq!(sniff(PNG, "photo.txt", Some("text/plain")), Ok("image/png"));
        assert_eq!(sniff(b"%PDF-1.7\n", "x.png", None), Ok("application/pdf"));
        assert_eq!(sniff(b"GIF89a....", "a.gif", None), Ok("image/gif"));
    }

    #[test]
    fn executables_and_scripts_are_refused_whatever_their_name() {
        let elf = b"\x7fELF\x02\x01\x01\0\0\0\0\0\0\0\0\0";
        assert_eq!(
            sniff(elf, "cat.png", Some("image/png")),
            Err(Refused::Executable)
        );
        let pe = b"MZ\x90\0\x03\0\0\0\x04\0\0\0\xff\xff";
        assert_eq!(sniff(pe, "cat.png", None), Err(Refused::Executable));
        for script in [
            &b"#!/bin/sh\nrm -rf /\n"[..],
            b"<html><script>alert(1)</script>",
            b"  <svg onload=alert(1)>",
            b"<?php system($_GET['c']); ?>",
        ] {
            assert_eq!(
                sniff(script, "cat.png", Some("image/png")),
                Err(Refused::Executable),
                "{}",
                String::from_utf8_lossy(script)
            );
        }
    }

    #[test]
    fn text_kinds_and_what_is_not_text() {
        assert_eq!(sniff(b"hello\nworld", "notes", None), Ok("text/plain"));
        assert_eq!(sniff(b"a,b\n1,2\n", "t.CSV", None), Ok("text/csv"));
        assert_eq!(sniff(b" {\"a\":1}", "d.json", None), Ok("application/json"));
        assert_eq!(sniff(b"not json", "d.json", None), Ok("text/plain"));
        assert_eq!(sniff(b"bin\0ary", "x.txt", None), Err(Refused::NotAllowed));
        // A character cut by the end of the sniffed bytes.
        assert_eq!(
            sniff("caf\u{e9}".as_bytes()[..4].as_ref(), "t", None),
            Ok("text/plain")
        );
    }

    #[test]
    fn webm_is_audio_when_the_recorder_says_so() {
        let webm = b"\x1a\x45\xdf\xa3\x9f\x42\x86\x81\x01\x42\xf7\x81\x01\x42\xf2\x81\x04\x42\xf3\x81\x08\x42\x82\x84webm";
        assert_eq!(sniff(webm, "voice", Some("audio/webm")), Ok("audio/webm"));
        assert_eq!(sniff(webm, "clip", None), Ok("video/webm"));
    }
}
