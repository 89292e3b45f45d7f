//! The callback administration routes (protocol §1.5-§1.7) as a national backend calls them.

use super::{NationalBackend, NationalError};

/// The answer to a callback administration request.
#[derive(Clone, Debug)]
pub struct CallbackAnswer {
    /// HTTP status.
    pub status: u16,
    /// `Content-Type`, if any.
    pub content_type: Option<String>,
    /// The body.
    pub body: Vec<u8>,
}

impl CallbackAnswer {
    /// The body as JSON (`Null` when it is not JSON).
    pub fn json(&self) -> serde_json::Value {
        serde_json::from_slice(&self.body).unwrap_or(serde_json::Value::Null)
    }

    /// The problem `code`, for an error answer.
    pub fn code(&self) -> Option<String> {
        self.json()
            .get("code")
            .and_then(|c| c.as_str())
            .map(str::to_owned)
    }
}

impl NationalBackend {
    async fn callback_request(
        &self,
        method: reqwest::Method,
        path_and_query: &str,
    ) -> Result<CallbackAnswer, NationalError> {
        let url = format!("{}{path_and_query}", self.base_url);
        let req = self.identity.apply(self.client.request(method, url));
        let res = req.send().await?;
        let status = res.status().as_u16();
        let content_type = res
            .headers()
            .get("content-type")
            .and_then(|v| v.to_str().ok())
            .map(str::to_owned);
        let body = res.bytes().await?.to_vec();
        Ok(CallbackAnswer {
            status,
            content_type,
            body,
        })
    }

    /// `GET /diagnosiskeys/callback`.
    pub async fn callback_list(&self) -> Result<CallbackAnswer, NationalError> {
        self.callback_request(reqwest::Method::GET, "/diagnosiskeys/callback")
            .await
    }

    /// `PUT /diagnosiskeys/callback/{id}?url=<url>`, the URL URL-encoded; `None`: no `url`
    /// parameter.
    pub async fn callback_put(
        &self,
        id: &str,
        url: Option<&str>,
    ) -> Result<CallbackAnswer, NationalError> {
        let query = url.map_or_else(String::new, |u| format!("?url={}", super::url_encode(u)));
        self.callback_request(
            reqwest::Method::PUT,
            &format!("/diagnosiskeys/callback/{}{query}", super::url_encode(id)),
        )
        .await
    }

    /// `PUT /diagnosiskeys/callback/{id}?url=<url>` with the URL as is, not URL-encoded (as
    /// one client sends it).
    pub async fn callback_put_raw(
        &self,
        id: &str,
        url: &str,
    ) -> Result<CallbackAnswer, NationalError> {
        self.callback_request(
            reqwest::Method::PUT,
            &format!(
                "/diagnosiskeys/callback/{}?url={url}",
                super::url_encode(id)
            ),
        )
        .await
    }

    /// `DELETE /diagnosiskeys/callback/{id}`.
    pub async fn callback_delete(&self, id: &str) -> Result<CallbackAnswer, NationalError> {
        self.callback_request(
            reqwest::Method::DELETE,
            &format!("/diagnosiskeys/callback/{}", super::url_encode(id)),
        )
        .await
    }
}
