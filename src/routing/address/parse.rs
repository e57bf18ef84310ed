//! Reading what a caller said: structured fields or free text ("12 bd St-Michel 72000 Le Mans",
//! "Rue du 8-Mai-1945, 2, 22000 Saint-Brieuc") into a house number, street words, a postcode or
//! INSEE code and commune words — with another reading when the words allow two.

use super::super::street_types::{self, expand_leading_type, is_street_type};
use super::super::text::{self, HouseNumber};
use super::{AddressIndex, AddressInput};

#[derive(Default)]
pub(super) struct Parsed {
    pub number: Option<HouseNumber>,
    pub street: Vec<String>,
    pub code: Option<String>,
    pub city: Vec<String>,
    /// Another reading of the same text, tried when this one finds no street.
    pub alternative: Option<Box<Parsed>>,
}

impl Parsed {
    pub fn normalized(&self) -> String {
        let mut parts: Vec<String> = Vec::new();
        if let Some(n) = self.number {
            parts.push(n.to_string().to_lowercase());
        }
        parts.extend(self.street.iter().cloned());
        parts.extend(self.code.iter().cloned());
        parts.extend(self.city.iter().cloned());
        parts.join(" ")
    }
}

impl AddressIndex {
    pub(super) fn parse(&self, input: &AddressInput) -> Parsed {
        let mut parsed = Parsed::default();
        let structured = !(input.street.trim().is_empty()
            && input.postcode.trim().is_empty()
            && input.city.trim().is_empty()
            && input.street_number.trim().is_empty());
        if structured {
            parsed.number = HouseNumber::parse(&input.street_number);
            let mut street = text::tokens(&input.street);
            if parsed.number.is_none()
                && let Some((n, used)) = HouseNumber::from_words(&street)
            {
                parsed.number = Some(n);
                street.drain(..used);
            }
            expand_leading_type(&mut street);
            parsed.street = street;
            let code: String = input
                .postcode
                .chars()
                .filter(|c| !c.is_whitespace())
                .collect();
            if !code.is_empty() {
                parsed.code = Some(code);
            }
            parsed.city = text::tokens(&input.city);
            if parsed.street.is_empty() && !input.free_text.trim().is_empty() {
                let free = self.parse_free_text(&input.free_text);
                parsed.street = free.street;
                parsed.number = parsed.number.or(free.number);
                parsed.code = parsed.code.or(free.code);
                if parsed.city.is_empty() {
                    parsed.city = free.city;
                }
            }
            return parsed;
        }
        self.parse_free_text(&input.free_text)
    }

    /// Splits free text into number, street, code and commune words.
    pub(super) fn parse_free_text(&self, free_text: &str) -> Parsed {
        let mut words = text::tokens(free_text);
        let mut parsed = Parsed::default();
        // A five-digit word is a postcode or an INSEE code.
        let code_at = words
            .iter()
            .position(|w| w.len() == 5 && w.bytes().all(|b| b.is_ascii_digit()));
        let mut after_code: Vec<String> = Vec::new();
        if let Some(at) = code_at {
            parsed.code = Some(words[at].clone());
            after_code = words.split_off(at + 1);
            words.pop();
        }
        let code_communes = parsed
            .code
            .as_deref()
            .map(|code| self.communes_of_code(code))
            .unwrap_or_default();
        // The commune name: right after the code (and the street after it: "22000 Saint-Brieuc,
        // 12 rue …"), else at the end or the start of the rest.
        if !after_code.is_empty()
            && after_code
                .iter()
                .any(|w| !w.bytes().all(|b| b.is_ascii_digit()))
        {
            if let Some(end) = self.commune_then_street(&after_code, &code_communes) {
                words.extend(after_code.split_off(end));
            }
            parsed.city = after_code;
        } else if let Some((start, end)) = self.find_commune_words(&words, &code_communes) {
            if parsed.code.is_some() {
                let mut alternative = Parsed {
                    code: parsed.code.clone(),
                    ..Parsed::default()
                };
                Self::read_number_and_street(words.clone(), &mut alternative);
                parsed.alternative = Some(Box::new(alternative));
            }
            parsed.city = words.drain(start..end).collect();
        }
        Self::read_number_and_street(words, &mut parsed);
        parsed
    }

    /// Where the commune's name ends when the words after a code are a commune's name followed by
    /// a house number and a street: the longest run naming one of `communes` that a number follows.
    fn commune_then_street(&self, words: &[String], communes: &[u32]) -> Option<usize> {
        (1..words.len()).rev().find(|&end| {
            HouseNumber::from_words(&words[end..]).is_some()
                && self.names_commune(&words[..end], communes)
        })
    }

    /// Reads the house number and the street from the words left once code and commune are out.
    pub(super) fn read_number_and_street(mut words: Vec<String>, parsed: &mut Parsed) {
        // The house number: the first number that stands before a street type, else the first one;
        // never a number of a date in a street's name ("8 mai 1945", "11 novembre").
        let numbers: Vec<(usize, HouseNumber, usize)> = (0..words.len())
            .filter(|&i| !in_a_date(&words, i))
            .filter_map(|i| HouseNumber::from_words(&words[i..]).map(|(n, used)| (i, n, used)))
            .collect();
        let before_type = numbers
            .iter()
            .find(|(i, _, used)| words.get(i + used).is_some_and(|w| is_street_type(w)));
        if let Some(&(at, number, used)) = before_type.or(numbers.first()) {
            parsed.number = Some(number);
            words.drain(at..at + used);
            // Words before the number and its street type are not the street ("logement au 12 rue …").
            if at > 0 && words.get(at).is_some_and(|w| is_street_type(w)) {
                words.drain(..at);
            }
        }
        expand_leading_type(&mut words);
        parsed.street = words;
    }
}

/// Whether the number at `i` belongs to a date: a day before a month's name, or a year after one.
fn in_a_date(words: &[String], i: usize) -> bool {
    let day = words.get(i + 1).is_some_and(|w| text::is_month(w));
    let year = i > 0 && text::is_month(&words[i - 1]) && words[i].len() == 4;
    day || year
}

/// Splits normalised street words into the street type (if they begin with one: "rue", "lieu
/// dit") and the significant words of the name.
pub(super) fn split_street(words: &[String]) -> (Option<String>, Vec<String>) {
    let type_len = street_types::leading_type(words);
    let (street_type, rest) = if type_len > 0 && words.len() > type_len {
        (Some(words[..type_len].join(" ")), &words[type_len..])
    } else {
        (None, words)
    };
    let core = rest
        .iter()
        .filter(|w| !text::is_stopword(w))
        .cloned()
        .collect();
    (street_type, core)
}
