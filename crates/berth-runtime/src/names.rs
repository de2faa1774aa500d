//! Container IDs and names as podman makes them: 64 random hex digits, and an
//! `adjective_surname` name when none is given.

use rand::Rng;

const ADJECTIVES: &[&str] = &[
    "admiring", "brave", "busy", "clever", "cool", "eager", "elegant", "epic", "focused",
    "friendly", "gallant", "happy", "hopeful", "jolly", "keen", "kind", "lucid", "modest", "nice",
    "peaceful", "quirky", "relaxed", "serene", "sharp", "stoic", "tender", "upbeat", "vibrant",
    "wizardly", "zen",
];

const SURNAMES: &[&str] = &[
    "agnesi", "babbage", "bell", "curie", "darwin", "einstein", "euler", "fermi", "galileo",
    "hopper", "hypatia", "johnson", "kepler", "lamarr", "lovelace", "meitner", "newton", "noether",
    "pascal", "ritchie", "shannon", "tesla", "thompson", "turing", "wozniak",
];

/// 64 hex digits.
pub fn new_id() -> String {
    let mut rng = rand::rng();
    (0..32)
        .map(|_| format!("{:02x}", rng.random::<u8>()))
        .collect()
}

/// `adjective_surname`; the caller retries on a clash.
pub fn new_name() -> String {
    let mut rng = rand::rng();
    format!(
        "{}_{}",
        ADJECTIVES[rng.random_range(0..ADJECTIVES.len())],
        SURNAMES[rng.random_range(0..SURNAMES.len())]
    )
}

/// A name podman would accept: `[a-zA-Z0-9][a-zA-Z0-9_.-]*`.
pub fn valid_name(name: &str) -> bool {
    let mut chars = name.chars();
    chars.next().is_some_and(|c| c.is_ascii_alphanumeric())
        && chars.all(|c| c.is_ascii_alphanumeric() || matches!(c, '_' | '.' | '-'))
}

#[cfg(test)]
mod tests {
    #[test]
    fn ids_and_names() {
        let id = super::new_id();
        assert_eq!(id.len(), 64);
        assert!(id.bytes().all(|b| b.is_ascii_hexdigit()));
        assert!(super::valid_name(&super::new_name()));
        assert!(!super::valid_name("-x"));
        assert!(!super::valid_name("a/b"));
    }
}
