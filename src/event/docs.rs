//! What is rendered from the event table for people and tools outside the daemon: the
//! README's and the man page's tables, the journald catalog and the JSON Schema of the
//! `--events` lines. `tests/packaging.rs` checks each against its file in the repository and,
//! with `STALLD_BLESS=1`, writes it there: a new event kind or field is one entry in
//! `src/event.rs`, and its documentation follows.

use serde_json::{json, Map, Value};

use super::{EventKind, FieldKind, Severity, FIELDS, JSON_SCHEMA_VERSION};

/// Where the catalog is kept in the repository, and where the packages install it (the
/// directory `journalctl --update-catalog` reads).
pub const CATALOG_FILE: &str = "systemd/stalld.catalog";
pub const CATALOG_INSTALLED: &str = "/usr/lib/systemd/catalog/stalld.catalog";
/// Where the JSON Schema of the `--events` lines is kept.
pub const SCHEMA_FILE: &str = "schema/stalld-events.schema.json";

/// The keys every JSON line has besides the event's fields, with their meaning.
pub const JSON_ENVELOPE: &[(&str, &str)] = &[
    ("schema", "the version of this layout"),
    ("timestamp", "when the event happened, in Unix seconds"),
    ("event", "the kind of event (journald's STALLD_EVENT)"),
    ("message_id", "journald's MESSAGE_ID of the kind"),
    ("priority", "the syslog priority: 4 warning, 6 info"),
    ("message", "the text line the text sinks print"),
];

/// The README's table of event kinds.
pub fn readme_events() -> String {
    let mut table = String::from("| event | MESSAGE_ID | meaning |\n|---|---|---|\n");
    for kind in EventKind::ALL {
        let facts = kind.facts();
        table += &format!(
            "| `{}` | `{}` | {} |\n",
            facts.name, facts.message_id, facts.summary
        );
    }
    table
}

/// The README's table of fields.
pub fn readme_fields() -> String {
    let mut table = String::from("| field | meaning |\n|---|---|\n");
    for field in FIELDS {
        table += &format!(
            "| `{}` (`{}`) | {} |\n",
            field.name,
            journal_field(field.name),
            field.meaning
        );
    }
    table
}

/// The man page's events and fields subsections (roff).
pub fn man_events() -> String {
    let mut roff = String::from(".SS Events\nEach with its fixed \\fBMESSAGE_ID\\fR:\n");
    for kind in EventKind::ALL {
        let facts = kind.facts();
        roff += &format!(
            ".TP\n\\fB{}\\fR {}\n{}\n",
            facts.name,
            facts.message_id,
            roff_text(facts.summary)
        );
    }
    roff += ".SS Fields\nNames users choose are escaped (one line per field); \\fBbackend\\fR is on every event.\n";
    for field in FIELDS {
        roff += &format!(
            ".TP\n\\fB{}\\fR (\\fB{}\\fR)\n{}\n",
            field.name,
            journal_field(field.name),
            roff_text(field.meaning)
        );
    }
    roff
}

/// journald's name of a field: `STALLD_` and the name in upper case.
pub fn journal_field(name: &str) -> String {
    format!("STALLD_{}", name.to_ascii_uppercase())
}

fn roff_text(text: &str) -> String {
    text.replace('\\', "\\e").replace('-', "\\-")
}

/// The journald catalog: one entry per MESSAGE_ID, which `journalctl -x` shows under each
/// message of that kind.
pub fn catalog() -> String {
    let mut catalog = format!(
        "# stalld's journald catalog: `journalctl -x` explains each stalld MESSAGE_ID with it.\n\
         # Rendered from src/event.rs (STALLD_BLESS=1 cargo test --test packaging writes it);\n\
         # installed as {CATALOG_INSTALLED} (then: journalctl --update-catalog).\n"
    );
    for kind in EventKind::ALL {
        let facts = kind.facts();
        catalog += &format!(
            "\n-- {}\nSubject: {}\nDefined-By: stalld\nDocumentation: man:stalld(8)\n\n{}\n",
            facts.message_id,
            facts.summary,
            wrap(facts.explanation, 78)
        );
        let mut fields: Vec<&str> = facts.fields.iter().chain(facts.optional).copied().collect();
        if !fields.contains(&"backend") {
            fields.push("backend");
        }
        let fields: Vec<String> = fields.into_iter().map(journal_field).collect();
        catalog += &format!(
            "\n{}\n",
            wrap(
                &format!(
                    "STALLD_EVENT={}; fields: {}.",
                    facts.name,
                    fields.join(", ")
                ),
                78
            )
        );
    }
    catalog
}

/// `text` in lines of at most `width` characters (a longer word stands alone).
fn wrap(text: &str, width: usize) -> String {
    let mut lines: Vec<String> = Vec::new();
    for word in text.split_whitespace() {
        match lines.last_mut() {
            Some(line) if line.len() + 1 + word.len() <= width => {
                line.push(' ');
                line.push_str(word);
            }
            _ => lines.push(word.to_owned()),
        }
    }
    lines.join("\n")
}

/// The JSON Schema (draft 2020-12) of one `--events` line: the envelope, each kind's
/// MESSAGE_ID and priority, the fields it must and may carry, and no other key.
pub fn json_schema() -> Value {
    let mut properties = Map::new();
    let describe = |kind: Value, description: &str| {
        let mut property = kind;
        property["description"] = description.into();
        property
    };
    let envelope_kinds = [
        json!({ "const": JSON_SCHEMA_VERSION }),
        json!({ "type": "number" }),
        json!({ "enum": EventKind::ALL.iter().map(|kind| kind.name()).collect::<Vec<_>>() }),
        json!({ "type": "string", "pattern": "^[0-9a-f]{32}$" }),
        json!({ "enum": [Severity::Warning as u8, Severity::Info as u8] }),
        json!({ "type": "string" }),
    ];
    for ((name, meaning), kind) in JSON_ENVELOPE.iter().zip(envelope_kinds) {
        properties.insert((*name).into(), describe(kind, meaning));
    }
    for field in FIELDS {
        let kind = match field.kind {
            FieldKind::Int => json!({ "type": "integer" }),
            FieldKind::Text => json!({ "type": "string" }),
        };
        properties.insert(field.name.into(), describe(kind, field.meaning));
    }
    let envelope: Vec<&str> = JSON_ENVELOPE.iter().map(|(name, _)| *name).collect();
    let kinds: Vec<Value> = EventKind::ALL
        .iter()
        .map(|kind| {
            let facts = kind.facts();
            let mut allowed: Vec<&str> = envelope.clone();
            allowed.extend(facts.fields.iter().chain(facts.optional));
            if !allowed.contains(&"backend") {
                allowed.push("backend");
            }
            json!({
                "if": { "properties": { "event": { "const": facts.name } } },
                "then": {
                    "properties": {
                        "message_id": { "const": facts.message_id },
                        "priority": { "const": facts.severity as u8 },
                    },
                    "required": facts.fields,
                    "propertyNames": { "enum": allowed },
                },
            })
        })
        .collect();
    json!({
        "$schema": "https://json-schema.org/draft/2020-12/schema",
        "title": "stalld event",
        "description": format!(
            "One line of stalld --events (schema {JSON_SCHEMA_VERSION}). Rendered from src/event.rs: STALLD_BLESS=1 cargo test --test packaging writes it."
        ),
        "type": "object",
        "required": envelope,
        "properties": properties,
        "additionalProperties": false,
        "allOf": kinds,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn wrapping_keeps_words_whole() {
        assert_eq!(wrap("aa bb cc", 5), "aa bb\ncc");
        assert_eq!(wrap("toolongword x", 4), "toolongword\nx");
    }

    #[test]
    fn the_catalog_has_one_entry_per_kind_with_its_subject() {
        let catalog = catalog();
        for kind in EventKind::ALL {
            let header = format!("-- {}\nSubject: {}\n", kind.message_id(), kind.summary());
            assert_eq!(catalog.matches(&header).count(), 1, "{header}");
        }
        assert!(
            catalog
                .lines()
                .filter(|line| !line.starts_with("Subject:") && !line.starts_with('#'))
                .all(|line| line.len() <= 78),
            "{catalog}"
        );
    }
}
