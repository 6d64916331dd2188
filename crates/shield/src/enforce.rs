//! Where bans are enforced. The shield decides in-process; an
//! [`Enforcer`] copies the bans into the kernel so a banned source costs no
//! user-space work at all. [`Nft`] keeps them in two nftables sets
//! (`table inet hardline`, IPv4 addresses and IPv6 /64s, each element with
//! its own timeout), written over one long-lived netlink socket in batches.
//! [`InProcess`] is the fallback when that is impossible (not root, no
//! nf_tables): the shield's own admission check drops banned sources.

use std::io;
use std::time::Duration;

use crate::net::SourceKey;

/// One change to the kernel's ban sets.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Op {
    /// Ban; `None`: without timeout.
    Add(SourceKey, Option<Duration>),
    Remove(SourceKey),
}

#[derive(Debug, thiserror::Error)]
pub enum EnforceError {
    #[error("cannot run nft: {0}")]
    Spawn(io::Error),
    #[error("nft refused the ruleset: {0}")]
    Ruleset(String),
    #[error("netlink: {0}")]
    Netlink(io::Error),
    #[error("the kernel refused a ban update: {0}")]
    Kernel(io::Error),
}

pub trait Enforcer: Send {
    /// For logs and metrics: `nftables` or `in-process`.
    fn name(&self) -> &'static str;

    /// Whether bans reach the kernel.
    fn in_kernel(&self) -> bool;

    /// Applies `ops` in order, as one batch where the backend has batches.
    fn apply(&mut self, ops: &[Op]) -> Result<(), EnforceError>;

    /// Makes the kernel hold exactly `bans`: at start-up (restoring the
    /// bans from the store) and to repair after a failed update.
    fn sync(&mut self, bans: &[(SourceKey, Option<Duration>)]) -> Result<(), EnforceError>;
}

/// No kernel sets: the shield's admission check is the enforcement.
pub struct InProcess;

impl Enforcer for InProcess {
    fn name(&self) -> &'static str {
        "in-process"
    }
    fn in_kernel(&self) -> bool {
        false
    }
    fn apply(&mut self, _ops: &[Op]) -> Result<(), EnforceError> {
        Ok(())
    }
    fn sync(&mut self, _bans: &[(SourceKey, Option<Duration>)]) -> Result<(), EnforceError> {
        Ok(())
    }
}

/// Names inside the nftables table.
pub const TABLE: &str = "hardline";
pub const SET_V4: &str = "ban4";
pub const SET_V6: &str = "ban6";
pub const CHAIN: &str = "shield";

/// The nftables objects the shield owns, as `nft -f` input. Idempotent: run
/// at every start, it creates what is missing and rewrites the shield's
/// chain, leaving the sets' elements (and anything else in the table)
/// alone. IPv6 sources are banned by /64: the rule masks the source before
/// the lookup, so the set holds one element per /64.
pub fn ruleset() -> String {
    format!(
        "add table inet {TABLE}\n\
         add set inet {TABLE} {SET_V4} {{ type ipv4_addr; flags timeout; comment \"hardline shield: banned IPv4 sources\"; }}\n\
         add set inet {TABLE} {SET_V6} {{ type ipv6_addr; flags timeout; comment \"hardline shield: banned IPv6 /64s\"; }}\n\
         add chain inet {TABLE} {CHAIN} {{ type filter hook input priority filter - 10; policy accept; }}\n\
         flush chain inet {TABLE} {CHAIN}\n\
         add rule inet {TABLE} {CHAIN} ip saddr @{SET_V4} counter drop comment \"banned by the hardline shield\"\n\
         add rule inet {TABLE} {CHAIN} ip6 saddr & ffff:ffff:ffff:ffff:: @{SET_V6} counter drop comment \"banned by the hardline shield\"\n"
    )
}

/// Runs `nft -f -` with `script` (used once at start-up; element updates
/// go over netlink).
pub fn run_nft(script: &str) -> Result<(), EnforceError> {
    use std::io::Write;
    use std::process::{Command, Stdio};
    let mut child = Command::new("nft")
        .args(["-f", "-"])
        .stdin(Stdio::piped())
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()
        .map_err(EnforceError::Spawn)?;
    if let Some(mut stdin) = child.stdin.take() {
        stdin
            .write_all(script.as_bytes())
            .map_err(EnforceError::Spawn)?;
    }
    let out = child.wait_with_output().map_err(EnforceError::Spawn)?;
    if out.status.success() {
        Ok(())
    } else {
        Err(EnforceError::Ruleset(
            String::from_utf8_lossy(&out.stderr).trim().to_string(),
        ))
    }
}

/// Bans in nftables sets over netlink.
pub struct Nft {
    sock: netlink::Socket,
    seq: u32,
}

impl Nft {
    /// Installs the table, sets and chain (`nft -f`) and opens the netlink
    /// socket. Fails when not root, without `nft`, or without nf_tables:
    /// the caller falls back to [`InProcess`] and says so.
    pub fn open() -> Result<Nft, EnforceError> {
        run_nft(&ruleset())?;
        let sock = netlink::Socket::open().map_err(EnforceError::Netlink)?;
        Ok(Nft { sock, seq: 1 })
    }

    fn next_seq(&mut self) -> u32 {
        self.seq = self.seq.wrapping_add(1).max(1);
        self.seq
    }

    fn send(&mut self, msgs: Vec<netlink::Msg>) -> Result<(), EnforceError> {
        if msgs.is_empty() {
            return Ok(());
        }
        let first = self.next_seq();
        let mut seq = first;
        let mut buf = Vec::new();
        netlink::batch_begin(&mut buf, seq);
        let mut acked = Vec::new();
        for m in msgs {
            seq = self.next_seq();
            m.encode(&mut buf, seq);
            acked.push((seq, m.tolerate_enoent()));
        }
        seq = self.next_seq();
        netlink::batch_end(&mut buf, seq);
        self.sock.send(&buf).map_err(EnforceError::Netlink)?;
        self.sock.await_acks(&acked).map_err(EnforceError::Kernel)
    }
}

fn set_of(key: SourceKey) -> (&'static str, Vec<u8>) {
    match key {
        SourceKey::V4(a) => (SET_V4, a.to_be_bytes().to_vec()),
        SourceKey::V6(p) => (SET_V6, (u128::from(p) << 64).to_be_bytes().to_vec()),
    }
}

impl Enforcer for Nft {
    fn name(&self) -> &'static str {
        "nftables"
    }

    fn in_kernel(&self) -> bool {
        true
    }

    fn apply(&mut self, ops: &[Op]) -> Result<(), EnforceError> {
        // Additions go in one batch. A batch is all-or-nothing, and removing
        // an element the kernel already timed out fails with ENOENT, so
        // each removal is a batch of its own (ENOENT tolerated). Adding an
        // element that exists keeps its old timeout: to change a ban, the
        // caller removes it first.
        let mut adds = Vec::new();
        for op in ops {
            match *op {
                Op::Add(k, ttl) => {
                    let (set, key) = set_of(k);
                    adds.push(netlink::Msg::NewElem { set, key, ttl });
                }
                Op::Remove(k) => {
                    self.send(std::mem::take(&mut adds))?;
                    let (set, key) = set_of(k);
                    self.send(vec![netlink::Msg::DelElem { set, key }])?;
                }
            }
        }
        self.send(adds)
    }

    fn sync(&mut self, bans: &[(SourceKey, Option<Duration>)]) -> Result<(), EnforceError> {
        let mut msgs = vec![
            netlink::Msg::Flush { set: SET_V4 },
            netlink::Msg::Flush { set: SET_V6 },
        ];
        for &(k, ttl) in bans {
            let (set, key) = set_of(k);
            msgs.push(netlink::Msg::NewElem { set, key, ttl });
        }
        // Batches of a bounded size (a datagram of at most ~64 KiB).
        let mut rest = msgs;
        while !rest.is_empty() {
            let tail = rest.split_off(rest.len().min(512));
            self.send(rest)?;
            rest = tail;
        }
        Ok(())
    }
}

/// The few nf_tables netlink messages the shield sends, encoded by hand
/// (linux/netfilter/nf_tables.h, linux/netfilter/nfnetlink.h).
mod netlink {
    use std::io;
    use std::time::Duration;

    const NETLINK_NETFILTER: i32 = 12;
    const NLMSG_ERROR: u16 = 2;
    const NLM_F_REQUEST: u16 = 0x1;
    const NLM_F_ACK: u16 = 0x4;
    const NLM_F_CREATE: u16 = 0x400;
    const NLA_F_NESTED: u16 = 0x8000;
    const NFNL_MSG_BATCH_BEGIN: u16 = 0x10;
    const NFNL_MSG_BATCH_END: u16 = 0x11;
    const NFNL_SUBSYS_NFTABLES: u16 = 10;
    const NFT_MSG_NEWSETELEM: u16 = 12;
    const NFT_MSG_DELSETELEM: u16 = 14;
    const NFPROTO_INET: u8 = 1;
    const NFTA_SET_ELEM_LIST_TABLE: u16 = 1;
    const NFTA_SET_ELEM_LIST_SET: u16 = 2;
    const NFTA_SET_ELEM_LIST_ELEMENTS: u16 = 3;
    const NFTA_LIST_ELEM: u16 = 1;
    const NFTA_SET_ELEM_KEY: u16 = 1;
    const NFTA_SET_ELEM_TIMEOUT: u16 = 4;
    const NFTA_DATA_VALUE: u16 = 1;

    pub(super) enum Msg {
        NewElem {
            set: &'static str,
            key: Vec<u8>,
            ttl: Option<Duration>,
        },
        DelElem {
            set: &'static str,
            key: Vec<u8>,
        },
        /// Every element of the set.
        Flush {
            set: &'static str,
        },
    }

    fn align(buf: &mut Vec<u8>) {
        while !buf.len().is_multiple_of(4) {
            buf.push(0);
        }
    }

    /// Writes a netlink header with a placeholder length; returns its
    /// offset for [`finish`].
    fn header(buf: &mut Vec<u8>, ty: u16, flags: u16, seq: u32, family: u8, res_id: u16) -> usize {
        let at = buf.len();
        buf.extend_from_slice(&0u32.to_ne_bytes());
        buf.extend_from_slice(&ty.to_ne_bytes());
        buf.extend_from_slice(&flags.to_ne_bytes());
        buf.extend_from_slice(&seq.to_ne_bytes());
        buf.extend_from_slice(&0u32.to_ne_bytes());
        // struct nfgenmsg
        buf.push(family);
        buf.push(0); // NFNETLINK_V0
        buf.extend_from_slice(&res_id.to_be_bytes());
        at
    }

    fn finish(buf: &mut [u8], at: usize) {
        let len = (buf.len() - at) as u32;
        buf[at..at + 4].copy_from_slice(&len.to_ne_bytes());
    }

    fn attr(buf: &mut Vec<u8>, ty: u16, data: &[u8]) {
        let len = (4 + data.len()) as u16;
        buf.extend_from_slice(&len.to_ne_bytes());
        buf.extend_from_slice(&ty.to_ne_bytes());
        buf.extend_from_slice(data);
        align(buf);
    }

    fn nest_start(buf: &mut Vec<u8>, ty: u16) -> usize {
        let at = buf.len();
        buf.extend_from_slice(&0u16.to_ne_bytes());
        buf.extend_from_slice(&(ty | NLA_F_NESTED).to_ne_bytes());
        at
    }

    fn nest_end(buf: &mut [u8], at: usize) {
        let len = (buf.len() - at) as u16;
        buf[at..at + 2].copy_from_slice(&len.to_ne_bytes());
    }

    fn cstr(s: &str) -> Vec<u8> {
        let mut v = s.as_bytes().to_vec();
        v.push(0);
        v
    }

    pub(super) fn batch_begin(buf: &mut Vec<u8>, seq: u32) {
        let at = header(
            buf,
            NFNL_MSG_BATCH_BEGIN,
            NLM_F_REQUEST,
            seq,
            0,
            NFNL_SUBSYS_NFTABLES,
        );
        finish(buf, at);
    }

    pub(super) fn batch_end(buf: &mut Vec<u8>, seq: u32) {
        let at = header(
            buf,
            NFNL_MSG_BATCH_END,
            NLM_F_REQUEST,
            seq,
            0,
            NFNL_SUBSYS_NFTABLES,
        );
        finish(buf, at);
    }

    impl Msg {
        pub(super) fn tolerate_enoent(&self) -> bool {
            matches!(self, Msg::DelElem { .. })
        }

        pub(super) fn encode(&self, buf: &mut Vec<u8>, seq: u32) {
            let (ty, flags, set) = match self {
                Msg::NewElem { set, .. } => (
                    NFT_MSG_NEWSETELEM,
                    NLM_F_REQUEST | NLM_F_ACK | NLM_F_CREATE,
                    set,
                ),
                Msg::DelElem { set, .. } | Msg::Flush { set } => {
                    (NFT_MSG_DELSETELEM, NLM_F_REQUEST | NLM_F_ACK, set)
                }
            };
            let at = header(
                buf,
                (NFNL_SUBSYS_NFTABLES << 8) | ty,
                flags,
                seq,
                NFPROTO_INET,
                0,
            );
            attr(buf, NFTA_SET_ELEM_LIST_TABLE, &cstr(super::TABLE));
            attr(buf, NFTA_SET_ELEM_LIST_SET, &cstr(set));
            let key = match self {
                Msg::NewElem { key, .. } | Msg::DelElem { key, .. } => Some(key),
                Msg::Flush { .. } => None,
            };
            if let Some(key) = key {
                let elems = nest_start(buf, NFTA_SET_ELEM_LIST_ELEMENTS);
                let elem = nest_start(buf, NFTA_LIST_ELEM);
                let k = nest_start(buf, NFTA_SET_ELEM_KEY);
                attr(buf, NFTA_DATA_VALUE, key);
                nest_end(buf, k);
                if let Msg::NewElem { ttl: Some(ttl), .. } = self {
                    let ms = ttl.as_millis().clamp(1, u128::from(u64::MAX)) as u64;
                    attr(buf, NFTA_SET_ELEM_TIMEOUT, &ms.to_be_bytes());
                }
                nest_end(buf, elem);
                nest_end(buf, elems);
            }
            finish(buf, at);
        }
    }

    /// A netlink socket to nf_tables, closed on drop.
    pub(super) struct Socket {
        fd: i32,
    }

    impl Drop for Socket {
        fn drop(&mut self) {
            // SAFETY: `fd` is ours and closed exactly once.
            unsafe {
                libc::close(self.fd);
            }
        }
    }

    impl Socket {
        pub(super) fn open() -> io::Result<Socket> {
            // SAFETY: plain socket(2); the fd is owned by the returned value.
            let fd = unsafe {
                libc::socket(
                    libc::AF_NETLINK,
                    libc::SOCK_RAW | libc::SOCK_CLOEXEC,
                    NETLINK_NETFILTER,
                )
            };
            if fd < 0 {
                return Err(io::Error::last_os_error());
            }
            let sock = Socket { fd };
            // SAFETY: a zeroed sockaddr_nl is valid; bind(2) with its size.
            let rc = unsafe {
                let mut addr: libc::sockaddr_nl = std::mem::zeroed();
                addr.nl_family = libc::AF_NETLINK as u16;
                libc::bind(
                    fd,
                    (&addr as *const libc::sockaddr_nl).cast(),
                    std::mem::size_of::<libc::sockaddr_nl>() as u32,
                )
            };
            if rc < 0 {
                return Err(io::Error::last_os_error());
            }
            // Never wait long for the kernel's answer.
            let tv = libc::timeval {
                tv_sec: 2,
                tv_usec: 0,
            };
            // SAFETY: setsockopt(2) with a timeval of the right size.
            let rc = unsafe {
                libc::setsockopt(
                    fd,
                    libc::SOL_SOCKET,
                    libc::SO_RCVTIMEO,
                    (&tv as *const libc::timeval).cast(),
                    std::mem::size_of::<libc::timeval>() as u32,
                )
            };
            if rc < 0 {
                return Err(io::Error::last_os_error());
            }
            Ok(sock)
        }

        pub(super) fn send(&self, buf: &[u8]) -> io::Result<()> {
            // SAFETY: send(2) of an initialised buffer.
            let n = unsafe { libc::send(self.fd, buf.as_ptr().cast(), buf.len(), 0) };
            if n < 0 {
                return Err(io::Error::last_os_error());
            }
            if n as usize != buf.len() {
                return Err(io::Error::other("short netlink send"));
            }
            Ok(())
        }

        /// Reads the kernel's answers until every `(seq, enoent_ok)` has
        /// its acknowledgement; the first error fails (the batch was
        /// aborted as a whole).
        pub(super) fn await_acks(&self, acked: &[(u32, bool)]) -> io::Result<()> {
            let mut pending: Vec<(u32, bool)> = acked.to_vec();
            let mut buf = vec![0u8; 65_536];
            while !pending.is_empty() {
                // SAFETY: recv(2) into a buffer we own.
                let n = unsafe { libc::recv(self.fd, buf.as_mut_ptr().cast(), buf.len(), 0) };
                if n < 0 {
                    return Err(io::Error::last_os_error());
                }
                let mut data = &buf[..n as usize];
                while data.len() >= 16 {
                    let len = u32::from_ne_bytes([data[0], data[1], data[2], data[3]]) as usize;
                    let ty = u16::from_ne_bytes([data[4], data[5]]);
                    let seq = u32::from_ne_bytes([data[8], data[9], data[10], data[11]]);
                    if len < 16 || len > data.len() {
                        return Err(io::Error::other("malformed netlink answer"));
                    }
                    if ty == NLMSG_ERROR && len >= 20 {
                        let code = i32::from_ne_bytes([data[16], data[17], data[18], data[19]]);
                        if let Some(i) = pending.iter().position(|&(s, _)| s == seq) {
                            let (_, enoent_ok) = pending.remove(i);
                            if code != 0 && !(enoent_ok && code == -libc::ENOENT) {
                                return Err(io::Error::from_raw_os_error(-code));
                            }
                        }
                    }
                    let step = (len + 3) & !3;
                    data = &data[step.min(data.len())..];
                }
            }
            Ok(())
        }
    }

    #[cfg(test)]
    mod tests {
        use super::*;

        /// The byte layout the kernel expects, checked field by field.
        #[test]
        fn new_element_layout() {
            let mut buf = Vec::new();
            Msg::NewElem {
                set: "ban4",
                key: vec![192, 0, 2, 7],
                ttl: Some(Duration::from_secs(60)),
            }
            .encode(&mut buf, 7);
            let len = u32::from_ne_bytes(buf[0..4].try_into().unwrap()) as usize;
            assert_eq!(len, buf.len());
            assert_eq!(len % 4, 0);
            assert_eq!(u16::from_ne_bytes([buf[4], buf[5]]), (10 << 8) | 12);
            assert_eq!(u32::from_ne_bytes(buf[8..12].try_into().unwrap()), 7);
            assert_eq!(buf[16], NFPROTO_INET);
            // table attribute: len 4 + "hardline\0" = 13, padded to 16.
            assert_eq!(u16::from_ne_bytes([buf[20], buf[21]]), 13);
            assert_eq!(&buf[24..33], b"hardline\0");
            let tail = &buf[buf.len() - 8..];
            assert_eq!(u64::from_be_bytes(tail.try_into().unwrap()), 60_000);
            assert!(buf.windows(4).any(|w| w == [192, 0, 2, 7]));
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ruleset_names_the_sets_and_masks_v6() {
        let r = ruleset();
        assert!(r.contains("add set inet hardline ban4 { type ipv4_addr; flags timeout;"));
        assert!(r.contains("ip6 saddr & ffff:ffff:ffff:ffff:: @ban6"));
        assert!(r.contains("flush chain inet hardline shield"));
    }

    #[test]
    fn v6_keys_are_prefixes() {
        let (set, key) = set_of(SourceKey::of("2001:db8:1:2::99".parse().unwrap()));
        assert_eq!(set, SET_V6);
        assert_eq!(key.len(), 16);
        assert_eq!(&key[8..], &[0; 8]);
        let (set, key) = set_of(SourceKey::of("192.0.2.7".parse().unwrap()));
        assert_eq!((set, key), (SET_V4, vec![192, 0, 2, 7]));
    }
}
