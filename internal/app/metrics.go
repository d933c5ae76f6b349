package app

import (
	"context"
	"net/http"
	"strconv"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/collectors"
	"github.com/prometheus/client_golang/prometheus/promhttp"

	"github.com/auditstream/auditstream/internal/archive"
	"github.com/auditstream/auditstream/internal/eventlog"
)

// metrics is the service's Prometheus registry and the instruments fed by the components.
type metrics struct {
	reg            *prometheus.Registry
	ingestRequests *prometheus.CounterVec
	ingestEvents   prometheus.Counter
	ingestBytes    prometheus.Counter
	ingestLatency  prometheus.Histogram
	storeInserted  prometheus.Counter
	storeSkipped   prometheus.Counter
	storeBatch     prometheus.Histogram
	storePurged    prometheus.Counter
}

func newMetrics(log *eventlog.Log) *metrics {
	m := &metrics{reg: prometheus.NewRegistry()}
	m.ingestRequests = prometheus.NewCounterVec(prometheus.CounterOpts{Name: "auditstream_ingest_requests_total",
		Help: "Ingest requests by HTTP status code."}, []string{"code"})
	m.ingestEvents = prometheus.NewCounter(prometheus.CounterOpts{Name: "auditstream_ingest_events_total",
		Help: "Events accepted into the log."})
	m.ingestBytes = prometheus.NewCounter(prometheus.CounterOpts{Name: "auditstream_ingest_bytes_total",
		Help: "Request body bytes read by ingest."})
	m.ingestLatency = prometheus.NewHistogram(prometheus.HistogramOpts{Name: "auditstream_ingest_request_duration_seconds",
		Help: "Time from request to acknowledgement.", Buckets: prometheus.ExponentialBuckets(0.0005, 2, 14)})
	m.storeInserted = prometheus.NewCounter(prometheus.CounterOpts{Name: "auditstream_store_inserted_events_total",
		Help: "Events written to the store by the store consumer."})
	m.storeSkipped = prometheus.NewCounter(prometheus.CounterOpts{Name: "auditstream_store_skipped_events_total",
		Help: "Stream-only events (saved_to_database: false) the store consumer did not store."})
	m.storeBatch = prometheus.NewHistogram(prometheus.HistogramOpts{Name: "auditstream_store_batch_duration_seconds",
		Help: "Time to write one batch to the store.", Buckets: prometheus.ExponentialBuckets(0.0005, 2, 14)})
	m.storePurged = prometheus.NewCounter(prometheus.CounterOpts{Name: "auditstream_store_purged_events_total",
		Help: "Stored events the retention purge deleted."})
	lag := prometheus.NewGaugeFunc(prometheus.GaugeOpts{Name: "auditstream_store_lag_events",
		Help: "Events in the log not yet written to the store (-1 when unknown)."}, func() float64 {
		ctx, cancel := context.WithTimeout(context.Background(), 2*time.Second)
		defer cancel()
		n, err := log.ConsumerLag(ctx, archive.ConsumerName)
		if err != nil {
			return -1
		}
		return float64(n)
	})
	logMsgs := prometheus.NewGaugeFunc(prometheus.GaugeOpts{Name: "auditstream_log_events",
		Help: "Events held in the log (-1 when unknown)."}, func() float64 {
		ctx, cancel := context.WithTimeout(context.Background(), 2*time.Second)
		defer cancel()
		info, err := log.Info(ctx)
		if err != nil {
			return -1
		}
		return float64(info.Messages)
	})
	m.reg.MustRegister(m.ingestRequests, m.ingestEvents, m.ingestBytes, m.ingestLatency, m.storeInserted,
		m.storeSkipped, m.storeBatch, m.storePurged, lag, logMsgs,
		collectors.NewGoCollector(), collectors.NewProcessCollector(collectors.ProcessCollectorOpts{}))
	return m
}

func (m *metrics) handler() http.Handler {
	return promhttp.HandlerFor(m.reg, promhttp.HandlerOpts{Registry: m.reg})
}

func (m *metrics) observeIngest(events int, bytes int64, d time.Duration, status int) {
	m.ingestRequests.WithLabelValues(strconv.Itoa(status)).Inc()
	m.ingestEvents.Add(float64(events))
	m.ingestBytes.Add(float64(bytes))
	m.ingestLatency.Observe(d.Seconds())
}

func (m *metrics) archiveMetrics() archive.Metrics {
	return archive.Metrics{
		Inserted:      func(n int) { m.storeInserted.Add(float64(n)) },
		Skipped:       func(n int) { m.storeSkipped.Add(float64(n)) },
		BatchDuration: func(d time.Duration) { m.storeBatch.Observe(d.Seconds()) },
	}
}
