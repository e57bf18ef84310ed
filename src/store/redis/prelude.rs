//! A script's text as Redis runs it: the shared prelude (`scripts/common.lua`) cut down to the
//! functions the script calls, directly or through each other, then the script. Redis runs a
//! script's whole text at every call, and each `local function` of the prelude is a closure made
//! anew each time: the full prelude cost every script about 3.5 µs of Redis time per call
//! whatever it used.
//!
//! The prelude's lines outside functions (its locals) are always kept. A function is a
//! `local function NAME(` line through the next line that is `end` alone (or that line itself
//! when it ends with ` end`), with the comment lines just above it.
//!
//! A function of one line and one parameter, `local function NAME(x) return EXPRESSION end` (a
//! key's name, a number as text), is not defined but written out where it is called: `NAME(a)`
//! becomes `(EXPRESSION)` with `(a)` for `x`. Each function a script defines is a closure that
//! Redis makes at every call, with its captured locals: about 1,200 instructions each.
//!
//! The text then gets the values of the row notation (see `scripts/common.lua`): `ROW.<field>` is
//! the place of a field in a row, `ROW_FIELDS` the number of fields in a row, `ROW_NAMES` their
//! names, `ROW_TEXT` the fields of a row named `r` joined by the byte 255 (an absent one empty),
//! all from [`ROW_READ`], which the server reads a row's values by; `SHOWN_NAMES` and `KEPT_NAMES`
//! are the names of the fields a packed field holds ([`PACKED`]). The prelude gets them before it
//! is cut down, so that a function written out where it is called can use them.

use rustc_hash::FxHashSet;

use super::reply::{PACKED, ROW_READ};

/// The shared prelude of every script.
pub const PRELUDE: &str = include_str!("scripts/common.lua");

/// The lifecycle scripts by name, as the store loads them (and `callrouter script` prints them).
pub const SCRIPTS: [(&str, &str); 17] = [
    ("create", include_str!("scripts/create.lua")),
    ("claim", include_str!("scripts/claim.lua")),
    ("accept", include_str!("scripts/accept.lua")),
    ("complete", include_str!("scripts/complete.lua")),
    ("complete_claim", include_str!("scripts/complete_claim.lua")),
    ("release", include_str!("scripts/release.lua")),
    ("transfer", include_str!("scripts/transfer.lua")),
    ("cancel", include_str!("scripts/cancel.lua")),
    ("reap", include_str!("scripts/reap.lua")),
    ("move_out", include_str!("scripts/move_out.lua")),
    ("move_in", include_str!("scripts/move_in.lua")),
    ("move_done", include_str!("scripts/move_done.lua")),
    ("position", include_str!("scripts/position.lua")),
    ("list", include_str!("scripts/list.lua")),
    ("held", include_str!("scripts/held.lua")),
    ("heartbeat", include_str!("scripts/heartbeat.lua")),
    ("lease", include_str!("scripts/lease.lua")),
];

/// The text Redis runs for the script named `name`, if there is one.
pub fn script_text(name: &str) -> Option<String> {
    SCRIPTS
        .iter()
        .find(|(n, _)| *n == name)
        .map(|(_, body)| assemble(&resolve_rows(PRELUDE), &resolve_rows(body)))
}

/// A line's code, and its comment (from `--` on; empty when it has none).
fn code_and_comment(line: &str) -> (&str, &str) {
    line.find("--").map_or((line, ""), |at| line.split_at(at))
}

/// Names as a script quotes them, one after another.
fn quoted(names: &[&str]) -> String {
    names
        .iter()
        .map(|f| format!("'{f}'"))
        .collect::<Vec<_>>()
        .join(", ")
}

/// `text` with the row notation replaced by its values, in code (comments are left as written).
/// A `ROW.<name>` whose name is no field of a row is left too: Lua would read it as a field of an
/// undefined `ROW`, and the script would fail at its first call (a test checks every script).
fn resolve_rows(text: &str) -> String {
    let names = quoted(&ROW_READ);
    let packed: Vec<(String, String)> = PACKED
        .iter()
        .map(|(name, fields)| (format!("{}_NAMES", name.to_uppercase()), quoted(fields)))
        .collect();
    let joined = (1..=ROW_READ.len())
        .map(|place| format!("(r[{place}] or '')"))
        .collect::<Vec<_>>()
        .join(" .. '\\255' .. ");
    let mut out = String::with_capacity(text.len() + names.len());
    for line in text.lines() {
        let (code, comment) = code_and_comment(line);
        let mut rest = code;
        while let Some(at) = std::iter::once("ROW")
            .chain(packed.iter().map(|(notation, _)| notation.as_str()))
            .filter_map(|start| rest.find(start))
            .min()
        {
            let word = |c: char| c.is_ascii_alphanumeric() || c == '_';
            let (before, from) = rest.split_at(at);
            out.push_str(before);
            let after_word = from
                .find(|c: char| !word(c) && c != '.')
                .unwrap_or(from.len());
            let token = &from[..after_word];
            let value = match token.split_once('.') {
                _ if before.ends_with(word) => None,
                Some(("ROW", field)) => ROW_READ
                    .iter()
                    .position(|f| *f == field)
                    .map(|place| (place + 1).to_string()),
                None if token == "ROW_FIELDS" => Some(ROW_READ.len().to_string()),
                None if token == "ROW_NAMES" => Some(names.clone()),
                None if token == "ROW_TEXT" => Some(joined.clone()),
                None => packed
                    .iter()
                    .find(|(notation, _)| notation == token)
                    .map(|(_, names)| names.clone()),
                _ => None,
            };
            out.push_str(value.as_deref().unwrap_or(token));
            rest = &from[after_word..];
        }
        out.push_str(rest);
        out.push_str(comment);
        out.push('\n');
    }
    out
}

/// One function of the prelude: its name, its text (comments above it included), and, for a
/// function written out where it is called, its parameter and the expression it returns.
struct Function<'a> {
    name: &'a str,
    text: String,
    inline: Option<(&'a str, &'a str)>,
}

/// The parameter and the returned expression of `local function NAME(x) return EXPRESSION end`.
fn one_liner(line: &str) -> Option<(&str, &str)> {
    let (_, rest) = line.strip_prefix("local function ")?.split_once('(')?;
    let (param, rest) = rest.split_once(')')?;
    let expression = rest.strip_prefix(" return ")?.strip_suffix(" end")?;
    let word = |c: char| c.is_ascii_alphanumeric() || c == '_';
    (!param.is_empty() && param.chars().all(word)).then_some((param, expression))
}

/// A piece of the prelude, in order: kept lines, or a function.
enum Piece<'a> {
    Kept(&'a str),
    Function(Function<'a>),
}

fn pieces(prelude: &str) -> Vec<Piece<'_>> {
    let mut out = Vec::new();
    let mut comments: Vec<&str> = Vec::new();
    let mut lines = prelude.lines();
    while let Some(line) = lines.next() {
        if line.starts_with("--") {
            comments.push(line);
            continue;
        }
        let Some(name) = line
            .strip_prefix("local function ")
            .and_then(|rest| rest.split_once('('))
            .map(|(name, _)| name)
        else {
            out.extend(comments.drain(..).map(Piece::Kept));
            out.push(Piece::Kept(line));
            continue;
        };
        let inline = one_liner(line);
        let mut text: Vec<&str> = std::mem::take(&mut comments);
        text.push(line);
        if !line.ends_with(" end") {
            for inner in lines.by_ref() {
                text.push(inner);
                if inner == "end" {
                    break;
                }
            }
        }
        let mut text = text.join("\n");
        text.push('\n');
        out.push(Piece::Function(Function { name, text, inline }));
    }
    out.extend(comments.drain(..).map(Piece::Kept));
    out
}

/// Whether the code of `text` (its comments left out) names `name` as a whole word. A comment
/// that mentions a function (`see claim_from`) does not make the script define it.
fn names(text: &str, name: &str) -> bool {
    let word = |c: char| c.is_ascii_alphanumeric() || c == '_';
    text.lines()
        .map(|line| code_and_comment(line).0)
        .any(|code| {
            code.match_indices(name).any(|(at, _)| {
                let before = code[..at].chars().next_back();
                let after = code[at + name.len()..].chars().next();
                !before.is_some_and(word) && !after.is_some_and(word)
            })
        })
}

/// The prelude cut down to what `body` uses, then `body`.
pub fn assemble(prelude: &str, body: &str) -> String {
    let pieces = pieces(prelude);
    let functions: Vec<&Function> = pieces
        .iter()
        .filter_map(|p| match p {
            Piece::Function(f) => Some(f),
            Piece::Kept(_) => None,
        })
        .collect();
    let mut used: FxHashSet<&str> = FxHashSet::default();
    let mut pending = vec![body];
    while let Some(text) = pending.pop() {
        for f in &functions {
            if !used.contains(f.name) && names(text, f.name) {
                used.insert(f.name);
                pending.push(&f.text);
            }
        }
    }
    let mut out = String::with_capacity(prelude.len() + body.len());
    for piece in &pieces {
        match piece {
            // A blank line where dropped functions leave two in a row is left out.
            Piece::Kept("") if out.is_empty() || out.ends_with("\n\n") => {}
            Piece::Kept(line) => {
                out.push_str(line);
                out.push('\n');
            }
            Piece::Function(f) if used.contains(f.name) && f.inline.is_none() => {
                out.push_str(&f.text)
            }
            Piece::Function(_) => {}
        }
    }
    out.push_str(body);
    let inlined: Vec<(&str, &str, &str)> = functions
        .iter()
        .filter(|f| used.contains(f.name))
        .filter_map(|f| {
            f.inline
                .map(|(param, expression)| (f.name, param, expression))
        })
        .collect();
    write_out_calls(&out, &inlined)
}

/// `text` with each call of the given functions (name, parameter, expression) in code replaced
/// by the expression, the call's argument in parentheses for the parameter; again until none is
/// left, for an expression that calls another. A call whose argument does not close on its line
/// is left (the test of every script finds it).
fn write_out_calls(text: &str, functions: &[(&str, &str, &str)]) -> String {
    let word = |c: char| c.is_ascii_alphanumeric() || c == '_';
    let mut out = String::with_capacity(text.len() * 2);
    for line in text.lines() {
        let (code, comment) = code_and_comment(line);
        let mut code = code.to_owned();
        let mut at = 0;
        while let Some((start, open, (_, param, expression))) = functions
            .iter()
            .filter_map(|f| {
                let call = format!("{}(", f.0);
                code[at..]
                    .match_indices(&call)
                    .map(|(i, _)| at + i)
                    .find(|&i| !code[..i].ends_with(|c: char| word(c) || c == '.'))
                    .map(|i| (i, i + call.len(), f))
            })
            .min_by_key(|(start, _, _)| *start)
        {
            let Some(close) = closing(&code[open..]).map(|i| open + i) else {
                at = open;
                continue;
            };
            let argument = format!("({})", &code[open..close]);
            let mut replaced = String::from("(");
            let mut rest = *expression;
            while let Some(i) = rest.find(param) {
                let (before, after) = (&rest[..i], &rest[i + param.len()..]);
                replaced.push_str(before);
                if before.ends_with(word) || after.starts_with(word) {
                    replaced.push_str(param);
                } else {
                    replaced.push_str(&argument);
                }
                rest = after;
            }
            replaced.push_str(rest);
            replaced.push(')');
            code.replace_range(start..=close, &replaced);
            at = start;
        }
        out.push_str(&code);
        out.push_str(comment);
        out.push('\n');
    }
    out
}

/// Where the parenthesis opened just before `text` closes, outside quoted text.
fn closing(text: &str) -> Option<usize> {
    let mut depth = 1;
    let mut quote = None;
    for (i, c) in text.char_indices() {
        match (quote, c) {
            (Some(q), c) if c == q => quote = None,
            (Some(_), _) => {}
            (None, '\'' | '"') => quote = Some(c),
            (None, '(') => depth += 1,
            (None, ')') => {
                depth -= 1;
                if depth == 0 {
                    return Some(i);
                }
            }
            _ => {}
        }
    }
    None
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::store::redis::reply::{KEPT_FIELDS, SHOWN_FIELDS};

    const PRELUDE: &str = "-- prelude\nlocal P = ARGV[1]\n\n-- a key\nlocal function tkey(id)\n  return P .. id\nend\n\n-- reads\n-- the state\nlocal function state(id)\n  return redis.call('HGET', tkey(id), 'state')\nend\n\nlocal function unused(x)\n  if x then\n    return 1\n  end\n  return 2\nend\n";

    #[test]
    fn the_row_notation_gets_its_values_in_code_only() {
        let text = resolve_rows(
            "-- ROW.urgency, ROW_FIELDS\nlocal s, n = r[ROW.urgency], ROW_FIELDS -- ROW.state\nx(ROW_NAMES)\nr[ROW.nothing], BORROW.state, r[ROW.kept]\ny(SHOWN_NAMES, KEPT_NAMES, SHOWN_X)\n",
        );
        let names = quoted(&ROW_READ);
        let (shown, kept) = (quoted(&SHOWN_FIELDS), quoted(&KEPT_FIELDS));
        assert_eq!(
            text,
            format!(
                "-- ROW.urgency, ROW_FIELDS\nlocal s, n = r[3], 17 -- ROW.state\nx({names})\nr[ROW.nothing], BORROW.state, r[17]\ny({shown}, {kept}, SHOWN_X)\n"
            )
        );
        assert!(shown.starts_with("'ticket_id', 'cooperator_id'"), "{shown}");
    }

    #[test]
    fn a_row_as_text_joins_every_field_with_an_absent_one_empty() {
        let text = resolve_rows("return ROW_TEXT -- ROW_TEXT\n");
        let code = text.strip_prefix("return ").expect("code kept");
        let (joined, comment) = code.split_once(" --").expect("comment kept");
        assert_eq!(comment, " ROW_TEXT\n");
        let parts: Vec<&str> = joined.split(" .. '\\255' .. ").collect();
        assert_eq!(parts.len(), ROW_READ.len());
        assert_eq!(parts[0], "(r[1] or '')");
        assert_eq!(parts[16], "(r[17] or '')");
    }

    #[test]
    fn every_script_has_its_row_notation_resolved() {
        for (name, _) in SCRIPTS {
            let text = script_text(name).expect("listed");
            for line in text.lines() {
                let code = line.split("--").next().unwrap_or_default();
                assert!(
                    !code.contains("ROW") && !code.contains("_NAMES"),
                    "{name}: {line}"
                );
            }
        }
        let claim = script_text("claim").expect("claim");
        assert!(
            claim.contains("'moved_to', 'shown', 'kept', ..."),
            "{claim}"
        );
        assert!(claim.contains("unpacked(id, 'ticket_id', 'cooperator_id',"));
        assert!(
            claim.contains("local r = {[1] = 'RESERVED', [5] = agent, [6] = token,\n"),
            "{claim}"
        );
    }

    #[test]
    fn a_script_gets_the_functions_it_calls_and_theirs_in_the_prelude_order() {
        let text = assemble(PRELUDE, "return state(ARGV[4])\n");
        assert_eq!(
            text,
            "-- prelude\nlocal P = ARGV[1]\n\n-- a key\nlocal function tkey(id)\n  return P .. id\nend\n\n-- reads\n-- the state\nlocal function state(id)\n  return redis.call('HGET', tkey(id), 'state')\nend\n\nreturn state(ARGV[4])\n"
        );
    }

    #[test]
    fn a_one_line_function_is_written_out_where_it_is_called() {
        let prelude = "local P = ARGV[1]\n-- a key\nlocal function key(id) return P .. 'k:' .. id end\n-- a key's key\nlocal function meta(k) return key(k) .. ':meta' end\nlocal function idle(x) return x end\n";
        let text = assemble(
            prelude,
            "-- key(a) in a comment\nlocal a = key(ARGV[4]) .. monkey(1) .. t.key(2)\nlocal b = meta(f(x, ')') .. 'ids') -- key(b)\nreturn key(\n",
        );
        assert_eq!(
            text,
            "local P = ARGV[1]\n-- key(a) in a comment\nlocal a = (P .. 'k:' .. (ARGV[4])) .. monkey(1) .. t.key(2)\nlocal b = ((P .. 'k:' .. ((f(x, ')') .. 'ids'))) .. ':meta') -- key(b)\nreturn key(\n"
        );
    }

    #[test]
    fn every_script_calls_no_function_it_does_not_define() {
        for (name, _) in SCRIPTS {
            let text = script_text(name).expect("listed");
            let code: String = text
                .lines()
                .map(|l| l.split("--").next().unwrap_or_default())
                .collect::<Vec<_>>()
                .join("\n");
            for piece in pieces(super::PRELUDE) {
                if let Piece::Function(f) = piece {
                    let defined = code.contains(&format!("local function {}(", f.name));
                    let called = code.match_indices(&format!("{}(", f.name)).any(|(at, _)| {
                        let before = &code[..at];
                        !before
                            .ends_with(|c: char| c.is_ascii_alphanumeric() || c == '_' || c == '.')
                            && !before.ends_with("function ")
                    });
                    assert!(
                        !called || defined,
                        "{name} calls {} without defining it",
                        f.name
                    );
                    assert!(
                        f.inline.is_none() || !defined,
                        "{name} defines {}, which is written out",
                        f.name
                    );
                }
            }
        }
        let create = script_text("create").expect("create");
        assert!(create.contains("redis.call('HSET', KEYS[3]"), "{create}");
        assert!(!create.contains("tkey("), "{create}");
    }

    #[test]
    fn a_function_ends_at_its_own_end_not_at_an_inner_one() {
        let text = assemble(PRELUDE, "return unused(1)\n");
        assert!(
            text.contains("    return 1\n  end\n  return 2\nend\n"),
            "{text}"
        );
        assert!(!text.contains("tkey"), "{text}");
    }

    #[test]
    fn a_name_in_a_comment_is_not_a_use() {
        let text = assemble(
            PRELUDE,
            "-- not state(x), see unused\nreturn 1 -- nor state(y)\n",
        );
        assert!(!text.contains("local function"), "{text}");
        let prelude = format!(
            "{PRELUDE}-- uses state(x) and unused\nlocal function last(x)\n  return x\nend\n"
        );
        let text = assemble(&prelude, "return last(2)\n");
        assert!(text.contains("local function last("), "{text}");
        assert!(!text.contains("local function state("), "{text}");
        assert!(!text.contains("local function unused("), "{text}");
    }

    #[test]
    fn a_name_inside_another_word_is_not_a_use() {
        let text = assemble(PRELUDE, "local tkeys, statement = 1, 2\nreturn tkeys\n");
        assert!(!text.contains("local function"), "{text}");
    }

    #[test]
    fn every_script_keeps_the_prelude_locals_and_drops_what_it_does_not_call() {
        let prelude = resolve_rows(super::PRELUDE);
        let prelude_pieces = pieces(&prelude);
        for (name, body) in SCRIPTS {
            let text = script_text(name).expect("listed");
            let written_out: Vec<(&str, &str, &str)> = prelude_pieces
                .iter()
                .filter_map(|p| match p {
                    Piece::Function(f) => f.inline.map(|(x, e)| (f.name, x, e)),
                    Piece::Kept(_) => None,
                })
                .collect();
            let tail = write_out_calls(&resolve_rows(body), &written_out);
            assert!(text.ends_with(&tail), "{name}");
            assert!(text.contains("local RETENTION = ARGV[3]"), "{name}");
            assert!(text.len() < super::PRELUDE.len() + body.len(), "{name}");
            let defined: Vec<&str> = text
                .lines()
                .filter_map(|l| l.strip_prefix("local function "))
                .filter_map(|l| l.split_once('(').map(|(n, _)| n))
                .collect();
            for f in defined {
                assert!(
                    names(&text.replacen(&format!("local function {f}("), "", 1), f),
                    "{name} defines {f} without using it"
                );
            }
        }
        let create = script_text("create").expect("create");
        assert!(create.contains("local function now_ms("));
        assert!(create.contains("local function emit_text("));
        assert!(!create.contains("local function check_hold("));
        assert!(script_text("no-such-script").is_none());
    }
}
