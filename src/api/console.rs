//! The agent desk in the browser: the page, script and style built from `web/` (committed under
//! `web/dist/`, embedded here), served on the gRPC listener at `/`, in front of everything else.
//! The page talks to the same `AgentDesk` and `Operations` services through gRPC-web, so what it
//! may do is exactly what its token may do; these three files need no token and hold no data.

use std::future::Future;
use std::pin::Pin;
use std::task::{Context, Poll};

use tonic::codegen::{Bytes, http};
use tower::{Layer, Service};

/// One embedded file of the desk.
struct Asset {
    path: &'static str,
    content_type: &'static str,
    body: &'static [u8],
}

const ASSETS: [Asset; 3] = [
    Asset {
        path: "/",
        content_type: "text/html; charset=utf-8",
        body: include_bytes!("../../web/dist/index.html"),
    },
    Asset {
        path: "/desk.js",
        content_type: "text/javascript; charset=utf-8",
        body: include_bytes!("../../web/dist/desk.js"),
    },
    Asset {
        path: "/desk.css",
        content_type: "text/css; charset=utf-8",
        body: include_bytes!("../../web/dist/desk.css"),
    },
];

/// The page may load only its own script and style, and talk only to its own origin.
const CONTENT_SECURITY_POLICY: &str = "default-src 'none'; script-src 'self'; style-src 'self'; \
     connect-src 'self'; img-src 'self' data:; base-uri 'none'; form-action 'none'; frame-ancestors 'none'";

/// Answers `GET`/`HEAD` for the desk's files; passes every other request on.
#[derive(Debug, Clone, Copy, Default)]
pub struct ConsoleLayer;

impl<S> Layer<S> for ConsoleLayer {
    type Service = Console<S>;

    fn layer(&self, inner: S) -> Console<S> {
        Console { inner }
    }
}

#[derive(Debug, Clone)]
pub struct Console<S> {
    inner: S,
}

type BoxFuture<T> = Pin<Box<dyn Future<Output = T> + Send>>;

impl<S, B> Service<http::Request<B>> for Console<S>
where
    S: Service<http::Request<B>, Response = http::Response<tonic::body::Body>>,
    S::Future: Send + 'static,
{
    type Response = http::Response<tonic::body::Body>;
    type Error = S::Error;
    type Future = BoxFuture<Result<Self::Response, Self::Error>>;

    fn poll_ready(&mut self, cx: &mut Context<'_>) -> Poll<Result<(), Self::Error>> {
        self.inner.poll_ready(cx)
    }

    fn call(&mut self, request: http::Request<B>) -> Self::Future {
        let method = request.method();
        if method == http::Method::GET || method == http::Method::HEAD {
            if let Some(asset) = ASSETS.iter().find(|a| a.path == request.uri().path()) {
                let response = respond(asset, method == http::Method::HEAD);
                return Box::pin(async move { Ok(response) });
            }
        }
        Box::pin(self.inner.call(request))
    }
}

fn respond(asset: &Asset, head: bool) -> http::Response<tonic::body::Body> {
    use http::header::{self, HeaderValue};
    let body = if head {
        tonic::body::Body::empty()
    } else {
        tonic::body::Body::new(http_body_util::Full::new(Bytes::from_static(asset.body)))
    };
    let mut response = http::Response::new(body);
    let headers = response.headers_mut();
    headers.insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static(asset.content_type),
    );
    headers.insert(header::CONTENT_LENGTH, HeaderValue::from(asset.body.len()));
    // Always asked again: a new release is picked up by the next load.
    headers.insert(header::CACHE_CONTROL, HeaderValue::from_static("no-cache"));
    headers.insert(
        header::CONTENT_SECURITY_POLICY,
        HeaderValue::from_static(CONTENT_SECURITY_POLICY),
    );
    headers.insert(
        header::X_CONTENT_TYPE_OPTIONS,
        HeaderValue::from_static("nosniff"),
    );
    headers.insert(
        header::REFERRER_POLICY,
        HeaderValue::from_static("no-referrer"),
    );
    response
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_asset_is_embedded_and_the_page_names_its_script_and_style() {
        for asset in &ASSETS {
            assert!(!asset.body.is_empty(), "{} is empty", asset.path);
        }
        let page = std::str::from_utf8(ASSETS[0].body).expect("UTF-8 page");
        assert!(page.contains("src=\"/desk.js\""), "{page}");
        assert!(page.contains("href=\"/desk.css\""), "{page}");
        assert!(page.contains("lang=\"fr\""), "{page}");
    }
}
