use super::*;

fn entry(lsn: u64) -> Entry {
    Entry {
        lsn,
        session_id: format!("s{lsn}"),
        seq: lsn * 2,
        row: br#"{"content":"hello"}"#.to_vec(),
        record: br#"{"uid":"alice"}"#.to_vec(),
    }
}

fn file_of(entries: &[Entry]) -> Vec<u8> {
    file_of_generation(GENERATION, entries)
}

const GENERATION: u64 = 7;

fn file_of_generation(generation: u64, entries: &[Entry]) -> Vec<u8> {
    let mut bytes = MAGIC.to_vec();
    for entry in entries {
        entry.encode_into(&mut bytes, generation);
    }
    bytes
}

fn parse(bytes: &[u8]) -> (Vec<Entry>, usize) {
    super::parse(bytes, GENERATION)
}

#[test]
fn crc_is_the_ieee_one() {
    assert_eq!(crc32(b"123456789"), 0xCBF4_3926);
    // A bit at a time, as the standard defines it, at every length around the words.
    let bitwise = |bytes: &[u8]| {
        !bytes.iter().fold(!0_u32, |crc, &byte| {
            (0..8).fold(crc ^ u32::from(byte), |crc, _| {
                (crc >> 1) ^ (0xEDB8_8320 & 0_u32.wrapping_sub(crc & 1))
            })
        })
    };
    let bytes: Vec<u8> = (0..200_u32).map(|n| (n * 167 + 13) as u8).collect();
    for len in 0..bytes.len() {
        assert_eq!(crc32(&bytes[..len]), bitwise(&bytes[..len]), "{len} bytes");
    }
}

#[test]
fn records_read_back() {
    let entries = [entry(1), entry(2)];
    assert_eq!(parse(&file_of(&entries)), (entries.to_vec(), 0));
}

#[test]
fn a_torn_tail_ends_the_file_at_every_cut() {
    let whole = file_of(&[entry(1), entry(2)]);
    let first_end = file_of(&[entry(1)]).len();
    for cut in first_end..whole.len() {
        let (entries, ignored) = parse(&whole[..cut]);
        assert_eq!(entries, [entry(1)], "cut at {cut}");
        assert_eq!(ignored, cut - first_end);
    }
}

#[test]
fn a_flipped_bit_ends_the_file_at_its_record() {
    let mut bytes = file_of(&[entry(1), entry(2), entry(3)]);
    let second = file_of(&[entry(1)]).len();
    let last = bytes.len() - 1;
    bytes[second + 12] ^= 0x10;
    let (entries, ignored) = parse(&bytes);
    assert_eq!(entries, [entry(1)]);
    assert_eq!(ignored, bytes.len() - second);
    bytes[second + 12] ^= 0x10;
    bytes[last] ^= 0x01;
    assert_eq!(parse(&bytes).0, [entry(1), entry(2)]);
}

#[test]
fn a_file_without_its_magic_holds_nothing() {
    assert_eq!(parse(b"CBX"), (Vec::new(), 3));
}

#[test]
fn a_recycled_file_ends_cleanly_where_an_earlier_generation_starts() {
    let mut bytes = file_of_generation(GENERATION - 1, &[entry(1), entry(2), entry(3)]);
    let newer = file_of(&[entry(4)]);
    bytes[..newer.len()].copy_from_slice(&newer);
    // Overwriting from the first record's start: the old second record follows
    // whole, and is not this generation's.
    assert_eq!(
        file_of_generation(0, &[entry(4)]).len(),
        file_of_generation(0, &[entry(1)]).len()
    );
    assert_eq!(parse(&bytes), (vec![entry(4)], 0));
    // Before anything was written into it, the file holds nothing of its own.
    let untouched = file_of_generation(GENERATION - 1, &[entry(1)]);
    assert_eq!(parse(&untouched), (Vec::new(), 0));
}

#[test]
fn files_of_the_first_format_still_read() {
    let mut bytes = MAGIC_UNNUMBERED.to_vec();
    for lsn in [1, 2] {
        // The same record without its generation, as the first format wrote it.
        let numbered = file_of_generation(0, &[entry(lsn)]);
        let payload = &numbered[MAGIC.len() + 16..];
        bytes.extend_from_slice(&len_u32(payload.len()).to_le_bytes());
        bytes.extend_from_slice(&crc32(payload).to_le_bytes());
        bytes.extend_from_slice(payload);
    }
    assert_eq!(parse(&bytes), (vec![entry(1), entry(2)], 0));
}

#[test]
fn a_checkpointed_file_is_written_again_in_place() {
    use std::os::unix::fs::MetadataExt;
    let dir = std::env::temp_dir().join(format!("chatbox-wal-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let path = |generation: u64| path_of(&dir, generation);
    let mut wal = Wal::create(&dir, 1).unwrap();
    let first: Vec<Entry> = (1..=20).map(entry).collect();
    wal.write(first.iter()).unwrap();
    let written = std::fs::metadata(path(1)).unwrap();

    // Generation 2 starts before redb holds generation 1, so in a new file.
    assert_eq!(wal.rotate().unwrap(), 1);
    remove_through(&dir, 1).unwrap();
    let spare = std::fs::metadata(dir.join(SPARE)).unwrap();
    assert_eq!((spare.ino(), spare.len()), (written.ino(), written.len()));
    assert!(!path(1).exists());
    wal.write([entry(21)].iter()).unwrap();

    // Generation 3 is generation 1's file, written from its start.
    assert_eq!(wal.rotate().unwrap(), 2);
    remove_through(&dir, 2).unwrap();
    wal.write([entry(22), entry(23)].iter()).unwrap();
    let third = std::fs::metadata(path(3)).unwrap();
    assert_eq!((third.ino(), third.len()), (written.ino(), written.len()));
    let found = read_all(&dir).unwrap();
    assert_eq!(
        (found.entries, found.newest),
        (vec![entry(22), entry(23)], 3)
    );

    // A new run starts in a new file: the spare an earlier run left is deleted.
    assert_eq!(wal.rotate().unwrap(), 3);
    remove_through(&dir, 3).unwrap();
    assert!(dir.join(SPARE).exists());
    drop(wal);
    Wal::create(&dir, 5).unwrap();
    assert!(!dir.join(SPARE).exists());
    assert_eq!(
        std::fs::metadata(path(5)).unwrap().len(),
        MAGIC.len() as u64
    );
    std::fs::remove_dir_all(&dir).unwrap();
}
