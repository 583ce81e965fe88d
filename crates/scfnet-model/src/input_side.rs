//! The network input side, checked once where it enters.

use std::fmt;
use std::str::FromStr;

use serde::{Deserialize, Serialize};

/// Largest network input side accepted: far above any use (the paper's is 352 / 384; R50 at
/// 4096×4096 is ~1.8 TMAC an image), and small enough that no tensor size overflows.
pub const MAX_INPUT_SIDE: usize = 4096;

/// A network input side: a positive multiple of 32 (the networks' coarsest stride), at most
/// [`MAX_INPUT_SIDE`]. Made only through [`InputSide::new`] (or parsing, or deserialising), so a
/// value of this type needs no further check on its way to the network.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(try_from = "usize", into = "usize")]
pub struct InputSide(usize);

/// A side that is not a positive multiple of 32 up to [`MAX_INPUT_SIDE`].
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
#[error("input side {0}: the networks need a positive multiple of 32, at most {MAX_INPUT_SIDE}")]
pub struct InputSideError(pub String);

impl InputSide {
    /// The paper's side for the student and the ResNet-50 teacher.
    pub const PAPER: InputSide = InputSide(352);
    /// The paper's side for the Swin-B teacher.
    pub const PAPER_SWIN: InputSide = InputSide(384);

    /// `side`, if it is a positive multiple of 32 up to [`MAX_INPUT_SIDE`].
    pub fn new(side: usize) -> Result<Self, InputSideError> {
        if side == 0 || side % 32 != 0 || side > MAX_INPUT_SIDE {
            return Err(InputSideError(side.to_string()));
        }
        Ok(Self(side))
    }

    /// The side in pixels.
    pub const fn get(self) -> usize {
        self.0
    }
}

impl TryFrom<usize> for InputSide {
    type Error = InputSideError;

    fn try_from(side: usize) -> Result<Self, Self::Error> {
        Self::new(side)
    }
}

impl From<InputSide> for usize {
    fn from(side: InputSide) -> usize {
        side.0
    }
}

impl FromStr for InputSide {
    type Err = InputSideError;

    /// A decimal side; anything else (negative, too large for `usize`, not a number) is refused
    /// with the text it was given.
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        let side: usize = s.trim().parse().map_err(|_| InputSideError(s.to_owned()))?;
        Self::new(side)
    }
}

impl fmt::Display for InputSide {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        self.0.fmt(f)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_positive_multiples_of_32_up_to_the_limit_are_sides() {
        for ok in [32, 352, 384, MAX_INPUT_SIDE] {
            assert_eq!(InputSide::new(ok).unwrap().get(), ok);
            assert_eq!(ok.to_string().parse::<InputSide>().unwrap().get(), ok);
        }
        for bad in [0, 31, 100, MAX_INPUT_SIDE + 32, 4_294_967_296, usize::MAX] {
            let err = InputSide::new(bad).unwrap_err().to_string();
            assert!(
                err.contains(&bad.to_string()) && err.contains("multiple of 32"),
                "{err}"
            );
        }
        for text in ["-32", "abc", "", "99999999999999999999999"] {
            let err = text.parse::<InputSide>().unwrap_err().to_string();
            assert!(err.contains(&format!("input side {text}:")), "{err}");
        }
    }

    #[test]
    fn a_side_reads_and_writes_as_a_plain_number_and_is_checked_on_reading() {
        let side: InputSide = serde_json::from_str("384").unwrap();
        assert_eq!(side, InputSide::PAPER_SWIN);
        assert_eq!(serde_json::to_string(&side).unwrap(), "384");
        let err = serde_json::from_str::<InputSide>("100")
            .unwrap_err()
            .to_string();
        assert!(err.contains("input side 100"), "{err}");
    }
}
