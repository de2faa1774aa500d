//! Canonical S-expressions (`(10:public-key(3:rsa(1:n3:...)))`), the form gpg-agent
//! returns keys and signatures in: lists of lists and length-prefixed byte strings.

/// Keys and signatures nest four or five deep; this bounds recursion on hostile input.
const MAX_DEPTH: usize = 16;

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Sexp {
    Atom(Vec<u8>),
    List(Vec<Sexp>),
}

impl Sexp {
    /// Parses one canonical S-expression filling all of `input`.
    pub fn parse(input: &[u8]) -> Result<Sexp, String> {
        let mut pos = 0;
        let s = parse_at(input, &mut pos, 0)?;
        if pos != input.len() {
            return Err("trailing bytes after the S-expression".into());
        }
        Ok(s)
    }

    /// The list's first element, when it is an atom: the list's name.
    pub fn name(&self) -> Option<&[u8]> {
        match self {
            Sexp::List(items) => match items.first() {
                Some(Sexp::Atom(a)) => Some(a),
                _ => None,
            },
            Sexp::Atom(_) => None,
        }
    }

    /// The list's elements after its name.
    pub fn rest(&self) -> &[Sexp] {
        match self {
            Sexp::List(items) if !items.is_empty() => &items[1..],
            _ => &[],
        }
    }

    /// The sub-list named `name` (`(name ...)`) among this list's elements.
    pub fn find(&self, name: &[u8]) -> Option<&Sexp> {
        self.rest().iter().find(|s| s.name() == Some(name))
    }

    /// The atom after `name` in the sub-list `(name value)`.
    pub fn value(&self, name: &[u8]) -> Option<&[u8]> {
        match self.find(name)?.rest() {
            [Sexp::Atom(a)] => Some(a),
            _ => None,
        }
    }
}

fn parse_at(input: &[u8], pos: &mut usize, depth: usize) -> Result<Sexp, String> {
    match input.get(*pos) {
        Some(b'(') => {
            if depth >= MAX_DEPTH {
                return Err("S-expression nested too deep".into());
            }
            *pos += 1;
            let mut items = Vec::new();
            loop {
                match input.get(*pos) {
                    Some(b')') => {
                        *pos += 1;
                        return Ok(Sexp::List(items));
                    }
                    Some(_) => items.push(parse_at(input, pos, depth + 1)?),
                    None => return Err("unclosed list".into()),
                }
            }
        }
        Some(b'0'..=b'9') => {
            let start = *pos;
            while input.get(*pos).is_some_and(u8::is_ascii_digit) {
                *pos += 1;
                if *pos - start > 9 {
                    return Err("atom length too long".into());
                }
            }
            if input.get(*pos) != Some(&b':') {
                return Err("atom length without ':'".into());
            }
            let len: usize = std::str::from_utf8(&input[start..*pos])
                .ok()
                .and_then(|s| s.parse().ok())
                .ok_or("bad atom length")?;
            *pos += 1;
            let atom = pos
                .checked_add(len)
                .and_then(|end| input.get(*pos..end))
                .ok_or("atom runs past the end")?;
            *pos += len;
            Ok(Sexp::Atom(atom.to_vec()))
        }
        Some(c) => Err(format!("unexpected byte {c:#04x} in S-expression")),
        None => Err("empty S-expression".into()),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_keys_and_signatures() {
        let s = Sexp::parse(b"(7:sig-val(5:eddsa(1:r2:\x01\x02)(1:s1:\x03)))").unwrap();
        assert_eq!(s.name(), Some(&b"sig-val"[..]));
        let alg = &s.rest()[0];
        assert_eq!(alg.name(), Some(&b"eddsa"[..]));
        assert_eq!(alg.value(b"r"), Some(&[1u8, 2][..]));
        assert_eq!(alg.value(b"s"), Some(&[3u8][..]));
        assert_eq!(alg.value(b"q"), None);
    }

    #[test]
    fn refuses_malformed() {
        for bad in [
            &b""[..],
            b"(",
            b"(3:ab)",
            b"(99999999999:a)",
            b"(1:a))",
            b"(a)",
            b"(18446744073709551615:a)",
        ] {
            assert!(Sexp::parse(bad).is_err(), "{bad:?}");
        }
        let deep = [vec![b'('; 100], vec![b')'; 100]].concat();
        assert!(Sexp::parse(&deep).is_err());
    }
}
