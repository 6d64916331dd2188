//! Sans-IO SIP (RFC 3261): message model, parser and printer, URIs, digest
//! authentication and transaction state machines. No sockets, no clock reads:
//! callers pass time in and pull work out.

pub mod auth;
pub mod header;
pub mod limits;
pub mod message;
pub mod method;
pub mod parse;
mod scan;
pub mod transaction;
pub mod uri;

pub use limits::Limits;
