//! Reading Redis replies: the scripts' refusals become typed [`StoreError`]s, ticket hashes become
//! [`Ticket`]s, feed entries become [`TicketEvent`]s. A reply of the wrong shape is `Corrupt`, never
//! a panic.

use redis::{RedisError, Value};
use rustc_hash::FxHashMap;

use crate::routing::partition::Partition;
use crate::routing::urgency::Urgency;
use crate::store::lifecycle::{Action, EventKind, Refusal, TicketState};
use crate::store::{
    DEFAULT_CLAIM_INTERVAL_MS, Millis, QueuePosition, StoreError, Ticket, TicketEvent,
    estimate_wait_seconds,
};

/// A Redis error as a store error: a script's refusal by its code, a timeout, else unavailable.
pub fn store_error(e: RedisError, ticket_id: &str) -> StoreError {
    let refusal = e.code().and_then(Refusal::parse);
    match refusal {
        Some(Refusal::NotFound) => StoreError::NotFound(ticket_id.to_owned()),
        Some(Refusal::NotHolder) => StoreError::NotHolder(ticket_id.to_owned()),
        Some(Refusal::WrongState) => {
            // `CR_WRONG_STATE <state> <action>`
            let detail = e.detail().unwrap_or_default();
            let mut words = detail.split_whitespace();
            match (
                words.next().and_then(TicketState::parse),
                words.next().and_then(Action::parse),
            ) {
                (Some(state), Some(action)) => StoreError::WrongState {
                    ticket_id: ticket_id.to_owned(),
                    state,
                    action,
                },
                _ => StoreError::Corrupt(format!("refusal '{detail}'")),
            }
        }
        Some(Refusal::TooLate) => StoreError::TooLate,
        None if e.is_timeout() => StoreError::Timeout,
        None => StoreError::Unavailable(e.to_string()),
    }
}

pub fn array(value: &Value) -> Result<&[Value], StoreError> {
    match value {
        Value::Array(items) | Value::Set(items) => Ok(items),
        Value::Nil => Ok(&[]),
        other => Err(StoreError::Corrupt(format!(
            "expected an array, got {other:?}"
        ))),
    }
}

pub fn text(value: &Value) -> Result<String, StoreError> {
    match value {
        Value::Int(i) => Ok(i.to_string()),
        Value::Okay => Ok("OK".to_owned()),
        other => text_in(other).map(str::to_owned),
    }
}

pub fn int(value: &Value) -> Result<i64, StoreError> {
    match value {
        Value::Int(i) => Ok(*i),
        other => text(other)?
            .parse()
            .map_err(|_| StoreError::Corrupt(format!("expected an integer, got {other:?}"))),
    }
}

pub fn redis_time(value: &Value) -> Result<Millis, StoreError> {
    let parts = array(value)?;
    let [secs, micros] = parts else {
        return Err(StoreError::Corrupt("TIME reply".to_owned()));
    };
    Ok(int(secs)? * 1000 + int(micros)? / 1000)
}

/// A hash's fields and values (or a feed entry's), borrowed from the reply.
pub fn field_map(value: &Value) -> Result<FxHashMap<&str, &str>, StoreError> {
    let mut fields = FxHashMap::default();
    for_each_pair(value, |name, value| {
        fields.insert(text_in(name)?, text_in(value)?);
        Ok(())
    })?;
    Ok(fields)
}

/// A ticket's hash (HGETALL's reply, or its fields read by name) as its fields by name, the packed
/// ones spread ([`PACKED`]): a ticket of either layout reads the same.
pub fn ticket_map(value: &Value) -> Result<FxHashMap<&str, &str>, StoreError> {
    let mut fields = FxHashMap::default();
    for_each_pair(value, |name, value| {
        insert_ticket_field(&mut fields, text_in(name)?, value)
    })?;
    Ok(fields)
}

/// Calls `f` with each field and value of a hash's reply: a map (RESP3), or a flat list of fields
/// and values.
fn for_each_pair<'a>(
    value: &'a Value,
    mut f: impl FnMut(&'a Value, &'a Value) -> Result<(), StoreError>,
) -> Result<(), StoreError> {
    match value {
        Value::Map(pairs) => pairs.iter().try_for_each(|(name, value)| f(name, value)),
        other => array(other)?.chunks(2).try_for_each(|pair| match pair {
            [name, value] => f(name, value),
            _ => Err(StoreError::Corrupt("odd field list".to_owned())),
        }),
    }
}

/// Adds a field of a ticket's hash to `fields`: a packed one as the fields it holds, an absent one
/// (nil) not at all.
pub fn insert_ticket_field<'a>(
    fields: &mut FxHashMap<&'a str, &'a str>,
    name: &'a str,
    value: &'a Value,
) -> Result<(), StoreError> {
    if matches!(value, Value::Nil) {
        return Ok(());
    }
    let Some((_, names)) = PACKED.iter().find(|(packed, _)| *packed == name) else {
        fields.insert(name, text_in(value)?);
        return Ok(());
    };
    let Value::BulkString(bytes) = value else {
        return Err(StoreError::Corrupt(format!("ticket field {name}")));
    };
    spread(fields, names, bytes, name)
}

/// The values of `packed`, joined by the byte 255, into `fields` under `names`: one value each.
/// The separators are found by `memchr`, several bytes at a time: the last value, a ticket's
/// details, is most of the bytes.
fn spread<'a>(
    fields: &mut FxHashMap<&'a str, &'a str>,
    names: &[&'a str],
    packed: &'a [u8],
    what: &str,
) -> Result<(), StoreError> {
    let mut ends = memchr::memchr_iter(0xFF, packed).chain([packed.len()]);
    let mut start = 0;
    for name in names {
        let end = ends
            .next()
            .ok_or_else(|| StoreError::Corrupt(format!("{what} without {name}")))?;
        fields.insert(name, utf8(&packed[start..end])?);
        start = end + 1;
    }
    if ends.next().is_some() {
        return Err(StoreError::Corrupt(format!(
            "{what} of more than {} values",
            names.len()
        )));
    }
    Ok(())
}

/// A ticket's hash as the scripts write it, from its fields by name: each field that changes as it
/// is given, the fields that never change packed ([`PACKED`]; one not given empty).
pub fn packed_hash(given: &[(&str, String)]) -> Vec<(&'static str, Vec<u8>)> {
    let value = |name: &str| {
        given
            .iter()
            .find(|(n, _)| *n == name)
            .map(|(_, v)| v.as_bytes())
    };
    let mut hash: Vec<_> = CHANGING_FIELDS
        .iter()
        .filter_map(|name| value(name).map(|v| (*name, v.to_vec())))
        .collect();
    for (packed, names) in PACKED {
        let values: Vec<&[u8]> = names.iter().map(|n| value(n).unwrap_or_default()).collect();
        hash.push((packed, values.join(&0xFF)));
    }
    hash
}

/// The text a reply holds, borrowed: a hash's field or value, or a script's one-line answer.
pub fn text_in(value: &Value) -> Result<&str, StoreError> {
    match value {
        Value::BulkString(bytes) => utf8(bytes),
        Value::SimpleString(s) => Ok(s),
        other => Err(StoreError::Corrupt(format!("expected text, got {other:?}"))),
    }
}

/// Bytes of a reply as the text they hold.
fn utf8(bytes: &[u8]) -> Result<&str, StoreError> {
    std::str::from_utf8(bytes).map_err(|_| StoreError::Corrupt("non-UTF-8 text".to_owned()))
}

/// The fields of a ticket that change over its life, each a field of its own in the ticket's hash.
pub const CHANGING_FIELDS: [&str; 15] = [
    "state",
    "team_id",
    "urgency",
    "incident_calls",
    "agent_id",
    "lease_token",
    "lease_expires_at",
    "attempts",
    "enqueued_at",
    "claimed_at",
    "closed_at",
    "resolution",
    "escalated",
    "transferred_from",
    "moved_to",
];

/// What a desk shows of a ticket and never changes once it is created: written once, joined by
/// the byte 255 (which no UTF-8 text holds; an absent value empty), as the hash's `shown` field,
/// which a feed entry carries as it is. A ticket costs Redis per field it holds, and per field read.
pub const SHOWN_FIELDS: [&str; 7] = [
    "ticket_id",
    "cooperator_id",
    "issue_type",
    "building_id",
    "created_at",
    "sla_due_at",
    "address",
];

/// The rest of a ticket that never changes, joined likewise as the hash's `kept` field: the call,
/// the incident and the escalation team first, which scripts take from it (`kept_ids` in
/// `scripts/common.lua`).
pub const KEPT_FIELDS: [&str; 6] = [
    "call_id",
    "incident_id",
    "escalation_team",
    "partition",
    "created_in",
    "details",
];

/// The packed fields of a ticket's hash, each with the fields it holds. A ticket written before
/// tickets packed them holds each of those fields as its own, which readers take as well.
pub const PACKED: [(&str, &[&str]); 2] = [("shown", &SHOWN_FIELDS), ("kept", &KEPT_FIELDS)];

/// The fields the lifecycle scripts read a ticket by (`read_row` in `scripts/common.lua`): those
/// that change, then the packed ones.
pub const ROW_READ: [&str; 17] = joined(&[&CHANGING_FIELDS, &["shown", "kept"]]);

/// The values of a row, in order: the fields of [`ROW_READ`], the packed ones spread
/// ([`CHANGING_FIELDS`], [`SHOWN_FIELDS`], [`KEPT_FIELDS`]). A script answers a ticket as its row's
/// values joined by the byte 255.
pub const TICKET_FIELDS: [&str; 28] = joined(&[&CHANGING_FIELDS, &SHOWN_FIELDS, &KEPT_FIELDS]);

/// Lists of names one after another, as one array (of their whole length: else the build fails).
const fn joined<const N: usize>(lists: &[&[&'static str]]) -> [&'static str; N] {
    let mut out = [""; N];
    let (mut at, mut list) = (0, 0);
    while list < lists.len() {
        let mut i = 0;
        while i < lists[list].len() {
            out[at] = lists[list][i];
            at += 1;
            i += 1;
        }
        list += 1;
    }
    assert!(at == N, "the lists' length is not the array's");
    out
}

/// A ticket as a script answers it: its hash's fields and values as an array (HGETALL's reply),
/// or as a row, one value: the values of [`TICKET_FIELDS`] joined by the byte 255.
pub fn parse_ticket(value: &Value) -> Result<Ticket, StoreError> {
    match value {
        Value::BulkString(row) => ticket_from_fields(&row_fields(row)?),
        other => ticket_from_fields(&ticket_map(other)?),
    }
}

/// A claimed ticket, or none (nil) when the queues were empty.
pub fn parse_claimed(value: &Value) -> Result<Option<Ticket>, StoreError> {
    match value {
        Value::Nil => Ok(None),
        other => parse_ticket(other).map(Some),
    }
}

/// The fields of a ticket row: values joined by the byte 255, which no UTF-8 text holds, so any
/// value (an address, a resolution) reads back as it was written; an empty value is an absent field.
fn row_fields(row: &[u8]) -> Result<FxHashMap<&str, &str>, StoreError> {
    let mut fields = FxHashMap::with_capacity_and_hasher(TICKET_FIELDS.len(), Default::default());
    spread(&mut fields, &TICKET_FIELDS, row, "ticket row")?;
    Ok(fields)
}

pub fn parse_position(value: &Value) -> Result<Option<QueuePosition>, StoreError> {
    let items = array(value)?;
    let [position, interval] = items else {
        return Err(StoreError::Corrupt("position reply".to_owned()));
    };
    Ok(position_from(int(position)?, int(interval)?))
}

/// The place in the queue and the expected wait from a script's position (1 = next; 0 when not
/// queued) and the team's recent interval between claims in ms (negative when none yet).
pub fn position_from(position: i64, interval: i64) -> Option<QueuePosition> {
    if position <= 0 {
        return None;
    }
    let interval = if interval < 0 {
        DEFAULT_CLAIM_INTERVAL_MS
    } else {
        interval as f64
    };
    Some(QueuePosition {
        position: position as u64,
        estimated_wait_seconds: estimate_wait_seconds(position as u64, interval),
    })
}

pub fn ticket_from_fields(f: &FxHashMap<&str, &str>) -> Result<Ticket, StoreError> {
    let get = |name: &str| f.get(name).copied().unwrap_or_default();
    let opt = |name: &str| Some(get(name)).filter(|v| !v.is_empty()).map(str::to_owned);
    let num = |name: &str| get(name).parse::<i64>().ok();
    let ticket_id = get("ticket_id").to_owned();
    let state = TicketState::parse(get("state")).ok_or_else(|| {
        StoreError::Corrupt(format!("ticket {ticket_id} has state '{}'", get("state")))
    })?;
    let urgency = Urgency::from_rank(get("urgency")).ok_or_else(|| {
        StoreError::Corrupt(format!(
            "ticket {ticket_id} has urgency '{}'",
            get("urgency")
        ))
    })?;
    Ok(Ticket {
        call_id: get("call_id").to_owned(),
        partition: Partition::parse(get("partition")),
        state,
        cooperator_id: opt("cooperator_id"),
        team_id: get("team_id").to_owned(),
        urgency,
        issue_type: get("issue_type").to_owned(),
        building_id: opt("building_id"),
        address: opt("address"),
        incident_id: opt("incident_id"),
        incident_calls: num("incident_calls").unwrap_or(1) as u32,
        agent_id: opt("agent_id"),
        lease_token: num("lease_token").unwrap_or(0) as u64,
        lease_expires_at: num("lease_expires_at"),
        attempts: num("attempts").unwrap_or(0) as u32,
        created_at: num("created_at").unwrap_or(0),
        enqueued_at: num("enqueued_at").unwrap_or(0),
        sla_due_at: num("sla_due_at").unwrap_or(0),
        claimed_at: num("claimed_at"),
        closed_at: num("closed_at"),
        resolution: opt("resolution"),
        escalation_team: get("escalation_team").to_owned(),
        escalated: get("escalated") == "1",
        transferred_from: opt("transferred_from"),
        moved_to: opt("moved_to"),
        details: get("details").to_owned(),
        ticket_id,
    })
}

/// A ticket's history: the creation line, which the create script leaves to readers to make from the
/// ticket's `created_at` and `created_in` fields, then the lines written since: those of its list
/// (written before tickets had a log), then those of its `log` field. A ticket created before
/// those fields were written, or moved in from another partition, has its creation line in its
/// list or its log already (and no `created_in`, or an empty one).
pub fn history(
    created_at: Option<&str>,
    created_in: Option<&str>,
    listed: Vec<String>,
    log: Option<&str>,
) -> Result<Vec<String>, StoreError> {
    let logged = log_lines(log.unwrap_or_default())?;
    let mut lines = Vec::with_capacity(listed.len() + logged.len() + 1);
    if let (Some(at), Some(team)) = (created_at, created_in.filter(|team| !team.is_empty())) {
        lines.push(format!("{at} created in {team}"));
    }
    lines.extend(listed);
    lines.extend(logged);
    Ok(lines)
}

/// The lines of a ticket's log (its `log` field): each written `<its length in bytes>:<line>`, one
/// after another (`logged` in `scripts/common.lua`), so that a line may hold any text.
pub fn log_lines(log: &str) -> Result<Vec<String>, StoreError> {
    let corrupt = || StoreError::Corrupt("ticket log".to_owned());
    let mut lines = Vec::new();
    let mut rest = log;
    while !rest.is_empty() {
        let (length, after) = rest.split_once(':').ok_or_else(corrupt)?;
        let length: usize = length.parse().map_err(|_| corrupt())?;
        let line = after.get(..length).ok_or_else(corrupt)?;
        lines.push(line.to_owned());
        rest = &after[length..];
    }
    Ok(lines)
}

/// A ticket's log of `lines`, as the scripts write one (read by [`log_lines`]).
pub fn log_of(lines: &[String]) -> String {
    lines
        .iter()
        .map(|line| format!("{}:{line}", line.len()))
        .collect()
}

pub fn parse_events(entries: &Value) -> Result<Vec<TicketEvent>, StoreError> {
    array(entries)?
        .iter()
        .map(|entry| {
            let parts = array(entry)?;
            let [id, fields] = parts else {
                return Err(StoreError::Corrupt("stream entry".to_owned()));
            };
            let f = event_map(fields)?;
            let get = |name: &str| f.get(name).copied().unwrap_or_default();
            let corrupt =
                |what: &str| StoreError::Corrupt(format!("feed entry {what} '{}'", get(what)));
            Ok(TicketEvent {
                event_id: text(id)?,
                kind: EventKind::parse(get("kind")).ok_or_else(|| corrupt("kind"))?,
                ticket_id: get("ticket_id").to_owned(),
                team_id: get("team_id").to_owned(),
                state: TicketState::parse(get("state")).ok_or_else(|| corrupt("state"))?,
                urgency: Urgency::from_rank(get("urgency")).ok_or_else(|| corrupt("urgency"))?,
                agent_id: optional(get("agent_id")),
                at: get("at").parse().unwrap_or(0),
                cooperator_id: optional(get("cooperator_id")),
                issue_type: get("issue_type").to_owned(),
                building_id: optional(get("building_id")),
                address: optional(get("address")),
                incident_calls: get("incident_calls").parse().unwrap_or(1),
                created_at: get("created_at").parse().unwrap_or(0),
                sla_due_at: get("sla_due_at").parse().unwrap_or(0),
            })
        })
        .collect()
}

/// A feed entry's fields as the scripts write them into its one `entry` field, joined by the byte
/// 255: the transition, then what a desk shows of the ticket, the ticket's `shown` field as it is
/// ([`SHOWN_FIELDS`]).
const ENTRY_FIELDS: [&str; 14] = joined(&[
    &[
        "kind",
        "team_id",
        "at",
        "state",
        "urgency",
        "agent_id",
        "incident_calls",
    ],
    &SHOWN_FIELDS,
]);

/// A feed entry's fields, in the order older servers joined them, by the unit separator, into its
/// one `event` field (the address last: it may hold anything, the separator included).
const EVENT_FIELDS: [&str; 14] = [
    "kind",
    "ticket_id",
    "team_id",
    "at",
    "state",
    "urgency",
    "agent_id",
    "cooperator_id",
    "issue_type",
    "building_id",
    "incident_calls",
    "created_at",
    "sla_due_at",
    "address",
];

/// The fields of [`EVENT_FIELDS`] an entry written before the `event` field carried in its `desk`
/// field (with the transition's own four as named fields).
const DESK_FIELDS: &[&str] = EVENT_FIELDS.split_at(4).1;

/// A feed entry's fields by name, from the layout it was written in: one `entry` field, or (older
/// servers) one `event` field, a `desk` field beside the transition's named fields, or named
/// fields only.
fn event_map(value: &Value) -> Result<FxHashMap<&str, &str>, StoreError> {
    let entry = match value {
        Value::Array(items) => items
            .chunks(2)
            .find(|pair| matches!(pair, [Value::BulkString(name), _] if name == b"entry")),
        _ => None,
    };
    let Some([_, Value::BulkString(packed)]) = entry else {
        let mut fields = field_map(value)?;
        unpack_event(&mut fields);
        return Ok(fields);
    };
    let mut fields = FxHashMap::default();
    spread(&mut fields, &ENTRY_FIELDS, packed, "feed entry")?;
    Ok(fields)
}

/// Spreads an older entry's packed fields into named fields: `event` (every field), or, in entries
/// written before it, `desk`. Entries older still carry the named fields themselves and are left
/// as they are.
fn unpack_event(fields: &mut FxHashMap<&str, &str>) {
    let (packed, names) = match (fields.remove("event"), fields.remove("desk")) {
        (Some(event), _) => (event, &EVENT_FIELDS[..]),
        (None, Some(desk)) => (desk, DESK_FIELDS),
        (None, None) => return,
    };
    for (name, value) in names.iter().zip(packed.splitn(names.len(), '\u{1f}')) {
        fields.insert(name, value);
    }
}

/// A text that is absent when empty.
fn optional(text: &str) -> Option<String> {
    Some(text).filter(|t| !t.is_empty()).map(str::to_owned)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_history_starts_with_the_creation_line_made_from_the_ticket() {
        let written = vec!["1700000000500 claimed by a-1 lease 3".to_owned()];
        assert_eq!(
            history(
                Some("1700000000000"),
                Some("tl.tech"),
                written.clone(),
                None
            )
            .expect("read"),
            [
                "1700000000000 created in tl.tech",
                "1700000000500 claimed by a-1 lease 3"
            ]
        );
        // A ticket stored before created_in was written has its creation line in the list.
        assert_eq!(
            history(Some("1700000000000"), None, written.clone(), None).expect("read"),
            written
        );
        // A ticket's list (from before tickets had a log), then its log.
        let log = log_of(&["1700000000900 completed by a-1: fixed".to_owned()]);
        assert_eq!(
            history(Some("1700000000000"), Some("tl.tech"), written, Some(&log)).expect("read"),
            [
                "1700000000000 created in tl.tech",
                "1700000000500 claimed by a-1 lease 3",
                "1700000000900 completed by a-1: fixed"
            ]
        );
        assert!(matches!(
            history(None, None, Vec::new(), Some("9:short")),
            Err(StoreError::Corrupt(_))
        ));
    }

    #[test]
    fn a_log_keeps_any_line_as_written() {
        let lines = [
            "1700000000500 claimed by a-1 lease 3",
            "1700000000600 completed by a-1: fixed\nthe tap: 12:30",
            "1700000000700 é",
        ]
        .map(str::to_owned);
        let log = log_of(&lines);
        assert_eq!(log_lines(&log).expect("log"), lines);
        assert_eq!(log_lines("").expect("empty"), Vec::<String>::new());
        for bad in ["12:short", "x:1", "3", "1:é"] {
            assert!(
                matches!(log_lines(bad), Err(StoreError::Corrupt(_))),
                "{bad}"
            );
        }
    }

    /// A row reads as the ticket's field list does, whatever its values hold (the feed's
    /// separator, empty values); a row of another length, or not UTF-8 text, is corrupt.
    #[test]
    fn a_ticket_row_reads_as_its_field_list() {
        let pairs = [
            ("ticket_id", "tl-1"),
            ("call_id", "c-1"),
            ("state", "RESERVED"),
            ("team_id", "tl.tech"),
            ("urgency", "2"),
            ("address", "12 rue \u{1f} Nationale"),
            ("lease_expires_at", ""),
            ("agent_id", "ana"),
            ("lease_token", "7"),
            ("details", "{\"rule_id\":\"technical\"}"),
        ];
        let list = Value::Array(
            pairs
                .iter()
                .flat_map(|(k, v)| [k, v].map(|t| Value::BulkString(t.as_bytes().to_vec())))
                .collect(),
        );
        let value = |name: &str| {
            pairs
                .iter()
                .find(|(k, _)| *k == name)
                .map_or("", |(_, v)| *v)
        };
        let row = TICKET_FIELDS
            .iter()
            .map(|name| value(name).as_bytes())
            .collect::<Vec<_>>()
            .join(&0xFF);
        let from_list = parse_ticket(&list).expect("list");
        assert_eq!(
            parse_ticket(&Value::BulkString(row.clone())).expect("row"),
            from_list
        );
        assert_eq!(
            from_list.address.as_deref(),
            Some("12 rue \u{1f} Nationale")
        );
        assert_eq!(from_list.lease_expires_at, None);
        // Without its last value (the byte 255 and the details), or with one more.
        let last = row.iter().rposition(|b| *b == 0xFF).expect("separators");
        let short = row[..last].to_vec();
        let long = [row.as_slice(), b"x"].join(&0xFF);
        let invalid = [row.as_slice(), &[0xC3, 0x28]].concat();
        for bad in [short, long, invalid] {
            assert!(matches!(
                parse_ticket(&Value::BulkString(bad)),
                Err(StoreError::Corrupt(_))
            ));
        }
    }

    fn entry(id: &str, fields: &[(&str, &str)]) -> Value {
        let fields = fields
            .iter()
            .flat_map(|(k, v)| {
                [
                    Value::BulkString(k.as_bytes().to_vec()),
                    Value::BulkString(v.as_bytes().to_vec()),
                ]
            })
            .collect();
        Value::Array(vec![
            Value::BulkString(id.as_bytes().to_vec()),
            Value::Array(fields),
        ])
    }

    /// Entries of one `event` field, entries of a `desk` field and the transition's named fields,
    /// and entries of named fields only (as older servers wrote them) read the same; an address
    /// holding the separator keeps it.
    #[test]
    fn feed_entries_read_alike_packed_or_not() {
        let address = "12 rue Nationale \u{1f} 37000 Tours";
        let shown = [
            "RESERVED",
            "2",
            "agent-7",
            "tl",
            "technical.plumbing.leak",
            "TL-00012",
            "3",
            "1700000000000",
            "1700003600000",
            address,
        ];
        let desk = shown.join("\u{1f}");
        let event = ["claimed", "tl-1", "tl.tech", "1700000001000"]
            .iter()
            .chain(&shown)
            .copied()
            .collect::<Vec<_>>()
            .join("\u{1f}");
        let one_field = entry("1-0", &[("event", &event)]);
        let packed = entry(
            "1-0",
            &[
                ("kind", "claimed"),
                ("ticket_id", "tl-1"),
                ("team_id", "tl.tech"),
                ("at", "1700000001000"),
                ("desk", &desk),
            ],
        );
        let named = entry(
            "1-0",
            &[
                ("kind", "claimed"),
                ("ticket_id", "tl-1"),
                ("team_id", "tl.tech"),
                ("state", "RESERVED"),
                ("urgency", "2"),
                ("agent_id", "agent-7"),
                ("at", "1700000001000"),
                ("cooperator_id", "tl"),
                ("issue_type", "technical.plumbing.leak"),
                ("building_id", "TL-00012"),
                ("address", address),
                ("incident_calls", "3"),
                ("created_at", "1700000000000"),
                ("sla_due_at", "1700003600000"),
            ],
        );
        let from_event = parse_events(&Value::Array(vec![one_field])).expect("event entry");
        let from_packed = parse_events(&Value::Array(vec![packed])).expect("packed entry");
        let from_named = parse_events(&Value::Array(vec![named])).expect("named entry");
        assert_eq!(from_event, from_named);
        assert_eq!(from_packed, from_named);
        let event = &from_event[0];
        assert_eq!(event.address.as_deref(), Some(address));
        assert_eq!(
            (event.incident_calls, event.sla_due_at),
            (3, 1_700_003_600_000)
        );
        assert_eq!(event.agent_id.as_deref(), Some("agent-7"));

        // One `entry` field, the ticket's shown field as it is after the transition's values.
        let shown = [
            "tl-1",
            "tl",
            "technical.plumbing.leak",
            "TL-00012",
            "1700000000000",
            "1700003600000",
            address,
        ];
        let transition = [
            "claimed",
            "tl.tech",
            "1700000001000",
            "RESERVED",
            "2",
            "agent-7",
            "3",
        ];
        fn bytes<'a>(values: &[&'a str]) -> Vec<&'a [u8]> {
            values.iter().map(|v| v.as_bytes()).collect()
        }
        let entry_of = |values: Vec<&[u8]>| {
            Value::Array(vec![
                Value::BulkString(b"1-0".to_vec()),
                Value::Array(vec![
                    Value::BulkString(b"entry".to_vec()),
                    Value::BulkString(values.join(&0xFF)),
                ]),
            ])
        };
        let whole = [bytes(&transition), bytes(&shown)].concat();
        assert_eq!(
            parse_events(&Value::Array(vec![entry_of(whole.clone())])).expect("entry"),
            from_named
        );
        let short = whole[..whole.len() - 1].to_vec();
        let long = [whole.clone(), vec![b"x".as_slice()]].concat();
        let invalid = [
            whole[..whole.len() - 1].to_vec(),
            vec![[0xC3, 0x28].as_slice()],
        ]
        .concat();
        for bad in [short, long, invalid] {
            assert!(matches!(
                parse_events(&Value::Array(vec![entry_of(bad)])),
                Err(StoreError::Corrupt(_))
            ));
        }
    }

    /// A hash as field/value pairs, as HGETALL answers it.
    fn hash(pairs: &[(&str, Vec<u8>)]) -> Value {
        Value::Array(
            pairs
                .iter()
                .flat_map(|(k, v)| {
                    [
                        Value::BulkString(k.as_bytes().to_vec()),
                        Value::BulkString(v.clone()),
                    ]
                })
                .collect(),
        )
    }

    /// A ticket written as the scripts write one now (the fields that never change packed) and one
    /// written field by field (by older servers) read the same; a packed field of the wrong length,
    /// or not UTF-8 text, is corrupt.
    #[test]
    fn a_ticket_reads_the_same_packed_or_field_by_field() {
        let given: Vec<(&str, String)> = [
            ("ticket_id", "tl-1"),
            ("call_id", "c-1"),
            ("partition", "tl"),
            ("state", "RESERVED"),
            ("cooperator_id", "tl"),
            ("team_id", "tl.tech"),
            ("urgency", "2"),
            ("issue_type", "technical.plumbing.leak"),
            ("building_id", "TL-00012"),
            ("address", "12 rue \u{1f} Nationale"),
            ("incident_id", "TL-00012/water"),
            ("incident_calls", "2"),
            ("agent_id", "ana"),
            ("lease_token", "7"),
            ("lease_expires_at", "1700000060000"),
            ("created_at", "1700000000000"),
            ("enqueued_at", "1700000000000"),
            ("sla_due_at", "1700003600000"),
            ("escalation_team", "tl.supervisor"),
            ("created_in", "tl.tech"),
            ("details", "{\"rule_id\":\"technical\"}"),
        ]
        .map(|(k, v)| (k, v.to_owned()))
        .to_vec();
        let packed = packed_hash(&given);
        assert_eq!(
            packed.iter().map(|(name, _)| *name).collect::<Vec<_>>(),
            [
                "state",
                "team_id",
                "urgency",
                "incident_calls",
                "agent_id",
                "lease_token",
                "lease_expires_at",
                "enqueued_at",
                "shown",
                "kept"
            ]
        );
        let named: Vec<(&str, Vec<u8>)> = given
            .iter()
            .map(|(k, v)| (*k, v.as_bytes().to_vec()))
            .collect();
        let (packed_hash_value, named_hash_value) = (hash(&packed), hash(&named));
        let from_packed = ticket_map(&packed_hash_value).expect("packed");
        assert_eq!(from_packed, ticket_map(&named_hash_value).expect("named"));
        assert_eq!(from_packed.get("created_in"), Some(&"tl.tech"));
        let ticket = parse_ticket(&hash(&packed)).expect("ticket");
        assert_eq!(
            (
                ticket.address.as_deref(),
                ticket.incident_id.as_deref(),
                ticket.lease_token
            ),
            (Some("12 rue \u{1f} Nationale"), Some("TL-00012/water"), 7)
        );
        // A field not given is packed empty, and reads as absent.
        let without_building: Vec<_> = given
            .iter()
            .filter(|(k, _)| *k != "building_id")
            .cloned()
            .collect();
        let ticket = parse_ticket(&hash(&packed_hash(&without_building))).expect("ticket");
        assert_eq!(ticket.building_id, None);

        let kept = &packed.last().expect("kept").1;
        for bad in [
            kept[..kept.iter().rposition(|b| *b == 0xFF).expect("joined")].to_vec(),
            [kept.as_slice(), b"x"].join(&0xFF),
            [kept.as_slice(), &[0xC3, 0x28]].concat(),
        ] {
            let mut pairs = packed.clone();
            pairs.last_mut().expect("kept").1 = bad;
            assert!(matches!(
                ticket_map(&hash(&pairs)),
                Err(StoreError::Corrupt(_))
            ));
        }
    }
}
