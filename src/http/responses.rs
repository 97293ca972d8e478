//! Error responses that many operations share, for the OpenAPI document: written once here
//! instead of in every handler's annotation.

use std::collections::BTreeMap;

use utoipa::IntoResponses;
use utoipa::openapi::{ContentBuilder, Ref, RefOr, Response, ResponseBuilder};

use crate::http::error::PROBLEM_JSON;

/// 400, 413 and 415: what any operation reading a JSON body can answer.
#[derive(Debug)]
pub struct JsonBodyErrors;

/// 503: what any operation that needs the database can answer.
#[derive(Debug)]
pub struct DatabaseUnavailable;

fn problems(list: &[(&str, &str)]) -> BTreeMap<String, RefOr<Response>> {
    list.iter()
        .map(|(status, description)| {
            let content = ContentBuilder::new()
                .schema(Some(Ref::from_schema_name("Problem")))
                .build();
            let response = ResponseBuilder::new()
                .description(*description)
                .content(PROBLEM_JSON, content)
                .build();
            ((*status).to_owned(), response.into())
        })
        .collect()
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

impl IntoResponses for DatabaseUnavailable {
    fn responses() -> BTreeMap<String, RefOr<Response>> {
        problems(&[("503", "Database unavailable")])
    }
}
