//! Lua scripts: EVALSHA (reloaded on NOSCRIPT) and loading ahead of use, where the store runs
//! them (Redis standalone or sentinel).

use std::borrow::Cow;

use crate::{CacheClient, CacheError, CacheScript, CacheStore, Op, ScriptReply};

impl CacheClient {
    /// Whether [`Self::run_script`] works here: Redis standalone or sentinel. The embedded
    /// store runs no Lua, and a cluster refuses scripts that touch keys of several slots, so
    /// callers fall back to plain operations there.
    pub fn runs_scripts(&self) -> bool {
        match &self.inner.store {
            CacheStore::Redis(pool) => !pool.route().is_cluster(),
            CacheStore::Embedded(_) => false,
        }
    }

    /// Runs a Lua script by EVALSHA (reloading it on NOSCRIPT). `keys` get the key prefix;
    /// `args` are passed as they are. On a store that [cannot](Self::runs_scripts) run
    /// scripts this is an [`crate::CacheErrorKind::InvalidInput`] error.
    pub async fn run_script(
        &self,
        script: &CacheScript,
        keys: &[&str],
        args: &[&str],
    ) -> Result<ScriptReply, CacheError> {
        let first = keys.first().map_or(Cow::Borrowed(""), |key| self.key(key)).into_owned();
        if !self.runs_scripts() {
            return Err(CacheError::invalid_input(Op::RunScript, Some(&first), "this store does not run scripts"));
        }
        let keys: Vec<String> = keys.iter().map(|key| self.key(key).into_owned()).collect();
        let args: Vec<String> = args.iter().map(|arg| (*arg).to_owned()).collect();
        let reply = self
            .call(
                Op::RunScript,
                &first,
                async |route| store::script::run(route, script, keys.clone(), args).await,
                |_| unreachable!("runs_scripts() is false for the embedded store"),
            )
            .await;
        self.written(&keys);
        reply
    }

    /// Loads a script on every primary ahead of its first use (optional: EVALSHA reloads it
    /// on NOSCRIPT anyway). Nothing to do where scripts do not run.
    pub async fn load_script(&self, script: &CacheScript) -> Result<(), CacheError> {
        if !self.runs_scripts() {
            return Ok(());
        }
        self.call(Op::LoadScript, "", async |route| store::script::load(route, script).await, |_| Ok(())).await
    }
}
