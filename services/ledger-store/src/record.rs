//! On-disk framing of the log: segment headers, record headers and payloads, and the scanner
//! that tells a torn tail (an unfinished, never acknowledged write) from damage.
//!
//! A segment file starts with a 16-byte header (magic, first global position). Then records:
//!
//! ```text
//! record  = header payload
//! header  = payload_len:u32le payload_crc:u32le header_crc:u32le   (crc32c; header_crc covers the first 8 bytes)
//! payload = format:u8=1 position:u64 txn_index:u16 txn_len:u16 version:u64
//!           stream_len:u16 stream event_id:[16] type_len:u16 type schema_version:u16
//!           metadata_len:u32 metadata data_len:u32 data                (little endian)
//! ```
//!
//! The Merkle leaf of a record is `SHA-256(0x00 || payload)`: the payload holds the event's
//! bytes exactly as they were given to the log, plus where the log put them.
//!
//! Why a separate header checksum: a flipped bit in a length field must read as damage, not
//! as "the record runs past the end of the file", which is what a torn write looks like.
//!
//! # Torn tail or damage
//!
//! Both scanners ([`SegmentScanner`], [`BlockScanner`]) read the end of a file as a torn tail
//! (an unfinished write, never acknowledged, cut on open) in exactly these shapes:
//!
//! 1. fewer bytes than a record header at the end of the file;
//! 2. a header that checks out but declares more payload than the file holds;
//! 3. a header that does not check out, with every byte from it to the end of the file zero;
//! 4. a whole record whose header checks out but whose payload checksum fails, when the file
//!    is zero from a [`TORN_WRITE_SECTOR_BYTES`]-aligned file offset inside that payload to
//!    its end (zeros after the record, further records of the same write or space the file
//!    system extended, are part of the tear), and no single changed byte of the payload
//!    would make its checksum hold.
//!
//! Anything else that does not check out is damage, and so is any torn shape outside the last
//! segment (the open path decides that, and cuts the whole append a torn record belongs to). Shape 4 is what a power cut leaves when
//! the file's new size and the block holding the header reached the disk but the later
//! blocks of the payload did not: they read back as zeros, and storage loses whole sectors
//! (512 bytes, or pages of several sectors), so the zeros start on a sector boundary of the
//! file offset and run to the end of the file (the last write is the end of the file).
//! Its conditions are what keep an acknowledged record from ever being cut as one:
//!
//! - A changed bit or byte in an acknowledged record does not make bytes zero from a sector
//!   boundary to the end of the file; anything not at the end of the file is never torn.
//! - A payload may legitimately end with zero bytes past a sector boundary (binary data). A
//!   bit flip earlier in such a payload, in the last record of the file, would look like
//!   shape 4, so a payload whose checksum a single changed byte anywhere in it would repair is
//!   damage. The test is exact (when one byte changed, the checksum difference is what that
//!   change makes it, and every position and value is tried), so every such flip is found.
//!   What remains is two or more changed bytes in the last, not yet checkpointed record of
//!   the log whose own payload ends in zeros across a sector boundary. The cost falls the
//!   safe way: a torn payload whose checksum happens to match a one-byte repair (odds about
//!   255 * length / 2^32, one in 16,000 for a 1 KiB payload) is refused as damage, as every
//!   torn payload was before shape 4.
//! - Events below the latest signed checkpoint cannot be cut silently by any shape: the open
//!   then finds the checkpoint covering more events than the log holds.
//!
//! The payload checksum may be deferred (checked by the caller on another thread, together
//! with the leaf hash); the scanners then still check it themselves for a record in shape 4's
//! layout (a sector-aligned zero run from inside its payload to the end of the file), so the
//! open path and `verify` classify it the same way, before the caller ever sees the record.

use std::fs::File;
use std::io::{self, Read};
use std::os::unix::fs::FileExt;

use ledger_merkle::{leaf_hash, Hash};

/// Magic bytes at the start of every segment file.
pub const SEGMENT_MAGIC: [u8; 8] = *b"TLSEG\x00\x00\x01";
/// Length of a segment header: magic plus first position.
pub const SEGMENT_HEADER_LEN: u64 = 16;
/// Length of a record header.
pub const RECORD_HEADER_LEN: usize = 12;
/// The only payload format so far.
pub const RECORD_FORMAT_V1: u8 = 1;
/// Largest payload the format accepts; anything larger in a header is damage.
pub const RECORD_PAYLOAD_BYTES_MAX: usize = 2 * crate::EVENT_BYTES_MAX + 4096;
/// The unit in which a write cut short by a crash loses its data: a disk sector. Pages and
/// file system blocks are whole multiples of it, so a torn write's zeros start at a multiple
/// of this file offset (see the module documentation, shape 4).
pub const TORN_WRITE_SECTOR_BYTES: u64 = 512;

/// The fields of one record, borrowed.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RecordFields<'a> {
    /// Global position.
    pub position: u64,
    /// Index of this record inside its append (transaction).
    pub txn_index: u16,
    /// Number of records in its append.
    pub txn_len: u16,
    /// Version in the stream.
    pub version: u64,
    /// Stream name.
    pub stream: &'a str,
    /// Event id bytes.
    pub event_id: [u8; 16],
    /// Event type name.
    pub event_type: &'a str,
    /// Schema version of `data`.
    pub schema_version: u16,
    /// Metadata bytes.
    pub metadata: &'a [u8],
    /// Data bytes.
    pub data: &'a [u8],
}

/// Encodes the segment header for a segment whose first record has `first_position`.
pub fn segment_header(first_position: u64) -> [u8; SEGMENT_HEADER_LEN as usize] {
    let mut header = [0u8; SEGMENT_HEADER_LEN as usize];
    header[..8].copy_from_slice(&SEGMENT_MAGIC);
    header[8..].copy_from_slice(&first_position.to_le_bytes());
    header
}

/// Parses a segment header, returning the first position.
pub fn parse_segment_header(bytes: &[u8]) -> Result<u64, String> {
    if bytes.len() < SEGMENT_HEADER_LEN as usize {
        return Err("segment header is incomplete".to_owned());
    }
    if bytes[..8] != SEGMENT_MAGIC {
        return Err("segment magic mismatch".to_owned());
    }
    let mut first = [0u8; 8];
    first.copy_from_slice(&bytes[8..16]);
    Ok(u64::from_le_bytes(first))
}

fn header_crc(first8: &[u8]) -> u32 {
    // A distinct seed keeps an all-zero header from ever checking out.
    crc32c::crc32c_append(0x5452_4C47, first8)
}

/// Appends the framed record to `out` and returns its Merkle leaf hash.
pub fn encode_record(out: &mut Vec<u8>, rec: &RecordFields<'_>) -> Hash {
    let payload_len = 1
        + 8
        + 2
        + 2
        + 8
        + 2
        + rec.stream.len()
        + 16
        + 2
        + rec.event_type.len()
        + 2
        + 4
        + rec.metadata.len()
        + 4
        + rec.data.len();
    assert!(
        payload_len <= RECORD_PAYLOAD_BYTES_MAX,
        "invariant: payload size is checked before encoding"
    );
    let start = out.len();
    out.extend_from_slice(&[0u8; RECORD_HEADER_LEN]);
    let payload_start = out.len();
    out.push(RECORD_FORMAT_V1);
    out.extend_from_slice(&rec.position.to_le_bytes());
    out.extend_from_slice(&rec.txn_index.to_le_bytes());
    out.extend_from_slice(&rec.txn_len.to_le_bytes());
    out.extend_from_slice(&rec.version.to_le_bytes());
    out.extend_from_slice(&(rec.stream.len() as u16).to_le_bytes());
    out.extend_from_slice(rec.stream.as_bytes());
    out.extend_from_slice(&rec.event_id);
    out.extend_from_slice(&(rec.event_type.len() as u16).to_le_bytes());
    out.extend_from_slice(rec.event_type.as_bytes());
    out.extend_from_slice(&rec.schema_version.to_le_bytes());
    out.extend_from_slice(&(rec.metadata.len() as u32).to_le_bytes());
    out.extend_from_slice(rec.metadata);
    out.extend_from_slice(&(rec.data.len() as u32).to_le_bytes());
    out.extend_from_slice(rec.data);
    assert_eq!(
        out.len() - payload_start,
        payload_len,
        "invariant: payload length"
    );
    finish_frame(out, start);
    leaf_hash(&out[payload_start..])
}

/// Appends `payload` framed with a record header (used for checkpoint records).
pub fn encode_frame(out: &mut Vec<u8>, payload: &[u8]) {
    let start = out.len();
    out.extend_from_slice(&[0u8; RECORD_HEADER_LEN]);
    out.extend_from_slice(payload);
    finish_frame(out, start);
}

/// Fills in the header reserved at `start` for the payload that follows it up to the end.
fn finish_frame(out: &mut [u8], start: usize) {
    let payload = &out[start + RECORD_HEADER_LEN..];
    assert!(
        payload.len() <= RECORD_PAYLOAD_BYTES_MAX,
        "invariant: payload size is checked before framing"
    );
    let payload_len = payload.len() as u32;
    let payload_crc = crc32c::crc32c(payload);
    out[start..start + 4].copy_from_slice(&payload_len.to_le_bytes());
    out[start + 4..start + 8].copy_from_slice(&payload_crc.to_le_bytes());
    let hcrc = header_crc(&out[start..start + 8]);
    out[start + 8..start + 12].copy_from_slice(&hcrc.to_le_bytes());
}

struct Cursor<'a> {
    bytes: &'a [u8],
    at: usize,
}

impl<'a> Cursor<'a> {
    fn take(&mut self, n: usize) -> Result<&'a [u8], String> {
        let end = self
            .at
            .checked_add(n)
            .filter(|end| *end <= self.bytes.len())
            .ok_or_else(|| "payload field runs past the payload".to_owned())?;
        let slice = &self.bytes[self.at..end];
        self.at = end;
        Ok(slice)
    }
    fn u16(&mut self) -> Result<u16, String> {
        let b = self.take(2)?;
        Ok(u16::from_le_bytes([b[0], b[1]]))
    }
    fn u32(&mut self) -> Result<u32, String> {
        let b = self.take(4)?;
        Ok(u32::from_le_bytes([b[0], b[1], b[2], b[3]]))
    }
    fn u64(&mut self) -> Result<u64, String> {
        let b = self.take(8)?;
        let mut a = [0u8; 8];
        a.copy_from_slice(b);
        Ok(u64::from_le_bytes(a))
    }
    fn str(&mut self, n: usize) -> Result<&'a str, String> {
        std::str::from_utf8(self.take(n)?).map_err(|_| "name is not UTF-8".to_owned())
    }
}

/// Decodes a payload whose checksum has been checked.
pub fn decode_payload(payload: &[u8]) -> Result<RecordFields<'_>, String> {
    let mut c = Cursor {
        bytes: payload,
        at: 0,
    };
    let format = c.take(1)?[0];
    if format != RECORD_FORMAT_V1 {
        return Err(format!("unknown record format {format}"));
    }
    let position = c.u64()?;
    let txn_index = c.u16()?;
    let txn_len = c.u16()?;
    let version = c.u64()?;
    let stream_len = c.u16()? as usize;
    let stream = c.str(stream_len)?;
    let mut event_id = [0u8; 16];
    event_id.copy_from_slice(c.take(16)?);
    let type_len = c.u16()? as usize;
    let event_type = c.str(type_len)?;
    let schema_version = c.u16()?;
    let metadata_len = c.u32()? as usize;
    let metadata = c.take(metadata_len)?;
    let data_len = c.u32()? as usize;
    let data = c.take(data_len)?;
    if c.at != payload.len() {
        return Err("trailing bytes after the payload".to_owned());
    }
    if txn_len == 0 || txn_index >= txn_len {
        return Err(format!("bad transaction index {txn_index}/{txn_len}"));
    }
    Ok(RecordFields {
        position,
        txn_index,
        txn_len,
        version,
        stream,
        event_id,
        event_type,
        schema_version,
        metadata,
        data,
    })
}

/// Checks one framed record read back whole (header and payload), as the read path does.
pub fn check_framed(bytes: &[u8]) -> Result<&[u8], String> {
    if bytes.len() < RECORD_HEADER_LEN {
        return Err("record shorter than its header".to_owned());
    }
    let (header, payload) = bytes.split_at(RECORD_HEADER_LEN);
    let parsed = parse_header(header)?;
    if parsed.0 as usize != payload.len() {
        return Err("record length does not match its header".to_owned());
    }
    if crc32c::crc32c(payload) != parsed.1 {
        return Err("payload checksum mismatch".to_owned());
    }
    Ok(payload)
}

/// Returns (payload_len, payload_crc) when the header checks out.
fn parse_header(header: &[u8]) -> Result<(u32, u32), String> {
    let len = u32::from_le_bytes([header[0], header[1], header[2], header[3]]);
    let crc = u32::from_le_bytes([header[4], header[5], header[6], header[7]]);
    let hcrc = u32::from_le_bytes([header[8], header[9], header[10], header[11]]);
    if header_crc(&header[..8]) != hcrc {
        return Err("record header checksum mismatch".to_owned());
    }
    if len as usize > RECORD_PAYLOAD_BYTES_MAX {
        return Err(format!("record header declares an impossible length {len}"));
    }
    Ok((len, crc))
}

/// What the scanner found at an offset.
#[derive(Debug)]
pub enum Frame {
    /// A whole record whose checksums hold: its payload and total framed length.
    Record {
        /// The payload bytes.
        payload: Vec<u8>,
        /// Header plus payload length.
        framed_len: u64,
        /// The payload checksum from the header (already checked unless the caller deferred it).
        payload_crc: u32,
    },
    /// The clean end of the segment.
    End,
    /// An unfinished write at the end of the file: never acknowledged, safe to cut.
    TornTail {
        /// Why this is read as a torn write.
        reason: String,
    },
    /// Damage: bytes that were once whole no longer check out.
    Damaged {
        /// What is wrong.
        reason: String,
    },
}

/// Reads a segment sequentially, one frame at a time.
pub struct SegmentScanner {
    file: File,
    reader: io::BufReader<File>,
    offset: u64,
    file_len: u64,
    defer_payload_crc: bool,
}

impl SegmentScanner {
    /// Opens a scanner positioned after the segment header, returning the first position.
    pub fn open(path: &std::path::Path) -> io::Result<(Self, Result<u64, String>)> {
        let file = File::open(path)?;
        let file_len = file.metadata()?.len();
        let mut header = [0u8; SEGMENT_HEADER_LEN as usize];
        let got = read_full_at(&file, &mut header, 0)?;
        let first = parse_segment_header(&header[..got]);
        let mut reader = io::BufReader::with_capacity(1 << 20, file.try_clone()?);
        io::Seek::seek(&mut reader, io::SeekFrom::Start(SEGMENT_HEADER_LEN))?;
        Ok((
            Self {
                file,
                reader,
                offset: SEGMENT_HEADER_LEN,
                file_len,
                defer_payload_crc: false,
            },
            first,
        ))
    }

    /// Byte offset of the next frame.
    pub fn offset(&self) -> u64 {
        self.offset
    }

    /// Reads the next frame. After anything but `Record`, the scanner stays where it is.
    pub fn next_frame(&mut self) -> io::Result<Frame> {
        let remaining = self.file_len.saturating_sub(self.offset);
        if remaining == 0 {
            return Ok(Frame::End);
        }
        if remaining < RECORD_HEADER_LEN as u64 {
            return Ok(Frame::TornTail {
                reason: format!("{remaining} bytes at the end of the file: an unfinished header"),
            });
        }
        let mut header = [0u8; RECORD_HEADER_LEN];
        self.reader.read_exact(&mut header)?;
        let (len, crc) = match parse_header(&header) {
            Ok(parsed) => parsed,
            Err(reason) => {
                self.unread(RECORD_HEADER_LEN as i64)?;
                return Ok(if self.rest_is_zero()? {
                    Frame::TornTail {
                        reason: "zero-filled bytes at the end of the file".to_owned(),
                    }
                } else {
                    Frame::Damaged { reason }
                });
            }
        };
        let framed_len = RECORD_HEADER_LEN as u64 + u64::from(len);
        if framed_len > remaining {
            self.unread(RECORD_HEADER_LEN as i64)?;
            return Ok(Frame::TornTail {
                reason: format!(
                    "record of {framed_len} bytes runs past the end of the file ({remaining} bytes left)"
                ),
            });
        }
        let mut payload = Vec::with_capacity(len as usize);
        (&mut self.reader)
            .take(u64::from(len))
            .read_to_end(&mut payload)?;
        if payload.len() != len as usize {
            return Err(io::Error::new(
                io::ErrorKind::UnexpectedEof,
                "segment shrank while it was read",
            ));
        }
        let payload_offset = self.offset + RECORD_HEADER_LEN as u64;
        let check = if self.defer_payload_crc {
            PayloadCheck::TornOnly
        } else {
            PayloadCheck::Full
        };
        match judge_payload(
            &self.file,
            self.file_len,
            payload_offset,
            &payload,
            crc,
            self.reader.buffer(),
            check,
        )? {
            PayloadVerdict::Intact => {}
            PayloadVerdict::Torn(reason) => {
                self.unread(framed_len as i64)?;
                return Ok(Frame::TornTail { reason });
            }
            PayloadVerdict::Damaged(reason) => {
                self.unread(framed_len as i64)?;
                return Ok(Frame::Damaged { reason });
            }
        }
        self.offset += framed_len;
        Ok(Frame::Record {
            payload,
            framed_len,
            payload_crc: crc,
        })
    }

    /// Leaves the payload checksum to the caller (who checks it on another thread, together
    /// with the leaf hash). Headers are still checked here, and so is the payload checksum of
    /// a record that may be a torn write (shape 4 of the module documentation).
    pub fn defer_payload_checksum(&mut self) {
        self.defer_payload_crc = true;
    }

    fn unread(&mut self, n: i64) -> io::Result<()> {
        self.reader.seek_relative(-n)
    }

    fn rest_is_zero(&self) -> io::Result<bool> {
        rest_is_zero(&self.file, self.offset, self.file_len)
    }
}

/// Size of a [`BlockScanner`] buffer. A whole record (header and the largest payload the format
/// accepts) always fits in one, so a record that straddles the end of a block can be carried
/// over whole to the start of the next.
pub const SCAN_BLOCK_BYTES: usize = 4 << 20;

const _: () = assert!(SCAN_BLOCK_BYTES >= RECORD_HEADER_LEN + RECORD_PAYLOAD_BYTES_MAX);

/// Bytes a [`BlockScanner`] reads into a block (more only when one record needs it). Small
/// enough that a block is still in the cache when it is checked and then hashed, large enough
/// that reads and hand-overs cost little per record.
pub const SCAN_READ_BYTES: usize = 512 << 10;

/// What a [`BlockScanner`] found at its offset.
#[derive(Debug)]
pub enum BlockFrame {
    /// A whole record whose header checks out. Its payload is `block()[start..start + len]`;
    /// the payload checksum is left to the caller (except for a record that may be a torn
    /// write, whose checksum the scanner checks itself: it is never handed out unless it holds).
    Record {
        /// Where the payload starts in the current block.
        start: usize,
        /// Payload length.
        len: u32,
        /// The payload checksum from the header (not checked yet).
        payload_crc: u32,
    },
    /// The next frame continues past the current block: call [`BlockScanner::next_block`].
    BlockEnd,
    /// The clean end of the segment.
    End,
    /// An unfinished write at the end of the file: never acknowledged, safe to cut.
    TornTail {
        /// Why this is read as a torn write.
        reason: String,
    },
    /// Damage: bytes that were once whole no longer check out.
    Damaged {
        /// What is wrong.
        reason: String,
    },
}

/// Reads a segment in large blocks into buffers the caller provides and recycles, and hands
/// out records as ranges of the current block, so a scan neither copies nor allocates per
/// record. It tells a torn tail from damage by exactly the rules of [`SegmentScanner`].
pub struct BlockScanner {
    file: std::sync::Arc<File>,
    file_len: u64,
    block: Vec<u8>,
    /// File offset of `block[0]`.
    block_offset: u64,
    /// Bytes of `block` read from the file.
    filled: usize,
    /// Where the next frame starts in `block`.
    at: usize,
    /// Bytes from `at` on that the next block must hold: what the unfinished frame needs.
    need: usize,
}

impl BlockScanner {
    /// Reads the first block of a segment `file_len` bytes long into `buffer` and returns a
    /// scanner positioned after the segment header, with the first position the header holds.
    pub fn open(
        file: std::sync::Arc<File>,
        file_len: u64,
        buffer: Vec<u8>,
    ) -> io::Result<(Self, Result<u64, String>)> {
        let mut scanner = Self {
            file,
            file_len,
            block: block_buffer(buffer),
            block_offset: 0,
            filled: 0,
            at: 0,
            need: 0,
        };
        scanner.fill(0)?;
        let header_len = scanner.filled.min(SEGMENT_HEADER_LEN as usize);
        let first = parse_segment_header(&scanner.block[..header_len]);
        scanner.at = header_len;
        Ok((scanner, first))
    }

    /// Byte offset of the next frame in the file.
    pub fn offset(&self) -> u64 {
        self.block_offset + self.at as u64
    }

    /// File offset of the first byte of the current block.
    pub fn block_offset(&self) -> u64 {
        self.block_offset
    }

    /// The bytes of the current block.
    pub fn block(&self) -> &[u8] {
        &self.block[..self.filled]
    }

    /// Reads the next frame. After anything but `Record`, the scanner stays where it is.
    pub fn next_frame(&mut self) -> io::Result<BlockFrame> {
        let offset = self.offset();
        let remaining = self.file_len.saturating_sub(offset);
        if remaining == 0 {
            return Ok(BlockFrame::End);
        }
        if remaining < RECORD_HEADER_LEN as u64 {
            return Ok(BlockFrame::TornTail {
                reason: format!("{remaining} bytes at the end of the file: an unfinished header"),
            });
        }
        let available = self.filled - self.at;
        // The block ends before the file does whenever less than a header or a record is left
        // in it, since the checks above found that many bytes in the file.
        if available < RECORD_HEADER_LEN {
            self.need = RECORD_HEADER_LEN;
            return Ok(BlockFrame::BlockEnd);
        }
        let header = &self.block[self.at..self.at + RECORD_HEADER_LEN];
        let (len, payload_crc) = match parse_header(header) {
            Ok(parsed) => parsed,
            Err(reason) => {
                return Ok(if rest_is_zero(&self.file, offset, self.file_len)? {
                    BlockFrame::TornTail {
                        reason: "zero-filled bytes at the end of the file".to_owned(),
                    }
                } else {
                    BlockFrame::Damaged { reason }
                });
            }
        };
        let framed_len = RECORD_HEADER_LEN as u64 + u64::from(len);
        if framed_len > remaining {
            return Ok(BlockFrame::TornTail {
                reason: format!(
                    "record of {framed_len} bytes runs past the end of the file ({remaining} bytes left)"
                ),
            });
        }
        if framed_len > available as u64 {
            // At most `RECORD_HEADER_LEN + RECORD_PAYLOAD_BYTES_MAX`, which fits in a block.
            self.need = framed_len as usize;
            return Ok(BlockFrame::BlockEnd);
        }
        let start = self.at + RECORD_HEADER_LEN;
        let end = start + len as usize;
        match judge_payload(
            &self.file,
            self.file_len,
            offset + RECORD_HEADER_LEN as u64,
            &self.block[start..end],
            payload_crc,
            &self.block[end..self.filled],
            PayloadCheck::TornOnly,
        )? {
            PayloadVerdict::Intact => {}
            PayloadVerdict::Torn(reason) => return Ok(BlockFrame::TornTail { reason }),
            PayloadVerdict::Damaged(reason) => return Ok(BlockFrame::Damaged { reason }),
        }
        self.at += framed_len as usize;
        Ok(BlockFrame::Record {
            start,
            len,
            payload_crc,
        })
    }

    /// Moves on to the next block, read into `buffer`, after [`BlockFrame::BlockEnd`]. The
    /// unfinished frame at the end of the current block is carried over to the start of the
    /// new one. Returns the buffer of the finished block, for the caller to pass on and reuse.
    pub fn next_block(&mut self, buffer: Vec<u8>) -> io::Result<Vec<u8>> {
        let mut next = block_buffer(buffer);
        let carry = self.filled - self.at;
        next[..carry].copy_from_slice(&self.block[self.at..self.filled]);
        let next_offset = self.offset();
        let finished = std::mem::replace(&mut self.block, next);
        self.block_offset = next_offset;
        self.at = 0;
        self.fill(carry)?;
        Ok(finished)
    }

    /// Ends the scan, returning the buffer of the current block.
    pub fn into_block(self) -> Vec<u8> {
        self.block
    }

    /// Reads the block from `block[from..]` on: [`SCAN_READ_BYTES`] more, or what the carried
    /// over frame needs if that is more, but never past the end of the file. The block can
    /// always take what a frame needs, and the file holds it (else the frame is a torn tail),
    /// so the next frame is whole in the new block.
    fn fill(&mut self, from: usize) -> io::Result<()> {
        let in_file = self.file_len.saturating_sub(self.block_offset);
        let want = (from + SCAN_READ_BYTES)
            .max(self.need)
            .min(self.block.len());
        let want = usize::try_from(in_file).map_or(want, |n| n.min(want));
        let got = read_full_at(
            &self.file,
            &mut self.block[from..want],
            self.block_offset + from as u64,
        )?;
        if from + got != want {
            return Err(io::Error::new(
                io::ErrorKind::UnexpectedEof,
                "segment shrank while it was read",
            ));
        }
        self.filled = want;
        Ok(())
    }
}

/// Gives a buffer the size of a block. Buffers come back from the hashing side at full length;
/// a new one is allocated zeroed so that its pages are only touched when read into.
fn block_buffer(buffer: Vec<u8>) -> Vec<u8> {
    if buffer.len() >= SCAN_BLOCK_BYTES {
        buffer
    } else {
        vec![0u8; SCAN_BLOCK_BYTES]
    }
}

/// True when every byte of `file` from `offset` to `file_len` is zero: what a file system
/// leaves after a crash that extended the file but never wrote the data. Reads a little
/// first and more as zeros keep coming, since the answer is mostly "no" at the first bytes.
fn rest_is_zero(file: &File, offset: u64, file_len: u64) -> io::Result<bool> {
    let mut at = offset;
    let mut buf = vec![0u8; 1 << 16];
    let mut want = 4096;
    while at < file_len {
        let got = file.read_at(&mut buf[..want], at)?;
        if got == 0 {
            break;
        }
        if buf[..got].iter().any(|b| *b != 0) {
            return Ok(false);
        }
        at += got as u64;
        want = (want * 2).min(buf.len());
    }
    Ok(true)
}

/// How much of the payload checksum [`judge_payload`] checks.
#[derive(Clone, Copy)]
enum PayloadCheck {
    /// Always.
    Full,
    /// Only for a record that may be a torn write; the caller checks the others.
    TornOnly,
}

/// What [`judge_payload`] found.
enum PayloadVerdict {
    /// The checksum holds, or was left to the caller.
    Intact,
    /// A torn write (shape 4 of the module documentation): never acknowledged, safe to cut.
    Torn(String),
    /// The checksum fails on a record that is not a torn write.
    Damaged(String),
}

/// Checks the payload of a whole record whose header checked out, and tells a torn write
/// (shape 4 of the module documentation) from damage when its checksum fails.
///
/// The payload starts at `payload_offset` in `file`, which is `file_len` bytes long; `after`
/// holds bytes that follow the payload in the file, as far as the caller has them in memory.
fn judge_payload(
    file: &File,
    file_len: u64,
    payload_offset: u64,
    payload: &[u8],
    crc: u32,
    after: &[u8],
    check: PayloadCheck,
) -> io::Result<PayloadVerdict> {
    const MISMATCH: &str = "payload checksum mismatch";
    if matches!(check, PayloadCheck::Full) && crc32c::crc32c(payload) == crc {
        return Ok(PayloadVerdict::Intact);
    }
    let payload_end = payload_offset + payload.len() as u64;
    let after = &after[..after
        .len()
        .min(file_len.saturating_sub(payload_end) as usize)];
    let zero_from = match sector_zero_start(payload_offset, payload) {
        Some(zero_from)
            if after.iter().all(|b| *b == 0)
                && rest_is_zero(file, payload_end + after.len() as u64, file_len)? =>
        {
            zero_from
        }
        _ => {
            return Ok(match check {
                PayloadCheck::Full => PayloadVerdict::Damaged(MISMATCH.to_owned()),
                PayloadCheck::TornOnly => PayloadVerdict::Intact,
            })
        }
    };
    if matches!(check, PayloadCheck::TornOnly) && crc32c::crc32c(payload) == crc {
        // A payload that really ends in zeros, at the end of the file.
        return Ok(PayloadVerdict::Intact);
    }
    if let Some(at) = single_byte_repair(payload, crc) {
        return Ok(PayloadVerdict::Damaged(format!(
            "{MISMATCH} (one changed byte, at {at} of the payload, explains it: damage, not a torn write)"
        )));
    }
    Ok(PayloadVerdict::Torn(format!(
        "payload of {} bytes reads as zeros from file offset {zero_from} (a sector boundary) to the end of the file: a write cut short",
        payload.len()
    )))
}

/// The first [`TORN_WRITE_SECTOR_BYTES`]-aligned file offset inside the payload (which starts
/// at file offset `payload_offset`) from which the payload is all zero, if there is one.
fn sector_zero_start(payload_offset: u64, payload: &[u8]) -> Option<u64> {
    let nonzero_len = payload.iter().rposition(|b| *b != 0).map_or(0, |i| i + 1);
    let zero_from = (payload_offset + nonzero_len as u64).div_ceil(TORN_WRITE_SECTOR_BYTES)
        * TORN_WRITE_SECTOR_BYTES;
    (zero_from < payload_offset + payload.len() as u64).then_some(zero_from)
}

/// CRC-32C's polynomial, bit-reversed (as the checksum is computed, least significant bit first).
const CRC32C_POLY_REVERSED: u32 = 0x82F6_3B78;

/// `CRC_TABLE[b]`: the bare CRC-32C state (no initial or final inversion) after the one byte
/// `b`, from state 0. One zero byte moves a state `s` to `(s >> 8) ^ CRC_TABLE[s & 0xff]`.
const CRC_TABLE: [u32; 256] = crc_table();

/// `CRC_TOP[CRC_TABLE[b] >> 24] == b`: the table's top bytes are all different (tested), which
/// lets a zero byte be taken back off a state.
const CRC_TOP: [u8; 256] = crc_top();

const fn crc_table() -> [u32; 256] {
    let mut table = [0u32; 256];
    let mut b = 0;
    while b < 256 {
        let mut c = b as u32;
        let mut bit = 0;
        while bit < 8 {
            c = if c & 1 == 1 {
                (c >> 1) ^ CRC32C_POLY_REVERSED
            } else {
                c >> 1
            };
            bit += 1;
        }
        table[b] = c;
        b += 1;
    }
    table
}

const fn crc_top() -> [u8; 256] {
    let table = crc_table();
    let mut top = [0u8; 256];
    let mut b = 0;
    while b < 256 {
        top[(table[b] >> 24) as usize] = b as u8;
        b += 1;
    }
    top
}

/// Where a single changed byte would make `payload`'s CRC-32C equal `crc`, if anywhere: the
/// index of that byte (the last one, should several do).
///
/// For two byte strings of one length, `crc32c(a) ^ crc32c(b)` is the bare CRC of `a ^ b`.
/// When they differ only in byte `i`, by `v`, that is `CRC_TABLE[v]` moved on over the
/// `len - 1 - i` zero bytes that follow. So this takes the difference and steps it back one
/// zero byte at a time, looking for a table entry at each step: exact, and linear in the
/// length.
fn single_byte_repair(payload: &[u8], crc: u32) -> Option<usize> {
    let mut state = crc32c::crc32c(payload) ^ crc;
    if state == 0 {
        return None;
    }
    for back in 0..payload.len() {
        let byte = CRC_TOP[(state >> 24) as usize];
        let entry = CRC_TABLE[usize::from(byte)];
        if entry == state {
            return Some(payload.len() - 1 - back);
        }
        // `state` = `(previous >> 8) ^ entry`, with `previous & 0xff == byte`.
        state = ((state ^ entry) << 8) | u32::from(byte);
    }
    None
}

/// Reads as many bytes as are there, up to `buf.len()`.
pub fn read_full_at(file: &File, buf: &mut [u8], offset: u64) -> io::Result<usize> {
    let mut got = 0;
    while got < buf.len() {
        let n = file.read_at(&mut buf[got..], offset + got as u64)?;
        if n == 0 {
            break;
        }
        got += n;
    }
    Ok(got)
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;

    fn sample() -> RecordFields<'static> {
        RecordFields {
            position: 7,
            txn_index: 1,
            txn_len: 2,
            version: 3,
            stream: "movement-24TG0000000000012X",
            event_id: [9; 16],
            event_type: "TransitReleased",
            schema_version: 1,
            metadata: b"{\"m\":1}",
            data: b"{\"d\":2}",
        }
    }

    #[test]
    fn encode_decode_round_trip() {
        let mut out = Vec::new();
        let leaf = encode_record(&mut out, &sample());
        let payload = check_framed(&out).unwrap();
        assert_eq!(leaf, leaf_hash(payload));
        assert_eq!(decode_payload(payload).unwrap(), sample());
    }

    #[test]
    fn any_flipped_bit_is_caught() {
        let mut out = Vec::new();
        encode_record(&mut out, &sample());
        for i in 0..out.len() {
            for bit in 0..8 {
                let mut bad = out.clone();
                bad[i] ^= 1 << bit;
                assert!(check_framed(&bad).is_err(), "byte {i} bit {bit}");
            }
        }
    }

    #[test]
    fn zero_header_never_checks_out() {
        assert!(parse_header(&[0u8; RECORD_HEADER_LEN]).is_err());
    }

    /// A segment of records of many sizes, some larger than a read, so that records straddle
    /// block boundaries in every way. Returns the bytes and where each record starts.
    fn big_segment() -> (Vec<u8>, Vec<usize>) {
        let mut out = segment_header(0).to_vec();
        let mut starts = Vec::new();
        let mut seed = 7u64;
        let mut i = 0usize;
        while out.len() < 5 * SCAN_READ_BYTES {
            seed = seed
                .wrapping_mul(6364136223846793005)
                .wrapping_add(1442695040888963407);
            let len = match i {
                40 => SCAN_READ_BYTES + 3_000,
                90 => 3 * SCAN_READ_BYTES / 2,
                _ => (seed >> 33) as usize % 9_000,
            };
            let payload: Vec<u8> = (0..len).map(|j| (j as u64 ^ seed) as u8).collect();
            starts.push(out.len());
            encode_frame(&mut out, &payload);
            i += 1;
        }
        (out, starts)
    }

    /// What the old scanner reports, one line per frame, up to the first that is not a record.
    fn scan_old(path: &std::path::Path) -> Vec<String> {
        let (mut scanner, first) = SegmentScanner::open(path).unwrap();
        let mut out = vec![format!("first {first:?}")];
        if first.is_err() {
            return out;
        }
        scanner.defer_payload_checksum();
        loop {
            let offset = scanner.offset();
            match scanner.next_frame() {
                Ok(Frame::Record {
                    payload,
                    framed_len,
                    payload_crc,
                }) => out.push(format!(
                    "record at {offset}: {framed_len} bytes, crc {payload_crc}, content {}",
                    crc32c::crc32c(&payload)
                )),
                Ok(Frame::End) => break out.push(format!("end at {offset}")),
                Ok(Frame::TornTail { reason }) => {
                    break out.push(format!("torn at {offset}: {reason}"))
                }
                Ok(Frame::Damaged { reason }) => {
                    break out.push(format!("damaged at {offset}: {reason}"))
                }
                Err(e) => break out.push(format!("error at {offset}: {e}")),
            }
        }
        out
    }

    /// What the block scanner reports, in the same form. Buffers are recycled as in a scan.
    fn scan_blocks(path: &std::path::Path) -> Vec<String> {
        let file = std::sync::Arc::new(File::open(path).unwrap());
        let len = file.metadata().unwrap().len();
        let (mut scanner, first) = BlockScanner::open(file, len, Vec::new()).unwrap();
        let mut out = vec![format!("first {first:?}")];
        if first.is_err() {
            return out;
        }
        let mut spare = Vec::new();
        loop {
            let offset = scanner.offset();
            match scanner.next_frame() {
                Ok(BlockFrame::Record {
                    start,
                    len,
                    payload_crc,
                }) => {
                    let payload = &scanner.block()[start..start + len as usize];
                    assert_eq!(
                        scanner.block_offset() + (start - RECORD_HEADER_LEN) as u64,
                        offset
                    );
                    out.push(format!(
                        "record at {offset}: {} bytes, crc {payload_crc}, content {}",
                        RECORD_HEADER_LEN as u64 + u64::from(len),
                        crc32c::crc32c(payload)
                    ));
                }
                Ok(BlockFrame::BlockEnd) => {
                    let end = scanner.block_offset() + scanner.block().len() as u64;
                    out.push(format!("block end at {end}"));
                    let buffer = std::mem::take(&mut spare);
                    spare = scanner.next_block(buffer).unwrap();
                    assert_eq!(scanner.offset(), offset, "a new block starts at the frame");
                }
                Ok(BlockFrame::End) => break out.push(format!("end at {offset}")),
                Ok(BlockFrame::TornTail { reason }) => {
                    break out.push(format!("torn at {offset}: {reason}"))
                }
                Ok(BlockFrame::Damaged { reason }) => {
                    break out.push(format!("damaged at {offset}: {reason}"))
                }
                Err(e) => break out.push(format!("error at {offset}: {e}")),
            }
        }
        out
    }

    #[test]
    fn block_scanner_reads_as_the_record_scanner_does() {
        let (full, starts) = big_segment();
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("seg");
        let check = |bytes: &[u8], what: &str| {
            std::fs::write(&path, bytes).unwrap();
            let old = scan_old(&path);
            let mut new = scan_blocks(&path);
            new.retain(|line| !line.starts_with("block end"));
            assert_eq!(old, new, "{what}");
        };
        check(&full, "whole segment");
        let mut whole = scan_old(&path);
        assert_eq!(whole.pop().unwrap(), format!("end at {}", full.len()));
        assert_eq!(whole.len(), starts.len() + 1);
        // Where the blocks end when the whole segment is read: every case near those.
        let block_ends: Vec<usize> = scan_blocks(&path)
            .iter()
            .filter_map(|line| line.strip_prefix("block end at "))
            .map(|end| end.parse().unwrap())
            .collect();
        assert!(block_ends.len() >= 3, "{block_ends:?}");
        let near_block_end = |at: usize| {
            block_ends
                .iter()
                .any(|end| at + 20_000 > *end && at < end + 20_000)
        };
        // Points around the ends of blocks and around some other record boundaries.
        let chosen = starts
            .iter()
            .enumerate()
            .filter(|(i, at)| i % 50 == 0 || near_block_end(**at))
            .map(|(_, at)| *at);
        let mut points: Vec<usize> = vec![0, 5, 15, 16, 17];
        for at in chosen.chain(block_ends.iter().copied()) {
            for delta in [-13i64, -12, -11, -1, 0, 1, 11, 12, 13] {
                if let Ok(p) = usize::try_from(at as i64 + delta) {
                    if p < full.len() {
                        points.push(p);
                    }
                }
            }
        }
        points.sort_unstable();
        points.dedup();
        for &p in &points {
            check(&full[..p], &format!("cut at {p}"));
            let mut flipped = full.clone();
            flipped[p] ^= 0x10;
            check(&flipped, &format!("flip at {p}"));
            let mut zeroed = full[..p].to_vec();
            zeroed.resize(full.len(), 0);
            check(&zeroed, &format!("zeros from {p}"));
        }
    }

    /// How a file ends, read by every scanner the way its users read it: the record scanner
    /// checking payloads itself and deferring them, and the block scanner. A deferred or
    /// handed-out payload whose checksum fails is what the caller reports as damage.
    fn ending(path: &std::path::Path) -> Vec<String> {
        let verdict = |frame: &str, offset: u64| format!("{frame} at {offset}");
        let mut out = Vec::new();
        for defer in [false, true] {
            let (mut scanner, first) = SegmentScanner::open(path).unwrap();
            first.unwrap();
            if defer {
                scanner.defer_payload_checksum();
            }
            out.push(loop {
                let offset = scanner.offset();
                match scanner.next_frame().unwrap() {
                    Frame::Record {
                        payload,
                        payload_crc,
                        ..
                    } => {
                        if crc32c::crc32c(&payload) != payload_crc {
                            break verdict("damaged", offset);
                        }
                    }
                    Frame::End => break verdict("end", offset),
                    Frame::TornTail { .. } => break verdict("torn", offset),
                    Frame::Damaged { .. } => break verdict("damaged", offset),
                }
            });
        }
        let file = std::sync::Arc::new(File::open(path).unwrap());
        let len = file.metadata().unwrap().len();
        let (mut scanner, first) = BlockScanner::open(file, len, Vec::new()).unwrap();
        first.unwrap();
        out.push(loop {
            let offset = scanner.offset();
            match scanner.next_frame().unwrap() {
                BlockFrame::Record {
                    start,
                    len,
                    payload_crc,
                } => {
                    let payload = &scanner.block()[start..start + len as usize];
                    if crc32c::crc32c(payload) != payload_crc {
                        break verdict("damaged", offset);
                    }
                }
                BlockFrame::BlockEnd => {
                    scanner.next_block(Vec::new()).unwrap();
                }
                BlockFrame::End => break verdict("end", offset),
                BlockFrame::TornTail { .. } => break verdict("torn", offset),
                BlockFrame::Damaged { .. } => break verdict("damaged", offset),
            }
        });
        out
    }

    /// Asserts that every scanner reads the file at `path` as ending with `expected`.
    fn assert_ending(path: &std::path::Path, expected: &str, what: &str) {
        assert_eq!(ending(path), vec![expected.to_owned(); 3], "{what}");
    }

    /// A segment of a few small records, then ones whose payloads hold `data`. Returns the
    /// bytes and the file offsets of the records holding `data`.
    fn segment_ending_with(data: &[&[u8]]) -> (Vec<u8>, Vec<usize>) {
        let mut out = segment_header(0).to_vec();
        for position in 0..3 {
            let rec = RecordFields {
                position,
                ..sample()
            };
            encode_record(&mut out, &rec);
        }
        let mut starts = Vec::new();
        for (i, data) in data.iter().enumerate() {
            starts.push(out.len());
            let rec = RecordFields {
                position: 3 + i as u64,
                data,
                ..sample()
            };
            encode_record(&mut out, &rec);
        }
        (out, starts)
    }

    /// Data bytes without a zero among them.
    fn nonzero_data(len: usize) -> Vec<u8> {
        (0..len).map(|i| 1 + (i * 7 % 251) as u8).collect()
    }

    /// The sector-aligned file offsets inside the payload of the record framed at `start`.
    fn sector_starts_in_payload(bytes: &[u8], start: usize) -> Vec<usize> {
        let len = u32::from_le_bytes(bytes[start..start + 4].try_into().unwrap()) as usize;
        let payload = start + RECORD_HEADER_LEN;
        let sector = TORN_WRITE_SECTOR_BYTES as usize;
        (payload.div_ceil(sector)..)
            .map(|n| n * sector)
            .take_while(|p| *p < payload + len)
            .collect()
    }

    #[test]
    fn crc_table_is_crc32c_and_its_top_bytes_are_all_different() {
        let mut tops: Vec<u32> = CRC_TABLE.iter().map(|t| t >> 24).collect();
        tops.sort_unstable();
        tops.dedup();
        assert_eq!(tops.len(), 256);
        // For strings of one length, the checksums differ by the bare CRC of the difference.
        let bare = |bytes: &[u8]| {
            bytes.iter().fold(0u32, |state, b| {
                (state >> 8) ^ CRC_TABLE[((state ^ u32::from(*b)) & 0xff) as usize]
            })
        };
        let a = nonzero_data(1000);
        let b: Vec<u8> = (0..1000).map(|i| (i * 31 % 256) as u8).collect();
        let diff: Vec<u8> = a.iter().zip(&b).map(|(x, y)| x ^ y).collect();
        assert_eq!(crc32c::crc32c(&a) ^ crc32c::crc32c(&b), bare(&diff));
    }

    #[test]
    fn single_byte_repair_finds_every_changed_byte() {
        let original = nonzero_data(3000);
        let crc = crc32c::crc32c(&original);
        assert_eq!(single_byte_repair(&original, crc), None);
        for at in (0..original.len()).step_by(37).chain([0, 2999]) {
            for flip in [0x01u8, 0x80, 0xff, 0x5a, original[at]] {
                let mut changed = original.clone();
                changed[at] ^= flip;
                assert_eq!(single_byte_repair(&changed, crc), Some(at), "{at} ^ {flip}");
            }
        }
        // Two changed bytes are not one.
        let mut changed = original.clone();
        changed[10] ^= 1;
        changed[2000] ^= 1;
        assert_eq!(single_byte_repair(&changed, crc), None);
    }

    #[test]
    fn a_payload_zeroed_from_a_sector_boundary_to_the_end_is_a_torn_tail() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("seg");
        let data = nonzero_data(5000);
        let (full, starts) = segment_ending_with(&[&data]);
        let last = starts[0];
        std::fs::write(&path, &full).unwrap();
        assert_ending(&path, &format!("end at {}", full.len()), "intact");
        let points = sector_starts_in_payload(&full, last);
        assert!(points.len() >= 9, "{points:?}");
        for &p in &points {
            let mut torn = full[..p].to_vec();
            torn.resize(full.len(), 0);
            std::fs::write(&path, &torn).unwrap();
            assert_ending(
                &path,
                &format!("torn at {last}"),
                &format!("zeros from {p}"),
            );
            // The file system extended the file further than the record (more zeros after it).
            torn.resize(full.len() + 4096 + 100, 0);
            std::fs::write(&path, &torn).unwrap();
            let what = format!("zeros from {p}, and more after the record");
            assert_ending(&path, &format!("torn at {last}"), &what);
        }
        // The whole payload zero, from a sector boundary right after the header.
        let mut aligned = segment_header(0).to_vec();
        let pad = 512 - RECORD_HEADER_LEN - aligned.len() - RECORD_HEADER_LEN;
        encode_frame(&mut aligned, &vec![7u8; pad]);
        let record = aligned.len();
        encode_frame(&mut aligned, &nonzero_data(2000));
        assert_eq!(record + RECORD_HEADER_LEN, 512);
        aligned[512..].fill(0);
        std::fs::write(&path, &aligned).unwrap();
        assert_ending(&path, &format!("torn at {record}"), "a payload of zeros");
    }

    #[test]
    fn a_group_commit_zeroed_from_a_sector_boundary_in_one_payload_is_torn_there() {
        // One write of several records, cut short: zeros from inside an earlier record's
        // payload through the whole of the later records.
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("seg");
        let data = nonzero_data(1500);
        let (full, starts) = segment_ending_with(&[&data, &data, &data]);
        for &start in &starts {
            for p in sector_starts_in_payload(&full, start) {
                let mut torn = full[..p].to_vec();
                torn.resize(full.len(), 0);
                std::fs::write(&path, &torn).unwrap();
                assert_ending(
                    &path,
                    &format!("torn at {start}"),
                    &format!("zeros from {p}"),
                );
            }
        }
    }

    #[test]
    fn a_torn_payload_across_scan_blocks_is_a_torn_tail() {
        // The last record straddles the end of the block scanner's first read.
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("seg");
        let filler = nonzero_data(9000);
        let mut data: Vec<&[u8]> = Vec::new();
        while data.len() * 9100 < SCAN_READ_BYTES - 20_000 {
            data.push(&filler);
        }
        let big = nonzero_data(40_000);
        data.push(&big);
        let (full, starts) = segment_ending_with(&data);
        let last = *starts.last().unwrap();
        assert!(last < SCAN_READ_BYTES && full.len() > SCAN_READ_BYTES + 4096);
        let points = sector_starts_in_payload(&full, last);
        for p in points.iter().step_by(7).chain(points.last()) {
            let mut torn = full[..*p].to_vec();
            torn.resize(full.len(), 0);
            std::fs::write(&path, &torn).unwrap();
            assert_ending(
                &path,
                &format!("torn at {last}"),
                &format!("zeros from {p}"),
            );
        }
    }

    #[test]
    fn a_flipped_byte_in_the_last_payload_is_damage() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("seg");
        let (full, starts) = segment_ending_with(&[&nonzero_data(5000)]);
        let last = starts[0];
        for at in (last + RECORD_HEADER_LEN..full.len())
            .step_by(97)
            .chain([full.len() - 1])
        {
            for flip in [0x01u8, 0xff] {
                let mut bad = full.clone();
                bad[at] ^= flip;
                std::fs::write(&path, &bad).unwrap();
                let what = format!("byte {at} ^ {flip}");
                assert_ending(&path, &format!("damaged at {last}"), &what);
            }
        }
    }

    #[test]
    fn a_payload_that_ends_in_zeros_with_a_flipped_byte_earlier_is_damage() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("seg");
        // Data that really ends in zeros, over several sector boundaries, and over none.
        for zeros in [2000usize, 9] {
            let mut data = nonzero_data(3000);
            data.resize(3000 + zeros, 0);
            let (full, starts) = segment_ending_with(&[&data]);
            let last = starts[0];
            std::fs::write(&path, &full).unwrap();
            assert_ending(&path, &format!("end at {}", full.len()), "intact");
            let zeros_from = full.len() - zeros;
            let payload = last + RECORD_HEADER_LEN;
            let places = (payload..full.len()).step_by(61).chain([
                zeros_from - 1,
                zeros_from,
                full.len() - 1,
            ]);
            for at in places {
                for flip in [0x01u8, 0x80, 0xff] {
                    let mut bad = full.clone();
                    bad[at] ^= flip;
                    std::fs::write(&path, &bad).unwrap();
                    let what = format!("{zeros} zeros, byte {at} ^ {flip}");
                    assert_ending(&path, &format!("damaged at {last}"), &what);
                }
            }
            // The last nonzero byte turned to zero.
            let mut bad = full.clone();
            bad[zeros_from - 1] = 0;
            std::fs::write(&path, &bad).unwrap();
            assert_ending(
                &path,
                &format!("damaged at {last}"),
                "last data byte zeroed",
            );
        }
    }

    #[test]
    fn zeros_that_do_not_run_from_a_sector_boundary_to_the_end_are_damage() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("seg");
        let data = nonzero_data(5000);
        let (full, starts) = segment_ending_with(&[&data]);
        let last = starts[0];
        let sector = TORN_WRITE_SECTOR_BYTES as usize;
        let last_sector = (full.len() - 1) / sector * sector;
        assert!(last_sector > last + RECORD_HEADER_LEN && full.len() - last_sector > 100);
        // Zeros only in the record's last, partly used sector: no sector boundary starts them.
        for p in [last_sector + 1, last_sector + 50, full.len() - 1] {
            let mut bad = full[..p].to_vec();
            bad.resize(full.len(), 0);
            std::fs::write(&path, &bad).unwrap();
            let what = format!("zeros from {p}");
            assert_ending(&path, &format!("damaged at {last}"), &what);
        }
        // Whole sectors of zeros inside the payload that stop before the end of the file.
        let points = sector_starts_in_payload(&full, last);
        for &p in &points[..points.len() - 1] {
            let mut bad = full.clone();
            bad[p..last_sector].fill(0);
            std::fs::write(&path, &bad).unwrap();
            let what = format!("zeros from {p} to {last_sector}");
            assert_ending(&path, &format!("damaged at {last}"), &what);
        }
        // Zeros from a sector boundary to the end, but in a record that is not the last: the
        // bytes after it are not zero.
        let (two, starts) = segment_ending_with(&[&data, &data]);
        let first = starts[0];
        for p in sector_starts_in_payload(&two, first) {
            let mut bad = two.clone();
            bad[p..starts[1]].fill(0);
            std::fs::write(&path, &bad).unwrap();
            let what = format!("zeros from {p} in the second to last record");
            assert_ending(&path, &format!("damaged at {first}"), &what);
        }
    }
}
