//! Paged, serializable range reads with value sizes (for `analyze`'s breakdown).

use etcd_client::GetOptions;

use super::{Etcd, Result};

/// One page of a range scan: (key, value bytes) pairs and whether more follow.
pub struct RangePage {
    pub entries: Vec<(Vec<u8>, u64)>,
    pub more: bool,
    /// How many keys the requested range holds in all (etcd counts them whatever the limit).
    pub count: i64,
}

impl Etcd {
    /// One serializable page of at most `limit` keys in [`from`, `end`) (end empty: to the end of
    /// the keyspace), with value sizes; the values themselves are dropped at once.
    pub async fn range_page(
        &self,
        endpoint: &str,
        from: &[u8],
        end: &[u8],
        limit: i64,
    ) -> Result<RangePage> {
        let (from, end) = (from.to_vec(), end.to_vec());
        let mut response = self
            .call("Range", endpoint, self.command_timeout, |c| async move {
                let options = GetOptions::new()
                    .with_range(if end.is_empty() { vec![0] } else { end })
                    .with_limit(limit)
                    .with_serializable();
                c.kv_client()
                    .max_decoding_message_size(256 << 20)
                    .get(from, Some(options))
                    .await
            })
            .await?;
        let (more, count) = (response.more(), response.count());
        // Keys move out of the response (no copy); each value is dropped as soon as it is measured.
        let entries = (response.take_kvs().into_iter())
            .map(|kv| {
                let (key, value) = kv.into_key_value();
                (key, value.len() as u64)
            })
            .collect();
        Ok(RangePage {
            entries,
            more,
            count,
        })
    }
}
