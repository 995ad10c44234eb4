//! RESP wire handling for the hot path.
//!
//! - [`scan`]: the resumable request scanner (client bytes -> frame boundary + argument ranges).
//! - [`walk`]: the resumable reply walker (backend bytes -> reply boundaries).
//! - [`ArgView`]: a borrowed view of one scanned request's arguments.
//!
//! Neither copies payload bytes: a request or reply stays the original bytes, split off the
//! read buffer and forwarded untouched.

pub mod encode;
pub mod scan;
pub mod walk;

use std::ops::Range;

/// The arguments of one scanned request: `frame` is the request's bytes and each range
/// indexes one argument's payload inside it. `args[0]` is the command name.
#[derive(Clone, Copy, Debug)]
pub struct ArgView<'a> {
    frame: &'a [u8],
    ranges: &'a [Range<u32>],
}

impl<'a> ArgView<'a> {
    /// Builds a view; every range must lie inside `frame`.
    pub fn new(frame: &'a [u8], ranges: &'a [Range<u32>]) -> Self {
        Self { frame, ranges }
    }

    /// Number of arguments, command name included.
    pub fn len(&self) -> usize {
        self.ranges.len()
    }

    /// True when the request has no arguments at all.
    pub fn is_empty(&self) -> bool {
        self.ranges.is_empty()
    }

    /// Argument `index`, or `None` past the end.
    pub fn get(&self, index: usize) -> Option<&'a [u8]> {
        let range = self.ranges.get(index)?;
        self.frame.get(range.start as usize..range.end as usize)
    }

    /// Iterates over every argument in order.
    pub fn iter(&self) -> impl Iterator<Item = &'a [u8]> + 'a {
        let frame = self.frame;
        self.ranges
            .iter()
            .map(move |r| &frame[r.start as usize..r.end as usize])
    }
}
