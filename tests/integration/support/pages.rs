//! A paginated LIST through the real apiserver, as kubectl and many controllers page a large
//! resource: `limit` and `continue`, every page read at the first page's revision, with a pause
//! between pages. How it ends under compaction is the point: a walk longer than the history kept
//! either completes (served from the watch cache) or gets 410 "The provided continue parameter
//! is too old".

use std::sync::Arc;
use std::time::{Duration, Instant};

use super::apiserver::ApiServer;
use super::runtime;

/// Creates `n` small ConfigMaps `page-0…` in `default` (8 writers at once).
pub fn create_configmaps(api: &Arc<ApiServer>, n: usize) {
    let writers: Vec<_> = (0..8)
        .map(|w| {
            let api = api.clone();
            std::thread::spawn(move || {
                runtime().block_on(async move {
                    for i in (w..n).step_by(8) {
                        let name = format!("page-{i}");
                        let body = serde_json::json!({
                            "apiVersion": "v1",
                            "kind": "ConfigMap",
                            "metadata": {"name": name, "namespace": "default"},
                            "data": {"i": i.to_string()},
                        })
                        .to_string();
                        let path = format!("/api/v1/namespaces/default/configmaps/{name}");
                        let answer = api.apply(&path, "page-maker", &body).await;
                        assert!(
                            answer.as_ref().is_ok_and(|a| a.ok()),
                            "creating {name}: {:?}",
                            answer.map(|a| a.message())
                        );
                    }
                })
            })
        })
        .collect();
    for w in writers {
        w.join().unwrap();
    }
}

/// How a walk ended.
#[derive(Debug)]
pub struct Walk {
    pub pages: usize,
    pub items: usize,
    pub seconds: f64,
    /// The refusal, when a page was refused: HTTP status and the apiserver's message.
    pub refused: Option<(u16, String)>,
}

impl Walk {
    pub fn line(&self) -> String {
        match &self.refused {
            None => format!(
                "completed: {} items in {} pages over {:.0} s",
                self.items, self.pages, self.seconds
            ),
            Some((status, message)) => format!(
                "refused at page {} after {:.0} s ({} items read): {status} {message}",
                self.pages + 1,
                self.seconds,
                self.items
            ),
        }
    }
}

/// Lists `path` in pages of `limit`, pausing `pause` between pages.
pub fn walk(api: &ApiServer, path: &str, limit: usize, pause: Duration) -> Walk {
    let started = Instant::now();
    let mut walk = Walk {
        pages: 0,
        items: 0,
        seconds: 0.0,
        refused: None,
    };
    let mut token: Option<String> = None;
    loop {
        let page = match &token {
            None => format!("{path}?limit={limit}"),
            Some(t) => format!("{path}?limit={limit}&continue={}", escape(t)),
        };
        let answer = api
            .call("GET", &page, None, None)
            .expect("the apiserver answers");
        if !answer.ok() {
            walk.refused = Some((answer.status, answer.message()));
            break;
        }
        walk.pages += 1;
        walk.items += answer.body["items"].as_array().map_or(0, Vec::len);
        token = answer.body["metadata"]["continue"]
            .as_str()
            .filter(|t| !t.is_empty())
            .map(String::from);
        if token.is_none() {
            break;
        }
        std::thread::sleep(pause);
    }
    walk.seconds = started.elapsed().as_secs_f64();
    walk
}

/// A continue token (base64) as a query value.
fn escape(token: &str) -> String {
    token
        .replace('+', "%2B")
        .replace('/', "%2F")
        .replace('=', "%3D")
}
