//! The audit events and metrics of callback delivery: one `callback.delivery` event per
//! attempt whose outcome the worker learnt (delivered, failed and retried later, or failed for
//! the last time and the subscription suspended), and the `efgs_callback_events_total`
//! counters. The subscription events are request events ([`super::request::Note`]).

use efgs_core::callback::DeliveryError;
use efgs_core::store::{CallbackTask, TaskFinish, TaskResult};
use efgs_core::trail::{Event, Level, names};

use super::Ops;
use super::request::host_and_port;

/// The `callback.delivery` event of an attempt at `task` (failed with `error`, if it did),
/// given what the store recorded (`Err`: the store failed), and its counts.
pub(crate) fn delivery_event(
    ops: &Ops,
    task: &CallbackTask,
    result: Result<(TaskResult, TaskFinish), ()>,
    error: Option<&DeliveryError>,
) -> Event {
    let reason = error.map_or("-", DeliveryError::code);
    let (level, outcome) = match result {
        Ok((TaskResult::Delivered, TaskFinish::Recorded)) => {
            ops.metrics.callback("delivery", "delivered");
            (Level::Info, "delivered")
        }
        Ok((TaskResult::Retry { .. }, TaskFinish::Recorded)) => {
            ops.metrics.callback("delivery", "failed");
            ops.metrics.callback("retry", reason);
            (Level::Info, "failed")
        }
        Ok((TaskResult::Suspend { .. }, TaskFinish::Recorded)) => {
            ops.metrics.callback("delivery", "failed");
            ops.metrics.callback("suspension", reason);
            (Level::Warn, "suspended")
        }
        Ok((_, TaskFinish::LeaseLost)) | Err(()) => {
            ops.metrics.callback("delivery", "unrecorded");
            (Level::Info, "unrecorded")
        }
    };
    let (host, port) = host_and_port(&task.url);
    let mut event = ops
        .trail
        .event(level, names::CALLBACK_DELIVERY)
        .field("country", &task.country)
        .field("callback_id", clip(&task.callback_id))
        .field("host", host)
        .field("port", port)
        .field("batch_tag", task.batch.tag)
        .field("attempt", u64::from(task.retries) + 1)
        .field("outcome", outcome);
    if let Some(e) = error {
        event.push("reason", e.code());
        if let DeliveryError::Status(status) = e {
            event.push("receiver_status", status);
        }
    }
    event
}

fn clip(v: &str) -> String {
    v.chars().take(128).collect()
}
