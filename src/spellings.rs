//! Caller spellings of registry addresses, to measure the address matcher as callers test it.
//!
//! Each building's address is written in one spelling per [`Kind`] of variation that applies to it
//! (at least seven always do): abbreviated street types (the standard's and the usual ones, from
//! [`street_types`]), abbreviated titles, prefixes and consonant skeletons of name words, typos,
//! case and accents, postcode or commune alone, other word orders, extra words, the street type
//! left out, other punctuation, structured fields filled another way. The variations follow the
//! habits of callers and clerks, not any one geocoder's list. The same seed always gives the same
//! spellings.

use crate::datagen::Rng;
use crate::routing::address::AddressInput;
use crate::routing::places::Building;
use crate::routing::street_types;
use crate::routing::text;

/// A kind of variation in how a caller writes an address.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum Kind {
    StreetType,
    Title,
    Prefix,
    Skeleton,
    Typo,
    CaseAndAccents,
    PostcodeOnly,
    CommuneOnly,
    WordOrder,
    ExtraWords,
    NoStreetType,
    Punctuation,
    Fields,
}

impl Kind {
    pub const ALL: [Kind; 13] = [
        Kind::StreetType,
        Kind::Title,
        Kind::Prefix,
        Kind::Skeleton,
        Kind::Typo,
        Kind::CaseAndAccents,
        Kind::PostcodeOnly,
        Kind::CommuneOnly,
        Kind::WordOrder,
        Kind::ExtraWords,
        Kind::NoStreetType,
        Kind::Punctuation,
        Kind::Fields,
    ];

    pub fn as_str(self) -> &'static str {
        match self {
            Kind::StreetType => "street-type",
            Kind::Title => "title",
            Kind::Prefix => "prefix",
            Kind::Skeleton => "skeleton",
            Kind::Typo => "typo",
            Kind::CaseAndAccents => "case-and-accents",
            Kind::PostcodeOnly => "postcode-only",
            Kind::CommuneOnly => "commune-only",
            Kind::WordOrder => "word-order",
            Kind::ExtraWords => "extra-words",
            Kind::NoStreetType => "no-street-type",
            Kind::Punctuation => "punctuation",
            Kind::Fields => "fields",
        }
    }
}

/// One spelling of a building's address.
#[derive(Debug, Clone)]
pub struct Spelling {
    /// Index of the building in the list given to [`spellings`].
    pub building: usize,
    pub kind: Kind,
    pub address: AddressInput,
}

/// Every building's address in every kind of variation that applies to it.
pub fn spellings(buildings: &[Building], seed: u64) -> Vec<Spelling> {
    let mut out = Vec::with_capacity(buildings.len() * Kind::ALL.len());
    for (i, b) in buildings.iter().enumerate() {
        let mut rng = Rng::new(seed ^ (i as u64).wrapping_mul(0x9E37_79B9_7F4A_7C15));
        for kind in Kind::ALL {
            if let Some(address) = spell(b, kind, &mut rng) {
                out.push(Spelling {
                    building: i,
                    kind,
                    address,
                });
            }
        }
    }
    out
}

/// The building's address written with one kind of variation, if it applies.
pub fn spell(b: &Building, kind: Kind, rng: &mut Rng) -> Option<AddressInput> {
    let street = Street::new(&b.street_name);
    let number = b.street_number.as_str();
    let (code, city) = (b.postcode.as_str(), b.city.as_str());
    let line = |street: &str| format!("{number} {street} {code} {city}");
    Some(match kind {
        Kind::StreetType => free(line(&street.with_type_abbreviated(rng)?)),
        Kind::Title => free(line(&street.with_title_abbreviated(rng)?)),
        Kind::Prefix => free(line(&street.with_word(rng, prefix)?)),
        Kind::Skeleton => free(line(&street.with_word(rng, skeleton)?)),
        Kind::Typo => free(line(&street.with_word(rng, typo)?)),
        Kind::CaseAndAccents => {
            let plain = without_accents(&line(&b.street_name));
            free(if rng.chance(50) {
                plain.to_uppercase()
            } else {
                plain.to_lowercase()
            })
        }
        Kind::PostcodeOnly => free(format!("{number} {} {code}", b.street_name)),
        Kind::CommuneOnly => free(format!("{number} {} {city}", b.street_name)),
        Kind::WordOrder => free(match rng.below(3) {
            0 => format!("{}, {number}, {code} {city}", b.street_name),
            1 => format!("{code} {city}, {number} {}", b.street_name),
            _ => format!("{number} {} {city} {code}", b.street_name),
        }),
        Kind::ExtraWords => free(match rng.below(4) {
            0 => format!("logement au {}", line(&b.street_name)),
            1 => format!("{}, France", line(&b.street_name)),
            2 => format!("appt {}, {}", 1 + rng.below(40), line(&b.street_name)),
            _ => format!("j'habite {}", line(&b.street_name)),
        }),
        Kind::NoStreetType => free(line(&street.without_type()?)),
        Kind::Punctuation => free(match rng.below(3) {
            0 => format!("n°{number}, {} - {code} - {city}", b.street_name),
            1 => line(&b.street_name.replace(['-', '\''], " ")),
            _ => format!(
                "{number}, {}, {code}, {city}.",
                b.street_name.replace('-', " ")
            ),
        }),
        Kind::Fields => {
            let glued = number.replace(' ', "");
            AddressInput {
                street_number: String::new(),
                street: format!("{glued} {}", b.street_name),
                postcode: code.to_owned(),
                city: city.to_uppercase(),
                free_text: String::new(),
            }
        }
    })
}

/// Writes the spellings as `callrouter explain` request lines, each `call_id` naming the building
/// and the kind (`AH-00169/skeleton`), so that decisions can be scored against it.
pub fn write_requests(
    buildings: &[Building],
    seed: u64,
    mut out: impl std::io::Write,
) -> std::io::Result<usize> {
    let all = spellings(buildings, seed);
    for s in &all {
        let a = &s.address;
        let line = serde_json::json!({
            "call_id": format!("{}/{}", buildings[s.building].id, s.kind.as_str()),
            "issue_type": "technical.plumbing.leak",
            "address": {
                "street_number": a.street_number,
                "street": a.street,
                "postcode": a.postcode,
                "city": a.city,
                "free_text": a.free_text,
            },
        });
        serde_json::to_writer(&mut out, &line)?;
        out.write_all(b"\n")?;
    }
    out.flush()?;
    Ok(all.len())
}

fn free(text: String) -> AddressInput {
    AddressInput {
        free_text: text,
        ..AddressInput::default()
    }
}

/// Titles in street names as callers shorten them.
const TITLES: &[(&str, &[&str])] = &[
    ("Saint", &["St", "St."]),
    ("Sainte", &["Ste", "Ste."]),
    ("Général", &["Gal", "Gén.", "Gl"]),
    ("Maréchal", &["Mal", "Mal."]),
    ("Docteur", &["Dr", "Dr."]),
    ("Président", &["Pdt", "Pdt."]),
    ("Commandant", &["Cdt", "Cdt."]),
    ("Capitaine", &["Cne"]),
];

/// A street name as written, cut into words with the separator that follows each.
struct Street {
    words: Vec<(String, char)>,
    /// How many leading words are the street type.
    type_words: usize,
}

impl Street {
    fn new(name: &str) -> Street {
        let mut words = Vec::new();
        let mut current = String::new();
        for c in name.chars() {
            if c == ' ' || c == '-' {
                words.push((std::mem::take(&mut current), c));
            } else {
                current.push(c);
            }
        }
        words.push((current, ' '));
        let type_words = street_types::leading_type(&text::fold(name));
        Street { words, type_words }
    }

    fn render(words: &[(String, char)]) -> String {
        let mut out = String::new();
        for (i, (word, sep)) in words.iter().enumerate() {
            out.push_str(word);
            if i + 1 < words.len() {
                out.push(*sep);
            }
        }
        out
    }

    fn with_type_abbreviated(&self, rng: &mut Rng) -> Option<String> {
        let typed = text::fold(&Street::render(&self.words[..self.type_words])).join(" ");
        let street_type = street_types::by_words(&typed)?;
        let short = rng.pick(&street_type.abbreviations);
        let short = match rng.below(3) {
            0 => short.to_uppercase(),
            1 if !short.contains(' ') => format!("{short}."),
            _ => short.clone(),
        };
        let mut words = vec![(short, ' ')];
        words.extend_from_slice(&self.words[self.type_words..]);
        Some(Street::render(&words))
    }

    fn with_title_abbreviated(&self, rng: &mut Rng) -> Option<String> {
        let at: Vec<usize> = (self.type_words..self.words.len())
            .filter(|&i| TITLES.iter().any(|(t, _)| *t == self.words[i].0))
            .collect();
        let &i = at.get(rng.below(at.len().max(1)))?;
        let (_, shorts) = TITLES.iter().find(|(t, _)| *t == self.words[i].0)?;
        let mut words = self.words.clone();
        words[i].0 = (*rng.pick(shorts)).to_owned();
        if rng.chance(50) {
            words[i].1 = ' ';
        }
        Some(Street::render(&words))
    }

    /// The name with one of its longer words changed by `change`.
    fn with_word(
        &self,
        rng: &mut Rng,
        change: fn(&str, &mut Rng) -> Option<String>,
    ) -> Option<String> {
        let eligible: Vec<usize> = (self.type_words..self.words.len())
            .filter(|&i| {
                let body = elided(&self.words[i].0).1;
                body.chars().count() >= 5
                    && body.chars().all(char::is_alphabetic)
                    && !TITLES.iter().any(|(t, _)| *t == body)
            })
            .collect();
        let &i = eligible.get(rng.below(eligible.len().max(1)))?;
        let (article, body) = elided(&self.words[i].0);
        let changed = change(body, rng)?;
        let mut words = self.words.clone();
        words[i].0 = format!("{article}{changed}");
        Some(Street::render(&words))
    }

    fn without_type(&self) -> Option<String> {
        let rest = &self.words[self.type_words..];
        let first = &rest.first()?.0;
        let starts_with_a_name = self.type_words > 0
            && rest.len() > 1
            && first.chars().next().is_some_and(char::is_uppercase)
            && !first.contains('\'');
        starts_with_a_name.then(|| Street::render(rest))
    }
}

/// Splits an elided article from a word: "l'Église" → ("l'", "Église").
fn elided(word: &str) -> (&str, &str) {
    match word.find(['\'', '’']) {
        Some(at) if at <= 2 => {
            let cut = at + word[at..].chars().next().map_or(1, char::len_utf8);
            (&word[..cut], &word[cut..])
        }
        _ => ("", word),
    }
}

/// The first three to five letters of a word, sometimes with a full stop ("Rép.", "Font").
fn prefix(word: &str, rng: &mut Rng) -> Option<String> {
    let letters: Vec<char> = word.chars().collect();
    let longest = (letters.len() - 2).min(5);
    if longest < 3 {
        return None;
    }
    let take = 3 + rng.below(longest - 2);
    let mut out: String = letters[..take].iter().collect();
    if rng.chance(40) {
        out.push('.');
    }
    Some(out)
}

/// The first letter and some of the following consonants, in order ("Mln", "Std", "Chps").
fn skeleton(word: &str, rng: &mut Rng) -> Option<String> {
    let plain = without_accents(word);
    let mut letters = plain.chars();
    let first = letters.next()?;
    let consonants: Vec<char> = letters
        .filter(|c| c.is_ascii_alphabetic() && !"aeiouyAEIOUY".contains(*c))
        .collect();
    if consonants.is_empty() {
        return None;
    }
    let mut out = String::from(first);
    let keep_all = rng.chance(50);
    for (i, &c) in consonants.iter().enumerate() {
        if keep_all || i == 0 || rng.chance(60) {
            out.push(c);
        }
    }
    (out.chars().count() >= 2).then_some(out)
}

/// One slip of the keys away from the word, never on its first letter: a letter replaced, left
/// out, doubled, or swapped with the next.
fn typo(word: &str, rng: &mut Rng) -> Option<String> {
    let mut letters: Vec<char> = word.chars().collect();
    if letters.len() < 5 {
        return None;
    }
    let at = 1 + rng.below(letters.len() - 2);
    match rng.below(4) {
        0 => {
            let mut replacement = char::from(*rng.pick(b"azertyuiopqsdfghjklmwxcvbn"));
            if replacement == letters[at] {
                replacement = if replacement == 'e' { 'r' } else { 'e' };
            }
            letters[at] = replacement;
        }
        1 => {
            letters.remove(at);
        }
        2 => letters.insert(at, letters[at]),
        _ if letters[at] == letters[at + 1] => {
            letters.remove(at);
        }
        _ => letters.swap(at, at + 1),
    }
    Some(letters.into_iter().collect())
}

/// The text without its accents, case kept ("Église" → "Eglise", "Œuvre" → "OEuvre").
pub fn without_accents(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    for c in s.chars() {
        let plain = match c {
            'à' | 'â' | 'ä' => "a",
            'À' | 'Â' | 'Ä' => "A",
            'ç' => "c",
            'Ç' => "C",
            'é' | 'è' | 'ê' | 'ë' => "e",
            'É' | 'È' | 'Ê' | 'Ë' => "E",
            'î' | 'ï' => "i",
            'Î' | 'Ï' => "I",
            'ô' | 'ö' => "o",
            'Ô' | 'Ö' => "O",
            'ù' | 'û' | 'ü' => "u",
            'Ù' | 'Û' | 'Ü' => "U",
            'œ' => "oe",
            'Œ' => "OE",
            'ÿ' => "y",
            _ => {
                out.push(c);
                continue;
            }
        };
        out.push_str(plain);
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::routing::places::Heating;

    fn building(number: &str, street: &str) -> Building {
        Building {
            id: "AH-00001".to_owned(),
            cooperator_id: "armorique-habitat".to_owned(),
            sector_id: "ah-agglo".to_owned(),
            street_number: number.to_owned(),
            street_name: street.to_owned(),
            postcode: "22000".to_owned(),
            insee_code: "22278".to_owned(),
            city: "Saint-Brieuc".to_owned(),
            dwellings: 10,
            has_lift: false,
            heating: Heating::Collective,
        }
    }

    #[test]
    fn the_same_seed_gives_the_same_spellings() {
        let buildings = vec![
            building("12", "Rue du Maréchal-Joffre"),
            building("3 bis", "Lieu-dit Kerbrat"),
        ];
        let texts = |seed| -> Vec<String> {
            spellings(&buildings, seed)
                .into_iter()
                .map(|s| format!("{:?}", s.address))
                .collect()
        };
        assert_eq!(texts(7), texts(7));
        assert_ne!(texts(7), texts(8));
    }

    #[test]
    fn each_kind_changes_what_it_says() {
        let b = building("12", "Rue du Maréchal-Joffre");
        for seed in 0..50 {
            let mut rng = Rng::new(seed);
            let typed = spell(&b, Kind::StreetType, &mut rng).expect("has a type");
            assert!(!typed.free_text.contains("Rue"), "{typed:?}");
            let title = spell(&b, Kind::Title, &mut rng).expect("has a title");
            assert!(!title.free_text.contains("Maréchal"), "{title:?}");
            for kind in [Kind::Prefix, Kind::Skeleton, Kind::Typo] {
                let changed = spell(&b, kind, &mut rng).expect("has a long word");
                assert!(
                    !changed.free_text.contains("Joffre"),
                    "{kind:?}: {changed:?}"
                );
            }
            let untyped = spell(&b, Kind::NoStreetType, &mut rng);
            assert_eq!(
                untyped, None,
                "'du' does not start a name callers say alone"
            );
        }
        let hugo = building("4", "Avenue Victor-Hugo");
        let untyped = spell(&hugo, Kind::NoStreetType, &mut Rng::new(1)).expect("a name");
        assert_eq!(untyped.free_text, "4 Victor-Hugo 22000 Saint-Brieuc");
        let hamlet = building("3", "Lieu-dit Kerbrat");
        let typed = spell(&hamlet, Kind::StreetType, &mut Rng::new(1)).expect("a type");
        assert!(
            typed.free_text.to_lowercase().starts_with("3 ld"),
            "{typed:?}"
        );
    }

    #[test]
    fn every_building_gets_at_least_seven_spellings() {
        let b = building("1", "Place X");
        assert!(spellings(&[b], 1).len() >= 7);
    }
}
