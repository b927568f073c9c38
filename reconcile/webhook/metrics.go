package webhook

import "github.com/prometheus/client_golang/prometheus"

// ProviderUnknown is the provider label of a delivery to a path that
// names no provider: the label set stays bounded whatever senders post.
const ProviderUnknown = "unknown"

// Metrics counts webhook deliveries by provider and outcome (the
// Response's Action: sync_queued, ignored, refused). One Metrics serves
// every Handler of a process (Config.Metrics); the composition root
// registers its Collectors into a registry of its own.
type Metrics struct {
	deliveries *prometheus.CounterVec
}

// NewMetrics returns unregistered webhook metrics.
func NewMetrics() *Metrics {
	return &Metrics{deliveries: prometheus.NewCounterVec(prometheus.CounterOpts{
		Name: "gitorc_webhook_deliveries_total",
		Help: "Webhook deliveries answered by this manager, by provider (github, gitlab, gitea, generic, unknown) and outcome (sync_queued, ignored, refused).",
	}, []string{"provider", "outcome"})}
}

// Collectors are the metrics to register.
func (m *Metrics) Collectors() []prometheus.Collector { return []prometheus.Collector{m.deliveries} }

// Observe counts one delivery: provider is the name it was posted to (an
// unknown one counts as ProviderUnknown), action its Response's Action.
// Callers that answer deliveries the Handler never sees use it too. A
// nil Metrics counts nothing.
func (m *Metrics) Observe(provider, action string) {
	if m == nil {
		return
	}
	p, err := ParseProvider(provider)
	label := string(p)
	if err != nil {
		label = ProviderUnknown
	}
	switch action {
	case ActionQueued, ActionIgnored, ActionRefused:
	default:
		action = ActionRefused // cannot happen: every answer has one of them
	}
	m.deliveries.WithLabelValues(label, action).Inc()
}
