//! The French street types ("Rue", "Allée", "Lieu-dit", …) and their abbreviations, from
//! `data/street_types.csv` (embedded at build time): the standard's abbreviation of each type and
//! the other shortenings in common use. The address matcher expands them and knows a street's
//! type by them; the caller-spelling generator writes them.

use std::sync::OnceLock;

use rustc_hash::FxHashMap;

use super::text;

/// The embedded table: `type,standard,usual`.
const TABLE: &str = include_str!("../../data/street_types.csv");

/// One street type: its normalised words and the abbreviations written for it (normalised).
#[derive(Debug)]
pub struct StreetType {
    /// The type as street names write it ("Lieu-dit").
    pub name: &'static str,
    /// Its normalised form ("lieu dit").
    pub words: String,
    /// The standard abbreviation first, then the usual ones (normalised; never the type itself).
    pub abbreviations: Vec<String>,
}

struct Table {
    types: Vec<StreetType>,
    /// Normalised abbreviation → its type.
    expansions: FxHashMap<String, usize>,
    /// First normalised word of a type → the types starting with it.
    by_first_word: FxHashMap<String, Vec<usize>>,
}

fn table() -> &'static Table {
    static TABLE_ONCE: OnceLock<Table> = OnceLock::new();
    TABLE_ONCE.get_or_init(|| parse(TABLE))
}

/// Reads the table. The file is part of the source: a malformed row is a build defect, caught by
/// this module's tests, and is skipped rather than stopping a running service.
fn parse(csv: &'static str) -> Table {
    let mut types = Vec::new();
    let mut expansions = FxHashMap::default();
    let mut by_first_word: FxHashMap<String, Vec<usize>> = FxHashMap::default();
    for line in csv.lines().skip(1).filter(|l| !l.trim().is_empty()) {
        let mut fields = line.split(',');
        let (Some(name), Some(standard), Some(usual)) =
            (fields.next(), fields.next(), fields.next())
        else {
            continue;
        };
        let words = text::fold(name).join(" ");
        let abbreviations: Vec<String> = std::iter::once(standard)
            .chain(usual.split(' '))
            .map(|a| text::fold(a).join(" "))
            .filter(|a| !a.is_empty() && *a != words)
            .collect();
        let at = types.len();
        for a in &abbreviations {
            expansions.insert(a.clone(), at);
        }
        if let Some(first) = words.split(' ').next() {
            by_first_word.entry(first.to_owned()).or_default().push(at);
        }
        types.push(StreetType {
            name,
            words,
            abbreviations,
        });
    }
    Table {
        types,
        expansions,
        by_first_word,
    }
}

/// Every street type of the table.
pub fn all() -> &'static [StreetType] {
    &table().types
}

/// The street type a normalised word abbreviates ("bd" → "boulevard", "ld" → "lieu dit").
pub fn expansion(word: &str) -> Option<&'static str> {
    let t = table();
    t.expansions.get(word).map(|&i| t.types[i].words.as_str())
}

/// Whether a normalised word is the (first) word of a street type.
pub fn starts_a_type(word: &str) -> bool {
    table().by_first_word.contains_key(word)
}

/// How many of the leading normalised `words` are a street type: 0 when they do not start with one.
pub fn leading_type(words: &[String]) -> usize {
    let Some(first) = words.first() else { return 0 };
    let Some(candidates) = table().by_first_word.get(first) else {
        return 0;
    };
    candidates
        .iter()
        .map(|&i| &table().types[i].words)
        .filter(|type_words| {
            let n = type_words.split(' ').count();
            words.len() >= n && type_words.split(' ').zip(words).all(|(a, b)| a == b)
        })
        .map(|type_words| type_words.split(' ').count())
        .max()
        .unwrap_or(0)
}

/// Whether a normalised word begins a street type ("rue", "lieu" of "lieu dit") or abbreviates one
/// ("bd").
pub fn is_street_type(word: &str) -> bool {
    starts_a_type(word) || expansion(word).is_some()
}

/// Expands the first of a street's words when it abbreviates a street type ("bd" → "boulevard").
/// Only there: elsewhere "ch", "pas" or "car" are the start of a name ("Commandant-Ch.",
/// "Louis-Pas.", "Saint-Car.").
pub fn expand_leading_type(street: &mut Vec<String>) {
    if let Some(expansion) = street.first().and_then(|w| expansion(w)) {
        street.splice(..1, expansion.split(' ').map(str::to_owned));
    }
}

/// The street type of a normalised type form ("rue", "lieu dit").
pub fn by_words(words: &str) -> Option<&'static StreetType> {
    all().iter().find(|t| t.words == words)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_row_of_the_table_is_read() {
        let rows = TABLE.lines().skip(1).filter(|l| !l.trim().is_empty());
        for row in rows {
            assert_eq!(row.split(',').count(), 3, "{row}");
        }
        assert_eq!(
            all().len(),
            TABLE
                .lines()
                .skip(1)
                .filter(|l| !l.trim().is_empty())
                .count()
        );
        assert!(all().len() >= 40);
    }

    #[test]
    fn street_type_abbreviations_expand_only_where_the_type_stands() {
        let mut street = text::tokens("bd Saint-Michel");
        expand_leading_type(&mut street);
        assert_eq!(street, ["boulevard", "saint", "michel"]);
        let mut street = text::tokens("Rue du Commandant Ch");
        expand_leading_type(&mut street);
        assert_eq!(street, ["rue", "du", "commandant", "ch"]);
        let mut street = text::tokens("ld Kerbrat");
        expand_leading_type(&mut street);
        assert_eq!(street, ["lieu", "dit", "kerbrat"]);
    }

    #[test]
    fn standard_and_usual_abbreviations_expand() {
        assert_eq!(expansion("bd"), Some("boulevard"));
        assert_eq!(expansion("all"), Some("allee"));
        assert_eq!(expansion("ld"), Some("lieu dit"));
        assert_eq!(expansion("rpt"), Some("rond point"));
        assert_eq!(expansion("rue"), None, "a type is not its own abbreviation");
        assert_eq!(
            leading_type(&["lieu".into(), "dit".into(), "kerbrat".into()]),
            2
        );
        assert_eq!(leading_type(&["rue".into(), "hoche".into()]), 1);
        assert_eq!(leading_type(&["lieu".into(), "kerbrat".into()]), 0);
    }

    /// No abbreviation is claimed by two types, and no expansion is itself an abbreviation (which
    /// keeps normalisation idempotent).
    #[test]
    fn abbreviations_are_unambiguous_and_expansions_final() {
        let mut seen: FxHashMap<&str, &str> = FxHashMap::default();
        for t in all() {
            for a in &t.abbreviations {
                if let Some(other) = seen.insert(a, &t.words) {
                    panic!("'{a}' abbreviates both '{other}' and '{}'", t.words);
                }
            }
        }
        for t in all() {
            for word in t.words.split(' ') {
                assert!(expansion(word).is_none(), "'{word}' of '{}'", t.words);
            }
        }
    }
}
