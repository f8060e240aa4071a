//! Unicode Normalization Form C (UAX #15) without allocation.
//!
//! Text that passes the quick check (UAX #15 section 9: every character
//! `NFC_Quick_Check=Yes`, combining classes in order) is already NFC and is
//! tokenized in place. Other text is normalized into the caller's scratch as
//! code points: full canonical decomposition (Hangul by arithmetic, the rest
//! from [`DECOMP`]), canonical ordering (a stable insertion sort of each run of
//! non-starters by combining class), then canonical composition (UAX #15
//! section 1.3, D117), all in place. Tables: `scripts/make_unicode_tables.py`.

// `x % n != 0` rather than `is_multiple_of`: the workspace's MSRV is 1.85.
#![allow(clippy::manual_is_multiple_of)]

use super::unicode_tables::{COMPOSE, DECOMP, NORM_PROPS};

// Hangul syllable arithmetic (Unicode 3.12, "Conjoining Jamo Behavior").
const S_BASE: u32 = 0xAC00;
const L_BASE: u32 = 0x1100;
const V_BASE: u32 = 0x1161;
const T_BASE: u32 = 0x11A7;
const L_COUNT: u32 = 19;
const V_COUNT: u32 = 21;
const T_COUNT: u32 = 28;
const N_COUNT: u32 = V_COUNT * T_COUNT;
const S_COUNT: u32 = L_COUNT * N_COUNT;

const CP_MASK: u64 = 0x1F_FFFF;

/// `(canonical combining class, NFC quick check: 0 Yes, 1 Maybe, 2 No)`.
#[inline]
fn props(c: u32) -> (u8, u8) {
    // Nothing below U+0300 has a non-zero class or a quick-check value.
    if c < 0x300 {
        return (0, 0);
    }
    let i = NORM_PROPS.partition_point(|&e| (e & CP_MASK) as u32 <= c);
    match i.checked_sub(1).map(|i| NORM_PROPS[i]) {
        Some(e) if c <= ((e >> 21) & CP_MASK) as u32 => (((e >> 42) & 0xFF) as u8, ((e >> 50) & 3) as u8),
        _ => (0, 0),
    }
}

/// The canonical combining class of `c`.
#[inline]
pub fn ccc(c: u32) -> u8 {
    props(c).0
}

/// UAX #15 quick check: `true` means `s` is NFC as it stands. `false` means
/// it may not be (a `Maybe` answer is treated as "normalize to be sure").
pub fn is_nfc_quick(s: &str) -> bool {
    let mut last = 0u8;
    for c in s.chars() {
        let (class, qc) = props(c as u32);
        if qc != 0 || (class != 0 && last > class) {
            return false;
        }
        last = class;
    }
    true
}

/// The one-level canonical decomposition of `c` (second half 0 for a singleton).
#[inline]
fn decomposition(c: u32) -> Option<(u32, u32)> {
    // U+00C0 is the first character with a canonical decomposition.
    if c < 0xC0 {
        return None;
    }
    let i = DECOMP.partition_point(|&e| ((e & CP_MASK) as u32) < c);
    let e = *DECOMP.get(i)?;
    ((e & CP_MASK) as u32 == c).then_some((((e >> 21) & CP_MASK) as u32, ((e >> 42) & CP_MASK) as u32))
}

/// Emits the full canonical decomposition of `c` (not yet reordered).
fn decompose(c: u32, emit: &mut impl FnMut(u32)) {
    if (S_BASE..S_BASE + S_COUNT).contains(&c) {
        let s = c - S_BASE;
        emit(L_BASE + s / N_COUNT);
        emit(V_BASE + (s % N_COUNT) / T_COUNT);
        if s % T_COUNT != 0 {
            emit(T_BASE + s % T_COUNT);
        }
        return;
    }
    match decomposition(c) {
        Some((a, b)) => {
            decompose(a, emit);
            if b != 0 {
                decompose(b, emit);
            }
        }
        None => emit(c),
    }
}

/// The primary composite of `a` followed by `b`, if there is one.
#[inline]
fn compose(a: u32, b: u32) -> Option<u32> {
    if (L_BASE..L_BASE + L_COUNT).contains(&a) && (V_BASE..V_BASE + V_COUNT).contains(&b) {
        return Some(S_BASE + ((a - L_BASE) * V_COUNT + (b - V_BASE)) * T_COUNT);
    }
    if (S_BASE..S_BASE + S_COUNT).contains(&a) && (a - S_BASE) % T_COUNT == 0 && (T_BASE + 1..T_BASE + T_COUNT).contains(&b) {
        return Some(a + (b - T_BASE));
    }
    let key = (a, b);
    let pair = |i: u16| {
        let e = DECOMP[i as usize];
        (((e >> 21) & CP_MASK) as u32, ((e >> 42) & CP_MASK) as u32)
    };
    let i = COMPOSE.partition_point(|&i| pair(i) < key);
    let &idx = COMPOSE.get(i)?;
    (pair(idx) == key).then(|| (DECOMP[idx as usize] & CP_MASK) as u32)
}

/// How many code points the canonical decomposition of `s` has: the scratch
/// [`nfc_into`] needs.
pub fn decomposed_len(s: &str) -> usize {
    let mut n = 0usize;
    for c in s.chars() {
        decompose(c as u32, &mut |_| n += 1);
    }
    n
}

/// Writes the NFC form of `s` into `buf` as code points and returns how many
/// it wrote. `buf` must hold [`decomposed_len`]`(s)` code points; a shorter
/// buffer gets `Err(needed)`.
pub fn nfc_into(s: &str, buf: &mut [u32]) -> Result<usize, usize> {
    let needed = decomposed_len(s);
    if buf.len() < needed {
        return Err(needed);
    }
    let mut n = 0usize;
    for c in s.chars() {
        decompose(c as u32, &mut |d| {
            if let Some(slot) = buf.get_mut(n) {
                *slot = d;
            }
            n += 1;
        });
    }
    let len = n.min(buf.len());
    let buf = &mut buf[..len];
    reorder(buf);
    Ok(compose_in_place(buf))
}

/// Canonical ordering: sorts each run of non-starters by combining class,
/// keeping equal classes in order.
fn reorder(buf: &mut [u32]) {
    for i in 1..buf.len() {
        let c = buf[i];
        let class = ccc(c);
        if class == 0 {
            continue;
        }
        let mut j = i;
        while j > 0 {
            let prev = ccc(buf[j - 1]);
            if prev == 0 || prev <= class {
                break;
            }
            buf[j] = buf[j - 1];
            j -= 1;
        }
        buf[j] = c;
    }
}

/// Canonical composition of decomposed, ordered text, in place; returns the
/// new length. A character joins the last starter unless blocked: something
/// not composed lies between them with a class of 0 or not below its own.
fn compose_in_place(buf: &mut [u32]) -> usize {
    let mut starter: Option<usize> = None;
    let mut last_class = 0u8;
    let mut w = 0usize;
    for i in 0..buf.len() {
        let c = buf[i];
        let class = ccc(c);
        if let Some(s) = starter {
            let adjacent = s + 1 == w;
            if adjacent || last_class < class {
                if let Some(composite) = compose(buf[s], c) {
                    buf[s] = composite;
                    continue;
                }
            }
        }
        if class == 0 {
            starter = Some(w);
        }
        last_class = class;
        buf[w] = c;
        w += 1;
    }
    w
}

#[cfg(test)]
mod tests {
    use super::*;
    extern crate std;
    use proptest::prelude::*;
    use std::string::String;
    use std::vec;
    use unicode_normalization::UnicodeNormalization;

    fn nfc(s: &str) -> String {
        let mut buf = vec![0u32; decomposed_len(s)];
        let n = nfc_into(s, &mut buf).unwrap();
        buf[..n].iter().map(|&c| char::from_u32(c).unwrap()).collect()
    }

    #[test]
    fn known_cases() {
        assert_eq!(nfc("e\u{301}"), "\u{e9}");
        assert_eq!(nfc("\u{e9}"), "\u{e9}");
        // Ordering: dot below (220) goes before acute (230), then both compose.
        assert_eq!(nfc("e\u{301}\u{323}"), "\u{1eb9}\u{301}");
        assert_eq!(nfc("\u{1100}\u{1161}\u{11a8}"), "\u{ac01}");
        assert_eq!(nfc("\u{212b}"), "\u{c5}"); // Angstrom sign -> A ring (singleton)
        assert_eq!(nfc("\u{958}"), "\u{915}\u{93c}"); // composition exclusion
        assert_eq!(nfc("\u{1d160}"), "\u{1d158}\u{1d165}\u{1d16e}");
        assert_eq!(nfc(""), "");
        assert!(is_nfc_quick("plain ascii, 中文, émoji 😀"));
        assert!(!is_nfc_quick("e\u{301}"));
        assert!(!is_nfc_quick("a\u{323}\u{301}".chars().rev().collect::<String>().as_str()));
    }

    #[test]
    fn every_character_alone_matches_the_reference() {
        for cp in 0..0x11_0000u32 {
            let Some(c) = char::from_u32(cp) else { continue };
            let mut s = [0u8; 4];
            let s = c.encode_utf8(&mut s);
            let want: String = s.nfc().collect();
            assert_eq!(nfc(s), want, "U+{cp:04X}");
            if is_nfc_quick(s) {
                assert_eq!(&*s, want.as_str(), "quick check said yes for U+{cp:04X}");
            }
        }
    }

    fn marky_string() -> impl Strategy<Value = String> {
        let pick = prop_oneof![
            3 => proptest::char::range('a', 'z'),
            3 => proptest::char::range('\u{300}', '\u{36f}'),
            1 => proptest::char::range('\u{1100}', '\u{11ff}'),
            1 => proptest::char::range('\u{ac00}', '\u{ac40}'),
            1 => proptest::char::range('\u{c0}', '\u{24f}'),
            1 => proptest::char::range('\u{1e00}', '\u{1fff}'),
            1 => proptest::char::range('\u{900}', '\u{dff}'),
            1 => proptest::char::range('\u{3099}', '\u{30ff}'),
            1 => any::<char>(),
        ];
        proptest::collection::vec(pick, 0..24).prop_map(|v| v.into_iter().collect())
    }

    proptest! {
        #![proptest_config(ProptestConfig::with_cases(4000))]
        #[test]
        fn matches_unicode_normalization(s in marky_string()) {
            let want: String = s.nfc().collect();
            prop_assert_eq!(nfc(&s), want.clone());
            if is_nfc_quick(&s) {
                prop_assert_eq!(&s, &want);
            }
        }
    }
}
