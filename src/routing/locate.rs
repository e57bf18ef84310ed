//! Locating a request: tenant reference, else caller phone, else the stated address, matched to a
//! building, a street or a commune; a commune served by one cooperator names it, a shared one does
//! not. Every step taken is a reason.

use super::address::{self, AddressInput, Match, MatchLevel};
use super::model::{CooperatorIdx, SectorIdx};
use super::request::RouteRequest;
use super::{AddressMatch, Candidate, Router, text};

/// Where a request was located.
pub(super) struct Location {
    pub building: Option<u32>,
    pub cooperator: Option<CooperatorIdx>,
    pub sector: Option<SectorIdx>,
    pub matched: AddressMatch,
}

impl Router {
    /// Matches an address alone, without the rest of a decision.
    pub fn match_address(&self, input: &AddressInput) -> AddressMatch {
        self.locate_address(input, &mut Vec::new()).matched
    }

    pub(super) fn locate(&self, request: &RouteRequest, reasons: &mut Vec<String>) -> Location {
        let reference = request.tenant_reference.trim();
        if !reference.is_empty() {
            if let Some(&b) = self.tenant_building.get(reference) {
                let building = &self.buildings[b as usize].building.id;
                reasons.push(["located by tenant reference: building ", building].concat());
                return self.at_building(b, 1.0);
            }
            reasons.push("tenant reference not in the registry".to_owned());
        }
        if let Some(phone) = text::normalize_phone(&request.caller_number) {
            match self.phone_buildings.get(&phone).map(Vec::as_slice) {
                Some([b]) => {
                    reasons.push(format!(
                        "located by caller phone: building {}",
                        self.buildings[*b as usize].building.id
                    ));
                    return self.at_building(*b, 0.95);
                }
                Some(homes) => reasons.push(format!(
                    "caller phone is registered for {} homes",
                    homes.len()
                )),
                None => {}
            }
        }
        if request.address.is_empty() {
            reasons.push("no tenant reference, known phone or address".to_owned());
            return Location {
                building: None,
                cooperator: None,
                sector: None,
                matched: self.no_match(String::new()),
            };
        }
        self.locate_address(&request.address, reasons)
    }

    fn at_building(&self, b: u32, confidence: f32) -> Location {
        let rb = &self.buildings[b as usize];
        Location {
            building: Some(b),
            cooperator: Some(rb.cooperator),
            sector: Some(rb.sector),
            matched: AddressMatch {
                building_id: Some(rb.building.id.clone()),
                level: MatchLevel::Building,
                confidence,
                normalized: rb.normalized.clone(),
                candidates: Vec::new(),
                insee_code: Some(rb.building.insee_code.clone()),
            },
        }
    }

    fn no_match(&self, normalized: String) -> AddressMatch {
        AddressMatch {
            building_id: None,
            level: MatchLevel::None,
            confidence: 0.0,
            normalized,
            candidates: Vec::new(),
            insee_code: None,
        }
    }

    fn locate_address(&self, input: &AddressInput, reasons: &mut Vec<String>) -> Location {
        let found: Match = self.address.find(input);
        if let Some(b) = found.building {
            reasons.push(format!(
                "address matched building {} (confidence {:.2})",
                self.buildings[b as usize].building.id, found.confidence
            ));
            let mut location = self.at_building(b, found.confidence);
            location.matched.normalized = found.normalized;
            return location;
        }
        let (cooperator, sector) = match found.level {
            MatchLevel::Street => self.street_owner(&found, reasons),
            MatchLevel::Commune => (self.commune_owner(&found, reasons), None),
            MatchLevel::None | MatchLevel::Building => {
                reasons.push("address not recognised".to_owned());
                (None, None)
            }
        };
        Location {
            building: None,
            cooperator,
            sector,
            matched: AddressMatch {
                building_id: None,
                level: found.level,
                confidence: found.confidence,
                insee_code: found.commune.map(|c| self.address.commune(c).0.to_owned()),
                candidates: self.candidates(&found),
                normalized: found.normalized,
            },
        }
    }

    /// The buildings, then the communes, an ambiguous address could mean.
    fn candidates(&self, found: &Match) -> Vec<Candidate> {
        let buildings = found
            .candidate_buildings
            .iter()
            .take(address::MAX_CANDIDATES)
            .map(|&b| {
                let rb = &self.buildings[b as usize];
                Candidate {
                    building_id: Some(rb.building.id.clone()),
                    cooperator_id: Some(self.cooperators[rb.cooperator as usize].id.clone()),
                    insee_code: rb.building.insee_code.clone(),
                    normalized: rb.normalized.clone(),
                }
            });
        let communes = found.candidate_communes.iter().map(|&c| {
            let (insee, name) = self.address.commune(c);
            let served = self.commune_cooperators.get(&c).map(Vec::as_slice);
            Candidate {
                building_id: None,
                cooperator_id: match served {
                    Some([one]) => Some(self.cooperators[*one as usize].id.clone()),
                    _ => None,
                },
                insee_code: insee.to_owned(),
                normalized: text::normalize(&format!(
                    "{} {name}",
                    self.address.postcodes(c).join(" ")
                )),
            }
        });
        buildings.chain(communes).collect()
    }

    /// A street but no building: its cooperator and sector when all its buildings share them.
    fn street_owner(
        &self,
        found: &Match,
        reasons: &mut Vec<String>,
    ) -> (Option<CooperatorIdx>, Option<SectorIdx>) {
        let buildings = || {
            found
                .candidate_buildings
                .iter()
                .map(|&b| &self.buildings[b as usize])
        };
        let coop = unanimous(buildings().map(|b| b.cooperator));
        let sector = unanimous(buildings().map(|b| b.sector));
        match coop {
            Some(c) => reasons.push(format!(
                "address matched a street of {} but not a building",
                self.cooperators[c as usize].id
            )),
            None => {
                reasons.push("address matched streets of several cooperators: ambiguous".to_owned())
            }
        }
        (coop, sector)
    }

    /// A commune only: its cooperator when one alone serves it.
    fn commune_owner(&self, found: &Match, reasons: &mut Vec<String>) -> Option<CooperatorIdx> {
        let Some(c) = found.commune else {
            reasons.push(format!(
                "address names {} possible communes: ambiguous",
                found.candidate_communes.len().max(2)
            ));
            return None;
        };
        let insee = self.address.commune(c).0;
        let served = self
            .commune_cooperators
            .get(&c)
            .map(Vec::as_slice)
            .unwrap_or_default();
        match served {
            [one] => {
                reasons.push(format!(
                    "address matched commune {insee} only, served by {} alone",
                    self.cooperators[*one as usize].id
                ));
                Some(*one)
            }
            [] => {
                reasons.push(format!(
                    "address matched commune {insee} only, which no cooperator serves"
                ));
                None
            }
            many => {
                reasons.push(format!(
                    "address matched commune {insee} only, shared by {} cooperators: the building decides",
                    many.len()
                ));
                None
            }
        }
    }
}

/// The one value every item shares, if they all share one.
fn unanimous<T: PartialEq + Copy>(mut items: impl Iterator<Item = T>) -> Option<T> {
    let first = items.next()?;
    items.all(|x| x == first).then_some(first)
}
