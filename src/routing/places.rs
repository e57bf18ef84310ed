//! The places routing knows: communes and their intercommunal groupings (public geography), the
//! landlords' buildings and the tenants who live in them. Plain values: [`crate::registry`] reads
//! them from files, the address index and the router use them.

use serde::{Deserialize, Serialize};

/// What a commune is in the official geography: a current commune, or an older one merged into a
/// current one that callers still name.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum CommuneKind {
    Current,
    Delegated,
    Associated,
}

/// A commune of the reference data.
#[derive(Debug, Clone)]
pub struct Commune {
    /// INSEE code, e.g. `37261`.
    pub insee: String,
    pub name: String,
    pub department: String,
    pub kind: CommuneKind,
    /// Postcodes of a current commune; empty for delegated and associated ones.
    pub postcodes: Vec<String>,
    /// For a delegated or associated commune, the current commune it belongs to.
    pub chef_lieu: Option<String>,
    pub population: u32,
    /// INSEE codes this commune had before mergers.
    pub former_codes: Vec<String>,
}

/// An intercommunal grouping (EPCI) and its member communes.
#[derive(Debug, Clone)]
pub struct Epci {
    pub code: String,
    pub name: String,
    pub members: Vec<String>,
}

/// How a building is heated; collective heating failing is a building-wide incident.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Deserialize, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum Heating {
    Collective,
    Individual,
}

impl Heating {
    pub fn as_str(self) -> &'static str {
        match self {
            Heating::Collective => "collective",
            Heating::Individual => "individual",
        }
    }
}

/// A building of a landlord's registry.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Building {
    pub id: String,
    pub cooperator_id: String,
    pub sector_id: String,
    /// As written in the registry: `12`, `12 bis`, `7 A`.
    pub street_number: String,
    pub street_name: String,
    pub postcode: String,
    pub insee_code: String,
    pub city: String,
    pub dwellings: u32,
    pub has_lift: bool,
    pub heating: Heating,
}

/// A tenant of a landlord's registry: lets a known caller be located without an address.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Tenant {
    pub reference: String,
    pub phone: String,
    pub building_id: String,
}
