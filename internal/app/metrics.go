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
	"github.com/auditstream/auditstream/internal/trail"
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
	trailAppended  prometheus.Counter
	trailSize      prometheus.Gauge
	trailLost      prometheus.Counter
	trailRecovered prometheus.Counter
	trailSigned    prometheus.Counter
	trailAudit     prometheus.Gauge
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
	m.trailAppended = prometheus.NewCounter(prometheus.CounterOpts{Name: "auditstream_trail_appended_events_total",
		Help: "Events added to the trail's tree by this process."})
	m.trailSize = prometheus.NewGauge(prometheus.GaugeOpts{Name: "auditstream_trail_size_events",
		Help: "Events in the trail's tree (as this process last wrote it)."})
	m.trailLost = prometheus.NewCounter(prometheus.CounterOpts{Name: "auditstream_trail_lost_events_total",
		Help: "Events the log lost before the tree had them and the store had no copy of (the ids are in the ERROR log and /-/ready)."})
	m.trailRecovered = prometheus.NewCounter(prometheus.CounterOpts{Name: "auditstream_trail_recovered_events_total",
		Help: "Events the log lost before the tree had them, added to the tree from the store's copy."})
	m.trailSigned = prometheus.NewCounter(prometheus.CounterOpts{Name: "auditstream_trail_checkpoints_total",
		Help: "Checkpoints signed by this process."})
	m.trailAudit = prometheus.NewGauge(prometheus.GaugeOpts{Name: "auditstream_trail_audit_failed",
		Help: "1 when the latest audit of the trail from the store failed (the ERROR log and /-/ready name the id), else 0."})
	m.reg.MustRegister(m.trailAppended, m.trailSize, m.trailLost, m.trailRecovered, m.trailSigned, m.trailAudit)
	holes := prometheus.NewGaugeFunc(prometheus.GaugeOpts{Name: "auditstream_log_lost_events",
		Help: "Ids inside the log whose events it no longer holds (lost: a damaged or cut block file; -1 when unknown). The trail's ERROR log and /-/ready name them."}, func() float64 {
		ctx, cancel := context.WithTimeout(context.Background(), 2*time.Second)
		defer cancel()
		ids, err := log.Holes(ctx)
		if err != nil {
			return -1
		}
		return float64(len(ids))
	})
	m.reg.MustRegister(holes)
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

func (m *metrics) trailMetrics(status *trail.Status) trail.Metrics {
	problems := prometheus.NewGaugeFunc(prometheus.GaugeOpts{Name: "auditstream_trail_problems",
		Help: "Losses the trail found since the process started (each names its ids in /-/ready); 0 is healthy."},
		func() float64 { return float64(len(status.Problems())) })
	m.reg.MustRegister(problems)
	return trail.Metrics{
		Appended:    func(n int) { m.trailAppended.Add(float64(n)) },
		Size:        func(n int64) { m.trailSize.Set(float64(n)) },
		Lost:        func(n int) { m.trailLost.Add(float64(n)) },
		Recovered:   func(n int) { m.trailRecovered.Add(float64(n)) },
		Checkpoints: func(n int) { m.trailSigned.Add(float64(n)) },
	}
}

func (m *metrics) trailAuditFailed(v int) { m.trailAudit.Set(float64(v)) }
