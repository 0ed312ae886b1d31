// Package monitoring tests what operators load into their monitoring: the
// Prometheus alert rules in deploy/prometheus (promtool's unit tests, and the
// alerts firing and resolving in a real Prometheus scraping a real relay as
// NATS stops, the relay dies and an event is dead-lettered), the Grafana
// dashboard in deploy/grafana, and the README's alerts table. Every metric
// the rules and the dashboard query must be one the relay or the emitter
// exports, so renaming a metric fails here rather than in a dashboard.
package monitoring
