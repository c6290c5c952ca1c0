//! A small HTTP client of the API: bearer token, JSON in and out, errors as the server words them.

use reqwest::{Method, StatusCode};
use serde_json::Value;

/// Talks to one server.
pub struct Client {
    http: reqwest::Client,
    base: String,
    token: Option<String>,
}

impl Client {
    /// A client of `base` (e.g. `http://127.0.0.1:7070`) sending `token`.
    pub fn new(base: &str, token: Option<&str>) -> Result<Self, Box<dyn std::error::Error>> {
        let http = reqwest::Client::builder().connect_timeout(std::time::Duration::from_secs(10)).build()?;
        Ok(Self { http, base: base.trim_end_matches('/').to_string(), token: token.map(str::to_string) })
    }

    /// `GET path`.
    pub async fn get(&self, path: &str) -> Result<Value, Box<dyn std::error::Error>> {
        self.send(Method::GET, path, None).await
    }

    /// Every record of the listing at `path` (`/api/images` or `/api/instances`) whose labels
    /// include `labels` (`key=value,…`; empty: all), following the pages to the last.
    pub async fn list_all(&self, path: &str, labels: &str) -> Result<Vec<Value>, Box<dyn std::error::Error>> {
        let mut items = Vec::new();
        let mut token: Option<String> = None;
        loop {
            let mut url = reqwest::Url::parse("http://query.invalid/")?;
            if !labels.is_empty() {
                url.query_pairs_mut().append_pair("labels", labels);
            }
            if let Some(token) = &token {
                url.query_pairs_mut().append_pair("page_token", token);
            }
            let page = self.get(&format!("{path}?{}", url.query().unwrap_or_default())).await?;
            items.extend(page["items"].as_array().cloned().unwrap_or_default());
            match page["next_page_token"].as_str() {
                Some(next) => token = Some(next.to_string()),
                None => return Ok(items),
            }
        }
    }

    /// `POST path` with a JSON body.
    pub async fn post(&self, path: &str, body: &Value) -> Result<Value, Box<dyn std::error::Error>> {
        self.send(Method::POST, path, Some(body)).await
    }

    /// `DELETE path`.
    pub async fn delete(&self, path: &str) -> Result<Value, Box<dyn std::error::Error>> {
        self.send(Method::DELETE, path, None).await
    }

    async fn send(
        &self,
        method: Method,
        path: &str,
        body: Option<&Value>,
    ) -> Result<Value, Box<dyn std::error::Error>> {
        let url = format!("{}{path}", self.base);
        let mut request = self.http.request(method, &url);
        if let Some(token) = &self.token {
            request = request.bearer_auth(token);
        }
        if let Some(body) = body {
            request = request.json(body);
        }
        let response =
            request.send().await.map_err(|e| format!("cannot reach {url}: {e}; is `toygres serve` running?"))?;
        let status = response.status();
        let text = response.text().await?;
        let value: Value =
            if text.is_empty() { Value::Null } else { serde_json::from_str(&text).unwrap_or(Value::String(text)) };
        if status.is_success() {
            return Ok(value);
        }
        let message = value["error"]["message"].as_str().map(str::to_string).unwrap_or_else(|| value.to_string());
        let hint = if status == StatusCode::UNAUTHORIZED { " (set TOYGRES_TOKEN to the server's token)" } else { "" };
        Err(format!("{status}: {message}{hint}").into())
    }
}
