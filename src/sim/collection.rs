//! Serving a collection with `$filter`, `$orderby`, `$top`, `$skip`,
//! `$select`, `Prefer: odata.maxpagesize` and `@odata.nextLink`.

use serde_json::{Map, Value, json};

use super::http::Req;
use super::odata::{self, Expr};

/// How a collection may be queried.
pub(crate) struct CollectionSpec<'a> {
    /// e.g. `serviceHealthIssue`, for error messages.
    pub type_name: &'a str,
    /// Properties usable in `$filter` and `$orderby`.
    pub filterable: &'a [&'a str],
    /// Page size without `Prefer`.
    pub default_page: usize,
    /// Largest page a client may ask for.
    pub max_page: usize,
    /// `@odata.context`.
    pub context: String,
    /// Absolute URL of the collection, without query (base of `@odata.nextLink`).
    pub self_url: String,
}

/// A client error: (code, message) for a 400.
pub(crate) type QueryError = (&'static str, String);

fn parse_usize(name: &str, v: &str, max: usize) -> Result<usize, QueryError> {
    match v.trim().parse::<usize>() {
        Ok(n) if n <= max => Ok(n),
        _ => Err((
            "BadRequest",
            format!("Invalid value '{v}' for the {name} query option; expected an integer from 0 to {max}."),
        )),
    }
}

/// The page size requested with `Prefer: odata.maxpagesize=N`, if any.
pub(crate) fn prefer_max_page_size(req: &Req) -> Option<usize> {
    req.headers.get_all("prefer").iter().filter_map(|v| v.to_str().ok()).flat_map(|v| v.split(',')).find_map(|p| {
        let (k, v) = p.trim().split_once('=')?;
        if k.trim().eq_ignore_ascii_case("odata.maxpagesize") { v.trim().trim_matches('"').parse().ok() } else { None }
    })
}

/// Filters, orders and pages `items` per the request's query options.
/// Returns the body and, when `Prefer` was honoured, the applied page size.
pub(crate) fn serve(
    req: &Req,
    spec: &CollectionSpec,
    items: Vec<Map<String, Value>>,
) -> Result<(Value, Option<usize>), QueryError> {
    let q = req.query_pairs();
    let get = |k: &str| q.iter().find(|(n, _)| n == k).map(|(_, v)| v.clone());
    let filter: Option<Expr> = match get("$filter") {
        Some(f) => {
            let e = odata::parse_filter(&f).map_err(|m| ("BadRequest", format!("Invalid filter clause: {m}")))?;
            let mut used = vec![];
            odata::fields(&e, &mut used);
            for f in used {
                check_property(spec, &items, &f)?;
            }
            Some(e)
        }
        None => None,
    };
    let top = get("$top").map(|v| parse_usize("$top", &v, 1000)).transpose()?;
    let skip = get("$skip").map(|v| parse_usize("$skip", &v, usize::MAX)).transpose()?.unwrap_or(0);
    let prefer = prefer_max_page_size(req);
    let page_size = prefer.map(|p| p.clamp(1, spec.max_page)).unwrap_or(spec.default_page);
    let select: Option<Vec<String>> =
        get("$select").map(|s| s.split(',').map(|x| x.trim().to_string()).filter(|x| !x.is_empty()).collect());

    let mut list = Vec::new();
    for item in items {
        let keep = match &filter {
            Some(e) => odata::eval(e, &item).map_err(|m| ("BadRequest", format!("Invalid filter clause: {m}")))?,
            None => true,
        };
        if keep {
            list.push(item);
        }
    }
    if let Some(ob) = get("$orderby") {
        let mut parts = ob.split_whitespace();
        let field = parts.next().unwrap_or_default().to_string();
        let desc = match parts.next().map(str::to_ascii_lowercase).as_deref() {
            None | Some("asc") => false,
            Some("desc") => true,
            Some(other) => {
                return Err(("BadRequest", format!("Invalid $orderby direction '{other}'; expected asc or desc.")));
            }
        };
        check_property(spec, &list, &field)?;
        list.sort_by(|a, b| {
            let o = order_key(a.get(&field)).cmp(&order_key(b.get(&field)));
            if desc { o.reverse() } else { o }
        });
    }
    let start = skip.min(list.len());
    let limit = top.unwrap_or(usize::MAX);
    let take = page_size.min(limit).min(list.len() - start);
    let end = start + take;
    let mut page: Vec<Value> = list[start..end].iter().map(|m| Value::Object(project(m, select.as_deref()))).collect();
    if page.len() > take {
        page.truncate(take);
    }
    let mut body = json!({ "@odata.context": spec.context });
    let remaining_top = top.map(|t| t.saturating_sub(take));
    if end < list.len() && remaining_top != Some(0) {
        let mut params: Vec<(String, String)> =
            q.iter().filter(|(k, _)| k != "$skip" && k != "$top").map(|(k, v)| (k.clone(), v.clone())).collect();
        if let Some(t) = remaining_top {
            params.push(("$top".into(), t.to_string()));
        }
        params.push(("$skip".into(), end.to_string()));
        let qs: Vec<String> = params
            .iter()
            .map(|(k, v)| format!("{}={}", odata::encode_query_value(k), odata::encode_query_value(v)))
            .collect();
        body["@odata.nextLink"] = json!(format!("{}?{}", spec.self_url, qs.join("&")));
    }
    body["value"] = Value::Array(page);
    Ok((body, prefer.map(|p| p.clamp(1, spec.max_page))))
}

fn check_property(spec: &CollectionSpec, items: &[Map<String, Value>], field: &str) -> Result<(), QueryError> {
    if spec.filterable.contains(&field) {
        return Ok(());
    }
    if items.iter().any(|i| i.contains_key(field)) {
        return Err((
            "BadRequest",
            format!("The property '{field}' cannot be used in the $filter or $orderby query option."),
        ));
    }
    Err((
        "BadRequest",
        format!("Could not find a property named '{field}' on type 'microsoft.graph.{}'.", spec.type_name),
    ))
}

/// A sort key: datetimes by instant, then strings, numbers and booleans.
fn order_key(v: Option<&Value>) -> (u8, i64, String) {
    match v {
        None | Some(Value::Null) => (0, 0, String::new()),
        Some(Value::Bool(b)) => (1, i64::from(*b), String::new()),
        Some(Value::Number(n)) => (2, n.as_i64().unwrap_or(0), String::new()),
        Some(Value::String(s)) => match super::clock::parse_iso_millis(s) {
            Some(t) => (3, t, String::new()),
            None => (4, 0, s.clone()),
        },
        Some(other) => (5, 0, other.to_string()),
    }
}

/// Applies `$select` to one object (annotations and `id` always stay).
pub(crate) fn project(m: &Map<String, Value>, select: Option<&[String]>) -> Map<String, Value> {
    match select {
        None => m.clone(),
        Some(sel) => m
            .iter()
            .filter(|(k, _)| k.starts_with('@') || k.as_str() == "id" || sel.iter().any(|s| s == *k))
            .map(|(k, v)| (k.clone(), v.clone()))
            .collect(),
    }
}
