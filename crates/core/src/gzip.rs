//! Request bodies sent with `Content-Encoding: gzip` (RFC 1952), decoded within a byte
//! budget so that a small compressed body cannot grow past the limit an uncompressed one
//! has (a "gzip bomb" stops at the budget instead of filling the isolate's memory).
//!
//! The deflate stream is inflated by `miniz_oxide`; the gzip framing around it (header
//! flags, CRC-32 and length trailer) is read here, because it is small and the trailer
//! is what tells a truncated or corrupted body from a whole one.

use miniz_oxide::inflate::{TINFLStatus, decompress_to_vec_with_limit};

use crate::Error;

/// Header flag: a CRC-16 of the header follows it.
const FLAG_HCRC: u8 = 0x02;
/// Header flag: an extra field (length-prefixed) follows the fixed header.
const FLAG_EXTRA: u8 = 0x04;
/// Header flag: a zero-terminated original file name follows.
const FLAG_NAME: u8 = 0x08;
/// Header flag: a zero-terminated comment follows.
const FLAG_COMMENT: u8 = 0x10;
/// Length of the fixed header and of the trailer (CRC-32, then length mod 2^32).
const HEADER_LEN: usize = 10;
const TRAILER_LEN: usize = 8;

/// Decodes one gzip member into at most `limit` bytes.
///
/// # Errors
///
/// [`Error::InflatedTooLarge`] when the body would decompress to more than `limit`
/// bytes; [`Error::Invalid`] `malformed_gzip` for anything that is not one whole gzip
/// member (bad magic, another method, truncation, a checksum or length mismatch).
pub fn decode(body: &[u8], limit: usize) -> Result<Vec<u8>, Error> {
    let deflate_start = header_len(body)?;
    let stream = body.get(deflate_start..).unwrap_or_default();
    let inflated = decompress_to_vec_with_limit(stream, limit).map_err(|e| match e.status {
        TINFLStatus::HasMoreOutput => Error::InflatedTooLarge { limit },
        _ => malformed("its deflate data is corrupt or truncated"),
    })?;
    let trailer = body
        .len()
        .checked_sub(TRAILER_LEN)
        .and_then(|start| body.get(start..))
        .filter(|_| body.len() >= deflate_start + TRAILER_LEN)
        .ok_or_else(|| malformed("it ends before its trailer"))?;
    let crc = u32::from_le_bytes([trailer[0], trailer[1], trailer[2], trailer[3]]);
    let length = u32::from_le_bytes([trailer[4], trailer[5], trailer[6], trailer[7]]);
    // The trailer stores the length modulo 2^32, so truncating here is the comparison.
    #[allow(clippy::cast_possible_truncation)]
    let inflated_length = inflated.len() as u32;
    if length != inflated_length || crc != crc32(&inflated) {
        return Err(malformed("its checksum or length does not match its data"));
    }
    Ok(inflated)
}

/// Where the deflate stream starts: after the fixed header and the optional fields its
/// flags announce.
fn header_len(body: &[u8]) -> Result<usize, Error> {
    let fixed = body
        .get(..HEADER_LEN)
        .ok_or_else(|| malformed("it is shorter than a gzip header"))?;
    if fixed[0] != 0x1f || fixed[1] != 0x8b {
        return Err(malformed("it does not start with gzip's magic bytes"));
    }
    if fixed[2] != 8 {
        return Err(malformed("its compression method is not deflate"));
    }
    let flags = fixed[3];
    let mut at = HEADER_LEN;
    if flags & FLAG_EXTRA != 0 {
        let length = body
            .get(at..at + 2)
            .ok_or_else(|| malformed("its header is truncated"))?;
        at += 2 + usize::from(u16::from_le_bytes([length[0], length[1]]));
    }
    for flag in [FLAG_NAME, FLAG_COMMENT] {
        if flags & flag != 0 {
            let field = body
                .get(at..)
                .ok_or_else(|| malformed("its header is truncated"))?;
            let end = field
                .iter()
                .position(|&b| b == 0)
                .ok_or_else(|| malformed("its header is truncated"))?;
            at += end + 1;
        }
    }
    if flags & FLAG_HCRC != 0 {
        at += 2;
    }
    if at > body.len() {
        return Err(malformed("its header is truncated"));
    }
    Ok(at)
}

fn malformed(why: &str) -> Error {
    Error::invalid(
        "malformed_gzip",
        format!("the body is sent with Content-Encoding: gzip but {why}"),
    )
}

/// CRC-32 (IEEE 802.3, reflected), bit by bit: bodies are at most a megabyte and this
/// runs once per body, so a 1 KiB table would cost more bundle than it saves time.
fn crc32(data: &[u8]) -> u32 {
    let mut crc = !0u32;
    for &byte in data {
        crc ^= u32::from(byte);
        for _ in 0..8 {
            let mask = (crc & 1).wrapping_neg();
            crc = (crc >> 1) ^ (0xEDB8_8320 & mask);
        }
    }
    !crc
}

#[cfg(test)]
mod tests {
    use super::*;
    use miniz_oxide::deflate::compress_to_vec;

    /// A gzip member of `data` with the given flags' fields, as a sender would write it.
    fn gzip(data: &[u8], name: Option<&[u8]>) -> Vec<u8> {
        let flags = if name.is_some() { FLAG_NAME } else { 0 };
        let mut out = vec![0x1f, 0x8b, 8, flags, 0, 0, 0, 0, 0, 255];
        if let Some(name) = name {
            out.extend_from_slice(name);
            out.push(0);
        }
        out.extend(compress_to_vec(data, 6));
        out.extend(crc32(data).to_le_bytes());
        out.extend(u32::try_from(data.len()).unwrap().to_le_bytes());
        out
    }

    fn code(result: Result<Vec<u8>, Error>) -> &'static str {
        match result {
            Err(Error::Invalid { code, .. }) => code,
            Err(Error::InflatedTooLarge { .. }) => "too_large",
            Err(other) => panic!("unexpected error {other:?}"),
            Ok(_) => "ok",
        }
    }

    #[test]
    fn crc32_matches_the_standard_check_value() {
        assert_eq!(crc32(b"123456789"), 0xCBF4_3926);
    }

    #[test]
    fn a_whole_member_decodes_to_its_data() {
        let body = br#"[{"event":"ping","timestamp":1}]"#;
        assert_eq!(decode(&gzip(body, None), 1024).unwrap(), body);
        assert_eq!(
            decode(&gzip(body, Some(b"events.json")), 1024).unwrap(),
            body
        );
        assert_eq!(decode(&gzip(b"", None), 0).unwrap(), b"");
    }

    #[test]
    fn a_body_at_the_limit_decodes_and_one_byte_more_does_not() {
        let data = vec![b'a'; 4096];
        assert_eq!(decode(&gzip(&data, None), 4096).unwrap().len(), 4096);
        assert_eq!(code(decode(&gzip(&data, None), 4095)), "too_large");
    }

    #[test]
    fn a_bomb_stops_at_the_limit() {
        // 64 MiB of zeros compress to ~64 KiB; decoding must refuse without inflating it.
        let bomb = gzip(&vec![0; 64 << 20], None);
        assert!(bomb.len() < 100_000, "{}", bomb.len());
        assert_eq!(code(decode(&bomb, 1 << 20)), "too_large");
    }

    #[test]
    fn broken_members_are_malformed_never_a_panic() {
        let good = gzip(br#"{"name":"pageview"}"#, Some(b"x"));
        let mut cases: Vec<Vec<u8>> = vec![
            Vec::new(),
            b"{\"name\":\"pageview\"}".to_vec(),
            vec![0x1f, 0x8b, 7, 0, 0, 0, 0, 0, 0, 0],
            vec![0x1f, 0x8b, 8, FLAG_EXTRA, 0, 0, 0, 0, 0, 0, 0xff],
            vec![0x1f, 0x8b, 8, FLAG_NAME, 0, 0, 0, 0, 0, 0, b'n'],
        ];
        // Every truncation of a good member, and every single-bit flip of its trailer.
        cases.extend((0..good.len()).map(|n| good[..n].to_vec()));
        for bit in 0..64 {
            let mut flipped = good.clone();
            let at = good.len() - TRAILER_LEN + bit / 8;
            flipped[at] ^= 1 << (bit % 8);
            cases.push(flipped);
        }
        for case in cases {
            assert_eq!(code(decode(&case, 1024)), "malformed_gzip", "{case:?}");
        }
    }
}
