//! [`Op`]: every store operation `cache_toolkit::CacheClient` performs, as a type. Its name labels
//! metrics, traces and errors ([`Op::as_str`]), and whether it may change a key — so whether
//! its key is invalidated in the near cache when it returns — is decided once per variant in
//! [`Op::is_read_only`], an exhaustive match: an operation added without that decision does
//! not compile.

/// A store operation.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
#[non_exhaustive]
pub enum Op {
    SetValue,
    SetValueIfAbsent,
    GetValue,
    SetJson,
    GetJson,
    DeleteKey,
    SetExpiry,
    KeyExists,
    ExistingKeys,
    GetTtl,
    BatchDeleteKeys,
    DeleteMatching,
    SetHash,
    GetHash,
    GetHashAll,
    DeleteHashField,
    PushToList,
    PushToCappedList,
    GetList,
    ListContains,
    GetValueAndListContains,
    ListRange,
    PopList,
    ListPosition,
    ListRemove,
    ListTrim,
    ListLen,
    AcquireLock,
    ReleaseLock,
    ExtendLock,
    RunScript,
    LoadScript,
    Ping,
    Reconnect,
    ReplicaCount,
    ReplicationBarrier,
    GetOrLoad,
    BloomNew,
    BloomAdd,
    BloomMightContain,
}

impl Op {
    /// Every operation, in declaration order.
    pub const ALL: [Self; 40] = [
        Self::SetValue,
        Self::SetValueIfAbsent,
        Self::GetValue,
        Self::SetJson,
        Self::GetJson,
        Self::DeleteKey,
        Self::SetExpiry,
        Self::KeyExists,
        Self::ExistingKeys,
        Self::GetTtl,
        Self::BatchDeleteKeys,
        Self::DeleteMatching,
        Self::SetHash,
        Self::GetHash,
        Self::GetHashAll,
        Self::DeleteHashField,
        Self::PushToList,
        Self::PushToCappedList,
        Self::GetList,
        Self::ListContains,
        Self::GetValueAndListContains,
        Self::ListRange,
        Self::PopList,
        Self::ListPosition,
        Self::ListRemove,
        Self::ListTrim,
        Self::ListLen,
        Self::AcquireLock,
        Self::ReleaseLock,
        Self::ExtendLock,
        Self::RunScript,
        Self::LoadScript,
        Self::Ping,
        Self::Reconnect,
        Self::ReplicaCount,
        Self::ReplicationBarrier,
        Self::GetOrLoad,
        Self::BloomNew,
        Self::BloomAdd,
        Self::BloomMightContain,
    ];

    /// The operation's name in metrics, traces and error texts.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::SetValue => "set_value",
            Self::SetValueIfAbsent => "set_value_if_absent",
            Self::GetValue => "get_value",
            Self::SetJson => "set_json",
            Self::GetJson => "get_json",
            Self::DeleteKey => "delete_key",
            Self::SetExpiry => "set_expiry",
            Self::KeyExists => "key_exists",
            Self::ExistingKeys => "existing_keys",
            Self::GetTtl => "get_ttl",
            Self::BatchDeleteKeys => "batch_delete_keys",
            Self::DeleteMatching => "delete_matching",
            Self::SetHash => "set_hash",
            Self::GetHash => "get_hash",
            Self::GetHashAll => "get_hash_all",
            Self::DeleteHashField => "delete_hash_field",
            Self::PushToList => "push_to_list",
            Self::PushToCappedList => "push_to_capped_list",
            Self::GetList => "get_list",
            Self::ListContains => "list_contains",
            Self::GetValueAndListContains => "get_value_and_list_contains",
            Self::ListRange => "list_range",
            Self::PopList => "pop_list",
            Self::ListPosition => "list_position",
            Self::ListRemove => "list_remove",
            Self::ListTrim => "list_trim",
            Self::ListLen => "list_len",
            Self::AcquireLock => "acquire_lock",
            Self::ReleaseLock => "release_lock",
            Self::ExtendLock => "extend_lock",
            Self::RunScript => "run_script",
            Self::LoadScript => "load_script",
            Self::Ping => "ping",
            Self::Reconnect => "reconnect",
            Self::ReplicaCount => "replica_count",
            Self::ReplicationBarrier => "replication_barrier",
            Self::GetOrLoad => "get_or_load",
            Self::BloomNew => "bloom_new",
            Self::BloomAdd => "bloom_add",
            Self::BloomMightContain => "bloom_might_contain",
        }
    }

    /// Whether the operation never changes a key. Every other operation invalidates its key in
    /// the near cache when it returns, successful or not (a timed-out write may still have
    /// been applied). A script may write anything: it is never read-only.
    pub fn is_read_only(self) -> bool {
        match self {
            Self::GetValue
            | Self::GetJson
            | Self::KeyExists
            | Self::ExistingKeys
            | Self::GetTtl
            | Self::GetHash
            | Self::GetHashAll
            | Self::GetList
            | Self::ListContains
            | Self::GetValueAndListContains
            | Self::ListRange
            | Self::ListPosition
            | Self::ListLen
            | Self::LoadScript
            | Self::Ping
            | Self::Reconnect
            | Self::ReplicaCount
            | Self::ReplicationBarrier
            | Self::BloomNew
            | Self::BloomMightContain => true,
            Self::SetValue
            | Self::SetValueIfAbsent
            | Self::SetJson
            | Self::DeleteKey
            | Self::SetExpiry
            | Self::BatchDeleteKeys
            | Self::DeleteMatching
            | Self::SetHash
            | Self::DeleteHashField
            | Self::PushToList
            | Self::PushToCappedList
            | Self::PopList
            | Self::ListRemove
            | Self::ListTrim
            | Self::AcquireLock
            | Self::ReleaseLock
            | Self::ExtendLock
            | Self::RunScript
            | Self::GetOrLoad
            | Self::BloomAdd => false,
        }
    }
}

impl std::fmt::Display for Op {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.as_str())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_are_distinct_snake_case_and_listed_once() {
        let names: std::collections::BTreeSet<&str> = Op::ALL.iter().map(|op| op.as_str()).collect();
        assert_eq!(names.len(), Op::ALL.len(), "a name used twice");
        for name in names {
            assert!(name.bytes().all(|byte| byte.is_ascii_lowercase() || byte == b'_'), "{name}");
        }
    }

    /// The operations that read a key without changing it, pinned: moving one to the other
    /// side changes what the near cache invalidates, and must be a decision.
    #[test]
    fn reads_and_writes_are_as_decided() {
        let reads: Vec<&str> = Op::ALL.iter().filter(|op| op.is_read_only()).map(|op| op.as_str()).collect();
        assert_eq!(
            reads,
            [
                "get_value",
                "get_json",
                "key_exists",
                "existing_keys",
                "get_ttl",
                "get_hash",
                "get_hash_all",
                "get_list",
                "list_contains",
                "get_value_and_list_contains",
                "list_range",
                "list_position",
                "list_len",
                "load_script",
                "ping",
                "reconnect",
                "replica_count",
                "replication_barrier",
                "bloom_new",
                "bloom_might_contain",
            ]
        );
    }
}
