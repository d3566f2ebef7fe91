//! The `[rules]` and `[alerting]` sections of the configuration.

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};

#[derive(Clone, Debug, Deserialize, Serialize, PartialEq)]
#[serde(default, deny_unknown_fields)]
pub struct RulesConfig {
    /// Globs of rule files (Prometheus's format) for the default tenant.
    pub files: Vec<String>,
    /// Globs of rule files per tenant: `acme = ["rules/acme/*.yml"]`.
    pub tenants: BTreeMap<String, Vec<String>>,
    /// How often a group is evaluated unless it says `interval`.
    pub evaluation_interval_seconds: u64,
    /// A pending alert restored after a restart fires no sooner than this
    /// after the start (Prometheus's `--rules.alert.for-grace-period`).
    pub for_grace_period_seconds: u64,
    /// `for` state older than this is not restored
    /// (`--rules.alert.for-outage-tolerance`).
    pub for_outage_tolerance_seconds: u64,
    /// A firing alert is sent again this often (`--rules.alert.resend-delay`).
    pub resend_delay_seconds: u64,
}

impl Default for RulesConfig {
    fn default() -> Self {
        Self {
            files: Vec::new(),
            tenants: BTreeMap::new(),
            evaluation_interval_seconds: 60,
            for_grace_period_seconds: 600,
            for_outage_tolerance_seconds: 3600,
            resend_delay_seconds: 60,
        }
    }
}

#[derive(Clone, Debug, Deserialize, Serialize, PartialEq)]
#[serde(default, deny_unknown_fields)]
pub struct AlertingConfig {
    /// Alertmanagers that receive every alert: `["http://127.0.0.1:9093"]`.
    pub alertmanager_urls: Vec<String>,
    /// Added to every alert sent that has no label of the same name.
    pub external_labels: BTreeMap<String, String>,
    /// How Sightline's UI is reached, for alerts' `generatorURL`; empty:
    /// `http://<the API listen address>`.
    pub external_url: String,
    /// One request to an Alertmanager, at most.
    pub timeout_seconds: u64,
    /// Alerts waiting per Alertmanager, at most; the oldest are dropped.
    pub queue_capacity: usize,
}

impl Default for AlertingConfig {
    fn default() -> Self {
        Self {
            alertmanager_urls: Vec::new(),
            external_labels: BTreeMap::new(),
            external_url: String::new(),
            timeout_seconds: 10,
            queue_capacity: 10_000,
        }
    }
}

impl RulesConfig {
    pub fn validate(&self) -> Result<(), String> {
        if self.evaluation_interval_seconds == 0 || self.resend_delay_seconds == 0 {
            return Err("rules.evaluation_interval_seconds and rules.resend_delay_seconds must be at least 1".into());
        }
        Ok(())
    }
}

impl AlertingConfig {
    pub fn validate(&self) -> Result<(), String> {
        for url in &self.alertmanager_urls {
            if url.starts_with("https://") {
                return Err(format!(
                    "alerting.alertmanager_urls: {url:?}: Sightline reaches Alertmanager over plain http:// only (no TLS client yet)"
                ));
            }
            if !url.starts_with("http://") {
                return Err(format!("alerting.alertmanager_urls: {url:?} is not an http:// URL"));
            }
        }
        if self.timeout_seconds == 0 || self.queue_capacity == 0 {
            return Err("alerting.timeout_seconds and alerting.queue_capacity must be at least 1".into());
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::AlertingConfig;

    #[test]
    fn alertmanagers_are_plain_http_urls() {
        let with = |url: &str| AlertingConfig { alertmanager_urls: vec![url.into()], ..Default::default() }.validate();
        assert!(with("http://127.0.0.1:9093").is_ok());
        assert!(with("https://am.example:9093").expect_err("no TLS client").contains("plain http://"));
        assert!(with("am.example:9093").expect_err("a URL").contains("not an http:// URL"));
    }
}
