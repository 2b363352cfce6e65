//! LEB128 variable-length integers for the compact binary encodings of sketches.
//!
//! Decoding is strict: a truncated value, one longer than ten bytes (nineteen for a
//! wide value) or one that overflows 64 bits (128 for a wide value) is an error, never
//! a panic. A wide value below 2^64 has exactly the bytes of the same narrow value, so a
//! field can be widened without changing any encoding already stored.

/// Appends `value` as unsigned LEB128.
pub fn put(out: &mut Vec<u8>, value: u64) {
    put_wide(out, u128::from(value));
}

/// Appends a 128-bit `value` as unsigned LEB128.
pub fn put_wide(out: &mut Vec<u8>, mut value: u128) {
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
        // `get_bits(64)` in 64-bit arithmetic: decoding a stored sketch or sparse
        // HyperLogLog reads hundreds of these, most of them one byte long.
        let mut value = 0u64;
        let mut shift = 0;
        while shift < 64 {
            let byte = *self.bytes.get(self.pos).ok_or(ReadError::Truncated)?;
            self.pos += 1;
            let chunk = u64::from(byte & 0x7f);
            // The tenth group may carry only the 64th bit.
            if shift == 63 && chunk > 1 {
                return Err(ReadError::Overflow);
            }
            value |= chunk << shift;
            if byte & 0x80 == 0 {
                return Ok(value);
            }
            shift += 7;
        }
        Err(ReadError::Overflow)
    }

    /// Reads one unsigned LEB128 value of up to 128 bits.
    ///
    /// # Errors
    ///
    /// [`ReadError::Truncated`] or [`ReadError::Overflow`] (past 128 bits).
    pub fn get_wide(&mut self) -> Result<u128, ReadError> {
        self.get_bits(128)
    }

    /// Reads one unsigned LEB128 value that must fit in `bits` bits (64 or 128).
    fn get_bits(&mut self, bits: u32) -> Result<u128, ReadError> {
        let mut value = 0u128;
        let mut shift = 0;
        while shift < bits {
            let byte = *self.bytes.get(self.pos).ok_or(ReadError::Truncated)?;
            self.pos += 1;
            let chunk = u128::from(byte & 0x7f);
            // The last group may carry only the bits that are left.
            if bits - shift < 7 && chunk >> (bits - shift) != 0 {
                return Err(ReadError::Overflow);
            }
            value |= chunk << shift;
            if byte & 0x80 == 0 {
                return Ok(value);
            }
            shift += 7;
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
        fn wide_values_round_trip_and_narrow_ones_keep_their_bytes(
            wide in proptest::collection::vec(any::<u128>(), 0..50),
            narrow in any::<u64>(),
        ) {
            let mut buf = Vec::new();
            for v in &wide { put_wide(&mut buf, *v); }
            let mut r = Reader::new(&buf);
            for v in &wide { prop_assert_eq!(r.get_wide().unwrap(), *v); }
            prop_assert_eq!(r.remaining(), 0);
            let (mut as_narrow, mut as_wide) = (Vec::new(), Vec::new());
            put(&mut as_narrow, narrow);
            put_wide(&mut as_wide, u128::from(narrow));
            prop_assert_eq!(&as_narrow, &as_wide);
            prop_assert_eq!(Reader::new(&as_narrow).get_wide().unwrap(), u128::from(narrow));
        }

        #[test]
        fn narrow_reads_agree_with_the_general_reader(bytes in proptest::collection::vec(
            prop_oneof![Just(0x80u8), Just(0xffu8), Just(0x01u8), Just(0x02u8), any::<u8>()],
            0..24,
        )) {
            let (mut narrow, mut general) = (Reader::new(&bytes), Reader::new(&bytes));
            loop {
                let expected = general
                    .get_bits(64)
                    .map(|v| u64::try_from(v).unwrap());
                prop_assert_eq!(narrow.get(), expected);
                prop_assert_eq!(narrow.remaining(), general.remaining());
                if expected.is_err() || general.remaining() == 0 {
                    break;
                }
            }
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
        let mut wide_max = vec![0xff; 18];
        wide_max.push(0x03);
        assert_eq!(Reader::new(&wide_max).get_wide(), Ok(u128::MAX));
        wide_max[18] = 0x04;
        assert_eq!(Reader::new(&wide_max).get_wide(), Err(ReadError::Overflow));
        // A value past 64 bits is a wide value only.
        let mut past_64 = Vec::new();
        put_wide(&mut past_64, u128::from(u64::MAX) + 1);
        assert_eq!(Reader::new(&past_64).get(), Err(ReadError::Overflow));
    }
}
