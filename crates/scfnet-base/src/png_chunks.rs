//! PNG files without their compressed ancillary chunks.
//!
//! A PNG's colour profile (`iCCP`) and compressed text (`zTXt`, `iTXt`) are zlib streams that the
//! decoder inflates whole, whatever the image's size: a 1 MB file with a profile that inflates
//! to 1 GiB costs 2 GB of memory before a pixel is read, and the pixel limit cannot see it. No
//! decoder here uses those chunks (pixels are read as stored; no colour management), so every
//! PNG is decoded from its bytes with them left out ([`without_compressed_ancillary`]); the
//! pixels are the same.

/// The PNG signature.
const SIGNATURE: [u8; 8] = [0x89, b'P', b'N', b'G', 0x0d, 0x0a, 0x1a, 0x0a];

/// The chunks left out: the zlib-compressed ancillary ones.
const COMPRESSED_ANCILLARY: [&[u8; 4]; 3] = [b"iCCP", b"zTXt", b"iTXt"];

/// `bytes` without its `iCCP`, `zTXt` and `iTXt` chunks when it is a PNG that has any; `None`
/// when there is nothing to leave out (not a PNG, or none of those chunks). Where the chunk list
/// is damaged (a length past the end), the rest is kept as it is for the decoder to report.
pub fn without_compressed_ancillary(bytes: &[u8]) -> Option<Vec<u8>> {
    if !bytes.starts_with(&SIGNATURE) {
        return None;
    }
    let mut at = SIGNATURE.len();
    let mut kept: Vec<(usize, usize)> = Vec::new();
    let mut dropped = false;
    while at < bytes.len() {
        let end = bytes
            .get(at..at + 4)
            .map(|l| u32::from_be_bytes(l.try_into().expect("4 bytes")) as usize)
            .and_then(|len| at.checked_add(12)?.checked_add(len))
            .filter(|&end| end <= bytes.len());
        let Some(end) = end else {
            kept.push((at, bytes.len()));
            break;
        };
        let kind = &bytes[at + 4..at + 8];
        if COMPRESSED_ANCILLARY.iter().any(|k| k.as_slice() == kind) {
            dropped = true;
        } else {
            kept.push((at, end));
        }
        at = end;
        if kind == b"IEND" {
            break;
        }
    }
    if !dropped {
        return None;
    }
    let mut out = Vec::with_capacity(bytes.len());
    out.extend_from_slice(&SIGNATURE);
    for (start, end) in kept {
        out.extend_from_slice(&bytes[start..end]);
    }
    Some(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn chunk(kind: &[u8; 4], data: &[u8]) -> Vec<u8> {
        let mut c = (data.len() as u32).to_be_bytes().to_vec();
        c.extend_from_slice(kind);
        c.extend_from_slice(data);
        c.extend_from_slice(&[0, 0, 0, 0]); // the CRC is not looked at here
        c
    }

    #[test]
    fn compressed_ancillary_chunks_are_left_out_and_nothing_else() {
        let ihdr = chunk(b"IHDR", &[0; 13]);
        let idat = chunk(b"IDAT", &[1, 2, 3]);
        let iend = chunk(b"IEND", &[]);
        let mut png = SIGNATURE.to_vec();
        for c in [
            &ihdr,
            &chunk(b"iCCP", &[9; 40]),
            &idat,
            &chunk(b"zTXt", &[7; 5]),
            &iend,
        ] {
            png.extend_from_slice(c);
        }
        let mut want = SIGNATURE.to_vec();
        for c in [&ihdr, &idat, &iend] {
            want.extend_from_slice(c);
        }
        assert_eq!(without_compressed_ancillary(&png).unwrap(), want);
        assert_eq!(
            without_compressed_ancillary(&want),
            None,
            "nothing to leave out"
        );
        assert_eq!(without_compressed_ancillary(b"\xff\xd8 a JPEG"), None);
        // A damaged list: what follows the damage is kept as it is (the decoder reports it).
        let mut cut = png.clone();
        cut.truncate(SIGNATURE.len() + ihdr.len() + 60);
        let mut want = SIGNATURE.to_vec();
        want.extend_from_slice(&ihdr);
        want.extend_from_slice(
            &png[SIGNATURE.len() + ihdr.len() + 52..SIGNATURE.len() + ihdr.len() + 60],
        );
        assert_eq!(without_compressed_ancillary(&cut).unwrap(), want);
        let mut huge = SIGNATURE.to_vec();
        huge.extend_from_slice(&[0xff, 0xff, 0xff, 0xff, b'i', b'C', b'C', b'P', 0, 0, 0, 0]);
        assert_eq!(
            without_compressed_ancillary(&huge),
            None,
            "a length past the end"
        );
    }
}
