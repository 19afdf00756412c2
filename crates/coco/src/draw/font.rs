//! The compiled-in font: the 8×8 bitmap glyphs of basic Latin (public domain, via `font8x8`).

use font8x8::legacy::BASIC_LEGACY;

/// Glyph width and height in pixels before scaling.
pub(super) const GLYPH: usize = 8;

/// The rows of `ch`'s glyph, top first; bit `i` of a row is column `i` from the left. Characters
/// outside printable ASCII are drawn as `?`.
pub(super) fn glyph(ch: char) -> [u8; 8] {
    let code = ch as usize;
    if (0x20..0x7f).contains(&code) {
        BASIC_LEGACY[code]
    } else {
        BASIC_LEGACY[usize::from(b'?')]
    }
}
