//! A small JSON Schema (draft-04) checker for the image-spec v1.1.1 schemas in
//! `/work/shared/schema/image-spec-v1.1.1`: the keywords those schemas use (`type`,
//! `properties`, `patternProperties`, `required`, `items`, `minItems`, `minimum`, `maximum`,
//! `pattern`, `enum`, `oneOf`, `$ref` to a file of the same directory and a JSON pointer).
//! `format` is not checked.

use std::collections::HashMap;
use std::path::PathBuf;

use serde_json::Value;

/// Where the schemas are: `OCIKIT_SCHEMA_DIR`, else the shared copy.
pub(crate) fn schema_dir() -> Option<PathBuf> {
    let dir = std::env::var_os("OCIKIT_SCHEMA_DIR")
        .map(PathBuf::from)
        .unwrap_or_else(|| {
            PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("tests/schema/image-spec-v1.1.1")
        });
    dir.is_dir().then_some(dir)
}

pub(crate) struct Schemas {
    files: HashMap<String, Value>,
}

impl Schemas {
    pub(crate) fn load() -> Option<Self> {
        let dir = schema_dir()?;
        let mut files = HashMap::new();
        for entry in std::fs::read_dir(dir).ok()? {
            let path = entry.ok()?.path();
            if path.extension().is_some_and(|e| e == "json") {
                let v: Value = serde_json::from_slice(&std::fs::read(&path).ok()?).ok()?;
                files.insert(path.file_name()?.to_string_lossy().into_owned(), v);
            }
        }
        Some(Schemas { files })
    }

    /// The errors of `doc` against the schema file `file` (empty when valid).
    pub(crate) fn check(&self, file: &str, doc: &Value) -> Vec<String> {
        let mut errors = Vec::new();
        let schema = &self.files[file];
        self.walk(file, schema, doc, "$", &mut errors);
        errors
    }

    fn resolve<'a>(&'a self, file: &str, reference: &str) -> (String, &'a Value) {
        let (target, pointer) = reference.split_once('#').unwrap_or((reference, ""));
        let target = if target.is_empty() { file } else { target };
        let root = self
            .files
            .get(target)
            .unwrap_or_else(|| panic!("schema {target} not found"));
        let node = if pointer.is_empty() {
            root
        } else {
            root.pointer(pointer)
                .unwrap_or_else(|| panic!("{target}#{pointer} not found"))
        };
        (target.to_owned(), node)
    }

    fn walk(&self, file: &str, schema: &Value, doc: &Value, at: &str, errors: &mut Vec<String>) {
        let Some(s) = schema.as_object() else { return };
        if let Some(Value::String(r)) = s.get("$ref") {
            let (f, target) = self.resolve(file, r);
            self.walk(&f, target, doc, at, errors);
            return;
        }
        if let Some(t) = s.get("type") {
            let types: Vec<&str> = match t {
                Value::String(t) => vec![t.as_str()],
                Value::Array(ts) => ts.iter().filter_map(Value::as_str).collect(),
                _ => vec![],
            };
            let ok = types.iter().any(|t| match *t {
                "object" => doc.is_object(),
                "array" => doc.is_array(),
                "string" => doc.is_string(),
                "integer" => doc.is_i64() || doc.is_u64(),
                "number" => doc.is_number(),
                "boolean" => doc.is_boolean(),
                "null" => doc.is_null(),
                _ => true,
            });
            if !ok {
                errors.push(format!("{at}: expected {types:?}, got {doc}"));
                return;
            }
        }
        if let Some(Value::Array(options)) = s.get("enum")
            && !options.contains(doc)
        {
            errors.push(format!("{at}: {doc} not in {options:?}"));
        }
        if let Some(Value::Array(options)) = s.get("oneOf") {
            let matching = options
                .iter()
                .filter(|o| {
                    let mut e = Vec::new();
                    self.walk(file, o, doc, at, &mut e);
                    e.is_empty()
                })
                .count();
            if matching != 1 {
                errors.push(format!("{at}: matches {matching} of oneOf, not 1"));
            }
        }
        if let (Some(min), Some(n)) = (s.get("minimum").and_then(Value::as_f64), doc.as_f64())
            && n < min
        {
            errors.push(format!("{at}: {n} < minimum {min}"));
        }
        if let (Some(max), Some(n)) = (s.get("maximum").and_then(Value::as_f64), doc.as_f64())
            && n > max
        {
            errors.push(format!("{at}: {n} > maximum {max}"));
        }
        if let (Some(Value::String(p)), Some(text)) = (s.get("pattern"), doc.as_str())
            && !regex::Regex::new(p).unwrap().is_match(text)
        {
            errors.push(format!("{at}: {text:?} does not match {p}"));
        }
        if let Some(obj) = doc.as_object() {
            if let Some(Value::Array(required)) = s.get("required") {
                for r in required.iter().filter_map(Value::as_str) {
                    if !obj.contains_key(r) {
                        errors.push(format!("{at}: missing required {r}"));
                    }
                }
            }
            if let Some(Value::Object(props)) = s.get("properties") {
                for (k, sub) in props {
                    if let Some(v) = obj.get(k) {
                        self.walk(file, sub, v, &format!("{at}.{k}"), errors);
                    }
                }
            }
            if let Some(Value::Object(patterns)) = s.get("patternProperties") {
                for (p, sub) in patterns {
                    let re = regex::Regex::new(p).unwrap();
                    for (k, v) in obj.iter().filter(|(k, _)| re.is_match(k)) {
                        self.walk(file, sub, v, &format!("{at}.{k}"), errors);
                    }
                }
            }
        }
        if let Some(items) = doc.as_array() {
            if let Some(min) = s.get("minItems").and_then(Value::as_u64)
                && (items.len() as u64) < min
            {
                errors.push(format!("{at}: fewer than {min} items"));
            }
            if let Some(sub) = s.get("items") {
                for (i, v) in items.iter().enumerate() {
                    self.walk(file, sub, v, &format!("{at}[{i}]"), errors);
                }
            }
        }
    }
}
