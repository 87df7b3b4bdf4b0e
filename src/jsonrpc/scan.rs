//! Reads the common shape of a request body in one pass without serde: a call object, or a
//! batch of them, whose keys and strings carry no escapes. Validates every byte it accepts as
//! JSON (numbers, literals, nesting, control characters) and gives up — `None`, so the serde
//! parse decides — on anything else; it never refuses a body itself.

use std::borrow::Cow;

use super::request::{Members, RawJson};

/// Deepest nesting the scanner follows (serde's own limit is 128; deeper bodies go to it).
const MAX_DEPTH: u32 = 32;

/// A body read by the scanner: each call's members, not yet checked against JSON-RPC 2.0.
pub(super) enum Body<'a> {
    /// One call object.
    Single(Members<'a>),
    /// A batch of 1..=`max_batch` call objects.
    Batch(Vec<Members<'a>>),
}

/// The body's calls when it is one call object or a batch of `1..=max_batch` of them, JSON
/// whitespace around; `None` for anything else.
pub(super) fn body(text: &str, max_batch: usize) -> Option<Body<'_>> {
    let mut s = Scanner { text, at: 0 };
    s.ws();
    let body = match s.peek()? {
        b'{' => Body::Single(s.call()?),
        b'[' => {
            s.at += 1;
            let mut calls = Vec::with_capacity(max_batch.min(16));
            loop {
                s.ws();
                calls.push(s.call()?);
                s.ws();
                match s.next()? {
                    b',' if calls.len() < max_batch => {}
                    b']' => break,
                    _ => return None,
                }
            }
            Body::Batch(calls)
        }
        _ => return None,
    };
    s.ws();
    (s.at == text.len()).then_some(body)
}

/// One high bit per byte of `word` (little-endian) that ends a plain string or makes it one the
/// scanner leaves to serde: `"`, `\\` or a control character. A flag can be wrong only above a
/// byte that is flagged rightly (the subtraction's borrow runs upwards), so the lowest one is
/// always right, which is all the scanner reads.
fn special(word: u64) -> u64 {
    const ONES: u64 = 0x0101_0101_0101_0101;
    const HIGH: u64 = 0x8080_8080_8080_8080;
    let zero = |v: u64| v.wrapping_sub(ONES) & !v & HIGH;
    // A byte below 0x20 goes negative when 0x20 is taken away; `!word` drops non-ASCII bytes.
    let control = word.wrapping_sub(ONES * 0x20) & !word & HIGH;
    zero(word ^ (ONES * u64::from(b'"'))) | zero(word ^ (ONES * u64::from(b'\\'))) | control
}

struct Scanner<'a> {
    text: &'a str,
    at: usize,
}

impl<'a> Scanner<'a> {
    fn peek(&self) -> Option<u8> {
        self.text.as_bytes().get(self.at).copied()
    }

    fn next(&mut self) -> Option<u8> {
        let b = self.peek()?;
        self.at += 1;
        Some(b)
    }

    /// Skips JSON's whitespace (not form feed, which `is_ascii_whitespace` takes).
    fn ws(&mut self) {
        while matches!(self.peek(), Some(b' ' | b'\t' | b'\n' | b'\r')) {
            self.at += 1;
        }
    }

    fn expect(&mut self, b: u8) -> Option<()> {
        (self.next()? == b).then_some(())
    }

    /// The text from `start` to here. Both ends sit next to ASCII bytes the scanner read.
    fn since(&self, start: usize) -> Option<&'a str> {
        self.text.get(start..self.at)
    }

    /// One call object's members; `None` if a key is escaped or repeated, or the method is not
    /// a plain string.
    fn call(&mut self) -> Option<Members<'a>> {
        self.expect(b'{')?;
        let mut m = Members {
            jsonrpc: None,
            id: None,
            method: None,
            params: None,
        };
        let mut seen = [false; 4];
        self.list(b'}', |s| {
            let key = s.key()?;
            let start = s.at;
            let slot = match key {
                "jsonrpc" => Some(0),
                "id" => Some(1),
                "method" => Some(2),
                "params" => Some(3),
                _ => None,
            };
            if let Some(k) = slot {
                let seen = seen.get_mut(k)?;
                if std::mem::replace(seen, true) {
                    return None;
                }
            }
            match slot {
                Some(2) => m.method = Some(Cow::Borrowed(s.string()?)),
                _ => s.value(0)?,
            }
            let json = RawJson::scanned(s.since(start)?);
            match slot {
                Some(0) => m.jsonrpc = Some(json),
                Some(1) => m.id = Some(json),
                // `"params": null` is no params, as serde reads an `Option`.
                Some(3) => m.params = (json.get() != "null").then_some(json),
                _ => {}
            }
            Some(())
        })?;
        Some(m)
    }

    /// The items of an object or array whose opening byte is read: each read by `item` (for
    /// an object, a member with its key), separated by commas, up to `close`.
    fn list(&mut self, close: u8, mut item: impl FnMut(&mut Self) -> Option<()>) -> Option<()> {
        self.ws();
        if self.peek()? == close {
            self.at += 1;
            return Some(());
        }
        loop {
            self.ws();
            item(self)?;
            self.ws();
            match self.next()? {
                b',' => {}
                b if b == close => return Some(()),
                _ => return None,
            }
        }
    }

    /// A member's key (a plain string) and the colon after it.
    fn key(&mut self) -> Option<&'a str> {
        let key = self.string()?;
        self.ws();
        self.expect(b':')?;
        self.ws();
        Some(key)
    }

    /// A string without escapes or control characters; its text between the quotes. Read
    /// eight bytes at a time: most of a call's bytes are in its strings (an address is 42).
    fn string(&mut self) -> Option<&'a str> {
        self.expect(b'"')?;
        let start = self.at;
        let bytes = self.text.as_bytes();
        let mut i = start;
        loop {
            if let Some(word) = bytes.get(i..i + 8).and_then(|w| <[u8; 8]>::try_from(w).ok()) {
                match special(u64::from_le_bytes(word)) {
                    0 => {
                        i += 8;
                        continue;
                    }
                    // The lowest flag is exact (see `special`): the first special byte.
                    flags => i += (flags.trailing_zeros() / 8) as usize,
                }
            }
            match *bytes.get(i)? {
                b'"' => break,
                b'\\' | 0..=0x1f => return None,
                _ => i += 1,
            }
        }
        self.at = i + 1;
        // Both ends are next to an ASCII quote: char boundaries.
        self.text.get(start..i)
    }

    /// Any JSON value, validated and skipped.
    fn value(&mut self, depth: u32) -> Option<()> {
        match self.peek()? {
            b'"' => self.string().map(drop),
            b'{' | b'[' if depth >= MAX_DEPTH => None,
            b'{' => {
                self.at += 1;
                self.list(b'}', |s| {
                    s.key()?;
                    s.value(depth + 1)
                })
            }
            b'[' => {
                self.at += 1;
                self.list(b']', |s| s.value(depth + 1))
            }
            b't' => self.literal("true"),
            b'f' => self.literal("false"),
            b'n' => self.literal("null"),
            _ => self.number(),
        }
    }

    fn literal(&mut self, word: &str) -> Option<()> {
        let end = self.at + word.len();
        (self.text.as_bytes().get(self.at..end)? == word.as_bytes()).then(|| self.at = end)
    }

    /// `-?(0|[1-9][0-9]*)(\.[0-9]+)?([eE][+-]?[0-9]+)?`
    fn number(&mut self) -> Option<()> {
        if self.peek()? == b'-' {
            self.at += 1;
        }
        match self.next()? {
            b'0' => {}
            b'1'..=b'9' => self.digits(),
            _ => return None,
        }
        if self.peek() == Some(b'.') {
            self.at += 1;
            self.digit()?;
        }
        if matches!(self.peek(), Some(b'e' | b'E')) {
            self.at += 1;
            if matches!(self.peek(), Some(b'+' | b'-')) {
                self.at += 1;
            }
            self.digit()?;
        }
        Some(())
    }

    /// At least one digit.
    fn digit(&mut self) -> Option<()> {
        self.next()?.is_ascii_digit().then(|| self.digits())
    }

    fn digits(&mut self) {
        while self.peek().is_some_and(|b| b.is_ascii_digit()) {
            self.at += 1;
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn single(text: &str) -> Option<Members<'_>> {
        match body(text, 10)? {
            Body::Single(m) => Some(m),
            Body::Batch(_) => None,
        }
    }

    #[test]
    fn reads_a_call_as_sent() {
        let m = single(r#" {"jsonrpc":"2.0", "id" : -1.5e+3,"method":"klay_getBalance","params":["0x01", {"a":[true,false,null]}], "x": {}}"#)
            .unwrap();
        assert_eq!(m.jsonrpc.unwrap().get(), "\"2.0\"");
        assert_eq!(m.id.unwrap().get(), "-1.5e+3");
        assert_eq!(m.method.as_deref(), Some("klay_getBalance"));
        assert!(matches!(m.method, Some(Cow::Borrowed(_))));
        assert_eq!(m.params.unwrap().get(), r#"["0x01", {"a":[true,false,null]}]"#);
        let m = single(r#"{"id":null,"params":null}"#).unwrap();
        assert_eq!(m.id.unwrap().get(), "null");
        assert!(m.params.is_none() && m.method.is_none() && m.jsonrpc.is_none());
        assert!(single("{}").is_some());
    }

    #[test]
    fn gives_up_on_what_it_does_not_read() {
        for text in [
            r#"{"method":"a\"b"}"#,
            r#"{"m\u0065thod":"a"}"#,
            r#"{"method":5}"#,
            r#"{"id":1,"id":2}"#,
            "{\"x\":\"\t\"}",
            r#"{"id":01}"#,
            r#"{"id":1.}"#,
            r#"{"id":1e}"#,
            r#"{"id":-}"#,
            r#"{"id":+1}"#,
            r#"{"id":tru}"#,
            r#"{"id":nulls}"#,
            r#"{"id":[1,]}"#,
            r#"{"id":{"a"}}"#,
            r#"{"id":1,}"#,
            r#"{"id":1} x"#,
            "\x0c{}",
            "{}\x0c",
            "[]",
            "[{},]",
            "[{}, 1]",
            "[{}",
            "",
            "1",
        ] {
            assert!(body(text, 10).is_none(), "{text}");
        }
        let deep = format!(r#"{{"params":{}{}}}"#, "[".repeat(40), "]".repeat(40));
        assert!(body(&deep, 10).is_none());
        let fine = format!(r#"{{"params":{}{}}}"#, "[".repeat(30), "]".repeat(30));
        assert!(body(&fine, 10).is_some());
    }

    #[test]
    fn the_first_special_byte_of_a_word_is_found() {
        // Every position, every kind of byte, with ordinary and special bytes around it.
        for at in 0..8 {
            for b in 0..=255u8 {
                for fill in [b'a', 0xff, 0x00, b'"'] {
                    let mut word = [b'x'; 8];
                    word[at] = b;
                    for w in word.iter_mut().skip(at + 1) {
                        *w = fill;
                    }
                    let want = word.iter().position(|&c| c == b'"' || c == b'\\' || c < 0x20);
                    let flags = special(u64::from_le_bytes(word));
                    let got = (flags != 0).then(|| (flags.trailing_zeros() / 8) as usize);
                    assert_eq!(got, want, "{word:?}");
                }
            }
        }
        let text = format!("\"{}\u{e9}{}\"", "a".repeat(13), "b".repeat(9));
        let mut s = Scanner { text: &text, at: 0 };
        assert_eq!(s.string(), text.get(1..text.len() - 1));
        assert_eq!(s.at, text.len());
        for bad in [
            "\"abcdefghij\\\"\"",
            "\"abcdefghijk\n\"",
            "\"ab\u{1}\"",
            "\"abcdefghijklmnop",
        ] {
            assert_eq!(Scanner { text: bad, at: 0 }.string(), None, "{bad:?}");
        }
    }

    #[test]
    fn a_batch_within_its_limit() {
        let call = r#"{"jsonrpc":"2.0","id":1,"method":"m"}"#;
        let text = format!("[ {call},\n{call} ]\n");
        let Some(Body::Batch(calls)) = body(&text, 2) else {
            panic!("batch expected");
        };
        assert_eq!(calls.len(), 2);
        assert!(body(&format!("[{call},{call},{call}]"), 2).is_none());
    }
}
