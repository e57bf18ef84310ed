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
use crate::routing::model::{CooperatorIdx, SectorIdx};
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
        let placed = place(&b, model, address).and_then(|(coop, sector)| {
            let indexed = IndexedBuilding {
                street_number: &b.street_number,
                street_name: &b.street_name,
                insee_code: &b.insee_code,
            };
            match address.add_building(buildings.len() as u32, &indexed) {
                Ok(()) => Ok((coop, sector)),
                Err(IndexError::Duplicate(other)) => Err(format!(
                    "building {}: same address as building {}",
                    b.id, buildings[other as usize].building.id
                )),
                Err(other) => Err(format!("building {}: {other}", b.id)),
            }
        });
        match placed {
            Ok((cooperator, sector)) => {
                buildings.push(RegistryBuilding::new(b, cooperator, sector));
            }
            Err(message) => problems.push(at(message)),
        }
    }
    buildings
}

/// A building's cooperator and sector, checked against the organisation and the geography: one of
/// the cooperator's sectors, a known commune of its territory, that commune's postcode.
fn place(
    b: &Building,
    model: &Model,
    address: &AddressIndex,
) -> Result<(CooperatorIdx, SectorIdx), String> {
    let coop = *model
        .cooperator_by_id
        .get(&b.cooperator_id)
        .ok_or_else(|| {
            format!(
                "building {}: unknown cooperator '{}'",
                b.id, b.cooperator_id
            )
        })?;
    let sector = match model.sector_by_id.get(&b.sector_id) {
        Some(&s) if model.sectors[s as usize].cooperator == coop => s,
        Some(_) => {
            return Err(format!(
                "building {}: sector '{}' is not a sector of {}",
                b.id, b.sector_id, b.cooperator_id
            ));
        }
        None => {
            return Err(format!(
                "building {}: unknown sector '{}'",
                b.id, b.sector_id
            ));
        }
    };
    let commune = address
        .current_commune(&b.insee_code)
        .ok_or_else(|| format!("building {}: unknown INSEE code '{}'", b.id, b.insee_code))?;
    if !address.postcode_belongs(&b.postcode, &b.insee_code) {
        return Err(format!(
            "building {}: postcode {} does not belong to commune {} ({})",
            b.id, b.postcode, b.insee_code, b.city
        ));
    }
    let territory = &model.cooperators[coop as usize].territory;
    if !territory
        .iter()
        .any(|t| address.current_commune(t) == Some(commune))
    {
        return Err(format!(
            "building {}: commune {} is outside the territory of {}",
            b.id, b.insee_code, b.cooperator_id
        ));
    }
    Ok((coop, sector))
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
        if !t.phone.bytes().any(|b| b.is_ascii_digit()) {
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
