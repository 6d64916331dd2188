//! Counters the core keeps. Every label has a bounded set of values (methods
//! fold unknown names into "other", codes are 100..=699, reasons are static),
//! so an attacker cannot grow the registry.

use prometheus_client::encoding::EncodeLabelSet;
use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::family::Family;
use prometheus_client::metrics::gauge::Gauge;
use prometheus_client::metrics::histogram::Histogram;
use prometheus_client::registry::Registry;

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct MethodLabel {
    pub method: &'static str,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct ResponseLabel {
    pub code: u32,
    /// "sent" (generated here), "forwarded" (relayed from a downstream)
    pub origin: &'static str,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct ReasonLabel {
    pub reason: &'static str,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct ResultLabel {
    pub result: &'static str,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct RuleLabel {
    pub rule: &'static str,
}

pub struct Metrics {
    requests: Family<MethodLabel, Counter>,
    shield_drops: Family<ReasonLabel, Counter>,
    shield_bans: Family<RuleLabel, Counter>,
    pub shield_bans_active: Gauge,
    pub shield_kernel_errors: Counter,
    pub shield_store_errors: Counter,
    responses: Family<ResponseLabel, Counter>,
    drops: Family<ReasonLabel, Counter>,
    auth: Family<ResultLabel, Counter>,
    register: Family<ResultLabel, Counter>,
    transactions_created: Counter,
    pub transactions_active: Gauge,
    pub transactions_lingering: Gauge,
    pub transactions_evicted: Counter,
    pub registrations_active: Gauge,
    pub calls_proxied: Counter,
    pub calls_active: Gauge,
    /// MOS of each direction of each ended call.
    pub mos: Histogram,
    pub quality_events: Counter,
    pub media_timeouts: Counter,
    pub media_packets: Counter,
    pub media_bytes: Counter,
    pub media_sessions: Gauge,
    media_drops: Family<ReasonLabel, Counter>,
}

pub fn method_label(m: &sip::method::Method) -> &'static str {
    use sip::method::Method::*;
    match m {
        Invite => "INVITE",
        Ack => "ACK",
        Bye => "BYE",
        Cancel => "CANCEL",
        Register => "REGISTER",
        Options => "OPTIONS",
        Info => "INFO",
        Update => "UPDATE",
        Prack => "PRACK",
        Subscribe => "SUBSCRIBE",
        Notify => "NOTIFY",
        Refer => "REFER",
        Message => "MESSAGE",
        Publish => "PUBLISH",
        _ => "other",
    }
}

impl Metrics {
    pub fn new(registry: &mut Registry) -> Metrics {
        let m = Metrics {
            requests: Family::default(),
            shield_drops: Family::default(),
            shield_bans: Family::default(),
            shield_bans_active: Gauge::default(),
            shield_kernel_errors: Counter::default(),
            shield_store_errors: Counter::default(),
            responses: Family::default(),
            drops: Family::default(),
            auth: Family::default(),
            register: Family::default(),
            transactions_created: Counter::default(),
            transactions_active: Gauge::default(),
            transactions_lingering: Gauge::default(),
            transactions_evicted: Counter::default(),
            registrations_active: Gauge::default(),
            calls_proxied: Counter::default(),
            calls_active: Gauge::default(),
            // MOS buckets around the usual grades: bad, poor, fair, good.
            mos: Histogram::new([1.5, 2.0, 2.5, 3.0, 3.3, 3.6, 3.9, 4.1, 4.3, 4.5].into_iter()),
            quality_events: Counter::default(),
            media_timeouts: Counter::default(),
            media_packets: Counter::default(),
            media_bytes: Counter::default(),
            media_sessions: Gauge::default(),
            media_drops: Family::default(),
        };
        registry.register(
            "sip_requests",
            "SIP requests received, by method",
            m.requests.clone(),
        );
        registry.register(
            "sip_responses",
            "SIP responses sent, by code and origin",
            m.responses.clone(),
        );
        registry.register("sip_drops", "Messages dropped, by reason", m.drops.clone());
        registry.register(
            "shield_drops",
            "Packets, messages and connections the shield dropped without a reply, by reason",
            m.shield_drops.clone(),
        );
        registry.register(
            "shield_bans",
            "Bans imposed, by rule",
            m.shield_bans.clone(),
        );
        registry.register(
            "shield_bans_active",
            "Sources banned now",
            m.shield_bans_active.clone(),
        );
        registry.register(
            "shield_store_errors",
            "Failed writes of bans to the store (retried every 5 s; the bans are in force meanwhile)",
            m.shield_store_errors.clone(),
        );
        registry.register(
            "shield_kernel_errors",
            "Failed updates of the kernel's ban sets (retried; the shield drops in-process meanwhile)",
            m.shield_kernel_errors.clone(),
        );
        registry.register("auth", "Digest authentication outcomes", m.auth.clone());
        registry.register("register", "REGISTER outcomes", m.register.clone());
        registry.register(
            "transactions_created",
            "SIP transactions created",
            m.transactions_created.clone(),
        );
        registry.register(
            "transactions_active",
            "SIP transactions in progress",
            m.transactions_active.clone(),
        );
        registry.register(
            "transactions_lingering",
            "SIP transactions past their final response, absorbing retransmissions",
            m.transactions_lingering.clone(),
        );
        registry.register(
            "transactions_evicted",
            "Lingering transactions dropped early because limits.max_lingering was reached",
            m.transactions_evicted.clone(),
        );
        registry.register(
            "registrations_active",
            "Contacts currently registered",
            m.registrations_active.clone(),
        );
        registry.register(
            "calls_proxied",
            "INVITEs forwarded to a registered contact",
            m.calls_proxied.clone(),
        );
        registry.register(
            "calls_active",
            "Calls in progress (ringing or answered)",
            m.calls_active.clone(),
        );
        registry.register(
            "call_mos",
            "E-model MOS of each rated direction of each ended call",
            m.mos.clone(),
        );
        registry.register(
            "call_quality_events",
            "Call directions whose MOS fell below media.mos_threshold",
            m.quality_events.clone(),
        );
        registry.register(
            "call_media_timeouts",
            "Calls hung up because no RTP flowed for media.timeout_secs",
            m.media_timeouts.clone(),
        );
        registry.register(
            "media_relayed_packets",
            "RTP and RTCP packets relayed",
            m.media_packets.clone(),
        );
        registry.register(
            "media_relayed_bytes",
            "RTP and RTCP bytes relayed (UDP payload)",
            m.media_bytes.clone(),
        );
        registry.register(
            "media_sessions",
            "Calls whose media the relay anchors now (each holds two port pairs per stream)",
            m.media_sessions.clone(),
        );
        registry.register(
            "media_drops",
            "Media packets not relayed, by reason (stranger: from an address the call does not know)",
            m.media_drops.clone(),
        );
        m
    }

    /// Adds relay counters (deltas since the last call).
    pub fn media_drop(&self, reason: &'static str, n: u64) {
        if n > 0 {
            self.media_drops
                .get_or_create(&ReasonLabel { reason })
                .inc_by(n);
        }
    }

    /// Metrics that are not exported (tests, tools).
    pub fn unregistered() -> Metrics {
        Metrics::new(&mut Registry::default())
    }

    pub fn request(&self, m: &sip::method::Method) {
        self.requests
            .get_or_create(&MethodLabel {
                method: method_label(m),
            })
            .inc();
    }

    pub fn response(&self, code: u16, origin: &'static str) {
        let code = if (100..=699).contains(&code) {
            code as u32
        } else {
            0
        };
        self.responses
            .get_or_create(&ResponseLabel { code, origin })
            .inc();
    }

    pub fn drop_reason(&self, reason: &'static str) {
        self.drops.get_or_create(&ReasonLabel { reason }).inc();
    }

    pub fn shield_drop(&self, reason: &'static str) {
        self.shield_drops
            .get_or_create(&ReasonLabel { reason })
            .inc();
    }

    pub fn shield_ban(&self, rule: &'static str) {
        self.shield_bans.get_or_create(&RuleLabel { rule }).inc();
    }

    pub fn auth(&self, result: &'static str) {
        self.auth.get_or_create(&ResultLabel { result }).inc();
    }

    pub fn register(&self, result: &'static str) {
        self.register.get_or_create(&ResultLabel { result }).inc();
    }

    pub fn transaction_created(&self) {
        self.transactions_created.inc();
    }
}
