//! Narrowing down: the communes an address can mean (by code, postcode, name, old name, typo) and
//! the streets of those communes that its words name, best first.

use super::super::text::{self, edit_distance_within, typo_allowance};
use super::AddressIndex;
use super::parse::{Parsed, split_street};

pub(super) struct CommuneCandidates {
    pub ids: Vec<u32>,
    pub fuzzy: bool,
    pub conflict: bool,
}

#[derive(Default)]
pub(super) struct StreetCandidates {
    pub ids: Vec<u32>,
    pub fuzzy: bool,
}

impl AddressIndex {
    pub(super) fn communes_of_code(&self, code: &str) -> Vec<u32> {
        if let Some(ids) = self.by_postcode.get(code) {
            return ids.clone();
        }
        self.current_commune(code).into_iter().collect()
    }

    /// A run of words naming a commune (among `within` when it is not empty): the longest at the
    /// end, else the longest at the start.
    pub(super) fn find_commune_words(
        &self,
        words: &[String],
        within: &[u32],
    ) -> Option<(usize, usize)> {
        let fits = |start: usize, end: usize| self.names_commune(&words[start..end], within);
        let n = words.len();
        let longest = 6.min(n);
        for len in (1..=longest).rev() {
            if fits(n - len, n) {
                return Some((n - len, n));
            }
        }
        if let Some(len) = (1..longest.min(n.saturating_sub(1)) + 1)
            .rev()
            .find(|&len| fits(0, len))
        {
            return Some((0, len));
        }
        // A misspelt commune name at the end ("Binic-Etable-sur-Mer").
        (1..=longest.min(4)).rev().find_map(|len| {
            let key = text::key(&words[n - len..]);
            (!self.fuzzy_commune(&key, within).is_empty()).then_some((n - len, n))
        })
    }

    /// Whether these words are a commune's name (among `within` when it is not empty).
    pub(super) fn names_commune(&self, words: &[String], within: &[u32]) -> bool {
        let key = text::key(words);
        !key.is_empty()
            && self
                .by_name
                .get(&key)
                .is_some_and(|ids| within.is_empty() || ids.iter().any(|i| within.contains(i)))
    }

    pub(super) fn candidate_communes(&self, parsed: &Parsed) -> CommuneCandidates {
        let from_code = parsed
            .code
            .as_deref()
            .map(|code| self.communes_of_code(code))
            .unwrap_or_default();
        let city_key = text::key(&parsed.city);
        let mut fuzzy = false;
        let mut from_name: Vec<u32> = if city_key.is_empty() {
            Vec::new()
        } else {
            self.by_name.get(&city_key).cloned().unwrap_or_default()
        };
        if from_name.is_empty() && !city_key.is_empty() {
            from_name = self.fuzzy_commune(&city_key, &from_code);
            fuzzy = !from_name.is_empty();
        }
        let (ids, conflict) = match (from_code.is_empty(), from_name.is_empty()) {
            (true, _) => (from_name, false),
            (false, true) => (from_code, !city_key.is_empty()),
            (false, false) => {
                let both: Vec<u32> = from_code
                    .iter()
                    .copied()
                    .filter(|c| from_name.contains(c))
                    .collect();
                if both.is_empty() {
                    (from_code, true)
                } else {
                    (both, false)
                }
            }
        };
        CommuneCandidates {
            ids,
            fuzzy,
            conflict,
        }
    }

    /// Commune names one typo away from `key`, among `within` when it is not empty.
    pub(super) fn fuzzy_commune(&self, key: &str, within: &[u32]) -> Vec<u32> {
        let limit = typo_allowance(key);
        if limit == 0 {
            return Vec::new();
        }
        let mut found: Vec<u32> = Vec::new();
        for (name, ids) in &self.name_keys {
            if edit_distance_within(name, key, limit).is_some() {
                for &id in ids {
                    if (within.is_empty() || within.contains(&id)) && !found.contains(&id) {
                        found.push(id);
                    }
                }
            }
        }
        found
    }

    pub(super) fn candidate_streets(&self, parsed: &Parsed, communes: &[u32]) -> StreetCandidates {
        let (street_type, core) = split_street(&parsed.street);
        if core.is_empty() {
            return StreetCandidates::default();
        }
        let core_key = core.join(" ");
        let exact: Vec<u32> = if communes.is_empty() {
            self.street_by_key_anywhere
                .get(&core_key)
                .cloned()
                .unwrap_or_default()
        } else {
            communes
                .iter()
                .filter_map(|&c| self.street_by_key.get(&(c, core_key.clone())))
                .flatten()
                .copied()
                .collect()
        };
        if !exact.is_empty() {
            return StreetCandidates {
                ids: self.prefer_type(exact, street_type.as_deref()),
                fuzzy: false,
            };
        }
        // Typos and extra words: score every street of the candidate communes.
        let pool: Vec<u32> = communes
            .iter()
            .filter_map(|c| self.streets_of_commune.get(c))
            .flatten()
            .copied()
            .collect();
        let mut best: Vec<u32> = Vec::new();
        let mut best_score = (usize::MAX, usize::MAX, usize::MAX, usize::MAX);
        for s in pool {
            let street = &self.streets[s as usize];
            if let Some(score) = fuzzy_score(&street.core, &core) {
                if score < best_score {
                    best_score = score;
                    best.clear();
                }
                if score == best_score {
                    best.push(s);
                }
            }
        }
        StreetCandidates {
            ids: self.prefer_type(best, street_type.as_deref()),
            fuzzy: true,
        }
    }

    /// Among streets that share a name, the ones of the street type the caller said, if any is.
    pub(super) fn prefer_type(&self, ids: Vec<u32>, wanted: Option<&str>) -> Vec<u32> {
        let Some(wanted) = wanted else { return ids };
        let same: Vec<u32> = ids
            .iter()
            .copied()
            .filter(|&s| self.streets[s as usize].street_type.as_deref() == Some(wanted))
            .collect();
        if same.is_empty() { ids } else { same }
    }
}

/// How well a street's significant words are found in what the caller said: `None` when one is
/// missing; otherwise lower is better. Each word is found as itself, else as an abbreviation of
/// it — a prefix ("rep" for "republique"), else its letters in order from the same first letter
/// ("ml" for "marechal", "chps" for "champs") —, else with a typo; the score counts typos, then
/// skeletons, then prefixes, then the caller's extra words.
fn fuzzy_score(street: &[String], said: &[String]) -> Option<(usize, usize, usize, usize)> {
    let mut used = vec![false; said.len()];
    let (mut typos, mut skeletons, mut prefixes) = (0, 0, 0);
    for word in street {
        let free = |i: &usize| !used[*i];
        let find =
            |found: &dyn Fn(&str) -> bool| (0..said.len()).filter(free).find(|&i| found(&said[i]));
        let at = if let Some(i) = find(&|w| w == word) {
            i
        } else if let Some(i) = find(&|w| is_prefix(w, word)) {
            prefixes += 1;
            i
        } else if let Some(i) = find(&|w| is_skeleton(w, word)) {
            skeletons += 1;
            i
        } else {
            let limit = typo_allowance(word);
            let i = find(&|w| limit > 0 && edit_distance_within(w, word, limit).is_some())?;
            typos += 1;
            i
        };
        used[at] = true;
    }
    let extra = used.iter().filter(|u| !**u).count();
    Some((typos, skeletons, prefixes, extra))
}

/// A shortening of `word` by its start: at least two letters, and shorter.
fn is_prefix(said: &str, word: &str) -> bool {
    said.len() >= 2 && said.len() < word.len() && word.starts_with(said)
}

/// A consonant skeleton of `word`: at least two letters, the same first letter (a vowel or not),
/// consonants only after it (a word with vowels is a word, or a typo, not a skeleton), shorter,
/// and every letter found in `word` in the same order ("mln" for "moulin", "egls" for "eglise").
fn is_skeleton(said: &str, word: &str) -> bool {
    if said.len() < 2
        || said.len() >= word.len()
        || said.as_bytes()[0] != word.as_bytes()[0]
        || said.bytes().skip(1).any(|b| b"aeiouy".contains(&b))
    {
        return false;
    }
    let mut letters = word.bytes();
    said.bytes().all(|b| letters.any(|w| w == b))
}
