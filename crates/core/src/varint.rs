//! LEB128 variable-length integers for the compact binary encodings of sketches.
//!
//! Decoding is strict: a truncated value, one longer than ten bytes or one that
//! overflows 64 bits is an error, never a panic.

/// Appends `value` as unsigned LEB128.
pub fn put(out: &mut Vec<u8>, mut value: u64) {
    loop {
        let byte = (value & 0x7f) as u8;
        value >>= 7;
        if value == 0 {
            out.push(byte);
            return;
        }
        out.push(byte | 0x80);
    }
}

/// Appends a signed value, zigzag-encoded so small magnitudes stay short.
pub fn put_signed(out: &mut Vec<u8>, value: i64) {
    put(out, ((value << 1) ^ (value >> 63)) as u64);
}

/// A cursor over an encoded buffer.
#[derive(Debug, Clone)]
pub struct Reader<'a> {
    bytes: &'a [u8],
    pos: usize,
}

/// Why a read failed.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ReadError {
    /// The buffer ended inside a value.
    Truncated,
    /// A varint is longer than ten bytes or exceeds 64 bits.
    Overflow,
}

impl<'a> Reader<'a> {
    pub fn new(bytes: &'a [u8]) -> Self {
        Self { bytes, pos: 0 }
    }

    /// Reads one unsigned LEB128 value.
    ///
    /// # Errors
    ///
    /// [`ReadError::Truncated`] or [`ReadError::Overflow`].
    pub fn get(&mut self) -> Result<u64, ReadError> {
        let mut value = 0u64;
        for shift in (0..70).step_by(7) {
            let byte = *self.bytes.get(self.pos).ok_or(ReadError::Truncated)?;
            self.pos += 1;
            let bits = u64::from(byte & 0x7f);
            if shift == 63 && bits > 1 {
                return Err(ReadError::Overflow);
            }
            value |= bits << shift;
            if byte & 0x80 == 0 {
                return Ok(value);
            }
        }
        Err(ReadError::Overflow)
    }

    /// Reads one zigzag-encoded signed value.
    ///
    /// # Errors
    ///
    /// As [`Reader::get`].
    pub fn get_signed(&mut self) -> Result<i64, ReadError> {
        let raw = self.get()?;
        Ok(((raw >> 1) as i64) ^ -((raw & 1) as i64))
    }

    /// Reads one byte.
    ///
    /// # Errors
    ///
    /// [`ReadError::Truncated`] at the end of the buffer.
    pub fn byte(&mut self) -> Result<u8, ReadError> {
        let byte = *self.bytes.get(self.pos).ok_or(ReadError::Truncated)?;
        self.pos += 1;
        Ok(byte)
    }

    /// Reads `n` raw bytes.
    ///
    /// # Errors
    ///
    /// [`ReadError::Truncated`] when fewer than `n` remain.
    pub fn take(&mut self, n: usize) -> Result<&'a [u8], ReadError> {
        let end = self.pos.checked_add(n).ok_or(ReadError::Truncated)?;
        let slice = self.bytes.get(self.pos..end).ok_or(ReadError::Truncated)?;
        self.pos = end;
        Ok(slice)
    }

    /// Bytes not read yet.
    pub fn remaining(&self) -> usize {
        self.bytes.len() - self.pos
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    proptest! {
        #[test]
        fn round_trips(values in proptest::collection::vec(any::<u64>(), 0..50),
                       signed in proptest::collection::vec(any::<i64>(), 0..50)) {
            let mut buf = Vec::new();
            for v in &values { put(&mut buf, *v); }
            for v in &signed { put_signed(&mut buf, *v); }
            let mut r = Reader::new(&buf);
            for v in &values { prop_assert_eq!(r.get().unwrap(), *v); }
            for v in &signed { prop_assert_eq!(r.get_signed().unwrap(), *v); }
            prop_assert_eq!(r.remaining(), 0);
        }

        #[test]
        fn never_panics_on_garbage(bytes in proptest::collection::vec(any::<u8>(), 0..40)) {
            let mut r = Reader::new(&bytes);
            while r.remaining() > 0 {
                if r.get().is_err() { break; }
            }
        }
    }

    #[test]
    fn strict_errors() {
        assert_eq!(Reader::new(&[0x80]).get(), Err(ReadError::Truncated));
        assert_eq!(Reader::new(&[]).get(), Err(ReadError::Truncated));
        let eleven = [0xff; 10]
            .iter()
            .chain(&[0x01])
            .copied()
            .collect::<Vec<_>>();
        assert_eq!(Reader::new(&eleven).get(), Err(ReadError::Overflow));
        let too_big = [0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0x02];
        assert_eq!(Reader::new(&too_big).get(), Err(ReadError::Overflow));
        let max = [0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0x01];
        assert_eq!(Reader::new(&max).get(), Ok(u64::MAX));
        assert_eq!(Reader::new(&[1, 2]).take(3), Err(ReadError::Truncated));
    }
}
