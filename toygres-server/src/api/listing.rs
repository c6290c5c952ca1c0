//! The query of the listings: `?limit=&page_token=&labels=&state=` and a source, turned into the
//! library's filters ([`ImageFilter`], [`InstanceFilter`]), which page through the catalog.

use super::error::ApiError;
use axum::extract::Query;
use axum::http::{StatusCode, Uri};
use serde::de::DeserializeOwned;
use serde::Deserialize;
use toygres_core::filter::MAX_PAGE;
use toygres_core::{Error, ImageFilter, ImageState, InstanceFilter, InstanceState, Labels, PageToken};
use utoipa::IntoParams;
use uuid::Uuid;

/// A listing's query: paging, labels and state shared, and the field naming its source.
macro_rules! list_query {
    ($(#[$doc:meta])* $name:ident, $state:ty, $states:literal, $source:ident, $source_doc:literal) => {
        $(#[$doc])*
        #[derive(Debug, Default, Deserialize, IntoParams)]
        #[serde(deny_unknown_fields)]
        #[into_params(parameter_in = Query)]
        pub struct $name {
            /// At most this many records (1-1000; default 1000).
            #[param(minimum = 1, maximum = 1000)]
            pub limit: Option<usize>,
            /// The `next_page_token` of the previous page.
            #[param(pattern = r"^-?[0-9]{1,18}\.[0-9a-f]{32}$")]
            pub page_token: Option<String>,
            /// Only records with every one of these labels: `key=value` pairs joined by commas.
            #[param(pattern = r"^([a-z0-9][-a-z0-9_./]{0,62}=[^,\x00-\x1f\x7f-\x9f]{0,64})?(,[a-z0-9][-a-z0-9_./]{0,62}=[^,\x00-\x1f\x7f-\x9f]{0,64}){0,63}$", example = "env=prod,team=db")]
            pub labels: Option<String>,
            /// Only records in this state.
            #[param(value_type = Option<String>, pattern = $states)]
            pub state: Option<$state>,
            #[doc = $source_doc]
            pub $source: Option<Uuid>,
        }
    };
}

list_query!(
    /// `GET /api/images` query.
    ImageQuery, ImageState, "^(creating|ready|failed|deleting|deleted)$", instance_id, "Only images of this instance."
);
list_query!(
    /// `GET /api/instances` query.
    InstanceQuery, InstanceState, "^(provisioning|running|failed|deleting|deleted)$", source_image_id,
    "Only instances restored from this image."
);

impl ImageQuery {
    /// The library's filter for this query; 400 naming the parameter when one is malformed.
    pub fn from_uri(uri: &Uri) -> Result<ImageFilter, ApiError> {
        let q: Self = parse(uri)?;
        let mut filter = ImageFilter::new();
        (filter.limit, filter.page_token, filter.labels) = paging(q.limit, q.page_token, q.labels)?;
        filter.state = q.state;
        filter.source_instance_id = q.instance_id.map(Into::into);
        Ok(filter)
    }
}

impl InstanceQuery {
    /// The library's filter for this query; 400 naming the parameter when one is malformed.
    pub fn from_uri(uri: &Uri) -> Result<InstanceFilter, ApiError> {
        let q: Self = parse(uri)?;
        let mut filter = InstanceFilter::new();
        (filter.limit, filter.page_token, filter.labels) = paging(q.limit, q.page_token, q.labels)?;
        filter.state = q.state;
        filter.source_image_id = q.source_image_id.map(Into::into);
        Ok(filter)
    }
}

fn parse<T: DeserializeOwned>(uri: &Uri) -> Result<T, ApiError> {
    Query::<T>::try_from_uri(uri).map(|Query(q)| q).map_err(|rejection| {
        let message = format!("invalid query: {}", rejection.body_text());
        ApiError::new(StatusCode::BAD_REQUEST, "invalid_query", message)
    })
}

type Paging = (Option<usize>, Option<PageToken>, Labels);

fn paging(limit: Option<usize>, token: Option<String>, labels: Option<String>) -> Result<Paging, ApiError> {
    let invalid = |field, reason: String| ApiError::from(Error::InvalidRequest { field, reason });
    if let Some(limit) = limit.filter(|l| !(1..=MAX_PAGE).contains(l)) {
        return Err(invalid("limit", format!("{limit} is out of range; ask for 1 to {MAX_PAGE}")));
    }
    let token = token.map(|text| text.parse::<PageToken>()).transpose()?;
    Ok((limit, token, selector(labels.as_deref().unwrap_or_default())?))
}

/// Labels from `key=value,key=value` (empty: none).
fn selector(text: &str) -> Result<Labels, ApiError> {
    let mut labels = Labels::new();
    for pair in text.split(',').filter(|p| !p.is_empty()) {
        let Some((key, value)) = pair.split_once('=') else {
            let reason = format!("{pair:?} is not key=value; join pairs with commas, e.g. env=prod,team=db");
            return Err(Error::InvalidRequest { field: "labels", reason }.into());
        };
        labels.insert(key.to_string(), value.to_string());
    }
    toygres_core::labels::validate_labels(&labels)?;
    Ok(labels)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn uri(query: &str) -> Uri {
        format!("/api/images?{query}").parse().unwrap()
    }

    fn field(error: ApiError) -> (u16, Option<String>) {
        (error.status.as_u16(), error.detail.field)
    }

    #[test]
    fn a_query_becomes_the_librarys_filter() {
        let image = Uuid::new_v4();
        let filter =
            ImageQuery::from_uri(&uri(&format!("limit=5&labels=env=prod,team=db&state=ready&instance_id={image}")));
        let filter = filter.unwrap();
        assert_eq!(filter.limit, Some(5));
        assert_eq!(filter.labels.get("team").map(String::as_str), Some("db"));
        assert_eq!(filter.state, Some(ImageState::Ready));
        assert_eq!(filter.source_instance_id, Some(image.into()));
        let token = PageToken::after(chrono::Utc::now(), image);
        let filter = InstanceQuery::from_uri(&uri(&format!("page_token={token}&state=running"))).unwrap();
        assert_eq!((filter.page_token, filter.state), (Some(token), Some(InstanceState::Running)));
    }

    #[test]
    fn the_document_describes_each_parameter() {
        use utoipa::OpenApi;
        let doc = serde_json::to_value(crate::api::openapi::ApiDoc::openapi()).unwrap();
        let params = doc["paths"]["/api/images"]["get"]["parameters"].as_array().unwrap().clone();
        let named = |name: &str| params.iter().find(|p| p["name"] == name).cloned().unwrap_or_default();
        assert_eq!(named("instance_id")["description"], "Only images of this instance.");
        assert_eq!(named("state")["schema"]["pattern"], "^(creating|ready|failed|deleting|deleted)$");
        assert!(named("labels")["schema"]["pattern"].as_str().unwrap().starts_with("^([a-z0-9]"));
        assert_eq!(named("limit")["schema"]["maximum"], 1000);
    }

    #[test]
    fn a_malformed_parameter_is_refused_naming_it() {
        assert_eq!(field(ImageQuery::from_uri(&uri("limit=0")).unwrap_err()), (400, Some("limit".into())));
        assert_eq!(field(ImageQuery::from_uri(&uri("limit=1001")).unwrap_err()), (400, Some("limit".into())));
        assert_eq!(field(ImageQuery::from_uri(&uri("page_token=x")).unwrap_err()), (400, Some("page_token".into())));
        assert_eq!(field(ImageQuery::from_uri(&uri("labels=env")).unwrap_err()), (400, Some("labels".into())));
        assert_eq!(field(ImageQuery::from_uri(&uri("state=gone")).unwrap_err()).0, 400);
        assert_eq!(field(InstanceQuery::from_uri(&uri("instance_id=x")).unwrap_err()).0, 400);
    }
}
