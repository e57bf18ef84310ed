//! Address matching: from what a caller says ("12 bd St-Michel 72000 Le Mans", or structured
//! fields) to a building of the registry, with a match level, a confidence and the candidates when
//! the address is ambiguous.
//!
//! The index is built once per configuration and is read-only afterwards. Matching is a pure
//! function of the index and the input.
//!
//! Rules it keeps:
//! - a house number that is not in the registry on a known street gives `STREET`, never a guess at
//!   a neighbouring building;
//! - a commune name alone never picks one of two same-name communes; a postcode or INSEE code does;
//! - old names of merged communes lead to the current commune;
//! - a typo is forgiven only in words of five letters or more, one per word.

use rustc_hash::FxHashMap;

mod candidates;
mod parse;

use self::parse::{Parsed, split_street};
use super::places::{Commune, CommuneKind};
use super::street_types;
use super::text::{self, HouseNumber};

/// How precisely an address was recognised.
#[derive(
    Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, serde::Serialize, serde::Deserialize,
)]
#[serde(rename_all = "SCREAMING_SNAKE_CASE")]
pub enum MatchLevel {
    None,
    Commune,
    Street,
    Building,
}

impl MatchLevel {
    pub fn as_str(self) -> &'static str {
        match self {
            MatchLevel::None => "NONE",
            MatchLevel::Commune => "COMMUNE",
            MatchLevel::Street => "STREET",
            MatchLevel::Building => "BUILDING",
        }
    }
}

/// An address as the caller gave it: structured fields, free text, or both (fields win).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct AddressInput {
    pub street_number: String,
    pub street: String,
    pub postcode: String,
    pub city: String,
    pub free_text: String,
}

impl AddressInput {
    pub fn is_empty(&self) -> bool {
        [
            &self.street_number,
            &self.street,
            &self.postcode,
            &self.city,
            &self.free_text,
        ]
        .iter()
        .all(|s| s.trim().is_empty())
    }
}

/// A building to be indexed: its position in the registry and its address.
pub struct IndexedBuilding<'a> {
    pub street_number: &'a str,
    pub street_name: &'a str,
    pub insee_code: &'a str,
}

/// The outcome of matching, in registry indices.
#[derive(Debug, Clone, PartialEq)]
pub struct Match {
    pub level: MatchLevel,
    pub confidence: f32,
    /// The building, at `BUILDING` level.
    pub building: Option<u32>,
    /// The current commune (index into [`AddressIndex::commune`]) when it is known for sure.
    pub commune: Option<u32>,
    /// Buildings on the matched street(s), or communes, when one could not be chosen.
    pub candidate_buildings: Vec<u32>,
    pub candidate_communes: Vec<u32>,
    /// The address as understood, normalised.
    pub normalized: String,
}

impl Match {
    fn none(normalized: String) -> Match {
        Match {
            level: MatchLevel::None,
            confidence: 0.0,
            building: None,
            commune: None,
            candidate_buildings: Vec::new(),
            candidate_communes: Vec::new(),
            normalized,
        }
    }
}

/// At most this many candidates are returned with an ambiguous match.
pub const MAX_CANDIDATES: usize = 5;

struct CommuneEntry {
    insee: String,
    name: String,
    /// Index of the current commune this one is, or was merged into.
    current: u32,
    postcodes: Vec<String>,
}

struct Street {
    commune: u32,
    street_type: Option<String>,
    /// Significant words after the street type.
    core: Vec<String>,
    buildings: Vec<(HouseNumber, u32)>,
}

/// The read-only index of communes and registry streets.
pub struct AddressIndex {
    communes: Vec<CommuneEntry>,
    by_code: FxHashMap<String, u32>,
    by_postcode: FxHashMap<String, Vec<u32>>,
    by_name: FxHashMap<String, Vec<u32>>,
    /// Every name key once, for typo-tolerant search.
    name_keys: Vec<(String, Vec<u32>)>,
    streets: Vec<Street>,
    /// (current commune, core key) → streets.
    street_by_key: FxHashMap<(u32, String), Vec<u32>>,
    /// Core key → streets in any commune, for addresses given without a commune.
    street_by_key_anywhere: FxHashMap<String, Vec<u32>>,
    streets_of_commune: FxHashMap<u32, Vec<u32>>,
}

/// A building whose address the index cannot hold.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum IndexError {
    #[error("unknown INSEE code '{0}'")]
    UnknownCommune(String),
    #[error("street number '{0}' is not a house number (e.g. 12, 12 bis, 7 A)")]
    BadNumber(String),
    #[error("street name '{0}' has no words")]
    EmptyStreet(String),
    #[error("the address is listed twice (same number, street and commune as building {0})")]
    Duplicate(u32),
}

impl AddressIndex {
    /// Indexes the communes of the reference data.
    pub fn new(communes: &[Commune]) -> AddressIndex {
        // A delegated commune may keep the code of the current commune it merged into
        // (Étables-sur-Mer, 22055): a code names the current commune first.
        let mut by_code: FxHashMap<String, u32> = FxHashMap::default();
        for current_first in [true, false] {
            for (i, c) in communes.iter().enumerate() {
                if (c.kind == CommuneKind::Current) == current_first {
                    by_code.entry(c.insee.clone()).or_insert(i as u32);
                }
            }
        }
        let current_of = |c: &Commune, i: u32| -> u32 {
            c.chef_lieu
                .as_ref()
                .and_then(|code| by_code.get(code).copied())
                .unwrap_or(i)
        };
        let mut entries = Vec::with_capacity(communes.len());
        let mut by_postcode: FxHashMap<String, Vec<u32>> = FxHashMap::default();
        let mut by_name: FxHashMap<String, Vec<u32>> = FxHashMap::default();
        for (i, c) in communes.iter().enumerate() {
            let i = i as u32;
            let current = if c.kind == CommuneKind::Current {
                i
            } else {
                current_of(c, i)
            };
            for postcode in &c.postcodes {
                by_postcode
                    .entry(postcode.clone())
                    .or_default()
                    .push(current);
            }
            let key = text::key(&text::tokens(&c.name));
            let named = by_name.entry(key).or_default();
            if !named.contains(&current) {
                named.push(current);
            }
            entries.push(CommuneEntry {
                insee: c.insee.clone(),
                name: c.name.clone(),
                current,
                postcodes: c.postcodes.clone(),
            });
        }
        // Former INSEE codes of merged communes still lead to the current commune.
        for (i, c) in communes.iter().enumerate() {
            for former in &c.former_codes {
                by_code.entry(former.clone()).or_insert(i as u32);
            }
        }
        let mut name_keys: Vec<(String, Vec<u32>)> = by_name
            .iter()
            .map(|(k, v)| (k.clone(), v.clone()))
            .collect();
        name_keys.sort();
        AddressIndex {
            communes: entries,
            by_code,
            by_postcode,
            by_name,
            name_keys,
            streets: Vec::new(),
            street_by_key: FxHashMap::default(),
            street_by_key_anywhere: FxHashMap::default(),
            streets_of_commune: FxHashMap::default(),
        }
    }

    /// The INSEE code and name of an indexed commune.
    pub fn commune(&self, index: u32) -> (&str, &str) {
        let c = &self.communes[index as usize];
        (&c.insee, &c.name)
    }

    /// The postcodes of an indexed commune.
    pub fn postcodes(&self, index: u32) -> &[String] {
        &self.communes[index as usize].postcodes
    }

    /// The commune index of an INSEE code, resolved to the current commune.
    pub fn current_commune(&self, insee: &str) -> Option<u32> {
        self.by_code
            .get(insee)
            .map(|&i| self.communes[i as usize].current)
    }

    /// Whether `postcode` is one of the postcodes of the commune `insee`.
    pub fn postcode_belongs(&self, postcode: &str, insee: &str) -> bool {
        self.current_commune(insee).is_some_and(|c| {
            self.communes[c as usize]
                .postcodes
                .iter()
                .any(|p| p == postcode)
        })
    }

    /// Adds a registry building, number `id` in the registry.
    pub fn add_building(
        &mut self,
        id: u32,
        building: &IndexedBuilding<'_>,
    ) -> Result<(), IndexError> {
        let commune = self
            .current_commune(building.insee_code)
            .ok_or_else(|| IndexError::UnknownCommune(building.insee_code.to_owned()))?;
        let number = HouseNumber::parse(building.street_number)
            .ok_or_else(|| IndexError::BadNumber(building.street_number.to_owned()))?;
        let mut words = text::tokens(building.street_name);
        street_types::expand_leading_type(&mut words);
        let (street_type, core) = split_street(&words);
        if core.is_empty() {
            return Err(IndexError::EmptyStreet(building.street_name.to_owned()));
        }
        let core_key = core.join(" ");
        let key = (commune, core_key.clone());
        let existing = self.street_by_key.get(&key).and_then(|ids| {
            ids.iter()
                .copied()
                .find(|&s| self.streets[s as usize].street_type == street_type)
        });
        let street = match existing {
            Some(s) => s,
            None => {
                let s = self.streets.len() as u32;
                self.streets.push(Street {
                    commune,
                    street_type,
                    core,
                    buildings: Vec::new(),
                });
                self.street_by_key.entry(key).or_default().push(s);
                self.street_by_key_anywhere
                    .entry(core_key)
                    .or_default()
                    .push(s);
                self.streets_of_commune.entry(commune).or_default().push(s);
                s
            }
        };
        let buildings = &mut self.streets[street as usize].buildings;
        if let Some(&(_, other)) = buildings.iter().find(|(n, _)| *n == number) {
            return Err(IndexError::Duplicate(other));
        }
        buildings.push((number, id));
        Ok(())
    }

    /// Matches an address against the registry.
    pub fn find(&self, input: &AddressInput) -> Match {
        let mut parsed = self.parse(input);
        let alternative = parsed.alternative.take();
        let first = self.find_parsed(&parsed);
        match alternative {
            // "rue de Chambray-lès-Tours 37100": the commune name read at the end may belong to
            // the street; read it so when the first reading finds no street.
            Some(other) if first.level < MatchLevel::Street => {
                let second = self.find_parsed(&other);
                if second.level > first.level {
                    second
                } else {
                    first
                }
            }
            _ => first,
        }
    }

    fn find_parsed(&self, parsed: &Parsed) -> Match {
        let normalized = parsed.normalized();
        let communes = self.candidate_communes(parsed);
        let streets = self.candidate_streets(parsed, &communes.ids);
        // Each uncertainty on the way lowers the confidence.
        let confidence: f32 = 1.0
            - if communes.fuzzy { 0.1 } else { 0.0 }
            - if communes.ids.is_empty() { 0.1 } else { 0.0 }
            - if communes.conflict { 0.2 } else { 0.0 }
            - if streets.fuzzy { 0.1 } else { 0.0 };
        if streets.ids.is_empty() {
            return commune_match(&communes.ids, confidence, normalized);
        }
        let street_commune = {
            let first = self.streets[streets.ids[0] as usize].commune;
            streets
                .ids
                .iter()
                .all(|&s| self.streets[s as usize].commune == first)
                .then_some(first)
        };
        let found = Match {
            commune: street_commune,
            normalized,
            ..Match::none(String::new())
        };
        // Two different streets that the caller's words fit equally well are a tie the house
        // number must not break: the number may well be on the other one.
        let tie = streets.fuzzy
            && streets.ids.iter().any(|&s| {
                self.streets[s as usize].core != self.streets[streets.ids[0] as usize].core
            });
        if let Some(number) = parsed.number
            && !tie
            && let Some(at_number) = self.at_number(&streets.ids, number, confidence, &found)
        {
            return at_number;
        }
        let mut on_street: Vec<u32> = streets
            .ids
            .iter()
            .flat_map(|&s| self.streets[s as usize].buildings.iter().map(|&(_, b)| b))
            .collect();
        on_street.sort_unstable();
        Match {
            level: MatchLevel::Street,
            confidence: (confidence * 0.6).max(0.05),
            candidate_buildings: on_street,
            ..found
        }
    }

    /// The building at this number on the candidate streets, or the buildings when several
    /// streets have one; `None` when none has the number.
    fn at_number(
        &self,
        streets: &[u32],
        number: HouseNumber,
        confidence: f32,
        found: &Match,
    ) -> Option<Match> {
        let hits: Vec<u32> = streets
            .iter()
            .filter_map(|&s| {
                self.streets[s as usize]
                    .buildings
                    .iter()
                    .find(|(n, _)| *n == number)
                    .map(|&(_, b)| b)
            })
            .collect();
        match hits.as_slice() {
            [] => None,
            [building] => Some(Match {
                level: MatchLevel::Building,
                confidence: (confidence - if streets.len() > 1 { 0.1 } else { 0.0 }).max(0.1),
                building: Some(*building),
                ..found.clone()
            }),
            _ => Some(Match {
                level: MatchLevel::Street,
                confidence: (confidence * 0.5).max(0.05),
                candidate_buildings: hits.into_iter().take(MAX_CANDIDATES).collect(),
                ..found.clone()
            }),
        }
    }
}

/// No street recognised: the commune alone when there is one, its candidates when several.
fn commune_match(communes: &[u32], confidence: f32, normalized: String) -> Match {
    let single = match communes {
        [] => return Match::none(normalized),
        [one] => Some(*one),
        _ => None,
    };
    Match {
        level: MatchLevel::Commune,
        confidence: (confidence * 0.4).max(0.05),
        commune: single,
        candidate_communes: if single.is_some() {
            Vec::new()
        } else {
            communes.iter().copied().take(MAX_CANDIDATES).collect()
        },
        ..Match::none(normalized)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn commune(insee: &str, name: &str, postcodes: &[&str]) -> Commune {
        Commune {
            insee: insee.to_owned(),
            name: name.to_owned(),
            department: insee[..2].to_owned(),
            kind: CommuneKind::Current,
            postcodes: postcodes.iter().map(|p| (*p).to_owned()).collect(),
            chef_lieu: None,
            population: 1000,
            former_codes: Vec::new(),
        }
    }

    fn index() -> AddressIndex {
        let mut delegated = commune("22007", "Binic", &[]);
        delegated.kind = CommuneKind::Delegated;
        delegated.chef_lieu = Some("22055".to_owned());
        let communes = vec![
            commune("72181", "Le Mans", &["72000", "72100"]),
            commune("37261", "Tours", &["37000", "37100", "37200"]),
            commune("37050", "Chambray-lès-Tours", &["37170"]),
            commune("22055", "Binic-Étables-sur-Mer", &["22680"]),
            delegated,
        ];
        let mut index = AddressIndex::new(&communes);
        let buildings = [
            ("12", "Boulevard Saint-Michel", "72181"),
            ("12 bis", "Boulevard Saint-Michel", "72181"),
            ("3", "Place Saint-Michel", "72181"),
            ("9", "Rue de Chambray-lès-Tours", "37261"),
            ("5", "Avenue du Général-de-Gaulle", "22055"),
        ];
        for (i, (number, street, insee)) in buildings.iter().enumerate() {
            let b = IndexedBuilding {
                street_number: number,
                street_name: street,
                insee_code: insee,
            };
            index.add_building(i as u32, &b).expect("indexable");
        }
        index
    }

    fn find(text: &str) -> Match {
        index().find(&AddressInput {
            free_text: text.to_owned(),
            ..AddressInput::default()
        })
    }

    #[test]
    fn free_text_in_the_usual_order() {
        let m = find("12 bd St-Michel 72000 Le Mans");
        assert_eq!((m.level, m.building), (MatchLevel::Building, Some(0)));
        assert_eq!(m.normalized, "12 boulevard saint michel 72000 le mans");
        assert_eq!(find("12BIS BD ST MICHEL LE MANS").building, Some(1));
        assert_eq!(find("12 b boulevard saint-michel 72100").building, Some(1));
    }

    #[test]
    fn commune_first_and_extra_words() {
        assert_eq!(find("Le Mans, 12 bd Saint-Michel").building, Some(0));
        assert_eq!(
            find("appartement au 12 bd Saint-Michel 72000 Le Mans").building,
            Some(0)
        );
    }

    #[test]
    fn the_street_type_separates_streets_of_the_same_name() {
        assert_eq!(find("3 place saint michel 72000").building, Some(2));
        // Number 3 is only on the place: the boulevard the caller named has no number 3.
        let m = find("3 bd saint michel 72000");
        assert_eq!((m.level, m.building), (MatchLevel::Street, None));
        assert_eq!(m.candidate_buildings, vec![0, 1]);
        // Without a street type, both streets are candidates and the number decides.
        assert_eq!(find("3 saint michel 72000").building, Some(2));
    }

    #[test]
    fn unknown_numbers_and_streets_degrade_without_guessing() {
        let m = find("14 bd Saint-Michel 72000 Le Mans");
        assert_eq!((m.level, m.building), (MatchLevel::Street, None));
        assert_eq!(m.candidate_buildings, vec![0, 1]);
        let m = find("rue inconnue 72000 Le Mans");
        assert_eq!((m.level, m.building), (MatchLevel::Commune, None));
        assert_eq!(m.commune, index().current_commune("72181"));
        assert_eq!(find("nowhere at all").level, MatchLevel::None);
    }

    #[test]
    fn a_commune_name_inside_the_street_name() {
        assert_eq!(
            find("9 rue de Chambray-lès-Tours 37100 Tours").building,
            Some(3)
        );
        assert_eq!(find("9 rue de Chambray-les-Tours 37100").building, Some(3));
    }

    #[test]
    fn delegated_names_and_typos() {
        assert_eq!(find("5 av du Gal de Gaulle Binic").building, Some(4));
        assert_eq!(find("5 avenue general de gaule 22680").building, Some(4));
        assert_eq!(
            find("5 av du Gal de Gaulle Binic-Etable-sur-Mer").building,
            Some(4)
        );
        assert_eq!(find("12 bd Saint-Michell 72000 Le Mans").building, Some(0));
        // Four-letter words admit no typo: "Mnas" is not "Mans".
        assert_eq!(find("12 bd Saint-Michel Le Mnas").level, MatchLevel::None);
    }

    #[test]
    fn the_registry_refuses_duplicate_and_malformed_addresses() {
        let mut idx = index();
        let dup = IndexedBuilding {
            street_number: "12",
            street_name: "bd St-Michel",
            insee_code: "72181",
        };
        assert_eq!(idx.add_building(9, &dup), Err(IndexError::Duplicate(0)));
        let bad = IndexedBuilding {
            street_number: "douze",
            street_name: "Rue Hoche",
            insee_code: "72181",
        };
        assert!(matches!(
            idx.add_building(9, &bad),
            Err(IndexError::BadNumber(_))
        ));
        let unknown = IndexedBuilding {
            street_number: "1",
            street_name: "Rue Hoche",
            insee_code: "99999",
        };
        assert!(matches!(
            idx.add_building(9, &unknown),
            Err(IndexError::UnknownCommune(_))
        ));
    }
}
