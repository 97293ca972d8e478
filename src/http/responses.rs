//! Error responses that many operations share, for the OpenAPI document: written once here
//! instead of in every handler's annotation.

use std::collections::BTreeMap;

use utoipa::IntoResponses;
use utoipa::openapi::schema::{ObjectBuilder, Type};
use utoipa::openapi::{ContentBuilder, HeaderBuilder, Ref, RefOr, Response, ResponseBuilder};

use crate::http::error::PROBLEM_JSON;

/// 400, 413 and 415: what any operation reading a JSON body can answer.
#[derive(Debug)]
pub struct JsonBodyErrors;

/// 503: what any operation that needs the database can answer.
#[derive(Debug)]
pub struct DatabaseUnavailable;

/// The name, under `components/responses`, of the 405 that every operation references.
pub const METHOD_NOT_ALLOWED: &str = "MethodNotAllowed";

fn problem(description: &str) -> ResponseBuilder {
    let content = ContentBuilder::new()
        .schema(Some(Ref::from_schema_name("Problem")))
        .build();
    ResponseBuilder::new()
        .description(description)
        .content(PROBLEM_JSON, content)
}

fn problems(list: &[(&str, &str)]) -> BTreeMap<String, RefOr<Response>> {
    list.iter()
        .map(|(status, description)| ((*status).to_owned(), problem(description).build().into()))
        .collect()
}

/// 405: axum's answer, with `Allow`, to a method a path does not have.
pub fn method_not_allowed() -> Response {
    let allow = HeaderBuilder::new()
        .schema(ObjectBuilder::new().schema_type(Type::String))
        .description(Some("The methods this path has, e.g. `GET,HEAD`"))
        .build();
    problem("The path exists but not with this method")
        .header("Allow", allow)
        .build()
}

impl IntoResponses for JsonBodyErrors {
    fn responses() -> BTreeMap<String, RefOr<Response>> {
        problems(&[
            ("400", "Unparseable body"),
            ("413", "Body over 64 KiB"),
            ("415", "Not application/json"),
        ])
    }
}

/// 503, with the `Retry-After` every 503 carries.
pub fn unavailable(description: &str) -> Response {
    let retry_after = HeaderBuilder::new()
        .schema(
            ObjectBuilder::new()
                .schema_type(Type::Integer)
                .minimum(Some(0)),
        )
        .description(Some("Seconds to wait before retrying"))
        .build();
    problem(description)
        .header("Retry-After", retry_after)
        .build()
}

impl IntoResponses for DatabaseUnavailable {
    fn responses() -> BTreeMap<String, RefOr<Response>> {
        let description = "The database is unavailable, or gave up on a statement (a row \
            held too long by a concurrent writer): nothing was changed, so the request can be \
            retried. Password routes also answer this when too many passwords are being checked \
            at once.";
        BTreeMap::from([("503".to_owned(), unavailable(description).into())])
    }
}
