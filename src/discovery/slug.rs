//! Subscription names for discovered customers: a stable slug of the
//! display name, unique among all subscriptions.

use std::collections::{BTreeMap, BTreeSet};

/// Longest slug taken from a display name (before any tenant suffix).
const MAX_SLUG: usize = 48;

/// Latin letters with diacritics, and ligatures, as ASCII.
fn fold(c: char) -> Option<&'static str> {
    Some(match c {
        'à' | 'á' | 'â' | 'ã' | 'ä' | 'å' | 'ā' | 'ă' | 'ą' => "a",
        'æ' => "ae",
        'ç' | 'ć' | 'č' => "c",
        'ď' | 'đ' | 'ð' => "d",
        'è' | 'é' | 'ê' | 'ë' | 'ē' | 'ė' | 'ę' | 'ě' => "e",
        'ğ' => "g",
        'ì' | 'í' | 'î' | 'ï' | 'ī' | 'į' | 'ı' => "i",
        'ł' | 'ľ' | 'ĺ' => "l",
        'ñ' | 'ń' | 'ň' => "n",
        'ò' | 'ó' | 'ô' | 'õ' | 'ö' | 'ø' | 'ō' | 'ő' => "o",
        'œ' => "oe",
        'ř' | 'ŕ' => "r",
        'ś' | 'š' | 'ş' | 'ș' => "s",
        'ß' => "ss",
        'ť' | 'ţ' | 'ț' => "t",
        'þ' => "th",
        'ù' | 'ú' | 'û' | 'ü' | 'ū' | 'ů' | 'ű' | 'ų' => "u",
        'ý' | 'ÿ' => "y",
        'ź' | 'ż' | 'ž' => "z",
        _ => return None,
    })
}

/// A name matching `[a-z0-9][a-z0-9_.-]*` from a display name: lowercase,
/// diacritics folded, every other run of characters one `-`, at most
/// 48 characters. Empty when nothing usable remains (e.g. a name in a
/// non-Latin script).
pub fn slug(display_name: &str) -> String {
    let mut out = String::new();
    let mut dash = false;
    for c in display_name.chars().flat_map(char::to_lowercase) {
        let piece = if c.is_ascii_lowercase() || c.is_ascii_digit() {
            Some(c.encode_utf8(&mut [0; 4]).to_string())
        } else {
            fold(c).map(str::to_string)
        };
        match piece {
            Some(p) => {
                if dash && !out.is_empty() {
                    out.push('-');
                }
                dash = false;
                out.push_str(&p);
            }
            None => dash = true,
        }
        if out.len() >= MAX_SLUG {
            break;
        }
    }
    out.truncate(MAX_SLUG);
    out.trim_end_matches('-').to_string()
}

/// Names for `(tenant_id, display_name)` pairs (tenant IDs unique), given
/// the names already `taken` and the names customers had before
/// (`previous`, tenant ID to name).
///
/// A customer keeps its previous name while that is still its slug (or its
/// slug with its tenant ID) and free, so a newcomer never renames a customer
/// that is already monitored (its series, counters and alerts would
/// restart). Among the others, a slug shared by several of them, or already
/// taken, becomes `slug-<tenant id>` for each of them, so no name depends on
/// list order; a customer without a usable slug is named by its tenant ID.
/// Customers for which no free name exists are left out.
pub fn assign<'a>(
    customers: &[(&'a str, &str)],
    taken: &BTreeSet<String>,
    previous: &BTreeMap<String, String>,
) -> BTreeMap<&'a str, String> {
    let bases: Vec<(&str, String)> = customers.iter().map(|(t, n)| (*t, slug(n))).collect();
    let mut used = taken.clone();
    let mut out = BTreeMap::new();
    for (tenant, base) in &bases {
        let Some(name) = previous.get(*tenant) else { continue };
        // A renamed customer gets a new name: only names its display name still gives are kept.
        let own = name == base || *name == format!("{base}-{tenant}") || name == tenant;
        if own && !used.contains(name) {
            used.insert(name.clone());
            out.insert(*tenant, name.clone());
        }
    }
    let mut count: BTreeMap<&str, usize> = BTreeMap::new();
    for (tenant, b) in &bases {
        if !out.contains_key(tenant) {
            *count.entry(b.as_str()).or_default() += 1;
        }
    }
    for (tenant, base) in &bases {
        if out.contains_key(tenant) {
            continue;
        }
        let candidates = if base.is_empty() {
            vec![tenant.to_string()]
        } else if count[base.as_str()] == 1 && !used.contains(base) {
            vec![base.clone()]
        } else {
            vec![format!("{base}-{tenant}"), tenant.to_string()]
        };
        if let Some(name) = candidates.into_iter().find(|c| !used.contains(c)) {
            used.insert(name.clone());
            out.insert(*tenant, name);
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn slugs_are_valid_names() {
        assert_eq!(slug("Contoso Ltd."), "contoso-ltd");
        assert_eq!(slug("  Fabrikam, Inc. (EU) "), "fabrikam-inc-eu");
        assert_eq!(slug("Müller & Söhne GmbH"), "muller-sohne-gmbh");
        assert_eq!(slug("Straße 42"), "strasse-42");
        assert_eq!(slug("ÆON"), "aeon");
        assert_eq!(slug("株式会社"), "");
        assert_eq!(slug("---"), "");
        let long = slug(&"a b ".repeat(40));
        assert!(long.len() <= MAX_SLUG && !long.ends_with('-'), "{long}");
        for s in ["Contoso Ltd.", "Müller & Söhne GmbH", "9 Lives", "x"] {
            let s = slug(s);
            assert!(s.chars().next().is_some_and(|c| c.is_ascii_lowercase() || c.is_ascii_digit()), "{s}");
            assert!(s.chars().all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || "-_.".contains(c)), "{s}");
        }
    }

    #[test]
    fn collisions_get_the_tenant_id_for_everyone_involved() {
        let a = "aaaaaaaa-0000-4000-8000-000000000001";
        let b = "bbbbbbbb-0000-4000-8000-000000000002";
        let c = "cccccccc-0000-4000-8000-000000000003";
        let d = "dddddddd-0000-4000-8000-000000000004";
        let taken: BTreeSet<String> = ["fabrikam".to_string()].into();
        let names =
            assign(&[(a, "Contoso"), (b, "Contoso Ltd"), (c, "contoso"), (d, "Fabrikam")], &taken, &BTreeMap::new());
        assert_eq!(names[a], format!("contoso-{a}"));
        assert_eq!(names[c], format!("contoso-{c}"));
        assert_eq!(names[b], "contoso-ltd");
        assert_eq!(names[d], format!("fabrikam-{d}"));
        // Order does not matter.
        let again =
            assign(&[(d, "Fabrikam"), (c, "contoso"), (b, "Contoso Ltd"), (a, "Contoso")], &taken, &BTreeMap::new());
        assert_eq!(names, again);
        // No usable slug: the tenant ID.
        assert_eq!(assign(&[(a, "株式会社")], &BTreeSet::new(), &BTreeMap::new())[a], a);
    }

    #[test]
    fn a_newcomer_never_renames_a_monitored_customer() {
        let (a, b) = ("aaaaaaaa-0000-4000-8000-000000000001", "bbbbbbbb-0000-4000-8000-000000000002");
        let none = BTreeSet::new();
        let first = assign(&[(a, "Contoso")], &none, &BTreeMap::new());
        assert_eq!(first[a], "contoso");
        let previous: BTreeMap<String, String> = first.iter().map(|(t, n)| (t.to_string(), n.clone())).collect();
        let second = assign(&[(b, "Contoso"), (a, "Contoso")], &none, &previous);
        assert_eq!(second[a], "contoso", "kept");
        assert_eq!(second[b], format!("contoso-{b}"), "the newcomer gets the suffix");
        // A renamed customer does not keep its old name.
        let renamed = assign(&[(a, "Contoso Europe")], &none, &previous);
        assert_eq!(renamed[a], "contoso-europe");
        // A configured subscription that takes the name wins over the old one.
        let taken = BTreeSet::from(["contoso".to_string()]);
        assert_eq!(assign(&[(a, "Contoso")], &taken, &previous)[a], format!("contoso-{a}"));
    }
}
