//! Deterministic generator of the demo building and tenant registries.
//!
//! Street-level addresses of the landlords' buildings are not public, so the demo registry is
//! generated on the cooperators' real territories (communes and postcodes from the reference data)
//! with realistic French street names. The same seed and scale always give the same files, byte for
//! byte: the generator uses its own small PRNG (SplitMix64) and iterates in a fixed order.
//!
//! `scale` multiplies the number of buildings (1: about 2,000 buildings and 30,000 dwellings) to
//! make registries ten or a hundred times larger for benchmarks. Tenant phone numbers come from the
//! ranges the French regulator reserves for fiction; there are 60,000 of them, so registries larger
//! than that reuse numbers (a reused number locates no one, as in life).

use std::collections::BTreeMap;
use std::path::Path;

use crate::config::MainConfig;
use crate::config::files::CooperatorFile;
use crate::diagnostics::{ConfigError, Problem};
use crate::registry::{self, BUILDING_COLUMNS, TENANT_COLUMNS};
use crate::routing::places::{Commune, CommuneKind};

/// Buildings per cooperator at scale 1.
const BUILDINGS_PER_COOPERATOR: usize = 340;

/// SplitMix64: small, fast and fully specified, so output never changes with a library version.
pub struct Rng(u64);

impl Rng {
    pub fn new(seed: u64) -> Rng {
        Rng(seed)
    }

    pub fn next_u64(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(0x9E37_79B9_7F4A_7C15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
        z ^ (z >> 31)
    }

    /// A number in `0..n` (`n > 0`).
    pub fn below(&mut self, n: usize) -> usize {
        (self.next_u64() % n as u64) as usize
    }

    /// True with probability `percent` / 100.
    pub fn chance(&mut self, percent: u64) -> bool {
        self.next_u64() % 100 < percent
    }

    pub fn pick<'a, T>(&mut self, items: &'a [T]) -> &'a T {
        &items[self.below(items.len())]
    }
}

/// Names of people streets are named after, as official street names write them.
const PEOPLE: &[&str] = &[
    "Victor-Hugo",
    "Jean-Jaurès",
    "Émile-Zola",
    "Anatole-France",
    "Louis-Pasteur",
    "Jules-Ferry",
    "Georges-Clemenceau",
    "Léon-Gambetta",
    "Jean-Moulin",
    "Pierre-et-Marie-Curie",
    "Paul-Bert",
    "Aristide-Briand",
    "Jean-Macé",
    "Ernest-Renan",
    "Jeanne-d'Arc",
    "Anne-de-Bretagne",
    "Théodore-Botrel",
    "Anatole-Le-Braz",
    "Louise-Michel",
    "Simone-Veil",
    "Olympe-de-Gouges",
    "Jacques-Prévert",
    "Paul-Éluard",
    "Louis-Aragon",
    "Max-Jacob",
    "Camille-Claudel",
    "Berthe-Morisot",
    "Gustave-Eiffel",
    "Henri-Barbusse",
    "Lazare-Carnot",
    "Jean-Monnet",
    "Robert-Schuman",
    "René-Cassin",
    "Voltaire",
    "Molière",
    "Rabelais",
    "Ronsard",
    "Honoré-de-Balzac",
    "René-Descartes",
    "Surcouf",
    "Duguay-Trouin",
    "Bertrand-Du-Guesclin",
    "Antoine-de-Saint-Exupéry",
    "Alexandre-Dumas",
    "George-Sand",
    "Colette",
    "Albert-Camus",
    "Frédéric-Chopin",
    "Hector-Berlioz",
    "Claude-Debussy",
    "Maurice-Ravel",
    "Édith-Piaf",
    "Jean-Baptiste-Lully",
    "François-Rabelais",
    "Pierre-Loti",
    "Jules-Verne",
    "Chateaubriand",
    "Ambroise-Paré",
    "Auguste-Renoir",
    "Paul-Cézanne",
];

/// Names that take an article or a title: "du Général-de-Gaulle", "de l'Église".
const TITLED: &[&str] = &[
    "du Général-de-Gaulle",
    "du Général-Leclerc",
    "du Maréchal-Foch",
    "du Maréchal-Joffre",
    "du Docteur-Schweitzer",
    "du Président-Wilson",
    "du Commandant-Charcot",
    "du Capitaine-Dreyfus",
    "de la Libération",
    "de la République",
    "de la Paix",
    "de l'Église",
    "de la Gare",
    "de la Mairie",
    "des Écoles",
    "du Stade",
    "du Moulin",
    "de l'Abbaye",
    "du Château",
    "des Lilas",
    "des Roses",
    "des Tilleuls",
    "des Châtaigniers",
    "des Peupliers",
    "des Chênes",
    "des Mimosas",
    "des Hortensias",
    "des Ajoncs",
    "des Genêts",
    "de la Fontaine",
    "du Port",
    "de la Côte",
    "des Acacias",
    "de Verdun",
    "du 8-Mai-1945",
    "du 11-Novembre",
    "du 19-Mars-1962",
    "de Bretagne",
    "du Maine",
    "de Touraine",
    "de l'Abbé-Pierre",
    "des Bruyères",
    "des Cerisiers",
    "du Bocage",
    "de la Vallée",
    "des Coquelicots",
    "de l'Étang",
    "du Calvaire",
    "des Glycines",
    "des Vergers",
    "du Lavoir",
    "de la Forge",
    "des Camélias",
    "de l'Hôpital",
    "du Marché",
    "des Jardins",
];

/// Saints, written with the hyphen of official names.
const SAINTS: &[&str] = &[
    "Saint-Michel",
    "Saint-Martin",
    "Sainte-Anne",
    "Saint-Yves",
    "Sainte-Thérèse",
    "Notre-Dame",
    "Saint-Nicolas",
    "Sainte-Catherine",
    "Saint-Pierre",
    "Saint-Exupère",
    "Saint-Gilles",
    "Sainte-Barbe",
    "Saint-Hélier",
    "Saint-Éloi",
    "Saint-Guénolé",
];

/// Street types and their weights; `Route` is only used with a destination ("Route de Laval").
const STREET_TYPES: &[(&str, u64)] = &[
    ("Rue", 52),
    ("Avenue", 8),
    ("Boulevard", 5),
    ("Place", 4),
    ("Impasse", 8),
    ("Allée", 7),
    ("Chemin", 5),
    ("Route", 4),
    ("Faubourg", 1),
    ("Square", 2),
    ("Quai", 2),
    ("Résidence", 2),
];

/// Fiction ranges of French numbers (ARCEP), 10,000 numbers each.
const FICTION_RANGES: &[&str] = &[
    "+3319900", "+3326191", "+3335301", "+3346571", "+3353649", "+3363998",
];

fn weighted_type(rng: &mut Rng) -> &'static str {
    let total: u64 = STREET_TYPES.iter().map(|t| t.1).sum();
    let mut roll = rng.next_u64() % total;
    for &(name, weight) in STREET_TYPES {
        if roll < weight {
            return name;
        }
        roll -= weight;
    }
    "Rue"
}

/// "de Laval", "d'Auray": a destination for a route or a street.
fn toward(name: &str) -> String {
    let first = name.chars().next().unwrap_or('x');
    let vowel = matches!(
        first.to_ascii_lowercase(),
        'a' | 'e' | 'i' | 'o' | 'u' | 'y' | 'h' | 'é' | 'è' | 'î' | 'ô'
    ) || first == 'É';
    if let Some(rest) = name.strip_prefix("Le ") {
        format!("du {rest}")
    } else if let Some(rest) = name.strip_prefix("Les ") {
        format!("des {rest}")
    } else if vowel {
        format!("d'{name}")
    } else {
        format!("de {name}")
    }
}

fn street_name(rng: &mut Rng, destinations: &[&Commune], here: &Commune) -> String {
    let street_type = weighted_type(rng);
    if street_type == "Route" || rng.chance(6) {
        let place = rng.pick(destinations);
        if place.insee != here.insee {
            return format!("{street_type} {}", toward(&place.name));
        }
    }
    let roll = rng.below(100);
    let name = if roll < 45 {
        rng.pick(PEOPLE).to_string()
    } else if roll < 85 {
        rng.pick(TITLED).to_string()
    } else {
        rng.pick(SAINTS).to_string()
    };
    format!("{street_type} {name}")
}

struct GeneratedBuilding {
    id: String,
    cooperator: String,
    sector: String,
    number: String,
    street: String,
    postcode: String,
    insee: String,
    city: String,
    dwellings: u32,
    has_lift: bool,
    collective: bool,
}

/// A street of a commune, shared by every cooperator that has buildings there.
struct Street {
    name: String,
    postcode: String,
    used_numbers: Vec<String>,
}

/// Counts of a generated registry.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Generated {
    pub buildings: usize,
    pub dwellings: u64,
    pub tenants: usize,
}

/// Generates `buildings.csv` and `tenants.csv` into `out` for the deployment at `config_path`.
pub fn generate(
    config_path: &Path,
    seed: u64,
    scale: usize,
    out: &Path,
) -> Result<Generated, ConfigError> {
    let main = MainConfig::read(config_path)?;
    let communes = registry::load_communes(&main.path(&main.file.files.communes))?;
    let epci = registry::load_epci(&main.path(&main.file.files.epci))?;
    let territories = main.territories(&communes, &epci)?;
    let by_code: BTreeMap<&str, &Commune> =
        communes.iter().map(|c| (c.insee.as_str(), c)).collect();
    let mut rng = Rng::new(seed);
    let scale = scale.max(1);

    let mut streets: BTreeMap<String, Vec<Street>> = BTreeMap::new();
    let mut buildings = Vec::new();
    for (coop, (coop_id, territory)) in main.file.cooperators.iter().zip(&territories) {
        let places: Vec<&Commune> = territory
            .iter()
            .filter_map(|code| by_code.get(code.as_str()).copied())
            .filter(|c| c.kind == CommuneKind::Current && !c.postcodes.is_empty())
            .collect();
        let listed: Vec<&str> = coop
            .territory
            .communes
            .iter()
            .map(|c| c.get_ref().as_str())
            .collect();
        let weights: Vec<f64> = places
            .iter()
            .map(|c| (f64::from(c.population.max(200))).powf(0.85))
            .collect();
        let total_weight: f64 = weights.iter().sum();
        let target = BUILDINGS_PER_COOPERATOR * scale;
        let mut seq = 0usize;
        for (place, weight) in places.iter().zip(&weights) {
            let mut count = (target as f64 * weight / total_weight).round() as usize;
            if listed.contains(&place.insee.as_str()) {
                // Communes named one by one (shared with another cooperator) always hold buildings.
                count = count.max(8 * scale);
            }
            if count == 0 {
                continue;
            }
            let sector = sector_of(coop, place).ok_or_else(|| {
                Problem::new(
                    &main.source.path,
                    None,
                    format!("{coop_id} has no rest sector"),
                )
            })?;
            let commune_streets = streets.entry(place.insee.clone()).or_default();
            // A commune shared with another cooperator reuses its streets and adds fewer.
            let wanted = if commune_streets.is_empty() {
                count.div_ceil(3)
            } else {
                count.div_ceil(6)
            };
            add_streets(&mut rng, commune_streets, wanted, &places, place);
            for _ in 0..count {
                let s = rng.below(commune_streets.len());
                let street = &mut commune_streets[s];
                let number = new_number(&mut rng, street);
                seq += 1;
                let (dwellings, has_lift, collective) = building_shape(&mut rng);
                buildings.push(GeneratedBuilding {
                    id: format!("{}-{seq:05}", coop.short_code.get_ref()),
                    cooperator: coop_id.clone(),
                    sector: sector.clone(),
                    number,
                    street: street.name.clone(),
                    postcode: street.postcode.clone(),
                    insee: place.insee.clone(),
                    city: place.name.clone(),
                    dwellings,
                    has_lift,
                    collective,
                });
            }
        }
    }
    write_files(out, &buildings)
}

/// The sector of a cooperator that covers a commune: the one listing it, else the `rest` sector.
fn sector_of(coop: &CooperatorFile, place: &Commune) -> Option<String> {
    coop.sectors
        .iter()
        .find(|s| s.communes.iter().any(|c| c.get_ref() == &place.insee))
        .or_else(|| coop.sectors.iter().find(|s| s.rest))
        .map(|s| s.id.get_ref().clone())
}

/// Adds `wanted` new streets to a commune (fewer if names run out), each with one of its postcodes.
fn add_streets(
    rng: &mut Rng,
    streets: &mut Vec<Street>,
    wanted: usize,
    places: &[&Commune],
    place: &Commune,
) {
    let mut attempts = 0;
    let mut added = 0;
    while added < wanted && attempts < 40 * wanted {
        attempts += 1;
        let name = street_name(rng, places, place);
        if streets.iter().any(|s| s.name == name) {
            continue;
        }
        let postcode = rng.pick(&place.postcodes).clone();
        streets.push(Street {
            name,
            postcode,
            used_numbers: Vec::new(),
        });
        added += 1;
    }
}

/// A house number not yet used on the street (`12`, `12 bis`, `7 A`), now used.
fn new_number(rng: &mut Rng, street: &mut Street) -> String {
    let number = loop {
        let base = 1 + rng.below(40 + 6 * street.used_numbers.len());
        let suffix = match rng.below(100) {
            0..=6 => " bis",
            7..=8 => " ter",
            9 => " A",
            _ => "",
        };
        let candidate = format!("{base}{suffix}");
        if !street.used_numbers.contains(&candidate) {
            break candidate;
        }
    };
    street.used_numbers.push(number.clone());
    number
}

/// A building's dwellings, lift and heating: large buildings have lifts and, more often,
/// collective heating.
fn building_shape(rng: &mut Rng) -> (u32, bool, bool) {
    let dwellings = match rng.below(100) {
        0..=44 => 3 + rng.below(6),
        45..=87 => 9 + rng.below(16),
        _ => 25 + rng.below(36),
    } as u32;
    let has_lift = dwellings >= 25 || (dwellings >= 12 && rng.chance(40));
    let collective = rng.chance(if dwellings >= 12 { 55 } else { 15 });
    (dwellings, has_lift, collective)
}

fn write_files(out: &Path, buildings: &[GeneratedBuilding]) -> Result<Generated, ConfigError> {
    std::fs::create_dir_all(out)
        .map_err(|e| Problem::new(out, None, format!("cannot create directory: {e}")))?;
    let buildings_path = out.join("buildings.csv");
    let tenants_path = out.join("tenants.csv");
    let io = |path: &Path| {
        let path = path.to_path_buf();
        move |e: csv::Error| Problem::new(&path, None, format!("cannot write: {e}"))
    };
    let mut writer = csv::Writer::from_path(&buildings_path).map_err(io(&buildings_path))?;
    writer
        .write_record(BUILDING_COLUMNS)
        .map_err(io(&buildings_path))?;
    let mut tenants = csv::Writer::from_path(&tenants_path).map_err(io(&tenants_path))?;
    tenants
        .write_record(TENANT_COLUMNS)
        .map_err(io(&tenants_path))?;
    let mut tenant_seq = 0usize;
    let mut dwellings = 0u64;
    for b in buildings {
        let dwelling_count = b.dwellings.to_string();
        writer
            .write_record([
                b.id.as_str(),
                &b.cooperator,
                &b.sector,
                &b.number,
                &b.street,
                &b.postcode,
                &b.insee,
                &b.city,
                &dwelling_count,
                if b.has_lift { "true" } else { "false" },
                if b.collective {
                    "collective"
                } else {
                    "individual"
                },
            ])
            .map_err(io(&buildings_path))?;
        dwellings += u64::from(b.dwellings);
        let prefix = b.id.split('-').next().unwrap_or("XX");
        for _ in 0..b.dwellings {
            let range = FICTION_RANGES[tenant_seq % FICTION_RANGES.len()];
            let phone = format!("{range}{:04}", (tenant_seq / FICTION_RANGES.len()) % 10_000);
            let reference = format!("{prefix}-L{tenant_seq:07}");
            tenants
                .write_record([reference.as_str(), &phone, &b.id])
                .map_err(io(&tenants_path))?;
            tenant_seq += 1;
        }
    }
    writer
        .flush()
        .map_err(|e| Problem::new(&buildings_path, None, e.to_string()))?;
    tenants
        .flush()
        .map_err(|e| Problem::new(&tenants_path, None, e.to_string()))?;
    Ok(Generated {
        buildings: buildings.len(),
        dwellings,
        tenants: tenant_seq,
    })
}
