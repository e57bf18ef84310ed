//! Text normalisation for addresses, commune names and phone numbers.
//!
//! Callers write addresses every way there is: upper case, without accents, with hyphens or
//! apostrophes or neither, with abbreviations (`bd`, `av`, `st`, `gal`, …), with "bis" glued to the
//! number. Everything the matcher compares goes through [`normalize`] first, so that two spellings of
//! the same address give the same tokens. Titles (`st`, `gal`) are expanded wherever they stand;
//! street types (`bd`, `ld`) only where a street type stands (by the street-type table, which
//! builds on this module), since elsewhere the same letters begin names ("Commandant-Ch.",
//! "Saint-Car.").
//!
//! Invariant: [`normalize`] is idempotent — `normalize(normalize(s)) == normalize(s)` — because its
//! output is lower-case ASCII words separated by single spaces, and no expansion of an abbreviation is
//! itself an abbreviation.

/// Whether a normalised word is a month's name (dates in street names: "Rue du 8-Mai-1945").
pub fn is_month(word: &str) -> bool {
    matches!(
        word,
        "janvier"
            | "fevrier"
            | "mars"
            | "avril"
            | "mai"
            | "juin"
            | "juillet"
            | "aout"
            | "septembre"
            | "octobre"
            | "novembre"
            | "decembre"
    )
}

/// Lower-cases, strips accents, turns every non-alphanumeric character into a word break, splits
/// digits from letters (`12bis` → `12 bis`), keeps the Breton letter c'h whole and expands the
/// abbreviations of titles. Returns the words.
pub fn tokens(input: &str) -> Vec<String> {
    words(input, true)
}

/// [`tokens`] without expanding abbreviations.
pub fn fold(input: &str) -> Vec<String> {
    words(input, false)
}

fn words(input: &str, expand_abbreviations: bool) -> Vec<String> {
    let mut words = Vec::new();
    let mut current = String::new();
    let mut chars = input.chars().peekable();
    while let Some(ch) = chars.next() {
        let Some((first, second)) = fold_char(ch) else {
            // The Breton letter c'h is one letter: "C'hastell", "Roc'h".
            let breton_ch = matches!(ch, '\'' | '’')
                && current.ends_with('c')
                && chars.peek().is_some_and(|n| matches!(n, 'h' | 'H'));
            if !breton_ch {
                flush(&mut current, &mut words, expand_abbreviations);
            }
            continue;
        };
        for c in std::iter::once(first).chain(second) {
            let digit_boundary = current
                .as_bytes()
                .last()
                .is_some_and(|last| last.is_ascii_digit() != c.is_ascii_digit());
            if digit_boundary {
                flush(&mut current, &mut words, expand_abbreviations);
            }
            current.push(c);
        }
    }
    flush(&mut current, &mut words, expand_abbreviations);
    words
}

/// The normalised form of a piece of text: its [`tokens`] joined by single spaces.
pub fn normalize(input: &str) -> String {
    tokens(input).join(" ")
}

fn flush(current: &mut String, words: &mut Vec<String>, expand_abbreviations: bool) {
    if current.is_empty() {
        return;
    }
    match expand_abbreviations.then(|| expand(current)).flatten() {
        Some(expansion) => words.extend(expansion.split(' ').map(str::to_owned)),
        None => words.push(current.clone()),
    }
    current.clear();
}

/// Folds one character to one or two lower-case ASCII letters or digits; `None` is a word break.
fn fold_char(c: char) -> Option<(char, Option<char>)> {
    let single = match c {
        'a'..='z' | '0'..='9' => c,
        'A'..='Z' => c.to_ascii_lowercase(),
        'à' | 'â' | 'ä' | 'á' | 'ã' | 'å' | 'À' | 'Â' | 'Ä' | 'Á' | 'Ã' | 'Å' => 'a',
        'ç' | 'Ç' => 'c',
        'é' | 'è' | 'ê' | 'ë' | 'É' | 'È' | 'Ê' | 'Ë' => 'e',
        'î' | 'ï' | 'í' | 'ì' | 'Î' | 'Ï' | 'Í' | 'Ì' => 'i',
        'ô' | 'ö' | 'ó' | 'ò' | 'õ' | 'Ô' | 'Ö' | 'Ó' | 'Ò' | 'Õ' => 'o',
        'ù' | 'û' | 'ü' | 'ú' | 'Ù' | 'Û' | 'Ü' | 'Ú' => 'u',
        'ÿ' | 'Ÿ' | 'ý' | 'Ý' => 'y',
        'ñ' | 'Ñ' => 'n',
        'œ' | 'Œ' => return Some(('o', Some('e'))),
        'æ' | 'Æ' => return Some(('a', Some('e'))),
        _ => return None,
    };
    Some((single, None))
}

/// Abbreviations of titles and saints, with their expansion, wherever they stand. (Street-type
/// abbreviations are expanded only where a street type stands, by the street-type table.)
/// Expansions are never abbreviations themselves, which keeps [`normalize`] idempotent.
fn expand(word: &str) -> Option<&'static str> {
    Some(match word {
        "st" => "saint",
        "ste" => "sainte",
        "sts" => "saints",
        "gal" | "gen" | "gl" => "general",
        "mal" | "marech" => "marechal",
        "pdt" | "pres" => "president",
        "dr" | "doct" => "docteur",
        "cdt" => "commandant",
        "cne" => "capitaine",
        "lt" => "lieutenant",
        "nd" => "notre dame",
        "mgr" => "monseigneur",
        "prof" => "professeur",
        _ => return None,
    })
}

/// Words that carry no meaning for matching: articles and prepositions that callers drop or add.
pub fn is_stopword(word: &str) -> bool {
    matches!(
        word,
        "de" | "du" | "des" | "la" | "le" | "les" | "l" | "d" | "et" | "a" | "au" | "aux" | "en"
    )
}

/// The words of a name that matter for matching, joined by spaces: [`tokens`] without stopwords.
/// Used as the key of commune names and of street names (after the street type).
pub fn key(words: &[String]) -> String {
    let mut out = String::new();
    for w in words.iter().filter(|w| !is_stopword(w)) {
        if !out.is_empty() {
            out.push(' ');
        }
        out.push_str(w);
    }
    out
}

/// Optimal-string-alignment distance (Levenshtein plus adjacent transpositions), stopping early
/// once it exceeds `limit`. Returns `None` when the distance is over the limit.
pub fn edit_distance_within(a: &str, b: &str, limit: usize) -> Option<usize> {
    let a = a.as_bytes();
    let b = b.as_bytes();
    if a.len().abs_diff(b.len()) > limit {
        return None;
    }
    let width = b.len() + 1;
    let mut prev2 = vec![0usize; width];
    let mut prev: Vec<usize> = (0..width).collect();
    let mut cur = vec![0usize; width];
    for i in 1..=a.len() {
        cur[0] = i;
        let mut row_min = cur[0];
        for j in 1..=b.len() {
            let cost = usize::from(a[i - 1] != b[j - 1]);
            let mut v = (prev[j] + 1).min(cur[j - 1] + 1).min(prev[j - 1] + cost);
            if i > 1 && j > 1 && a[i - 1] == b[j - 2] && a[i - 2] == b[j - 1] {
                v = v.min(prev2[j - 2] + 1);
            }
            cur[j] = v;
            row_min = row_min.min(v);
        }
        if row_min > limit {
            return None;
        }
        std::mem::swap(&mut prev2, &mut prev);
        std::mem::swap(&mut prev, &mut cur);
    }
    let d = prev[b.len()];
    (d <= limit).then_some(d)
}

/// How many typos a word of this length may carry and still be recognised: none for short words,
/// where one letter changes the word, one from five letters on.
pub fn typo_allowance(word: &str) -> usize {
    if word.len() >= 5 { 1 } else { 0 }
}

/// A house number with its suffix: `12`, `12 bis`, `3 ter`, `7 A`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct HouseNumber {
    pub number: u32,
    pub suffix: NumberSuffix,
}

/// The suffix of a house number. A lone `B` is written for "bis" and `T` for "ter", so they are the
/// same suffix.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum NumberSuffix {
    None,
    Bis,
    Ter,
    Quater,
    Letter(u8),
}

impl NumberSuffix {
    /// Reads a suffix word as it stands after [`normalize`].
    pub fn parse(word: &str) -> Option<NumberSuffix> {
        match word {
            "bis" | "b" => Some(NumberSuffix::Bis),
            "ter" | "t" => Some(NumberSuffix::Ter),
            "quater" | "q" => Some(NumberSuffix::Quater),
            "a" | "c" | "d" => Some(NumberSuffix::Letter(word.as_bytes()[0])),
            _ => None,
        }
    }
}

impl HouseNumber {
    /// Parses a house number from its normalised words: a number of at most four digits, then an
    /// optional suffix word. Returns the number and how many words it used.
    pub fn from_words(words: &[String]) -> Option<(HouseNumber, usize)> {
        let first = words.first()?;
        if first.is_empty() || first.len() > 4 || !first.bytes().all(|b| b.is_ascii_digit()) {
            return None;
        }
        let number: u32 = first.parse().ok()?;
        if number == 0 {
            return None;
        }
        match words.get(1).and_then(|w| NumberSuffix::parse(w)) {
            Some(suffix) => Some((HouseNumber { number, suffix }, 2)),
            None => Some((
                HouseNumber {
                    number,
                    suffix: NumberSuffix::None,
                },
                1,
            )),
        }
    }

    /// Parses a house number written on its own ("12", "12bis", "12 B").
    pub fn parse(text: &str) -> Option<HouseNumber> {
        let words = tokens(text);
        match HouseNumber::from_words(&words) {
            Some((n, used)) if used == words.len() => Some(n),
            _ => None,
        }
    }
}

impl std::fmt::Display for HouseNumber {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{}", self.number)?;
        match self.suffix {
            NumberSuffix::None => Ok(()),
            NumberSuffix::Bis => f.write_str(" bis"),
            NumberSuffix::Ter => f.write_str(" ter"),
            NumberSuffix::Quater => f.write_str(" quater"),
            NumberSuffix::Letter(l) => write!(f, " {}", char::from(l.to_ascii_uppercase())),
        }
    }
}

/// Normalises a French phone number to its national form (`0247000000`): digits only, with the
/// `+33`/`0033` country prefix replaced by `0`. Returns `None` when there are no digits.
pub fn normalize_phone(input: &str) -> Option<String> {
    let mut digits = String::with_capacity(input.len() + 1);
    digits.extend(input.chars().filter(char::is_ascii_digit));
    if digits.is_empty() {
        return None;
    }
    if digits.starts_with("0033") {
        digits.replace_range(..4, "0");
    } else if input.trim_start().starts_with('+') {
        if digits.starts_with("33") {
            digits.replace_range(..2, "0");
        } else {
            digits.insert(0, '+');
        }
    }
    Some(digits)
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    #[test]
    fn folds_case_accents_and_punctuation() {
        assert_eq!(
            normalize("12 Bd St-Michel, Notre-Dame-d'Oé"),
            "12 bd saint michel notre dame d oe"
        );
        assert_eq!(normalize("BEAUMONT-PIED-DE-BŒUF"), "beaumont pied de boeuf");
        assert_eq!(normalize("Av. du Gal de Gaulle"), "av du general de gaulle");
        assert_eq!(normalize("rue de l’Église"), "rue de l eglise");
    }

    #[test]
    fn the_breton_c_h_is_one_letter() {
        assert_eq!(normalize("Straed ar C'hastell"), "straed ar chastell");
        assert_eq!(normalize("Roc’h-Glaz"), "roch glaz");
        assert_eq!(
            normalize("l'Hôpital"),
            "l hopital",
            "other apostrophes still break words"
        );
    }

    #[test]
    fn splits_glued_suffixes_from_numbers() {
        assert_eq!(normalize("12bis r. Hoche"), "12 bis r hoche");
        assert_eq!(
            HouseNumber::parse("12BIS"),
            Some(HouseNumber {
                number: 12,
                suffix: NumberSuffix::Bis
            })
        );
        assert_eq!(HouseNumber::parse("12 B"), HouseNumber::parse("12 bis"));
        assert_eq!(
            HouseNumber::parse("7a").map(|n| n.to_string()).as_deref(),
            Some("7 A")
        );
        assert_eq!(HouseNumber::parse("rue"), None);
        assert_eq!(HouseNumber::parse("0"), None);
        assert_eq!(HouseNumber::parse("123456"), None);
    }

    #[test]
    fn phone_numbers_reduce_to_national_form() {
        assert_eq!(
            normalize_phone("+33 2 47 00 00 00").as_deref(),
            Some("0247000000")
        );
        assert_eq!(
            normalize_phone("0033247000000").as_deref(),
            Some("0247000000")
        );
        assert_eq!(
            normalize_phone("02.47.00.00.00").as_deref(),
            Some("0247000000")
        );
        assert_eq!(
            normalize_phone("+44 20 7946 0000").as_deref(),
            Some("+442079460000")
        );
        assert_eq!(normalize_phone("anonymous"), None);
    }

    #[test]
    fn edit_distance_counts_transpositions_once() {
        assert_eq!(edit_distance_within("michel", "mihcel", 1), Some(1));
        assert_eq!(edit_distance_within("michel", "michl", 1), Some(1));
        assert_eq!(edit_distance_within("michel", "mitchell", 1), None);
        assert_eq!(edit_distance_within("", "", 0), Some(0));
    }

    #[test]
    fn keys_drop_articles() {
        let words = tokens("Rue de la Paix");
        assert_eq!(key(&words[1..]), "paix");
        assert_eq!(key(&tokens("Le Mans")), "mans");
    }

    proptest! {
        #[test]
        fn normalize_is_idempotent(s in "\\PC{0,40}") {
            let once = normalize(&s);
            prop_assert_eq!(normalize(&once), once.clone());
        }

        #[test]
        fn normalize_is_idempotent_on_address_like_text(
            s in "[0-9]{0,3}( ?(bis|ter|b|BIS))? (r|rue|bd|Av\\.|St-|Ste|Gal|imp|pl|rte|all|che|fg) [A-Za-zéèàçôŒ' -]{0,20} [0-9]{5}"
        ) {
            let once = normalize(&s);
            prop_assert_eq!(normalize(&once), once.clone());
            prop_assert!(once.bytes().all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b' '));
        }

        #[test]
        fn edit_distance_is_symmetric(a in "[a-z]{0,8}", b in "[a-z]{0,8}") {
            prop_assert_eq!(edit_distance_within(&a, &b, 3), edit_distance_within(&b, &a, 3));
        }
    }
}
