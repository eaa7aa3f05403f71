//! Events also go to `tracing` under the target `connpool`: the ordinary
//! life at `debug`, suspected leaks at `warn` with the checkout site.

mod common;

use std::sync::{Arc, Mutex};
use std::time::Duration;

use common::MemManager;
use connpool::Pool;
use tracing::field::{Field, Visit};
use tracing::span::{Attributes, Id, Record};
use tracing::{Event, Level, Metadata, Subscriber};

/// Records (level, target, all fields as text) of every event.
#[derive(Clone, Default)]
struct Collect(Arc<Mutex<Vec<(Level, String, String)>>>);

struct Fields(String);
impl Visit for Fields {
    fn record_debug(&mut self, field: &Field, value: &dyn std::fmt::Debug) {
        self.0.push_str(&format!("{}={:?} ", field.name(), value));
    }
}

impl Subscriber for Collect {
    fn enabled(&self, _: &Metadata<'_>) -> bool {
        true
    }
    fn new_span(&self, _: &Attributes<'_>) -> Id {
        Id::from_u64(1)
    }
    fn record(&self, _: &Id, _: &Record<'_>) {}
    fn record_follows_from(&self, _: &Id, _: &Id) {}
    fn event(&self, event: &Event<'_>) {
        let mut fields = Fields(String::new());
        event.record(&mut fields);
        let meta = event.metadata();
        self.0
            .lock()
            .unwrap()
            .push((*meta.level(), meta.target().to_string(), fields.0));
    }
    fn enter(&self, _: &Id) {}
    fn exit(&self, _: &Id) {}
}

#[test]
fn lifecycle_and_leaks_are_traced() {
    let collect = Collect::default();
    tracing::subscriber::with_default(collect.clone(), || {
        let rt = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .start_paused(true)
            .build()
            .unwrap();
        rt.block_on(async {
            let pool = Pool::builder(MemManager::default())
                .clock(connpool::Clock::Tokio)
                .leak_threshold(Some(Duration::from_secs(10)))
                .build();
            pool.get(&"db").await.unwrap().release();
            let _held = pool.get(&"db").await.unwrap();
            tokio::time::sleep(Duration::from_secs(12)).await;
        });
    });
    let events = collect.0.lock().unwrap();
    assert!(events.iter().all(|(_, target, _)| target == "connpool"));
    let debug: Vec<_> = events.iter().filter(|e| e.0 == Level::DEBUG).collect();
    assert!(
        debug.iter().any(|e| e.2.contains("Connecting")),
        "{debug:?}"
    );
    assert!(debug.iter().any(|e| e.2.contains("Reused")), "{debug:?}");
    let warns: Vec<_> = events.iter().filter(|e| e.0 == Level::WARN).collect();
    assert_eq!(warns.len(), 1, "{events:?}");
    assert!(warns[0].2.contains("checked_out_at"), "{:?}", warns[0]);
    assert!(warns[0].2.contains("tracing_events.rs"), "{:?}", warns[0]);
}
