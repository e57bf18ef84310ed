//! Loading the registries routing reads: communes and intercommunal groupings (public reference
//! data, JSON), buildings and tenants (each landlord's own data, shipped as CSV), into the core's
//! [`places`](crate::routing::places) types.
//!
//! Loading checks each row and reports malformed ones with their file and line; it never guesses a
//! value a row does not hold.

use std::path::Path;

use serde::Deserialize;

use crate::diagnostics::Problem;
use crate::routing::places::{Building, Commune, CommuneKind, Epci, Heating, Tenant};

#[derive(Deserialize)]
struct CommuneRow {
    code: String,
    nom: String,
    #[serde(rename = "type")]
    kind: String,
    departement: String,
    #[serde(default, rename = "codesPostaux")]
    postcodes: Vec<String>,
    #[serde(default, rename = "chefLieu")]
    chef_lieu: Option<String>,
    #[serde(default)]
    population: Option<u32>,
    #[serde(default, rename = "anciensCodes")]
    former_codes: Vec<String>,
}

/// Loads `communes.json` (INSEE geography as published by `@etalab/decoupage-administratif`).
pub fn load_communes(path: &Path) -> Result<Vec<Commune>, Problem> {
    let rows: Vec<CommuneRow> = read_json(path)?;
    rows.into_iter()
        .map(|row| {
            let kind = match row.kind.as_str() {
                "commune-actuelle" => CommuneKind::Current,
                "commune-deleguee" => CommuneKind::Delegated,
                "commune-associee" => CommuneKind::Associated,
                other => {
                    return Err(Problem::new(
                        path,
                        None,
                        format!("commune {}: unknown type '{other}'", row.code),
                    ));
                }
            };
            if kind != CommuneKind::Current && row.chef_lieu.is_none() {
                return Err(Problem::new(
                    path,
                    None,
                    format!("commune {}: a merged commune needs its chefLieu", row.code),
                ));
            }
            Ok(Commune {
                insee: row.code,
                name: row.nom,
                department: row.departement,
                kind,
                postcodes: row.postcodes,
                chef_lieu: row.chef_lieu,
                population: row.population.unwrap_or(0),
                former_codes: row.former_codes,
            })
        })
        .collect()
}

#[derive(Deserialize)]
struct EpciRow {
    code: String,
    nom: String,
    membres: Vec<String>,
}

/// Loads `epci.json`.
pub fn load_epci(path: &Path) -> Result<Vec<Epci>, Problem> {
    let rows: Vec<EpciRow> = read_json(path)?;
    Ok(rows
        .into_iter()
        .map(|row| Epci {
            code: row.code,
            name: row.nom,
            members: row.membres,
        })
        .collect())
}

fn read_json<T: serde::de::DeserializeOwned>(path: &Path) -> Result<T, Problem> {
    let text = std::fs::read_to_string(path)
        .map_err(|e| Problem::new(path, None, format!("cannot read: {e}")))?;
    serde_json::from_str(&text).map_err(|e| Problem::new(path, Some(e.line()), e.to_string()))
}

/// The columns `buildings.csv` starts with, in this order.
pub const BUILDING_COLUMNS: [&str; 11] = [
    "building_id",
    "cooperator_id",
    "sector_id",
    "street_number",
    "street_name",
    "postcode",
    "insee_code",
    "city",
    "dwellings",
    "has_lift",
    "heating",
];

/// The columns `tenants.csv` starts with, in this order.
pub const TENANT_COLUMNS: [&str; 3] = ["tenant_reference", "phone", "building_id"];

/// A registry row with the line it was read from, for error messages about it.
#[derive(Debug, Clone)]
pub struct Located<T> {
    pub line: usize,
    pub value: T,
}

/// Loads `buildings.csv`; every malformed row is reported with its line.
pub fn load_buildings(path: &Path) -> Result<Vec<Located<Building>>, Vec<Problem>> {
    read_csv(path, &BUILDING_COLUMNS, |field| {
        Ok(Building {
            id: field.text(0)?,
            cooperator_id: field.text(1)?,
            sector_id: field.text(2)?,
            street_number: field.text(3)?,
            street_name: field.text(4)?,
            postcode: field.code(5)?,
            insee_code: field.code(6)?,
            city: field.text(7)?,
            dwellings: field.count(8)?,
            has_lift: field.boolean(9)?,
            heating: match field.raw(10) {
                "collective" => Heating::Collective,
                "individual" => Heating::Individual,
                other => {
                    return Err(format!(
                        "heating must be 'collective' or 'individual', not '{other}'"
                    ));
                }
            },
        })
    })
}

/// Loads `tenants.csv`; every malformed row is reported with its line.
pub fn load_tenants(path: &Path) -> Result<Vec<Located<Tenant>>, Vec<Problem>> {
    read_csv(path, &TENANT_COLUMNS, |field| {
        Ok(Tenant {
            reference: field.text(0)?,
            phone: field.text(1)?,
            building_id: field.text(2)?,
        })
    })
}

/// The fields of one CSV row, read with messages that name the column.
struct Fields<'a> {
    record: &'a csv::StringRecord,
    columns: &'a [&'a str],
}

impl Fields<'_> {
    fn raw(&self, i: usize) -> &str {
        self.record.get(i).unwrap_or("").trim()
    }

    fn text(&self, i: usize) -> Result<String, String> {
        let value = self.raw(i);
        if value.is_empty() {
            return Err(format!("{} is empty", self.columns[i]));
        }
        Ok(value.to_owned())
    }

    fn code(&self, i: usize) -> Result<String, String> {
        let value = self.raw(i);
        if value.len() != 5 || !value.bytes().all(|b| b.is_ascii_alphanumeric()) {
            return Err(format!(
                "{} must be 5 characters, not '{value}'",
                self.columns[i]
            ));
        }
        Ok(value.to_owned())
    }

    fn count(&self, i: usize) -> Result<u32, String> {
        let value = self.raw(i);
        match value.parse::<u32>() {
            Ok(n) if n > 0 && n < 10_000 => Ok(n),
            _ => Err(format!(
                "{} must be a whole number from 1 to 9999, not '{value}'",
                self.columns[i]
            )),
        }
    }

    fn boolean(&self, i: usize) -> Result<bool, String> {
        match self.raw(i) {
            "true" => Ok(true),
            "false" => Ok(false),
            other => Err(format!(
                "{} must be 'true' or 'false', not '{other}'",
                self.columns[i]
            )),
        }
    }
}

fn read_csv<T>(
    path: &Path,
    columns: &[&str],
    parse: impl Fn(&Fields<'_>) -> Result<T, String>,
) -> Result<Vec<Located<T>>, Vec<Problem>> {
    let mut reader = csv::ReaderBuilder::new()
        .has_headers(true)
        .flexible(true)
        .from_path(path)
        .map_err(|e| vec![Problem::new(path, None, format!("cannot read: {e}"))])?;
    let headers = reader
        .headers()
        .map_err(|e| {
            vec![Problem::new(
                path,
                Some(1),
                format!("cannot read header: {e}"),
            )]
        })?
        .clone();
    let found: Vec<&str> = headers.iter().take(columns.len()).collect();
    if found != columns {
        return Err(vec![Problem::new(
            path,
            Some(1),
            format!(
                "header must start with {}, found {}",
                columns.join(","),
                headers.iter().collect::<Vec<_>>().join(",")
            ),
        )]);
    }
    let mut rows = Vec::new();
    let mut problems = Vec::new();
    let mut record = csv::StringRecord::new();
    loop {
        match reader.read_record(&mut record) {
            Ok(false) => break,
            Ok(true) => {
                let line = record.position().map_or(0, |p| p.line() as usize);
                if record.len() < columns.len() {
                    problems.push(Problem::new(
                        path,
                        Some(line),
                        format!(
                            "row has {} fields, expected at least {}",
                            record.len(),
                            columns.len()
                        ),
                    ));
                    continue;
                }
                let fields = Fields {
                    record: &record,
                    columns,
                };
                match parse(&fields) {
                    Ok(value) => rows.push(Located { line, value }),
                    Err(message) => problems.push(Problem::new(path, Some(line), message)),
                }
            }
            Err(e) => {
                let line = e.position().map(|p| p.line() as usize);
                problems.push(Problem::new(path, line, format!("malformed row: {e}")));
                if !matches!(e.kind(), csv::ErrorKind::Utf8 { .. }) {
                    break;
                }
            }
        }
    }
    if problems.is_empty() {
        Ok(rows)
    } else {
        Err(problems)
    }
}
