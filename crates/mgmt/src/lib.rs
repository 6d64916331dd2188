//! Management plane of hardline: the typed configuration model with its
//! validation, and the Prometheus `/metrics` HTTP endpoint.
//!
//! The configuration is one TOML file. Unlike a plain serde derive, loading
//! it reports *every* problem at once, each with its key path, so an operator
//! fixes a file in one round trip instead of one error per restart.

pub mod config;
pub mod metrics_http;

pub use config::{
    default_config_text, Config, ConfigError, ConfigErrors, Credential, DigestAlgorithm,
    ExtensionConfig, Listen, ListenParseError, LogConfig, LogFormat, LogLevel, MetricsConfig,
    RegistrarConfig, ShieldSection, SipConfig, StorageConfig, Transport, EXAMPLE_CONFIG,
    LIMIT_KEYS,
};
pub use metrics_http::{serve_metrics, OPENMETRICS_CONTENT_TYPE};
