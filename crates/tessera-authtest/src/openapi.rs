//! OpenAPI 3.0 / 3.1 documents (JSON or YAML): operations, their security requirements, and a
//! minimal valid request for each. Errors name the JSON pointer of what is wrong.

use std::collections::{BTreeMap, BTreeSet};

use serde_json::{json, Map, Value};

/// Why a document cannot be used. `pointer` is an RFC 6901 JSON pointer into the document.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{pointer}: {message}")]
pub struct SpecError {
    pub pointer: String,
    pub message: String,
}

fn err(pointer: impl Into<String>, message: impl Into<String>) -> SpecError {
    SpecError { pointer: pointer.into(), message: message.into() }
}

/// How an operation is secured.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Security {
    /// Bearer tokens (http bearer, oauth2 or openIdConnect), with the scopes required.
    Bearer { scheme: String, scopes: Vec<String> },
    /// No security requirement; `overrides_global` when the document's global security
    /// would secure it but the operation opts out with `security: []`.
    None { overrides_global: bool },
    /// Secured only by schemes authtest does not test (API keys, basic auth).
    Other { schemes: Vec<String> },
}

/// A request authtest can send: everything but the credentials.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RequestTemplate {
    /// Path with parameters filled in, e.g. `/orders/1`.
    pub path: String,
    pub query: Vec<(String, String)>,
    pub headers: Vec<(String, String)>,
    /// JSON body, when the operation takes one.
    pub body: Option<Value>,
}

/// One operation of the document.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Operation {
    pub method: String,
    /// The path template, e.g. `/orders/{id}`.
    pub path: String,
    pub operation_id: Option<String>,
    pub tags: Vec<String>,
    pub security: Security,
    /// A request to send, or why none could be built.
    pub request: Result<RequestTemplate, String>,
}

impl Operation {
    /// `GET /orders/{id}`.
    pub fn name(&self) -> String {
        format!("{} {}", self.method, self.path)
    }
}

/// A parsed document.
#[derive(Debug, Clone)]
pub struct Document {
    root: Value,
    pub version: String,
    pub title: String,
}

const METHODS: [&str; 8] = ["get", "put", "post", "delete", "patch", "head", "options", "trace"];
const MAX_DEPTH: usize = 32;

impl Document {
    /// Parses JSON or YAML text and checks the parts authtest relies on.
    pub fn parse(text: &str) -> Result<Document, SpecError> {
        let root: Value = match serde_json::from_str(text) {
            Ok(v) => v,
            Err(json_err) => serde_yaml::from_str(text).map_err(|yaml_err| {
                let message = if text.trim_start().starts_with('{') {
                    format!("not valid JSON: {json_err}")
                } else {
                    format!("neither JSON nor YAML: {yaml_err}")
                };
                err("", message)
            })?,
        };
        if !root.is_object() {
            return Err(err("", "the document must be an object"));
        }
        let version = root
            .get("openapi")
            .and_then(Value::as_str)
            .ok_or_else(|| {
                if root.get("swagger").is_some() {
                    err("/swagger", "Swagger 2.0 is not supported; convert to OpenAPI 3.0 or 3.1")
                } else {
                    err("/openapi", "missing: an OpenAPI 3.0 or 3.1 document starts with `openapi: 3.x.y`")
                }
            })?
            .to_owned();
        if !(version.starts_with("3.0") || version.starts_with("3.1")) {
            return Err(err("/openapi", format!("version {version} is not supported (use 3.0 or 3.1)")));
        }
        match root.get("paths") {
            Some(Value::Object(_)) => {}
            Some(_) => return Err(err("/paths", "must be an object")),
            None if version.starts_with("3.1") => {}
            None => return Err(err("/paths", "missing")),
        }
        let title = root.pointer("/info/title").and_then(Value::as_str).unwrap_or("untitled").to_owned();
        Ok(Document { root, version, title })
    }

    /// Follows `$ref`s (local ones: `#/…`) until a non-reference, detecting cycles.
    fn resolve<'a>(&'a self, mut v: &'a Value, at: &str) -> Result<&'a Value, SpecError> {
        let mut seen = BTreeSet::new();
        while let Some(r) = v.get("$ref").and_then(Value::as_str) {
            let Some(pointer) = r.strip_prefix('#') else {
                return Err(err(at, format!("external $ref {r:?} is not supported; bundle the document first")));
            };
            if !seen.insert(pointer.to_owned()) {
                return Err(err(at, format!("$ref cycle through {r}")));
            }
            v = self.root.pointer(pointer).ok_or_else(|| err(at, format!("$ref {r} points at nothing")))?;
        }
        Ok(v)
    }

    fn security_schemes(&self) -> Result<BTreeMap<String, Value>, SpecError> {
        let mut out = BTreeMap::new();
        if let Some(Value::Object(schemes)) = self.root.pointer("/components/securitySchemes") {
            for (name, s) in schemes {
                let at = format!("/components/securitySchemes/{}", escape(name));
                out.insert(name.clone(), self.resolve(s, &at)?.clone());
            }
        }
        Ok(out)
    }

    /// Every operation, in document order of paths and method order.
    pub fn operations(&self) -> Result<Vec<Operation>, SpecError> {
        self.operations_with(&BTreeMap::new())
    }

    /// Like [`Document::operations`], with parameter values given by name (`--var`).
    pub fn operations_with(&self, vars: &BTreeMap<String, String>) -> Result<Vec<Operation>, SpecError> {
        let schemes = self.security_schemes()?;
        let global = self.root.get("security");
        let mut ops = Vec::new();
        let Some(Value::Object(paths)) = self.root.get("paths") else { return Ok(ops) };
        for (path, item) in paths {
            let item_at = format!("/paths/{}", escape(path));
            let item = self.resolve(item, &item_at)?;
            let shared = item.get("parameters").cloned().unwrap_or(Value::Array(vec![]));
            for method in METHODS {
                let Some(op) = item.get(method) else { continue };
                let at = format!("{item_at}/{method}");
                let security = match op.get("security") {
                    Some(s) => classify(
                        s,
                        &schemes,
                        global.is_some_and(|g| g.as_array().is_some_and(|a| !a.is_empty())),
                        &format!("{at}/security"),
                    )?,
                    None => match global {
                        Some(g) => classify(g, &schemes, false, "/security")?,
                        None => Security::None { overrides_global: false },
                    },
                };
                let request = self.build_request(path, &shared, op, &at, vars);
                ops.push(Operation {
                    method: method.to_ascii_uppercase(),
                    path: path.clone(),
                    operation_id: op.get("operationId").and_then(Value::as_str).map(str::to_owned),
                    tags: op
                        .get("tags")
                        .and_then(Value::as_array)
                        .map(|t| t.iter().filter_map(Value::as_str).map(str::to_owned).collect())
                        .unwrap_or_default(),
                    security,
                    request,
                });
            }
        }
        Ok(ops)
    }

    fn build_request(
        &self,
        path: &str,
        shared: &Value,
        op: &Value,
        at: &str,
        vars: &BTreeMap<String, String>,
    ) -> Result<RequestTemplate, String> {
        let mut params: BTreeMap<(String, String), Value> = BTreeMap::new();
        for (list, list_at) in [
            (shared, format!("{at}/../parameters")),
            (op.get("parameters").unwrap_or(&Value::Null), format!("{at}/parameters")),
        ] {
            let Some(list) = list.as_array() else { continue };
            for (i, p) in list.iter().enumerate() {
                let p = self.resolve(p, &format!("{list_at}/{i}")).map_err(|e| e.to_string())?;
                let name = p.get("name").and_then(Value::as_str).unwrap_or_default().to_owned();
                let location = p.get("in").and_then(Value::as_str).unwrap_or_default().to_owned();
                params.insert((location, name), p.clone());
            }
        }
        let mut filled = path.to_owned();
        let mut query = Vec::new();
        let mut headers = Vec::new();
        for ((location, name), p) in &params {
            let required = location == "path" || p.get("required").and_then(Value::as_bool).unwrap_or(false);
            if !required {
                continue;
            }
            let value = match vars.get(name) {
                Some(v) => Value::String(v.clone()),
                None => self.param_value(p).map_err(|e| format!("parameter {name} ({location}): {e}"))?,
            };
            let text = match &value {
                Value::String(s) => s.clone(),
                other => other.to_string(),
            };
            match location.as_str() {
                "path" => filled = filled.replace(&format!("{{{name}}}"), &percent(&text)),
                "query" => query.push((name.clone(), text)),
                "header" if !name.eq_ignore_ascii_case("authorization") => headers.push((name.clone(), text)),
                _ => {}
            }
        }
        if filled.contains('{') {
            return Err(format!("path {path} has parameters that are not declared"));
        }
        let body = match op.get("requestBody") {
            None => None,
            Some(rb) => {
                let rb = self.resolve(rb, &format!("{at}/requestBody")).map_err(|e| e.to_string())?;
                let media = rb.pointer("/content/application~1json").or_else(|| {
                    rb.get("content")
                        .and_then(Value::as_object)
                        .and_then(|c| c.iter().find(|(k, _)| k.contains("json")).map(|(_, v)| v))
                });
                match media {
                    Some(m) => Some(match m.get("example") {
                        Some(e) => e.clone(),
                        None => match m.get("examples").and_then(Value::as_object).and_then(|e| e.values().next()) {
                            Some(e) => self
                                .resolve(e, at)
                                .map_err(|e| e.to_string())?
                                .get("value")
                                .cloned()
                                .unwrap_or(Value::Null),
                            None => self
                                .instance(m.get("schema").unwrap_or(&json!({})), 0)
                                .map_err(|e| format!("request body: {e}"))?,
                        },
                    }),
                    None if rb.get("required").and_then(Value::as_bool).unwrap_or(false) => {
                        return Err("the request body has no JSON media type to build".into())
                    }
                    None => None,
                }
            }
        };
        if body.is_some() {
            headers.push(("content-type".into(), "application/json".into()));
        }
        Ok(RequestTemplate { path: filled, query, headers, body })
    }

    fn param_value(&self, p: &Value) -> Result<Value, String> {
        if let Some(e) = p.get("example") {
            return Ok(e.clone());
        }
        if let Some(e) = p.get("examples").and_then(Value::as_object).and_then(|e| e.values().next()) {
            let e = self.resolve(e, "").map_err(|e| e.to_string())?;
            if let Some(v) = e.get("value") {
                return Ok(v.clone());
            }
        }
        match p.get("schema") {
            Some(s) => self.instance(s, 0),
            None => Err("no schema or example to build a value from".into()),
        }
    }

    /// A minimal valid instance of `schema`: examples, defaults, enums, then types.
    pub fn instance(&self, schema: &Value, depth: usize) -> Result<Value, String> {
        if depth > MAX_DEPTH {
            return Err("schema nesting too deep (a $ref cycle through required properties?)".into());
        }
        let s = self.resolve(schema, "").map_err(|e| e.message)?;
        for key in ["example", "default", "const"] {
            if let Some(v) = s.get(key) {
                return Ok(v.clone());
            }
        }
        if let Some(v) = s.get("examples").and_then(Value::as_array).and_then(|a| a.first()) {
            return Ok(v.clone());
        }
        if let Some(v) = s.get("enum").and_then(Value::as_array).and_then(|a| a.first()) {
            return Ok(v.clone());
        }
        for key in ["allOf", "oneOf", "anyOf"] {
            if let Some(list) = s.get(key).and_then(Value::as_array) {
                if key == "allOf" {
                    let mut merged = Map::new();
                    for part in list {
                        if let Value::Object(m) = self.instance(part, depth + 1)? {
                            merged.extend(m);
                        }
                    }
                    return Ok(Value::Object(merged));
                }
                if let Some(first) = list.first() {
                    return self.instance(first, depth + 1);
                }
            }
        }
        let ty = match s.get("type") {
            Some(Value::String(t)) => t.clone(),
            // 3.1: a list of types; take the first that is not null.
            Some(Value::Array(ts)) => {
                ts.iter().filter_map(Value::as_str).find(|t| *t != "null").unwrap_or("null").to_owned()
            }
            _ if s.get("properties").is_some() => "object".into(),
            _ => "string".into(),
        };
        Ok(match ty.as_str() {
            "object" => {
                let mut out = Map::new();
                let required: Vec<&str> = s
                    .get("required")
                    .and_then(Value::as_array)
                    .map(|r| r.iter().filter_map(Value::as_str).collect())
                    .unwrap_or_default();
                for name in required {
                    let prop = s.pointer(&format!("/properties/{}", escape(name))).cloned().unwrap_or(json!({}));
                    out.insert(name.to_owned(), self.instance(&prop, depth + 1)?);
                }
                Value::Object(out)
            }
            "array" => {
                let min = s.get("minItems").and_then(Value::as_u64).unwrap_or(0);
                let item = s.get("items").cloned().unwrap_or(json!({}));
                Value::Array((0..min.min(10)).map(|_| self.instance(&item, depth + 1)).collect::<Result<_, _>>()?)
            }
            "integer" => json!(s.get("minimum").and_then(Value::as_i64).unwrap_or(1)),
            "number" => json!(s.get("minimum").and_then(Value::as_f64).unwrap_or(1.0)),
            "boolean" => json!(true),
            "null" => Value::Null,
            _ => json!(match s.get("format").and_then(Value::as_str) {
                Some("uuid") => "00000000-0000-4000-8000-000000000001".to_owned(),
                Some("date-time") => "2026-01-01T00:00:00Z".to_owned(),
                Some("date") => "2026-01-01".to_owned(),
                Some("email") => "qa@example.com".to_owned(),
                Some("uri") | Some("url") => "https://example.com/".to_owned(),
                _ => "a".repeat(s.get("minLength").and_then(Value::as_u64).unwrap_or(1).clamp(1, 64) as usize),
            }),
        })
    }
}

fn classify(
    requirements: &Value,
    schemes: &BTreeMap<String, Value>,
    global_secured: bool,
    at: &str,
) -> Result<Security, SpecError> {
    let list = requirements.as_array().ok_or_else(|| err(at, "security must be a list of requirement objects"))?;
    if list.is_empty() || list.iter().any(|r| r.as_object().is_some_and(Map::is_empty)) {
        return Ok(Security::None { overrides_global: global_secured && list.is_empty() });
    }
    let mut other = Vec::new();
    for (i, req) in list.iter().enumerate() {
        let req = req.as_object().ok_or_else(|| err(format!("{at}/{i}"), "must be an object"))?;
        for (name, scopes) in req {
            let scheme = schemes.get(name).ok_or_else(|| {
                err(
                    format!("{at}/{i}/{}", escape(name)),
                    format!("security scheme {name:?} is not defined in /components/securitySchemes"),
                )
            })?;
            let ty = scheme.get("type").and_then(Value::as_str).unwrap_or_default();
            let bearer = match ty {
                "http" => {
                    scheme.get("scheme").and_then(Value::as_str).is_some_and(|s| s.eq_ignore_ascii_case("bearer"))
                }
                "oauth2" | "openIdConnect" => true,
                _ => false,
            };
            if bearer {
                let scopes = scopes
                    .as_array()
                    .map(|a| a.iter().filter_map(Value::as_str).map(str::to_owned).collect())
                    .unwrap_or_default();
                return Ok(Security::Bearer { scheme: name.clone(), scopes });
            }
            other.push(name.clone());
        }
    }
    Ok(Security::Other { schemes: other })
}

/// RFC 6901 escaping of one pointer segment.
fn escape(s: &str) -> String {
    s.replace('~', "~0").replace('/', "~1")
}

fn percent(s: &str) -> String {
    s.bytes()
        .map(|b| {
            if b.is_ascii_alphanumeric() || b"-._~".contains(&b) {
                (b as char).to_string()
            } else {
                format!("%{b:02X}")
            }
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    const ORDERS: &str = r##"
openapi: 3.1.0
info: { title: Orders, version: "1" }
security: [ { bearer: [] } ]
components:
  securitySchemes:
    bearer: { type: http, scheme: bearer, bearerFormat: JWT }
    oauth: { type: oauth2, flows: { clientCredentials: { tokenUrl: /t, scopes: { orders:read: r, orders:write: w } } } }
    key: { type: apiKey, in: header, name: X-Key }
  schemas:
    Order:
      type: object
      required: [item, quantity]
      properties:
        item: { type: string, minLength: 3 }
        quantity: { type: integer, minimum: 1 }
        note: { type: string }
    Node:
      type: object
      required: [next]
      properties: { next: { $ref: "#/components/schemas/Node" } }
paths:
  /orders:
    get:
      operationId: listOrders
      tags: [orders]
      security: [ { oauth: [orders:read] } ]
      parameters: [ { name: limit, in: query, required: true, schema: { type: integer, minimum: 5 } } ]
    post:
      operationId: createOrder
      security: [ { oauth: [orders:write] } ]
      requestBody: { required: true, content: { application/json: { schema: { $ref: "#/components/schemas/Order" } } } }
  /orders/{id}:
    parameters: [ { name: id, in: path, required: true, schema: { type: string, format: uuid } } ]
    get: { operationId: getOrder }
    delete: { operationId: deleteOrder, security: [] }
  /health:
    get: { security: [ { key: [] } ] }
  /loop:
    post:
      requestBody: { content: { application/json: { schema: { $ref: "#/components/schemas/Node" } } } }
"##;

    #[test]
    fn operations_security_and_requests_are_derived() {
        let doc = Document::parse(ORDERS).unwrap();
        let ops = doc.operations().unwrap();
        let by = |name: &str| ops.iter().find(|o| o.name() == name).unwrap();
        let list = by("GET /orders");
        assert_eq!(list.security, Security::Bearer { scheme: "oauth".into(), scopes: vec!["orders:read".into()] });
        assert_eq!(list.request.as_ref().unwrap().query, vec![("limit".to_owned(), "5".to_owned())]);
        let create = by("POST /orders");
        assert_eq!(create.request.as_ref().unwrap().body, Some(json!({"item": "aaa", "quantity": 1})));
        let get = by("GET /orders/{id}");
        assert_eq!(get.security, Security::Bearer { scheme: "bearer".into(), scopes: vec![] });
        assert_eq!(get.request.as_ref().unwrap().path, "/orders/00000000-0000-4000-8000-000000000001");
        assert_eq!(by("DELETE /orders/{id}").security, Security::None { overrides_global: true });
        assert_eq!(by("GET /health").security, Security::Other { schemes: vec!["key".into()] });
        let looped = by("POST /loop");
        assert!(looped.request.as_ref().unwrap_err().contains("too deep"), "{:?}", looped.request);
    }

    #[test]
    fn bad_documents_name_the_pointer() {
        let cases = [
            ("{\"swagger\": \"2.0\"}", "/swagger", "Swagger 2.0"),
            ("{\"openapi\": \"4.0.0\", \"paths\": {}}", "/openapi", "not supported"),
            ("{\"info\": {}}", "/openapi", "missing"),
            ("{\"openapi\": \"3.0.3\"}", "/paths", "missing"),
            ("{\"openapi\": \"3.0.3\", \"paths\": []}", "/paths", "must be an object"),
            ("{ not json", "", "not valid JSON"),
        ];
        for (text, pointer, needle) in cases {
            let e = Document::parse(text).unwrap_err();
            assert_eq!(e.pointer, pointer, "{text}: {e}");
            assert!(e.message.contains(needle), "{text}: {e}");
        }
        let undefined = "openapi: 3.0.3\ninfo: {title: x, version: '1'}\npaths:\n  /a:\n    get:\n      security: [ { nope: [] } ]\n";
        let e = Document::parse(undefined).unwrap().operations().unwrap_err();
        assert_eq!(e.pointer, "/paths/~1a/get/security/0/nope");
        let cycle = "openapi: 3.0.3\ninfo: {title: x, version: '1'}\npaths:\n  /a: { $ref: '#/paths/~1b' }\n  /b: { $ref: '#/paths/~1a' }\n";
        let e = Document::parse(cycle).unwrap().operations().unwrap_err();
        assert!(e.message.contains("$ref cycle"), "{e}");
    }
}
