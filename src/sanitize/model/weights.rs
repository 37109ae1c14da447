//! The model's bytes: a small fixed format, embedded in the binary and written by the trainer.
//!
//! Owns: the format (little endian): `AGM1`, the bucket count (u32), the weight scale (f32),
//! the bias (f32), the recommended hold and flag thresholds (f32 each), then one i8 weight per
//! bucket (a weight is its i8 times the scale).
//! Never: trusts its input: bytes of the wrong size or magic are an error, never a panic.

use super::features::{split, BUCKETS};
use std::borrow::Cow;
use std::fmt;

const MAGIC: &[u8; 4] = b"AGM1";
const HEADER: usize = 24;

/// A linear model over hashed features.
#[derive(Clone)]
pub struct Weights {
    bytes: Cow<'static, [u8]>,
    scale: f32,
    /// The score of a window with no features.
    pub bias: f32,
    /// The hold threshold the trainer chose on its held-out split.
    pub hold: f32,
    /// The flag threshold the trainer chose.
    pub flag: f32,
}

/// Why model bytes were refused.
#[derive(Debug, PartialEq, Eq)]
pub enum FormatError {
    /// Not `AGM1`, or shorter than its header.
    Magic,
    /// A bucket count other than this build's.
    Buckets(u32),
    /// Fewer or more weight bytes than the bucket count needs.
    Size(usize),
}

impl fmt::Display for FormatError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            FormatError::Magic => f.write_str("not an AGM1 model"),
            FormatError::Buckets(n) => {
                write!(f, "model has {n} buckets, this build uses {BUCKETS}")
            }
            FormatError::Size(n) => write!(f, "model has {n} weight bytes, expected {BUCKETS}"),
        }
    }
}

impl std::error::Error for FormatError {}

impl Weights {
    /// Reads a model.
    pub fn parse(bytes: Cow<'static, [u8]>) -> Result<Weights, FormatError> {
        if bytes.len() < HEADER || &bytes[..4] != MAGIC {
            return Err(FormatError::Magic);
        }
        let word = |at: usize| [bytes[at], bytes[at + 1], bytes[at + 2], bytes[at + 3]];
        let buckets = u32::from_le_bytes(word(4));
        if buckets as usize != BUCKETS {
            return Err(FormatError::Buckets(buckets));
        }
        if bytes.len() - HEADER != BUCKETS {
            return Err(FormatError::Size(bytes.len() - HEADER));
        }
        Ok(Weights {
            scale: f32::from_le_bytes(word(8)),
            bias: f32::from_le_bytes(word(12)),
            hold: f32::from_le_bytes(word(16)),
            flag: f32::from_le_bytes(word(20)),
            bytes,
        })
    }

    /// The weight of one feature id (its bucket's, with its sign).
    #[inline]
    pub fn get(&self, feature: usize) -> f32 {
        let (bucket, sign) = split(feature);
        f32::from(self.bytes[HEADER + bucket] as i8) * self.scale * sign
    }

    /// The bytes of a model with these bucket weights (quantized to i8), for the trainer.
    pub fn encode(weights: &[f32], bias: f32, hold: f32, flag: f32) -> Vec<u8> {
        let max = weights.iter().fold(0f32, |m, w| m.max(w.abs()));
        let scale = if max > 0.0 {
            max / f32::from(i8::MAX)
        } else {
            1.0
        };
        let mut out = Vec::with_capacity(HEADER + weights.len());
        out.extend_from_slice(MAGIC);
        out.extend_from_slice(&(weights.len() as u32).to_le_bytes());
        for v in [scale, bias, hold, flag] {
            out.extend_from_slice(&v.to_le_bytes());
        }
        for w in weights {
            let q = (w / scale)
                .round()
                .clamp(f32::from(i8::MIN), f32::from(i8::MAX)) as i8;
            out.push(q as u8);
        }
        out
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn encode_then_parse_round_trips() {
        let mut w = vec![0f32; BUCKETS];
        w[7] = 1.5;
        w[9] = -3.0;
        let bytes = Weights::encode(&w, -2.0, 0.8, 0.4);
        let m = Weights::parse(Cow::Owned(bytes)).expect("parses");
        assert!((m.get(7) - 1.5).abs() < 0.03);
        assert!((m.get(9) + 3.0).abs() < 0.03);
        assert!((m.get(9 | super::super::features::NEGATIVE) - 3.0).abs() < 0.03);
        assert_eq!((m.bias, m.hold, m.flag), (-2.0, 0.8, 0.4));
    }

    #[test]
    fn bad_bytes_are_refused() {
        assert_eq!(
            Weights::parse(Cow::Borrowed(b"AGM")).err(),
            Some(FormatError::Magic)
        );
        let mut bytes = Weights::encode(&vec![0f32; BUCKETS], 0.0, 0.5, 0.5);
        bytes.pop();
        assert!(matches!(
            Weights::parse(Cow::Owned(bytes)),
            Err(FormatError::Size(_))
        ));
    }
}
