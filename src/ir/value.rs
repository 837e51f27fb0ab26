//! Typed values: durations, parameter types and literal values.

use std::fmt;
use std::time::Duration;

/// A duration as written (`30s`, `1h30m`) and its length.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DurationValue {
    /// The length.
    pub duration: Duration,
    /// The text as written, for display and templates.
    pub text: String,
}

/// Parses `30s`, `45m`, `4h`, `30d`, `2w`, `500ms` and sums like `1h30m`.
pub fn parse_duration(text: &str) -> Result<DurationValue, String> {
    if text.is_empty() {
        return Err("empty duration".into());
    }
    let mut total: u64 = 0;
    let mut rest = text;
    while !rest.is_empty() {
        let digits = rest.len() - rest.trim_start_matches(|c: char| c.is_ascii_digit()).len();
        if digits == 0 {
            return Err(format!("`{text}` is not a duration"));
        }
        let number: u64 = rest[..digits]
            .parse()
            .map_err(|_| format!("`{text}` is too large"))?;
        rest = &rest[digits..];
        let unit_len = rest.len()
            - rest
                .trim_start_matches(|c: char| c.is_ascii_alphabetic())
                .len();
        let unit = &rest[..unit_len];
        rest = &rest[unit_len..];
        let millis_per: u64 = match unit {
            "ms" => 1,
            "s" => 1_000,
            "m" => 60_000,
            "h" => 3_600_000,
            "d" => 86_400_000,
            "w" => 604_800_000,
            "" => return Err(format!("`{text}` has no unit")),
            other => return Err(format!("`{other}` is not a duration unit")),
        };
        total = number
            .checked_mul(millis_per)
            .and_then(|m| total.checked_add(m))
            .ok_or_else(|| format!("`{text}` is too large"))?;
    }
    Ok(DurationValue {
        duration: Duration::from_millis(total),
        text: text.to_string(),
    })
}

/// The help line for a bad duration.
pub const DURATION_HELP: &str =
    "write a number and a unit: 500ms, 30s, 45m, 4h, 30d, 2w, or a sum like 1h30m";

/// The type of a parameter.
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize)]
#[serde(rename_all = "lowercase")]
pub enum ParamType {
    /// Text.
    String,
    /// A whole number.
    Int,
    /// `true` / `false`.
    Bool,
    /// `30m`, `4h`…
    Duration,
    /// A list of values.
    List,
}

impl ParamType {
    /// The type named `name`, if it exists.
    pub fn from_name(name: &str) -> Option<ParamType> {
        Some(match name {
            "string" => ParamType::String,
            "int" => ParamType::Int,
            "bool" => ParamType::Bool,
            "duration" => ParamType::Duration,
            "list" => ParamType::List,
            _ => return None,
        })
    }

    /// Its name in the language.
    pub fn name(self) -> &'static str {
        match self {
            ParamType::String => "string",
            ParamType::Int => "int",
            ParamType::Bool => "bool",
            ParamType::Duration => "duration",
            ParamType::List => "list",
        }
    }

    /// Parses a command-line value (`--param k=v`) of this type.
    pub fn parse_value(self, text: &str) -> Result<Value, String> {
        match self {
            ParamType::String => Ok(Value::String(text.to_string())),
            ParamType::Int => text
                .trim()
                .parse()
                .map(Value::Int)
                .map_err(|_| format!("`{text}` is not an int")),
            ParamType::Bool => match text.trim() {
                "true" | "yes" | "1" => Ok(Value::Bool(true)),
                "false" | "no" | "0" => Ok(Value::Bool(false)),
                _ => Err(format!("`{text}` is not a bool (true or false)")),
            },
            ParamType::Duration => parse_duration(text.trim()).map(Value::Duration),
            ParamType::List => {
                if let Ok(serde_json::Value::Array(items)) = serde_json::from_str(text) {
                    return Ok(Value::List(items.iter().map(Value::from_json).collect()));
                }
                Ok(Value::List(
                    text.split(',')
                        .map(str::trim)
                        .filter(|s| !s.is_empty())
                        .map(|s| Value::String(s.to_string()))
                        .collect(),
                ))
            }
        }
    }

    /// Checks a JSON value (from `--params FILE`) against this type.
    pub fn from_json(self, json: &serde_json::Value) -> Result<Value, String> {
        match (self, json) {
            (ParamType::String, serde_json::Value::String(s)) => Ok(Value::String(s.clone())),
            (ParamType::Int, serde_json::Value::Number(n)) if n.is_i64() => {
                Ok(Value::Int(n.as_i64().unwrap_or_default()))
            }
            (ParamType::Bool, serde_json::Value::Bool(b)) => Ok(Value::Bool(*b)),
            (ParamType::Duration, serde_json::Value::String(s)) => {
                parse_duration(s).map(Value::Duration)
            }
            (ParamType::List, serde_json::Value::Array(items)) => {
                Ok(Value::List(items.iter().map(Value::from_json).collect()))
            }
            (ty, other) => Err(format!("expected a {}, found `{other}`", ty.name())),
        }
    }
}

/// A parameter value.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Value {
    /// Text.
    String(String),
    /// A whole number.
    Int(i64),
    /// A boolean.
    Bool(bool),
    /// A duration.
    Duration(DurationValue),
    /// A list.
    List(Vec<Value>),
}

impl Value {
    /// The value as JSON, which is also what templates see (durations as written).
    pub fn to_json(&self) -> serde_json::Value {
        match self {
            Value::String(s) => serde_json::Value::String(s.clone()),
            Value::Int(i) => serde_json::Value::from(*i),
            Value::Bool(b) => serde_json::Value::Bool(*b),
            Value::Duration(d) => serde_json::Value::String(d.text.clone()),
            Value::List(items) => {
                serde_json::Value::Array(items.iter().map(Value::to_json).collect())
            }
        }
    }

    /// A loosely typed value from JSON (list items).
    pub fn from_json(json: &serde_json::Value) -> Value {
        match json {
            serde_json::Value::String(s) => Value::String(s.clone()),
            serde_json::Value::Bool(b) => Value::Bool(*b),
            serde_json::Value::Number(n) if n.is_i64() => {
                Value::Int(n.as_i64().unwrap_or_default())
            }
            serde_json::Value::Array(items) => {
                Value::List(items.iter().map(Value::from_json).collect())
            }
            other => Value::String(other.to_string()),
        }
    }

    /// The type of this value.
    pub fn type_name(&self) -> &'static str {
        match self {
            Value::String(_) => "string",
            Value::Int(_) => "int",
            Value::Bool(_) => "bool",
            Value::Duration(_) => "duration",
            Value::List(_) => "list",
        }
    }
}

impl fmt::Display for Value {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Value::String(s) => write!(f, "{s:?}"),
            Value::Int(i) => write!(f, "{i}"),
            Value::Bool(b) => write!(f, "{b}"),
            Value::Duration(d) => f.write_str(&d.text),
            Value::List(items) => {
                f.write_str("[")?;
                for (i, item) in items.iter().enumerate() {
                    if i > 0 {
                        f.write_str(", ")?;
                    }
                    write!(f, "{item}")?;
                }
                f.write_str("]")
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn durations() {
        assert_eq!(
            parse_duration("30s").unwrap().duration,
            Duration::from_secs(30)
        );
        assert_eq!(
            parse_duration("1h30m").unwrap().duration,
            Duration::from_secs(5400)
        );
        assert_eq!(
            parse_duration("30d").unwrap().duration,
            Duration::from_secs(30 * 86400)
        );
        assert_eq!(
            parse_duration("250ms").unwrap().duration,
            Duration::from_millis(250)
        );
        assert!(parse_duration("30").unwrap_err().contains("no unit"));
        assert!(parse_duration("30x").unwrap_err().contains("`x`"));
        assert!(parse_duration("h").is_err());
        assert!(parse_duration("99999999999999999999d").is_err());
    }

    #[test]
    fn cli_values() {
        assert_eq!(ParamType::Int.parse_value("42").unwrap(), Value::Int(42));
        assert!(ParamType::Int.parse_value("x").is_err());
        assert_eq!(
            ParamType::Bool.parse_value("true").unwrap(),
            Value::Bool(true)
        );
        assert_eq!(
            ParamType::List.parse_value("a, b").unwrap(),
            Value::List(vec![Value::String("a".into()), Value::String("b".into())])
        );
    }
}
