//! The request arguments `connpool get` and `connpool bench` share: the
//! URL, `-X` (method), `-H` (header fields) and `-d` (body).
//!
//! Each subcommand declares these arguments itself, because their help
//! texts differ (`get` also takes `--data-file`), and uses the value
//! parsers and helpers here, so the two parse them alike.

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
}
