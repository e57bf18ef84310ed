//! The shape of the configuration files, as serde reads them. Ids that other entries refer to are
//! kept with their position in the file ([`Spanned`]) so that validation can name the line.

use serde::Deserialize;
use toml::Spanned;

use crate::routing::model::{TeamKind, TimeCondition};
use crate::routing::places::Heating;
use crate::routing::urgency::Urgency;

/// `callrouter.toml`: the platform, the cooperators and their teams, and where the other files are.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct MainFile {
    pub platform: PlatformFile,
    pub files: FilesFile,
    #[serde(default)]
    pub cooperators: Vec<CooperatorFile>,
    #[serde(default)]
    pub teams: Vec<TeamFile>,
}

/// Paths of the other files, relative to the directory of `callrouter.toml`.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct FilesFile {
    pub issue_types: String,
    pub rules: String,
    pub communes: String,
    pub epci: String,
    pub buildings: String,
    pub tenants: String,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct PlatformFile {
    pub name: String,
    #[serde(default = "default_timezone")]
    pub timezone: Spanned<String>,
    pub hours: Spanned<Vec<String>>,
    pub on_call: Spanned<String>,
    pub triage_team: Spanned<String>,
}

fn default_timezone() -> Spanned<String> {
    Spanned::new(0..0, "Europe/Paris".to_owned())
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct CooperatorFile {
    pub id: Spanned<String>,
    pub name: String,
    pub short_code: Spanned<String>,
    pub hours: Spanned<Vec<String>>,
    pub on_call: Spanned<String>,
    pub default_team: Spanned<String>,
    pub territory: TerritoryFile,
    #[serde(default)]
    pub sectors: Vec<SectorFile>,
}

/// The communes a cooperator serves: whole intercommunal groupings and single communes.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct TerritoryFile {
    #[serde(default)]
    pub epci: Vec<Spanned<String>>,
    #[serde(default)]
    pub communes: Vec<Spanned<String>>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct SectorFile {
    pub id: Spanned<String>,
    pub name: String,
    #[serde(default)]
    pub communes: Vec<Spanned<String>>,
    /// This sector covers the cooperator's communes that no other sector lists.
    #[serde(default)]
    pub rest: bool,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct TeamFile {
    pub id: Spanned<String>,
    pub name: String,
    pub kind: TeamKind,
    pub cooperator: Option<Spanned<String>>,
    pub sector: Option<Spanned<String>>,
    #[serde(default)]
    pub always_staffed: bool,
}

/// `issue-types.toml`: the taxonomy.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct IssueTypesFile {
    pub issue_types: Vec<IssueTypeFile>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct IssueTypeFile {
    pub code: Spanned<String>,
    pub label: String,
    pub urgency: Urgency,
    /// Building-wide issues name their incident group (`lift`, `heating`, `door_entry`, `roof`).
    pub incident: Option<String>,
    #[serde(default)]
    pub collective_heating_only: bool,
}

/// `rules.toml`: the ordered routing rules.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RulesFile {
    pub rules: Vec<RuleFile>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RuleFile {
    pub id: Spanned<String>,
    pub description: String,
    // Conditions.
    pub cooperators: Option<Vec<Spanned<String>>>,
    pub sectors: Option<Vec<Spanned<String>>>,
    pub issue: Option<Vec<Spanned<String>>>,
    pub urgency: Option<Vec<Urgency>>,
    pub time: Option<TimeCondition>,
    pub has_lift: Option<bool>,
    pub heating: Option<Heating>,
    // Outcome: at most one target, and/or an urgency raise.
    pub team: Option<Spanned<String>>,
    pub team_of: Option<TeamKind>,
    #[serde(default)]
    pub on_call: bool,
    pub raise_urgency: Option<Urgency>,
}
