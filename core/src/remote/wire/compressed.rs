//! The body of a compressed PUT: the file cut into chunks of at most [`CHUNK`] bytes, each
//! sent as `raw_len: u32 BE, packed_len: u32 BE, <packed_len bytes of one zstd frame>`.
//!
//! Both lengths travel in the header so that a receiver which gave up on a file (a full
//! disk, a corrupt frame) can still skip to the next request without decompressing. Chunks
//! keep memory bounded whatever the segment size (up to 1 GB).

use std::io::{self, Read, Write};

/// Raw bytes per chunk: large enough that zstd's per-frame cost vanishes, small enough to
/// keep both ends' buffers modest.
pub const CHUNK: usize = 1 << 20;
/// zstd level 1: several hundred MB/s on one core, which keeps compression off the
/// critical path of a link that is slower than that.
const LEVEL: i32 = 1;

fn max_packed() -> usize {
    zstd::zstd_safe::compress_bound(CHUNK)
}

/// Writes `len` bytes of `data` as compressed chunks; returns how many raw bytes it sent.
pub struct Packer {
    compressor: zstd::bulk::Compressor<'static>,
    raw: Vec<u8>,
    packed: Vec<u8>,
}

impl Packer {
    pub fn new() -> io::Result<Self> {
        Ok(Packer {
            compressor: zstd::bulk::Compressor::new(LEVEL)?,
            raw: vec![0; CHUNK],
            packed: Vec::with_capacity(max_packed()),
        })
    }

    pub fn send(
        &mut self,
        data: &mut (impl Read + ?Sized),
        len: u64,
        out: &mut impl Write,
    ) -> io::Result<u64> {
        let mut sent = 0u64;
        while sent < len {
            let want = (len - sent).min(CHUNK as u64) as usize;
            let got = read_up_to(data, &mut self.raw[..want])?;
            if got == 0 {
                break;
            }
            self.packed.clear();
            self.compressor
                .compress_to_buffer(&self.raw[..got], &mut self.packed)?;
            out.write_all(&(got as u32).to_be_bytes())?;
            out.write_all(&(self.packed.len() as u32).to_be_bytes())?;
            out.write_all(&self.packed)?;
            sent += got as u64;
        }
        Ok(sent)
    }
}

/// Reads the raw bytes back out of a compressed body of `len` raw bytes.
pub struct Unpacker<'a, R> {
    input: &'a mut R,
    /// Raw bytes of the body not yet taken out of the stream.
    remaining: u64,
    decompressor: zstd::bulk::Decompressor<'static>,
    chunk: Vec<u8>,
    pos: usize,
    packed: Vec<u8>,
}

impl<'a, R: Read> Unpacker<'a, R> {
    pub fn new(input: &'a mut R, len: u64) -> io::Result<Self> {
        Ok(Unpacker {
            input,
            remaining: len,
            decompressor: zstd::bulk::Decompressor::new()?,
            chunk: Vec::with_capacity(CHUNK),
            pos: 0,
            packed: Vec::new(),
        })
    }

    /// Reads one chunk header and checks it against the limits and the announced length.
    fn header(&mut self) -> io::Result<(usize, usize)> {
        let mut header = [0u8; 8];
        self.input.read_exact(&mut header)?;
        let raw = u32::from_be_bytes(header[..4].try_into().unwrap()) as usize;
        let packed = u32::from_be_bytes(header[4..].try_into().unwrap()) as usize;
        if raw == 0 || raw > CHUNK || raw as u64 > self.remaining || packed > max_packed() {
            return Err(io::Error::new(
                io::ErrorKind::InvalidData,
                format!(
                    "bad compressed chunk header (raw {raw}, packed {packed}, {} bytes left)",
                    self.remaining
                ),
            ));
        }
        self.remaining -= raw as u64;
        Ok((raw, packed))
    }

    /// Skips what is left of the body, so the stream lines up with the next request.
    pub fn drain(&mut self) -> io::Result<()> {
        while self.remaining > 0 {
            let (_, packed) = self.header()?;
            io::copy(&mut (&mut *self.input).take(packed as u64), &mut io::sink()).and_then(
                |n| {
                    if n == packed as u64 {
                        Ok(())
                    } else {
                        Err(io::ErrorKind::UnexpectedEof.into())
                    }
                },
            )?;
        }
        Ok(())
    }
}

impl<R: Read> Read for Unpacker<'_, R> {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        if self.pos == self.chunk.len() {
            if self.remaining == 0 {
                return Ok(0);
            }
            let (raw, packed) = self.header()?;
            self.packed.resize(packed, 0);
            self.input.read_exact(&mut self.packed)?;
            self.chunk.clear();
            self.decompressor
                .decompress_to_buffer(&self.packed, &mut self.chunk)?;
            if self.chunk.len() != raw {
                return Err(io::Error::new(
                    io::ErrorKind::InvalidData,
                    format!(
                        "a chunk announced {raw} bytes and held {}",
                        self.chunk.len()
                    ),
                ));
            }
            self.pos = 0;
        }
        let n = buf.len().min(self.chunk.len() - self.pos);
        buf[..n].copy_from_slice(&self.chunk[self.pos..self.pos + n]);
        self.pos += n;
        Ok(n)
    }
}

fn read_up_to(data: &mut (impl Read + ?Sized), buf: &mut [u8]) -> io::Result<usize> {
    let mut filled = 0;
    while filled < buf.len() {
        match data.read(&mut buf[filled..]) {
            Ok(0) => break,
            Ok(n) => filled += n,
            Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
            Err(e) => return Err(e),
        }
    }
    Ok(filled)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn round_trip(data: &[u8]) -> Vec<u8> {
        let mut wire = Vec::new();
        let sent = Packer::new()
            .unwrap()
            .send(&mut &data[..], data.len() as u64, &mut wire)
            .unwrap();
        assert_eq!(sent, data.len() as u64);
        let mut input = &wire[..];
        let mut out = Vec::new();
        Unpacker::new(&mut input, data.len() as u64)
            .unwrap()
            .read_to_end(&mut out)
            .unwrap();
        assert!(input.is_empty(), "the body was read exactly");
        out
    }

    #[test]
    fn bytes_come_back_identical_across_chunk_boundaries() {
        let data: Vec<u8> = (0..(3 * CHUNK + 17)).map(|i| (i / 7 % 251) as u8).collect();
        assert_eq!(round_trip(&data), data);
        assert_eq!(round_trip(&[]), Vec::<u8>::new());
    }

    #[test]
    fn a_body_can_be_skipped_without_decompressing() {
        let data = vec![7u8; 2 * CHUNK + 5];
        let mut wire = Vec::new();
        Packer::new()
            .unwrap()
            .send(&mut &data[..], data.len() as u64, &mut wire)
            .unwrap();
        wire.extend_from_slice(b"NEXT");
        let mut input = &wire[..];
        let mut unpacker = Unpacker::new(&mut input, data.len() as u64).unwrap();
        let mut first = [0u8; 10];
        unpacker.read_exact(&mut first).unwrap();
        unpacker.drain().unwrap();
        assert_eq!(input, b"NEXT");
    }

    #[test]
    fn a_header_announcing_more_than_the_file_is_refused() {
        let mut wire = Vec::new();
        wire.extend_from_slice(&(CHUNK as u32).to_be_bytes());
        wire.extend_from_slice(&10u32.to_be_bytes());
        wire.extend_from_slice(&[0; 10]);
        let mut input = &wire[..];
        let mut out = Vec::new();
        let err = Unpacker::new(&mut input, 100)
            .unwrap()
            .read_to_end(&mut out)
            .unwrap_err();
        assert!(
            err.to_string().contains("bad compressed chunk header"),
            "{err}"
        );
    }
}
