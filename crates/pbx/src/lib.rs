//! The application layer: registrar, stateful proxy, and the sans-IO server
//! core that ties the SIP transactions to them. The runtime (the binary)
//! feeds datagrams/stream messages and the clock in, and pulls transmits,
//! store batches and the next timer out.

mod calls;
mod core;
pub mod io;
pub mod location;
pub mod metrics;
mod proxy;
mod registrar;
mod route;
pub mod session;

pub use crate::core::{Core, CoreConfig, StoreBatch};
pub use metrics::Metrics;
pub use session::{CallRecord, Disposition, LiveCall, MediaConfig, QualityEvent, SharedRelay};
