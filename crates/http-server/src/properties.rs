//! Property tests of what a request controls before any handler runs: the path (routing and
//! the internal-path rule) and the `Authorization` header (the bearer scheme). Any input is
//! answered, never a panic; an internal route is never reached without the internal key; a
//! request is let through exactly when it carries `Bearer <a valid token>`.

#![allow(clippy::unwrap_used, reason = "tests: a panic is a failure with its message")]

use std::{
    convert::Infallible,
    sync::{
        Arc,
        atomic::{AtomicUsize, Ordering},
    },
};

use http_body_util::Full;
use hyper::{
    Request, Response, StatusCode,
    body::Bytes,
    header::{AUTHORIZATION, HeaderValue},
};
use proptest::{
    prelude::*,
    test_runner::{Config, TestRunner},
};
use tower::{Layer, ServiceExt};

use auth_core::{AuthPolicy, Authenticator, IssueOptions, UserId};
use cache_toolkit::CacheClient;
use config::{Secret, is_internal_path};
use dao::CacheDao;

use crate::{
    AuthLayer,
    middleware::INTERNAL_KEY_HEADER,
    route::{Route, RouteName},
};

type Body = Full<Bytes>;

const INTERNAL_KEY: &str = "internal-key-0123456789";

/// Path segments that name routes, nearly name them (case, encoding, dot segments) or nothing.
const SEGMENTS: [&str; 22] = [
    "internal",
    "users",
    "sessions",
    "introspect",
    "metrics",
    "Metrics",
    "INTERNAL",
    "api",
    "me",
    "logout",
    "auth",
    "verify",
    "healthz",
    "readyz",
    "42",
    "a%2Fb",
    "%2e%2e",
    "..",
    ".",
    "",
    "x",
    "0123456789abcdef0123456789abcdef",
];

/// `/` and up to five segments, sometimes with a query.
fn request_path() -> impl Strategy<Value = String> {
    (prop::collection::vec(prop::sample::select(SEGMENTS.to_vec()), 0..6), any::<bool>())
        .prop_map(|(segments, query)| format!("/{}{}", segments.join("/"), if query { "?x=1" } else { "" }))
}

/// The embedded store with one issued token, as the server's auth layer is set up (default
/// public paths, the internal key, `config::is_internal_path`), around a service that counts
/// the requests it was handed.
struct Stack {
    runtime: tokio::runtime::Runtime,
    layer: AuthLayer,
    token: String,
    reached: Arc<AtomicUsize>,
}

impl Stack {
    fn new() -> Self {
        let runtime = tokio::runtime::Builder::new_current_thread().enable_all().build().unwrap();
        let authenticator = Authenticator::new(CacheDao::new(CacheClient::embedded()), AuthPolicy::default());
        let issued = runtime.block_on(authenticator.issue(UserId::Integer(7), IssueOptions::default())).unwrap();
        let layer = AuthLayer::new(authenticator)
            .public_paths(["/healthz", "/readyz"])
            .internal(vec![Secret::new(INTERNAL_KEY)], is_internal_path);
        Self { runtime, layer, token: issued.token.expose().to_owned(), reached: Arc::default() }
    }

    /// The status, and whether the inner service saw the request.
    fn call(&self, request: Request<Body>) -> (StatusCode, bool) {
        let before = self.reached.load(Ordering::SeqCst);
        let reached = Arc::clone(&self.reached);
        let inner = tower::service_fn(move |_: Request<Body>| {
            reached.fetch_add(1, Ordering::SeqCst);
            async { Ok::<_, Infallible>(Response::new(Body::default())) }
        });
        let response = self.runtime.block_on(self.layer.layer(inner).oneshot(request)).unwrap();
        (response.status(), self.reached.load(Ordering::SeqCst) > before)
    }
}

fn check<T: std::fmt::Debug>(
    cases: u32,
    strategy: impl Strategy<Value = T>,
    test: impl Fn(T) -> Result<(), TestCaseError>,
) {
    let mut runner = TestRunner::new(Config { cases, failure_persistence: None, ..Config::default() });
    if let Err(error) = runner.run(&strategy, test) {
        panic!("{error}");
    }
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 4_000, failure_persistence: None, ..ProptestConfig::default() })]

    /// Any path, decoded or not, maps to a route; one that is internal is an internal path for
    /// the auth layer too, so the layer asks for the key before the router sees it.
    #[test]
    fn every_internal_route_is_an_internal_path(path in prop_oneof![request_path(), any::<String>()]) {
        let route = Route::of(&path);
        prop_assert!(RouteName::ALL.contains(&route.name()));
        if route.is_internal() {
            prop_assert!(is_internal_path(&path), "{} routes to {:?} but is not an internal path", path, route);
        }
    }
}

/// Without the key (whatever else is sent) no internal route reaches the service behind the
/// layer: the answer is 401 for a key that does not match.
#[test]
fn internal_routes_are_never_reached_without_the_key() {
    let stack = Stack::new();
    let header_value = prop_oneof![
        Just(None),
        "[ -~]{0,30}".prop_map(Some),
        Just(Some(format!("Bearer {}", stack.token))),
        Just(Some(format!("{INTERNAL_KEY} "))),
        Just(Some(INTERNAL_KEY.to_uppercase())),
    ];
    let strategy = (request_path(), header_value.clone(), header_value);
    check(1_000, strategy, |(path, authorization, internal_key)| {
        let mut request = Request::get(path.as_str());
        if let Some(value) = &authorization {
            request = request.header(AUTHORIZATION, value.as_str());
        }
        if let Some(value) = &internal_key {
            request = request.header(INTERNAL_KEY_HEADER, value.as_str());
        }
        let (status, reached) = stack.call(request.body(Body::default()).unwrap());
        let internal = is_internal_path(hyper::Uri::try_from(path.as_str()).unwrap().path());
        if internal {
            prop_assert!(!reached, "{} reached the service without the key", path);
            prop_assert!(matches!(status, StatusCode::UNAUTHORIZED | StatusCode::BAD_REQUEST), "{}: {}", path, status);
        }
        if Route::of(hyper::Uri::try_from(path.as_str()).unwrap().path()).is_internal() {
            prop_assert!(internal, "{} is an internal route the layer does not guard", path);
        }
        Ok(())
    });
}

/// The parts an `Authorization` value is made of: a scheme (right, wrong, odd case), a
/// separator, and a token (the valid one, near it, or any bytes a header may carry).
#[derive(Clone, Debug)]
enum Credential {
    Valid,
    ValidWithTrailingSpace,
    ValidCut,
    WellFormedUnknown,
    Text(String),
    Opaque(Vec<u8>),
}

/// An `Authorization` header lets the request through exactly when it is one header, its
/// scheme is `bearer` in any case, spaces separate it from the token, and the token is valid;
/// every other value is 401 and never reaches the service.
#[test]
fn the_authorization_header_admits_exactly_bearer_and_a_valid_token() {
    let stack = Stack::new();
    let scheme = prop::sample::select(vec!["Bearer", "bearer", "BEARER", "bEaReR", "Basic", "Bearerx", "", "Token"]);
    let separator = prop::sample::select(vec![" ", "   ", "\t", "", " \t", ":"]);
    let credential = prop_oneof![
        3 => Just(Credential::Valid),
        1 => Just(Credential::ValidWithTrailingSpace),
        1 => Just(Credential::ValidCut),
        1 => Just(Credential::WellFormedUnknown),
        2 => "[ -~]{0,60}".prop_map(Credential::Text),
        1 => prop::collection::vec(prop_oneof![0x20_u8..0x7f, 0x80_u8..=0xff], 0..60).prop_map(Credential::Opaque),
    ];
    check(2_000, (scheme, separator, credential, any::<bool>()), |(scheme, separator, credential, twice)| {
        let token: Vec<u8> = match &credential {
            Credential::Valid => stack.token.clone().into_bytes(),
            Credential::ValidWithTrailingSpace => format!("{} ", stack.token).into_bytes(),
            Credential::ValidCut => stack.token.as_bytes()[..stack.token.len() - 1].to_vec(),
            Credential::WellFormedUnknown => b"Unknown-but-well-formed-token-0123456789abc".to_vec(),
            Credential::Text(text) => text.clone().into_bytes(),
            Credential::Opaque(bytes) => bytes.clone(),
        };
        let value = [scheme.as_bytes(), separator.as_bytes(), &token].concat();
        let header = HeaderValue::from_bytes(&value).unwrap();
        let mut request = Request::get("/api/me").header(AUTHORIZATION, header.clone());
        if twice {
            request = request.header(AUTHORIZATION, header);
        }
        let (status, reached) = stack.call(request.body(Body::default()).unwrap());
        let admitted = !twice
            && scheme.eq_ignore_ascii_case("bearer")
            && !separator.is_empty()
            && separator.bytes().all(|byte| byte == b' ')
            && token == stack.token.as_bytes();
        let expected = if admitted {
            StatusCode::OK
        } else if twice {
            StatusCode::BAD_REQUEST
        } else {
            StatusCode::UNAUTHORIZED
        };
        prop_assert_eq!(status, expected, "{:?}", String::from_utf8_lossy(&value));
        prop_assert_eq!(reached, admitted);
        Ok(())
    });
}
