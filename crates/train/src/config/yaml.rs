//! What PyYAML does that serde_yaml_ng leaves to its caller, done the PyYAML way so that a config
//! reads here as it does in PaddleDetection: merge keys (`<<: *base`, `<<: [*a, *b]`, merged maps
//! that merge in turn), and refusing `!!python/...` tags, which PaddleDetection's loader would turn
//! into Python objects and serde_yaml_ng would silently drop.

use serde_yaml_ng::{Mapping, Value};

/// The YAML core tags (`!!str 5`): serde_yaml_ng reads them as plain values, as PyYAML does.
const CORE_TAGS: [&str; 14] = [
    "str",
    "int",
    "float",
    "bool",
    "null",
    "map",
    "seq",
    "binary",
    "timestamp",
    "omap",
    "pairs",
    "set",
    "merge",
    "value",
];

/// Resolves every merge key in `v`, innermost first, as PyYAML's `flatten_mapping`: the merged
/// maps come first, earlier maps of a `<<: [...]` list win over later ones, and the map's own
/// keys win over all merged ones. Returns what is wrong with a `<<` value that is not a map or a
/// list of maps.
pub(super) fn resolve_merges(v: &mut Value) -> Result<(), String> {
    match v {
        Value::Mapping(map) => {
            for child in map.values_mut() {
                resolve_merges(child)?;
            }
            let Some(merge) = map.remove("<<") else {
                return Ok(());
            };
            let sources = match merge {
                Value::Mapping(m) => vec![m],
                Value::Sequence(items) => items
                    .into_iter()
                    .map(|item| match item {
                        Value::Mapping(m) => Ok(m),
                        other => Err(format!(
                            "a `<<` merge list may hold only maps, found {}",
                            super::value::kind(&other)
                        )),
                    })
                    .collect::<Result<_, _>>()?,
                other => {
                    return Err(format!(
                        "`<<` must merge a map or a list of maps, found {}",
                        super::value::kind(&other)
                    ));
                }
            };
            let mut merged = Mapping::new();
            for source in sources.into_iter().rev() {
                for (k, v) in source {
                    merged.insert(k, v);
                }
            }
            for (k, v) in std::mem::take(map) {
                merged.insert(k, v);
            }
            *map = merged;
            Ok(())
        }
        Value::Sequence(items) => items.iter_mut().try_for_each(resolve_merges),
        Value::Tagged(t) => resolve_merges(&mut t.value),
        _ => Ok(()),
    }
}

/// The first tag in `text` that names something other than a YAML core type (`!!python/object:x.Y`,
/// `!!python/tuple`, `!<tag:yaml.org,2002:python/...>`), with its 1-based line. PaddleDetection's
/// own tags (`!CosineDecay`) have one `!` and pass. Comments and quoted strings are skipped; a tag
/// is only recognised where YAML allows one (at the start of a value), so `a!!b` is plain text.
pub(super) fn foreign_tag(text: &str) -> Option<(String, usize)> {
    for (index, line) in text.lines().enumerate() {
        let mut quote: Option<char> = None;
        let mut prev = ' ';
        for (at, c) in line.char_indices() {
            match quote {
                Some(q) if c == q => quote = None,
                Some(_) => {}
                None if c == '#' && prev.is_whitespace() => break,
                None if (c == '"' || c == '\'') && starts_value(prev) => quote = Some(c),
                None if c == '!' && starts_value(prev) => {
                    let rest = &line[at..];
                    // A verbatim tag `!<...>` may hold commas; a shorthand one ends at flow
                    // punctuation.
                    let tag: String = match rest.find('>') {
                        Some(end) if rest.starts_with("!<") => rest[..=end].to_string(),
                        _ => rest
                            .chars()
                            .take_while(|c| !c.is_whitespace() && !",[]{}".contains(*c))
                            .collect(),
                    };
                    if is_foreign(&tag) {
                        return Some((tag, index + 1));
                    }
                }
                None => {}
            }
            prev = c;
        }
    }
    None
}

/// Whether a token may start right after `prev` (line start, space, flow punctuation).
fn starts_value(prev: char) -> bool {
    prev.is_whitespace() || "[{,:-".contains(prev)
}

fn is_foreign(tag: &str) -> bool {
    if let Some(name) = tag.strip_prefix("!!") {
        return !CORE_TAGS.contains(&name);
    }
    if let Some(uri) = tag.strip_prefix("!<").and_then(|t| t.strip_suffix('>')) {
        let core = uri
            .strip_prefix("tag:yaml.org,2002:")
            .is_some_and(|name| CORE_TAGS.contains(&name));
        return !core;
    }
    false
}
