//! Media: the speech-quality score now; the RTP/RTCP relay and the stream
//! statistics follow (issue 4). Sans-IO like `sip` and `shield`.

pub mod emodel;
