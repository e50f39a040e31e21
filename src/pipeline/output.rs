//! The writer's alert side: suppression, then every sink, counted; the
//! incident desk tracks what was written, and escalations are routed to
//! their destination.

use super::alerts;
use super::incident_stage::IncidentStage;
use super::kafka::producer::Pending;
use super::metrics::Metrics;
use super::sinks::{Sink, SinkError};
use crate::alert::AlertBuilder;
use crate::vocab::Severity;
use std::collections::BTreeMap;
use std::sync::Arc;

/// The writer's alert side: suppression, then every sink, counted.
pub(super) struct AlertOutput {
    pub(super) sinks: Vec<Box<dyn Sink>>,
    pub(super) suppressor: crate::alert::suppress::Suppressor,
    pub(super) by_severity: BTreeMap<Severity, u64>,
    pub(super) metrics: Option<Arc<Metrics>>,
    /// Kafka deliveries since the last checkpoint.
    pub(super) pending: Pending,
    /// The incident desk, when alert lifecycle tracking is on.
    pub(super) incident: Option<IncidentStage>,
    pub(super) clock: crate::vocab::clock::Clock,
}

impl AlertOutput {
    /// Sends an alert through suppression.
    pub(super) fn send(&mut self, alert: crate::alert::Alert) -> Result<(), SinkError> {
        for a in self.suppressor.offer(alert) {
            self.write(&a)?;
        }
        Ok(())
    }

    pub(super) fn write(&mut self, alert: &crate::alert::Alert) -> Result<(), SinkError> {
        for sink in &mut self.sinks {
            sink.write(alert, &mut self.pending)?;
        }
        if let Some(incident) = &mut self.incident {
            incident.track(alert);
        }
        *self.by_severity.entry(alert.severity).or_default() += 1;
        if let Some(m) = &self.metrics {
            m.alerts
                .with_label_values(&[alert.alert_type.as_str(), alert.severity.key()])
                .inc();
        }
        Ok(())
    }

    /// Sends the alert each found thing makes, if it makes one.
    fn send_each<T>(
        &mut self,
        found: &[T],
        mut alert: impl FnMut(&T, &crate::vocab::Clock) -> Option<crate::alert::Alert>,
    ) -> Result<(), SinkError> {
        for item in found {
            if let Some(a) = alert(item, &self.clock) {
                self.send(a)?;
            }
        }
        Ok(())
    }

    /// Turns correlation firings into alerts and sends them.
    pub(super) fn send_firings(
        &mut self,
        firings: Vec<crate::correlate::Firing>,
        builder: &AlertBuilder,
        set: &crate::correlate::CorrelationSet,
    ) -> Result<(), SinkError> {
        let metrics = self.metrics.clone();
        self.send_each(&firings, |firing, clock| {
            let corr = set.get(firing.correlation)?;
            if let Some(m) = &metrics {
                m.correlation_firings
                    .with_label_values(&[corr.rule.meta.id.as_str()])
                    .inc();
            }
            if set.is_inner_link(firing.correlation) {
                return None;
            }
            alerts::correlation(builder, corr, firing, clock.detected_at(firing.last))
        })
    }

    /// Turns anomalies its job's rule let through into alerts and sends them.
    pub(super) fn send_anomalies(
        &mut self,
        anomalies: Vec<crate::anomaly::Anomaly>,
        builder: &AlertBuilder,
        set: &crate::anomaly::AnomalySet,
    ) -> Result<(), SinkError> {
        self.send_each(&anomalies, |anomaly, clock| {
            let job = set.get(anomaly.job)?;
            let detected_at = clock.detected_at(anomaly.bucket_end);
            Some(alerts::anomaly(builder, job, anomaly, detected_at))
        })
    }

    pub(super) fn flush(&mut self) -> Result<(), SinkError> {
        for sink in &mut self.sinks {
            sink.flush()?;
        }
        if let Some(incident) = &mut self.incident {
            incident.sync()?;
        }
        Ok(())
    }

    /// Deadlines and silences: emits what is due and persists the desk's changes.
    pub(super) fn tick_incidents(&mut self, builder: &AlertBuilder) -> Result<(), SinkError> {
        let Some(incident) = &mut self.incident else {
            return Ok(());
        };
        let tick = incident.tick(builder);
        for alert in tick.alerts {
            self.write(&alert)?;
        }
        for (escalation, destination) in tick.escalations {
            self.route(&escalation, &destination)?;
        }
        self.persist_incidents()
    }

    pub(super) fn persist_incidents(&mut self) -> Result<(), SinkError> {
        match &mut self.incident {
            Some(incident) => incident.persist(&mut self.pending),
            None => Ok(()),
        }
    }

    /// Alerts a silence watch raised as events came back.
    pub(super) fn silence_seen(
        &mut self,
        seen: &[(usize, chrono::DateTime<chrono::Utc>)],
        builder: &AlertBuilder,
    ) -> Result<(), SinkError> {
        let Some(incident) = &mut self.incident else {
            return Ok(());
        };
        for alert in incident.seen(seen, builder) {
            self.write(&alert)?;
        }
        Ok(())
    }

    /// Sends an escalation to its level's destination.
    pub(super) fn route(
        &mut self,
        escalation: &crate::incident::escalation::Escalation,
        destination: &crate::incident::escalation::Destination,
    ) -> Result<(), SinkError> {
        use crate::incident::escalation::Destination;
        let dedicated = self
            .incident
            .as_mut()
            .and_then(|i| i.escalation_sink.as_mut());
        match (destination, dedicated) {
            (Destination::Escalations, Some(sink)) => {
                return sink.write(escalation, &mut self.pending)
            }
            (Destination::Webhook(name), Some(sink)) if sink.webhook_name() == Some(name) => {
                return sink.write(escalation, &mut self.pending)
            }
            _ => {}
        }
        for sink in &mut self.sinks {
            let wanted = match destination {
                // Without an escalation sink, escalations go with the alerts.
                Destination::Alerts | Destination::Escalations => sink.webhook_name().is_none(),
                Destination::Webhook(name) => sink.webhook_name() == Some(name.as_str()),
            };
            if wanted {
                sink.write(escalation, &mut self.pending)?;
            }
        }
        Ok(())
    }

    /// End of input: the updates of every open suppression window, then flush.
    pub(super) fn finish(&mut self) -> Result<(), SinkError> {
        for a in self.suppressor.finish() {
            self.write(&a)?;
        }
        self.flush()
    }
}
