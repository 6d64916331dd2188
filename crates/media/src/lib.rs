//! Media, sans-IO like `sip` and `shield`: the RTP/RTCP relay (which ports
//! a call uses, whom they accept packets from, where packets go), RTP and
//! RTCP packet views, SDP parsing and rewriting, RFC 3550 stream
//! statistics, the E-model speech-quality score, and the recordings the
//! announcement player sends.

pub mod emodel;
pub mod relay;
pub mod rtp;
pub mod sdp;
pub mod stats;
pub mod wav;

pub use relay::{Ports, Relay, RelayConfig};
