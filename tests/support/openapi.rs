//! Checks answers against `docs/openapi.json`: the status must be documented for the route
//! and the body must match that response's schema (JSON Schema 2020-12, as OpenAPI 3.1 is).

use serde_json::{json, Value};
use std::collections::HashMap;
use std::sync::{Arc, LazyLock, Mutex};

/// `docs/openapi.json`, parsed.
pub static DOC: LazyLock<Value> =
    LazyLock::new(|| serde_json::from_str(TEXT).expect("docs/openapi.json is JSON"));

/// `docs/openapi.json` as committed.
pub const TEXT: &str = include_str!("../../docs/openapi.json");

/// Compiled response schemas by route and status.
type Validators = HashMap<(String, u16), Arc<jsonschema::Validator>>;

static VALIDATORS: LazyLock<Mutex<Validators>> = LazyLock::new(Mutex::default);

/// The documented route template a request path falls under, if any.
fn template(path: &str) -> Option<&'static str> {
    if path.starts_with("/v1/users/") {
        Some("/v1/users/{user_id}/{block}")
    } else if path == "/health" {
        Some("/health")
    } else if path == "/openapi.json" {
        Some("/openapi.json")
    } else {
        None
    }
}

/// Panics unless `status` is documented for `uri`'s route (any undocumented route must be a
/// `404` error) and `body` matches its schema.
pub fn check_response(uri: &str, status: u16, body: &Value) {
    let path = uri.split('?').next().unwrap_or(uri);
    let (key, schema) = match template(path) {
        Some(route) => {
            let response = &DOC["paths"][route]["get"]["responses"][status.to_string()];
            assert!(
                response.is_object(),
                "{uri}: status {status} is not documented for {route} in docs/openapi.json"
            );
            (
                route.to_owned(),
                response["content"]["application/json"]["schema"].clone(),
            )
        }
        None => {
            assert_eq!(status, 404, "{uri}: an undocumented route must be a 404");
            (
                "(no route)".to_owned(),
                json!({"$ref": "#/components/schemas/Error"}),
            )
        }
    };
    let validator = {
        let mut cache = VALIDATORS.lock().unwrap();
        cache
            .entry((key, status))
            .or_insert_with(|| {
                let root = json!({
                    "$schema": "https://json-schema.org/draft/2020-12/schema",
                    "allOf": [schema],
                    "components": DOC["components"].clone(),
                });
                Arc::new(jsonschema::validator_for(&root).expect("a valid schema"))
            })
            .clone()
    };
    let errors: Vec<String> = validator
        .iter_errors(body)
        .map(|e| format!("{} at {}", e, e.instance_path()))
        .collect();
    assert!(
        errors.is_empty(),
        "{uri} ({status}) does not match docs/openapi.json: {errors:?}\n{body}"
    );
}

/// Panics unless `status` is documented for `method` on the documented route `route` (a
/// template of `docs/openapi.json`'s `paths`, e.g. `/v1/events`) and `body` matches that
/// response's schema.
pub fn check_operation(route: &str, method: &str, status: u16, body: &Value) {
    let response = &DOC["paths"][route][method]["responses"][status.to_string()];
    assert!(
        response.is_object(),
        "{method} {route}: status {status} is not documented in docs/openapi.json"
    );
    let schema = response["content"]["application/json"]["schema"].clone();
    let validator = {
        let mut cache = VALIDATORS.lock().unwrap();
        cache
            .entry((format!("{method} {route}"), status))
            .or_insert_with(|| {
                let root = json!({
                    "$schema": "https://json-schema.org/draft/2020-12/schema",
                    "allOf": [schema],
                    "components": DOC["components"].clone(),
                });
                Arc::new(jsonschema::validator_for(&root).expect("a valid schema"))
            })
            .clone()
    };
    let errors: Vec<String> = validator
        .iter_errors(body)
        .map(|e| format!("{} at {}", e, e.instance_path()))
        .collect();
    assert!(
        errors.is_empty(),
        "{method} {route} ({status}) does not match docs/openapi.json: {errors:?}\n{body}"
    );
}

/// Panics unless `value` matches `docs/openapi.json`'s component schema `name` (e.g. an event
/// a test sends against `Event`).
pub fn check_schema(name: &str, value: &Value) {
    let root = json!({
        "$schema": "https://json-schema.org/draft/2020-12/schema",
        "$ref": format!("#/components/schemas/{name}"),
        "components": DOC["components"].clone(),
    });
    let validator = jsonschema::validator_for(&root).expect("a valid schema");
    let errors: Vec<String> = validator
        .iter_errors(value)
        .map(|e| format!("{} at {}", e, e.instance_path()))
        .collect();
    assert!(
        errors.is_empty(),
        "{value} does not match {name} in docs/openapi.json: {errors:?}"
    );
}
