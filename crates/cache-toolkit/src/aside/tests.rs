//! Unit tests of `get_or_load`'s parts: the XFetch decision, jitter, the envelope, policy
//! validation. The protections that need Redis to fail (stale-on-error, degraded loads) are
//! tested in `tests/integration/get_or_load.rs`, against a server the test kills.

#![allow(clippy::unwrap_used, reason = "tests: a panic is a failure with its message")]

use std::time::Duration;

use rand::{Rng, SeedableRng, rngs::StdRng};

use super::{
    envelope::{self, Envelope},
    policy::{jittered_ttl, should_refresh_early},
};
use crate::{LoadPolicy, MAX_TTL};

// --- XFetch -----------------------------------------------------------------------------------

/// A draw in (0, 1], as `get_or_load` makes it.
fn draw(random: &mut StdRng) -> f64 {
    1.0 - random.r#gen::<f64>()
}

#[test]
fn xfetch_always_refreshes_at_or_past_the_expiry() {
    let mut random = StdRng::seed_from_u64(1);
    for _ in 0..10_000 {
        let uniform = draw(&mut random);
        assert!(should_refresh_early(1_000, 50, 1_000, 1.0, uniform), "at the expiry, u = {uniform}");
        assert!(should_refresh_early(1_200, 50, 1_000, 1.0, uniform), "past the expiry, u = {uniform}");
    }
}

#[test]
fn xfetch_almost_never_refreshes_far_from_the_expiry() {
    // 100 load times before the expiry: probability exp(-100) per read.
    let mut random = StdRng::seed_from_u64(2);
    let refreshed = (0..100_000).filter(|_| should_refresh_early(0, 50, 5_000, 1.0, draw(&mut random))).count();
    assert_eq!(refreshed, 0);
}

#[test]
fn xfetch_rate_matches_the_paper() {
    // P(refresh) = exp(-gap / (load time × β)).
    const DRAWS: usize = 40_000;
    let cases = [(50_u64, 1.0_f64, 50_u64), (50, 1.0, 100), (40, 2.0, 40), (100, 0.5, 10)];
    let mut random = StdRng::seed_from_u64(3);
    for (load_time_ms, beta, gap_ms) in cases {
        let expected = (-(gap_ms as f64) / (load_time_ms as f64 * beta)).exp();
        let refreshed = (0..DRAWS)
            .filter(|_| should_refresh_early(10_000 - gap_ms, load_time_ms, 10_000, beta, draw(&mut random)))
            .count();
        let measured = refreshed as f64 / DRAWS as f64;
        assert!(
            (measured - expected).abs() < 0.015,
            "load {load_time_ms} ms, β {beta}, gap {gap_ms} ms: measured {measured}, expected {expected}"
        );
    }
}

#[test]
fn xfetch_is_off_with_a_zero_beta_or_load_time() {
    let mut random = StdRng::seed_from_u64(4);
    for _ in 0..10_000 {
        let uniform = draw(&mut random);
        assert!(!should_refresh_early(999, 50, 1_000, 0.0, uniform));
        assert!(!should_refresh_early(999, 0, 1_000, 1.0, uniform));
    }
}

// --- jitter -----------------------------------------------------------------------------------

#[test]
fn jitter_spreads_within_bounds() {
    let ttl = Duration::from_secs(100);
    assert_eq!(jittered_ttl(ttl, 0.1, 0.0), Duration::from_secs(90));
    assert_eq!(jittered_ttl(ttl, 0.1, 0.5), ttl);
    assert_eq!(jittered_ttl(ttl, 0.0, 0.99), ttl);
    assert!(jittered_ttl(ttl, 0.1, 0.999_999) <= Duration::from_secs(110));
    assert_eq!(jittered_ttl(Duration::from_millis(1), 0.5, 0.0), Duration::from_millis(1), "never below 1 ms");
    assert_eq!(jittered_ttl(MAX_TTL, 0.5, 0.999), MAX_TTL, "never above what the store accepts");
    let mut random = StdRng::seed_from_u64(5);
    for _ in 0..10_000 {
        let jittered = jittered_ttl(ttl, 0.1, random.r#gen());
        assert!(jittered >= Duration::from_secs(90) && jittered <= Duration::from_secs(110), "{jittered:?}");
    }
}

// --- the envelope -----------------------------------------------------------------------------

#[test]
fn envelope_round_trips_and_keeps_values_apart_from_the_placeholder() {
    let text = envelope::encode_value(&serde_json::json!({"m": 1, "x": 2}), 12, 345).unwrap();
    assert_eq!(text, r#"{"v":{"m":1,"x":2},"d":12,"x":345}"#);
    assert_eq!(
        envelope::decode::<serde_json::Value>(text).unwrap(),
        Envelope::Value { value: serde_json::json!({"m": 1, "x": 2}), load_time_ms: 12, expires_at_ms: 345 }
    );
    let text = envelope::encode_missing(345).unwrap();
    assert_eq!(text, r#"{"m":1,"x":345}"#);
    assert_eq!(envelope::decode::<serde_json::Value>(text).unwrap(), Envelope::Missing { expires_at_ms: 345 });
    let text = envelope::encode_value(&None::<u8>, 0, 1).unwrap();
    assert_eq!(
        envelope::decode::<Option<u8>>(text).unwrap(),
        Envelope::Value { value: None, load_time_ms: 0, expires_at_ms: 1 }
    );
}

#[test]
fn envelope_refuses_anything_else() {
    let cases = [
        ("", "empty"),
        ("null", "null"),
        ("[1]", "an array"),
        (r#"{"x":1}"#, "neither value nor placeholder"),
        (r#"{"v":1,"x":1}"#, "no load time"),
        (r#"{"v":1,"d":1}"#, "no expiry"),
        (r#"{"m":0,"x":1}"#, "m is not 1"),
        (r#"{"m":1,"d":1,"x":1}"#, "a placeholder with a load time"),
        (r#"{"v":1,"d":1,"x":1,"y":0}"#, "an unknown field"),
        (r#"{"v":"text","d":1,"x":1}"#, "a value of the wrong type"),
    ];
    for (text, why) in cases {
        assert!(envelope::decode::<u64>(text.to_owned()).is_err(), "{why}: {text}");
    }
}

// --- the policy -------------------------------------------------------------------------------

#[test]
fn policy_defaults() {
    let policy = LoadPolicy::builder(Duration::from_secs(600)).build().unwrap();
    assert_eq!(policy.ttl(), Duration::from_secs(600));
    assert_eq!(policy.negative_ttl(), Duration::from_secs(60));
    assert!((policy.jitter() - 0.1).abs() < f64::EPSILON);
    assert!((policy.early_refresh_beta() - 1.0).abs() < f64::EPSILON);
    let short = LoadPolicy::builder(Duration::from_secs(10)).build().unwrap();
    assert_eq!(short.negative_ttl(), Duration::from_secs(10), "the default negative TTL never exceeds the TTL");
}

#[test]
fn waits_and_ages_of_any_length_are_accepted() {
    let policy = LoadPolicy::builder(MAX_TTL)
        .negative_ttl(MAX_TTL)
        .cross_instance(MAX_TTL, Duration::MAX)
        .stale_on_error(Duration::MAX)
        .build()
        .expect("the longest TTLs, and waits and ages meaning \"forever\", are valid");
    assert_eq!(policy.ttl(), MAX_TTL);
}

#[test]
fn policy_refuses_bad_settings_naming_them() {
    let ttl = Duration::from_secs(60);
    let cases = [
        (LoadPolicy::builder(Duration::ZERO), "ttl"),
        (LoadPolicy::builder(Duration::from_micros(999)), "ttl"),
        (LoadPolicy::builder(MAX_TTL + Duration::from_millis(1)), "ttl"),
        (LoadPolicy::builder(Duration::MAX), "ttl"),
        (LoadPolicy::builder(ttl).jitter(1.0), "jitter"),
        (LoadPolicy::builder(ttl).jitter(-0.1), "jitter"),
        (LoadPolicy::builder(ttl).jitter(f64::NAN), "jitter"),
        (LoadPolicy::builder(ttl).negative_ttl(Duration::ZERO), "negative_ttl"),
        (LoadPolicy::builder(ttl).negative_ttl(Duration::from_secs(61)), "negative_ttl"),
        (LoadPolicy::builder(ttl).early_refresh_beta(-1.0), "early_refresh_beta"),
        (LoadPolicy::builder(ttl).early_refresh_beta(f64::INFINITY), "early_refresh_beta"),
        (LoadPolicy::builder(ttl).cross_instance(Duration::ZERO, Duration::from_secs(1)), "cross_instance"),
        (LoadPolicy::builder(ttl).cross_instance(Duration::MAX, Duration::from_secs(1)), "cross_instance"),
        (LoadPolicy::builder(ttl).stale_on_error(Duration::ZERO), "stale_on_error"),
        (LoadPolicy::builder(ttl).stale_on_error(ttl).stale_capacity(0), "stale_capacity"),
        (LoadPolicy::builder(ttl).degrade_to_loader(0), "degrade_to_loader"),
    ];
    for (builder, setting) in cases {
        let error = builder.clone().build().expect_err(setting);
        assert_eq!(error.setting(), setting, "{builder:?}");
        assert!(error.to_string().starts_with(&format!("invalid load policy setting `{setting}`: ")), "{error}");
    }
}
