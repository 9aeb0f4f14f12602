//! Tests of the `redis` command line and of `state.env` parsing.

use super::*;

fn args(words: &[&str]) -> Vec<String> {
    words.iter().map(|word| (*word).to_owned()).collect()
}

#[test]
fn topology_flag_forms() -> Result<()> {
    let cases: [(&[&str], Option<Topology>); 4] = [
        (&[], None),
        (&["--topology", "cluster"], Some(Topology::Cluster)),
        (&["--topology=sentinel"], Some(Topology::Sentinel)),
        (&["--topology", "standalone"], Some(Topology::Standalone)),
    ];
    for (words, expected) in cases {
        assert_eq!(topology_flag(&args(words))?, expected, "for {words:?}");
    }
    Ok(())
}

#[test]
fn bad_topology_flags_are_refused() {
    for words in [&["--topology"][..], &["--topology", "ring"], &["cluster"], &["--topology", "cluster", "x"]] {
        assert!(topology_flag(&args(words)).is_err(), "{words:?} should be refused");
    }
}

#[test]
fn state_file_round_trip() {
    let text = "TOPOLOGY=cluster\nOWNER_PID=4242\nPID_FILE=/t/node-1/redis.pid\n\
                PID_FILE=/t/node-2/redis.pid\nURL=redis-cluster://127.0.0.1:1?node=127.0.0.1:2\n";
    let parsed = state::parse(text);
    assert_eq!(parsed.topology.as_deref(), Some("cluster"));
    assert_eq!(parsed.owner, Some(4242));
    assert_eq!(parsed.url.as_deref(), Some("redis-cluster://127.0.0.1:1?node=127.0.0.1:2"));
    assert_eq!(parsed.pid_files, vec![PathBuf::from("/t/node-1/redis.pid"), PathBuf::from("/t/node-2/redis.pid")]);
}

#[test]
fn a_half_written_state_has_no_url() {
    let parsed = state::parse("TOPOLOGY=sentinel\nPID_FILE=/t/master/redis.pid\nPID_FI");
    assert_eq!(parsed.url, None);
    assert_eq!(parsed.owner, None);
    assert_eq!(parsed.pid_files.len(), 1);
}

#[test]
fn free_ports_avoid_taken_and_reserved_ones() -> Result<()> {
    let mut taken = Vec::new();
    for _ in 0..20 {
        let port = crate::process::free_port(&taken, true)?;
        assert!(![6379, 26379].contains(&port) && !taken.contains(&port), "port {port}");
        assert!(port < 55_536, "cluster bus port of {port} would not fit");
        taken.extend([port, port + 10_000]);
    }
    Ok(())
}
