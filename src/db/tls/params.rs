//! Takes libpq's TLS parameters (`sslmode`, `sslrootcert`) out of a connection string, in
//! either of the forms `tokio_postgres::Config::from_str` accepts, and hands back the rest
//! unchanged: tokio-postgres does not know `verify-ca`, `verify-full` or `sslrootcert`, so
//! they must never reach it. The tokenizing follows tokio-postgres's own parsers, so that
//! the rest means to it exactly what it meant before.

use percent_encoding::percent_decode_str;

/// The parameters taken out.
const TLS_KEYS: [&str; 2] = ["sslmode", "sslrootcert"];

/// The TLS parameters found, as written (the last occurrence wins, as in tokio-postgres).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct TlsParams {
    pub sslmode: Option<String>,
    pub sslrootcert: Option<String>,
}

impl TlsParams {
    /// Records `key = value` if the key is one of ours; whether it was.
    fn take(&mut self, key: &str, value: String) -> bool {
        match key {
            "sslmode" => self.sslmode = Some(value),
            "sslrootcert" => self.sslrootcert = Some(value),
            _ => return false,
        }
        true
    }
}

/// A parameter value that is not valid percent-encoded UTF-8.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("the value of {0} is not valid percent-encoded UTF-8")]
pub struct BadEncoding(pub &'static str);

/// Splits `conninfo` into what tokio-postgres should parse and our TLS parameters.
pub fn split(conninfo: &str) -> Result<(String, TlsParams), BadEncoding> {
    match url_body(conninfo) {
        Some(_) => split_url(conninfo),
        None => Ok(split_key_values(conninfo)),
    }
}

/// The part after the scheme, for the URL form.
fn url_body(conninfo: &str) -> Option<&str> {
    ["postgres://", "postgresql://"]
        .iter()
        .find_map(|prefix| conninfo.strip_prefix(prefix))
}

/// `postgres://user:pass@host/db?a=1&sslmode=verify-full`. As in tokio-postgres, the
/// credentials end at the first `@`, and the parameters start at the first `?` after it;
/// a parameter's key ends at the next `=` and its value at the next `&`.
fn split_url(conninfo: &str) -> Result<(String, TlsParams), BadEncoding> {
    let after_credentials = conninfo.find('@').map_or(0, |at| at + 1);
    let Some(question) = conninfo[after_credentials..]
        .find('?')
        .map(|q| q + after_credentials)
    else {
        return Ok((conninfo.to_owned(), TlsParams::default()));
    };
    let mut params = TlsParams::default();
    let mut kept: Vec<&str> = Vec::new();
    let mut rest = &conninfo[question + 1..];
    while !rest.is_empty() {
        let Some(equals) = rest.find('=') else {
            // tokio-postgres refuses this ("unterminated parameter"): leave it to say so.
            kept.push(rest);
            break;
        };
        let value_and_more = &rest[equals + 1..];
        let value_len = value_and_more.find('&').unwrap_or(value_and_more.len());
        let parameter = &rest[..equals + 1 + value_len];
        let key = percent_decode_str(&rest[..equals]).decode_utf8().ok();
        let ours = key.and_then(|key| TLS_KEYS.iter().copied().find(|ours| *ours == key));
        match ours {
            Some(name) => {
                let value = percent_decode_str(&value_and_more[..value_len])
                    .decode_utf8()
                    .map_err(|_| BadEncoding(name))?;
                params.take(name, value.into_owned());
            }
            None => kept.push(parameter),
        }
        rest = value_and_more.get(value_len + 1..).unwrap_or("");
    }
    let mut remaining = conninfo[..question].to_owned();
    if !kept.is_empty() {
        remaining.push('?');
        remaining.push_str(&kept.join("&"));
    }
    Ok((remaining, params))
}

/// `host=db.example.com sslmode=verify-full sslrootcert='/etc/ca dir/ca.pem'`: keywords,
/// optional whitespace around `=`, values bare or single-quoted, with `\` escaping the
/// next character. Our parameters are cut out; every other byte stays where it was.
fn split_key_values(conninfo: &str) -> (String, TlsParams) {
    let mut params = TlsParams::default();
    let mut remaining = String::with_capacity(conninfo.len());
    let mut kept_from = 0;
    let mut scanner = Scanner {
        text: conninfo,
        at: 0,
    };
    loop {
        scanner.skip_whitespace();
        let start = scanner.at;
        let Some((key, value)) = scanner.parameter() else {
            // The end, or something tokio-postgres will refuse: leave it to say so.
            break;
        };
        if params.take(key, value) {
            remaining.push_str(&conninfo[kept_from..start]);
            kept_from = scanner.at;
        }
    }
    remaining.push_str(&conninfo[kept_from..]);
    (remaining, params)
}

/// A cursor over a key=value connection string.
struct Scanner<'a> {
    text: &'a str,
    at: usize,
}

impl<'a> Scanner<'a> {
    fn peek(&self) -> Option<char> {
        self.text[self.at..].chars().next()
    }

    fn bump(&mut self) -> Option<char> {
        let c = self.peek()?;
        self.at += c.len_utf8();
        Some(c)
    }

    fn skip_whitespace(&mut self) {
        while self.peek().is_some_and(char::is_whitespace) {
            self.bump();
        }
    }

    /// One `key = value`, or `None` at the end or on a syntax error.
    fn parameter(&mut self) -> Option<(&'a str, String)> {
        let start = self.at;
        while self.peek().is_some_and(|c| !c.is_whitespace() && c != '=') {
            self.bump();
        }
        let key = &self.text[start..self.at];
        if key.is_empty() {
            return None;
        }
        self.skip_whitespace();
        if self.bump() != Some('=') {
            return None;
        }
        self.skip_whitespace();
        let value = if self.peek() == Some('\'') {
            self.bump();
            let value = self.value_until(|c| c == '\'');
            (self.bump() == Some('\'')).then_some(value)?
        } else {
            let value = self.value_until(char::is_whitespace);
            (!value.is_empty()).then_some(value)?
        };
        Some((key, value))
    }

    /// Characters up to (not including) the first unescaped one that `ends`.
    fn value_until(&mut self, ends: impl Fn(char) -> bool) -> String {
        let mut value = String::new();
        while let Some(c) = self.peek() {
            if ends(c) {
                break;
            }
            self.bump();
            if c == '\\' {
                value.extend(self.bump());
            } else {
                value.push(c);
            }
        }
        value
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn params(sslmode: Option<&str>, sslrootcert: Option<&str>) -> TlsParams {
        TlsParams {
            sslmode: sslmode.map(str::to_owned),
            sslrootcert: sslrootcert.map(str::to_owned),
        }
    }

    #[test]
    fn url_parameters_are_taken_out_and_the_rest_is_kept_in_order() {
        let (rest, found) = split(
            "postgres://app:pw@db.example.com:5433/tasks?application_name=x&sslmode=verify-full\
             &connect_timeout=3&sslrootcert=%2Fetc%2Fca%20dir%2Fca.pem",
        )
        .unwrap();
        assert_eq!(
            rest,
            "postgres://app:pw@db.example.com:5433/tasks?application_name=x&connect_timeout=3"
        );
        assert_eq!(
            found,
            params(Some("verify-full"), Some("/etc/ca dir/ca.pem"))
        );
    }

    #[test]
    fn a_url_with_only_tls_parameters_loses_its_question_mark() {
        let (rest, found) =
            split("postgresql://localhost/db?sslmode=require&sslrootcert=/x/ca.pem").unwrap();
        assert_eq!(rest, "postgresql://localhost/db");
        assert_eq!(found, params(Some("require"), Some("/x/ca.pem")));
    }

    #[test]
    fn a_question_mark_in_the_password_is_not_the_query() {
        let (rest, found) = split("postgres://app:p?ss@localhost/db?sslmode=disable").unwrap();
        assert_eq!(rest, "postgres://app:p?ss@localhost/db");
        assert_eq!(found, params(Some("disable"), None));
        let (rest, found) = split("postgres://app:p?sslmode=x@localhost/db").unwrap();
        assert_eq!(rest, "postgres://app:p?sslmode=x@localhost/db");
        assert_eq!(found, TlsParams::default());
    }

    #[test]
    fn the_last_occurrence_wins() {
        let (_, found) = split("postgres://h/db?sslmode=disable&sslmode=verify-ca").unwrap();
        assert_eq!(found.sslmode.as_deref(), Some("verify-ca"));
        let (_, found) = split("host=h sslmode=disable sslmode=require").unwrap();
        assert_eq!(found.sslmode.as_deref(), Some("require"));
    }

    #[test]
    fn key_value_parameters_are_cut_out_and_everything_else_stays() {
        let (rest, found) = split(
            "host=db.example.com  sslmode = verify-ca user=app \
             sslrootcert='/etc/ca dir/it\\'s.pem' password='a b'",
        )
        .unwrap();
        assert_eq!(rest, "host=db.example.com   user=app  password='a b'");
        assert_eq!(
            found,
            params(Some("verify-ca"), Some("/etc/ca dir/it's.pem"))
        );
        let reparsed: tokio_postgres::Config = rest.parse().unwrap();
        assert_eq!(reparsed.get_password(), Some(&b"a b"[..]));
    }

    #[test]
    fn a_string_without_tls_parameters_is_unchanged() {
        for conninfo in [
            "postgres://app@localhost/db",
            "postgres://app@localhost/db?application_name=x",
            "host=localhost user=app",
            "",
        ] {
            assert_eq!(
                split(conninfo).unwrap(),
                (conninfo.to_owned(), TlsParams::default())
            );
        }
    }

    #[test]
    fn malformed_strings_are_left_for_tokio_postgres_to_refuse() {
        let (rest, _) = split("host=localhost sslmode").unwrap();
        assert!(rest.parse::<tokio_postgres::Config>().is_err());
        let (rest, _) = split("postgres://localhost/db?sslmode=require&oops").unwrap();
        assert!(rest.parse::<tokio_postgres::Config>().is_err());
    }

    #[test]
    fn a_badly_encoded_tls_value_is_refused() {
        assert_eq!(
            split("postgres://localhost/db?sslrootcert=%FF"),
            Err(BadEncoding("sslrootcert"))
        );
    }
}
