//! Campaign tools. [`plan`] sizes a send against Braze's and AWS's limits before it happens;
//! [`send`] fetches every recipient's blocks at send time, paced by a rate, with adaptive
//! concurrency, retries, and a checkpoint so a crash loses and duplicates nothing.

pub mod audience;
pub mod limiter;
pub mod output;
pub mod pacer;
pub mod plan;
pub mod send;
