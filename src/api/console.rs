//! The web console at `GET /` (SPEC section 11, issue 14): a single-page app built from
//! `web/` with npm and committed as `web/dist/`, whose files are embedded in the binary
//! here, so `weir serve` needs neither Node nor a network. `scripts/web.sh` checks that a
//! fresh `npm ci && npm run build` reproduces `web/dist/` byte for byte.
//!
//! Every file is answered with a Content-Security-Policy that allows only this origin, so
//! the console can load nothing from other hosts.

use axum::extract::Path;
use axum::http::{header, HeaderValue, StatusCode};
use axum::response::{IntoResponse, Response};

use super::error::ApiError;

/// The built files under `web/dist/console/`, by name, with their content types.
const ASSETS: &[(&str, &str, &[u8])] = &[
    (
        "app.js",
        "text/javascript; charset=utf-8",
        include_bytes!("../../web/dist/console/app.js"),
    ),
    (
        "index.css",
        "text/css; charset=utf-8",
        include_bytes!("../../web/dist/console/index.css"),
    ),
];

/// The page itself.
const INDEX: &[u8] = include_bytes!("../../web/dist/index.html");

/// Only this origin; CodeMirror and uPlot set inline styles, the favicon is a data: URL.
const CSP: &str = "default-src 'self'; script-src 'self'; style-src 'self' 'unsafe-inline'; \
                   img-src 'self' data:; connect-src 'self'; font-src 'self'; object-src 'none'; \
                   base-uri 'none'; frame-ancestors 'none'";

fn answer(content_type: &'static str, body: &'static [u8]) -> Response {
    let mut res = body.into_response();
    let h = res.headers_mut();
    h.insert(header::CONTENT_TYPE, HeaderValue::from_static(content_type));
    h.insert(
        header::CONTENT_SECURITY_POLICY,
        HeaderValue::from_static(CSP),
    );
    h.insert(
        header::X_CONTENT_TYPE_OPTIONS,
        HeaderValue::from_static("nosniff"),
    );
    // The file names carry no hash, so a browser must revalidate after an upgrade.
    h.insert(header::CACHE_CONTROL, HeaderValue::from_static("no-cache"));
    res
}

/// `GET /`: the console page.
#[utoipa::path(
    get,
    path = "/",
    tag = "server",
    responses((status = 200, description = "the console's page", body = String, content_type = "text/html"))
)]
pub async fn index() -> Response {
    answer("text/html; charset=utf-8", INDEX)
}

/// `GET /console/{file}`: the console's script and style sheet.
#[utoipa::path(
    get,
    path = "/console/{file}",
    tag = "server",
    params(("file" = String, Path, example = "app.js", description = "app.js or index.css")),
    responses(
        (status = 200, description = "the file", content(
            (String = "text/javascript"),
            (String = "text/css"),
        )),
        (status = 404, description = "no such file", body = super::error::ErrorBody),
    )
)]
pub async fn asset(Path(file): Path<String>) -> Response {
    match ASSETS.iter().find(|(name, _, _)| *name == file) {
        Some((_, content_type, body)) => answer(content_type, body),
        None => ApiError::new(
            StatusCode::NOT_FOUND,
            format!("no console file '{file}'; the console is at GET /"),
        )
        .into_response(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The page refers to exactly the embedded files, all on this origin.
    #[test]
    fn index_refers_to_the_embedded_assets() {
        let html = std::str::from_utf8(INDEX).unwrap();
        for (name, _, body) in ASSETS {
            assert!(
                html.contains(&format!("\"/console/{name}\"")),
                "index.html does not load /console/{name}"
            );
            assert!(!body.is_empty(), "{name} is empty");
        }
        for attr in ["src=\"http", "href=\"http", "src=\"//", "href=\"//"] {
            assert!(
                !html.contains(attr),
                "index.html loads from another host ({attr}…)"
            );
        }
        let refs = html.matches("/console/").count();
        assert_eq!(
            refs,
            ASSETS.len(),
            "index.html loads a file that is not embedded"
        );
    }
}
