//! An owned 8-bit greyscale map.

use crate::error::{MetricsError, Result};

/// An 8-bit greyscale image stored row-major, shape `(H, W)`.
///
/// Both saliency predictions (0 = background … 255 = salient) and ground-truth masks
/// (foreground where the value is `> 128`) use this type.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct GrayMap {
    width: usize,
    height: usize,
    data: Vec<u8>,
}

impl GrayMap {
    /// Wraps a row-major buffer of `width * height` bytes.
    pub fn new(width: usize, height: usize, data: Vec<u8>) -> Result<Self> {
        if data.len() != width * height {
            return Err(MetricsError::BufferSize {
                what: "grey map",
                len: data.len(),
                width,
                height,
            });
        }
        if data.is_empty() {
            return Err(MetricsError::EmptyMap {
                what: "grey map",
                width,
                height,
            });
        }
        Ok(Self {
            width,
            height,
            data,
        })
    }

    /// A map filled with one value.
    pub fn filled(width: usize, height: usize, value: u8) -> Result<Self> {
        Self::new(width, height, vec![value; width * height])
    }

    /// Width `W` in pixels.
    pub fn width(&self) -> usize {
        self.width
    }

    /// Height `H` in pixels.
    pub fn height(&self) -> usize {
        self.height
    }

    /// The pixels, row-major.
    pub fn data(&self) -> &[u8] {
        &self.data
    }

    /// Consumes the map and returns its pixels.
    pub fn into_data(self) -> Vec<u8> {
        self.data
    }

    /// `(width, height)`.
    pub fn size(&self) -> (usize, usize) {
        (self.width, self.height)
    }
}
