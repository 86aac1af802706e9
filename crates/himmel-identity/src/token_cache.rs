//! Recently validated tokens, so validation of a token seen moments ago
//! skips the database. An entry is trusted for [`TTL`] and only while no
//! revocation happened since it was made (revocations cover every change
//! that takes rights away: password change, disabling, role removal).
//! Changes that take nothing away (a renamed project) show within the TTL.

use std::collections::HashMap;
use std::sync::Mutex;
use std::time::{Duration, Instant};

use crate::token::TokenInfo;

const TTL: Duration = Duration::from_secs(2);
const MAX_ENTRIES: usize = 50_000;

#[derive(Default)]
pub struct TokenCache {
    entries: Mutex<HashMap<String, (TokenInfo, Instant, u64)>>,
}

impl TokenCache {
    pub fn get(&self, token: &str, generation: u64) -> Option<TokenInfo> {
        let map = self.entries.lock().unwrap_or_else(|e| e.into_inner());
        let (info, at, gen) = map.get(token)?;
        (*gen == generation && at.elapsed() < TTL).then(|| info.clone())
    }

    pub fn put(&self, token: &str, info: TokenInfo, generation: u64) {
        let mut map = self.entries.lock().unwrap_or_else(|e| e.into_inner());
        if map.len() >= MAX_ENTRIES {
            map.retain(|_, (_, at, gen)| *gen == generation && at.elapsed() < TTL);
            if map.len() >= MAX_ENTRIES {
                map.clear();
            }
        }
        map.insert(token.to_owned(), (info, Instant::now(), generation));
    }
}
