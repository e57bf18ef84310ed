//! Checking the registries against the organisation: each building of a known cooperator and one
//! of its sectors, in a known commune of its territory with that commune's postcode, at an address
//! listed once (and indexed for matching); each tenant once, in a known building, with a phone.

use std::collections::HashSet;
use std::path::Path;

use rustc_hash::FxHashMap;

use super::model::Model;
use crate::diagnostics::Problem;
use crate::registry;
use crate::routing::RegistryBuilding;
use crate::routing::address::{AddressIndex, IndexError, IndexedBuilding};
use crate::routing::places::{Building, Tenant};

pub(super) fn check_buildings(
    path: &Path,
    rows: Vec<registry::Located<Building>>,
    model: &Model,
    address: &mut AddressIndex,
    problems: &mut Vec<Problem>,
) -> Vec<RegistryBuilding> {
    let mut seen: FxHashMap<String, usize> = FxHashMap::default();
    let mut buildings: Vec<RegistryBuilding> = Vec::with_capacity(rows.len());
    for row in rows {
        let b = row.value;
        let at = |message: String| Problem::new(path, Some(row.line), message);
        if let Some(first) = seen.insert(b.id.clone(), row.line) {
            problems.push(at(format!(
                "duplicate building id '{}' (first at line {first})",
                b.id
            )));
            continue;
        }
        let Some(&coop) = model.cooperator_by_id.get(&b.cooperator_id) else {
            problems.push(at(format!(
                "building {}: unknown cooperator '{}'",
                b.id, b.cooperator_id
            )));
            continue;
        };
        let sector = match model.sector_by_id.get(&b.sector_id) {
            Some(&s) if model.sectors[s as usize].cooperator == coop => s,
            Some(_) => {
                problems.push(at(format!(
                    "building {}: sector '{}' is not a sector of {}",
                    b.id, b.sector_id, b.cooperator_id
                )));
                continue;
            }
            None => {
                problems.push(at(format!(
                    "building {}: unknown sector '{}'",
                    b.id, b.sector_id
                )));
                continue;
            }
        };
        if address.current_commune(&b.insee_code).is_none() {
            problems.push(at(format!(
                "building {}: unknown INSEE code '{}'",
                b.id, b.insee_code
            )));
            continue;
        }
        if !address.postcode_belongs(&b.postcode, &b.insee_code) {
            problems.push(at(format!(
                "building {}: postcode {} does not belong to commune {} ({})",
                b.id, b.postcode, b.insee_code, b.city
            )));
            continue;
        }
        let territory = &model.cooperators[coop as usize].territory;
        let commune = address.current_commune(&b.insee_code);
        if !territory
            .iter()
            .any(|t| address.current_commune(t) == commune)
        {
            problems.push(at(format!(
                "building {}: commune {} is outside the territory of {}",
                b.id, b.insee_code, b.cooperator_id
            )));
            continue;
        }
        let indexed = IndexedBuilding {
            street_number: &b.street_number,
            street_name: &b.street_name,
            insee_code: &b.insee_code,
        };
        if let Err(e) = address.add_building(buildings.len() as u32, &indexed) {
            let message = match e {
                IndexError::Duplicate(other) => format!(
                    "building {}: same address as building {}",
                    b.id, buildings[other as usize].building.id
                ),
                other => format!("building {}: {other}", b.id),
            };
            problems.push(at(message));
            continue;
        }
        buildings.push(RegistryBuilding {
            building: b,
            cooperator: coop,
            sector,
        });
    }
    buildings
}

pub(super) fn check_tenants(
    path: &Path,
    rows: Vec<registry::Located<Tenant>>,
    buildings: &[RegistryBuilding],
    problems: &mut Vec<Problem>,
) -> Vec<Tenant> {
    let known: HashSet<&str> = buildings.iter().map(|b| b.building.id.as_str()).collect();
    let mut seen: FxHashMap<String, usize> = FxHashMap::default();
    let mut tenants = Vec::with_capacity(rows.len());
    for row in rows {
        let t = row.value;
        if let Some(first) = seen.insert(t.reference.clone(), row.line) {
            problems.push(Problem::new(
                path,
                Some(row.line),
                format!("duplicate tenant reference (first at line {first})"),
            ));
            continue;
        }
        if !known.contains(t.building_id.as_str()) {
            problems.push(Problem::new(
                path,
                Some(row.line),
                format!("tenant row names unknown building '{}'", t.building_id),
            ));
            continue;
        }
        if crate::routing::text::normalize_phone(&t.phone).is_none() {
            problems.push(Problem::new(
                path,
                Some(row.line),
                "tenant phone has no digits",
            ));
            continue;
        }
        tenants.push(t);
    }
    tenants
}
