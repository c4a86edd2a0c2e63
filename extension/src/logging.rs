//! core's `tracing` events in the server log. Installed once per process that loads the
//! library (postmaster children: the archiver, backends, the worker).
//!
//! PostgreSQL functions may only be called from the process's main thread, so events from
//! any other thread are dropped. Warnings and errors go out at LOG: with the default
//! log_min_messages, a WARNING from a background process would be hidden, and an ERROR
//! raised from a log event would abort whatever was logging it.

use std::fmt::Write as _;
use std::thread::{self, ThreadId};

use pgrx::prelude::*;
use tracing::field::{Field, Visit};
use tracing::{Event, Level, Subscriber};
use tracing_subscriber::layer::{Context, SubscriberExt};
use tracing_subscriber::Layer;

pub fn init() {
    let layer = ServerLog {
        main: thread::current().id(),
    };
    // A second load in the same process keeps the first subscriber.
    let _ = tracing::subscriber::set_global_default(tracing_subscriber::registry().with(layer));
}

struct ServerLog {
    main: ThreadId,
}

impl<S: Subscriber> Layer<S> for ServerLog {
    fn on_event(&self, event: &Event<'_>, _ctx: Context<'_, S>) {
        if thread::current().id() != self.main {
            return;
        }
        let mut message = String::new();
        event.record(&mut Message(&mut message));
        match *event.metadata().level() {
            Level::ERROR | Level::WARN => log!("walmgr: WARNING: {message}"),
            Level::INFO => log!("walmgr: {message}"),
            _ => debug1!("walmgr: {message}"),
        }
    }
}

struct Message<'a>(&'a mut String);

impl Visit for Message<'_> {
    fn record_debug(&mut self, field: &Field, value: &dyn std::fmt::Debug) {
        if field.name() == "message" {
            let _ = write!(self.0, "{value:?}");
        } else {
            let _ = write!(self.0, " {}={value:?}", field.name());
        }
    }
}
