//! A wake-up for exactly one waiter on the same thread: a session waiting for its reply
//! queue to change, a backend's writer waiting for requests.
//!
//! `tokio::sync::Notify` serves many waiters on any thread, so each `notify_one` and each
//! registration takes a lock. These waits have one waiter on one thread, notified from that
//! same thread once per request or reply: a flag and the waiter's `Waker` in cells do the
//! same job without locking. Like `Notify::notify_one`, a
//! notification with nobody waiting is kept and completes the next wait at once.

use std::cell::{Cell, RefCell};
use std::future::poll_fn;
use std::task::{Poll, Waker};

#[derive(Default)]
pub struct LocalWake {
    notified: Cell<bool>,
    waiter: RefCell<Option<Waker>>,
}

impl LocalWake {
    /// Wakes the waiter, or lets the next wait complete at once.
    pub fn notify(&self) {
        self.notified.set(true);
        if let Some(waker) = self.waiter.borrow_mut().take() {
            waker.wake();
        }
    }

    /// Resolves once [`Self::notify`] was called since the last wait resolved. Cancel-safe:
    /// a notification that arrives while nobody waits is kept.
    pub async fn wait(&self) {
        poll_fn(|cx| {
            if self.notified.replace(false) {
                return Poll::Ready(());
            }
            let mut waiter = self.waiter.borrow_mut();
            match waiter.as_ref() {
                Some(waker) if waker.will_wake(cx.waker()) => {}
                _ => *waiter = Some(cx.waker().clone()),
            }
            Poll::Pending
        })
        .await;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn a_notification_before_the_wait_is_kept() {
        let wake = LocalWake::default();
        wake.notify();
        wake.wait().await;
        // Consumed: a second wait must block until the next notification.
        let waited = tokio::time::timeout(std::time::Duration::from_millis(20), wake.wait()).await;
        assert!(waited.is_err());
    }

    #[tokio::test]
    async fn a_notification_wakes_the_waiter() {
        let wake = std::rc::Rc::new(LocalWake::default());
        let local = tokio::task::LocalSet::new();
        local
            .run_until(async {
                let other = wake.clone();
                let waiter = tokio::task::spawn_local(async move { other.wait().await });
                tokio::task::yield_now().await;
                wake.notify();
                tokio::time::timeout(std::time::Duration::from_secs(5), waiter)
                    .await
                    .expect("the waiter must wake")
                    .unwrap();
            })
            .await;
    }
}
