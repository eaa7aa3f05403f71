//! The request arguments `connpool get` and `connpool bench` share: the
//! URL, `-X` (method), `-H` (header fields) and `-d` (body); and the
//! duration syntax of `bench --duration` and `probe --max-wait`.
//!
//! Each subcommand declares these arguments itself, because their help
//! texts differ (`get` also takes `--data-file`), and uses the value
//! parsers and helpers here, so the two parse them alike.

use std::time::Duration;

use connpool::http::HostKey;
use http::header::{HeaderMap, HeaderName, HeaderValue};
use http::{Method, Uri};

/// One `-H` argument.
#[derive(Clone, Debug)]
pub struct HeaderField {
    name: HeaderName,
    value: HeaderValue,
}

/// The URL argument's value parser: a URL the client can request.
pub fn parse_url(text: &str) -> Result<Uri, String> {
    let uri: Uri = text.parse().map_err(|e| format!("{e}"))?;
    // The client checks the same when sending; checking here turns a URL it
    // can never request into a usage error instead of a failure per request.
    HostKey::from_uri(&uri).map_err(|e| e.to_string())?;
    Ok(uri)
}

/// `-X`'s value parser.
pub fn parse_method(text: &str) -> Result<Method, String> {
    Method::from_bytes(text.as_bytes()).map_err(|e| e.to_string())
}

/// `-H`'s value parser: `Name: value`, white space around either trimmed.
pub fn parse_header(text: &str) -> Result<HeaderField, String> {
    let (name, value) = text
        .split_once(':')
        .ok_or_else(|| "expected `Name: value`".to_string())?;
    let name = HeaderName::from_bytes(name.trim().as_bytes())
        .map_err(|e| format!("bad header name {:?}: {e}", name.trim()))?;
    let value = HeaderValue::from_str(value.trim())
        .map_err(|e| format!("bad value for header {name}: {e}"))?;
    Ok(HeaderField { name, value })
}

/// The method to send: the one given with `-X`, else POST with a body and
/// GET without.
pub fn method_or_default(method: Option<&Method>, has_body: bool) -> Method {
    match method {
        Some(method) => method.clone(),
        None if has_body => Method::POST,
        None => Method::GET,
    }
}

/// The `-H` fields as header fields to send, in the order given (a name
/// given twice is sent twice).
pub fn header_map(fields: &[HeaderField]) -> HeaderMap {
    let mut headers = HeaderMap::new();
    for field in fields {
        headers.append(field.name.clone(), field.value.clone());
    }
    headers
}

/// `500ms`, `10s`, `1.5s`, `2m`, `1h`, or a bare number of seconds: the
/// durations of `bench --duration` and `probe --max-wait`.
pub fn parse_duration(text: &str) -> Result<Duration, String> {
    let text = text.trim();
    let split = text
        .find(|c: char| !(c.is_ascii_digit() || c == '.'))
        .unwrap_or(text.len());
    let (number, unit) = text.split_at(split);
    let number: f64 = number
        .parse()
        .map_err(|_| format!("expected a duration like 10s or 500ms, got {text:?}"))?;
    let seconds = match unit.trim() {
        "ms" => number / 1000.0,
        "" | "s" => number,
        "m" => number * 60.0,
        "h" => number * 3600.0,
        other => return Err(format!("unknown unit {other:?} (use ms, s, m or h)")),
    };
    let duration = Duration::try_from_secs_f64(seconds).map_err(|e| e.to_string())?;
    if duration.is_zero() {
        return Err("the duration must be above zero".to_string());
    }
    Ok(duration)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn headers_parse_trimmed_and_keep_repeats() {
        let fields = [
            parse_header("X-Test:  1 ").expect("valid"),
            parse_header("x-test:2").expect("valid"),
        ];
        let headers = header_map(&fields);
        let values: Vec<_> = headers.get_all("x-test").iter().collect();
        assert_eq!(values, ["1", "2"]);
        assert!(parse_header("no colon").is_err());
        assert!(parse_header("bad name: x").is_err());
    }

    #[test]
    fn method_defaults_to_post_with_a_body() {
        assert_eq!(method_or_default(None, false), Method::GET);
        assert_eq!(method_or_default(None, true), Method::POST);
        assert_eq!(method_or_default(Some(&Method::PUT), true), Method::PUT);
    }

    #[test]
    fn durations_parse_with_units() {
        assert_eq!(parse_duration("500ms"), Ok(Duration::from_millis(500)));
        assert_eq!(parse_duration("10s"), Ok(Duration::from_secs(10)));
        assert_eq!(parse_duration("1.5s"), Ok(Duration::from_millis(1500)));
        assert_eq!(parse_duration("2m"), Ok(Duration::from_secs(120)));
        assert_eq!(parse_duration("3"), Ok(Duration::from_secs(3)));
        assert!(parse_duration("0s").is_err());
        assert!(parse_duration("10 parsecs").is_err());
        assert!(parse_duration("s").is_err());
    }
}
