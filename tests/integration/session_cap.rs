//! The session cap (`TESSERA_MAX_SESSIONS_PER_USER`) under two tessera instances issuing for
//! one user at once, on real Redis: the push and the trim are one atomic step on the list, so
//! the list is never seen longer than the cap, and every session the cap evicted is refused
//! with its token key gone.

use std::sync::{
    Arc,
    atomic::{AtomicBool, Ordering},
};

use hyper::StatusCode;

use tests::{TestApp, Topology};

use crate::auth_api::{app_on, bearer, issue, raw_cache, unique_user, verify};

const CAP: u64 = 3;
const ISSUES_PER_INSTANCE: usize = 30;

async fn concurrent_issuers_never_overfill_the_list_nor_leave_an_evicted_token_valid(topology: Topology) {
    let cap = CAP.to_string();
    let settings = [("TESSERA_MAX_SESSIONS_PER_USER", cap.as_str())];
    let (first, second) = (
        app_on(tests::Backend::Redis(topology), &settings).await,
        app_on(tests::Backend::Redis(topology), &settings).await,
    );
    let (_backend, raw) = raw_cache(&topology.url()).await;
    let user = unique_user();
    let list = format!("token_list:{user}");
    let body = format!(r#"{{"user_id":{user}}}"#);

    let issuing = Arc::new(AtomicBool::new(true));
    let sampler = {
        let (raw, list, issuing) = (raw.clone(), list.clone(), Arc::clone(&issuing));
        tokio::spawn(async move {
            let (mut longest, mut samples) = (0, 0_u64);
            while issuing.load(Ordering::Relaxed) {
                longest = longest.max(raw.list_len(&list).await.unwrap());
                samples += 1;
            }
            (longest, samples)
        })
    };
    let issue_many = async |app: &TestApp| {
        let mut tokens = Vec::new();
        for _ in 0..ISSUES_PER_INSTANCE {
            tokens.push(issue(app, &body).await.0);
        }
        tokens
    };
    let (from_first, from_second) = tokio::join!(issue_many(&first), issue_many(&second));
    issuing.store(false, Ordering::Relaxed);
    let (longest, samples) = sampler.await.unwrap();
    assert!(samples > 10, "the sampler ran only {samples} times");
    assert!(longest <= CAP, "the list held {longest} entries at one point, over the cap of {CAP}");

    let listed = raw.get_list(&list).await.unwrap();
    assert_eq!(listed.len() as u64, CAP, "{listed:?}");
    // A fresh instance: nothing it answers comes from a near cache filled during the race.
    let checker = app_on(tests::Backend::Redis(topology), &settings).await;
    for token in from_first.iter().chain(&from_second) {
        let kept = listed.contains(token);
        let status = verify(&checker, &[("authorization", &bearer(token))]).await.status;
        let key_left = raw.key_exists(&format!("token:{token}")).await.unwrap();
        assert_eq!(status, if kept { StatusCode::OK } else { StatusCode::UNAUTHORIZED }, "kept: {kept}");
        assert_eq!(key_left, kept, "an evicted session's token key is deleted, a kept one's is not");
    }
    for app in [first, second, checker] {
        app.stop().await;
    }
    raw.delete_key(&list).await.unwrap();
}

mod two_issuers {
    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn standalone() {
        super::concurrent_issuers_never_overfill_the_list_nor_leave_an_evicted_token_valid(tests::Topology::Standalone)
            .await;
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn cluster() {
        super::concurrent_issuers_never_overfill_the_list_nor_leave_an_evicted_token_valid(tests::Topology::Cluster)
            .await;
    }
}
