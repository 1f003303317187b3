//! Streaming masking of secrets in byte streams: response bodies, child process output.
//!
//! A [`Masker`] replaces every occurrence of a set of secrets ("needles") by the same number of
//! `*` bytes, so lengths (and a `Content-Length` header) stay valid. It works on a stream fed
//! chunk by chunk: a secret split across chunk boundaries is still masked, and only the bytes
//! that could still be the start of a secret are held back (at most the longest needle minus one
//! byte), so line-buffered interactive output comes through as soon as it is known to be safe.
//!
//! Streaming a text through [`Masker::push`] and [`Masker::finish`], whatever the chunking,
//! gives exactly the same bytes as [`Masker::mask_all`] on the whole text.

use std::borrow::Cow;
use std::fmt;
use std::sync::Arc;

use zeroize::{Zeroize, Zeroizing};

/// Needles shorter than this many bytes are ignored.
///
/// Masking a 1 to 3 byte string would shred ordinary output (every `a`, every `ok`, every
/// `the`) while protecting nothing: so short a secret can be guessed anyway.
pub const MIN_NEEDLE_LEN: usize = 4;

/// The byte every masked byte is replaced with.
pub const MASK_BYTE: u8 = b'*';

const BASE64_STANDARD: &[u8; 64] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";
const BASE64_URL_SAFE: &[u8; 64] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_";

/// Masks secrets in a byte stream, replacing each byte of each occurrence by `*`.
///
/// Occurrences of different needles that overlap or touch are all masked (the union of the
/// matched ranges is masked). One `Masker` masks one stream at a time; after
/// [`finish`](Self::finish) it is reset and can mask another. Clone a configured `Masker` to
/// mask several streams at once: clones share the needles, so cloning is cheap.
///
/// `Debug` shows only the number of needles, never the needles nor held-back bytes.
#[derive(Clone)]
pub struct Masker {
    /// What to look for; shared by clones, never changed after construction.
    set: Arc<NeedleSet>,
    /// Bytes received but not yet emitted: the tail that may be the start of a split needle.
    pending: Zeroizing<Vec<u8>>,
    /// How many leading bytes of `pending` are already known to be part of an occurrence.
    carry: usize,
}

struct NeedleSet {
    /// Distinct needles of at least [`MIN_NEEDLE_LEN`] bytes, sorted (hence grouped by first byte).
    needles: Vec<Zeroizing<Vec<u8>>>,
    /// `needles[buckets[b]..buckets[b + 1]]` are the needles whose first byte is `b`.
    buckets: [usize; 257],
    /// Length of the longest needle (0 when there is none).
    max_len: usize,
}

impl Masker {
    /// A masker hiding each of `needles`.
    ///
    /// Empty needles and needles shorter than [`MIN_NEEDLE_LEN`] bytes are ignored (masking
    /// tiny strings would shred the output); duplicates are kept once.
    pub fn new(needles: impl IntoIterator<Item = impl AsRef<[u8]>>) -> Masker {
        Self::from_needles(needles.into_iter().map(|n| Zeroizing::new(n.as_ref().to_vec())).collect())
    }

    /// A masker hiding each of `secrets` and the usual encodings of each whole secret:
    ///
    /// - standard base64 (`+/`), with and without `=` padding;
    /// - URL-safe base64 (`-_`), with and without padding;
    /// - percent-encoding (every byte outside `A-Z a-z 0-9 - . _ ~` as `%XX`), in upper and
    ///   lower case hex, when it differs from the secret.
    ///
    /// Secrets shorter than [`MIN_NEEDLE_LEN`] bytes are ignored together with their encodings.
    ///
    /// Limitation: only the encoding of the secret on its own is masked. Inside a larger base64
    /// blob (e.g. `base64("user:" + secret)`) the secret's bytes start at another alignment
    /// modulo 3 and encode to different characters, which this masker does not recognise.
    pub fn with_encodings(secrets: impl IntoIterator<Item = impl AsRef<[u8]>>) -> Masker {
        let mut needles = Vec::new();
        for secret in secrets {
            let secret = secret.as_ref();
            if secret.len() < MIN_NEEDLE_LEN {
                continue;
            }
            needles.push(Zeroizing::new(secret.to_vec()));
            for alphabet in [BASE64_STANDARD, BASE64_URL_SAFE] {
                for pad in [true, false] {
                    needles.push(base64_encode(secret, alphabet, pad));
                }
            }
            for upper in [true, false] {
                let encoded = percent_encode(secret, upper);
                if encoded.as_slice() != secret {
                    needles.push(encoded);
                }
            }
        }
        Self::from_needles(needles)
    }

    fn from_needles(mut needles: Vec<Zeroizing<Vec<u8>>>) -> Masker {
        needles.retain(|n| n.len() >= MIN_NEEDLE_LEN);
        needles.sort_unstable_by(|a, b| a.as_slice().cmp(b.as_slice()));
        needles.dedup_by(|a, b| a.as_slice() == b.as_slice());
        let mut buckets = [0; 257];
        for (b, bucket) in buckets.iter_mut().enumerate() {
            *bucket = needles.partition_point(|n| usize::from(n[0]) < b);
        }
        let max_len = needles.iter().map(|n| n.len()).max().unwrap_or(0);
        // `pending` grows on the first held-back tail: most streams never need it.
        Masker { set: Arc::new(NeedleSet { needles, buckets, max_len }), pending: Zeroizing::new(Vec::new()), carry: 0 }
    }

    /// How many distinct needles are masked (encodings included).
    pub fn needle_count(&self) -> usize {
        self.set.needles.len()
    }

    /// Whether there is nothing to mask: every stream then passes through unchanged.
    pub fn is_empty(&self) -> bool {
        self.set.needles.is_empty()
    }

    /// Like [`push`](Self::push), but returns `chunk` itself, uncopied, when all of it is safe to
    /// emit unchanged: nothing held back from before, no occurrence in it and no tail that may
    /// start one. The bytes returned are exactly those `push` would return.
    pub fn push_borrowed<'a>(&mut self, chunk: &'a [u8]) -> Cow<'a, [u8]> {
        let clean = self.pending.is_empty()
            && self.carry == 0
            && (self.is_empty() || (self.find(chunk, 0).is_empty() && self.holdback_start(chunk) == chunk.len()));
        if clean {
            Cow::Borrowed(chunk)
        } else {
            Cow::Owned(self.push(chunk))
        }
    }

    /// Like [`mask_all`](Self::mask_all), but returns `data` itself when nothing in it is masked.
    pub fn mask_all_borrowed<'a>(&self, data: &'a [u8]) -> Cow<'a, [u8]> {
        if self.is_empty() {
            return Cow::Borrowed(data);
        }
        let ranges = self.find(data, 0);
        if ranges.is_empty() {
            return Cow::Borrowed(data);
        }
        let mut out = data.to_vec();
        apply(&mut out, &ranges);
        Cow::Owned(out)
    }

    /// Feeds the next chunk of the stream and returns the bytes that are safe to emit now, masked.
    ///
    /// Holds back only a tail that is a proper prefix of some needle (so fewer bytes than the
    /// longest needle): a chunk whose end cannot start a needle is returned whole.
    pub fn push(&mut self, chunk: &[u8]) -> Vec<u8> {
        if self.is_empty() {
            return chunk.to_vec();
        }
        let mut buf = Vec::with_capacity(self.pending.len() + chunk.len());
        buf.extend_from_slice(&self.pending);
        buf.extend_from_slice(chunk);
        // Zeroes the old bytes and empties the vector, keeping its capacity.
        self.pending.zeroize();

        let ranges = self.find(&buf, self.carry);
        let cut = self.holdback_start(&buf);
        self.pending.extend_from_slice(&buf[cut..]);
        // Ranges are sorted and disjoint: only the last one can reach past `cut`.
        self.carry = ranges.last().map_or(0, |&(_, end)| end.saturating_sub(cut));
        buf[cut..].zeroize();
        buf.truncate(cut);
        apply(&mut buf, &ranges);
        buf
    }

    /// Ends the stream: returns every held-back byte, masked, and resets the masker.
    ///
    /// A held-back partial needle that never completed is emitted as it is, exactly as
    /// [`mask_all`](Self::mask_all) would leave it.
    pub fn finish(&mut self) -> Vec<u8> {
        let mut buf = self.pending.to_vec();
        self.pending.zeroize();
        let ranges = self.find(&buf, self.carry);
        self.carry = 0;
        apply(&mut buf, &ranges);
        buf
    }

    /// Masks a complete text in one go (headers, whole bodies). Independent of the streaming
    /// state.
    pub fn mask_all(&self, data: &[u8]) -> Vec<u8> {
        self.mask_all_borrowed(data).into_owned()
    }

    /// The needles starting with byte `first`.
    fn candidates(&self, first: u8) -> &[Zeroizing<Vec<u8>>] {
        let b = usize::from(first);
        &self.set.needles[self.set.buckets[b]..self.set.buckets[b + 1]]
    }

    /// Sorted, disjoint (merged) byte ranges covering `[0, carry)` and every complete occurrence
    /// of every needle in `buf`.
    fn find(&self, buf: &[u8], carry: usize) -> Vec<(usize, usize)> {
        let mut ranges: Vec<(usize, usize)> = Vec::new();
        if carry > 0 {
            ranges.push((0, carry));
        }
        for (i, &byte) in buf.iter().enumerate() {
            let candidates = self.candidates(byte);
            if candidates.is_empty() {
                continue;
            }
            let rest = &buf[i..];
            let Some(len) = candidates.iter().filter(|n| rest.starts_with(n)).map(|n| n.len()).max() else {
                continue;
            };
            let end = i + len;
            match ranges.last_mut() {
                Some(last) if i <= last.1 => last.1 = last.1.max(end),
                _ => ranges.push((i, end)),
            }
        }
        ranges
    }

    /// The first index from which `buf`'s tail is a proper prefix of some needle (an occurrence
    /// may still complete with the next chunk), or `buf.len()` when there is none.
    fn holdback_start(&self, buf: &[u8]) -> usize {
        let from = buf.len().saturating_sub(self.set.max_len.saturating_sub(1));
        (from..buf.len())
            .find(|&i| {
                let rest = &buf[i..];
                self.candidates(buf[i]).iter().any(|n| n.len() > rest.len() && n.starts_with(rest))
            })
            .unwrap_or(buf.len())
    }
}

impl fmt::Debug for Masker {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Masker").field("needles", &self.set.needles.len()).finish_non_exhaustive()
    }
}

/// Overwrites with [`MASK_BYTE`] the parts of `ranges` that fall inside `buf`.
fn apply(buf: &mut [u8], ranges: &[(usize, usize)]) {
    let len = buf.len();
    for &(start, end) in ranges {
        if start >= len {
            break;
        }
        buf[start..end.min(len)].fill(MASK_BYTE);
    }
}

/// Base64 (RFC 4648) of `data` with `alphabet`, with or without `=` padding.
fn base64_encode(data: &[u8], alphabet: &[u8; 64], pad: bool) -> Zeroizing<Vec<u8>> {
    let mut out = Zeroizing::new(Vec::with_capacity(data.len().div_ceil(3) * 4));
    let sextet = |v: u32, shift: u32| alphabet[((v >> shift) & 0x3f) as usize];
    for group in data.chunks(3) {
        let v = group.iter().enumerate().fold(0u32, |acc, (i, &b)| acc | u32::from(b) << (16 - 8 * i));
        let chars = group.len() + 1;
        for (k, shift) in [18, 12, 6, 0].into_iter().enumerate() {
            if k < chars {
                out.push(sextet(v, shift));
            } else if pad {
                out.push(b'=');
            }
        }
    }
    out
}

/// Percent-encoding of `data`: every byte outside `A-Z a-z 0-9 - . _ ~` becomes `%XX`.
fn percent_encode(data: &[u8], upper: bool) -> Zeroizing<Vec<u8>> {
    let hex: &[u8; 16] = if upper { b"0123456789ABCDEF" } else { b"0123456789abcdef" };
    let mut out = Zeroizing::new(Vec::with_capacity(data.len() * 3));
    for &b in data {
        if b.is_ascii_alphanumeric() || matches!(b, b'-' | b'.' | b'_' | b'~') {
            out.push(b);
        } else {
            out.extend_from_slice(&[b'%', hex[usize::from(b >> 4)], hex[usize::from(b & 0xf)]]);
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Reference implementation: the union of every window equal to a needle of at least
    /// `MIN_NEEDLE_LEN` bytes, checked naively.
    fn naive_mask(needles: &[&[u8]], data: &[u8]) -> Vec<u8> {
        let mut masked = vec![false; data.len()];
        for needle in needles.iter().filter(|n| n.len() >= MIN_NEEDLE_LEN) {
            for start in 0..data.len().saturating_sub(needle.len() - 1) {
                if &data[start..start + needle.len()] == *needle {
                    masked[start..start + needle.len()].fill(true);
                }
            }
        }
        data.iter().zip(masked).map(|(&b, m)| if m { MASK_BYTE } else { b }).collect()
    }

    /// Streams `data` through a clone of `masker` in chunks ending at `cuts`, once with `push`
    /// and once with `push_borrowed`, which must agree chunk by chunk.
    fn stream(masker: &Masker, data: &[u8], cuts: &[usize]) -> Vec<u8> {
        let (mut m, mut b) = (masker.clone(), masker.clone());
        let mut out = Vec::new();
        let mut from = 0;
        for &cut in cuts.iter().chain([&data.len()]) {
            let chunk = &data[from..cut];
            let pushed = m.push(chunk);
            let borrowed = b.push_borrowed(chunk);
            assert_eq!(borrowed.as_ref(), pushed.as_slice(), "push_borrowed differs from push");
            if let Cow::Borrowed(x) = borrowed {
                assert_eq!(x, chunk, "only an unchanged chunk is passed through");
            }
            out.extend(pushed);
            from = cut;
        }
        let rest = m.finish();
        assert_eq!(b.finish(), rest);
        out.extend(rest);
        assert!(m.pending.is_empty() && m.carry == 0, "finish resets the masker");
        out
    }

    #[test]
    fn masks_the_table_of_cases() {
        let cases: &[(&[&str], &str, &str)] = &[
            (&["secret"], "", ""),
            (&["secret"], "no match here", "no match here"),
            (&["secret"], "secret", "******"),
            (&["secret"], "a secret b", "a ****** b"),
            (&["secret"], "secretsecret", "************"),
            (&["secret"], "secre secret ecret", "secre ****** ecret"),
            (&["secret"], "SECRET is not secret", "SECRET is not ******"),
            (&["abcd", "cdef"], "xabcdefx", "x******x"),
            (&["abcd", "cd12"], "abcd12", "******"),
            (&["abcd", "efgh"], "abcdefgh", "********"),
            (&["abcd", "abcdef"], "abcdefg abcdx", "******g ****x"),
            (&["aaaa"], "aaaaaa", "******"),
            (&["aaaa"], "aaa aaaa aaa", "aaa **** aaa"),
            (&["abab"], "abababa", "******a"),
            (&["sk-live-123"], "Authorization: Bearer sk-live-123\r\n", "Authorization: Bearer ***********\r\n"),
            (&["secret", "secret"], "secret", "******"),
            (&["", "a", "ab", "abc", "long"], "a ab abc long", "a ab abc ****"),
            (&[], "anything", "anything"),
        ];
        for &(needles, input, expected) in cases {
            let masker = Masker::new(needles);
            let got = masker.mask_all(input.as_bytes());
            assert_eq!(String::from_utf8_lossy(&got), expected, "needles {needles:?}, input {input:?}");
            assert_eq!(got.len(), input.len(), "length preserved");
            let naive_needles: Vec<&[u8]> = needles.iter().map(|n| n.as_bytes()).collect();
            assert_eq!(got, naive_mask(&naive_needles, input.as_bytes()), "agrees with the naive reference");
            let cuts: Vec<usize> = (1..input.len()).collect();
            assert_eq!(stream(&masker, input.as_bytes(), &cuts), got, "1-byte chunks, input {input:?}");
        }
    }

    const SPLIT_NEEDLES: &[&str] = &["sk-live-abc123", "tsr_TOKEN99", "pass-word", "word-lock", "xxxx"];
    const SPLIT_TEXT: &str = "start sk-live-abc123\nmid tsr_TOKEN99tsr_TOKEN99 sk-live-abc12 pass-word-lock \
        xxxxxx sk-live-abc123sk-live-abc123 tsr_TOK end tsr_TOKEN9";

    #[test]
    fn streaming_equals_one_shot_at_every_split() {
        let masker = Masker::new(SPLIT_NEEDLES);
        let data = SPLIT_TEXT.as_bytes();
        let expected = masker.mask_all(data);
        let needles: Vec<&[u8]> = SPLIT_NEEDLES.iter().map(|n| n.as_bytes()).collect();
        assert_eq!(expected, naive_mask(&needles, data));
        assert!(!expected.windows(9).any(|w| w == b"pass-word" || w == b"word-lock"));

        assert_eq!(stream(&masker, data, &[]), expected, "single chunk");
        for cut in 0..=data.len() {
            assert_eq!(stream(&masker, data, &[cut]), expected, "split at {cut}");
        }
        for a in 0..=data.len() {
            for b in a..=data.len() {
                assert_eq!(stream(&masker, data, &[a, b]), expected, "split at {a} and {b}");
            }
        }
        let ones: Vec<usize> = (1..data.len()).collect();
        assert_eq!(stream(&masker, data, &ones), expected, "1-byte chunks");
        let mut empties = Vec::new();
        for i in 0..=data.len() {
            empties.extend([i, i]);
        }
        assert_eq!(stream(&masker, data, &empties), expected, "empty chunks interleaved");
    }

    #[test]
    fn streaming_matches_the_reference_on_pseudo_random_text() {
        // A tiny alphabet makes overlapping and partial occurrences frequent.
        let needles: &[&[u8]] = &[b"abab", b"baab", b"aaaa", b"abbbba", b"ba"];
        let masker = Masker::new(needles);
        let mut state: u64 = 0x9e37_79b9_7f4a_7c15;
        let mut next = move || {
            state ^= state << 13;
            state ^= state >> 7;
            state ^= state << 17;
            state
        };
        for _ in 0..300 {
            let len = (next() % 64) as usize;
            let data: Vec<u8> = (0..len).map(|_| if next() % 2 == 0 { b'a' } else { b'b' }).collect();
            let expected = naive_mask(needles, &data);
            assert_eq!(masker.mask_all(&data), expected);
            let mut cuts: Vec<usize> = (0..(next() % 8)).map(|_| (next() % (len as u64 + 1)) as usize).collect();
            cuts.sort_unstable();
            assert_eq!(
                stream(&masker, &data, &cuts),
                expected,
                "data {:?} cuts {cuts:?}",
                String::from_utf8_lossy(&data)
            );
        }
    }

    #[test]
    fn encodes_base64_and_percent_like_the_rfcs() {
        let b64 =
            |s: &str, alphabet, pad| String::from_utf8(base64_encode(s.as_bytes(), alphabet, pad).to_vec()).unwrap();
        let vectors = [
            ("", "", ""),
            ("f", "Zg==", "Zg"),
            ("fo", "Zm8=", "Zm8"),
            ("foo", "Zm9v", "Zm9v"),
            ("foob", "Zm9vYg==", "Zm9vYg"),
            ("fooba", "Zm9vYmE=", "Zm9vYmE"),
            ("foobar", "Zm9vYmFy", "Zm9vYmFy"),
        ];
        for (plain, padded, unpadded) in vectors {
            assert_eq!(b64(plain, BASE64_STANDARD, true), padded);
            assert_eq!(b64(plain, BASE64_STANDARD, false), unpadded);
        }
        assert_eq!(b64("\u{fb}\u{ff}", BASE64_STANDARD, true), "w7vDvw==");
        assert_eq!(b64("\u{fb}\u{ff}", BASE64_URL_SAFE, false), "w7vDvw");
        assert_eq!(
            String::from_utf8(base64_encode(&[0xfb, 0xff, 0xbf], BASE64_STANDARD, true).to_vec()).unwrap(),
            "+/+/"
        );
        assert_eq!(
            String::from_utf8(base64_encode(&[0xfb, 0xff, 0xbf], BASE64_URL_SAFE, true).to_vec()).unwrap(),
            "-_-_"
        );

        let pct = |s: &str, upper| String::from_utf8(percent_encode(s.as_bytes(), upper).to_vec()).unwrap();
        assert_eq!(pct("Az09-._~", true), "Az09-._~");
        assert_eq!(pct("a b/c+d=é", true), "a%20b%2Fc%2Bd%3D%C3%A9");
        assert_eq!(pct("a b/c+d=é", false), "a%20b%2fc%2bd%3d%c3%a9");
    }

    #[test]
    fn with_encodings_masks_base64_and_url_encoded_forms() {
        let secret = "k3y/with+odd=chars?"; // 19 bytes: base64 needs padding, percent-encoding differs
        let masker = Masker::with_encodings([secret]);
        let forms = [
            secret.to_owned(),
            "azN5L3dpdGgrb2RkPWNoYXJzPw==".to_owned(), // standard, padded
            "azN5L3dpdGgrb2RkPWNoYXJzPw".to_owned(),   // standard, unpadded
            "azN5L3dpdGgrb2RkPWNoYXJzPw".to_owned(),   // URL-safe: no + or / in this one
            "k3y%2Fwith%2Bodd%3Dchars%3F".to_owned(),
            "k3y%2fwith%2bodd%3dchars%3f".to_owned(),
        ];
        for form in &forms {
            let text = format!("before {form} after");
            let masked = masker.mask_all(text.as_bytes());
            assert_eq!(String::from_utf8(masked).unwrap(), format!("before {} after", "*".repeat(form.len())));
        }

        // URL-safe alphabet differs from the standard one for this secret.
        let secret = [0xfbu8, 0xff, 0xbf, 0x41, 0x42];
        let masker = Masker::with_encodings([secret]);
        for form in ["+/+/QUI=", "+/+/QUI", "-_-_QUI", "-_-_QUI=", "%FB%FF%BFAB", "%fb%ff%bfAB"] {
            let text = format!("x={form};");
            assert_eq!(masker.mask_all(text.as_bytes()), format!("x={};", "*".repeat(form.len())).into_bytes());
        }

        // Percent-encoding identical to the secret is not a separate needle; padding-free
        // lengths produce identical padded and unpadded forms, deduplicated.
        let masker = Masker::with_encodings(["abcdef", "ab", ""]);
        assert_eq!(masker.needle_count(), 2); // `abcdef` and `YWJjZGVm`
        let masker = Masker::with_encodings(["abcdef"]);
        let cuts: Vec<usize> = (1..16).collect();
        assert_eq!(stream(&masker, b"[YWJjZGVm|abcdef]", &cuts), b"[********|******]");
    }

    #[test]
    fn short_and_empty_needles_are_ignored_and_duplicates_kept_once() {
        let masker = Masker::new(["", "a", "ab", "abc"]);
        assert!(masker.is_empty());
        assert_eq!(masker.needle_count(), 0);
        let mut m = masker.clone();
        assert_eq!(m.push(b"a ab abc"), b"a ab abc");
        assert_eq!(m.finish(), b"");

        let masker = Masker::new(vec![b"abcd".to_vec(), b"abcd".to_vec(), b"abc".to_vec(), b"wxyz".to_vec()]);
        assert_eq!(masker.needle_count(), 2);
        assert!(!masker.is_empty());
    }

    #[test]
    fn debug_does_not_leak_needles_or_held_back_bytes() {
        let mut masker = Masker::new(["hunter2-secret", "tsr_abcdefgh"]);
        assert_eq!(masker.push(b"log: hunter2-sec"), b"log: ");
        let debug = format!("{masker:?} {masker:#?}");
        assert!(debug.contains("needles: 2"), "{debug}");
        for leak in ["hunter", "secret", "tsr_", "abcdefgh", "sec"] {
            assert!(!debug.contains(leak), "{debug}");
        }
    }

    #[test]
    fn emits_whole_chunks_when_no_needle_can_start_in_the_tail() {
        let mut masker = Masker::new(["sk-secret-value"]);
        assert_eq!(masker.push(b"hello world\n"), b"hello world\n");
        assert_eq!(masker.push(b"$ "), b"$ ");
        assert_eq!(masker.push(b"key=sk-secret-value\n"), b"key=***************\n");
        assert_eq!(masker.push(b"progress 50%\n"), b"progress 50%\n");
        assert_eq!(masker.finish(), b"");
    }

    #[test]
    fn holds_back_a_trailing_partial_needle_until_it_resolves() {
        let mut masker = Masker::new(["sk-secret"]);
        assert_eq!(masker.push(b"abc sk-se"), b"abc ");
        assert_eq!(masker.pending.as_slice(), b"sk-se");
        assert_eq!(masker.finish(), b"sk-se", "never completed: released as is by finish");

        assert_eq!(masker.push(b"abc sk-se"), b"abc ");
        assert_eq!(masker.push(b"cret more"), b"********* more");
        assert_eq!(masker.finish(), b"");

        assert_eq!(masker.push(b"x sk-"), b"x ");
        assert_eq!(masker.push(b"sk-"), b"sk-", "first partial ruled out, second still pending");
        assert_eq!(masker.push(b"nope\n"), b"sk-nope\n");
        assert_eq!(masker.finish(), b"");

        // Holdback never exceeds the longest needle minus one byte.
        assert_eq!(masker.push(b"sk-secresk-secre"), b"sk-secre");
        assert_eq!(masker.pending.len(), 8);
        assert_eq!(masker.finish(), b"sk-secre");
    }

    #[test]
    fn carries_a_mask_across_the_holdback_boundary() {
        // `abcdef` completes in the first chunk but `defxyz` may start inside it: the held-back
        // `def` must still come out masked.
        let mut masker = Masker::new(["abcdef", "defxyz"]);
        assert_eq!(masker.push(b"..abcdef"), b"..***");
        assert_eq!(masker.pending.as_slice(), b"def");
        assert_eq!(masker.push(b"!"), b"***!");
        assert_eq!(masker.push(b"abcdef"), b"***");
        assert_eq!(masker.finish(), b"***");
        assert_eq!(masker.push(b"abcdefxy"), b"***");
        assert_eq!(masker.push(b"z"), b"******");
        assert_eq!(masker.finish(), b"");
    }
}
